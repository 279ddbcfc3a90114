//! Messages and their delivery status.

use sqlx::{AnyConnection, Row};

/// A message row about to be inserted; body and media already redacted and sealed.
#[derive(Debug)]
pub struct NewMessage<'a> {
    pub message_id: &'a str,
    pub conversation_id: &'a str,
    pub direction: &'a str,
    pub channel: &'a str,
    pub carrier: &'a str,
    /// `None` for an outbound message the carrier has not accepted yet.
    pub carrier_message_id: Option<&'a str>,
    pub body_sealed: &'a [u8],
    pub media_count: i64,
    pub findings_json: &'a str,
    pub status: &'a str,
    pub created_at: &'a str,
}

/// True when a message with this carrier id is already stored (a carrier's retry).
///
/// # Errors
/// Database errors.
pub async fn exists(
    conn: &mut AnyConnection,
    carrier: &str,
    carrier_message_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query(
            "SELECT message_id FROM message WHERE carrier = $1 AND carrier_message_id = $2",
        )
        .bind(carrier)
        .bind(carrier_message_id)
        .fetch_optional(conn)
        .await?
        .is_some(),
    )
}

/// Inserts the message unless one with the same `(carrier, carrier_message_id)` exists.
/// Returns whether a row was inserted.
///
/// # Errors
/// Database errors.
pub async fn insert(conn: &mut AnyConnection, m: &NewMessage<'_>) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO message (message_id, conversation_id, direction, channel, carrier, carrier_message_id, \
         body_sealed, media_count, findings, status, status_updated_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
         ON CONFLICT (carrier, carrier_message_id) DO NOTHING",
    )
    .bind(m.message_id)
    .bind(m.conversation_id)
    .bind(m.direction)
    .bind(m.channel)
    .bind(m.carrier)
    .bind(m.carrier_message_id)
    .bind(m.body_sealed.to_vec())
    .bind(m.media_count)
    .bind(m.findings_json)
    .bind(m.status)
    .bind(m.created_at)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// A media row about to be inserted; URL and name already sealed.
#[derive(Debug)]
pub struct NewMedia<'a> {
    pub message_id: &'a str,
    pub position: i64,
    pub content_type: Option<&'a str>,
    pub size_bytes: Option<i64>,
    pub url_sealed: &'a [u8],
    pub name_sealed: Option<&'a [u8]>,
}

/// Inserts one media row of a message.
///
/// # Errors
/// Database errors.
pub async fn insert_media(conn: &mut AnyConnection, m: &NewMedia<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO message_media (message_id, position, content_type, size_bytes, url_sealed, name_sealed) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(m.message_id)
    .bind(m.position)
    .bind(m.content_type)
    .bind(m.size_bytes)
    .bind(m.url_sealed.to_vec())
    .bind(m.name_sealed.map(<[u8]>::to_vec))
    .execute(conn)
    .await?;
    Ok(())
}

/// Our delivery statuses and how far along the delivery path each is. A message's status only
/// moves to a higher rank: callbacks arrive out of order, a late `sent` must not overwrite
/// `delivered`, and the final statuses (delivered, undelivered, failed) do not change into one
/// another. `read` comes after `delivered`.
pub const STATUS_RANKS: &[(&str, i64)] = &[
    ("received", 0),
    ("queued", 1),
    ("sent", 2),
    ("delivered", 3),
    ("undelivered", 3),
    ("failed", 3),
    ("read", 4),
];

/// The rank of `status` in [`STATUS_RANKS`]; unknown words rank lowest.
#[must_use]
pub fn status_rank(status: &str) -> i64 {
    STATUS_RANKS
        .iter()
        .find(|(s, _)| *s == status)
        .map_or(0, |(_, r)| *r)
}

/// `CASE status WHEN … END`: the stored status's rank, built from [`STATUS_RANKS`] so that the SQL
/// and the Rust can never disagree.
fn rank_sql() -> String {
    let arms: String = STATUS_RANKS
        .iter()
        .map(|(s, r)| format!(" WHEN '{s}' THEN {r}"))
        .collect();
    format!("(CASE status{arms} ELSE 0 END)")
}

/// A delivery status report from a carrier, already mapped to our vocabulary.
#[derive(Debug)]
pub struct StatusReport<'a> {
    pub carrier: &'a str,
    pub carrier_message_id: &'a str,
    /// Ours, or `None` when the carrier's word has no place in our vocabulary.
    pub status: Option<&'a str>,
    pub carrier_status: &'a str,
    pub error_code: Option<&'a str>,
}

/// Serialises, on PostgreSQL, the transactions that concern one carrier message: a status
/// callback being recorded and the outbox recording the carrier's acceptance. It takes a
/// transaction-scoped advisory lock keyed by a hash of `(carrier, carrier_message_id)`. SQLite has
/// one writer at a time, so it needs none.
///
/// # Errors
/// Database errors.
pub async fn lock_carrier_message(
    conn: &mut AnyConnection,
    carrier: &str,
    carrier_message_id: &str,
) -> Result<(), sqlx::Error> {
    use sha2::Digest;
    if conn.backend_name() != "PostgreSQL" {
        return Ok(());
    }
    let digest = sha2::Sha256::digest(format!("{carrier}\0{carrier_message_id}").as_bytes());
    let mut key = [0_u8; 8];
    key.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(i64::from_be_bytes(key))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a status report and applies it to the message it names when that moves the message
/// forward (see [`STATUS_RANKS`]). `status` is `None` for a carrier word outside our vocabulary:
/// the report is still kept, as `unknown`, and nothing is applied. Returns whether a stored
/// message was updated. A repeated report (a carrier retry) is kept again as an event and changes
/// nothing else.
///
/// # Errors
/// Database errors.
pub async fn record_status(
    conn: &mut AnyConnection,
    report: &StatusReport<'_>,
) -> Result<bool, sqlx::Error> {
    lock_carrier_message(conn, report.carrier, report.carrier_message_id).await?;
    let at = super::now();
    sqlx::query(
        "INSERT INTO message_status_event (message_status_event_id, carrier, carrier_message_id, status, carrier_status, error_code, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(super::new_id())
    .bind(report.carrier)
    .bind(report.carrier_message_id)
    .bind(report.status.unwrap_or("unknown"))
    .bind(report.carrier_status)
    .bind(report.error_code)
    .bind(&at)
    .execute(&mut *conn)
    .await?;
    let Some(status) = report.status else {
        return Ok(false);
    };
    apply_status(
        conn,
        report.carrier,
        report.carrier_message_id,
        status,
        report.error_code,
    )
    .await
}

/// Moves the message `(carrier, carrier_message_id)` to `status` if that is forward (see
/// [`STATUS_RANKS`]). Returns whether it moved.
///
/// # Errors
/// Database errors.
pub async fn apply_status(
    conn: &mut AnyConnection,
    carrier: &str,
    carrier_message_id: &str,
    status: &str,
    error_code: Option<&str>,
) -> Result<bool, sqlx::Error> {
    // The rank comparison happens in the UPDATE itself, so concurrent callbacks cannot race past
    // it. An error code, once reported, is kept unless a later report brings another.
    let updated = sqlx::query(&format!(
        "UPDATE message SET status = $1, status_error_code = COALESCE($2, status_error_code), status_updated_at = $3 \
         WHERE carrier = $4 AND carrier_message_id = $5 AND status <> $1 AND {} < $6",
        rank_sql()
    ))
    .bind(status)
    .bind(error_code)
    .bind(super::now())
    .bind(carrier)
    .bind(carrier_message_id)
    .bind(status_rank(status))
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Applies, in the order received, the status reports kept for `(carrier, carrier_message_id)`
/// before the message had that id: a carrier's callback can beat our own record of its answer.
///
/// # Errors
/// Database errors.
pub async fn apply_recorded_statuses(
    conn: &mut AnyConnection,
    carrier: &str,
    carrier_message_id: &str,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT status, error_code FROM message_status_event \
         WHERE carrier = $1 AND carrier_message_id = $2 AND status <> 'unknown' ORDER BY received_at",
    )
    .bind(carrier)
    .bind(carrier_message_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let status: String = row.try_get(0)?;
        let code: Option<String> = row.try_get(1)?;
        apply_status(conn, carrier, carrier_message_id, &status, code.as_deref()).await?;
    }
    Ok(())
}

/// The error codes of the status reports kept for a carrier message, oldest first.
///
/// # Errors
/// Database errors.
pub async fn kept_error_codes(
    conn: &mut AnyConnection,
    carrier: &str,
    carrier_message_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query(
        "SELECT error_code FROM message_status_event \
         WHERE carrier = $1 AND carrier_message_id = $2 AND error_code IS NOT NULL ORDER BY received_at",
    )
    .bind(carrier)
    .bind(carrier_message_id)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|row| row.try_get(0))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_their_sql_agree() {
        let sql = rank_sql();
        for (status, rank) in STATUS_RANKS {
            assert!(
                sql.contains(&format!("WHEN '{status}' THEN {rank}")),
                "{sql}"
            );
            assert_eq!(status_rank(status), *rank);
        }
        assert_eq!(status_rank("nonsense"), 0);
        assert!(status_rank("read") > status_rank("delivered"));
        assert_eq!(
            status_rank("failed"),
            status_rank("delivered"),
            "final statuses do not replace each other"
        );
    }
}
