//! The test harness: spawns the real application on port 0 against a fresh database — a SQLite file
//! in a temporary directory, or a uniquely named PostgreSQL database created from
//! `DRAWBRIDGE_TEST_POSTGRES_URL` and dropped afterwards — and talks to it over HTTP.
//!
//! Without `DRAWBRIDGE_TEST_POSTGRES_URL` the PostgreSQL variant of each test prints a notice and
//! passes without running; with it set, an unreachable server fails the test.

#![allow(dead_code)]

use drawbridge::carriers::twilio::signature;
use drawbridge::carriers::{twilio, CarrierAccount};
use drawbridge::config::{Account, MasterKeySource, Number, OutboxSettings, SenderKind, Settings};
use drawbridge::phone::BusinessAddress;
use drawbridge::startup::{Application, ServerOptions};
use drawbridge::web::AppState;
use secrecy::SecretString;
use sqlx::{Connection, Executor, PgConnection, Row};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "test-auth-token-0123456789";
pub const BUSINESS_NUMBER: &str = "+15550001111";
pub const SECOND_ACCOUNT_SID: &str = "ACfedcba9876543210fedcba9876543210";
pub const SECOND_AUTH_TOKEN: &str = "second-account-token";
pub const SECOND_BUSINESS_NUMBER: &str = "+15550002222";
pub const CUSTOMER: &str = "+15551234567";

/// Which database a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The server URL from `DRAWBRIDGE_TEST_POSTGRES_URL`.
    Postgres(String),
}

/// The PostgreSQL backend when configured; otherwise prints a notice and returns `None`.
pub fn postgres() -> Option<Backend> {
    match std::env::var("DRAWBRIDGE_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(Backend::Postgres(url)),
        _ => {
            static NOTICE: OnceLock<()> = OnceLock::new();
            NOTICE.get_or_init(|| {
                eprintln!(
                    "notice: DRAWBRIDGE_TEST_POSTGRES_URL is not set; PostgreSQL tests are skipped"
                )
            });
            None
        }
    }
}

/// Runs each named `async fn(Backend)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(backend) = $crate::helpers::postgres() {
                    super::$name(backend).await;
                }
            }
        }
    )*};
}

/// Everything the process logged, at the most verbose level, for scanning.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = CaptureWriter(Arc::clone(&buffer));
        // Everything the service's own stack logs, at trace. The HTTP client crates only the test
        // side uses are kept at warn: they log the test's own outgoing requests.
        let filter = tracing_subscriber::EnvFilter::new(
            "trace,hyper=warn,hyper_util=warn,reqwest=warn,h2=warn,rustls=warn",
        );
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    })
}

#[derive(Clone)]
struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A PostgreSQL database made for one test; dropped (connections and all) when this is dropped.
pub struct PgDatabase {
    pub server_url: String,
    pub name: String,
}

impl PgDatabase {
    pub async fn create(server_url: &str) -> Self {
        let name = format!("drawbridge_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(server_url).await.unwrap_or_else(|e| {
            panic!("DRAWBRIDGE_TEST_POSTGRES_URL is set but the server is unreachable: {e}")
        });
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .unwrap();
        conn.close().await.ok();
        Self {
            server_url: server_url.to_owned(),
            name,
        }
    }

    pub fn url(&self) -> String {
        let mut url = url::Url::parse(&self.server_url).unwrap();
        url.set_path(&format!("/{}", self.name));
        url.to_string()
    }

    /// Drops the database now, cutting off every connection to it.
    pub async fn drop_now(server_url: &str, name: &str) {
        if let Ok(mut conn) = PgConnection::connect(server_url).await {
            let _ = conn
                .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                .await;
            conn.close().await.ok();
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime; a separate thread with its own runtime can block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(PgDatabase::drop_now(&server_url, &name));
        })
        .join();
    }
}

/// Options for [`TestApp::spawn_with`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub public_url: Option<String>,
    pub master_key: Option<[u8; 32]>,
    /// The version of `master_key` (default 1).
    pub master_key_version: Option<u32>,
    /// The previous master key (version `master_key_version - 1`), during a rotation.
    pub previous_master_key: Option<[u8; 32]>,
    /// Reuse another app's data directory and database (restart scenarios).
    pub reuse: Option<(std::path::PathBuf, String)>,
    /// Point every account's `api_base` here (the fake carrier).
    pub api_base: Option<String>,
    /// Messages per second per sender (default: 50, so tests do not wait on throughput).
    pub throughput: Option<f64>,
    /// Outbox settings (default: [`fast_outbox`]).
    pub outbox: Option<OutboxSettings>,
    /// `[[accounts]]` and `[[numbers]]` as TOML, replacing the two Twilio test accounts;
    /// `{api_base}` in it becomes [`Options::api_base`].
    pub accounts_toml: Option<String>,
    /// The service's clock (default: the system clock).
    pub clock: Option<drawbridge::clock::Clock>,
    /// Compliance settings (default: the defaults).
    pub compliance: Option<drawbridge::config::ComplianceSettings>,
    /// Rate limits (default: the defaults).
    pub limits: Option<drawbridge::compliance::limits::LimitSettings>,
    /// Console settings: sessions, sign-in limits, single sign-on (default: the defaults).
    pub console: Option<drawbridge::config::ConsoleSettings>,
    /// Secure-link settings (default: the defaults).
    pub escalation: Option<drawbridge::escalation::EscalationSettings>,
    /// Rule editor settings (default: the defaults: two-person rule on, 1 s poll).
    pub rules: Option<drawbridge::rules::RuleSettings>,
    /// Retention settings (default: the defaults: the job runs hourly).
    pub retention: Option<drawbridge::config::RetentionSettings>,
}

/// Outbox settings without a worker: messages stay queued (tests that inspect the queue itself).
pub fn no_worker() -> OutboxSettings {
    OutboxSettings {
        enabled: false,
        ..fast_outbox()
    }
}

/// Outbox settings for tests: quick polls, short leases and backoffs, lookups at once.
pub fn fast_outbox() -> OutboxSettings {
    use std::time::Duration;
    OutboxSettings {
        enabled: true,
        poll_interval: Duration::from_millis(50),
        lease: Duration::from_secs(5),
        max_attempts: 5,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        instances: 1,
        request_timeout: Duration::from_secs(2),
        batch: 100,
        lookup_delay: Duration::ZERO,
    }
}

pub struct TestApp {
    /// `http://127.0.0.1:<port>`: where requests are sent.
    pub address: String,
    /// The configured public URL (what signatures cover).
    pub public_url: String,
    pub state: actix_web::web::Data<AppState>,
    pub backend: Backend,
    pub database_url: String,
    pub data_dir: std::path::PathBuf,
    pub client: reqwest::Client,
    _temp: Option<tempfile::TempDir>,
    pub pg: Option<PgDatabase>,
}

pub fn settings_for(
    data_dir: &std::path::Path,
    database_url: &str,
    public_url: Option<&str>,
    master_key: [u8; 32],
) -> Settings {
    settings_with(
        data_dir,
        database_url,
        public_url,
        master_key,
        &Options::default(),
    )
}

pub fn settings_with(
    data_dir: &std::path::Path,
    database_url: &str,
    public_url: Option<&str>,
    master_key: [u8; 32],
    options: &Options,
) -> Settings {
    use base64::Engine;
    let api_base = options
        .api_base
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:9".to_owned());
    let account = |name: &str, sid: &str, token: &str| Account {
        name: name.to_owned(),
        carrier: CarrierAccount::Twilio(twilio::Account {
            account_sid: sid.to_owned(),
            auth_token: SecretString::from(token.to_owned()),
            messaging_service_sid: None,
            api_base: url::Url::parse(&api_base).unwrap(),
        }),
    };
    let number = |n: &str, account: &str| {
        let address = BusinessAddress::parse(n).unwrap();
        Number {
            kind: SenderKind::default_for(&address),
            address,
            account: account.to_owned(),
            throughput: Some(options.throughput.unwrap_or(50.0)),
        }
    };
    let (accounts, numbers) = match &options.accounts_toml {
        Some(text) => {
            let parsed = Settings::from_toml(&text.replace("{api_base}", &api_base))
                .unwrap_or_else(|e| panic!("test accounts: {e:#}"));
            (parsed.accounts, parsed.numbers)
        }
        None => (
            vec![
                account("main", ACCOUNT_SID, AUTH_TOKEN),
                account("second", SECOND_ACCOUNT_SID, SECOND_AUTH_TOKEN),
            ],
            vec![
                number(BUSINESS_NUMBER, "main"),
                number(SECOND_BUSINESS_NUMBER, "second"),
            ],
        ),
    };
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        public_url: public_url.map(str::to_owned),
        data_dir: data_dir.to_path_buf(),
        database_url: Some(SecretString::from(database_url.to_owned())),
        master_key: MasterKeySource::Inline(SecretString::from(
            base64::engine::general_purpose::STANDARD.encode(master_key),
        )),
        accounts,
        numbers,
        outbox: options.outbox.clone().unwrap_or_else(fast_outbox),
        compliance: options.compliance.clone().unwrap_or_default(),
        limits: options.limits.clone().unwrap_or_default(),
        console: options.console.clone().unwrap_or_default(),
        escalation: options.escalation.clone().unwrap_or_default(),
        rules: options.rules.clone().unwrap_or_default(),
        retention: options.retention.clone().unwrap_or_default(),
        master_key_version: options.master_key_version.unwrap_or(1),
        previous_master_key: options
            .previous_master_key
            .map_or(MasterKeySource::None, |key| {
                MasterKeySource::Inline(SecretString::from(
                    base64::engine::general_purpose::STANDARD.encode(key),
                ))
            }),
        ..Settings::default()
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, Options::default()).await
    }

    pub async fn try_spawn_with(backend: Backend, options: Options) -> anyhow::Result<Self> {
        log_buffer();
        let (temp, data_dir, pg, database_url) = match (&options.reuse, &backend) {
            (Some((dir, url)), _) => (None, dir.clone(), None, url.clone()),
            (None, Backend::Sqlite) => {
                let temp = tempfile::tempdir().unwrap();
                let dir = temp.path().to_path_buf();
                let url = format!("sqlite://{}?mode=rwc", dir.join("drawbridge.db").display());
                (Some(temp), dir, None, url)
            }
            (None, Backend::Postgres(server)) => {
                let temp = tempfile::tempdir().unwrap();
                let dir = temp.path().to_path_buf();
                let pg = PgDatabase::create(server).await;
                let url = pg.url();
                (Some(temp), dir, Some(pg), url)
            }
        };
        let settings = settings_with(
            &data_dir,
            &database_url,
            options.public_url.as_deref(),
            options.master_key.unwrap_or([42; 32]),
            &options,
        );
        let app = Application::build(
            &settings,
            ServerOptions {
                handle_signals: false,
                workers: Some(2),
                clock: options.clock.clone().unwrap_or_default(),
            },
        )
        .await?;
        let address = format!("http://127.0.0.1:{}", app.port());
        let public_url = app.public_url().to_owned();
        let state = app.state();
        tokio::spawn(app.run_until_stopped());
        Ok(Self {
            address,
            public_url,
            state,
            backend,
            database_url,
            data_dir,
            client: reqwest::Client::new(),
            _temp: temp,
            pg,
        })
    }

    /// A fake carrier (every carrier's API, `drawbridge simulate carrier`) and the service with
    /// every account's `api_base` pointed at it.
    pub async fn with_fake(
        backend: Backend,
        options: Options,
    ) -> (Self, drawbridge::simulate::fake::RunningFake) {
        let fake = drawbridge::simulate::fake::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
        let app = Self::spawn_with(
            backend,
            Options {
                api_base: Some(fake.url()),
                ..options
            },
        )
        .await;
        (app, fake)
    }

    pub async fn spawn_with(backend: Backend, options: Options) -> Self {
        Self::try_spawn_with(backend, options).await.unwrap()
    }

    /// The signature Twilio would send for `path` (with query) under this app's public URL.
    pub fn sign(&self, path_and_query: &str, params: &[(&str, &str)], token: &str) -> String {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        signature::sign(
            &SecretString::from(token.to_owned()),
            &format!("{}{path_and_query}", self.public_url),
            &params,
        )
    }

    /// Posts a form to `path`, with the given `X-Twilio-Signature` (or none).
    pub async fn post_form(
        &self,
        path_and_query: &str,
        params: &[(&str, &str)],
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path_and_query}", self.address))
            .form(params);
        if let Some(signature) = signature {
            request = request.header("X-Twilio-Signature", signature);
        }
        request.send().await.unwrap()
    }

    /// Posts a form correctly signed with the main account's token.
    pub async fn post_signed(
        &self,
        path_and_query: &str,
        params: &[(&str, &str)],
    ) -> reqwest::Response {
        let signature = self.sign(path_and_query, params, AUTH_TOKEN);
        self.post_form(path_and_query, params, Some(&signature))
            .await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    pub async fn count(&self, table: &str) -> i64 {
        let row = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(self.state.db.pool())
            .await
            .unwrap();
        row.try_get::<i64, _>(0).unwrap()
    }

    /// Every byte the database holds for this app. SQLite: the database file and its `-wal` and
    /// `-shm` files, read raw. PostgreSQL: every column of every table in the schema, byte columns
    /// as bytes and the rest cast to text.
    pub async fn stored_bytes(&self) -> Vec<u8> {
        match &self.backend {
            Backend::Sqlite => {
                let mut out = Vec::new();
                for suffix in ["", "-wal", "-shm"] {
                    let path = self.data_dir.join(format!("drawbridge.db{suffix}"));
                    if let Ok(bytes) = std::fs::read(&path) {
                        out.extend_from_slice(&bytes);
                    }
                }
                assert!(!out.is_empty(), "no SQLite files found");
                out
            }
            Backend::Postgres(_) => {
                let mut conn = PgConnection::connect(&self.database_url).await.unwrap();
                let columns = sqlx::query(
                    "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                assert!(columns.len() > 10, "expected the schema's tables");
                let mut out = Vec::new();
                for column in columns {
                    let (table, name, kind): (String, String, String) =
                        (column.get(0), column.get(1), column.get(2));
                    if kind == "bytea" {
                        for row in sqlx::query(&format!(r#"SELECT "{name}" FROM "{table}""#))
                            .fetch_all(&mut conn)
                            .await
                            .unwrap()
                        {
                            out.extend(row.get::<Option<Vec<u8>>, _>(0).unwrap_or_default());
                        }
                    } else {
                        for row in sqlx::query(&format!(r#"SELECT "{name}"::text FROM "{table}""#))
                            .fetch_all(&mut conn)
                            .await
                            .unwrap()
                        {
                            out.extend(
                                row.get::<Option<String>, _>(0)
                                    .unwrap_or_default()
                                    .into_bytes(),
                            );
                            out.push(b'\n');
                        }
                    }
                }
                conn.close().await.ok();
                out
            }
        }
    }
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The customer's number in every common way of writing it.
pub fn phone_forms(e164: &str) -> Vec<String> {
    let national = e164.trim_start_matches("+1");
    let (a, b, c) = (&national[..3], &national[3..6], &national[6..]);
    vec![
        e164.to_owned(),
        e164.trim_start_matches('+').to_owned(),
        national.to_owned(),
        format!("{a}-{b}-{c}"),
        format!("({a}) {b}-{c}"),
        format!("{a}.{b}.{c}"),
        format!("{a} {b} {c}"),
        format!("+1 {a} {b} {c}"),
        format!("+1 ({a}) {b}-{c}"),
        format!("%2B1{national}"),
    ]
}

/// A Twilio inbound form for `body` from [`CUSTOMER`] to [`BUSINESS_NUMBER`].
pub fn inbound_form<'a>(sid: &'a str, body: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", BUSINESS_NUMBER),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", CUSTOMER),
        ("ApiVersion", "2010-04-01"),
    ]
}

/// A random Twilio-shaped message SID.
pub fn new_sid() -> String {
    format!("SM{}", uuid::Uuid::now_v7().simple())
}

impl TestApp {
    /// Posts an inbound message from [`CUSTOMER`] and returns its conversation id.
    /// Inbound messages stored (an escalating one also queues a secure link's message).
    pub async fn inbound_messages(&self) -> i64 {
        sqlx::query("SELECT COUNT(*) FROM message WHERE direction = 'inbound'")
            .fetch_one(self.state.db.pool())
            .await
            .unwrap()
            .get(0)
    }

    pub async fn conversation(&self) -> String {
        let response = self
            .post_signed("/webhooks/twilio", &inbound_form(&new_sid(), "hello"))
            .await;
        assert_eq!(response.status(), 200);
        sqlx::query("SELECT conversation_id FROM conversation ORDER BY created_at LIMIT 1")
            .fetch_one(self.state.db.pool())
            .await
            .unwrap()
            .get(0)
    }

    /// Queues an agent reply in the conversation, commits, and wakes the worker.
    pub async fn queue_reply(
        &self,
        conversation_id: &str,
        body: &str,
    ) -> drawbridge::outbox::Queued {
        let mut tx = self.state.db.pool().begin().await.unwrap();
        let queued = drawbridge::outbox::enqueue(
            &mut tx,
            &self.state.vault,
            &self.state.numbers,
            &drawbridge::outbox::Outbound {
                conversation_id,
                kind: drawbridge::outbox::Kind::Reply,
                body,
                shown: None,
                media_urls: &[],
                suggestions: &[],
                not_before: None,
            },
            self.state.clock.now(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        self.state.outbox.wake();
        queued
    }

    /// The outbox row's state, attempts, carrier id, error class and code.
    pub async fn outbox_row(
        &self,
        outbox_id: &str,
    ) -> (String, i64, Option<String>, Option<String>, Option<String>) {
        let row = sqlx::query(
            "SELECT state, attempts, carrier_message_id, error_class, error_code FROM outbox WHERE outbox_id = $1",
        )
        .bind(outbox_id)
        .fetch_one(self.state.db.pool())
        .await
        .unwrap();
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
    }

    /// Waits (up to `seconds`) for the outbox row to leave pending/in-flight; returns its state.
    pub async fn settled(&self, outbox_id: &str, seconds: u64) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            let (state, ..) = self.outbox_row(outbox_id).await;
            if !matches!(state.as_str(), "pending" | "in_flight") {
                return state;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "outbox row still {state} after {seconds} s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The status and error code of a message.
    pub async fn message_status(&self, message_id: &str) -> (String, Option<String>) {
        let row =
            sqlx::query("SELECT status, status_error_code FROM message WHERE message_id = $1")
                .bind(message_id)
                .fetch_one(self.state.db.pool())
                .await
                .unwrap();
        (row.get(0), row.get(1))
    }
}

/// Waits up to `seconds` for `check` to hold.
pub async fn eventually<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {seconds} s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

impl TestApp {
    /// Creates an API token with `role` and returns it.
    pub async fn token(&self, role: drawbridge::store::tokens::Role) -> String {
        let mut conn = self.state.db.pool().acquire().await.unwrap();
        let (_, token) =
            drawbridge::store::tokens::create(&mut conn, "test", role, &drawbridge::store::now())
                .await
                .unwrap();
        token.to_string()
    }

    /// `POST {path}` with a bearer token and a JSON body.
    pub async fn api_post(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `GET {path}` with a bearer token.
    pub async fn api_get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Posts a signed Twilio inbound message with `body` from `from` to [`BUSINESS_NUMBER`].
    pub async fn text_from(&self, from: &str, body: &str) -> reqwest::Response {
        let sid = new_sid();
        let form: Vec<(&str, &str)> = inbound_form(&sid, body)
            .into_iter()
            .map(|(k, v)| if k == "From" { (k, from) } else { (k, v) })
            .collect();
        self.post_signed("/webhooks/twilio", &form).await
    }

    /// The conversation and contact of `from` with [`BUSINESS_NUMBER`].
    pub async fn conversation_of(&self, from: &str) -> (String, String) {
        let index = self
            .state
            .vault
            .phone_index(&drawbridge::phone::E164::parse(from).unwrap());
        let row = sqlx::query(
            "SELECT v.conversation_id, v.contact_id FROM conversation v JOIN contact c ON c.contact_id = v.contact_id \
             WHERE c.phone_index = $1 AND v.business_number = $2",
        )
        .bind(index.current().to_vec())
        .bind(BUSINESS_NUMBER)
        .fetch_one(self.state.db.pool())
        .await
        .unwrap();
        (row.get(0), row.get(1))
    }
}
