//! The fake Vonage APIs (`shared/reference/carriers.md` §4; `src/carriers/vonage/`):
//!
//! - `POST /v1/messages` (Messages API): `Authorization` Basic `api_key:api_secret` (or a bearer
//!   JWT) must be present, else `401` with Vonage's RFC 7807 body (`…/api-errors#unauthorized`).
//!   The JSON body must name `channel`, `message_type`, `to` (digits, no `+`), `from` and the
//!   content its type needs (`text`, `image.url`, `content[].url`, `custom`…), else `422`
//!   `…/api-errors/messages#1150` "Invalid params" with `invalid_parameters`; not JSON: `400`
//!   `…#invalid-json`. Accepted: `202 {"message_uuid"}`. Failures: 500 → `#1030` Internal error,
//!   429 → `#1000` Throttled, opted out → `422 #1050` Number barred (the Messages API reports
//!   opt-outs later, by status webhook: 1050 is the closest synchronous refusal it documents).
//! - `POST /sms/json` (SMS API): form `api_key`, `api_secret`, `from`, `to` (digits), `text`.
//!   The SMS API answers refusals with HTTP 200 and a per-message status: missing credentials or
//!   fields → status `2` (Missing Parameters), a malformed `to` or `type` → `3` (Invalid
//!   Parameters). Accepted: `{"message-count": "1", "messages": [{"status": "0", "message-id",
//!   "to", "client-ref", …}]}`. Failures: 500 → HTTP 500 with status `5` (Internal Error), 429 →
//!   HTTP 429 with status `1` (Throttled, "Throughput Rate Exceeded"), opted out → status `7`
//!   (Number Barred; the SMS API too reports opt-outs later, as receipt `err-code` 9).
//! - `GET /v2/reports/records` (Reports API, synchronous): Basic auth; `account_id`, `product`
//!   (`SMS` or `MESSAGES`), `direction=outbound`, `date_start` and `date_end` (at most 24 hours
//!   apart) required, else `422` with `invalid_parameters`. Lists the messages this fake took on
//!   the product's send path, received in `[date_start, date_end)`, with `message_id`,
//!   `client_ref`, `to`, `from`, `status` and (with `include_message=true`) `message_body`.
//!
//! Neither send API is idempotent, so a repeated client reference is sent again, as Vonage would.
//! Recorded fields: `to`, `from`, the text (or caption, or card description), and `client_ref`
//! / `client-ref` as the reference.

use super::{answer, authorization, FailureMode, FakeState, Fields, Incoming};
use crate::carriers::form;
use crate::carriers::Carrier;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

const CARRIER: Carrier = Carrier::Vonage;
const MESSAGES_PATH: &str = "/v1/messages";
const SMS_PATH: &str = "/sms/json";
const ERRORS: &str = "https://developer.vonage.com/api-errors";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(MESSAGES_PATH, web::post().to(messages))
        .route(SMS_PATH, web::post().to(sms))
        .route("/v2/reports/records", web::get().to(records));
}

/// An RFC 7807 error as Vonage's APIs answer.
fn problem(
    status: u16,
    kind: &str,
    title: &str,
    detail: &str,
    invalid: Option<(&str, &str)>,
) -> HttpResponse {
    let mut body = json!({
        "type": format!("{ERRORS}{kind}"),
        "title": title,
        "detail": detail,
        "instance": crate::carriers::vonage::new_message_id(),
    });
    if let Some((name, reason)) = invalid {
        body["invalid_parameters"] = json!([{"name": name, "reason": reason}]);
    }
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("application/problem+json")
        .body(body.to_string())
}

fn unauthorized() -> HttpResponse {
    problem(
        401,
        "#unauthorized",
        "Unauthorized",
        "You did not provide correct credentials.",
        None,
    )
}

/// Basic credentials with a user and a password, or a bearer token.
fn authenticated(req: &HttpRequest) -> bool {
    match authorization(req) {
        Some(("Basic", credentials)) => credentials
            .split_once(':')
            .is_some_and(|(user, secret)| !user.is_empty() && !secret.is_empty()),
        Some(("Bearer", token)) => !token.is_empty(),
        _ => false,
    }
}

/// Why a Messages API request is refused: the status, and the parameter and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a JSON object: 400 invalid JSON.
    NotJson,
    /// 422 Invalid params, naming the parameter.
    Invalid(&'static str, &'static str),
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .and_then(Value::as_str)
}

fn digits(text: &str) -> bool {
    (7..=15).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

/// Reads a `POST /v1/messages` body: the fields to record, and the first problem if any.
#[must_use]
pub fn messages_request(body: &[u8]) -> (Fields, Option<Refusal>) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return (Fields::default(), Some(Refusal::NotJson));
    };
    if !value.is_object() {
        return (Fields::default(), Some(Refusal::NotJson));
    }
    let field = |name: &str| str_at(&value, &[name]).map(str::to_owned);
    let message_type = str_at(&value, &["message_type"]).unwrap_or_default();
    let text = match message_type {
        "text" => field("text"),
        "custom" => str_at(&value, &["custom", "contentMessage", "text"])
            .or_else(|| {
                str_at(
                    &value,
                    &[
                        "custom",
                        "contentMessage",
                        "richCard",
                        "standaloneCard",
                        "cardContent",
                        "description",
                    ],
                )
            })
            .map(str::to_owned),
        "content" => value
            .get("content")
            .and_then(Value::as_array)
            .and_then(|items| {
                items
                    .iter()
                    .find_map(|i| i.get("caption").and_then(Value::as_str))
            })
            .map(str::to_owned),
        kind => str_at(&value, &[kind, "caption"]).map(str::to_owned),
    };
    let fields = Fields {
        to: field("to"),
        from: field("from"),
        text,
        reference: field("client_ref"),
    };
    let refusal = (|| {
        let channel =
            str_at(&value, &["channel"]).ok_or(Refusal::Invalid("channel", "Is required."))?;
        if !matches!(
            channel,
            "sms" | "mms" | "rcs" | "whatsapp" | "viber_service" | "messenger"
        ) {
            return Err(Refusal::Invalid("channel", "Invalid value"));
        }
        if message_type.is_empty() {
            return Err(Refusal::Invalid("message_type", "Is required."));
        }
        match fields.to.as_deref() {
            None => return Err(Refusal::Invalid("to", "Is required.")),
            Some(to) if !digits(to) => return Err(Refusal::Invalid("to", "Invalid value")),
            Some(_) => {}
        }
        if fields.from.as_deref().is_none_or(str::is_empty) {
            return Err(Refusal::Invalid("from", "Is required."));
        }
        match message_type {
            "text" if fields.text.as_deref().is_none_or(str::is_empty) => {
                Err(Refusal::Invalid("text", "Is required."))
            }
            "text" => Ok(()),
            "custom" if !value.get("custom").is_some_and(Value::is_object) => {
                Err(Refusal::Invalid("custom", "Is required."))
            }
            "custom" => Ok(()),
            "content" => {
                let ok = value
                    .get("content")
                    .and_then(Value::as_array)
                    .is_some_and(|items| {
                        !items.is_empty()
                            && items
                                .iter()
                                .all(|i| i.get("url").and_then(Value::as_str).is_some())
                    });
                if ok {
                    Ok(())
                } else {
                    Err(Refusal::Invalid("content", "Is required."))
                }
            }
            "image" | "video" | "audio" | "file" | "vcard" => {
                if str_at(&value, &[message_type, "url"]).is_some_and(|u| !u.is_empty()) {
                    Ok(())
                } else {
                    Err(Refusal::Invalid("url", "Is required."))
                }
            }
            _ => Err(Refusal::Invalid("message_type", "Invalid value")),
        }
    })()
    .err();
    (fields, refusal)
}

async fn messages(req: HttpRequest, body: web::Bytes, state: web::Data<FakeState>) -> HttpResponse {
    let (fields, refusal) = messages_request(&body);
    let incoming = Incoming {
        carrier: CARRIER,
        req: &req,
        body: &body,
    };
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
        return reject(unauthorized(), fields);
    }
    match refusal {
        Some(Refusal::NotJson) => {
            return reject(
                problem(
                    400,
                    "#invalid-json",
                    "Invalid JSON",
                    "The request body is not valid JSON.",
                    None,
                ),
                fields,
            )
        }
        Some(Refusal::Invalid(name, reason)) => {
            return reject(
                problem(
                    422,
                    "/messages#1150",
                    "Invalid params",
                    "The value of one or more parameters is invalid.",
                    Some((name, reason)),
                ),
                fields,
            )
        }
        None => {}
    }
    let decision = state.decide(CARRIER);
    answer(
        &state,
        incoming,
        fields,
        decision,
        |id| HttpResponse::Accepted().json(json!({ "message_uuid": id })),
        |mode| match mode {
            FailureMode::ServerError => problem(
                500,
                "/messages#1030",
                "Internal error",
                "There was an error processing your request in the Platform.",
                None,
            ),
            FailureMode::Throttle => problem(
                429,
                "/messages#1000",
                "Throttled",
                "Throttled - You have exceeded the submission capacity allowed on this account. Please wait and retry",
                None,
            ),
            FailureMode::OptedOut | FailureMode::Timeout => problem(
                422,
                "/messages#1050",
                "Number barred",
                "The number you are trying to submit to is blacklisted and may not receive messages.",
                None,
            ),
        },
    )
    .await
}

/// Reads a `POST /sms/json` form: the fields to record, and the refusal (status, error text)
/// if any.
#[must_use]
pub fn sms_request(body: &[u8]) -> (Fields, Option<(&'static str, &'static str)>) {
    let Ok(pairs) = form::parse(body) else {
        return (Fields::default(), Some(("3", "Invalid Parameters")));
    };
    let field = |name: &str| form::first(&pairs, name).map(str::to_owned);
    let fields = Fields {
        to: field("to"),
        from: field("from"),
        text: field("text"),
        reference: field("client-ref"),
    };
    let present = |name: &str| field(name).is_some_and(|v| !v.is_empty());
    let refusal = if !present("api_key") {
        Some(("2", "Missing api_key"))
    } else if !present("api_secret") && !present("sig") {
        Some(("2", "Missing api_secret"))
    } else if !present("from") {
        Some(("2", "Missing from param"))
    } else if !present("to") {
        Some(("2", "Missing to param"))
    } else if !present("text") {
        Some(("2", "Missing text param"))
    } else if !fields.to.as_deref().is_some_and(digits) {
        Some(("3", "Invalid to address"))
    } else if field("type").is_some_and(|t| !matches!(t.as_str(), "text" | "unicode" | "binary")) {
        Some(("3", "Invalid message type"))
    } else {
        None
    };
    (fields, refusal)
}

fn sms_refusal(status: u16, code: &str, text: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK)).json(json!({
        "message-count": "1",
        "messages": [{"status": code, "error-text": text}],
    }))
}

async fn sms(req: HttpRequest, body: web::Bytes, state: web::Data<FakeState>) -> HttpResponse {
    let (fields, refusal) = sms_request(&body);
    let incoming = Incoming {
        carrier: CARRIER,
        req: &req,
        body: &body,
    };
    if let Some((code, text)) = refusal {
        let response = sms_refusal(200, code, text);
        state.record(incoming, "send", 200, "rejected", None, fields);
        return response;
    }
    let decision = state.decide(CARRIER);
    let (to, reference) = (
        fields.to.clone().unwrap_or_default(),
        fields.reference.clone(),
    );
    answer(
        &state,
        incoming,
        fields,
        decision,
        |id| {
            let mut part = json!({
                "to": to,
                "message-id": id,
                "status": "0",
                "remaining-balance": "3.14159265",
                "message-price": "0.03330000",
                "network": "310090",
            });
            if let Some(reference) = &reference {
                part["client-ref"] = Value::String(reference.clone());
            }
            HttpResponse::Ok().json(json!({"message-count": "1", "messages": [part]}))
        },
        |mode| match mode {
            FailureMode::ServerError => sms_refusal(500, "5", "Internal Error"),
            FailureMode::Throttle => sms_refusal(
                429,
                "1",
                "Throughput Rate Exceeded - please wait [ 1000 ] and retry",
            ),
            FailureMode::OptedOut | FailureMode::Timeout => sms_refusal(200, "7", "Number barred."),
        },
    )
    .await
}

/// A Reports API query, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsQuery {
    pub account_id: String,
    /// `SMS` or `MESSAGES`.
    pub product: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub include_message: bool,
}

fn reports_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%z"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Reads `GET /v2/reports/records`'s query.
///
/// # Errors
/// The parameter at fault and why, as the Reports API's `invalid_parameters` says it.
pub fn records_query(query: &str) -> Result<RecordsQuery, (&'static str, &'static str)> {
    let pairs =
        form::parse(query.as_bytes()).map_err(|_| ("query", "Invalid request parameter"))?;
    let get = |name: &'static str| {
        form::first(&pairs, name)
            .filter(|v| !v.is_empty())
            .ok_or((name, "Missing required parameter"))
    };
    let account_id = get("account_id")?.to_owned();
    let product = get("product")?;
    if !matches!(product, "SMS" | "MESSAGES") {
        return Err(("product", "Could not resolve product name"));
    }
    if get("direction")? != "outbound" {
        return Err(("direction", "Only outbound records are served by this fake"));
    }
    let start = reports_date(get("date_start")?).ok_or(("date_start", "Invalid date"))?;
    let end = reports_date(get("date_end")?).ok_or(("date_end", "Invalid date"))?;
    if end <= start || end - start > chrono::Duration::hours(24) {
        return Err((
            "date_end",
            "Must be later than date_start and no more than 24 hours after it",
        ));
    }
    Ok(RecordsQuery {
        account_id,
        product: product.to_owned(),
        start,
        end,
        include_message: form::first(&pairs, "include_message") == Some("true"),
    })
}

async fn records(req: HttpRequest, state: web::Data<FakeState>) -> HttpResponse {
    let incoming = Incoming {
        carrier: CARRIER,
        req: &req,
        body: b"",
    };
    let basic = matches!(authorization(&req), Some(("Basic", c)) if c.split_once(':').is_some_and(|(u, p)| !u.is_empty() && !p.is_empty()));
    if !basic {
        state.record(incoming, "lookup", 401, "rejected", None, Fields::default());
        return unauthorized();
    }
    let query = match records_query(req.query_string()) {
        Ok(query) => query,
        Err((name, reason)) => {
            state.record(incoming, "lookup", 422, "rejected", None, Fields::default());
            return HttpResponse::UnprocessableEntity().json(json!({
                "title": "Unprocessable entity",
                "invalid_parameters": [{"name": name, "reason": reason}],
                "instance": crate::carriers::vonage::new_message_id(),
            }));
        }
    };
    let path = if query.product == "SMS" {
        SMS_PATH
    } else {
        MESSAGES_PATH
    };
    let found: Vec<Value> = state
        .accepted(CARRIER)
        .into_iter()
        .filter(|r| r.path.ends_with(path))
        .filter_map(|r| {
            let at = reports_date(&r.at)?;
            (at >= query.start && at < query.end).then_some((r, at))
        })
        .map(|(r, at)| {
            let mut record = json!({
                "account_id": query.account_id,
                "message_id": r.message_id,
                "direction": "outbound",
                "from": r.from,
                "to": r.to,
                "date_received": at.format("%Y-%m-%dT%H:%M:%S%z").to_string(),
                "status": if query.product == "SMS" { "accepted" } else { "submitted" },
            });
            if let Some(reference) = &r.reference {
                record["client_ref"] = Value::String(reference.clone());
            }
            if query.include_message {
                record["message_body"] = json!(r.text);
            }
            record
        })
        .collect();
    state.record(incoming, "lookup", 200, "accepted", None, Fields::default());
    HttpResponse::Ok().json(json!({
        "_links": {"self": {"href": format!("/v2/reports/records?{}", req.query_string())}},
        "request_id": crate::carriers::vonage::new_message_id(),
        "request_status": "SUCCESS",
        "received_at": Utc::now().format("%Y-%m-%dT%H:%M:%S%z").to_string(),
        "price": 0,
        "currency": "EUR",
        "account_id": query.account_id,
        "product": query.product,
        "direction": "outbound",
        "include_message": query.include_message,
        "items_count": found.len(),
        "records": found,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_requests() {
        let (fields, refusal) = messages_request(
            br#"{"to":"15551234567","from":"15550001111","channel":"sms","message_type":"text","text":"hi","client_ref":"o1"}"#,
        );
        assert_eq!(refusal, None);
        assert_eq!(fields.to.as_deref(), Some("15551234567"));
        assert_eq!(fields.from.as_deref(), Some("15550001111"));
        assert_eq!(fields.text.as_deref(), Some("hi"));
        assert_eq!(fields.reference.as_deref(), Some("o1"));
        let (fields, refusal) = messages_request(
            br#"{"to":"15551234567","from":"15550001111","channel":"mms","message_type":"image","image":{"url":"https://m/a.jpg","caption":"c"}}"#,
        );
        assert_eq!((refusal, fields.text.as_deref()), (None, Some("c")));
        let (fields, refusal) = messages_request(
            br#"{"to":"15551234567","from":"agent","channel":"rcs","message_type":"custom","custom":{"contentMessage":{"richCard":{"standaloneCard":{"cardContent":{"description":"d"}}}}}}"#,
        );
        assert_eq!((refusal, fields.text.as_deref()), (None, Some("d")));
        for (body, expected) in [
            (&b"not json"[..], Refusal::NotJson),
            (br#"{"from":"a","channel":"sms","message_type":"text","text":"x"}"#, Refusal::Invalid("to", "Is required.")),
            (br#"{"to":"+15551234567","from":"a","channel":"sms","message_type":"text","text":"x"}"#, Refusal::Invalid("to", "Invalid value")),
            (br#"{"to":"15551234567","from":"a","channel":"fax","message_type":"text","text":"x"}"#, Refusal::Invalid("channel", "Invalid value")),
            (br#"{"to":"15551234567","from":"a","channel":"sms","message_type":"text"}"#, Refusal::Invalid("text", "Is required.")),
            (br#"{"to":"15551234567","from":"a","channel":"mms","message_type":"image","image":{}}"#, Refusal::Invalid("url", "Is required.")),
            (br#"{"to":"15551234567","channel":"sms","message_type":"text","text":"x"}"#, Refusal::Invalid("from", "Is required.")),
        ] {
            assert_eq!(messages_request(body).1, Some(expected), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn sms_requests() {
        let (fields, refusal) = sms_request(
            b"api_key=abcd1234&api_secret=s&from=15550001111&to=15551234567&text=hi+there&type=text&client-ref=o1",
        );
        assert_eq!(refusal, None);
        assert_eq!(fields.text.as_deref(), Some("hi there"));
        assert_eq!(fields.reference.as_deref(), Some("o1"));
        assert_eq!(
            sms_request(b"from=1&to=15551234567&text=x").1,
            Some(("2", "Missing api_key"))
        );
        assert_eq!(
            sms_request(b"api_key=k&api_secret=s&from=1&to=%2B15551234567&text=x").1,
            Some(("3", "Invalid to address"))
        );
        assert_eq!(
            sms_request(b"api_key=k&api_secret=s&from=1&to=15551234567").1,
            Some(("2", "Missing text param"))
        );
    }

    /// The whole path through the fake: sends on both APIs, planned failures classified by the
    /// Vonage module, and the Reports API lookup finding the sends by client reference.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_failures_and_lookup_through_the_fake() {
        use crate::carriers::client::CarrierClient;
        use crate::carriers::vonage::{Account, Api, SignatureMethod};
        use crate::carriers::{
            CarrierAccount, ErrorClass, LookupQuery, OutboundMessage, SendResult,
        };
        use crate::phone::{BusinessAddress, E164};
        use crate::pipeline::Channel;
        use secrecy::SecretString;

        let fake = super::super::spawn("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let base = url::Url::parse(&fake.url()).unwrap_or_else(|e| panic!("{e}"));
        let account = |api| {
            CarrierAccount::Vonage(Account {
                api_key: "abcd1234".to_owned(),
                api_secret: SecretString::from("0123456789abcdef".to_owned()),
                signature_secret: SecretString::from("sig-secret".to_owned()),
                signature_method: SignatureMethod::Sha256,
                api,
                api_base: base.clone(),
                sms_base: base.clone(),
            })
        };
        let client =
            CarrierClient::new(std::time::Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
        let from = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
        let to = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let since = Utc::now() - chrono::Duration::minutes(1);
        let message = |outbox_id| OutboundMessage {
            outbox_id,
            from: &from,
            to: &to,
            channel: Channel::Sms,
            body: "Your appointment is confirmed",
            media_urls: &[],
            suggestions: &[],
            status_callback: "https://sms.example.com/webhooks/vonage/status",
        };
        for api in [Api::Messages, Api::Sms] {
            let account = account(api);
            let sent = client.send(&account, &message("outbox-1")).await;
            assert!(
                matches!(sent, SendResult::Accepted { .. }),
                "{api:?}: {sent:?}"
            );
            // A 500 may have come after the carrier stored the message: the client reports it
            // uncertain, to be resolved before any resend.
            fake.state.plan(super::super::FailureRequest {
                mode: FailureMode::ServerError,
                count: 1,
                carrier: Some("vonage".to_owned()),
                retry_after: None,
                delay_ms: 1,
            });
            assert_eq!(
                client.send(&account, &message("outbox-2")).await,
                SendResult::Uncertain("server_error"),
                "{api:?}"
            );
            for (mode, class) in [
                (FailureMode::OptedOut, ErrorClass::OptedOut),
                (FailureMode::Throttle, ErrorClass::Throttled),
            ] {
                fake.state.plan(super::super::FailureRequest {
                    mode,
                    count: 1,
                    carrier: Some("vonage".to_owned()),
                    retry_after: Some(2),
                    delay_ms: 1,
                });
                match client.send(&account, &message("outbox-2")).await {
                    SendResult::Rejected(e) => assert_eq!(e.class, class, "{api:?} {mode:?}"),
                    other => panic!("{api:?} {mode:?}: {other:?}"),
                }
            }
            let found = client
                .lookup(
                    &account,
                    &LookupQuery {
                        outbox_id: "outbox-1",
                        from: &from,
                        to: &to,
                        since,
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("{e:?}"))
                .unwrap_or_default();
            assert_eq!(found.len(), 1, "{api:?}");
            assert_eq!(
                found.first().and_then(|c| c.client_reference.as_deref()),
                Some("outbox-1")
            );
        }
        let records = fake.state.records();
        let first = records
            .first()
            .unwrap_or_else(|| panic!("nothing recorded"));
        assert_eq!(first.path, "/v1/messages");
        assert_eq!(first.to.as_deref(), Some("15551234567"));
        assert_eq!(first.from.as_deref(), Some("15550001111"));
        assert_eq!(first.text.as_deref(), Some("Your appointment is confirmed"));
        assert_eq!(first.reference.as_deref(), Some("outbox-1"));
        assert!(records
            .iter()
            .any(|r| r.path == "/sms/json" && r.outcome == "accepted"));
        assert!(records
            .iter()
            .any(|r| r.kind == "lookup" && r.status == 200));
        fake.handle.stop(false).await;
    }

    #[test]
    fn records_queries() {
        let ok = records_query(
            "account_id=abcd1234&product=MESSAGES&direction=outbound&date_start=2025-02-03T12%3A10%3A00Z&date_end=2025-02-04T12%3A10%3A00Z&include_message=false",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(ok.product, "MESSAGES");
        assert!(!ok.include_message);
        assert_eq!(
            records_query("account_id=a&product=SMS&direction=outbound&date_start=2025-02-03T12%3A10%3A00Z&date_end=2025-02-05T12%3A10%3A00Z").err(),
            Some(("date_end", "Must be later than date_start and no more than 24 hours after it"))
        );
        assert_eq!(
            records_query("account_id=a&product=VOICE-CALL&direction=outbound").err(),
            Some(("product", "Could not resolve product name"))
        );
        assert_eq!(
            records_query("product=SMS").err(),
            Some(("account_id", "Missing required parameter"))
        );
        assert!(records_query(
            "account_id=a&product=SMS&direction=outbound&date_start=2025-02-03T12:10:00%2B0000&date_end=2025-02-03T13:10:00%2B0000"
        )
        .is_ok());
    }
}
