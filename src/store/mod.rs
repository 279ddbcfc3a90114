//! The database: SQLite (embedded default) or PostgreSQL, through sqlx's `Any` driver.
//!
//! One set of SQL serves both backends. Queries use `$1`-style placeholders, which both SQLite and
//! PostgreSQL accept, and only types both share: text, 64-bit integers and blobs (`bytea`).
//! Timestamps are UTC RFC 3339 text with microseconds ([`now`]), which sorts correctly as text.
//! Where the dialects differ it is in the migrations (`migrations/sqlite`, `migrations/postgres`)
//! and in this module, nowhere else. Ids are UUIDv7 ([`new_id`]), random in their low 74 bits.
//!
//! Every query module takes `&mut AnyConnection`, so callers decide the transaction.

pub mod contacts;
pub mod conversations;
pub mod keyring;
pub mod messages;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// A connection pool and the backend behind it. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects to the database at `url` (`sqlite:` or `postgres://`).
    ///
    /// SQLite runs in WAL mode with `synchronous = FULL`, so a message acknowledged to a carrier
    /// survives power loss, and a 5 s busy timeout so concurrent writers wait instead of failing.
    /// The pool connects lazily: the service starts (and `/readyz` reports) while the database is
    /// down, and requests get 503 until it is back.
    ///
    /// # Errors
    /// When the URL is malformed.
    pub fn connect_lazy(url: &SecretString) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let text = url.expose_secret();
        let backend = if text.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        // Parse errors from sqlx may quote the URL, which can hold a password: say only what failed.
        let options = AnyConnectOptions::from_str(text)
            .map_err(|_| anyhow::anyhow!("`database_url` is not a valid database URL"))?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // SQLite has one writer at a time; a few readers beside it are plenty.
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 5000",
                        ] {
                            conn.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        Ok(Self { pool, backend })
    }

    /// Applies pending migrations for this backend.
    ///
    /// # Errors
    /// When the database is unreachable or a migration fails.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .context("applying database migrations")
    }

    /// Checks that the database answers.
    ///
    /// # Errors
    /// The driver's error when it does not.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    #[must_use]
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool: waits for connections in use to be returned, then closes them all
    /// (SQLite checkpoints its WAL as the last connection closes).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// True when an error means the database is unavailable rather than that the query was wrong:
/// the caller should answer 503 so the carrier retries later.
#[must_use]
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL: connection exceptions (08), insufficient resources (53), operator
            // intervention (57: shutdown, cannot connect now), database missing (3D000).
            // SQLite (extended codes reduce to the primary code in the low byte): BUSY 5,
            // LOCKED 6, READONLY 8, IOERR 10, FULL 13, CANTOPEN 14.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || code == "3D000"
                || code
                    .parse::<i64>()
                    .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
        }
        _ => false,
    }
}

/// The current time as stored: UTC, RFC 3339, microseconds, `Z`.
#[must_use]
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A new random, time-ordered id (UUIDv7).
#[must_use]
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_as_text() {
        let a = now();
        std::thread::sleep(Duration::from_millis(2));
        let b = now();
        assert!(a < b, "{a} {b}");
        assert!(
            a.ends_with('Z') && a.len() == "2026-11-22T08:19:20.123456Z".len(),
            "{a}"
        );
    }

    #[test]
    fn ids_are_unique_uuids() {
        let a = new_id();
        assert_ne!(a, new_id());
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }

    #[test]
    fn pool_errors_are_unavailability() {
        assert!(is_unavailable(&sqlx::Error::PoolClosed));
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
    }
}
