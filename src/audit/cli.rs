//! `drawbridge audit verify`: checks the whole audit trail and says whether it is intact.

use crate::config::{MasterKeySource, Mode, Settings};
use crate::store::Db;
use crate::vault;
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
    let db = Db::connect_lazy(&settings.database_url())?;
    let result = check(&db, settings, out).await;
    db.close().await;
    result
}

async fn check(db: &Db, settings: &Settings, out: &mut impl Write) -> anyhow::Result<bool> {
    db.migrate().await?;
    // Every configured key must match its version's check value: a key other than the
    // database's could verify nothing. Rows carry the audit key version they were made under;
    // key rotation keeps that key (see `crate::keys`), so rows from before a rotation verify.
    let (vault, _) = crate::keys::open_vault(settings, db, crate::audit::Actor::System)
        .await
        .map_err(|e| e.context("the audit trail cannot be checked with the configured keys"))?;
    let report = super::verify(db, vault.audit_key())
        .await
        .context("reading the audit trail")?;
    writeln!(out, "{report}").context("writing the result")?;
    Ok(report.is_intact())
}
