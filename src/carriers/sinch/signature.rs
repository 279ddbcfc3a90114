//! `x-sinch-webhook-signature`: base64(HMAC-SHA256(secret, body + "." + nonce + "." + timestamp)).
//!
//! Implemented as Sinch's own SDK does it (sinch-sdk-python
//! `sinch/domains/authentication/sinch_events/v1/authentication_validation.py`,
//! `validate_sinch_event_signature_with_nonce`, used by `SmsSinchEvent`; `shared/reference/carriers.md`
//! §7 and §12.5):
//!
//! - the signed bytes are the raw body, `.`, the `x-sinch-webhook-signature-nonce` header, `.`,
//!   the `x-sinch-webhook-signature-timestamp` header, all exactly as received;
//! - the signature header is the base64 of the 32-byte HMAC-SHA256 under the webhook secret;
//! - the comparison is constant-time (`Mac::verify_slice`).
//!
//! # Timestamp window
//!
//! The SDK checks no timestamp. Drawbridge refuses a timestamp more than [`MAX_AGE_SECONDS`]
//! (24 h) old or more than [`MAX_FUTURE_SECONDS`] (5 min) ahead. Why so wide: Sinch retries a
//! failed callback at 5 s, 10 s, 20 s … doubling up to 81,920 s (22 h 45 min) after the first try
//! (carriers.md §7), and it is not documented whether a retry is signed afresh or carries the
//! first timestamp. A tighter window could refuse a genuine retry with a 4xx, which Sinch does not
//! retry: the message would be lost. Within the window a replay achieves nothing, since inbound
//! messages are deduplicated by Sinch's message id and status reports by batch id and status; the
//! window only stops a captured request being replayed days later.

use crate::carriers::{Verification, WebhookRequest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const SIGNATURE_HEADER: &str = "x-sinch-webhook-signature";
pub const NONCE_HEADER: &str = "x-sinch-webhook-signature-nonce";
pub const TIMESTAMP_HEADER: &str = "x-sinch-webhook-signature-timestamp";
/// Oldest accepted timestamp: a day, more than Sinch's last retry at 81,920 s.
pub const MAX_AGE_SECONDS: i64 = 86_400;
/// Furthest accepted timestamp ahead of our clock.
pub const MAX_FUTURE_SECONDS: i64 = 300;
/// The fixed description shown by `webhook verify` and in 403 answers.
pub const SCHEME: &str = "x-sinch-webhook-signature: base64 HMAC-SHA256(webhook secret, body.nonce.timestamp), timestamp within 24 h";

/// The bytes Sinch signs: body, `.`, nonce, `.`, timestamp.
#[must_use]
pub fn signed_bytes(body: &[u8], nonce: &str, timestamp: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + nonce.len() + timestamp.len() + 2);
    out.extend_from_slice(body);
    out.push(b'.');
    out.extend_from_slice(nonce.as_bytes());
    out.push(b'.');
    out.extend_from_slice(timestamp.as_bytes());
    out
}

fn mac(secret: &SecretString, data: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac
}

/// The signature Sinch would send (simulations and tests).
#[must_use]
pub fn sign(secret: &SecretString, body: &[u8], nonce: &str, timestamp: &str) -> String {
    STANDARD.encode(
        mac(secret, &signed_bytes(body, nonce, timestamp))
            .finalize()
            .into_bytes(),
    )
}

/// Whether `signature` is the HMAC of the signed bytes (constant-time).
#[must_use]
pub fn verify(
    secret: &SecretString,
    body: &[u8],
    nonce: &str,
    timestamp: &str,
    signature: &str,
) -> bool {
    let Ok(received) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    mac(secret, &signed_bytes(body, nonce, timestamp))
        .verify_slice(&received)
        .is_ok()
}

/// The full check of a request, with the explanation `drawbridge webhook verify` prints.
#[must_use]
pub fn check(secret: &SecretString, request: &WebhookRequest, now: DateTime<Utc>) -> Verification {
    let signature = request.header(SIGNATURE_HEADER);
    let nonce = request.header(NONCE_HEADER);
    let timestamp = request.header(TIMESTAMP_HEADER);
    let mut details = Vec::new();
    for (name, value) in [(NONCE_HEADER, nonce), (TIMESTAMP_HEADER, timestamp)] {
        if value.is_none() {
            details.push(format!("missing header: {name}"));
        }
    }
    let signature_ok = match (nonce, timestamp) {
        (Some(nonce), Some(timestamp)) => {
            let signed = signed_bytes(&request.body, nonce, timestamp);
            details.push(format!("signed:   {}", String::from_utf8_lossy(&signed)));
            details.push(format!(
                "expected: {}",
                sign(secret, &request.body, nonce, timestamp)
            ));
            details.push(format!(
                "received: {}",
                signature.unwrap_or("(no x-sinch-webhook-signature header)")
            ));
            signature.is_some_and(|sig| verify(secret, &request.body, nonce, timestamp, sig))
        }
        _ => {
            details.push("signed:   (cannot be formed without the nonce and timestamp)".to_owned());
            details.push(format!(
                "received: {}",
                signature.unwrap_or("(no x-sinch-webhook-signature header)")
            ));
            false
        }
    };
    let fresh = match timestamp.map(|t| t.trim().parse::<i64>()) {
        None => false,
        Some(Err(_)) => {
            details.push("timestamp: not a Unix time in seconds".to_owned());
            false
        }
        Some(Ok(ts)) => {
            let age = now.timestamp().saturating_sub(ts);
            let fresh = (-MAX_FUTURE_SECONDS..=MAX_AGE_SECONDS).contains(&age);
            details.push(format!(
                "timestamp: {ts} (age {age} s; accepted from {MAX_FUTURE_SECONDS} s ahead to \
                 {MAX_AGE_SECONDS} s old: {})",
                if fresh { "yes" } else { "no, refused" }
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

    // carriers.md §12.5 (sinch-sdk-python test_conversation_sinch_event.py), verbatim.
    const SECRET: &str = "foo_secret1234";
    const NONCE: &str = "01FJA8B4A7BM43YGWSG9GBV067";
    const TIMESTAMP: &str = "1634579353";
    const BODY: &str = r#"{"app_id":"01EB37HMH1M6SV18BSNS3G135H","accepted_time":"2020-11-17T15:09:11.659Z","project_id":"c36f3d3d-1513-2edd-ae42-11995557ff61","message_delivery_report":{"message_id":"01EQBC1A3BEK731GY4YXEN0C2R","conversation_id":"01EPYATA64TMNZ1FV02JKF12JF","status":"QUEUED_ON_CHANNEL","contact_id":"01EXA07N79THJ20WSN6AS30TMW"}}"#;
    const SIGNATURE: &str = "Yc+3R1pIS78xLASybulhs8BsSo9BPB3Pr92QCUoczfk=";

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap_or_else(|| panic!("time"))
    }

    fn request(headers: &[(&str, &str)], body: &str) -> WebhookRequest {
        WebhookRequest::new(
            Method::Post,
            "https://sms.example.com/webhooks/sinch",
            headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .chain([("Content-Type".to_owned(), "application/json".to_owned())]),
            body.as_bytes().to_vec(),
        )
    }

    fn signed_request(signature: &str, body: &str) -> WebhookRequest {
        request(
            &[
                ("X-Sinch-Webhook-Signature", signature),
                ("X-Sinch-Webhook-Signature-Nonce", NONCE),
                ("X-Sinch-Webhook-Signature-Timestamp", TIMESTAMP),
            ],
            body,
        )
    }

    #[test]
    fn published_vector() {
        assert_eq!(
            sign(&secret(SECRET), BODY.as_bytes(), NONCE, TIMESTAMP),
            SIGNATURE
        );
        let verdict = check(
            &secret(SECRET),
            &signed_request(SIGNATURE, BODY),
            at(1_634_579_360),
        );
        assert!(verdict.valid, "{:?}", verdict.details);
        assert!(verdict
            .details
            .iter()
            .any(|d| d == &format!("signed:   {BODY}.{NONCE}.{TIMESTAMP}")));
        assert!(verdict
            .details
            .iter()
            .any(|d| d == &format!("expected: {SIGNATURE}")));
    }

    #[test]
    fn one_byte_changed_fails() {
        let now = at(1_634_579_353);
        // Body: QUEUED → QUEUEd.
        let body = BODY.replace("QUEUED_ON", "QUEUEd_ON");
        assert!(!check(&secret(SECRET), &signed_request(SIGNATURE, &body), now).valid);
        // Signature: the first character Y → Z.
        let sig = SIGNATURE.replacen('Y', "Z", 1);
        let verdict = check(&secret(SECRET), &signed_request(&sig, BODY), now);
        assert!(!verdict.valid);
        assert!(verdict
            .details
            .iter()
            .any(|d| d == &format!("received: {sig}")));
        // Nonce and secret.
        assert!(!verify(
            &secret(SECRET),
            BODY.as_bytes(),
            "01FJA8B4A7BM43YGWSG9GBV068",
            TIMESTAMP,
            SIGNATURE
        ));
        assert!(!verify(
            &secret("foo_secret1235"),
            BODY.as_bytes(),
            NONCE,
            TIMESTAMP,
            SIGNATURE
        ));
    }

    /// Own vector for an SMS event with a non-ASCII body, computed independently:
    /// `python3 -c 'import hmac,hashlib,base64; b="{\"type\":\"mo_text\",\"id\":\"01JDN3ZQ1V8X4K2M7R5T9W6YBC\",\"from\":\"15551234567\",\"to\":\"15550001111\",\"body\":\"Hi \u2713\"}".encode();
    /// print(base64.b64encode(hmac.new(b"KayakingTheSwell", b+b".01JDN4X4Y9ZQ0V1R5W8E3K6M2P.1764255731", hashlib.sha256).digest()).decode())'`
    #[test]
    fn own_vector_for_an_sms_event() {
        let body = r#"{"type":"mo_text","id":"01JDN3ZQ1V8X4K2M7R5T9W6YBC","from":"15551234567","to":"15550001111","body":"Hi ✓"}"#;
        let signature = "wTEO0SPcT5nlsMn5aw3VBd+kh5oat0uz2Cm9jmAsKvI=";
        let nonce = "01JDN4X4Y9ZQ0V1R5W8E3K6M2P";
        assert_eq!(
            sign(
                &secret("KayakingTheSwell"),
                body.as_bytes(),
                nonce,
                "1764255731"
            ),
            signature
        );
        let req = request(
            &[
                ("x-sinch-webhook-signature", signature),
                ("x-sinch-webhook-signature-nonce", nonce),
                ("x-sinch-webhook-signature-timestamp", "1764255731"),
            ],
            body,
        );
        assert!(check(&secret("KayakingTheSwell"), &req, at(1_764_255_800)).valid);
        assert!(!check(&secret("KayakingTheSwel"), &req, at(1_764_255_800)).valid);
    }

    #[test]
    fn timestamp_window() {
        let req = signed_request(SIGNATURE, BODY);
        let ts = 1_634_579_353;
        for (now, valid) in [
            (ts + MAX_AGE_SECONDS, true),
            (ts + MAX_AGE_SECONDS + 1, false),
            (ts + 81_920, true),
            (ts - MAX_FUTURE_SECONDS, true),
            (ts - MAX_FUTURE_SECONDS - 1, false),
        ] {
            let verdict = check(&secret(SECRET), &req, at(now));
            assert_eq!(verdict.valid, valid, "now {now}: {:?}", verdict.details);
        }
        let stale = check(&secret(SECRET), &req, at(ts + MAX_AGE_SECONDS + 1));
        assert!(stale
            .details
            .iter()
            .any(|d| d.contains("age 86401 s") && d.contains("refused")));
    }

    #[test]
    fn missing_headers_are_refused_and_named() {
        let now = at(1_634_579_353);
        let no_sig = check(
            &secret(SECRET),
            &request(
                &[
                    ("X-Sinch-Webhook-Signature-Nonce", NONCE),
                    ("X-Sinch-Webhook-Signature-Timestamp", TIMESTAMP),
                ],
                BODY,
            ),
            now,
        );
        assert!(!no_sig.valid);
        assert!(no_sig
            .details
            .iter()
            .any(|d| d.contains("no x-sinch-webhook-signature header")));
        let no_nonce = check(
            &secret(SECRET),
            &request(
                &[
                    ("X-Sinch-Webhook-Signature", SIGNATURE),
                    ("X-Sinch-Webhook-Signature-Timestamp", TIMESTAMP),
                ],
                BODY,
            ),
            now,
        );
        assert!(!no_nonce.valid);
        assert!(no_nonce
            .details
            .iter()
            .any(|d| d == "missing header: x-sinch-webhook-signature-nonce"));
        let no_ts = check(
            &secret(SECRET),
            &request(
                &[
                    ("X-Sinch-Webhook-Signature", SIGNATURE),
                    ("X-Sinch-Webhook-Signature-Nonce", NONCE),
                ],
                BODY,
            ),
            now,
        );
        assert!(!no_ts.valid);
        assert!(no_ts
            .details
            .iter()
            .any(|d| d == "missing header: x-sinch-webhook-signature-timestamp"));
        assert!(!check(&secret(SECRET), &signed_request("%%%", BODY), now).valid);
    }
}
