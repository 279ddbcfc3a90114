//! The audit trail: an append-only, hash-chained log of who did what.
//!
//! Every consent change, override and configuration change — and, as later issues add them, every
//! view of message content, reveal, export, rule change and admin action (`DESIGN.md`, "Consoles
//! and access") — is written here with [`append`], in the same transaction as the change itself,
//! so that a change is never committed without its event nor an event without its change.
//!
//! # The chain
//!
//! Rows are numbered 1, 2, 3, … (`seq`) without gaps. Each row stores the previous row's hash
//! (`prev_hash`; 32 zero bytes before row 1) and its own `hash`:
//!
//! ```text
//! hash(n) = HMAC-SHA256(audit key, canonical(prev_hash = hash(n-1), row n))
//! ```
//!
//! The audit key is derived from the master key ([`crate::vault::AuditKey`]) and never stored, so
//! someone who can write to the database but does not hold the master key cannot make a row that
//! verifies. Editing a row breaks its hash; deleting one leaves a gap in `seq`; inserting or
//! reordering rows breaks the `prev_hash` links; deleting the newest rows leaves the trail shorter
//! than the head row (`audit_head`) records. [`verify`] walks the whole chain and names the first
//! bad row; `drawbridge audit verify` ([`cli::verify_command`]) prints it.
//!
//! What the chain cannot show on its own: someone with write access to the database who deletes
//! the newest rows *and* rolls the head back to an earlier (genuine) state leaves a shorter trail
//! that still verifies. Catching that takes a copy of the head kept outside the database:
//! [`prune::anchor`] (`drawbridge audit anchor`, `/compliance/audit/anchor`) exports the head and
//! the checkpoint signed with the audit key, and [`prune::check_anchor`] compares such a copy with
//! the trail.
//!
//! # Pruning and the checkpoint
//!
//! Retention ([`prune::prune`], `drawbridge audit prune`) deletes the oldest events — always a
//! prefix of the chain, after re-verifying it — and leaves one signed checkpoint row
//! (`audit_checkpoint`): the last pruned event's `seq` and `hash`, the number pruned in all, the
//! cut-off, the time and the key version, under an HMAC with the audit key. [`verify`] then
//! starts from the checkpoint instead of the genesis: the first remaining row must be
//! `last_seq + 1` and carry `last_hash` as its `prev_hash`. An edited or forged checkpoint fails
//! its HMAC ([`Problem::Checkpoint`]); a deleted checkpoint leaves the trail starting after #1
//! ([`Problem::Missing`] at 1); a further deletion after the checkpoint leaves a gap; a pruned row
//! put back is [`Problem::BeforeStart`]. Pruning is itself an event (`audit.prune`).
//!
//! # Canonical encoding
//!
//! The HMAC covers these bytes, in this order (`canonical` in this module):
//!
//! ```text
//! "drawbridge/audit/v1"                      19 bytes, ASCII, no length prefix
//! field(prev_hash)                           as stored (32 bytes)
//! field(seq)                                 8 bytes, big-endian two's complement
//! field(key_version)                         8 bytes, big-endian two's complement
//! field(at)                                  UTF-8, as stored
//! field(actor_kind)                          UTF-8: system | user | api_token | cli
//! field(actor_id)                            UTF-8, '' for the system
//! field(action)                              UTF-8
//! field(subjects)                            the stored JSON text, byte for byte
//! field(details)                             the stored JSON text, byte for byte
//!
//! field(bytes) = length of bytes as u64 big-endian (8 bytes) || bytes
//! ```
//!
//! A fixed list of fields, each prefixed with its length, parses back in exactly one way, so no
//! two different rows encode alike (an `actor_id` cannot borrow bytes from `action`, say). The
//! JSON columns are hashed as the text stored, not re-serialized, so verification never depends
//! on a JSON library's choice of key order or number format.
//!
//! # Concurrency
//!
//! [`append`] first updates the one-row head (`UPDATE audit_head … RETURNING`), then inserts the
//! row, then records its hash in the head. On PostgreSQL the first update takes the head's row
//! lock until the caller's transaction ends, so appends from any number of instances are
//! serialized and each sees its predecessor's hash; on SQLite the update makes the transaction the
//! database's single writer before it has read anything, which avoids the failure of a deferred
//! transaction that reads and then tries to upgrade to a writer (`SQLITE_BUSY_SNAPSHOT`).
//!
//! Callers: on PostgreSQL append as the **last** write of the transaction (the head lock is held
//! until commit, and taking it last keeps it short and avoids lock-order deadlocks with other
//! rows); on SQLite make sure the transaction's first statement is a write — the caller's own
//! change, or the append itself. A caller's transaction at REPEATABLE READ or SERIALIZABLE on
//! PostgreSQL can fail to update the head with a serialization failure (40001) under concurrency;
//! [`crate::store::is_unavailable`] counts that as retryable.
//!
//! # No sensitive values
//!
//! Actors and subjects are our own opaque ids (UUIDs, token ids, operator names); the action is a
//! dotted word. Details are a small JSON object of short scalars — rule ids, keyword words,
//! codes — and [`append`] refuses, with a typed [`Invalid`], anything that looks like customer
//! data: a run of six or more digits (counting digits joined by spaces, dashes, dots, slashes,
//! parentheses or plus signs, so `555-123-4567` and `4242 4242 4242 4242` count), an `@`, or
//! more than 200 characters. The refusal names the detail's key, never its value.

pub mod cli;
pub mod prune;
pub mod query;

use crate::store::Db;
use crate::vault::AuditKey;
use serde_json::Value;
use sqlx::{AnyConnection, Row};
use std::fmt;

/// Domain separation for the chain's HMAC input; a new encoding gets a new tag.
const DOMAIN: &[u8] = b"drawbridge/audit/v1";

/// Bytes of a chain hash (HMAC-SHA256).
pub const HASH_LEN: usize = 32;

/// The hash before the first row.
const GENESIS_HASH: [u8; HASH_LEN] = [0; HASH_LEN];

/// Most subjects one event may name.
pub const MAX_SUBJECTS: usize = 16;
/// Most entries in an event's details.
pub const MAX_DETAILS: usize = 32;
/// Most items in one list-valued detail.
pub const MAX_LIST_ITEMS: usize = 32;
/// Longest detail string, in characters: past this it is free text, not a code.
pub const MAX_TEXT_CHARS: usize = 200;
/// Longest serialized details object, in bytes.
pub const MAX_DETAILS_BYTES: usize = 4096;
/// Shortest run of digits refused in details (phone, card, account and id numbers are longer).
pub const DIGIT_RUN: usize = 6;
/// Longest action, actor id, subject kind, subject id or detail key.
const MAX_ACTION_CHARS: usize = 64;
const MAX_ID_CHARS: usize = 128;
const MAX_WORD_CHARS: usize = 64;

/// Rows read per query while verifying.
const VERIFY_PAGE: i64 = 1000;

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    /// Drawbridge itself: a worker, a carrier's report, a customer's keyword processed by the
    /// pipeline.
    System,
    /// A console user, by user id.
    User(&'a str),
    /// An API client, by the token's id (never the token).
    ApiToken(&'a str),
    /// An operator at the command line, by operator name.
    Cli(&'a str),
}

impl<'a> Actor<'a> {
    /// The stored `actor_kind`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User(_) => "user",
            Self::ApiToken(_) => "api_token",
            Self::Cli(_) => "cli",
        }
    }

    /// The stored `actor_id`: empty for the system.
    #[must_use]
    pub fn id(&self) -> &'a str {
        match self {
            Self::System => "",
            Self::User(id) | Self::ApiToken(id) | Self::Cli(id) => id,
        }
    }
}

/// One thing that happened, before it is appended.
///
/// `Debug` shows the actor, action, subjects and the detail *keys*: an event that [`append`]
/// would refuse for holding a sensitive value must not print it either.
#[derive(Clone)]
pub struct Event<'a> {
    pub actor: Actor<'a>,
    /// A dotted lower-case word: `consent.opt_out`, `rules.publish`, `config.change`.
    pub action: &'a str,
    /// What it happened to, as `(kind, id)` pairs: `("contact", id)`, `("conversation", id)`.
    pub subjects: Vec<(&'a str, &'a str)>,
    /// A JSON object of short scalars (or short lists of them): rule ids, keyword words, codes.
    pub details: Value,
}

impl<'a> Event<'a> {
    /// An event with no subjects and empty details.
    #[must_use]
    pub fn new(actor: Actor<'a>, action: &'a str) -> Self {
        Self {
            actor,
            action,
            subjects: Vec::new(),
            details: Value::Object(serde_json::Map::new()),
        }
    }

    /// Checks the event as [`append`] would, without writing it: for callers that must refuse
    /// bad input (a client's text) before they change anything.
    ///
    /// # Errors
    /// What [`append`] would refuse.
    pub fn validate(&self) -> Result<(), Invalid> {
        prepare(self, &crate::store::timestamp(chrono::DateTime::UNIX_EPOCH)).map(|_| ())
    }

    /// Adds a subject.
    #[must_use]
    pub fn subject(mut self, kind: &'a str, id: &'a str) -> Self {
        self.subjects.push((kind, id));
        self
    }

    /// Sets one detail (details that are not an object are replaced by one).
    #[must_use]
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        if !self.details.is_object() {
            self.details = Value::Object(serde_json::Map::new());
        }
        if let Value::Object(map) = &mut self.details {
            map.insert(key.to_owned(), value.into());
        }
        self
    }
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = match &self.details {
            Value::Object(map) => map.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        f.debug_struct("Event")
            .field("actor", &self.actor)
            .field("action", &self.action)
            .field("subjects", &self.subjects)
            .field("detail_keys", &keys)
            .finish()
    }
}

/// Why an event was refused. Names the field (and a detail's key, once it is known to be a plain
/// word), never the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the action must be dotted lower-case words (e.g. consent.opt_out), at most {MAX_ACTION_CHARS} characters")]
    Action,
    #[error("the actor id must be 1 to {MAX_ID_CHARS} characters of A-Z a-z 0-9 . _ : -")]
    ActorId,
    #[error(
        "the time must be UTC RFC 3339 with microseconds, as crate::store::timestamp writes it"
    )]
    Timestamp,
    #[error("an event names at most {MAX_SUBJECTS} subjects")]
    TooManySubjects,
    #[error("subject {index}: the kind must be a lower-case word")]
    SubjectKind { index: usize },
    #[error(
        "subject {index}: the id must be 1 to {MAX_ID_CHARS} characters of A-Z a-z 0-9 . _ : -"
    )]
    SubjectId { index: usize },
    #[error("details must be a JSON object")]
    DetailsNotObject,
    #[error("details hold at most {MAX_DETAILS} entries")]
    TooManyDetails,
    #[error("details: key {index} (in order) is not a lower-case word")]
    DetailKey { index: usize },
    #[error("details.{key}: only strings, numbers, booleans, null or short lists of them")]
    NotScalar { key: String },
    #[error(
        "details.{key}: a run of {DIGIT_RUN} or more digits (a phone, card or account number?)"
    )]
    Digits { key: String },
    #[error("details.{key}: contains @ (an e-mail address?)")]
    At { key: String },
    #[error("details.{key}: longer than {MAX_TEXT_CHARS} characters (free text?)")]
    TooLong { key: String },
    #[error("details are longer than {MAX_DETAILS_BYTES} bytes")]
    TooLarge,
}

/// What can go wrong appending.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The event was refused before anything was written.
    #[error("audit event refused: {0}")]
    Invalid(#[from] Invalid),
    /// The head row is gone: someone deleted it, and the trail must be looked at before anything
    /// more is appended.
    #[error("the audit trail's head row is missing; run `drawbridge audit verify`")]
    HeadMissing,
    #[error("database error writing the audit trail")]
    Database(#[from] sqlx::Error),
}

/// Appends `event`, which happened at `at` (UTC RFC 3339 with microseconds, e.g.
/// [`crate::store::now`]), in the caller's transaction on `conn`, and returns its sequence number.
/// See the module documentation for where in a transaction to call it.
///
/// # Errors
/// [`AuditError::Invalid`] (nothing written) when the event breaks the rules above;
/// [`AuditError::HeadMissing`] when the head row has been deleted; database errors. The caller's
/// transaction should then be rolled back, so the change is not committed without its event.
pub async fn append(
    conn: &mut AnyConnection,
    key: &AuditKey,
    event: &Event<'_>,
    at: &str,
) -> Result<i64, AuditError> {
    let prepared = prepare(event, at)?;
    // First statement: lock the head (PostgreSQL) / become the writer (SQLite).
    let head = sqlx::query(
        "UPDATE audit_head SET last_seq = last_seq + 1 WHERE head_id = 1 RETURNING last_seq, last_hash",
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(AuditError::HeadMissing)?;
    let seq: i64 = head.try_get(0)?;
    let prev_hash: Vec<u8> = head.try_get(1)?;
    let key_version = i64::from(key.version());
    let fields = Fields {
        seq,
        key_version,
        at,
        actor_kind: event.actor.kind(),
        actor_id: event.actor.id(),
        action: event.action,
        subjects: &prepared.subjects,
        details: &prepared.details,
    };
    let hash = key.mac(&canonical(&prev_hash, &fields));
    sqlx::query(
        "INSERT INTO audit_event (seq, at, actor_kind, actor_id, action, subjects, details, key_version, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(seq)
    .bind(at)
    .bind(fields.actor_kind)
    .bind(fields.actor_id)
    .bind(fields.action)
    .bind(fields.subjects)
    .bind(fields.details)
    .bind(key_version)
    .bind(prev_hash)
    .bind(hash.to_vec())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET last_hash = $1 WHERE head_id = 1")
        .bind(hash.to_vec())
        .execute(&mut *conn)
        .await?;
    Ok(seq)
}

/// An event's validated, serialized subjects and details.
struct Prepared {
    subjects: String,
    details: String,
}

fn prepare(event: &Event<'_>, at: &str) -> Result<Prepared, Invalid> {
    if !is_action(event.action) {
        return Err(Invalid::Action);
    }
    match event.actor {
        Actor::System => {}
        Actor::User(id) | Actor::ApiToken(id) | Actor::Cli(id) => {
            if !is_id(id) {
                return Err(Invalid::ActorId);
            }
        }
    }
    let canonical_time = crate::store::parse_timestamp(at).map(crate::store::timestamp);
    if canonical_time.as_deref() != Some(at) {
        return Err(Invalid::Timestamp);
    }
    if event.subjects.len() > MAX_SUBJECTS {
        return Err(Invalid::TooManySubjects);
    }
    for (index, (kind, id)) in event.subjects.iter().enumerate() {
        if !is_word(kind) {
            return Err(Invalid::SubjectKind { index });
        }
        if !is_id(id) {
            return Err(Invalid::SubjectId { index });
        }
    }
    check_details(&event.details)?;
    let subjects: Vec<[&str; 2]> = event.subjects.iter().map(|(k, i)| [*k, *i]).collect();
    // Serializing strings, arrays and checked objects cannot fail; an error would still be
    // refused rather than stored.
    let subjects = serde_json::to_string(&subjects).map_err(|_| Invalid::TooLarge)?;
    let details = serde_json::to_string(&event.details).map_err(|_| Invalid::TooLarge)?;
    if details.len() > MAX_DETAILS_BYTES {
        return Err(Invalid::TooLarge);
    }
    Ok(Prepared { subjects, details })
}

fn check_details(details: &Value) -> Result<(), Invalid> {
    let Value::Object(map) = details else {
        return Err(Invalid::DetailsNotObject);
    };
    if map.len() > MAX_DETAILS {
        return Err(Invalid::TooManyDetails);
    }
    for (index, (key, value)) in map.iter().enumerate() {
        if !is_word(key) {
            return Err(Invalid::DetailKey { index });
        }
        match value {
            Value::Array(items) => {
                if items.len() > MAX_LIST_ITEMS {
                    return Err(Invalid::NotScalar { key: key.clone() });
                }
                for item in items {
                    check_scalar(key, item)?;
                }
            }
            scalar => check_scalar(key, scalar)?,
        }
    }
    Ok(())
}

fn check_scalar(key: &str, value: &Value) -> Result<(), Invalid> {
    let text = match value {
        Value::Null | Value::Bool(_) => return Ok(()),
        // A number is checked as written: 15551234567 is a phone number too.
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        Value::Array(_) | Value::Object(_) => {
            return Err(Invalid::NotScalar {
                key: key.to_owned(),
            })
        }
    };
    check_text(&text).map_err(|why| why(key.to_owned()))
}

/// Refuses text that looks like a sensitive value; returns the refusal's constructor.
fn check_text(text: &str) -> Result<(), fn(String) -> Invalid> {
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(|key| Invalid::TooLong { key });
    }
    // U+FF20 is the full-width commercial at.
    if text.contains(['@', '\u{FF20}']) {
        return Err(|key| Invalid::At { key });
    }
    if longest_digit_run(text) >= DIGIT_RUN {
        return Err(|key| Invalid::Digits { key });
    }
    Ok(())
}

/// The most digits in one stretch of `text` made only of digits and the separators numbers are
/// written with (space, `-`, `.`, `/`, `(`, `)`, `+`). Any Unicode decimal digit counts.
fn longest_digit_run(text: &str) -> usize {
    let (mut longest, mut current) = (0, 0);
    for c in text.chars() {
        if c.is_numeric() {
            current += 1;
            longest = longest.max(current);
        } else if !matches!(c, ' ' | '-' | '.' | '/' | '(' | ')' | '+') {
            current = 0;
        }
    }
    longest
}

/// `[a-z][a-z0-9_]*`, at most 64 characters.
fn is_word(text: &str) -> bool {
    let mut chars = text.chars();
    text.len() <= MAX_WORD_CHARS
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Two or more words joined by dots, at most 64 characters.
fn is_action(text: &str) -> bool {
    text.len() <= MAX_ACTION_CHARS && text.split('.').count() >= 2 && text.split('.').all(is_word)
}

/// An opaque identifier: 1 to 128 characters of `A-Z a-z 0-9 . _ : -`. No `@`, `+` or spaces,
/// so no e-mail address or formatted phone number; ids are ours (UUIDs, token ids, names).
fn is_id(text: &str) -> bool {
    (1..=MAX_ID_CHARS).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// One row's fields as they are stored (and hashed).
#[derive(Debug, Clone, Copy)]
struct Fields<'a> {
    seq: i64,
    key_version: i64,
    at: &'a str,
    actor_kind: &'a str,
    actor_id: &'a str,
    action: &'a str,
    subjects: &'a str,
    details: &'a str,
}

/// The canonical encoding of a row and its predecessor's hash: the HMAC's input (see the module
/// documentation).
fn canonical(prev_hash: &[u8], row: &Fields<'_>) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        // usize is at most 64 bits on every supported target.
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut out = Vec::with_capacity(
        DOMAIN.len()
            + 9 * 8
            + prev_hash.len()
            + 16
            + row.at.len()
            + row.actor_kind.len()
            + row.actor_id.len()
            + row.action.len()
            + row.subjects.len()
            + row.details.len(),
    );
    out.extend_from_slice(DOMAIN);
    field(&mut out, prev_hash);
    field(&mut out, &row.seq.to_be_bytes());
    field(&mut out, &row.key_version.to_be_bytes());
    for text in [
        row.at,
        row.actor_kind,
        row.actor_id,
        row.action,
        row.subjects,
        row.details,
    ] {
        field(&mut out, text.as_bytes());
    }
    out
}

/// The outcome of [`verify`]. Its `Display` is the line `drawbridge audit verify` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Events checked and found good (all of them when the trail is intact; those before the
    /// first bad one otherwise).
    pub events: u64,
    /// The first thing wrong, if anything is.
    pub first_bad: Option<Break>,
}

impl Report {
    /// True when every row and the head check out.
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.first_bad {
            None => write!(
                f,
                "audit trail intact: {} event{}",
                self.events,
                if self.events == 1 { "" } else { "s" }
            ),
            Some(bad) => write!(
                f,
                "audit trail broken at event #{}: {}",
                bad.seq, bad.problem
            ),
        }
    }
}

/// The first bad place in the trail: the event's sequence number and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    pub problem: Problem,
}

/// What is wrong at a [`Break`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// This sequence number has no row, but a later one does: the row was deleted.
    Missing,
    /// A row with a sequence number before the start of the trail (0 or negative): inserted.
    BeforeStart,
    /// The row's `prev_hash` is not the previous row's hash: inserted, moved or reordered.
    Unlinked,
    /// The row's contents do not match its hash: edited or forged.
    Altered,
    /// The row says it was made with an audit key version other than the one loaded.
    KeyVersion { found: i64 },
    /// The row comes after the last event the head records, yet its hash checks out: the head
    /// was rolled back.
    BeyondHead { head_seq: i64 },
    /// The trail ends before the last event the head records: the newest rows were deleted.
    /// `Break::seq` is the first missing one.
    Truncated { head_seq: i64 },
    /// The head names this event as the last but holds another hash: the head was edited.
    HeadHash,
    /// The head row itself is gone. `Break::seq` is the last event found.
    HeadMissing,
    /// The pruning checkpoint does not match its signature (edited or forged); `Break::seq` is
    /// the last pruned event it claims.
    Checkpoint,
    /// The pruning checkpoint was signed with an audit key version other than the one loaded.
    CheckpointKeyVersion { found: i64 },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("the event is missing (deleted)"),
            Self::BeforeStart => {
                f.write_str("the event is numbered before the start of the trail (inserted)")
            }
            Self::Unlinked => f.write_str(
                "the event does not follow the one before it (inserted, moved or reordered)",
            ),
            Self::Altered => f.write_str("the event does not match its hash (edited or forged)"),
            Self::KeyVersion { found } => write!(
                f,
                "the event was written with audit key version {found}, which is not the loaded key"
            ),
            Self::BeyondHead { head_seq } => write!(
                f,
                "the event comes after #{head_seq}, which the head records as the last (head rolled back)"
            ),
            Self::Truncated { head_seq } => write!(
                f,
                "the event is missing: the head records events up to #{head_seq} (newest events deleted)"
            ),
            Self::HeadHash => {
                f.write_str("the head records this as the last event but with another hash (head edited)")
            }
            Self::HeadMissing => f.write_str(
                "the head row recording the last event is missing (deleted); this is the last event found",
            ),
            Self::Checkpoint => f.write_str(
                "the pruning checkpoint ending at this event does not match its signature (edited or forged)",
            ),
            Self::CheckpointKeyVersion { found } => write!(
                f,
                "the pruning checkpoint was signed with audit key version {found}, which is not the loaded key"
            ),
        }
    }
}

/// One stored row, as read for verification.
struct StoredRow {
    seq: i64,
    at: String,
    actor_kind: String,
    actor_id: String,
    action: String,
    subjects: String,
    details: String,
    key_version: i64,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl StoredRow {
    fn read(row: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            seq: row.try_get(0)?,
            at: row.try_get(1)?,
            actor_kind: row.try_get(2)?,
            actor_id: row.try_get(3)?,
            action: row.try_get(4)?,
            subjects: row.try_get(5)?,
            details: row.try_get(6)?,
            key_version: row.try_get(7)?,
            prev_hash: row.try_get(8)?,
            hash: row.try_get(9)?,
        })
    }

    fn fields(&self) -> Fields<'_> {
        Fields {
            seq: self.seq,
            key_version: self.key_version,
            at: &self.at,
            actor_kind: &self.actor_kind,
            actor_id: &self.actor_id,
            action: &self.action,
            subjects: &self.subjects,
            details: &self.details,
        }
    }
}

/// Where a walk of the chain starts: the sequence number and hash of the event before the first
/// row: the genesis (0, zeros), or after pruning the signed checkpoint's last pruned event.
#[derive(Debug, Clone)]
struct Anchor {
    seq: i64,
    hash: Vec<u8>,
}

impl Anchor {
    fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH.to_vec(),
        }
    }
}

/// Walks the whole trail in sequence order and reports the first bad row: a gap in the sequence
/// (a deleted row), a row whose `prev_hash` is not its predecessor's hash, a row whose hash does
/// not match its contents, and a head that records more (or other) events than the rows hold.
///
/// Rows are read a page at a time, each page its own statement, so memory stays flat and no
/// snapshot is held open however long the trail (a long-held one would hold back PostgreSQL's
/// vacuum and SQLite's WAL checkpoints). Appends go on meanwhile; the head is read after the
/// rows, and when it records events past the last row read, the walk reads on from there. Rows
/// and head are committed together, so events that the head records but that are not found on
/// that second look were deleted.
///
/// # Errors
/// Database errors (a broken trail is an `Ok` report, not an error).
pub async fn verify(db: &Db, key: &AuditKey) -> Result<Report, sqlx::Error> {
    let mut conn = db.pool().acquire().await?;
    // A prune that commits while the walk runs moves the start of the trail: the walk, started
    // from the old checkpoint, would see the pruned rows as missing. A broken walk is therefore
    // repeated when the checkpoint changed under it (a prune is rare; three rounds suffice).
    let mut rounds = 0;
    loop {
        rounds += 1;
        let checkpoint = prune::read_checkpoint(&mut conn).await?;
        let report = walk_from(&mut conn, key, checkpoint.as_ref()).await?;
        if report.is_intact() || rounds >= 3 {
            return Ok(report);
        }
        let now = prune::read_checkpoint(&mut conn).await?;
        if now.as_ref().map(|c| c.last_seq) == checkpoint.as_ref().map(|c| c.last_seq) {
            return Ok(report);
        }
    }
}

/// One walk of the chain, from the checkpoint (when there is one) to the head.
async fn walk_from(
    conn: &mut AnyConnection,
    key: &AuditKey,
    checkpoint: Option<&prune::Checkpoint>,
) -> Result<Report, sqlx::Error> {
    let anchor = match checkpoint {
        None => Anchor::genesis(),
        Some(checkpoint) => match checkpoint.check(key) {
            Ok(anchor) => anchor,
            Err(problem) => {
                return Ok(Report {
                    events: 0,
                    first_bad: Some(Break {
                        seq: checkpoint.last_seq,
                        problem,
                    }),
                })
            }
        },
    };
    // Rows at or before the checkpoint must not exist: read from the very start, so a row put
    // back (or never pruned) is named as before the start of the trail.
    let mut after = i64::MIN;
    let mut walk = Walk::new(key, anchor);
    read_rows(&mut *conn, &mut walk, &mut after).await?;
    loop {
        let head = read_head(&mut *conn).await?;
        if !walk.behind(head.as_ref()) {
            return Ok(walk.finish(head.as_ref().map(|(seq, hash)| (*seq, hash.as_slice()))));
        }
        // The head records events past the last row read: appended meanwhile, or deleted. Every
        // event it records was committed before it was read (row and head are written in one
        // transaction), so this second look finds them all unless they are gone.
        read_rows(&mut *conn, &mut walk, &mut after).await?;
        if walk.behind(head.as_ref()) {
            return Ok(walk.finish(head.as_ref().map(|(seq, hash)| (*seq, hash.as_slice()))));
        }
        // Caught up with that head, perhaps past it or up to a bad row: compare with a fresh one.
        // Each round reads new rows, so the walk catches up with appends, which are far slower.
    }
}

/// The head's last sequence number and hash; `None` when the head row is gone.
async fn read_head(conn: &mut AnyConnection) -> Result<Option<(i64, Vec<u8>)>, sqlx::Error> {
    sqlx::query("SELECT last_seq, last_hash FROM audit_head WHERE head_id = 1")
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .transpose()
}

/// Reads and checks rows after `after`, a page per statement, until the end of the table or the
/// first bad row.
async fn read_rows(
    conn: &mut AnyConnection,
    walk: &mut Walk<'_>,
    after: &mut i64,
) -> Result<(), sqlx::Error> {
    read_rows_until(conn, walk, after, i64::MAX).await
}

/// [`read_rows`] up to and including `until`.
async fn read_rows_until(
    conn: &mut AnyConnection,
    walk: &mut Walk<'_>,
    after: &mut i64,
    until: i64,
) -> Result<(), sqlx::Error> {
    loop {
        let rows = sqlx::query(
            "SELECT seq, at, actor_kind, actor_id, action, subjects, details, key_version, prev_hash, hash \
             FROM audit_event WHERE seq > $1 AND seq <= $3 ORDER BY seq LIMIT $2",
        )
        .bind(*after)
        .bind(VERIFY_PAGE)
        .bind(until)
        .fetch_all(&mut *conn)
        .await?;
        let page_len = rows.len();
        for row in &rows {
            let row = StoredRow::read(row)?;
            *after = row.seq;
            if walk.step(&row).is_some() {
                return Ok(());
            }
        }
        if i64::try_from(page_len).unwrap_or(i64::MAX) < VERIFY_PAGE {
            return Ok(());
        }
    }
}

/// The state of a walk along the chain.
struct Walk<'k> {
    key: &'k AuditKey,
    /// The last good event (the anchor before any).
    last: Anchor,
    events: u64,
    first_bad: Option<Break>,
}

impl<'k> Walk<'k> {
    fn new(key: &'k AuditKey, anchor: Anchor) -> Self {
        Self {
            key,
            last: anchor,
            events: 0,
            first_bad: None,
        }
    }

    /// Checks the next row; returns the break when it is bad (and every later call is ignored).
    fn step(&mut self, row: &StoredRow) -> Option<&Break> {
        if self.first_bad.is_some() {
            return self.first_bad.as_ref();
        }
        let expected = self.last.seq.saturating_add(1);
        let problem = if row.seq < expected {
            Some((row.seq, Problem::BeforeStart))
        } else if row.seq > expected {
            Some((expected, Problem::Missing))
        } else if row.key_version != i64::from(self.key.version()) {
            Some((
                row.seq,
                Problem::KeyVersion {
                    found: row.key_version,
                },
            ))
        } else if !constant_time_eq(&row.prev_hash, &self.last.hash) {
            Some((row.seq, Problem::Unlinked))
        } else if !self
            .key
            .verify(&canonical(&row.prev_hash, &row.fields()), &row.hash)
        {
            Some((row.seq, Problem::Altered))
        } else {
            None
        };
        match problem {
            Some((seq, problem)) => {
                self.first_bad = Some(Break { seq, problem });
                self.first_bad.as_ref()
            }
            None => {
                self.events += 1;
                self.last = Anchor {
                    seq: row.seq,
                    hash: row.hash.clone(),
                };
                None
            }
        }
    }

    /// True when no row is bad so far and `head` records events past the last good row.
    fn behind(&self, head: Option<&(i64, Vec<u8>)>) -> bool {
        self.first_bad.is_none() && head.is_some_and(|(head_seq, _)| *head_seq > self.last.seq)
    }

    /// The report, once every row has been read (or the first bad one found): checks the head
    /// against the last good event.
    fn finish(self, head: Option<(i64, &[u8])>) -> Report {
        let last_seq = self.last.seq;
        let at = |seq: i64, problem| Some(Break { seq, problem });
        let first_bad = match (self.first_bad, head) {
            // Good rows past the head come before any bad row after them.
            (_, Some((head_seq, _))) if head_seq < last_seq => {
                at(head_seq.saturating_add(1), Problem::BeyondHead { head_seq })
            }
            (Some(bad), _) => Some(bad),
            (None, None) => at(last_seq, Problem::HeadMissing),
            (None, Some((head_seq, _))) if head_seq > last_seq => {
                at(last_seq.saturating_add(1), Problem::Truncated { head_seq })
            }
            (None, Some((_, head_hash))) if !constant_time_eq(head_hash, &self.last.hash) => {
                at(last_seq, Problem::HeadHash)
            }
            (None, Some(_)) => None,
        };
        // Past the head, good rows are not counted as good.
        let events = match &first_bad {
            Some(Break {
                problem: Problem::BeyondHead { head_seq },
                ..
            }) => self
                .events
                .saturating_sub(u64::try_from(last_seq.saturating_sub(*head_seq)).unwrap_or(0)),
            _ => self.events,
        };
        Report { events, first_bad }
    }
}

/// Byte comparison whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests;
