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
//! 4. **store**: contact, conversation and message are written in one transaction, with what
//!    follows from the message: a consent change and its confirmation, and — when the message
//!    escalates — the secure link texted to the customer ([`crate::escalation::links::escalate`]).
//!
//! The caller acknowledges the carrier only after [`ingest`] returns `Ok`, i.e. after the commit.
//!
//! The plaintext body and redacted text are held in [`Zeroizing`] buffers, wiped when dropped.
//! That is best effort, not a guarantee: the HTTP layer's request buffer and the parsed form
//! strings it came from are ordinary allocations, freed but not wiped.
//! A concurrent retry racing the first delivery is caught by the unique `(carrier,
//! carrier_message_id)` constraint and reported as [`Outcome::Duplicate`].

use crate::carriers::ConsentReport;
use crate::escalation::links::Escalated;
use crate::metrics::{StoredLabels, TopicLabels, TypeLabels};
use crate::phone::{BusinessAddress, E164};
use crate::redact::{Direction, Findings, Topic};
use crate::store::{self, contacts, conversations, messages};
use crate::vault::{self, Aad, SecretKey, Vault, VaultError};
use crate::web::AppState;
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
    /// the conversation should move to a secure link. `consent` is what the message did to
    /// consent; `flooding` whether the contact is over the flood limit (no automatic replies).
    Stored {
        message_id: String,
        findings: Findings,
        topics: BTreeSet<Topic>,
        escalate: bool,
        consent: Option<ConsentAction>,
        flooding: bool,
        /// What the escalation did about a secure link (`None`: the message did not escalate,
        /// or the link could not be sent).
        link: Option<Escalated>,
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
    /// The audit trail refused the consent event (a fault: nothing is stored).
    #[error("the audit trail refused an event: {0}")]
    Audit(String),
    /// The blind-index keys could not be brought up to the database's generation (a fault:
    /// nothing is stored).
    #[error("the blind-index keys are behind the database's: {0}")]
    IndexKeys(#[from] crate::keys::index::RefreshError),
    /// The database refused a new contact under the current blind-index generation even after
    /// the keys were refreshed (a fault: nothing is stored).
    #[error("the blind-index generation changed while the message was stored")]
    StaleIndexKeys,
    /// The confirmation could not be queued (a fault: nothing is stored).
    #[error("the confirmation could not be queued: {0}")]
    Outbox(String),
}

impl IngestError {
    fn from_audit(error: crate::audit::AuditError) -> Self {
        match error {
            crate::audit::AuditError::Database(e) => Self::from(e),
            // An audit event refused or a missing chain head: a fault, not an outage.
            other => Self::Audit(other.to_string()),
        }
    }

    fn from_enqueue(error: crate::outbox::EnqueueError) -> Self {
        match error {
            crate::outbox::EnqueueError::Database(e) => Self::from(e),
            crate::outbox::EnqueueError::Vault(e) => Self::Vault(e),
            other => Self::Outbox(other.to_string()),
        }
    }
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
pub async fn ingest(state: &AppState, inbound: Inbound) -> Result<Outcome, IngestError> {
    let (db, vault, metrics) = (&state.db, &state.vault, &state.metrics);
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
    let redacted = state
        .redactor
        .current()
        .redact(&inbound.body, Direction::Inbound);
    let findings = redacted.summary();

    // 3–4. Seal and store, in one transaction whose first statement is a write: SQLite then takes
    //      its write lock up front and waits on the busy timeout instead of failing on a stale
    //      read snapshot.
    let mut tx = db.pool().begin().await?;
    let (contact_id, dek) = contact_for(&mut tx, vault, &inbound.from, known_contact).await?;

    let clock_now = state.clock.now();
    let now = store::timestamp(clock_now);
    let business_number = inbound.to.key();
    let conversation_id =
        conversations::touch_open(&mut tx, &contact_id, &business_number, &now).await?;
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

    // 5. Consent: a keyword that is the whole message, or a revocation in the customer's words.
    //    A flooding contact's messages are stored, but get no automatic replies.
    let flooding = state.limits.flooding(&contact_id);
    if flooding {
        sqlx::query("UPDATE conversation SET flooded_at = $1 WHERE conversation_id = $2")
            .bind(&now)
            .bind(&conversation_id)
            .execute(&mut *tx)
            .await?;
        metrics.inbound_flood.inc();
    }
    let consent = consent_step(
        state,
        &mut tx,
        &ConsentContext {
            contact_id: &contact_id,
            business_number: &business_number,
            conversation_id: &conversation_id,
            message_id: &message_id,
            now: clock_now,
            automatic_replies: !flooding,
        },
        &inbound.body,
        &redacted.intent_rules,
    )
    .await?;
    // 6. Escalation: mark the conversation and text the customer a secure link (see
    //    `escalation::links::escalate` for the cool-down), in this transaction so that an
    //    acknowledged message never loses its link.
    let mut link = None;
    if redacted.escalate {
        sqlx::query(
            "UPDATE conversation SET escalated_at = COALESCE(escalated_at, $1), updated_at = $1 WHERE conversation_id = $2",
        )
        .bind(&now)
        .bind(&conversation_id)
        .execute(&mut *tx)
        .await?;
        link = escalate(state, &mut tx, &conversation_id, &contact_id, clock_now).await?;
    }
    tx.commit().await?;
    state
        .rules
        .hits
        .record(clock_now, &redacted.matched_rules());
    state.live.changed();
    if consent.replied || matches!(link, Some(Escalated::Sent { .. })) {
        state.outbox.wake();
    }
    if matches!(link, Some(Escalated::Sent { .. })) {
        metrics.secure_link("link_inbound");
    }
    if let Some((kind, source)) = consent.recorded {
        metrics.consent_recorded(kind, source);
    }

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
    tracing::info!(message_id = %message_id, findings = %findings_json, consent = consent.action.map(ConsentAction::as_str), flooding, "inbound message stored");
    Ok(Outcome::Stored {
        message_id,
        findings,
        topics: redacted.topics.clone(),
        escalate: redacted.escalate,
        consent: consent.action,
        flooding,
        link,
    })
}

/// Sends the secure link for an escalating message, in a savepoint: a database outage fails the
/// whole message (the carrier retries), but any other fault — a link that cannot be queued —
/// must not lose the customer's message, so it is logged and the message is stored without it.
async fn escalate(
    state: &AppState,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    conversation_id: &str,
    contact_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Escalated>, IngestError> {
    use crate::escalation::links::{self, LinkError};
    use sqlx::Acquire as _;
    let mut savepoint = tx.begin().await?;
    match links::escalate(&mut savepoint, state, conversation_id, contact_id, now).await {
        Ok(done) => {
            savepoint.commit().await?;
            Ok(Some(done))
        }
        Err(
            LinkError::Inbox(crate::inbox::InboxError::Database(e))
            | LinkError::Gate(crate::compliance::outbound::GateError::Database(e)),
        ) if store::is_unavailable(&e) => Err(IngestError::Unavailable(e)),
        Err(error) => {
            savepoint.rollback().await?;
            tracing::error!(%conversation_id, %error, "escalation: the secure link could not be sent; the message is stored without it");
            Ok(None)
        }
    }
}

/// What an inbound message did to consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentAction {
    /// The contact opted out (a keyword, or a revocation in their own words).
    OptedOut,
    /// The contact opted back in.
    OptedIn,
    /// HELP.
    Help,
    /// A revocation in the customer's words, recorded for an agent to confirm.
    OptOutRequested,
    /// A keyword that changed nothing (STOP from a contact already opted out).
    Unchanged,
}

impl ConsentAction {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptedOut => "opted_out",
            Self::OptedIn => "opted_in",
            Self::Help => "help",
            Self::OptOutRequested => "opt_out_requested",
            Self::Unchanged => "unchanged",
        }
    }
}

struct ConsentContext<'a> {
    contact_id: &'a str,
    business_number: &'a str,
    conversation_id: &'a str,
    message_id: &'a str,
    now: chrono::DateTime<chrono::Utc>,
    automatic_replies: bool,
}

struct ConsentStep {
    action: Option<ConsentAction>,
    replied: bool,
    /// The event recorded, to count once the transaction commits.
    recorded: Option<(
        crate::compliance::consent::Kind,
        crate::compliance::consent::Source,
    )>,
}

/// Records what the message means for consent and queues the one confirmation (or the HELP
/// reply) it calls for, in the message's transaction: the consent event, its audit record and the
/// reply all exist or none does.
async fn consent_step(
    state: &AppState,
    tx: &mut AnyConnection,
    context: &ConsentContext<'_>,
    body: &str,
    intent_rules: &std::collections::BTreeMap<crate::redact::Intent, String>,
) -> Result<ConsentStep, IngestError> {
    use crate::compliance::consent::{self, Kind, NewEvent, Outcome, Source};
    use crate::compliance::keywords::KeywordKind;
    let settings = &state.compliance;
    let keyword = settings.keyword_set.classify(body);
    let (kind, source, word): (Kind, Source, String) = match keyword {
        Some(found) => (
            match found.kind {
                KeywordKind::OptOut => Kind::OptOut,
                KeywordKind::OptIn => Kind::OptIn,
                KeywordKind::Help => Kind::Help,
            },
            Source::Keyword,
            found.keyword.to_owned(),
        ),
        // The phrase rule that recognised the request is recorded, so the agent sees why.
        None => match intent_rules.get(&crate::redact::Intent::OptOutRequest) {
            Some(rule) => (
                match settings.revocation {
                    crate::config::Revocation::Immediate => Kind::OptOut,
                    crate::config::Revocation::AgentConfirms => Kind::OptOutRequest,
                },
                Source::FreeText,
                rule.clone(),
            ),
            None => {
                return Ok(ConsentStep {
                    action: None,
                    replied: false,
                    recorded: None,
                })
            }
        },
    };
    let at = store::timestamp(context.now);
    let recorded = consent::record(
        tx,
        state.vault.audit_key(),
        settings.opt_out_scope,
        &NewEvent {
            contact_id: context.contact_id,
            business_number: context.business_number,
            kind,
            source,
            keyword: Some(&word),
            message_id: Some(context.message_id),
            actor: None,
            at: &at,
        },
    )
    .await
    .map_err(IngestError::from_audit)?;
    let action = match (kind, recorded.outcome) {
        (_, Outcome::Unchanged) => ConsentAction::Unchanged,
        (Kind::OptOut, _) => ConsentAction::OptedOut,
        (Kind::OptIn, _) => ConsentAction::OptedIn,
        (Kind::Help, _) => ConsentAction::Help,
        (Kind::OptOutRequest, _) => ConsentAction::OptOutRequested,
    };
    // One confirmation each time consent changes; the HELP text at most once per interval. A
    // flooding contact gets no automatic reply but the opt-out confirmation CTIA requires, and
    // that at most once per interval however often the flood toggles STOP and START.
    let (contact, number) = (context.contact_id, context.business_number);
    let limits = &state.limits;
    let reply = match action {
        ConsentAction::OptedOut
            if context.automatic_replies || limits.flood_reply(contact, number) =>
        {
            Some(settings.render(&settings.opt_out_confirmation))
        }
        ConsentAction::OptedIn if context.automatic_replies => {
            Some(settings.render(&settings.opt_in_confirmation))
        }
        ConsentAction::Help if context.automatic_replies && limits.help_reply(contact, number) => {
            Some(settings.render(&settings.help_reply))
        }
        _ => None,
    };
    if reply.is_some() && context.automatic_replies {
        limits.automatic_reply_sent(contact, number);
    }
    let mut replied = false;
    if let Some(text) = reply {
        crate::outbox::enqueue(
            tx,
            &state.vault,
            &state.numbers,
            &crate::outbox::Outbound {
                conversation_id: context.conversation_id,
                kind: crate::outbox::Kind::KeywordConfirmation,
                body: &text,
                shown: None,
                media_urls: &[],
                suggestions: &[],
                not_before: None,
            },
            // The event's own time, which the worker compares with later consent changes.
            store::parse_timestamp(&recorded.at).unwrap_or(context.now),
        )
        .await
        .map_err(IngestError::from_enqueue)?;
        replied = true;
    }
    Ok(ConsentStep {
        action: Some(action),
        replied,
        recorded: (recorded.outcome != Outcome::Unchanged).then_some((kind, source)),
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
    known: Option<contacts::ContactKey>,
) -> Result<(String, SecretKey), IngestError> {
    // The read outside the transaction may be stale (an erasure may have committed since): the
    // key used is the one read under the contact's row lock.
    let locked = match known {
        Some(known) => contacts::lock(tx, &known.contact_id).await?,
        None => None,
    };
    let contact = match locked {
        Some(contact) => contact,
        None => {
            let new_id = store::new_id();
            let new_dek = vault.new_data_key();
            let phone_sealed = vault::seal(
                &new_dek,
                phone.as_str().as_bytes(),
                Aad::new("contact", "phone_sealed", &new_id),
            )?;
            let wrapped = vault.wrap_data_key(&new_dek, &new_id)?;
            let mut stored = None;
            // A second try only after taking up a blind-index generation a re-index added
            // (`crate::keys::index`): the database refuses rows under an older one.
            for _ in 0..2 {
                let phone_index = vault.phone_index(phone);
                let new_contact = contacts::NewContact {
                    contact_id: &new_id,
                    phone_index: &phone_index,
                    phone_sealed: &phone_sealed,
                    data_key_wrapped: &wrapped,
                };
                stored = contacts::upsert(tx, &new_contact).await?;
                if stored.is_some()
                    || !crate::keys::index::moved_on(tx, vault, phone_index.generation()).await?
                {
                    break;
                }
            }
            let stored = stored.ok_or(IngestError::StaleIndexKeys)?;
            if stored.contact_id == new_id {
                return Ok((new_id, new_dek));
            }
            // A concurrent first message from the same number created the contact first.
            stored
        }
    };
    if contact.erased {
        // An erased contact texts again: its number is sealed again under a fresh data key
        // (the old key was destroyed with the erasure); its consent history is untouched.
        let (dek, wrapped, phone_sealed) =
            crate::subject::fresh_identity(vault, &contact.contact_id, phone)?;
        if contacts::revive(tx, &contact.contact_id, &phone_sealed, &wrapped).await? {
            return Ok((contact.contact_id, dek));
        }
        // Another message revived it first: use the key it made.
        let wrapped = contacts::data_key_of(tx, &contact.contact_id).await?;
        let dek = vault.unwrap_data_key(&wrapped, &contact.contact_id)?;
        return Ok((contact.contact_id, dek));
    }
    let dek = vault.unwrap_data_key(&contact.data_key_wrapped, &contact.contact_id)?;
    Ok((contact.contact_id, dek))
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

/// Records a consent change a carrier reported (RBM unsubscribe and resubscribe, Vonage and
/// Plivo opt-out signals): once per carrier event id in `carrier_event`, and in the consent
/// ledger when it changes the contact's state. No confirmation is sent: the carrier has already
/// answered the customer. Returns whether the report was new (`false`: a retry).
///
/// # Errors
/// [`IngestError`]; nothing is stored when an error is returned.
pub async fn record_consent(
    state: &AppState,
    carrier: &'static str,
    report: &ConsentReport,
) -> Result<bool, IngestError> {
    use crate::compliance::consent::{self, Kind, NewEvent, Source};
    let (db, vault) = (&state.db, &state.vault);
    let phone_index = vault.phone_index(&report.contact);
    let known = {
        let mut conn = db.pool().acquire().await?;
        contacts::find(&mut conn, &phone_index).await?
    };
    let now = state.clock.timestamp();
    let mut tx = db.pool().begin().await?;
    let (contact_id, _dek) = contact_for(&mut tx, vault, &report.contact, known).await?;
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
    .bind(&now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let mut changed = None;
    if inserted {
        let kind = match report.kind {
            crate::carriers::ConsentKind::OptOut => Kind::OptOut,
            crate::carriers::ConsentKind::OptIn => Kind::OptIn,
        };
        let recorded = consent::record(
            &mut tx,
            vault.audit_key(),
            state.compliance.opt_out_scope,
            &NewEvent {
                contact_id: &contact_id,
                business_number: &report.business.key(),
                kind,
                source: Source::CarrierReport,
                keyword: Some(carrier),
                message_id: None,
                actor: None,
                at: &now,
            },
        )
        .await
        .map_err(IngestError::from_audit)?;
        changed = (recorded.outcome == consent::Outcome::Changed).then_some(kind);
    }
    tx.commit().await?;
    if let Some(kind) = changed {
        state.metrics.consent_recorded(kind, Source::CarrierReport);
    }
    Ok(inserted)
}

/// Records an opt-out that a carrier's status report implies (its error code is the carrier's
/// "recipient opted out": Twilio 21610, Bandwidth 4775, Plivo 200, Vonage 9, Sinch 257 …), for
/// the message it concerns, in the caller's transaction. Nothing when the message is not ours
/// (or its carrier id is not recorded yet: the kept report is applied when it is).
///
/// # Errors
/// [`IngestError`].
pub async fn record_carrier_opt_out(
    state: &AppState,
    tx: &mut AnyConnection,
    carrier: &str,
    carrier_message_id: &str,
    code: &str,
) -> Result<bool, IngestError> {
    use sqlx::Row;
    let Some(row) = sqlx::query(
        "SELECT message_id FROM message WHERE carrier = $1 AND carrier_message_id = $2",
    )
    .bind(carrier)
    .bind(carrier_message_id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(false);
    };
    let message_id: String = row.try_get(0)?;
    record_message_opt_out(state, tx, &message_id, code).await
}

/// Finishes recording a carrier's opt-out in a savepoint of the transaction that records the
/// send's outcome or the status report. A database error fails the whole transaction (the
/// worker's claim expires and the row is tried again; the carrier retries the report), and the
/// opt-out is recorded then. Anything else — the audit trail refusing the event, its head row
/// gone — is not transient: the opt-out is left out, loudly, and the outcome or the report (a
/// fact, with the carrier's code on the message for reconciliation) is still recorded, so that
/// neither a send nor a report is repeated forever.
///
/// # Errors
/// The database error that fails the transaction.
pub async fn settle_opt_out(
    recorded: Result<bool, IngestError>,
    savepoint: sqlx::Transaction<'_, sqlx::Any>,
) -> Result<bool, sqlx::Error> {
    match recorded {
        Ok(changed) => {
            savepoint.commit().await?;
            Ok(changed)
        }
        Err(IngestError::Database(e) | IngestError::Unavailable(e)) => Err(e),
        Err(other) => {
            savepoint.rollback().await?;
            tracing::error!(error = %other, "a carrier reported an opt-out that could not be recorded in the consent ledger; the message keeps the carrier's code");
            Ok(false)
        }
    }
}

/// Records that the carrier refused our message `message_id` because its recipient opted out
/// (`code`, the carrier's), in the caller's transaction: an opt-out from the carrier, whether it
/// came as the send's answer or as a status report. A report about a message older than the
/// contact's latest opt-in changes nothing: a late or repeated report of an old refusal must not
/// undo a newer opt-in. `true` when the contact's state changed.
///
/// # Errors
/// [`IngestError`].
pub async fn record_message_opt_out(
    state: &AppState,
    tx: &mut AnyConnection,
    message_id: &str,
    code: &str,
) -> Result<bool, IngestError> {
    use crate::compliance::consent::{self, Kind, NewEvent, Source, State};
    use sqlx::Row;
    let Some(row) = sqlx::query(
        "SELECT v.contact_id, v.business_number, m.created_at FROM message m \
         JOIN conversation v ON v.conversation_id = m.conversation_id WHERE m.message_id = $1",
    )
    .bind(message_id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(false);
    };
    let (contact_id, business_number, sent_at): (String, String, String) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let scope = state.compliance.opt_out_scope;
    consent::lock_contact(tx, &contact_id).await?;
    let now = consent::current(tx, &contact_id, &business_number, scope).await?;
    if now.state == State::OptedIn
        && now
            .since
            .as_deref()
            .is_some_and(|since| since > sent_at.as_str())
    {
        tracing::info!(
            message_id,
            "a carrier's opt-out report predates the contact's newer opt-in; not applied"
        );
        return Ok(false);
    }
    let recorded = consent::record(
        tx,
        state.vault.audit_key(),
        scope,
        &NewEvent {
            contact_id: &contact_id,
            business_number: &business_number,
            kind: Kind::OptOut,
            source: Source::CarrierReport,
            keyword: Some(code),
            message_id: Some(message_id),
            actor: None,
            at: &state.clock.timestamp(),
        },
    )
    .await
    .map_err(IngestError::from_audit)?;
    Ok(recorded.outcome == consent::Outcome::Changed)
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
