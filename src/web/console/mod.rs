//! The staff console: server-rendered HTML (maud, which escapes every interpolated value), a
//! little vanilla JavaScript from `/static`, no third-party resources.
//!
//! This module holds what every console page shares: the signed-in [`Staff`] extractor (session
//! cookie → user, with the idle and absolute timeouts), CSRF checking of forms, the page layout,
//! and [`ConsoleError`], which renders refusals as pages (or sends a signed-out browser to
//! `/login`). The pages are in the submodules:
//!
//! - [`auth`]: sign-in (password, one-time code, single sign-on), sign-out, password change,
//!   one-time-code enrolment;
//! - [`inbox`]: `/console` (the inbox), a conversation, replies, assignment, notes, reveal,
//!   canned replies, secure links;
//! - [`events`]: `/console/events`, the live-update stream (server-sent events);
//! - [`admin`]: users and API tokens;
//! - [`rules`]: the rule editor (`/compliance/rules`);
//! - [`compliance`]: the audit trail browser (filters, verify, CSV/JSON export) and the reports;
//! - [`data`]: compliance's legal holds and data subject requests (export, erasure);
//! - [`assets`]: `/static/console.css`, `/static/console.js`.

pub mod admin;
pub mod assets;
pub mod auth;
pub mod compliance;
pub mod data;
pub mod events;
pub mod inbox;
pub mod rules;

use crate::accounts::Principal;
use crate::store::sessions::{self, Session, Stage};
use crate::store::tokens::Role;
use crate::store::users::{self, User};
use crate::web::AppState;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use std::future::Future;
use std::pin::Pin;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "drawbridge_session";

/// Registers every console route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(assets::configure)
        .configure(auth::configure)
        .configure(inbox::configure)
        .configure(events::configure)
        .configure(admin::configure)
        .configure(rules::configure)
        .configure(compliance::configure)
        .configure(data::configure);
}

/// Whether cookies get `Secure`: when the public URL is https.
#[must_use]
pub fn secure_cookies(state: &AppState) -> bool {
    state.public_url.starts_with("https://")
}

/// The session cookie carrying `token`: HttpOnly, SameSite=Strict, `Secure` under https, for the
/// whole site, ending with the browser session (the server enforces the timeouts).
#[must_use]
pub fn session_cookie(state: &AppState, token: &str) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token.to_owned())
        .path("/")
        .http_only(true)
        .secure(secure_cookies(state))
        .same_site(SameSite::Strict)
        .finish()
}

/// A cookie that removes the session cookie.
#[must_use]
pub fn clear_session_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = session_cookie(state, "");
    cookie.make_removal();
    cookie
}

/// A console refusal, rendered as a page (or a redirect to sign-in).
#[derive(Debug)]
pub enum ConsoleError {
    /// Not signed in, or the session ended: to `/login` (with where to come back to for a GET).
    SignIn { next: Option<String> },
    /// Signed in, but sign-in is not complete: to the page that completes it.
    Continue(&'static str),
    /// 403 with what was refused.
    Forbidden(String),
    /// 404.
    NotFound(&'static str),
    /// 400/409/422/429…: a refusal with a message for the user.
    Refused(StatusCode, String),
    /// 503: the database is unavailable.
    Unavailable,
    /// 500, its cause logged where it was made.
    Internal,
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SignIn { .. } => write!(f, "sign-in required"),
            Self::Continue(to) => write!(f, "sign-in continues at {to}"),
            Self::Forbidden(what) => write!(f, "forbidden: {what}"),
            Self::NotFound(what) => write!(f, "no such {what}"),
            Self::Refused(status, message) => write!(f, "{status}: {message}"),
            Self::Unavailable => write!(f, "unavailable"),
            Self::Internal => write!(f, "internal error"),
        }
    }
}

impl ConsoleError {
    /// A database error, logged: 503 when it means "try again later", else 500.
    #[must_use]
    pub fn database(error: &sqlx::Error) -> Self {
        tracing::error!(%error, "console request failed on the database");
        if crate::store::is_unavailable(error) {
            Self::Unavailable
        } else {
            Self::Internal
        }
    }
}

impl From<sqlx::Error> for ConsoleError {
    fn from(error: sqlx::Error) -> Self {
        Self::database(&error)
    }
}

impl From<users::UserError> for ConsoleError {
    fn from(error: users::UserError) -> Self {
        match error {
            users::UserError::Database(e) => Self::database(&e),
            users::UserError::Vault(e) => {
                tracing::error!(error = %e, "console: a sealed user field did not open");
                Self::Internal
            }
            users::UserError::IndexKeys(crate::keys::index::RefreshError::Database(e)) => {
                Self::database(&e)
            }
            users::UserError::IndexKeys(e) => {
                tracing::error!(error = %e, "console: the blind-index keys could not be refreshed");
                Self::Internal
            }
        }
    }
}

impl From<crate::inbox::InboxError> for ConsoleError {
    fn from(error: crate::inbox::InboxError) -> Self {
        use crate::inbox::InboxError as E;
        match error {
            E::NotFound(what) => Self::NotFound(what),
            E::Forbidden(what) => Self::Forbidden(format!("your role may not {what}")),
            E::Refused {
                status, message, ..
            } => Self::Refused(
                StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
                message,
            ),
            E::Database(e) => Self::database(&e),
            E::Vault => {
                tracing::error!("console: a sealed value did not open");
                Self::Internal
            }
            E::Audit(why) => {
                tracing::error!(%why, "console: the audit trail refused an event");
                Self::Internal
            }
        }
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn { .. } | Self::Continue(_) => StatusCode::SEE_OTHER,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Refused(status, _) => *status,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignIn { next } => {
                let location = match next {
                    Some(next) => format!(
                        "/login?next={}",
                        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                    ),
                    None => "/login".to_owned(),
                };
                HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, location))
                    .finish()
            }
            Self::Continue(to) => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, *to))
                .finish(),
            other => {
                let (title, message) = match other {
                    Self::Forbidden(what) => ("Not allowed", what.clone()),
                    Self::NotFound(what) => ("Not found", format!("There is no such {what}, or you may not see it.")),
                    Self::Refused(_, message) => ("Refused", message.clone()),
                    Self::Unavailable => (
                        "Temporarily unavailable",
                        "Storage is temporarily unavailable. Please try again in a moment.".to_owned(),
                    ),
                    _ => (
                        "Something went wrong",
                        "An internal error occurred; the X-Request-Id header names it in the server log.".to_owned(),
                    ),
                };
                let mut response = HttpResponse::build(self.status_code());
                if matches!(self, Self::Unavailable) {
                    response.insert_header((header::RETRY_AFTER, "30"));
                }
                response
                    .content_type("text/html; charset=utf-8")
                    .body(bare_page(title, &html! { h1 { (title) } p.notice { (message) } p { a href="/console" { "Back to the console" } } }).into_string())
            }
        }
    }
}

/// A signed-in staff member: the session, the user, and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Staff {
    pub session: Session,
    pub user: User,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

impl Staff {
    /// The principal for authorization and audit.
    #[must_use]
    pub fn principal(&self) -> Principal {
        Principal::user(&self.user.id, self.user.role)
    }

    /// Refuses unless the user has one of `roles`.
    ///
    /// # Errors
    /// [`ConsoleError::Forbidden`] naming the action.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), ConsoleError> {
        if roles.contains(&self.user.role) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(format!("your role may not {what}")))
        }
    }

    /// Checks a submitted form's CSRF token (constant time).
    ///
    /// # Errors
    /// 403 when it is missing or wrong.
    pub fn check_csrf(&self, state: &AppState, submitted: &str) -> Result<(), ConsoleError> {
        if state.vault.csrf_matches(&self.session.id, submitted) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "the form has expired or did not come from this console; reload the page and try again"
                    .to_owned(),
            ))
        }
    }
}

/// A session in any stage (sign-in pages that complete a stage use this), with its user.
#[derive(Debug, Clone)]
pub struct AnySession {
    pub session: Session,
    pub user: User,
    pub csrf: String,
}

/// Finds the request's live session and its enabled user; ends a session that has timed out.
async fn current_session(req: &HttpRequest) -> Result<Option<AnySession>, ConsoleError> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(ConsoleError::Internal);
    };
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let token = zeroize::Zeroizing::new(cookie.value().to_owned());
    let mut conn = state.db.pool().acquire().await?;
    let Some(session) = sessions::find(&mut conn, &token).await? else {
        return Ok(None);
    };
    let now = state.clock.now();
    let idle = chrono::TimeDelta::from_std(state.console.idle_timeout).unwrap_or_default();
    if session.expired(now, idle) {
        sessions::delete(&mut conn, &session.id).await?;
        return Ok(None);
    }
    let Some(user) = users::get(&mut conn, &state.vault, &session.user_id).await? else {
        return Ok(None);
    };
    if user.disabled {
        sessions::delete(&mut conn, &session.id).await?;
        return Ok(None);
    }
    // Activity extends the idle timeout; written at most every 30 s per session.
    if now - session.last_seen_at >= chrono::TimeDelta::seconds(30) {
        sessions::touch(&mut conn, &session.id, now).await?;
    }
    let csrf = state.vault.csrf_token(&session.id);
    Ok(Some(AnySession {
        session,
        user,
        csrf,
    }))
}

fn sign_in_redirect(req: &HttpRequest) -> ConsoleError {
    let next = (req.method() == actix_web::http::Method::GET)
        .then(|| req.uri().path_and_query().map(ToString::to_string))
        .flatten()
        .filter(|p| p.starts_with('/') && !p.starts_with("//"));
    ConsoleError::SignIn { next }
}

/// Where a session in `stage` continues.
#[must_use]
pub fn stage_page(stage: Stage) -> &'static str {
    match stage {
        Stage::SignedIn => "/console",
        Stage::SecondFactor => "/login/code",
        Stage::ChangePassword => "/account/password",
        Stage::EnrollTotp => "/account/two-factor",
    }
}

impl FromRequest for Staff {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Some(found) = current_session(&req).await? else {
                return Err(sign_in_redirect(&req));
            };
            if found.session.stage != Stage::SignedIn {
                return Err(ConsoleError::Continue(stage_page(found.session.stage)));
            }
            Ok(Staff {
                session: found.session,
                user: found.user,
                csrf: found.csrf,
            })
        })
    }
}

impl FromRequest for AnySession {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            current_session(&req)
                .await?
                .ok_or_else(|| sign_in_redirect(&req))
        })
    }
}

/// An HTML response.
#[must_use]
pub fn html_response(markup: &Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.clone().into_string())
}

/// A 303 to `location` (after a form post).
#[must_use]
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .finish()
}

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · Drawbridge" }
        link rel="stylesheet" href="/static/console.css";
        script src="/static/console.js" defer {}
    }
}

/// A page without navigation (sign-in, errors).
#[must_use]
pub fn bare_page(title: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body.bare {
                main #main { (body) }
            }
        }
    }
}

/// A console page: skip link, navigation for the user's role, the content, and the CSRF token
/// (in a `<meta>` for scripts; forms carry their own hidden field).
#[must_use]
pub fn page(staff: &Staff, title: &str, body: &Markup) -> Markup {
    let role = staff.user.role;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head(title))
                meta name="csrf-token" content=(staff.csrf);
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav aria-label="Main" {
                        a.brand href="/console" { "Drawbridge" }
                        @if matches!(role, Role::Agent | Role::Supervisor | Role::Compliance) {
                            a href="/console" { "Inbox" }
                        }
                        @if role == Role::Supervisor {
                            a href="/console/canned" { "Canned replies" }
                        }
                        @if role == Role::Compliance {
                            a href="/compliance/rules" { "Rules" }
                            a href="/compliance/audit" { "Audit trail" }
                            a href="/compliance/holds" { "Legal holds" }
                            a href="/compliance/subjects" { "Data requests" }
                        }
                        @if matches!(role, Role::Compliance | Role::Supervisor) {
                            a href="/compliance/reports" { "Reports" }
                        }
                        @if role == Role::Admin {
                            a href="/console/admin/users" { "Users" }
                            a href="/console/admin/tokens" { "API tokens" }
                        }
                        a href="/account/two-factor" { "Two-factor" }
                        a href="/account/password" { "Password" }
                    }
                    form.signout method="post" action="/logout" {
                        (csrf_field(&staff.csrf))
                        span.who { (staff.user.email) " · " (role.as_str()) }
                        button type="submit" { "Sign out" }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
#[must_use]
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(token); }
}

/// `PreEscaped` re-exported for the submodules' inline SVG icons (never for data).
pub type Raw<T> = PreEscaped<T>;
