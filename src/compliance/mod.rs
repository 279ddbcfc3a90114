//! Messaging compliance: the rules a message must pass before the business may send it.
//!
//! - [`nanp`]: NANP area codes and their time zones (a generated table).
//! - [`quiet`]: quiet hours in the contact's local time, and the reply exemption.

pub mod nanp;
pub mod quiet;
