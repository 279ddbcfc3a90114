//! The outbox: the durable send queue every outbound message goes through — an agent's reply, a
//! keyword confirmation, a secure link.
//!
//! # Writing
//!
//! [`enqueue`] stores the message (outbound, `queued`, body sealed under the contact's data key)
//! and its outbox row **in the caller's transaction**, so the message exists if and only if the
//! event that caused it does. It goes out through the business number the customer texted (the
//! conversation's), on the channel the customer last used (RCS stays RCS where the carrier offers
//! it; media makes SMS an MMS). After committing, the caller wakes the local worker
//! ([`OutboxHandle::wake`]); other instances find the row on their next poll.
//!
//! # Sending ([`worker`])
//!
//! Workers claim due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of instances can
//! run; one worker on SQLite) and send each through its number's carrier, no faster than the
//! number's throughput allows. Each row is marked in flight and committed **before** the carrier
//! is called and its carrier id recorded after, so a row is never sent twice:
//!
//! - the carrier refused it for good (opted out, invalid number, any permanent error) → `failed`
//!   with the carrier's error code; the message's status becomes `failed`;
//! - a retryable refusal (throttled, 5xx, no connection) → `pending` again after an exponential
//!   backoff with jitter (never sooner than the carrier's `Retry-After`), until `max_attempts`;
//! - an attempt whose outcome is unknown (a timeout, a dropped connection, a crash mid-call) is
//!   `uncertain` and resolved before the row is sent again, the way the carrier's profile says
//!   (`resend`): carriers that deduplicate on our key (Telnyx `Idempotency-Key`, RBM `messageId`)
//!   are simply sent again; carriers with a listing are asked whether the message went out (our
//!   reference, else our exact text, among messages we have not recorded); for carriers with
//!   neither, the row becomes `unconfirmed` and is never sent again automatically.
//!
//! Status callbacks that arrive before the carrier id is recorded are kept and applied when it
//! is.

pub mod worker;

pub use worker::{OutboxHandle, WorkerHandle};

use crate::carriers::Suggestion;
use crate::config::Account;
use crate::phone::BusinessAddress;
use crate::pipeline::Channel;
use crate::store::{self, messages, outbox};
use crate::vault::{self, Aad, Vault, VaultError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;
use std::sync::Arc;

/// Why a message is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An agent's reply (console or API).
    Reply,
    /// The confirmation of a STOP/START/HELP keyword.
    KeywordConfirmation,
    /// A secure link.
    SecureLink,
    /// Any other message the business starts.
    Notification,
}

impl Kind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reply => "reply",
            Self::KeywordConfirmation => "keyword_confirmation",
            Self::SecureLink => "secure_link",
            Self::Notification => "notification",
        }
    }
}

/// A message to queue.
#[derive(Clone)]
pub struct Outbound<'a> {
    pub conversation_id: &'a str,
    pub kind: Kind,
    pub body: &'a str,
    /// What the conversation's record shows instead of `body`, when `body` holds a secret that
    /// staff must not see (a secure link's token, a one-time code). The text actually sent is
    /// then kept only in the row's sealed extras.
    pub shown: Option<&'a str>,
    pub media_urls: &'a [String],
    pub suggestions: &'a [Suggestion],
    /// Send no earlier than this (quiet hours); `None`: now.
    pub not_before: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Outbound<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("conversation_id", &self.conversation_id)
            .field("kind", &self.kind)
            .field("body_chars", &self.body.chars().count())
            .field("media", &self.media_urls.len())
            .field("suggestions", &self.suggestions.len())
            .finish()
    }
}

/// The sealed extras of a row: media URLs and suggestions (an open-URL suggestion holds a secure
/// link's token).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Extras {
    #[serde(default)]
    pub media_urls: Vec<String>,
    #[serde(default)]
    pub suggestions: Vec<Suggestion>,
    /// The text to send when the message's stored body is a redacted display version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub outbox_id: String,
    pub message_id: String,
    pub channel: Channel,
}

/// Why a message could not be queued. Carries no content.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("no such conversation")]
    NoConversation,
    #[error("the conversation's business number is not configured on this service")]
    SenderNotConfigured,
    #[error("the message has neither text nor media")]
    Empty,
    #[error("the database refused the message")]
    Database(#[from] sqlx::Error),
    #[error("sealing failed")]
    Vault(#[from] VaultError),
}

/// Queues a message in the conversation, in the caller's transaction, at `at` (the service's
/// clock). See the module documentation.
///
/// # Errors
/// [`EnqueueError`]; the caller's transaction should then be rolled back.
pub async fn enqueue(
    tx: &mut AnyConnection,
    vault: &Vault,
    senders: &HashMap<BusinessAddress, Arc<Account>>,
    outbound: &Outbound<'_>,
    at: DateTime<Utc>,
) -> Result<Queued, EnqueueError> {
    if outbound.body.trim().is_empty() && outbound.media_urls.is_empty() {
        return Err(EnqueueError::Empty);
    }
    // A write first: on SQLite the transaction then takes the write lock up front (waiting on the
    // busy timeout) instead of failing to upgrade a read snapshot that a concurrent writer has
    // outdated.
    let now = store::timestamp(at);
    let touched = sqlx::query(
        "UPDATE conversation SET last_message_at = CASE WHEN last_message_at < $1 THEN $1 ELSE last_message_at END \
         WHERE conversation_id = $2",
    )
    .bind(&now)
    .bind(outbound.conversation_id)
    .execute(&mut *tx)
    .await?;
    if touched.rows_affected() == 0 {
        return Err(EnqueueError::NoConversation);
    }
    let row = sqlx::query(
        "SELECT v.contact_id, v.business_number, c.data_key_wrapped FROM conversation v \
         JOIN contact c ON c.contact_id = v.contact_id WHERE v.conversation_id = $1",
    )
    .bind(outbound.conversation_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(EnqueueError::NoConversation)?;
    let contact_id: String = row.try_get(0)?;
    let business_number: String = row.try_get(1)?;
    let wrapped: Vec<u8> = row.try_get(2)?;
    let account = BusinessAddress::from_key(&business_number)
        .ok()
        .and_then(|address| senders.get(&address))
        .ok_or(EnqueueError::SenderNotConfigured)?;
    let carrier = account.carrier.carrier();

    // The customer's last channel: RCS stays RCS where the carrier offers it.
    let last: Option<String> = sqlx::query(
        "SELECT channel FROM message WHERE conversation_id = $1 AND direction = 'inbound' \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(outbound.conversation_id)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| r.try_get(0))
    .transpose()?;
    let offers = |channel| carrier.profile().channels.contains(&channel);
    let channel = match last.as_deref() {
        Some("rcs") if offers(Channel::Rcs) => Channel::Rcs,
        _ if !outbound.media_urls.is_empty() && offers(Channel::Mms) => Channel::Mms,
        _ => Channel::Sms,
    };

    let dek = vault.unwrap_data_key(&wrapped, &contact_id)?;
    let message_id = store::new_id();
    let outbox_id = store::new_id();
    let body_sealed = vault::seal(
        &dek,
        outbound.shown.unwrap_or(outbound.body).as_bytes(),
        Aad::new("message", "body_sealed", &message_id),
    )?;
    let extras_sealed = if outbound.media_urls.is_empty()
        && outbound.suggestions.is_empty()
        && outbound.shown.is_none()
    {
        None
    } else {
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(&Extras {
                media_urls: outbound.media_urls.to_vec(),
                suggestions: outbound.suggestions.to_vec(),
                text: outbound.shown.map(|_| outbound.body.to_owned()),
            })
            .map_err(|_| VaultError::Seal)?,
        );
        Some(vault::seal(
            &dek,
            &json,
            Aad::new("outbox", "extras_sealed", &outbox_id),
        )?)
    };
    messages::insert(
        tx,
        &messages::NewMessage {
            message_id: &message_id,
            conversation_id: outbound.conversation_id,
            direction: "outbound",
            channel: channel.as_str(),
            carrier: carrier.name(),
            carrier_message_id: None,
            body_sealed: &body_sealed,
            media_count: i64::try_from(outbound.media_urls.len()).unwrap_or(i64::MAX),
            findings_json: "{}",
            status: "queued",
            created_at: &now,
        },
    )
    .await?;
    let due_at = outbound
        .not_before
        .map_or_else(|| now.clone(), store::timestamp);
    outbox::insert(
        tx,
        &outbox::NewOutbox {
            outbox_id: &outbox_id,
            message_id: &message_id,
            kind: outbound.kind.as_str(),
            business_number: &business_number,
            contact_id: &contact_id,
            carrier: carrier.name(),
            extras_sealed: extras_sealed.as_deref(),
            due_at: &due_at,
            now: &now,
        },
    )
    .await?;
    Ok(Queued {
        outbox_id,
        message_id,
        channel,
    })
}
