//! Messages and their delivery status.

use sqlx::AnyConnection;

/// A message row about to be inserted; body and media already redacted and sealed.
#[derive(Debug)]
pub struct NewMessage<'a> {
    pub message_id: &'a str,
    pub conversation_id: &'a str,
    pub direction: &'a str,
    pub channel: &'a str,
    pub carrier: &'a str,
    pub carrier_message_id: &'a str,
    pub body_sealed: &'a [u8],
    pub media_sealed: Option<&'a [u8]>,
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
         body_sealed, media_sealed, media_count, findings, status, status_updated_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
         ON CONFLICT (carrier, carrier_message_id) DO NOTHING",
    )
    .bind(m.message_id)
    .bind(m.conversation_id)
    .bind(m.direction)
    .bind(m.channel)
    .bind(m.carrier)
    .bind(m.carrier_message_id)
    .bind(m.body_sealed.to_vec())
    .bind(m.media_sealed.map(<[u8]>::to_vec))
    .bind(m.media_count)
    .bind(m.findings_json)
    .bind(m.status)
    .bind(m.created_at)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// How far along the delivery path a status is. A status update never moves a message backwards:
/// callbacks arrive out of order, and `delivered` must not be overwritten by a late `sent`.
#[must_use]
pub fn status_rank(status: &str) -> i64 {
    match status {
        "queued" => 1,
        "sent" => 2,
        "delivered" | "undelivered" | "failed" => 3,
        "read" => 4,
        _ => 0,
    }
}

/// A delivery status report from a carrier, already mapped to our vocabulary.
#[derive(Debug)]
pub struct StatusReport<'a> {
    pub carrier: &'a str,
    pub carrier_message_id: &'a str,
    pub status: &'a str,
    pub carrier_status: &'a str,
    pub error_code: Option<&'a str>,
}

/// Records a status report and applies it to the message it names, unless that message already
/// has a later status. Returns whether a stored message was updated.
///
/// # Errors
/// Database errors.
pub async fn record_status(
    conn: &mut AnyConnection,
    report: &StatusReport<'_>,
) -> Result<bool, sqlx::Error> {
    let at = super::now();
    sqlx::query(
        "INSERT INTO message_status_event (message_status_event_id, carrier, carrier_message_id, status, carrier_status, error_code, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(super::new_id())
    .bind(report.carrier)
    .bind(report.carrier_message_id)
    .bind(report.status)
    .bind(report.carrier_status)
    .bind(report.error_code)
    .bind(&at)
    .execute(&mut *conn)
    .await?;
    // The rank comparison happens in the UPDATE itself, so concurrent callbacks cannot race past it.
    let updated = sqlx::query(
        "UPDATE message SET status = $1, status_error_code = $2, status_updated_at = $3 \
         WHERE carrier = $4 AND carrier_message_id = $5 \
         AND (CASE status WHEN 'queued' THEN 1 WHEN 'sent' THEN 2 WHEN 'delivered' THEN 3 \
              WHEN 'undelivered' THEN 3 WHEN 'failed' THEN 3 WHEN 'read' THEN 4 ELSE 0 END) <= $6",
    )
    .bind(report.status)
    .bind(report.error_code)
    .bind(&at)
    .bind(report.carrier)
    .bind(report.carrier_message_id)
    .bind(status_rank(report.status))
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}
