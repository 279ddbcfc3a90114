//! The consent ledger: append-only events per contact and business number — `opt_in`,
//! `opt_out`, `help`, and `opt_out_request` (a free-text revocation waiting for an agent, when
//! agents confirm them) — with their source, the keyword (or phrase rule, or carrier code), the
//! message that carried them, who made them and when.
//!
//! The current state is derived, never stored: the latest `opt_in` or `opt_out`. With no such
//! event a contact is opted in (they texted the business). The scope of an opt-out is configured:
//! the business number it was sent to, or every number of the business.
//!
//! Consent rows do not reference message rows by foreign key: deleting or crypto-shredding
//! message content never touches consent.

use sqlx::{AnyConnection, Row};

/// A consent event's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OptIn,
    OptOut,
    Help,
    /// A free-text revocation an agent must confirm (`revocation = "agent_confirms"`).
    OptOutRequest,
}

impl Kind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptIn => "opt_in",
            Self::OptOut => "opt_out",
            Self::Help => "help",
            Self::OptOutRequest => "opt_out_request",
        }
    }
}

/// Where a consent event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A keyword that was the whole message (`STOP`).
    Keyword,
    /// A revocation in the customer's own words (a phrase rule).
    FreeText,
    /// The carrier reported it (an opt-out error on send, a carrier's consent event).
    CarrierReport,
    /// An agent, in the console.
    Agent,
    /// An API client.
    Api,
    /// An import of consent records.
    Import,
}

impl Source {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keyword => "keyword",
            Self::FreeText => "free_text",
            Self::CarrierReport => "carrier_report",
            Self::Agent => "agent",
            Self::Api => "api",
            Self::Import => "import",
        }
    }
}

/// Whether business-started messages may go to a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    OptedIn,
    OptedOut,
}

impl State {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptedIn => "opted_in",
            Self::OptedOut => "opted_out",
        }
    }
}

/// Which business numbers an opt-out covers (`[compliance] opt_out_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The number the contact opted out from (carriers' own behaviour).
    #[default]
    Number,
    /// Every number of the business.
    Business,
}

/// A consent event to record.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub contact_id: &'a str,
    pub business_number: &'a str,
    pub kind: Kind,
    pub source: Source,
    /// The keyword matched, the phrase rule's id, or the carrier's code: never the customer's text.
    pub keyword: Option<&'a str>,
    pub message_id: Option<&'a str>,
    /// Who, for agent, API and import events (`api_token:<id>`, `user:<id>`).
    pub actor: Option<&'a str>,
    pub at: &'a str,
}

/// The state of a contact towards a business number, and the event that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub state: State,
    /// The event that set the state; `None` when no consent event exists (opted in by texting).
    pub since: Option<String>,
    pub source: Option<String>,
    pub keyword: Option<String>,
    pub business_number: Option<String>,
}

/// Locks the contact for the rest of the transaction ([`crate::store::lock_row`]), so two
/// messages from the same contact cannot both see "opted in" and both record an opt-out (and send
/// two confirmations).
///
/// # Errors
/// Database errors.
pub async fn lock_contact(conn: &mut AnyConnection, contact_id: &str) -> Result<(), sqlx::Error> {
    crate::store::lock_row(conn, "contact", "contact_id", contact_id).await
}

/// The contact's current state towards `business_number` under `scope`.
///
/// # Errors
/// Database errors.
pub async fn current(
    conn: &mut AnyConnection,
    contact_id: &str,
    business_number: &str,
    scope: Scope,
) -> Result<Current, sqlx::Error> {
    state_until(conn, contact_id, business_number, scope, None).await
}

/// The contact's state as it was at `at` (a stored timestamp), counting events at that instant.
/// The outbox uses it to tell what a waiting keyword confirmation answered.
///
/// # Errors
/// Database errors.
pub async fn state_at(
    conn: &mut AnyConnection,
    contact_id: &str,
    business_number: &str,
    scope: Scope,
    at: &str,
) -> Result<State, sqlx::Error> {
    Ok(
        state_until(conn, contact_id, business_number, scope, Some(at))
            .await?
            .state,
    )
}

async fn state_until(
    conn: &mut AnyConnection,
    contact_id: &str,
    business_number: &str,
    scope: Scope,
    until: Option<&str>,
) -> Result<Current, sqlx::Error> {
    // Far enough in the future to mean "no bound" for the stored text timestamps.
    let until = until.unwrap_or("9999");
    let row = match scope {
        Scope::Number => {
            sqlx::query(
                "SELECT kind, at, source, keyword, business_number FROM consent_event \
                 WHERE contact_id = $1 AND business_number = $2 AND kind IN ('opt_in', 'opt_out') \
                 AND at <= $3 ORDER BY at DESC, consent_event_id DESC LIMIT 1",
            )
            .bind(contact_id)
            .bind(business_number)
            .bind(until)
            .fetch_optional(conn)
            .await?
        }
        Scope::Business => {
            sqlx::query(
                "SELECT kind, at, source, keyword, business_number FROM consent_event \
                 WHERE contact_id = $1 AND kind IN ('opt_in', 'opt_out') AND at <= $2 \
                 ORDER BY at DESC, consent_event_id DESC LIMIT 1",
            )
            .bind(contact_id)
            .bind(until)
            .fetch_optional(conn)
            .await?
        }
    };
    let Some(row) = row else {
        return Ok(Current {
            state: State::OptedIn,
            since: None,
            source: None,
            keyword: None,
            business_number: None,
        });
    };
    let kind: String = row.try_get(0)?;
    Ok(Current {
        state: if kind == "opt_out" {
            State::OptedOut
        } else {
            State::OptedIn
        },
        since: row.try_get(1)?,
        source: row.try_get(2)?,
        keyword: row.try_get(3)?,
        business_number: row.try_get(4)?,
    })
}

/// Appends an event. Returns its id.
///
/// # Errors
/// Database errors.
pub async fn append(conn: &mut AnyConnection, event: &NewEvent<'_>) -> Result<String, sqlx::Error> {
    let id = crate::store::new_id();
    sqlx::query(
        "INSERT INTO consent_event (consent_event_id, contact_id, business_number, kind, source, keyword, message_id, actor, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(event.contact_id)
    .bind(event.business_number)
    .bind(event.kind.as_str())
    .bind(event.source.as_str())
    .bind(event.keyword)
    .bind(event.message_id)
    .bind(event.actor)
    .bind(event.at)
    .execute(conn)
    .await?;
    Ok(id)
}

/// One event of a contact's history, as the console and the API show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryEntry {
    pub id: String,
    pub business_number: String,
    pub kind: String,
    pub source: String,
    pub keyword: Option<String>,
    pub message_id: Option<String>,
    pub actor: Option<String>,
    pub at: String,
}

/// A contact's consent history, oldest first.
///
/// # Errors
/// Database errors.
pub async fn history(
    conn: &mut AnyConnection,
    contact_id: &str,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query(
        "SELECT consent_event_id, business_number, kind, source, keyword, message_id, actor, at \
         FROM consent_event WHERE contact_id = $1 ORDER BY at, consent_event_id",
    )
    .bind(contact_id)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|row| {
        Ok(HistoryEntry {
            id: row.try_get(0)?,
            business_number: row.try_get(1)?,
            kind: row.try_get(2)?,
            source: row.try_get(3)?,
            keyword: row.try_get(4)?,
            message_id: row.try_get(5)?,
            actor: row.try_get(6)?,
            at: row.try_get(7)?,
        })
    })
    .collect()
}

/// What recording a consent event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The state changed (an opt-out of an opted-in contact, an opt-in of an opted-out one): the
    /// event is recorded and audited, and a confirmation is due.
    Changed,
    /// The event would not change the state (a second STOP): nothing is recorded.
    Unchanged,
    /// Recorded without changing the state (HELP, an opt-out request awaiting an agent).
    Recorded,
}

/// A recorded consent event: what it did, and the time it was recorded at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub outcome: Outcome,
    /// The event's time: the one asked for, or just after the contact's newest opt-in or opt-out
    /// if that is not earlier (see [`record`]). Anything the event causes (its confirmation)
    /// carries this time.
    pub at: String,
}

/// Records a consent event in the caller's transaction: an opt-out or opt-in only when it changes
/// the contact's state under `scope` (so a repeated STOP records nothing and sends no second
/// confirmation); HELP and opt-out requests always. State changes and opt-out requests are
/// written to the audit trail.
///
/// The current state is the newest event by time, and the state is checked under the contact's
/// lock, so the event must also be the newest: an event whose time was taken before another
/// transaction recorded a later one (or on an instance whose clock is behind) is recorded a
/// microsecond after it instead. Otherwise it would report a change that the derived state does
/// not show.
///
/// Lock order, which every caller keeps: the conversation (if any), the contact, the audit head.
///
/// # Errors
/// Database errors, or an audit event the trail refuses.
pub async fn record(
    conn: &mut AnyConnection,
    audit_key: &crate::vault::AuditKey,
    scope: Scope,
    event: &NewEvent<'_>,
) -> Result<Recorded, crate::audit::AuditError> {
    lock_contact(conn, event.contact_id).await?;
    let mut at = event.at.to_owned();
    let changes = match event.kind {
        Kind::OptOut | Kind::OptIn => {
            let now = current(conn, event.contact_id, event.business_number, scope).await?;
            let wanted = if event.kind == Kind::OptOut {
                State::OptedOut
            } else {
                State::OptedIn
            };
            if now.state == wanted {
                return Ok(Recorded {
                    outcome: Outcome::Unchanged,
                    at,
                });
            }
            if let Some(latest) = now.since.as_deref() {
                if latest >= event.at {
                    at = crate::store::parse_timestamp(latest).map_or_else(
                        || latest.to_owned(),
                        |t| crate::store::timestamp(t + chrono::TimeDelta::microseconds(1)),
                    );
                }
            }
            true
        }
        Kind::Help | Kind::OptOutRequest => false,
    };
    let event = NewEvent {
        at: &at,
        ..event.clone()
    };
    let id = append(conn, &event).await?;
    if changes || event.kind == Kind::OptOutRequest {
        let mut audit = crate::audit::Event::new(
            actor_of(event.actor.unwrap_or_default()),
            event_action(event.kind),
        )
        .subject("contact", event.contact_id)
        .subject("consent_event", &id)
        // Our own number, written without `+` as audit ids are.
        .subject(
            "business_number",
            event.business_number.trim_start_matches('+'),
        )
        .detail("source", event.source.as_str());
        if let Some(keyword) = event.keyword {
            audit = audit.detail("keyword", keyword);
        }
        crate::audit::append(conn, audit_key, &audit, &at).await?;
    }
    Ok(Recorded {
        outcome: if changes {
            Outcome::Changed
        } else {
            Outcome::Recorded
        },
        at,
    })
}

fn event_action(kind: Kind) -> &'static str {
    match kind {
        Kind::OptOut => "consent.opt_out",
        Kind::OptIn => "consent.opt_in",
        Kind::Help => "consent.help",
        Kind::OptOutRequest => "consent.opt_out_request",
    }
}

/// The audit actor for an event's `actor` text (`api_token:<id>`, `user:<id>`, `cli:<name>`).
pub(crate) fn actor_of(actor: &str) -> crate::audit::Actor<'_> {
    match actor.split_once(':') {
        Some(("api_token", id)) => crate::audit::Actor::ApiToken(id),
        Some(("user", id)) => crate::audit::Actor::User(id),
        Some(("cli", name)) => crate::audit::Actor::Cli(name),
        _ => crate::audit::Actor::System,
    }
}
