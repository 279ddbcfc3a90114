//! Typed settings: defaults < `drawbridge.toml` < `DRAWBRIDGE_*` environment variables.
//!
//! The file is found from `--config FILE` (or `DRAWBRIDGE_CONFIG`); without either,
//! `drawbridge.toml` in the working directory is read if it exists. Every key is documented in
//! `drawbridge.example.toml`. Unknown keys are errors, so a typo fails at start instead of being
//! silently ignored, and every error names the key (or environment variable) at fault. Values of
//! secret keys are never echoed back, not even in a parse error.
//!
//! Credentials are [`SecretString`]s; `Debug` on them prints a placeholder.

use crate::carriers::{Carrier, CarrierAccount};
use crate::phone::BusinessAddress;
use anyhow::{anyhow, bail, Context};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// The configuration file read when none is named.
pub const DEFAULT_CONFIG_FILE: &str = "drawbridge.toml";

/// Development is forgiving (generated keys, a sandbox number); production refuses to start
/// without explicit keys and credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Development,
    Production,
}

/// Log line format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Where the master key comes from.
#[derive(Debug, Clone, Default)]
pub enum MasterKeySource {
    /// Base64 text from `master_key` / `DRAWBRIDGE_MASTER_KEY`.
    Inline(SecretString),
    /// A file holding the base64 text.
    File(PathBuf),
    /// Nothing configured: development generates one, production refuses to start.
    #[default]
    None,
}

/// A carrier account: the credentials that verify that carrier's webhooks to our numbers and
/// authenticate our calls to its API. The carrier-specific fields are documented in
/// `drawbridge.example.toml` and read by each carrier module (`crate::carriers`).
#[derive(Debug, Clone)]
pub struct Account {
    /// The name `[[numbers]]` entries refer to.
    pub name: String,
    pub carrier: CarrierAccount,
}

/// What kind of sender a number is; its carrier's profile gives each kind a default throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    LongCode,
    TollFree,
    ShortCode,
    RcsAgent,
}

impl SenderKind {
    /// The kind a number is unless configured otherwise: short codes and agents are what they
    /// are; NANP numbers with a toll-free area code (800, 833, 844, 855, 866, 877, 888) are
    /// toll-free; anything else is a long code.
    #[must_use]
    pub fn default_for(address: &BusinessAddress) -> Self {
        match address {
            BusinessAddress::ShortCode(_) => Self::ShortCode,
            BusinessAddress::RcsAgent(_) => Self::RcsAgent,
            BusinessAddress::Number(n) => {
                let toll_free = ["800", "833", "844", "855", "866", "877", "888"];
                match n.as_str().strip_prefix("+1").and_then(|rest| rest.get(..3)) {
                    Some(area) if toll_free.contains(&area) => Self::TollFree,
                    _ => Self::LongCode,
                }
            }
        }
    }
}

/// A business number (or short code, or RCS agent) and the account that owns it.
#[derive(Debug, Clone)]
pub struct Number {
    pub address: BusinessAddress,
    pub account: String,
    pub kind: SenderKind,
    /// Messages per second this sender may send, across all instances; `None` takes the carrier
    /// profile's default for the kind.
    pub throughput: Option<f64>,
}

impl Number {
    /// The configured throughput, or the account's carrier's default for this kind of sender.
    #[must_use]
    pub fn messages_per_second(&self, carrier: crate::carriers::Carrier) -> f64 {
        let defaults = carrier.profile().throughput;
        self.throughput.unwrap_or(match self.kind {
            SenderKind::LongCode => defaults.long_code,
            SenderKind::TollFree => defaults.toll_free,
            SenderKind::ShortCode => defaults.short_code,
            SenderKind::RcsAgent => defaults.rcs_agent,
        })
    }
}

/// How the outbox worker behaves (`[outbox]`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxSettings {
    /// Run the worker in this process. Several instances may run it against one PostgreSQL.
    pub enabled: bool,
    /// How often the worker looks for due messages when it has not been woken.
    pub poll_interval: Duration,
    /// How long a claim on a row lasts without renewal; a crashed instance's rows are taken over
    /// after it. The worker renews its claims at a third of it.
    pub lease: Duration,
    /// Attempts before a retryable failure becomes permanent.
    pub max_attempts: u32,
    /// The first retry's delay; each further retry doubles it, up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How many instances share the database: each sends at `throughput / instances` per sender,
    /// so the carrier's limit holds without a shared limiter.
    pub instances: u32,
    /// Longest a call to a carrier may take.
    pub request_timeout: Duration,
    /// Most rows one instance holds claimed at a time.
    pub batch: u32,
    /// An uncertain send is looked up no sooner than this after its attempt began, so the
    /// carrier's listing has caught up.
    pub lookup_delay: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(30),
            max_attempts: 8,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(600),
            instances: 1,
            request_timeout: Duration::from_secs(15),
            batch: 100,
            lookup_delay: Duration::from_secs(10),
        }
    }
}

/// What a free-text revocation ("please stop texting me") does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Revocation {
    /// The opt-out takes effect at once, recorded with the phrase rule that recognised it.
    #[default]
    Immediate,
    /// It is recorded as a request; an agent confirms it (the console shows why).
    AgentConfirms,
}

/// An operator's keyword list for one language (`[[compliance.keywords]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordList {
    pub language: String,
    #[serde(default)]
    pub opt_out: Vec<String>,
    #[serde(default)]
    pub opt_in: Vec<String>,
    #[serde(default)]
    pub help: Vec<String>,
    /// Match accents exactly, for scripts whose marks tell words apart (default: accents are
    /// ignored, as people type `ARRET` for `ARRÊT`).
    #[serde(default)]
    pub exact_accents: bool,
}

/// The shipped localized keyword lists beside English.
pub const SHIPPED_KEYWORD_LANGUAGES: &[&str] = &["es", "fr"];

/// Messaging compliance (`[compliance]`).
#[derive(Debug, Clone)]
pub struct ComplianceSettings {
    /// Named in every confirmation and HELP reply (CTIA).
    pub business_name: String,
    /// How customers reach a person: in the HELP reply (CTIA).
    pub support_contact: String,
    pub opt_out_scope: crate::compliance::consent::Scope,
    pub revocation: Revocation,
    /// Templates; `{business}` and `{support}` are filled in.
    pub opt_out_confirmation: String,
    pub opt_in_confirmation: String,
    pub help_reply: String,
    /// The shipped localized keyword lists in use (`es`, `fr`); English is always on.
    pub keyword_languages: Vec<String>,
    /// The operator's own lists.
    pub keywords: Vec<KeywordList>,
    /// Everything above compiled: English, the chosen shipped languages, the operator's lists.
    pub keyword_set: std::sync::Arc<crate::compliance::keywords::Keywords>,
    pub quiet_window: crate::compliance::quiet::Window,
    /// For contacts with no stored time zone and no NANP area code.
    pub default_time_zone: chrono_tz::Tz,
    /// A reply within this long of the customer's own message is exempt from quiet hours.
    pub reply_window: chrono::TimeDelta,
}

impl Default for ComplianceSettings {
    fn default() -> Self {
        Self {
            business_name: "This service".to_owned(),
            support_contact: "reply to this message".to_owned(),
            opt_out_scope: crate::compliance::consent::Scope::Number,
            revocation: Revocation::Immediate,
            opt_out_confirmation: DEFAULT_OPT_OUT.to_owned(),
            opt_in_confirmation: DEFAULT_OPT_IN.to_owned(),
            help_reply: DEFAULT_HELP.to_owned(),
            keyword_languages: vec!["es".to_owned(), "fr".to_owned()],
            keywords: Vec::new(),
            keyword_set: std::sync::Arc::new(
                compile_keywords(&["es".to_owned(), "fr".to_owned()], &[])
                    .unwrap_or_else(|_| crate::compliance::keywords::Keywords::empty()),
            ),
            quiet_window: crate::compliance::quiet::Window::TCPA,
            default_time_zone: chrono_tz::America::New_York,
            reply_window: crate::compliance::quiet::DEFAULT_REPLY_WINDOW,
        }
    }
}

/// The default opt-out confirmation: says how to opt back in (CTIA).
pub const DEFAULT_OPT_OUT: &str = "{business}: You are unsubscribed and will get no more messages from this number. Reply START to subscribe again.";
/// The default opt-in confirmation.
pub const DEFAULT_OPT_IN: &str = "{business}: You are subscribed again. Reply HELP for help, STOP to unsubscribe. Msg & data rates may apply.";
/// The default HELP reply: the business, the support contact, the rates notice, how to stop.
pub const DEFAULT_HELP: &str =
    "{business}: For help, {support}. Msg & data rates may apply. Reply STOP to unsubscribe.";

/// Compiles English, the chosen shipped languages and the operator's lists into one set.
///
/// # Errors
/// A malformed list, or a word listed under two kinds.
pub fn compile_keywords(
    languages: &[String],
    extra: &[KeywordList],
) -> Result<crate::compliance::keywords::Keywords, crate::compliance::keywords::KeywordError> {
    use crate::compliance::keywords::{shipped_lists, KeywordKind, Keywords};
    let mut lists: Vec<crate::compliance::keywords::KeywordList> = shipped_lists()
        .into_iter()
        .filter(|list| list.name == "en" || languages.contains(&list.name))
        .collect();
    for list in extra {
        for (kind, words) in [
            (KeywordKind::OptOut, &list.opt_out),
            (KeywordKind::OptIn, &list.opt_in),
            (KeywordKind::Help, &list.help),
        ] {
            if !words.is_empty() {
                let compiled = crate::compliance::keywords::KeywordList::new(
                    list.language.clone(),
                    kind,
                    words.iter().cloned(),
                );
                lists.push(if list.exact_accents {
                    compiled.with_exact_accents()
                } else {
                    compiled
                });
            }
        }
    }
    Keywords::new(lists)
}

impl ComplianceSettings {
    /// A template with `{business}` and `{support}` filled in.
    #[must_use]
    pub fn render(&self, template: &str) -> String {
        template
            .replace("{business}", &self.business_name)
            .replace("{support}", &self.support_contact)
    }
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the HTTP server binds. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Base URL carriers call, exactly as configured (validated as an http(s) URL but not
    /// re-encoded, and without a trailing `/`); `None` means `http://<bound address>`. Webhook
    /// signatures are checked against this text plus the request's path and raw query, so it must
    /// be the URL as the carrier was given it. Required in production.
    pub public_url: Option<String>,
    pub data_dir: PathBuf,
    /// `None` means the SQLite file `drawbridge.db` in `data_dir`.
    pub database_url: Option<SecretString>,
    pub master_key: MasterKeySource,
    /// The version of `master_key` (`master_key_version`, default 1). A rotation configures the
    /// new key here with the next version and the old one as `previous_master_key` (see
    /// `crate::keys`).
    pub master_key_version: u32,
    /// The master key of version `master_key_version - 1`, while data is still wrapped under it
    /// (`previous_master_key` / `previous_master_key_file`). In development with none set, the
    /// previous version's key file in the data directory is used when it exists.
    pub previous_master_key: MasterKeySource,
    pub mode: Mode,
    pub log_format: LogFormat,
    /// A directory of redaction rule packs to use instead of the built-in defaults.
    pub rules_dir: Option<PathBuf>,
    pub accounts: Vec<Account>,
    pub numbers: Vec<Number>,
    pub outbox: OutboxSettings,
    pub limits: crate::compliance::limits::LimitSettings,
    pub compliance: ComplianceSettings,
    pub console: ConsoleSettings,
    pub escalation: crate::escalation::EscalationSettings,
    /// The rule editor: two-person rule, hot-reload poll interval (`[rules]`).
    pub rules: crate::rules::RuleSettings,
    pub retention: RetentionSettings,
}

/// How long each class of record is kept, and the job that removes what expired (`[retention]`,
/// see `crate::retention`). Periods are whole days.
///
/// Defaults, and why:
/// - message content (bodies, secure-channel messages, internal notes): 2 years (730 days): long
///   enough for complaint handling and most supervisory look-backs on customer communications,
///   short enough not to hoard; firms bound to longer books-and-records rules (e.g. six years)
///   raise it.
/// - media metadata (the sealed URLs, names, types and sizes of attachments): 1 year (365 days):
///   the media themselves live at the carrier and expire there much sooner.
/// - secure links and codes (link, token, code and customer-session rows): 90 days after the
///   link expired: long enough to investigate a disputed verification, and the rows hold no
///   content.
/// - consent events: 5 years (1825 days): consent proof must outlive the content it allowed
///   (TCPA claims run four years); the newest opt-in/opt-out per contact and business number is
///   never deleted, whatever its age, since it decides whether the number may be texted.
/// - audit events: 7 years (2555 days); pruned by `crate::audit` (not by this job).
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// Run the retention job in this process.
    pub enabled: bool,
    /// How often the job runs.
    pub interval: Duration,
    /// Rows removed per transaction (short transactions; several instances may run the job).
    pub batch: u32,
    pub message_content_days: u32,
    pub media_metadata_days: u32,
    pub secure_links_days: u32,
    pub consent_events_days: u32,
    pub audit_events_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(3600),
            batch: 500,
            message_content_days: 730,
            media_metadata_days: 365,
            secure_links_days: 90,
            consent_events_days: 1825,
            audit_events_days: 2555,
        }
    }
}

/// The staff console: sessions, sign-in limits, single sign-on (`[console]`).
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// A session unused this long ends (`idle_timeout_minutes`, default 15).
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in however busy (`absolute_timeout_hours`, default 12).
    pub absolute_timeout: Duration,
    /// The address of the admin the first `serve` creates when there are no users.
    pub first_admin_email: String,
    /// Failed sign-ins per account per 15 minutes before the account's sign-in is paused.
    pub sign_in_failures_per_account: u32,
    /// Sign-in attempts per client address per minute.
    pub sign_in_per_ip_per_minute: u32,
    /// Conversations per inbox page.
    pub page_size: u32,
    /// How often the live-update feed looks for changes made by other instances.
    pub live_poll: Duration,
    /// Single sign-on (`[console.oidc]`), when the business has an identity provider.
    pub oidc: Option<crate::accounts::oidc::OidcSettings>,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(15 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            first_admin_email: "admin@localhost".to_owned(),
            sign_in_failures_per_account: 10,
            sign_in_per_ip_per_minute: 30,
            page_size: 25,
            live_poll: Duration::from_secs(1),
            oidc: None,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            master_key: MasterKeySource::None,
            master_key_version: 1,
            previous_master_key: MasterKeySource::None,
            mode: Mode::Development,
            log_format: LogFormat::Text,
            rules_dir: None,
            accounts: Vec::new(),
            numbers: Vec::new(),
            outbox: OutboxSettings::default(),
            limits: crate::compliance::limits::LimitSettings::default(),
            compliance: ComplianceSettings::default(),
            console: ConsoleSettings::default(),
            escalation: crate::escalation::EscalationSettings::default(),
            rules: crate::rules::RuleSettings::default(),
            retention: RetentionSettings::default(),
        }
    }
}

/// The file's shape. Every field optional: defaults fill the gaps.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<SecretString>,
    master_key: Option<SecretString>,
    master_key_file: Option<PathBuf>,
    master_key_version: Option<u32>,
    previous_master_key: Option<SecretString>,
    previous_master_key_file: Option<PathBuf>,
    mode: Option<Mode>,
    log_format: Option<LogFormat>,
    rules_dir: Option<PathBuf>,
    /// Each account's keys depend on its carrier: read by the carrier's module.
    #[serde(default)]
    accounts: Vec<toml::Table>,
    #[serde(default)]
    numbers: Vec<FileNumber>,
    outbox: Option<FileOutbox>,
    limits: Option<FileLimits>,
    compliance: Option<FileCompliance>,
    console: Option<FileConsole>,
    escalation: Option<FileEscalation>,
    rules: Option<crate::rules::FileRules>,
    retention: Option<FileRetention>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileRetention {
    enabled: Option<bool>,
    interval_secs: Option<u64>,
    batch: Option<u32>,
    message_content_days: Option<u32>,
    media_metadata_days: Option<u32>,
    secure_links_days: Option<u32>,
    consent_events_days: Option<u32>,
    audit_events_days: Option<u32>,
}

fn resolve_retention(file: FileRetention) -> anyhow::Result<RetentionSettings> {
    let defaults = RetentionSettings::default();
    let interval = match file.interval_secs {
        None => defaults.interval,
        Some(v) if !(10..=7 * 24 * 3600).contains(&v) => {
            bail!("retention.interval_secs: from 10 to 604800 (a week)")
        }
        Some(v) => Duration::from_secs(v),
    };
    let batch = match file.batch {
        None => defaults.batch,
        Some(v) if !(1..=10_000).contains(&v) => bail!("retention.batch: from 1 to 10000"),
        Some(v) => v,
    };
    // A period of zero would delete everything at once; a century is "forever" in practice.
    let days = |value: Option<u32>, key: &str, default: u32| match value {
        None => Ok(default),
        Some(v) if !(1..=36_500).contains(&v) => {
            Err(anyhow!("retention.{key}: from 1 to 36500 days"))
        }
        Some(v) => Ok(v),
    };
    let settings = RetentionSettings {
        enabled: file.enabled.unwrap_or(defaults.enabled),
        interval,
        batch,
        message_content_days: days(
            file.message_content_days,
            "message_content_days",
            defaults.message_content_days,
        )?,
        media_metadata_days: days(
            file.media_metadata_days,
            "media_metadata_days",
            defaults.media_metadata_days,
        )?,
        secure_links_days: days(
            file.secure_links_days,
            "secure_links_days",
            defaults.secure_links_days,
        )?,
        consent_events_days: days(
            file.consent_events_days,
            "consent_events_days",
            defaults.consent_events_days,
        )?,
        audit_events_days: days(
            file.audit_events_days,
            "audit_events_days",
            defaults.audit_events_days,
        )?,
    };
    if settings.consent_events_days < settings.message_content_days {
        bail!(
            "retention.consent_events_days must be at least message_content_days: consent proof \
             must outlive the messages it allowed"
        );
    }
    Ok(settings)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileEscalation {
    link_lifetime_hours: Option<u64>,
    cooldown_minutes: Option<u64>,
    link_template: Option<String>,
    code_template: Option<String>,
    notification_template: Option<String>,
    code_lifetime_minutes: Option<u64>,
    code_attempts: Option<u32>,
    codes_per_hour: Option<u32>,
    link_failed_codes: Option<u32>,
    session_idle_minutes: Option<u64>,
    notify_interval_minutes: Option<u64>,
    knowledge_check: Option<FileKnowledgeCheck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKnowledgeCheck {
    url: String,
    secret: SecretString,
    prompt: String,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConsole {
    idle_timeout_minutes: Option<u64>,
    absolute_timeout_hours: Option<u64>,
    first_admin_email: Option<String>,
    sign_in_failures_per_account: Option<u32>,
    sign_in_per_ip_per_minute: Option<u32>,
    page_size: Option<u32>,
    live_poll_ms: Option<u64>,
    oidc: Option<crate::accounts::oidc::OidcSettings>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileCompliance {
    business_name: Option<String>,
    support_contact: Option<String>,
    opt_out_scope: Option<crate::compliance::consent::Scope>,
    revocation: Option<Revocation>,
    opt_out_confirmation: Option<String>,
    opt_in_confirmation: Option<String>,
    help_reply: Option<String>,
    keyword_languages: Option<Vec<String>>,
    #[serde(default)]
    keywords: Vec<KeywordList>,
    quiet_hours: Option<FileQuietHours>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileQuietHours {
    start: Option<String>,
    end: Option<String>,
    time_zone: Option<String>,
    reply_window_minutes: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    webhook_refusals_per_ip_per_minute: Option<u32>,
    api_per_token_per_minute: Option<u32>,
    flood_per_minute: Option<u32>,
    help_reply_interval_secs: Option<u64>,
    client_ip_header: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNumber {
    number: Option<String>,
    rcs_agent: Option<String>,
    account: String,
    kind: Option<SenderKind>,
    throughput: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileOutbox {
    enabled: Option<bool>,
    poll_interval_ms: Option<u64>,
    lease_secs: Option<u64>,
    max_attempts: Option<u32>,
    backoff_base_ms: Option<u64>,
    backoff_max_secs: Option<u64>,
    instances: Option<u32>,
    request_timeout_secs: Option<u64>,
    batch: Option<u32>,
    lookup_delay_secs: Option<u64>,
}

/// Keys whose values must never appear in an error message: every credential of every carrier.
const SECRET_KEYS: &[&str] = &[
    "auth_token",
    "master_key",
    "previous_master_key",
    "database_url",
    "api_key",
    "api_secret",
    "api_token",
    "signature_secret",
    "password",
    "webhook_password",
    "webhook_secret",
    "client_token",
    "service_account_key",
];

impl Settings {
    /// Loads settings from the process environment and the given (or default) file.
    ///
    /// # Errors
    /// A message naming the key or variable at fault.
    pub fn load(config_file: Option<&Path>) -> anyhow::Result<Self> {
        Self::load_with(config_file, |name| std::env::var(name).ok())
    }

    /// [`Settings::load`] with an injectable environment (tests).
    ///
    /// # Errors
    /// A message naming the key or variable at fault.
    pub fn load_with(
        config_file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let file = match config_file {
            Some(path) => Some((path.to_path_buf(), read_file(path)?)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                let path = PathBuf::from(DEFAULT_CONFIG_FILE);
                let text = read_file(&path)?;
                Some((path, text))
            }
            None => None,
        };
        let (origin, parsed) = match file {
            Some((path, text)) => {
                let parsed = parse_file(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
                (path.display().to_string(), parsed)
            }
            None => ("defaults".to_owned(), FileSettings::default()),
        };
        Self::resolve(parsed, &env).with_context(|| format!("configuration ({origin})"))
    }

    /// Parses settings from TOML text alone, without the environment (tests, tools).
    ///
    /// # Errors
    /// A message naming the key at fault.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        Self::resolve(parse_file(text)?, &|_| None)
    }

    fn resolve(file: FileSettings, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut settings = Self::default();
        // The winning source of each key, for error messages.
        let pick = |key: &str, var: &str, from_file: Option<String>| -> Option<(String, String)> {
            env(var)
                .map(|v| (v, var.to_owned()))
                .or_else(|| from_file.map(|v| (v, format!("`{key}`"))))
        };

        if let Some((value, source)) = pick("listen", "DRAWBRIDGE_LISTEN", file.listen) {
            settings.listen = value.trim().parse().map_err(|_| {
                anyhow!("{source}: `{value}` is not an address like 127.0.0.1:8080")
            })?;
        }
        if let Some((value, source)) = pick("public_url", "DRAWBRIDGE_PUBLIC_URL", file.public_url)
        {
            let url = parse_http_url(&value).map_err(|e| anyhow!("{source}: {e}"))?;
            if url.query().is_some() || url.fragment().is_some() {
                bail!("{source}: must not have a query or fragment");
            }
            settings.public_url = Some(value.trim().trim_end_matches('/').to_owned());
        }
        if let Some((value, _)) = pick(
            "data_dir",
            "DRAWBRIDGE_DATA_DIR",
            file.data_dir.map(|p| p.display().to_string()),
        ) {
            settings.data_dir = PathBuf::from(value);
        }
        settings.database_url = env("DRAWBRIDGE_DATABASE_URL")
            .map(SecretString::from)
            .or(file.database_url);
        if let Some(url) = &settings.database_url {
            let text = url.expose_secret();
            if !(text.starts_with("postgres://")
                || text.starts_with("postgresql://")
                || text.starts_with("sqlite:"))
            {
                bail!("`database_url`: must start with postgres://, postgresql:// or sqlite: (value not shown)");
            }
        }
        // The environment replaces the file's key setting whichever form either uses, so an
        // operator can override a key file with DRAWBRIDGE_MASTER_KEY and vice versa.
        let env_key = (
            env("DRAWBRIDGE_MASTER_KEY").map(SecretString::from),
            env("DRAWBRIDGE_MASTER_KEY_FILE").map(PathBuf::from),
        );
        let (inline_key, key_file) = if env_key.0.is_some() || env_key.1.is_some() {
            env_key
        } else {
            (file.master_key, file.master_key_file)
        };
        settings.master_key = match (inline_key, key_file) {
            (Some(_), Some(_)) => {
                bail!("`master_key` and `master_key_file` are both set; choose one")
            }
            (Some(key), None) => MasterKeySource::Inline(key),
            (None, Some(path)) => MasterKeySource::File(path),
            (None, None) => MasterKeySource::None,
        };
        let version = match env("DRAWBRIDGE_MASTER_KEY_VERSION") {
            Some(text) => Some(text.trim().parse::<u32>().map_err(|_| {
                anyhow::anyhow!("DRAWBRIDGE_MASTER_KEY_VERSION: not a whole number")
            })?),
            None => file.master_key_version,
        };
        settings.master_key_version = version.unwrap_or(1);
        if settings.master_key_version == 0 {
            bail!("`master_key_version`: versions start at 1");
        }
        let env_previous = (
            env("DRAWBRIDGE_PREVIOUS_MASTER_KEY").map(SecretString::from),
            env("DRAWBRIDGE_PREVIOUS_MASTER_KEY_FILE").map(PathBuf::from),
        );
        let (inline_previous, previous_file) =
            if env_previous.0.is_some() || env_previous.1.is_some() {
                env_previous
            } else {
                (file.previous_master_key, file.previous_master_key_file)
            };
        settings.previous_master_key = match (inline_previous, previous_file) {
            (Some(_), Some(_)) => bail!(
                "`previous_master_key` and `previous_master_key_file` are both set; choose one"
            ),
            (Some(key), None) => MasterKeySource::Inline(key),
            (None, Some(path)) => MasterKeySource::File(path),
            (None, None) => MasterKeySource::None,
        };
        if settings.master_key_version == 1
            && !matches!(settings.previous_master_key, MasterKeySource::None)
        {
            bail!("a previous master key is set but `master_key_version` is 1: set the new key's version");
        }
        if let Some(value) = env("DRAWBRIDGE_MODE") {
            settings.mode = match value.trim() {
                "development" => Mode::Development,
                "production" => Mode::Production,
                other => {
                    bail!("DRAWBRIDGE_MODE: `{other}` is neither `development` nor `production`")
                }
            };
        } else if let Some(mode) = file.mode {
            settings.mode = mode;
        }
        if let Some(value) = env("DRAWBRIDGE_LOG_FORMAT") {
            settings.log_format = match value.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => bail!("DRAWBRIDGE_LOG_FORMAT: `{other}` is neither `text` nor `json`"),
            };
        } else if let Some(format) = file.log_format {
            settings.log_format = format;
        }

        settings.rules_dir = env("DRAWBRIDGE_RULES_DIR")
            .map(PathBuf::from)
            .or(file.rules_dir);
        settings.accounts = resolve_accounts(file.accounts, settings.mode)?;
        settings.numbers = resolve_numbers(file.numbers, &settings.accounts)?;
        settings.outbox = resolve_outbox(file.outbox.unwrap_or_default())?;
        settings.limits = resolve_limits(file.limits.unwrap_or_default())?;
        settings.compliance =
            resolve_compliance(file.compliance.unwrap_or_default(), settings.mode)?;
        settings.console = resolve_console(file.console.unwrap_or_default())?;
        settings.retention = resolve_retention(file.retention.unwrap_or_default())?;
        settings.escalation = resolve_escalation(file.escalation.unwrap_or_default())?;
        settings.rules = crate::rules::resolve(file.rules.unwrap_or_default())?;
        let sqlite = settings
            .database_url
            .as_ref()
            .is_none_or(|url| url.expose_secret().starts_with("sqlite:"));
        if sqlite && settings.outbox.instances > 1 {
            bail!("outbox.instances: one instance serves a SQLite database; use PostgreSQL to run several");
        }
        if settings.mode == Mode::Production && settings.public_url.is_none() {
            bail!(
                "`public_url` is required in production mode: set it to the URL carriers call \
                 (e.g. https://sms.example.com); webhook signatures are checked against it"
            );
        }
        Ok(settings)
    }

    /// The database URL in effect: the configured one, or the SQLite file in the data directory.
    #[must_use]
    pub fn database_url(&self) -> SecretString {
        match &self.database_url {
            Some(url) => url.clone(),
            None => SecretString::from(format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("drawbridge.db").display()
            )),
        }
    }

    /// The public base URL for a server bound to `bound`, without a trailing `/`: the configured
    /// one, else `http://<bound>`.
    #[must_use]
    pub fn public_url_for(&self, bound: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
    }

    /// Every configured sender and the account that owns it.
    #[must_use]
    pub fn senders(&self) -> std::collections::HashMap<BusinessAddress, std::sync::Arc<Account>> {
        let accounts: Vec<std::sync::Arc<Account>> = self
            .accounts
            .iter()
            .cloned()
            .map(std::sync::Arc::new)
            .collect();
        self.numbers
            .iter()
            .filter_map(|n| {
                accounts
                    .iter()
                    .find(|a| a.name == n.account)
                    .map(|a| (n.address.clone(), std::sync::Arc::clone(a)))
            })
            .collect()
    }

    /// The account that owns a business number, if the number is configured.
    #[must_use]
    pub fn account_for(&self, address: &BusinessAddress) -> Option<&Account> {
        let entry = self.numbers.iter().find(|n| &n.address == address)?;
        self.accounts.iter().find(|a| a.name == entry.account)
    }
}

/// The number the development sandbox answers on.
pub const SANDBOX_NUMBER: &str = "+15550001111";
/// File in the data directory holding the sandbox account's auth token.
pub const SANDBOX_TOKEN_FILE: &str = "sandbox-twilio-auth-token";

impl Settings {
    /// In development mode with no accounts configured, adds a sandbox Twilio account named
    /// `sandbox` that owns [`SANDBOX_NUMBER`], so that `serve` and `simulate inbound` work on a
    /// fresh machine with no configuration at all. Its auth token is random, generated on first
    /// use into the data directory (mode 0600) and shared by both commands. Production mode never
    /// gets a sandbox. Returns the sandbox number when one was added.
    ///
    /// # Errors
    /// When the token file cannot be read or written.
    pub fn add_development_sandbox(&mut self) -> anyhow::Result<Option<BusinessAddress>> {
        if self.mode != Mode::Development || !self.accounts.is_empty() {
            return Ok(None);
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("cannot create data_dir {}", self.data_dir.display()))?;
        let path = self.data_dir.join(SANDBOX_TOKEN_FILE);
        if !path.exists() {
            let mut token = [0_u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut token);
            crate::vault::write_secret_file(&path, hex::encode(token).as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let number =
            BusinessAddress::parse(SANDBOX_NUMBER).map_err(|e| anyhow!("sandbox number: {e}"))?;
        self.accounts.push(Account {
            name: "sandbox".to_owned(),
            carrier: CarrierAccount::Twilio(crate::carriers::twilio::Account {
                account_sid: format!("AC{}", "0".repeat(32)),
                auth_token: SecretString::from(token.trim().to_owned()),
                messaging_service_sid: None,
                api_base: Carrier::Twilio.profile().api_base.clone(),
            }),
        });
        self.numbers.push(Number {
            kind: SenderKind::default_for(&number),
            address: number.clone(),
            account: "sandbox".to_owned(),
            throughput: None,
        });
        Ok(Some(number))
    }
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))
}

fn parse_http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value.trim()).map_err(|e| format!("`{value}` is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "`{value}` must be an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
}

/// The 1-based line a TOML error points at: one more than the newlines before its span.
pub(crate) fn toml_error_line(text: &str, error: &toml::de::Error) -> Option<usize> {
    let start = error.span()?.start;
    Some(text.get(..start).unwrap_or_default().matches('\n').count() + 1)
}

/// Parses the TOML file. On error, names the line and key but shows no value of a secret key.
fn parse_file(text: &str) -> anyhow::Result<FileSettings> {
    toml::from_str(text).map_err(|e| {
        let line_no = toml_error_line(text, &e);
        let line = line_no
            .and_then(|n| text.lines().nth(n - 1))
            .unwrap_or_default();
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_owned());
        let secret = key.as_deref().is_some_and(|k| SECRET_KEYS.contains(&k));
        let message = if secret {
            "invalid value (not shown: the key holds a secret)".to_owned()
        } else {
            e.message().trim().to_owned()
        };
        match (line_no, key) {
            (Some(n), Some(key)) => anyhow!("line {n}, `{key}`: {message}"),
            (Some(n), None) => anyhow!("line {n}: {message}"),
            _ => anyhow!("{message}"),
        }
    })
}

fn resolve_accounts(accounts: Vec<toml::Table>, mode: Mode) -> anyhow::Result<Vec<Account>> {
    let mut names = HashSet::new();
    accounts
        .into_iter()
        .enumerate()
        .map(|(i, mut fields)| {
            let at = |key: &str| format!("accounts[{i}].{key}");
            let text = |value: Option<toml::Value>, key: &str| -> anyhow::Result<String> {
                match value {
                    Some(toml::Value::String(s)) => Ok(s),
                    Some(_) => bail!("{}: must be a string", at(key)),
                    None => bail!("{}: required", at(key)),
                }
            };
            let name = text(fields.remove("name"), "name")?;
            if name.trim().is_empty() {
                bail!("{}: must not be empty", at("name"));
            }
            if !names.insert(name.clone()) {
                bail!("{}: `{name}` is used by more than one account", at("name"));
            }
            let carrier_name = text(fields.remove("carrier"), "carrier")?;
            let carrier = Carrier::from_name(&carrier_name).ok_or_else(|| {
                anyhow!(
                    "{}: unknown carrier `{carrier_name}` (supported: {})",
                    at("carrier"),
                    Carrier::names()
                )
            })?;
            // Carrier modules name the key as "`key`: problem"; serde says "missing field `key`".
            let carrier =
                CarrierAccount::from_config(carrier, &fields, mode).map_err(|e| {
                    match e.strip_prefix('`').and_then(|rest| rest.split_once("`: ")) {
                        Some((key, problem)) => anyhow!("{}: {problem}", at(key)),
                        None => anyhow!("accounts[{i}] ({carrier_name}): {e}"),
                    }
                })?;
            Ok(Account { name, carrier })
        })
        .collect()
}

fn resolve_numbers(numbers: Vec<FileNumber>, accounts: &[Account]) -> anyhow::Result<Vec<Number>> {
    let mut seen = HashMap::new();
    numbers
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let address = match (&n.number, &n.rcs_agent) {
                (Some(number), None) => BusinessAddress::parse(number)
                    .map_err(|e| anyhow!("numbers[{i}].number: {e}"))?,
                (None, Some(agent)) => BusinessAddress::rcs_agent(agent)
                    .map_err(|e| anyhow!("numbers[{i}].rcs_agent: {e}"))?,
                _ => bail!("numbers[{i}]: set exactly one of `number` and `rcs_agent`"),
            };
            if let Some(first) = seen.insert(address.clone(), i) {
                let key = if n.number.is_some() {
                    "number"
                } else {
                    "rcs_agent"
                };
                bail!("numbers[{i}].{key}: the same sender is already listed as numbers[{first}]");
            }
            if !accounts.iter().any(|a| a.name == n.account) {
                bail!("numbers[{i}].account: no account is named `{}`", n.account);
            }
            if n.throughput.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
                bail!("numbers[{i}].throughput: messages per second, a positive number");
            }
            Ok(Number {
                kind: n.kind.unwrap_or_else(|| SenderKind::default_for(&address)),
                address,
                account: n.account,
                throughput: n.throughput,
            })
        })
        .collect()
}

fn resolve_compliance(file: FileCompliance, mode: Mode) -> anyhow::Result<ComplianceSettings> {
    let defaults = ComplianceSettings::default();
    let text =
        |value: Option<String>, key: &str, default: &str, max: usize| -> anyhow::Result<String> {
            let value = value.map_or_else(|| default.to_owned(), |v| v.trim().to_owned());
            if value.is_empty() || value.chars().count() > max {
                bail!("compliance.{key}: 1 to {max} characters");
            }
            Ok(value)
        };
    if mode == Mode::Production && (file.business_name.is_none() || file.support_contact.is_none())
    {
        bail!(
            "compliance.business_name and compliance.support_contact are required in production: \
             confirmations and HELP replies must name the business and how to reach it (CTIA)"
        );
    }
    let template = |value: Option<String>, key: &str, default: &str| -> anyhow::Result<String> {
        let value = text(value, key, default, 320)?;
        let mut rest = value.as_str();
        while let Some(open) = rest.find('{') {
            let after = rest.get(open + 1..).unwrap_or_default();
            let close = after
                .find('}')
                .ok_or_else(|| anyhow!("compliance.{key}: an unclosed `{{`"))?;
            let name = after.get(..close).unwrap_or_default();
            if !matches!(name, "business" | "support") {
                bail!("compliance.{key}: unknown placeholder `{{{name}}}` (use {{business}} and {{support}})");
            }
            rest = after.get(close + 1..).unwrap_or_default();
        }
        Ok(value)
    };
    // What CTIA's handbook asks of each message, checked so an edit cannot drop it.
    let opt_out_confirmation = template(
        file.opt_out_confirmation,
        "opt_out_confirmation",
        DEFAULT_OPT_OUT,
    )?;
    if !opt_out_confirmation.contains("{business}")
        || !opt_out_confirmation.to_ascii_uppercase().contains("START")
    {
        bail!(
            "compliance.opt_out_confirmation: must name {{business}} and say how to opt back in (e.g. \"Reply START\")"
        );
    }
    let opt_in_confirmation = template(
        file.opt_in_confirmation,
        "opt_in_confirmation",
        DEFAULT_OPT_IN,
    )?;
    if !opt_in_confirmation.contains("{business}")
        || !opt_in_confirmation.to_ascii_uppercase().contains("STOP")
    {
        bail!("compliance.opt_in_confirmation: must name {{business}} and say how to stop (e.g. \"Reply STOP\")");
    }
    let help_reply = template(file.help_reply, "help_reply", DEFAULT_HELP)?;
    if !help_reply.contains("{business}")
        || !help_reply.contains("{support}")
        || !help_reply
            .to_ascii_lowercase()
            .contains("msg & data rates may apply")
        || !help_reply.to_ascii_uppercase().contains("STOP")
    {
        bail!("compliance.help_reply: must give {{business}}, {{support}}, \"Msg & data rates may apply\" and how to stop (e.g. \"Reply STOP\")");
    }
    let keyword_languages = file.keyword_languages.unwrap_or(defaults.keyword_languages);
    for language in &keyword_languages {
        if !SHIPPED_KEYWORD_LANGUAGES.contains(&language.as_str()) {
            bail!(
                "compliance.keyword_languages: `{language}` is not a shipped list ({}); add your own with [[compliance.keywords]]",
                SHIPPED_KEYWORD_LANGUAGES.join(", ")
            );
        }
    }
    let keyword_set = compile_keywords(&keyword_languages, &file.keywords)
        .map_err(|e| anyhow!("compliance.keywords: {e}"))?;
    let quiet = file.quiet_hours.unwrap_or_default();
    let quiet_window = match (quiet.start, quiet.end) {
        (None, None) => defaults.quiet_window,
        (start, end) => crate::compliance::quiet::Window::parse(
            start.as_deref().unwrap_or("08:00"),
            end.as_deref().unwrap_or("21:00"),
        )
        .map_err(|e| anyhow!("compliance.quiet_hours: {e}"))?,
    };
    let default_time_zone = match quiet.time_zone {
        None => defaults.default_time_zone,
        Some(name) => name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
            anyhow!("compliance.quiet_hours.time_zone: `{name}` is not an IANA time zone such as America/Chicago")
        })?,
    };
    let reply_window = match quiet.reply_window_minutes {
        None => defaults.reply_window,
        Some(m) if m > 24 * 60 => {
            bail!("compliance.quiet_hours.reply_window_minutes: at most 1440")
        }
        Some(m) => chrono::TimeDelta::minutes(i64::from(m)),
    };
    Ok(ComplianceSettings {
        business_name: text(
            file.business_name,
            "business_name",
            &defaults.business_name,
            60,
        )?,
        support_contact: text(
            file.support_contact,
            "support_contact",
            &defaults.support_contact,
            120,
        )?,
        opt_out_scope: file.opt_out_scope.unwrap_or_default(),
        revocation: file.revocation.unwrap_or_default(),
        opt_out_confirmation,
        opt_in_confirmation,
        help_reply,
        keyword_languages,
        keywords: file.keywords,
        keyword_set: std::sync::Arc::new(keyword_set),
        quiet_window,
        default_time_zone,
        reply_window,
    })
}

fn resolve_console(file: FileConsole) -> anyhow::Result<ConsoleSettings> {
    let defaults = ConsoleSettings::default();
    let within = |value: Option<u64>, key: &str, max: u64, default: u64| match value {
        None => Ok(default),
        Some(v) if v == 0 || v > max => Err(anyhow!("console.{key}: between 1 and {max}")),
        Some(v) => Ok(v),
    };
    let idle = within(
        file.idle_timeout_minutes,
        "idle_timeout_minutes",
        24 * 60,
        15,
    )?;
    let absolute = within(
        file.absolute_timeout_hours,
        "absolute_timeout_hours",
        24 * 30,
        12,
    )?;
    if idle > absolute * 60 {
        bail!("console.idle_timeout_minutes: longer than absolute_timeout_hours");
    }
    let email = file
        .first_admin_email
        .unwrap_or(defaults.first_admin_email)
        .trim()
        .to_lowercase();
    if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_whitespace) {
        bail!("console.first_admin_email: an e-mail address such as it-admin@example.com");
    }
    let count = |value: Option<u32>, key: &str, max: u32, default: u32| match value {
        None => Ok(default),
        Some(v) if v == 0 || v > max => Err(anyhow!("console.{key}: between 1 and {max}")),
        Some(v) => Ok(v),
    };
    Ok(ConsoleSettings {
        idle_timeout: Duration::from_secs(idle * 60),
        absolute_timeout: Duration::from_secs(absolute * 3600),
        first_admin_email: email,
        sign_in_failures_per_account: count(
            file.sign_in_failures_per_account,
            "sign_in_failures_per_account",
            1000,
            defaults.sign_in_failures_per_account,
        )?,
        sign_in_per_ip_per_minute: count(
            file.sign_in_per_ip_per_minute,
            "sign_in_per_ip_per_minute",
            100_000,
            defaults.sign_in_per_ip_per_minute,
        )?,
        page_size: count(file.page_size, "page_size", 200, defaults.page_size)?,
        live_poll: Duration::from_millis(within(file.live_poll_ms, "live_poll_ms", 60_000, 1000)?),
        oidc: file.oidc,
    })
}

fn resolve_escalation(
    file: FileEscalation,
) -> anyhow::Result<crate::escalation::EscalationSettings> {
    use crate::escalation::knowledge::{KnowledgeCheck, KnowledgeSettings};
    let defaults = crate::escalation::EscalationSettings::default();
    let minutes = |value: Option<u64>, key: &str, max: u64, default: Duration| match value {
        None => Ok(default),
        Some(v) if v == 0 || v > max => Err(anyhow!("escalation.{key}: between 1 and {max}")),
        Some(v) => Ok(Duration::from_secs(v * 60)),
    };
    let count = |value: Option<u32>, key: &str, max: u32, default: u32| match value {
        None => Ok(default),
        Some(v) if v == 0 || v > max => Err(anyhow!("escalation.{key}: between 1 and {max}")),
        Some(v) => Ok(v),
    };
    let knowledge = match file.knowledge_check {
        None => None,
        Some(k) => Some(
            KnowledgeCheck::new(KnowledgeSettings {
                url: k.url,
                secret: k.secret,
                prompt: k.prompt,
                timeout: Duration::from_millis(k.timeout_ms.unwrap_or(5000)),
            })
            .map_err(|e| anyhow!("escalation.knowledge_check: {e}"))?,
        ),
    };
    let settings = crate::escalation::EscalationSettings {
        link_lifetime: match file.link_lifetime_hours {
            None => defaults.link_lifetime,
            Some(h) if h == 0 || h > 24 * 14 => {
                bail!("escalation.link_lifetime_hours: between 1 and {}", 24 * 14)
            }
            Some(h) => Duration::from_secs(h * 3600),
        },
        cooldown: minutes(
            file.cooldown_minutes,
            "cooldown_minutes",
            7 * 24 * 60,
            defaults.cooldown,
        )?,
        link_template: file.link_template.unwrap_or(defaults.link_template),
        code_template: file.code_template.unwrap_or(defaults.code_template),
        notification_template: file
            .notification_template
            .unwrap_or(defaults.notification_template),
        code_lifetime: minutes(
            file.code_lifetime_minutes,
            "code_lifetime_minutes",
            60,
            defaults.code_lifetime,
        )?,
        code_attempts: count(
            file.code_attempts,
            "code_attempts",
            10,
            defaults.code_attempts,
        )?,
        codes_per_hour: count(
            file.codes_per_hour,
            "codes_per_hour",
            20,
            defaults.codes_per_hour,
        )?,
        link_failed_codes: count(
            file.link_failed_codes,
            "link_failed_codes",
            100,
            defaults.link_failed_codes,
        )?,
        session_idle: minutes(
            file.session_idle_minutes,
            "session_idle_minutes",
            24 * 60,
            defaults.session_idle,
        )?,
        notify_interval: minutes(
            file.notify_interval_minutes,
            "notify_interval_minutes",
            24 * 60,
            defaults.notify_interval,
        )?,
        knowledge,
    };
    settings.validate().map_err(|e| anyhow!(e))?;
    Ok(settings)
}

fn resolve_limits(file: FileLimits) -> anyhow::Result<crate::compliance::limits::LimitSettings> {
    let defaults = crate::compliance::limits::LimitSettings::default();
    let count = |value: Option<u32>, key: &str, default: u32| match value {
        None => Ok(default),
        Some(0) => Err(anyhow!("limits.{key}: must be greater than 0")),
        Some(v) => Ok(v),
    };
    let header = match file.client_ip_header {
        None => None,
        Some(name) => {
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                bail!("limits.client_ip_header: a header name such as `x-forwarded-for`");
            }
            Some(name)
        }
    };
    Ok(crate::compliance::limits::LimitSettings {
        webhook_refusals_per_ip_per_minute: count(
            file.webhook_refusals_per_ip_per_minute,
            "webhook_refusals_per_ip_per_minute",
            defaults.webhook_refusals_per_ip_per_minute,
        )?,
        api_per_token_per_minute: count(
            file.api_per_token_per_minute,
            "api_per_token_per_minute",
            defaults.api_per_token_per_minute,
        )?,
        flood_per_minute: count(
            file.flood_per_minute,
            "flood_per_minute",
            defaults.flood_per_minute,
        )?,
        help_reply_interval: match file.help_reply_interval_secs {
            None => defaults.help_reply_interval,
            Some(v) if v > 24 * 3600 => bail!("limits.help_reply_interval_secs: at most 86400"),
            Some(v) => Duration::from_secs(v),
        },
        client_ip_header: header,
    })
}

fn resolve_outbox(file: FileOutbox) -> anyhow::Result<OutboxSettings> {
    let defaults = OutboxSettings::default();
    // Bounded so that no delay can overflow a timestamp: a day at most, an hour for a lease.
    let positive = |value: Option<u64>, key: &str, default: Duration, unit: fn(u64) -> Duration| {
        let limit = if key == "lease_secs" {
            Duration::from_secs(3600)
        } else {
            Duration::from_secs(24 * 3600)
        };
        match value {
            None => Ok(default),
            Some(0) => Err(anyhow!("outbox.{key}: must be greater than 0")),
            Some(v) if unit(v) > limit => {
                Err(anyhow!("outbox.{key}: at most {} seconds", limit.as_secs()))
            }
            Some(v) => Ok(unit(v)),
        }
    };
    let settings = OutboxSettings {
        enabled: file.enabled.unwrap_or(defaults.enabled),
        poll_interval: positive(
            file.poll_interval_ms,
            "poll_interval_ms",
            defaults.poll_interval,
            Duration::from_millis,
        )?,
        lease: positive(
            file.lease_secs,
            "lease_secs",
            defaults.lease,
            Duration::from_secs,
        )?,
        max_attempts: file
            .max_attempts
            .unwrap_or(defaults.max_attempts)
            .clamp(1, 100),
        backoff_base: positive(
            file.backoff_base_ms,
            "backoff_base_ms",
            defaults.backoff_base,
            Duration::from_millis,
        )?,
        backoff_max: positive(
            file.backoff_max_secs,
            "backoff_max_secs",
            defaults.backoff_max,
            Duration::from_secs,
        )?,
        instances: file.instances.unwrap_or(defaults.instances).max(1),
        request_timeout: positive(
            file.request_timeout_secs,
            "request_timeout_secs",
            defaults.request_timeout,
            Duration::from_secs,
        )?,
        batch: file.batch.unwrap_or(defaults.batch).clamp(1, 10_000),
        lookup_delay: match file.lookup_delay_secs {
            None => defaults.lookup_delay,
            Some(v) if v > 3600 => bail!("outbox.lookup_delay_secs: at most 3600 seconds"),
            Some(v) => Duration::from_secs(v),
        },
    };
    if settings.request_timeout >= settings.lease {
        bail!("outbox.request_timeout_secs must be shorter than outbox.lease_secs, or a slow call could outlive its claim");
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {

    #[test]
    fn retention_periods_and_their_limits() {
        let s = Settings::from_toml("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.retention.message_content_days, 730);
        assert_eq!(s.retention.consent_events_days, 1825);
        assert_eq!(s.retention.audit_events_days, 2555);
        assert!(s.retention.enabled);
        let s = Settings::from_toml(
            "[retention]\nenabled = false\ninterval_secs = 60\nmessage_content_days = 30\nsecure_links_days = 7",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.retention.enabled);
        assert_eq!(s.retention.interval, Duration::from_secs(60));
        assert_eq!(s.retention.message_content_days, 30);
        assert_eq!(s.retention.secure_links_days, 7);
        for (text, key) in [
            (
                "[retention]\nmessage_content_days = 0",
                "message_content_days",
            ),
            ("[retention]\ninterval_secs = 1", "interval_secs"),
            ("[retention]\nbatch = 0", "batch"),
            (
                "[retention]\nmessage_content_days = 3000",
                "consent_events_days",
            ),
            ("[retention]\nsurprise = 1", "surprise"),
        ] {
            let error = format!(
                "{:#}",
                Settings::from_toml(text)
                    .err()
                    .unwrap_or_else(|| panic!("{text} accepted"))
            );
            assert!(error.contains(key), "{text}: {error}");
        }
    }
    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    fn full() -> String {
        format!(
            r#"
listen = "0.0.0.0:9000"
public_url = "https://sms.example.com/drawbridge"
data_dir = "/var/lib/drawbridge"
mode = "production"
master_key_file = "/etc/drawbridge/master.key"

[[accounts]]
name = "main"
carrier = "twilio"
account_sid = "{SID}"
auth_token = "fedcba9876543210fedcba9876543210"
api_base = "http://127.0.0.1:9999"

[[numbers]]
number = "+15550001111"
account = "main"

[compliance]
business_name = "Example Bank"
support_contact = "call 800-555-0100"
"#
        )
    }

    fn err_of(text: &str) -> String {
        Settings::from_toml(text)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
    }

    #[test]
    fn defaults() {
        let s = Settings::from_toml("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.mode, Mode::Development);
        assert_eq!(s.public_url_for(s.listen), "http://127.0.0.1:8080");
        assert!(s
            .database_url()
            .expose_secret()
            .starts_with("sqlite://./data/drawbridge.db"));
        assert!(matches!(s.master_key, MasterKeySource::None));
    }

    #[test]
    fn file_values() {
        let s = Settings::from_toml(&full()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.mode, Mode::Production);
        assert_eq!(
            s.public_url.as_deref(),
            Some("https://sms.example.com/drawbridge")
        );
        let number = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
        let account = s
            .account_for(&number)
            .unwrap_or_else(|| panic!("number not found"));
        let CarrierAccount::Twilio(twilio) = &account.carrier else {
            panic!("not twilio")
        };
        assert_eq!(twilio.account_sid, SID);
        assert_eq!(twilio.api_base.as_str(), "http://127.0.0.1:9999/");
        assert!(matches!(s.master_key, MasterKeySource::File(_)));
        assert_eq!(s.numbers[0].kind, SenderKind::LongCode);
        assert!((s.numbers[0].messages_per_second(Carrier::Twilio) - 1.0).abs() < f64::EPSILON);
        assert_eq!(s.outbox, OutboxSettings::default());
    }

    #[test]
    fn numbers_kinds_and_the_outbox() {
        let text = format!(
            "database_url = \"postgres://db/drawbridge\"\n{}\n[[numbers]]\nnumber = \"+18005550100\"\naccount = \"main\"\n\n[[numbers]]\nnumber = \"55555\"\naccount = \"main\"\nthroughput = 12.5\n\n[outbox]\nlease_secs = 5\nrequest_timeout_secs = 2\ninstances = 2\nbackoff_base_ms = 250\n",
            full()
        );
        let s = Settings::from_toml(&text).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(s.numbers[1].kind, SenderKind::TollFree);
        assert!((s.numbers[1].messages_per_second(Carrier::Twilio) - 3.0).abs() < f64::EPSILON);
        assert_eq!(s.numbers[2].kind, SenderKind::ShortCode);
        assert!((s.numbers[2].messages_per_second(Carrier::Twilio) - 12.5).abs() < f64::EPSILON);
        assert_eq!(s.outbox.lease, Duration::from_secs(5));
        assert_eq!(s.outbox.instances, 2);
        assert_eq!(s.outbox.backoff_base, Duration::from_millis(250));
        assert!(err_of(&format!("{}\n[outbox]\nlease_secs = 5\n", full()))
            .contains("request_timeout_secs"));
        assert!(err_of(&format!("{}\n[outbox]\ncolour = 1\n", full())).contains("colour"));
        // One instance serves SQLite; bounds keep every delay within a timestamp.
        assert!(err_of(&format!("{}\n[outbox]\ninstances = 2\n", full())).contains("SQLite"));
        assert!(
            err_of(&format!("{}\n[outbox]\nlease_secs = 99999999\n", full()))
                .contains("outbox.lease_secs: at most")
        );
        assert!(err_of(&format!(
            "{}\n[[numbers]]\nnumber = \"+15550001112\"\nrcs_agent = \"a\"\naccount = \"main\"\n",
            full()
        ))
        .contains("exactly one"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("d.toml");
        std::fs::write(&path, full()).unwrap_or_else(|e| panic!("{e}"));
        let env = |name: &str| match name {
            "DRAWBRIDGE_LISTEN" => Some("127.0.0.1:0".to_owned()),
            "DRAWBRIDGE_MODE" => Some("development".to_owned()),
            "DRAWBRIDGE_DATABASE_URL" => Some("postgres://u@h/db".to_owned()),
            "DRAWBRIDGE_MASTER_KEY_FILE" => Some("/tmp/k".to_owned()),
            _ => None,
        };
        let s = Settings::load_with(Some(&path), env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.listen.port(), 0);
        assert_eq!(s.mode, Mode::Development);
        assert_eq!(s.database_url().expose_secret(), "postgres://u@h/db");
        assert!(matches!(&s.master_key, MasterKeySource::File(p) if p == Path::new("/tmp/k")));
        let bad = |name: &str| (name == "DRAWBRIDGE_LISTEN").then(|| "nowhere".to_owned());
        let err = Settings::load_with(Some(&path), bad)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("DRAWBRIDGE_LISTEN"), "{err}");
    }

    #[test]
    fn production_demands_a_public_url_and_real_tokens() {
        let without_url =
            full().replace("public_url = \"https://sms.example.com/drawbridge\"\n", "");
        assert!(err_of(&without_url).contains("`public_url` is required in production"));
        let placeholder = full().replace("fedcba9876543210fedcba9876543210", "replace-me");
        let err = err_of(&placeholder);
        assert!(
            err.contains("accounts[0].auth_token") && !err.contains("replace-me"),
            "{err}"
        );
        // Development accepts both.
        assert!(
            Settings::from_toml(&placeholder.replace("\"production\"", "\"development\"")).is_ok()
        );
        // The URL is kept as written (no re-encoding, no added port), minus a trailing slash.
        let odd = full().replace(
            "https://sms.example.com/drawbridge",
            "https://SMS.example.com:443/a%20b/",
        );
        assert_eq!(
            Settings::from_toml(&odd)
                .ok()
                .and_then(|s| s.public_url)
                .as_deref(),
            Some("https://SMS.example.com:443/a%20b")
        );
    }

    #[test]
    fn environment_key_replaces_either_file_key() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("d.toml");
        std::fs::write(&path, full()).unwrap_or_else(|e| panic!("{e}"));
        let env = |name: &str| (name == "DRAWBRIDGE_MASTER_KEY").then(|| "a2V5".to_owned());
        let s = Settings::load_with(Some(&path), env).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(matches!(s.master_key, MasterKeySource::Inline(_)));
    }

    #[test]
    fn bad_values_name_their_key() {
        assert!(err_of("listen = \"here\"").contains("`listen`"));
        assert!(err_of("public_url = \"ftp://x\"").contains("`public_url`"));
        assert!(err_of("mode = \"staging\"").contains("`mode`"));
        assert!(err_of("colour = \"blue\"").contains("colour"));
        let sid = format!("[[accounts]]\nname=\"a\"\ncarrier=\"twilio\"\nauth_token=\"t\"\naccount_sid=\"{SID}\"\n");
        assert!(err_of(&sid.replace("twilio", "pigeon")).contains("accounts[0].carrier"));
        assert!(err_of(&sid.replace(SID, "XX1")).contains("accounts[0].account_sid"));
        assert!(err_of(&format!(
            "{sid}[[numbers]]\nnumber=\"555-0001\"\naccount=\"a\"\n"
        ))
        .contains("numbers[0].number"));
        assert!(err_of(&format!(
            "{sid}[[numbers]]\nnumber=\"+15550001111\"\naccount=\"b\"\n"
        ))
        .contains("numbers[0].account"));
        let twice = format!("{sid}[[numbers]]\nnumber=\"+15550001111\"\naccount=\"a\"\n[[numbers]]\nnumber=\"+15550001111\"\naccount=\"a\"\n");
        assert!(err_of(&twice).contains("numbers[1].number"));
        assert!(err_of("master_key = \"x\"\nmaster_key_file = \"y\"").contains("both"));
    }

    #[test]
    fn compliance_settings_parse_and_bad_ones_name_their_key() {
        let s = Settings::from_toml(
            "[compliance]\nbusiness_name = \"Acme Bank\"\nsupport_contact = \"acme.example/help\"\n\
             opt_out_scope = \"business\"\nrevocation = \"agent_confirms\"\nkeyword_languages = [\"es\"]\n\
             [compliance.quiet_hours]\nstart = \"09:00\"\nend = \"20:00\"\ntime_zone = \"America/Chicago\"\nreply_window_minutes = 30\n\
             [[compliance.keywords]]\nlanguage = \"de\"\nopt_out = [\"HALT\"]\nhelp = [\"HILFE\"]\n",
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        let c = &s.compliance;
        assert_eq!(c.business_name, "Acme Bank");
        assert_eq!(c.opt_out_scope, crate::compliance::consent::Scope::Business);
        assert_eq!(c.revocation, Revocation::AgentConfirms);
        assert_eq!(c.default_time_zone, chrono_tz::America::Chicago);
        assert_eq!(c.reply_window, chrono::TimeDelta::minutes(30));
        assert_eq!(c.quiet_window.to_string(), "09:00–20:00");
        let kind = |text: &str| c.keyword_set.classify(text).map(|m| m.kind);
        use crate::compliance::keywords::KeywordKind;
        assert_eq!(kind("halt!"), Some(KeywordKind::OptOut));
        assert_eq!(kind("Hilfe"), Some(KeywordKind::Help));
        assert_eq!(kind("alto"), Some(KeywordKind::OptOut), "Spanish is on");
        assert_eq!(kind("aide"), None, "French is off");
        assert_eq!(
            kind("stop"),
            Some(KeywordKind::OptOut),
            "English is always on"
        );
        assert!(c.render(&c.help_reply).contains("Acme Bank"));
        let exact = Settings::from_toml(
            "[[compliance.keywords]]\nlanguage = \"x\"\nexact_accents = true\nopt_out = [\"ÉTEINS\"]\n",
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        let kind = |text: &str| exact.compliance.keyword_set.classify(text).map(|m| m.kind);
        assert_eq!(kind("éteins"), Some(KeywordKind::OptOut));
        assert_eq!(kind("eteins"), None, "accents must match");

        for (toml, expected) in [
            (
                "[compliance]\nbusiness_name = \"\"",
                "compliance.business_name",
            ),
            ("[compliance]\nopt_out_scope = \"world\"", "opt_out_scope"),
            ("[compliance]\nrevocation = \"never\"", "revocation"),
            (
                "[compliance]\nkeyword_languages = [\"de\"]",
                "compliance.keyword_languages",
            ),
            (
                "[compliance]\nopt_out_confirmation = \"{business}: bye\"",
                "compliance.opt_out_confirmation",
            ),
            (
                "[compliance]\nopt_out_confirmation = \"Bye. Reply START\"",
                "compliance.opt_out_confirmation",
            ),
            (
                "[compliance]\nopt_in_confirmation = \"{business}: welcome\"",
                "compliance.opt_in_confirmation",
            ),
            (
                "[compliance]\nhelp_reply = \"{business}: call {support}. Reply STOP\"",
                "Msg & data rates may apply",
            ),
            (
                "[compliance]\nhelp_reply = \"{business} {supprot}\"",
                "unknown placeholder `{supprot}`",
            ),
            ("[compliance]\nhelp_reply = \"{business\"", "an unclosed"),
            ("[compliance]\nsurprise = 1", "surprise"),
            (
                "[compliance.quiet_hours]\nstart = \"8am\"",
                "compliance.quiet_hours",
            ),
            (
                "[compliance.quiet_hours]\ntime_zone = \"Mars/Olympus\"",
                "compliance.quiet_hours.time_zone",
            ),
            (
                "[compliance.quiet_hours]\nreply_window_minutes = 5000",
                "reply_window_minutes",
            ),
            (
                "[[compliance.keywords]]\nlanguage = \"x\"\nopt_in = [\"STOP\"]",
                "compliance.keywords",
            ),
            ("[limits]\nflood_per_minute = 0", "limits.flood_per_minute"),
            (
                "[limits]\nclient_ip_header = \"x forwarded\"",
                "limits.client_ip_header",
            ),
            (
                "[limits]\nhelp_reply_interval_secs = 100000",
                "limits.help_reply_interval_secs",
            ),
        ] {
            let err = err_of(toml);
            assert!(err.contains(expected), "{toml:?}: {err}");
        }
        // Production names the business in every confirmation: no default will do.
        let production = "mode = \"production\"\npublic_url = \"https://sms.example.com\"\n";
        assert!(err_of(production).contains("compliance.business_name"));
        assert!(Settings::from_toml(&format!(
            "{production}[compliance]\nbusiness_name = \"Acme\"\nsupport_contact = \"acme.example/help\"\n"
        ))
        .is_ok());
    }

    #[test]
    fn example_file_parses_and_documents_every_key() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/drawbridge.example.toml"
        ))
        .unwrap_or_default();
        let settings = Settings::from_toml(&text).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(settings.numbers.len(), 1);
        for key in [
            "listen",
            "public_url",
            "data_dir",
            "database_url",
            "master_key",
            "master_key_file",
            "mode",
            "log_format",
            "[[accounts]]",
            "name",
            "carrier",
            "account_sid",
            "auth_token",
            "api_base",
            "[[numbers]]",
            "number",
            "account",
            "DRAWBRIDGE_LISTEN",
            "DRAWBRIDGE_PUBLIC_URL",
            "DRAWBRIDGE_DATA_DIR",
            "DRAWBRIDGE_DATABASE_URL",
            "DRAWBRIDGE_MASTER_KEY",
            "DRAWBRIDGE_MASTER_KEY_FILE",
            "master_key_version",
            "previous_master_key",
            "previous_master_key_file",
            "DRAWBRIDGE_MASTER_KEY_VERSION",
            "DRAWBRIDGE_PREVIOUS_MASTER_KEY",
            "DRAWBRIDGE_PREVIOUS_MASTER_KEY_FILE",
            "DRAWBRIDGE_MODE",
            "DRAWBRIDGE_LOG_FORMAT",
            "DRAWBRIDGE_LOG",
            "rules_dir",
            "DRAWBRIDGE_RULES_DIR",
            "[rules]",
            "two_person",
            "[outbox]",
            "enabled",
            "poll_interval_ms",
            "lease_secs",
            "max_attempts",
            "backoff_base_ms",
            "backoff_max_secs",
            "instances",
            "request_timeout_secs",
            "batch",
            "lookup_delay_secs",
            "messaging_service_sid",
            "rcs_agent",
            "kind",
            "throughput",
            "agent_id",
            "client_token",
            "service_account_key_file",
            "service_account_key",
            "message_traffic_type",
            "public_key",
            "messaging_profile_id",
            "service_plan_id",
            "api_token",
            "webhook_secret",
            "region",
            "api_secret",
            "signature_secret",
            "signature_method",
            "api =",
            "account_id",
            "application_id",
            "username",
            "password",
            "webhook_username",
            "webhook_password",
            "auth_id",
            "[limits]",
            "webhook_refusals_per_ip_per_minute",
            "api_per_token_per_minute",
            "flood_per_minute",
            "help_reply_interval_secs",
            "client_ip_header",
            "[compliance]",
            "business_name",
            "support_contact",
            "opt_out_scope",
            "revocation",
            "opt_out_confirmation",
            "opt_in_confirmation",
            "help_reply",
            "keyword_languages",
            "[compliance.quiet_hours]",
            "start",
            "end",
            "time_zone",
            "reply_window_minutes",
            "[[compliance.keywords]]",
            "language",
            "opt_out",
            "opt_in",
            "help",
            "exact_accents",
        ] {
            assert!(
                text.contains(key),
                "drawbridge.example.toml does not mention {key}"
            );
        }
    }

    #[test]
    fn an_error_at_the_start_of_a_secret_line_names_that_line() {
        // The span of a duplicate key starts at the line's first byte; counting `lines()` of the
        // text before it named the previous (non-secret) line and echoed the value.
        let err = err_of("[[accounts]]\nname=\"a\"\ncarrier=\"twilio\"\nauth_token=\"x\"\nauth_token=\"sekrit-2\"\n");
        assert!(
            err.contains("line 5") && err.contains("auth_token") && !err.contains("sekrit-2"),
            "{err}"
        );
    }

    #[test]
    fn secret_values_are_never_echoed() {
        let err = err_of("[[accounts]]\nname=\"a\"\ncarrier=\"twilio\"\nauth_token=98765432123\n");
        assert!(
            err.contains("auth_token") && !err.contains("98765432123"),
            "{err}"
        );
        let err = err_of("database_url = \"mysql://user:hunter2@db\"");
        assert!(
            err.contains("database_url") && !err.contains("hunter2"),
            "{err}"
        );
        let s = Settings::from_toml(&full()).unwrap_or_else(|e| panic!("{e}"));
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("fedcba9876543210fedcba9876543210"),
            "{debug}"
        );
    }
}
