//! Carrier webhooks, one handler for every carrier: `POST /webhooks/{carrier}` (inbound) and
//! `POST /webhooks/{carrier}/status` (status callbacks), and `GET` on both for carriers that can
//! be configured to use it (Twilio, Plivo, Vonage's SMS API).
//!
//! Order of checks, each failure counted in `drawbridge_webhooks_rejected_total` with its reason
//! and answered without storing anything:
//!
//! 1. unknown carrier → 404; a method the carrier never uses → 405;
//! 2. body larger than [`MAX_WEBHOOK_BODY`] → 413;
//! 3. the carrier module reads which of our senders the webhook concerns: wrong content type →
//!    415, unreadable → 400; a sender we do not have → 404;
//! 4. authenticity, with the credentials of the account owning that sender (or of every account
//!    of the carrier, when the payload names none) → 403 when none verifies;
//! 5. the payload → 400 naming the field at fault;
//! 6. every event is stored (or recognised as a retry), then the carrier's success reply is sent,
//!    only after the commit; database unavailable → 503 with `Retry-After` so the carrier retries.

use super::error::ApiError;
use super::{AppState, MAX_WEBHOOK_BODY};
use crate::carriers::{Carrier, Event, Method, PayloadError, Route, WebhookRequest};
use crate::config::Account;
use crate::metrics::{IgnoredLabels, StatusLabels, WebhookLabels};
use crate::pipeline::{self, IngestError, Outcome};
use crate::store::messages;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use std::sync::Arc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/{carrier}", web::post().to(inbound))
        .route("/webhooks/{carrier}", web::get().to(inbound))
        .route("/webhooks/{carrier}/status", web::post().to(status))
        .route("/webhooks/{carrier}/status", web::get().to(status));
}

async fn inbound(
    req: HttpRequest,
    carrier: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    handle(req, &carrier, payload, &state, Route::Inbound).await
}

async fn status(
    req: HttpRequest,
    carrier: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    handle(req, &carrier, payload, &state, Route::Status).await
}

async fn handle(
    req: HttpRequest,
    name: &str,
    payload: web::Payload,
    state: &AppState,
    route: Route,
) -> Result<HttpResponse, ApiError> {
    let Some(carrier) = Carrier::from_name(name) else {
        return Err(ApiError::not_found(format!(
            "no such carrier (supported: {})",
            Carrier::names()
        )));
    };
    let kind = route.as_str();
    let ip = state
        .limits
        .client_ip(req.peer_addr().map(|a| a.ip()), |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    // Every refusal is counted, and spends the address's refusal budget (see
    // `compliance::limits`: accepted traffic is never limited).
    let reject = |reason: &'static str, error: ApiError| {
        state.metrics.reject(carrier.name(), kind, reason);
        if let Some(ip) = ip {
            state.limits.webhook_refused(ip);
        }
        error
    };
    if let Some(ip) = ip {
        if let Err(retry) = state.limits.webhook(ip) {
            state.metrics.reject(carrier.name(), kind, "rate_limited");
            return Err(ApiError::too_many(
                "refused from this address",
                retry.seconds(),
            ));
        }
    }
    let method = if req.method() == actix_web::http::Method::GET {
        Method::Get
    } else {
        Method::Post
    };
    if !carrier.profile().accepts_method(method) {
        return Err(reject(
            "method",
            ApiError::method_not_allowed("this carrier's webhooks are POST requests"),
        ));
    }
    state
        .metrics
        .webhooks_received
        .get_or_create(&WebhookLabels {
            carrier: carrier.name(),
            kind,
        })
        .inc();
    let request = read(&req, payload, state, method)
        .await
        .map_err(|(reason, error)| reject(reason, error))?;

    let payload_error = |error: PayloadError| match error {
        PayloadError::ContentType(_) => reject(
            "unsupported_media_type",
            ApiError::unsupported_media_type(error.to_string()),
        ),
        other => reject("malformed", ApiError::bad_request(other.to_string())),
    };
    let candidates: Vec<Arc<Account>> =
        match carrier.hint(&request, route).map_err(payload_error)? {
            Some(address) => {
                match state.numbers.get(&address) {
                    Some(account) if account.carrier.carrier() == carrier => {
                        vec![Arc::clone(account)]
                    }
                    _ => {
                        return Err(reject(
                            "unknown_number",
                            ApiError::not_found(format!(
                        "the business number (`{}`) is not configured for {} on this service",
                        if route == Route::Inbound { "To" } else { "From" },
                        carrier.name()
                    )),
                        ))
                    }
                }
            }
            None => state
                .accounts
                .iter()
                .filter(|a| a.carrier.carrier() == carrier)
                .cloned()
                .collect(),
        };
    if candidates.is_empty() {
        return Err(reject(
            "unknown_number",
            ApiError::not_found(format!(
                "no {} account is configured on this service",
                carrier.name()
            )),
        ));
    }
    let now = chrono::Utc::now();
    let mut scheme = "";
    let mut retry_signed = false;
    let mut verified = None;
    for account in &candidates {
        let verification = account.carrier.verify(&request, now);
        scheme = verification.scheme;
        retry_signed |= verification.retry_signed;
        if verification.valid {
            verified = Some((account, verification.replay_key));
            break;
        }
    }
    let Some((account, replay_key)) = verified else {
        if retry_signed {
            // The carrier sends such a request unsigned after an internal error and signs its
            // retry: ask for the retry rather than refuse for good.
            tracing::warn!(
                carrier = carrier.name(),
                kind,
                "unsigned webhook answered 503 so the carrier retries it signed"
            );
            state.metrics.reject(carrier.name(), kind, "unsigned_retry");
            return Err(ApiError::unavailable());
        }
        tracing::warn!(
            carrier = carrier.name(),
            kind,
            "webhook rejected: its signature or credentials did not verify"
        );
        // The scheme is a fixed description (which header, which algorithm), never request data.
        return Err(reject(
            "signature",
            ApiError::forbidden(format!(
                "the request is not authentic: {scheme} did not verify"
            )),
        ));
    };
    if let Some(key) = replay_key {
        match nonce_is_fresh(state, carrier, &key, &request.body).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    carrier = carrier.name(),
                    kind,
                    "webhook rejected: a signature nonce seen before with another body"
                );
                return Err(reject(
                    "replay",
                    ApiError::forbidden("the request is not authentic: its nonce was used before with other content"),
                ));
            }
            Err(error) => {
                return Err(storage_error(
                    state,
                    carrier,
                    kind,
                    &IngestError::from(error),
                ))
            }
        }
    }
    let events = carrier.parse(&request, route).map_err(payload_error)?;
    drop(request);

    // Every message and consent report must be for a sender of the account that authenticated
    // the request.
    for event in &events {
        let business = match event {
            Event::Message(message) => Some(&message.to),
            Event::Consent(report) => Some(&report.business),
            _ => None,
        };
        if let Some(business) = business {
            let owned = state
                .numbers
                .get(business)
                .is_some_and(|owner| owner.name == account.name);
            if !owned {
                return Err(reject(
                    "unknown_number",
                    ApiError::not_found(
                        "an event in the webhook is for a number not configured for this account",
                    ),
                ));
            }
        }
    }

    let mut answer = None;
    for event in events {
        process(state, carrier, kind, event, &mut answer)
            .await
            .map_err(|error| storage_error(state, carrier, kind, &error))?;
    }
    let (content_type, body) = carrier.success_reply();
    Ok(match answer {
        Some(text) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(text),
        None => HttpResponse::Ok().content_type(content_type).body(body),
    })
}

/// Records the nonce of a signature that does not cover the body, with the body's hash. Returns
/// whether the request may proceed: the nonce is new, or was seen with this same body (the
/// carrier's retry). Nonces older than 7 days are pruned now and then.
async fn nonce_is_fresh(
    state: &AppState,
    carrier: Carrier,
    key: &str,
    body: &[u8],
) -> Result<bool, sqlx::Error> {
    use sha2::Digest;
    if !crate::carriers::check_token(key, 160) {
        return Ok(false);
    }
    let hash = sha2::Sha256::digest(body).to_vec();
    let mut tx = state.db.pool().begin().await?;
    let now = chrono::Utc::now();
    sqlx::query(
        "INSERT INTO webhook_nonce (carrier, nonce_key, body_sha256, first_seen_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (carrier, nonce_key) DO NOTHING",
    )
    .bind(carrier.name())
    .bind(key)
    .bind(&hash)
    .bind(crate::store::timestamp(now))
    .execute(&mut *tx)
    .await?;
    let stored: Vec<u8> = sqlx::Row::try_get(
        &sqlx::query("SELECT body_sha256 FROM webhook_nonce WHERE carrier = $1 AND nonce_key = $2")
            .bind(carrier.name())
            .bind(key)
            .fetch_one(&mut *tx)
            .await?,
        0,
    )?;
    if rand::random::<u8>() == 0 {
        sqlx::query("DELETE FROM webhook_nonce WHERE first_seen_at < $1")
            .bind(crate::store::timestamp(now - chrono::Duration::days(7)))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(subtle::ConstantTimeEq::ct_eq(stored.as_slice(), hash.as_slice()).into())
}

/// Stores one event. `answer` receives a handshake's reply text.
async fn process(
    state: &AppState,
    carrier: Carrier,
    kind: &'static str,
    event: Event,
    answer: &mut Option<String>,
) -> Result<(), IngestError> {
    match event {
        Event::Message(message) => {
            let outcome = pipeline::ingest(state, message).await?;
            if outcome == Outcome::Duplicate {
                state
                    .metrics
                    .webhooks_duplicate
                    .get_or_create(&WebhookLabels {
                        carrier: carrier.name(),
                        kind,
                    })
                    .inc();
                tracing::info!(
                    carrier = carrier.name(),
                    "duplicate inbound message acknowledged; nothing stored"
                );
            }
        }
        Event::Status(update) => {
            let report = messages::StatusReport {
                carrier: carrier.name(),
                carrier_message_id: &update.carrier_message_id,
                status: update.status,
                carrier_status: &update.carrier_status,
                error_code: update.error_code.as_deref(),
            };
            let mut tx = state.db.pool().begin().await?;
            let applied = messages::record_status(&mut tx, &report).await?;
            // The carrier's "recipient opted out" code is a consent change.
            let opted_out = match update.error_code.as_deref() {
                Some(code)
                    if carrier.profile().error_class(code)
                        == Some(crate::carriers::ErrorClass::OptedOut) =>
                {
                    let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
                    let recorded = pipeline::record_carrier_opt_out(
                        state,
                        &mut savepoint,
                        carrier.name(),
                        &update.carrier_message_id,
                        code,
                    )
                    .await;
                    pipeline::settle_opt_out(recorded, savepoint).await?
                }
                _ => false,
            };
            tx.commit().await?;
            state.live.changed();
            if opted_out {
                state.metrics.consent_recorded(
                    crate::compliance::consent::Kind::OptOut,
                    crate::compliance::consent::Source::CarrierReport,
                );
                tracing::info!(
                    carrier = carrier.name(),
                    "the carrier reported an opt-out; recorded in the consent ledger"
                );
            }
            // Words outside our vocabulary are kept as `unknown` events and not applied.
            let status = update.status.unwrap_or("unknown");
            state
                .metrics
                .status_updates
                .get_or_create(&StatusLabels {
                    carrier: carrier.name(),
                    status,
                })
                .inc();
            tracing::info!(carrier = carrier.name(), status, carrier_status = %update.carrier_status, applied, "status callback recorded");
        }
        Event::Consent(report) => {
            let new = pipeline::record_consent(state, carrier.name(), &report).await?;
            state
                .metrics
                .webhooks_ignored
                .get_or_create(&IgnoredLabels {
                    carrier: carrier.name(),
                    reason: report.kind.as_str(),
                })
                .inc();
            tracing::info!(
                carrier = carrier.name(),
                kind = report.kind.as_str(),
                new,
                "carrier consent report recorded"
            );
        }
        Event::Challenge(text) => {
            tracing::info!(
                carrier = carrier.name(),
                "webhook set-up handshake answered"
            );
            *answer = Some(text.to_string());
        }
        Event::Ignored(reason) => {
            state
                .metrics
                .webhooks_ignored
                .get_or_create(&IgnoredLabels {
                    carrier: carrier.name(),
                    reason,
                })
                .inc();
        }
    }
    Ok(())
}

/// Reads the request into a [`WebhookRequest`]: the URL the carrier called is `public_url` plus
/// the raw path and query (signatures cover it exactly as sent), headers as received, the body
/// within the limit.
async fn read(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    method: Method,
) -> Result<WebhookRequest, (&'static str, ApiError)> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_WEBHOOK_BODY) {
        return Err(("too_large", ApiError::too_large(MAX_WEBHOOK_BODY)));
    }
    let body = match payload.to_bytes_limited(MAX_WEBHOOK_BODY).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return Err((
                "malformed",
                ApiError::bad_request("the request body could not be read"),
            ))
        }
        Err(_) => return Err(("too_large", ApiError::too_large(MAX_WEBHOOK_BODY))),
    };
    let mut url = format!("{}{}", state.public_url, req.uri().path());
    if let Some(query) = req.uri().query() {
        url.push('?');
        url.push_str(query);
    }
    let headers = req.headers().iter().filter_map(|(name, value)| {
        value
            .to_str()
            .ok()
            .map(|v| (name.as_str().to_owned(), v.to_owned()))
    });
    Ok(WebhookRequest::new(method, url, headers, body.to_vec()))
}

fn storage_error(
    state: &AppState,
    carrier: Carrier,
    kind: &'static str,
    error: &IngestError,
) -> ApiError {
    // The error chain holds driver messages (no values are bound into them) but no content.
    let cause = std::error::Error::source(error)
        .map(ToString::to_string)
        .unwrap_or_default();
    match error {
        IngestError::Unavailable(_) => {
            state
                .metrics
                .webhooks_unavailable
                .get_or_create(&WebhookLabels {
                    carrier: carrier.name(),
                    kind,
                })
                .inc();
            tracing::error!(error = %error, cause = %cause, "webhook not stored: database unavailable; answering 503");
            ApiError::unavailable()
        }
        _ => {
            tracing::error!(error = %error, cause = %cause, "webhook not stored");
            ApiError::internal()
        }
    }
}
