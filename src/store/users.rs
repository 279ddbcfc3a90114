//! Console users. E-mail addresses are sealed under the vault's staff key and found by a keyed
//! blind index, as contacts' phone numbers are; one-time-code secrets are sealed too.

use super::tokens::Role;
use crate::vault::{Aad, Vault, VaultError};
use sqlx::{AnyConnection, Row};
use zeroize::Zeroizing;

/// A user as the console needs one: never the password hash's contents outside this crate's
/// sign-in code, never the one-time-code secret.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// The argon2id hash; `None` for a single-sign-on-only user.
    pub password_hash: Option<String>,
    pub must_change_password: bool,
    pub totp_enrolled: bool,
    pub totp_required: bool,
    pub sso_linked: bool,
    pub disabled: bool,
    pub created_at: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Reading a user failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("a sealed user field did not open: {0}")]
    Vault(#[from] VaultError),
    #[error(transparent)]
    IndexKeys(#[from] crate::keys::index::RefreshError),
}

const COLUMNS: &str = "user_id, email_sealed, role, password_hash, must_change_password, \
     totp_secret_sealed IS NOT NULL, totp_required, oidc_subject_index IS NOT NULL, disabled_at, created_at";

fn decode(vault: &Vault, row: &sqlx::any::AnyRow) -> Result<User, UserError> {
    let id: String = row.try_get(0)?;
    let sealed: Vec<u8> = row.try_get(1)?;
    let email = vault.open_staff(&sealed, Aad::new("app_user", "email_sealed", &id))?;
    let role: String = row.try_get(2)?;
    let flag = |i: usize| -> Result<bool, sqlx::Error> {
        // PostgreSQL answers `IS NOT NULL` with a boolean, SQLite with an integer.
        row.try_get::<bool, _>(i)
            .or_else(|_| row.try_get::<i64, _>(i).map(|v| v != 0))
    };
    let disabled: Option<String> = row.try_get(8)?;
    Ok(User {
        email: String::from_utf8_lossy(&email).into_owned(),
        role: Role::parse(&role).ok_or_else(|| sqlx::Error::Decode("unknown role".into()))?,
        password_hash: row.try_get(3)?,
        must_change_password: flag(4)?,
        totp_enrolled: flag(5)?,
        totp_required: flag(6)?,
        sso_linked: flag(7)?,
        disabled: disabled.is_some(),
        created_at: row.try_get(9)?,
        id,
    })
}

/// A new user.
#[derive(Debug)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub role: Role,
    pub password_hash: Option<&'a str>,
    pub must_change_password: bool,
}

/// Creates a user and returns its id, or `None` when the address already has an account.
///
/// # Errors
/// Database and sealing errors.
pub async fn create(
    conn: &mut AnyConnection,
    vault: &Vault,
    user: &NewUser<'_>,
    at: &str,
) -> Result<Option<String>, UserError> {
    let id = super::new_id();
    let email = user.email.trim().to_lowercase();
    let sealed = vault.seal_staff(email.as_bytes(), Aad::new("app_user", "email_sealed", &id))?;
    // Written only under the database's newest blind-index generation (see
    // `crate::store::contacts::upsert`); a refused insert is tried again once the keys caught up.
    for _ in 0..2 {
        let index = vault.email_index(&email);
        let [current, previous] = index.lookup();
        let inserted = sqlx::query(
            "INSERT INTO app_user (user_id, email_index, email_sealed, role, password_hash, must_change_password, created_at, updated_at, index_generation) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $7, $8 \
             WHERE $8 = (SELECT COALESCE(MAX(generation), 1) FROM blind_index_generation) \
             AND NOT EXISTS (SELECT 1 FROM app_user WHERE email_index = $9) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(current)
        .bind(&sealed)
        .bind(user.role.as_str())
        .bind(user.password_hash)
        .bind(i64::from(user.must_change_password))
        .bind(at)
        .bind(i64::from(index.generation()))
        .bind(previous)
        .execute(&mut *conn)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Some(id));
        }
        if !crate::keys::index::moved_on(conn, vault, index.generation()).await? {
            break;
        }
    }
    Ok(None)
}

/// The user with this e-mail address, if any.
///
/// # Errors
/// Database and sealing errors.
pub async fn find_by_email(
    conn: &mut AnyConnection,
    vault: &Vault,
    email: &str,
) -> Result<Option<User>, UserError> {
    find_by_index(conn, vault, "email_index", || vault.email_index(email)).await
}

/// The user whose `column` matches `index` (current or previous generation). A miss is checked
/// against the database's newest blind-index generation before it is believed.
async fn find_by_index(
    conn: &mut AnyConnection,
    vault: &Vault,
    column: &'static str,
    index: impl Fn() -> crate::vault::BlindIndex,
) -> Result<Option<User>, UserError> {
    for _ in 0..2 {
        let index = index();
        let [current, previous] = index.lookup();
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM app_user WHERE {column} IN ($1, $2)"
        ))
        .bind(current)
        .bind(previous)
        .fetch_optional(&mut *conn)
        .await?;
        if row.is_some() || !crate::keys::index::moved_on(conn, vault, index.generation()).await? {
            return row.map(|r| decode(vault, &r)).transpose();
        }
    }
    Ok(None)
}

/// The user linked to this single-sign-on identity ([`Vault::subject_index`]), if any.
///
/// # Errors
/// Database and sealing errors.
pub async fn find_by_subject(
    conn: &mut AnyConnection,
    vault: &Vault,
    issuer: &str,
    subject: &str,
) -> Result<Option<User>, UserError> {
    find_by_index(conn, vault, "oidc_subject_index", || {
        vault.subject_index(issuer, subject)
    })
    .await
}

/// The user with this id, if any.
///
/// # Errors
/// Database and sealing errors.
pub async fn get(
    conn: &mut AnyConnection,
    vault: &Vault,
    id: &str,
) -> Result<Option<User>, UserError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM app_user WHERE user_id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| decode(vault, &r)).transpose()
}

/// Every user, oldest first.
///
/// # Errors
/// Database and sealing errors.
pub async fn list(conn: &mut AnyConnection, vault: &Vault) -> Result<Vec<User>, UserError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM app_user ORDER BY created_at, user_id"
    ))
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| decode(vault, r)).collect()
}

/// How many users there are.
///
/// # Errors
/// Database errors.
pub async fn count(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) FROM app_user")
        .fetch_one(conn)
        .await?
        .try_get(0)
}

/// How many enabled admins there are other than `except`: an admin may not remove the last one.
///
/// # Errors
/// Database errors.
pub async fn other_active_admins(
    conn: &mut AnyConnection,
    except: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "SELECT COUNT(*) FROM app_user WHERE role = 'admin' AND disabled_at IS NULL AND user_id <> $1",
    )
    .bind(except)
    .fetch_one(conn)
    .await?
    .try_get(0)
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Runs a one-row update whose `$1` is the user id and `$2` the time; `bind` adds the rest.
async fn update<'q>(
    conn: &mut AnyConnection,
    sql: &'q str,
    id: &str,
    at: &str,
    bind: impl FnOnce(Query<'q>) -> Query<'q>,
) -> Result<bool, sqlx::Error> {
    let query = bind(sqlx::query(sql).bind(id.to_owned()).bind(at.to_owned()));
    Ok(query.execute(conn).await?.rows_affected() == 1)
}

/// Sets the password hash (and whether it must be changed at the next sign-in).
///
/// # Errors
/// Database errors.
pub async fn set_password(
    conn: &mut AnyConnection,
    id: &str,
    hash: &str,
    must_change: bool,
    at: &str,
) -> Result<bool, sqlx::Error> {
    update(
        conn,
        "UPDATE app_user SET updated_at = $2, password_hash = $3, must_change_password = $4 WHERE user_id = $1",
        id,
        at,
        |q| q.bind(hash.to_owned()).bind(i64::from(must_change)),
    )
    .await
}

/// Sets the role.
///
/// # Errors
/// Database errors.
pub async fn set_role(
    conn: &mut AnyConnection,
    id: &str,
    role: Role,
    at: &str,
) -> Result<bool, sqlx::Error> {
    update(
        conn,
        "UPDATE app_user SET updated_at = $2, role = $3 WHERE user_id = $1",
        id,
        at,
        |q| q.bind(role.as_str()),
    )
    .await
}

/// Disables (signs out everywhere separately) or re-enables a user.
///
/// # Errors
/// Database errors.
pub async fn set_disabled(
    conn: &mut AnyConnection,
    id: &str,
    disabled: bool,
    at: &str,
) -> Result<bool, sqlx::Error> {
    update(
        conn,
        "UPDATE app_user SET updated_at = $2, disabled_at = CASE WHEN $3 = 1 THEN $2 ELSE NULL END WHERE user_id = $1",
        id,
        at,
        |q| q.bind(i64::from(disabled)),
    )
    .await
}

/// Requires (or stops requiring) a one-time-code second factor.
///
/// # Errors
/// Database errors.
pub async fn set_totp_required(
    conn: &mut AnyConnection,
    id: &str,
    required: bool,
    at: &str,
) -> Result<bool, sqlx::Error> {
    update(
        conn,
        "UPDATE app_user SET updated_at = $2, totp_required = $3 WHERE user_id = $1",
        id,
        at,
        |q| q.bind(i64::from(required)),
    )
    .await
}

/// Stores an enrolled one-time-code secret and the step of the code that confirmed it.
///
/// # Errors
/// Database and sealing errors.
pub async fn enroll_totp(
    conn: &mut AnyConnection,
    vault: &Vault,
    id: &str,
    secret: &[u8],
    step: u64,
    at: &str,
) -> Result<bool, UserError> {
    let sealed = vault.seal_staff(secret, Aad::new("app_user", "totp_secret_sealed", id))?;
    Ok(update(
        conn,
        "UPDATE app_user SET updated_at = $2, totp_secret_sealed = $3, totp_last_step = $4 WHERE user_id = $1",
        id,
        at,
        |q| q.bind(sealed).bind(i64::try_from(step).unwrap_or(i64::MAX)),
    )
    .await?)
}

/// Removes the one-time-code secret (an admin resetting a lost authenticator).
///
/// # Errors
/// Database errors.
pub async fn clear_totp(conn: &mut AnyConnection, id: &str, at: &str) -> Result<bool, sqlx::Error> {
    update(
        conn,
        "UPDATE app_user SET updated_at = $2, totp_secret_sealed = NULL, totp_last_step = NULL WHERE user_id = $1",
        id,
        at,
        |q| q,
    )
    .await
}

/// The user's one-time-code secret and the last step accepted, if enrolled.
///
/// # Errors
/// Database and sealing errors.
pub async fn totp_secret(
    conn: &mut AnyConnection,
    vault: &Vault,
    id: &str,
) -> Result<Option<(Zeroizing<Vec<u8>>, Option<u64>)>, UserError> {
    let Some(row) =
        sqlx::query("SELECT totp_secret_sealed, totp_last_step FROM app_user WHERE user_id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?
    else {
        return Ok(None);
    };
    let sealed: Option<Vec<u8>> = row.try_get(0)?;
    let last: Option<i64> = row.try_get(1)?;
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let secret = vault.open_staff(&sealed, Aad::new("app_user", "totp_secret_sealed", id))?;
    Ok(Some((secret, last.and_then(|l| u64::try_from(l).ok()))))
}

/// Records `step` as used, unless it (or a later one) already was: the compare-and-set that makes
/// a one-time code work once even when two sign-ins race. Returns whether this call won.
///
/// # Errors
/// Database errors.
pub async fn accept_totp_step(
    conn: &mut AnyConnection,
    id: &str,
    step: u64,
) -> Result<bool, sqlx::Error> {
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    let updated = sqlx::query(
        "UPDATE app_user SET totp_last_step = $2 WHERE user_id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
    )
    .bind(id)
    .bind(step)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Links a single-sign-on identity to the user. The index is written only under the generation
/// the user's row is indexed under, which is the database's newest (a re-index moves staff
/// accounts when it adds a generation); a process behind it refreshes its keys and tries again.
///
/// # Errors
/// Database errors (a subject already linked to another user violates the unique index).
pub async fn link_subject(
    conn: &mut AnyConnection,
    vault: &Vault,
    id: &str,
    issuer: &str,
    subject: &str,
    at: &str,
) -> Result<bool, UserError> {
    for _ in 0..2 {
        let index = vault.subject_index(issuer, subject);
        let linked = update(
            conn,
            "UPDATE app_user SET updated_at = $2, oidc_subject_index = $3 \
             WHERE user_id = $1 AND index_generation = $4",
            id,
            at,
            |q| {
                q.bind(index.current().to_vec())
                    .bind(i64::from(index.generation()))
            },
        )
        .await?;
        if linked || !crate::keys::index::moved_on(conn, vault, index.generation()).await? {
            return Ok(linked);
        }
    }
    Ok(false)
}

/// The id and a display form of every enabled user who may be assigned conversations (agents and
/// supervisors), by e-mail address.
///
/// # Errors
/// Database and sealing errors.
pub async fn assignable(conn: &mut AnyConnection, vault: &Vault) -> Result<Vec<User>, UserError> {
    let mut users = list(conn, vault).await?;
    users.retain(|u| !u.disabled && matches!(u.role, Role::Agent | Role::Supervisor));
    users.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(users)
}
