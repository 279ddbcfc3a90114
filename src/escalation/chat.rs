//! The secure channel: what the customer sees on the page, what they send, and agents' replies.
//!
//! - The customer sees the conversation's carrier messages as stored (redacted; system messages
//!   with their secret masked) and the secure-channel messages in full.
//! - A customer's message is sealed under the contact's data key, as written: the channel is
//!   secure, so it is not redacted. The redaction engine still runs over it in memory and its
//!   findings (types and counts, never values) are stored beside it.
//! - Agents (and supervisors) who can act on the conversation reply into the secure channel while
//!   its link is active. Their messages are sealed and audited (`secure_message.send`). Staff see
//!   secure-channel messages only through the audited reveal (`crate::inbox::reveal`).
//! - When an agent writes and the customer does not have the page open, the customer gets a text
//!   with a link (a new token for the same link), at most one per `notify_interval`.

use super::links::{self, Link};
use crate::accounts::Principal;
use crate::audit::{self, Event};
use crate::compliance::outbound::{self, GateError, Message, Refusal, Timing};
use crate::inbox::{self, InboxError};
use crate::outbox::Kind;
use crate::redact::Direction;
use crate::vault::{self, Aad, SecretKey};
use crate::web::AppState;
use chrono::TimeDelta;
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use zeroize::Zeroizing;

/// The longest secure message, in characters.
pub const MAX_CHARS: usize = 4000;

/// Messages the page shows, at most (the newest).
pub const PAGE_MESSAGES: i64 = 200;

/// A message as the customer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerMessage {
    pub id: String,
    /// `inbound` (from the customer) or `outbound` (from the business).
    pub direction: String,
    /// `sms`, `mms`, `rcs` or `secure`.
    pub channel: String,
    pub body: String,
    pub created_at: String,
}

/// Why a secure message was not stored.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Inbox(#[from] InboxError),
    /// Empty or longer than [`MAX_CHARS`].
    #[error("a message has 1 to {MAX_CHARS} characters")]
    Length,
    /// The conversation has no active link: the customer cannot read a secure reply.
    #[error("the conversation has no active secure link")]
    NoLink,
    #[error("the notification could not be queued: {0}")]
    Gate(#[from] GateError),
}

impl From<sqlx::Error> for ChatError {
    fn from(error: sqlx::Error) -> Self {
        Self::Inbox(InboxError::Database(error))
    }
}

impl From<vault::VaultError> for ChatError {
    fn from(error: vault::VaultError) -> Self {
        Self::Inbox(error.into())
    }
}

impl From<audit::AuditError> for ChatError {
    fn from(error: audit::AuditError) -> Self {
        Self::Inbox(error.into())
    }
}

async fn contact_key(
    conn: &mut AnyConnection,
    state: &AppState,
    contact_id: &str,
) -> Result<SecretKey, ChatError> {
    let wrapped: Vec<u8> =
        sqlx::query("SELECT data_key_wrapped FROM contact WHERE contact_id = $1")
            .bind(contact_id)
            .fetch_one(conn)
            .await?
            .try_get(0)?;
    Ok(state.vault.unwrap_data_key(&wrapped, contact_id)?)
}

/// The thread as the customer sees it (the newest [`PAGE_MESSAGES`]), oldest first; `only`
/// narrows it to one message.
///
/// # Errors
/// Database and sealing errors.
pub async fn thread(
    state: &AppState,
    link: &Link,
    only: Option<&str>,
) -> Result<Vec<CustomerMessage>, ChatError> {
    let mut conn = state.db.pool().acquire().await?;
    let dek = contact_key(&mut conn, state, &link.contact_id).await?;
    let only = only.unwrap_or("");
    let rows = sqlx::query(
        "SELECT id, direction, channel, body_sealed, created_at, source FROM ( \
           SELECT message_id AS id, direction, channel, body_sealed, created_at, 'message' AS source \
             FROM message WHERE conversation_id = $1 AND ($2 = '' OR message_id = $2) \
           UNION ALL \
           SELECT secure_message_id, direction, 'secure', body_sealed, created_at, 'secure_message' \
             FROM secure_message WHERE conversation_id = $1 AND ($2 = '' OR secure_message_id = $2) \
         ) t ORDER BY created_at DESC, id DESC LIMIT $3",
    )
    .bind(&link.conversation_id)
    .bind(only)
    .bind(PAGE_MESSAGES)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows.iter().rev() {
        let id: String = row.try_get(0)?;
        let sealed: Vec<u8> = row.try_get(3)?;
        let source: String = row.try_get(5)?;
        let plain = vault::open(&dek, &sealed, Aad::new(&source, "body_sealed", &id))?;
        out.push(CustomerMessage {
            body: String::from_utf8_lossy(&plain).into_owned(),
            direction: row.try_get(1)?,
            channel: row.try_get(2)?,
            created_at: row.try_get(4)?,
            id,
        });
    }
    Ok(out)
}

fn check_length(body: &str) -> Result<(), ChatError> {
    let chars = body.trim().chars().count();
    if chars == 0 || body.chars().count() > MAX_CHARS {
        return Err(ChatError::Length);
    }
    Ok(())
}

/// Stores a secure message (sealed, findings recorded) in `tx`; returns its id.
async fn store(
    tx: &mut AnyConnection,
    state: &AppState,
    link: &Link,
    direction: Direction,
    body: &str,
    author: Option<&str>,
    now: &str,
) -> Result<String, ChatError> {
    let findings = state
        .redactor
        .current()
        .redact(body, direction)
        .summary()
        .to_json();
    let dek = contact_key(tx, state, &link.contact_id).await?;
    let id = crate::store::new_id();
    let sealed = vault::seal(
        &dek,
        body.as_bytes(),
        Aad::new("secure_message", "body_sealed", &id),
    )?;
    sqlx::query(
        "INSERT INTO secure_message (secure_message_id, conversation_id, direction, body_sealed, findings, author_user_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(&link.conversation_id)
    .bind(if matches!(direction, Direction::Inbound) {
        "inbound"
    } else {
        "outbound"
    })
    .bind(&sealed)
    .bind(&findings)
    .bind(author)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE conversation SET updated_at = $1, \
         last_message_at = CASE WHEN last_message_at < $1 THEN $1 ELSE last_message_at END \
         WHERE conversation_id = $2",
    )
    .bind(now)
    .bind(&link.conversation_id)
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// The customer sends a message on the page. Returns its id.
///
/// # Errors
/// [`ChatError::Length`]; database and sealing errors.
pub async fn customer_post(state: &AppState, link: &Link, body: &str) -> Result<String, ChatError> {
    check_length(body)?;
    let body = Zeroizing::new(body.to_owned());
    let now = state.clock.timestamp();
    let mut tx = state.db.pool().begin().await?;
    let id = store(&mut tx, state, link, Direction::Inbound, &body, None, &now).await?;
    tx.commit().await?;
    state.live.changed();
    state.metrics.secure_link("customer_message");
    Ok(id)
}

/// An agent's reply in the secure channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replied {
    pub id: String,
    /// Whether the customer was texted that a message is waiting.
    pub notified: bool,
}

/// An agent (or supervisor) writes to the customer in the secure channel. See the module
/// documentation.
///
/// # Errors
/// Not found or forbidden; [`ChatError::NoLink`]; [`ChatError::Length`].
pub async fn agent_post(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
    body: &str,
) -> Result<Replied, ChatError> {
    check_length(body)?;
    let body = Zeroizing::new(body.to_owned());
    let now = state.clock.now();
    let now_text = crate::store::timestamp(now);
    let mut tx = state.db.pool().begin().await?;
    crate::store::conversations::lock(&mut tx, conversation_id).await?;
    inbox::actionable(
        &mut tx,
        principal,
        conversation_id,
        "write in the secure channel",
    )
    .await?;
    let link = links::active(&mut tx, conversation_id, &now_text)
        .await?
        .ok_or(ChatError::NoLink)?;
    let id = store(
        &mut tx,
        state,
        &link,
        Direction::Outbound,
        &body,
        principal.user_id(),
        &now_text,
    )
    .await?;
    // The link's row before the audit trail's head, the order the code checks keep.
    let notified = notify(&mut tx, state, &link, now).await?;
    let event = Event::new(principal.actor(), "secure_message.send")
        .subject("conversation", conversation_id)
        .subject("secure_message", &id);
    audit::append(&mut tx, state.vault.audit_key(), &event, &now_text).await?;
    tx.commit().await?;
    if notified {
        state.outbox.wake();
        state.metrics.secure_link("notified");
    }
    state.live.changed();
    state.metrics.secure_link("agent_message");
    Ok(Replied { id, notified })
}

/// Texts "you have a new secure message" when the customer is not on the page and the last such
/// text is older than the interval. `true` when one was queued.
async fn notify(
    tx: &mut AnyConnection,
    state: &AppState,
    link: &Link,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, ChatError> {
    if super::sessions::connected(tx, &link.id, now).await? {
        return Ok(false);
    }
    let now_text = crate::store::timestamp(now);
    let interval =
        TimeDelta::from_std(state.escalation.settings.notify_interval).unwrap_or_default();
    let due_before = crate::store::timestamp(now - interval);
    // A compare-and-set: two agents writing at once send one text.
    let claimed = sqlx::query(
        "UPDATE secure_link SET notified_at = $1 WHERE secure_link_id = $2 \
         AND (notified_at IS NULL OR notified_at <= $3)",
    )
    .bind(&now_text)
    .bind(&link.id)
    .bind(&due_before)
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() != 1 {
        return Ok(false);
    }
    let token = links::add_token(tx, &link.id, &now_text).await?;
    let url = links::url(state, &token);
    let template = &state.escalation.settings.notification_template;
    let body = Zeroizing::new(template.replace("{link}", &url));
    let shown = template.replace("{link}", &links::shown_url(state));
    let suggestions = [crate::carriers::Suggestion::OpenUrl {
        text: links::OPEN_ACTION.to_owned(),
        url: url.to_string(),
    }];
    let queued = outbound::queue(
        tx,
        state,
        &link.conversation_id,
        &Message {
            kind: Kind::Notification,
            body: &body,
            shown: Some(&shown),
            suggestions: &suggestions,
            timing: Timing::Business,
        },
        now,
    )
    .await;
    match queued {
        Ok(_) => Ok(true),
        Err(GateError::Refused(Refusal::OptedOut { .. })) => Ok(false),
        Err(other) => Err(other.into()),
    }
}
