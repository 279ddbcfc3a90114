//! The fake Telnyx Messaging API (`shared/reference/carriers.md` §3; the carrier module
//! [`crate::carriers::telnyx`]):
//!
//! - `POST /v2/messages`: `Authorization: Bearer` with a non-empty key (else `401`, error 10009),
//!   a JSON object body (else `400`, 10015) with `to` (E.164 or a short code), `from` or
//!   `messaging_profile_id`, and `text` or `media_urls` (else `422`, 10004 / 10016, with
//!   `source.pointer`) → `200 {"data": {…, "id": UUID, "to": [{"status": "queued"}]}}`.
//!   Failures in Telnyx's format `{"errors": [{"code", "title", "detail"}]}`: 500 → 10007, 429 →
//!   10011, opted out → `409` 40300 "Blocked due to STOP message". Telnyx does not deduplicate
//!   sends, so neither does the fake. The recorded `reference` is the outbox id Drawbridge puts
//!   in `webhook_url` (`?drawbridge_outbox=`).
//! - `GET /v2/detail_records`: the Detail Record Search API, for messages: the accepted sends
//!   filtered by `filter[direction]`, `filter[cld]` (recipient), `filter[cli]` (sender) and
//!   `filter[created_at][gte]` (a day, `YYYY-MM-DD`, or an RFC 3339 time), newest first, as
//!   `message_detail_record`s whose `delivery_status_webhook_url` is the `webhook_url` sent.

use super::{answer, authorization, FailureMode, FakeState, Fields, Incoming, Record};
use crate::carriers::telnyx::outbox_id_of;
use crate::carriers::{form, Carrier};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

const CARRIER: Carrier = Carrier::Telnyx;

/// Registers this carrier's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v2/messages", web::post().to(send))
        .route("/v2/detail_records", web::get().to(detail_records));
}

/// Telnyx's error body: `{"errors": [{"code", "title", "detail", …}]}`.
fn error(
    status: u16,
    code: &str,
    title: &str,
    detail: &str,
    pointer: Option<&str>,
) -> HttpResponse {
    let mut item = json!({
        "code": code,
        "title": title,
        "detail": detail,
        "meta": {"url": format!("https://developers.telnyx.com/docs/overview/errors/{code}")},
    });
    if let (Some(pointer), Value::Object(map)) = (pointer, &mut item) {
        map.insert("source".to_owned(), json!({ "pointer": pointer }));
    }
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .json(json!({ "errors": [item] }))
}

fn unauthenticated() -> HttpResponse {
    error(
        401,
        "10009",
        "Authentication failed",
        "The required authentication headers were either invalid or not included in the request.",
        None,
    )
}

/// A non-empty Bearer key.
fn authenticated(req: &HttpRequest) -> bool {
    matches!(authorization(req), Some(("Bearer", key)) if !key.is_empty())
}

/// The fields of a send request, as Telnyx names them. No `Debug`: it holds a number and text.
#[derive(Default)]
struct SendBody {
    to: Option<String>,
    from: Option<String>,
    profile: Option<String>,
    text: Option<String>,
    media: Vec<String>,
    webhook_url: Option<String>,
}

impl SendBody {
    /// Reads a JSON object body; `None` when it is not one.
    fn read(body: &[u8]) -> Option<Self> {
        let Value::Object(map) = serde_json::from_slice::<Value>(body).ok()? else {
            return None;
        };
        let text = |name: &str| {
            map.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Some(Self {
            to: text("to"),
            from: text("from"),
            profile: text("messaging_profile_id"),
            text: text("text"),
            media: map
                .get("media_urls")
                .and_then(Value::as_array)
                .map(|urls| {
                    urls.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            webhook_url: text("webhook_url"),
        })
    }

    fn fields(&self) -> Fields {
        Fields {
            to: self.to.clone(),
            from: self.from.clone().or_else(|| self.profile.clone()),
            text: self.text.clone(),
            reference: self.webhook_url.as_deref().and_then(outbox_id_of),
        }
    }

    /// The refusal Telnyx gives a request missing what it needs, if any.
    fn problem(&self) -> Option<HttpResponse> {
        let Some(to) = &self.to else {
            return Some(error(
                422,
                "10004",
                "Missing required parameter",
                "The 'to' parameter is required.",
                Some("/to"),
            ));
        };
        let short_code = (3..=8).contains(&to.len()) && to.bytes().all(|b| b.is_ascii_digit());
        if !(to.starts_with('+') || short_code) {
            return Some(error(
                422,
                "10016",
                "Phone number must be in +E.164 format",
                "The 'to' parameter must be in +E.164 format.",
                Some("/to"),
            ));
        }
        if self.from.is_none() && self.profile.is_none() {
            return Some(error(
                422,
                "10004",
                "Missing required parameter",
                "The 'from' or 'messaging_profile_id' parameter is required.",
                Some("/from"),
            ));
        }
        if self.text.is_none() && self.media.is_empty() {
            return Some(error(
                422,
                "10004",
                "Missing required parameter",
                "The 'text' parameter is required for SMS.",
                Some("/text"),
            ));
        }
        None
    }

    /// Telnyx's answer to an accepted message (`OutboundMessagePayload`).
    fn accepted(&self, id: &str) -> HttpResponse {
        let now = chrono::Utc::now();
        let media: Vec<Value> = self
            .media
            .iter()
            .map(|url| json!({"url": url, "content_type": null, "sha256": null, "size": null}))
            .collect();
        HttpResponse::Ok().json(json!({
            "data": {
                "record_type": "message",
                "direction": "outbound",
                "id": id,
                "type": if self.media.is_empty() { "SMS" } else { "MMS" },
                "messaging_profile_id": self.profile,
                "organization_id": "b448f9cc-a842-4784-98e9-03c1a5872950",
                "from": {"phone_number": self.from, "carrier": "Telnyx", "line_type": "Wireless"},
                "to": [{
                    "phone_number": self.to,
                    "status": "queued",
                    "carrier": "T-MOBILE USA, INC.",
                    "line_type": "Wireless",
                }],
                "cc": [],
                "text": self.text,
                "subject": null,
                "media": media,
                "webhook_url": self.webhook_url,
                "webhook_failover_url": null,
                "encoding": "GSM-7",
                "parts": 1,
                "tags": [],
                "cost": null,
                "received_at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "sent_at": null,
                "completed_at": null,
                "valid_until": (now + chrono::Duration::hours(4))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "errors": [],
                "wait_seconds": 0.0,
            }
        }))
    }
}

async fn send(req: HttpRequest, body: web::Bytes, state: web::Data<FakeState>) -> HttpResponse {
    let incoming = Incoming {
        carrier: CARRIER,
        req: &req,
        body: &body,
    };
    let parsed = SendBody::read(&body);
    let fields = parsed.as_ref().map(SendBody::fields).unwrap_or_default();
    let reject = |response: HttpResponse, fields: Fields| {
        state.record(
            incoming,
            "send",
            response.status().as_u16(),
            "rejected",
            None,
            fields,
        );
        response
    };
    if !authenticated(&req) {
        return reject(unauthenticated(), fields);
    }
    let Some(parsed) = parsed else {
        return reject(
            error(
                400,
                "10015",
                "Bad Request",
                "The request failed because it was not well-formed.",
                None,
            ),
            fields,
        );
    };
    if let Some(problem) = parsed.problem() {
        return reject(problem, fields);
    }
    let decision = state.decide(CARRIER);
    let (from, to) = (
        parsed.from.clone().unwrap_or_default(),
        parsed.to.clone().unwrap_or_default(),
    );
    answer(
        &state,
        incoming,
        fields,
        decision,
        |id| parsed.accepted(id),
        |mode| match mode {
            FailureMode::ServerError => error(
                500,
                "10007",
                "Unexpected error",
                "An unexpected error occured.",
                None,
            ),
            FailureMode::Throttle => error(
                429,
                "10011",
                "Too many requests",
                "You have exceeded the maximum number of allowed requests.",
                None,
            ),
            FailureMode::OptedOut | FailureMode::Timeout => error(
                409,
                "40300",
                "Blocked due to STOP message",
                &format!(
                    "Messages cannot be sent from {from} to {to} due to an existing block rule."
                ),
                None,
            ),
        },
    )
    .await
}

/// The `webhook_url` a recorded send carried.
fn recorded_webhook_url(record: &Record) -> Option<String> {
    serde_json::from_str::<Value>(&record.body)
        .ok()?
        .get("webhook_url")?
        .as_str()
        .map(str::to_owned)
}

/// Whether a record's time (RFC 3339) is on or after `since` (`YYYY-MM-DD` or RFC 3339).
fn on_or_after(at: &str, since: &str) -> bool {
    match chrono::DateTime::parse_from_rfc3339(since) {
        Ok(since) => chrono::DateTime::parse_from_rfc3339(at).is_ok_and(|at| at >= since),
        Err(_) => at.get(..10).is_some_and(|day| day >= since),
    }
}

async fn detail_records(req: HttpRequest, state: web::Data<FakeState>) -> HttpResponse {
    let incoming = Incoming {
        carrier: CARRIER,
        req: &req,
        body: b"",
    };
    if !authenticated(&req) {
        let response = unauthenticated();
        state.record(incoming, "lookup", 401, "rejected", None, Fields::default());
        return response;
    }
    let query = form::parse(req.query_string().as_bytes()).unwrap_or_default();
    let filter = |name: &str| form::first(&query, name).map(str::to_owned);
    let (record_type, direction, cld, cli, since) = (
        filter("filter[record_type]"),
        filter("filter[direction]"),
        filter("filter[cld]"),
        filter("filter[cli]"),
        filter("filter[created_at][gte]"),
    );
    if record_type.is_none() {
        let response = error(
            400,
            "10015",
            "Bad Request",
            "filter[record_type] must be specified.",
            Some("/filter/record_type"),
        );
        state.record(incoming, "lookup", 400, "rejected", None, Fields::default());
        return response;
    }
    let mut data: Vec<Value> = if record_type.as_deref() == Some("messaging")
        && direction.as_deref().is_none_or(|d| d == "outbound")
    {
        state
            .accepted(CARRIER)
            .into_iter()
            .filter(|r| cld.is_none() || r.to == cld)
            .filter(|r| cli.is_none() || r.from == cli)
            .filter(|r| since.as_deref().is_none_or(|s| on_or_after(&r.at, s)))
            .map(|r| {
                json!({
                    "record_type": "message_detail_record",
                    "uuid": r.message_id,
                    "cld": r.to,
                    "cli": r.from,
                    "direction": "outbound",
                    "message_type": "SMS",
                    "created_at": r.at,
                    "updated_at": r.at,
                    "parts": 1,
                    "delivery_status_webhook_url": recorded_webhook_url(&r),
                    "delivery_status_failover_url": null,
                    "currency": "USD",
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    data.reverse();
    let total = data.len();
    state.record(
        incoming,
        "lookup",
        200,
        "accepted",
        None,
        Fields {
            to: cld,
            from: cli,
            text: None,
            reference: None,
        },
    );
    HttpResponse::Ok().json(json!({
        "data": data,
        "meta": {
            "page_number": 1,
            "page_size": total.max(20),
            "total_pages": 1,
            "total_results": total,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_bodies_are_read_and_checked() {
        let body = br#"{"from":"+15550001111","to":"+15551234567","text":"hi","webhook_url":"https://x.example/webhooks/telnyx/status?drawbridge_outbox=0190-a","use_profile_webhooks":true}"#;
        let parsed = SendBody::read(body).unwrap_or_else(|| panic!("not read"));
        assert!(parsed.problem().is_none());
        let fields = parsed.fields();
        assert_eq!(fields.to.as_deref(), Some("+15551234567"));
        assert_eq!(fields.from.as_deref(), Some("+15550001111"));
        assert_eq!(fields.text.as_deref(), Some("hi"));
        assert_eq!(fields.reference.as_deref(), Some("0190-a"));

        assert!(SendBody::read(b"to=+1555").is_none());
        let status = |body: &[u8]| {
            SendBody::read(body)
                .and_then(|b| b.problem())
                .map(|r| r.status().as_u16())
        };
        assert_eq!(status(br#"{"from":"+15550001111","text":"hi"}"#), Some(422));
        assert_eq!(
            status(br#"{"from":"+15550001111","to":"15551234567","text":"hi"}"#),
            Some(422)
        );
        assert_eq!(status(br#"{"to":"+15551234567","text":"hi"}"#), Some(422));
        assert_eq!(
            status(br#"{"from":"+15550001111","to":"+15551234567"}"#),
            Some(422)
        );
        assert_eq!(
            status(
                br#"{"messaging_profile_id":"p","to":"55500","media_urls":["https://m/a.jpg"]}"#
            ),
            None
        );
    }

    /// The module's requests against the fake, over HTTP: send, look up, refusals.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn module_and_fake_agree() {
        use crate::carriers::client::CarrierClient;
        use crate::carriers::{
            CarrierAccount, ErrorClass, LookupQuery, OutboundMessage, SendResult,
        };
        use crate::phone::{BusinessAddress, E164};
        let fake =
            super::super::spawn(([127, 0, 0, 1], 0).into()).unwrap_or_else(|e| panic!("{e}"));
        let table: toml::Table = toml::from_str(&format!(
            "api_key = \"KEY0123456789ABCDEF_test\"\n\
             public_key = \"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"\n\
             api_base = \"{}\"",
            fake.url()
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let account =
            CarrierAccount::from_config(CARRIER, &table, crate::config::Mode::Development)
                .unwrap_or_else(|e| panic!("{e}"));
        let client =
            CarrierClient::new(std::time::Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
        let from = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
        let to = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let message = OutboundMessage {
            outbox_id: "0190d2c4-5b6a-7c00-8000-000000000001",
            from: &from,
            to: &to,
            channel: crate::pipeline::Channel::Sms,
            body: "Your claim was received",
            media_urls: &[],
            suggestions: &[],
            status_callback: "https://sms.example.com/webhooks/telnyx/status",
        };
        let SendResult::Accepted {
            carrier_message_id,
            status,
        } = client.send(&account, &message).await
        else {
            panic!("not accepted")
        };
        assert_eq!(status, Some("queued"));
        let found = client
            .lookup(
                &account,
                &LookupQuery {
                    outbox_id: message.outbox_id,
                    from: &from,
                    to: &to,
                    since: chrono::Utc::now() - chrono::Duration::minutes(5),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
            .unwrap_or_default();
        assert_eq!(found.len(), 1);
        assert!(found
            .iter()
            .all(|c| c.carrier_message_id == carrier_message_id
                && c.client_reference.as_deref() == Some(message.outbox_id)));

        fake.state.plan(super::super::FailureRequest {
            mode: FailureMode::OptedOut,
            count: 1,
            carrier: Some("telnyx".to_owned()),
            retry_after: None,
            delay_ms: 1,
        });
        let SendResult::Rejected(refusal) = client.send(&account, &message).await else {
            panic!("not refused")
        };
        assert_eq!(refusal.class, ErrorClass::OptedOut);
        assert_eq!(refusal.http_status, Some(409));
        let records = fake.state.records();
        assert_eq!(
            records.iter().map(|r| r.outcome).collect::<Vec<_>>(),
            ["accepted", "accepted", "opted_out"]
        );
        assert!(records
            .iter()
            .filter(|r| r.kind == "send")
            .all(|r| r.reference.as_deref() == Some(message.outbox_id)));
        fake.handle.stop(true).await;
    }

    #[test]
    fn created_at_filters_take_days_and_times() {
        assert!(on_or_after("2026-11-27T10:00:00.000000Z", "2026-11-27"));
        assert!(!on_or_after("2026-11-26T23:59:59.000000Z", "2026-11-27"));
        assert!(on_or_after(
            "2026-11-27T10:00:00.000000Z",
            "2026-11-27T09:59:00Z"
        ));
        assert!(!on_or_after(
            "2026-11-27T10:00:00.000000Z",
            "2026-11-27T10:01:00Z"
        ));
    }
}
