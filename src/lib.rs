//! Drawbridge: a two-way SMS/RCS texting bridge for regulated businesses.
//!
//! Carriers deliver customers' texts by webhook. Drawbridge verifies the carrier's signature,
//! removes card numbers and personal data, seals what is left under the contact's own data key and
//! stores only ciphertext. Nothing in plaintext — body, phone number, matched value — reaches the
//! database, a log line, a metric label or an error response.
//!
//! # Layout
//!
//! - [`audit`]: the append-only, hash-chained audit trail and `audit verify`.
//! - [`config`]: typed settings, defaults < `drawbridge.toml` < `DRAWBRIDGE_*` environment.
//! - [`startup`]: builds the actix application from settings; binds before serving (port 0 in tests).
//! - [`carriers`]: one module per carrier — authenticity, payloads, send and lookup calls — and the
//!   carrier profiles (`carriers/<name>.toml`).
//! - [`pipeline`]: the carrier-agnostic inbound flow: normalize → dedupe → redact → seal → store.
//! - [`outbox`]: the durable send queue and its worker.
//! - [`compliance`]: consent ledger, keywords, revocation, quiet hours, outbound DLP, rate limits.
//! - [`clock`]: the clock everything time-of-day dependent reads (adjustable in tests).
//! - [`redact`]: finds and replaces sensitive values in message text.
//! - [`rules`]: the compliance workspace over the rules: drafts, approval, published versions,
//!   rollback, hot reload, hit counts, test panel, dry run.
//! - [`vault`]: master key, per-contact data keys, AES-256-GCM sealing, blind indexes.
//! - [`keys`]: master key versions, `keys status` and the resumable `keys rotate`.
//! - [`store`]: the database (SQLite or PostgreSQL through sqlx's `Any` driver) and its queries.
//! - [`web`]: HTTP routes — carrier webhooks (`/webhooks/{carrier}`) and operations endpoints.
//! - [`metrics`]: Prometheus counters; labels are bounded enumerations, never data.
//! - [`phone`]: the E.164 phone number newtype, which never prints itself in full.
//! - [`telemetry`]: tracing subscriber set-up.
//! - [`simulate`]: `simulate inbound`/`status` (signed webhooks from the command line) and
//!   `simulate carrier` (a fake of every carrier's API).
//! - [`retention`]: legal holds and the retention job (per-class periods, `retention run`).
//! - [`subject`]: data subject requests: export and erasure (crypto-shredding) of a contact.
//! - [`cli`]: the `redact`, `rules` and `webhook verify` commands.

pub mod accounts;
pub mod audit;
pub mod carriers;
pub mod cli;
pub mod clock;
pub mod compliance;
pub mod config;
pub mod escalation;
pub mod inbox;
pub mod keys;
pub mod metrics;
pub mod outbox;
pub mod phone;
pub mod pipeline;
pub mod redact;
pub mod retention;
pub mod rules;
pub mod simulate;
pub mod startup;
pub mod store;
pub mod subject;
pub mod telemetry;
pub mod vault;
pub mod web;
