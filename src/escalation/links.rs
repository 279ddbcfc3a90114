//! Secure links: 256 random bits, URL-safe (`{public_url}/s/{token}`); only the token's SHA-256
//! is stored. A link is bound to one conversation and its contact, expires
//! (`escalation.link_lifetime`, 24 hours by default), and ends early when an agent revokes it,
//! when the conversation is closed, or when too many wrong codes lock it. A conversation has at
//! most one active link.
//!
//! # Triggers
//!
//! - **Automatic** ([`escalate`]): an inbound message the redaction engine escalates (a
//!   sensitive finding or topic) sends the customer a link in the same transaction that stores
//!   the message, so an acknowledged message never loses its link. While a link is active,
//!   nothing more is sent within the cool-down after it was sent; after the cool-down, a customer
//!   who has not used the link gets a fresh one (the old one is revoked, since the service cannot
//!   resend a token it does not keep), and a customer who has verified on it gets nothing (they
//!   are already in). Without an active link (none yet, or it expired, was revoked or locked),
//!   a new link is sent.
//! - **An agent** ([`send`], console and API): refused with [`LinkError::Active`] while a link is
//!   active; the agent may [`revoke`] it first.
//!
//! The link message goes through the outbox with the consent check (no link to an opted-out
//! number). On RCS it carries an "Open secure chat" open-URL suggestion beside the text, which is
//! the fallback. The record shows the message with the token masked.

use crate::accounts::Principal;
use crate::audit::{self, Actor, Event};
use crate::compliance::outbound::{self, GateError, Message, Timing};
use crate::inbox::{self, InboxError};
use crate::outbox::Kind;
use crate::web::AppState;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{AnyConnection, Row};
use zeroize::Zeroizing;

/// The label of the RCS suggested action.
pub const OPEN_ACTION: &str = "Open secure chat";

/// A stored link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: String,
    pub conversation_id: String,
    pub contact_id: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub locked_at: Option<String>,
    pub verified_at: Option<String>,
}

impl Link {
    /// Whether the link still works at `now` (a stored timestamp).
    #[must_use]
    pub fn usable(&self, now: &str) -> bool {
        self.revoked_at.is_none() && self.locked_at.is_none() && self.expires_at.as_str() > now
    }
}

const LINK_COLUMNS: &str =
    "l.secure_link_id, l.conversation_id, l.contact_id, l.created_at, l.expires_at, \
     l.revoked_at, l.locked_at, l.verified_at";

fn link_from(row: &sqlx::any::AnyRow) -> Result<Link, sqlx::Error> {
    Ok(Link {
        id: row.try_get(0)?,
        conversation_id: row.try_get(1)?,
        contact_id: row.try_get(2)?,
        created_at: row.try_get(3)?,
        expires_at: row.try_get(4)?,
        revoked_at: row.try_get(5)?,
        locked_at: row.try_get(6)?,
        verified_at: row.try_get(7)?,
    })
}

/// A link was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub link_id: String,
    pub message_id: String,
    pub expires_at: String,
    /// Held by quiet hours until then.
    pub held_until: Option<String>,
}

/// Why no link was sent or revoked.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Inbox(#[from] InboxError),
    #[error("the outbound gate refused or failed")]
    Gate(GateError),
    /// A link is already active; it expires then.
    #[error("a secure link is already active")]
    Active { expires_at: String },
    /// There is no active link to revoke.
    #[error("no secure link is active")]
    NoneActive,
}

impl From<sqlx::Error> for LinkError {
    fn from(error: sqlx::Error) -> Self {
        Self::Inbox(InboxError::Database(error))
    }
}

impl From<GateError> for LinkError {
    fn from(error: GateError) -> Self {
        Self::Gate(error)
    }
}

/// SHA-256 of a token: what is stored and looked up.
pub use crate::store::token_digest as digest;

/// Whether `token` looks like one of ours (43 base64url characters), before any look-up.
#[must_use]
pub fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The link a URL token belongs to, whatever its state (the caller checks [`Link::usable`]).
///
/// # Errors
/// Database errors.
pub async fn find(conn: &mut AnyConnection, token: &str) -> Result<Option<Link>, sqlx::Error> {
    if !well_formed(token) {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {LINK_COLUMNS} FROM secure_link_token t JOIN secure_link l ON l.secure_link_id = t.secure_link_id \
         WHERE t.token_sha256 = $1"
    );
    sqlx::query(&sql)
        .bind(digest(token))
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(link_from)
        .transpose()
}

/// The conversation's newest link, whatever its state.
///
/// # Errors
/// Database errors.
pub async fn latest(
    conn: &mut AnyConnection,
    conversation_id: &str,
) -> Result<Option<Link>, sqlx::Error> {
    let sql = format!(
        "SELECT {LINK_COLUMNS} FROM secure_link l WHERE l.conversation_id = $1 \
         ORDER BY l.created_at DESC, l.secure_link_id DESC LIMIT 1"
    );
    sqlx::query(&sql)
        .bind(conversation_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(link_from)
        .transpose()
}

/// The conversation's active link, if it has one.
///
/// # Errors
/// Database errors.
pub async fn active(
    conn: &mut AnyConnection,
    conversation_id: &str,
    now: &str,
) -> Result<Option<Link>, sqlx::Error> {
    let sql = format!(
        "SELECT {LINK_COLUMNS} FROM secure_link l WHERE l.conversation_id = $1 \
         AND l.revoked_at IS NULL AND l.locked_at IS NULL AND l.expires_at > $2 \
         ORDER BY l.created_at DESC LIMIT 1"
    );
    sqlx::query(&sql)
        .bind(conversation_id)
        .bind(now)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(link_from)
        .transpose()
}

/// A fresh token for `link_id`, stored as its hash.
pub(crate) async fn add_token(
    tx: &mut AnyConnection,
    link_id: &str,
    now: &str,
) -> Result<Zeroizing<String>, sqlx::Error> {
    let token = crate::store::new_token("");
    sqlx::query(
        "INSERT INTO secure_link_token (token_sha256, secure_link_id, created_at) VALUES ($1, $2, $3)",
    )
    .bind(digest(&token))
    .bind(link_id)
    .bind(now)
    .execute(tx)
    .await?;
    Ok(token)
}

/// The link's URL.
#[must_use]
pub fn url(state: &AppState, token: &str) -> Zeroizing<String> {
    Zeroizing::new(format!("{}/s/{token}", state.public_url))
}

/// The link as the conversation's record shows it: the token masked.
#[must_use]
pub fn shown_url(state: &AppState) -> String {
    format!("{}/s/••••••", state.public_url)
}

/// Ends the conversation's active links (`by`: an audit actor text, or `system`). Returns the
/// ended links' ids.
pub(crate) async fn end_active(
    tx: &mut AnyConnection,
    conversation_id: &str,
    by: &str,
    now: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let ids: Vec<String> = sqlx::query(
        "SELECT secure_link_id FROM secure_link WHERE conversation_id = $1 AND revoked_at IS NULL \
         AND locked_at IS NULL AND expires_at > $2",
    )
    .bind(conversation_id)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<Result<_, _>>()?;
    for id in &ids {
        sqlx::query(
            "UPDATE secure_link SET revoked_at = $1, revoked_by = $2 WHERE secure_link_id = $3",
        )
        .bind(now)
        .bind(by)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE customer_session SET ended_at = $1 WHERE secure_link_id = $2 AND ended_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(ids)
}

/// Mints a link and queues its message in `tx`. Refused ([`Refusal::OptedOut`]) when consent
/// forbids it; the caller then rolls back.
async fn mint_and_queue(
    tx: &mut AnyConnection,
    state: &AppState,
    conversation_id: &str,
    contact_id: &str,
    created_by: &str,
    timing: Timing,
    now: DateTime<Utc>,
) -> Result<(Issued, String), LinkError> {
    let settings = &state.escalation.settings;
    let now_text = crate::store::timestamp(now);
    let link_id = crate::store::new_id();
    let lifetime = TimeDelta::from_std(settings.link_lifetime).unwrap_or(TimeDelta::hours(24));
    let expires_at = crate::store::timestamp(now + lifetime);
    sqlx::query(
        "INSERT INTO secure_link (secure_link_id, conversation_id, contact_id, created_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&link_id)
    .bind(conversation_id)
    .bind(contact_id)
    .bind(created_by)
    .bind(&now_text)
    .bind(&expires_at)
    .execute(&mut *tx)
    .await?;
    let token = add_token(tx, &link_id, &now_text).await?;
    let url = url(state, &token);
    let body = Zeroizing::new(settings.link_template.replace("{link}", &url));
    let shown = settings.link_template.replace("{link}", &shown_url(state));
    let suggestions = [crate::carriers::Suggestion::OpenUrl {
        text: OPEN_ACTION.to_owned(),
        url: url.to_string(),
    }];
    let queued = outbound::queue(
        tx,
        state,
        conversation_id,
        &Message {
            kind: Kind::SecureLink,
            body: &body,
            shown: Some(&shown),
            suggestions: &suggestions,
            timing,
        },
        now,
    )
    .await?;
    sqlx::query(
        "UPDATE conversation SET escalated_at = COALESCE(escalated_at, $1), updated_at = $1 WHERE conversation_id = $2",
    )
    .bind(&now_text)
    .bind(conversation_id)
    .execute(&mut *tx)
    .await?;
    Ok((
        Issued {
            link_id: link_id.clone(),
            message_id: queued.message_id,
            expires_at,
            held_until: queued.held_until.map(crate::store::timestamp),
        },
        link_id,
    ))
}

/// What an escalating inbound message did about links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Escalated {
    /// A link was sent.
    Sent { link_id: String },
    /// A link was sent within the cool-down: nothing more.
    CoolingDown,
    /// The customer has verified on the active link: nothing more.
    InUse,
    /// The contact has opted out: no link.
    OptedOut,
}

/// The automatic trigger, inside the transaction that stores the escalating inbound message.
/// See the module documentation.
///
/// # Errors
/// Database, sealing and audit errors: the caller's transaction then fails as a whole.
pub async fn escalate(
    tx: &mut AnyConnection,
    state: &AppState,
    conversation_id: &str,
    contact_id: &str,
    now: DateTime<Utc>,
) -> Result<Escalated, LinkError> {
    let now_text = crate::store::timestamp(now);
    let cooldown = TimeDelta::from_std(state.escalation.settings.cooldown).unwrap_or_default();
    let cooling_since = crate::store::timestamp(now - cooldown);
    if let Some(latest) = latest(tx, conversation_id).await? {
        if latest.usable(&now_text) {
            if latest.verified_at.is_some() {
                return Ok(Escalated::InUse);
            }
            if latest.created_at > cooling_since {
                return Ok(Escalated::CoolingDown);
            }
        }
    }
    // Consent before anything is written: an opted-out contact's active link is left as it is,
    // and nothing is minted.
    if outbound::opted_out(tx, state, conversation_id).await? {
        return Ok(Escalated::OptedOut);
    }
    let superseded = end_active(tx, conversation_id, "system", &now_text).await?;
    // Consent was checked above, in this transaction: a refusal here is an error.
    let (issued, link_id) = mint_and_queue(
        tx,
        state,
        conversation_id,
        contact_id,
        "system",
        Timing::Direct,
        now,
    )
    .await?;
    let audit_key = state.vault.audit_key();
    for old in &superseded {
        let event = Event::new(Actor::System, "secure_link.revoke")
            .subject("conversation", conversation_id)
            .subject("secure_link", old)
            .detail("reason", "superseded");
        audit::append(tx, audit_key, &event, &now_text)
            .await
            .map_err(InboxError::from)?;
    }
    let event = Event::new(Actor::System, "secure_link.create")
        .subject("conversation", conversation_id)
        .subject("secure_link", &link_id)
        .subject("message", &issued.message_id)
        .detail("trigger", "inbound");
    audit::append(tx, audit_key, &event, &now_text)
        .await
        .map_err(InboxError::from)?;
    Ok(Escalated::Sent { link_id })
}

/// An agent's "send secure link": mints a link and texts it, following the reply rules (consent;
/// quiet hours unless the customer wrote within the reply window). See the module documentation.
///
/// # Errors
/// [`LinkError`]: not found or forbidden; [`LinkError::Active`]; the gate's refusal.
pub async fn send(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
) -> Result<Issued, LinkError> {
    let now = state.clock.now();
    let now_text = crate::store::timestamp(now);
    let mut tx = state.db.pool().begin().await?;
    crate::store::conversations::lock(&mut tx, conversation_id).await?;
    let conversation =
        inbox::actionable(&mut tx, principal, conversation_id, "send secure links").await?;
    if let Some(link) = active(&mut tx, conversation_id, &now_text).await? {
        return Err(LinkError::Active {
            expires_at: link.expires_at,
        });
    }
    let (issued, link_id) = mint_and_queue(
        &mut tx,
        state,
        conversation_id,
        &conversation.contact_id,
        &principal.actor_string(),
        Timing::Business,
        now,
    )
    .await?;
    let event = Event::new(principal.actor(), "secure_link.create")
        .subject("conversation", conversation_id)
        .subject("secure_link", &link_id)
        .subject("message", &issued.message_id)
        .detail("trigger", "agent");
    audit::append(&mut tx, state.vault.audit_key(), &event, &now_text)
        .await
        .map_err(InboxError::from)?;
    tx.commit().await?;
    state.outbox.wake();
    state.live.changed();
    state.metrics.secure_link("link_agent");
    Ok(issued)
}

/// Revokes the conversation's active link: the URL shows the neutral page from now on and any
/// customer session on it ends. Audited as `secure_link.revoke`.
///
/// # Errors
/// Not found or forbidden; [`LinkError::NoneActive`].
pub async fn revoke(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
) -> Result<String, LinkError> {
    let now_text = state.clock.timestamp();
    let mut tx = state.db.pool().begin().await?;
    crate::store::conversations::lock(&mut tx, conversation_id).await?;
    inbox::actionable(&mut tx, principal, conversation_id, "revoke secure links").await?;
    let ended = end_active(
        &mut tx,
        conversation_id,
        &principal.actor_string(),
        &now_text,
    )
    .await?;
    let Some(link_id) = ended.first().cloned() else {
        return Err(LinkError::NoneActive);
    };
    for id in &ended {
        let event = Event::new(principal.actor(), "secure_link.revoke")
            .subject("conversation", conversation_id)
            .subject("secure_link", id)
            .detail("reason", "agent");
        audit::append(&mut tx, state.vault.audit_key(), &event, &now_text)
            .await
            .map_err(InboxError::from)?;
    }
    sqlx::query("UPDATE conversation SET updated_at = $1 WHERE conversation_id = $2")
        .bind(&now_text)
        .bind(conversation_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    state.live.changed();
    state.metrics.secure_link("revoked");
    Ok(link_id)
}
