//! Redaction v1: card numbers (Luhn-checked) and US Social Security numbers.
//!
//! This is the minimal redactor the inbound pipeline needs to be safe from the first message; the
//! full rule engine (rule packs, 16 types, topics, escalation) replaces it in its own issue. It runs
//! before anything is stored, and the plaintext it sees and produces lives only in memory
//! ([`Zeroizing`] wipes it on drop).
//!
//! - **Card numbers**: 13–19 digits, contiguous or split by spaces, dashes or dots (up to two
//!   separator characters between digits), that pass the Luhn check and are not all one digit.
//!   A run of digit groups longer than a card (say a phone number followed by a card) is searched
//!   for the longest Luhn-valid window of whole groups. Replaced by `[CARD •••• 1234]` — PCI DSS
//!   allows the last four digits to be shown.
//! - **SSNs**: `123-45-6789` or `123 45 6789` (one consistent separator), or nine bare digits when
//!   the message mentions "ssn" or "social security". Area 000, 666 and 900–999, group 00 and
//!   serial 0000 are not SSNs. Replaced by `[SSN]`.

use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use zeroize::Zeroizing;

/// A kind of sensitive value, named as DESIGN.md names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum FindingType {
    #[serde(rename = "CARD_NUMBER")]
    CardNumber,
    #[serde(rename = "US_SSN")]
    UsSsn,
}

impl FindingType {
    /// The type's name in findings, metrics and rules.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CardNumber => "CARD_NUMBER",
            Self::UsSsn => "US_SSN",
        }
    }
}

/// What was found: types and counts, never values. This is all that is stored about findings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Findings(BTreeMap<FindingType, u32>);

impl Findings {
    fn add(&mut self, kind: FindingType) {
        *self.0.entry(kind).or_default() += 1;
    }

    /// How many values of `kind` were found.
    #[must_use]
    pub fn count(&self, kind: FindingType) -> u32 {
        self.0.get(&kind).copied().unwrap_or_default()
    }

    /// Each type found, with its count.
    pub fn iter(&self) -> impl Iterator<Item = (FindingType, u32)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The stored form: a JSON object of type names to counts, e.g. `{"CARD_NUMBER":1}`.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Redacted text and what was removed from it. The redacted text is still message content, so
/// `Debug` shows only its length and the findings.
pub struct Redacted {
    pub text: Zeroizing<String>,
    pub findings: Findings,
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redacted")
            .field("text_chars", &self.text.chars().count())
            .field("findings", &self.findings)
            .finish()
    }
}

/// A digit run that may hold a card number: digits with up to two separators between them.
static CARD_RUN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[0-9](?:[ .\-]{0,2}[0-9])+").unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static SSN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b([0-9]{3})([- ]?)([0-9]{2})([- ]?)([0-9]{4})\b")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static SSN_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(ssn|ss#|social\s+security)")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Redacts an inbound message.
#[must_use]
pub fn redact(text: &str) -> Redacted {
    let mut spans: Vec<(usize, usize, FindingType, String)> = Vec::new();
    for run in CARD_RUN.find_iter(text) {
        if let Some((start, end, last4)) = card_in_run(text, run.start(), run.end()) {
            spans.push((
                start,
                end,
                FindingType::CardNumber,
                format!("[CARD •••• {last4}]"),
            ));
        }
    }
    let ssn_context = SSN_CONTEXT.is_match(text);
    for caps in SSN.captures_iter(text) {
        let (Some(whole), Some(area), Some(sep1), Some(group), Some(sep2), Some(serial)) = (
            caps.get(0),
            caps.get(1),
            caps.get(2),
            caps.get(3),
            caps.get(4),
            caps.get(5),
        ) else {
            continue;
        };
        let consistent = sep1.as_str() == sep2.as_str();
        let bare = sep1.as_str().is_empty();
        let glued = text.get(..whole.start()).is_some_and(|b| b.ends_with('-'))
            || text.get(whole.end()..).is_some_and(|a| a.starts_with('-'));
        if consistent
            && (!bare || ssn_context)
            && !glued
            && valid_ssn(area.as_str(), group.as_str(), serial.as_str())
        {
            spans.push((
                whole.start(),
                whole.end(),
                FindingType::UsSsn,
                "[SSN]".to_owned(),
            ));
        }
    }

    // Earlier spans first; on overlap keep the longer (a card beats an SSN-shaped part of it).
    spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    let mut findings = Findings::default();
    let mut cursor = 0;
    for (start, end, kind, replacement) in spans {
        if start < cursor {
            continue;
        }
        out.push_str(text.get(cursor..start).unwrap_or_default());
        out.push_str(&replacement);
        findings.add(kind);
        cursor = end;
    }
    out.push_str(text.get(cursor..).unwrap_or_default());
    Redacted {
        text: out,
        findings,
    }
}

/// Finds the longest Luhn-valid card number made of whole digit groups inside the run
/// `text[start..end]`. Returns its byte span and last four digits.
fn card_in_run(text: &str, start: usize, end: usize) -> Option<(usize, usize, String)> {
    // A run glued to letters or digits on either side (part of a reference code) is not a card.
    let before = text.get(..start).and_then(|b| b.chars().next_back());
    let after = text.get(end..).and_then(|a| a.chars().next());
    if before.is_some_and(char::is_alphanumeric) || after.is_some_and(char::is_alphanumeric) {
        return None;
    }
    let run = text.get(start..end)?;
    // Digit groups with their byte offsets in `text`.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut group_start = None;
    for (i, c) in run.char_indices() {
        match (c.is_ascii_digit(), group_start) {
            (true, None) => group_start = Some(i),
            (false, Some(s)) => {
                groups.push((start + s, start + i));
                group_start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = group_start {
        groups.push((start + s, end));
    }
    let mut best: Option<(usize, usize, String)> = None;
    for first in 0..groups.len() {
        for last in first..groups.len() {
            let (Some(&(s, _)), Some(&(_, e))) = (groups.get(first), groups.get(last)) else {
                continue;
            };
            let digits: String = text
                .get(s..e)?
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            if digits.len() > 19 {
                break;
            }
            if digits.len() >= 13
                && luhn_valid(&digits)
                && !all_same(&digits)
                && best.as_ref().is_none_or(|b| e - s > b.1 - b.0)
            {
                let last4 = digits
                    .get(digits.len() - 4..)
                    .unwrap_or_default()
                    .to_owned();
                best = Some((s, e, last4));
            }
        }
    }
    best
}

/// The Luhn (mod 10) check used by every card brand.
#[must_use]
pub fn luhn_valid(digits: &str) -> bool {
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

/// The Social Security Administration's structural rules: no area 000, 666 or 900–999, no group
/// 00, no serial 0000.
fn valid_ssn(area: &str, group: &str, serial: &str) -> bool {
    let area_ok = area != "000" && area != "666" && !area.starts_with('9');
    area_ok && group != "00" && serial != "0000"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> String {
        redact(text).text.to_string()
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("4242424242424242"));
        assert!(luhn_valid("378282246310005"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("4111-1111"));
    }

    #[test]
    fn cards_in_every_common_layout() {
        for text in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111.1111.1111.1111",
            "4111  1111  1111  1111",
            "41111 11111 111111",
            "card: 3782 822463 10005 thanks",
            "6205500000000000004",
        ] {
            let out = redact(text);
            assert_eq!(
                out.findings.count(FindingType::CardNumber),
                1,
                "{text} -> {}",
                *out.text
            );
            assert!(
                !out.text.contains("1111 1111")
                    && !out.text.contains("822463")
                    && !out.text.contains("0000000"),
                "{}",
                *out.text
            );
        }
        assert_eq!(
            r("my card is 4242 4242 4242 4242 ok"),
            "my card is [CARD •••• 4242] ok"
        );
    }

    #[test]
    fn look_alikes_survive() {
        for text in [
            "order 4111111111111112 shipped", // fails Luhn
            "ref 0000000000000000",           // one repeated digit
            "tracking 1Z999AA10123456784",    // glued to letters
            "call 555-123-4567 at 10:30",     // a phone number
            "total $1,234.56 on 12/03/2026",  // amount and date
            "zip 94107",
        ] {
            let out = redact(text);
            assert!(out.findings.is_empty(), "{text} -> {}", *out.text);
            assert_eq!(*out.text, text);
        }
    }

    #[test]
    fn card_found_beside_other_numbers() {
        let out = redact("call 555 123 4567 4111 1111 1111 1111");
        assert_eq!(
            out.findings.count(FindingType::CardNumber),
            1,
            "{}",
            *out.text
        );
        assert_eq!(*out.text, "call 555 123 4567 [CARD •••• 1111]");
    }

    #[test]
    fn ssns() {
        assert_eq!(r("ssn 219-09-9999 ok"), "ssn [SSN] ok");
        assert_eq!(r("it is 219 09 9999"), "it is [SSN]");
        assert_eq!(
            r("my social security number is 219099999"),
            "my social security number is [SSN]"
        );
        // Bare nine digits without context are left alone (order numbers, ZIP+4).
        assert_eq!(r("order 219099999"), "order 219099999");
        for invalid in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "999-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123-45 6789",
        ] {
            assert_eq!(r(invalid), invalid);
        }
        // Part of a longer dashed number (a phone number with a country code).
        assert_eq!(r("1-219-09-9999"), "1-219-09-9999");
    }

    #[test]
    fn findings_hold_types_and_counts_only() {
        let out = redact("my card is 4539148803436467 and ssn 123-45-6789, also 4111111111111111");
        assert_eq!(
            *out.text,
            "my card is [CARD •••• 6467] and ssn [SSN], also [CARD •••• 1111]"
        );
        assert_eq!(out.findings.to_json(), r#"{"CARD_NUMBER":2,"US_SSN":1}"#);
    }

    #[test]
    fn debug_output_carries_no_content() {
        let out = redact("my card is 4111111111111111, quokka");
        let debug = format!("{out:?}");
        assert!(
            !debug.contains("quokka") && !debug.contains("1111"),
            "{debug}"
        );
    }

    #[test]
    fn multibyte_text_is_safe() {
        assert_eq!(
            r("carte ＿ 4111111111111111 é"),
            "carte ＿ [CARD •••• 1111] é"
        );
        assert_eq!(r("😀4111111111111111😀"), "😀[CARD •••• 1111]😀");
    }
}
