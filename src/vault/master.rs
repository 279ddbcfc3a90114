//! Loading (or, in development, generating) the master key.

use crate::config::{MasterKeySource, Mode, Settings};
use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// File name of the master key a development `serve` generates in the data directory.
pub const DEVELOPMENT_KEY_FILE: &str = "master.key";

/// The development key file of master key `version`: [`DEVELOPMENT_KEY_FILE`] for version 1,
/// `master.vN.key` for later versions.
#[must_use]
pub fn development_key_file(version: u32) -> String {
    if version <= 1 {
        DEVELOPMENT_KEY_FILE.to_owned()
    } else {
        format!("master.v{version}.key")
    }
}

/// The 32-byte master key (key-encryption key material). Zeroized on drop; never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// Wraps raw key bytes (tests and key generation).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key from the operating system's RNG (256 bits).
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = [0_u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses the base64 text form (standard alphabet, padding optional, surrounding white space ignored).
    ///
    /// # Errors
    /// When the text is not base64 of exactly 32 bytes. The message never contains the text.
    pub fn from_base64(text: &SecretString) -> anyhow::Result<Self> {
        let trimmed = text.expose_secret().trim();
        let decoded = Zeroizing::new(
            STANDARD
                .decode(trimmed)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
                .map_err(|_| anyhow::anyhow!("is not valid base64"))?,
        );
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
            anyhow::anyhow!("must decode to exactly 32 bytes, not {}", decoded.len())
        })?;
        Ok(Self(bytes))
    }

    fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0))
    }
}

impl ExposeSecret<[u8; 32]> for MasterKey {
    fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(••••)")
    }
}

/// Where the master key came from, for the start-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeyOrigin {
    /// `master_key` in the configuration or `DRAWBRIDGE_MASTER_KEY`.
    Inline,
    /// `master_key_file`.
    File(PathBuf),
    /// The development key file in the data directory, made by an earlier start.
    DevelopmentFile(PathBuf),
    /// Generated just now into the data directory (development mode only).
    Generated(PathBuf),
}

/// Loads the master key the settings name. In development mode with none configured, uses the
/// key file in the data directory, generating it (mode 0600) on first use. In production mode a
/// configured key is required.
///
/// # Errors
/// When no key is configured in production, or the configured key cannot be read or parsed.
pub fn load_master_key(settings: &Settings) -> anyhow::Result<(MasterKey, MasterKeyOrigin)> {
    match &settings.master_key {
        MasterKeySource::Inline(text) => {
            let key = MasterKey::from_base64(text).context("master_key (DRAWBRIDGE_MASTER_KEY)")?;
            Ok((key, MasterKeyOrigin::Inline))
        }
        MasterKeySource::File(path) => {
            let key = read_key_file(path)
                .with_context(|| format!("master_key_file {}", path.display()))?;
            Ok((key, MasterKeyOrigin::File(path.clone())))
        }
        MasterKeySource::None if settings.mode == Mode::Production => bail!(
            "production mode requires a master key: set master_key_file (or DRAWBRIDGE_MASTER_KEY) \
             to 32 random bytes in base64, e.g. the output of `head -c32 /dev/urandom | base64`"
        ),
        MasterKeySource::None => {
            let path = settings
                .data_dir
                .join(development_key_file(settings.master_key_version));
            if path.exists() {
                let key = read_key_file(&path)
                    .with_context(|| format!("development master key {}", path.display()))?;
                Ok((key, MasterKeyOrigin::DevelopmentFile(path)))
            } else {
                let key = MasterKey::generate();
                write_secret_file(&path, key.to_base64().as_bytes()).with_context(|| {
                    format!("writing development master key {}", path.display())
                })?;
                Ok((key, MasterKeyOrigin::Generated(path)))
            }
        }
    }
}

/// Loads the previous master key (version `master_key_version - 1`) the settings name, if any. In
/// development with none configured, the previous version's key file in the data directory is
/// used when it exists (never generated: a new key could open nothing).
///
/// # Errors
/// When the configured key cannot be read or parsed.
pub fn load_previous_master_key(settings: &Settings) -> anyhow::Result<Option<MasterKey>> {
    match &settings.previous_master_key {
        MasterKeySource::Inline(text) => MasterKey::from_base64(text)
            .context("previous_master_key (DRAWBRIDGE_PREVIOUS_MASTER_KEY)")
            .map(Some),
        MasterKeySource::File(path) => read_key_file(path)
            .with_context(|| format!("previous_master_key_file {}", path.display()))
            .map(Some),
        MasterKeySource::None
            if settings.mode == Mode::Development && settings.master_key_version > 1 =>
        {
            let path = settings
                .data_dir
                .join(development_key_file(settings.master_key_version - 1));
            if path.exists() {
                read_key_file(&path)
                    .with_context(|| format!("development master key {}", path.display()))
                    .map(Some)
            } else {
                Ok(None)
            }
        }
        MasterKeySource::None => Ok(None),
    }
}

/// Generates a new master key into `path` (base64, mode 0600), refusing to overwrite a file.
///
/// # Errors
/// When the file exists or cannot be written.
pub fn generate_key_file(path: &Path) -> std::io::Result<()> {
    write_secret_file(path, MasterKey::generate().to_base64().as_bytes())
}

fn read_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    let text = SecretString::from(std::fs::read_to_string(path).context("cannot read the file")?);
    MasterKey::from_base64(&text)
}

/// Creates `path` with owner-only permissions (0600) and writes `contents`. Refuses to overwrite.
///
/// # Errors
/// When the file exists or cannot be written.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_forms() {
        let text = SecretString::from(STANDARD.encode([1_u8; 32]));
        let key = MasterKey::from_base64(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.0, [1; 32]);
        let padless =
            SecretString::from(base64::engine::general_purpose::STANDARD_NO_PAD.encode([2_u8; 32]));
        assert_eq!(
            MasterKey::from_base64(&padless).map(|k| k.0).ok(),
            Some([2; 32])
        );
        let short = SecretString::from(STANDARD.encode([1_u8; 16]));
        let err = MasterKey::from_base64(&short)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("32 bytes"), "{err}");
        let junk = SecretString::from("not base64 at all!".to_owned());
        let err = MasterKey::from_base64(&junk)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("base64") && !err.contains("not base64 at all"),
            "{err}"
        );
    }
}
