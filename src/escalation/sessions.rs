//! Customer sessions on the secure page. A verified code (and, when configured, a confirmed
//! knowledge-check answer) opens one: a 256-bit random token in an HttpOnly, SameSite=Strict
//! cookie (`Secure` when `public_url` is https), of which only the SHA-256 is stored. A session
//! belongs to one link; it ends after `session_idle` (30 minutes) without a request from the
//! customer, and with its link (expiry, revocation, lock, the conversation closing).
//!
//! The page's live stream does not count as activity, but it marks the session as *streaming*,
//! which tells [`super::chat`] whether the customer would see a new message without a text.

use super::links::Link;
use crate::audit::{self, Actor, Event};
use crate::web::AppState;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{AnyConnection, Row};
use zeroize::Zeroizing;

/// The session cookie's name, followed by `_` and the link's id (one cookie per link).
pub const COOKIE: &str = "drawbridge_secure";

/// How long after its last heartbeat a stream still counts as connected.
pub const STREAMING_WINDOW: TimeDelta = TimeDelta::seconds(30);

/// An open session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub link_id: String,
}

/// Opens a session for a verified code, using the code up. `None` when the code was used (or
/// ended) meanwhile. `knowledge_checked`: the business confirmed the customer's answer.
///
/// # Errors
/// Database and audit errors.
pub async fn open(
    state: &AppState,
    link: &Link,
    code_id: &str,
    knowledge_checked: bool,
) -> Result<Option<(Session, Zeroizing<String>)>, super::codes::CodeError> {
    let now_text = state.clock.timestamp();
    let mut tx = state.db.pool().begin().await?;
    // The conversation's row first, as every writer of a conversation and its link takes them.
    crate::store::conversations::lock(&mut tx, &link.conversation_id).await?;
    let used = sqlx::query(
        "UPDATE secure_code SET ended_at = $1 WHERE secure_code_id = $2 AND secure_link_id = $3 \
         AND ended_at IS NULL AND expires_at > $1",
    )
    .bind(&now_text)
    .bind(code_id)
    .bind(&link.id)
    .execute(&mut *tx)
    .await?;
    if used.rows_affected() != 1 {
        return Ok(None);
    }
    let token = crate::store::new_token("");
    let session_id = crate::store::new_id();
    sqlx::query(
        "INSERT INTO customer_session (customer_session_id, token_sha256, secure_link_id, created_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(&session_id)
    .bind(super::links::digest(&token))
    .bind(&link.id)
    .bind(&now_text)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE secure_link SET verified_at = COALESCE(verified_at, $1) WHERE secure_link_id = $2",
    )
    .bind(&now_text)
    .bind(&link.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE conversation SET updated_at = $1 WHERE conversation_id = $2")
        .bind(&now_text)
        .bind(&link.conversation_id)
        .execute(&mut *tx)
        .await?;
    let event = Event::new(Actor::System, "secure_link.verify")
        .subject("secure_link", &link.id)
        .subject("conversation", &link.conversation_id)
        .subject("customer_session", &session_id)
        .detail("knowledge_check", knowledge_checked);
    audit::append(&mut tx, state.vault.audit_key(), &event, &now_text).await?;
    tx.commit().await?;
    state.live.changed();
    state.metrics.secure_link("verified");
    Ok(Some((
        Session {
            id: session_id,
            link_id: link.id.clone(),
        },
        token,
    )))
}

/// The open session a cookie names, for `link` at `now`: `None` when the cookie is unknown,
/// belongs to another link, has ended or been idle too long, or the link no longer works.
///
/// # Errors
/// Database errors.
pub async fn current(
    conn: &mut AnyConnection,
    state: &AppState,
    link: &Link,
    cookie: &str,
    now: DateTime<Utc>,
) -> Result<Option<Session>, sqlx::Error> {
    let now_text = crate::store::timestamp(now);
    if !link.usable(&now_text) || !super::links::well_formed(cookie) {
        return Ok(None);
    }
    let idle = TimeDelta::from_std(state.escalation.settings.session_idle)
        .unwrap_or(TimeDelta::minutes(30));
    let Some(row) = sqlx::query(
        "SELECT customer_session_id, secure_link_id, last_seen_at FROM customer_session \
         WHERE token_sha256 = $1 AND ended_at IS NULL",
    )
    .bind(super::links::digest(cookie))
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let id: String = row.try_get(0)?;
    let link_id: String = row.try_get(1)?;
    let last_seen: String = row.try_get(2)?;
    if link_id != link.id || last_seen < crate::store::timestamp(now - idle) {
        return Ok(None);
    }
    Ok(Some(Session { id, link_id }))
}

/// The customer did something: the idle timeout starts again.
///
/// # Errors
/// Database errors.
pub async fn touch(
    conn: &mut AnyConnection,
    session: &Session,
    now: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE customer_session SET last_seen_at = $1 WHERE customer_session_id = $2")
        .bind(now)
        .bind(&session.id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The page's live stream is open (a heartbeat).
///
/// # Errors
/// Database errors.
pub async fn streaming(
    conn: &mut AnyConnection,
    session: &Session,
    now: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE customer_session SET streaming_at = $1 WHERE customer_session_id = $2")
        .bind(now)
        .bind(&session.id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends a session (the customer leaves).
///
/// # Errors
/// Database errors.
pub async fn end(
    conn: &mut AnyConnection,
    session: &Session,
    now: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE customer_session SET ended_at = $1 WHERE customer_session_id = $2")
        .bind(now)
        .bind(&session.id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether a customer has the link's page open now (a stream's heartbeat within
/// [`STREAMING_WINDOW`]), on any instance.
///
/// # Errors
/// Database errors.
pub async fn connected(
    conn: &mut AnyConnection,
    link_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let since = crate::store::timestamp(now - STREAMING_WINDOW);
    let row = sqlx::query(
        "SELECT COUNT(*) FROM customer_session WHERE secure_link_id = $1 AND ended_at IS NULL AND streaming_at > $2",
    )
    .bind(link_id)
    .bind(&since)
    .fetch_one(conn)
    .await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}
