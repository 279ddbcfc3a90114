//! Audit retention: [`prune`] deletes the oldest events and leaves a signed [`Checkpoint`] from
//! which [`super::verify`] still verifies the rest; [`anchor`] exports the checkpoint and head,
//! signed, to be kept outside the database; [`check_anchor`] compares such an export with the
//! trail as it is now.
//!
//! # The checkpoint
//!
//! One row (`audit_checkpoint`) records the last pruned event's `seq` and `hash`, how many events
//! were pruned in all, the latest cut-off, when, and the audit key version, with
//! `mac = HMAC-SHA256(audit key, canonical)` over
//!
//! ```text
//! "drawbridge/audit-checkpoint/v1"   ASCII, no length prefix
//! field(last_seq)  field(last_hash)  field(pruned)  field(pruned_before)  field(at)  field(key_version)
//! ```
//!
//! (numbers 8 bytes big-endian, text UTF-8, each `field` prefixed by its length as in the row
//! encoding). Verification starts from the checkpoint instead of the genesis: the first remaining
//! row must be `last_seq + 1` and link to `last_hash`. So an edited or forged checkpoint fails its
//! MAC; a checkpoint that is deleted leaves the trail starting after 1 (a gap); deleting further
//! rows leaves a gap after the checkpoint; a pruned row put back is "before the start".
//!
//! # Choices
//!
//! - Only a prefix of the chain is pruned: the events before the first event at or after the
//!   cut-off (clocks of concurrent writers can interleave `at` slightly; a prefix keeps the chain).
//! - The pruned rows are verified before they are deleted, in the pruning transaction; a broken
//!   chain is never pruned (that would launder the tampering into a signed checkpoint).
//! - Pruning goes in batches of [`PRUNE_BATCH`] events, each its own short transaction with its
//!   own checkpoint and its own `audit.prune` event (appends wait on the head lock only briefly).
//! - A prune that finds nothing to delete writes nothing (a daily job leaves no noise).

use super::{
    append, constant_time_eq, read_rows_until, Actor, Anchor, AuditError, Break, Event, Problem,
    Report, Walk, HASH_LEN,
};
use crate::clock::Clock;
use crate::store::Db;
use crate::vault::AuditKey;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{AnyConnection, Row};

/// Domain separation for the checkpoint's MAC.
const CHECKPOINT_DOMAIN: &[u8] = b"drawbridge/audit-checkpoint/v1";
/// Domain separation for an exported anchor's MAC.
const ANCHOR_DOMAIN: &[u8] = b"drawbridge/audit-anchor/v1";
/// The export's `format`.
pub const ANCHOR_FORMAT: &str = "drawbridge/audit-anchor/v1";

/// Events deleted per transaction.
pub const PRUNE_BATCH: i64 = 10_000;

/// The default retention of audit events: seven years.
pub const DEFAULT_RETENTION_YEARS: u32 = 7;

/// The cut-off for the default retention: events before `now` minus seven calendar years go.
#[must_use]
pub fn default_cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    now.checked_sub_months(chrono::Months::new(DEFAULT_RETENTION_YEARS * 12))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The signed record of what was pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last pruned event: the remaining trail starts at `last_seq + 1`.
    pub last_seq: i64,
    /// Its hash: the next event's `prev_hash`.
    pub last_hash: Vec<u8>,
    /// Events pruned in all.
    pub pruned: i64,
    /// The latest prune's cut-off.
    pub pruned_before: String,
    /// When the latest prune ran.
    pub at: String,
    pub key_version: i64,
    pub mac: Vec<u8>,
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    // usize is at most 64 bits on every supported target.
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

impl Checkpoint {
    /// The bytes the MAC covers (see the module documentation).
    fn canonical(&self) -> Vec<u8> {
        let mut out = CHECKPOINT_DOMAIN.to_vec();
        field(&mut out, &self.last_seq.to_be_bytes());
        field(&mut out, &self.last_hash);
        field(&mut out, &self.pruned.to_be_bytes());
        field(&mut out, self.pruned_before.as_bytes());
        field(&mut out, self.at.as_bytes());
        field(&mut out, &self.key_version.to_be_bytes());
        out
    }

    /// Where the remaining chain starts, if the checkpoint is genuine.
    pub(super) fn check(&self, key: &AuditKey) -> Result<Anchor, Problem> {
        if self.key_version != i64::from(key.version()) {
            return Err(Problem::CheckpointKeyVersion {
                found: self.key_version,
            });
        }
        if self.last_hash.len() != HASH_LEN || !key.verify(&self.canonical(), &self.mac) {
            return Err(Problem::Checkpoint);
        }
        Ok(Anchor {
            seq: self.last_seq,
            hash: self.last_hash.clone(),
        })
    }

    /// The checkpoint as JSON (hashes in hex), for exports.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "last_seq": self.last_seq,
            "last_hash": hex::encode(&self.last_hash),
            "pruned": self.pruned,
            "pruned_before": self.pruned_before,
            "at": self.at,
            "key_version": self.key_version,
            "mac": hex::encode(&self.mac),
        })
    }
}

/// The checkpoint, if the trail was ever pruned.
///
/// # Errors
/// Database errors.
pub async fn read_checkpoint(conn: &mut AnyConnection) -> Result<Option<Checkpoint>, sqlx::Error> {
    sqlx::query(
        "SELECT last_seq, last_hash, pruned, pruned_before, at, key_version, mac \
         FROM audit_checkpoint WHERE checkpoint_id = 1",
    )
    .fetch_optional(&mut *conn)
    .await?
    .map(|row| {
        Ok(Checkpoint {
            last_seq: row.try_get(0)?,
            last_hash: row.try_get(1)?,
            pruned: row.try_get(2)?,
            pruned_before: row.try_get(3)?,
            at: row.try_get(4)?,
            key_version: row.try_get(5)?,
            mac: row.try_get(6)?,
        })
    })
    .transpose()
}

/// What [`prune`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Events deleted by this call.
    pub deleted: u64,
    /// The checkpoint now in place (`None`: the trail was never pruned).
    pub checkpoint: Option<Checkpoint>,
}

/// Why [`prune`] refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The chain (or the checkpoint) is broken: nothing is pruned until it has been looked at.
    #[error("the audit trail is broken, so nothing was pruned: {0}")]
    Broken(Report),
    /// The cut-off is in the future.
    #[error("the cut-off is in the future")]
    Future,
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("database error pruning the audit trail")]
    Database(#[from] sqlx::Error),
}

/// Deletes the events older than `older_than` (a prefix of the chain: see the module
/// documentation), leaving a signed checkpoint, and records each batch as an `audit.prune` event
/// by `actor` (subject `audit_checkpoint` = the last pruned seq; details `deleted`, `batch`).
///
/// # Errors
/// [`PruneError::Broken`] when the rows to prune or the checkpoint do not verify (nothing is
/// deleted); [`PruneError::Future`] for a cut-off after `clock`'s now; audit and database errors
/// (the batch in progress is rolled back; earlier batches stay pruned, each with its checkpoint).
pub async fn prune(
    db: &Db,
    key: &AuditKey,
    older_than: DateTime<Utc>,
    clock: &Clock,
    actor: Actor<'_>,
) -> Result<Pruned, PruneError> {
    if older_than > clock.now() {
        return Err(PruneError::Future);
    }
    let cutoff = crate::store::timestamp(older_than);
    let mut deleted = 0_u64;
    let mut batch = 0_i64;
    loop {
        batch += 1;
        match prune_batch(db, key, &cutoff, clock, actor, batch).await? {
            Some(count) => deleted += count,
            None => {
                let mut conn = db.pool().acquire().await?;
                let checkpoint = read_checkpoint(&mut conn).await?;
                return Ok(Pruned {
                    deleted,
                    checkpoint,
                });
            }
        }
    }
}

/// One batch: `Some(deleted)`, or `None` when nothing (more) is older than the cut-off.
async fn prune_batch(
    db: &Db,
    key: &AuditKey,
    cutoff: &str,
    clock: &Clock,
    actor: Actor<'_>,
    batch: i64,
) -> Result<Option<u64>, PruneError> {
    let mut tx = db.pool().begin().await?;
    // First statement a write: takes the head's lock (PostgreSQL) / makes this transaction the
    // writer (SQLite), so no append interleaves with the prune.
    let locked = sqlx::query("UPDATE audit_head SET last_seq = last_seq WHERE head_id = 1")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if locked == 0 {
        return Err(AuditError::HeadMissing.into());
    }
    let previous = read_checkpoint(&mut tx).await?;
    let anchor = match &previous {
        None => Anchor::genesis(),
        Some(checkpoint) => checkpoint.check(key).map_err(|problem| {
            PruneError::Broken(Report {
                events: 0,
                first_bad: Some(Break {
                    seq: checkpoint.last_seq,
                    problem,
                }),
            })
        })?,
    };
    let first_kept: Option<i64> =
        sqlx::query("SELECT MIN(seq) FROM audit_event WHERE seq > $1 AND at >= $2")
            .bind(anchor.seq)
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
    let head_seq: i64 = sqlx::query("SELECT last_seq FROM audit_head WHERE head_id = 1")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    let through = first_kept
        .map_or(head_seq, |seq| seq.saturating_sub(1))
        .min(anchor.seq.saturating_add(PRUNE_BATCH));
    if through <= anchor.seq {
        tx.rollback().await?;
        return Ok(None);
    }
    // Verify what is about to go, from the checkpoint (rows before it must not exist).
    let mut walk = Walk::new(key, anchor.clone());
    let mut after = i64::MIN;
    read_rows_until(&mut tx, &mut walk, &mut after, through).await?;
    if walk.first_bad.is_none() && walk.last.seq < through {
        walk.first_bad = Some(Break {
            seq: walk.last.seq.saturating_add(1),
            problem: Problem::Missing,
        });
    }
    if let Some(bad) = walk.first_bad.take() {
        tx.rollback().await?;
        return Err(PruneError::Broken(Report {
            events: walk.events,
            first_bad: Some(bad),
        }));
    }
    let last_hash = walk.last.hash.clone();
    let count = sqlx::query("DELETE FROM audit_event WHERE seq <= $1")
        .bind(through)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let at = clock.timestamp();
    let mut checkpoint = Checkpoint {
        last_seq: through,
        last_hash,
        pruned: previous
            .as_ref()
            .map_or(0, |c| c.pruned)
            .saturating_add(i64::try_from(count).unwrap_or(i64::MAX)),
        pruned_before: cutoff.to_owned(),
        at: at.clone(),
        key_version: i64::from(key.version()),
        mac: Vec::new(),
    };
    checkpoint.mac = key.mac(&checkpoint.canonical()).to_vec();
    sqlx::query("DELETE FROM audit_checkpoint")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO audit_checkpoint (checkpoint_id, last_seq, last_hash, pruned, pruned_before, at, key_version, mac) \
         VALUES (1, $1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(checkpoint.last_seq)
    .bind(&checkpoint.last_hash)
    .bind(checkpoint.pruned)
    .bind(&checkpoint.pruned_before)
    .bind(&checkpoint.at)
    .bind(checkpoint.key_version)
    .bind(&checkpoint.mac)
    .execute(&mut *tx)
    .await?;
    let through_text = through.to_string();
    let event = Event::new(actor, "audit.prune")
        .subject("audit_checkpoint", &through_text)
        .detail("deleted", count)
        .detail("batch", batch);
    append(&mut tx, key, &event, &at).await?;
    tx.commit().await?;
    tracing::info!(
        deleted = count,
        through_seq = through,
        "audit: pruned events and left a signed checkpoint"
    );
    Ok(Some(count))
}

/// The anchor's MAC input: the export time, the head and the checkpoint's own MAC.
fn anchor_canonical(exported_at: &str, head_seq: i64, head_hash: &[u8], cp_mac: &[u8]) -> Vec<u8> {
    let mut out = ANCHOR_DOMAIN.to_vec();
    field(&mut out, exported_at.as_bytes());
    field(&mut out, &head_seq.to_be_bytes());
    field(&mut out, head_hash);
    field(&mut out, cp_mac);
    out
}

/// A signed copy of the trail's head and checkpoint, to be kept outside the database (the case
/// the chain cannot catch alone: the newest rows deleted *and* the head rolled back). JSON:
/// `{"format", "exported_at", "key_version", "head": {"seq", "hash"}, "checkpoint": {…} | null,
/// "mac"}`, hashes and MACs in hex; `mac` = HMAC-SHA256(audit key, export time, head seq, head
/// hash, checkpoint MAC). Holds no customer data.
///
/// # Errors
/// Database errors; a missing head row as [`AuditError::HeadMissing`].
pub async fn anchor(db: &Db, key: &AuditKey, clock: &Clock) -> Result<Value, AuditError> {
    let mut conn = db.pool().acquire().await?;
    let head = sqlx::query("SELECT last_seq, last_hash FROM audit_head WHERE head_id = 1")
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(AuditError::HeadMissing)?;
    let head_seq: i64 = head.try_get(0)?;
    let head_hash: Vec<u8> = head.try_get(1)?;
    let checkpoint = read_checkpoint(&mut conn).await?;
    let exported_at = clock.timestamp();
    let cp_mac = checkpoint
        .as_ref()
        .map(|c| c.mac.clone())
        .unwrap_or_default();
    let mac = key.mac(&anchor_canonical(
        &exported_at,
        head_seq,
        &head_hash,
        &cp_mac,
    ));
    Ok(json!({
        "format": ANCHOR_FORMAT,
        "exported_at": exported_at,
        "key_version": key.version(),
        "head": {"seq": head_seq, "hash": hex::encode(&head_hash)},
        "checkpoint": checkpoint.as_ref().map(Checkpoint::to_json),
        "mac": hex::encode(mac),
    }))
}

/// What [`check_anchor`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorCheck {
    /// The anchor is genuine and the trail still holds its head event (or pruned it past a
    /// genuine checkpoint).
    Consistent,
    /// The anchor's MAC does not verify (edited, forged, or another key).
    BadSignature,
    /// The anchor is genuine, but the trail no longer holds its head event with that hash and no
    /// checkpoint covers it: events were deleted and the head rolled back.
    RolledBack { seq: i64 },
    /// The anchor is not in the export format.
    Malformed,
}

/// Compares an [`anchor`] export kept outside the database with the trail now.
///
/// # Errors
/// Database errors.
pub async fn check_anchor(
    db: &Db,
    key: &AuditKey,
    doc: &Value,
) -> Result<AnchorCheck, sqlx::Error> {
    let parsed = (|| {
        let exported_at = doc["exported_at"].as_str()?;
        let head_seq = doc["head"]["seq"].as_i64()?;
        let head_hash = hex::decode(doc["head"]["hash"].as_str()?).ok()?;
        let cp_mac = match &doc["checkpoint"] {
            Value::Null => Vec::new(),
            cp => hex::decode(cp["mac"].as_str()?).ok()?,
        };
        let mac = hex::decode(doc["mac"].as_str()?).ok()?;
        (doc["format"] == ANCHOR_FORMAT).then_some((exported_at, head_seq, head_hash, cp_mac, mac))
    })();
    let Some((exported_at, head_seq, head_hash, cp_mac, mac)) = parsed else {
        return Ok(AnchorCheck::Malformed);
    };
    if !key.verify(
        &anchor_canonical(exported_at, head_seq, &head_hash, &cp_mac),
        &mac,
    ) {
        return Ok(AnchorCheck::BadSignature);
    }
    if head_seq == 0 {
        return Ok(AnchorCheck::Consistent);
    }
    let mut conn = db.pool().acquire().await?;
    let row = sqlx::query("SELECT hash FROM audit_event WHERE seq = $1")
        .bind(head_seq)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = row {
        let hash: Vec<u8> = row.try_get(0)?;
        return Ok(if constant_time_eq(&hash, &head_hash) {
            AnchorCheck::Consistent
        } else {
            AnchorCheck::RolledBack { seq: head_seq }
        });
    }
    // Pruned since? Only a genuine checkpoint at or past it says so.
    let checkpoint = read_checkpoint(&mut conn).await?;
    let covered = checkpoint.is_some_and(|c| {
        c.check(key).is_ok()
            && (c.last_seq > head_seq
                || (c.last_seq == head_seq && constant_time_eq(&c.last_hash, &head_hash)))
    });
    Ok(if covered {
        AnchorCheck::Consistent
    } else {
        AnchorCheck::RolledBack { seq: head_seq }
    })
}
