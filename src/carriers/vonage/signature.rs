//! Vonage's two webhook signatures (`shared/reference/carriers.md` §4a, §4b, §12.4).
//!
//! **SMS API** (inbound SMS and delivery receipts, GET query or POST form/JSON): a `sig`
//! parameter, as the Python SDK computes it (vonage-python-sdk `http_client/.../auth.py`
//! `sign_params`/`check_signature`; the old `nexmo` package's `Client.signature`):
//!
//! - every parameter except `sig`, sorted by name (byte order, which for UTF-8 is code-point
//!   order, as Python's `sorted`), each appended as `&name=value`, with `&` and `=` in *values*
//!   replaced by `_`;
//! - **MD5 hash** (`md5hash`, the legacy dashboard default): hex MD5 of that string followed by
//!   the signature secret; **HMAC** (`md5`, `sha1`, `sha256`, `sha512`): hex HMAC of that string
//!   keyed by the signature secret;
//! - the received `sig` is compared case-insensitively (the .NET SDK documents upper-case hex, the
//!   Python SDK lower-cases it) and in constant time: it is hex-decoded and the bytes compared
//!   with `Mac::verify_slice` or `subtle`.
//!
//! The SDKs add `timestamp` when signing if it is missing, so every signed webhook carries one;
//! [`check_age`] bounds it (see there).
//!
//! **Messages API** (inbound messages and status callbacks, JSON): `Authorization: Bearer <JWT>`,
//! HS256 under the signature secret, whatever method the dashboard names for the SMS API
//! (developer.vonage.com/en/messages/concepts/signed-webhooks), with a `payload_hash` claim = hex
//! SHA-256 of the body. The algorithm is checked explicitly before anything else (a token naming
//! `none`, `HS512` or an RSA algorithm is refused outright), then `jsonwebtoken` verifies the
//! HMAC (in constant time, through `ring`), then `payload_hash` is compared with the SHA-256 of
//! the raw body, byte for byte as received.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use md5::Md5;
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// How far in the past a signed timestamp (`timestamp` parameter, JWT `iat`) may be: Vonage
/// resends an unacknowledged SMS API webhook for 24 hours, and its documentation does not say
/// whether a retry is signed afresh, so a retry of a day-old message must still verify. An hour
/// of margin is added. Replays inside the window are harmless: every message and status is
/// deduplicated on its carrier id before anything is stored.
pub const MAX_AGE_SECS: i64 = 25 * 3600;

/// How far in the future a signed timestamp may be (clock skew).
pub const MAX_SKEW_SECS: i64 = 300;

/// The SMS API signature methods a Vonage account can be configured with (dashboard → API
/// settings → "Signed webhooks").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureMethod {
    /// "MD5 hash": hex MD5(string + secret). The legacy default.
    Md5Hash,
    /// HMAC-MD5.
    Md5,
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl SignatureMethod {
    pub const ALL: [Self; 5] = [
        Self::Md5Hash,
        Self::Md5,
        Self::Sha1,
        Self::Sha256,
        Self::Sha512,
    ];

    /// The configuration word: `md5hash`, `md5`, `sha1`, `sha256`, `sha512`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5Hash => "md5hash",
            Self::Md5 => "md5",
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// The scheme named in a [`super::Verification`].
    #[must_use]
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Md5Hash => {
                "sig parameter: hex MD5(sorted &name=value parameters + signature secret)"
            }
            Self::Md5 => {
                "sig parameter: hex HMAC-MD5(signature secret, sorted &name=value parameters)"
            }
            Self::Sha1 => {
                "sig parameter: hex HMAC-SHA1(signature secret, sorted &name=value parameters)"
            }
            Self::Sha256 => {
                "sig parameter: hex HMAC-SHA256(signature secret, sorted &name=value parameters)"
            }
            Self::Sha512 => {
                "sig parameter: hex HMAC-SHA512(signature secret, sorted &name=value parameters)"
            }
        }
    }
}

/// The scheme of the Messages API's signed webhooks.
pub const JWT_SCHEME: &str =
    "Authorization: Bearer JWT (HS256, signature secret) with payload_hash = SHA-256 of the body";

/// The string the SMS API signs: every parameter but `sig`, sorted by name, each `&name=value`
/// with `&` and `=` in the value replaced by `_`.
#[must_use]
pub fn string_to_sign(params: &[(String, String)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .filter(|(name, _)| name != "sig")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    sorted.sort_unstable();
    let mut out = String::new();
    for (name, value) in sorted {
        out.push('&');
        out.push_str(name);
        out.push('=');
        out.extend(
            value
                .chars()
                .map(|c| if c == '&' || c == '=' { '_' } else { c }),
        );
    }
    out
}

fn hmac_bytes<M: Mac + hmac::digest::KeyInit>(secret: &[u8], data: &[u8]) -> Vec<u8> {
    match <M as hmac::digest::KeyInit>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length.
        Err(_) => Vec::new(),
    }
}

/// The raw digest for `method` over `data`.
fn digest(secret: &SecretString, method: SignatureMethod, data: &[u8]) -> Vec<u8> {
    let key = secret.expose_secret().as_bytes();
    match method {
        SignatureMethod::Md5Hash => {
            let mut hasher = Md5::new();
            hasher.update(data);
            hasher.update(key);
            hasher.finalize().to_vec()
        }
        SignatureMethod::Md5 => hmac_bytes::<Hmac<Md5>>(key, data),
        SignatureMethod::Sha1 => hmac_bytes::<Hmac<Sha1>>(key, data),
        SignatureMethod::Sha256 => hmac_bytes::<Hmac<Sha256>>(key, data),
        SignatureMethod::Sha512 => hmac_bytes::<Hmac<Sha512>>(key, data),
    }
}

/// The `sig` Vonage sends for these parameters (lower-case hex; `simulate` and tests).
#[must_use]
pub fn sign(secret: &SecretString, method: SignatureMethod, params: &[(String, String)]) -> String {
    hex::encode(digest(secret, method, string_to_sign(params).as_bytes()))
}

/// Whether `received` (hex, any case) is the signature of `params` under `method`. Constant
/// time in the signature's value.
#[must_use]
pub fn verify_sms(
    secret: &SecretString,
    method: SignatureMethod,
    params: &[(String, String)],
    received: &str,
) -> bool {
    let Ok(received) = hex::decode(received.trim()) else {
        return false;
    };
    let data = string_to_sign(params);
    let key = secret.expose_secret().as_bytes();
    let check = |mac: Result<(), hmac::digest::MacError>| mac.is_ok();
    match method {
        SignatureMethod::Md5Hash => {
            let expected = digest(secret, method, data.as_bytes());
            expected.len() == received.len() && bool::from(expected.ct_eq(&received))
        }
        SignatureMethod::Md5 => check(verify_hmac::<Hmac<Md5>>(key, &data, &received)),
        SignatureMethod::Sha1 => check(verify_hmac::<Hmac<Sha1>>(key, &data, &received)),
        SignatureMethod::Sha256 => check(verify_hmac::<Hmac<Sha256>>(key, &data, &received)),
        SignatureMethod::Sha512 => check(verify_hmac::<Hmac<Sha512>>(key, &data, &received)),
    }
}

fn verify_hmac<M: Mac + hmac::digest::KeyInit>(
    key: &[u8],
    data: &str,
    received: &[u8],
) -> Result<(), hmac::digest::MacError> {
    let mut mac =
        <M as hmac::digest::KeyInit>::new_from_slice(key).map_err(|_| hmac::digest::MacError)?;
    mac.update(data.as_bytes());
    mac.verify_slice(received)
}

/// Checks a signed time (`timestamp`, `iat`, in Unix seconds) against `now`: at most
/// [`MAX_AGE_SECS`] old and [`MAX_SKEW_SECS`] ahead. Returns the detail line and whether it
/// passed.
#[must_use]
pub fn check_age(label: &str, signed_at: Option<i64>, now: DateTime<Utc>) -> (bool, String) {
    let Some(signed_at) = signed_at else {
        return (
            false,
            format!("{label}: missing (every signed Vonage webhook carries one)"),
        );
    };
    let age = now.timestamp().saturating_sub(signed_at);
    let ok = (-MAX_SKEW_SECS..=MAX_AGE_SECS).contains(&age);
    let verdict = if ok {
        "accepted"
    } else if age > MAX_AGE_SECS {
        "refused: too old"
    } else {
        "refused: in the future"
    };
    (
        ok,
        format!(
            "{label}: {signed_at}, age {age} s ({verdict}; the window is {MAX_AGE_SECS} s back, {MAX_SKEW_SECS} s ahead)"
        ),
    )
}

/// What checking a Messages API token found.
#[derive(Debug)]
pub struct JwtOutcome {
    pub valid: bool,
    pub details: Vec<String>,
}

/// Verifies the HS256 signature of `token` under `secret` and returns its claims. The
/// algorithm is checked before anything else.
///
/// # Errors
/// A line saying why the token was refused.
pub fn token_claims(
    secret: &SecretString,
    token: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| "the bearer token is not a JWT (header.payload.signature)".to_owned())?;
    if header.alg != jsonwebtoken::Algorithm::HS256 {
        return Err(format!(
            "the token's algorithm is {:?}; only HS256 is accepted",
            header.alg
        ));
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    // Times are checked by `verify_jwt` against the caller's clock (testable, and the same
    // window as the SMS API's `timestamp`); Vonage's tokens carry no audience.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.expose_secret().as_bytes()),
        &validation,
    )
    .map(|data| data.claims)
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => {
            "the token's signature does not verify with this secret".to_owned()
        }
        _ => "the token could not be decoded".to_owned(),
    })
}

fn claim_i64(claims: &serde_json::Map<String, serde_json::Value>, name: &str) -> Option<i64> {
    match claims.get(name)? {
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The whole Messages API check: HS256 signature, `payload_hash` against the raw body, `iat`
/// within the window, `exp`/`nbf` when present. Each step adds a detail line.
#[must_use]
pub fn verify_jwt(
    secret: &SecretString,
    token: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> JwtOutcome {
    let mut details = Vec::new();
    let mut parts = token.split('.');
    let (header, payload, received) = (parts.next(), parts.next(), parts.next());
    if let (Some(header), Some(payload)) = (header, payload) {
        let signed = format!("{header}.{payload}");
        let expected = URL_SAFE_NO_PAD.encode(hmac_bytes::<Hmac<Sha256>>(
            secret.expose_secret().as_bytes(),
            signed.as_bytes(),
        ));
        if let Ok(decoded) = URL_SAFE_NO_PAD.decode(header) {
            details.push(format!(
                "token header: {}",
                String::from_utf8_lossy(&decoded)
            ));
        }
        if let Ok(decoded) = URL_SAFE_NO_PAD.decode(payload) {
            details.push(format!(
                "token claims: {}",
                String::from_utf8_lossy(&decoded)
            ));
        }
        details.push(format!("signed: {signed}"));
        details.push(format!("expected: {expected} (HMAC-SHA256, base64url)"));
        details.push(format!("received: {}", received.unwrap_or("(none)")));
    }
    let claims = match token_claims(secret, token) {
        Ok(claims) => claims,
        Err(reason) => {
            details.push(reason);
            return JwtOutcome {
                valid: false,
                details,
            };
        }
    };
    let mut valid = true;

    let actual = hex::encode(Sha256::digest(body));
    match claims
        .get("payload_hash")
        .and_then(serde_json::Value::as_str)
    {
        Some(claimed) => {
            let claimed = claimed.trim().to_ascii_lowercase();
            let same = claimed.len() == actual.len()
                && bool::from(claimed.as_bytes().ct_eq(actual.as_bytes()));
            details.push(format!(
                "payload_hash claimed: {claimed}; SHA-256 of the body received: {actual} ({})",
                if same {
                    "match"
                } else {
                    "MISMATCH: the body is not the one signed"
                }
            ));
            valid &= same;
        }
        None => {
            details.push(format!(
                "payload_hash claim missing: the body ({actual}) would be unauthenticated; refused"
            ));
            valid = false;
        }
    }

    let (iat_ok, line) = check_age("iat", claim_i64(&claims, "iat"), now);
    details.push(line);
    valid &= iat_ok;
    if let Some(exp) = claim_i64(&claims, "exp") {
        let ok = exp >= now.timestamp().saturating_sub(60);
        details.push(format!(
            "exp: {exp} ({})",
            if ok {
                "not expired"
            } else {
                "expired: refused"
            }
        ));
        valid &= ok;
    }
    if let Some(nbf) = claim_i64(&claims, "nbf") {
        let ok = nbf <= now.timestamp().saturating_add(MAX_SKEW_SECS);
        details.push(format!(
            "nbf: {nbf} ({})",
            if ok {
                "reached"
            } else {
                "not yet valid: refused"
            }
        ));
        valid &= ok;
    }
    if let Some(api_key) = claims.get("api_key").and_then(serde_json::Value::as_str) {
        details.push(format!("api_key claim: {api_key}"));
    }
    JwtOutcome { valid, details }
}

/// A token as Vonage signs a Messages API webhook (`simulate` and tests): HS256 over
/// `iat`, `jti`, `iss`, `payload_hash`, `api_key`.
///
/// # Errors
/// When the claims cannot be encoded (never for these).
pub fn sign_jwt(
    secret: &SecretString,
    api_key: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<String, String> {
    let claims = serde_json::json!({
        "iat": now.timestamp(),
        "jti": super::new_message_id(),
        "iss": "Vonage",
        "payload_hash": hex::encode(Sha256::digest(body)),
        "api_key": api_key,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .map_err(|e| format!("signing the JWT failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    /// carriers.md §12.4: old `nexmo` tests (VGPY@a1fa66a `tests/test_nexmo.py`), verbatim.
    #[test]
    fn published_sms_vector() {
        let params = pairs(&[("a", "1"), ("b", "2"), ("timestamp", "1461605396")]);
        assert_eq!(string_to_sign(&params), "&a=1&b=2&timestamp=1461605396");
        let expected = "a321e824b9b816be7c3f28859a31749a098713d39f613c80d455bbaffae1cd24";
        assert_eq!(
            sign(&secret("secret"), SignatureMethod::Sha256, &params),
            expected
        );
        assert!(verify_sms(
            &secret("secret"),
            SignatureMethod::Sha256,
            &params,
            expected
        ));
        // Upper-case hex (the .NET SDK's form) is the same signature.
        assert!(verify_sms(
            &secret("secret"),
            SignatureMethod::Sha256,
            &params,
            &expected.to_ascii_uppercase()
        ));
        // One byte changed in the parameters, in the signature, or in the secret.
        let tampered = pairs(&[("a", "1"), ("b", "3"), ("timestamp", "1461605396")]);
        assert!(!verify_sms(
            &secret("secret"),
            SignatureMethod::Sha256,
            &tampered,
            expected
        ));
        let wrong_sig = expected.replacen('a', "b", 1);
        assert!(!verify_sms(
            &secret("secret"),
            SignatureMethod::Sha256,
            &params,
            &wrong_sig
        ));
        assert!(!verify_sms(
            &secret("secreT"),
            SignatureMethod::Sha256,
            &params,
            expected
        ));
        // The same signature is not accepted under another method.
        assert!(!verify_sms(
            &secret("secret"),
            SignatureMethod::Sha512,
            &params,
            expected
        ));
    }

    /// Every method over the §12.4 string, computed independently:
    /// `python3 -c "import hmac,hashlib; s=b'&a=1&b=2&timestamp=1461605396';
    ///  print(hashlib.md5(s+b'secret').hexdigest());
    ///  [print(m, hmac.new(b'secret', s, m).hexdigest()) for m in ('md5','sha1','sha512')]"`
    #[test]
    fn every_method_matches_python() {
        let params = pairs(&[("timestamp", "1461605396"), ("b", "2"), ("a", "1")]);
        for (method, expected) in [
            (SignatureMethod::Md5Hash, "6af838ef94998832dbfc29020b564830"),
            (SignatureMethod::Md5, "c15c21ced558c93a226c305f58f902f2"),
            (SignatureMethod::Sha1, "3e19a4e6880fdc2c1426bfd0587c98b9532f0210"),
            (
                SignatureMethod::Sha512,
                "812a18f76680fa0fe1b8bd9ee1625466ceb1bd96242e4d050d2cfd9a7b40166c63ed26ec9702168781b6edcf1633db8ff95af9341701004eec3fcf9550572ee8",
            ),
        ] {
            assert_eq!(sign(&secret("secret"), method, &params), expected, "{method:?}");
            assert!(verify_sms(&secret("secret"), method, &params, expected));
            assert!(!verify_sms(&secret("other"), method, &params, expected));
        }
    }

    /// The rules of the string: `sig` left out, names sorted, `&` and `=` in values replaced,
    /// names untouched, UTF-8 values as they are. Computed with
    /// `python3 -c "import hmac,hashlib; print(hmac.new(b'k3y', '&keyword=CAFÉ&msisdn=15551234567&text=a_b_c d&timestamp=1700000000'.encode(), hashlib.sha256).hexdigest())"`.
    #[test]
    fn string_rules() {
        let params = pairs(&[
            ("text", "a&b=c d"),
            ("sig", "ignored"),
            ("msisdn", "15551234567"),
            ("timestamp", "1700000000"),
            ("keyword", "CAFÉ"),
        ]);
        assert_eq!(
            string_to_sign(&params),
            "&keyword=CAFÉ&msisdn=15551234567&text=a_b_c d&timestamp=1700000000"
        );
        assert_eq!(
            sign(&secret("k3y"), SignatureMethod::Sha256, &params),
            "1a0197cc7af54f30848e250ec2f5e02db42ee85d483b4cadcd2d2530344271ab"
        );
        // Names sort by byte: `message-timestamp` before `messageId` ('-' < 'I').
        let params = pairs(&[("messageId", "x"), ("message-timestamp", "y")]);
        assert_eq!(string_to_sign(&params), "&message-timestamp=y&messageId=x");
        assert!(!verify_sms(
            &secret("k"),
            SignatureMethod::Sha1,
            &params,
            "not hex"
        ));
    }

    #[test]
    fn ages() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        assert!(check_age("t", Some(1_700_000_000 - MAX_AGE_SECS), now).0);
        assert!(!check_age("t", Some(1_700_000_000 - MAX_AGE_SECS - 1), now).0);
        assert!(check_age("t", Some(1_700_000_000 + MAX_SKEW_SECS), now).0);
        let (ok, line) = check_age("t", Some(1_700_000_000 + MAX_SKEW_SECS + 1), now);
        assert!(!ok && line.contains("future"), "{line}");
        assert!(!check_age("t", None, now).0);
    }

    /// carriers.md §12.4: VGPY `jwt/tests/test_verify_jwt.py`, verbatim.
    #[test]
    fn published_jwt_vector() {
        let token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJpYXQiOjE2OTc2MzQ2ODAsImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9.88vJc3I2HhuqEDixHXVhc9R30tA6U_HQHZTC29y6CGM";
        let key = secret("qwertyuiopasdfghjklzxcvbnm123456");
        let claims = token_claims(&key, token).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            claims.get("iat").and_then(serde_json::Value::as_i64),
            Some(1_697_634_680)
        );
        // One byte changed in the signature, in the claims, or in the secret.
        let bad_sig = token.replacen("88vJ", "88vK", 1);
        assert!(token_claims(&key, &bad_sig).is_err());
        let bad_claims = token.replacen("eyJpc3Mi", "eyJpc3Ni", 1);
        assert!(token_claims(&key, &bad_claims).is_err());
        assert!(token_claims(&secret("qwertyuiopasdfghjklzxcvbnm123457"), token).is_err());
        // The vector has no payload_hash: as a webhook it is refused, and the details say why.
        let now = DateTime::from_timestamp(1_697_634_700, 0).unwrap_or_default();
        let outcome = verify_jwt(&key, token, b"{}", now);
        assert!(!outcome.valid);
        assert!(outcome
            .details
            .iter()
            .any(|d| d.starts_with("payload_hash claim missing")));
        assert!(outcome
            .details
            .iter()
            .any(|d| d.starts_with("signed: eyJ0")));
    }

    #[test]
    fn jwt_round_trip_and_refusals() {
        let key = secret("drawbridge-test-signature-secret");
        let now = DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default();
        let body = br#"{"message_uuid":"x","status":"delivered"}"#;
        let token = sign_jwt(&key, "abcd1234", body, now).unwrap_or_else(|e| panic!("{e}"));
        let ok = verify_jwt(&key, &token, body, now);
        assert!(ok.valid, "{:?}", ok.details);
        // Tampered body.
        let tampered = verify_jwt(
            &key,
            &token,
            br#"{"message_uuid":"y","status":"delivered"}"#,
            now,
        );
        assert!(!tampered.valid);
        assert!(tampered.details.iter().any(|d| d.contains("MISMATCH")));
        // Wrong secret.
        assert!(!verify_jwt(&secret("other"), &token, body, now).valid);
        // Stale and future.
        let late = now + chrono::Duration::seconds(MAX_AGE_SECS + 1);
        assert!(!verify_jwt(&key, &token, body, late).valid);
        let early = now - chrono::Duration::seconds(MAX_SKEW_SECS + 1);
        assert!(!verify_jwt(&key, &token, body, early).valid);
        // Another algorithm, even with the right secret, is refused before verification.
        let hs512 = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
            &serde_json::json!({"iat": now.timestamp(), "payload_hash": hex::encode(Sha256::digest(body))}),
            &jsonwebtoken::EncodingKey::from_secret(b"drawbridge-test-signature-secret"),
        )
        .unwrap_or_default();
        let refused = verify_jwt(&key, &hs512, body, now);
        assert!(!refused.valid);
        assert!(refused.details.iter().any(|d| d.contains("only HS256")));
        // `alg: none` with no signature.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"iat":1750000000}"#)
        );
        assert!(!verify_jwt(&key, &none, body, now).valid);
        assert!(!verify_jwt(&key, "garbage", body, now).valid);
    }
}
