//! `GET /console/events`: the console's live updates as server-sent events.
//!
//! Each stream subscribes to the instance's live feed ([`crate::inbox::live`]) and forwards only
//! the changes its user may see ([`crate::inbox::access`]), as `event: message` or
//! `event: conversation` with the change as JSON (ids and statuses, never content: the page
//! fetches what it shows through the audited reads). A `: keep-alive` comment goes every 15 s so
//! proxies keep the connection; a stream that fell behind the feed gets `event: reload`. The
//! session is checked again every minute, and the stream ends when it has ended (signed out,
//! timed out, or the user disabled); the browser's reconnection then lands on the sign-in page.

use super::{ConsoleError, Staff, SESSION_COOKIE};
use crate::accounts::Principal;
use crate::inbox::{self, live::Change};
use crate::store::sessions::{self, Stage};
use crate::store::users;
use crate::web::AppState;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;
use zeroize::Zeroizing;

/// How often a comment line keeps the connection open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often the session is checked again.
const SESSION_CHECK: Duration = Duration::from_secs(60);

/// Registers `/console/events`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/events", web::get().to(events));
}

/// `GET /console/events`.
async fn events(
    req: HttpRequest,
    staff: Staff,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let principal = staff.principal();
    if inbox::access(&principal, None).is_none() {
        return Err(ConsoleError::Forbidden(
            "your role does not read conversations".to_owned(),
        ));
    }
    let token = Zeroizing::new(
        req.cookie(SESSION_COOKIE)
            .map(|c| c.value().to_owned())
            .unwrap_or_default(),
    );
    let now = Instant::now();
    let feed = Feed {
        receiver: state.live.subscribe(),
        state: state.clone(),
        principal,
        token,
        started: false,
        next_keep_alive: now + KEEP_ALIVE,
        next_check: now + SESSION_CHECK,
    };
    let stream = futures_util::stream::unfold(feed, next);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

/// One open stream.
struct Feed {
    receiver: broadcast::Receiver<Change>,
    state: web::Data<AppState>,
    principal: Principal,
    token: Zeroizing<String>,
    started: bool,
    next_keep_alive: Instant,
    next_check: Instant,
}

/// An event's wire form.
fn frame(change: &Change) -> Bytes {
    let data = serde_json::to_string(change).unwrap_or_else(|_| "{}".to_owned());
    Bytes::from(format!("event: {}\ndata: {data}\n\n", change.name()))
}

/// The next chunk of the stream, or `None` to end it.
async fn next(mut feed: Feed) -> Option<(Result<Bytes, Infallible>, Feed)> {
    if !feed.started {
        // The first chunk sends the headers at once and sets the browser's reconnection delay.
        feed.started = true;
        return Some((Ok(Bytes::from_static(b"retry: 5000\n\n")), feed));
    }
    loop {
        let wake = feed.next_keep_alive.min(feed.next_check);
        tokio::select! {
            received = feed.receiver.recv() => match received {
                Ok(change) => {
                    if inbox::access(&feed.principal, change.assigned_user_id()).is_some() {
                        let chunk = frame(&change);
                        return Some((Ok(chunk), feed));
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    return Some((Ok(Bytes::from_static(b"event: reload\ndata: {}\n\n")), feed));
                }
                Err(RecvError::Closed) => return None,
            },
            () = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if now >= feed.next_check {
                    feed.next_check = now + SESSION_CHECK;
                    if !session_alive(&feed).await {
                        return None;
                    }
                }
                if now >= feed.next_keep_alive {
                    feed.next_keep_alive = now + KEEP_ALIVE;
                    return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), feed));
                }
            }
        }
    }
}

/// Whether the stream's session is still signed in (a database error keeps the stream: the next
/// check decides).
async fn session_alive(feed: &Feed) -> bool {
    let state = &feed.state;
    let Ok(mut conn) = state.db.pool().acquire().await else {
        return true;
    };
    let session = match sessions::find(&mut conn, &feed.token).await {
        Ok(Some(session)) => session,
        Ok(None) => return false,
        Err(_) => return true,
    };
    let idle = chrono::TimeDelta::from_std(state.console.idle_timeout).unwrap_or_default();
    if session.stage != Stage::SignedIn || session.expired(state.clock.now(), idle) {
        return false;
    }
    match users::get(&mut conn, &state.vault, &session.user_id).await {
        Ok(Some(user)) => !user.disabled && user.role == feed.principal.role,
        Ok(None) => false,
        Err(_) => true,
    }
}
