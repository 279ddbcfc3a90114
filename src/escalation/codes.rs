//! One-time codes: the customer proves control of the conversation's phone.
//!
//! - A code is six random digits, texted to the conversation's number at the customer's request
//!   on the page. Only a keyed MAC of it is stored ([`crate::vault::Vault::code_mac`]; a plain
//!   hash of six digits falls to a million guesses), and it is compared in constant time.
//! - It works for `code_lifetime` (10 minutes) and for `code_attempts` (5) wrong entries; after
//!   that it is dead even for the right digits, and the customer asks for a new one. Asking for a
//!   new code ends the previous one.
//! - A link may have `codes_per_hour` (3) codes texted per hour (`governor`, per instance).
//! - Wrong entries are also counted over all of a link's codes; at `link_failed_codes` (10) the
//!   link locks and shows the neutral page, like an expired or revoked one.
//! - No code goes to an opted-out number.
//! - With a knowledge check, a right code counts as an attempt until the business's endpoint
//!   says yes ([`check`], [`answered`]): the endpoint hears at most a code's attempts' worth of
//!   answers, even from parallel posts.
//!
//! Every function here takes the conversation's row and then the link's, the order all writers
//! of a conversation and its link keep (PostgreSQL would otherwise deadlock them).
//!
//! Each code sent, each wrong entry that ends a code or locks a link, and each verification is
//! audited (subjects only: never a code).

use super::links::Link;
use crate::audit::{self, Actor, Event};
use crate::compliance::outbound::{self, GateError, Message, Refusal, Timing};
use crate::outbox::Kind;
use crate::web::AppState;
use chrono::TimeDelta;
use rand::Rng;
use sqlx::Row;
use std::time::Duration;
use zeroize::Zeroizing;

/// What asking for a code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// A code is on its way; it works until then.
    Sent { expires_at: String },
    /// The link's codes for the hour are spent: try again after this long.
    TooMany { retry_after: Duration },
    /// The number has opted out of texts; no code was sent.
    OptedOut,
}

/// What entering a code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Right: the link is verified (a session may open, after the knowledge check if any).
    Verified { code_id: String },
    /// Wrong; this many attempts are left on the code.
    Wrong { attempts_left: u32 },
    /// The code is dead (expired, used, superseded or out of attempts), or none was sent: ask
    /// for a new one.
    NoCode,
    /// Wrong, and the link is now locked.
    Locked,
}

/// Why a code operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("the database failed")]
    Database(#[from] sqlx::Error),
    #[error("the code could not be queued: {0}")]
    Gate(#[from] GateError),
    #[error("the audit trail refused an event: {0}")]
    Audit(String),
}

impl CodeError {
    /// Whether it means "try again later" (the database is unavailable): 503, not 500.
    #[must_use]
    pub fn unavailable(&self) -> bool {
        match self {
            Self::Database(e) => crate::store::is_unavailable(e),
            Self::Gate(GateError::Database(e)) => crate::store::is_unavailable(e),
            Self::Gate(_) => false,
            Self::Audit(_) => false,
        }
    }
}

impl From<audit::AuditError> for CodeError {
    fn from(error: audit::AuditError) -> Self {
        match error {
            audit::AuditError::Database(e) => Self::Database(e),
            other => Self::Audit(other.to_string()),
        }
    }
}

/// Texts a new code to the conversation's number. See the module documentation.
///
/// # Errors
/// [`CodeError`].
pub async fn request(state: &AppState, link: &Link) -> Result<Requested, CodeError> {
    let escalation = &state.escalation;
    if let Err(retry_after) = escalation.spend_code(&link.id) {
        return Ok(Requested::TooMany { retry_after });
    }
    let now = state.clock.now();
    let now_text = crate::store::timestamp(now);
    let lifetime =
        TimeDelta::from_std(escalation.settings.code_lifetime).unwrap_or(TimeDelta::minutes(10));
    let expires_at = crate::store::timestamp(now + lifetime);
    let code = Zeroizing::new(format!(
        "{:06}",
        rand::rngs::OsRng.gen_range(0..1_000_000_u32)
    ));
    let code_id = crate::store::new_id();
    let mut tx = state.db.pool().begin().await?;
    lock(&mut tx, link).await?;
    sqlx::query(
        "UPDATE secure_code SET ended_at = $1 WHERE secure_link_id = $2 AND ended_at IS NULL",
    )
    .bind(&now_text)
    .bind(&link.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO secure_code (secure_code_id, secure_link_id, code_mac, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&code_id)
    .bind(&link.id)
    .bind(state.vault.code_mac(&link.id, &code))
    .bind(&now_text)
    .bind(&expires_at)
    .execute(&mut *tx)
    .await?;
    let template = &escalation.settings.code_template;
    let business = &state.compliance.business_name;
    let body = Zeroizing::new(
        template
            .replace("{code}", &code)
            .replace("{business}", business),
    );
    let shown = template
        .replace("{code}", "••••••")
        .replace("{business}", business);
    let queued = outbound::queue(
        &mut tx,
        state,
        &link.conversation_id,
        &Message {
            kind: Kind::SecureLink,
            body: &body,
            shown: Some(&shown),
            suggestions: &[],
            timing: Timing::Direct,
        },
        now,
    )
    .await;
    let message_id = match queued {
        Ok(queued) => queued.message_id,
        Err(GateError::Refused(Refusal::OptedOut { .. })) => return Ok(Requested::OptedOut),
        Err(other) => return Err(other.into()),
    };
    let event = Event::new(Actor::System, "secure_link.code_sent")
        .subject("secure_link", &link.id)
        .subject("conversation", &link.conversation_id)
        .subject("message", &message_id);
    audit::append(&mut tx, state.vault.audit_key(), &event, &now_text).await?;
    tx.commit().await?;
    state.outbox.wake();
    state.live.changed();
    state.metrics.secure_link("code_sent");
    Ok(Requested::Sent { expires_at })
}

/// Checks an entered code against the link's current code. See the module documentation.
/// `entered` is compared only when it is six digits; anything else counts as a wrong entry.
///
/// With a knowledge check to follow (`answer_follows`), a right code is counted as an attempt
/// too, *before* the business's endpoint is asked, so that parallel posts of a right code
/// cannot put more than the code's attempts' worth of answers to it; [`answered`] settles the
/// count once the endpoint has spoken.
///
/// # Errors
/// [`CodeError`].
pub async fn check(
    state: &AppState,
    link: &Link,
    entered: &str,
    answer_follows: bool,
) -> Result<Checked, CodeError> {
    let settings = &state.escalation.settings;
    let now_text = state.clock.timestamp();
    let mut tx = state.db.pool().begin().await?;
    lock(&mut tx, link).await?;
    let Some(row) = sqlx::query(
        "SELECT secure_code_id, code_mac, attempts FROM secure_code \
         WHERE secure_link_id = $1 AND ended_at IS NULL AND expires_at > $2 \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(&link.id)
    .bind(&now_text)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(Checked::NoCode);
    };
    let code_id: String = row.try_get(0)?;
    let mac: Vec<u8> = row.try_get(1)?;
    let attempts: i64 = row.try_get(2)?;
    let limit = i64::from(settings.code_attempts);
    if attempts >= limit {
        return Ok(Checked::NoCode);
    }
    let entered = entered.trim();
    let shaped = entered.len() == 6 && entered.bytes().all(|b| b.is_ascii_digit());
    if shaped && state.vault.code_matches(&link.id, entered, &mac) {
        // Not ended here: `sessions::open` ends it once everything else (the knowledge check)
        // passed, so that only one session opens per code.
        if !answer_follows {
            return Ok(Checked::Verified { code_id });
        }
        let counted = count(
            &mut tx,
            state,
            link,
            &code_id,
            attempts + 1,
            false,
            &now_text,
        )
        .await?;
        tx.commit().await?;
        return Ok(match counted {
            Checked::Locked => locked(state),
            _ => Checked::Verified { code_id },
        });
    }
    let outcome = count(
        &mut tx,
        state,
        link,
        &code_id,
        attempts + 1,
        true,
        &now_text,
    )
    .await?;
    tx.commit().await?;
    Ok(match outcome {
        Checked::Locked => locked(state),
        other => other,
    })
}

/// Counts a lock (after its commit).
fn locked(state: &AppState) -> Checked {
    state.metrics.secure_link("locked");
    Checked::Locked
}

/// What the business's knowledge check said about a customer whose code was right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Yes: the attempt [`check`] counted is given back (the session opens).
    Yes,
    /// No: the attempt stays counted, like a wrong code.
    No,
    /// The endpoint could not be asked: not the customer's fault, the attempt is given back.
    Unreachable,
}

/// Settles the attempt [`check`] counted for a right code once the knowledge check has spoken.
/// Returns what the page tells the customer after a `No`.
///
/// # Errors
/// [`CodeError`].
pub async fn answered(
    state: &AppState,
    link: &Link,
    code_id: &str,
    answer: Answer,
) -> Result<Checked, CodeError> {
    let now_text = state.clock.timestamp();
    let limit = i64::from(state.escalation.settings.code_attempts);
    let mut tx = state.db.pool().begin().await?;
    lock(&mut tx, link).await?;
    let attempts: i64 = sqlx::query("SELECT attempts FROM secure_code WHERE secure_code_id = $1")
        .bind(code_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    let outcome = match answer {
        Answer::Yes | Answer::Unreachable => {
            sqlx::query(
                "UPDATE secure_link SET failed_codes = failed_codes - 1 WHERE secure_link_id = $1 AND failed_codes > 0",
            )
            .bind(&link.id)
            .execute(&mut *tx)
            .await?;
            if answer == Answer::Unreachable {
                sqlx::query(
                    "UPDATE secure_code SET attempts = attempts - 1 WHERE secure_code_id = $1 AND attempts > 0",
                )
                .bind(code_id)
                .execute(&mut *tx)
                .await?;
            }
            Checked::Verified {
                code_id: code_id.to_owned(),
            }
        }
        Answer::No => {
            if attempts >= limit {
                sqlx::query("UPDATE secure_code SET ended_at = $1 WHERE secure_code_id = $2 AND ended_at IS NULL")
                    .bind(&now_text)
                    .bind(code_id)
                    .execute(&mut *tx)
                    .await?;
                exhausted(&mut tx, state, link, &now_text).await?;
            }
            Checked::Wrong {
                attempts_left: u32::try_from(limit - attempts).unwrap_or(0),
            }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Takes the conversation's row, then the link's: the order every writer of both keeps.
async fn lock(tx: &mut sqlx::AnyConnection, link: &Link) -> Result<(), sqlx::Error> {
    crate::store::conversations::lock(tx, &link.conversation_id).await?;
    crate::store::lock_row(tx, "secure_link", "secure_link_id", &link.id).await
}

async fn exhausted(
    tx: &mut sqlx::AnyConnection,
    state: &AppState,
    link: &Link,
    now_text: &str,
) -> Result<(), CodeError> {
    let event = Event::new(Actor::System, "secure_link.code_exhausted")
        .subject("secure_link", &link.id)
        .subject("conversation", &link.conversation_id);
    audit::append(tx, state.vault.audit_key(), &event, now_text).await?;
    Ok(())
}

/// Counts an entry (the code's `attempts`-th) on the code and the link, and locks the link at
/// its limit. A wrong entry (`wrong`) also ends the code at its limit.
async fn count(
    tx: &mut sqlx::AnyConnection,
    state: &AppState,
    link: &Link,
    code_id: &str,
    attempts: i64,
    wrong: bool,
    now_text: &str,
) -> Result<Checked, CodeError> {
    let settings = &state.escalation.settings;
    let limit = i64::from(settings.code_attempts);
    let ends = wrong && attempts >= limit;
    sqlx::query(
        "UPDATE secure_code SET attempts = $1, ended_at = CASE WHEN $2 = 1 THEN $3 ELSE ended_at END \
         WHERE secure_code_id = $4",
    )
    .bind(attempts)
    .bind(i64::from(ends))
    .bind(now_text)
    .bind(code_id)
    .execute(&mut *tx)
    .await?;
    let failed = link_failures(tx, &link.id).await? + 1;
    let locks = failed >= i64::from(settings.link_failed_codes);
    sqlx::query(
        "UPDATE secure_link SET failed_codes = $1, locked_at = CASE WHEN $2 = 1 THEN $3 ELSE locked_at END \
         WHERE secure_link_id = $4",
    )
    .bind(failed)
    .bind(i64::from(locks))
    .bind(now_text)
    .bind(&link.id)
    .execute(&mut *tx)
    .await?;
    if locks {
        sqlx::query(
            "UPDATE customer_session SET ended_at = $1 WHERE secure_link_id = $2 AND ended_at IS NULL",
        )
        .bind(now_text)
        .bind(&link.id)
        .execute(&mut *tx)
        .await?;
        let event = Event::new(Actor::System, "secure_link.lock")
            .subject("secure_link", &link.id)
            .subject("conversation", &link.conversation_id)
            .detail("failed_codes", failed);
        audit::append(tx, state.vault.audit_key(), &event, now_text).await?;
        return Ok(Checked::Locked);
    }
    if ends {
        exhausted(tx, state, link, now_text).await?;
    }
    Ok(Checked::Wrong {
        attempts_left: u32::try_from(limit - attempts).unwrap_or(0),
    })
}

async fn link_failures(tx: &mut sqlx::AnyConnection, link_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT failed_codes FROM secure_link WHERE secure_link_id = $1")
        .bind(link_id)
        .fetch_one(tx)
        .await?
        .try_get(0)
}
