//! A fake of a business's knowledge-check endpoint ([`crate::escalation::knowledge`]), for tests
//! and demonstrations, and a reference for the business's developers: it checks requests as
//! their endpoint should.
//!
//! | route | what |
//! |---|---|
//! | `POST /verify` | the check. Refuses with `401` a missing or bad `X-Drawbridge-Signature`, a timestamp more than 5 minutes from now, or a nonce it has seen before (a replay); `400` a body that is not the protocol's JSON; otherwise answers `200` `{"verified": bool}`: `true` when [`RunningKnowledge::accept`] named this answer for this conversation (compared after trimming, case-insensitively) |
//! | any method, `/elsewhere` | where [`KnowledgeMode::Redirect`] points; answers `200` `{"verified": true}` to anyone, so a client that followed the redirect would let the customer in. Each call is recorded too |
//!
//! [`RunningKnowledge::set_mode`] makes the checks after it go wrong in one chosen way
//! ([`KnowledgeMode`]), once the signature has been checked. [`RunningKnowledge::requests`] lists
//! what arrived, minimally: the conversation id, whether the signature was valid, and what was
//! answered — never the answer text. The fake logs nothing.

use crate::escalation::knowledge::{verify_signature, SIGNATURE_HEADER};
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The check endpoint's path.
pub const CHECK_PATH: &str = "/verify";

/// Where [`KnowledgeMode::Redirect`] points.
pub const REDIRECT_PATH: &str = "/elsewhere";

/// How far a signature's timestamp may be from the fake's clock.
pub const TOLERANCE_SECS: i64 = 300;

/// How the fake answers a correctly signed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KnowledgeMode {
    /// `200` `{"verified": bool}`.
    #[default]
    Normal,
    /// Waits this long, then answers as [`KnowledgeMode::Normal`].
    Delay(Duration),
    /// `500`.
    ServerError,
    /// `200` with a body that is not the protocol's (`{"verified": "yes"}`).
    Malformed,
    /// `302` to [`REDIRECT_PATH`].
    Redirect,
}

/// One request that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnowledgeRequest {
    /// The body's `conversation_id`; empty when the body could not be read.
    pub conversation_id: String,
    /// Whether the signature was present, correct and fresh.
    pub signature_valid: bool,
    /// What the fake answered in a `200` `{"verified": …}`; `None` for any other reply.
    pub answered: Option<bool>,
}

/// The fake endpoint; [`FakeKnowledge::spawn`] runs one.
#[derive(Debug)]
pub struct FakeKnowledge;

impl FakeKnowledge {
    /// Binds `127.0.0.1:0` and serves the fake on the current runtime, checking signatures
    /// with `secret`.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn spawn(secret: &str) -> anyhow::Result<RunningKnowledge> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .context("binding the fake knowledge check")?;
        let address = listener.local_addr()?;
        let base = format!("http://{address}");
        let state = web::Data::new(KnowledgeState {
            base: base.clone(),
            secret: SecretString::from(secret),
            inner: Mutex::new(Inner::default()),
        });
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(web::PayloadConfig::new(64 * 1024))
                .route(CHECK_PATH, web::post().to(check))
                .route(REDIRECT_PATH, web::route().to(elsewhere))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(RunningKnowledge {
            url: format!("{base}{CHECK_PATH}"),
            address,
            state,
            handle,
        })
    }
}

/// What changes while the fake runs.
#[derive(Default)]
struct Inner {
    /// Accepted answers by conversation, already normalised.
    accepted: HashMap<String, Zeroizing<String>>,
    mode: KnowledgeMode,
    requests: Vec<KnowledgeRequest>,
    nonces: HashSet<String>,
}

/// The fake's memory, shared by its handlers and the [`RunningKnowledge`].
struct KnowledgeState {
    base: String,
    secret: SecretString,
    inner: Mutex<Inner>,
}

impl fmt::Debug for KnowledgeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnowledgeState")
            .field("base", &self.base)
            .field("secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl KnowledgeState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, conversation_id: &str, signature_valid: bool, answered: Option<bool>) {
        self.lock().requests.push(KnowledgeRequest {
            conversation_id: conversation_id.to_owned(),
            signature_valid,
            answered,
        });
    }
}

/// A running fake endpoint.
#[derive(Debug)]
pub struct RunningKnowledge {
    /// The check endpoint's full URL: `http://127.0.0.1:PORT/verify`.
    pub url: String,
    pub address: SocketAddr,
    state: web::Data<KnowledgeState>,
    handle: actix_web::dev::ServerHandle,
}

impl RunningKnowledge {
    /// Sets the answer accepted for a conversation (compared after trimming, case-insensitively),
    /// replacing any earlier one. A conversation never named here is answered `false`.
    pub fn accept(&self, conversation_id: &str, answer: &str) {
        self.state
            .lock()
            .accepted
            .insert(conversation_id.to_owned(), normalise(answer));
    }

    /// How correctly signed checks are answered from now on.
    pub fn set_mode(&self, mode: KnowledgeMode) {
        self.state.lock().mode = mode;
    }

    /// Every request so far, oldest first.
    #[must_use]
    pub fn requests(&self) -> Vec<KnowledgeRequest> {
        self.state.lock().requests.clone()
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// The protocol's request body.
#[derive(serde::Deserialize)]
struct Check {
    conversation_id: String,
    answer: String,
    timestamp: i64,
    nonce: String,
}

/// Just the conversation id, read from a body whatever its signature, for the record.
#[derive(serde::Deserialize)]
struct ConversationOnly {
    conversation_id: String,
}

async fn check(
    state: web::Data<KnowledgeState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let now = unix_now();
    let signature_valid = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            verify_signature(
                state.secret.expose_secret().as_bytes(),
                value,
                &body,
                now,
                TOLERANCE_SECS,
            )
        });
    if !signature_valid {
        let conversation_id = serde_json::from_slice::<ConversationOnly>(&body)
            .map(|c| c.conversation_id)
            .unwrap_or_default();
        state.record(&conversation_id, false, None);
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(Check {
        conversation_id,
        answer,
        timestamp,
        nonce,
    }) = serde_json::from_slice::<Check>(&body)
    else {
        state.record("", true, None);
        return HttpResponse::BadRequest().finish();
    };
    let answer = Zeroizing::new(answer);
    // The body's timestamp must be the signed one, and its nonce new.
    let header_time = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(signed_time);
    let mode = {
        let mut inner = state.lock();
        let fresh = header_time == Some(timestamp) && inner.nonces.insert(nonce);
        if !fresh {
            drop(inner);
            state.record(&conversation_id, true, None);
            return HttpResponse::Unauthorized().finish();
        }
        inner.mode
    };
    match mode {
        KnowledgeMode::ServerError => {
            state.record(&conversation_id, true, None);
            return HttpResponse::InternalServerError().finish();
        }
        KnowledgeMode::Malformed => {
            state.record(&conversation_id, true, None);
            return HttpResponse::Ok()
                .content_type("application/json")
                .body(r#"{"verified": "yes"}"#);
        }
        KnowledgeMode::Redirect => {
            state.record(&conversation_id, true, None);
            return HttpResponse::Found()
                .insert_header((header::LOCATION, format!("{}{REDIRECT_PATH}", state.base)))
                .finish();
        }
        KnowledgeMode::Delay(delay) => tokio::time::sleep(delay).await,
        KnowledgeMode::Normal => {}
    }
    let given = normalise(&answer);
    let verified = state
        .lock()
        .accepted
        .get(&conversation_id)
        .is_some_and(|accepted| bool::from(accepted.as_bytes().ct_eq(given.as_bytes())));
    state.record(&conversation_id, true, Some(verified));
    HttpResponse::Ok().json(json!({ "verified": verified }))
}

/// Where a redirect points: says yes to anyone, so following it would be caught.
async fn elsewhere(state: web::Data<KnowledgeState>) -> HttpResponse {
    state.record("", false, Some(true));
    HttpResponse::Ok().json(json!({ "verified": true }))
}

/// The `t` of a signature header.
fn signed_time(header: &str) -> Option<i64> {
    header
        .split(',')
        .find_map(|item| item.trim().strip_prefix("t="))
        .and_then(|t| t.parse().ok())
}

fn normalise(answer: &str) -> Zeroizing<String> {
    Zeroizing::new(answer.trim().to_lowercase())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escalation::knowledge::sign;

    const SECRET: &str = "fake-secret-0123456789";

    fn body(conversation_id: &str, answer: &str, timestamp: i64, nonce: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "conversation_id": conversation_id,
            "answer": answer,
            "timestamp": timestamp,
            "nonce": nonce,
        }))
        .unwrap()
    }

    async fn post(url: &str, signature: Option<String>, body: Vec<u8>) -> (u16, String) {
        let mut request = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn signed(url: &str, secret: &str, body: Vec<u8>, at: i64) -> (u16, String) {
        post(url, Some(sign(secret.as_bytes(), at, &body)), body).await
    }

    #[tokio::test]
    async fn answers_are_compared_trimmed_and_ignoring_case() {
        let fake = FakeKnowledge::spawn(SECRET).await.unwrap();
        assert!(fake.url.starts_with("http://127.0.0.1:") && fake.url.ends_with("/verify"));
        fake.accept("conv-1", "  Rosebud ");
        let now = unix_now();
        let (status, reply) =
            signed(&fake.url, SECRET, body("conv-1", "ROSEBUD", now, "n1"), now).await;
        assert_eq!((status, reply.as_str()), (200, r#"{"verified":true}"#));
        let (status, reply) =
            signed(&fake.url, SECRET, body("conv-1", "rosebug", now, "n2"), now).await;
        assert_eq!((status, reply.as_str()), (200, r#"{"verified":false}"#));
        // Another conversation's answer does not count.
        let (_, reply) = signed(&fake.url, SECRET, body("conv-2", "rosebud", now, "n3"), now).await;
        assert_eq!(reply, r#"{"verified":false}"#);
        // A later accept replaces the earlier.
        fake.accept("conv-1", "sled");
        let (_, reply) = signed(&fake.url, SECRET, body("conv-1", "rosebud", now, "n4"), now).await;
        assert_eq!(reply, r#"{"verified":false}"#);
        assert_eq!(
            fake.requests(),
            [
                ("conv-1", Some(true)),
                ("conv-1", Some(false)),
                ("conv-2", Some(false)),
                ("conv-1", Some(false)),
            ]
            .map(|(conversation_id, answered)| KnowledgeRequest {
                conversation_id: conversation_id.to_owned(),
                signature_valid: true,
                answered,
            })
        );
        fake.stop().await;
    }

    #[tokio::test]
    async fn bad_stale_missing_or_replayed_signatures_get_401() {
        let fake = FakeKnowledge::spawn(SECRET).await.unwrap();
        fake.accept("conv-1", "rosebud");
        let now = unix_now();
        let cases = [
            // Wrong secret.
            signed(
                &fake.url,
                "another-secret-0123456789",
                body("conv-1", "rosebud", now, "a"),
                now,
            )
            .await,
            // Older and newer than five minutes.
            signed(
                &fake.url,
                SECRET,
                body("conv-1", "rosebud", now - 301, "b"),
                now - 301,
            )
            .await,
            signed(
                &fake.url,
                SECRET,
                body("conv-1", "rosebud", now + 301, "c"),
                now + 301,
            )
            .await,
            // No header.
            post(&fake.url, None, body("conv-1", "rosebud", now, "d")).await,
            // The body's timestamp is not the signed one.
            signed(
                &fake.url,
                SECRET,
                body("conv-1", "rosebud", now - 10, "e"),
                now,
            )
            .await,
        ];
        for (status, _) in &cases {
            assert_eq!(*status, 401);
        }
        // A replay of a good request.
        let original = body("conv-1", "rosebud", now, "f");
        let signature = sign(SECRET.as_bytes(), now, &original);
        assert_eq!(
            post(&fake.url, Some(signature.clone()), original.clone())
                .await
                .0,
            200
        );
        assert_eq!(post(&fake.url, Some(signature), original).await.0, 401);
        let requests = fake.requests();
        let valid: Vec<_> = requests.iter().map(|r| r.signature_valid).collect();
        assert_eq!(valid, [false, false, false, false, true, true, true]);
        let answered: Vec<_> = requests.iter().map(|r| r.answered).collect();
        assert_eq!(answered, [None, None, None, None, None, Some(true), None]);
        assert!(requests.iter().all(|r| r.conversation_id == "conv-1"));
        fake.stop().await;
    }

    #[tokio::test]
    async fn a_signed_body_that_is_not_the_protocol_gets_400() {
        let fake = FakeKnowledge::spawn(SECRET).await.unwrap();
        let now = unix_now();
        let (status, _) = signed(
            &fake.url,
            SECRET,
            br#"{"conversation_id":"c"}"#.to_vec(),
            now,
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(
            fake.requests(),
            [KnowledgeRequest {
                conversation_id: String::new(),
                signature_valid: true,
                answered: None,
            }]
        );
        fake.stop().await;
    }

    #[tokio::test]
    async fn modes_apply_after_the_signature_check() {
        let fake = FakeKnowledge::spawn(SECRET).await.unwrap();
        let now = unix_now();
        fake.set_mode(KnowledgeMode::ServerError);
        let (status, _) = signed(
            &fake.url,
            "another-secret-0123456789",
            body("c", "x", now, "a"),
            now,
        )
        .await;
        assert_eq!(status, 401);
        let (status, _) = signed(&fake.url, SECRET, body("c", "x", now, "b"), now).await;
        assert_eq!(status, 500);
        fake.set_mode(KnowledgeMode::Malformed);
        let (status, reply) = signed(&fake.url, SECRET, body("c", "x", now, "c"), now).await;
        assert_eq!((status, reply.as_str()), (200, r#"{"verified": "yes"}"#));
        fake.set_mode(KnowledgeMode::Redirect);
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(&fake.url)
            .header(
                SIGNATURE_HEADER,
                sign(SECRET.as_bytes(), now, &body("c", "x", now, "d")),
            )
            .body(body("c", "x", now, "d"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 302);
        let location = response.headers()[header::LOCATION.as_str()]
            .to_str()
            .unwrap();
        assert_eq!(location, format!("http://{}{REDIRECT_PATH}", fake.address));
        fake.set_mode(KnowledgeMode::Normal);
        let (status, reply) = signed(&fake.url, SECRET, body("c", "x", now, "e"), now).await;
        assert_eq!((status, reply.as_str()), (200, r#"{"verified":false}"#));
        fake.stop().await;
    }

    #[tokio::test]
    async fn debug_output_has_no_secret_and_records_no_answer() {
        let fake = FakeKnowledge::spawn(SECRET).await.unwrap();
        fake.accept("conv-1", "Rosebud-Answer");
        let now = unix_now();
        signed(
            &fake.url,
            SECRET,
            body("conv-1", "rosebud-answer", now, "a"),
            now,
        )
        .await;
        let text = format!("{fake:?} {:?}", fake.requests());
        assert!(text.contains("conv-1"), "{text}");
        for secret in [SECRET, "osebud"] {
            assert!(!text.contains(secret), "{text} contains {secret}");
        }
        fake.stop().await;
    }
}
