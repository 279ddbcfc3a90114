//! Google's service-account OAuth 2.0 flow (the JWT bearer grant, RFC 7523), as Google's client
//! libraries do it for the RBM API (developers.google.com/identity/protocols/oauth2/service-account,
//! "Preparing to make an authorized API call" / "Making the access token request"):
//!
//! 1. A JWT signed RS256 with the key's `private_key`, header `{"alg": "RS256", "typ": "JWT",
//!    "kid": private_key_id}`, claims `iss` = `client_email`, `scope` =
//!    `https://www.googleapis.com/auth/rcsbusinessmessaging`, `aud` = the key's `token_uri`,
//!    `iat` = now, `exp` = now + 3600 (the longest Google allows).
//! 2. `POST token_uri`, form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`.
//! 3. `200 {"access_token", "expires_in", "token_type": "Bearer"}`; refusals are
//!    `400 {"error": "invalid_grant", "error_description": …}`.
//!
//! The token is cached until 60 s before it expires, in a mutex shared by every clone of the
//! account and held across the fetch, so concurrent sends wait for one token request instead of
//! each making their own.

use crate::carriers::{ErrorClass, HttpCall, HttpReply, Method, SendError};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The OAuth scope of the RBM API.
pub const SCOPE: &str = "https://www.googleapis.com/auth/rcsbusinessmessaging";
/// The JWT bearer grant type (RFC 7523 §2.1).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google's token endpoint, for a key file without `token_uri`.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// How long an assertion is valid: Google accepts at most one hour.
const ASSERTION_LIFETIME: i64 = 3600;
/// A cached token is used until this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// The parts of a Google service account key JSON the flow uses (the file has more: `project_id`,
/// `client_id`, `auth_uri`, … which are ignored).
#[derive(Clone)]
pub struct ServiceAccountKey {
    pub client_email: String,
    /// PKCS#8 PEM, as Google's key files carry it.
    pub private_key: SecretString,
    pub private_key_id: Option<String>,
    pub token_uri: url::Url,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct RawKey {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<SecretString>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

/// The claims of the assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub scope: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

impl ServiceAccountKey {
    /// Reads a service account key JSON (`key` names the configuration key for errors).
    ///
    /// # Errors
    /// "`key`: problem", never quoting the key's content.
    pub fn parse(json: &str, key: &str) -> Result<Self, String> {
        let raw: RawKey = serde_json::from_str(json).map_err(|e| {
            format!(
                "`{key}`: not a service account key JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if raw.kind.as_deref().is_some_and(|k| k != "service_account") {
            return Err(format!(
                "`{key}`: `type` must be `service_account` (download a service account key)"
            ));
        }
        let client_email = raw
            .client_email
            .map(|e| e.trim().to_owned())
            .filter(|e| e.contains('@'))
            .ok_or_else(|| format!("`{key}`: `client_email` is missing"))?;
        let private_key = raw
            .private_key
            .filter(|k| k.expose_secret().contains("PRIVATE KEY"))
            .ok_or_else(|| format!("`{key}`: `private_key` is missing or not a PEM key"))?;
        let token_uri = raw
            .token_uri
            .as_deref()
            .unwrap_or(DEFAULT_TOKEN_URI)
            .trim()
            .to_owned();
        let token_uri = url::Url::parse(&token_uri)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| format!("`{key}`: `token_uri` is not an http(s) URL"))?;
        let parsed = Self {
            client_email,
            private_key,
            private_key_id: raw.private_key_id.filter(|k| !k.trim().is_empty()),
            token_uri,
        };
        // Sign once now: a key ring cannot use fails at start, not at the first send.
        parsed
            .assertion(0)
            .map_err(|_| format!("`{key}`: `private_key` is not a usable RSA key"))?;
        Ok(parsed)
    }

    /// The signed assertion for `now` (Unix seconds).
    ///
    /// # Errors
    /// When the key cannot sign (checked when the account is read, so not expected later).
    pub fn assertion(&self, now: i64) -> Result<Zeroizing<String>, SendError> {
        let key = EncodingKey::from_rsa_pem(self.private_key.expose_secret().as_bytes())
            .map_err(|_| SendError::local(ErrorClass::Permanent, "bad_service_account_key"))?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.private_key_id);
        let claims = Claims {
            iss: self.client_email.clone(),
            scope: SCOPE.to_owned(),
            aud: self.token_uri.as_str().to_owned(),
            iat: now,
            exp: now + ASSERTION_LIFETIME,
        };
        jsonwebtoken::encode(&header, &claims, &key)
            .map(Zeroizing::new)
            .map_err(|_| SendError::local(ErrorClass::Permanent, "bad_service_account_key"))
    }

    /// `POST token_uri` with the JWT bearer grant.
    ///
    /// # Errors
    /// As [`ServiceAccountKey::assertion`].
    pub fn token_request(&self, now: i64) -> Result<HttpCall, SendError> {
        let assertion = self.assertion(now)?;
        Ok(HttpCall::new(Method::Post, self.token_uri.clone()).form(&[
            ("grant_type", GRANT_TYPE),
            ("assertion", assertion.as_str()),
        ]))
    }
}

/// A token and when it stops being used.
pub struct CachedToken {
    pub token: Zeroizing<String>,
    pub use_until: Instant,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("use_until", &self.use_until)
            .finish_non_exhaustive()
    }
}

impl CachedToken {
    /// A token fetched at `fetched` that expires `expires_in` later; `None` when it expires too
    /// soon to be worth keeping.
    #[must_use]
    pub fn new(token: Zeroizing<String>, fetched: Instant, expires_in: Duration) -> Option<Self> {
        let lifetime = expires_in.checked_sub(EXPIRY_MARGIN)?;
        Some(Self {
            token,
            use_until: fetched + lifetime,
        })
    }

    #[must_use]
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.use_until
    }
}

fn token_error(class: ErrorClass, code: &str, reply: &HttpReply) -> SendError {
    SendError {
        class,
        code: Some(code.to_owned()),
        http_status: Some(reply.status),
        retry_after: reply.retry_after,
    }
}

/// Reads the token endpoint's answer: the token and how long it lives.
///
/// # Errors
/// 5xx or an unreadable success → transient (`token_unavailable`, `token_unreadable`); 429 →
/// throttled; any other refusal → permanent, with Google's `error` (`invalid_grant`, …) as the
/// code: a key Google refuses will not start working by retrying.
pub fn parse_token_reply(reply: &HttpReply) -> Result<(Zeroizing<String>, Duration), SendError> {
    let json = reply.json();
    if reply.is_success() {
        let token = json
            .as_ref()
            .and_then(|j| j.get("access_token"))
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty() && t.len() <= 4096 && t.bytes().all(|b| b.is_ascii_graphic()))
            .map(|t| Zeroizing::new(t.to_owned()));
        let bearer = json
            .as_ref()
            .and_then(|j| j.get("token_type"))
            .and_then(serde_json::Value::as_str)
            .is_none_or(|t| t.eq_ignore_ascii_case("bearer"));
        let expires_in = json
            .as_ref()
            .and_then(|j| j.get("expires_in"))
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(3600);
        return match (token, bearer) {
            (Some(token), true) => Ok((token, Duration::from_secs(expires_in))),
            _ => Err(token_error(
                ErrorClass::Transient,
                "token_unreadable",
                reply,
            )),
        };
    }
    if reply.status >= 500 {
        return Err(token_error(
            ErrorClass::Transient,
            "token_unavailable",
            reply,
        ));
    }
    if reply.status == 429 {
        return Err(token_error(ErrorClass::Throttled, "token_throttled", reply));
    }
    let code = json
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(serde_json::Value::as_str)
        .filter(|c| crate::carriers::check_token(c, 64))
        .unwrap_or("token_refused");
    Err(token_error(ErrorClass::Permanent, code, reply))
}
