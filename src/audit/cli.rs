//! `drawbridge audit verify`: checks the whole audit trail and says whether it is intact.
//! `drawbridge audit prune [--before TIME]`: deletes events older than the retention (default
//! seven years, [`super::prune::default_cutoff`]) leaving a signed checkpoint.
//! `drawbridge audit anchor`: prints the signed head and checkpoint, to keep outside the database.

use crate::config::{MasterKeySource, Mode, Settings};
use crate::store::Db;
use crate::vault::{self, Vault};
use anyhow::{bail, Context};
use std::io::Write;

/// Loads the master key as `serve` does (but never generates one: a new key could not verify
/// anything already written), connects to and migrates the database, checks that the key is the
/// one the database was written with, walks the audit chain and writes one line to `out`:
/// `audit trail intact: N events` or `audit trail broken at event #S: reason`.
///
/// Returns `Ok(true)` when the trail is intact and `Ok(false)` when it is broken; the caller exits
/// 0 or 1 accordingly.
///
/// # Errors
/// No master key, a master key other than the database's, an unreachable database or a failed
/// migration: the trail could not be checked at all, which is neither intact nor broken.
pub async fn verify_command(settings: &Settings, out: &mut impl Write) -> anyhow::Result<bool> {
    require_key(settings)?;
    let db = Db::connect_lazy(&settings.database_url())?;
    let result = check(&db, settings, out).await;
    db.close().await;
    result
}

/// The operator name CLI events are recorded under.
const OPERATOR: &str = "audit-cli";

/// `drawbridge audit prune`: deletes the events before `before` (RFC 3339; default: seven years
/// ago) and writes one line: how many were deleted and where the trail now starts. Each batch is
/// recorded as `audit.prune` by the CLI operator `audit-cli`.
///
/// # Errors
/// As [`verify_command`]; a malformed or future `before`; a broken trail (nothing is pruned).
pub async fn prune_command(
    settings: &Settings,
    before: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let clock = crate::clock::Clock::system();
    let cutoff = match before {
        Some(text) => crate::store::parse_timestamp(text)
            .with_context(|| "--before must be an RFC 3339 time, e.g. 2019-01-01T00:00:00Z")?,
        None => super::prune::default_cutoff(clock.now()),
    };
    require_key(settings)?;
    let db = Db::connect_lazy(&settings.database_url())?;
    let result = async {
        let vault = open_checked(&db, settings).await?;
        let pruned = super::prune::prune(
            &db,
            vault.audit_key(),
            cutoff,
            &clock,
            super::Actor::Cli(OPERATOR),
        )
        .await?;
        match &pruned.checkpoint {
            Some(c) => writeln!(
                out,
                "pruned {} events before {}; the trail starts after event #{} ({} pruned in all)",
                pruned.deleted,
                crate::store::timestamp(cutoff),
                c.last_seq,
                c.pruned
            )?,
            None => writeln!(
                out,
                "pruned 0 events before {}",
                crate::store::timestamp(cutoff)
            )?,
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    db.close().await;
    result
}

/// `drawbridge audit anchor`: prints [`super::prune::anchor`] as JSON (recorded as
/// `audit.export` by `audit-cli`).
///
/// # Errors
/// As [`verify_command`].
pub async fn anchor_command(settings: &Settings, out: &mut impl Write) -> anyhow::Result<()> {
    require_key(settings)?;
    let db = Db::connect_lazy(&settings.database_url())?;
    let result = async {
        let vault = open_checked(&db, settings).await?;
        let clock = crate::clock::Clock::system();
        let doc = super::prune::anchor(&db, vault.audit_key(), &clock).await?;
        let mut tx = db.pool().begin().await?;
        let event = super::Event::new(super::Actor::Cli(OPERATOR), "audit.export")
            .detail("format", "anchor");
        super::append(&mut tx, vault.audit_key(), &event, &clock.timestamp()).await?;
        tx.commit().await?;
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    db.close().await;
    result
}

/// Refuses before anything is opened when there is no master key at all (a development data
/// directory without its key file): a new key could verify nothing already written.
fn require_key(settings: &Settings) -> anyhow::Result<()> {
    if matches!(settings.master_key, MasterKeySource::None)
        && settings.mode == Mode::Development
        && !settings
            .data_dir
            .join(vault::development_key_file(settings.master_key_version))
            .exists()
    {
        bail!(
            "no master key: set master_key_file (or DRAWBRIDGE_MASTER_KEY), or run where the \
             data directory holds {} ({})",
            vault::development_key_file(settings.master_key_version),
            settings.data_dir.display()
        );
    }
    Ok(())
}

/// Migrates, then opens the vault as `serve` does: every configured master key version must match
/// its check value. Rows carry the audit key version they were made under, and key rotation keeps
/// that key (see `crate::keys`), so rows from before a rotation verify.
async fn open_checked(db: &Db, settings: &Settings) -> anyhow::Result<Vault> {
    db.migrate().await?;
    let (vault, _) = crate::keys::open_vault(settings, db, super::Actor::System)
        .await
        .map_err(|e| e.context("the audit trail cannot be checked with the configured keys"))?;
    Ok(vault)
}

async fn check(db: &Db, settings: &Settings, out: &mut impl Write) -> anyhow::Result<bool> {
    let vault = open_checked(db, settings).await?;
    let report = super::verify(db, vault.audit_key())
        .await
        .context("reading the audit trail")?;
    writeln!(out, "{report}").context("writing the result")?;
    Ok(report.is_intact())
}
