//! Black-box tests through HTTP: the real application on port 0, a fresh database per test, on
//! SQLite and (with `DRAWBRIDGE_TEST_POSTGRES_URL`) PostgreSQL.

// Tests fail by panicking: unwrapping is how a test says "this must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod audit_reports;
mod authorization;
mod browser;
mod carrier_quirks;
mod compliance;
mod conformance;
mod console_api;
mod console_auth;
mod console_inbox;
mod helpers;
mod keys;
mod ops;
mod outbox;
mod outbox_faults;
mod processes;
mod retention;
mod rules;
mod secure_link;
mod twilio_webhook;
