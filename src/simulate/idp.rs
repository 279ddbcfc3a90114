//! A fake OpenID Connect provider, for tests and demonstrations of the staff console's single
//! sign-on ([`crate::accounts::oidc`]). It implements the authorization code flow with PKCE as
//! a real provider would, minus the login form: `/authorize` signs in whoever
//! [`RunningIdp::sign_in_as`] last named.
//!
//! | route | what |
//! |---|---|
//! | `GET /.well-known/openid-configuration` | discovery; the issuer is the fake's own URL |
//! | `GET /authorize` | checks `client_id`, `redirect_uri` (exact), `response_type=code`, `scope` has `openid`, `state`, `nonce`, `code_challenge` with `code_challenge_method=S256`; then 302 to `redirect_uri?code=…&state=…` |
//! | `POST /token` | `client_secret_basic`; `grant_type=authorization_code`; the code is single-use and lives 60 s; `redirect_uri` and the PKCE verifier must match. Errors are RFC 6749 §5.2 JSON (`{"error": "invalid_grant"}`, 400; `invalid_client`, 401) |
//! | `GET /jwks` | the public signing key (EC P-256) |
//!
//! ID tokens are signed ES256 with a P-256 key generated at spawn (kid `fake-idp-1`) and carry
//! `iss`, `sub`, `aud`, `exp` (5 minutes), `iat`, `nonce`, `email` and `email_verified`.
//! [`RunningIdp::set_fault`] makes the next tokens wrong in one chosen way ([`IdpFault`]), so tests
//! can check that the relying party refuses them; [`RunningIdp::rotate_key`] replaces the key, to
//! exercise key rotation.
//!
//! The fake logs nothing: no codes, tokens or addresses.

use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::{anyhow, Context};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long an authorization code may be redeemed.
const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// ID token lifetime, in seconds.
const ID_TOKEN_LIFETIME_SECS: i64 = 300;

/// The one client the fake knows.
#[derive(Clone)]
pub struct FakeIdpConfig {
    pub client_id: String,
    pub client_secret: String,
    /// The only redirect URI the fake accepts (compared exactly, as providers should).
    pub redirect_uri: String,
}

impl fmt::Debug for FakeIdpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeIdpConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// A way for the fake to get ID tokens wrong. Each applies to every token until cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdpFault {
    /// `aud` names another client.
    WrongAudience,
    /// `iss` names another issuer.
    WrongIssuer,
    /// `nonce` is not the one sent to `/authorize`.
    WrongNonce,
    /// `exp` (and `iat`) lie well in the past.
    Expired,
    /// Signed with a different key under the published `kid`.
    BadSignature,
    /// Signed with a key whose `kid` the JWKS never publishes.
    UnknownKey,
    /// `alg: none`, no signature.
    UnsignedToken,
    /// HS256 with the client secret as the key (the classic algorithm-confusion token).
    SymmetricSignature,
}

/// Who `/authorize` signs in.
#[derive(Debug, Clone)]
struct Person {
    subject: String,
    email: String,
    email_verified: bool,
}

/// A P-256 signing key and its JWK.
struct SigningKey {
    kid: String,
    /// PKCS#8 DER, the form `jsonwebtoken::EncodingKey::from_ec_der` wants.
    pkcs8: Vec<u8>,
    /// The public key's coordinates, base64url.
    x: String,
    y: String,
}

impl SigningKey {
    fn generate(kid: &str) -> anyhow::Result<Self> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow!("cannot generate a P-256 key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow!("cannot load the generated P-256 key"))?;
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let public = pair.public_key().as_ref();
        let (x, y) = match (public.first(), public.get(1..33), public.get(33..65)) {
            (Some(0x04), Some(x), Some(y)) if public.len() == 65 => (x, y),
            _ => return Err(anyhow!("unexpected P-256 public key encoding")),
        };
        Ok(Self {
            kid: kid.to_owned(),
            pkcs8: pkcs8.as_ref().to_vec(),
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        })
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": self.x,
            "y": self.y,
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
        })
    }

    fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8),
        )
        .context("signing an ID token")
    }
}

/// A code `/authorize` issued and `/token` has not yet redeemed.
struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: String,
    person: Person,
    issued: Instant,
}

/// What changes while the fake runs.
struct Inner {
    key: SigningKey,
    /// Bumped by each rotation, for the next kid.
    generation: u32,
    person: Person,
    fault: Option<IdpFault>,
    grants: HashMap<String, Grant>,
}

/// The fake's memory, shared by its handlers and the [`RunningIdp`].
pub struct IdpState {
    issuer: String,
    config: FakeIdpConfig,
    inner: Mutex<Inner>,
    jwks_fetches: AtomicU64,
}

impl fmt::Debug for IdpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdpState")
            .field("issuer", &self.issuer)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl IdpState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake provider.
#[derive(Debug)]
pub struct RunningIdp {
    pub address: SocketAddr,
    pub state: web::Data<IdpState>,
    pub handle: actix_web::dev::ServerHandle,
}

impl RunningIdp {
    /// `http://address`: the issuer, and the base of every endpoint.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Sets who `/authorize` signs in from now on: (subject, email, email_verified).
    pub fn sign_in_as(&self, subject: &str, email: &str, email_verified: bool) {
        self.state.lock().person = Person {
            subject: subject.to_owned(),
            email: email.to_owned(),
            email_verified,
        };
    }

    /// Makes every ID token from now on wrong in the given way; `None` restores correct tokens.
    pub fn set_fault(&self, fault: Option<IdpFault>) {
        self.state.lock().fault = fault;
    }

    /// Replaces the signing key with a new one under a new kid; the JWKS then publishes only the
    /// new key, as after a provider's rotation.
    ///
    /// # Errors
    /// When a key cannot be generated.
    pub fn rotate_key(&self) -> anyhow::Result<()> {
        let mut inner = self.state.lock();
        let generation = inner.generation.saturating_add(1);
        inner.key = SigningKey::generate(&format!("fake-idp-{generation}"))?;
        inner.generation = generation;
        Ok(())
    }

    /// How many times `/jwks` has been fetched.
    #[must_use]
    pub fn jwks_fetches(&self) -> u64 {
        self.state.jwks_fetches.load(Ordering::Relaxed)
    }
}

/// Binds the fake provider and starts serving it on the current runtime (tests: `127.0.0.1:0`).
///
/// # Errors
/// When the address cannot be bound, `redirect_uri` is not an absolute URL, or no key can be
/// generated.
pub fn spawn(listen: SocketAddr, config: FakeIdpConfig) -> anyhow::Result<RunningIdp> {
    url::Url::parse(&config.redirect_uri).context("redirect_uri must be an absolute URL")?;
    let listener = std::net::TcpListener::bind(listen)?;
    let address = listener.local_addr()?;
    let state = web::Data::new(IdpState {
        issuer: format!("http://{address}"),
        config,
        inner: Mutex::new(Inner {
            key: SigningKey::generate("fake-idp-1")?,
            generation: 1,
            person: Person {
                subject: "fake-user-1".to_owned(),
                email: "fake-user-1@example.test".to_owned(),
                email_verified: true,
            },
            fault: None,
            grants: HashMap::new(),
        }),
        jwks_fetches: AtomicU64::new(0),
    });
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(web::PayloadConfig::new(64 * 1024))
            .route(
                "/.well-known/openid-configuration",
                web::get().to(discovery),
            )
            .route("/authorize", web::get().to(authorize))
            .route("/token", web::post().to(token))
            .route("/jwks", web::get().to(jwks))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(RunningIdp {
        address,
        state,
        handle,
    })
}

async fn discovery(state: web::Data<IdpState>) -> HttpResponse {
    let issuer = &state.issuer;
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": ["openid", "email"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "email", "email_verified"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
}

async fn jwks(state: web::Data<IdpState>) -> HttpResponse {
    state.jwks_fetches.fetch_add(1, Ordering::Relaxed);
    let key = state.lock().key.jwk();
    HttpResponse::Ok().json(json!({ "keys": [key] }))
}

/// `GET /authorize`. Errors about the client or redirect URI are shown, not redirected (RFC 6749
/// §4.1.2.1); the rest go back to the client as `?error=…&state=…`.
async fn authorize(
    state: web::Data<IdpState>,
    query: web::Query<BTreeMap<String, String>>,
) -> HttpResponse {
    let param = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    if param("client_id") != Some(state.config.client_id.as_str()) {
        return oauth_error(actix_web::http::StatusCode::BAD_REQUEST, "invalid_client");
    }
    if param("redirect_uri") != Some(state.config.redirect_uri.as_str()) {
        return oauth_error(actix_web::http::StatusCode::BAD_REQUEST, "invalid_request");
    }
    let client_state = param("state");
    let refuse = |error: &str| {
        let mut pairs = vec![("error", error)];
        if let Some(s) = client_state {
            pairs.push(("state", s));
        }
        redirect(&state.config.redirect_uri, &pairs)
    };
    if param("response_type") != Some("code") {
        return refuse("unsupported_response_type");
    }
    if !param("scope").is_some_and(|s| s.split(' ').any(|scope| scope == "openid")) {
        return refuse("invalid_scope");
    }
    let (Some(client_state), Some(nonce), Some(challenge)) =
        (client_state, param("nonce"), param("code_challenge"))
    else {
        return refuse("invalid_request");
    };
    // An S256 challenge is base64url(SHA-256): 43 characters.
    if param("code_challenge_method") != Some("S256")
        || challenge.len() != 43
        || URL_SAFE_NO_PAD.decode(challenge).is_err()
    {
        return refuse("invalid_request");
    }
    let code = random_token();
    {
        let mut inner = state.lock();
        inner
            .grants
            .retain(|_, grant| grant.issued.elapsed() <= CODE_LIFETIME);
        let person = inner.person.clone();
        inner.grants.insert(
            code.clone(),
            Grant {
                redirect_uri: state.config.redirect_uri.clone(),
                challenge: challenge.to_owned(),
                nonce: nonce.to_owned(),
                person,
                issued: Instant::now(),
            },
        );
    }
    redirect(
        &state.config.redirect_uri,
        &[("code", code.as_str()), ("state", client_state)],
    )
}

/// `POST /token` (RFC 6749 §4.1.3, RFC 7636 §4.5).
async fn token(state: web::Data<IdpState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    use actix_web::http::StatusCode;
    if !client_authenticated(&state.config, &req) {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"fake-idp\""))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "error": "invalid_client" }));
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("client_id").is_some_and(|id| id != state.config.client_id) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if field("grant_type") != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let Some(code) = field("code") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    // Removed before any other check: a code is good for one attempt only.
    let grant = state.lock().grants.remove(code);
    let Some(grant) = grant else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    if grant.issued.elapsed() > CODE_LIFETIME || field("redirect_uri") != Some(&grant.redirect_uri)
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let verifier_ok = field("code_verifier").is_some_and(|verifier| {
        (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            && bool::from(
                URL_SAFE_NO_PAD
                    .encode(Sha256::digest(verifier.as_bytes()))
                    .as_bytes()
                    .ct_eq(grant.challenge.as_bytes()),
            )
    });
    if !verifier_ok {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let Ok(id_token) = mint_id_token(&state, &grant) else {
        return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({
            "access_token": random_token(),
            "token_type": "Bearer",
            "id_token": id_token,
            "expires_in": ID_TOKEN_LIFETIME_SECS,
        }))
}

/// Whether the request carries `Authorization: Basic` with the configured client's credentials
/// (each form-urlencoded before base64, RFC 6749 §2.3.1).
fn client_authenticated(config: &FakeIdpConfig, req: &HttpRequest) -> bool {
    let Some(encoded) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((id, secret)) = decoded.split_once(':') else {
        return false;
    };
    let id_ok = form_decode(id) == config.client_id;
    let secret_ok: bool = form_decode(secret)
        .as_bytes()
        .ct_eq(config.client_secret.as_bytes())
        .into();
    id_ok && secret_ok
}

/// Undoes the form-urlencoding of one credential.
fn form_decode(text: &str) -> String {
    let pair = format!("v={text}");
    url::form_urlencoded::parse(pair.as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// The ID token for a redeemed grant, spoiled as the current fault says.
fn mint_id_token(state: &IdpState, grant: &Grant) -> anyhow::Result<String> {
    let inner = state.lock();
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": state.issuer,
        "sub": grant.person.subject,
        "aud": state.config.client_id,
        "exp": now + ID_TOKEN_LIFETIME_SECS,
        "iat": now,
        "nonce": grant.nonce,
        "email": grant.person.email,
        "email_verified": grant.person.email_verified,
    });
    match inner.fault {
        Some(IdpFault::WrongAudience) => claims["aud"] = json!("some-other-client"),
        Some(IdpFault::WrongIssuer) => claims["iss"] = json!("https://impostor.example"),
        Some(IdpFault::WrongNonce) => claims["nonce"] = json!(random_token()),
        Some(IdpFault::Expired) => {
            claims["iat"] = json!(now - 3600);
            claims["exp"] = json!(now - 600);
        }
        _ => {}
    }
    match inner.fault {
        Some(IdpFault::BadSignature) => SigningKey::generate(&inner.key.kid)?.sign(&claims),
        Some(IdpFault::UnknownKey) => SigningKey::generate("unpublished-key")?.sign(&claims),
        Some(IdpFault::UnsignedToken) => {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?);
            Ok(format!("{header}.{payload}."))
        }
        Some(IdpFault::SymmetricSignature) => {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some(inner.key.kid.clone());
            jsonwebtoken::encode(
                &header,
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(state.config.client_secret.as_bytes()),
            )
            .context("signing an ID token")
        }
        _ => inner.key.sign(&claims),
    }
}

/// 302 to `base` with `pairs` added to its query.
fn redirect(base: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    let Ok(mut url) = url::Url::parse(base) else {
        return oauth_error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
        );
    };
    url.query_pairs_mut().extend_pairs(pairs);
    HttpResponse::Found()
        .insert_header((header::LOCATION, url.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// An RFC 6749 §5.2 error answer.
fn oauth_error(status: actix_web::http::StatusCode, error: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "error": error }))
}

/// 256 random bits, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
