//! Messaging compliance: what may be sent to whom, and when.
//!
//! - [`consent`]: the consent ledger (append-only events; the current state derived from them).
//! - [`limits`]: rate limits (webhooks per source address, API calls per token, inbound floods,
//!   HELP replies).

pub mod consent;
pub mod limits;
