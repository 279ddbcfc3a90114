//! Messaging compliance: what may be sent to whom, and when.
//!
//! - [`consent`]: the consent ledger (append-only events; the current state derived from them).
//! - [`keywords`]: STOP/START/HELP and their localized lists, matched against the whole message.
//! - [`dlp`]: outbound data-loss prevention (card numbers, SSNs, `block_outbound` rules).
//! - [`outbound`]: the gate every business message passes (DLP, consent, quiet hours).
//! - [`limits`]: rate limits (webhooks per source address, API calls per token, inbound floods,
//!   HELP replies).
//! - [`nanp`]: NANP area codes and their time zones (a generated table).
//! - [`quiet`]: quiet hours in the contact's local time, and the reply exemption.
//! - [`reports`]: the compliance reports (redactions, escalations, opt-outs, quiet-hour holds,
//!   DLP refusals) as counts per day or week.
//!
//! Free-text revocations ("please stop texting me") are found by the redaction engine's
//! `opt_out_request` intent (`redaction-rules/revocation.toml`).

pub mod consent;
pub mod dlp;
pub mod keywords;
pub mod limits;
pub mod nanp;
pub mod outbound;
pub mod quiet;
pub mod reports;
