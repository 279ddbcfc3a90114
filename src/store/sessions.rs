//! Console sessions. The browser holds a random token (`dbs_` and 256 bits, base64url); the
//! database holds only its SHA-256. A session's `stage` says how far sign-in has got: only
//! [`Stage::SignedIn`] opens the console. The token is replaced whenever the stage advances, so a
//! token seen before sign-in completed (session fixation) is worth nothing after.

use super::token_digest as digest;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{AnyConnection, Row};
use zeroize::Zeroizing;

/// The prefix of every session token.
pub const PREFIX: &str = "dbs_";

/// How far a session's sign-in has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Fully signed in.
    SignedIn,
    /// The password was right; a one-time code is due.
    SecondFactor,
    /// Signed in with a password that must be changed first (the first admin's, a reset one).
    ChangePassword,
    /// A second factor is required and not yet enrolled.
    EnrollTotp,
}

impl Stage {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignedIn => "signed_in",
            Self::SecondFactor => "second_factor",
            Self::ChangePassword => "change_password",
            Self::EnrollTotp => "enroll_totp",
        }
    }

    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::SignedIn,
            Self::SecondFactor,
            Self::ChangePassword,
            Self::EnrollTotp,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A session as stored (without its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub stage: Stage,
    /// `password` or `oidc`.
    pub method: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// Whether the session has run out: idle for longer than `idle`, or past its absolute end.
    #[must_use]
    pub fn expired(&self, now: DateTime<Utc>, idle: TimeDelta) -> bool {
        now >= self.expires_at || now - self.last_seen_at >= idle
    }
}

fn new_token() -> Zeroizing<String> {
    super::new_token(PREFIX)
}

/// Starts a session and returns it with its token (which exists only in the caller's hands).
///
/// # Errors
/// Database errors.
pub async fn create(
    conn: &mut AnyConnection,
    user_id: &str,
    stage: Stage,
    method: &str,
    now: DateTime<Utc>,
    lifetime: TimeDelta,
) -> Result<(Session, Zeroizing<String>), sqlx::Error> {
    let token = new_token();
    let session = Session {
        id: super::new_id(),
        user_id: user_id.to_owned(),
        stage,
        method: method.to_owned(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + lifetime,
    };
    sqlx::query(
        "INSERT INTO user_session (user_session_id, token_sha256, user_id, stage, method, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
    )
    .bind(&session.id)
    .bind(digest(&token))
    .bind(user_id)
    .bind(stage.as_str())
    .bind(method)
    .bind(super::timestamp(now))
    .bind(super::timestamp(session.expires_at))
    .execute(conn)
    .await?;
    Ok((session, token))
}

/// The session this token opens, expired or not (the caller decides, with its timeouts).
///
/// # Errors
/// Database errors.
pub async fn find(conn: &mut AnyConnection, token: &str) -> Result<Option<Session>, sqlx::Error> {
    if !token.starts_with(PREFIX) || token.len() > 100 {
        return Ok(None);
    }
    let Some(row) = sqlx::query(
        "SELECT user_session_id, user_id, stage, method, created_at, last_seen_at, expires_at \
         FROM user_session WHERE token_sha256 = $1",
    )
    .bind(digest(token))
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let time = |i: usize| -> Result<DateTime<Utc>, sqlx::Error> {
        let text: String = row.try_get(i)?;
        super::parse_timestamp(&text).ok_or_else(|| sqlx::Error::Decode("bad timestamp".into()))
    };
    let stage: String = row.try_get(2)?;
    Ok(Stage::parse(&stage).map(|stage| Session {
        id: row.try_get(0).unwrap_or_default(),
        user_id: row.try_get(1).unwrap_or_default(),
        stage,
        method: row.try_get(3).unwrap_or_default(),
        created_at: time(4).unwrap_or_default(),
        last_seen_at: time(5).unwrap_or_default(),
        expires_at: time(6).unwrap_or_default(),
    }))
}

/// Marks the session active at `now`.
///
/// # Errors
/// Database errors.
pub async fn touch(
    conn: &mut AnyConnection,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE user_session SET last_seen_at = $2 WHERE user_session_id = $1")
        .bind(id)
        .bind(super::timestamp(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves the session to `stage` under a new token, which is returned.
///
/// # Errors
/// Database errors.
pub async fn advance(
    conn: &mut AnyConnection,
    id: &str,
    stage: Stage,
    now: DateTime<Utc>,
) -> Result<Zeroizing<String>, sqlx::Error> {
    let token = new_token();
    sqlx::query(
        "UPDATE user_session SET token_sha256 = $2, stage = $3, last_seen_at = $4 WHERE user_session_id = $1",
    )
    .bind(id)
    .bind(digest(&token))
    .bind(stage.as_str())
    .bind(super::timestamp(now))
    .execute(conn)
    .await?;
    Ok(token)
}

/// Ends one session.
///
/// # Errors
/// Database errors.
pub async fn delete(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM user_session WHERE user_session_id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every session of a user except `keep` (a password change keeps the session it was made
/// in; disabling a user keeps none).
///
/// # Errors
/// Database errors.
pub async fn delete_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    keep: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let result =
        sqlx::query("DELETE FROM user_session WHERE user_id = $1 AND user_session_id <> $2")
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .execute(conn)
            .await?;
    Ok(result.rows_affected())
}

/// Deletes sessions past their absolute end or idle since before `idle_cutoff`.
///
/// # Errors
/// Database errors.
pub async fn prune(
    conn: &mut AnyConnection,
    now: DateTime<Utc>,
    idle: TimeDelta,
) -> Result<u64, sqlx::Error> {
    let result =
        sqlx::query("DELETE FROM user_session WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(super::timestamp(now))
            .bind(super::timestamp(now - idle))
            .execute(conn)
            .await?;
    Ok(result.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_round_trip() {
        for stage in [
            Stage::SignedIn,
            Stage::SecondFactor,
            Stage::ChangePassword,
            Stage::EnrollTotp,
        ] {
            assert_eq!(Stage::parse(stage.as_str()), Some(stage));
        }
    }

    #[test]
    fn expiry_is_idle_or_absolute() {
        let start = DateTime::<Utc>::UNIX_EPOCH;
        let session = Session {
            id: "s".into(),
            user_id: "u".into(),
            stage: Stage::SignedIn,
            method: "password".into(),
            created_at: start,
            last_seen_at: start + TimeDelta::minutes(60),
            expires_at: start + TimeDelta::hours(8),
        };
        let idle = TimeDelta::minutes(15);
        assert!(!session.expired(start + TimeDelta::minutes(74), idle));
        assert!(session.expired(start + TimeDelta::minutes(75), idle));
        assert!(session.expired(start + TimeDelta::hours(8), TimeDelta::hours(100)));
        assert!(new_token().starts_with(PREFIX));
        assert_eq!(new_token().len(), PREFIX.len() + 43);
    }
}
