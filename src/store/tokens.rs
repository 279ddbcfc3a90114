//! API bearer tokens. A token is `dbt_` and 43 base64url characters (256 random bits); only its
//! SHA-256 is stored, so the database cannot give a token back, and a token is found by its
//! hash (an equality look-up on a digest reveals nothing about the token through timing).

use super::token_digest as digest;
use sqlx::{AnyConnection, Row};
use zeroize::Zeroizing;

/// The prefix of every token, so one in a log or a repository is recognisable.
pub const PREFIX: &str = "dbt_";

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    Supervisor,
    Compliance,
    Admin,
}

impl Role {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Supervisor => "supervisor",
            Self::Compliance => "compliance",
            Self::Admin => "admin",
        }
    }

    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Agent, Self::Supervisor, Self::Compliance, Self::Admin]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// A token's identity, without the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
}

/// Creates a token and returns it (the only time it exists outside the caller) with its id.
///
/// # Errors
/// Database errors.
pub async fn create(
    conn: &mut AnyConnection,
    name: &str,
    role: Role,
    at: &str,
) -> Result<(String, Zeroizing<String>), sqlx::Error> {
    let token = super::new_token(PREFIX);
    let id = super::new_id();
    sqlx::query(
        "INSERT INTO api_token (api_token_id, name, role, token_sha256, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(name)
    .bind(role.as_str())
    .bind(digest(&token))
    .bind(at)
    .execute(conn)
    .await?;
    Ok((id, token))
}

/// The live (not revoked) token this is, if any.
///
/// # Errors
/// Database errors.
pub async fn find(conn: &mut AnyConnection, token: &str) -> Result<Option<TokenInfo>, sqlx::Error> {
    if !token.starts_with(PREFIX) || token.len() > 100 {
        return Ok(None);
    }
    let Some(row) = sqlx::query(
        "SELECT api_token_id, name, role FROM api_token WHERE token_sha256 = $1 AND revoked_at IS NULL",
    )
    .bind(digest(token))
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let role: String = row.try_get(2)?;
    Ok(Role::parse(&role).map(|role| TokenInfo {
        id: row.try_get(0).unwrap_or_default(),
        name: row.try_get(1).unwrap_or_default(),
        role,
    }))
}

/// A token as the admin pages list it (never the token, which is not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// Every token, revoked ones included, newest first.
///
/// # Errors
/// Database errors.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<TokenRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT api_token_id, name, role, created_at, revoked_at FROM api_token ORDER BY created_at DESC, api_token_id",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let role: String = row.try_get(2)?;
            Ok(TokenRecord {
                id: row.try_get(0)?,
                name: row.try_get(1)?,
                role: Role::parse(&role)
                    .ok_or_else(|| sqlx::Error::Decode("unknown role".into()))?,
                created_at: row.try_get(3)?,
                revoked_at: row.try_get(4)?,
            })
        })
        .collect()
}

/// Revokes a token; `false` when there is no such token or it was already revoked.
///
/// # Errors
/// Database errors.
pub async fn revoke(conn: &mut AnyConnection, id: &str, at: &str) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE api_token SET revoked_at = $2 WHERE api_token_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for role in [Role::Agent, Role::Supervisor, Role::Compliance, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn digests_differ_per_token() {
        assert_ne!(digest("dbt_a"), digest("dbt_b"));
        assert_eq!(digest("dbt_a").len(), 32);
    }
}
