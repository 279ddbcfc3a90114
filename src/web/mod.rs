//! HTTP routes: carrier webhooks and operations endpoints, plus the shared state and error type.
//!
//! | route | what |
//! |---|---|
//! | `POST /webhooks/{carrier}` | inbound messages (and, for carriers with one callback URL, everything else) |
//! | `POST /webhooks/{carrier}/status` | delivery status callbacks |
//! | `GET` on both | for carriers that can be configured to use GET (Twilio, Plivo, Vonage SMS) |
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | the database answers and the keys are loaded |
//! | `GET /metrics` | Prometheus counters (OpenMetrics text) |
//! | `/api/v1/…` | the JSON API ([`api`]) |
//! | `/login`, `/console/…`, `/account/…`, `/static/…` | the staff console ([`console`]) |
//!
//! Every response carries [`SECURITY_HEADERS`]: a strict Content-Security-Policy (nothing but this
//! origin's own scripts, styles and images; no framing, no inline script), `nosniff`, no referrer.

pub mod api;
pub mod console;
pub mod error;
pub mod ops;
pub mod request_id;
pub mod secure;
pub mod webhooks;

use crate::carriers::client::CarrierClient;
use crate::config::{Account, Settings};
use crate::metrics::Metrics;
use crate::outbox::OutboxHandle;
use crate::phone::BusinessAddress;
use crate::redact::Redactor;
use crate::store::Db;
use crate::vault::Vault;
use actix_web::web;
use std::collections::HashMap;
use std::sync::Arc;

/// Largest webhook body accepted. Twilio's largest (a 1,600-character body with ten media
/// references and geo fields) is a few KiB; a Bandwidth array of group-message events or an RBM
/// event with a file stays well under this.
pub const MAX_WEBHOOK_BODY: usize = 64 * 1024;

/// Headers every response carries (added unless a handler set its own).
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// Everything a handler needs, shared by all workers.
#[derive(Debug)]
pub struct AppState {
    pub db: Db,
    pub vault: Vault,
    pub metrics: Metrics,
    /// The redaction engine in use; rule changes swap it atomically.
    pub redactor: Redactor,
    /// The base URL carriers call, without a trailing slash; webhook signatures are checked
    /// against it plus the request's path and raw query.
    pub public_url: String,
    /// Business numbers (and short codes, and RCS agents) and the accounts that own them.
    pub numbers: HashMap<BusinessAddress, Arc<Account>>,
    /// All accounts, for status callbacks that name an account rather than a number.
    pub accounts: Vec<Arc<Account>>,
    /// The HTTP client for carriers' APIs.
    pub client: CarrierClient,
    /// Wakes the local outbox worker after a message is queued.
    pub outbox: OutboxHandle,
    /// Rate limits (webhooks per IP, API per token, inbound floods, HELP replies).
    pub limits: std::sync::Arc<crate::compliance::limits::Limits>,
    /// The clock everything that depends on the time of day reads.
    pub clock: crate::clock::Clock,
    /// Messaging compliance settings (consent scope, confirmations, quiet hours).
    pub compliance: crate::config::ComplianceSettings,
    /// The staff console's settings (sessions, sign-in limits, single sign-on).
    pub console: crate::config::ConsoleSettings,
    /// Live updates for the console's event streams.
    pub live: crate::inbox::live::Live,
    /// Console sign-in: rate limits and the single-sign-on provider, once discovered.
    pub sign_in: std::sync::Arc<crate::web::console::auth::SignIn>,
    /// Secure links: settings and the per-link code limiter.
    pub escalation: std::sync::Arc<crate::escalation::Escalation>,
    /// The rule editor: settings, the shipped rule set (version 0), hit counts.
    pub rules: std::sync::Arc<crate::rules::RulesRuntime>,
}

impl AppState {
    /// Builds the state from settings and the already-connected parts (`rules`: the redactor and
    /// the rule workspace, from [`crate::rules::shipped`]).
    #[must_use]
    pub fn new(
        settings: &Settings,
        db: Db,
        vault: Vault,
        (redactor, rules): (Redactor, crate::rules::RulesRuntime),
        public_url: &str,
        client: CarrierClient,
        clock: crate::clock::Clock,
    ) -> Self {
        let accounts: Vec<Arc<Account>> = settings.accounts.iter().cloned().map(Arc::new).collect();
        let numbers = settings.senders();
        Self {
            db,
            vault,
            metrics: Metrics::new(),
            redactor,
            public_url: public_url.trim_end_matches('/').to_owned(),
            numbers,
            accounts,
            client,
            outbox: OutboxHandle::default(),
            limits: std::sync::Arc::new(crate::compliance::limits::Limits::new(
                settings.limits.clone(),
            )),
            clock,
            compliance: settings.compliance.clone(),
            console: settings.console.clone(),
            live: crate::inbox::live::Live::default(),
            sign_in: std::sync::Arc::new(crate::web::console::auth::SignIn::new(&settings.console)),
            escalation: std::sync::Arc::new(crate::escalation::Escalation::new(
                settings.escalation.clone(),
            )),
            rules: std::sync::Arc::new(rules),
        }
    }
}

impl AppState {
    /// The state without a server: for benchmarks, tools and tests that drive the pipeline or the
    /// outbox directly. The redaction rules come from `rules_dir` (or the built-in packs), the
    /// clock is the system's.
    ///
    /// # Errors
    /// When the rules do not load or the HTTP client cannot be built.
    pub fn standalone(settings: &Settings, db: Db, vault: Vault) -> anyhow::Result<Self> {
        let rules = crate::rules::shipped(settings)?;
        let client = CarrierClient::new(settings.outbox.request_timeout)?;
        Ok(Self::new(
            settings,
            db,
            vault,
            rules,
            &settings.public_url_for(settings.listen),
            client,
            crate::clock::Clock::system(),
        ))
    }
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(webhooks::configure)
        .configure(api::configure)
        .configure(console::configure)
        .configure(secure::configure)
        .configure(ops::configure);
}
