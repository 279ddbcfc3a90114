//! Builds the application from settings: keys, database, state, HTTP server.
//!
//! [`Application::build`] does everything that can fail before serving — loads the master key,
//! connects and migrates the database, checks the key against the database, binds the listener —
//! so `serve` either starts fully or exits with a message. The listener is bound before the
//! server is built, so port 0 works and tests learn the real port from [`Application::port`].

use crate::carriers::client::CarrierClient;
use crate::config::Settings;
use crate::outbox::{self, WorkerHandle};
use crate::store::Db;
use crate::vault::{MasterKeyOrigin, Vault};
use crate::web::{self, request_id, AppState};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web::Data, App, HttpServer};
use anyhow::Context;
use std::net::TcpListener;

/// Seconds the server waits for in-flight requests after SIGINT/SIGTERM before it stops.
const SHUTDOWN_GRACE_SECS: u64 = 30;

/// A built, bound application, ready to run.
pub struct Application {
    server: Server,
    port: u16,
    public_url: String,
    state: Data<AppState>,
    master_key_origin: MasterKeyOrigin,
    worker: Option<WorkerHandle>,
    /// The retention job (`[retention] enabled`).
    retention: Option<crate::retention::RetentionHandle>,
    /// Prunes the rate limiters' idle keys.
    pruner: tokio::task::JoinHandle<()>,
    /// The console's live-update feed.
    live: tokio::task::JoinHandle<()>,
    /// Installs newly published rule sets and writes rule hit counts.
    rules_watcher: tokio::task::JoinHandle<()>,
    /// Takes up blind-index key generations a re-index adds (`crate::keys::index::watch`).
    index_watcher: tokio::task::JoinHandle<()>,
    /// Held while this process runs the outbox worker on a SQLite database.
    _outbox_lock: Option<std::fs::File>,
    /// The first admin created at this start (no users existed), with its one-time password.
    first_admin: Option<(String, secrecy::SecretString)>,
}

/// How the HTTP server runs; `serve` uses the defaults, tests turn signal handling off and run
/// fewer workers.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Stop gracefully on SIGINT/SIGTERM.
    pub handle_signals: bool,
    /// Worker threads; `None` is one per core.
    pub workers: Option<usize>,
    /// The clock (tests pass an adjustable one).
    pub clock: crate::clock::Clock,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            handle_signals: true,
            workers: None,
            clock: crate::clock::Clock::system(),
        }
    }
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Loads keys, connects and migrates the database, checks the master key against it and binds.
    ///
    /// # Errors
    /// A message saying which step failed.
    pub async fn build(settings: &Settings, options: ServerOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create data_dir {}", settings.data_dir.display()))?;
        let (redactor, rules) = crate::rules::shipped(settings)?;
        crate::carriers::profile::check_all()?;
        crate::escalation::check_templates(&settings.escalation, &redactor.current())?;

        let db = Db::connect_lazy(&settings.database_url())?;
        db.migrate().await?;
        let (vault, master_key_origin) =
            crate::keys::open_vault(settings, &db, crate::audit::Actor::System).await?;
        // The rule set published in the rule editor, if any, replaces the shipped one.
        crate::rules::sync(&db, &redactor)
            .await
            .context("loading the published redaction rules")?;
        crate::escalation::check_templates(&settings.escalation, &redactor.current())
            .context("with the published redaction rules")?;
        record_configuration(&db, &vault, settings).await?;
        let first_admin = web::console::auth::bootstrap_first_admin(&db, &vault, settings).await?;

        // One outbox worker per SQLite database: a second would take over the first's claims.
        let outbox_lock = if settings.outbox.enabled {
            db.sqlite_worker_lock()?
        } else {
            None
        };

        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        let public_url = settings.public_url_for(bound);
        let client = CarrierClient::new(settings.outbox.request_timeout)
            .context("building the HTTP client for carriers")?;
        let state = Data::new(AppState::new(
            settings,
            db,
            vault,
            (redactor, rules),
            &public_url,
            client,
            options.clock.clone(),
        ));

        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            let headers = web::SECURITY_HEADERS.iter().fold(
                actix_web::middleware::DefaultHeaders::new(),
                |headers, (name, value)| headers.add((*name, *value)),
            );
            App::new()
                .wrap(headers)
                .wrap(from_fn(request_id::middleware))
                .app_data(app_state.clone())
                .configure(web::configure)
        })
        .shutdown_timeout(SHUTDOWN_GRACE_SECS);
        if !options.handle_signals {
            server = server.disable_signals();
        }
        if let Some(workers) = options.workers {
            server = server.workers(workers);
        }
        let server = server
            .listen(listener)
            .context("starting the HTTP server")?
            .run();
        let worker = settings
            .outbox
            .enabled
            .then(|| outbox::worker::spawn(state.clone(), settings));
        let retention = settings
            .retention
            .enabled
            .then(|| crate::retention::spawn(state.clone(), settings.retention.clone()));
        // Forgets rate-limit keys that have fully recovered, so the maps hold only active keys.
        let pruner = {
            let limits = std::sync::Arc::clone(&state.limits);
            let escalation = std::sync::Arc::clone(&state.escalation);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    limits.prune();
                    escalation.prune();
                }
            })
        };
        let rules_watcher = tokio::spawn(crate::rules::watch(state.clone()));
        let index_watcher = tokio::spawn(crate::keys::index::watch(state.clone()));
        let live = tokio::spawn(state.live.clone().run(
            state.db.clone(),
            state.clock.clone(),
            settings.console.live_poll,
        ));
        Ok(Self {
            server,
            port: bound.port(),
            public_url,
            state,
            master_key_origin,
            worker,
            retention,
            pruner,
            live,
            rules_watcher,
            index_watcher,
            _outbox_lock: outbox_lock,
            first_admin,
        })
    }

    /// The port the server is bound to.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The public base URL webhook signatures are checked against.
    #[must_use]
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Where the master key came from.
    #[must_use]
    pub fn master_key_origin(&self) -> &MasterKeyOrigin {
        &self.master_key_origin
    }

    /// The first admin this start created (when the database had no users) and its one-time
    /// password, which must be changed at first sign-in: shown once, never logged.
    #[must_use]
    pub fn first_admin(&self) -> Option<(&str, &secrecy::SecretString)> {
        self.first_admin
            .as_ref()
            .map(|(email, password)| (email.as_str(), password))
    }

    /// The shared state (tests use its database handle).
    #[must_use]
    pub fn state(&self) -> Data<AppState> {
        self.state.clone()
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM, when signals are handled): stops
    /// accepting, lets in-flight requests finish, stops the outbox worker (it finishes the calls
    /// it is making and releases the rows it has not started), then closes the database pool.
    ///
    /// # Errors
    /// The server's I/O error.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.pruner.abort();
        self.live.abort();
        self.rules_watcher.abort();
        self.index_watcher.abort();
        if let Some(worker) = self.worker {
            worker.stop().await;
        }
        if let Err(error) = self.state.rules.hits.flush(&self.state.db).await {
            tracing::warn!(%error, "rule hit counts of the last seconds were not written");
        }
        if let Some(retention) = self.retention {
            retention.stop().await;
        }
        self.state.db.close().await;
        result
    }
}

/// The configuration's sections, each fingerprinted for the audit trail.
fn configuration_sections(settings: &Settings) -> Vec<(&'static str, String)> {
    // Debug output of the settings shows no secret (they are `SecretString`s), so the accounts'
    // credentials are appended in full: the fingerprint is an HMAC under the audit key, which
    // reveals nothing about them but changes when one is rotated.
    let accounts: String = settings
        .accounts
        .iter()
        .map(|a| format!("{:?}\u{0}{}", a, a.carrier.secrets().join("\u{0}")))
        .collect::<Vec<_>>()
        .join("\u{1}");
    vec![
        (
            "service",
            format!(
                "{:?} {:?} {:?} {:?}",
                settings.mode, settings.public_url, settings.listen, settings.rules_dir
            ),
        ),
        ("accounts", accounts),
        ("numbers", format!("{:?}", settings.numbers)),
        ("outbox", format!("{:?}", settings.outbox)),
        ("limits", format!("{:?}", settings.limits)),
        ("compliance", format!("{:?}", settings.compliance)),
        ("console", format!("{:?}", settings.console)),
        ("rules", format!("{:?}", settings.rules)),
        ("retention", format!("{:?}", settings.retention)),
    ]
}

/// A fingerprint written in letters only (the audit trail refuses digit runs in details).
fn fingerprint(vault: &Vault, section: &str, text: &str) -> String {
    let tag = vault
        .audit_key()
        .mac(format!("config/{section}\u{0}{text}").as_bytes());
    tag.iter()
        .take(10)
        .flat_map(|b| [b >> 4, b & 0x0f])
        .map(|nibble| char::from(b'a' + nibble))
        .collect()
}

/// Writes a `config.change` audit event when the configuration differs from the one the last
/// start recorded (or none was recorded): which sections changed, and a keyed fingerprint of
/// each, so an auditor can tell when settings or credentials changed without the trail holding
/// any of them.
async fn record_configuration(db: &Db, vault: &Vault, settings: &Settings) -> anyhow::Result<()> {
    let current: Vec<(&str, String)> = configuration_sections(settings)
        .into_iter()
        .map(|(name, text)| (name, fingerprint(vault, name, &text)))
        .collect();
    let mut tx = db
        .pool()
        .begin()
        .await
        .context("recording the configuration")?;
    let last: Option<String> = sqlx::query(
        "SELECT details FROM audit_event WHERE action = 'config.change' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await
    .context("reading the last recorded configuration")?
    .map(|row| sqlx::Row::try_get(&row, 0))
    .transpose()?;
    let previous: serde_json::Value = last
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let changed: Vec<&str> = current
        .iter()
        .filter(|(name, print)| {
            previous.get(*name).and_then(serde_json::Value::as_str) != Some(print)
        })
        .map(|(name, _)| *name)
        .collect();
    if changed.is_empty() {
        tx.rollback().await.ok();
        return Ok(());
    }
    let mut event = crate::audit::Event::new(crate::audit::Actor::System, "config.change")
        .detail("changed", changed.clone());
    for (name, print) in &current {
        event = event.detail(name, print.as_str());
    }
    crate::audit::append(&mut tx, vault.audit_key(), &event, &crate::store::now())
        .await
        .map_err(|e| anyhow::anyhow!("recording the configuration in the audit trail: {e}"))?;
    tx.commit().await.context("recording the configuration")?;
    tracing::info!(sections = ?changed, "configuration change recorded in the audit trail");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_configurations_have_equal_fingerprints() {
        // Two loads of one file: anything printed from a HashMap would differ between them,
        // and every restart would then record a configuration change that did not happen.
        let text = include_str!("../drawbridge.example.toml");
        let load = || Settings::from_toml(text).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            configuration_sections(&load()),
            configuration_sections(&load())
        );
    }
}
