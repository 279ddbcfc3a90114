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

/// One master key version's keyring row. The check value and wrapped purpose keys reveal nothing
/// without that version's key.
#[derive(Debug, Clone)]
pub struct MasterRow {
    pub version: u32,
    pub check_value: Vec<u8>,
    pub purpose_keys_wrapped: Option<Vec<u8>>,
    pub created_at: String,
    pub retired_at: Option<String>,
}

fn version_of(value: i64) -> Result<u32, sqlx::Error> {
    u32::try_from(value).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Every master key version the database knows, oldest first.
///
/// # Errors
/// Database errors.
pub async fn masters(conn: &mut AnyConnection) -> Result<Vec<MasterRow>, sqlx::Error> {
    sqlx::query(
        "SELECT key_version, check_value, purpose_keys_wrapped, created_at, retired_at \
         FROM keyring WHERE purpose = 'master' ORDER BY key_version",
    )
    .fetch_all(conn)
    .await?
    .iter()
    .map(|row| {
        Ok(MasterRow {
            version: version_of(row.try_get(0)?)?,
            check_value: row.try_get(1)?,
            purpose_keys_wrapped: row.try_get(2)?,
            created_at: row.try_get(3)?,
            retired_at: row.try_get(4)?,
        })
    })
    .collect()
}

/// Registers master key `version` with its check value and the purpose keys wrapped under it.
/// Returns whether this call inserted it (a concurrent start may have got there first).
///
/// # Errors
/// Database errors.
pub async fn insert_master(
    conn: &mut AnyConnection,
    version: u32,
    check_value: &[u8],
    purpose_keys_wrapped: &[u8],
    now: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "INSERT INTO keyring (purpose, key_version, check_value, purpose_keys_wrapped, created_at) \
         VALUES ('master', $1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(i64::from(version))
    .bind(check_value.to_vec())
    .bind(purpose_keys_wrapped.to_vec())
    .bind(now)
    .execute(conn)
    .await
    .map(|done| done.rows_affected() == 1)
}

/// Stores the purpose keys wrapped under master key `version` where none are stored yet (a
/// database from before rotation existed keeps them derived from version 1 only).
///
/// # Errors
/// Database errors.
pub async fn fill_purpose_keys(
    conn: &mut AnyConnection,
    version: u32,
    purpose_keys_wrapped: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE keyring SET purpose_keys_wrapped = $1 \
         WHERE purpose = 'master' AND key_version = $2 AND purpose_keys_wrapped IS NULL \
         AND retired_at IS NULL",
    )
    .bind(purpose_keys_wrapped.to_vec())
    .bind(i64::from(version))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Replaces the purpose keys wrapped under master key `version` (a re-index adds a blind-index
/// generation to them). Returns whether the row was updated: a retired row keeps none.
///
/// # Errors
/// Database errors.
pub async fn replace_purpose_keys(
    conn: &mut AnyConnection,
    version: u32,
    purpose_keys_wrapped: &[u8],
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE keyring SET purpose_keys_wrapped = $1 \
         WHERE purpose = 'master' AND key_version = $2 AND retired_at IS NULL",
    )
    .bind(purpose_keys_wrapped.to_vec())
    .bind(i64::from(version))
    .execute(conn)
    .await
    .map(|done| done.rows_affected() == 1)
}

/// Marks master key `version` retired and drops the purpose keys wrapped under it: nothing
/// stored needs that key any more. Returns whether the row was retired by this call.
///
/// # Errors
/// Database errors.
pub async fn retire_master(
    conn: &mut AnyConnection,
    version: u32,
    now: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE keyring SET retired_at = $1, purpose_keys_wrapped = NULL \
         WHERE purpose = 'master' AND key_version = $2 AND retired_at IS NULL",
    )
    .bind(now)
    .bind(i64::from(version))
    .execute(conn)
    .await
    .map(|done| done.rows_affected() == 1)
}

/// A resumable key job's progress row.
#[derive(Debug, Clone)]
pub struct Job {
    pub target_version: u32,
    pub started_at: String,
    pub cursor: String,
    pub done: i64,
    pub finished_at: Option<String>,
}

/// Every rotation job, oldest target first.
///
/// # Errors
/// Database errors.
pub async fn rotation_jobs(conn: &mut AnyConnection) -> Result<Vec<Job>, sqlx::Error> {
    sqlx::query(
        "SELECT target_version, started_at, cursor, done, finished_at FROM key_job \
         WHERE job = 'rotate' ORDER BY target_version",
    )
    .fetch_all(conn)
    .await?
    .iter()
    .map(|row| {
        Ok(Job {
            target_version: version_of(row.try_get(0)?)?,
            started_at: row.try_get(1)?,
            cursor: row.try_get(2)?,
            done: row.try_get(3)?,
            finished_at: row.try_get(4)?,
        })
    })
    .collect()
}

/// Starts the rotation job to `version` unless one exists; returns whether this call started it.
///
/// # Errors
/// Database errors.
pub async fn start_rotation(
    conn: &mut AnyConnection,
    version: u32,
    now: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "INSERT INTO key_job (job, target_version, started_at) VALUES ('rotate', $1, $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(i64::from(version))
    .bind(now)
    .execute(conn)
    .await
    .map(|done| done.rows_affected() == 1)
}

/// Records a committed batch: the rotation to `version` has reached `cursor` and re-wrapped
/// `count` more keys.
///
/// # Errors
/// Database errors.
pub async fn advance_rotation(
    conn: &mut AnyConnection,
    version: u32,
    cursor: &str,
    count: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE key_job SET cursor = $1, done = done + $2 WHERE job = 'rotate' AND target_version = $3",
    )
    .bind(cursor)
    .bind(count)
    .bind(i64::from(version))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Marks the rotation to `version` finished.
///
/// # Errors
/// Database errors.
pub async fn finish_rotation(
    conn: &mut AnyConnection,
    version: u32,
    now: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE key_job SET finished_at = $1 WHERE job = 'rotate' AND target_version = $2 \
         AND finished_at IS NULL",
    )
    .bind(now)
    .bind(i64::from(version))
    .execute(conn)
    .await
    .map(|_| ())
}
