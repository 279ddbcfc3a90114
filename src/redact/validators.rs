//! Checksums and structural rules that turn a pattern's candidate into a finding.
//!
//! A validator sees the candidate's text and answers with the part of it that is valid — usually
//! all of it, or nothing. The Luhn validator may narrow a candidate: a run of digit groups longer
//! than a card (a phone number written just before a card number) yields the longest Luhn-valid
//! window of whole groups.

use serde::{Deserialize, Serialize};

/// The validators a rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Validator {
    #[default]
    None,
    /// Card numbers: 13–19 digits, Luhn mod 10.
    Luhn,
    /// ABA routing numbers: 9 digits, 3-7-1 weighted sum mod 10.
    Aba,
    /// IBAN: country code, per-country length, ISO 7064 mod 97-10.
    Iban,
    /// US SSN: area not 000, 666 or 9xx; group not 00; serial not 0000.
    Ssn,
    /// US ITIN: 9xx, group 50–65, 70–88, 90–92 or 94–99.
    Itin,
    /// Medicare Beneficiary Identifier: 11 characters in CMS's position rules.
    Mbi,
}

impl Validator {
    /// Returns the valid byte range within `candidate`, or `None` when it does not validate.
    #[must_use]
    pub fn check(self, candidate: &str) -> Option<(usize, usize)> {
        let whole = (0, candidate.len());
        match self {
            Self::None => Some(whole),
            Self::Luhn => luhn_window(candidate),
            Self::Aba => aba(&digits(candidate)).then_some(whole),
            Self::Iban => iban_prefix(candidate),
            Self::Ssn => ssn(&digits(candidate)).then_some(whole),
            Self::Itin => itin(&digits(candidate)).then_some(whole),
            Self::Mbi => mbi(candidate).then_some(whole),
        }
    }

    /// Every valid, non-overlapping byte range within `candidate`. One for most validators; the
    /// Luhn validator finds each card in a run that holds several (two cards written one after
    /// the other, or a card after a number that is itself Luhn-valid).
    #[must_use]
    pub fn spans(self, candidate: &str) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        if self == Self::Luhn {
            let mut pending = vec![(0, candidate.len())];
            while let Some((start, end)) = pending.pop() {
                let Some(part) = candidate.get(start..end) else {
                    continue;
                };
                if let Some((s, e)) = luhn_window(part) {
                    found.push((start + s, start + e));
                    pending.push((start, start + s));
                    pending.push((start + e, end));
                }
            }
            found.sort_unstable();
        } else if let Some(span) = self.check(candidate) {
            found.push(span);
        }
        found
    }

    /// Whether this validator checks anything (validated findings win overlaps).
    #[must_use]
    pub fn is_some(self) -> bool {
        self != Self::None
    }
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// The Luhn (mod 10) check.
#[must_use]
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

fn all_same(digits: &str) -> bool {
    let mut bytes = digits.bytes();
    let first = bytes.next();
    bytes.all(|b| Some(b) == first)
}

/// The longest window of whole digit groups in `text` holding 13–19 digits that pass Luhn.
fn luhn_window(text: &str) -> Option<(usize, usize)> {
    let mut groups: Vec<(usize, usize)> = Vec::with_capacity(8);
    let mut start = None;
    for (i, b) in text.bytes().enumerate() {
        match (b.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                groups.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        groups.push((s, text.len()));
    }
    let mut best: Option<(usize, usize)> = None;
    let mut buf = String::with_capacity(24);
    for first in 0..groups.len() {
        buf.clear();
        for &(gs, ge) in groups.get(first..).unwrap_or_default() {
            buf.push_str(text.get(gs..ge).unwrap_or_default());
            if buf.len() > 19 {
                break;
            }
            let span = (groups.get(first).map_or(gs, |g| g.0), ge);
            if buf.len() >= 13 && luhn(&buf) && best.is_none_or(|b| span.1 - span.0 > b.1 - b.0) {
                best = Some(span);
            }
        }
    }
    best
}

/// ABA routing number: nine digits whose 3-7-1 weighted sum is a multiple of 10, not one repeated
/// digit. The Federal Reserve's prefix ranges are deliberately not checked: the default rule
/// already requires routing/ABA words nearby, which keeps false positives rare, and a prefix
/// table would turn a number from an unusual or newly assigned range into a leak.
#[must_use]
pub fn aba(digits: &str) -> bool {
    let d: Vec<u32> = digits
        .bytes()
        .map(|b| u32::from(b.wrapping_sub(b'0')))
        .collect();
    if d.len() != 9 || d.iter().any(|&x| x > 9) || all_same(digits) {
        return false;
    }
    let weights = [3, 7, 1, 3, 7, 1, 3, 7, 1];
    d.iter().zip(weights).map(|(x, w)| x * w).sum::<u32>() % 10 == 0
}

/// Social Security number structure (SSA): area 001–665, 667–899; group 01–99; serial 0001–9999.
#[must_use]
pub fn ssn(digits: &str) -> bool {
    if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (area, rest) = digits.split_at(3);
    let (group, serial) = rest.split_at(2);
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// ITIN structure (IRS): 9xx, then a group of 50–65, 70–88, 90–92 or 94–99.
#[must_use]
pub fn itin(digits: &str) -> bool {
    if digits.len() != 9 || !digits.starts_with('9') || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return false;
    }
    let group: u32 = digits.get(3..5).and_then(|g| g.parse().ok()).unwrap_or(0);
    matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99)
}

/// IBAN lengths by country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// IBAN: known country, that country's length, check digits by mod 97-10. Spaces ignored.
#[must_use]
pub fn iban(text: &str) -> bool {
    let compact: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'-')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    let Some(country) = compact.get(..2).and_then(|c| std::str::from_utf8(c).ok()) else {
        return false;
    };
    let Some(&(_, length)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else {
        return false;
    };
    if compact.len() != length || !compact.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder: u32 = 0;
    for &b in tail.iter().chain(head) {
        let value = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// The IBAN at the start of `text`: the candidate is cut at the country's length (so a greedy
/// match that ran into the next word still validates), then checked.
fn iban_prefix(text: &str) -> Option<(usize, usize)> {
    let country: String = text
        .chars()
        .take(2)
        .collect::<String>()
        .to_ascii_uppercase();
    let &(_, length) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country)?;
    let mut count = 0;
    for (i, c) in text.char_indices() {
        if c.is_ascii_alphanumeric() {
            count += 1;
            if count == length {
                let end = i + 1;
                let whole_word = text
                    .get(end..)
                    .and_then(|t| t.chars().next())
                    .is_none_or(|n| !n.is_ascii_alphanumeric());
                return (whole_word && iban(text.get(..end)?)).then_some((0, end));
            }
        } else if c != ' ' && c != '-' {
            return None;
        }
    }
    None
}

/// Medicare Beneficiary Identifier (CMS): positions C A AN N A AN N A A N N, where C is 1–9, N a
/// digit, A a letter other than S, L, O, I, B, Z. Dashes after positions 4 and 7 are allowed.
#[must_use]
pub fn mbi(text: &str) -> bool {
    let chars: Vec<u8> = text
        .bytes()
        .filter(|&b| b != b'-' && b != b' ')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if chars.len() != 11 {
        return false;
    }
    // C: 1–9; A: a letter but S, L, O, I, B, Z; N: a digit; X: A or N.
    const POSITIONS: &[u8; 11] = b"CAXNAXNAANN";
    let alpha = |b: u8| b.is_ascii_uppercase() && !b"SLOIBZ".contains(&b);
    chars.iter().zip(POSITIONS).all(|(&b, &kind)| match kind {
        b'C' => (b'1'..=b'9').contains(&b),
        b'A' => alpha(b),
        b'N' => b.is_ascii_digit(),
        _ => alpha(b) || b.is_ascii_digit(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_windows() {
        for pan in [
            "4111111111111111",
            "378282246310005",
            "6205500000000000004",
            "2223003122003222",
            "30569309025904",
        ] {
            assert!(luhn(pan), "{pan}");
        }
        assert!(!luhn("4111111111111112"));
        assert_eq!(Validator::Luhn.check("4111 1111 1111 1111"), Some((0, 19)));
        assert_eq!(
            Validator::Luhn.check("555 123 4567 4111 1111 1111 1111"),
            Some((13, 32))
        );
        // One repeated digit passes Luhn and is not a real card, but nothing Luhn-valid of card
        // length is left in a message.
        assert_eq!(Validator::Luhn.check("0000 0000 0000 0000"), Some((0, 19)));
        // Two cards in one run are both found, even after a longer Luhn-valid number.
        assert_eq!(
            Validator::Luhn.spans("4111111111111111 4242424242424242"),
            vec![(0, 16), (17, 33)]
        );
        assert_eq!(
            Validator::Luhn.spans("12345678901234569 4111 1111 1111 1111"),
            vec![(0, 17), (18, 37)]
        );
        assert_eq!(Validator::Luhn.check("4111 1111 1111 1112"), None);
    }

    #[test]
    fn aba_numbers() {
        assert!(aba("011000015")); // Federal Reserve Bank of Boston
        assert!(aba("021000021")); // JPMorgan Chase
        assert!(!aba("011000016"));
        assert!(aba("132273394"), "prefix ranges are not checked");
        assert!(!aba("000000000"));
        assert!(!aba("12345678"));
    }

    #[test]
    fn ssn_and_itin() {
        assert!(ssn("219099999"));
        for bad in [
            "000123456",
            "666123456",
            "900123456",
            "123004567",
            "123450000",
        ] {
            assert!(!ssn(bad), "{bad}");
        }
        assert!(itin("912701234"));
        assert!(itin("901804823"));
        assert!(!itin("912931234"), "group 93 is not issued");
        assert!(!itin("812701234"));
    }

    #[test]
    fn iban_check_digits_and_lengths() {
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(iban("NL91ABNA0417164300"));
        assert!(!iban("GB82 WEST 1234 5698 7654 33"));
        assert!(!iban("GB82 WEST 1234 5698 7654"), "wrong length for GB");
        assert!(!iban("ZZ82WEST12345698765432"), "unknown country");
        assert_eq!(
            Validator::Iban.check("NL91 ABNA 0417 1643 00 PLEA"),
            Some((0, 22))
        );
        assert_eq!(
            Validator::Iban.check("NL91ABNA041716430099"),
            None,
            "longer than NL's 18"
        );
    }

    #[test]
    fn medicare_ids() {
        assert!(mbi("1EG4-TE5-MK73"));
        assert!(mbi("1EG4TE5MK73"));
        assert!(!mbi("1SG4TE5MK73"), "S is never used");
        assert!(!mbi("0EG4TE5MK73"), "first character is 1-9");
        assert!(!mbi("1EG4TE5MK7"));
    }
}
