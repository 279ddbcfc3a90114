//! Conversations: one open thread per contact and business number.

use sqlx::{AnyConnection, Row};

/// Returns the open conversation between `contact_id` and `business_number`, opening one if there
/// is none, and marks activity at `at`. The partial unique index `conversation_one_open` makes
/// this safe against concurrent messages.
///
/// # Errors
/// Database errors.
pub async fn touch_open(
    conn: &mut AnyConnection,
    contact_id: &str,
    business_number: &str,
    at: &str,
) -> Result<String, sqlx::Error> {
    sqlx::query(
        "INSERT INTO conversation (conversation_id, contact_id, business_number, status, created_at, last_message_at) \
         VALUES ($1, $2, $3, 'open', $4, $4) ON CONFLICT DO NOTHING",
    )
    .bind(super::new_id())
    .bind(contact_id)
    .bind(business_number)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(
        "SELECT conversation_id FROM conversation WHERE contact_id = $1 AND business_number = $2 AND status = 'open'",
    )
    .bind(contact_id)
    .bind(business_number)
    .fetch_one(&mut *conn)
    .await?;
    let conversation_id: String = row.try_get(0)?;
    sqlx::query("UPDATE conversation SET last_message_at = $1 WHERE conversation_id = $2 AND last_message_at < $1")
        .bind(at)
        .bind(&conversation_id)
        .execute(&mut *conn)
        .await?;
    Ok(conversation_id)
}
