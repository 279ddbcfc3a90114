//! The key-check row: proof that the configured master key matches the stored data.

use sqlx::{AnyConnection, Row};

/// The stored check value for the master key `version`, if any.
///
/// # Errors
/// Database errors.
pub async fn check_value(
    conn: &mut AnyConnection,
    version: u32,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query("SELECT check_value FROM keyring WHERE purpose = 'master' AND key_version = $1")
        .bind(i64::from(version))
        .fetch_optional(conn)
        .await?
        .map(|row| row.try_get::<Vec<u8>, _>(0))
        .transpose()
}

/// Records the check value for master key `version`; a concurrent first start that got there
/// first wins, and the caller re-reads.
///
/// # Errors
/// Database errors.
pub async fn insert_check_value(
    conn: &mut AnyConnection,
    version: u32,
    value: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO keyring (purpose, key_version, check_value, created_at) VALUES ('master', $1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(i64::from(version))
    .bind(value.to_vec())
    .bind(super::now())
    .execute(conn)
    .await
    .map(|_| ())
}
