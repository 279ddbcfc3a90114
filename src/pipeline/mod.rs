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

use crate::carriers::ConsentReport;
use crate::metrics::{Metrics, StoredLabels, TopicLabels, TypeLabels};
use crate::phone::{BusinessAddress, E164};
use crate::redact::{Direction, Findings, Redactor, Topic};
use crate::store::{self, contacts, conversations, messages, Db};
use crate::vault::{self, Aad, SecretKey, Vault, VaultError};
use serde::Serialize;
use sqlx::AnyConnection;
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

    /// `sms`, `mms` or `rcs`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Sms, Self::Mms, Self::Rcs]
            .into_iter()
            .find(|c| c.as_str() == text)
    }
}

/// A media attachment reference (MMS/RCS), not downloaded. Its URL can fetch the customer's
/// picture and its name can say what it is, so both are stored sealed and `Debug` shows neither;
/// the content type and size are stored in clear.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Media {
    pub url: String,
    pub content_type: Option<String>,
    pub size: Option<u64>,
    pub name: Option<String>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("url", &"••••")
            .field("content_type", &self.content_type)
            .field("size", &self.size)
            .field("named", &self.name.is_some())
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
    /// Our business number (or short code, or RCS agent) the customer wrote to.
    pub to: BusinessAddress,
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
    let (contact_id, dek) =
        contact_for(&mut tx, vault, &inbound.from, &phone_index, known_contact).await?;

    let now = store::now();
    let conversation_id =
        conversations::touch_open(&mut tx, &contact_id, &inbound.to.key(), &now).await?;
    let message_id = store::new_id();
    let body_sealed = vault::seal(
        &dek,
        redacted.text.as_bytes(),
        Aad::new("message", "body_sealed", &message_id),
    )?;
    let findings_json = findings.to_json();
    let inserted = messages::insert(
        &mut tx,
        &messages::NewMessage {
            message_id: &message_id,
            conversation_id: &conversation_id,
            direction: "inbound",
            channel: inbound.channel.as_str(),
            carrier: inbound.carrier,
            carrier_message_id: Some(&inbound.carrier_message_id),
            body_sealed: &body_sealed,
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
    store_media(&mut tx, &dek, &message_id, &inbound.media).await?;
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

/// The contact with this phone number, made if it is new: its own data key, and its number
/// sealed under that key. `known` is the contact a read outside the transaction found. Safe
/// against a concurrent first message from the same number.
///
/// # Errors
/// Database errors; a stored data key that does not open.
pub async fn contact_for(
    tx: &mut AnyConnection,
    vault: &Vault,
    phone: &E164,
    phone_index: &[u8],
    known: Option<contacts::ContactKey>,
) -> Result<(String, SecretKey), IngestError> {
    if let Some(contact) = known {
        let dek = vault.unwrap_data_key(&contact.data_key_wrapped, &contact.contact_id)?;
        return Ok((contact.contact_id, dek));
    }
    let new_id = store::new_id();
    let new_dek = vault.new_data_key();
    let phone_sealed = vault::seal(
        &new_dek,
        phone.as_str().as_bytes(),
        Aad::new("contact", "phone_sealed", &new_id),
    )?;
    let wrapped = vault.wrap_data_key(&new_dek, &new_id)?;
    let new_contact = contacts::NewContact {
        contact_id: &new_id,
        phone_index,
        phone_sealed: &phone_sealed,
        data_key_wrapped: &wrapped,
    };
    let stored = contacts::upsert(tx, &new_contact).await?;
    if stored.contact_id == new_id {
        Ok((new_id, new_dek))
    } else {
        // A concurrent first message from the same number created the contact first.
        let dek = vault.unwrap_data_key(&stored.data_key_wrapped, &stored.contact_id)?;
        Ok((stored.contact_id, dek))
    }
}

/// The associated-data row id of a media item: `{message_id}/{position}`.
#[must_use]
pub fn media_row_id(message_id: &str, position: usize) -> String {
    format!("{message_id}/{position}")
}

/// Stores one `message_media` row per item: content type and size in clear, URL and name sealed.
async fn store_media(
    tx: &mut AnyConnection,
    dek: &SecretKey,
    message_id: &str,
    media: &[Media],
) -> Result<(), IngestError> {
    for (position, item) in media.iter().enumerate() {
        let row = media_row_id(message_id, position);
        let url_sealed = vault::seal(
            dek,
            item.url.as_bytes(),
            Aad::new("message_media", "url_sealed", &row),
        )?;
        let name_sealed = item
            .name
            .as_deref()
            .map(|name| {
                vault::seal(
                    dek,
                    name.as_bytes(),
                    Aad::new("message_media", "name_sealed", &row),
                )
            })
            .transpose()?;
        messages::insert_media(
            tx,
            &messages::NewMedia {
                message_id,
                position: i64::try_from(position).unwrap_or(i64::MAX),
                content_type: item.content_type.as_deref(),
                size_bytes: item.size.and_then(|s| i64::try_from(s).ok()),
                url_sealed: &url_sealed,
                name_sealed: name_sealed.as_deref(),
            },
        )
        .await?;
    }
    Ok(())
}

/// Records a consent change a carrier reported (RBM unsubscribe, resubscribe) against the
/// contact, creating the contact if it is new. Returns whether it was new (`false`: a retry).
///
/// # Errors
/// [`IngestError`]; nothing is stored when an error is returned.
pub async fn record_consent(
    db: &Db,
    vault: &Vault,
    carrier: &'static str,
    report: &ConsentReport,
) -> Result<bool, IngestError> {
    let phone_index = vault.phone_index(&report.contact);
    let known = {
        let mut conn = db.pool().acquire().await?;
        contacts::find(&mut conn, &phone_index).await?
    };
    let mut tx = db.pool().begin().await?;
    let (contact_id, _dek) =
        contact_for(&mut tx, vault, &report.contact, &phone_index, known).await?;
    let inserted = sqlx::query(
        "INSERT INTO carrier_event (carrier_event_id, carrier, event_key, kind, contact_id, business_number, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (carrier, event_key) DO NOTHING",
    )
    .bind(store::new_id())
    .bind(carrier)
    .bind(&report.event_id)
    .bind(report.kind.as_str())
    .bind(&contact_id)
    .bind(report.business.key())
    .bind(store::now())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(inserted)
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
            to: BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}")),
            channel: Channel::Mms,
            body: Zeroizing::new("quokka 4111111111111111".to_owned()),
            media: vec![Media {
                url: "https://media.example/secret-picture".to_owned(),
                content_type: Some("image/jpeg".to_owned()),
                size: Some(1024),
                name: Some("passport-scan.jpg".to_owned()),
            }],
        };
        let debug = format!("{inbound:?}");
        for needle in ["quokka", "4111", "5551234", "secret-picture", "passport"] {
            assert!(!debug.contains(needle), "{debug}");
        }
        assert!(
            debug.contains("body_chars: 23") && debug.contains("image/jpeg"),
            "{debug}"
        );
    }
}
