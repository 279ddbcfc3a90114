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
pub mod outbox;
pub mod sessions;
pub mod tokens;
pub mod users;

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
    /// The database file, for SQLite.
    sqlite_path: Option<std::path::PathBuf>,
}

impl Db {
    /// Connects to the database at `url` (`sqlite:` or `postgres://`).
    ///
    /// SQLite runs in WAL mode with `synchronous = FULL`, so a message acknowledged to a carrier
    /// survives power loss, and a 5 s busy timeout so concurrent writers wait instead of failing.
    /// The pool connects lazily; `serve` connects at start (to migrate and check the key) and
    /// refuses to start without the database, while a database lost *after* start is reported by
    /// `/readyz` and answered with 503 until it is back.
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
                            // Deleted rows are overwritten with zeros, not left in free pages:
                            // erasure and retention must not leave ciphertext or a destroyed
                            // data key readable in the file.
                            "PRAGMA secure_delete = ON",
                        ] {
                            conn.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        let sqlite_path = (backend == Backend::Sqlite)
            .then(|| {
                let rest = text
                    .strip_prefix("sqlite://")
                    .or_else(|| text.strip_prefix("sqlite:"))
                    .unwrap_or_default();
                let path = rest.split('?').next().unwrap_or_default();
                (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
            })
            .flatten();
        Ok(Self {
            pool,
            backend,
            sqlite_path,
        })
    }

    /// On SQLite, locks `<database>.outbox-lock` for as long as the returned file is held, so
    /// that only one process runs an outbox worker on the database (the worker takes over any
    /// claims it finds at start, which is right only if no other worker is alive). The operating
    /// system releases the lock when the process dies, however it dies. `None` on PostgreSQL
    /// and for in-memory databases.
    ///
    /// # Errors
    /// When another process holds the lock, or the lock file cannot be opened.
    pub fn sqlite_worker_lock(&self) -> anyhow::Result<Option<std::fs::File>> {
        let Some(path) = self.sqlite_path.as_ref() else {
            return Ok(None);
        };
        let lock_path = std::path::PathBuf::from(format!("{}.outbox-lock", path.display()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another drawbridge process is running the outbox on {}: run one instance on \
                 SQLite (or set [outbox] enabled = false on the others), or use PostgreSQL for \
                 several",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(error)) => {
                Err(error).with_context(|| format!("locking {}", lock_path.display()))
            }
        }
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

    /// After an erasure: pushes deleted bytes out of the places the database keeps old versions,
    /// as far as the engine allows. SQLite (with `secure_delete`, which zeroes freed space):
    /// checkpoints the WAL into the database and truncates it, so no old page image holding a
    /// destroyed data key stays in `-wal`. PostgreSQL: vacuums the tables erasure touches, so
    /// the dead row versions are pruned. Best effort: a busy checkpoint or a vacuum that cannot
    /// run now is logged, not an error (the erasure itself is committed); backups and the
    /// write-ahead log archive are outside its reach (see the README).
    pub async fn purge_deleted(&self) {
        let statements: &[&str] = match self.backend {
            Backend::Sqlite => &["PRAGMA wal_checkpoint(TRUNCATE)"],
            Backend::Postgres => &[
                "VACUUM contact",
                "VACUUM message",
                "VACUUM message_media",
                "VACUUM secure_message",
                "VACUUM note",
            ],
        };
        for statement in statements {
            if let Err(error) = sqlx::query(statement).execute(&self.pool).await {
                tracing::warn!(%error, "purging deleted rows after an erasure");
            }
        }
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

/// True when an error means the database is unavailable or momentarily unable to take the write,
/// rather than that the request or the query is wrong: the caller answers 503 so the carrier
/// retries later. Each backend's codes are read from its own error type.
///
/// - Pool and transport: the pool timed out or is closed, I/O or TLS failed, the connection
///   broke mid-protocol.
/// - PostgreSQL (SQLSTATE): class 08 connection exceptions; 53 insufficient resources; 57P01–57P03
///   shutdown and "cannot connect now"; 3D000 database missing; 40001 serialization failure,
///   40P01 deadlock and 55P03 lock not available (retrying succeeds).
/// - SQLite (primary result code, the low byte of the extended code): BUSY 5, LOCKED 6,
///   READONLY 8, IOERR 10, FULL 13, CANTOPEN 14.
#[must_use]
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                postgres_code_is_transient(pg.code())
            } else if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                sqlx::error::DatabaseError::code(sqlite)
                    .and_then(|c| c.parse::<i64>().ok())
                    .is_some_and(sqlite_code_is_transient)
            } else {
                false
            }
        }
        _ => false,
    }
}

fn postgres_code_is_transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "3D000" | "40001" | "40P01" | "55P03"
        )
}

fn sqlite_code_is_transient(extended: i64) -> bool {
    matches!(extended & 0xff, 5 | 6 | 8 | 10 | 13 | 14)
}

/// Locks one row for the rest of the transaction: `FOR UPDATE` on PostgreSQL; on SQLite the
/// database's one write lock, taken by a write that changes nothing. (A SQLite transaction that
/// read first and wrote later fails at once with `SQLITE_BUSY` if another writer committed in
/// between, whatever the busy timeout; taking the write lock first makes it wait instead.)
/// `table` and `key` are the caller's constants, never input.
///
/// # Errors
/// Database errors.
pub async fn lock_row(
    conn: &mut sqlx::AnyConnection,
    table: &'static str,
    key: &'static str,
    id: &str,
) -> Result<(), sqlx::Error> {
    let lock = if conn.backend_name() == "PostgreSQL" {
        format!("SELECT {key} FROM {table} WHERE {key} = $1 FOR UPDATE")
    } else {
        format!("UPDATE {table} SET {key} = {key} WHERE {key} = $1")
    };
    sqlx::query(&lock).bind(id).execute(conn).await?;
    Ok(())
}

/// The current time as stored: UTC, RFC 3339, microseconds, `Z`.
#[must_use]
pub fn now() -> String {
    timestamp(chrono::Utc::now())
}

/// A time as stored: UTC, RFC 3339, microseconds, `Z`.
#[must_use]
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Reads back a stored time.
#[must_use]
pub fn parse_timestamp(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// A new secret token: `prefix` and 256 random bits from the OS, base64url (43 characters).
/// Only its [`token_digest`] is ever stored.
#[must_use]
pub fn new_token(prefix: &str) -> zeroize::Zeroizing<String> {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = zeroize::Zeroizing::new([0_u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    zeroize::Zeroizing::new(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref())
    ))
}

/// SHA-256 of a token: what is stored and looked up (a 256-bit random token needs no key or
/// salt).
#[must_use]
pub fn token_digest(token: &str) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
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

    #[test]
    fn postgres_codes() {
        for transient in [
            "08006", "08001", "53300", "57P01", "57P03", "3D000", "40001", "40P01", "55P03",
        ] {
            assert!(postgres_code_is_transient(transient), "{transient}");
        }
        // Privilege, encoding, constraint and syntax errors are faults, not outages, even where
        // their digits look like SQLite's busy codes.
        for fault in [
            "42501", "22021", "21000", "22026", "22030", "23505", "42601", "57014",
        ] {
            assert!(!postgres_code_is_transient(fault), "{fault}");
        }
    }

    #[test]
    fn sqlite_codes() {
        for transient in [5, 261, 517, 6, 262, 8, 10, 3338, 13, 14] {
            assert!(sqlite_code_is_transient(transient), "{transient}");
        }
        // CONSTRAINT (19), including CONSTRAINT_COMMITHOOK (531); MISMATCH (20); ERROR (1).
        for fault in [19, 531, 1555, 2067, 20, 1] {
            assert!(!sqlite_code_is_transient(fault), "{fault}");
        }
    }
}
