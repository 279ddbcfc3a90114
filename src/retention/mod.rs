//! Retention and legal holds (issue #8, item 3).
//!
//! # Legal holds
//!
//! A hold names a contact (all of its conversations, its consent history) or one conversation.
//! While it is active nothing it covers is deleted by the retention job, and the contact cannot be
//! erased ([`crate::subject::erase`] answers "held"). A hold carries a reason code from
//! [`REASONS`] and an optional note; the note may name a case or a person, so it is sealed under
//! the vault's staff key, bound to the hold's row, never stored in clear. Placing and releasing
//! are audited (`legal_hold.place`, `legal_hold.release`) in the same transaction.
//!
//! # The retention job
//!
//! [`run`] removes, per the [`Clock`], what outlived its period (`[retention]`, see
//! [`RetentionSettings`] for the defaults and why):
//!
//! | class | what goes | measured from |
//! |---|---|---|
//! | `message_content` | message rows (sealed body, media rows, the finished outbox row) | `message.created_at` |
//! | `secure_messages` | secure-channel messages | `created_at` |
//! | `notes` | internal notes (sealed under the contact's key) | `created_at` |
//! | `media_metadata` | `message_media` rows and the legacy `message.media_sealed` | the message's `created_at` |
//! | `secure_links` | the link and its token, code and customer-session rows | `secure_link.expires_at` |
//! | `consent_events` | consent events, except the newest opt-in/opt-out per contact and business number | `at` |
//! | `quiet_holds` | `quiet_hold` rows (content-free: a business message held by quiet hours, for the reports) | `at` |
//!
//! Quiet-hold records are proof that quiet hours were respected, so they keep the consent events'
//! period (`consent_events_days`) rather than the content's, and a legal hold on the held
//! message's conversation keeps them too.
//!
//! Conversation rows (ids, business number, times) and delivery-status events hold no content and
//! stay; consent proof always survives the messages (the settings refuse a consent period
//! shorter than the content period). A message whose outbox row is still pending or in flight is
//! never removed. Audit events are not this job's: `crate::audit` prunes them with a signed
//! checkpoint (see the call site in [`run`]).
//!
//! Rows are removed outright rather than shredded one by one: a row's ciphertext is gone with it.
//! (Shredding a whole contact by destroying its data key is erasure, [`crate::subject`].)
//!
//! # Several instances, short transactions
//!
//! Each batch (at most `batch` rows of one class) is its own transaction, whose first statement
//! takes the one-row `retention_lock` (a row lock on PostgreSQL, the write lock on SQLite). Placing
//! a hold and erasing take the same lock first, so a batch either sees a hold or finishes before
//! it is placed; two instances' batches run one after the other and the second finds nothing left
//! to remove. A run is idempotent: it deletes by condition, never by a list made earlier.
//!
//! Each run is recorded in `retention_run` (when, what started it, exact counts per class) and,
//! when it removed anything, in the audit trail (`retention.run`, counts per class).

use crate::audit::{self, Actor, Event};
use crate::clock::Clock;
use crate::config::RetentionSettings;
use crate::phone::E164;
use crate::store::{self, contacts, Db};
use crate::vault::{Aad, Vault};
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

/// The reason codes a hold may carry.
pub const REASONS: &[&str] = &[
    "litigation",
    "regulatory_inquiry",
    "investigation",
    "subpoena",
    "other",
];

/// Longest hold note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// Takes the retention lock for the rest of the transaction. Must be the transaction's first
/// statement (see the module documentation).
///
/// # Errors
/// Database errors.
pub async fn lock(conn: &mut AnyConnection, at: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE retention_lock SET touched_at = $1 WHERE lock_id = 1")
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// SQL: no active hold covers the conversation aliased `v`.
const NOT_HELD: &str = "NOT EXISTS (SELECT 1 FROM legal_hold h WHERE h.released_at IS NULL \
     AND h.contact_id = v.contact_id AND (h.conversation_id IS NULL OR h.conversation_id = v.conversation_id))";

/// What a hold is placed on.
#[derive(Debug, Clone, Copy)]
pub enum HoldTarget<'a> {
    /// The contact with this number: every conversation, and its consent history.
    Phone(&'a E164),
    /// One conversation.
    Conversation(&'a str),
}

/// Why a hold could not be placed or released. Never carries the number or the note.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("no contact has that number")]
    NoSuchContact,
    #[error("no such conversation")]
    NoSuchConversation,
    #[error("no such legal hold")]
    NotFound,
    #[error("the legal hold is already released")]
    AlreadyReleased,
    #[error(
        "the reason must be one of: litigation, regulatory_inquiry, investigation, subpoena, other"
    )]
    BadReason,
    #[error("the note is at most {MAX_NOTE_CHARS} characters")]
    NoteTooLong,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("a sealed value could not be made or opened")]
    Vault,
    #[error("the audit trail refused the event: {0}")]
    Audit(String),
}

impl From<audit::AuditError> for HoldError {
    fn from(error: audit::AuditError) -> Self {
        match error {
            audit::AuditError::Database(e) => Self::Database(e),
            other => Self::Audit(other.to_string()),
        }
    }
}

/// A legal hold as shown to compliance staff (the note opened).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hold {
    pub id: String,
    pub contact_id: String,
    pub conversation_id: Option<String>,
    pub reason: String,
    pub note: Option<String>,
    pub placed_by: String,
    pub placed_at: String,
    pub released_by: Option<String>,
    pub released_at: Option<String>,
}

/// How records outside the audit trail name an actor: `user:<id>`, `api_token:<id>`,
/// `cli:<operator>`, `system`.
#[must_use]
pub fn actor_string(actor: Actor<'_>) -> String {
    match actor {
        Actor::System => "system".to_owned(),
        other => format!("{}:{}", other.kind(), other.id()),
    }
}

/// Places a hold. The note is trimmed; an empty note is none.
///
/// # Errors
/// [`HoldError`]: an unknown number or conversation, a reason outside [`REASONS`], a note too
/// long, the database.
pub async fn place(
    db: &Db,
    vault: &Vault,
    actor: Actor<'_>,
    target: HoldTarget<'_>,
    reason: &str,
    note: Option<&str>,
    at: &str,
) -> Result<Hold, HoldError> {
    if !REASONS.contains(&reason) {
        return Err(HoldError::BadReason);
    }
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS) {
        return Err(HoldError::NoteTooLong);
    }
    let id = store::new_id();
    let note_sealed = note
        .map(|n| {
            vault
                .seal_staff(n.as_bytes(), Aad::new("legal_hold", "note_sealed", &id))
                .map_err(|_| HoldError::Vault)
        })
        .transpose()?;
    let mut tx = db.pool().begin().await?;
    lock(&mut tx, at).await?;
    let (contact_id, conversation_id) = match target {
        HoldTarget::Phone(phone) => {
            let index = vault.phone_index(phone);
            let mut contact = contacts::find(&mut tx, &index).await?;
            // A miss is checked against a blind-index generation a re-index may just have added.
            if contact.is_none()
                && crate::keys::index::moved_on(&mut tx, vault, index.generation())
                    .await
                    .map_err(|e| match e {
                        crate::keys::index::RefreshError::Database(e) => HoldError::Database(e),
                        _ => HoldError::Vault,
                    })?
            {
                contact = contacts::find(&mut tx, &vault.phone_index(phone)).await?;
            }
            (contact.ok_or(HoldError::NoSuchContact)?.contact_id, None)
        }
        HoldTarget::Conversation(conversation) => {
            let row = sqlx::query("SELECT contact_id FROM conversation WHERE conversation_id = $1")
                .bind(conversation)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(HoldError::NoSuchConversation)?;
            (row.try_get::<String, _>(0)?, Some(conversation.to_owned()))
        }
    };
    let placed_by = actor_string(actor);
    sqlx::query(
        "INSERT INTO legal_hold (legal_hold_id, contact_id, conversation_id, reason, note_sealed, placed_by, placed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(&contact_id)
    .bind(conversation_id.as_deref())
    .bind(reason)
    .bind(note_sealed)
    .bind(&placed_by)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let mut event = Event::new(actor, "legal_hold.place")
        .subject("legal_hold", &id)
        .subject("contact", &contact_id)
        .detail("reason", reason)
        .detail("note", note.is_some());
    if let Some(conversation) = conversation_id.as_deref() {
        event = event.subject("conversation", conversation);
    }
    audit::append(&mut tx, vault.audit_key(), &event, at).await?;
    tx.commit().await?;
    Ok(Hold {
        id,
        contact_id,
        conversation_id,
        reason: reason.to_owned(),
        note: note.map(str::to_owned),
        placed_by,
        placed_at: at.to_owned(),
        released_by: None,
        released_at: None,
    })
}

/// Releases an active hold.
///
/// # Errors
/// [`HoldError::NotFound`], [`HoldError::AlreadyReleased`], the database.
pub async fn release(
    db: &Db,
    vault: &Vault,
    actor: Actor<'_>,
    hold_id: &str,
    at: &str,
) -> Result<Hold, HoldError> {
    let mut tx = db.pool().begin().await?;
    lock(&mut tx, at).await?;
    let released = sqlx::query(
        "UPDATE legal_hold SET released_at = $1, released_by = $2 WHERE legal_hold_id = $3 AND released_at IS NULL",
    )
    .bind(at)
    .bind(actor_string(actor))
    .bind(hold_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let Some(hold) = fetch(&mut tx, vault, hold_id).await? else {
        tx.rollback().await.ok();
        return Err(HoldError::NotFound);
    };
    if released == 0 {
        tx.rollback().await.ok();
        return Err(HoldError::AlreadyReleased);
    }
    let mut event = Event::new(actor, "legal_hold.release")
        .subject("legal_hold", hold_id)
        .subject("contact", &hold.contact_id);
    if let Some(conversation) = hold.conversation_id.as_deref() {
        event = event.subject("conversation", conversation);
    }
    audit::append(&mut tx, vault.audit_key(), &event, at).await?;
    tx.commit().await?;
    Ok(hold)
}

const HOLD_COLUMNS: &str = "legal_hold_id, contact_id, conversation_id, reason, note_sealed, \
     placed_by, placed_at, released_by, released_at";

fn hold_from_row(vault: &Vault, row: &sqlx::any::AnyRow) -> Result<Hold, HoldError> {
    let id: String = row.try_get(0)?;
    let note_sealed: Option<Vec<u8>> = row.try_get(4)?;
    let note = note_sealed
        .map(|sealed| {
            vault
                .open_staff(&sealed, Aad::new("legal_hold", "note_sealed", &id))
                .map_err(|_| HoldError::Vault)
                .map(|plain| String::from_utf8_lossy(&plain).into_owned())
        })
        .transpose()?;
    Ok(Hold {
        contact_id: row.try_get(1)?,
        conversation_id: row.try_get(2)?,
        reason: row.try_get(3)?,
        note,
        placed_by: row.try_get(5)?,
        placed_at: row.try_get(6)?,
        released_by: row.try_get(7)?,
        released_at: row.try_get(8)?,
        id,
    })
}

/// One hold by id.
///
/// # Errors
/// The database; a note that does not open.
pub async fn fetch(
    conn: &mut AnyConnection,
    vault: &Vault,
    hold_id: &str,
) -> Result<Option<Hold>, HoldError> {
    sqlx::query(&format!(
        "SELECT {HOLD_COLUMNS} FROM legal_hold WHERE legal_hold_id = $1"
    ))
    .bind(hold_id)
    .fetch_optional(conn)
    .await?
    .map(|row| hold_from_row(vault, &row))
    .transpose()
}

/// The active holds, newest first; with `contact_id`, that contact's only.
///
/// # Errors
/// The database; a note that does not open.
pub async fn active(
    conn: &mut AnyConnection,
    vault: &Vault,
    contact_id: Option<&str>,
) -> Result<Vec<Hold>, HoldError> {
    let order = "ORDER BY placed_at DESC, legal_hold_id DESC";
    let rows = match contact_id {
        Some(contact) => {
            sqlx::query(&format!(
                "SELECT {HOLD_COLUMNS} FROM legal_hold WHERE released_at IS NULL AND contact_id = $1 {order}"
            ))
            .bind(contact)
            .fetch_all(conn)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {HOLD_COLUMNS} FROM legal_hold WHERE released_at IS NULL {order}"
            ))
            .fetch_all(conn)
            .await?
        }
    };
    rows.iter().map(|row| hold_from_row(vault, row)).collect()
}

/// Whether any active hold covers any of the contact's data (the contact itself or one of its
/// conversations).
///
/// # Errors
/// The database.
pub async fn contact_is_held(
    conn: &mut AnyConnection,
    contact_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "SELECT legal_hold_id FROM legal_hold WHERE contact_id = $1 AND released_at IS NULL LIMIT 1",
    )
    .bind(contact_id)
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The background job.
    Worker,
    /// `drawbridge retention run`, by this operator.
    Cli,
}

/// The classes a run removes, in the order it removes them.
pub const CLASSES: &[&str] = &[
    "message_content",
    "secure_messages",
    "notes",
    "media_metadata",
    "secure_links",
    "consent_events",
    "quiet_holds",
];

/// What one run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub run_id: String,
    /// Rows removed per class (every class of [`CLASSES`] present).
    pub counts: BTreeMap<&'static str, u64>,
}

impl RunReport {
    /// Rows removed in all.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// The moment `days` before `now`, as stored.
fn cutoff(clock: &Clock, days: u32) -> String {
    let now = clock.now();
    store::timestamp(
        now.checked_sub_signed(chrono::Duration::days(i64::from(days)))
            .unwrap_or(now),
    )
}

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `sql` (with `{ids}` standing for the id list) binding `ids`; returns the rows affected.
async fn by_ids(conn: &mut AnyConnection, sql: &str, ids: &[String]) -> Result<u64, sqlx::Error> {
    let sql = sql.replace("{ids}", &placeholders(1, ids.len()));
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(id);
    }
    Ok(query.execute(conn).await?.rows_affected())
}

/// One batch of one class, in its own transaction. Returns the rows removed (0: nothing left).
async fn batch(
    db: &Db,
    class: &str,
    cutoff: &str,
    limit: i64,
    at: &str,
) -> Result<u64, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    lock(&mut tx, at).await?;
    let select = match class {
        "message_content" => format!(
            "SELECT m.message_id FROM message m JOIN conversation v ON v.conversation_id = m.conversation_id \
             WHERE m.created_at < $1 AND {NOT_HELD} AND NOT EXISTS (SELECT 1 FROM outbox o \
             WHERE o.message_id = m.message_id AND o.state IN ('pending', 'in_flight')) \
             ORDER BY m.message_id LIMIT $2"
        ),
        "secure_messages" => format!(
            "SELECT s.secure_message_id FROM secure_message s JOIN conversation v ON v.conversation_id = s.conversation_id \
             WHERE s.created_at < $1 AND {NOT_HELD} ORDER BY s.secure_message_id LIMIT $2"
        ),
        "notes" => format!(
            "SELECT n.note_id FROM note n JOIN conversation v ON v.conversation_id = n.conversation_id \
             WHERE n.created_at < $1 AND {NOT_HELD} ORDER BY n.note_id LIMIT $2"
        ),
        "media_metadata" => format!(
            "SELECT m.message_id FROM message m JOIN conversation v ON v.conversation_id = m.conversation_id \
             WHERE m.created_at < $1 AND {NOT_HELD} AND (m.media_sealed IS NOT NULL OR EXISTS \
             (SELECT 1 FROM message_media d WHERE d.message_id = m.message_id)) ORDER BY m.message_id LIMIT $2"
        ),
        "secure_links" => format!(
            "SELECT l.secure_link_id FROM secure_link l JOIN conversation v ON v.conversation_id = l.conversation_id \
             WHERE l.expires_at < $1 AND {NOT_HELD} ORDER BY l.secure_link_id LIMIT $2"
        ),
        "consent_events" => "SELECT e.consent_event_id FROM consent_event e WHERE e.at < $1 \
             AND NOT EXISTS (SELECT 1 FROM legal_hold h WHERE h.released_at IS NULL AND h.contact_id = e.contact_id) \
             AND (e.kind NOT IN ('opt_in', 'opt_out') OR EXISTS (SELECT 1 FROM consent_event n \
                  WHERE n.contact_id = e.contact_id AND n.business_number = e.business_number \
                  AND n.kind IN ('opt_in', 'opt_out') \
                  AND (n.at > e.at OR (n.at = e.at AND n.consent_event_id > e.consent_event_id)))) \
             ORDER BY e.consent_event_id LIMIT $2"
            .to_owned(),
        "quiet_holds" => format!(
            "SELECT q.hold_id FROM quiet_hold q WHERE q.at < $1 AND NOT EXISTS (SELECT 1 FROM message m \
             JOIN conversation v ON v.conversation_id = m.conversation_id \
             WHERE m.message_id = q.message_id AND NOT {NOT_HELD}) ORDER BY q.hold_id LIMIT $2"
        ),
        _ => return Ok(0),
    };
    let ids: Vec<String> = sqlx::query(&select)
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        tx.rollback().await.ok();
        return Ok(0);
    }
    let removed = match class {
        "message_content" => {
            by_ids(
                &mut tx,
                "DELETE FROM message_media WHERE message_id IN ({ids})",
                &ids,
            )
            .await?;
            by_ids(
                &mut tx,
                "DELETE FROM outbox WHERE message_id IN ({ids})",
                &ids,
            )
            .await?;
            by_ids(
                &mut tx,
                "DELETE FROM message WHERE message_id IN ({ids})",
                &ids,
            )
            .await?
        }
        "secure_messages" => {
            by_ids(
                &mut tx,
                "DELETE FROM secure_message WHERE secure_message_id IN ({ids})",
                &ids,
            )
            .await?
        }
        "notes" => by_ids(&mut tx, "DELETE FROM note WHERE note_id IN ({ids})", &ids).await?,
        "media_metadata" => {
            let rows = by_ids(
                &mut tx,
                "DELETE FROM message_media WHERE message_id IN ({ids})",
                &ids,
            )
            .await?;
            let legacy = by_ids(
                &mut tx,
                "UPDATE message SET media_sealed = NULL WHERE media_sealed IS NOT NULL AND message_id IN ({ids})",
                &ids,
            )
            .await?;
            rows + legacy
        }
        "secure_links" => {
            for table in ["customer_session", "secure_code", "secure_link_token"] {
                by_ids(
                    &mut tx,
                    &format!("DELETE FROM {table} WHERE secure_link_id IN ({{ids}})"),
                    &ids,
                )
                .await?;
            }
            by_ids(
                &mut tx,
                "DELETE FROM secure_link WHERE secure_link_id IN ({ids})",
                &ids,
            )
            .await?
        }
        "quiet_holds" => {
            by_ids(
                &mut tx,
                "DELETE FROM quiet_hold WHERE hold_id IN ({ids})",
                &ids,
            )
            .await?
        }
        _ => {
            by_ids(
                &mut tx,
                "DELETE FROM consent_event WHERE consent_event_id IN ({ids})",
                &ids,
            )
            .await?
        }
    };
    tx.commit().await?;
    // Zero (the rows went between the select and the delete) ends the class's loop.
    Ok(removed)
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("database error during the retention run")]
    Database(#[from] sqlx::Error),
    #[error("the audit trail refused the retention run's event: {0}")]
    Audit(String),
}

/// The audit trail refuses runs of six digits; a count that large is recorded as a word (the
/// run's own row keeps the exact number).
fn audit_count(n: u64) -> serde_json::Value {
    if n < 100_000 {
        serde_json::Value::from(n)
    } else {
        serde_json::Value::from("100k_or_more")
    }
}

/// Runs the retention job once: every class, in batches, then records the run. See the module
/// documentation.
///
/// # Errors
/// [`RunError`]; what earlier batches removed stays removed and is recorded in the run's row
/// as far as the database allows.
pub async fn run(
    db: &Db,
    vault: &Vault,
    clock: &Clock,
    settings: &RetentionSettings,
    trigger: Trigger,
    actor: Actor<'_>,
) -> Result<RunReport, RunError> {
    let run_id = store::new_id();
    let started = clock.timestamp();
    sqlx::query(
        "INSERT INTO retention_run (retention_run_id, started_at, trigger_kind) VALUES ($1, $2, $3)",
    )
    .bind(&run_id)
    .bind(&started)
    .bind(match trigger {
        Trigger::Worker => "worker",
        Trigger::Cli => "cli",
    })
    .execute(db.pool())
    .await?;
    let mut report = RunReport {
        run_id: run_id.clone(),
        counts: CLASSES.iter().map(|c| (*c, 0)).collect(),
    };
    let limit = i64::from(settings.batch.max(1));
    let mut failure = None;
    'classes: for class in CLASSES {
        let days = match *class {
            "message_content" | "secure_messages" | "notes" => settings.message_content_days,
            "media_metadata" => settings.media_metadata_days,
            "secure_links" => settings.secure_links_days,
            // "consent_events" and "quiet_holds": proof of compliance.
            _ => settings.consent_events_days,
        };
        let cutoff = cutoff(clock, days);
        loop {
            match batch(db, class, &cutoff, limit, &clock.timestamp()).await {
                Ok(0) => break,
                Ok(n) => *report.counts.entry(class).or_default() += n,
                Err(error) => {
                    failure = Some(error);
                    break 'classes;
                }
            }
        }
    }
    // Audit events: `crate::audit::prune` deletes the oldest and leaves a signed checkpoint, so the
    // rest of the chain still verifies. A broken trail is not pruned (it is logged, for someone to
    // look at with `drawbridge audit verify`), and that does not stop the other classes.
    if failure.is_none() {
        let now = clock.now();
        let older_than = now
            .checked_sub_signed(chrono::Duration::days(i64::from(
                settings.audit_events_days,
            )))
            .unwrap_or(now);
        match crate::audit::prune::prune(db, vault.audit_key(), older_than, clock, actor).await {
            Ok(pruned) => {
                report.counts.insert("audit_events", pruned.deleted);
            }
            Err(error) => {
                tracing::error!(%error, "audit events past their retention were not pruned");
            }
        }
    }
    let counts_json = serde_json::to_string(&report.counts).unwrap_or_else(|_| "{}".to_owned());
    let finished = clock.timestamp();
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "UPDATE retention_run SET finished_at = $1, counts = $2, error = $3 WHERE retention_run_id = $4",
    )
    .bind(&finished)
    .bind(&counts_json)
    .bind(failure.as_ref().map(|_| "database error"))
    .bind(&run_id)
    .execute(&mut *tx)
    .await?;
    if report.total() > 0 {
        let mut event = Event::new(actor, "retention.run").subject("retention_run", &run_id);
        for (class, n) in &report.counts {
            event = event.detail(class, audit_count(*n));
        }
        event = event.detail("complete", failure.is_none());
        audit::append(&mut tx, vault.audit_key(), &event, &finished)
            .await
            .map_err(|e| RunError::Audit(e.to_string()))?;
    }
    tx.commit().await?;
    match failure {
        Some(error) => Err(error.into()),
        None => Ok(report),
    }
}

/// The background job: runs [`run`] every `interval` (the first run one interval after start).
#[derive(Debug)]
pub struct RetentionHandle {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RetentionHandle {
    /// Stops the job, letting a batch in progress finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the background job (`startup` calls this when `[retention] enabled`).
#[must_use]
pub fn spawn(
    state: actix_web::web::Data<crate::web::AppState>,
    settings: RetentionSettings,
) -> RetentionHandle {
    let (stop, mut stopping) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let start = tokio::time::Instant::now() + settings.interval;
        let mut tick = tokio::time::interval_at(start, settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopping.changed() => break,
            }
            if *stopping.borrow() {
                break;
            }
            match run(
                &state.db,
                &state.vault,
                &state.clock,
                &settings,
                Trigger::Worker,
                Actor::System,
            )
            .await
            {
                Ok(report) if report.total() > 0 => {
                    tracing::info!(run = %report.run_id, removed = report.total(), "retention run");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "retention run stopped early"),
            }
        }
    });
    RetentionHandle { stop, task }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_from_the_first() {
        assert_eq!(placeholders(1, 3), "$1, $2, $3");
        assert_eq!(placeholders(2, 1), "$2");
    }

    #[test]
    fn large_counts_never_become_digit_runs_in_the_audit_trail() {
        assert_eq!(audit_count(99_999), serde_json::json!(99_999));
        assert_eq!(audit_count(100_000), serde_json::json!("100k_or_more"));
    }

    #[test]
    fn actors_are_named_as_elsewhere() {
        assert_eq!(actor_string(Actor::User("u1")), "user:u1");
        assert_eq!(actor_string(Actor::Cli("ops")), "cli:ops");
        assert_eq!(actor_string(Actor::System), "system");
    }
}
