//! `drawbridge audit verify [--anchor FILE]`: checks the whole audit trail and says whether it is
//! intact; with an anchor kept outside the database, also that the trail was not rolled back.
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
/// With `anchor` (a file written by `drawbridge audit anchor` and kept outside the database), a
/// second line says whether the trail still holds the anchor's head: `anchor of T (head #N):
/// consistent`, or that its signature does not verify, or that the trail was rolled back past it
/// (the newest events deleted and the head moved back, which the chain alone cannot show).
///
/// Returns `Ok(true)` when the trail is intact (and consistent with the anchor) and `Ok(false)`
/// when it is not; the caller exits 0 or 1 accordingly.
///
/// # Errors
/// No master key, a master key other than the database's, an unreachable database or a failed
/// migration, an anchor file that cannot be read or is not an anchor: the trail could not be
/// checked at all, which is neither intact nor broken.
pub async fn verify_command(
    settings: &Settings,
    anchor: Option<&std::path::Path>,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let anchor = anchor
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the anchor {}", path.display()))?;
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("{} is not an anchor (JSON)", path.display()))
        })
        .transpose()?;
    require_key(settings)?;
    let db = Db::connect_lazy(&settings.database_url())?;
    let result = check(&db, settings, anchor.as_ref(), out).await;
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

async fn check(
    db: &Db,
    settings: &Settings,
    anchor: Option<&serde_json::Value>,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    use super::prune::AnchorCheck;
    let vault = open_checked(db, settings).await?;
    let report = super::verify(db, vault.audit_key())
        .await
        .context("reading the audit trail")?;
    writeln!(out, "{report}").context("writing the result")?;
    let Some(anchor) = anchor else {
        return Ok(report.is_intact());
    };
    let found = super::prune::check_anchor(db, vault.audit_key(), anchor)
        .await
        .context("reading the audit trail")?;
    let head = anchor["head"]["seq"].as_i64().unwrap_or(0);
    let exported = anchor["exported_at"].as_str().unwrap_or("?");
    let consistent = match found {
        AnchorCheck::Malformed => bail!("the anchor file is not an audit anchor"),
        AnchorCheck::Consistent => {
            writeln!(out, "anchor of {exported} (head #{head}): consistent")?;
            true
        }
        AnchorCheck::BadSignature => {
            writeln!(
                out,
                "anchor of {exported} (head #{head}): its signature does not verify (edited, \
                 forged, or made with another key)"
            )?;
            false
        }
        AnchorCheck::RolledBack { seq } => {
            writeln!(
                out,
                "anchor of {exported} (head #{head}): the trail no longer holds event #{seq} as \
                 anchored and no checkpoint covers it: events were deleted and the head rolled back"
            )?;
            false
        }
    };
    Ok(report.is_intact() && consistent)
}
