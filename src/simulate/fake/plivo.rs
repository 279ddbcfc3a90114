//! The fake Plivo Message API (`shared/reference/carriers.md` §6; docs.plivo.com
//! `docs/messaging/api/response`, `…/message/send-a-message`, `…/message/list-all-messages`;
//! plivo-go `messages.go`):
//!
//! - `POST /v1/Account/{auth_id}/Message/`: Basic `auth_id:auth_token` (the user must be the id
//!   in the path), JSON `src`, `dst`, `text` (optional for an MMS with `media_urls`), `type`
//!   (`sms` or `mms`), `url`, `method`, `media_urls` → `202 {"api_id", "message": "message(s)
//!   queued", "message_uuid": ["…"]}` (a version-1 UUID like Plivo's). Refusals in Plivo's
//!   format `{"api_id", "error"}` with the error words of Plivo's "Common Errors" table: 401
//!   `authentication_failed`, 400 `invalid_parameter`.
//! - Planned failures: 500 `server error` and 429 `too many requests` (the phrase Plivo's list
//!   page quotes); opted out → 400 `invalid_parameter`: Plivo accepts a message to an opted-out
//!   recipient and reports it `failed` with `ErrorCode` 200 by callback, so the closest
//!   synchronous refusal is the generic invalid-parameter one (classified permanent).
//! - `GET` on the same path: the message list (MDRs), filtered by `message_direction`,
//!   `from_number`, `to_number` (E.164 or digits) and `message_time__gte` (`YYYY-MM-DD
//!   HH:MM[:SS[.ffffff]]`, UTC), at most `limit` (20) records, newest first, without text, as
//!   `{"api_id", "meta", "objects": [...]}`.
//!
//! Recorded fields: `to` = `dst`, `from` = `src`, `text`; Plivo has no client reference.

use super::{answer, authorization, FailureMode, FakeState, Fields, Incoming, Record};
use crate::carriers::{form, plivo, Carrier};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Value};

const CARRIER: Carrier = Carrier::Plivo;
const PATH: &str = "/v1/Account/{auth_id}/Message/";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(PATH, web::post().to(send))
        .route(PATH, web::get().to(list));
}

/// Plivo's error body.
fn error(status: u16, phrase: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .json(json!({ "api_id": plivo::new_message_id(), "error": phrase }))
}

/// The Basic user must be the auth id of the path, with a token.
fn authenticated(req: &HttpRequest, auth_id: &str) -> bool {
    matches!(authorization(req), Some(("Basic", credentials))
        if credentials.split_once(':').is_some_and(|(user, token)| user == auth_id && !token.is_empty()))
}

/// A send request as the fake reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct SendRequest {
    pub src: String,
    pub dst: String,
    pub text: Option<String>,
    pub media_urls: Vec<String>,
}

impl std::fmt::Debug for SendRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendRequest")
            .field("src", &self.src)
            .field("dst_chars", &self.dst.len())
            .field("text_chars", &self.text.as_ref().map(|t| t.chars().count()))
            .field("media", &self.media_urls.len())
            .finish()
    }
}

/// Reads a send request as Plivo validates it. `Err` names the parameter at fault.
///
/// # Errors
/// The parameter Plivo would refuse (`invalid_parameter`).
pub fn read_send(body: &[u8]) -> Result<SendRequest, &'static str> {
    let Ok(Value::Object(json)) = serde_json::from_slice::<Value>(body) else {
        return Err("body");
    };
    let string = |name: &str| {
        json.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let src = string("src")
        .or_else(|| string("powerpack_uuid"))
        .ok_or("src")?;
    let dst = string("dst").ok_or("dst")?;
    let numbers_ok = dst.split('<').all(|n| {
        let digits = n.strip_prefix('+').unwrap_or(n);
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    });
    if !numbers_ok {
        return Err("dst");
    }
    if src == dst {
        return Err("dst");
    }
    let kind = string("type").unwrap_or_else(|| "sms".to_owned());
    let media_urls: Vec<String> = match json.get("media_urls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(urls)) => urls
            .iter()
            .map(|u| u.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or("media_urls")?,
        Some(_) => return Err("media_urls"),
    };
    let text = string("text");
    match kind.as_str() {
        "sms" if text.is_none() => return Err("text"),
        "sms" if !media_urls.is_empty() => return Err("type"),
        "mms" if media_urls.is_empty() && json.get("media_ids").is_none() => {
            return Err("media_urls")
        }
        "sms" | "mms" => {}
        _ => return Err("type"),
    }
    if let Some(url) = json.get("url") {
        if !url
            .as_str()
            .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err("url");
        }
    }
    Ok(SendRequest {
        src,
        dst,
        text,
        media_urls,
    })
}

async fn send(
    req: HttpRequest,
    auth_id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<FakeState>,
) -> HttpResponse {
    let incoming = Incoming {
        carrier: CARRIER,
        req: &req,
        body: &body,
    };
    let parsed = read_send(&body);
    let fields = match &parsed {
        Ok(r) => Fields {
            to: Some(r.dst.clone()),
            from: Some(r.src.clone()),
            text: r.text.clone(),
            reference: None,
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
    if !authenticated(&req, &auth_id) {
        return reject(error(401, "authentication_failed"), fields);
    }
    if parsed.is_err() {
        return reject(error(400, "invalid_parameter"), fields);
    }
    let decision = state.decide(CARRIER);
    answer(
        &state,
        incoming,
        fields,
        decision,
        |id| {
            HttpResponse::Accepted().json(json!({
                "api_id": plivo::new_message_id(),
                "message": "message(s) queued",
                "message_uuid": [id],
            }))
        },
        |mode| match mode {
            FailureMode::Throttle => error(429, "too many requests"),
            FailureMode::OptedOut => error(400, "invalid_parameter"),
            FailureMode::ServerError | FailureMode::Timeout => error(500, "server error"),
        },
    )
    .await
}

/// The list filters, as the fake reads them. `Debug` leaves the recipient out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub direction: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: usize,
}

impl std::fmt::Debug for ListFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListFilter")
            .field("direction", &self.direction)
            .field("from", &self.from)
            .field("has_to", &self.to.is_some())
            .field("since", &self.since)
            .field("limit", &self.limit)
            .finish()
    }
}

/// `YYYY-MM-DD HH:MM[:SS[.ffffff]]`, UTC.
fn plivo_time(text: &str) -> Option<DateTime<Utc>> {
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text.trim(), format).ok())
    .map(|t| t.and_utc())
}

/// Reads the list query; `None` when a filter is malformed (Plivo answers 400).
#[must_use]
pub fn read_list(query: &str) -> Option<ListFilter> {
    let pairs = form::parse(query.as_bytes()).ok()?;
    let get = |name: &str| form::first(&pairs, name).map(str::to_owned);
    let since = match get("message_time__gte") {
        None => None,
        Some(text) => Some(plivo_time(&text)?),
    };
    let limit = match get("limit") {
        None => 20,
        Some(n) => n.parse().ok().filter(|n| (1..=20).contains(n))?,
    };
    Some(ListFilter {
        direction: get("message_direction"),
        from: get("from_number"),
        to: get("to_number"),
        since,
        limit,
    })
}

fn digits(number: &str) -> &str {
    number.strip_prefix('+').unwrap_or(number)
}

fn listed(filter: &ListFilter, record: &Record) -> bool {
    let at = DateTime::parse_from_rfc3339(&record.at)
        .ok()
        .map(|t| t.with_timezone(&Utc));
    let same = |wanted: &Option<String>, actual: &Option<String>| {
        wanted
            .as_deref()
            .is_none_or(|w| actual.as_deref().is_some_and(|a| digits(a) == digits(w)))
    };
    filter
        .direction
        .as_deref()
        .is_none_or(|d| d.eq_ignore_ascii_case("outbound"))
        && same(&filter.from, &record.from)
        && same(&filter.to, &record.to)
        && filter
            .since
            .is_none_or(|since| at.is_some_and(|at| at >= since))
}

async fn list(
    req: HttpRequest,
    auth_id: web::Path<String>,
    state: web::Data<FakeState>,
) -> HttpResponse {
    let incoming = Incoming {
        carrier: CARRIER,
        req: &req,
        body: b"",
    };
    if !authenticated(&req, &auth_id) {
        state.record(incoming, "lookup", 401, "rejected", None, Fields::default());
        return error(401, "authentication_failed");
    }
    let Some(filter) = read_list(req.query_string()) else {
        state.record(incoming, "lookup", 400, "rejected", None, Fields::default());
        return error(400, "invalid_parameter");
    };
    let mut records: Vec<Record> = state
        .accepted(CARRIER)
        .into_iter()
        .filter(|r| listed(&filter, r))
        .collect();
    records.reverse();
    let total = records.len();
    let objects: Vec<Value> = records
        .into_iter()
        .take(filter.limit)
        .map(|r| {
            let time = DateTime::parse_from_rfc3339(&r.at)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%:z").to_string())
                .unwrap_or_default();
            let uuid = r.message_id.unwrap_or_default();
            json!({
                "error_code": "",
                "from_number": r.from.as_deref().map(digits),
                "message_direction": "outbound",
                "message_state": "sent",
                "message_time": time,
                "message_type": "sms",
                "message_uuid": uuid,
                "resource_uri": format!("/v1/Account/{}/Message/{uuid}/", auth_id.as_str()),
                "to_number": r.to.as_deref().map(digits),
                "total_amount": "0.00500",
                "total_rate": "0.00500",
                "units": 1,
            })
        })
        .collect();
    state.record(
        incoming,
        "lookup",
        200,
        "accepted",
        None,
        Fields {
            to: filter.to.clone(),
            from: filter.from.clone(),
            text: None,
            reference: None,
        },
    );
    HttpResponse::Ok().json(json!({
        "api_id": plivo::new_message_id(),
        "meta": {
            "limit": filter.limit,
            "next": null,
            "offset": 0,
            "previous": null,
            "total_count": total,
        },
        "objects": objects,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sends_as_plivo_validates_them() {
        let sms = br#"{"src":"+15550001111","dst":"+15551234567","text":"Hi","url":"https://x.example/s","method":"POST"}"#;
        assert_eq!(
            read_send(sms),
            Ok(SendRequest {
                src: "+15550001111".to_owned(),
                dst: "+15551234567".to_owned(),
                text: Some("Hi".to_owned()),
                media_urls: Vec::new(),
            })
        );
        let mms = br#"{"src":"+15550001111","dst":"15551234567","type":"mms","media_urls":["https://m/a.png"]}"#;
        assert_eq!(
            read_send(mms).map(|r| r.media_urls),
            Ok(vec!["https://m/a.png".to_owned()])
        );
        for (body, field) in [
            ("[]", "body"),
            (r#"{"dst":"+15551234567","text":"x"}"#, "src"),
            (r#"{"src":"+15550001111","text":"x"}"#, "dst"),
            (r#"{"src":"+15550001111","dst":"555","text":"x"}"#, "dst"),
            (
                r#"{"src":"+15551234567","dst":"+15551234567","text":"x"}"#,
                "dst",
            ),
            (r#"{"src":"+15550001111","dst":"+15551234567"}"#, "text"),
            (
                r#"{"src":"+15550001111","dst":"+15551234567","type":"mms","text":"x"}"#,
                "media_urls",
            ),
            (
                r#"{"src":"+15550001111","dst":"+15551234567","type":"fax","text":"x"}"#,
                "type",
            ),
            (
                r#"{"src":"+15550001111","dst":"+15551234567","text":"x","url":"ftp://x"}"#,
                "url",
            ),
        ] {
            assert_eq!(read_send(body.as_bytes()), Err(field), "{body}");
        }
    }

    #[test]
    fn reads_list_filters() {
        let filter = read_list(
            "message_direction=outbound&from_number=%2B15550001111&to_number=%2B15551234567&message_time__gte=2026-11-27+10%3A00%3A00&limit=20",
        )
        .unwrap_or_else(|| panic!("no filter"));
        assert_eq!(filter.from.as_deref(), Some("+15550001111"));
        assert_eq!(filter.to.as_deref(), Some("+15551234567"));
        assert_eq!(
            filter.since.map(|t| t.to_rfc3339()),
            Some("2026-11-27T10:00:00+00:00".to_owned())
        );
        assert_eq!(filter.limit, 20);
        assert_eq!(
            read_list("message_time__gte=2026-11-27+10%3A00").and_then(|f| f.since),
            plivo_time("2026-11-27 10:00:00")
        );
        assert_eq!(read_list("limit=50"), None);
        assert_eq!(read_list("message_time__gte=yesterday"), None);
        assert_eq!(read_list("").map(|f| f.limit), Some(20));
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
            "auth_id = \"MAXXXXXXXXXXXXXXXXXX\"\nauth_token = \"token\"\napi_base = \"{}\"\n",
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
        let media = ["https://media.example.com/a.png".to_owned()];
        let message = OutboundMessage {
            outbox_id: "o-1",
            from: &from,
            to: &to,
            channel: Channel::Mms,
            body: "Hello",
            media_urls: &media,
            suggestions: &[],
            status_callback: "https://sms.example.com/webhooks/plivo/status",
        };
        let since = Utc::now() - chrono::Duration::seconds(5);
        let SendResult::Accepted {
            carrier_message_id,
            status,
        } = client.send(&account, &message).await
        else {
            panic!("not accepted")
        };
        assert_eq!(status, Some("queued"));
        fake.state.plan(super::super::FailureRequest {
            mode: FailureMode::OptedOut,
            count: 1,
            carrier: Some("plivo".to_owned()),
            retry_after: None,
            delay_ms: 1,
        });
        match client.send(&account, &message).await {
            SendResult::Rejected(e) => {
                assert_eq!(e.class, ErrorClass::Permanent);
                assert_eq!(e.code.as_deref(), Some("invalid_parameter"));
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
                ("send", "opted_out"),
                ("lookup", "accepted")
            ]
        );
        assert_eq!(records[0].to.as_deref(), Some("+15551234567"));
        assert_eq!(records[0].text.as_deref(), Some("Hello"));
        fake.handle.stop(false).await;
    }
}
