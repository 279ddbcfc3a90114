//! The gate every message the business sends passes before it is queued, in this order:
//!
//! 1. **Outbound DLP** ([`super::dlp`]): a card number, an SSN or a `block_outbound` match refuses
//!    the reply — nothing is altered, nothing is queued — and the agent is pointed to the secure
//!    link.
//! 2. **Consent** ([`super::consent`]): a contact opted out (from this number, or from the
//!    business, as configured) gets nothing; the refusal names the reason.
//! 3. **Quiet hours** ([`super::quiet`]): outside the window in the contact's local time — their
//!    stored time zone, else their NANP area code's zones, else the business's default — the
//!    message is queued **held** until the next allowed minute, unless it answers the customer's
//!    own message within the reply window.
//!
//! The outbox worker checks consent and quiet hours again when it sends (an opt-out or the clock
//! may have moved since), except for keyword confirmations, which answer the customer's own
//! keyword. A supervisor may release one held message ([`override_quiet_hours`]), which is
//! audited.
//!
//! Staff record consent changes with [`staff_consent`]: an agent confirming a customer's
//! free-text revocation (`revocation = "agent_confirms"`), or compliance staff recording an opt-in
//! given outside the thread.

use super::consent::{self, State};
use super::{dlp, quiet};
use crate::config::ComplianceSettings;
use crate::outbox::{self, Kind, Outbound};
use crate::phone::E164;
use crate::vault::{self, Aad};
use crate::web::AppState;
use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

/// When a business-started message to a contact may go: `None` now, `Some(t)` held until `t`.
/// `stored_time_zone` is the contact's recorded zone (an IANA name); `last_inbound` the time of
/// the customer's latest message in the conversation.
#[must_use]
pub fn quiet_hold(
    settings: &ComplianceSettings,
    phone: &E164,
    stored_time_zone: Option<&str>,
    last_inbound: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if quiet::exempt(last_inbound, settings.reply_window, now) {
        return None;
    }
    let stored = stored_time_zone.and_then(|z| z.parse::<chrono_tz::Tz>().ok());
    let zones = quiet::zones_for(phone, stored, settings.default_time_zone);
    if quiet::allowed(&settings.quiet_window, &zones, now) {
        None
    } else {
        Some(quiet::next_allowed(&settings.quiet_window, &zones, now))
    }
}

/// Why a reply was refused. Carries no content.
#[derive(Debug)]
pub enum Refusal {
    /// The contact opted out; `since` is when, `source` how.
    OptedOut {
        since: Option<String>,
        source: Option<String>,
    },
    /// Outbound DLP.
    Sensitive(dlp::Refusal),
    /// Neither text nor media.
    Empty,
    /// No such conversation.
    NotFound,
    /// The conversation's business number is no longer configured.
    SenderNotConfigured,
}

/// Why a reply was not queued.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("the reply was refused")]
    Refused(Refusal),
    #[error("the database failed")]
    Database(#[from] sqlx::Error),
    #[error("a sealed value did not open")]
    Vault,
    /// The audit trail refused the event (its head row is missing: see `drawbridge audit verify`).
    #[error("{0}")]
    Audit(String),
}

impl From<outbox::EnqueueError> for GateError {
    fn from(error: outbox::EnqueueError) -> Self {
        match error {
            outbox::EnqueueError::NoConversation => Self::Refused(Refusal::NotFound),
            outbox::EnqueueError::SenderNotConfigured => {
                Self::Refused(Refusal::SenderNotConfigured)
            }
            outbox::EnqueueError::Empty => Self::Refused(Refusal::Empty),
            outbox::EnqueueError::Database(e) => Self::Database(e),
            outbox::EnqueueError::Vault(_) => Self::Vault,
        }
    }
}

/// A queued reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub message_id: String,
    pub outbox_id: String,
    /// Held by quiet hours until then.
    pub held_until: Option<DateTime<Utc>>,
}

/// Whether messages to a contact go now, as staff are shown it (console and API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietStatus {
    /// The time zones the contact may be in, by name.
    pub time_zones: Vec<&'static str>,
    /// Where the zones came from (`stored`, `area_code`, `default`).
    pub time_zone_source: &'static str,
    /// The customer wrote within the reply window: replies are exempt.
    pub reply_window_open: bool,
    /// Held until then, if a message queued now would be held.
    pub next_allowed: Option<DateTime<Utc>>,
}

/// The quiet-hours status of `recipient` at `now`.
#[must_use]
pub fn quiet_status(
    settings: &ComplianceSettings,
    recipient: &Recipient,
    now: DateTime<Utc>,
) -> QuietStatus {
    let stored = recipient
        .time_zone
        .as_deref()
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok());
    let zones = quiet::zones_for(&recipient.phone, stored, settings.default_time_zone);
    QuietStatus {
        time_zones: zones.zones().iter().map(|z| z.name()).collect(),
        time_zone_source: zones.source().as_str(),
        reply_window_open: quiet::exempt(recipient.last_inbound, settings.reply_window, now),
        next_allowed: quiet_hold(
            settings,
            &recipient.phone,
            recipient.time_zone.as_deref(),
            recipient.last_inbound,
            now,
        ),
    }
}

/// What the gate needs to know about a conversation's contact.
#[derive(Debug)]
pub struct Recipient {
    pub contact_id: String,
    pub business_number: String,
    pub phone: E164,
    pub time_zone: Option<String>,
    pub last_inbound: Option<DateTime<Utc>>,
}

/// Reads a conversation's contact: their number (unsealed), stored time zone, and the time of
/// their latest message. `None` when there is no such conversation.
///
/// # Errors
/// [`GateError`] for database and sealing failures.
pub async fn recipient(
    conn: &mut AnyConnection,
    vault: &crate::vault::Vault,
    conversation_id: &str,
) -> Result<Option<Recipient>, GateError> {
    let Some(row) = sqlx::query(
        "SELECT v.contact_id, v.business_number, c.phone_sealed, c.data_key_wrapped, c.time_zone, \
         (SELECT MAX(m.created_at) FROM message m WHERE m.conversation_id = v.conversation_id AND m.direction = 'inbound') \
         FROM conversation v JOIN contact c ON c.contact_id = v.contact_id WHERE v.conversation_id = $1",
    )
    .bind(conversation_id)
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let contact_id: String = row.try_get(0)?;
    let sealed: Vec<u8> = row.try_get(2)?;
    let wrapped: Vec<u8> = row.try_get(3)?;
    let dek = vault
        .unwrap_data_key(&wrapped, &contact_id)
        .map_err(|_| GateError::Vault)?;
    let phone = vault::open(
        &dek,
        &sealed,
        Aad::new("contact", "phone_sealed", &contact_id),
    )
    .map_err(|_| GateError::Vault)?;
    let phone = std::str::from_utf8(&phone)
        .ok()
        .and_then(|p| E164::parse(p).ok())
        .ok_or(GateError::Vault)?;
    let last: Option<String> = row.try_get(5)?;
    Ok(Some(Recipient {
        contact_id,
        business_number: row.try_get(1)?,
        phone,
        time_zone: row.try_get(4)?,
        last_inbound: last.as_deref().and_then(crate::store::parse_timestamp),
    }))
}

/// [`recipient`] on a connection of its own; an unknown conversation is [`Refusal::NotFound`].
async fn conversation_recipient(
    state: &AppState,
    conversation_id: &str,
) -> Result<Recipient, GateError> {
    let mut conn = state.db.pool().acquire().await?;
    recipient(&mut conn, &state.vault, conversation_id)
        .await?
        .ok_or(GateError::Refused(Refusal::NotFound))
}

/// Queues an agent's reply (or a canned reply) after the gate's checks. See the module
/// documentation.
///
/// # Errors
/// [`GateError::Refused`] with the reason; database and sealing failures.
pub async fn send_reply(
    state: &AppState,
    conversation_id: &str,
    body: &str,
) -> Result<Sent, GateError> {
    send(state, conversation_id, Kind::Reply, body, &[]).await
}

/// [`send_reply`] for any kind of staff-initiated message (with RCS suggestions).
///
/// # Errors
/// As [`send_reply`].
pub async fn send(
    state: &AppState,
    conversation_id: &str,
    kind: Kind,
    body: &str,
    suggestions: &[crate::carriers::Suggestion],
) -> Result<Sent, GateError> {
    if body.trim().is_empty() {
        return Err(GateError::Refused(Refusal::Empty));
    }
    dlp::check(&state.redactor.current(), body)
        .map_err(|refusal| GateError::Refused(Refusal::Sensitive(refusal)))?;
    let now = state.clock.now();
    let mut tx = state.db.pool().begin().await?;
    // A write first, so that SQLite takes its write lock up front.
    crate::store::conversations::lock(&mut tx, conversation_id).await?;
    let sent = queue(
        &mut tx,
        state,
        conversation_id,
        &Message {
            kind,
            body,
            shown: None,
            suggestions,
            timing: Timing::Business,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    state.outbox.wake();
    Ok(sent)
}

/// Records, content-free, that `message_id` was held by quiet hours at `now` until `until`
/// (`quiet_hold`, for the compliance reports: the outbox clears its own mark once it sends).
///
/// # Errors
/// Database errors.
pub async fn record_quiet_hold(
    conn: &mut AnyConnection,
    message_id: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO quiet_hold (hold_id, message_id, at, held_until) VALUES ($1, $2, $3, $4)",
    )
    .bind(crate::store::new_id())
    .bind(message_id)
    .bind(crate::store::timestamp(now))
    .bind(crate::store::timestamp(until))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// How a message treats quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// It answers what the customer just did (their message, their request on the secure
    /// page): it goes now, whatever the hour, and the worker does not hold it either.
    Direct,
    /// The business starts it: held by quiet hours unless it answers the customer's own
    /// message within the reply window.
    Business,
}

/// A message for [`queue`].
#[derive(Debug)]
pub struct Message<'a> {
    pub kind: Kind,
    /// What is sent.
    pub body: &'a str,
    /// What the conversation's record shows instead, when `body` holds a secret (see
    /// [`Outbound::shown`]).
    pub shown: Option<&'a str>,
    pub suggestions: &'a [crate::carriers::Suggestion],
    pub timing: Timing,
}

/// The gate's consent and quiet-hours steps and the outbox, within the caller's transaction
/// (whose first statement must be a write, for SQLite). Outbound DLP is the caller's: staff
/// text is checked by [`send`], system templates when the service starts.
///
/// # Errors
/// [`Refusal::OptedOut`] for an opted-out contact, [`Refusal::NotFound`] for no such
/// conversation; database and sealing failures.
pub async fn queue(
    tx: &mut AnyConnection,
    state: &AppState,
    conversation_id: &str,
    message: &Message<'_>,
    now: DateTime<Utc>,
) -> Result<Sent, GateError> {
    let recipient = recipient(tx, &state.vault, conversation_id)
        .await?
        .ok_or(GateError::Refused(Refusal::NotFound))?;
    let settings = &state.compliance;
    let current = consent::current(
        tx,
        &recipient.contact_id,
        &recipient.business_number,
        settings.opt_out_scope,
    )
    .await?;
    if current.state == State::OptedOut {
        return Err(GateError::Refused(Refusal::OptedOut {
            since: current.since,
            source: current.source,
        }));
    }
    let held_until = match message.timing {
        Timing::Direct => None,
        Timing::Business => quiet_hold(
            settings,
            &recipient.phone,
            recipient.time_zone.as_deref(),
            recipient.last_inbound,
            now,
        ),
    };
    let queued = outbox::enqueue(
        tx,
        &state.vault,
        &state.numbers,
        &Outbound {
            conversation_id,
            kind: message.kind,
            body: message.body,
            shown: message.shown,
            media_urls: &[],
            suggestions: message.suggestions,
            not_before: held_until,
        },
        now,
    )
    .await?;
    let mark = match (message.timing, held_until) {
        (Timing::Direct, _) => Some("UPDATE outbox SET quiet_override = 1 WHERE outbox_id = $1"),
        // Marked as held by quiet hours, which is what a supervisor may override.
        (Timing::Business, Some(_)) => {
            Some("UPDATE outbox SET error_class = 'quiet_hours' WHERE outbox_id = $1")
        }
        (Timing::Business, None) => None,
    };
    if let Some(sql) = mark {
        sqlx::query(sql)
            .bind(&queued.outbox_id)
            .execute(&mut *tx)
            .await?;
    }
    if let (Timing::Business, Some(until)) = (message.timing, held_until) {
        record_quiet_hold(tx, &queued.message_id, now, until).await?;
    }
    Ok(Sent {
        message_id: queued.message_id,
        outbox_id: queued.outbox_id,
        held_until,
    })
}

/// Whether the conversation's contact has opted out (of its number, or of the business, as
/// configured).
///
/// # Errors
/// [`Refusal::NotFound`]; database and sealing failures.
pub async fn opted_out(
    conn: &mut AnyConnection,
    state: &AppState,
    conversation_id: &str,
) -> Result<bool, GateError> {
    let recipient = recipient(conn, &state.vault, conversation_id)
        .await?
        .ok_or(GateError::Refused(Refusal::NotFound))?;
    let current = consent::current(
        conn,
        &recipient.contact_id,
        &recipient.business_number,
        state.compliance.opt_out_scope,
    )
    .await?;
    Ok(current.state == State::OptedOut)
}

/// Why a supervisor releases a held message: a fixed set, so that the audit trail, which can
/// never be edited, holds no free text that might name a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideReason {
    /// The customer asked to hear back now.
    CustomerRequested,
    /// A time-critical fraud or security alert.
    FraudOrSecurityAlert,
    /// The contact is known to be in another time zone than the one used.
    TimeZoneIncorrect,
    /// Anything else; give a ticket reference.
    Other,
}

impl OverrideReason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CustomerRequested => "customer_requested",
            Self::FraudOrSecurityAlert => "fraud_or_security_alert",
            Self::TimeZoneIncorrect => "time_zone_incorrect",
            Self::Other => "other",
        }
    }
}

/// Why a quiet-hours override was not done.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error("no message with that id is held by quiet hours")]
    NotHeld,
    #[error("the ticket reference is not acceptable: {0}")]
    Ticket(String),
    #[error("the database failed")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Audit(String),
}

/// Releases one message held by quiet hours to be sent now, by `actor` (an audit actor text
/// such as `api_token:<id>`), for `reason`, with an optional `ticket` reference (an id: letters,
/// digits, `.`, `_`, `:`, `-`); both are written to the audit trail. A message that is not held
/// (sent, failed, waiting for a retry, already released) is [`OverrideError::NotHeld`].
///
/// # Errors
/// [`OverrideError`].
pub async fn override_quiet_hours(
    state: &AppState,
    message_id: &str,
    actor: &str,
    reason: OverrideReason,
    ticket: Option<&str>,
) -> Result<(), OverrideError> {
    let now = state.clock.timestamp();
    let mut event =
        crate::audit::Event::new(consent::actor_of(actor), "outbox.quiet_hours_override")
            .subject("message", message_id)
            .detail("reason", reason.as_str());
    if let Some(ticket) = ticket {
        if ticket.is_empty()
            || ticket.len() > 40
            || !ticket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        {
            return Err(OverrideError::Ticket(
                "1 to 40 letters, digits, `.`, `_`, `:` or `-`".to_owned(),
            ));
        }
        // A detail, so that the trail's refusal of digit runs (a phone number, an account)
        // applies to it.
        event = event.detail("ticket", ticket);
    }
    event
        .validate()
        .map_err(|invalid| OverrideError::Ticket(invalid.to_string()))?;
    let mut tx = state.db.pool().begin().await?;
    let released = sqlx::query(
        "UPDATE outbox SET quiet_override = 1, next_attempt_at = $1, updated_at = $1 \
         WHERE message_id = $2 AND state = 'pending' AND error_class = 'quiet_hours' AND quiet_override = 0",
    )
    .bind(&now)
    .bind(message_id)
    .execute(&mut *tx)
    .await?;
    if released.rows_affected() != 1 {
        return Err(OverrideError::NotHeld);
    }
    match crate::audit::append(&mut tx, state.vault.audit_key(), &event, &now).await {
        Ok(_) => {}
        Err(crate::audit::AuditError::Database(e)) => return Err(OverrideError::Database(e)),
        Err(other) => return Err(OverrideError::Audit(other.to_string())),
    }
    tx.commit().await?;
    state.outbox.wake();
    Ok(())
}

/// How long after the customer's own message an opt-out confirmation may still be sent: the
/// FCC's 2024 revocation order allows one confirmation text within five minutes of the request.
pub const CONFIRMATION_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// What [`staff_consent`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffConsent {
    /// The contact's state changed (`false`: it already was what was asked).
    pub changed: bool,
    /// The opt-out confirmation queued, if one was (see [`staff_consent`]).
    pub confirmation: Option<String>,
}

/// Records an opt-out or opt-in made by staff (`source` [`consent::Source::Agent`] from the
/// console, [`consent::Source::Api`] from an API client) for the contact of a conversation
/// towards its business number, audited with `actor` (`api_token:<id>`, `user:<id>`).
///
/// An opt-out that changes the state queues the opt-out confirmation only when the customer's
/// latest message is at most [`CONFIRMATION_WINDOW`] old (the agent confirming the request it
/// made just now); later, the business stays silent, since a confirmation would be a message to
/// someone who has revoked consent. An opt-in sends nothing: it records consent the customer
/// gave elsewhere, and the next message the business sends is subject to the usual checks.
///
/// # Errors
/// [`GateError::Refused`] with [`Refusal::NotFound`] for an unknown conversation; database
/// and sealing failures, and an audit trail that refuses the event (as a database failure).
pub async fn staff_consent(
    state: &AppState,
    conversation_id: &str,
    kind: consent::Kind,
    source: consent::Source,
    actor: &str,
) -> Result<StaffConsent, GateError> {
    let recipient = conversation_recipient(state, conversation_id).await?;
    let now = state.clock.now();
    let at = crate::store::timestamp(now);
    let mut tx = state.db.pool().begin().await?;
    // The conversation first, as the inbound pipeline locks it (then the contact, then the
    // audit head): the same order everywhere, so neither can wait on the other.
    crate::store::conversations::lock(&mut tx, conversation_id).await?;
    let recorded = consent::record(
        &mut tx,
        state.vault.audit_key(),
        state.compliance.opt_out_scope,
        &consent::NewEvent {
            contact_id: &recipient.contact_id,
            business_number: &recipient.business_number,
            kind,
            source,
            keyword: None,
            message_id: None,
            actor: Some(actor),
            at: &at,
        },
    )
    .await
    .map_err(|e| match e {
        crate::audit::AuditError::Database(e) => GateError::Database(e),
        other => GateError::Audit(other.to_string()),
    })?;
    let changed = recorded.outcome == consent::Outcome::Changed;
    let recent = recipient
        .last_inbound
        .is_some_and(|last| now - last <= CONFIRMATION_WINDOW);
    let mut confirmation = None;
    if changed && kind == consent::Kind::OptOut && recent {
        let settings = &state.compliance;
        let text = settings.render(&settings.opt_out_confirmation);
        let queued = outbox::enqueue(
            &mut tx,
            &state.vault,
            &state.numbers,
            &Outbound {
                conversation_id,
                kind: Kind::KeywordConfirmation,
                body: &text,
                shown: None,
                media_urls: &[],
                suggestions: &[],
                not_before: None,
            },
            crate::store::parse_timestamp(&recorded.at).unwrap_or(now),
        )
        .await?;
        confirmation = Some(queued.message_id);
    }
    tx.commit().await?;
    if changed {
        state.metrics.consent_recorded(kind, source);
    }
    if confirmation.is_some() {
        state.outbox.wake();
    }
    Ok(StaffConsent {
        changed,
        confirmation,
    })
}
