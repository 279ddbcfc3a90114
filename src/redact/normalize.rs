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

/// Characters that render as nothing, or only decorate the character before them, and are
/// dropped from the view: format characters (zero-width spaces and joiners, direction marks and
/// embeddings, invisible operators, the BOM, the soft hyphen), variation selectors, the combining
/// grapheme joiner, and combining marks (an underlined `4̲`, a keycap `4️⃣`).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}')
        || unicode_normalization::char::is_combining_mark(c)
}

/// The first code point of each block of ten decimal digits (Unicode category Nd) that NFKC
/// leaves alone: Arabic-Indic, Extended Arabic-Indic, NKo, the Indic scripts, Thai, Lao, Tibetan,
/// Myanmar, Khmer, Mongolian and others. Full-width and mathematical digits are already folded by NFKC.
const DIGIT_BLOCKS: &[u32] = &[
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
];

/// The ASCII digit for a decimal digit of another script.
fn ascii_digit(c: char) -> Option<char> {
    let code = u32::from(c);
    DIGIT_BLOCKS
        .iter()
        .find(|&&start| (start..start + 10).contains(&code))
        .and_then(|&start| char::from_digit(code - start, 10))
}

/// A normalized view of a text. It holds message content, so `Debug` shows only its length.
pub struct View<'a> {
    /// The text the matchers search.
    pub text: Cow<'a, str>,
    /// For each byte of `text`, the original byte range of the character it came from. Empty when
    /// the view is the original text.
    origin: Vec<(u32, u32)>,
}

impl Drop for View<'_> {
    /// The owned copy is message content: wipe it.
    fn drop(&mut self) {
        if let Cow::Owned(text) = &mut self.text {
            zeroize::Zeroize::zeroize(text);
        }
    }
}

impl std::fmt::Debug for View<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("bytes", &self.text.len())
            .finish_non_exhaustive()
    }
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
            if let Some(digit) = ascii_digit(c) {
                text.push(digit);
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
    fn other_scripts_digits_and_invisible_marks() {
        let original =
            "\u{0664}\u{0661}\u{200E}\u{0661}\u{0661} \u{0967}\u{0968} 4\u{FE0F}\u{20E3}1\u{0332}";
        let view = View::new(original);
        assert_eq!(view.text, "4111 12 41");
        let (s, e) = view.original_range(0, 4);
        assert_eq!(&original[s..e], "\u{0664}\u{0661}\u{200E}\u{0661}\u{0661}");
        assert!(!format!("{view:?}").contains("4111"));
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
