//! Staff passwords: argon2id hashes in PHC form, a minimum policy, and generated passwords.
//!
//! Verification of an unknown account runs the same argon2id work against a fixed dummy hash,
//! so the time a sign-in takes does not tell whether the address has an account.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use std::sync::OnceLock;

/// Shortest password accepted. NIST SP 800-63B asks for at least 8; staff of a regulated business
/// get 12.
pub const MIN_CHARS: usize = 12;
/// Longest password accepted (argon2 takes any length; this bounds the work per request).
pub const MAX_CHARS: usize = 256;

/// The argon2id parameters: OWASP's recommendation of 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a new password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("a password needs at least {MIN_CHARS} characters")]
    TooShort,
    #[error("a password has at most {MAX_CHARS} characters")]
    TooLong,
    #[error("that password is too easy to guess: use several unrelated words")]
    TooSimple,
}

/// Checks a new password against the policy: length, and not one repeated character or an
/// obvious sequence.
///
/// # Errors
/// [`PolicyError`] naming the rule broken.
pub fn check_policy(password: &SecretString) -> Result<(), PolicyError> {
    let text = password.expose_secret();
    let chars = text.chars().count();
    if chars < MIN_CHARS {
        return Err(PolicyError::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PolicyError::TooLong);
    }
    let distinct: std::collections::BTreeSet<char> = text.chars().collect();
    let lower = text.to_lowercase();
    if distinct.len() < 4
        || ["password", "123456789", "qwertyuiop", "drawbridge"]
            .iter()
            .any(|weak| lower.contains(weak) && chars < weak.len() + 6)
    {
        return Err(PolicyError::TooSimple);
    }
    Ok(())
}

/// Hashes a password with argon2id and a fresh random salt.
///
/// # Errors
/// When argon2 refuses (it does not for passwords within [`MAX_CHARS`]).
pub fn hash(password: &SecretString) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| anyhow::anyhow!("the password could not be hashed"))
}

/// Whether `password` matches the stored PHC `hash`. `None` (no account, or a single-sign-on
/// account without a password) verifies against a dummy hash and returns false, in the same time.
#[must_use]
pub fn verify(password: &SecretString, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        hash(&SecretString::from("dummy password for timing".to_owned())).unwrap_or_default()
    });
    let (phc, real) = match stored {
        Some(phc) => (phc, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // `verify_password` compares the computed and stored hashes in constant time.
    let matched = argon2()
        .verify_password(password.expose_secret().as_bytes(), &parsed)
        .is_ok();
    matched && real
}

/// A generated password: 20 characters from an alphabet without look-alikes (about 115 bits).
#[must_use]
pub fn generate() -> SecretString {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    let text: String = (0..20)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    SecretString::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn hashes_verify_and_differ() {
        let password = secret("correct horse battery staple");
        let first = hash(&password).unwrap_or_default();
        let second = hash(&password).unwrap_or_default();
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, second, "a fresh salt each time");
        assert!(verify(&password, Some(&first)));
        assert!(!verify(
            &secret("correct horse battery stapler"),
            Some(&first)
        ));
        assert!(!verify(&password, Some("not a phc string")));
    }

    #[test]
    fn unknown_accounts_never_verify() {
        assert!(!verify(&secret("dummy password for timing"), None));
    }

    #[test]
    fn policy() {
        assert_eq!(check_policy(&secret("short")), Err(PolicyError::TooShort));
        assert_eq!(
            check_policy(&secret("aaaaaaaaaaaaaaaa")),
            Err(PolicyError::TooSimple)
        );
        assert_eq!(
            check_policy(&secret("password1234")),
            Err(PolicyError::TooSimple)
        );
        assert_eq!(
            check_policy(&secret(&"x1".repeat(200))),
            Err(PolicyError::TooLong)
        );
        assert_eq!(check_policy(&secret("maple tide lantern")), Ok(()));
        assert_eq!(check_policy(&generate()), Ok(()));
    }
}
