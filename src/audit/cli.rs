//! `drawbridge audit verify`: checks the whole audit trail and says whether it is intact.

use crate::config::{MasterKeySource, Mode, Settings};
use crate::store::{keyring, Db};
use crate::vault::{self, Vault, MASTER_KEY_VERSION};
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
        && !settings.data_dir.join(vault::DEVELOPMENT_KEY_FILE).exists()
    {
        bail!(
            "no master key: set master_key_file (or DRAWBRIDGE_MASTER_KEY), or run where the \
             data directory holds {} ({})",
            vault::DEVELOPMENT_KEY_FILE,
            settings.data_dir.display()
        );
    }
    let (master, _origin) = vault::load_master_key(settings)?;
    let vault = Vault::new(&master);
    drop(master);

    let db = Db::connect_lazy(&settings.database_url())?;
    let result = check(&db, &vault, out).await;
    db.close().await;
    result
}

async fn check(db: &Db, vault: &Vault, out: &mut impl Write) -> anyhow::Result<bool> {
    db.migrate().await?;
    {
        let mut conn = db
            .pool()
            .acquire()
            .await
            .context("connecting to the database")?;
        // No check value yet means nothing was ever written under any key; any rows present
        // then fail verification on their own.
        if let Some(stored) = keyring::check_value(&mut conn, MASTER_KEY_VERSION)
            .await
            .context("reading the key check")?
        {
            if !vault.key_check_matches(&stored) {
                bail!(
                    "the configured master key is not the key this database was written with, so \
                     the audit trail cannot be checked; use the original key"
                );
            }
        }
    }
    let report = super::verify(db, vault.audit_key())
        .await
        .context("reading the audit trail")?;
    writeln!(out, "{report}").context("writing the result")?;
    Ok(report.is_intact())
}
