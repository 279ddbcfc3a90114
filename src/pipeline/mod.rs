//! The inbound pipeline, carrier-agnostic: normalize → dedupe → redact → seal → store.
//!
//! A carrier module turns its webhook into an [`Inbound`] (normalize). [`ingest`] then:
//!
//! 1. **dedupe**: a message whose `(carrier, carrier_message_id)` is stored already is a carrier's
//!    retry and is acknowledged without storing anything again;
//! 2. **redact**: the rule engine ([`crate::redact`]) replaces sensitive values in memory, before
//!    anything touches the database, and decides whether the conversation should escalate;
//! 3. **seal**: the redacted body (and media references) are sealed under the contact's data key,
//!    the phone number under the same key plus a blind index for look-ups;
//! 4. **store**: contact, conversation and message are written in one transaction.
//!
//! The caller acknowledges the carrier only after [`ingest`] returns `Ok`, i.e. after the commit.
//!
//! The plaintext body and redacted text are held in [`Zeroizing`] buffers, wiped when dropped.
//! That is best effort, not a guarantee: the HTTP layer's request buffer and the parsed form
//! strings it came from are ordinary allocations, freed but not wiped.
//! A concurrent retry racing the first delivery is caught by the unique `(carrier,
//! carrier_message_id)` constraint and reported as [`Outcome::Duplicate`].

use crate::metrics::{Metrics, StoredLabels, TopicLabels, TypeLabels};
use crate::phone::E164;
use crate::redact::{Direction, Findings, Redactor, Topic};
use crate::store::{self, contacts, conversations, messages, Db};
use crate::vault::{self, Aad, Vault, VaultError};
use serde::Serialize;
use std::collections::BTreeSet;
use zeroize::Zeroizing;

/// The channel a message travelled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Sms,
    Mms,
    Rcs,
}

impl Channel {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Mms => "mms",
            Self::Rcs => "rcs",
        }
    }
}

/// A media attachment reference (MMS/RCS). Stored sealed; not downloaded. Its URL can fetch the
/// customer's picture, so `Debug` shows only the content type.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Media {
    pub url: String,
    pub content_type: Option<String>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("url", &"••••")
            .field("content_type", &self.content_type)
            .finish()
    }
}

/// An inbound message, normalized from any carrier's webhook. The body is wiped from memory when
/// this is dropped. `Debug` shows the body's length, never its text, and the numbers masked.
pub struct Inbound {
    /// The carrier's name (`twilio`).
    pub carrier: &'static str,
    /// The carrier's id for the message; retries carry the same id.
    pub carrier_message_id: String,
    /// The customer.
    pub from: E164,
    /// Our business number.
    pub to: E164,
    pub channel: Channel,
    pub body: Zeroizing<String>,
    pub media: Vec<Media>,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("carrier", &self.carrier)
            .field("carrier_message_id", &self.carrier_message_id)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("channel", &self.channel)
            .field("body_chars", &self.body.chars().count())
            .field("media", &self.media)
            .finish()
    }
}

/// What [`ingest`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored as a new message. `escalate` is the engine's decision (a sensitive finding or topic):
    /// the conversation should move to a secure link.
    Stored {
        message_id: String,
        findings: Findings,
        topics: BTreeSet<Topic>,
        escalate: bool,
    },
    /// Already stored: a carrier's retry. Nothing was written.
    Duplicate,
}

/// Why a message could not be stored. Carries no message content.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The database is unreachable or overloaded: answer 503 so the carrier retries.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("the database refused the message")]
    Database(#[source] sqlx::Error),
    /// A stored data key did not open (the master key or the row is wrong), or sealing failed.
    #[error("sealing or unsealing failed")]
    Vault(#[from] VaultError),
}

impl From<sqlx::Error> for IngestError {
    fn from(error: sqlx::Error) -> Self {
        if store::is_unavailable(&error) {
            Self::Unavailable(error)
        } else {
            Self::Database(error)
        }
    }
}

/// Runs an inbound message through the pipeline. See the module documentation.
///
/// # Errors
/// [`IngestError`]; nothing is stored when an error is returned.
#[tracing::instrument(name = "ingest", skip_all, fields(carrier = inbound.carrier, channel = inbound.channel.as_str()))]
pub async fn ingest(
    db: &Db,
    vault: &Vault,
    redactor: &Redactor,
    metrics: &Metrics,
    inbound: Inbound,
) -> Result<Outcome, IngestError> {
    // 1. Dedupe, and find the contact, with reads outside the transaction; the inserts below
    //    close the races (a concurrent retry, a concurrent first message from the same number).
    let phone_index = vault.phone_index(&inbound.from);
    let known_contact = {
        let mut conn = db.pool().acquire().await?;
        if messages::exists(&mut conn, inbound.carrier, &inbound.carrier_message_id).await? {
            return Ok(Outcome::Duplicate);
        }
        contacts::find(&mut conn, &phone_index).await?
    };

    // 2. Redact in memory, with the engine current at this moment (a rule change mid-message
    //    does not half-apply).
    let redacted = redactor.current().redact(&inbound.body, Direction::Inbound);
    let findings = redacted.summary();

    // 3–4. Seal and store, in one transaction whose first statement is a write: SQLite then takes
    //      its write lock up front and waits on the busy timeout instead of failing on a stale
    //      read snapshot.
    let mut tx = db.pool().begin().await?;
    let (contact_id, dek) = match known_contact {
        Some(contact) => {
            let dek = vault.unwrap_data_key(&contact.data_key_wrapped, &contact.contact_id)?;
            (contact.contact_id, dek)
        }
        None => {
            // A new number: its own data key, and its number sealed under that key.
            let new_id = store::new_id();
            let new_dek = vault.new_data_key();
            let phone_sealed = vault::seal(
                &new_dek,
                inbound.from.as_str().as_bytes(),
                Aad::new("contact", "phone_sealed", &new_id),
            )?;
            let wrapped = vault.wrap_data_key(&new_dek, &new_id)?;
            let new_contact = contacts::NewContact {
                contact_id: &new_id,
                phone_index: &phone_index,
                phone_sealed: &phone_sealed,
                data_key_wrapped: &wrapped,
            };
            let stored = contacts::upsert(&mut tx, &new_contact).await?;
            if stored.contact_id == new_id {
                (new_id, new_dek)
            } else {
                // A concurrent first message from the same number created the contact first.
                let dek = vault.unwrap_data_key(&stored.data_key_wrapped, &stored.contact_id)?;
                (stored.contact_id, dek)
            }
        }
    };

    let now = store::now();
    let conversation_id =
        conversations::touch_open(&mut tx, &contact_id, inbound.to.as_str(), &now).await?;
    let message_id = store::new_id();
    let body_sealed = vault::seal(
        &dek,
        redacted.text.as_bytes(),
        Aad::new("message", "body_sealed", &message_id),
    )?;
    let media_sealed = if inbound.media.is_empty() {
        None
    } else {
        let json = Zeroizing::new(
            serde_json::to_vec(&inbound.media).map_err(|_| IngestError::Vault(VaultError::Seal))?,
        );
        Some(vault::seal(
            &dek,
            &json,
            Aad::new("message", "media_sealed", &message_id),
        )?)
    };
    let findings_json = findings.to_json();
    let inserted = messages::insert(
        &mut tx,
        &messages::NewMessage {
            message_id: &message_id,
            conversation_id: &conversation_id,
            direction: "inbound",
            channel: inbound.channel.as_str(),
            carrier: inbound.carrier,
            carrier_message_id: &inbound.carrier_message_id,
            body_sealed: &body_sealed,
            media_sealed: media_sealed.as_deref(),
            media_count: i64::try_from(inbound.media.len()).unwrap_or(i64::MAX),
            findings_json: &findings_json,
            status: "received",
            created_at: &now,
        },
    )
    .await?;
    if !inserted {
        // A concurrent delivery of the same message committed first.
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    tx.commit().await?;

    metrics
        .messages_stored
        .get_or_create(&StoredLabels {
            carrier: inbound.carrier,
            direction: "inbound",
        })
        .inc();
    for (kind, count) in findings.iter() {
        metrics
            .redactions
            .get_or_create(&TypeLabels { r#type: kind })
            .inc_by(u64::from(count));
    }
    for topic in &redacted.topics {
        metrics
            .topic_escalations
            .get_or_create(&TopicLabels {
                topic: topic.as_str(),
            })
            .inc();
    }
    tracing::info!(message_id = %message_id, findings = %findings_json, "inbound message stored");
    Ok(Outcome::Stored {
        message_id,
        findings,
        topics: redacted.topics.clone(),
        escalate: redacted.escalate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_carries_no_content() {
        let inbound = Inbound {
            carrier: "twilio",
            carrier_message_id: "SM1".to_owned(),
            from: E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}")),
            to: E164::parse("+15550001111").unwrap_or_else(|e| panic!("{e}")),
            channel: Channel::Mms,
            body: Zeroizing::new("quokka 4111111111111111".to_owned()),
            media: vec![Media {
                url: "https://media.example/secret-picture".to_owned(),
                content_type: Some("image/jpeg".to_owned()),
            }],
        };
        let debug = format!("{inbound:?}");
        for needle in ["quokka", "4111", "5551234", "secret-picture"] {
            assert!(!debug.contains(needle), "{debug}");
        }
        assert!(
            debug.contains("body_chars: 23") && debug.contains("image/jpeg"),
            "{debug}"
        );
    }
}
