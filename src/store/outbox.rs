//! The outbox table: the durable send queue (the state machine is described in the migration,
//! `migrations/*/20261127000001_outbox_media_carrier_events.sql`, and in [`crate::outbox`]).
//!
//! The only dialect difference is in [`claim`]: PostgreSQL locks the rows it picks with
//! `FOR UPDATE SKIP LOCKED`, so several instances claim disjoint rows at the same moment; SQLite
//! has one writer at a time and needs no row locks.

use super::Backend;
use sqlx::{AnyConnection, Row};

/// An outbox row about to be inserted.
#[derive(Debug)]
pub struct NewOutbox<'a> {
    pub outbox_id: &'a str,
    pub message_id: &'a str,
    pub kind: &'a str,
    pub business_number: &'a str,
    pub contact_id: &'a str,
    pub carrier: &'a str,
    pub extras_sealed: Option<&'a [u8]>,
    /// When it may first be sent.
    pub due_at: &'a str,
    pub now: &'a str,
}

/// Inserts a pending row.
///
/// # Errors
/// Database errors.
pub async fn insert(conn: &mut AnyConnection, row: &NewOutbox<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (outbox_id, message_id, kind, business_number, contact_id, carrier, extras_sealed, \
         state, uncertain, attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, 0, $8, $9, $9)",
    )
    .bind(row.outbox_id)
    .bind(row.message_id)
    .bind(row.kind)
    .bind(row.business_number)
    .bind(row.contact_id)
    .bind(row.carrier)
    .bind(row.extras_sealed.map(<[u8]>::to_vec))
    .bind(row.due_at)
    .bind(row.now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The condition of a row an instance may take: pending, due and not claimed by a live instance;
/// or in flight under a claim that expired (its instance died mid-call). Parameter `$now` is the
/// time now.
fn claimable(now: usize) -> String {
    format!(
        "((state = 'pending' AND next_attempt_at <= ${now} AND (claimed_until IS NULL OR claimed_until < ${now})) \
         OR (state = 'in_flight' AND claimed_until < ${now}))"
    )
}

/// The senders (business numbers) with rows to claim now, so a worker claims only for those.
///
/// # Errors
/// Database errors.
pub async fn due_senders(conn: &mut AnyConnection, now: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT DISTINCT business_number FROM outbox WHERE {}",
        claimable(1)
    ))
    .bind(now)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|row| row.try_get(0))
    .collect()
}

/// Claims up to `limit` rows of one sender for `instance` until `until` ([`claimable`] rows; an
/// in-flight row whose claim expired comes back pending and `uncertain`, to be resolved before it
/// is sent again). Returns the claimed ids, oldest due first.
///
/// # Errors
/// Database errors.
pub async fn claim(
    conn: &mut AnyConnection,
    backend: Backend,
    instance: &str,
    now: &str,
    until: &str,
    limit: i64,
    business_number: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    // SET expressions read the row's old values, so `state` in the CASE is the state before.
    let sql = format!(
        "UPDATE outbox SET claimed_by = $1, claimed_until = $2, updated_at = $3, state = 'pending', \
         uncertain = CASE WHEN state = 'in_flight' THEN 1 ELSE uncertain END \
         WHERE outbox_id IN (SELECT outbox_id FROM outbox \
           WHERE business_number = $5 AND {} \
           ORDER BY next_attempt_at, created_at LIMIT $4{lock}) \
         RETURNING outbox_id, next_attempt_at, created_at",
        claimable(3)
    );
    let mut rows: Vec<(String, String, String)> = sqlx::query(&sql)
        .bind(instance)
        .bind(until)
        .bind(now)
        .bind(limit)
        .bind(business_number)
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    // RETURNING does not keep the subquery's order.
    rows.sort_by(|a, b| (&a.1, &a.2).cmp(&(&b.1, &b.2)));
    Ok(rows.into_iter().map(|(id, _, _)| id).collect())
}

/// Extends `instance`'s claims on the rows it is working on (`ids`) to `until`. Only those: a
/// row whose processing failed half-way is not renewed, so its claim expires and it is taken
/// over (and resolved, if it was in flight). Returns how many claims were extended.
///
/// # Errors
/// Database errors.
pub async fn renew(
    conn: &mut AnyConnection,
    instance: &str,
    until: &str,
    ids: &[String],
) -> Result<u64, sqlx::Error> {
    let mut renewed = 0;
    for chunk in ids.chunks(100) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "UPDATE outbox SET claimed_until = $2 WHERE claimed_by = $1 AND state IN ('pending', 'in_flight') \
             AND outbox_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(instance).bind(until);
        for id in chunk {
            query = query.bind(id);
        }
        renewed += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(renewed)
}

/// Ends every claim at once: on SQLite, which one instance serves, claims left by an earlier
/// process of that instance (killed, not stopped) are stale the moment a new one starts.
///
/// # Errors
/// Database errors.
pub async fn expire_all_claims(conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE outbox SET claimed_until = '' WHERE claimed_by IS NOT NULL AND state IN ('pending', 'in_flight')",
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// Gives up `instance`'s claims on rows it has not started (graceful shutdown), so another
/// instance, or this one after a restart, takes them at once.
///
/// # Errors
/// Database errors.
pub async fn release(conn: &mut AnyConnection, instance: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1 AND state = 'pending'",
    )
    .bind(instance)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Everything needed to send one row, sealed as stored.
#[derive(Debug)]
pub struct Job {
    pub outbox_id: String,
    pub message_id: String,
    pub business_number: String,
    pub contact_id: String,
    pub carrier: String,
    pub state: String,
    pub claimed_by: Option<String>,
    pub uncertain: bool,
    pub attempts: i64,
    pub attempt_started_at: Option<String>,
    pub extras_sealed: Option<Vec<u8>>,
    pub channel: String,
    pub body_sealed: Vec<u8>,
    pub phone_sealed: Vec<u8>,
    pub data_key_wrapped: Vec<u8>,
    /// `reply`, `keyword_confirmation`, `secure_link`, `notification`.
    pub kind: String,
    /// A supervisor released it from quiet hours.
    pub quiet_override: bool,
    /// The contact's recorded time zone, if any.
    pub time_zone: Option<String>,
    /// When the customer last wrote in this conversation.
    pub last_inbound: Option<String>,
    /// When the row was queued.
    pub created_at: String,
}

/// Loads a row with its message's body and channel and its contact's sealed number and key.
///
/// # Errors
/// Database errors.
pub async fn load(conn: &mut AnyConnection, outbox_id: &str) -> Result<Option<Job>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT o.outbox_id, o.message_id, o.business_number, o.contact_id, o.carrier, o.state, o.claimed_by, \
         o.uncertain, o.attempts, o.attempt_started_at, o.extras_sealed, m.channel, m.body_sealed, \
         c.phone_sealed, c.data_key_wrapped, o.kind, o.quiet_override, c.time_zone, \
         (SELECT MAX(i.created_at) FROM message i WHERE i.conversation_id = m.conversation_id AND i.direction = 'inbound'), \
         o.created_at \
         FROM outbox o JOIN message m ON m.message_id = o.message_id JOIN contact c ON c.contact_id = o.contact_id \
         WHERE o.outbox_id = $1",
    )
    .bind(outbox_id)
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(Job {
        outbox_id: row.try_get(0)?,
        message_id: row.try_get(1)?,
        business_number: row.try_get(2)?,
        contact_id: row.try_get(3)?,
        carrier: row.try_get(4)?,
        state: row.try_get(5)?,
        claimed_by: row.try_get(6)?,
        uncertain: row.try_get::<i64, _>(7)? != 0,
        attempts: row.try_get(8)?,
        attempt_started_at: row.try_get(9)?,
        extras_sealed: row.try_get(10)?,
        channel: row.try_get(11)?,
        body_sealed: row.try_get(12)?,
        phone_sealed: row.try_get(13)?,
        data_key_wrapped: row.try_get(14)?,
        kind: row.try_get(15)?,
        quiet_override: row.try_get::<i64, _>(16)? != 0,
        time_zone: row.try_get(17)?,
        last_inbound: row.try_get(18)?,
        created_at: row.try_get(19)?,
    }))
}

/// Marks a claimed row in flight, committed before the carrier is called: after a crash the row
/// is known to have possibly reached the carrier. Returns `false` if `instance` no longer holds
/// the claim (it expired and another instance took the row): the caller must not send.
///
/// # Errors
/// Database errors.
pub async fn start_attempt(
    conn: &mut AnyConnection,
    outbox_id: &str,
    instance: &str,
    now: &str,
    until: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE outbox SET state = 'in_flight', attempts = attempts + 1, attempt_started_at = $3, updated_at = $3, \
         claimed_until = $4 \
         WHERE outbox_id = $1 AND claimed_by = $2 AND state = 'pending' AND claimed_until > $3",
    )
    .bind(outbox_id)
    .bind(instance)
    .bind(now)
    .bind(until)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Who must still hold a row for a write to apply: the instance, and the state (and, after a
/// call, the attempt number) it left the row in. A write whose guard no longer matches changes
/// nothing: the claim expired and another instance owns the row now.
#[derive(Debug, Clone, Copy)]
pub struct Guard<'a> {
    pub instance: &'a str,
    /// `pending` (before a call) or `in_flight` (after one).
    pub state: &'a str,
    pub attempts: i64,
}

/// Records the carrier's acceptance: the row is done. Acceptance is a fact whoever holds the
/// claim, so only an already-settled row is left alone. Returns whether the row changed.
///
/// # Errors
/// Database errors.
pub async fn mark_accepted(
    conn: &mut AnyConnection,
    outbox_id: &str,
    carrier_message_id: &str,
    now: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE outbox SET state = 'accepted', carrier_message_id = $2, accepted_at = $3, updated_at = $3, \
         uncertain = 0, claimed_by = NULL, claimed_until = NULL, error_class = NULL, error_code = NULL \
         WHERE outbox_id = $1 AND state IN ('pending', 'in_flight', 'unconfirmed')",
    )
    .bind(outbox_id)
    .bind(carrier_message_id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Puts a row back to wait until `next_at`, releasing the claim, with what happened last.
/// `uncertain`: whether an attempt may have reached the carrier.
///
/// # Errors
/// Database errors.
pub async fn reschedule(
    conn: &mut AnyConnection,
    outbox_id: &str,
    guard: Guard<'_>,
    next_at: &str,
    uncertain: bool,
    error: (Option<&str>, Option<&str>),
    now: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE outbox SET state = 'pending', next_attempt_at = $2, uncertain = $3, error_class = $4, error_code = $5, \
         claimed_by = NULL, claimed_until = NULL, updated_at = $6 \
         WHERE outbox_id = $1 AND claimed_by = $7 AND state = $8 AND attempts = $9",
    )
    .bind(outbox_id)
    .bind(next_at)
    .bind(i64::from(uncertain))
    .bind(error.0)
    .bind(error.1)
    .bind(now)
    .bind(guard.instance)
    .bind(guard.state)
    .bind(guard.attempts)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Ends a row: `failed` (the carrier refused it for good, or retries ran out) or `unconfirmed`
/// (an attempt's outcome is unknown and cannot be found out).
///
/// # Errors
/// Database errors.
pub async fn finish(
    conn: &mut AnyConnection,
    outbox_id: &str,
    guard: Guard<'_>,
    state: &str,
    error_class: &str,
    error_code: Option<&str>,
    now: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE outbox SET state = $2, error_class = $3, error_code = $4, claimed_by = NULL, claimed_until = NULL, updated_at = $5 \
         WHERE outbox_id = $1 AND claimed_by = $6 AND state = $7 AND attempts = $8",
    )
    .bind(outbox_id)
    .bind(state)
    .bind(error_class)
    .bind(error_code)
    .bind(now)
    .bind(guard.instance)
    .bind(guard.state)
    .bind(guard.attempts)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Releases `instance`'s claim on one row it will not work on now (its sender has no lane
/// here), so an instance that has one takes it.
///
/// # Errors
/// Database errors.
pub async fn release_one(
    conn: &mut AnyConnection,
    outbox_id: &str,
    instance: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE outbox_id = $1 AND claimed_by = $2 AND state = 'pending'",
    )
    .bind(outbox_id)
    .bind(instance)
    .execute(conn)
    .await?;
    Ok(())
}

/// What recording an acceptance did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// The row is accepted and the message carries the carrier id.
    Recorded,
    /// The row is accepted, but another message already carries this carrier id: the message is
    /// left unnamed (its callbacks cannot be told apart).
    DuplicateId,
    /// The row had already ended (accepted, failed or unconfirmed): nothing changed.
    AlreadySettled,
}

/// Records the carrier's acceptance of a row, in the caller's transaction: the row is accepted
/// with the carrier id, the message gets the id (and `status`, the carrier's word for it, when
/// that moves it forward), and status reports that arrived before the id was known are applied.
///
/// On PostgreSQL the transaction first takes the advisory lock of `(carrier, carrier_message_id)`
/// ([`super::messages::lock_carrier_message`]), which status callbacks take too: otherwise, under
/// READ COMMITTED, a callback stored while this runs could be applied by neither side.
///
/// # Errors
/// Database errors.
pub async fn accept(
    conn: &mut AnyConnection,
    job: &Job,
    carrier: &str,
    carrier_message_id: &str,
    status: Option<&str>,
    now: &str,
) -> Result<Accepted, sqlx::Error> {
    super::messages::lock_carrier_message(conn, carrier, carrier_message_id).await?;
    if !mark_accepted(conn, &job.outbox_id, carrier_message_id, now).await? {
        return Ok(Accepted::AlreadySettled);
    }
    let taken = sqlx::query(
        "SELECT 1 FROM message WHERE carrier = $1 AND carrier_message_id = $2 AND message_id <> $3",
    )
    .bind(carrier)
    .bind(carrier_message_id)
    .bind(&job.message_id)
    .fetch_optional(&mut *conn)
    .await?
    .is_some();
    if taken {
        return Ok(Accepted::DuplicateId);
    }
    sqlx::query(
        "UPDATE message SET carrier = $1, carrier_message_id = $2, status_updated_at = $3 \
         WHERE message_id = $4 AND carrier_message_id IS NULL",
    )
    .bind(carrier)
    .bind(carrier_message_id)
    .bind(now)
    .bind(&job.message_id)
    .execute(&mut *conn)
    .await?;
    if let Some(status) = status {
        super::messages::apply_status(conn, carrier, carrier_message_id, status, None).await?;
    }
    super::messages::apply_recorded_statuses(conn, carrier, carrier_message_id).await?;
    Ok(Accepted::Recorded)
}

/// Whether some outbox row already holds this carrier id (lookups skip messages we know).
///
/// # Errors
/// Database errors.
pub async fn is_recorded(
    conn: &mut AnyConnection,
    carrier: &str,
    carrier_message_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("SELECT 1 FROM outbox WHERE carrier = $1 AND carrier_message_id = $2")
            .bind(carrier)
            .bind(carrier_message_id)
            .fetch_optional(conn)
            .await?
            .is_some(),
    )
}

/// Counts rows by state (tests, operations).
///
/// # Errors
/// Database errors.
pub async fn count_by_state(conn: &mut AnyConnection) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}
