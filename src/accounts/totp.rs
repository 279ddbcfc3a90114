//! Time-based one-time codes (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps), the second factor
//! staff may enrol and admins may require.
//!
//! A code is accepted for the current step or one step either side (clock drift), and only for a
//! step later than the last one accepted for that user, so a code observed over a shoulder cannot
//! be replayed. Codes are compared in constant time.

use rand::RngCore;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

/// Seconds per step.
pub const STEP: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;

/// A new random secret: 160 bits, as RFC 4226 recommends.
#[must_use]
pub fn new_secret() -> Zeroizing<Vec<u8>> {
    let mut secret = Zeroizing::new(vec![0_u8; 20]);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The secret in base32 (what authenticator apps take when typed in).
#[must_use]
pub fn base32(secret: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(base32::encode(
        base32::Alphabet::Rfc4648 { padding: false },
        secret,
    ))
}

/// The `otpauth://` URI an authenticator app imports.
#[must_use]
pub fn otpauth_uri(secret: &[u8], account: &str) -> Zeroizing<String> {
    let label: String = url::form_urlencoded::byte_serialize(account.as_bytes()).collect();
    Zeroizing::new(format!(
        "otpauth://totp/Drawbridge:{label}?secret={}&issuer=Drawbridge&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        base32(secret).as_str()
    ))
}

fn totp(secret: &[u8]) -> Option<TOTP> {
    TOTP::new(Algorithm::SHA1, DIGITS, 0, STEP, secret.to_vec()).ok()
}

/// The code for `unix_seconds` (tests and the enrolment page's self-check).
#[must_use]
pub fn code_at(secret: &[u8], unix_seconds: u64) -> Option<String> {
    totp(secret).map(|t| t.generate(unix_seconds))
}

/// The step `code` is valid for at `unix_seconds` (the current one or one either side), if it is
/// later than `last_step`. The caller stores the returned step as the new `last_step`.
#[must_use]
pub fn verify(secret: &[u8], code: &str, unix_seconds: u64, last_step: Option<u64>) -> Option<u64> {
    let code = code.trim().replace(' ', "");
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret)?;
    let now_step = unix_seconds / STEP;
    let mut found = None;
    // Every candidate is computed and compared, whichever matches, so timing shows nothing.
    for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
        let expected = totp.generate(step * STEP);
        let matched: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if matched && last_step.is_none_or(|last| step > last) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 secret "12345678901234567890", truncated to 6 digits.
    #[test]
    fn rfc_6238_vectors() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(secret, time).as_deref(), Some(code), "t={time}");
        }
    }

    #[test]
    fn accepts_drift_of_one_step_and_refuses_replay() {
        let secret = new_secret();
        let now = 1_800_000_000;
        let code = code_at(&secret, now).unwrap_or_default();
        let step = now / STEP;
        assert_eq!(verify(&secret, &code, now, None), Some(step));
        assert_eq!(verify(&secret, &code, now + STEP, None), Some(step));
        assert_eq!(verify(&secret, &code, now - STEP, None), Some(step));
        assert_eq!(verify(&secret, &code, now + 2 * STEP, None), None);
        assert_eq!(verify(&secret, &code, now, Some(step)), None, "replayed");
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(verify(&secret, &spaced, now, None), Some(step));
        assert_eq!(verify(&secret, "12345", now, None), None);
        assert_eq!(verify(&secret, "abcdef", now, None), None);
    }

    #[test]
    fn uri_names_the_account_and_secret() {
        let uri = otpauth_uri(b"12345678901234567890", "ana@example.com");
        assert!(uri.starts_with(
            "otpauth://totp/Drawbridge:ana%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"
        ));
    }
}
