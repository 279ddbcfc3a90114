//! The fake Twilio Messages API (`shared/reference/carriers.md` §2):
//!
//! - `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: Basic `AccountSid:AuthToken` (the
//!   user must be the SID in the path), form `To`, `From` or `MessagingServiceSid`, `Body`,
//!   `MediaUrl`… → `201` with the Message resource (`sid` `SM…`, `status` `queued`). Failures in
//!   Twilio's error format `{"code", "message", "more_info", "status"}`: 500 → 20500, 429 →
//!   20429, opted out → 400 with 21610.
//! - `GET` on the same path: the Messages list, filtered by `To`, `From` and `DateSent>`
//!   (`YYYY-MM-DD`, on or after), newest first, as `{"messages": [...]}`.

use super::{answer, authorization, FailureMode, FakeState, Fields, Incoming};
use crate::carriers::form;
use crate::carriers::Carrier;
use actix_web::{web, HttpRequest, HttpResponse};

const CARRIER: Carrier = Carrier::Twilio;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/2010-04-01/Accounts/{sid}/Messages.json",
        web::post().to(send),
    )
    .route(
        "/2010-04-01/Accounts/{sid}/Messages.json",
        web::get().to(list),
    );
}

fn error(status: u16, code: u32, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

/// The request's Basic user must be the account SID in the path.
fn authenticated(req: &HttpRequest, sid: &str) -> bool {
    matches!(authorization(req), Some(("Basic", credentials))
        if credentials.split_once(':').is_some_and(|(user, token)| user == sid && !token.is_empty()))
}

async fn send(
    req: HttpRequest,
    sid: web::Path<String>,
    body: web::Bytes,
    state: web::Data<FakeState>,
) -> HttpResponse {
    let form = form::parse(&body).unwrap_or_default();
    let field = |name: &str| form::first(&form, name).map(str::to_owned);
    let fields = Fields {
        to: field("To"),
        from: field("From").or_else(|| field("MessagingServiceSid")),
        text: field("Body"),
        reference: None,
    };
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
    if !authenticated(&req, &sid) {
        return reject(error(401, 20003, "Authenticate"), fields);
    }
    if !fields.to.as_deref().is_some_and(|t| t.starts_with('+')) {
        return reject(error(400, 21211, "Invalid 'To' Phone Number"), fields);
    }
    if fields.from.is_none() {
        return reject(
            error(
                400,
                21603,
                "A 'From' or 'MessagingServiceSid' parameter is required",
            ),
            fields,
        );
    }
    if fields.text.is_none() && field("MediaUrl").is_none() {
        return reject(error(400, 21602, "Message body is required"), fields);
    }
    let decision = state.decide(CARRIER);
    let (to, from, text) = (
        fields.to.clone().unwrap_or_default(),
        fields.from.clone().unwrap_or_default(),
        fields.text.clone().unwrap_or_default(),
    );
    let sid = sid.into_inner();
    answer(
        &state,
        incoming,
        fields,
        decision,
        |id| {
            HttpResponse::Created().json(serde_json::json!({
                "sid": id,
                "account_sid": sid,
                "to": to,
                "from": from,
                "body": text,
                "status": "queued",
                "num_media": "0",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "date_created": chrono::Utc::now().to_rfc2822(),
                "error_code": null,
                "uri": format!("/2010-04-01/Accounts/{sid}/Messages/{id}.json"),
            }))
        },
        |mode| match mode {
            FailureMode::ServerError => error(500, 20500, "Internal Server Error"),
            FailureMode::Throttle => error(429, 20429, "Too Many Requests"),
            FailureMode::OptedOut | FailureMode::Timeout => {
                error(400, 21610, "Attempt to send to unsubscribed recipient")
            }
        },
    )
    .await
}

async fn list(
    req: HttpRequest,
    sid: web::Path<String>,
    state: web::Data<FakeState>,
) -> HttpResponse {
    let incoming = Incoming {
        carrier: CARRIER,
        req: &req,
        body: b"",
    };
    if !authenticated(&req, &sid) {
        let response = error(401, 20003, "Authenticate");
        state.record(incoming, "lookup", 401, "rejected", None, Fields::default());
        return response;
    }
    let query = form::parse(req.query_string().as_bytes()).unwrap_or_default();
    let filter = |name: &str| form::first(&query, name).map(str::to_owned);
    let (to, from, since) = (filter("To"), filter("From"), filter("DateSent>"));
    let mut messages: Vec<serde_json::Value> = state
        .accepted(CARRIER)
        .into_iter()
        .filter(|r| to.is_none() || r.to == to)
        .filter(|r| from.is_none() || r.from == from)
        .filter(|r| {
            since
                .as_deref()
                .is_none_or(|day| r.at.get(..10).is_some_and(|d| d >= day))
        })
        .map(|r| {
            serde_json::json!({
                "sid": r.message_id,
                "account_sid": sid.as_str(),
                "to": r.to,
                "from": r.from,
                "body": r.text,
                "status": "sent",
                "direction": "outbound-api",
                "date_created": r.at,
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
            to,
            from,
            text: None,
            reference: None,
        },
    );
    HttpResponse::Ok().json(serde_json::json!({
        "messages": messages,
        "page": 0,
        "page_size": 100,
        "next_page_uri": null,
    }))
}
