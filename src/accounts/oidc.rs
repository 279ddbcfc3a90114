//! OpenID Connect single sign-on for the staff console: the relying-party side of the
//! authorization code flow with PKCE ([OpenID Connect Core 1.0 §3.1], [RFC 7636]).
//!
//! # The flow
//!
//! 1. [`Provider::discover`] reads `{issuer}/.well-known/openid-configuration` once at start-up
//!    and fetches the provider's signing keys (JWKS), which it caches.
//! 2. [`Provider::begin`] makes a fresh sign-in attempt: a random `state` (CSRF protection for the
//!    redirect back), a random `nonce` (binds the ID token to this attempt) and a PKCE verifier
//!    whose S256 challenge goes into the authorize URL. The caller keeps the [`PendingLogin`] in
//!    a short-lived sealed cookie and redirects the browser to the URL.
//! 3. The provider sends the browser back with `code` and `state`. [`Provider::finish`] checks the
//!    state, redeems the code at the token endpoint (authenticated with `client_secret_basic`,
//!    proving possession of the PKCE verifier) and validates the ID token it gets back.
//!
//! # What is checked, and why
//!
//! - **Transport.** The issuer and every endpoint the discovery document names must be `https`,
//!   except on a loopback host (`127.0.0.1`, `::1`, `localhost`) for tests and demos: the ID token
//!   is trusted because it arrives over an authenticated channel and is signed by a key fetched
//!   over one. URLs with credentials in them are refused.
//! - **Discovery.** The document's `issuer` must equal the configured one (a trailing slash is
//!   tolerated), so a misconfigured or hijacked discovery URL cannot name another issuer. A
//!   provider that says it lacks S256 PKCE or `client_secret_basic` is refused at start-up rather
//!   than failing at the first sign-in.
//! - **State** is compared in constant time with the one stored in the pending login, and the
//!   pending login expires after [`PENDING_LIFETIME_SECS`].
//! - **ID token signature** is verified against the provider's JWKS (RSA, RSA-PSS, ECDSA P-256 and
//!   P-384, Ed25519). The algorithm comes from the token header but must be an asymmetric one:
//!   `none` and the HMAC family (`HS*`) are refused outright, since an HMAC key is either absent
//!   or the client secret, which we share with the provider and so proves nothing about who
//!   signed. The key must match the header's `kid` (or be the only key of the right type when
//!   there is no `kid`). An unknown `kid` makes us refetch the JWKS once, to follow key rotation.
//! - **Claims**: `iss` equals the discovered issuer exactly; `aud` contains our `client_id`; `azp`,
//!   when present, equals it, and must be present when `aud` names several parties; `exp`, `iat`
//!   (and `nbf` when present) hold with [`LEEWAY_SECS`] of clock skew; `nonce` equals the pending
//!   login's (constant time); `sub` is present.
//! - **E-mail**: [`Identity::email`] is set only when the claim is present, and
//!   [`Identity::email_verified`] only when the claim is the JSON boolean `true`. Callers that map
//!   e-mail addresses to staff accounts must insist on a verified address.
//!
//! Errors ([`OidcError`]) name the step that failed and never carry a token, code, e-mail
//! address, secret, or text the provider returned (beyond an RFC 6749 error code), so they can be
//! logged as they are.
//!
//! [OpenID Connect Core 1.0 §3.1]: https://openid.net/specs/openid-connect-core-1_0.html#CodeFlowAuth
//! [RFC 7636]: https://www.rfc-editor.org/rfc/rfc7636

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngCore;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::{PoisonError, RwLock};
use subtle::ConstantTimeEq;
use url::{Host, Url};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Clock skew tolerated on `exp`, `iat` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 60;

/// How long a sign-in attempt may take, from [`Provider::begin`] to [`Provider::finish`], in
/// seconds. Ten minutes covers a password manager, a second factor and a slow identity provider;
/// any longer and a leaked pending login stays useful for too long.
pub const PENDING_LIFETIME_SECS: i64 = 600;

/// The largest response we read from the provider. Discovery documents and key sets are a few
/// kilobytes; the cap keeps a broken or hostile endpoint from filling memory.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Random bytes in `state`, `nonce` and the PKCE verifier: 256 bits each.
const RANDOM_BYTES: usize = 32;

/// The settings of one OpenID provider (single sign-on for the staff console).
#[derive(Debug, Clone, Deserialize)]
pub struct OidcSettings {
    /// The provider's issuer identifier, e.g. `https://login.example.com/`. Discovery reads
    /// `{issuer}/.well-known/openid-configuration`. Must be `https` unless the host is loopback.
    #[serde(deserialize_with = "deserialize_url")]
    pub issuer: Url,
    /// Our client id, as registered with the provider.
    pub client_id: String,
    /// Our client secret, sent only to the token endpoint (HTTP Basic).
    pub client_secret: SecretString,
    /// Scopes requested; `openid` is added when missing. Default: `openid email`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Text for the sign-in button, e.g. "Sign in with Okta".
    #[serde(default)]
    pub label: Option<String>,
}

/// `url` is built without its `serde` feature here, so the issuer is parsed by hand.
fn deserialize_url<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Url, D::Error> {
    let text = String::deserialize(deserializer)?;
    Url::parse(&text).map_err(serde::de::Error::custom)
}

fn default_scopes() -> Vec<String> {
    vec!["openid".to_owned(), "email".to_owned()]
}

/// Why single sign-on failed. Messages name the step, never a token, code, e-mail address or
/// secret; they are safe to log.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The issuer or an endpoint uses plain `http` on a non-loopback host (or another scheme).
    #[error("{what} must use https (plain http is allowed only for 127.0.0.1, ::1 or localhost); host: {host}")]
    InsecureUrl { what: &'static str, host: String },
    /// A URL from the configuration or the discovery document is unusable.
    #[error("{what}: {reason}")]
    InvalidUrl {
        what: &'static str,
        reason: &'static str,
    },
    /// The settings are unusable.
    #[error("single sign-on configuration: {0}")]
    Config(&'static str),
    /// The discovery document names an issuer other than the configured one.
    #[error("the discovery document names issuer `{found}`, but the configured issuer is `{configured}`")]
    IssuerMismatch { configured: String, found: String },
    /// The provider lacks something this client requires.
    #[error("the identity provider is not usable: {0}")]
    UnsupportedProvider(&'static str),
    /// The provider could not be reached, or the connection failed.
    #[error("could not reach the identity provider's {endpoint} endpoint")]
    Unreachable {
        endpoint: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// The provider answered with an unexpected HTTP status.
    #[error("the identity provider's {endpoint} endpoint answered HTTP {status}")]
    Status { endpoint: &'static str, status: u16 },
    /// The provider's answer was not what the protocol says (not JSON, fields missing, too big).
    #[error("the identity provider's {endpoint} endpoint sent a malformed or oversized answer")]
    BadResponse { endpoint: &'static str },
    /// The `state` returned with the code is not the one this sign-in attempt began with.
    #[error("the sign-in state does not match this browser's sign-in attempt")]
    StateMismatch,
    /// The sign-in attempt is older than [`PENDING_LIFETIME_SECS`].
    #[error("the sign-in attempt has expired; start again")]
    LoginExpired,
    /// The provider's redirect carried no code.
    #[error("the identity provider returned no authorization code")]
    MissingCode,
    /// The token endpoint refused the code (RFC 6749 §5.2 error code, when it sent a valid one).
    #[error("the identity provider refused the authorization code (HTTP {status}, error {})", error.as_deref().unwrap_or("unspecified"))]
    TokenRejected { status: u16, error: Option<String> },
    /// The ID token is not a well-formed signed JWT.
    #[error("the ID token is malformed")]
    MalformedIdToken,
    /// The ID token uses an algorithm we refuse (`none`, `HS*`) or do not support.
    #[error("the ID token's signing algorithm `{0}` is not accepted")]
    UnsupportedAlgorithm(String),
    /// No key in the provider's key set (even refetched) matches the ID token.
    #[error("no key in the identity provider's key set matches the ID token")]
    UnknownKey,
    /// The ID token's signature does not verify.
    #[error("the ID token's signature is invalid")]
    BadSignature,
    /// `iss` is not the discovered issuer.
    #[error("the ID token was issued by another issuer")]
    WrongIssuer,
    /// `aud` does not contain our client id.
    #[error("the ID token is not addressed to this client")]
    WrongAudience,
    /// `azp` is not our client id, or is missing while `aud` names several parties.
    #[error("the ID token's authorized party is not this client")]
    WrongAuthorizedParty,
    /// `exp` has passed (beyond the leeway).
    #[error("the ID token has expired")]
    Expired,
    /// `iat` is in the future (beyond the leeway).
    #[error("the ID token is issued in the future; check the clocks")]
    IssuedInFuture,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the ID token is not valid yet; check the clocks")]
    NotYetValid,
    /// `nonce` is not this sign-in attempt's.
    #[error("the ID token's nonce does not match this sign-in attempt")]
    WrongNonce,
    /// A required claim is missing or has the wrong type.
    #[error("the ID token lacks a valid `{0}` claim")]
    MissingClaim(&'static str),
}

/// A sign-in attempt between [`Provider::begin`] and [`Provider::finish`].
///
/// The caller stores it (serialised with `serde_json`) in a short-lived cookie that it seals, so
/// the browser can neither read the PKCE verifier nor change anything. The fields are zeroed
/// when it is dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct PendingLogin {
    /// Expected back with the code; 256 random bits, base64url.
    state: String,
    /// Expected in the ID token; 256 random bits, base64url.
    nonce: String,
    /// The PKCE code verifier (256 random bits, base64url: 43 characters).
    #[serde(serialize_with = "expose_secret")]
    verifier: SecretString,
    /// When [`Provider::begin`] made it, in Unix seconds.
    created_at: i64,
}

fn expose_secret<S: serde::Serializer>(
    secret: &SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

impl PendingLogin {
    /// Whether the attempt is older than [`PENDING_LIFETIME_SECS`] (or dated more than
    /// [`LEEWAY_SECS`] in the future, which no honest cookie is).
    #[must_use]
    pub fn expired(&self, now_unix: i64) -> bool {
        now_unix.saturating_sub(self.created_at) > PENDING_LIFETIME_SECS
            || self.created_at.saturating_sub(now_unix) > LEEWAY_SECS
    }

    /// When the attempt began, in Unix seconds.
    #[must_use]
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// The `state` sent to the provider. Not secret once sent (it travels in the browser's URL);
    /// callers may use it to tell concurrent attempts apart.
    #[must_use]
    pub fn state(&self) -> &str {
        &self.state
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A person the provider vouched for.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The provider's stable identifier of the person (`sub`); unique per issuer.
    pub subject: String,
    /// The `email` claim, when the provider sent one.
    pub email: Option<String>,
    /// True only when the provider sent `email_verified: true`.
    pub email_verified: bool,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject)
            .field("email", &self.email.as_ref().map(|_| "[redacted]"))
            .field("email_verified", &self.email_verified)
            .finish()
    }
}

/// One signing key from the provider's JWKS, ready to verify with.
#[derive(Clone)]
struct CachedKey {
    kid: Option<String>,
    /// The `alg` the JWK restricts itself to, if any.
    alg: Option<KeyAlgorithm>,
    kind: KeyKind,
    key: DecodingKey,
}

/// What a key can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

/// An OpenID provider, discovered: its endpoints, our client credentials and its cached signing
/// keys. Build one at start-up with [`Provider::discover`] and share it (it is `Send + Sync`).
pub struct Provider {
    /// The issuer exactly as the discovery document states it; ID tokens must carry this `iss`.
    issuer: String,
    client_id: String,
    client_secret: SecretString,
    /// Space-joined into `scope`; always includes `openid`.
    scopes: Vec<String>,
    label: Option<String>,
    authorization_endpoint: Url,
    token_endpoint: Url,
    jwks_uri: Url,
    /// Replaced wholesale when a token names a `kid` we do not know. Never held across an await.
    keys: RwLock<Vec<CachedKey>>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scopes", &self.scopes)
            .field(
                "authorization_endpoint",
                &self.authorization_endpoint.as_str(),
            )
            .field("token_endpoint", &self.token_endpoint.as_str())
            .field("jwks_uri", &self.jwks_uri.as_str())
            .field("keys", &keys)
            .finish()
    }
}

/// The parts of the discovery document we use (OpenID Connect Discovery 1.0 §3).
#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// The token endpoint's success answer (RFC 6749 §5.1); the access token is not read at all.
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct TokenResponse {
    #[serde(default)]
    id_token: Option<String>,
}

/// The token endpoint's error answer (RFC 6749 §5.2).
#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: Option<String>,
}

impl Provider {
    /// Reads the provider's discovery document and key set.
    ///
    /// # Errors
    /// When the issuer is not `https` (outside loopback), the document cannot be fetched, names
    /// another issuer or an insecure endpoint, the provider lacks S256 PKCE or
    /// `client_secret_basic`, or the key set cannot be fetched.
    pub async fn discover(
        settings: &OidcSettings,
        http: &reqwest::Client,
    ) -> Result<Provider, OidcError> {
        check_transport(&settings.issuer, "the issuer")?;
        if settings.issuer.query().is_some() || settings.issuer.fragment().is_some() {
            return Err(OidcError::InvalidUrl {
                what: "the issuer",
                reason: "must not have a query or fragment",
            });
        }
        if settings.client_id.is_empty() {
            return Err(OidcError::Config("client_id is empty"));
        }
        if settings.client_secret.expose_secret().is_empty() {
            return Err(OidcError::Config("client_secret is empty"));
        }
        let configured = settings.issuer.as_str().trim_end_matches('/');
        let discovery_url = Url::parse(&format!("{configured}/.well-known/openid-configuration"))
            .map_err(|_| OidcError::InvalidUrl {
            what: "the issuer",
            reason: "cannot form the discovery URL",
        })?;
        let body = fetch(http.get(discovery_url), "discovery").await?;
        let document: DiscoveryDocument =
            serde_json::from_slice(&body).map_err(|_| OidcError::BadResponse {
                endpoint: "discovery",
            })?;
        if document.issuer.trim_end_matches('/') != configured {
            return Err(OidcError::IssuerMismatch {
                configured: settings.issuer.to_string(),
                found: printable(&document.issuer, 200),
            });
        }
        let authorization_endpoint = endpoint(
            &document.authorization_endpoint,
            "the authorization endpoint",
        )?;
        let token_endpoint = endpoint(&document.token_endpoint, "the token endpoint")?;
        let jwks_uri = endpoint(&document.jwks_uri, "the JWKS URI")?;
        if let Some(methods) = &document.code_challenge_methods_supported {
            if !methods.iter().any(|m| m == "S256") {
                return Err(OidcError::UnsupportedProvider(
                    "it does not offer PKCE with S256 (code_challenge_methods_supported)",
                ));
            }
        }
        if let Some(methods) = &document.token_endpoint_auth_methods_supported {
            if !methods.iter().any(|m| m == "client_secret_basic") {
                return Err(OidcError::UnsupportedProvider(
                    "it does not accept client_secret_basic (token_endpoint_auth_methods_supported)",
                ));
            }
        }
        let keys = fetch_keys(http, &jwks_uri).await?;
        let mut scopes = settings.scopes.clone();
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".to_owned());
        }
        Ok(Provider {
            issuer: document.issuer.clone(),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            scopes,
            label: settings.label.clone(),
            authorization_endpoint,
            token_endpoint,
            jwks_uri,
            keys: RwLock::new(keys),
        })
    }

    /// The issuer as the provider states it (the `iss` of its ID tokens).
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The sign-in button's text: the configured label, or a generic one.
    #[must_use]
    pub fn label(&self) -> &str {
        self.label
            .as_deref()
            .unwrap_or("Sign in with single sign-on")
    }

    /// A fresh sign-in attempt: random state (32 bytes, base64url), nonce and PKCE verifier,
    /// and the authorize URL (with the S256 challenge) to send the browser to.
    ///
    /// `redirect_uri` must be registered with the provider and passed again to
    /// [`Provider::finish`].
    #[must_use]
    pub fn begin(&self, redirect_uri: &str) -> (Url, PendingLogin) {
        let pending = PendingLogin {
            state: random_token(),
            nonce: random_token(),
            verifier: SecretString::from(random_token()),
            created_at: now_unix(),
        };
        let challenge = pkce_challenge(pending.verifier.expose_secret());
        let mut url = self.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.scopes.join(" "))
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        (url, pending)
    }

    /// Completes a sign-in attempt: checks `returned_state` against the pending login, redeems
    /// `code` at the token endpoint (`client_secret_basic`, with the PKCE verifier) and validates
    /// the ID token (see the module documentation for every check).
    ///
    /// # Errors
    /// When any check fails; see [`OidcError`].
    pub async fn finish(
        &self,
        http: &reqwest::Client,
        pending: &PendingLogin,
        redirect_uri: &str,
        code: &str,
        returned_state: &str,
    ) -> Result<Identity, OidcError> {
        if !bool::from(pending.state.as_bytes().ct_eq(returned_state.as_bytes())) {
            return Err(OidcError::StateMismatch);
        }
        if pending.expired(now_unix()) {
            return Err(OidcError::LoginExpired);
        }
        if code.is_empty() {
            return Err(OidcError::MissingCode);
        }
        let id_token = self.redeem(http, pending, redirect_uri, code).await?;
        let claims = self.verified_claims(http, &id_token).await?;
        check_claims(
            &claims,
            &Expected {
                issuer: &self.issuer,
                client_id: &self.client_id,
                nonce: &pending.nonce,
            },
            now_unix(),
        )
    }

    /// Exchanges the code for an ID token at the token endpoint.
    async fn redeem(
        &self,
        http: &reqwest::Client,
        pending: &PendingLogin,
        redirect_uri: &str,
        code: &str,
    ) -> Result<Zeroizing<String>, OidcError> {
        let request = http
            .post(self.token_endpoint.clone())
            .header(AUTHORIZATION, self.basic_authorization()?)
            .header(ACCEPT, "application/json")
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", pending.verifier.expose_secret()),
            ]);
        let response = request.send().await.map_err(|e| OidcError::Unreachable {
            endpoint: "token",
            source: e.without_url(),
        })?;
        let status = response.status();
        let body = Zeroizing::new(read_capped(response, "token").await?);
        if !status.is_success() {
            let error = serde_json::from_slice::<TokenError>(&body)
                .ok()
                .and_then(|e| e.error)
                .filter(|code| is_error_code(code));
            return Err(OidcError::TokenRejected {
                status: status.as_u16(),
                error,
            });
        }
        let mut answer: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| OidcError::BadResponse { endpoint: "token" })?;
        answer
            .id_token
            .take()
            .map(Zeroizing::new)
            .ok_or(OidcError::BadResponse { endpoint: "token" })
    }

    /// `Basic base64(urlencode(client_id):urlencode(client_secret))` (RFC 6749 §2.3.1), marked
    /// sensitive so that no HTTP-level logging prints it.
    fn basic_authorization(&self) -> Result<HeaderValue, OidcError> {
        let id: String = url::form_urlencoded::byte_serialize(self.client_id.as_bytes()).collect();
        let secret: Zeroizing<String> = Zeroizing::new(
            url::form_urlencoded::byte_serialize(self.client_secret.expose_secret().as_bytes())
                .collect(),
        );
        let pair = Zeroizing::new(format!("{id}:{}", secret.as_str()));
        let header = Zeroizing::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
        ));
        let mut value = HeaderValue::from_str(&header)
            .map_err(|_| OidcError::Config("client credentials cannot form a header"))?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Verifies the ID token's signature and returns its claims (not yet checked).
    async fn verified_claims(
        &self,
        http: &reqwest::Client,
        token: &str,
    ) -> Result<Map<String, Value>, OidcError> {
        let alg = token_algorithm(token)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| OidcError::MalformedIdToken)?;
        let kid = header.kid.as_deref();
        let key = match self.find_key(kid, alg) {
            Some(key) => key,
            None => {
                // Providers rotate keys; an unknown kid may be a new one. Refetch once.
                let fresh = fetch_keys(http, &self.jwks_uri).await?;
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                self.find_key(kid, alg).ok_or(OidcError::UnknownKey)?
            }
        };
        let mut validation = Validation::new(alg);
        // Only the signature here; check_claims checks the claims, all of them, with our leeway.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => OidcError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
                | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_)
                | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => OidcError::UnknownKey,
                _ => OidcError::MalformedIdToken,
            })?;
        Ok(data.claims)
    }

    /// The cached key for this `kid` and algorithm; without a `kid`, the only key that fits.
    fn find_key(&self, kid: Option<&str>, alg: Algorithm) -> Option<CachedKey> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let mut fitting = keys.iter().filter(|k| key_fits(k, alg));
        match kid {
            Some(kid) => fitting.find(|k| k.kid.as_deref() == Some(kid)).cloned(),
            None => {
                let first = fitting.next()?;
                if fitting.next().is_some() {
                    None
                } else {
                    Some(first.clone())
                }
            }
        }
    }
}

/// What the ID token's claims must say.
struct Expected<'a> {
    issuer: &'a str,
    client_id: &'a str,
    nonce: &'a str,
}

/// Checks an ID token's claims (signature already verified) and extracts the identity.
fn check_claims(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
    now: i64,
) -> Result<Identity, OidcError> {
    let issuer = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(OidcError::MissingClaim("iss"))?;
    if issuer != expected.issuer {
        return Err(OidcError::WrongIssuer);
    }

    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<&str>>>()
            .ok_or(OidcError::MissingClaim("aud"))?,
        _ => return Err(OidcError::MissingClaim("aud")),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(OidcError::WrongAudience);
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == expected.client_id => {}
        None if audiences.len() == 1 => {}
        _ => return Err(OidcError::WrongAuthorizedParty),
    }

    let exp = claims
        .get("exp")
        .and_then(numeric_date)
        .ok_or(OidcError::MissingClaim("exp"))?;
    if now > exp.saturating_add(LEEWAY_SECS) {
        return Err(OidcError::Expired);
    }
    let iat = claims
        .get("iat")
        .and_then(numeric_date)
        .ok_or(OidcError::MissingClaim("iat"))?;
    if iat > now.saturating_add(LEEWAY_SECS) {
        return Err(OidcError::IssuedInFuture);
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = numeric_date(nbf).ok_or(OidcError::MissingClaim("nbf"))?;
        if nbf > now.saturating_add(LEEWAY_SECS) {
            return Err(OidcError::NotYetValid);
        }
    }

    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .ok_or(OidcError::WrongNonce)?;
    if !bool::from(nonce.as_bytes().ct_eq(expected.nonce.as_bytes())) {
        return Err(OidcError::WrongNonce);
    }

    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(OidcError::MissingClaim("sub"))?;
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let email_verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)));
    Ok(Identity {
        subject: subject.to_owned(),
        email,
        email_verified,
    })
}

/// A JSON NumericDate (seconds, possibly fractional) as whole Unix seconds.
fn numeric_date(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.floor() as i64)
    })
}

/// The token's signing algorithm, read from its header before anything else so that `none` and
/// `HS*` are refused by name (jsonwebtoken cannot even represent `none`).
fn token_algorithm(token: &str) -> Result<Algorithm, OidcError> {
    let mut parts = token.split('.');
    let header = parts.next().ok_or(OidcError::MalformedIdToken)?;
    // A JWS has three parts; five would be an encrypted JWT (JWE), which we do not accept.
    if parts.count() != 2 {
        return Err(OidcError::MalformedIdToken);
    }
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| OidcError::MalformedIdToken)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&header).map_err(|_| OidcError::MalformedIdToken)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(OidcError::MalformedIdToken)?;
    match alg {
        "RS256" => Ok(Algorithm::RS256),
        "RS384" => Ok(Algorithm::RS384),
        "RS512" => Ok(Algorithm::RS512),
        "PS256" => Ok(Algorithm::PS256),
        "PS384" => Ok(Algorithm::PS384),
        "PS512" => Ok(Algorithm::PS512),
        "ES256" => Ok(Algorithm::ES256),
        "ES384" => Ok(Algorithm::ES384),
        "EdDSA" => Ok(Algorithm::EdDSA),
        // `none`, the HMAC family and anything unknown.
        other => Err(OidcError::UnsupportedAlgorithm(printable(other, 16))),
    }
}

/// Whether a key may verify a token signed with `alg`.
fn key_fits(key: &CachedKey, alg: Algorithm) -> bool {
    let kind_fits = match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => key.kind == KeyKind::Rsa,
        Algorithm::ES256 => key.kind == KeyKind::EcP256,
        Algorithm::ES384 => key.kind == KeyKind::EcP384,
        Algorithm::EdDSA => key.kind == KeyKind::Ed25519,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => false,
    };
    let alg_fits = key
        .alg
        .is_none_or(|declared| declared_algorithm(declared) == Some(alg));
    kind_fits && alg_fits
}

/// The signature algorithm a JWK's `alg` restricts it to (`None` for key-management or HMAC
/// algorithms, which never verify an ID token here).
fn declared_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    match alg {
        KeyAlgorithm::RS256 => Some(Algorithm::RS256),
        KeyAlgorithm::RS384 => Some(Algorithm::RS384),
        KeyAlgorithm::RS512 => Some(Algorithm::RS512),
        KeyAlgorithm::PS256 => Some(Algorithm::PS256),
        KeyAlgorithm::PS384 => Some(Algorithm::PS384),
        KeyAlgorithm::PS512 => Some(Algorithm::PS512),
        KeyAlgorithm::ES256 => Some(Algorithm::ES256),
        KeyAlgorithm::ES384 => Some(Algorithm::ES384),
        KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
        KeyAlgorithm::HS256
        | KeyAlgorithm::HS384
        | KeyAlgorithm::HS512
        | KeyAlgorithm::RSA1_5
        | KeyAlgorithm::RSA_OAEP
        | KeyAlgorithm::RSA_OAEP_256 => None,
    }
}

/// Fetches and parses the provider's key set, keeping the signing keys we can use. Keys we
/// cannot parse (unknown types or algorithms) are skipped rather than failing the whole set;
/// symmetric (`oct`) keys and encryption keys are never used.
async fn fetch_keys(http: &reqwest::Client, jwks_uri: &Url) -> Result<Vec<CachedKey>, OidcError> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<Value>,
    }
    let body = fetch(http.get(jwks_uri.clone()), "JWKS").await?;
    let set: RawSet =
        serde_json::from_slice(&body).map_err(|_| OidcError::BadResponse { endpoint: "JWKS" })?;
    Ok(set
        .keys
        .into_iter()
        .filter_map(|raw| serde_json::from_value::<Jwk>(raw).ok())
        .filter_map(|jwk| cached_key(&jwk))
        .collect())
}

fn cached_key(jwk: &Jwk) -> Option<CachedKey> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => KeyKind::EcP256,
            EllipticCurve::P384 => KeyKind::EcP384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            KeyKind::Ed25519
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(CachedKey {
        kid: jwk.common.key_id.clone(),
        alg: jwk.common.key_algorithm,
        kind,
        key,
    })
}

/// GETs (or sends) a request and returns the body of a 2xx answer.
async fn fetch(
    request: reqwest::RequestBuilder,
    endpoint: &'static str,
) -> Result<Vec<u8>, OidcError> {
    let response = request
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| OidcError::Unreachable {
            endpoint,
            source: e.without_url(),
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(OidcError::Status {
            endpoint,
            status: status.as_u16(),
        });
    }
    read_capped(response, endpoint).await
}

/// Reads a response body, refusing one over [`MAX_RESPONSE_BYTES`].
async fn read_capped(
    mut response: reqwest::Response,
    endpoint: &'static str,
) -> Result<Vec<u8>, OidcError> {
    let mut body = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|e| OidcError::Unreachable {
            endpoint,
            source: e.without_url(),
        })?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if body.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
            return Err(OidcError::BadResponse { endpoint });
        }
        body.extend_from_slice(&chunk);
    }
}

/// Parses an endpoint URL from the discovery document and checks its transport.
fn endpoint(text: &str, what: &'static str) -> Result<Url, OidcError> {
    let url = Url::parse(text).map_err(|_| OidcError::InvalidUrl {
        what,
        reason: "is not a valid absolute URL",
    })?;
    check_transport(&url, what)?;
    Ok(url)
}

/// `https`, or `http` to a loopback host; never credentials in the URL.
fn check_transport(url: &Url, what: &'static str) -> Result<(), OidcError> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OidcError::InvalidUrl {
            what,
            reason: "must not contain credentials",
        });
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(OidcError::InsecureUrl {
            what,
            host: url.host_str().unwrap_or("(none)").to_owned(),
        }),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether a provider's `error` is an RFC 6749 error code (`[a-z_]`), safe to repeat in logs.
fn is_error_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 40
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// Provider-supplied text reduced to harmless characters, for error messages.
fn printable(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect()
}

/// 256 random bits from the operating system, base64url without padding (43 characters).
fn random_token() -> String {
    let mut bytes = Zeroizing::new([0u8; RANDOM_BYTES]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    URL_SAFE_NO_PAD.encode(bytes.as_ref())
}

/// The S256 PKCE challenge of a verifier (RFC 7636 §4.2).
fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::simulate::idp::{self, FakeIdpConfig, IdpFault, RunningIdp};
    use std::collections::BTreeMap;

    const CLIENT_ID: &str = "drawbridge-console";
    const CLIENT_SECRET: &str = "client secret: & = +";
    const REDIRECT_URI: &str = "http://127.0.0.1:9/sso/callback";

    fn spawn_idp() -> RunningIdp {
        idp::spawn(
            "127.0.0.1:0".parse().unwrap(),
            FakeIdpConfig {
                client_id: CLIENT_ID.to_owned(),
                client_secret: CLIENT_SECRET.to_owned(),
                redirect_uri: REDIRECT_URI.to_owned(),
            },
        )
        .unwrap()
    }

    fn settings(issuer: &str) -> OidcSettings {
        OidcSettings {
            issuer: Url::parse(issuer).unwrap(),
            client_id: CLIENT_ID.to_owned(),
            client_secret: SecretString::from(CLIENT_SECRET),
            scopes: default_scopes(),
            label: None,
        }
    }

    fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    async fn setup() -> (RunningIdp, Provider, reqwest::Client) {
        let idp = spawn_idp();
        let http = http();
        let provider = Provider::discover(&settings(&idp.url()), &http)
            .await
            .unwrap();
        (idp, provider, http)
    }

    /// Begins a sign-in and follows the browser to `/authorize`; returns the pending login and
    /// the `code` and `state` of the redirect back.
    async fn authorize(
        provider: &Provider,
        http: &reqwest::Client,
    ) -> (PendingLogin, String, String) {
        let (url, pending) = provider.begin(REDIRECT_URI);
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::FOUND);
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(location.starts_with(REDIRECT_URI), "{location}");
        let back = Url::parse(location).unwrap();
        let param = |name: &str| {
            back.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| panic!("no {name} in the redirect"))
        };
        (pending, param("code"), param("state"))
    }

    async fn sign_in(provider: &Provider, http: &reqwest::Client) -> Result<Identity, OidcError> {
        let (pending, code, state) = authorize(provider, http).await;
        provider
            .finish(http, &pending, REDIRECT_URI, &code, &state)
            .await
    }

    #[tokio::test]
    async fn full_flow_yields_the_verified_identity() {
        let (idp, provider, http) = setup().await;
        idp.sign_in_as("user-42", "alice@example.com", true);

        let (url, pending) = provider.begin(REDIRECT_URI);
        let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["client_id"], CLIENT_ID);
        assert_eq!(query["scope"], "openid email");
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["state"], pending.state);
        assert_eq!(query["state"].len(), 43, "32 bytes, base64url");
        assert_eq!(
            query["code_challenge"],
            pkce_challenge(pending.verifier.expose_secret())
        );

        // The pending login travels in a cookie: it must survive serde_json.
        let (pending, code, state) = authorize(&provider, &http).await;
        let cookie = serde_json::to_string(&pending).unwrap();
        let pending: PendingLogin = serde_json::from_str(&cookie).unwrap();

        let identity = provider
            .finish(&http, &pending, REDIRECT_URI, &code, &state)
            .await
            .unwrap();
        assert_eq!(
            identity,
            Identity {
                subject: "user-42".to_owned(),
                email: Some("alice@example.com".to_owned()),
                email_verified: true,
            }
        );

        idp.sign_in_as("user-43", "bob@example.com", false);
        let identity = sign_in(&provider, &http).await.unwrap();
        assert_eq!(identity.subject, "user-43");
        assert!(!identity.email_verified);
    }

    /// Whether an error is the one a case expects.
    type Expectation = fn(&OidcError) -> bool;

    #[tokio::test]
    async fn every_fault_of_the_provider_is_refused() {
        let (idp, provider, http) = setup().await;
        assert!(sign_in(&provider, &http).await.is_ok(), "control: no fault");
        let cases: [(IdpFault, Expectation); 8] = [
            (IdpFault::WrongAudience, |e| {
                matches!(e, OidcError::WrongAudience)
            }),
            (IdpFault::WrongIssuer, |e| {
                matches!(e, OidcError::WrongIssuer)
            }),
            (IdpFault::WrongNonce, |e| matches!(e, OidcError::WrongNonce)),
            (IdpFault::Expired, |e| matches!(e, OidcError::Expired)),
            (IdpFault::BadSignature, |e| {
                matches!(e, OidcError::BadSignature)
            }),
            (IdpFault::UnknownKey, |e| matches!(e, OidcError::UnknownKey)),
            (
                IdpFault::UnsignedToken,
                |e| matches!(e, OidcError::UnsupportedAlgorithm(alg) if alg == "none"),
            ),
            (
                IdpFault::SymmetricSignature,
                |e| matches!(e, OidcError::UnsupportedAlgorithm(alg) if alg == "HS256"),
            ),
        ];
        for (fault, expected) in cases {
            idp.set_fault(Some(fault));
            let error = sign_in(&provider, &http).await.unwrap_err();
            assert!(expected(&error), "{fault:?} gave {error:?}");
        }
        idp.set_fault(None);
        assert!(
            sign_in(&provider, &http).await.is_ok(),
            "control: fault cleared"
        );
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_the_key_set_once() {
        let (idp, provider, http) = setup().await;
        assert_eq!(idp.jwks_fetches(), 1, "discovery fetched the keys");
        sign_in(&provider, &http).await.unwrap();
        assert_eq!(idp.jwks_fetches(), 1, "known kid: the cache serves");

        idp.set_fault(Some(IdpFault::UnknownKey));
        assert!(matches!(
            sign_in(&provider, &http).await,
            Err(OidcError::UnknownKey)
        ));
        assert_eq!(idp.jwks_fetches(), 2, "one refetch, then refused");

        idp.set_fault(None);
        idp.rotate_key().unwrap();
        sign_in(&provider, &http).await.unwrap();
        assert_eq!(idp.jwks_fetches(), 3, "rotation followed with one refetch");
        sign_in(&provider, &http).await.unwrap();
        assert_eq!(idp.jwks_fetches(), 3);
    }

    #[tokio::test]
    async fn a_wrong_state_is_refused() {
        let (_idp, provider, http) = setup().await;
        let (pending, code, state) = authorize(&provider, &http).await;
        let (_, other) = provider.begin(REDIRECT_URI);
        for wrong in [other.state.as_str(), "", &state[..42]] {
            let result = provider
                .finish(&http, &pending, REDIRECT_URI, &code, wrong)
                .await;
            assert!(
                matches!(result, Err(OidcError::StateMismatch)),
                "{result:?}"
            );
        }
        // The code was never sent, so the right state still works.
        provider
            .finish(&http, &pending, REDIRECT_URI, &code, &state)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_replayed_code_is_refused() {
        let (_idp, provider, http) = setup().await;
        let (pending, code, state) = authorize(&provider, &http).await;
        provider
            .finish(&http, &pending, REDIRECT_URI, &code, &state)
            .await
            .unwrap();
        let replay = provider
            .finish(&http, &pending, REDIRECT_URI, &code, &state)
            .await;
        assert!(
            matches!(&replay, Err(OidcError::TokenRejected { status: 400, error: Some(e) }) if e == "invalid_grant"),
            "{replay:?}"
        );
    }

    #[tokio::test]
    async fn a_wrong_pkce_verifier_is_refused() {
        let (_idp, provider, http) = setup().await;
        let (pending, code, state) = authorize(&provider, &http).await;
        // Another attempt's verifier, with this attempt's state and nonce: only PKCE differs.
        let (_, mut other) = provider.begin(REDIRECT_URI);
        other.state = pending.state.clone();
        other.nonce = pending.nonce.clone();
        let result = provider
            .finish(&http, &other, REDIRECT_URI, &code, &state)
            .await;
        assert!(
            matches!(&result, Err(OidcError::TokenRejected { status: 400, error: Some(e) }) if e == "invalid_grant"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_mismatched_redirect_uri_or_client_secret_is_refused() {
        let (idp, provider, http) = setup().await;
        let (pending, code, state) = authorize(&provider, &http).await;
        let result = provider
            .finish(
                &http,
                &pending,
                "http://127.0.0.1:9/elsewhere",
                &code,
                &state,
            )
            .await;
        assert!(
            matches!(&result, Err(OidcError::TokenRejected { status: 400, error: Some(e) }) if e == "invalid_grant"),
            "{result:?}"
        );

        let mut wrong = settings(&idp.url());
        wrong.client_secret = SecretString::from("not the secret");
        let impostor = Provider::discover(&wrong, &http).await.unwrap();
        let result = sign_in(&impostor, &http).await;
        assert!(
            matches!(&result, Err(OidcError::TokenRejected { status: 401, error: Some(e) }) if e == "invalid_client"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_expired_pending_login_is_refused() {
        let (_idp, provider, http) = setup().await;
        let (mut pending, code, state) = authorize(&provider, &http).await;
        pending.created_at -= PENDING_LIFETIME_SECS + 1;
        let result = provider
            .finish(&http, &pending, REDIRECT_URI, &code, &state)
            .await;
        assert!(matches!(result, Err(OidcError::LoginExpired)), "{result:?}");
        pending.created_at += 2;
        provider
            .finish(&http, &pending, REDIRECT_URI, &code, &state)
            .await
            .unwrap();
    }

    #[test]
    fn provider_and_its_futures_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: &T) {}
        let provider = offline_provider();
        send_sync(&provider);
        let http = http();
        let (_, pending) = provider.begin(REDIRECT_URI);
        send(&provider.finish(&http, &pending, REDIRECT_URI, "code", "state"));
        send(&Provider::discover(
            &settings("https://login.example.com/"),
            &http,
        ));
    }

    #[test]
    fn pending_login_expiry_bounds() {
        let (_, pending) = offline_provider().begin(REDIRECT_URI);
        let t = pending.created_at;
        assert!(!pending.expired(t));
        assert!(!pending.expired(t + PENDING_LIFETIME_SECS));
        assert!(pending.expired(t + PENDING_LIFETIME_SECS + 1));
        assert!(!pending.expired(t - LEEWAY_SECS));
        assert!(pending.expired(t - LEEWAY_SECS - 1));
    }

    #[tokio::test]
    async fn a_plain_http_issuer_is_refused_unless_loopback() {
        let http = http();
        for issuer in [
            "http://login.example.com/",
            "http://10.0.0.1/",
            "ftp://login.example.com/",
        ] {
            let result = Provider::discover(&settings(issuer), &http).await;
            assert!(
                matches!(
                    result,
                    Err(OidcError::InsecureUrl {
                        what: "the issuer",
                        ..
                    })
                ),
                "{issuer}: {result:?}"
            );
        }
        let result =
            Provider::discover(&settings("https://user:pw@login.example.com/"), &http).await;
        assert!(
            matches!(result, Err(OidcError::InvalidUrl { .. })),
            "{result:?}"
        );
        for ok in [
            "https://login.example.com/",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://localhost/",
            "http://LOCALHOST:1/",
        ] {
            assert!(
                check_transport(&Url::parse(ok).unwrap(), "the issuer").is_ok(),
                "{ok}"
            );
        }
    }

    #[tokio::test]
    async fn discovery_refuses_another_issuer_and_tolerates_a_trailing_slash() {
        let idp = spawn_idp();
        let http = http();
        // Url always keeps the trailing slash; the fake states its issuer without one.
        let configured = settings(&format!("{}/", idp.url()));
        assert!(configured.issuer.as_str().ends_with('/'));
        let provider = Provider::discover(&configured, &http).await.unwrap();
        assert_eq!(provider.issuer(), idp.url());

        // Same server, named differently: the document names 127.0.0.1, not localhost.
        let alias = idp.url().replace("127.0.0.1", "localhost");
        let result = Provider::discover(&settings(&alias), &http).await;
        assert!(
            matches!(result, Err(OidcError::IssuerMismatch { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn settings_deserialise_with_defaults() {
        let settings: OidcSettings = toml::from_str(
            r#"
            issuer = "https://login.example.com/"
            client_id = "abc"
            client_secret = "xyz"
            "#,
        )
        .unwrap();
        assert_eq!(settings.scopes, ["openid", "email"]);
        assert_eq!(settings.label, None);
        assert_eq!(settings.issuer.host_str(), Some("login.example.com"));
        assert!(toml::from_str::<OidcSettings>(
            "issuer = \"not a url\"\nclient_id = \"a\"\nclient_secret = \"b\""
        )
        .is_err());
    }

    /// A provider that never talks to the network, for tests of pure logic.
    fn offline_provider() -> Provider {
        Provider {
            issuer: "https://login.example.com".to_owned(),
            client_id: CLIENT_ID.to_owned(),
            client_secret: SecretString::from(CLIENT_SECRET),
            scopes: default_scopes(),
            label: None,
            authorization_endpoint: Url::parse("https://login.example.com/authorize").unwrap(),
            token_endpoint: Url::parse("https://login.example.com/token").unwrap(),
            jwks_uri: Url::parse("https://login.example.com/jwks").unwrap(),
            keys: RwLock::new(Vec::new()),
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    const NOW: i64 = 1_700_000_000;

    fn good_claims() -> Value {
        serde_json::json!({
            "iss": "https://login.example.com",
            "sub": "user-1",
            "aud": CLIENT_ID,
            "exp": NOW + 300,
            "iat": NOW,
            "nonce": "n-1",
            "email": "carol@example.com",
            "email_verified": true,
        })
    }

    fn check(value: Value) -> Result<Identity, OidcError> {
        check_claims(
            &claims(value),
            &Expected {
                issuer: "https://login.example.com",
                client_id: CLIENT_ID,
                nonce: "n-1",
            },
            NOW,
        )
    }

    #[test]
    fn claims_are_checked_one_by_one() {
        assert!(check(good_claims()).is_ok());
        let with = |key: &str, value: Value| {
            let mut c = good_claims();
            c[key] = value;
            check(c)
        };
        let without = |key: &str| {
            let mut c = good_claims();
            c.as_object_mut().unwrap().remove(key);
            check(c)
        };
        // Issuer: exact.
        assert!(matches!(
            with("iss", "https://login.example.com/".into()),
            Err(OidcError::WrongIssuer)
        ));
        assert!(matches!(
            without("iss"),
            Err(OidcError::MissingClaim("iss"))
        ));
        // Audience: contains us; azp is ours when present, and required with several audiences.
        assert!(with("aud", serde_json::json!(["other", CLIENT_ID,])).is_err());
        assert!(matches!(
            with("aud", serde_json::json!(["other", CLIENT_ID])),
            Err(OidcError::WrongAuthorizedParty)
        ));
        let mut several = good_claims();
        several["aud"] = serde_json::json!(["other", CLIENT_ID]);
        several["azp"] = CLIENT_ID.into();
        assert!(check(several.clone()).is_ok());
        several["azp"] = "other".into();
        assert!(matches!(
            check(several),
            Err(OidcError::WrongAuthorizedParty)
        ));
        assert!(matches!(
            with("azp", "other".into()),
            Err(OidcError::WrongAuthorizedParty)
        ));
        assert!(matches!(
            with("aud", serde_json::json!(["other"])),
            Err(OidcError::WrongAudience)
        ));
        assert!(matches!(
            with("aud", "other".into()),
            Err(OidcError::WrongAudience)
        ));
        assert!(matches!(
            without("aud"),
            Err(OidcError::MissingClaim("aud"))
        ));
        // Times, with 60 s of leeway either way.
        assert!(with("exp", (NOW - LEEWAY_SECS).into()).is_ok());
        assert!(matches!(
            with("exp", (NOW - LEEWAY_SECS - 1).into()),
            Err(OidcError::Expired)
        ));
        assert!(matches!(
            without("exp"),
            Err(OidcError::MissingClaim("exp"))
        ));
        assert!(with("iat", (NOW + LEEWAY_SECS).into()).is_ok());
        assert!(matches!(
            with("iat", (NOW + LEEWAY_SECS + 1).into()),
            Err(OidcError::IssuedInFuture)
        ));
        assert!(matches!(
            without("iat"),
            Err(OidcError::MissingClaim("iat"))
        ));
        assert!(with("nbf", (NOW + LEEWAY_SECS).into()).is_ok());
        assert!(matches!(
            with("nbf", (NOW + LEEWAY_SECS + 1).into()),
            Err(OidcError::NotYetValid)
        ));
        assert!(with("exp", serde_json::json!((NOW + 10) as f64 + 0.5)).is_ok());
        // Nonce and subject.
        assert!(matches!(
            with("nonce", "n-2".into()),
            Err(OidcError::WrongNonce)
        ));
        assert!(matches!(without("nonce"), Err(OidcError::WrongNonce)));
        assert!(matches!(
            with("sub", "".into()),
            Err(OidcError::MissingClaim("sub"))
        ));
        assert!(matches!(
            without("sub"),
            Err(OidcError::MissingClaim("sub"))
        ));
        // E-mail: only when present; verified only when exactly `true`.
        assert_eq!(without("email").unwrap().email, None);
        assert!(
            !with("email_verified", "true".into())
                .unwrap()
                .email_verified
        );
        assert!(!with("email_verified", false.into()).unwrap().email_verified);
        assert!(!without("email_verified").unwrap().email_verified);
    }

    #[test]
    fn none_hmac_and_encrypted_tokens_are_refused_by_header() {
        let token = |header: &str| format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header));
        for alg in ["none", "HS256", "HS512", "RSA-OAEP"] {
            let result = token_algorithm(&token(&format!(r#"{{"alg":"{alg}"}}"#)));
            assert!(
                matches!(&result, Err(OidcError::UnsupportedAlgorithm(a)) if a == alg),
                "{alg}: {result:?}"
            );
        }
        assert!(matches!(
            token_algorithm(&token(r#"{"alg":"ES256"}"#)),
            Ok(Algorithm::ES256)
        ));
        assert!(matches!(
            token_algorithm(&token(r#"{"alg":"RS256"}"#)),
            Ok(Algorithm::RS256)
        ));
        let jwe = format!(
            "{}.a.b.c.d",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#)
        );
        assert!(matches!(
            token_algorithm(&jwe),
            Err(OidcError::MalformedIdToken)
        ));
        assert!(matches!(
            token_algorithm("garbage"),
            Err(OidcError::MalformedIdToken)
        ));
    }

    #[tokio::test]
    async fn nothing_secret_appears_in_debug_output_or_errors() {
        let (idp, provider, http) = setup().await;
        idp.sign_in_as("user-7", "dave@example.com", true);
        let (pending, code, state) = authorize(&provider, &http).await;
        let identity = provider
            .finish(&http, &pending, REDIRECT_URI, &code, &state)
            .await
            .unwrap();
        let debug = format!("{provider:?} {pending:?} {identity:?}");
        for secret in [
            CLIENT_SECRET,
            pending.verifier.expose_secret(),
            &pending.nonce,
            "dave@example.com",
        ] {
            assert!(!debug.contains(secret), "{debug}");
        }
        let mut errors = Vec::new();
        for fault in [IdpFault::WrongNonce, IdpFault::BadSignature] {
            idp.set_fault(Some(fault));
            let (pending, code, state) = authorize(&provider, &http).await;
            let error = provider
                .finish(&http, &pending, REDIRECT_URI, &code, &state)
                .await
                .unwrap_err();
            errors.push((error.to_string(), code));
            let replay = provider
                .finish(
                    &http,
                    &pending,
                    REDIRECT_URI,
                    &errors[errors.len() - 1].1,
                    &state,
                )
                .await
                .unwrap_err();
            errors.push((replay.to_string(), state));
        }
        for (message, code_or_state) in &errors {
            assert!(!message.contains(code_or_state.as_str()), "{message}");
            assert!(!message.contains("dave@example.com"), "{message}");
            assert!(!message.contains(CLIENT_SECRET), "{message}");
        }
    }
}
