//! The fake Sinch SMS REST API (`shared/reference/carriers.md` §7; the carrier module
//! [`crate::carriers::sinch`]), any region (tests point `api_base` here):
//!
//! - `POST /xms/v1/{service_plan_id}/batches`: `Authorization: Bearer` with a non-empty token
//!   (else `401`), a JSON object (else `400 syntax_invalid_json`) with `to` (one or more numbers)
//!   and `body` (text for `mt_text`, `{"url", "message"}` for `mt_media`) (else
//!   `400 syntax_constraint_violation`) → `201` with the batch (`id` ULID-shaped, `to`, `from`,
//!   `body`, `type`, `created_at`, `delivery_report`, `client_reference`, `callback_url`, …).
//!   Failures in Sinch's format `{"code", "text"}`: 500, 429 (with `Retry-After` when planned),
//!   and for "opted out" `403 illegal_number_type`, the closest refusal the API documents: Sinch
//!   itself accepts a batch to an opted-out number and reports it later (delivery report code
//!   257). Sinch does not deduplicate batches, so neither does the fake. The recorded `reference`
//!   is the `client_reference`.
//! - `GET` on the same path: List Batches, the accepted ones filtered by `client_reference`,
//!   `from` (comma-separated) and `start_date` (RFC 3339), newest first, as
//!   `{"count", "page", "page_size", "batches"}`.

use super::{answer, authorization, FailureMode, FakeState, Fields, Incoming, Record};
use crate::carriers::{form, Carrier};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

const CARRIER: Carrier = Carrier::Sinch;

/// Registers this carrier's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/xms/v1/{plan}/batches", web::post().to(send))
        .route("/xms/v1/{plan}/batches", web::get().to(list));
}

/// Sinch's error body for the REST API: `{"code", "text"}`.
fn error(status: u16, code: &str, text: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .json(json!({ "code": code, "text": text }))
}

fn unauthenticated() -> HttpResponse {
    error(401, "unauthorized", "Unauthorized")
}

/// A non-empty Bearer token.
fn authenticated(req: &HttpRequest) -> bool {
    matches!(authorization(req), Some(("Bearer", token)) if !token.is_empty())
}

/// The text of a batch body: the string (`mt_text`) or `message` (`mt_media`).
fn body_text(body: Option<&Value>) -> Option<String> {
    match body? {
        Value::String(text) => Some(text.clone()),
        Value::Object(media) => media
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// A send request's JSON object and the fields it carries; `None` when it is not an object.
fn read(body: &[u8]) -> Option<(serde_json::Map<String, Value>, Fields)> {
    let Value::Object(map) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    let string = |name: &str| map.get(name).and_then(Value::as_str).map(str::to_owned);
    let fields = Fields {
        to: map
            .get("to")
            .and_then(Value::as_array)
            .and_then(|to| to.first())
            .and_then(Value::as_str)
            .map(str::to_owned),
        from: string("from"),
        text: body_text(map.get("body")),
        reference: string("client_reference"),
    };
    Some((map, fields))
}

/// Sinch's refusal of a batch missing what it needs, if any.
fn problem(map: &serde_json::Map<String, Value>) -> Option<HttpResponse> {
    let recipients = map.get("to").and_then(Value::as_array);
    if !recipients.is_some_and(|to| !to.is_empty() && to.iter().all(Value::is_string)) {
        return Some(error(
            400,
            "syntax_constraint_violation",
            "to: must contain between 1 and 1000 recipients",
        ));
    }
    let media = map.get("type").and_then(Value::as_str) == Some("mt_media");
    let body_ok = match map.get("body") {
        Some(Value::String(_)) => !media,
        Some(Value::Object(b)) => media && b.get("url").is_some_and(Value::is_string),
        _ => false,
    };
    if !body_ok {
        return Some(error(
            400,
            "syntax_constraint_violation",
            if media {
                "body.url: must not be null"
            } else {
                "body: must not be null"
            },
        ));
    }
    None
}

/// The batch Sinch answers with (and lists), from the request as sent.
fn batch(map: &serde_json::Map<String, Value>, id: &str, at: &str) -> Value {
    let created = chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "id": id,
        "to": map.get("to"),
        "from": map.get("from"),
        "canceled": false,
        "body": map.get("body"),
        "type": map.get("type").and_then(Value::as_str).unwrap_or("mt_text"),
        "created_at": stamp(created),
        "modified_at": stamp(created),
        "delivery_report": map.get("delivery_report").and_then(Value::as_str).unwrap_or("none"),
        "expire_at": stamp(created + chrono::Duration::days(3)),
        "callback_url": map.get("callback_url"),
        "client_reference": map.get("client_reference"),
        "flash_message": false,
    })
}

async fn send(req: HttpRequest, body: web::Bytes, state: web::Data<FakeState>) -> HttpResponse {
    let incoming = Incoming {
        carrier: CARRIER,
        req: &req,
        body: &body,
    };
    let parsed = read(&body);
    let fields = parsed.as_ref().map(|(_, f)| f.clone()).unwrap_or_default();
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
    let Some((map, _)) = parsed else {
        return reject(
            error(
                400,
                "syntax_invalid_json",
                "The JSON in the request is invalid",
            ),
            fields,
        );
    };
    if let Some(problem) = problem(&map) {
        return reject(problem, fields);
    }
    let decision = state.decide(CARRIER);
    let now = crate::store::now();
    answer(
        &state,
        incoming,
        fields,
        decision,
        |id| HttpResponse::Created().json(batch(&map, id, &now)),
        |mode| match mode {
            FailureMode::ServerError => error(500, "internal_error", "Internal error"),
            FailureMode::Throttle => error(429, "too_many_requests", "Too many requests"),
            FailureMode::OptedOut | FailureMode::Timeout => error(
                403,
                "illegal_number_type",
                "Illegal number type for the chosen region",
            ),
        },
    )
    .await
}

/// Whether a recorded send matches the List Batches filters.
fn listed(
    record: &Record,
    reference: Option<&str>,
    senders: Option<&[String]>,
    since: Option<&str>,
) -> bool {
    let reference_ok = reference.is_none_or(|r| record.reference.as_deref() == Some(r));
    let sender_ok = senders.is_none_or(|s| record.from.as_ref().is_some_and(|f| s.contains(f)));
    let since_ok = since.is_none_or(|since| {
        match (
            chrono::DateTime::parse_from_rfc3339(since),
            chrono::DateTime::parse_from_rfc3339(&record.at),
        ) {
            (Ok(since), Ok(at)) => at >= since,
            _ => false,
        }
    });
    reference_ok && sender_ok && since_ok
}

async fn list(req: HttpRequest, state: web::Data<FakeState>) -> HttpResponse {
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
    let param = |name: &str| form::first(&query, name).map(str::to_owned);
    let reference = param("client_reference");
    let from = param("from");
    let senders: Option<Vec<String>> = from
        .as_deref()
        .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    let since = param("start_date");
    let mut batches: Vec<Value> = state
        .accepted(CARRIER)
        .into_iter()
        .filter(|r| {
            listed(
                r,
                reference.as_deref(),
                senders.as_deref(),
                since.as_deref(),
            )
        })
        .filter_map(|r| {
            let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&r.body) else {
                return None;
            };
            Some(batch(
                &map,
                r.message_id.as_deref().unwrap_or_default(),
                &r.at,
            ))
        })
        .collect();
    batches.reverse();
    state.record(
        incoming,
        "lookup",
        200,
        "accepted",
        None,
        Fields {
            to: None,
            from,
            text: None,
            reference,
        },
    );
    HttpResponse::Ok().json(json!({
        "count": batches.len(),
        "page": 0,
        "page_size": batches.len(),
        "batches": batches,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_read_and_checked() {
        let (map, fields) = read(
            br#"{"from":"15550001111","to":["15551234567"],"body":"hi","delivery_report":"per_recipient","client_reference":"0190-a"}"#,
        )
        .unwrap_or_else(|| panic!("not read"));
        assert!(problem(&map).is_none());
        assert_eq!(fields.to.as_deref(), Some("15551234567"));
        assert_eq!(fields.from.as_deref(), Some("15550001111"));
        assert_eq!(fields.text.as_deref(), Some("hi"));
        assert_eq!(fields.reference.as_deref(), Some("0190-a"));
        let (map, fields) = read(
            br#"{"from":"55500","to":["15551234567"],"type":"mt_media","body":{"url":"https://m/a.jpg","message":"pic"}}"#,
        )
        .unwrap_or_else(|| panic!("not read"));
        assert!(problem(&map).is_none());
        assert_eq!(fields.text.as_deref(), Some("pic"));

        assert!(read(b"[1]").is_none());
        let refused = |body: &[u8]| {
            read(body)
                .and_then(|(map, _)| problem(&map))
                .map(|r| r.status().as_u16())
        };
        assert_eq!(refused(br#"{"to":[],"body":"hi"}"#), Some(400));
        assert_eq!(refused(br#"{"to":"15551234567","body":"hi"}"#), Some(400));
        assert_eq!(refused(br#"{"to":["15551234567"]}"#), Some(400));
        assert_eq!(
            refused(br#"{"to":["15551234567"],"type":"mt_media","body":"hi"}"#),
            Some(400)
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
            "service_plan_id = \"9f3b2c1d4e5f60718293a4b5c6d7e8f9\"\n\
             api_token = \"0123456789abcdef0123456789abcdef\"\n\
             webhook_secret = \"KayakingTheSwell\"\n\
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
            status_callback: "https://sms.example.com/webhooks/sinch/status",
        };
        let SendResult::Accepted {
            carrier_message_id, ..
        } = client.send(&account, &message).await
        else {
            panic!("not accepted")
        };
        assert_eq!(carrier_message_id.len(), 26);
        let query = LookupQuery {
            outbox_id: message.outbox_id,
            from: &from,
            to: &to,
            since: chrono::Utc::now() - chrono::Duration::minutes(5),
        };
        let found = client
            .lookup(&account, &query)
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
            .unwrap_or_default();
        assert_eq!(found.len(), 1);
        assert!(found
            .iter()
            .all(|c| c.carrier_message_id == carrier_message_id
                && c.client_reference.as_deref() == Some(message.outbox_id)
                && c.body.as_deref().map(String::as_str) == Some("Your claim was received")));
        let other = LookupQuery {
            outbox_id: "0190d2c4-5b6a-7c00-8000-000000000002",
            ..query.clone()
        };
        let none = client
            .lookup(&account, &other)
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
            .unwrap_or_default();
        assert!(none.is_empty());

        fake.state.plan(super::super::FailureRequest {
            mode: FailureMode::Throttle,
            count: 1,
            carrier: Some("sinch".to_owned()),
            retry_after: Some(7),
            delay_ms: 1,
        });
        let SendResult::Rejected(refusal) = client.send(&account, &message).await else {
            panic!("not refused")
        };
        assert_eq!(refusal.class, ErrorClass::Throttled);
        assert_eq!(refusal.retry_after, Some(std::time::Duration::from_secs(7)));
        let records = fake.state.records();
        assert_eq!(
            records.iter().map(|r| r.outcome).collect::<Vec<_>>(),
            ["accepted", "accepted", "accepted", "throttled"]
        );
        assert!(records
            .iter()
            .filter(|r| r.kind == "send")
            .all(|r| r.reference.as_deref() == Some(message.outbox_id)
                && r.to.as_deref() == Some("15551234567")));
        fake.handle.stop(true).await;
    }
}
