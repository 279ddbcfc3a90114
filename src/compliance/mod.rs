//! Messaging compliance: what may be sent to whom, and when.
//!
//! - [`consent`]: the consent ledger (append-only events; the current state derived from them).
//! - [`dlp`]: outbound data-loss prevention (card numbers, SSNs, `block_outbound` rules).
//! - [`limits`]: rate limits (webhooks per source address, API calls per token, inbound floods,
//!   HELP replies).
//! - [`nanp`]: NANP area codes and their time zones (a generated table).
//! - [`quiet`]: quiet hours in the contact's local time, and the reply exemption.

pub mod consent;
pub mod dlp;
pub mod limits;
pub mod nanp;
pub mod outbound;
pub mod quiet;
