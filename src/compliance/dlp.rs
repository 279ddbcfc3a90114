//! Outbound data-loss prevention: what an agent (or a canned reply) may not send by text.
//!
//! A reply is run through the redaction engine in the outbound direction. It is refused — not
//! altered, not queued — when it holds a card number or an SSN (PCI DSS 4.2.2: a PAN must not go
//! over end-user messaging; an SSN is its equal for identity theft), or anything a rule marks
//! `block_outbound`. The refusal names the types found, never the values, and points the agent to
//! the secure link. A reply is never silently redacted: the agent must know what the customer
//! will read.

use crate::redact::{Direction, Engine, EntityType};
use std::collections::BTreeSet;

/// The types that can never go out by text, whatever the rules say.
pub const ALWAYS_BLOCKED: [EntityType; 2] = [EntityType::CardNumber, EntityType::UsSsn];

/// Why a reply may not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The types found (`CARD_NUMBER`, `US_SSN` …); a rule that blocks without a type adds
    /// `BLOCKED_CONTENT`.
    pub types: BTreeSet<&'static str>,
}

impl Refusal {
    /// What the agent is told.
    #[must_use]
    pub fn message(&self) -> String {
        let types: Vec<&str> = self.types.iter().copied().collect();
        format!(
            "the reply contains {} and cannot be sent by text; send the customer a secure link instead",
            types.join(", ")
        )
    }
}

/// Checks a reply before it is queued.
///
/// # Errors
/// [`Refusal`] naming the types that may not go out.
pub fn check(engine: &Engine, text: &str) -> Result<(), Refusal> {
    let redaction = engine.redact(text, Direction::Outbound);
    let mut types: BTreeSet<&'static str> = redaction
        .findings
        .iter()
        .filter(|f| ALWAYS_BLOCKED.contains(&f.entity))
        .map(|f| f.entity.as_str())
        .collect();
    if redaction.block_outbound && types.is_empty() {
        // A block_outbound rule matched: name its types where it has them.
        types.extend(redaction.findings.iter().map(|f| f.entity.as_str()));
        if types.is_empty() {
            types.insert("BLOCKED_CONTENT");
        }
    }
    if types.is_empty() {
        Ok(())
    } else {
        Err(Refusal { types })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        crate::redact::load_engine(None).unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[test]
    fn cards_and_ssns_are_refused_with_their_types() {
        let engine = engine();
        let refusal = check(&engine, "Your card 4539 1488 0343 6467 is active again")
            .err()
            .unwrap_or_else(|| panic!("a card number must be refused"));
        assert_eq!(refusal.types, BTreeSet::from(["CARD_NUMBER"]));
        assert!(refusal.message().contains("secure link"));
        assert!(!refusal.message().contains("4539"));
        let refusal = check(&engine, "we have your SSN as 219-09-9999")
            .err()
            .unwrap_or_else(|| panic!("an SSN must be refused"));
        assert_eq!(refusal.types, BTreeSet::from(["US_SSN"]));
    }

    #[test]
    fn ordinary_replies_pass_unchanged() {
        let engine = engine();
        for text in [
            "Your appointment is confirmed for Tuesday at 3pm.",
            "Your order 4111 shipped; tracking 1Z999AA10123456784",
            "Call us at 800-555-0100 or email help@example.com",
        ] {
            assert_eq!(check(&engine, text), Ok(()), "{text}");
        }
    }
}
