//! Messaging compliance: consent keywords, the consent ledger, quiet hours and outbound checks.

pub mod keywords;
