//! Console sign-in and the signed-in user's own account.
//!
//! | route | what |
//! |---|---|
//! | `GET /login`, `POST /login` | e-mail and password (rate limited per client address and per account) |
//! | `GET /login/code`, `POST /login/code` | the one-time code, when the user has enrolled one |
//! | `GET /account/password`, `POST /account/password` | change the password (required after a reset or the first admin's first sign-in) |
//! | `GET /account/two-factor`, `POST /account/two-factor` | enrol a one-time-code authenticator (required when an admin says so) |
//! | `POST /logout` | sign out |
//! | `GET /auth/oidc/start`, `GET /auth/oidc/callback` | single sign-on (OpenID Connect, authorization code with PKCE) |
//!
//! A sign-in creates a session at the first stage it still has to pass (one-time code, then
//! enrolment, then password change; see [`Stage`]); each stage passed replaces the session's
//! token. Forms carry a CSRF token: the session's, or before sign-in the one of a short-lived
//! `drawbridge_pre` cookie. The audit trail records every sign-in, failure and account change by
//! user id, never by e-mail address.
//!
//! [`bootstrap_first_admin`] creates the first admin when a database has no users.

use super::{
    bare_page, clear_session_cookie, csrf_field, html_response, page, secure_cookies, see_other,
    session_cookie, stage_page, AnySession, ConsoleError, Staff,
};
use crate::accounts::oidc::{PendingLogin, Provider};
use crate::accounts::{password, totp};
use crate::audit::{self, Actor, Event};
use crate::config::{ConsoleSettings, Settings};
use crate::store::sessions::{self, Stage};
use crate::store::tokens::Role;
use crate::store::users::{self, NewUser, User};
use crate::store::Db;
use crate::vault::{SecretKey, Vault};
use crate::web::AppState;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use anyhow::Context as _;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use maud::{html, Markup};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The cookie holding a signed-out browser's pre-session id (the sign-in form's CSRF token is
/// derived from it).
pub const PRE_COOKIE: &str = "drawbridge_pre";
/// The cookie holding a single-sign-on attempt in flight, sealed.
pub const OIDC_COOKIE: &str = "drawbridge_oidc";
/// The cookie holding a one-time-code secret being enrolled, sealed.
pub const TOTP_COOKIE: &str = "drawbridge_totp";
/// How long the pre-session cookie lives.
const PRE_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// How long an enrolment may take before a new secret is shown.
const ENROLL_LIFETIME_SECS: i64 = 15 * 60;
/// The window over which failures per account are counted.
const ACCOUNT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Wrong one-time codes that end a session.
const MAX_WRONG_CODES: u32 = 5;
/// The one message for an unknown account, a wrong password and a disabled account.
pub const WRONG_CREDENTIALS: &str = "That e-mail address and password do not match an account.";

/// Sign-in state shared by every worker: the rate limiters and the single-sign-on provider,
/// discovered on first use.
pub struct SignIn {
    /// Sign-in attempts per client address.
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Failed sign-ins per account, keyed by [`SignIn::account_key`].
    per_account: DefaultKeyedRateLimiter<AccountKey>,
    /// Accounts whose failure budget is spent, and until when.
    blocked: Mutex<HashMap<AccountKey, Instant>>,
    /// The key of [`SignIn::account_key`]: random per process, held only in memory.
    account_secret: SecretKey,
    /// Wrong one-time codes per session.
    wrong_codes: Mutex<HashMap<String, u32>>,
    /// The discovered provider (discovery is retried until it succeeds).
    provider: RwLock<Option<Arc<Provider>>>,
    /// For the provider's discovery, token and key endpoints.
    http: reqwest::Client,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn").finish_non_exhaustive()
    }
}

/// What the per-account counters are keyed by: a keyed hash of the normalized e-mail address.
type AccountKey = [u8; 32];

/// A refusal for too many attempts: try again after this long.
#[derive(Debug, Clone, Copy)]
struct Wait(Duration);

impl Wait {
    fn seconds(self) -> u64 {
        self.0.as_secs().max(1) + u64::from(self.0.subsec_nanos() > 0)
    }
}

impl SignIn {
    /// Limiters sized from the console settings.
    #[must_use]
    pub fn new(settings: &ConsoleSettings) -> Self {
        let per_minute =
            NonZeroU32::new(settings.sign_in_per_ip_per_minute).unwrap_or(NonZeroU32::MIN);
        let failures =
            NonZeroU32::new(settings.sign_in_failures_per_account).unwrap_or(NonZeroU32::MIN);
        let account_quota = Quota::with_period(ACCOUNT_WINDOW / failures.get())
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(failures);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            per_ip: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(per_minute)),
            per_account: RateLimiter::keyed(account_quota),
            blocked: Mutex::new(HashMap::new()),
            account_secret: SecretKey::random(0),
            wrong_codes: Mutex::new(HashMap::new()),
            provider: RwLock::new(None),
            http,
        }
    }

    /// Counts an attempt from `ip`.
    fn attempt_from(&self, ip: IpAddr) -> Result<(), Wait> {
        self.prune_now_and_then();
        self.per_ip
            .check_key(&ip)
            .map_err(|not_until| Wait(not_until.wait_time_from(DefaultClock::default().now())))
    }

    /// Whether the account's sign-in is paused.
    fn account_blocked(&self, email: &str) -> Result<(), Wait> {
        let key = self.account_key(email);
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        match blocked.get(&key) {
            Some(until) if *until > Instant::now() => Err(Wait(*until - Instant::now())),
            Some(_) => {
                blocked.remove(&key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failure against the account; the one past its budget pauses it (and is refused).
    fn account_failed(&self, email: &str) -> Result<(), Wait> {
        let key = self.account_key(email);
        if let Err(not_until) = self.per_account.check_key(&key) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            self.blocked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key, Instant::now() + wait);
            return Err(Wait(wait));
        }
        Ok(())
    }

    /// The counters' key for an e-mail address (trimmed, lower-cased), whether or not an account
    /// has it. Not the stored blind index: that changes with every blind-index key generation
    /// (`drawbridge keys reindex`), which would hand an attacker a fresh failure budget. The key is
    /// per process and in memory only, so the counters' map holds no value a dictionary search
    /// could turn back into an address.
    fn account_key(&self, email: &str) -> AccountKey {
        self.account_secret
            .mac(email.trim().to_lowercase().as_bytes())
    }

    /// Counts a wrong code in a session; true when the session has had too many.
    fn wrong_code(&self, session_id: &str) -> bool {
        let mut codes = self
            .wrong_codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if codes.len() > 10_000 {
            codes.clear();
        }
        let count = codes.entry(session_id.to_owned()).or_insert(0);
        *count += 1;
        *count >= MAX_WRONG_CODES
    }

    fn forget_codes(&self, session_id: &str) {
        self.wrong_codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(session_id);
    }

    /// Drops recovered keys once the maps grow.
    fn prune_now_and_then(&self) {
        if self.per_ip.len() > 10_000 {
            self.per_ip.retain_recent();
        }
        if self.per_account.len() > 10_000 {
            self.per_account.retain_recent();
        }
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        if blocked.len() > 10_000 {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
        }
    }

    /// The single-sign-on provider, discovered on first use.
    async fn provider(&self, state: &AppState) -> Result<Arc<Provider>, ConsoleError> {
        if let Some(provider) = self
            .provider
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(provider);
        }
        let Some(settings) = &state.console.oidc else {
            return Err(ConsoleError::NotFound("page"));
        };
        match Provider::discover(settings, &self.http).await {
            Ok(provider) => {
                let provider = Arc::new(provider);
                *self
                    .provider
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&provider));
                Ok(provider)
            }
            Err(error) => {
                // OidcError messages name the step, never a secret or an address.
                tracing::error!(%error, "single sign-on: the identity provider could not be discovered");
                Err(ConsoleError::Unavailable)
            }
        }
    }
}

/// Registers the sign-in and account routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login_page))
        .route("/login", web::post().to(login_submit))
        .route("/login/code", web::get().to(code_page))
        .route("/login/code", web::post().to(code_submit))
        .route("/account/password", web::get().to(password_page))
        .route("/account/password", web::post().to(password_submit))
        .route("/account/two-factor", web::get().to(two_factor_page))
        .route("/account/two-factor", web::post().to(two_factor_submit))
        .route("/logout", web::post().to(logout))
        .route("/auth/oidc/start", web::get().to(oidc_start))
        .route("/auth/oidc/callback", web::get().to(oidc_callback));
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// Appends `event` in `tx`, logging (never quoting) a refusal.
pub(super) async fn record(
    conn: &mut sqlx::AnyConnection,
    state: &AppState,
    event: &Event<'_>,
) -> Result<(), ConsoleError> {
    audit::append(
        conn,
        state.vault.audit_key(),
        event,
        &state.clock.timestamp(),
    )
    .await
    .map(|_| ())
    .map_err(|error| {
        tracing::error!(%error, action = event.action, "console: the audit trail refused an event");
        match error {
            audit::AuditError::Database(e) => ConsoleError::database(&e),
            _ => ConsoleError::Internal,
        }
    })
}

/// Appends `event` in a transaction of its own.
async fn record_alone(state: &AppState, event: &Event<'_>) -> Result<(), ConsoleError> {
    let mut tx = state.db.pool().begin().await?;
    record(&mut tx, state, event).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether `next` is a path on this site (not `//host`, not a URL).
fn local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 2000
        && !next.chars().any(|c| c.is_control() || c == '\\')
}

/// A cookie for this site's short-lived state.
fn short_cookie(
    state: &AppState,
    name: &'static str,
    value: String,
    path: &'static str,
    same_site: SameSite,
    lifetime: Duration,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .secure(secure_cookies(state))
        .same_site(same_site)
        .max_age(actix_web::cookie::time::Duration::seconds(
            i64::try_from(lifetime.as_secs()).unwrap_or(600),
        ))
        .finish()
}

/// A cookie that removes `name` at `path`.
fn removal(
    state: &AppState,
    name: &'static str,
    path: &'static str,
    same_site: SameSite,
) -> Cookie<'static> {
    let mut cookie = short_cookie(state, name, String::new(), path, same_site, Duration::ZERO);
    cookie.make_removal();
    cookie
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = Zeroizing::new(vec![0_u8; bytes]);
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    hex::encode(buffer.as_slice())
}

fn forbidden_form() -> ConsoleError {
    ConsoleError::Forbidden(
        "the form has expired or did not come from this console; reload the page and try again"
            .to_owned(),
    )
}

/// Checks a form posted by a session at any stage.
fn check_session_csrf(
    state: &AppState,
    session: &AnySession,
    token: &str,
) -> Result<(), ConsoleError> {
    if state.vault.csrf_matches(&session.session.id, token) {
        Ok(())
    } else {
        Err(forbidden_form())
    }
}

/// The response for too many attempts.
fn too_many(wait: Wait) -> HttpResponse {
    let seconds = wait.seconds();
    let when = if seconds > 90 {
        format!("about {} minutes", seconds.div_ceil(60))
    } else {
        format!("{seconds} seconds")
    };
    let body = html! {
        h1 { "Too many sign-in attempts" }
        p.notice role="alert" { "There have been too many sign-in attempts. Please wait " (when) " and try again." }
        p { a href="/login" { "Back to sign-in" } }
    };
    HttpResponse::TooManyRequests()
        .insert_header((header::RETRY_AFTER, seconds.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/html; charset=utf-8")
        .body(bare_page("Too many attempts", &body).into_string())
}

/// A page with `status`.
pub(super) fn page_with(status: StatusCode, markup: &Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.clone().into_string())
}

/// The stage a new session starts at.
fn first_stage(user: &User, method: &str) -> Stage {
    if user.totp_enrolled {
        Stage::SecondFactor
    } else if user.totp_required {
        Stage::EnrollTotp
    } else {
        after_second_factor(user, method)
    }
}

/// The stage after the second factor (entered or enrolled).
fn after_second_factor(user: &User, method: &str) -> Stage {
    if user.must_change_password && method == "password" && user.password_hash.is_some() {
        Stage::ChangePassword
    } else {
        Stage::SignedIn
    }
}

/// Runs password verification off the async workers (argon2id takes tens of milliseconds).
async fn verify_password(password: SecretString, stored: Option<String>) -> bool {
    web::block(move || password::verify(&password, stored.as_deref()))
        .await
        .unwrap_or(false)
}

/// Hashes a password off the async workers.
pub(super) async fn hash_password(password: SecretString) -> Result<String, ConsoleError> {
    web::block(move || password::hash(&password))
        .await
        .map_err(|_| ConsoleError::Internal)?
        .map_err(|error| {
            tracing::error!(%error, "console: a password could not be hashed");
            ConsoleError::Internal
        })
}

/// Unix seconds on the service's clock.
fn unix_now(state: &AppState) -> u64 {
    u64::try_from(state.clock.now().timestamp()).unwrap_or_default()
}

/// A staff view of a session that is fully signed in (for pages shared by both kinds).
fn as_staff(session: &AnySession) -> Option<Staff> {
    (session.session.stage == Stage::SignedIn).then(|| Staff {
        session: session.session.clone(),
        user: session.user.clone(),
        csrf: session.csrf.clone(),
    })
}

/// A page for a session: the console layout once signed in, else the bare one.
fn session_page(session: &AnySession, title: &str, body: &Markup) -> Markup {
    match as_staff(session) {
        Some(staff) => page(&staff, title, body),
        None => bare_page(title, body),
    }
}

/// Starts a session for `user` (sign-in by `method` succeeded) and audits it.
async fn start_session(
    state: &AppState,
    user: &User,
    method: &str,
) -> Result<(Stage, Zeroizing<String>), ConsoleError> {
    let stage = first_stage(user, method);
    let lifetime = chrono::TimeDelta::from_std(state.console.absolute_timeout)
        .unwrap_or_else(|_| chrono::TimeDelta::hours(12));
    let mut tx = state.db.pool().begin().await?;
    let (session, token) = sessions::create(
        &mut tx,
        &user.id,
        stage,
        method,
        state.clock.now(),
        lifetime,
    )
    .await?;
    record(
        &mut tx,
        state,
        &Event::new(Actor::User(&user.id), "auth.sign_in")
            .subject("user", &user.id)
            .subject("session", &session.id)
            .detail("method", method)
            .detail("stage", stage.as_str()),
    )
    .await?;
    tx.commit().await?;
    Ok((stage, token))
}

/// Audits a failed sign-in.
async fn failed(
    state: &AppState,
    user: Option<&User>,
    reason: &str,
    method: &str,
) -> Result<(), ConsoleError> {
    let event = match user {
        Some(user) => {
            Event::new(Actor::User(&user.id), "auth.sign_in_failed").subject("user", &user.id)
        }
        None => Event::new(Actor::System, "auth.sign_in_failed"),
    };
    record_alone(
        state,
        &event.detail("reason", reason).detail("method", method),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Password sign-in

/// `GET /login` query.
#[derive(Debug, serde::Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login` form.
#[derive(serde::Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: SecretString,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    next: Option<String>,
}

fn login_form(
    state: &AppState,
    csrf: &str,
    next: Option<&str>,
    email: &str,
    error: Option<&str>,
) -> Markup {
    let sso = state.console.oidc.as_ref().map(|o| {
        o.label
            .clone()
            .unwrap_or_else(|| "Sign in with single sign-on".to_owned())
    });
    let sso = sso.map(|label| {
        if label.to_lowercase().starts_with("sign in") {
            label
        } else {
            format!("Sign in with {label}")
        }
    });
    let body = html! {
        h1 { "Sign in to Drawbridge" }
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
        form #login .form method="post" action="/login" {
            (csrf_field(csrf))
            @if let Some(next) = next {
                input type="hidden" name="next" value=(next);
            }
            div.field {
                label for="email" { "E-mail address" }
                input #email type="email" name="email" autocomplete="username" required value=(email);
            }
            div.field {
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
            }
            button #sign-in type="submit" { "Sign in" }
        }
        @if let Some(label) = sso {
            p.sso { a #sso href="/auth/oidc/start" { (label) } }
        }
    };
    bare_page("Sign in", &body)
}

/// The pre-session id from the cookie, when it is well formed.
fn pre_id(req: &HttpRequest) -> Option<String> {
    req.cookie(PRE_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn pre_csrf(state: &AppState, id: &str) -> String {
    state.vault.csrf_token(&format!("pre:{id}"))
}

/// A sign-in page (with a fresh or refreshed pre-session cookie).
fn login_response(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    next: Option<&str>,
    email: &str,
    error: Option<&str>,
) -> HttpResponse {
    let id = pre_id(req).unwrap_or_else(|| random_hex(16));
    let markup = login_form(state, &pre_csrf(state, &id), next, email, error);
    let mut response = page_with(status, &markup);
    let _ = response.add_cookie(&short_cookie(
        state,
        PRE_COOKIE,
        id,
        "/",
        SameSite::Strict,
        PRE_LIFETIME,
    ));
    response
}

async fn login_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<LoginQuery>,
    session: Option<AnySession>,
) -> HttpResponse {
    if let Some(session) = session {
        return see_other(stage_page(session.session.stage));
    }
    let next = query.next.as_deref().filter(|n| local_path(n));
    login_response(&state, &req, StatusCode::OK, next, "", None)
}

fn client_ip(state: &AppState, req: &HttpRequest) -> Option<IpAddr> {
    state
        .limits
        .client_ip(req.peer_addr().map(|a| a.ip()), |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
}

async fn login_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    if let Some(ip) = client_ip(&state, &req) {
        if let Err(wait) = state.sign_in.attempt_from(ip) {
            failed(&state, None, "rate_limited", "password").await?;
            return Ok(too_many(wait));
        }
    }
    let Some(pre) = pre_id(&req) else {
        return Err(forbidden_form());
    };
    if !state
        .vault
        .csrf_matches(&format!("pre:{pre}"), &form.csrf_token)
    {
        return Err(forbidden_form());
    }
    let next = form.next.as_deref().filter(|n| local_path(n));
    let email = form.email.trim().to_lowercase();
    let user = {
        let mut conn = state.db.pool().acquire().await?;
        if email.is_empty() || email.len() > 254 {
            None
        } else {
            users::find_by_email(&mut conn, &state.vault, &email).await?
        }
    };
    if let Err(wait) = state.sign_in.account_blocked(&email) {
        failed(&state, user.as_ref(), "rate_limited", "password").await?;
        return Ok(too_many(wait));
    }
    let matched = verify_password(
        form.password,
        user.as_ref().and_then(|u| u.password_hash.clone()),
    )
    .await;
    let refusal = match &user {
        None => Some("unknown_account"),
        Some(_) if !matched => Some("wrong_password"),
        Some(u) if u.disabled => Some("disabled"),
        Some(_) => None,
    };
    if let Some(reason) = refusal {
        let limited = state.sign_in.account_failed(&email);
        failed(&state, user.as_ref(), reason, "password").await?;
        if let Err(wait) = limited {
            return Ok(too_many(wait));
        }
        return Ok(login_response(
            &state,
            &req,
            StatusCode::UNAUTHORIZED,
            next,
            &email,
            Some(WRONG_CREDENTIALS),
        ));
    }
    let Some(user) = user else {
        return Err(ConsoleError::Internal);
    };
    let (stage, token) = start_session(&state, &user, "password").await?;
    let location = match (stage, next) {
        (Stage::SignedIn, Some(next)) => next,
        _ => stage_page(stage),
    };
    let mut response = see_other(location);
    let _ = response.add_cookie(&session_cookie(&state, &token));
    let _ = response.add_cookie(&removal(&state, PRE_COOKIE, "/", SameSite::Strict));
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// One-time code at sign-in

/// A form with a one-time code.
#[derive(serde::Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf_token: String,
}

fn code_form(csrf: &str, action: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
        form #code-form .form method="post" action=(action) {
            (csrf_field(csrf))
            div.field {
                label for="code" { "Six-digit code from your authenticator app" }
                input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code"
                    pattern="[0-9 ]*" maxlength="8" required;
            }
            button #verify type="submit" { "Continue" }
        }
    }
}

fn code_page_markup(session: &AnySession, error: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Enter your one-time code" }
        (code_form(&session.csrf, "/login/code", error))
    };
    bare_page("One-time code", &body)
}

async fn code_page(session: AnySession) -> Result<HttpResponse, ConsoleError> {
    if session.session.stage != Stage::SecondFactor {
        return Err(ConsoleError::Continue(stage_page(session.session.stage)));
    }
    Ok(html_response(&code_page_markup(&session, None)))
}

async fn code_submit(
    state: web::Data<AppState>,
    session: AnySession,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, ConsoleError> {
    check_session_csrf(&state, &session, &form.csrf_token)?;
    if session.session.stage != Stage::SecondFactor {
        return Err(ConsoleError::Continue(stage_page(session.session.stage)));
    }
    let user = &session.user;
    if let Err(wait) = state.sign_in.account_blocked(&user.email) {
        failed(&state, Some(user), "rate_limited", &session.session.method).await?;
        return Ok(too_many(wait));
    }
    let mut conn = state.db.pool().acquire().await?;
    let secret = users::totp_secret(&mut conn, &state.vault, &user.id).await?;
    let accepted = match &secret {
        Some((secret, last)) => match totp::verify(secret, &form.code, unix_now(&state), *last) {
            Some(step) => users::accept_totp_step(&mut conn, &user.id, step).await?,
            None => false,
        },
        None => false,
    };
    drop(conn);
    if !accepted {
        let limited = state.sign_in.account_failed(&user.email);
        failed(&state, Some(user), "wrong_code", &session.session.method).await?;
        if state.sign_in.wrong_code(&session.session.id) || limited.is_err() {
            state.sign_in.forget_codes(&session.session.id);
            let mut conn = state.db.pool().acquire().await?;
            sessions::delete(&mut conn, &session.session.id).await?;
            let body = html! {
                h1 { "Sign-in ended" }
                p.error role="alert" { "Too many wrong codes. Please sign in again." }
                p { a href="/login" { "Sign in" } }
            };
            let mut response =
                page_with(StatusCode::UNAUTHORIZED, &bare_page("Sign-in ended", &body));
            let _ = response.add_cookie(&clear_session_cookie(&state));
            return Ok(response);
        }
        return Ok(page_with(
            StatusCode::UNAUTHORIZED,
            &code_page_markup(
                &session,
                Some("That code is not right, or was already used. Try the next one."),
            ),
        ));
    }
    state.sign_in.forget_codes(&session.session.id);
    let next = after_second_factor(user, &session.session.method);
    let mut tx = state.db.pool().begin().await?;
    let token = sessions::advance(&mut tx, &session.session.id, next, state.clock.now()).await?;
    record(
        &mut tx,
        &state,
        &Event::new(Actor::User(&user.id), "auth.second_factor")
            .subject("user", &user.id)
            .subject("session", &session.session.id)
            .detail("stage", next.as_str()),
    )
    .await?;
    tx.commit().await?;
    let mut response = see_other(stage_page(next));
    let _ = response.add_cookie(&session_cookie(&state, &token));
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Password change

/// `POST /account/password` form.
#[derive(serde::Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: SecretString,
    #[serde(default)]
    new_password: SecretString,
    #[serde(default)]
    confirm_password: SecretString,
    #[serde(default)]
    csrf_token: String,
}

fn password_markup(session: &AnySession, error: Option<&str>) -> Markup {
    let forced = session.session.stage == Stage::ChangePassword;
    let body = html! {
        h1 { "Change your password" }
        @if session.user.password_hash.is_none() {
            p.notice { "Your password is managed by your identity provider; change it there." }
        } @else {
            @if forced {
                p.notice { "Please choose a new password before you continue." }
            }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form #password-form .form method="post" action="/account/password" {
                (csrf_field(&session.csrf))
                input type="hidden" name="username" autocomplete="username" value=(session.user.email);
                @if !forced {
                    div.field {
                        label for="current_password" { "Current password" }
                        input #current_password type="password" name="current_password" autocomplete="current-password" required;
                    }
                }
                div.field {
                    label for="new_password" { "New password (at least " (password::MIN_CHARS) " characters)" }
                    input #new_password type="password" name="new_password" autocomplete="new-password" required minlength=(password::MIN_CHARS);
                }
                div.field {
                    label for="confirm_password" { "New password again" }
                    input #confirm_password type="password" name="confirm_password" autocomplete="new-password" required;
                }
                button #change-password type="submit" { "Change password" }
            }
        }
    };
    session_page(session, "Password", &body)
}

fn password_stage_ok(stage: Stage) -> Result<(), ConsoleError> {
    match stage {
        Stage::SignedIn | Stage::ChangePassword => Ok(()),
        other => Err(ConsoleError::Continue(stage_page(other))),
    }
}

async fn password_page(session: AnySession) -> Result<HttpResponse, ConsoleError> {
    password_stage_ok(session.session.stage)?;
    Ok(html_response(&password_markup(&session, None)))
}

async fn password_submit(
    state: web::Data<AppState>,
    session: AnySession,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, ConsoleError> {
    check_session_csrf(&state, &session, &form.csrf_token)?;
    password_stage_ok(session.session.stage)?;
    let form = form.into_inner();
    let user = &session.user;
    let Some(stored) = user.password_hash.clone() else {
        return Ok(page_with(
            StatusCode::CONFLICT,
            &password_markup(&session, None),
        ));
    };
    let refuse = |message: &str| {
        Ok(page_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &password_markup(&session, Some(message)),
        ))
    };
    if session.session.stage == Stage::SignedIn {
        if let Err(wait) = state.sign_in.account_blocked(&user.email) {
            return Ok(too_many(wait));
        }
        if !verify_password(form.current_password, Some(stored)).await {
            let _ = state.sign_in.account_failed(&user.email);
            return refuse("The current password is not right.");
        }
    }
    if form.new_password.expose_secret() != form.confirm_password.expose_secret() {
        return refuse("The two new passwords differ.");
    }
    if let Err(why) = password::check_policy(&form.new_password) {
        return refuse(&why.to_string());
    }
    let hash = hash_password(form.new_password).await?;
    let now = state.clock.now();
    let at = crate::store::timestamp(now);
    let mut tx = state.db.pool().begin().await?;
    users::set_password(&mut tx, &user.id, &hash, false, &at).await?;
    let ended = sessions::delete_for_user(&mut tx, &user.id, Some(&session.session.id)).await?;
    let token = sessions::advance(&mut tx, &session.session.id, Stage::SignedIn, now).await?;
    record(
        &mut tx,
        &state,
        &Event::new(Actor::User(&user.id), "user.password")
            .subject("user", &user.id)
            .detail("other_sessions_ended", ended),
    )
    .await?;
    tx.commit().await?;
    let mut response = see_other("/console");
    let _ = response.add_cookie(&session_cookie(&state, &token));
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// One-time-code enrolment

/// The enrolment in progress, sealed in [`TOTP_COOKIE`].
#[derive(serde::Serialize, serde::Deserialize)]
struct PendingTotp {
    user: String,
    secret: String,
    at: i64,
}

impl Drop for PendingTotp {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

fn pending_totp(state: &AppState, req: &HttpRequest, user_id: &str) -> Option<Zeroizing<Vec<u8>>> {
    let cookie = req.cookie(TOTP_COOKIE)?;
    let opened = state.vault.open_cookie(TOTP_COOKIE, cookie.value()).ok()?;
    let pending: PendingTotp = serde_json::from_slice(&opened).ok()?;
    let age = state.clock.now().timestamp() - pending.at;
    if pending.user != user_id || !(0..=ENROLL_LIFETIME_SECS).contains(&age) {
        return None;
    }
    base32::decode(
        base32::Alphabet::Rfc4648 { padding: false },
        &pending.secret,
    )
    .map(Zeroizing::new)
}

fn two_factor_stage_ok(stage: Stage) -> Result<(), ConsoleError> {
    match stage {
        Stage::SignedIn | Stage::EnrollTotp => Ok(()),
        other => Err(ConsoleError::Continue(stage_page(other))),
    }
}

fn enrol_markup(session: &AnySession, secret: &[u8], error: Option<&str>) -> Markup {
    let encoded = totp::base32(secret);
    let uri = totp::otpauth_uri(secret, &session.user.email);
    let body = html! {
        h1 { "Set up two-factor sign-in" }
        @if session.session.stage == Stage::EnrollTotp {
            p.notice { "Your administrator requires a one-time code at sign-in. Set it up to continue." }
        }
        ol {
            li { "Open an authenticator app on your phone and add an account." }
            li {
                "Type in this key: "
                code #totp-secret { (encoded.as_str()) }
            }
            li {
                "Or, where the app accepts a link, use: "
                code #totp-uri .wrap { (uri.as_str()) }
            }
            li { "Enter the six-digit code the app shows." }
        }
        (code_form(&session.csrf, "/account/two-factor", error))
    };
    session_page(session, "Two-factor sign-in", &body)
}

fn enrol_response(
    state: &AppState,
    session: &AnySession,
    secret: &[u8],
    status: StatusCode,
    error: Option<&str>,
) -> Result<HttpResponse, ConsoleError> {
    let pending = PendingTotp {
        user: session.user.id.clone(),
        secret: totp::base32(secret).to_string(),
        at: state.clock.now().timestamp(),
    };
    let json = Zeroizing::new(serde_json::to_vec(&pending).map_err(|_| ConsoleError::Internal)?);
    let sealed = state
        .vault
        .seal_cookie(TOTP_COOKIE, &json)
        .map_err(|error| {
            tracing::error!(%error, "console: cannot seal the enrolment cookie");
            ConsoleError::Internal
        })?;
    let mut response = page_with(status, &enrol_markup(session, secret, error));
    let _ = response.add_cookie(&short_cookie(
        state,
        TOTP_COOKIE,
        sealed,
        "/account/two-factor",
        SameSite::Strict,
        Duration::from_secs(u64::try_from(ENROLL_LIFETIME_SECS).unwrap_or(900)),
    ));
    Ok(response)
}

async fn two_factor_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: AnySession,
) -> Result<HttpResponse, ConsoleError> {
    two_factor_stage_ok(session.session.stage)?;
    if session.user.totp_enrolled {
        let body = html! {
            h1 { "Two-factor sign-in" }
            p.notice #totp-state { "Two-factor sign-in is on: each sign-in asks for a code from your authenticator app." }
            p { "Lost your authenticator? Ask an administrator to reset it." }
        };
        return Ok(html_response(&session_page(
            &session,
            "Two-factor sign-in",
            &body,
        )));
    }
    let secret = pending_totp(&state, &req, &session.user.id).unwrap_or_else(totp::new_secret);
    enrol_response(&state, &session, &secret, StatusCode::OK, None)
}

async fn two_factor_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: AnySession,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, ConsoleError> {
    check_session_csrf(&state, &session, &form.csrf_token)?;
    two_factor_stage_ok(session.session.stage)?;
    if session.user.totp_enrolled {
        return Ok(see_other("/account/two-factor"));
    }
    let Some(secret) = pending_totp(&state, &req, &session.user.id) else {
        let secret = totp::new_secret();
        return enrol_response(
            &state,
            &session,
            &secret,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("The set-up took too long. Add this new key to your app and enter its code."),
        );
    };
    let Some(step) = totp::verify(&secret, &form.code, unix_now(&state), None) else {
        return enrol_response(
            &state,
            &session,
            &secret,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("That code is not right. Check the key in your app and try the next code."),
        );
    };
    let user = &session.user;
    let now = state.clock.now();
    let advance_to = (session.session.stage == Stage::EnrollTotp)
        .then(|| after_second_factor(user, &session.session.method));
    let mut tx = state.db.pool().begin().await?;
    users::enroll_totp(
        &mut tx,
        &state.vault,
        &user.id,
        &secret,
        step,
        &crate::store::timestamp(now),
    )
    .await?;
    let token = match advance_to {
        Some(stage) => Some(sessions::advance(&mut tx, &session.session.id, stage, now).await?),
        None => None,
    };
    record(
        &mut tx,
        &state,
        &Event::new(Actor::User(&user.id), "user.totp_enroll").subject("user", &user.id),
    )
    .await?;
    tx.commit().await?;
    let location = advance_to.map_or("/account/two-factor", stage_page);
    let mut response = see_other(location);
    if let Some(token) = token {
        let _ = response.add_cookie(&session_cookie(&state, &token));
    }
    let _ = response.add_cookie(&removal(
        &state,
        TOTP_COOKIE,
        "/account/two-factor",
        SameSite::Strict,
    ));
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Sign-out

/// A form carrying only its CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

async fn logout(
    state: web::Data<AppState>,
    session: AnySession,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    check_session_csrf(&state, &session, &form.csrf_token)?;
    let mut tx = state.db.pool().begin().await?;
    sessions::delete(&mut tx, &session.session.id).await?;
    record(
        &mut tx,
        &state,
        &Event::new(Actor::User(&session.user.id), "auth.sign_out")
            .subject("user", &session.user.id)
            .subject("session", &session.session.id),
    )
    .await?;
    tx.commit().await?;
    state.sign_in.forget_codes(&session.session.id);
    let mut response = see_other("/login");
    let _ = response.add_cookie(&clear_session_cookie(&state));
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Single sign-on

fn redirect_uri(state: &AppState) -> String {
    format!("{}/auth/oidc/callback", state.public_url)
}

async fn oidc_start(state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    if state.console.oidc.is_none() {
        return Err(ConsoleError::NotFound("page"));
    }
    let provider = state.sign_in.provider(&state).await?;
    let (url, pending) = provider.begin(&redirect_uri(&state));
    let json = Zeroizing::new(serde_json::to_vec(&pending).map_err(|_| ConsoleError::Internal)?);
    let sealed = state
        .vault
        .seal_cookie(OIDC_COOKIE, &json)
        .map_err(|error| {
            tracing::error!(%error, "single sign-on: cannot seal the pending login");
            ConsoleError::Internal
        })?;
    let mut response = see_other(url.as_str());
    let _ = response.add_cookie(&short_cookie(
        &state,
        OIDC_COOKIE,
        sealed,
        "/auth/oidc",
        SameSite::Lax,
        Duration::from_secs(
            u64::try_from(crate::accounts::oidc::PENDING_LIFETIME_SECS).unwrap_or(600),
        ),
    ));
    Ok(response)
}

/// `GET /auth/oidc/callback` query.
#[derive(Debug, serde::Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: Option<String>,
}

fn sso_refused(state: &AppState, status: StatusCode, message: &str) -> HttpResponse {
    let body = html! {
        h1 { "Single sign-on did not work" }
        p.error role="alert" { (message) }
        p { a href="/login" { "Back to sign-in" } }
    };
    let mut response = page_with(status, &bare_page("Sign-in refused", &body));
    let _ = response.add_cookie(&removal(state, OIDC_COOKIE, "/auth/oidc", SameSite::Lax));
    response
}

async fn oidc_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ConsoleError> {
    if state.console.oidc.is_none() {
        return Err(ConsoleError::NotFound("page"));
    }
    if let Some(ip) = client_ip(&state, &req) {
        if let Err(wait) = state.sign_in.attempt_from(ip) {
            failed(&state, None, "rate_limited", "oidc").await?;
            return Ok(too_many(wait));
        }
    }
    let pending: Option<PendingLogin> = req
        .cookie(OIDC_COOKIE)
        .and_then(|c| state.vault.open_cookie(OIDC_COOKIE, c.value()).ok())
        .and_then(|json| serde_json::from_slice(&json).ok());
    let Some(pending) = pending else {
        return Ok(sso_refused(
            &state,
            StatusCode::BAD_REQUEST,
            "The sign-in attempt has expired or was started in another browser. Please start again.",
        ));
    };
    if query.error.is_some() {
        failed(&state, None, "sso_error", "oidc").await?;
        return Ok(sso_refused(
            &state,
            StatusCode::UNAUTHORIZED,
            "The identity provider did not sign you in.",
        ));
    }
    let provider = state.sign_in.provider(&state).await?;
    let identity = match provider
        .finish(
            &state.sign_in.http,
            &pending,
            &redirect_uri(&state),
            &query.code,
            &query.state,
        )
        .await
    {
        Ok(identity) => identity,
        Err(error) => {
            tracing::warn!(%error, "single sign-on refused");
            failed(&state, None, "sso_error", "oidc").await?;
            return Ok(sso_refused(
                &state,
                StatusCode::UNAUTHORIZED,
                "The identity provider's answer could not be accepted. Please start again.",
            ));
        }
    };
    let mut conn = state.db.pool().acquire().await?;
    let mut user = users::find_by_subject(
        &mut conn,
        &state.vault,
        provider.issuer(),
        &identity.subject,
    )
    .await?;
    let mut link = false;
    if user.is_none() && identity.email_verified {
        if let Some(email) = identity.email.as_deref() {
            // A user already linked to another identity is not taken over by a second one.
            user = users::find_by_email(&mut conn, &state.vault, email)
                .await?
                .filter(|u| !u.sso_linked);
            link = user.is_some();
        }
    }
    drop(conn);
    let Some(user) = user else {
        let reason = if identity.email_verified {
            "unknown_account"
        } else {
            "unverified_email"
        };
        failed(&state, None, reason, "oidc").await?;
        return Ok(sso_refused(
            &state,
            StatusCode::FORBIDDEN,
            "There is no Drawbridge account for this identity; ask an admin.",
        ));
    };
    if user.disabled {
        failed(&state, Some(&user), "disabled", "oidc").await?;
        return Ok(sso_refused(
            &state,
            StatusCode::FORBIDDEN,
            "There is no Drawbridge account for this identity; ask an admin.",
        ));
    }
    if link {
        let mut tx = state.db.pool().begin().await?;
        let linked = users::link_subject(
            &mut tx,
            &state.vault,
            &user.id,
            provider.issuer(),
            &identity.subject,
            &state.clock.timestamp(),
        )
        .await?;
        if !linked {
            // Not linked (the account changed or the index keys could not catch up): nothing is
            // recorded as linked, and the sign-in does not go on as if it were.
            tracing::warn!(user = %user.id, "console: a sign-on identity could not be linked");
            return Err(ConsoleError::Internal);
        }
        record(
            &mut tx,
            &state,
            &Event::new(Actor::User(&user.id), "user.sso_link").subject("user", &user.id),
        )
        .await?;
        tx.commit().await?;
    }
    let (stage, token) = start_session(&state, &user, "oidc").await?;
    let target = stage_page(stage);
    // The session cookie is SameSite=Strict and this request came from the provider's site, so
    // the browser would not send it on a redirect; a same-site navigation from this page does.
    let body = html! {
        h1 { "Signed in" }
        p { a #continue href=(target) { "Continue to Drawbridge" } }
    };
    let markup = html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="refresh" content={ "0;url=" (target) };
                title { "Signed in · Drawbridge" }
                link rel="stylesheet" href="/static/console.css";
            }
            body.bare { main #main { (body) } }
        }
    };
    let mut response = page_with(StatusCode::OK, &markup);
    let _ = response.add_cookie(&session_cookie(&state, &token));
    let _ = response.add_cookie(&removal(&state, OIDC_COOKIE, "/auth/oidc", SameSite::Lax));
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// First admin

/// Creates the first admin when there are no users: `console.first_admin_email`, a generated
/// password that must be changed at first sign-in. Returns the address and the password (to be
/// shown once, never logged), or `None` when there already are users.
///
/// # Errors
/// Database, sealing or audit errors.
pub async fn bootstrap_first_admin(
    db: &Db,
    vault: &Vault,
    settings: &Settings,
) -> anyhow::Result<Option<(String, SecretString)>> {
    let mut conn = db.pool().acquire().await.context("counting users")?;
    if users::count(&mut conn).await.context("counting users")? > 0 {
        return Ok(None);
    }
    drop(conn);
    let email = settings.console.first_admin_email.trim().to_lowercase();
    let generated = password::generate();
    let for_hash = generated.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash(&for_hash))
        .await
        .context("hashing the first admin's password")??;
    let at = crate::store::now();
    let mut tx = db
        .pool()
        .begin()
        .await
        .context("creating the first admin")?;
    let created = users::create(
        &mut tx,
        vault,
        &NewUser {
            email: &email,
            role: Role::Admin,
            password_hash: Some(&hash),
            must_change_password: true,
        },
        &at,
    )
    .await
    .context("creating the first admin")?;
    let Some(id) = created else {
        // Another instance created it first.
        tx.rollback().await.ok();
        return Ok(None);
    };
    audit::append(
        &mut tx,
        vault.audit_key(),
        &Event::new(Actor::System, "user.create")
            .subject("user", &id)
            .detail("role", Role::Admin.as_str())
            .detail("first_admin", true),
        &at,
    )
    .await
    .map_err(|e| anyhow::anyhow!("recording the first admin in the audit trail: {e}"))?;
    tx.commit().await.context("creating the first admin")?;
    tracing::info!(user_id = %id, "first admin created; its one-time password is printed on the console");
    Ok(Some((email, generated)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert!(local_path("/console"));
        assert!(local_path("/console/conversations/abc?x=1"));
        assert!(!local_path("//evil.example/"));
        assert!(!local_path("/\\evil.example/"));
        assert!(!local_path("https://evil.example/"));
        assert!(!local_path("console"));
        assert!(!local_path("/a\nb"));
    }

    #[test]
    fn account_failures_pause_the_account() {
        let settings = ConsoleSettings {
            sign_in_failures_per_account: 3,
            ..ConsoleSettings::default()
        };
        let sign_in = SignIn::new(&settings);
        let email = "pat@example.com";
        assert!(sign_in.account_blocked(email).is_ok());
        assert!(sign_in.account_failed(email).is_ok());
        assert!(sign_in.account_failed(" Pat@Example.com").is_ok());
        assert!(sign_in.account_failed(email).is_ok());
        assert!(sign_in.account_failed(email).is_err());
        assert!(sign_in.account_blocked(email).is_err());
        assert!(sign_in.account_blocked("PAT@example.com ").is_err());
        assert!(sign_in.account_blocked("other@example.com").is_ok());
    }

    #[test]
    fn five_wrong_codes_end_a_session() {
        let sign_in = SignIn::new(&ConsoleSettings::default());
        for _ in 0..4 {
            assert!(!sign_in.wrong_code("s"));
        }
        assert!(sign_in.wrong_code("s"));
    }
}
