//! E.164 phone numbers.
//!
//! A phone number is personal data. [`E164`] keeps the digits private: it has no `Display`,
//! its `Debug` shows only the last two digits, and the full value is reached only through
//! [`E164::as_str`], which is called where the number is sealed, blind-indexed or sent to a
//! carrier.

use std::fmt;

/// A phone number in E.164 form: `+`, a country code, at most 15 digits in all.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct E164(String);

/// Why a string is not an E.164 number. Carries no part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("a phone number must start with `+` and a country code")]
    MissingPlus,
    #[error("a phone number must have 8 to 15 digits after `+`, the first not 0")]
    BadDigits,
}

impl E164 {
    /// Parses a number already in E.164 form, as carriers send it (`+15551234567`).
    /// Surrounding white space is ignored; nothing else is tolerated.
    ///
    /// # Errors
    /// [`PhoneError`] when the text is not `+` followed by 8–15 digits with a non-zero first digit.
    pub fn parse(text: &str) -> Result<Self, PhoneError> {
        let text = text.trim();
        let digits = text.strip_prefix('+').ok_or(PhoneError::MissingPlus)?;
        let valid = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(PhoneError::BadDigits)
        }
    }

    /// The full number. Call it only to seal, index or send the number.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number masked for display to people who may not see it whole: `+1 ••• ••• 4567` for
    /// NANP numbers, `+•••••••67` otherwise.
    #[must_use]
    pub fn masked(&self) -> String {
        let digits = self.0.get(1..).unwrap_or_default();
        if digits.len() == 11 && digits.starts_with('1') {
            format!("+1 ••• ••• {}", digits.get(7..).unwrap_or_default())
        } else {
            let tail = digits
                .get(digits.len().saturating_sub(2)..)
                .unwrap_or_default();
            format!("+{}{tail}", "•".repeat(digits.len().saturating_sub(2)))
        }
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = self
            .0
            .get(self.0.len().saturating_sub(2)..)
            .unwrap_or_default();
        write!(f, "E164(…{tail})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_e164_and_rejects_the_rest() {
        assert_eq!(
            E164::parse(" +15551234567 ").map(|p| p.as_str().to_owned()),
            Ok("+15551234567".to_owned())
        );
        assert_eq!(
            E164::parse("+442071838750").map(|p| p.as_str().len()),
            Ok(13)
        );
        assert_eq!(E164::parse("15551234567"), Err(PhoneError::MissingPlus));
        assert_eq!(E164::parse("+1555"), Err(PhoneError::BadDigits));
        assert_eq!(E164::parse("+05551234567"), Err(PhoneError::BadDigits));
        assert_eq!(E164::parse("+1555123456a"), Err(PhoneError::BadDigits));
        assert_eq!(E164::parse("+1234567890123456"), Err(PhoneError::BadDigits));
        assert_eq!(E164::parse("+"), Err(PhoneError::BadDigits));
    }

    #[test]
    fn debug_and_masked_forms_hide_the_number() {
        let phone = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let debug = format!("{phone:?}");
        assert!(!debug.contains("5551234"), "{debug}");
        assert_eq!(phone.masked(), "+1 ••• ••• 4567");
        let uk = E164::parse("+442071838750").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(uk.masked(), "+••••••••••50");
    }
}
