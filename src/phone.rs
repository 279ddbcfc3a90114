//! Phone numbers: the customer's ([`E164`]) and our own ([`BusinessAddress`]).
//!
//! A customer's phone number is personal data. [`E164`] keeps the digits private: it has no
//! `Display`, its `Debug` shows only the last two digits, and the full value is reached only
//! through [`E164::as_str`], which is called where the number is sealed, blind-indexed or sent to
//! a carrier.
//!
//! A [`BusinessAddress`] is one of the business's own senders — a phone number, a short code or
//! an RCS agent — taken from configuration. It is not personal data and prints in full.

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

    /// Parses a number as carriers that drop the `+` write it (`15551234567`, Vonage, Plivo,
    /// Sinch), or in E.164 form.
    ///
    /// # Errors
    /// As [`E164::parse`].
    pub fn parse_msisdn(text: &str) -> Result<Self, PhoneError> {
        let text = text.trim();
        if text.starts_with('+') {
            Self::parse(text)
        } else {
            Self::parse(&format!("+{text}"))
        }
    }

    /// The number without its `+`, as Vonage, Plivo and Sinch write it.
    #[must_use]
    pub fn digits(&self) -> &str {
        self.0.get(1..).unwrap_or_default()
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

/// One of the business's own senders. Its [`BusinessAddress::key`] is how it is written in
/// configuration and stored in `conversation.business_number`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum BusinessAddress {
    /// A long code or toll-free number, E.164.
    Number(E164),
    /// A short code: 3 to 8 digits.
    ShortCode(String),
    /// An RCS agent id (Google RBM `agentId`, a Vonage or Twilio RCS sender).
    RcsAgent(String),
}

/// Why text is not a business address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("a business number is E.164 (`+15550001111`) or a short code of 3 to 8 digits")]
    Number,
    #[error("an RCS agent id is 1 to 128 letters, digits and `-_.@`")]
    Agent,
}

impl BusinessAddress {
    /// Parses a number as written in configuration: E.164, or a short code.
    ///
    /// # Errors
    /// [`AddressError::Number`].
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let text = text.trim();
        if text.starts_with('+') {
            E164::parse(text)
                .map(Self::Number)
                .map_err(|_| AddressError::Number)
        } else if (3..=8).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self::ShortCode(text.to_owned()))
        } else {
            Err(AddressError::Number)
        }
    }

    /// Parses a number as a carrier writes it: E.164, digits without the `+` (9 or more), or a
    /// short code (3 to 8 digits).
    ///
    /// # Errors
    /// [`AddressError::Number`].
    pub fn parse_carrier(text: &str) -> Result<Self, AddressError> {
        let text = text.trim();
        if !text.starts_with('+') && text.len() > 8 {
            E164::parse_msisdn(text)
                .map(Self::Number)
                .map_err(|_| AddressError::Number)
        } else {
            Self::parse(text)
        }
    }

    /// An RCS agent id.
    ///
    /// # Errors
    /// [`AddressError::Agent`] when it is empty, too long or has other characters.
    pub fn rcs_agent(id: &str) -> Result<Self, AddressError> {
        let id = id.trim();
        let valid = (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
        if valid {
            Ok(Self::RcsAgent(id.to_owned()))
        } else {
            Err(AddressError::Agent)
        }
    }

    /// The stored and configured form: `+15550001111`, `12345`, `rcs:agent-id`.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::Number(n) => n.as_str().to_owned(),
            Self::ShortCode(s) => s.clone(),
            Self::RcsAgent(a) => format!("rcs:{a}"),
        }
    }

    /// Reads back [`BusinessAddress::key`].
    ///
    /// # Errors
    /// As [`BusinessAddress::parse`] and [`BusinessAddress::rcs_agent`].
    pub fn from_key(key: &str) -> Result<Self, AddressError> {
        match key.strip_prefix("rcs:") {
            Some(agent) => Self::rcs_agent(agent),
            None => Self::parse(key),
        }
    }

    /// The number as carriers want it in an API call: E.164 (`+1555…`), the short code, or the
    /// agent id.
    #[must_use]
    pub fn as_sender(&self) -> &str {
        match self {
            Self::Number(n) => n.as_str(),
            Self::ShortCode(s) | Self::RcsAgent(s) => s,
        }
    }

    /// The number without `+` (Vonage, Plivo, Sinch); short codes and agents as they are.
    #[must_use]
    pub fn digits(&self) -> &str {
        match self {
            Self::Number(n) => n.digits(),
            Self::ShortCode(s) | Self::RcsAgent(s) => s,
        }
    }

    /// The phone number, if this is one.
    #[must_use]
    pub fn as_e164(&self) -> Option<&E164> {
        match self {
            Self::Number(n) => Some(n),
            _ => None,
        }
    }
}

impl fmt::Debug for BusinessAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BusinessAddress({})", self.key())
    }
}

impl fmt::Display for BusinessAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
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

    #[test]
    fn msisdn_and_business_addresses() {
        let n = E164::parse_msisdn("15551234567").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n.as_str(), "+15551234567");
        assert_eq!(n.digits(), "15551234567");
        assert!(E164::parse_msisdn("+15551234567").is_ok());
        for (text, key) in [("+15550001111", "+15550001111"), ("12345", "12345")] {
            let address = BusinessAddress::parse(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(address.key(), key);
            assert_eq!(BusinessAddress::from_key(key), Ok(address));
        }
        assert_eq!(
            BusinessAddress::parse_carrier("15550001111").map(|a| a.key()),
            Ok("+15550001111".to_owned())
        );
        assert_eq!(
            BusinessAddress::parse_carrier("55555").map(|a| a.key()),
            Ok("55555".to_owned())
        );
        let agent = BusinessAddress::rcs_agent("acme-agent").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(agent.key(), "rcs:acme-agent");
        assert_eq!(BusinessAddress::from_key("rcs:acme-agent"), Ok(agent));
        assert!(BusinessAddress::parse("5550001111").is_err());
        assert!(BusinessAddress::parse("12").is_err());
        assert!(BusinessAddress::rcs_agent("a b").is_err());
    }
}
