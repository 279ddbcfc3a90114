//! Blind-index key rotation: `drawbridge keys reindex`, and how running processes follow it.
//!
//! # Procedure
//!
//! 1. **A new generation.** `keys reindex` makes fresh random phone, e-mail and sign-on subject
//!    index keys as generation `g + 1` and, in one transaction, stores them with the purpose keys
//!    wrapped under every master key version in use, records the generation
//!    (`blind_index_generation`), re-keys every staff account (few rows; so staff look-ups never
//!    see a mix) and appends `keys.reindex.start` to the audit trail.
//! 2. **Contacts move in batches** while the service runs: each batch is one transaction that
//!    re-keys up to `--batch` stored phone indexes (compare-and-swap on the old value) and moves the
//!    job's cursor, so an interrupted run loses at most the batch in flight and the next run
//!    continues after the cursor. Re-keying needs no phone number (see [`crate::vault::index`]),
//!    so erased contacts, whose numbers are gone, keep their opt-outs.
//! 3. **Finish**: when a pass leaves no row under an older generation, the generation is marked
//!    re-indexed and `keys.reindex.finish` records the counts.
//!
//! # Running processes
//!
//! - A look-up matches the current and the previous generation's index, so rows are found
//!   whichever side of the move they are on.
//! - A row is written only under the database's newest generation: the insert carries its
//!   generation and is refused by the database otherwise (see `crate::store::contacts::upsert`);
//!   the writer then [`refresh`]es its keys from the keyring and tries again. A process that has
//!   not yet heard of the new generation therefore cannot add a duplicate contact or account.
//! - Every server also refreshes once a second ([`watch`]), so its look-ups follow within a
//!   second; nothing needs restarting.
//!
//! Only one re-index runs at a time: a new generation is added only when the newest one is
//! finished, and its row's primary key refuses a concurrent second one.

use super::{recover_purposes, Actor};
use crate::audit::{self, Event};
use crate::store::{keyring, Db};
use crate::vault::{self, IndexKeys, IndexKind, MasterSlot, Vault, VaultError};
use anyhow::{bail, Context};
use sqlx::{AnyConnection, Row};
use std::io::Write;
use std::time::Duration;

/// How often a server checks for a new generation.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Full passes over the contacts before giving up on rows that keep appearing under an older
/// generation (which the database's insert guard should make impossible).
const MAX_PASSES: u32 = 3;

/// Why a process could not take up the database's newest index keys.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("reading the keyring: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the stored purpose keys do not open: {0}")]
    Keys(#[from] VaultError),
    /// The database names a generation no keyring copy this process can open holds.
    #[error("blind-index generation {0} is recorded but not in the keyring")]
    Missing(u32),
}

/// The database's newest blind-index generation (1 when none was ever added).
///
/// # Errors
/// Database errors.
pub async fn database_generation(conn: &mut AnyConnection) -> Result<u32, sqlx::Error> {
    let newest: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(generation), 1) FROM blind_index_generation")
            .fetch_one(conn)
            .await?;
    u32::try_from(newest).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Takes up the database's newest blind-index keys if this vault is behind: reads them from the
/// keyring copy wrapped under a master key version the vault holds. Returns whether it changed.
///
/// # Errors
/// [`RefreshError`].
pub async fn refresh(conn: &mut AnyConnection, vault: &Vault) -> Result<bool, RefreshError> {
    let newest = database_generation(conn).await?;
    if newest <= vault.index_generation() {
        return Ok(false);
    }
    let held = vault.kek_versions();
    for row in keyring::masters(conn).await? {
        let (Some(wrapped), None) = (&row.purpose_keys_wrapped, &row.retired_at) else {
            continue;
        };
        if !held.contains(&row.version) {
            continue;
        }
        let purposes = vault.open_purpose_keys(row.version, wrapped)?;
        if purposes.index_generation() >= newest {
            let changed = vault.install_index_keys(&purposes);
            if changed {
                tracing::info!(
                    generation = vault.index_generation(),
                    "took up a new blind-index key generation"
                );
            }
            return Ok(changed);
        }
    }
    Err(RefreshError::Missing(newest))
}

/// After a look-up or a guarded write under `generation` found nothing: takes up a newer
/// generation if the database has one, and says whether the vault is now past `generation` (so the
/// caller should try again). Also true when another task (the [`watch`]) took it up meanwhile.
///
/// # Errors
/// [`RefreshError`].
pub async fn moved_on(
    conn: &mut AnyConnection,
    vault: &Vault,
    generation: u32,
) -> Result<bool, RefreshError> {
    refresh(conn, vault).await?;
    Ok(vault.index_generation() > generation)
}

/// Refreshes the server's index keys once a second, for as long as the server runs.
pub async fn watch(state: actix_web::web::Data<crate::web::AppState>) {
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = match state.db.pool().acquire().await {
            Ok(mut conn) => refresh(&mut conn, &state.vault).await,
            Err(e) => Err(RefreshError::Database(e)),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "could not check for a new blind-index key generation");
        }
    }
}

/// How [`reindex`] runs: the batch size, a batch limit and the progress bar, as for
/// [`super::rotate`].
pub type ReindexOptions = super::RotateOptions;

/// How a [`reindex`] run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reindex {
    /// Every stored index is under `generation`: `contacts` and `users` rows were re-keyed in
    /// all (this run and any it resumed).
    Finished {
        generation: u32,
        contacts: i64,
        users: i64,
    },
    /// Stopped after `--max-batches`; run again to continue.
    Paused { generation: u32, contacts: i64 },
}

/// The generation a run works towards: the newest, if it is unfinished; otherwise a new one,
/// added here (see the module documentation, step 1).
async fn target_generation(
    db: &Db,
    vault: &Vault,
    keys: &[(u32, vault::MasterKey)],
    actor: Actor<'_>,
) -> anyhow::Result<u32> {
    let mut tx = db.pool().begin().await.context("starting the re-index")?;
    super::lock(&mut tx).await.context("taking the key lock")?;
    let unfinished: Option<i64> = sqlx::query_scalar(
        "SELECT generation FROM blind_index_generation WHERE reindexed_at IS NULL \
         ORDER BY generation DESC LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await
    .context("reading the blind-index generations")?;
    if let Some(generation) = unfinished {
        return u32::try_from(generation).context("a malformed generation");
    }
    let rows = keyring::masters(&mut tx)
        .await
        .context("reading the keyring")?;
    let slots: Vec<MasterSlot> = keys
        .iter()
        .map(|(version, key)| MasterSlot::new(key, *version))
        .collect();
    let version_one = keys.iter().find(|(v, _)| *v == 1).map(|(_, k)| k);
    let purposes = recover_purposes(&rows, &slots, version_one)?;
    let recorded = database_generation(&mut tx)
        .await
        .context("reading the blind-index generations")?;
    if purposes.index_generation() != recorded {
        bail!(
            "the keyring holds blind-index generation {} but the database records {recorded}; \
             the keyring is inconsistent",
            purposes.index_generation()
        );
    }
    // On PostgreSQL, wait for every transaction that is writing contacts or staff accounts and
    // hold off new ones until the generation is committed: an insert whose generation check ran
    // before this commit is then committed before it (and re-keyed below or by a later batch),
    // never after a process that already holds the new generation inserted the same number under
    // it. (On SQLite the key lock above already excludes every other writer.)
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("LOCK TABLE contact, app_user IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .context("locking contacts and staff accounts")?;
    }
    let next = purposes.with_new_index_generation();
    let generation = next.index_generation();
    for row in rows.iter().filter(|r| r.retired_at.is_none()) {
        let slot = slots
            .iter()
            .find(|s| s.version() == row.version)
            .with_context(|| format!("master key version {} is not configured", row.version))?;
        keyring::replace_purpose_keys(&mut tx, row.version, &slot.wrap_purpose_keys(&next)?)
            .await
            .context("storing the new index keys")?;
    }
    let now = crate::store::now();
    sqlx::query("INSERT INTO blind_index_generation (generation, created_at) VALUES ($1, $2)")
        .bind(i64::from(generation))
        .bind(&now)
        .execute(&mut *tx)
        .await
        .context("recording the new generation (is another re-index starting?)")?;
    let users = rekey_users(&mut tx, &next.index_keys(), generation).await?;
    sqlx::query("UPDATE blind_index_generation SET users = $1 WHERE generation = $2")
        .bind(users)
        .bind(i64::from(generation))
        .execute(&mut *tx)
        .await
        .context("recording the re-keyed staff accounts")?;
    audit::append(
        &mut tx,
        vault.audit_key(),
        &Event::new(actor, "keys.reindex.start")
            .detail("generation", generation)
            .detail("users", users),
        &now,
    )
    .await
    .map_err(|e| anyhow::anyhow!("recording the re-index in the audit trail: {e}"))?;
    tx.commit().await.context("starting the re-index")?;
    vault.install_index_keys(&next);
    Ok(generation)
}

/// Re-keys every staff account indexed under an older generation; returns how many. Each row is
/// replaced only if it is still as read (a sign-on identity linked meanwhile is not overwritten:
/// the row stays behind and the finishing step takes it).
async fn rekey_users(
    tx: &mut AnyConnection,
    keys: &IndexKeys,
    generation: u32,
) -> anyhow::Result<i64> {
    let rows = sqlx::query(
        "SELECT user_id, email_index, oidc_subject_index, index_generation FROM app_user \
         WHERE index_generation < $1",
    )
    .bind(i64::from(generation))
    .fetch_all(&mut *tx)
    .await
    .context("reading staff accounts")?;
    let mut count = 0;
    for row in &rows {
        let id: String = row.try_get(0)?;
        let email: Vec<u8> = row.try_get(1)?;
        let subject: Option<Vec<u8>> = row.try_get(2)?;
        let from = u32::try_from(row.try_get::<i64, _>(3)?).unwrap_or(0);
        let rekey = |kind, value: &[u8]| {
            keys.rekey(kind, value, from)
                .with_context(|| format!("user {id}: indexed under unknown generation {from}"))
        };
        let email = rekey(IndexKind::Email, &email)?;
        let subject = subject.map(|s| rekey(IndexKind::Subject, &s)).transpose()?;
        count += sqlx::query(
            "UPDATE app_user SET email_index = $1, oidc_subject_index = $2, index_generation = $3 \
             WHERE user_id = $4 AND index_generation = $5 AND email_index = $6 \
             AND oidc_subject_index IS NOT DISTINCT FROM $7",
        )
        .bind(email)
        .bind(subject)
        .bind(i64::from(generation))
        .bind(&id)
        .bind(i64::from(from))
        .bind(row.try_get::<Vec<u8>, _>(1)?)
        .bind(row.try_get::<Option<Vec<u8>>, _>(2)?)
        .execute(&mut *tx)
        .await
        .context("re-keying a staff account")?
        .rows_affected() as i64;
    }
    Ok(count)
}

/// Contacts and staff accounts re-keyed to `generation` so far.
async fn counts(conn: &mut AnyConnection, generation: u32) -> anyhow::Result<(i64, i64)> {
    let row =
        sqlx::query("SELECT contacts, users FROM blind_index_generation WHERE generation = $1")
            .bind(i64::from(generation))
            .fetch_one(conn)
            .await
            .context("reading the re-index counts")?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

async fn users_behind(conn: &mut AnyConnection, generation: u32) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM app_user WHERE index_generation < $1")
        .bind(i64::from(generation))
        .fetch_one(conn)
        .await
        .context("counting staff accounts under older generations")
}

async fn contacts_behind(conn: &mut AnyConnection, generation: u32) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM contact WHERE index_generation < $1")
        .bind(i64::from(generation))
        .fetch_one(conn)
        .await
        .context("counting contacts under older generations")
}

/// Re-keys every stored blind index to a new generation of index keys, or continues an
/// unfinished re-index. See the module documentation.
///
/// # Errors
/// Key configuration (every master key version in use must be configured: the new keys are
/// stored under each), database errors (committed batches stay committed), or a stored index of
/// a generation the keyring does not hold.
pub async fn reindex(
    db: &Db,
    keys: &[(u32, vault::MasterKey)],
    actor: Actor<'_>,
    options: &ReindexOptions,
) -> anyhow::Result<Reindex> {
    let vault = super::open_with(db, keys, actor).await?;
    let target = target_generation(db, &vault, keys, actor).await?;
    let index = vault.index_keys();
    if index.current() != target {
        bail!(
            "the configured keys hold blind-index generation {} but the re-index is of {target}",
            index.current()
        );
    }
    let batch = i64::from(options.batch.max(1));
    let to_do = {
        let mut conn = db.pool().acquire().await?;
        contacts_behind(&mut conn, target).await?
    };
    let bar = super::progress_bar(options.progress, to_do, "re-keying blind indexes");
    let (mut batches, mut passes) = (0_u64, 0_u32);
    loop {
        let mut tx = db.pool().begin().await.context("reading the next batch")?;
        super::lock(&mut tx).await.context("taking the key lock")?;
        let cursor: String =
            sqlx::query_scalar("SELECT cursor FROM blind_index_generation WHERE generation = $1")
                .bind(i64::from(target))
                .fetch_one(&mut *tx)
                .await
                .context("reading the re-index cursor")?;
        let rows = sqlx::query(
            "SELECT contact_id, phone_index, index_generation FROM contact \
             WHERE contact_id > $1 AND index_generation < $2 ORDER BY contact_id LIMIT $3",
        )
        .bind(&cursor)
        .bind(i64::from(target))
        .bind(batch)
        .fetch_all(&mut *tx)
        .await
        .context("reading contacts")?;
        let Some(last) = rows.last().map(|r| r.try_get::<String, _>(0)).transpose()? else {
            // End of a pass: a row written under an older generation behind the cursor (by an
            // insert that began before the generation was added) needs another pass.
            let left = contacts_behind(&mut tx, target).await?;
            if left == 0 {
                break;
            }
            passes += 1;
            if passes >= MAX_PASSES {
                bail!("{left} contacts are still indexed under an older generation after {MAX_PASSES} passes; run `drawbridge keys reindex` again");
            }
            sqlx::query("UPDATE blind_index_generation SET cursor = '' WHERE generation = $1")
                .bind(i64::from(target))
                .execute(&mut *tx)
                .await?;
            tx.commit().await.context("restarting the pass")?;
            continue;
        };
        let mut count: i64 = 0;
        for row in &rows {
            let id: String = row.try_get(0)?;
            let old: Vec<u8> = row.try_get(1)?;
            let from = u32::try_from(row.try_get::<i64, _>(2)?).unwrap_or(0);
            let new = index.rekey(IndexKind::Phone, &old, from).with_context(|| {
                format!("contact {id}: indexed under unknown generation {from}")
            })?;
            count += sqlx::query(
                "UPDATE contact SET phone_index = $1, index_generation = $2 \
                 WHERE contact_id = $3 AND phone_index = $4",
            )
            .bind(new)
            .bind(i64::from(target))
            .bind(&id)
            .bind(old)
            .execute(&mut *tx)
            .await
            .context("re-keying a contact")?
            .rows_affected() as i64;
        }
        sqlx::query(
            "UPDATE blind_index_generation SET cursor = $1, contacts = contacts + $2 WHERE generation = $3",
        )
        .bind(&last)
        .bind(count)
        .bind(i64::from(target))
        .execute(&mut *tx)
        .await
        .context("recording progress")?;
        tx.commit().await.context("committing a batch")?;
        bar.inc(u64::try_from(count).unwrap_or(0));
        batches += 1;
        if options.max_batches.is_some_and(|max| batches >= max) {
            bar.abandon();
            let mut conn = db.pool().acquire().await?;
            let (contacts, _) = counts(&mut conn, target).await?;
            return Ok(Reindex::Paused {
                generation: target,
                contacts,
            });
        }
    }
    bar.finish_and_clear();

    let mut tx = db.pool().begin().await.context("finishing the re-index")?;
    super::lock(&mut tx).await.context("taking the key lock")?;
    // Staff accounts an insert that began before the generation was added left behind.
    let late_users = rekey_users(&mut tx, &index, target).await?;
    if contacts_behind(&mut tx, target).await? != 0 || users_behind(&mut tx, target).await? != 0 {
        bail!("rows under an older generation appeared while finishing; run `drawbridge keys reindex` again");
    }
    let now = crate::store::now();
    sqlx::query(
        "UPDATE blind_index_generation SET reindexed_at = $1, users = users + $2 WHERE generation = $3",
    )
    .bind(&now)
    .bind(late_users)
    .bind(i64::from(target))
    .execute(&mut *tx)
    .await
    .context("finishing the re-index")?;
    let (contacts, users) = counts(&mut tx, target).await?;
    audit::append(
        &mut tx,
        vault.audit_key(),
        &Event::new(actor, "keys.reindex.finish")
            .detail("generation", target)
            .detail("contacts", super::grouped(contacts))
            .detail("users", super::grouped(users)),
        &now,
    )
    .await
    .map_err(|e| anyhow::anyhow!("recording the re-index in the audit trail: {e}"))?;
    tx.commit().await.context("finishing the re-index")?;
    Ok(Reindex::Finished {
        generation: target,
        contacts,
        users,
    })
}

/// `drawbridge keys reindex`: re-keys every blind index to a new generation (or continues an
/// unfinished re-index) and prints the outcome to `out`.
///
/// # Errors
/// See [`reindex`].
pub async fn reindex_command(
    settings: &crate::config::Settings,
    options: &ReindexOptions,
    operator: &str,
    out: &mut impl Write,
) -> anyhow::Result<Reindex> {
    let db = super::connect(settings).await?;
    let result = async {
        let (keys, _) = super::configured_keys(settings)?;
        reindex(&db, &keys, Actor::Cli(operator), options).await
    }
    .await;
    db.close().await;
    let outcome = result?;
    match &outcome {
        Reindex::Finished {
            generation,
            contacts,
            users,
        } => writeln!(
            out,
            "re-index to blind-index generation {generation} finished: {contacts} contacts and \
             {users} staff accounts re-keyed; every stored index is under the new keys"
        )?,
        Reindex::Paused {
            generation,
            contacts,
        } => writeln!(
            out,
            "re-index to blind-index generation {generation} paused after the batch limit: \
             {contacts} contacts re-keyed so far; run `drawbridge keys reindex` again to continue"
        )?,
    }
    Ok(outcome)
}
