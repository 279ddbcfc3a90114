//! Secure links: a 256-bit random token, URL-safe; only its SHA-256 is stored. A link is bound to
//! one conversation and its contact, expires (24 hours), and may be revoked. A conversation has at
//! most one active link: asking for another while one is active sends the customer nothing
//! (409 `secure_link_active`), since the customer already has a working link.
//!
//! The link message goes through the same outbound gate as a reply — no link to an opted-out
//! number; quiet hours as for any reply — and the outbox. On RCS it carries an "Open secure chat"
//! open-URL suggestion beside the text.

use crate::accounts::Principal;
use crate::audit::{self, Event};
use crate::compliance::outbound::{self, GateError};
use crate::inbox::{self, InboxError};
use crate::outbox::Kind;
use crate::web::AppState;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::TimeDelta;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use zeroize::Zeroizing;

/// How long a link works.
pub const LIFETIME: TimeDelta = TimeDelta::hours(24);

/// The text of the link message; `{link}` becomes the link.
pub const TEMPLATE: &str =
    "For your security we can't take card details by text. Continue here: {link}";

/// A link that was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub link_id: String,
    pub message_id: String,
    pub expires_at: String,
    /// Held by quiet hours until then.
    pub held_until: Option<String>,
}

/// Why no link was sent.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Inbox(#[from] InboxError),
    #[error("the outbound gate refused or failed")]
    Gate(GateError),
    /// A link is already active; it expires then.
    #[error("a secure link is already active")]
    Active { expires_at: String },
}

impl From<sqlx::Error> for LinkError {
    fn from(error: sqlx::Error) -> Self {
        Self::Inbox(InboxError::Database(error))
    }
}

/// SHA-256 of a token: what is stored and looked up.
#[must_use]
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Mints a link for the conversation and sends it to the customer. See the module documentation.
///
/// # Errors
/// [`LinkError`].
pub async fn send(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
) -> Result<Issued, LinkError> {
    let conversation = {
        let mut conn = state.db.pool().acquire().await?;
        inbox::actionable(&mut conn, principal, conversation_id, "send secure links").await?
    };
    let now = state.clock.now();
    let now_text = crate::store::timestamp(now);
    {
        let mut conn = state.db.pool().acquire().await?;
        if let Some(row) = sqlx::query(
            "SELECT expires_at FROM secure_link WHERE conversation_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY expires_at DESC LIMIT 1",
        )
        .bind(conversation_id)
        .bind(&now_text)
        .fetch_optional(&mut *conn)
        .await?
        {
            return Err(LinkError::Active {
                expires_at: row.try_get(0)?,
            });
        }
    }
    let mut bytes = Zeroizing::new([0_u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    let token = Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()));
    let url = Zeroizing::new(format!("{}/s/{}", state.public_url, token.as_str()));
    let body = Zeroizing::new(TEMPLATE.replace("{link}", &url));
    let suggestions = [crate::carriers::Suggestion::OpenUrl {
        text: "Open secure chat".to_owned(),
        url: url.to_string(),
    }];
    let link_id = crate::store::new_id();
    let expires_at = crate::store::timestamp(now + LIFETIME);
    // The link row first, so a link message never exists without the row that makes it work.
    {
        let mut tx = state.db.pool().begin().await?;
        sqlx::query(
            "INSERT INTO secure_link (secure_link_id, conversation_id, contact_id, token_sha256, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&link_id)
        .bind(conversation_id)
        .bind(&conversation.contact_id)
        .bind(digest(&token))
        .bind(principal.actor_string())
        .bind(&now_text)
        .bind(&expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE conversation SET escalated_at = COALESCE(escalated_at, $1), updated_at = $1 WHERE conversation_id = $2",
        )
        .bind(&now_text)
        .bind(conversation_id)
        .execute(&mut *tx)
        .await?;
        let event = Event::new(principal.actor(), "secure_link.create")
            .subject("conversation", conversation_id)
            .subject("secure_link", &link_id);
        audit::append(&mut tx, state.vault.audit_key(), &event, &now_text)
            .await
            .map_err(InboxError::from)?;
        tx.commit().await?;
    }
    match outbound::send(
        state,
        conversation_id,
        Kind::SecureLink,
        &body,
        &suggestions,
    )
    .await
    {
        Ok(sent) => {
            state.live.changed();
            Ok(Issued {
                link_id,
                message_id: sent.message_id,
                expires_at,
                held_until: sent.held_until.map(crate::store::timestamp),
            })
        }
        Err(error) => {
            // Not sent: the link must not stay active (and block the next attempt).
            let mut conn = state.db.pool().acquire().await?;
            sqlx::query(
                "UPDATE secure_link SET revoked_at = $1, revoked_by = 'system' WHERE secure_link_id = $2",
            )
            .bind(&now_text)
            .bind(&link_id)
            .execute(&mut *conn)
            .await?;
            Err(LinkError::Gate(error))
        }
    }
}
