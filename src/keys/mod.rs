//! Master key versions and rotation: `drawbridge keys status`, `keys rotate`, `keys generate`.
//!
//! # Design
//!
//! - **Master key versions.** The configured `master_key` is version `master_key_version`
//!   (default 1); during a rotation the old key is configured beside it as `previous_master_key`
//!   (version `master_key_version - 1`). Each version has a keyring row with a check value; every
//!   configured key must match its version's check value or nothing starts ([`open_vault`]).
//! - **Which key wraps what.** Each version has its own KEK (HKDF of that master key). A contact's
//!   data key is wrapped under one KEK and the wrapped value starts with the version (see
//!   [`crate::vault`]), so a process holding both versions opens either. New data keys are wrapped
//!   under the newest configured version, which the first process to start with it registers.
//! - **Purpose keys survive retirement.** The blind-index, audit-chain, staff-seal, session and
//!   secure-link keys are the database's, not a master key version's: they are derived once from
//!   the database's first master key (version 1 for every database made before this module) and
//!   stored wrapped under every later version (`keyring.purpose_keys_wrapped`). So a rotation changes
//!   none of them: phone and e-mail indexes still match, staff seals and canned replies still
//!   open, one-time code MACs still check, and audit rows keep verifying under the audit key
//!   version they carry. Rotating the master key protects the data keys (the bulk of what a
//!   leaked old key would open). The blind-index keys rotate separately: `keys reindex` adds a
//!   generation of index keys and re-keys every stored index ([`index`]).
//! - **Rotation** ([`rotate`]) re-wraps every contact's data key under the current version in
//!   batches, each one transaction that also moves the job's cursor (`key_job`), so a crash, a
//!   Ctrl-C or a database outage loses at most the batch in flight and running it again continues
//!   after the last committed batch. A key is replaced only if it is still the value read
//!   (compare-and-swap), and a key already under the current version is left alone, so nothing is
//!   wrapped twice and a key erased meanwhile stays erased. Contacts whose data key was destroyed
//!   (NULL or empty) are skipped. When a full pass leaves no key under an older version, the
//!   older versions are retired (their purpose-key copies dropped, their check value kept and
//!   marked retired); from then on the old key is needed by nothing and may be removed from the
//!   configuration.
//! - **Running servers** keep working throughout: they hold both versions, open keys wrapped under
//!   either, and wrap new contacts under the new one. Every instance must be restarted with the
//!   new configuration *before* `keys rotate` runs; an instance still on the old configuration
//!   would keep wrapping under the old version (the final pass re-wraps those it finds, and
//!   `keys status` shows any that appear after retirement).

pub mod index;

use crate::audit::{self, Actor, Event};
use crate::config::Settings;
use crate::store::{contacts, keyring, Db};
use crate::vault::{self, MasterSlot, PurposeKeys, Vault};
use anyhow::{bail, Context};
use sqlx::Row;
use std::fmt;
use std::io::Write;

/// Contacts re-wrapped (`keys rotate`) or re-keyed (`keys reindex`) per transaction by default.
pub const DEFAULT_BATCH: u32 = 500;

/// Full passes over the contacts a rotation makes before it gives up on keys that keep appearing
/// under an older version (an instance running without the new key).
const MAX_PASSES: u32 = 3;

/// Takes the key lock for the rest of the transaction (`key_lock`: a row lock on PostgreSQL, the
/// write lock on SQLite). The first statement of every transaction that changes the keyring or
/// moves rows between key versions or index generations.
///
/// # Errors
/// Database errors.
pub async fn lock(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE key_lock SET touched_at = $1 WHERE lock_id = 1")
        .bind(crate::store::now())
        .execute(conn)
        .await
        .map(|_| ())
}

/// The master keys the settings configure, with their versions: the current key and, during a
/// rotation, the previous one.
///
/// # Errors
/// When a configured key cannot be read or parsed, or production has none.
pub fn configured_keys(
    settings: &Settings,
) -> anyhow::Result<(Vec<(u32, vault::MasterKey)>, vault::MasterKeyOrigin)> {
    let (master, origin) = vault::load_master_key(settings)?;
    let mut keys = vec![(settings.master_key_version, master)];
    if let Some(previous) = vault::load_previous_master_key(settings)? {
        keys.push((settings.master_key_version - 1, previous));
    }
    Ok((keys, origin))
}

/// Loads the configured master keys and opens the vault against the database: see
/// [`open_with`]. Every command and `serve` open the vault this way.
///
/// # Errors
/// See [`configured_keys`] and [`open_with`].
pub async fn open_vault(
    settings: &Settings,
    db: &Db,
    actor: Actor<'_>,
) -> anyhow::Result<(Vault, vault::MasterKeyOrigin)> {
    let (keys, origin) = configured_keys(settings)?;
    let vault = open_with(db, &keys, actor).await?;
    Ok((vault, origin))
}

/// Checks the held master key versions against the keyring and builds the vault:
///
/// - a held version with a keyring row must match its check value (constant time);
/// - a new database registers the newest held version and derives the purpose keys from it;
/// - a held version newer than every registered one is registered, with the purpose keys
///   wrapped under it (a `keys.version_add` audit event by `actor`); an older unregistered one is
///   refused;
/// - every registered version that is not retired must be held: data keys may be wrapped under it;
/// - the purpose keys come from a held version's wrapped copy, or for a database from before
///   rotation existed, from version 1's key, and are then stored wrapped under every held version.
///
/// # Errors
/// A message naming the version at fault (never key material), or database errors.
pub async fn open_with(
    db: &Db,
    keys: &[(u32, vault::MasterKey)],
    actor: Actor<'_>,
) -> anyhow::Result<Vault> {
    let slots: Vec<MasterSlot> = keys
        .iter()
        .map(|(version, key)| MasterSlot::new(key, *version))
        .collect();
    let newest = slots
        .iter()
        .map(MasterSlot::version)
        .max()
        .context("no master key configured")?;
    let mut tx = db
        .pool()
        .begin()
        .await
        .context("connecting to the database")?;
    lock(&mut tx).await.context("taking the key lock")?;
    let rows = keyring::masters(&mut tx)
        .await
        .context("reading the keyring")?;
    for slot in &slots {
        if let Some(row) = rows.iter().find(|r| r.version == slot.version()) {
            if !slot.check_matches(&row.check_value) {
                bail!(
                    "the configured master key is not the key this database was written with \
                     (master key for version {} is not the key it registered); start with the \
                     original key (master_key, master_key_file, previous_master_key, or data_dir/{})",
                    slot.version(),
                    vault::development_key_file(slot.version())
                );
            }
        }
    }
    let purposes = if rows.is_empty() {
        // A new database: its purpose keys derive from its first master key.
        let (Some((_, root)), Some(slot)) = (
            keys.iter().find(|(v, _)| *v == newest),
            slots.iter().find(|s| s.version() == newest),
        ) else {
            bail!("no master key configured");
        };
        let purposes = PurposeKeys::derive(root, newest);
        register(&mut tx, slot, &purposes, actor, false).await?;
        purposes
    } else {
        for row in rows.iter().filter(|r| r.retired_at.is_none()) {
            if !slots.iter().any(|s| s.version() == row.version) {
                bail!(
                    "master key version {} is not retired (data keys may still be wrapped under \
                     it) and is not configured: configure it as previous_master_key, or finish \
                     `drawbridge keys rotate` first",
                    row.version
                );
            }
        }
        let version_one = keys.iter().find(|(v, _)| *v == 1).map(|(_, k)| k);
        let purposes = recover_purposes(&rows, &slots, version_one)?;
        let highest = rows.iter().map(|r| r.version).max().unwrap_or(0);
        for slot in &slots {
            if rows.iter().any(|r| r.version == slot.version()) {
                keyring::fill_purpose_keys(
                    &mut tx,
                    slot.version(),
                    &slot.wrap_purpose_keys(&purposes)?,
                )
                .await
                .context("storing the wrapped purpose keys")?;
            } else if slot.version() > highest {
                register(&mut tx, slot, &purposes, actor, true).await?;
            } else {
                bail!(
                    "master key version {} was never registered, and is older than version \
                     {highest}, which is: a new key must take the next version",
                    slot.version()
                );
            }
        }
        if let Some(row) = rows.iter().find(|r| r.version == newest) {
            if row.retired_at.is_some() {
                bail!(
                    "master key version {newest} is retired; configure the current key and its \
                     version"
                );
            }
        }
        purposes
    };
    tx.commit().await.context("recording the keyring")?;
    Ok(Vault::from_parts(purposes, slots))
}

/// The purpose keys from the first held version that has them wrapped, or derived from
/// version 1's key for a database made before rotation existed. Every copy that opens must agree.
fn recover_purposes(
    rows: &[keyring::MasterRow],
    slots: &[MasterSlot],
    version_one: Option<&vault::MasterKey>,
) -> anyhow::Result<PurposeKeys> {
    let mut found: Option<PurposeKeys> = None;
    for slot in slots {
        // A retired version's copy was dropped: it holds nothing, and deriving version 1's keys
        // afresh would miss any blind-index generation added since.
        let Some(row) = rows
            .iter()
            .find(|r| r.version == slot.version() && r.retired_at.is_none())
        else {
            continue;
        };
        let candidate = match (&row.purpose_keys_wrapped, version_one) {
            (Some(wrapped), _) => slot.unwrap_purpose_keys(wrapped).map_err(|e| {
                anyhow::anyhow!(
                    "the purpose keys stored under master key version {} do not open: {e}",
                    slot.version()
                )
            })?,
            (None, Some(key))
                if slot.version() == 1 && rows.first().map(|r| r.version) == Some(1) =>
            {
                PurposeKeys::derive(key, 1)
            }
            (None, _) => continue,
        };
        match &found {
            Some(previous) if !previous.same_as(&candidate) => bail!(
                "the purpose keys stored under master key version {} differ from another \
                 version's; the keyring is inconsistent",
                slot.version()
            ),
            Some(_) => {}
            None => found = Some(candidate),
        }
    }
    found.context(
        "none of the configured master keys holds this database's purpose keys: configure the \
         previous master key (previous_master_key) beside the new one",
    )
}

async fn register(
    tx: &mut sqlx::AnyConnection,
    slot: &MasterSlot,
    purposes: &PurposeKeys,
    actor: Actor<'_>,
    audited: bool,
) -> anyhow::Result<()> {
    let now = crate::store::now();
    let inserted = keyring::insert_master(
        tx,
        slot.version(),
        &slot.check_value(),
        &slot.wrap_purpose_keys(purposes)?,
        &now,
    )
    .await
    .context("recording the key check")?;
    if inserted && audited {
        audit::append(
            tx,
            &purposes.audit_key(),
            &Event::new(actor, "keys.version_add").detail("version", slot.version()),
            &now,
        )
        .await
        .map_err(|e| anyhow::anyhow!("recording the new key version in the audit trail: {e}"))?;
    }
    if !inserted {
        // A concurrent first start registered it: its check value must be ours.
        let rows = keyring::masters(tx).await.context("reading the keyring")?;
        let ours = rows
            .iter()
            .find(|r| r.version == slot.version())
            .is_some_and(|r| slot.check_matches(&r.check_value));
        if !ours {
            bail!(
                "another process registered a different master key for version {}",
                slot.version()
            );
        }
    }
    Ok(())
}

/// What `keys status` reports. Holds versions and counts only: no key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Each registered master key version: (version, created at, retired at).
    pub masters: Vec<(u32, String, Option<String>)>,
    /// The current (newest unretired) version.
    pub current: Option<u32>,
    /// Contacts' data keys per master key version they are wrapped under.
    pub wrapped: Vec<(u32, i64)>,
    /// Contacts whose data key was destroyed (erased).
    pub destroyed: i64,
    /// Contacts whose wrapped key names no version (malformed).
    pub malformed: i64,
    /// The version of the purpose keys (blind indexes, audit chain, staff seal, …), when known.
    pub purpose_key_version: Option<u32>,
    /// An unfinished rotation: (target version, started at, keys re-wrapped so far).
    pub rotation_in_progress: Option<(u32, String, i64)>,
    /// The newest blind-index key generation (1 until `keys reindex` first runs).
    pub index_generation: u32,
    /// Contacts per blind-index generation their phone index is under.
    pub contacts_by_index_generation: Vec<(u32, i64)>,
    /// An unfinished re-index: (generation, started at, contacts re-keyed so far).
    pub reindex_in_progress: Option<(u32, String, i64)>,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "master key versions:")?;
        for (version, created, retired) in &self.masters {
            let state = match (retired, Some(*version) == self.current) {
                (Some(at), _) => format!("retired {at}"),
                (None, true) => "current".to_owned(),
                (None, false) => "in use (older; rotate to retire)".to_owned(),
            };
            writeln!(f, "  v{version}  created {created}  {state}")?;
        }
        writeln!(f, "contact data keys by master key version:")?;
        if self.wrapped.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for (version, count) in &self.wrapped {
            writeln!(f, "  v{version}  {count}")?;
        }
        if self.destroyed > 0 {
            writeln!(f, "  destroyed (erased)  {}", self.destroyed)?;
        }
        if self.malformed > 0 {
            writeln!(f, "  malformed  {}", self.malformed)?;
        }
        match self.purpose_key_version {
            Some(version) => writeln!(
                f,
                "purpose keys (blind indexes: phone, e-mail, sign-on subject; audit chain; staff seal; \
                 session; secure link): version {version}"
            )?,
            None => writeln!(f, "purpose keys: not yet created")?,
        }
        match &self.rotation_in_progress {
            Some((version, started, done)) => writeln!(
                f,
                "rotation to v{version} in progress: started {started}, {done} keys re-wrapped; \
                 run `drawbridge keys rotate` to continue"
            )?,
            None => writeln!(f, "rotation in progress: no")?,
        }
        writeln!(
            f,
            "blind-index key generation: {} (`drawbridge keys reindex` adds one)",
            self.index_generation
        )?;
        writeln!(f, "contacts by blind-index generation:")?;
        if self.contacts_by_index_generation.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for (generation, count) in &self.contacts_by_index_generation {
            writeln!(f, "  {generation}  {count}")?;
        }
        match &self.reindex_in_progress {
            Some((generation, started, done)) => writeln!(
                f,
                "re-index to generation {generation} in progress: started {started}, {done} \
                 contacts re-keyed; run `drawbridge keys reindex` to continue"
            ),
            None => writeln!(f, "re-index in progress: no"),
        }
    }
}

/// Reads the key status. Needs no key: it reports versions and counts.
///
/// # Errors
/// Database errors.
pub async fn status(db: &Db) -> anyhow::Result<Status> {
    let mut conn = db
        .pool()
        .acquire()
        .await
        .context("connecting to the database")?;
    let rows = keyring::masters(&mut conn)
        .await
        .context("reading the keyring")?;
    let (by_prefix, destroyed) = contacts::wrapped_key_versions(&mut conn)
        .await
        .context("counting data keys")?;
    let jobs = keyring::rotation_jobs(&mut conn)
        .await
        .context("reading key jobs")?;
    let audit_version: Option<i64> = sqlx::query_scalar::<_, i64>(
        "SELECT key_version FROM audit_event ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await
    .context("reading the audit trail")?;
    let by_generation = sqlx::query(
        "SELECT index_generation, count(*) FROM contact GROUP BY index_generation ORDER BY index_generation",
    )
    .fetch_all(&mut *conn)
    .await
    .context("counting contacts by blind-index generation")?
    .iter()
    .map(|row| {
        Ok((
            u32::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
            row.try_get::<i64, _>(1)?,
        ))
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let reindex_in_progress = sqlx::query(
        "SELECT generation, created_at, contacts FROM blind_index_generation \
         WHERE reindexed_at IS NULL ORDER BY generation DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await
    .context("reading the blind-index generations")?
    .map(|row| -> Result<_, sqlx::Error> {
        Ok((
            u32::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
            row.try_get::<String, _>(1)?,
            row.try_get::<i64, _>(2)?,
        ))
    })
    .transpose()?;
    let index_generation = index::database_generation(&mut conn)
        .await
        .context("reading the blind-index generations")?;
    let mut wrapped: Vec<(u32, i64)> = Vec::new();
    let mut malformed = 0;
    for (prefix, count) in by_prefix {
        match Vault::sealed_version(&prefix) {
            Some(version) => wrapped.push((version, count)),
            None => malformed += count,
        }
    }
    wrapped.sort_unstable();
    Ok(Status {
        current: rows
            .iter()
            .filter(|r| r.retired_at.is_none())
            .map(|r| r.version)
            .max(),
        masters: rows
            .iter()
            .map(|r| (r.version, r.created_at.clone(), r.retired_at.clone()))
            .collect(),
        wrapped,
        destroyed,
        malformed,
        purpose_key_version: audit_version
            .and_then(|v| u32::try_from(v).ok())
            .or_else(|| rows.first().map(|r| r.version)),
        rotation_in_progress: jobs
            .iter()
            .find(|j| j.finished_at.is_none())
            .map(|j| (j.target_version, j.started_at.clone(), j.done)),
        index_generation,
        contacts_by_index_generation: by_generation,
        reindex_in_progress,
    })
}

/// How [`rotate`] and [`index::reindex`] run.
#[derive(Debug, Clone)]
pub struct RotateOptions {
    /// Contacts per transaction.
    pub batch: u32,
    /// Stop after this many committed batches (tests and careful operators): the job stays in
    /// progress and the next run continues.
    pub max_batches: Option<u64>,
    /// Draw a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

impl Default for RotateOptions {
    fn default() -> Self {
        Self {
            batch: DEFAULT_BATCH,
            max_batches: None,
            progress: true,
        }
    }
}

/// How a [`rotate`] run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// Every data key is under `version`; `retired` lists the versions retired by this run.
    Finished {
        version: u32,
        rewrapped: i64,
        retired: Vec<u32>,
    },
    /// Stopped after `--max-batches`; run again to continue.
    Paused { version: u32, rewrapped: i64 },
    /// Nothing was under an older version and nothing needed retiring.
    NothingToDo { version: u32 },
}

/// Re-wraps every contact's data key under the vault's current master key version, then retires
/// the older versions. Resumable; see the module documentation.
///
/// # Errors
/// Database errors (the batches committed so far stay committed) or a data key that cannot be
/// opened with the held keys (named by contact id, which is not personal data).
pub async fn rotate(
    db: &Db,
    vault: &Vault,
    actor: Actor<'_>,
    options: &RotateOptions,
) -> anyhow::Result<Rotation> {
    let target = vault.current_version();
    let prefix = target.to_be_bytes();
    let batch = i64::from(options.batch.max(1));
    let mut conn = db
        .pool()
        .acquire()
        .await
        .context("connecting to the database")?;
    let rows = keyring::masters(&mut conn)
        .await
        .context("reading the keyring")?;
    let older: Vec<u32> = rows
        .iter()
        .filter(|r| r.retired_at.is_none() && r.version < target)
        .map(|r| r.version)
        .collect();
    let jobs = keyring::rotation_jobs(&mut conn)
        .await
        .context("reading key jobs")?;
    let in_progress = jobs
        .iter()
        .any(|j| j.target_version == target && j.finished_at.is_none());
    let to_do = remaining(&mut conn, &prefix).await?;
    drop(conn);
    if older.is_empty() && !in_progress && to_do == 0 {
        return Ok(Rotation::NothingToDo { version: target });
    }

    {
        let mut tx = db.pool().begin().await.context("starting the rotation")?;
        lock(&mut tx).await.context("taking the key lock")?;
        let now = crate::store::now();
        if keyring::start_rotation(&mut tx, target, &now)
            .await
            .context("starting the rotation")?
        {
            audit::append(
                &mut tx,
                vault.audit_key(),
                &Event::new(actor, "keys.rotate.start")
                    .detail("version", target)
                    .detail("from_versions", older.clone()),
                &now,
            )
            .await
            .map_err(|e| anyhow::anyhow!("recording the rotation in the audit trail: {e}"))?;
        }
        tx.commit().await.context("starting the rotation")?;
    }

    let bar = progress_bar(options.progress, to_do, "re-wrapping data keys");
    let mut batches: u64 = 0;
    let mut passes: u32 = 0;
    loop {
        let mut tx = db.pool().begin().await.context("reading the next batch")?;
        lock(&mut tx).await.context("taking the key lock")?;
        let job = keyring::rotation_jobs(&mut tx)
            .await
            .context("reading key jobs")?
            .into_iter()
            .find(|j| j.target_version == target)
            .context("the rotation job disappeared")?;
        let keys = contacts::wrapped_keys_after(&mut tx, &job.cursor, batch)
            .await
            .context("reading data keys")?;
        let Some(last) = keys.last().map(|k| k.contact_id.clone()) else {
            // End of a pass: anything written under an older version meanwhile (behind the
            // cursor) needs another pass.
            let left = remaining(&mut tx, &prefix).await?;
            if left == 0 {
                drop(tx);
                break;
            }
            passes += 1;
            if passes >= MAX_PASSES {
                bail!(
                    "{left} data keys are still wrapped under an older master key version after \
                     {MAX_PASSES} passes: is an instance running without the new key? Restart every \
                     instance with the new configuration and run `drawbridge keys rotate` again"
                );
            }
            keyring::advance_rotation(&mut tx, target, "", 0)
                .await
                .context("restarting the pass")?;
            tx.commit().await.context("restarting the pass")?;
            bar.set_length(bar.position() + u64::try_from(left).unwrap_or(0));
            continue;
        };
        let mut count: i64 = 0;
        for key in &keys {
            let Some(wrapped) = key.data_key_wrapped.as_deref().filter(|w| !w.is_empty()) else {
                continue; // destroyed by erasure: nothing to re-wrap
            };
            let rewrapped = vault
                .rewrap_data_key(wrapped, &key.contact_id)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "contact {}: its data key cannot be re-wrapped with the configured keys: {e}",
                        key.contact_id
                    )
                })?;
            if let Some(new) = rewrapped {
                if contacts::replace_wrapped_key(&mut tx, &key.contact_id, wrapped, &new)
                    .await
                    .context("storing a re-wrapped data key")?
                {
                    count += 1;
                }
            }
        }
        keyring::advance_rotation(&mut tx, target, &last, count)
            .await
            .context("recording progress")?;
        tx.commit().await.context("committing a batch")?;
        bar.inc(u64::try_from(count).unwrap_or(0));
        batches += 1;
        if options.max_batches.is_some_and(|max| batches >= max) {
            bar.abandon();
            let done = keyring::rotation_jobs(&mut *db.pool().acquire().await?)
                .await?
                .into_iter()
                .find(|j| j.target_version == target)
                .map_or(0, |j| j.done);
            return Ok(Rotation::Paused {
                version: target,
                rewrapped: done,
            });
        }
    }
    bar.finish_and_clear();

    // Nothing is under an older version: finish and retire, in one transaction with the events.
    let mut tx = db.pool().begin().await.context("finishing the rotation")?;
    lock(&mut tx).await.context("taking the key lock")?;
    let now = crate::store::now();
    if remaining(&mut tx, &prefix).await? != 0 {
        bail!("data keys under an older version appeared while finishing; run `drawbridge keys rotate` again");
    }
    let done = keyring::rotation_jobs(&mut tx)
        .await
        .context("reading key jobs")?
        .into_iter()
        .find(|j| j.target_version == target)
        .map_or(0, |j| j.done);
    keyring::finish_rotation(&mut tx, target, &now)
        .await
        .context("finishing the rotation")?;
    audit::append(
        &mut tx,
        vault.audit_key(),
        &Event::new(actor, "keys.rotate.finish")
            .detail("version", target)
            // Grouped by thousands: the trail refuses long digit runs in details.
            .detail("rewrapped", grouped(done)),
        &now,
    )
    .await
    .map_err(|e| anyhow::anyhow!("recording the rotation in the audit trail: {e}"))?;
    let mut retired = Vec::new();
    for version in older {
        if keyring::retire_master(&mut tx, version, &now)
            .await
            .context("retiring the old master key version")?
        {
            audit::append(
                &mut tx,
                vault.audit_key(),
                &Event::new(actor, "keys.retire").detail("version", version),
                &now,
            )
            .await
            .map_err(|e| anyhow::anyhow!("recording the retirement in the audit trail: {e}"))?;
            retired.push(version);
        }
    }
    tx.commit().await.context("finishing the rotation")?;
    Ok(Rotation::Finished {
        version: target,
        rewrapped: done,
        retired,
    })
}

/// `1234567` as `1,234,567`.
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// Contacts whose data key is wrapped under a version other than the one `prefix` names.
async fn remaining(conn: &mut sqlx::AnyConnection, prefix: &[u8; 4]) -> anyhow::Result<i64> {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM contact WHERE data_key_wrapped IS NOT NULL \
         AND length(data_key_wrapped) > 0 AND substr(data_key_wrapped, 1, 4) <> $1",
    )
    .bind(prefix.to_vec())
    .fetch_one(conn)
    .await
    .context("counting data keys under older versions")
}

fn progress_bar(visible: bool, total: i64, what: &str) -> indicatif::ProgressBar {
    let total = u64::try_from(total).unwrap_or(0);
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{what} {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, {{eta}} left)"
    )) {
        bar.set_style(style);
    }
    bar
}

/// `drawbridge keys status`: prints [`Status`] to `out`.
///
/// # Errors
/// Database errors.
pub async fn status_command(settings: &Settings, out: &mut impl Write) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    let result = status(&db).await;
    db.close().await;
    write!(out, "{}", result?).context("writing the status")?;
    Ok(())
}

/// `drawbridge keys rotate`: opens the vault with the configured keys (registering the new
/// version if no instance has yet), rotates, and prints the outcome to `out`.
///
/// # Errors
/// Key configuration, database or re-wrap errors; see [`open_vault`] and [`rotate`].
pub async fn rotate_command(
    settings: &Settings,
    options: &RotateOptions,
    operator: &str,
    out: &mut impl Write,
) -> anyhow::Result<Rotation> {
    let db = connect(settings).await?;
    let result = async {
        let (vault, _) = open_vault(settings, &db, Actor::Cli(operator)).await?;
        rotate(&db, &vault, Actor::Cli(operator), options).await
    }
    .await;
    db.close().await;
    let outcome = result?;
    match &outcome {
        Rotation::Finished {
            version,
            rewrapped,
            retired,
        } => {
            writeln!(
                out,
                "rotation to master key v{version} finished: {rewrapped} data keys re-wrapped"
            )?;
            for old in retired {
                writeln!(
                    out,
                    "master key v{old} retired: nothing uses it any more; remove it from the configuration"
                )?;
            }
        }
        Rotation::Paused { version, rewrapped } => writeln!(
            out,
            "rotation to master key v{version} paused after the batch limit: {rewrapped} data keys \
             re-wrapped so far; run `drawbridge keys rotate` again to continue"
        )?,
        Rotation::NothingToDo { version } => writeln!(
            out,
            "nothing to rotate: every data key is under master key v{version} and no older version \
             is in use. To rotate, configure a new key with master_key_version {} and the current \
             one as previous_master_key (see README, Keys)",
            version + 1
        )?,
    }
    Ok(outcome)
}

async fn connect(settings: &Settings) -> anyhow::Result<Db> {
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create data_dir {}", settings.data_dir.display()))?;
    }
    let db = Db::connect_lazy(&settings.database_url())?;
    db.migrate().await?;
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn counts_are_grouped_for_the_audit_trail() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(10_000), "10,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(-1000), "-1,000");
    }
}
