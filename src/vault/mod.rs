//! The vault: every secret Drawbridge keeps at rest passes through here.
//!
//! # Keys
//!
//! - The **master key** (32 bytes, from configuration or, in development, a generated file) is
//!   never used directly and never stored in the database. Purpose keys are derived from it with
//!   HKDF-SHA256, one per purpose, each with a version so that rotation is possible:
//!   - the **KEK** wraps contacts' data keys;
//!   - the **phone index key** computes blind indexes of phone numbers (later index key
//!     generations, which `drawbridge keys reindex` adds, are random: see [`index`]);
//!   - the **key-check key** proves at start-up that the configured master key is the one the
//!     database was written under (see [`Vault::key_check`]);
//!   - the **audit key** chains the audit trail's rows together (see [`AuditKey`] and
//!     `crate::audit`);
//!   - the **staff key** seals what the console keeps about its own users and settings (staff
//!     e-mail addresses, one-time-code secrets, canned replies): none of it belongs to a contact,
//!     so it is not under a contact's data key;
//!   - the **e-mail index key** and **subject index key** compute blind indexes of staff e-mail
//!     addresses and single-sign-on subjects, for sign-in look-ups;
//!   - the **session key** derives each console session's CSRF token and seals short-lived
//!     browser state (a single-sign-on attempt in flight) into cookies;
//!   - the **secure-link key** MACs the one-time codes texted to customers (a six-digit code's
//!     plain SHA-256 would fall to a million guesses) and derives the secure page's CSRF tokens.
//! - A **data key** (DEK) per contact, random, stored wrapped by the KEK. Destroying it makes every
//!   ciphertext of that contact unreadable (crypto-shredding).
//!
//! # Sealed format
//!
//! `key version (u32, big-endian) || nonce (96 bits, fresh from the OS RNG) || AES-256-GCM ciphertext and tag`.
//! The associated data ([`Aad`]) names the table, column and row a ciphertext belongs to, so a
//! ciphertext copied to another row or column fails to open.
//!
//! Key material lives in [`SecretKey`], which is zeroized on drop; AES key schedules are zeroized
//! by the `aes` crate's `zeroize` feature.

mod index;
mod master;

pub use index::{BlindIndex, IndexGeneration, IndexKeys, IndexKind};

pub use master::{
    development_key_file, generate_key_file, load_master_key, load_previous_master_key,
    write_secret_file, MasterKey, MasterKeyOrigin, DEVELOPMENT_KEY_FILE,
};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::Aes256Gcm;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::Sha256;
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Bytes of the key-version prefix of a sealed value.
const VERSION_LEN: usize = 4;
/// Bytes of an AES-GCM nonce (96 bits, the size GCM is specified for).
const NONCE_LEN: usize = 12;
/// Bytes of an AES-GCM tag.
const TAG_LEN: usize = 16;

/// The version of the purpose keys derived from the configured master key. Rotation (a later
/// issue) introduces version 2 beside it.
pub const MASTER_KEY_VERSION: u32 = 1;

/// Version of freshly made contact data keys.
const DATA_KEY_VERSION: u32 = 1;

/// A 256-bit symmetric key with the version it is stored under. Zeroized on drop; its `Debug`
/// shows the version only.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey {
    #[zeroize(skip)]
    version: u32,
    bytes: [u8; 32],
}

impl SecretKey {
    /// A fresh random key (256 bits from the operating system's RNG).
    #[must_use]
    pub fn random(version: u32) -> Self {
        let mut bytes = [0_u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self { version, bytes }
    }

    fn from_bytes(version: u32, bytes: &[u8]) -> Result<Self, VaultError> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| VaultError::Malformed)?;
        Ok(Self { version, bytes })
    }

    /// The version this key is stored under.
    #[must_use]
    pub fn version(&self) -> u32 {
        self.version
    }

    /// HMAC-SHA256 of `message` under this key.
    #[must_use]
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = hmac_with(self);
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.bytes.into())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(v{}, ••••)", self.version)
    }
}

/// Associated data for a sealed value: the place it belongs. A value sealed for one
/// `(table, column, row)` does not open for another.
#[derive(Debug, Clone, Copy)]
pub struct Aad<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row_id: &'a str,
}

impl<'a> Aad<'a> {
    #[must_use]
    pub fn new(table: &'a str, column: &'a str, row_id: &'a str) -> Self {
        Self {
            table,
            column,
            row_id,
        }
    }

    fn to_bytes(self) -> Vec<u8> {
        // NUL separators: none of the parts may contain NUL, so the encoding is unambiguous.
        let mut out =
            Vec::with_capacity(16 + self.table.len() + self.column.len() + self.row_id.len());
        out.extend_from_slice(b"drawbridge/v1\0");
        for part in [self.table, self.column, self.row_id] {
            out.extend_from_slice(part.as_bytes());
            out.push(0);
        }
        out
    }
}

/// What can go wrong opening a sealed value. Carries no key or plaintext material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("sealed value is truncated or malformed")]
    Malformed,
    #[error(
        "sealed value was made with key version {found}, but the key offered is version {expected}"
    )]
    WrongKeyVersion { found: u32, expected: u32 },
    #[error("sealed value failed authentication (wrong key, wrong place, or tampered)")]
    Authentication,
    #[error("the value could not be sealed")]
    Seal,
}

/// Seals `plaintext` under `key` for the place `aad` names.
///
/// # Errors
/// [`VaultError::Seal`] if AES-GCM refuses the input, which happens only beyond 64 GiB; callers
/// treat it as a failure to store, never as an empty value.
pub fn seal(key: &SecretKey, plaintext: &[u8], aad: Aad<'_>) -> Result<Vec<u8>, VaultError> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let aad = aad.to_bytes();
    let ciphertext = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| VaultError::Seal)?;
    let mut out = Vec::with_capacity(VERSION_LEN + NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&key.version.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens a value made by [`seal`] with the same key and associated data.
///
/// # Errors
/// [`VaultError`] when the value is malformed, was sealed under another key version, or fails
/// authentication.
pub fn open(
    key: &SecretKey,
    sealed: &[u8],
    aad: Aad<'_>,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if sealed.len() < VERSION_LEN + NONCE_LEN + TAG_LEN {
        return Err(VaultError::Malformed);
    }
    let (version, rest) = sealed.split_at(VERSION_LEN);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let version = u32::from_be_bytes(version.try_into().map_err(|_| VaultError::Malformed)?);
    if version != key.version {
        return Err(VaultError::WrongKeyVersion {
            found: version,
            expected: key.version,
        });
    }
    let aad = aad.to_bytes();
    key.cipher()
        .decrypt(
            nonce.into(),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Authentication)
}

/// The key that chains the audit trail: each audit row carries an HMAC-SHA256 under it of the
/// previous row's hash and the row itself (the encoding is `crate::audit`'s). Opaque: it computes
/// and checks MACs but never hands out its bytes, and its `Debug` shows the version only.
#[derive(Clone)]
pub struct AuditKey(SecretKey);

impl AuditKey {
    /// The version of the master key this key was derived from; stored in every audit row so
    /// that rows made before a rotation can still be checked.
    #[must_use]
    pub fn version(&self) -> u32 {
        self.0.version
    }

    /// HMAC-SHA256 of `message` under this key.
    #[must_use]
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        self.0.mac(message)
    }

    /// Whether `tag` is the HMAC-SHA256 of `message` under this key, compared in constant time.
    #[must_use]
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        let mut mac = hmac_with(&self.0);
        mac.update(message);
        mac.verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditKey(v{}, ••••)", self.0.version)
    }
}

fn hmac_with(key: &SecretKey) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(&key.bytes)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// The purpose keys of a database and the key-encryption keys of the master key versions this
/// process holds. Cheap to share behind an `Arc`.
///
/// Purpose keys (blind indexes, audit chain, staff seal, session, secure link) belong to the
/// database, not to a master key version: they are derived once from the database's first master
/// key and, whenever a newer master key version is registered, stored wrapped under it
/// (`keyring.purpose_keys_wrapped`, see `crate::keys`). Retiring an old master key version
/// therefore changes none of them: blind indexes still match, staff seals still open, and audit
/// rows keep verifying under the audit key version they carry. Only contacts' data keys are
/// wrapped by a master-version-specific KEK, and `drawbridge keys rotate` re-wraps those.
pub struct Vault {
    /// One KEK per master key version held, the current (newest) first. New data keys are wrapped
    /// under the first; a wrapped key is opened with the KEK its version prefix names.
    keks: Vec<SecretKey>,
    /// The blind-index key generations. Swapped whole when a re-index adds a generation while
    /// this process runs (`crate::keys::index::refresh`).
    index: arc_swap::ArcSwap<IndexKeys>,
    /// The current master key's check key.
    key_check: SecretKey,
    audit: AuditKey,
    staff: SecretKey,
    session: SecretKey,
    secure_link: SecretKey,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("kek_versions", &self.kek_versions())
            .field("purpose_key_version", &self.audit.version())
            .field("index_generation", &self.index_generation())
            .finish_non_exhaustive()
    }
}

/// HKDF-SHA256 of the master key for `purpose`, labelled with the master key's version.
fn derive(master: &MasterKey, version: u32, purpose: &str) -> SecretKey {
    let hk = hkdf::Hkdf::<Sha256>::new(None, master.expose_secret());
    let mut okm = Zeroizing::new([0_u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit of 255 × 32; expand cannot fail here.
    let _ = hk.expand(
        format!("drawbridge/v{version}/{purpose}").as_bytes(),
        okm.as_mut(),
    );
    SecretKey {
        version,
        bytes: *okm,
    }
}

/// The purpose keys, in the order they are serialized for wrapping.
const PURPOSES: [&str; 7] = [
    "blind-index/phone",
    "audit-chain",
    "staff/seal",
    "blind-index/email",
    "blind-index/oidc-subject",
    "console/session",
    "secure-link",
];

/// Serialized purpose keys: a format byte, the version (u32 big-endian), then 32 bytes per
/// purpose in [`PURPOSES`] order. Format 2 (written once a re-index has added a blind-index
/// generation) follows that with each later generation: its number (u32 big-endian) and its
/// phone, e-mail and subject index keys, 32 bytes each.
const PURPOSE_KEYS_FORMAT: u8 = 1;
const PURPOSE_KEYS_FORMAT_WITH_INDEX_GENERATIONS: u8 = 2;
const INDEX_GENERATION_LEN: usize = 4 + 3 * 32;

/// One master key version's keys: what the vault and `crate::keys` need of it.
pub struct MasterSlot {
    version: u32,
    kek: SecretKey,
    key_check: SecretKey,
}

impl fmt::Debug for MasterSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterSlot(v{}, ••••)", self.version)
    }
}

impl MasterSlot {
    /// Derives master key `version`'s KEK and check key.
    #[must_use]
    pub fn new(master: &MasterKey, version: u32) -> Self {
        Self {
            version,
            kek: derive(master, version, "kek"),
            key_check: derive(master, version, "key-check"),
        }
    }

    /// The master key version.
    #[must_use]
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The check value stored in the keyring for this version (reveals nothing about the key).
    #[must_use]
    pub fn check_value(&self) -> Vec<u8> {
        let mut mac = hmac_with(&self.key_check);
        mac.update(b"drawbridge key check");
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `stored` is this version's check value, compared in constant time.
    #[must_use]
    pub fn check_matches(&self, stored: &[u8]) -> bool {
        let mut mac = hmac_with(&self.key_check);
        mac.update(b"drawbridge key check");
        mac.verify_slice(stored).is_ok()
    }

    fn purpose_aad(&self) -> String {
        format!("master-v{}", self.version)
    }

    /// Wraps `purposes` under this version's KEK, for the keyring row of this version.
    ///
    /// # Errors
    /// See [`seal`].
    pub fn wrap_purpose_keys(&self, purposes: &PurposeKeys) -> Result<Vec<u8>, VaultError> {
        let mut plain = Zeroizing::new(Vec::with_capacity(
            5 + 32 * PURPOSES.len() + INDEX_GENERATION_LEN * purposes.later_index.len(),
        ));
        // Format 1 while there is no later generation: what a database that never re-indexed
        // stores stays readable by the releases before re-indexing existed.
        plain.push(if purposes.later_index.is_empty() {
            PURPOSE_KEYS_FORMAT
        } else {
            PURPOSE_KEYS_FORMAT_WITH_INDEX_GENERATIONS
        });
        plain.extend_from_slice(&purposes.version.to_be_bytes());
        for key in purposes.keys() {
            plain.extend_from_slice(&key.bytes);
        }
        for generation in &purposes.later_index {
            plain.extend_from_slice(&generation.generation.to_be_bytes());
            for key in generation.keys() {
                plain.extend_from_slice(&key.bytes);
            }
        }
        seal(
            &self.kek,
            &plain,
            Aad::new("keyring", "purpose_keys_wrapped", &self.purpose_aad()),
        )
    }

    /// Opens purpose keys made by [`MasterSlot::wrap_purpose_keys`] under this version.
    ///
    /// # Errors
    /// [`VaultError`] when the value is malformed or was not wrapped under this version.
    pub fn unwrap_purpose_keys(&self, wrapped: &[u8]) -> Result<PurposeKeys, VaultError> {
        unwrap_purposes(&self.kek, self.version, wrapped)
    }
}

/// Opens purpose keys wrapped under master key `version`'s KEK (see
/// [`MasterSlot::wrap_purpose_keys`]).
fn unwrap_purposes(
    kek: &SecretKey,
    version: u32,
    wrapped: &[u8],
) -> Result<PurposeKeys, VaultError> {
    {
        let plain = open(
            kek,
            wrapped,
            Aad::new(
                "keyring",
                "purpose_keys_wrapped",
                &format!("master-v{version}"),
            ),
        )?;
        let fixed = 5 + 32 * PURPOSES.len();
        let later_len = plain
            .len()
            .checked_sub(fixed)
            .ok_or(VaultError::Malformed)?;
        match plain.first() {
            Some(&PURPOSE_KEYS_FORMAT) if later_len == 0 => {}
            Some(&PURPOSE_KEYS_FORMAT_WITH_INDEX_GENERATIONS)
                if later_len > 0 && later_len.is_multiple_of(INDEX_GENERATION_LEN) => {}
            _ => return Err(VaultError::Malformed),
        }
        let version = u32::from_be_bytes(
            plain
                .get(1..5)
                .and_then(|b| b.try_into().ok())
                .ok_or(VaultError::Malformed)?,
        );
        let mut keys = plain
            .get(5..fixed)
            .ok_or(VaultError::Malformed)?
            .chunks_exact(32)
            .map(|chunk| SecretKey::from_bytes(version, chunk));
        let mut next = || keys.next().ok_or(VaultError::Malformed)?;
        let mut purposes = PurposeKeys {
            version,
            phone_index: next()?,
            audit: next()?,
            staff: next()?,
            email_index: next()?,
            subject_index: next()?,
            session: next()?,
            secure_link: next()?,
            later_index: Vec::new(),
        };
        for chunk in plain
            .get(fixed..)
            .ok_or(VaultError::Malformed)?
            .chunks_exact(INDEX_GENERATION_LEN)
        {
            let generation = u32::from_be_bytes(
                chunk
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(VaultError::Malformed)?,
            );
            let key = |at: usize| {
                chunk
                    .get(at..at + 32)
                    .ok_or(VaultError::Malformed)
                    .and_then(|b| SecretKey::from_bytes(generation, b))
            };
            // Generations follow on from 1 without gaps.
            if generation != purposes.index_generation() + 1 {
                return Err(VaultError::Malformed);
            }
            purposes.later_index.push(IndexGeneration {
                generation,
                phone: key(4)?,
                email: key(36)?,
                subject: key(68)?,
            });
        }
        Ok(purposes)
    }
}

/// A database's purpose keys (see [`Vault`]), with the version they were made under.
#[derive(Clone)]
pub struct PurposeKeys {
    version: u32,
    phone_index: SecretKey,
    audit: SecretKey,
    staff: SecretKey,
    email_index: SecretKey,
    subject_index: SecretKey,
    session: SecretKey,
    secure_link: SecretKey,
    /// Blind-index generations after the first (whose keys are `phone_index`, `email_index` and
    /// `subject_index` above), oldest first.
    later_index: Vec<IndexGeneration>,
}

impl fmt::Debug for PurposeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PurposeKeys(v{}, ••••)", self.version)
    }
}

impl PurposeKeys {
    /// Derives the purpose keys from master key `version` (a database's first master key).
    #[must_use]
    pub fn derive(master: &MasterKey, version: u32) -> Self {
        Self {
            version,
            phone_index: derive(master, version, PURPOSES[0]),
            audit: derive(master, version, PURPOSES[1]),
            staff: derive(master, version, PURPOSES[2]),
            email_index: derive(master, version, PURPOSES[3]),
            subject_index: derive(master, version, PURPOSES[4]),
            session: derive(master, version, PURPOSES[5]),
            secure_link: derive(master, version, PURPOSES[6]),
            later_index: Vec::new(),
        }
    }

    /// The newest blind-index generation among these keys.
    #[must_use]
    pub fn index_generation(&self) -> u32 {
        self.later_index
            .last()
            .map_or(1, IndexGeneration::generation)
    }

    /// These keys with a new blind-index generation of fresh random keys, numbered after the
    /// newest.
    #[must_use]
    pub fn with_new_index_generation(&self) -> Self {
        let mut next = self.clone();
        next.later_index
            .push(IndexGeneration::random(self.index_generation() + 1));
        next
    }

    /// The blind-index keys of every generation these purpose keys hold.
    #[must_use]
    pub fn index_keys(&self) -> IndexKeys {
        IndexKeys::new(
            IndexGeneration {
                generation: 1,
                phone: self.phone_index.clone(),
                email: self.email_index.clone(),
                subject: self.subject_index.clone(),
            },
            &self.later_index,
        )
    }

    /// The version the purpose keys were made under (audit rows carry it).
    #[must_use]
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The audit-chain key among them.
    #[must_use]
    pub fn audit_key(&self) -> AuditKey {
        AuditKey(self.audit.clone())
    }

    fn keys(&self) -> [&SecretKey; 7] {
        [
            &self.phone_index,
            &self.audit,
            &self.staff,
            &self.email_index,
            &self.subject_index,
            &self.session,
            &self.secure_link,
        ]
    }

    /// Whether two sets hold the same keys (constant time per key).
    #[must_use]
    pub fn same_as(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.version == other.version
            && self
                .keys()
                .iter()
                .zip(other.keys())
                .all(|(a, b)| bool::from(a.bytes.ct_eq(&b.bytes)))
            && self.index_keys().same_as(&other.index_keys())
    }
}

impl Vault {
    /// Derives every key from one master key, as version 1 of a database that has never rotated
    /// (tests, and the keys a database's first master key version 1 gives).
    #[must_use]
    pub fn new(master: &MasterKey) -> Self {
        let slot = MasterSlot::new(master, MASTER_KEY_VERSION);
        Self::from_parts(PurposeKeys::derive(master, MASTER_KEY_VERSION), vec![slot])
    }

    /// A vault of these purpose keys and master key versions. The newest version is current.
    /// `slots` must not be empty: `crate::keys` builds it from at least the configured key.
    #[must_use]
    pub fn from_parts(purposes: PurposeKeys, mut slots: Vec<MasterSlot>) -> Self {
        slots.sort_by_key(|slot| std::cmp::Reverse(slot.version));
        let key_check = slots
            .first()
            .map_or_else(|| SecretKey::random(0), |slot| slot.key_check.clone());
        let index = arc_swap::ArcSwap::from_pointee(purposes.index_keys());
        let PurposeKeys {
            audit,
            staff,
            session,
            secure_link,
            ..
        } = purposes;
        Self {
            keks: slots.iter().map(|slot| slot.kek.clone()).collect(),
            index,
            key_check,
            audit: AuditKey(audit),
            staff,
            session,
            secure_link,
        }
    }

    /// The blind-index generation new rows are indexed under.
    #[must_use]
    pub fn index_generation(&self) -> u32 {
        self.index.load().current()
    }

    /// The blind-index keys as they are now.
    #[must_use]
    pub fn index_keys(&self) -> std::sync::Arc<IndexKeys> {
        self.index.load_full()
    }

    /// Opens the purpose keys stored wrapped under master key `version` (a keyring row) with the
    /// KEK of that version this vault holds.
    ///
    /// # Errors
    /// [`VaultError`] when this vault does not hold `version` or the value does not open.
    pub fn open_purpose_keys(
        &self,
        version: u32,
        wrapped: &[u8],
    ) -> Result<PurposeKeys, VaultError> {
        unwrap_purposes(self.kek(version)?, version, wrapped)
    }

    /// Starts indexing under `purposes`' blind-index generations if they go further than this
    /// vault's, keeping every other key; returns whether they did. The generations must be the
    /// database's (read from its keyring): only the index keys are taken from them.
    pub fn install_index_keys(&self, purposes: &PurposeKeys) -> bool {
        if purposes.index_generation() <= self.index_generation() {
            return false;
        }
        self.index.store(std::sync::Arc::new(purposes.index_keys()));
        true
    }

    /// The master key versions this vault holds, current first.
    #[must_use]
    pub fn kek_versions(&self) -> Vec<u32> {
        self.keks.iter().map(|k| k.version).collect()
    }

    /// The current master key version: new data keys are wrapped under it.
    #[must_use]
    pub fn current_version(&self) -> u32 {
        self.keks.first().map_or(0, |k| k.version)
    }

    fn kek(&self, version: u32) -> Result<&SecretKey, VaultError> {
        self.keks
            .iter()
            .find(|k| k.version == version)
            .ok_or(VaultError::WrongKeyVersion {
                found: version,
                expected: self.current_version(),
            })
    }

    /// The master key version a wrapped data key (or any sealed value) was made under.
    #[must_use]
    pub fn sealed_version(sealed: &[u8]) -> Option<u32> {
        sealed
            .get(..VERSION_LEN)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    }

    /// Re-wraps a contact's data key under the current master key version. `Ok(None)` when it
    /// already is: re-running a rotation never wraps twice.
    ///
    /// # Errors
    /// See [`Vault::unwrap_data_key`] and [`seal`].
    pub fn rewrap_data_key(
        &self,
        wrapped: &[u8],
        contact_id: &str,
    ) -> Result<Option<Vec<u8>>, VaultError> {
        if Self::sealed_version(wrapped) == Some(self.current_version()) {
            return Ok(None);
        }
        let dek = self.unwrap_data_key(wrapped, contact_id)?;
        self.wrap_data_key(&dek, contact_id).map(Some)
    }

    /// A new random data key for a contact.
    #[must_use]
    pub fn new_data_key(&self) -> SecretKey {
        SecretKey::random(DATA_KEY_VERSION)
    }

    /// Wraps a contact's data key under the KEK, bound to that contact's row. The data key's own
    /// version is sealed with it.
    ///
    /// # Errors
    /// See [`seal`].
    pub fn wrap_data_key(&self, dek: &SecretKey, contact_id: &str) -> Result<Vec<u8>, VaultError> {
        let mut plain = Zeroizing::new(Vec::with_capacity(36));
        plain.extend_from_slice(&dek.version.to_be_bytes());
        plain.extend_from_slice(&dek.bytes);
        let kek = self.keks.first().ok_or(VaultError::Seal)?;
        seal(
            kek,
            &plain,
            Aad::new("contact", "data_key_wrapped", contact_id),
        )
    }

    /// Unwraps a data key made by [`Vault::wrap_data_key`] for the same contact.
    ///
    /// # Errors
    /// [`VaultError`] when the wrapped key is malformed, not for this contact, or under another KEK.
    pub fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        contact_id: &str,
    ) -> Result<SecretKey, VaultError> {
        let kek = self.kek(Self::sealed_version(wrapped).ok_or(VaultError::Malformed)?)?;
        let plain = open(
            kek,
            wrapped,
            Aad::new("contact", "data_key_wrapped", contact_id),
        )?;
        let (version, bytes) = plain
            .split_at_checked(VERSION_LEN)
            .ok_or(VaultError::Malformed)?;
        let version = u32::from_be_bytes(version.try_into().map_err(|_| VaultError::Malformed)?);
        SecretKey::from_bytes(version, bytes)
    }

    /// The blind index of a phone number: HMAC-SHA256 under the phone index key. Equal numbers
    /// give equal indexes, so a contact can be found without storing its number in clear.
    #[must_use]
    pub fn phone_index(&self, phone: &crate::phone::E164) -> BlindIndex {
        self.index
            .load()
            .index(IndexKind::Phone, &[phone.as_str().as_bytes()])
    }

    /// A value that identifies the master key without revealing it. Stored on first start; a
    /// later start with a different master key sees a different value and refuses to run rather
    /// than write data no one can read.
    #[must_use]
    pub fn key_check(&self) -> Vec<u8> {
        self.mac(&self.key_check, b"drawbridge key check")
    }

    /// Constant-time comparison of a stored key-check value with this vault's.
    #[must_use]
    pub fn key_check_matches(&self, stored: &[u8]) -> bool {
        let mut mac = self.hmac(&self.key_check);
        mac.update(b"drawbridge key check");
        mac.verify_slice(stored).is_ok()
    }

    /// The key that chains the audit trail.
    #[must_use]
    pub fn audit_key(&self) -> &AuditKey {
        &self.audit
    }

    /// Seals a staff record's value (a user's e-mail, a one-time-code secret, a canned reply)
    /// under the staff key.
    ///
    /// # Errors
    /// See [`seal`].
    pub fn seal_staff(&self, plaintext: &[u8], aad: Aad<'_>) -> Result<Vec<u8>, VaultError> {
        seal(&self.staff, plaintext, aad)
    }

    /// Opens a value made by [`Vault::seal_staff`] for the same place.
    ///
    /// # Errors
    /// See [`open`].
    pub fn open_staff(
        &self,
        sealed: &[u8],
        aad: Aad<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        open(&self.staff, sealed, aad)
    }

    /// The blind index of a staff e-mail address, compared without case and surrounding space.
    #[must_use]
    pub fn email_index(&self, email: &str) -> BlindIndex {
        self.index
            .load()
            .index(IndexKind::Email, &[email.trim().to_lowercase().as_bytes()])
    }

    /// The blind index of a single-sign-on identity: the issuer and its subject.
    #[must_use]
    pub fn subject_index(&self, issuer: &str, subject: &str) -> BlindIndex {
        self.index.load().index(
            IndexKind::Subject,
            &[issuer.trim_end_matches('/').as_bytes(), subject.as_bytes()],
        )
    }

    /// The CSRF token of a console session (or of a signed-out browser's pre-session cookie):
    /// HMAC-SHA256 of its id, hex. Never stored; recomputed and compared on every form post.
    #[must_use]
    pub fn csrf_token(&self, session_id: &str) -> String {
        let mut mac = self.hmac(&self.session);
        mac.update(b"csrf\0");
        mac.update(session_id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `token` is [`Vault::csrf_token`] of `session_id`, compared in constant time.
    #[must_use]
    pub fn csrf_matches(&self, session_id: &str, token: &str) -> bool {
        let Ok(tag) = hex::decode(token.trim()) else {
            return false;
        };
        let mut mac = self.hmac(&self.session);
        mac.update(b"csrf\0");
        mac.update(session_id.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }

    /// Seals short-lived browser state into a cookie value (base64url), bound to its cookie name.
    ///
    /// # Errors
    /// See [`seal`].
    pub fn seal_cookie(&self, name: &str, plaintext: &[u8]) -> Result<String, VaultError> {
        use base64::Engine;
        let sealed = seal(&self.session, plaintext, Aad::new("cookie", name, ""))?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Opens a cookie value made by [`Vault::seal_cookie`] under the same name.
    ///
    /// # Errors
    /// [`VaultError::Malformed`] for a value that is not base64url; see [`open`].
    pub fn open_cookie(&self, name: &str, value: &str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        use base64::Engine;
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value.trim())
            .map_err(|_| VaultError::Malformed)?;
        open(&self.session, &sealed, Aad::new("cookie", name, ""))
    }

    /// The secure-link key's HMAC over a label and NUL-separated parts.
    fn secure_link_mac(&self, label: &[u8], parts: &[&str]) -> Hmac<Sha256> {
        let mut mac = self.hmac(&self.secure_link);
        mac.update(label);
        for part in parts {
            mac.update(&[0]);
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The stored form of a one-time code: HMAC-SHA256 of the link it belongs to and the code.
    #[must_use]
    pub fn code_mac(&self, secure_link_id: &str, code: &str) -> Vec<u8> {
        self.secure_link_mac(b"code", &[secure_link_id, code])
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether `code` is the one whose [`Vault::code_mac`] is `stored`, in constant time.
    #[must_use]
    pub fn code_matches(&self, secure_link_id: &str, code: &str, stored: &[u8]) -> bool {
        self.secure_link_mac(b"code", &[secure_link_id, code])
            .verify_slice(stored)
            .is_ok()
    }

    /// The CSRF token of the secure page for `scope` (`link:<id>` before verification,
    /// `session:<id>` after): HMAC-SHA256, hex; recomputed, never stored.
    #[must_use]
    pub fn secure_csrf_token(&self, scope: &str) -> String {
        hex::encode(
            self.secure_link_mac(b"csrf", &[scope])
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `token` is [`Vault::secure_csrf_token`] of `scope`, compared in constant time.
    #[must_use]
    pub fn secure_csrf_matches(&self, scope: &str, token: &str) -> bool {
        let Ok(tag) = hex::decode(token.trim()) else {
            return false;
        };
        self.secure_link_mac(b"csrf", &[scope])
            .verify_slice(&tag)
            .is_ok()
    }

    fn hmac(&self, key: &SecretKey) -> Hmac<Sha256> {
        hmac_with(key)
    }

    fn mac(&self, key: &SecretKey, data: &[u8]) -> Vec<u8> {
        let mut mac = self.hmac(key);
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn vault() -> Vault {
        Vault::new(&MasterKey::from_bytes([7; 32]))
    }

    #[test]
    fn round_trip() {
        let key = SecretKey::random(3);
        let aad = Aad::new("message", "body_sealed", "row-1");
        let sealed = seal(&key, b"hello there", aad).unwrap_or_default();
        assert_eq!(sealed[..4], 3_u32.to_be_bytes());
        assert_eq!(
            open(&key, &sealed, aad).as_deref().map(Vec::as_slice),
            Ok(&b"hello there"[..])
        );
        // Empty plaintexts seal too.
        let empty = seal(&key, b"", aad).unwrap_or_default();
        assert_eq!(open(&key, &empty, aad).map(|p| p.len()), Ok(0));
    }

    #[test]
    fn flipping_any_bit_fails() {
        let key = SecretKey::random(1);
        let aad = Aad::new("message", "body_sealed", "row-1");
        let sealed = seal(&key, b"card ending 4242", aad).unwrap_or_default();
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut tampered = sealed.clone();
                if let Some(b) = tampered.get_mut(byte) {
                    *b ^= 1 << bit;
                }
                assert!(
                    open(&key, &tampered, aad).is_err(),
                    "bit {bit} of byte {byte} flipped and still opened"
                );
            }
        }
        assert_eq!(
            open(&key, &sealed[..sealed.len() - 1], aad).err(),
            Some(VaultError::Authentication)
        );
        assert_eq!(
            open(&key, &sealed[..20], aad).err(),
            Some(VaultError::Malformed)
        );
    }

    #[test]
    fn wrong_associated_data_or_key_fails() {
        let key = SecretKey::random(1);
        let sealed =
            seal(&key, b"x", Aad::new("message", "body_sealed", "row-1")).unwrap_or_default();
        for aad in [
            Aad::new("message", "body_sealed", "row-2"),
            Aad::new("message", "media_sealed", "row-1"),
            Aad::new("contact", "body_sealed", "row-1"),
            // The separator keeps parts from sliding into each other.
            Aad::new("messag", "ebody_sealed", "row-1"),
        ] {
            assert_eq!(
                open(&key, &sealed, aad).err(),
                Some(VaultError::Authentication),
                "{aad:?}"
            );
        }
        let other = SecretKey::random(1);
        assert_eq!(
            open(&other, &sealed, Aad::new("message", "body_sealed", "row-1")).err(),
            Some(VaultError::Authentication)
        );
        let other_version = SecretKey::random(2);
        assert_eq!(
            open(
                &other_version,
                &sealed,
                Aad::new("message", "body_sealed", "row-1")
            )
            .err(),
            Some(VaultError::WrongKeyVersion {
                found: 1,
                expected: 2
            })
        );
    }

    #[test]
    fn no_nonce_repeats_over_100_000_seals() {
        let key = SecretKey::random(1);
        let aad = Aad::new("t", "c", "r");
        let mut nonces = HashSet::with_capacity(100_000);
        for _ in 0..100_000 {
            let sealed = seal(&key, b"", aad).unwrap_or_default();
            let nonce: [u8; NONCE_LEN] = sealed[VERSION_LEN..VERSION_LEN + NONCE_LEN]
                .try_into()
                .unwrap_or_default();
            assert!(nonces.insert(nonce), "nonce repeated");
        }
    }

    #[test]
    fn keys_are_zeroized_on_drop() {
        // Key types own a `Drop` (the one `ZeroizeOnDrop` derives) ...
        assert!(std::mem::needs_drop::<SecretKey>() && std::mem::needs_drop::<MasterKey>());
        // Reading freed memory would take `unsafe`, which this crate forbids. Instead: the key types
        // must implement `ZeroizeOnDrop` (the derive's `Drop` calls `zeroize`), and `zeroize` must
        // clear every key byte.
        fn zeroized_on_drop<T: ZeroizeOnDrop>() {}
        zeroized_on_drop::<SecretKey>();
        zeroized_on_drop::<MasterKey>();
        let mut key = SecretKey::random(9);
        assert_ne!(key.bytes, [0; 32]);
        key.zeroize();
        assert_eq!(key.bytes, [0; 32]);
        assert_eq!(key.version, 9, "the version is not secret and is kept");
        let mut master = MasterKey::from_bytes([5; 32]);
        master.zeroize();
        assert_eq!(master.expose_secret(), &[0; 32]);
    }

    #[test]
    fn data_keys_wrap_per_contact() {
        let vault = vault();
        let dek = vault.new_data_key();
        let wrapped = vault.wrap_data_key(&dek, "contact-a").unwrap_or_default();
        let back = vault
            .unwrap_data_key(&wrapped, "contact-a")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.bytes, dek.bytes);
        assert_eq!(back.version, dek.version);
        assert!(vault.unwrap_data_key(&wrapped, "contact-b").is_err());
        let other_master = Vault::new(&MasterKey::from_bytes([8; 32]));
        assert!(other_master.unwrap_data_key(&wrapped, "contact-a").is_err());
    }

    #[test]
    fn purpose_keys_survive_a_new_master_version() {
        let old = MasterKey::from_bytes([7; 32]);
        let new = MasterKey::from_bytes([8; 32]);
        let v1 = Vault::new(&old);
        let purposes = PurposeKeys::derive(&old, 1);
        let slot2 = MasterSlot::new(&new, 2);
        let wrapped = slot2.wrap_purpose_keys(&purposes).unwrap_or_default();
        // Only version 2 opens its copy, and what opens is the same set.
        assert!(MasterSlot::new(&old, 1)
            .unwrap_purpose_keys(&wrapped)
            .is_err());
        assert!(MasterSlot::new(&new, 3)
            .unwrap_purpose_keys(&wrapped)
            .is_err());
        let back = slot2
            .unwrap_purpose_keys(&wrapped)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(back.same_as(&purposes));
        assert!(!back.same_as(&PurposeKeys::derive(&new, 1)));
        // A vault of v2 with the v1 purpose keys indexes, MACs and seals as v1's did.
        let both = Vault::from_parts(back.clone(), vec![MasterSlot::new(&old, 1), slot2]);
        let only_new = Vault::from_parts(back, vec![MasterSlot::new(&new, 2)]);
        let phone = crate::phone::E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(only_new.phone_index(&phone), v1.phone_index(&phone));
        assert_eq!(only_new.audit_key().mac(b"x"), v1.audit_key().mac(b"x"));
        assert_eq!(only_new.audit_key().version(), 1);
        let sealed = v1
            .seal_staff(
                b"staff@example.com",
                Aad::new("app_user", "email_sealed", "u"),
            )
            .unwrap_or_default();
        assert!(only_new
            .open_staff(&sealed, Aad::new("app_user", "email_sealed", "u"))
            .is_ok());
        // Data keys: v1-wrapped opens with both; re-wrapped once under v2, then left alone.
        assert_eq!(both.current_version(), 2);
        let dek = v1.new_data_key();
        let wrapped_v1 = v1.wrap_data_key(&dek, "c").unwrap_or_default();
        assert!(only_new.unwrap_data_key(&wrapped_v1, "c").is_err());
        let wrapped_v2 = both
            .rewrap_data_key(&wrapped_v1, "c")
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_default();
        assert_eq!(Vault::sealed_version(&wrapped_v2), Some(2));
        assert_eq!(both.rewrap_data_key(&wrapped_v2, "c"), Ok(None));
        let opened = only_new
            .unwrap_data_key(&wrapped_v2, "c")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(opened.bytes, dek.bytes);
        assert!(v1.unwrap_data_key(&wrapped_v2, "c").is_err());
        // Check values identify each version's key.
        assert!(MasterSlot::new(&new, 2).check_matches(&slot2_check(&new)));
        assert!(!MasterSlot::new(&old, 2).check_matches(&slot2_check(&new)));
        assert!(MasterSlot::new(&old, 1).check_matches(&v1.key_check()));
    }

    #[test]
    fn index_generations_travel_with_the_purpose_keys() {
        let master = MasterKey::from_bytes([7; 32]);
        let slot = MasterSlot::new(&master, 1);
        let purposes = PurposeKeys::derive(&master, 1);
        // Without a later generation the stored form stays format 1.
        let plain_wrapped = slot.wrap_purpose_keys(&purposes).unwrap_or_default();
        let back = slot
            .unwrap_purpose_keys(&plain_wrapped)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.index_generation(), 1);
        assert!(back.same_as(&purposes));
        // Two generations later, they round-trip and differ from the set without them.
        let three = purposes
            .with_new_index_generation()
            .with_new_index_generation();
        assert_eq!(three.index_generation(), 3);
        assert!(!three.same_as(&purposes));
        let wrapped = slot.wrap_purpose_keys(&three).unwrap_or_default();
        let back = slot
            .unwrap_purpose_keys(&wrapped)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(back.same_as(&three));
        // A vault takes up a newer set's index keys only, and never goes back.
        let vault = Vault::new(&master);
        let phone = crate::phone::E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let before = vault.phone_index(&phone);
        assert!(vault.install_index_keys(&back));
        assert_eq!(vault.index_generation(), 3);
        assert!(!vault.install_index_keys(&purposes));
        let after = vault.phone_index(&phone);
        assert_ne!(after, before);
        assert_eq!(
            vault
                .index_keys()
                .rekey(IndexKind::Phone, before.current(), 1)
                .as_deref(),
            Some(after.current())
        );
        assert!(vault.open_purpose_keys(1, &wrapped).is_ok());
        assert!(vault.open_purpose_keys(2, &wrapped).is_err());
    }

    fn slot2_check(key: &MasterKey) -> Vec<u8> {
        MasterSlot::new(key, 2).check_value()
    }

    #[test]
    fn blind_index_is_deterministic_and_keyed() {
        let phone = crate::phone::E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let other = crate::phone::E164::parse("+15551234568").unwrap_or_else(|e| panic!("{e}"));
        let a = vault();
        assert_eq!(a.phone_index(&phone), a.phone_index(&phone));
        assert_ne!(a.phone_index(&phone), a.phone_index(&other));
        let b = Vault::new(&MasterKey::from_bytes([8; 32]));
        assert_ne!(a.phone_index(&phone), b.phone_index(&phone));
        // Purpose keys are separate: the index is not the key check under another name.
        assert_ne!(a.phone_index(&phone).current(), a.key_check());
    }

    #[test]
    fn key_check_identifies_the_master_key() {
        let a = vault();
        let b = Vault::new(&MasterKey::from_bytes([8; 32]));
        assert!(a.key_check_matches(&a.key_check()));
        assert!(!a.key_check_matches(&b.key_check()));
        assert!(!a.key_check_matches(&[]));
    }

    #[test]
    fn audit_key_is_its_own_and_deterministic() {
        let a = vault();
        let again = vault();
        let message = b"drawbridge key check";
        let tag = a.audit_key().mac(message);
        assert_eq!(tag, again.audit_key().mac(message), "same master, same key");
        assert!(a.audit_key().verify(message, &tag));
        assert!(!a.audit_key().verify(b"other", &tag));
        assert!(!a.audit_key().verify(message, &tag[..31]));
        assert_eq!(a.audit_key().version(), MASTER_KEY_VERSION);
        // Not another purpose key under a new name: the key check MACs the same message under
        // its key and gets something else, as do the phone index key and the KEK (via a MAC of
        // the same bytes under each).
        assert_ne!(tag.to_vec(), a.key_check());
        let phone_index = a.index_keys().index(IndexKind::Phone, &[b"x"]);
        assert_ne!(phone_index.current(), a.audit_key().mac(b"x").as_slice());
        for other in [&a.keks[0], &a.key_check] {
            assert_ne!(other.bytes, a.audit.0.bytes);
        }
        let b = Vault::new(&MasterKey::from_bytes([8; 32]));
        assert_ne!(
            tag,
            b.audit_key().mac(message),
            "another master, another key"
        );
    }

    #[test]
    fn debug_output_carries_no_key_bytes() {
        let key = SecretKey {
            version: 1,
            bytes: [0xAB; 32],
        };
        let text = format!(
            "{key:?} {:?} {:?}",
            vault(),
            AuditKey(SecretKey {
                version: 1,
                bytes: [0xAB; 32]
            })
        );
        assert!(
            !text.to_lowercase().contains("ab, ") && !text.contains("171"),
            "{text}"
        );
    }
}
