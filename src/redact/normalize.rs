//! The normalized view the matchers see, and the map from its offsets back to the original text.
//!
//! Each character is replaced by its Unicode NFKC form (full-width `４` becomes `4`, the ligature
//! `ﬁ` becomes `fi`) and zero-width characters (ZWSP, ZWNJ, ZWJ, word joiner, BOM, soft hyphen)
//! are dropped, so `4111\u{200B}1111…` matches like `41111111…`. Normalization is per character,
//! not across combining sequences; for the digits, letters and punctuation the rules match this is
//! the same thing. Plain ASCII text without zero-width characters — nearly every SMS — is its own
//! view, with no copy and no map.

use std::borrow::Cow;
use unicode_normalization::UnicodeNormalization;

/// Characters that render as nothing and are dropped from the view.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
    )
}

/// A normalized view of a text.
#[derive(Debug)]
pub struct View<'a> {
    /// The text the matchers search.
    pub text: Cow<'a, str>,
    /// For each byte of `text`, the original byte range of the character it came from. Empty when
    /// the view is the original text.
    origin: Vec<(u32, u32)>,
}

impl<'a> View<'a> {
    /// Builds the view of `original`.
    #[must_use]
    pub fn new(original: &'a str) -> Self {
        if original.is_ascii() {
            return Self {
                text: Cow::Borrowed(original),
                origin: Vec::new(),
            };
        }
        let mut text = String::with_capacity(original.len());
        let mut origin = Vec::with_capacity(original.len());
        let mut buf = [0_u8; 4];
        for (start, c) in original.char_indices() {
            let end = start + c.len_utf8();
            let span = (
                u32::try_from(start).unwrap_or(u32::MAX),
                u32::try_from(end).unwrap_or(u32::MAX),
            );
            if is_invisible(c) {
                continue;
            }
            if c.is_ascii() {
                text.push(c);
                origin.push(span);
                continue;
            }
            for n in std::iter::once(c).nfkc() {
                if is_invisible(n) {
                    continue;
                }
                text.push_str(n.encode_utf8(&mut buf));
                origin.extend(std::iter::repeat_n(span, n.len_utf8()));
            }
        }
        Self {
            text: Cow::Owned(text),
            origin,
        }
    }

    /// Maps a byte range of the view to the byte range of the original text it covers: from the
    /// start of the character `start` came from to the end of the character `end - 1` came from.
    #[must_use]
    pub fn original_range(&self, start: usize, end: usize) -> (usize, usize) {
        if self.origin.is_empty() {
            return (start, end);
        }
        let first = self.origin.get(start).map_or(usize::MAX, |o| o.0 as usize);
        let last = end
            .checked_sub(1)
            .and_then(|e| self.origin.get(e))
            .map_or(first, |o| o.1 as usize);
        (first.min(last), last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_is_borrowed() {
        let view = View::new("card 4111");
        assert!(matches!(view.text, Cow::Borrowed(_)));
        assert_eq!(view.original_range(5, 9), (5, 9));
    }

    #[test]
    fn full_width_digits_and_zero_width_characters() {
        let original = "card ４１１１\u{200B}2222 é";
        let view = View::new(original);
        assert_eq!(view.text, "card 41112222 é");
        let start = view.text.find("4111").unwrap_or_default();
        let (s, e) = view.original_range(start, start + 8);
        assert_eq!(&original[s..e], "４１１１\u{200B}2222");
        let (s, e) = view.original_range(view.text.len() - 2, view.text.len());
        assert_eq!(&original[s..e], "é");
    }

    #[test]
    fn expansions_map_to_their_source_character() {
        let original = "ﬁle ½";
        let view = View::new(original);
        assert_eq!(view.text, "file 1⁄2");
        let (s, e) = view.original_range(0, 2);
        assert_eq!(&original[s..e], "ﬁ");
    }
}
