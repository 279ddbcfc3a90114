//! `drawbridge simulate carrier`: a fake carrier. It serves the send APIs (and the lookup and
//! token endpoints the outbox uses) of every supported carrier on one port, so an account's
//! `api_base` can point at it. Tests use it; operators use it for demonstrations.
//!
//! | route | what |
//! |---|---|
//! | each carrier's own paths | see the carrier's module ([`twilio`], [`telnyx`], …) |
//! | `GET /_sent[?carrier=NAME]` | every request received, as JSON `{"requests": [...]}`, in order |
//! | `DELETE /_sent` | forget every request and every planned failure |
//! | `POST /_fail` | plan failures for the next N sends (see [`FailureRequest`]) |
//! | `GET /_health` | 200 |
//!
//! Each send is recorded with its carrier, path, headers (authentication included: this is a
//! test tool), raw body, the fields it carried (`to`, `from`, `text`), what the fake answered and
//! the message id it gave. Message ids are shaped like each carrier's own.
//!
//! A planned `timeout` models the ambiguous failure: the fake **accepts and records** the message,
//! then answers only after `delay_ms` — longer than the client waits. The sender cannot tell
//! whether the carrier took it; the fake's record says it did.
//!
//! Logs carry the route, never bodies or numbers.

pub mod bandwidth;
pub mod plivo;
pub mod rbm;
pub mod sinch;
pub mod telnyx;
pub mod twilio;
pub mod vonage;

use crate::carriers::Carrier;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// One request the fake received.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// 1, 2, 3 … in arrival order.
    pub seq: u64,
    pub carrier: &'static str,
    /// `send`, `lookup` or `token`.
    pub kind: &'static str,
    pub method: String,
    pub path: String,
    pub query: String,
    /// Lower-cased names.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// What the fake answered.
    pub status: u16,
    /// `accepted`, `replayed` (an idempotent retry answered with the first result),
    /// `server_error`, `throttled`, `opted_out`, `late` (accepted, answered after the client's
    /// timeout), `rejected` (malformed or unauthenticated request).
    pub outcome: &'static str,
    pub message_id: Option<String>,
    /// The recipient, sender and text the request carried, as the carrier's API names them.
    pub to: Option<String>,
    pub from: Option<String>,
    pub text: Option<String>,
    /// The idempotency key or client reference, where the API has one.
    pub reference: Option<String>,
    /// RFC 3339.
    pub at: String,
}

impl Record {
    /// Whether the carrier took the message (a first acceptance, on time or late).
    #[must_use]
    pub fn is_accepted(&self) -> bool {
        matches!(self.outcome, "accepted" | "late")
    }
}

/// A kind of failure the fake can be told to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum FailureMode {
    /// HTTP 500 in the carrier's error format. The message is not taken.
    #[serde(rename = "500")]
    ServerError,
    /// HTTP 429 in the carrier's format, with `Retry-After` when asked. Not taken.
    #[serde(rename = "429")]
    Throttle,
    /// Taken, but answered after `delay_ms`.
    #[serde(rename = "timeout")]
    Timeout,
    /// The carrier's "recipient opted out" refusal (for carriers that report it only later by
    /// callback, the closest synchronous refusal its API documents). Not taken.
    #[serde(rename = "opted_out")]
    OptedOut,
}

/// `POST /_fail` body: `{"mode": "500" | "429" | "timeout" | "opted_out", "count": 1,
/// "carrier": "twilio", "retry_after": 2, "delay_ms": 20000}`. `carrier` limits the plan to one
/// carrier (default: any); plans apply in the order they were made.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureRequest {
    pub mode: FailureMode,
    #[serde(default = "one")]
    pub count: u32,
    pub carrier: Option<String>,
    /// Seconds, sent as `Retry-After` with a 429.
    pub retry_after: Option<u64>,
    /// How late a `timeout` answers.
    #[serde(default = "default_delay")]
    pub delay_ms: u64,
}

fn one() -> u32 {
    1
}

fn default_delay() -> u64 {
    20_000
}

/// What the fake does with a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Take it, with this id.
    Accept { message_id: String },
    /// Take it with this id, but answer only after `delay`.
    Late { message_id: String, delay: Duration },
    Fail {
        mode: FailureMode,
        retry_after: Option<u64>,
    },
}

/// The fake's memory.
#[derive(Debug, Default)]
pub struct FakeState {
    records: Mutex<Vec<Record>>,
    plans: Mutex<VecDeque<FailureRequest>>,
    seq: AtomicU64,
}

/// A request to a carrier's API, as the fake received it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub carrier: Carrier,
    pub req: &'a HttpRequest,
    pub body: &'a [u8],
}

/// The fields of a request a carrier module has read, for the record.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub to: Option<String>,
    pub from: Option<String>,
    pub text: Option<String>,
    pub reference: Option<String>,
}

impl FakeState {
    /// What to do with the next send to `carrier`: the first planned failure that applies to it
    /// (using up one of its count), else acceptance with a fresh id in the carrier's format.
    pub fn decide(&self, carrier: Carrier) -> Decision {
        let mut plans = self
            .plans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = plans
            .iter()
            .position(|p| p.carrier.as_deref().is_none_or(|c| c == carrier.name()));
        let Some(index) = index else {
            return Decision::Accept {
                message_id: carrier.new_message_id(),
            };
        };
        let Some(plan) = plans.get_mut(index) else {
            return Decision::Accept {
                message_id: carrier.new_message_id(),
            };
        };
        plan.count = plan.count.saturating_sub(1);
        let decision = match plan.mode {
            FailureMode::Timeout => Decision::Late {
                message_id: carrier.new_message_id(),
                delay: Duration::from_millis(plan.delay_ms),
            },
            mode => Decision::Fail {
                mode,
                retry_after: plan.retry_after,
            },
        };
        if plan.count == 0 {
            plans.remove(index);
        }
        decision
    }

    /// Records a request and returns its sequence number.
    pub fn record(
        &self,
        incoming: Incoming<'_>,
        kind: &'static str,
        status: u16,
        outcome: &'static str,
        message_id: Option<String>,
        fields: Fields,
    ) -> u64 {
        let Incoming { carrier, req, body } = incoming;
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let headers = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let record = Record {
            seq,
            carrier: carrier.name(),
            kind,
            method: req.method().as_str().to_owned(),
            path: req.path().to_owned(),
            query: req.query_string().to_owned(),
            headers,
            body: String::from_utf8_lossy(body).into_owned(),
            status,
            outcome,
            message_id,
            to: fields.to,
            from: fields.from,
            text: fields.text,
            reference: fields.reference,
            at: crate::store::now(),
        };
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(record);
        seq
    }

    /// Every record so far, in order.
    pub fn records(&self) -> Vec<Record> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The messages `carrier` took, in order (for lookups and idempotent replays).
    pub fn accepted(&self, carrier: Carrier) -> Vec<Record> {
        self.records()
            .into_iter()
            .filter(|r| r.carrier == carrier.name() && r.kind == "send" && r.is_accepted())
            .collect()
    }

    /// The first acceptance by `carrier` that carried `reference` (idempotent replays).
    pub fn accepted_with_reference(&self, carrier: Carrier, reference: &str) -> Option<Record> {
        self.accepted(carrier)
            .into_iter()
            .find(|r| r.reference.as_deref() == Some(reference))
    }

    fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.plans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Plans failures, as `POST /_fail` does. A plan for no request is ignored.
    pub fn plan(&self, request: FailureRequest) {
        if request.count == 0 {
            return;
        }
        self.plans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(request);
    }
}

/// Answers a decided send the way every carrier module does it: the failure in the carrier's
/// format (built by `fail`), or the acceptance (built by `accept`, from the id), recording the
/// request either way. A `Late` acceptance is recorded before the delay: the carrier took it.
pub async fn answer(
    state: &FakeState,
    incoming: Incoming<'_>,
    fields: Fields,
    decision: Decision,
    accept: impl Fn(&str) -> HttpResponse,
    fail: impl Fn(FailureMode) -> HttpResponse,
) -> HttpResponse {
    match decision {
        Decision::Accept { message_id } => {
            let response = accept(&message_id);
            state.record(
                incoming,
                "send",
                response.status().as_u16(),
                "accepted",
                Some(message_id),
                fields,
            );
            response
        }
        Decision::Late { message_id, delay } => {
            let response = accept(&message_id);
            state.record(
                incoming,
                "send",
                response.status().as_u16(),
                "late",
                Some(message_id),
                fields,
            );
            tokio::time::sleep(delay).await;
            response
        }
        Decision::Fail { mode, retry_after } => {
            let mut response = fail(mode);
            if let (FailureMode::Throttle, Some(seconds)) = (mode, retry_after) {
                if let Ok(value) =
                    actix_web::http::header::HeaderValue::from_str(&seconds.to_string())
                {
                    response
                        .headers_mut()
                        .insert(actix_web::http::header::RETRY_AFTER, value);
                }
            }
            let outcome = match mode {
                FailureMode::ServerError => "server_error",
                FailureMode::Throttle => "throttled",
                FailureMode::OptedOut => "opted_out",
                FailureMode::Timeout => "late",
            };
            state.record(
                incoming,
                "send",
                response.status().as_u16(),
                outcome,
                None,
                fields,
            );
            response
        }
    }
}

/// The `Authorization` header's credentials: `("Basic", "user:password")` decoded, or
/// `("Bearer", token)`.
#[must_use]
pub fn authorization(req: &HttpRequest) -> Option<(&'static str, String)> {
    use base64::Engine;
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    if let Some(encoded) = value.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        return Some(("Basic", String::from_utf8(decoded).ok()?));
    }
    value
        .strip_prefix("Bearer ")
        .map(|token| ("Bearer", token.trim().to_owned()))
}

#[derive(Deserialize)]
struct SentQuery {
    carrier: Option<String>,
}

async fn sent(state: web::Data<FakeState>, query: web::Query<SentQuery>) -> HttpResponse {
    let records: Vec<Record> = state
        .records()
        .into_iter()
        .filter(|r| query.carrier.as_deref().is_none_or(|c| c == r.carrier))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "requests": records }))
}

async fn clear(state: web::Data<FakeState>) -> HttpResponse {
    state.clear();
    HttpResponse::NoContent().finish()
}

async fn fail(state: web::Data<FakeState>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<FailureRequest>(&body) {
        Ok(request) => {
            if request.count == 0 {
                return HttpResponse::BadRequest()
                    .json(serde_json::json!({ "error": "count must be at least 1" }));
            }
            if let Some(carrier) = &request.carrier {
                if Carrier::from_name(carrier).is_none() {
                    return HttpResponse::BadRequest().json(serde_json::json!({
                        "error": format!("unknown carrier (supported: {})", Carrier::names())
                    }));
                }
            }
            let planned = serde_json::json!({ "mode": request.mode, "count": request.count, "carrier": request.carrier });
            state.plan(request);
            HttpResponse::Ok().json(serde_json::json!({ "planned": planned }))
        }
        Err(e) => HttpResponse::BadRequest().json(serde_json::json!({
            "error": format!("expected {{\"mode\": \"500\"|\"429\"|\"timeout\"|\"opted_out\", \"count\": N, \"carrier\": NAME, \"retry_after\": SECONDS, \"delay_ms\": MS}}: {e}")
        })),
    }
}

/// Registers every route of the fake.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/_sent", web::get().to(sent))
        .route("/_sent", web::delete().to(clear))
        .route("/_fail", web::post().to(fail))
        .route("/_health", web::get().to(HttpResponse::Ok))
        .configure(twilio::configure)
        .configure(telnyx::configure)
        .configure(vonage::configure)
        .configure(bandwidth::configure)
        .configure(plivo::configure)
        .configure(sinch::configure)
        .configure(rbm::configure);
}

/// A running fake.
#[derive(Debug)]
pub struct RunningFake {
    pub address: SocketAddr,
    pub state: web::Data<FakeState>,
    pub handle: actix_web::dev::ServerHandle,
}

impl RunningFake {
    /// `http://address`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// Binds the fake and starts serving it on the current runtime (tests: `127.0.0.1:0`).
///
/// # Errors
/// When the address cannot be bound.
pub fn spawn(listen: SocketAddr) -> anyhow::Result<RunningFake> {
    let listener = std::net::TcpListener::bind(listen)?;
    let address = listener.local_addr()?;
    let state = web::Data::new(FakeState::default());
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(web::PayloadConfig::new(1024 * 1024))
            .configure(configure)
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(RunningFake {
        address,
        state,
        handle,
    })
}

/// Serves the fake on `listen` until SIGINT/SIGTERM.
///
/// # Errors
/// When the address cannot be bound.
pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(listen)?;
    let address = listener.local_addr()?;
    let state = web::Data::new(FakeState::default());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(1024 * 1024))
            .configure(configure)
    })
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    eprintln!(
        "fake carrier listening on http://{address}: point an account's api_base here; \
         GET /_sent lists what it received, POST /_fail plans failures"
    );
    server.await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_apply_in_order_and_per_carrier() {
        let state = FakeState::default();
        state.plan(FailureRequest {
            mode: FailureMode::ServerError,
            count: 2,
            carrier: Some("telnyx".to_owned()),
            retry_after: None,
            delay_ms: 1,
        });
        state.plan(FailureRequest {
            mode: FailureMode::Throttle,
            count: 1,
            carrier: None,
            retry_after: Some(3),
            delay_ms: 1,
        });
        assert_eq!(
            state.decide(Carrier::Twilio),
            Decision::Fail {
                mode: FailureMode::Throttle,
                retry_after: Some(3)
            }
        );
        assert!(matches!(
            state.decide(Carrier::Twilio),
            Decision::Accept { .. }
        ));
        for _ in 0..2 {
            assert!(matches!(
                state.decide(Carrier::Telnyx),
                Decision::Fail {
                    mode: FailureMode::ServerError,
                    ..
                }
            ));
        }
        assert!(matches!(
            state.decide(Carrier::Telnyx),
            Decision::Accept { .. }
        ));
    }

    #[test]
    fn failure_requests_parse() {
        let request: FailureRequest =
            serde_json::from_str(r#"{"mode":"timeout","count":3,"delay_ms":50}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.mode, FailureMode::Timeout);
        assert_eq!((request.count, request.delay_ms), (3, 50));
        assert!(serde_json::from_str::<FailureRequest>(r#"{"mode":"explode"}"#).is_err());
    }
}
