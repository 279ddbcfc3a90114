//! The customer's secure page behind a link (`crate::escalation`).
//!
//! | route | what |
//! |---|---|
//! | `GET /s/{token}` | without a session: the verification page (the number, masked to its last two digits; "text me a code"; the code form). With one: the chat |
//! | `POST /s/{token}/code` | texts a one-time code (`csrf_token`) → 303 back; 429 when the link's codes for the hour are spent; 409 for an opted-out number |
//! | `POST /s/{token}/verify` | `code` (and `answer` when a knowledge check is configured), `csrf_token` → 303 to the chat with the session cookie; 422 for a wrong or dead code |
//! | `POST /s/{token}/messages` | `body`, `csrf_token` → 303 back to the chat (or 201 JSON `{"id"}` for `Accept: application/json`) |
//! | `GET /s/{token}/events` | the chat's server-sent events: `event: message` with `{"id", "direction", "channel", "body", "created_at"}` for each new message, `event: ended` when the session ends |
//! | `POST /s/{token}/leave` | ends the session (`csrf_token`) |
//!
//! **One neutral answer.** An unknown, malformed, expired, revoked or locked link — and a locked
//! link's code entry — all get the same 404 page, byte for byte, with nothing that says which.
//!
//! **CSRF.** Before verification the forms' token is a MAC of the link's id, after it a MAC of
//! the session's id ([`crate::vault::Vault::secure_csrf_token`]); the session cookie is also
//! SameSite=Strict. A POST with a wrong token is refused (403) and does nothing.
//!
//! Pages are mobile-first, use no third-party resources and run under the service's strict
//! Content-Security-Policy (`/static/secure.css`, `/static/secure.js`). They work without
//! JavaScript; the script adds live updates and sending without a reload.

use crate::escalation::chat::{self, ChatError, CustomerMessage};
use crate::escalation::codes::{self, Checked, Requested};
use crate::escalation::links::{self, Link};
use crate::escalation::sessions::{self, Session, COOKIE};
use crate::inbox::live::Change;
use crate::web::AppState;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;
use zeroize::Zeroizing;

/// How often the event stream renews its heartbeat (and checks the session).
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Registers the secure page's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/s")
            // A message of chat::MAX_CHARS characters, each up to 4 bytes, percent-encoded.
            .app_data(web::FormConfig::default().limit(64 * 1024))
            .route("/{token}", web::get().to(show))
            .route("/{token}/code", web::post().to(send_code))
            .route("/{token}/verify", web::post().to(verify))
            .route("/{token}/messages", web::post().to(post_message))
            .route("/{token}/events", web::get().to(events))
            .route("/{token}/leave", web::post().to(leave)),
    );
}

/// What every dead or unknown link gets.
pub const NEUTRAL_TEXT: &str = "This link is not valid. If you still need help, reply to our text message and we will send you a new one.";

fn page(title: &str, body: &Markup, script: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) }
                link rel="stylesheet" href="/static/secure.css";
                @if script { script src="/static/secure.js" defer {} }
            }
            body {
                main #main { (body) }
            }
        }
    }
}

fn respond(status: StatusCode, markup: &Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.clone().into_string())
}

/// The neutral answer (see the module documentation).
#[must_use]
pub fn neutral() -> HttpResponse {
    let body = html! {
        h1 { "Link not valid" }
        p { (NEUTRAL_TEXT) }
    };
    respond(StatusCode::NOT_FOUND, &page("Secure chat", &body, false))
}

/// A failure of ours: 503 when the database is unavailable, else 500; logged without content.
fn failed(what: &str, error: &dyn std::fmt::Display, unavailable: bool) -> HttpResponse {
    tracing::error!(%error, "secure page: {what} failed");
    let (status, text) = if unavailable {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "We can't load this page right now. Please try again in a minute.",
        )
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side. Please try again.",
        )
    };
    let body = html! { h1 { "Please try again" } p { (text) } };
    respond(status, &page("Secure chat", &body, false))
}

fn db_failed(what: &str, error: &sqlx::Error) -> HttpResponse {
    failed(what, error, crate::store::is_unavailable(error))
}

fn code_failed(what: &str, error: &codes::CodeError) -> HttpResponse {
    failed(what, error, error.unavailable())
}

/// The name of a link's session cookie: one per link, so that a customer with two links keeps
/// both sessions and a session posted in from elsewhere cannot replace another link's.
fn cookie_name(link: &Link) -> String {
    format!("{COOKIE}_{}", link.id)
}

/// The session cookie.
fn session_cookie(state: &AppState, link: &Link, value: &str) -> Cookie<'static> {
    Cookie::build(cookie_name(link), value.to_owned())
        .path("/s/")
        .http_only(true)
        .secure(state.public_url.starts_with("https://"))
        .same_site(SameSite::Strict)
        .finish()
}

/// The link a token names if it still works; else the answer to give: the neutral page, or 503
/// when the database is unavailable.
async fn usable_link(state: &AppState, token: &str) -> Result<Link, HttpResponse> {
    let found = async {
        let mut conn = state.db.pool().acquire().await?;
        links::find(&mut conn, token).await
    }
    .await;
    let now = state.clock.timestamp();
    match found {
        Ok(Some(link)) if link.usable(&now) => Ok(link),
        Ok(_) => Err(neutral()),
        Err(e) => Err(db_failed("reading a link", &e)),
    }
}

/// The request's open session on `link`, if any.
async fn session_of(
    state: &AppState,
    req: &HttpRequest,
    link: &Link,
) -> Result<Option<Session>, sqlx::Error> {
    let Some(cookie) = req.cookie(&cookie_name(link)) else {
        return Ok(None);
    };
    let value = Zeroizing::new(cookie.value().to_owned());
    let mut conn = state.db.pool().acquire().await?;
    sessions::current(&mut conn, state, link, &value, state.clock.now()).await
}

fn link_csrf(state: &AppState, link: &Link) -> String {
    state.vault.secure_csrf_token(&format!("link:{}", link.id))
}

fn session_csrf(state: &AppState, session: &Session) -> String {
    state
        .vault
        .secure_csrf_token(&format!("session:{}", session.id))
}

fn csrf_refused() -> HttpResponse {
    let body = html! {
        h1 { "Please try again" }
        p { "This form expired. Go back, reload the page and try again." }
    };
    respond(StatusCode::FORBIDDEN, &page("Secure chat", &body, false))
}

/// What the verification page says above its forms.
#[derive(Debug, Default)]
struct Flash {
    notice: Option<String>,
    error: Option<String>,
}

impl Flash {
    fn error(text: impl Into<String>) -> Self {
        Self {
            notice: None,
            error: Some(text.into()),
        }
    }
}

/// What the page says after a wrong or dead code.
fn wrong_text(checked: &Checked) -> String {
    match checked {
        Checked::Wrong { attempts_left } if *attempts_left > 0 => format!(
            "That isn't right. You can try {attempts_left} more time{}.",
            if *attempts_left == 1 { "" } else { "s" }
        ),
        _ => "That code no longer works. Ask for a new code and try again.".to_owned(),
    }
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    #[serde(default)]
    sent: Option<String>,
}

/// `GET /s/{token}`.
async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ShowQuery>,
) -> HttpResponse {
    let token = Zeroizing::new(path.into_inner());
    let link = match usable_link(&state, &token).await {
        Ok(link) => link,
        Err(response) => return response,
    };
    match session_of(&state, &req, &link).await {
        Ok(Some(session)) => chat_page(&state, &link, &session, &token).await,
        Ok(None) => {
            let flash = Flash {
                notice: query
                    .sent
                    .as_ref()
                    .map(|_| "We texted you a code. It works for 10 minutes.".to_owned()),
                error: None,
            };
            verify_page(&state, &link, &token, StatusCode::OK, &flash).await
        }
        Err(e) => db_failed("reading a session", &e),
    }
}

/// The number the codes go to, masked to its last two digits.
async fn masked_number(state: &AppState, link: &Link) -> Result<Option<String>, sqlx::Error> {
    use crate::compliance::outbound::{recipient, GateError};
    let mut conn = state.db.pool().acquire().await?;
    let recipient = match recipient(&mut conn, &state.vault, &link.conversation_id).await {
        Ok(found) => found,
        Err(GateError::Database(e)) => return Err(e),
        Err(error) => {
            tracing::error!(%error, "secure page: the contact's number did not open");
            None
        }
    };
    Ok(recipient.and_then(|r| {
        let digits = r.phone.digits();
        let tail = digits.get(digits.len().saturating_sub(2)..)?;
        Some(format!("•••• ••• ••{tail}"))
    }))
}

async fn verify_page(
    state: &AppState,
    link: &Link,
    token: &str,
    status: StatusCode,
    flash: &Flash,
) -> HttpResponse {
    let csrf = link_csrf(state, link);
    let base = format!("/s/{token}");
    let number = match masked_number(state, link).await {
        Ok(number) => number.unwrap_or_else(|| "your phone".to_owned()),
        Err(e) => return db_failed("reading the contact", &e),
    };
    let knowledge = state.escalation.settings.knowledge.as_ref();
    let business = &state.compliance.business_name;
    let body = html! {
        header.brand { p { (business) } }
        h1 { "Secure chat" }
        p { "To keep your details safe, we first check that this is your phone." }
        @if let Some(notice) = &flash.notice { div.notice role="status" { p { (notice) } } }
        @if let Some(error) = &flash.error { div.error role="alert" { p { (error) } } }
        form #code-request method="post" action={ (base) "/code" } {
            input type="hidden" name="csrf_token" value=(csrf);
            p { "We'll text a 6-digit code to " strong #masked-number { (number) } "." }
            button type="submit" #send-code { "Text me a code" }
        }
        form #verify method="post" action={ (base) "/verify" } {
            input type="hidden" name="csrf_token" value=(csrf);
            div.field {
                label for="code" { "6-digit code" }
                input #code name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
                    pattern="[0-9]{6}" maxlength="6" required;
            }
            @if let Some(check) = knowledge {
                div.field {
                    label for="answer" { (check.prompt()) }
                    input #answer name="answer" type="text" autocomplete="off" maxlength="100" required;
                }
            }
            button type="submit" #verify-code { "Continue" }
        }
    };
    respond(status, &page("Secure chat", &body, false))
}

async fn chat_page(state: &AppState, link: &Link, session: &Session, token: &str) -> HttpResponse {
    {
        let Ok(mut conn) = state.db.pool().acquire().await else {
            return failed("reading a session", &"no connection", true);
        };
        if let Err(e) = sessions::touch(&mut conn, session, &state.clock.timestamp()).await {
            return db_failed("renewing a session", &e);
        }
    }
    let messages = match chat::thread(state, link, None).await {
        Ok(messages) => messages,
        Err(ChatError::Inbox(crate::inbox::InboxError::Database(e))) => {
            return db_failed("reading the thread", &e)
        }
        Err(e) => return failed("reading the thread", &e, false),
    };
    let csrf = session_csrf(state, session);
    let base = format!("/s/{token}");
    let business = &state.compliance.business_name;
    let body = html! {
        header.brand {
            p { (business) }
            form.leave method="post" action={ (base) "/leave" } {
                input type="hidden" name="csrf_token" value=(csrf);
                button type="submit" #leave { "End secure chat" }
            }
        }
        h1 { "Secure chat" }
        p.hint { "Messages here are encrypted and are not sent by text. You can share card or account details here." }
        section aria-labelledby="thread-heading" {
            h2 #thread-heading .visually-hidden { "Messages" }
            ol #thread aria-live="polite" data-events={ (base) "/events" } {
                @for m in &messages { (message_item(m)) }
            }
        }
        form #send method="post" action={ (base) "/messages" } {
            input type="hidden" name="csrf_token" value=(csrf);
            div.field {
                label for="body" { "Your message" }
                textarea #body name="body" rows="3" maxlength=(chat::MAX_CHARS) required {}
            }
            button type="submit" #send-button { "Send" }
        }
    };
    respond(StatusCode::OK, &page("Secure chat", &body, true))
}

fn message_item(m: &CustomerMessage) -> Markup {
    let who = if m.direction == "inbound" {
        "You"
    } else {
        "Us"
    };
    let via = if m.channel == "secure" {
        "secure"
    } else {
        "text"
    };
    html! {
        li.message.(m.direction) data-id=(m.id) {
            p.meta { span.who { (who) } " · " span.via { (via) } " · " time datetime=(m.created_at) { (short_time(&m.created_at)) } }
            p.body { (m.body) }
        }
    }
}

fn short_time(stored: &str) -> String {
    crate::store::parse_timestamp(stored).map_or_else(
        || stored.to_owned(),
        |t| t.format("%b %-d, %H:%M UTC").to_string(),
    )
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST /s/{token}/code`.
async fn send_code(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let token = Zeroizing::new(path.into_inner());
    let link = match link_form(&state, &token, &form.csrf_token).await {
        Ok(link) => link,
        Err(response) => return response,
    };
    match codes::request(&state, &link).await {
        Ok(Requested::Sent { .. }) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/s/{}?sent=1", token.as_str())))
            .finish(),
        Ok(Requested::TooMany { retry_after }) => {
            let minutes = retry_after.as_secs().div_ceil(60).max(1);
            let flash = Flash::error(format!(
                    "You've asked for several codes. Please wait {minutes} minute{} before asking again, or use the last code we sent.",
                    if minutes == 1 { "" } else { "s" }
                ));
            let mut response =
                verify_page(&state, &link, &token, StatusCode::TOO_MANY_REQUESTS, &flash).await;
            if let Ok(value) =
                header::HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Ok(Requested::OptedOut) => {
            let flash = Flash::error("This number has opted out of our texts, so we can't send a code. Text START to us to opt back in, then try again.");
            verify_page(&state, &link, &token, StatusCode::CONFLICT, &flash).await
        }
        Err(e) => code_failed("sending a code", &e),
    }
}

#[derive(Deserialize)]
struct VerifyForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    answer: Option<String>,
}

/// `POST /s/{token}/verify`.
async fn verify(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<VerifyForm>,
) -> HttpResponse {
    let token = Zeroizing::new(path.into_inner());
    let form = form.into_inner();
    let code = Zeroizing::new(form.code);
    let answer = Zeroizing::new(form.answer.unwrap_or_default());
    let link = match link_form(&state, &token, &form.csrf_token).await {
        Ok(link) => link,
        Err(response) => return response,
    };
    let knowledge = state.escalation.settings.knowledge.as_ref();
    let checked = match codes::check(&state, &link, &code, knowledge.is_some()).await {
        Ok(checked) => checked,
        Err(e) => return code_failed("checking a code", &e),
    };
    let code_id = match checked {
        Checked::Verified { code_id } => code_id,
        Checked::Locked => return neutral(),
        other => {
            let flash = Flash::error(wrong_text(&other));
            return verify_page(
                &state,
                &link,
                &token,
                StatusCode::UNPROCESSABLE_ENTITY,
                &flash,
            )
            .await;
        }
    };
    let knowledge_checked = if let Some(check) = knowledge {
        let (answer, refusal) = match check.check(&link.conversation_id, answer.trim()).await {
            Ok(true) => (codes::Answer::Yes, None),
            Ok(false) => (codes::Answer::No, Some(StatusCode::UNPROCESSABLE_ENTITY)),
            Err(error) => {
                // Not the customer's fault: the attempt is given back, the code still works.
                tracing::warn!(%error, "secure page: the knowledge check could not be reached");
                (
                    codes::Answer::Unreachable,
                    Some(StatusCode::SERVICE_UNAVAILABLE),
                )
            }
        };
        let outcome = match codes::answered(&state, &link, &code_id, answer).await {
            Ok(outcome) => outcome,
            Err(e) => return code_failed("settling a knowledge check", &e),
        };
        if let Some(status) = refusal {
            let text = if answer == codes::Answer::Unreachable {
                "We couldn't check your answer just now. Please try again in a minute.".to_owned()
            } else {
                wrong_text(&outcome)
            };
            return verify_page(&state, &link, &token, status, &Flash::error(text)).await;
        }
        true
    } else {
        false
    };
    match sessions::open(&state, &link, &code_id, knowledge_checked).await {
        Ok(Some((_, session_token))) => HttpResponse::SeeOther()
            .cookie(session_cookie(&state, &link, &session_token))
            .insert_header((header::LOCATION, format!("/s/{}", token.as_str())))
            .finish(),
        Ok(None) => {
            let flash = Flash::error(wrong_text(&Checked::NoCode));
            verify_page(
                &state,
                &link,
                &token,
                StatusCode::UNPROCESSABLE_ENTITY,
                &flash,
            )
            .await
        }
        Err(e) => code_failed("opening a session", &e),
    }
}

#[derive(Deserialize)]
struct MessageForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    body: String,
}

/// The link and the open session of a chat request; `Err` is the answer to give instead.
async fn in_session(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
) -> Result<(Link, Session), HttpResponse> {
    let link = usable_link(state, token).await?;
    match session_of(state, req, &link).await {
        Ok(Some(session)) => Ok((link, session)),
        // Back to the page, which asks for a code.
        Ok(None) => Err(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/s/{token}")))
            .finish()),
        Err(e) => Err(db_failed("reading a session", &e)),
    }
}

/// The link of a pre-verification form post, its CSRF token checked; `Err` is the answer.
async fn link_form(state: &AppState, token: &str, csrf: &str) -> Result<Link, HttpResponse> {
    let link = usable_link(state, token).await?;
    if state
        .vault
        .secure_csrf_matches(&format!("link:{}", link.id), csrf)
    {
        Ok(link)
    } else {
        Err(csrf_refused())
    }
}

/// [`in_session`] for a form post, its CSRF token checked.
async fn session_form(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
    csrf: &str,
) -> Result<(Link, Session), HttpResponse> {
    let (link, session) = in_session(state, req, token).await?;
    if state
        .vault
        .secure_csrf_matches(&format!("session:{}", session.id), csrf)
    {
        Ok((link, session))
    } else {
        Err(csrf_refused())
    }
}

/// `POST /s/{token}/messages`.
async fn post_message(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<MessageForm>,
) -> HttpResponse {
    let token = Zeroizing::new(path.into_inner());
    let form = form.into_inner();
    let body = Zeroizing::new(form.body);
    let (link, session) = match session_form(&state, &req, &token, &form.csrf_token).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let wants_json = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let stored = chat::customer_post(&state, &link, &body).await;
    if let Ok(mut conn) = state.db.pool().acquire().await {
        if let Err(e) = sessions::touch(&mut conn, &session, &state.clock.timestamp()).await {
            tracing::warn!(error = %e, "secure page: renewing a session failed");
        }
    }
    match stored {
        Ok(id) if wants_json => HttpResponse::Created().json(serde_json::json!({ "id": id })),
        Ok(_) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/s/{}#send", token.as_str())))
            .finish(),
        Err(ChatError::Length) if wants_json => {
            HttpResponse::UnprocessableEntity().json(serde_json::json!({
                "code": "invalid_body",
                "message": format!("a message has 1 to {} characters", chat::MAX_CHARS),
            }))
        }
        Err(ChatError::Length) => {
            let body = html! {
                h1 { "Message not sent" }
                p { "A message has 1 to " (chat::MAX_CHARS) " characters." }
                p { a href={ "/s/" (token.as_str()) } { "Back to the chat" } }
            };
            respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                &page("Secure chat", &body, false),
            )
        }
        Err(ChatError::Inbox(crate::inbox::InboxError::Database(e))) => {
            db_failed("storing a message", &e)
        }
        Err(e) => failed("storing a message", &e, false),
    }
}

/// `POST /s/{token}/leave`.
async fn leave(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let token = Zeroizing::new(path.into_inner());
    let (link, session) = match session_form(&state, &req, &token, &form.csrf_token).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let ended = async {
        let mut conn = state.db.pool().acquire().await?;
        sessions::end(&mut conn, &session, &state.clock.timestamp()).await
    }
    .await;
    if let Err(e) = ended {
        return db_failed("ending a session", &e);
    }
    let mut gone = session_cookie(&state, &link, "");
    gone.make_removal();
    let body = html! {
        h1 { "Secure chat ended" }
        p { "You have left the secure chat. To come back, open the link in our text again." }
    };
    let mut response = respond(StatusCode::OK, &page("Secure chat", &body, false));
    if let Err(e) = response.add_cookie(&gone) {
        tracing::warn!(error = %e, "secure page: clearing the cookie failed");
    }
    response
}

/// `GET /s/{token}/events`.
async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let token = Zeroizing::new(path.into_inner());
    let link = match usable_link(&state, &token).await {
        Ok(link) => link,
        Err(response) => return response,
    };
    let cookie = Zeroizing::new(
        req.cookie(&cookie_name(&link))
            .map(|c| c.value().to_owned())
            .unwrap_or_default(),
    );
    let session = {
        let Ok(mut conn) = state.db.pool().acquire().await else {
            return failed("reading a session", &"no connection", true);
        };
        match sessions::current(&mut conn, &state, &link, &cookie, state.clock.now()).await {
            Ok(Some(session)) => session,
            Ok(None) => return neutral(),
            Err(e) => return db_failed("reading a session", &e),
        }
    };
    let feed = Feed {
        receiver: state.live.subscribe(),
        state: state.clone(),
        link,
        session,
        cookie,
        started: false,
        ended: false,
        next_heartbeat: Instant::now(),
    };
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures_util::stream::unfold(feed, next))
}

/// One open stream.
struct Feed {
    receiver: broadcast::Receiver<Change>,
    state: web::Data<AppState>,
    link: Link,
    session: Session,
    cookie: Zeroizing<String>,
    started: bool,
    ended: bool,
    next_heartbeat: Instant,
}

const ENDED: &[u8] = b"event: ended\ndata: {}\n\n";

async fn next(mut feed: Feed) -> Option<(Result<Bytes, Infallible>, Feed)> {
    if feed.ended {
        return None;
    }
    if !feed.started {
        feed.started = true;
        return Some((Ok(Bytes::from_static(b"retry: 3000\n\n")), feed));
    }
    loop {
        tokio::select! {
            received = feed.receiver.recv() => match received {
                Ok(Change::Message { conversation_id, message_id, .. })
                    if conversation_id == feed.link.conversation_id =>
                {
                    match chat::thread(&feed.state, &feed.link, Some(&message_id)).await {
                        Ok(found) => {
                            if let Some(message) = found.first() {
                                let data = serde_json::to_string(message).unwrap_or_else(|_| "{}".to_owned());
                                return Some((Ok(Bytes::from(format!("event: message\ndata: {data}\n\n"))), feed));
                            }
                        }
                        Err(error) => tracing::warn!(%error, "secure page: reading a new message failed"),
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    return Some((Ok(Bytes::from_static(b"event: reload\ndata: {}\n\n")), feed));
                }
                Err(RecvError::Closed) => return None,
            },
            () = tokio::time::sleep_until(feed.next_heartbeat) => {
                feed.next_heartbeat = Instant::now() + HEARTBEAT;
                match heartbeat(&feed).await {
                    Some(true) => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), feed)),
                    Some(false) => {
                        // Say so once; the next call ends the stream.
                        feed.ended = true;
                        return Some((Ok(Bytes::from_static(ENDED)), feed));
                    }
                    None => {}
                }
            }
        }
    }
}

/// Renews the stream's mark and checks the session: `Some(false)` when it has ended, `None` on
/// a database error (the next heartbeat decides).
async fn heartbeat(feed: &Feed) -> Option<bool> {
    let state = &feed.state;
    let mut conn = state.db.pool().acquire().await.ok()?;
    let now = state.clock.now();
    // A revoked or locked link has ended its sessions; an expired one fails `usable`.
    let alive = sessions::current(&mut conn, state, &feed.link, &feed.cookie, now)
        .await
        .ok()?;
    if alive.is_none() {
        return Some(false);
    }
    sessions::streaming(&mut conn, &feed.session, &crate::store::timestamp(now))
        .await
        .ok()?;
    Some(true)
}
