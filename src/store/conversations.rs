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
        "INSERT INTO conversation (conversation_id, contact_id, business_number, status, created_at, last_message_at, updated_at) \
         VALUES ($1, $2, $3, 'open', $4, $4, $4) ON CONFLICT DO NOTHING",
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
    // Unconditional, so that the row is locked (on PostgreSQL) whether or not the time moves:
    // the conversation is the first lock of every transaction that changes consent.
    sqlx::query(
        "UPDATE conversation SET last_message_at = CASE WHEN last_message_at < $1 THEN $1 ELSE last_message_at END, \
         updated_at = CASE WHEN updated_at IS NULL OR updated_at < $1 THEN $1 ELSE updated_at END WHERE conversation_id = $2",
    )
    .bind(at)
    .bind(&conversation_id)
    .execute(&mut *conn)
    .await?;
    Ok(conversation_id)
}

/// Locks a conversation for the rest of the transaction ([`super::lock_row`]). Transactions that
/// change consent take the conversation, then the contact
/// ([`crate::compliance::consent::lock_contact`]), then the audit head, so none waits on another
/// in a cycle.
///
/// # Errors
/// Database errors.
pub async fn lock(conn: &mut AnyConnection, conversation_id: &str) -> Result<(), sqlx::Error> {
    super::lock_row(conn, "conversation", "conversation_id", conversation_id).await
}
