//! The compliance workspace over the redaction rules: drafts, the two-person rule, immutable
//! published versions, rollback, hot reload on every instance, hit counts, the test panel and the
//! dry run. The console (`/compliance/rules`, [`crate::web::console::rules`]) and the API
//! (`/api/v1/rules…`, [`crate::web::api::rules`]) are two faces of the functions here, which check
//! roles and write the audit trail themselves.
//!
//! # Versions
//!
//! Version 0 is the rule set the binary was started with: the packs compiled in, or `rules_dir`.
//! Every publish and every rollback adds an immutable row to `rule_set_version` holding the whole
//! rule set; the highest version is the one in force. Each instance's watcher ([`watch`]) reads
//! the highest version number every `poll_interval` (1 s by default), and on a new one compiles
//! it off the request path and swaps it in atomically ([`crate::redact::Redactor::install`]): every
//! instance sharing the database redacts with a published change within about a second, without
//! a restart. A message being redacted finishes with the engine it started with.
//!
//! # Drafts and the two-person rule
//!
//! A compliance user makes a draft from the version in force, edits it rule by rule (each rule is
//! compiled and its own examples run when it is saved: a regex that does not compile, exceeds the
//! size limit or can match the empty string is refused, as is a rule whose example fails), tests
//! it, dry-runs it on a corpus and reads its diff. With the two-person rule (`[rules] two_person`,
//! on by default) a *different* compliance principal — one who has not edited the draft — must
//! approve it; the approval names the draft revision it saw, and any later edit withdraws it.
//! Publishing needs that approval, the whole set to load (compile and every example), the
//! secure-link message templates still to pass the outbound DLP, and the draft to be based on
//! the version in force (otherwise the draft is stale: make a new one). A rollback restores an
//! earlier version's rules as a new version; it needs no second approval, because the rules it
//! restores were approved when first published and undoing a harmful change must be quick. It is
//! audited like everything else here.
//!
//! # What is stored
//!
//! Rules are configuration written by compliance staff (patterns, word lists and their synthetic
//! examples), stored as JSON text. Text pasted into the test panel and corpora uploaded for a dry
//! run are processed in memory only: never stored, logged or audited.

pub mod diff;
pub mod dry_run;
pub mod hits;

use crate::accounts::Principal;
use crate::audit::{self, AuditError, Event};
use crate::redact::rules::{Pack, Rule, RuleError};
use crate::redact::{Engine, Redactor};
use crate::store::tokens::Role;
use crate::store::{self, Db};
use crate::vault::Vault;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A whole rule set: every pack, with the file name it came from.
pub type RuleSet = Vec<(String, Pack)>;

/// `[rules]`: the workspace's settings.
#[derive(Debug, Clone)]
pub struct RuleSettings {
    /// A draft must be approved by a second compliance principal before it is published.
    pub two_person: bool,
    /// How often each instance looks for a newly published version.
    pub poll_interval: Duration,
}

impl Default for RuleSettings {
    fn default() -> Self {
        Self {
            two_person: true,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// `[rules]` as written in the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRules {
    two_person: Option<bool>,
    poll_interval_ms: Option<u64>,
}

/// Resolves `[rules]`.
///
/// # Errors
/// A poll interval outside 100 ms–60 s.
pub fn resolve(file: FileRules) -> anyhow::Result<RuleSettings> {
    let defaults = RuleSettings::default();
    let poll_interval = match file.poll_interval_ms {
        None => defaults.poll_interval,
        Some(ms) if (100..=60_000).contains(&ms) => Duration::from_millis(ms),
        Some(_) => anyhow::bail!("rules.poll_interval_ms: between 100 and 60000"),
    };
    Ok(RuleSettings {
        two_person: file.two_person.unwrap_or(defaults.two_person),
        poll_interval,
    })
}

/// The workspace's shared state: settings, the shipped rule set (version 0), hit counts not yet
/// written, and compiled drafts (the test panel compiles a draft once per revision).
#[derive(Debug)]
pub struct RulesRuntime {
    pub settings: RuleSettings,
    pub shipped: RuleSet,
    pub hits: hits::HitCounter,
    compiled: Mutex<Vec<(String, i64, Arc<Engine>)>>,
}

/// Compiled drafts kept for the test panel.
const COMPILED_DRAFTS: usize = 4;

impl RulesRuntime {
    #[must_use]
    pub fn new(settings: RuleSettings, shipped: RuleSet) -> Self {
        Self {
            settings,
            shipped,
            hits: hits::HitCounter::default(),
            compiled: Mutex::new(Vec::new()),
        }
    }
}

/// The redactor and workspace for the rules the configuration ships: the built-in packs, or
/// `rules_dir`. This is version 0; [`sync`] then installs the newest published version.
///
/// # Errors
/// The packs' problems.
pub fn shipped(settings: &crate::config::Settings) -> anyhow::Result<(Redactor, RulesRuntime)> {
    let packs = crate::redact::load_packs(settings.rules_dir.as_deref())?;
    let engine = crate::redact::engine_from(&packs)?;
    Ok((
        Redactor::new(engine),
        RulesRuntime::new(settings.rules.clone(), packs),
    ))
}

/// What went wrong, for the console and the API to word.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// 404.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// 403: the role, or the two-person rule.
    #[error("{0}")]
    Forbidden(String),
    /// 409: the draft changed, was published, or is stale.
    #[error("{0}")]
    Conflict(String),
    /// 422: the rules do not load; every problem, each naming its rule.
    #[error("the rules are not valid: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// 400: a malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// Stored rules that do not parse (500).
    #[error("a stored rule set does not parse")]
    Corrupt,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("audit trail error")]
    Audit(#[from] AuditError),
}

impl RulesError {
    /// True when the database is unavailable (503, try again).
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(e) | Self::Audit(AuditError::Database(e)) => store::is_unavailable(e),
            _ => false,
        }
    }
}

/// Only compliance works on rules.
///
/// # Errors
/// [`RulesError::Forbidden`] for every other role.
pub fn require(principal: &Principal) -> Result<(), RulesError> {
    if principal.role == Role::Compliance {
        Ok(())
    } else {
        Err(RulesError::Forbidden(
            "only compliance may read or change the redaction rules".to_owned(),
        ))
    }
}

#[derive(Serialize, Deserialize)]
struct StoredPack {
    file: String,
    pack: Pack,
}

/// A rule set as stored: JSON.
#[must_use]
pub fn encode(set: &RuleSet) -> String {
    let stored: Vec<StoredPack> = set
        .iter()
        .map(|(file, pack)| StoredPack {
            file: file.clone(),
            pack: pack.clone(),
        })
        .collect();
    serde_json::to_string(&stored).unwrap_or_else(|_| "[]".to_owned())
}

/// A stored rule set.
///
/// # Errors
/// [`RulesError::Corrupt`] when it does not parse.
pub fn decode(text: &str) -> Result<RuleSet, RulesError> {
    let stored: Vec<StoredPack> = serde_json::from_str(text).map_err(|_| RulesError::Corrupt)?;
    Ok(stored.into_iter().map(|s| (s.file, s.pack)).collect())
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn messages(errors: &[RuleError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

/// The file a new pack named `name` is stored as.
fn pack_file(name: &str) -> String {
    format!("{name}.toml")
}

/// A published version's record.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub version: i64,
    pub source: String,
    /// For a rollback: the version whose rules it restored.
    pub restores: Option<i64>,
    pub rule_draft_id: Option<String>,
    pub published_by: String,
    pub approved_by: Option<String>,
    pub published_at: String,
    pub digest: String,
}

const VERSION_COLUMNS: &str =
    "version, source, restores, rule_draft_id, published_by, approved_by, published_at, digest";

fn version_from(row: &sqlx::any::AnyRow) -> Result<Version, sqlx::Error> {
    Ok(Version {
        version: row.try_get(0)?,
        source: row.try_get(1)?,
        restores: row.try_get(2)?,
        rule_draft_id: row.try_get(3)?,
        published_by: row.try_get(4)?,
        approved_by: row.try_get(5)?,
        published_at: row.try_get(6)?,
        digest: row.try_get(7)?,
    })
}

/// Every published version, newest first.
///
/// # Errors
/// Database errors.
pub async fn versions(db: &Db) -> Result<Vec<Version>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS} FROM rule_set_version ORDER BY version DESC"
    ))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(version_from).collect()
}

/// The number of the version in force (0: the shipped rules).
///
/// # Errors
/// Database errors.
pub async fn latest_version(conn: &mut sqlx::AnyConnection) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM rule_set_version")
        .fetch_one(&mut *conn)
        .await?;
    row.try_get(0)
}

/// The rule set of `version` (0: the shipped rules) and its record (none for 0).
///
/// # Errors
/// [`RulesError::NotFound`] for an unknown version.
pub async fn version_rules(
    db: &Db,
    runtime: &RulesRuntime,
    version: i64,
) -> Result<(RuleSet, Option<Version>), RulesError> {
    if version == 0 {
        return Ok((runtime.shipped.clone(), None));
    }
    let row = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS}, packs FROM rule_set_version WHERE version = $1"
    ))
    .bind(version)
    .fetch_optional(db.pool())
    .await?
    .ok_or(RulesError::NotFound("rule set version"))?;
    let packs: String = row.try_get(8)?;
    Ok((decode(&packs)?, Some(version_from(&row)?)))
}

/// The version in force: its number, rules and record.
///
/// # Errors
/// Database errors.
pub async fn in_force(
    db: &Db,
    runtime: &RulesRuntime,
) -> Result<(i64, RuleSet, Option<Version>), RulesError> {
    let mut conn = db.pool().acquire().await?;
    let version = latest_version(&mut conn).await?;
    drop(conn);
    let (set, record) = version_rules(db, runtime, version).await?;
    Ok((version, set, record))
}

/// Compiles `set` on a blocking thread (a large rule set takes milliseconds to compile).
async fn compile(set: RuleSet) -> Result<Engine, Vec<String>> {
    tokio::task::spawn_blocking(move || Engine::compile(&set).map_err(|e| messages(&e)))
        .await
        .unwrap_or_else(|_| Err(vec!["compiling the rules failed".to_owned()]))
}

/// Loads `set` fully (compile and every rule's examples) and checks the secure-link message
/// templates against its outbound DLP: what a publish requires.
async fn validate_set(
    set: RuleSet,
    escalation: crate::escalation::EscalationSettings,
) -> Result<Engine, Vec<String>> {
    tokio::task::spawn_blocking(move || {
        let engine = Engine::load(&set).map_err(|e| messages(&e))?;
        crate::escalation::check_templates(&escalation, &engine)
            .map_err(|e| vec![format!("{e:#}")])?;
        Ok(engine)
    })
    .await
    .unwrap_or_else(|_| Err(vec!["checking the rules failed".to_owned()]))
}

/// Brings `redactor` up to the newest published version, if it is behind. Returns the version
/// installed, if any. A version that does not compile (a database edited by hand) is logged and
/// skipped: the engine in use stays.
///
/// # Errors
/// Database errors.
pub async fn sync(db: &Db, redactor: &Redactor) -> Result<Option<i64>, RulesError> {
    let mut conn = db.pool().acquire().await?;
    let latest = latest_version(&mut conn).await?;
    if latest <= redactor.version() {
        return Ok(None);
    }
    let row = sqlx::query("SELECT packs FROM rule_set_version WHERE version = $1")
        .bind(latest)
        .fetch_one(&mut *conn)
        .await?;
    drop(conn);
    let packs: String = row.try_get(0)?;
    let set = decode(&packs)?;
    match compile(set).await {
        Ok(engine) => {
            if redactor.install(engine, latest) {
                tracing::info!(version = latest, "redaction rule set installed");
                return Ok(Some(latest));
            }
            Ok(None)
        }
        Err(problems) => {
            tracing::error!(
                version = latest,
                problems = problems.len(),
                "a published rule set does not compile; the rules in use stay"
            );
            Ok(None)
        }
    }
}

/// The watcher: every `poll_interval`, installs a newly published version and writes the hit
/// counts gathered since the last round. Runs until the task is aborted.
pub async fn watch(state: actix_web::web::Data<crate::web::AppState>) {
    let mut tick = tokio::time::interval(state.rules.settings.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds: u64 = 0;
    loop {
        tick.tick().await;
        rounds += 1;
        if let Err(error) = sync(&state.db, &state.redactor).await {
            tracing::warn!(%error, "checking for a new rule set failed; trying again");
        }
        // Hit counts are written every few seconds at most: they are statistics, and one upsert
        // per rule per round is plenty.
        if rounds.is_multiple_of(5) {
            if let Err(error) = state.rules.hits.flush(&state.db).await {
                tracing::warn!(%error, "writing rule hit counts failed; they are kept for the next round");
            }
        }
    }
}

/// An open draft's record and rules.
#[derive(Debug, Clone, Serialize)]
pub struct Draft {
    pub id: String,
    pub based_on: i64,
    #[serde(skip)]
    pub packs: RuleSet,
    pub revision: i64,
    pub status: String,
    pub created_by: String,
    pub editors: Vec<String>,
    pub approved_by: Option<String>,
    pub approved_revision: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    pub published_version: Option<i64>,
}

impl Draft {
    /// Whether the current revision carries an approval.
    #[must_use]
    pub fn approved(&self) -> bool {
        self.approved_by.is_some() && self.approved_revision == Some(self.revision)
    }

    /// Whether `principal` may approve it: a compliance principal who neither made nor edited it.
    #[must_use]
    pub fn may_approve(&self, principal: &Principal) -> bool {
        let who = principal.actor_string();
        principal.role == Role::Compliance && self.created_by != who && !self.editors.contains(&who)
    }

    /// The rule `id`, with the name of its pack.
    #[must_use]
    pub fn rule(&self, id: &str) -> Option<(&str, &Rule)> {
        self.packs.iter().find_map(|(_, pack)| {
            pack.rules
                .iter()
                .find(|r| r.id == id)
                .map(|r| (pack.pack.as_str(), r))
        })
    }
}

const DRAFT_COLUMNS: &str =
    "rule_draft_id, based_on, packs, revision, status, created_by, editors, \
     approved_by, approved_revision, created_at, updated_at, published_version";

fn draft_from(row: &sqlx::any::AnyRow) -> Result<Draft, RulesError> {
    let packs: String = row.try_get(2)?;
    let editors: String = row.try_get(6)?;
    Ok(Draft {
        id: row.try_get(0)?,
        based_on: row.try_get(1)?,
        packs: decode(&packs)?,
        revision: row.try_get(3)?,
        status: row.try_get(4)?,
        created_by: row.try_get(5)?,
        editors: serde_json::from_str(&editors).map_err(|_| RulesError::Corrupt)?,
        approved_by: row.try_get(7)?,
        approved_revision: row.try_get(8)?,
        created_at: row.try_get(9)?,
        updated_at: row.try_get(10)?,
        published_version: row.try_get(11)?,
    })
}

/// A draft by id.
///
/// # Errors
/// [`RulesError::NotFound`].
pub async fn draft(db: &Db, id: &str) -> Result<Draft, RulesError> {
    let row = sqlx::query(&format!(
        "SELECT {DRAFT_COLUMNS} FROM rule_draft WHERE rule_draft_id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .ok_or(RulesError::NotFound("draft"))?;
    draft_from(&row)
}

/// Open drafts, newest first.
///
/// # Errors
/// Database errors.
pub async fn open_drafts(db: &Db) -> Result<Vec<Draft>, RulesError> {
    let rows = sqlx::query(&format!(
        "SELECT {DRAFT_COLUMNS} FROM rule_draft WHERE status = 'draft' ORDER BY created_at DESC"
    ))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(draft_from).collect()
}

/// Who may do what, and where: the context every change needs.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub db: &'a Db,
    pub vault: &'a Vault,
    pub runtime: &'a RulesRuntime,
    pub redactor: &'a Redactor,
    pub escalation: &'a crate::escalation::EscalationSettings,
    pub now: chrono::DateTime<chrono::Utc>,
}

impl<'a> Context<'a> {
    /// The context of a request to the running service.
    #[must_use]
    pub fn of(state: &'a crate::web::AppState) -> Self {
        Self {
            db: &state.db,
            vault: &state.vault,
            runtime: &state.rules,
            redactor: &state.redactor,
            escalation: &state.escalation.settings,
            now: state.clock.now(),
        }
    }
}

/// Makes a draft from the version in force (audited `rules.draft_create`).
///
/// # Errors
/// Forbidden for non-compliance roles; database errors.
pub async fn create_draft(cx: Context<'_>, principal: &Principal) -> Result<Draft, RulesError> {
    require(principal)?;
    let now = store::timestamp(cx.now);
    let id = store::new_id();
    // Read before the transaction: a publish racing this leaves the draft based on a version no
    // longer in force, and publishing it is then refused as stale.
    let mut conn = cx.db.pool().acquire().await?;
    let based_on = latest_version(&mut conn).await?;
    let packs = if based_on == 0 {
        cx.runtime.shipped.clone()
    } else {
        let row = sqlx::query("SELECT packs FROM rule_set_version WHERE version = $1")
            .bind(based_on)
            .fetch_one(&mut *conn)
            .await?;
        let text: String = row.try_get(0)?;
        decode(&text)?
    };
    drop(conn);
    let mut tx = cx.db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO rule_draft (rule_draft_id, based_on, packs, revision, status, created_by, editors, created_at, updated_at) \
         VALUES ($1, $2, $3, 1, 'draft', $4, '[]', $5, $5)",
    )
    .bind(&id)
    .bind(based_on)
    .bind(encode(&packs))
    .bind(principal.actor_string())
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        cx.vault.audit_key(),
        &Event::new(principal.actor(), "rules.draft_create")
            .subject("rule_draft", &id)
            .detail("based_on", based_on),
        &now,
    )
    .await?;
    tx.commit().await?;
    draft(cx.db, &id).await
}

/// A rule as sent by the editor: the pack it belongs to, the draft revision the editor saw (a
/// later change by someone else is a conflict, not a silent overwrite), and the rule itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEdit {
    pub pack: String,
    pub revision: Option<i64>,
    pub rule: Rule,
}

/// Compiles one rule on its own and runs its examples.
///
/// # Errors
/// Every problem, worded for the editor.
pub fn check_rule(pack: &str, rule: &Rule) -> Result<(), Vec<String>> {
    let single = vec![(
        pack_file(pack),
        Pack {
            pack: pack.to_owned(),
            description: String::new(),
            rules: vec![rule.clone()],
        },
    )];
    if !rule.enabled {
        // A disabled rule is not compiled by the engine; check it anyway, so that enabling it
        // later cannot publish a broken pattern.
        let mut enabled = single;
        if let Some(r) = enabled.first_mut().and_then(|(_, p)| p.rules.first_mut()) {
            r.enabled = true;
        }
        return Engine::load(&enabled).map(|_| ()).map_err(|e| messages(&e));
    }
    Engine::load(&single).map(|_| ()).map_err(|e| messages(&e))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Runs `change` on an open draft's rules inside a transaction and stores the result as the next
/// revision (withdrawing any approval), audited as `action` on `rule_id`.
async fn change_draft<F>(
    cx: Context<'_>,
    principal: &Principal,
    draft_id: &str,
    expected_revision: Option<i64>,
    action: &str,
    rule_id: &str,
    change: F,
) -> Result<Draft, RulesError>
where
    F: FnOnce(&mut RuleSet) -> Result<(), RulesError>,
{
    require(principal)?;
    let now = store::timestamp(cx.now);
    let mut tx = cx.db.pool().begin().await?;
    // The first statement writes, so SQLite takes its write lock before reading; PostgreSQL
    // locks the row until the commit.
    let row = sqlx::query(&format!(
        "UPDATE rule_draft SET updated_at = $1 WHERE rule_draft_id = $2 RETURNING {DRAFT_COLUMNS}"
    ))
    .bind(&now)
    .bind(draft_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(RulesError::NotFound("draft"))?;
    let mut current = draft_from(&row)?;
    if current.status != "draft" {
        return Err(RulesError::Conflict(format!(
            "the draft is {}; make a new draft",
            current.status
        )));
    }
    if let Some(expected) = expected_revision {
        if expected != current.revision {
            return Err(RulesError::Conflict(format!(
                "the draft changed since you opened it (revision {expected}, now {}); reload it",
                current.revision
            )));
        }
    }
    change(&mut current.packs)?;
    // The whole set must still compile (ids unique, the pattern set within its size limit).
    Engine::compile(&current.packs).map_err(|e| RulesError::Invalid(messages(&e)))?;
    let who = principal.actor_string();
    if !current.editors.contains(&who) {
        current.editors.push(who);
    }
    let editors = serde_json::to_string(&current.editors).map_err(|_| RulesError::Corrupt)?;
    sqlx::query(
        "UPDATE rule_draft SET packs = $1, revision = revision + 1, editors = $2, approved_by = NULL, approved_revision = NULL \
         WHERE rule_draft_id = $3",
    )
    .bind(encode(&current.packs))
    .bind(editors)
    .bind(draft_id)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        cx.vault.audit_key(),
        &Event::new(principal.actor(), action)
            .subject("rule_draft", draft_id)
            .subject("rule", rule_id)
            .detail("revision", current.revision + 1),
        &now,
    )
    .await?;
    tx.commit().await?;
    cx.runtime.forget(draft_id);
    draft(cx.db, draft_id).await
}

/// Adds or replaces a rule in a draft (audited `rules.rule_save`). The rule is compiled on its
/// own and its examples run first: a pattern that does not compile, is too large or can match
/// the empty string, and a failing example, are refused with the reason.
///
/// # Errors
/// [`RulesError::Invalid`] with the reasons; Conflict when the draft moved on or is closed.
pub async fn save_rule(
    cx: Context<'_>,
    principal: &Principal,
    draft_id: &str,
    edit: RuleEdit,
) -> Result<Draft, RulesError> {
    require(principal)?;
    if !valid_name(&edit.rule.id) {
        return Err(RulesError::BadRequest(
            "a rule id is 1 to 64 characters of a-z 0-9 - _".to_owned(),
        ));
    }
    if !valid_name(&edit.pack) {
        return Err(RulesError::BadRequest(
            "a pack name is 1 to 64 characters of a-z 0-9 - _".to_owned(),
        ));
    }
    check_rule(&edit.pack, &edit.rule).map_err(RulesError::Invalid)?;
    let rule_id = edit.rule.id.clone();
    change_draft(
        cx,
        principal,
        draft_id,
        edit.revision,
        "rules.rule_save",
        &rule_id,
        move |set| {
            let RuleEdit { pack, rule, .. } = edit;
            // Replace in place when the rule stays in its pack; otherwise move it.
            for (_, p) in set.iter_mut() {
                if let Some(slot) = p.rules.iter_mut().find(|r| r.id == rule.id) {
                    if p.pack == pack {
                        *slot = rule;
                        return Ok(());
                    }
                }
            }
            for (_, p) in set.iter_mut() {
                p.rules.retain(|r| r.id != rule.id);
            }
            if let Some((_, p)) = set.iter_mut().find(|(_, p)| p.pack == pack) {
                p.rules.push(rule);
            } else {
                set.push((
                    pack_file(&pack),
                    Pack {
                        pack,
                        description: "Added in the rule editor".to_owned(),
                        rules: vec![rule],
                    },
                ));
            }
            Ok(())
        },
    )
    .await
}

/// Removes a rule from a draft (audited `rules.rule_delete`).
///
/// # Errors
/// NotFound when the draft has no such rule.
pub async fn delete_rule(
    cx: Context<'_>,
    principal: &Principal,
    draft_id: &str,
    rule_id: &str,
    expected_revision: Option<i64>,
) -> Result<Draft, RulesError> {
    let id = rule_id.to_owned();
    change_draft(
        cx,
        principal,
        draft_id,
        expected_revision,
        "rules.rule_delete",
        rule_id,
        move |set| {
            let before: usize = set.iter().map(|(_, p)| p.rules.len()).sum();
            for (_, p) in set.iter_mut() {
                p.rules.retain(|r| r.id != id);
            }
            let after: usize = set.iter().map(|(_, p)| p.rules.len()).sum();
            if before == after {
                return Err(RulesError::NotFound("rule"));
            }
            Ok(())
        },
    )
    .await
}

/// Closes the draft's transaction step that needs the row locked: reads it for update.
async fn lock_draft(
    tx: &mut sqlx::AnyConnection,
    draft_id: &str,
    now: &str,
) -> Result<Draft, RulesError> {
    let row = sqlx::query(&format!(
        "UPDATE rule_draft SET updated_at = $1 WHERE rule_draft_id = $2 RETURNING {DRAFT_COLUMNS}"
    ))
    .bind(now)
    .bind(draft_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(RulesError::NotFound("draft"))?;
    let draft = draft_from(&row)?;
    if draft.status != "draft" {
        return Err(RulesError::Conflict(format!(
            "the draft is {}; make a new draft",
            draft.status
        )));
    }
    Ok(draft)
}

/// Approves revision `revision` of a draft (audited `rules.approve`): a compliance principal who
/// neither made nor edited it, and only when the whole set would publish.
///
/// # Errors
/// Forbidden for the author or an editor; Conflict when the revision is not current; Invalid when
/// the rules do not load.
pub async fn approve(
    cx: Context<'_>,
    principal: &Principal,
    draft_id: &str,
    revision: i64,
) -> Result<Draft, RulesError> {
    require(principal)?;
    let current = draft(cx.db, draft_id).await?;
    validate_set(current.packs.clone(), cx.escalation.clone())
        .await
        .map_err(RulesError::Invalid)?;
    let now = store::timestamp(cx.now);
    let mut tx = cx.db.pool().begin().await?;
    let locked = lock_draft(&mut tx, draft_id, &now).await?;
    if locked.revision != revision {
        return Err(RulesError::Conflict(format!(
            "the draft changed (revision {revision}, now {}); review it again",
            locked.revision
        )));
    }
    if locked.revision != current.revision {
        return Err(RulesError::Conflict(
            "the draft changed while it was checked; try again".to_owned(),
        ));
    }
    if !locked.may_approve(principal) {
        return Err(RulesError::Forbidden(
            "the two-person rule: a draft is approved by someone who neither made nor edited it"
                .to_owned(),
        ));
    }
    sqlx::query(
        "UPDATE rule_draft SET approved_by = $1, approved_revision = $2 WHERE rule_draft_id = $3",
    )
    .bind(principal.actor_string())
    .bind(revision)
    .bind(draft_id)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        cx.vault.audit_key(),
        &Event::new(principal.actor(), "rules.approve")
            .subject("rule_draft", draft_id)
            .detail("revision", revision),
        &now,
    )
    .await?;
    tx.commit().await?;
    draft(cx.db, draft_id).await
}

/// Publishes revision `revision` of a draft as the next version (audited `rules.publish`), and
/// installs it on this instance at once (the others pick it up within their poll interval).
///
/// # Errors
/// Forbidden without the second approval (two-person rule on); Conflict when stale or changed;
/// Invalid when the rules do not load.
pub async fn publish(
    cx: Context<'_>,
    principal: &Principal,
    draft_id: &str,
    revision: i64,
) -> Result<Version, RulesError> {
    require(principal)?;
    let current = draft(cx.db, draft_id).await?;
    let engine = validate_set(current.packs.clone(), cx.escalation.clone())
        .await
        .map_err(RulesError::Invalid)?;
    let now = store::timestamp(cx.now);
    let mut tx = cx.db.pool().begin().await?;
    let locked = lock_draft(&mut tx, draft_id, &now).await?;
    if locked.revision != revision || locked.revision != current.revision {
        return Err(RulesError::Conflict(format!(
            "the draft changed (revision {revision}, now {}); review it again",
            locked.revision
        )));
    }
    if cx.runtime.settings.two_person && !locked.approved() {
        return Err(RulesError::Forbidden(
            "the two-person rule: a second compliance user must approve this revision before it is published"
                .to_owned(),
        ));
    }
    let latest = latest_version(&mut tx).await?;
    if locked.based_on != latest {
        return Err(RulesError::Conflict(format!(
            "the draft is based on version {}, but version {latest} has been published since; make a new draft",
            locked.based_on
        )));
    }
    let version = latest + 1;
    let packs = encode(&locked.packs);
    let inserted = sqlx::query(
        "INSERT INTO rule_set_version (version, packs, digest, source, rule_draft_id, published_by, approved_by, published_at) \
         VALUES ($1, $2, $3, 'draft', $4, $5, $6, $7) ON CONFLICT (version) DO NOTHING",
    )
    .bind(version)
    .bind(&packs)
    .bind(digest(&packs))
    .bind(draft_id)
    .bind(principal.actor_string())
    .bind(locked.approved_by.as_deref())
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(RulesError::Conflict(
            "another rule set was published at the same moment; make a new draft".to_owned(),
        ));
    }
    sqlx::query(
        "UPDATE rule_draft SET status = 'published', published_version = $1 WHERE rule_draft_id = $2",
    )
    .bind(version)
    .bind(draft_id)
    .execute(&mut *tx)
    .await?;
    let version_text = version.to_string();
    audit::append(
        &mut tx,
        cx.vault.audit_key(),
        &Event::new(principal.actor(), "rules.publish")
            .subject("rule_draft", draft_id)
            .subject("rule_set_version", &version_text)
            .detail("revision", revision)
            .detail("approved", locked.approved()),
        &now,
    )
    .await?;
    tx.commit().await?;
    cx.redactor.install(engine, version);
    cx.runtime.forget(draft_id);
    Ok(Version {
        version,
        source: "draft".to_owned(),
        restores: None,
        rule_draft_id: Some(draft_id.to_owned()),
        published_by: principal.actor_string(),
        approved_by: locked.approved_by,
        published_at: now,
        digest: digest(&packs),
    })
}

/// Discards a draft (audited `rules.draft_discard`).
///
/// # Errors
/// Conflict when it is not open.
pub async fn discard(
    cx: Context<'_>,
    principal: &Principal,
    draft_id: &str,
) -> Result<(), RulesError> {
    require(principal)?;
    let now = store::timestamp(cx.now);
    let mut tx = cx.db.pool().begin().await?;
    lock_draft(&mut tx, draft_id, &now).await?;
    sqlx::query("UPDATE rule_draft SET status = 'discarded' WHERE rule_draft_id = $1")
        .bind(draft_id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        cx.vault.audit_key(),
        &Event::new(principal.actor(), "rules.draft_discard").subject("rule_draft", draft_id),
        &now,
    )
    .await?;
    tx.commit().await?;
    cx.runtime.forget(draft_id);
    Ok(())
}

/// Restores the rules of `to` (0: the shipped rules) as a new version (audited
/// `rules.rollback`), and installs it on this instance at once.
///
/// # Errors
/// NotFound for an unknown version; Invalid when those rules no longer load.
pub async fn rollback(
    cx: Context<'_>,
    principal: &Principal,
    to: i64,
) -> Result<Version, RulesError> {
    require(principal)?;
    let (set, _) = version_rules(cx.db, cx.runtime, to).await?;
    let engine = validate_set(set.clone(), cx.escalation.clone())
        .await
        .map_err(RulesError::Invalid)?;
    let now = store::timestamp(cx.now);
    let packs = encode(&set);
    let mut conn = cx.db.pool().acquire().await?;
    let latest = latest_version(&mut conn).await?;
    drop(conn);
    if to >= latest && latest > 0 {
        return Err(RulesError::Conflict(format!(
            "version {to} is the version in force; roll back to an earlier one"
        )));
    }
    let mut tx = cx.db.pool().begin().await?;
    // One statement numbers and writes the version (SQLite takes its write lock with it); two
    // racing rollbacks cannot both take a number.
    let version: i64 = sqlx::query(
        "INSERT INTO rule_set_version (version, packs, digest, source, restores, published_by, published_at) \
         SELECT COALESCE(MAX(version), 0) + 1, $1, $2, 'rollback', $3, $4, $5 FROM rule_set_version WHERE true \
         ON CONFLICT (version) DO NOTHING RETURNING version",
    )
    .bind(&packs)
    .bind(digest(&packs))
    .bind(to)
    .bind(principal.actor_string())
    .bind(&now)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        RulesError::Conflict(
            "another rule set was published at the same moment; try again".to_owned(),
        )
    })?
    .try_get(0)?;
    let version_text = version.to_string();
    audit::append(
        &mut tx,
        cx.vault.audit_key(),
        &Event::new(principal.actor(), "rules.rollback")
            .subject("rule_set_version", &version_text)
            .detail("restores", to),
        &now,
    )
    .await?;
    tx.commit().await?;
    cx.redactor.install(engine, version);
    Ok(Version {
        version,
        source: "rollback".to_owned(),
        restores: Some(to),
        rule_draft_id: None,
        published_by: principal.actor_string(),
        approved_by: None,
        published_at: now,
        digest: digest(&packs),
    })
}

impl RulesRuntime {
    /// The compiled engine of a draft's current revision, compiled once per revision.
    ///
    /// # Errors
    /// The compile errors (a draft always compiles when saved; a hand-edited row may not).
    pub async fn engine_for(&self, draft: &Draft) -> Result<Arc<Engine>, RulesError> {
        if let Some(engine) = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(id, revision, _)| *id == draft.id && *revision == draft.revision)
            .map(|(_, _, engine)| Arc::clone(engine))
        {
            return Ok(engine);
        }
        let engine = Arc::new(
            compile(draft.packs.clone())
                .await
                .map_err(RulesError::Invalid)?,
        );
        let mut compiled = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        compiled.retain(|(id, _, _)| *id != draft.id);
        compiled.insert(0, (draft.id.clone(), draft.revision, Arc::clone(&engine)));
        compiled.truncate(COMPILED_DRAFTS);
        Ok(engine)
    }

    fn forget(&self, draft_id: &str) {
        self.compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(id, _, _)| id != draft_id);
    }
}

/// One piece of a tested text: plain, or matched by a rule.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    /// The rule that matched this piece, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What it matched as: a value type (CARD_NUMBER) or a topic (payment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The test panel's answer: the text cut into plain and matched pieces, the redacted text and
/// the decisions. It holds the tester's own text and goes back to them only.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub segments: Vec<Segment>,
    pub redacted: String,
    pub topics: Vec<String>,
    pub intents: Vec<String>,
    pub escalate: bool,
    pub block_outbound: bool,
}

/// The most text the test panel takes.
pub const MAX_TEST_CHARS: usize = 4096;

/// Runs `engine` on `text` (one direction) for the test panel.
#[must_use]
pub fn test(engine: &Engine, text: &str, direction: crate::redact::rules::Direction) -> TestResult {
    let redaction = engine.redact(text, direction);
    // Value findings are disjoint; topic phrases may overlap them (or each other): a value wins,
    // then the earlier phrase.
    let mut spans: Vec<(usize, usize, String, String)> = redaction
        .findings
        .iter()
        .map(|f| {
            (
                f.byte_start,
                f.byte_end,
                f.rule.clone(),
                f.entity.as_str().to_owned(),
            )
        })
        .collect();
    for t in &redaction.topic_matches {
        if !spans
            .iter()
            .any(|&(s, e, ..)| t.byte_start < e && s < t.byte_end)
        {
            spans.push((
                t.byte_start,
                t.byte_end,
                t.rule.clone(),
                t.topic.as_str().to_owned(),
            ));
        }
    }
    spans.sort_by_key(|s| s.0);
    let mut segments = Vec::new();
    let mut cursor = 0;
    for (start, end, rule, kind) in spans {
        if start < cursor {
            continue;
        }
        if start > cursor {
            segments.push(Segment {
                text: text.get(cursor..start).unwrap_or_default().to_owned(),
                rule: None,
                kind: None,
            });
        }
        segments.push(Segment {
            text: text.get(start..end).unwrap_or_default().to_owned(),
            rule: Some(rule),
            kind: Some(kind),
        });
        cursor = end;
    }
    if cursor < text.len() {
        segments.push(Segment {
            text: text.get(cursor..).unwrap_or_default().to_owned(),
            rule: None,
            kind: None,
        });
    }
    TestResult {
        segments,
        redacted: redaction.text.to_string(),
        topics: redaction
            .topics
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
        intents: redaction
            .intents
            .iter()
            .map(|i| i.as_str().to_owned())
            .collect(),
        escalate: redaction.escalate,
        block_outbound: redaction.block_outbound,
    }
}

/// Hit counts per rule over the last 7 and 30 days (UTC days, today included), plus what this
/// instance has counted but not yet written.
///
/// # Errors
/// Database errors.
pub async fn hit_counts(
    db: &Db,
    runtime: &RulesRuntime,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<HashMap<String, (i64, i64)>, sqlx::Error> {
    runtime.hits.flush(db).await?;
    let day = |days: i64| {
        (now - chrono::Duration::days(days))
            .format("%Y-%m-%d")
            .to_string()
    };
    let rows = sqlx::query(
        "SELECT rule_id, CAST(SUM(CASE WHEN day >= $1 THEN hits ELSE 0 END) AS BIGINT), CAST(SUM(hits) AS BIGINT) \
         FROM rule_hit WHERE day >= $2 GROUP BY rule_id",
    )
    .bind(day(6))
    .bind(day(29))
    .fetch_all(db.pool())
    .await?;
    let mut counts = HashMap::new();
    for row in rows {
        let rule: String = row.try_get(0)?;
        counts.insert(rule, (row.try_get(1)?, row.try_get(2)?));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests;
