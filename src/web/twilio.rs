//! Twilio webhook routes.
//!
//! Order of checks, each failure counted in `drawbridge_webhooks_rejected_total` with its reason
//! and answered without storing anything:
//!
//! 1. body larger than [`MAX_WEBHOOK_BODY`] → 413; content type neither form nor JSON → 415;
//! 2. malformed form → 400; the business number (`To` inbound, `From` for status) missing → 400;
//! 3. number not configured → 404;
//! 4. `X-Twilio-Signature` missing or wrong for the owning account's auth token → 403;
//! 5. other required fields missing → 400;
//! 6. stored (or recognised as a retry) → 200 with an empty TwiML `<Response/>`, sent only after
//!    the transaction commits; database unavailable → 503 so Twilio retries.

use super::error::ApiError;
use super::{AppState, MAX_WEBHOOK_BODY};
use crate::carriers::form;
use crate::carriers::twilio::{self, signature, CARRIER};
use crate::config::{Account, CarrierAccount, TwilioAccount};
use crate::metrics::{StatusLabels, WebhookLabels};
use crate::pipeline::{self, IngestError, Outcome};
use crate::store::messages;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use std::sync::Arc;

/// The empty TwiML document: "received, nothing to say".
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/twilio", web::post().to(inbound))
        .route("/webhooks/twilio/status", web::post().to(status));
}

fn twiml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(EMPTY_TWIML)
}

/// A webhook read, parsed and — once [`Request::authenticate`] has passed — trusted.
struct Request {
    params: Vec<(String, String)>,
    body: web::Bytes,
    json: bool,
}

impl Request {
    /// Counts the webhook, reads the body within the limit and parses it by content type.
    async fn read(
        req: &HttpRequest,
        payload: web::Payload,
        state: &AppState,
        kind: &'static str,
    ) -> Result<Self, ApiError> {
        let labels = WebhookLabels {
            carrier: CARRIER,
            kind,
        };
        state.metrics.webhooks_received.get_or_create(&labels).inc();
        let reject = |reason: &'static str, error: ApiError| {
            state.metrics.reject(CARRIER, kind, reason);
            error
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_WEBHOOK_BODY) {
            return Err(reject("too_large", ApiError::too_large(MAX_WEBHOOK_BODY)));
        }
        let body = match payload.to_bytes_limited(MAX_WEBHOOK_BODY).await {
            Ok(Ok(body)) => body,
            Ok(Err(_)) => {
                return Err(reject(
                    "malformed",
                    ApiError::bad_request("the request body could not be read"),
                ))
            }
            Err(_) => return Err(reject("too_large", ApiError::too_large(MAX_WEBHOOK_BODY))),
        };
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let (params, json) = match mime.as_str() {
            "application/x-www-form-urlencoded" => {
                let params = form::parse(&body).map_err(|e| reject("malformed", ApiError::bad_request(e.to_string())))?;
                (params, false)
            }
            "application/json" => {
                let params = json_params(&body).ok_or_else(|| reject("malformed", ApiError::bad_request("the JSON body is not an object")))?;
                (params, true)
            }
            _ => {
                return Err(reject(
                    "unsupported_media_type",
                    ApiError::unsupported_media_type("Twilio webhooks are application/x-www-form-urlencoded (or JSON with bodySHA256)"),
                ))
            }
        };
        Ok(Self { params, body, json })
    }

    /// Checks `X-Twilio-Signature` against the account's auth token, for the URL Twilio called:
    /// `public_url` + the raw path and query of this request.
    fn authenticate(
        &self,
        req: &HttpRequest,
        state: &AppState,
        account: &TwilioAccount,
        kind: &'static str,
    ) -> Result<(), ApiError> {
        let mut url = format!("{}{}", state.public_url, req.uri().path());
        if let Some(query) = req.uri().query() {
            url.push('?');
            url.push_str(query);
        }
        let signature = req
            .headers()
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok());
        let valid = signature.is_some_and(|signature| {
            if self.json {
                signature::verify_json(&account.auth_token, &url, &self.body, signature)
            } else {
                signature::verify_form(&account.auth_token, &url, &self.params, signature)
            }
        });
        if valid {
            Ok(())
        } else {
            state.metrics.reject(CARRIER, kind, "signature");
            tracing::warn!(
                kind,
                signature_present = signature.is_some(),
                "twilio webhook rejected: signature did not verify"
            );
            Err(ApiError::forbidden("invalid or missing X-Twilio-Signature"))
        }
    }
}

/// Top-level scalar members of a JSON object as string pairs (numbers and booleans as written).
fn json_params(body: &[u8]) -> Option<Vec<(String, String)>> {
    let serde_json::Value::Object(map) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    Some(
        map.into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                serde_json::Value::Number(n) => Some((k, n.to_string())),
                serde_json::Value::Bool(b) => Some((k, b.to_string())),
                _ => None,
            })
            .collect(),
    )
}

fn twilio_account(account: &Account) -> &TwilioAccount {
    match &account.carrier {
        CarrierAccount::Twilio(twilio) => twilio,
    }
}

/// `POST /webhooks/twilio`: an inbound message.
async fn inbound(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    const KIND: &str = "inbound";
    let request = Request::read(&req, payload, &state, KIND).await?;
    let to = twilio::inbound_business_number(&request.params).map_err(|e| {
        state.metrics.reject(CARRIER, KIND, "malformed");
        ApiError::bad_request(e.to_string())
    })?;
    let Some(account) = state
        .numbers
        .get(&to)
        .filter(|a| matches!(a.carrier, CarrierAccount::Twilio(_)))
    else {
        state.metrics.reject(CARRIER, KIND, "unknown_number");
        return Err(ApiError::not_found(
            "the `To` number is not a business number configured on this service",
        ));
    };
    request.authenticate(&req, &state, twilio_account(account), KIND)?;
    let message = twilio::parse_inbound(&request.params).map_err(|e| {
        state.metrics.reject(CARRIER, KIND, "malformed");
        ApiError::bad_request(e.to_string())
    })?;
    drop(request);

    match pipeline::ingest(
        &state.db,
        &state.vault,
        &state.redactor,
        &state.metrics,
        message,
    )
    .await
    {
        Ok(Outcome::Stored { .. }) => Ok(twiml()),
        Ok(Outcome::Duplicate) => {
            state
                .metrics
                .webhooks_duplicate
                .get_or_create(&WebhookLabels {
                    carrier: CARRIER,
                    kind: KIND,
                })
                .inc();
            tracing::info!("duplicate inbound webhook acknowledged; nothing stored");
            Ok(twiml())
        }
        Err(error) => Err(storage_error(&state, KIND, &error)),
    }
}

fn storage_error(state: &AppState, kind: &'static str, error: &IngestError) -> ApiError {
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
                    carrier: CARRIER,
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

/// Finds the account for a status callback: the one owning the sending number (`From`), else the
/// one whose SID matches `AccountSid`.
fn status_account(state: &AppState, params: &[(String, String)]) -> Option<Arc<Account>> {
    if let Some(account) = twilio::status_business_number(params)
        .ok()
        .and_then(|n| state.numbers.get(&n))
    {
        return Some(Arc::clone(account));
    }
    let sid = form::first(params, "AccountSid")?;
    state
        .accounts
        .iter()
        .find(|a| matches!(&a.carrier, CarrierAccount::Twilio(t) if t.account_sid == sid))
        .cloned()
}

/// `POST /webhooks/twilio/status`: a delivery status callback.
async fn status(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    const KIND: &str = "status";
    let request = Request::read(&req, payload, &state, KIND).await?;
    let Some(account) = status_account(&state, &request.params) else {
        state.metrics.reject(CARRIER, KIND, "unknown_number");
        return Err(ApiError::not_found(
            "neither `From` nor `AccountSid` matches an account configured on this service",
        ));
    };
    request.authenticate(&req, &state, twilio_account(&account), KIND)?;
    let callback = twilio::parse_status(&request.params).map_err(|e| {
        state.metrics.reject(CARRIER, KIND, "malformed");
        ApiError::bad_request(e.to_string())
    })?;
    let report = messages::StatusReport {
        carrier: CARRIER,
        carrier_message_id: &callback.message_sid,
        status: callback.status,
        carrier_status: &callback.carrier_status,
        error_code: callback.error_code.as_deref(),
    };
    let result = async {
        let mut tx = state.db.pool().begin().await?;
        let applied = messages::record_status(&mut tx, &report).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(applied)
    }
    .await;
    match result {
        Ok(applied) => {
            // Twilio's words for inbound progress (`receiving`, `received`) and any it adds later
            // are kept as `unknown` events, acknowledged so Twilio does not retry, and not applied.
            let status = callback.status.unwrap_or("unknown");
            let labels = StatusLabels {
                carrier: CARRIER,
                status,
            };
            state.metrics.status_updates.get_or_create(&labels).inc();
            tracing::info!(status, carrier_status = %callback.carrier_status, applied, "twilio status callback recorded");
            Ok(twiml())
        }
        Err(error) => Err(storage_error(&state, KIND, &IngestError::from(error))),
    }
}
