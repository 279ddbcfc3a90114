//! The fake Bandwidth Messages API v2 (`shared/reference/carriers.md` §5; api-docs
//! `site/docs/messaging/errors.mdx`, `rateLimits.mdx`; Python SDK `messages_api.py`):
//!
//! - `POST /api/v2/users/{accountId}/messages`: HTTP Basic (any well-formed `user:password`),
//!   `Content-Type: application/json`, body `applicationId`, `to` (a number or a list of them,
//!   E.164), `from`, `text` (at most 2,048 characters) and/or `media`, `tag` → `202` with the
//!   message (`id` like `1589228074636lm4k2je7j7jklbn2`). Refusals in Bandwidth's format
//!   `{"type", "description", "fieldErrors"}`: 401 `unauthorized`, 415
//!   `unsupported-content-type`, 400 `request-validation` naming the field.
//! - Planned failures: 500 (Bandwidth documents no 500 body; the fake answers its usual shape
//!   with `type` `internal-server-error`), 429 `max-message-queue-size-exceeded` (the documented
//!   body), opted out → 400 `request-validation` on `to`: Bandwidth's API accepts a message to an
//!   opted-out recipient and reports `message-failed` 4775 later by callback, so the closest
//!   synchronous refusal is a validation error on the recipient (classified permanent).
//! - `GET` on the same path: the messages list, filtered by `sourceTn`, `destinationTn`,
//!   `messageDirection` and `fromDateTime` (ISO 8601, on or after), newest first, as
//!   `{"totalCount", "pageInfo", "messages": [...]}` without text or tag, as Bandwidth stores
//!   neither. At least one filter is required, as Bandwidth requires.
//!
//! Recorded fields: `to` (the first recipient), `from`, `text`, `reference` = `tag`.

use super::{answer, authorization, FailureMode, FakeState, Fields, Incoming, Record};
use crate::carriers::form;
use crate::carriers::Carrier;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

const CARRIER: Carrier = Carrier::Bandwidth;
const PATH: &str = "/api/v2/users/{account_id}/messages";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(PATH, web::post().to(send))
        .route(PATH, web::get().to(list));
}

/// Bandwidth's error body.
fn error(status: u16, kind: &str, description: &str, field: Option<(&str, &str)>) -> HttpResponse {
    let mut body = json!({ "type": kind, "description": description });
    if let (Some((name, why)), Some(object)) = (field, body.as_object_mut()) {
        object.insert(
            "fieldErrors".to_owned(),
            json!([{ "fieldName": name, "description": why }]),
        );
    }
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

fn unauthorized() -> HttpResponse {
    error(401, "unauthorized", "Authentication Failed", None)
}

/// Any well-formed Basic credentials (Bandwidth's API users are not known to the fake).
fn authenticated(req: &HttpRequest) -> bool {
    matches!(authorization(req), Some(("Basic", credentials))
        if credentials.split_once(':').is_some_and(|(user, password)| !user.is_empty() && !password.is_empty()))
}

/// A send request as the fake reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct SendRequest {
    pub application_id: String,
    pub to: Vec<String>,
    pub from: String,
    pub text: Option<String>,
    pub media: Vec<String>,
    pub tag: Option<String>,
}

impl std::fmt::Debug for SendRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendRequest")
            .field("application_id", &self.application_id)
            .field("recipients", &self.to.len())
            .field("from", &self.from)
            .field("text_chars", &self.text.as_ref().map(|t| t.chars().count()))
            .field("media", &self.media.len())
            .field("tag", &self.tag)
            .finish()
    }
}

/// Why a send request is refused: the HTTP status, Bandwidth's `type`, and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub kind: &'static str,
    pub field: Option<(&'static str, &'static str)>,
}

fn invalid(field: &'static str, why: &'static str) -> Refusal {
    Refusal {
        status: 400,
        kind: "request-validation",
        field: Some((field, why)),
    }
}

fn is_e164(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Reads a send request as Bandwidth validates it.
///
/// # Errors
/// The [`Refusal`] Bandwidth would answer.
pub fn read_send(content_type: &str, body: &[u8]) -> Result<SendRequest, Refusal> {
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media_type != "application/json" {
        return Err(Refusal {
            status: 415,
            kind: "unsupported-content-type",
            field: None,
        });
    }
    let Ok(Value::Object(json)) = serde_json::from_slice::<Value>(body) else {
        return Err(Refusal {
            status: 400,
            kind: "request-validation",
            field: None,
        });
    };
    let string = |name: &str| {
        json.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let application_id =
        string("applicationId").ok_or(invalid("applicationId", "applicationId is required"))?;
    let to: Vec<String> = match json.get("to") {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .map(|n| n.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(invalid("to", "to must be a list of telephone numbers"))?,
        _ => return Err(invalid("to", "to is required")),
    };
    if to.is_empty() || to.len() > 10 {
        return Err(invalid("to", "to must have 1 to 10 recipients"));
    }
    if !to.iter().all(|n| is_e164(n)) {
        return Err(invalid(
            "to",
            "must be replaced with a valid E164 formatted telephone number",
        ));
    }
    let from = string("from").ok_or(invalid("from", "from is required"))?;
    let text = json.get("text").and_then(Value::as_str).map(str::to_owned);
    if text.as_ref().is_some_and(|t| t.chars().count() > 2048) {
        return Err(invalid("text", "text must be 2048 characters or less"));
    }
    let media: Vec<String> = match json.get("media") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(urls)) => urls
            .iter()
            .map(|u| u.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(invalid("media", "media must be a list of URLs"))?,
        Some(_) => return Err(invalid("media", "media must be a list of URLs")),
    };
    if text.as_deref().is_none_or(str::is_empty) && media.is_empty() {
        return Err(invalid("text", "text or media is required"));
    }
    Ok(SendRequest {
        application_id,
        to,
        from,
        text,
        media,
        tag: string("tag"),
    })
}

async fn send(
    req: HttpRequest,
    account_id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<FakeState>,
) -> HttpResponse {
    let incoming = Incoming {
        carrier: CARRIER,
        req: &req,
        body: &body,
    };
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let parsed = read_send(content_type, &body);
    let fields = match &parsed {
        Ok(r) => Fields {
            to: r.to.first().cloned(),
            from: Some(r.from.clone()),
            text: r.text.clone(),
            reference: r.tag.clone(),
        },
        Err(_) => Fields::default(),
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
    let request = match parsed {
        Ok(request) => request,
        Err(refusal) => {
            let description = match refusal.status {
                415 => "Content type not supported. Please use 'application/json'",
                _ => "Your request could not be accepted",
            };
            return reject(
                error(refusal.status, refusal.kind, description, refusal.field),
                fields,
            );
        }
    };
    let decision = state.decide(CARRIER);
    let account_id = account_id.into_inner();
    answer(
        &state,
        incoming,
        fields,
        decision,
        |id| {
            let mut message = json!({
                "id": id,
                "owner": request.from,
                "applicationId": request.application_id,
                "time": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "segmentCount": 1,
                "direction": "out",
                "to": request.to,
                "from": request.from,
                "text": request.text.clone().unwrap_or_default(),
            });
            if let Some(object) = message.as_object_mut() {
                if !request.media.is_empty() {
                    object.insert("media".to_owned(), json!(request.media));
                }
                if let Some(tag) = &request.tag {
                    object.insert("tag".to_owned(), json!(tag));
                }
            }
            HttpResponse::Accepted()
                .content_type("application/json; charset=utf-8")
                .insert_header(("Location", format!("/api/v2/users/{account_id}/messages/{id}")))
                .body(message.to_string())
        },
        |mode| match mode {
            FailureMode::Throttle => error(
                429,
                "max-message-queue-size-exceeded",
                "The SMS queue for your account is full and cannot accept more messages right now. Your allowed rate is 60 messages per minute. The capacity of this queue is 900 messages (15 minutes). Reduce your message sending rate, or contact support to increase your allowed rate.",
                None,
            ),
            FailureMode::OptedOut => error(
                400,
                "request-validation",
                "Your request could not be accepted",
                Some(("to", "the recipient has opted out of messages from this number")),
            ),
            FailureMode::ServerError | FailureMode::Timeout => error(
                500,
                "internal-server-error",
                "An internal server error occurred",
                None,
            ),
        },
    )
    .await
}

/// The list filters, as the fake reads them. `Debug` leaves the numbers out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub source: Option<String>,
    pub destination: Option<String>,
    pub direction: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for ListFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListFilter")
            .field("source", &self.source)
            .field("has_destination", &self.destination.is_some())
            .field("direction", &self.direction)
            .field("since", &self.since)
            .finish()
    }
}

/// Reads the list query. `None` when it has no filter at all (Bandwidth refuses that) or a
/// `fromDateTime` that is not ISO 8601.
#[must_use]
pub fn read_list(query: &str) -> Option<ListFilter> {
    let pairs = form::parse(query.as_bytes()).ok()?;
    if pairs.is_empty() {
        return None;
    }
    let get = |name: &str| form::first(&pairs, name).map(str::to_owned);
    let since = match get("fromDateTime") {
        None => None,
        Some(text) => Some(
            DateTime::parse_from_rfc3339(&text)
                .ok()?
                .with_timezone(&Utc),
        ),
    };
    Some(ListFilter {
        source: get("sourceTn"),
        destination: get("destinationTn"),
        direction: get("messageDirection"),
        since,
    })
}

fn listed(filter: &ListFilter, record: &Record) -> bool {
    let at = DateTime::parse_from_rfc3339(&record.at)
        .ok()
        .map(|t| t.with_timezone(&Utc));
    filter
        .source
        .as_ref()
        .is_none_or(|s| record.from.as_ref() == Some(s))
        && filter
            .destination
            .as_ref()
            .is_none_or(|d| record.to.as_ref() == Some(d))
        && filter
            .direction
            .as_deref()
            .is_none_or(|d| d.eq_ignore_ascii_case("OUTBOUND"))
        && filter
            .since
            .is_none_or(|since| at.is_some_and(|at| at >= since))
}

async fn list(
    req: HttpRequest,
    account_id: web::Path<String>,
    state: web::Data<FakeState>,
) -> HttpResponse {
    let incoming = Incoming {
        carrier: CARRIER,
        req: &req,
        body: b"",
    };
    if !authenticated(&req) {
        let response = unauthorized();
        state.record(incoming, "lookup", 401, "rejected", None, Fields::default());
        return response;
    }
    let Some(filter) = read_list(req.query_string()) else {
        let response = error(
            400,
            "request-validation",
            "Your request could not be accepted",
            Some(("query", "at least one valid query parameter is required")),
        );
        state.record(incoming, "lookup", 400, "rejected", None, Fields::default());
        return response;
    };
    let mut messages: Vec<Value> = state
        .accepted(CARRIER)
        .into_iter()
        .filter(|r| listed(&filter, r))
        .map(|r| {
            json!({
                "messageId": r.message_id,
                "accountId": account_id.as_str(),
                "sourceTn": r.from,
                "destinationTn": r.to,
                "messageStatus": "SENT",
                "messageDirection": "OUTBOUND",
                "messageType": "sms",
                "segmentCount": 1,
                "errorCode": 0,
                "receiveTime": r.at,
                "carrierName": "other",
                "recipientCount": 1,
            })
        })
        .collect();
    messages.reverse();
    state.record(
        incoming,
        "lookup",
        200,
        "accepted",
        None,
        Fields {
            to: filter.destination.clone(),
            from: filter.source.clone(),
            text: None,
            reference: None,
        },
    );
    HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(
            json!({
                "totalCount": messages.len(),
                "pageInfo": {},
                "messages": messages,
            })
            .to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_documented_send() {
        let body =
            br#"{"applicationId":"93de2206-9669-4e07-948d-329f4b722ee2","to":["+15551234567"],
            "from":"+15550001111","text":"Hi","media":["https://x.example/a.png"],"tag":"o-1"}"#;
        let request =
            read_send("application/json; charset=utf-8", body).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(request.to, ["+15551234567"]);
        assert_eq!(request.from, "+15550001111");
        assert_eq!(request.text.as_deref(), Some("Hi"));
        assert_eq!(request.media, ["https://x.example/a.png"]);
        assert_eq!(request.tag.as_deref(), Some("o-1"));
        // `to` may be a single string on a POST.
        let one = br#"{"applicationId":"a","to":"+15551234567","from":"+15550001111","text":"x"}"#;
        assert!(read_send("application/json", one).is_ok());
        // Media without text is a valid MMS.
        let mms =
            br#"{"applicationId":"a","to":["+15551234567"],"from":"+15550001111","media":["u"]}"#;
        assert!(read_send("application/json", mms).is_ok());
    }

    #[test]
    fn refuses_as_bandwidth_does() {
        let field = |content_type: &str, body: &str| {
            read_send(content_type, body.as_bytes())
                .err()
                .map(|r| (r.status, r.kind, r.field.map(|(f, _)| f)))
        };
        assert_eq!(
            field("text/plain", "{}"),
            Some((415, "unsupported-content-type", None))
        );
        assert_eq!(
            field("application/json", "[1]"),
            Some((400, "request-validation", None))
        );
        assert_eq!(
            field(
                "application/json",
                r#"{"to":["+15551234567"],"from":"+1","text":"x"}"#
            ),
            Some((400, "request-validation", Some("applicationId")))
        );
        assert_eq!(
            field(
                "application/json",
                r#"{"applicationId":"a","to":["15551234567"],"from":"+1","text":"x"}"#
            ),
            Some((400, "request-validation", Some("to")))
        );
        assert_eq!(
            field(
                "application/json",
                r#"{"applicationId":"a","to":[],"from":"+1","text":"x"}"#
            ),
            Some((400, "request-validation", Some("to")))
        );
        assert_eq!(
            field(
                "application/json",
                r#"{"applicationId":"a","to":["+15551234567"],"text":"x"}"#
            ),
            Some((400, "request-validation", Some("from")))
        );
        assert_eq!(
            field(
                "application/json",
                r#"{"applicationId":"a","to":["+15551234567"],"from":"+15550001111"}"#
            ),
            Some((400, "request-validation", Some("text")))
        );
        let long = format!(
            r#"{{"applicationId":"a","to":["+15551234567"],"from":"+15550001111","text":"{}"}}"#,
            "x".repeat(2049)
        );
        assert_eq!(
            field("application/json", &long),
            Some((400, "request-validation", Some("text")))
        );
    }

    #[test]
    fn reads_list_filters() {
        let filter = read_list(
            "sourceTn=%2B15550001111&destinationTn=%2B15551234567&messageDirection=OUTBOUND&fromDateTime=2026-11-27T10%3A00%3A00.000Z&limit=100",
        )
        .unwrap_or_else(|| panic!("no filter"));
        assert_eq!(filter.source.as_deref(), Some("+15550001111"));
        assert_eq!(filter.destination.as_deref(), Some("+15551234567"));
        assert_eq!(
            filter.since.map(|t| t.to_rfc3339()),
            Some("2026-11-27T10:00:00+00:00".to_owned())
        );
        assert_eq!(read_list(""), None);
        assert_eq!(read_list("fromDateTime=yesterday"), None);
    }

    /// The whole path through HTTP: the carrier module's requests against this fake.
    #[tokio::test]
    async fn the_module_and_the_fake_agree() {
        use crate::carriers::client::CarrierClient;
        use crate::carriers::{
            CarrierAccount, ErrorClass, LookupQuery, OutboundMessage, SendResult,
        };
        use crate::phone::{BusinessAddress, E164};
        use crate::pipeline::Channel;

        let fake = super::super::spawn("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let fields: toml::Table = toml::from_str(&format!(
            r#"
            account_id = "9900000"
            application_id = "93de2206-9669-4e07-948d-329f4b722ee2"
            username = "api-user"
            password = "api-pass"
            webhook_username = "cb"
            webhook_password = "cb-pass"
            api_base = "{}"
            "#,
            fake.url()
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let account =
            CarrierAccount::from_config(CARRIER, &fields, crate::config::Mode::Development)
                .unwrap_or_else(|e| panic!("{e}"));
        let client =
            CarrierClient::new(std::time::Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
        let from = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
        let to = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let message = OutboundMessage {
            outbox_id: "o-1",
            from: &from,
            to: &to,
            channel: Channel::Sms,
            body: "Hello",
            media_urls: &[],
            suggestions: &[],
            status_callback: "https://sms.example.com/webhooks/bandwidth/status",
        };
        let since = Utc::now() - chrono::Duration::seconds(5);
        let SendResult::Accepted {
            carrier_message_id, ..
        } = client.send(&account, &message).await
        else {
            panic!("not accepted")
        };
        fake.state.plan(super::super::FailureRequest {
            mode: FailureMode::Throttle,
            count: 1,
            carrier: Some("bandwidth".to_owned()),
            retry_after: Some(3),
            delay_ms: 1,
        });
        match client.send(&account, &message).await {
            SendResult::Rejected(e) => {
                assert_eq!(e.class, ErrorClass::Throttled);
                assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(3)));
            }
            other => panic!("{other:?}"),
        }
        let found = client
            .lookup(
                &account,
                &LookupQuery {
                    outbox_id: "o-1",
                    from: &from,
                    to: &to,
                    since,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
            .unwrap_or_default();
        assert_eq!(
            found
                .iter()
                .map(|c| c.carrier_message_id.clone())
                .collect::<Vec<_>>(),
            [carrier_message_id]
        );
        let records = fake.state.records();
        assert_eq!(
            records
                .iter()
                .map(|r| (r.kind, r.outcome))
                .collect::<Vec<_>>(),
            [
                ("send", "accepted"),
                ("send", "throttled"),
                ("lookup", "accepted")
            ]
        );
        assert_eq!(records[0].reference.as_deref(), Some("o-1"));
        assert_eq!(records[0].to.as_deref(), Some("+15551234567"));
        fake.handle.stop(false).await;
    }
}
