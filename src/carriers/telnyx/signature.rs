//! `telnyx-signature-ed25519`: an Ed25519 signature over `"{telnyx-timestamp}|{raw body}"`.
//!
//! Implemented as Telnyx's own verifier does it (telnyx-python `src/telnyx/lib/webhook_verification.py`,
//! `shared/reference/carriers.md` §3 and §12.3):
//!
//! - the signed bytes are the `telnyx-timestamp` header exactly as received, a `|`, then the raw
//!   body byte for byte (never a re-serialised JSON value);
//! - the header is the base64 of a 64-byte Ed25519 signature, checked against the 32-byte public
//!   key from the Telnyx portal (base64 in configuration);
//! - a timestamp more than 300 seconds away from now, in either direction, is refused even when
//!   the signature is good: a captured webhook cannot be replayed later.
//!
//! Only Telnyx holds the private key, so "expected" in the explanation can only describe the
//! check; `drawbridge simulate` signs with a test seed (`signing_key`) instead.
//!
//! Verification is `ring`'s Ed25519, which does not branch on secret data (there is none here:
//! the key is public).

use crate::carriers::{Verification, WebhookRequest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use zeroize::Zeroizing;

/// The signature header (names are compared case-insensitively).
pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";
/// The signed Unix timestamp header.
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";
/// How far a webhook's timestamp may be from now, either way (telnyx-python
/// `TIMESTAMP_TOLERANCE_SECONDS`).
pub const TOLERANCE_SECONDS: i64 = 300;
/// The fixed description shown by `webhook verify` and in 403 answers.
pub const SCHEME: &str =
    "telnyx-signature-ed25519: Ed25519(\"{telnyx-timestamp}|{raw body}\"), timestamp within 300 s";

/// The public key of RFC 8032 §7.1 TEST 1: its private half is published, so an account that
/// verifies with it accepts webhooks from anyone. Refused in production.
pub const RFC8032_TEST_PUBLIC_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

/// Decodes a base64 Ed25519 public key.
///
/// # Errors
/// When the text is not base64 or does not decode to exactly 32 bytes (the message says which).
pub fn decode_public_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| "is not base64".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "decodes to {} bytes, not the 32 of an Ed25519 key",
            bytes.len()
        )
    })
}

/// Decodes a base64 Ed25519 private seed (32 bytes), wiped when dropped.
///
/// # Errors
/// When the text is not base64 or does not decode to exactly 32 bytes.
pub fn decode_seed(text: &str) -> Result<Zeroizing<[u8; 32]>, String> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| "is not base64".to_owned())?,
    );
    let mut seed = Zeroizing::new([0_u8; 32]);
    if bytes.len() != 32 {
        return Err(format!(
            "decodes to {} bytes, not the 32 of an Ed25519 seed",
            bytes.len()
        ));
    }
    seed.copy_from_slice(&bytes);
    Ok(seed)
}

/// The bytes Telnyx signs: the timestamp header as received, `|`, the raw body.
#[must_use]
pub fn signed_bytes(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(timestamp.len() + 1 + body.len());
    out.extend_from_slice(timestamp.as_bytes());
    out.push(b'|');
    out.extend_from_slice(body);
    out
}

/// The signature Telnyx would send (simulations and tests): base64 of the Ed25519 signature by
/// the key pair of `seed`.
///
/// # Errors
/// When `ring` refuses the seed (it accepts any 32 bytes, so in practice never).
pub fn sign(seed: &[u8; 32], timestamp: &str, body: &[u8]) -> Result<String, String> {
    let pair = Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|_| "the Ed25519 seed was refused".to_owned())?;
    Ok(STANDARD.encode(pair.sign(&signed_bytes(timestamp, body)).as_ref()))
}

/// The public key (base64) belonging to `seed`.
///
/// # Errors
/// As [`sign`].
pub fn public_key_of(seed: &[u8; 32]) -> Result<String, String> {
    let pair = Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|_| "the Ed25519 seed was refused".to_owned())?;
    Ok(STANDARD.encode(pair.public_key().as_ref()))
}

/// Whether `signature` (base64 of 64 bytes) is `public_key`'s signature of the signed bytes.
#[must_use]
pub fn verify(public_key: &[u8; 32], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Ok(signature) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    signature.len() == 64
        && UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&signed_bytes(timestamp, body), &signature)
            .is_ok()
}

/// The full check of a request, with the explanation `drawbridge webhook verify` prints.
#[must_use]
pub fn check(public_key: &[u8; 32], request: &WebhookRequest, now: DateTime<Utc>) -> Verification {
    let mut details = Vec::new();
    let signature = request.header(SIGNATURE_HEADER);
    let timestamp = request.header(TIMESTAMP_HEADER);
    let key_text = STANDARD.encode(public_key);
    match timestamp {
        Some(ts) => details.push(format!(
            "signed:   {}",
            String::from_utf8_lossy(&signed_bytes(ts, &request.body))
        )),
        None => details.push(format!(
            "signed:   (cannot be formed: no {TIMESTAMP_HEADER} header)"
        )),
    }
    details.push(format!(
        "expected: an Ed25519 signature of exactly those bytes by public key {key_text} \
         (only Telnyx holds the private key)"
    ));
    details.push(format!(
        "received: {}",
        signature.unwrap_or("(no telnyx-signature-ed25519 header)")
    ));
    let signature_ok = match (timestamp, signature) {
        (Some(ts), Some(sig)) => {
            let decoded_len = STANDARD.decode(sig.trim()).map(|s| s.len()).ok();
            if decoded_len != Some(64) {
                details.push(format!(
                    "the signature is not the base64 of 64 bytes ({})",
                    decoded_len.map_or_else(|| "not base64".to_owned(), |n| format!("{n} bytes"))
                ));
            }
            let ok = verify(public_key, ts, &request.body, sig);
            details.push(format!(
                "signature: {}",
                if ok {
                    "valid for those bytes"
                } else {
                    "does not match those bytes and this key"
                }
            ));
            ok
        }
        _ => false,
    };
    let fresh = match timestamp.map(|ts| ts.trim().parse::<i64>()) {
        None => false,
        Some(Err(_)) => {
            details.push(format!(
                "timestamp: {} is not a Unix time in seconds",
                timestamp.unwrap_or_default()
            ));
            false
        }
        Some(Ok(ts)) => {
            let age = now.timestamp().saturating_sub(ts);
            let fresh = age.abs() <= TOLERANCE_SECONDS;
            details.push(format!(
                "timestamp: {ts} (age {age} s; accepted within ±{TOLERANCE_SECONDS} s: {})",
                if fresh {
                    "yes"
                } else {
                    "no, refused as stale or future"
                }
            ));
            fresh
        }
    };
    Verification::new(signature_ok && fresh, SCHEME, details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carriers::Method;

    // carriers.md §12.3 (RFC 8032 §7.1 TEST 1 seed), verbatim.
    const SEED_HEX: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const BODY: &str =
        r#"{"data":{"event_type":"message.received","id":"evt_1","payload":{"text":"STOP"}}}"#;
    const SIGNATURE: &str =
        "5eBCpsveIw1Ky0besfAw3w95i45vhErk64Oe5ufCg9HIfS+ptTLXX/AEDl7H65qro7FGYrDUBsPSuH7ZX1+YAg==";

    fn seed() -> [u8; 32] {
        let bytes = hex::decode(SEED_HEX).unwrap_or_else(|e| panic!("{e}"));
        <[u8; 32]>::try_from(bytes.as_slice()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn key() -> [u8; 32] {
        decode_public_key(RFC8032_TEST_PUBLIC_KEY).unwrap_or_else(|e| panic!("{e}"))
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap_or_else(|| panic!("time"))
    }

    fn request(timestamp: Option<&str>, signature: Option<&str>, body: &str) -> WebhookRequest {
        let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        if let Some(ts) = timestamp {
            headers.push(("Telnyx-Timestamp".to_owned(), ts.to_owned()));
        }
        if let Some(sig) = signature {
            headers.push(("Telnyx-Signature-Ed25519".to_owned(), sig.to_owned()));
        }
        WebhookRequest::new(
            Method::Post,
            "https://sms.example.com/webhooks/telnyx",
            headers,
            body.as_bytes().to_vec(),
        )
    }

    #[test]
    fn published_vector_signs_and_verifies() {
        assert_eq!(
            public_key_of(&seed()).unwrap_or_default(),
            RFC8032_TEST_PUBLIC_KEY
        );
        assert_eq!(
            sign(&seed(), "1700000000", BODY.as_bytes()).unwrap_or_default(),
            SIGNATURE
        );
        assert!(verify(&key(), "1700000000", BODY.as_bytes(), SIGNATURE));
        let verdict = check(
            &key(),
            &request(Some("1700000000"), Some(SIGNATURE), BODY),
            at(1_700_000_010),
        );
        assert!(verdict.valid, "{:?}", verdict.details);
        assert!(verdict
            .details
            .iter()
            .any(|d| d == &format!("signed:   1700000000|{BODY}")));
    }

    /// Own vector: another key (RFC 8032 TEST 2 seed), a body with a `|` and non-ASCII text, so
    /// the separator and UTF-8 bytes are covered. Computed independently with
    /// `python3 -c 'import base64; from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey as K;
    /// k=K.from_private_bytes(bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"));
    /// print(base64.b64encode(k.sign(b"1764255731|"+"{\"data\":{\"event_type\":\"message.received\",\"payload\":{\"text\":\"a|b \u2713\"}}}".encode())).decode())'`
    #[test]
    fn own_vector_with_separator_and_utf8_in_the_body() {
        let seed = decode_seed("TM0Imyj/ltqdtsNG7BFOD1uKMZ81q6Yk2oz27U+4pvs=")
            .unwrap_or_else(|e| panic!("{e}"));
        let body = r#"{"data":{"event_type":"message.received","payload":{"text":"a|b ✓"}}}"#;
        let expected = "i0LI/ysab78U/H+fn3jOnULc3Y7dsjE3S5H1oq9MrRhTQqLHXh/J3M3OgQ/uG0mO1LmCurYKN+17N09pqPQpAg==";
        assert_eq!(
            public_key_of(&seed).unwrap_or_default(),
            "PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw="
        );
        assert_eq!(
            sign(&seed, "1764255731", body.as_bytes()).unwrap_or_default(),
            expected
        );
        let key = decode_public_key("PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=")
            .unwrap_or_else(|e| panic!("{e}"));
        let verdict = check(
            &key,
            &request(Some("1764255731"), Some(expected), body),
            at(1_764_255_731),
        );
        assert!(verdict.valid, "{:?}", verdict.details);
        // The published vector's key does not verify it.
        assert!(
            !check(
                &self::key(),
                &request(Some("1764255731"), Some(expected), body),
                at(1_764_255_731)
            )
            .valid
        );
    }

    #[test]
    fn one_byte_changed_fails() {
        // A body byte: STOP → STOp.
        let tampered = BODY.replace("STOP", "STOp");
        assert!(!verify(
            &key(),
            "1700000000",
            tampered.as_bytes(),
            SIGNATURE
        ));
        // A timestamp digit.
        assert!(!verify(&key(), "1700000001", BODY.as_bytes(), SIGNATURE));
        // A signature byte (first character 5 → 6 changes the first byte).
        let bad_sig = SIGNATURE.replacen('5', "6", 1);
        assert!(!verify(&key(), "1700000000", BODY.as_bytes(), &bad_sig));
        // Another key (RFC 8032 TEST 2's public key).
        let other = decode_public_key("PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!verify(&other, "1700000000", BODY.as_bytes(), SIGNATURE));
        let verdict = check(
            &key(),
            &request(Some("1700000000"), Some(SIGNATURE), &tampered),
            at(1_700_000_000),
        );
        assert!(!verdict.valid);
        assert!(verdict.details.iter().any(|d| d.starts_with("expected:")));
        assert!(verdict.details.iter().any(|d| d.contains("does not match")));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_and_explained() {
        let req = request(Some("1700000000"), Some(SIGNATURE), BODY);
        for (now, valid) in [
            (1_700_000_300, true),
            (1_700_000_301, false),
            (1_699_999_700, true),
            (1_699_999_699, false),
        ] {
            let verdict = check(&key(), &req, at(now));
            assert_eq!(verdict.valid, valid, "now {now}: {:?}", verdict.details);
        }
        let verdict = check(&key(), &req, at(1_700_000_301));
        assert!(verdict
            .details
            .iter()
            .any(|d| d.contains("age 301 s") && d.contains("refused")));
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        let now = at(1_700_000_000);
        let no_sig = check(&key(), &request(Some("1700000000"), None, BODY), now);
        assert!(!no_sig.valid);
        assert!(no_sig
            .details
            .iter()
            .any(|d| d.contains("no telnyx-signature-ed25519 header")));
        let no_ts = check(&key(), &request(None, Some(SIGNATURE), BODY), now);
        assert!(!no_ts.valid);
        assert!(no_ts
            .details
            .iter()
            .any(|d| d.contains("no telnyx-timestamp")));
        let short = check(
            &key(),
            &request(Some("1700000000"), Some("AAAA"), BODY),
            now,
        );
        assert!(!short.valid);
        assert!(short.details.iter().any(|d| d.contains("3 bytes")));
        let words = check(&key(), &request(Some("soon"), Some(SIGNATURE), BODY), now);
        assert!(!words.valid);
    }

    #[test]
    fn keys_must_be_32_bytes() {
        assert!(decode_public_key("AAAA").is_err());
        assert!(decode_public_key("not base64!").is_err());
        assert!(decode_seed(&STANDARD.encode([7_u8; 31])).is_err());
        assert!(decode_seed(&STANDARD.encode([7_u8; 32])).is_ok());
    }
}
