//! Carriers: one module per carrier, each verifying that carrier's webhook signatures exactly as
//! the carrier specifies and turning its payloads into the carrier-agnostic types of
//! [`crate::pipeline`]. Twilio is the first; the others follow the same shape.

pub mod form;
pub mod twilio;
