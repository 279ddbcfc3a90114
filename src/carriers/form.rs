//! `application/x-www-form-urlencoded` parsing that keeps every pair in order (repeated names
//! included, as signature schemes need) and refuses what is not well-formed instead of guessing.

/// Why a form body was refused. Carries no part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the form body has a malformed percent-escape")]
    BadEscape,
    #[error("the form body is not valid UTF-8 once decoded")]
    NotUtf8,
    #[error("the form body has a pair with an empty name")]
    EmptyName,
}

/// Parses a form body into `(name, value)` pairs in the order received. `+` is a space. An empty
/// body is an empty form; empty segments (`a=1&&b=2`) are skipped, as browsers do.
///
/// # Errors
/// [`FormError`] for a bad `%` escape, invalid UTF-8 after decoding, or a pair with no name.
pub fn parse(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    body.split(|&b| b == b'&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (name, value) = match segment.iter().position(|&b| b == b'=') {
                Some(i) => (
                    segment.get(..i).unwrap_or_default(),
                    segment.get(i + 1..).unwrap_or_default(),
                ),
                None => (segment, &b""[..]),
            };
            let name = decode(name)?;
            if name.is_empty() {
                return Err(FormError::EmptyName);
            }
            Ok((name, decode(value)?))
        })
        .collect()
}

fn decode(raw: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|&h| char::from(h).to_digit(16));
                let lo = bytes.next().and_then(|&l| char::from(l).to_digit(16));
                match (hi, lo) {
                    // Two hex digits make one byte: hi * 16 + lo < 256.
                    (Some(hi), Some(lo)) => {
                        out.push(u8::try_from(hi * 16 + lo).map_err(|_| FormError::BadEscape)?)
                    }
                    _ => return Err(FormError::BadEscape),
                }
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

/// Encodes pairs as `application/x-www-form-urlencoded`, in the order given: letters, digits and
/// `*-._` as they are, space as `+`, every other byte percent-escaped (the WHATWG form encoding,
/// which is what carriers' SDKs send).
#[must_use]
pub fn encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_component(name, &mut out);
        out.push('=');
        encode_component(value, &mut out);
    }
    out
}

fn encode_component(text: &str, out: &mut String) {
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            other => {
                out.push('%');
                out.push_str(&format!("{other:02X}"));
            }
        }
    }
}

/// The first value of `name`, if present.
#[must_use]
pub fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn decodes_pairs_in_order() {
        assert_eq!(
            parse(b"To=%2B15550001111&Body=hello+world%21&Body=again&Empty=&Flag"),
            Ok(pairs(&[
                ("To", "+15550001111"),
                ("Body", "hello world!"),
                ("Body", "again"),
                ("Empty", ""),
                ("Flag", "")
            ]))
        );
        assert_eq!(parse(b""), Ok(vec![]));
        assert_eq!(
            parse(b"a=1&&b=%C3%A9"),
            Ok(pairs(&[("a", "1"), ("b", "é")]))
        );
        assert_eq!(parse(b"a=x%3Dy"), Ok(pairs(&[("a", "x=y")])));
    }

    #[test]
    fn encode_round_trips() {
        let pairs = [
            ("To", "+15550001111"),
            ("Body", "héllo wörld & 100% = ok"),
            ("Body", ""),
        ];
        let encoded = encode(&pairs);
        assert_eq!(
            encoded,
            "To=%2B15550001111&Body=h%C3%A9llo+w%C3%B6rld+%26+100%25+%3D+ok&Body="
        );
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        assert_eq!(parse(encoded.as_bytes()), Ok(owned));
    }

    #[test]
    fn refuses_malformed_bodies() {
        assert_eq!(parse(b"a=%zz"), Err(FormError::BadEscape));
        assert_eq!(parse(b"a=%4"), Err(FormError::BadEscape));
        assert_eq!(parse(b"a=%FF%FE"), Err(FormError::NotUtf8));
        assert_eq!(parse(b"a=\xff"), Err(FormError::NotUtf8));
        assert_eq!(parse(b"=value"), Err(FormError::EmptyName));
    }
}
