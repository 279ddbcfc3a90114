//! Black-box tests through HTTP: the real application on port 0, a fresh database per test, on
//! SQLite and (with `DRAWBRIDGE_TEST_POSTGRES_URL`) PostgreSQL.

mod helpers;
mod ops;
mod twilio_webhook;
