//! How Google authenticates RBM webhooks (`shared/reference/carriers.md` §10, §12.7; Google's
//! webhook guide, developers.google.com/business-communications/rcs-business-messaging/guides/integrate/webhooks):
//!
//! - **Events** arrive as a Pub/Sub push envelope `{"message": {"data": "<base64>", …}, …}`.
//!   `X-Goog-Signature` is base64(HMAC-SHA512(clientToken, base64-decoded `message.data`)): the
//!   signature covers the decoded event, not the envelope, so nothing else in the body is
//!   trusted (the event is read from the verified bytes only).
//! - **The set-up handshake** is `{"clientToken": "...", "secret": "..."}` with no signature: it is
//!   authentic when `clientToken` equals the configured token. Google's own sample compares with
//!   `==`; both checks here are constant-time (`Mac::verify_slice`, SHA-256 digests compared
//!   with `subtle`, so not even the length leaks).
//!
//! Which of the two a body is, is decided once ([`read_body`]) and used by both verification and
//! parsing, so a body cannot be verified as one and parsed as the other.

use crate::carriers::{PayloadError, WebhookRequest};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

type HmacSha512 = Hmac<Sha512>;

/// The scheme, as `webhook verify` names it.
pub const SCHEME: &str = "X-Goog-Signature: base64 HMAC-SHA512(clientToken, base64-decoded message.data); set-up handshake: clientToken in the body";

/// What an RBM webhook body is.
pub enum Body {
    /// The webhook set-up handshake.
    Handshake {
        client_token: Zeroizing<String>,
        secret: Zeroizing<String>,
    },
    /// An event: the decoded `message.data` (the signed bytes) and the envelope's
    /// `message.attributes.type`, if any (Google marks agent launch events with it).
    Event {
        data: Zeroizing<Vec<u8>>,
        data_base64_len: usize,
        attribute_type: Option<String>,
    },
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Handshake { .. } => f.write_str("Handshake"),
            Self::Event { data, .. } => write!(f, "Event({} bytes)", data.len()),
        }
    }
}

/// Base64 as Pub/Sub writes it (standard, padded); the other alphabets are accepted too, since
/// the HMAC covers the decoded bytes whatever their encoding.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// Reads a webhook body: an event when it has `message` (whatever else it has), the handshake
/// when it has `clientToken` and `secret`.
///
/// # Errors
/// [`PayloadError`] naming what is missing or malformed.
pub fn read_body(body: &[u8]) -> Result<Body, PayloadError> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| PayloadError::Body("a JSON object"))?;
    let object = json
        .as_object()
        .ok_or(PayloadError::Body("a JSON object"))?;
    if let Some(message) = object.get("message") {
        let encoded = message
            .get("data")
            .and_then(serde_json::Value::as_str)
            .filter(|d| !d.trim().is_empty())
            .ok_or(PayloadError::Missing("message.data"))?;
        let data = decode_base64(encoded).ok_or(PayloadError::Invalid("message.data"))?;
        let attribute_type = message
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        return Ok(Body::Event {
            data: Zeroizing::new(data),
            data_base64_len: encoded.len(),
            attribute_type,
        });
    }
    if object.contains_key("clientToken") {
        let text = |name: &'static str| {
            object
                .get(name)
                .and_then(serde_json::Value::as_str)
                .filter(|v| !v.is_empty())
                .map(|v| Zeroizing::new(v.to_owned()))
                .ok_or(PayloadError::Missing(name))
        };
        return Ok(Body::Handshake {
            client_token: text("clientToken")?,
            secret: text("secret")?,
        });
    }
    Err(PayloadError::Body(
        "an RBM event (`message.data`) or set-up handshake (`clientToken`)",
    ))
}

fn mac(token: &SecretString, data: &[u8]) -> HmacSha512 {
    let mut mac = <HmacSha512 as Mac>::new_from_slice(token.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac
}

/// `X-Goog-Signature` for decoded event bytes (the `simulate` command, the fake, tests).
#[must_use]
pub fn sign(token: &SecretString, data: &[u8]) -> String {
    STANDARD.encode(mac(token, data).finalize().into_bytes())
}

/// Whether `signature` (the header's base64) is the HMAC of `data`, compared in constant time.
#[must_use]
pub fn verify(token: &SecretString, data: &[u8], signature: &str) -> bool {
    decode_base64(signature).is_some_and(|sig| mac(token, data).verify_slice(&sig).is_ok())
}

/// Whether a handshake's `clientToken` is the configured one: SHA-256 digests compared in
/// constant time, so neither the content nor the length of the token leaks through timing.
#[must_use]
pub fn client_token_matches(configured: &SecretString, received: &str) -> bool {
    let expected = Sha256::digest(configured.expose_secret().as_bytes());
    let actual = Sha256::digest(received.as_bytes());
    bool::from(expected.ct_eq(&actual))
}

/// The full check with its explanation (see [`super::verify_with_secret`]).
#[must_use]
pub fn check(token: &SecretString, request: &WebhookRequest) -> (bool, Vec<String>) {
    let mut details = Vec::new();
    let body = match read_body(&request.body) {
        Ok(body) => body,
        Err(e) => {
            details.push(format!("the body could not be read: {e}"));
            return (false, details);
        }
    };
    match body {
        Body::Handshake { client_token, .. } => {
            let valid = client_token_matches(token, &client_token);
            details.push(
                "kind:     set-up handshake (`clientToken` and `secret`, no signature)".to_owned(),
            );
            details.push(format!(
                "expected: clientToken equal to the configured client token ({} characters)",
                token.expose_secret().chars().count()
            ));
            details.push(format!(
                "received: clientToken `{}` ({} characters): {}",
                client_token.as_str(),
                client_token.chars().count(),
                if valid { "matches" } else { "does not match" }
            ));
            (valid, details)
        }
        Body::Event {
            data,
            data_base64_len,
            ..
        } => {
            let received = request.header("x-goog-signature");
            let expected = sign(token, &data);
            details.push(format!(
                "kind:     event; message.data is {data_base64_len} base64 characters, {} bytes decoded",
                data.len()
            ));
            details.push(format!(
                "signed:   the decoded message.data: {}",
                String::from_utf8_lossy(&data)
            ));
            details.push(format!("expected: {expected}"));
            details.push(format!(
                "received: {}",
                received.unwrap_or("(no X-Goog-Signature header)")
            ));
            let valid = received.is_some_and(|sig| verify(token, &data, sig));
            if let (false, Some(sig)) = (valid, received) {
                details.extend(hints(token, request, &data, sig));
            }
            (valid, details)
        }
    }
}

/// Explanations for the signing mistakes seen in the wild: signing the base64 text instead of
/// its decoded bytes, signing the whole envelope, hex instead of base64.
fn hints(token: &SecretString, request: &WebhookRequest, data: &[u8], sig: &str) -> Vec<String> {
    let mut hints = Vec::new();
    let encoded = STANDARD.encode(data);
    if verify(token, encoded.as_bytes(), sig) {
        hints.push(
            "note:     the received signature is the HMAC of the base64 text, not of its decoded bytes"
                .to_owned(),
        );
    }
    if verify(token, &request.body, sig) {
        hints.push(
            "note:     the received signature is the HMAC of the whole body, not of the decoded message.data"
                .to_owned(),
        );
    }
    if hex::decode(sig.trim())
        .ok()
        .is_some_and(|raw| mac(token, data).verify_slice(&raw).is_ok())
    {
        hints.push("note:     the received signature is the right HMAC, but hex-encoded; Google sends base64".to_owned());
    }
    if decode_base64(sig).is_none() {
        hints.push("note:     the received signature is not base64".to_owned());
    }
    hints
}
