//! The fake Google RBM API and token endpoint (`shared/reference/carriers.md` §10; the send API
//! `phones.agentMessages/create`; Google's service-account OAuth flow):
//!
//! - `POST /token`: the JWT bearer grant. The form must have `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
//!   and an `assertion` that is a well-formed RS256 JWT (`alg` RS256; `iss`; `scope` the RBM scope;
//!   `aud` ending in `/token`; `iat`/`exp` at most an hour apart) — the signature is not checked,
//!   the fake has no public key. Answers `{"access_token": "fake-…", "expires_in": 3600,
//!   "token_type": "Bearer"}`, recorded with kind `token`; refusals in Google's OAuth shape
//!   `400 {"error": "unsupported_grant_type" | "invalid_grant", "error_description"}`.
//!   Tokens carry an HMAC under a key made when the process starts, so the fake recognises its own
//!   tokens even after `DELETE /_sent`.
//! - `POST /v1/phones/{E.164}/agentMessages?messageId={UUID}&agentId={id}`: needs a Bearer token
//!   the fake issued (`401 UNAUTHENTICATED`), both query parameters and a UUID `messageId`, an E.164
//!   phone and a `contentMessage` (`400 INVALID_ARGUMENT`). A `messageId` already accepted is
//!   answered `409 ALREADY_EXISTS` (with a `google.rpc.ResourceInfo` naming the message, as
//!   Google's error model does for that code) and recorded `replayed`, before any failure plan.
//!   Success: `200` with the `AgentMessage` (`name` = `phones/{E.164}/agentMessages/{messageId}`);
//!   the record's message id is our `messageId`, the carrier id RBM gives back. Failures in
//!   Google's `{"error": {"code", "message", "status"}}`: 500 `INTERNAL`, 429 `RESOURCE_EXHAUSTED`
//!   (+ `Retry-After` when planned), and for "opted out" `403 PERMISSION_DENIED`: RBM documents
//!   no refusal for a user who unsubscribed (that arrives as an `UNSUBSCRIBE` event), and
//!   permission denied is the closest of Google's canonical refusals.
//!
//! Recorded fields: `to` = the phone, `from` = `agentId`, `text` = `contentMessage.text` (or a rich
//! card's description), `reference` = `messageId`.

use super::{answer, authorization, Decision, FailureMode, FakeState, Fields, Incoming};
use crate::carriers::rbm::token::{GRANT_TYPE, SCOPE};
use crate::carriers::{form, Carrier};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::LazyLock;

const CARRIER: Carrier = Carrier::Rbm;

/// Key of the fake's token HMAC, new each process.
static TOKEN_KEY: LazyLock<[u8; 32]> = LazyLock::new(rand::random);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/token", web::post().to(token))
        .route("/v1/phones/{phone}/agentMessages", web::post().to(send));
}

fn token_mac(nonce: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(TOKEN_KEY.as_slice())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(nonce.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A new access token: `fake-{nonce}.{HMAC(nonce)}`.
fn issue_token() -> String {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let tag = token_mac(&nonce);
    format!("fake-{nonce}.{tag}")
}

/// Whether `token` is one the fake issued.
fn issued(token: &str) -> bool {
    token
        .strip_prefix("fake-")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(nonce, tag)| {
            use subtle::ConstantTimeEq;
            bool::from(token_mac(nonce).as_bytes().ct_eq(tag.as_bytes()))
        })
}

fn oauth_error(error: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": error, "error_description": description }))
}

/// Why an assertion is not one Google would take, or its `iss`.
///
/// # Errors
/// A description in the words Google's token endpoint uses.
pub fn check_assertion(assertion: &str) -> Result<String, &'static str> {
    let mut parts = assertion.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("Invalid JWT: not three segments");
    };
    let decode = |segment: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).ok()?).ok()
    };
    let header = decode(header).ok_or("Invalid JWT: the header is not base64url JSON")?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err("Invalid JWT: alg must be RS256");
    }
    let claims = decode(claims).ok_or("Invalid JWT: the claims are not base64url JSON")?;
    if URL_SAFE_NO_PAD
        .decode(signature)
        .map_or(true, |s| s.len() < 128)
    {
        return Err("Invalid JWT Signature.");
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
    if text("scope") != SCOPE {
        return Err(
            "Invalid JWT: scope is not https://www.googleapis.com/auth/rcsbusinessmessaging",
        );
    }
    if !text("aud").ends_with("/token") {
        return Err("Invalid JWT: the audience is not the token endpoint");
    }
    let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_i64),
        claims.get("exp").and_then(Value::as_i64),
    ) else {
        return Err("Invalid JWT: iat and exp are required");
    };
    if exp <= iat || exp - iat > 3600 {
        return Err("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.");
    }
    let iss = text("iss");
    if iss.is_empty() {
        return Err("Invalid JWT: iss is required");
    }
    Ok(iss.to_owned())
}

async fn token(req: HttpRequest, body: web::Bytes, state: web::Data<FakeState>) -> HttpResponse {
    let incoming = Incoming {
        carrier: CARRIER,
        req: &req,
        body: &body,
    };
    let form = form::parse(&body).unwrap_or_default();
    let grant_type = form::first(&form, "grant_type").unwrap_or_default();
    let checked = if grant_type == GRANT_TYPE {
        check_assertion(form::first(&form, "assertion").unwrap_or_default())
            .map_err(|description| ("invalid_grant", description.to_owned()))
    } else {
        Err((
            "unsupported_grant_type",
            format!("Invalid grant_type: {grant_type}"),
        ))
    };
    match checked {
        Ok(iss) => {
            let response = HttpResponse::Ok().json(json!({
                "access_token": issue_token(),
                "expires_in": 3600,
                "token_type": "Bearer",
            }));
            let fields = Fields {
                from: Some(iss),
                ..Fields::default()
            };
            state.record(incoming, "token", 200, "accepted", None, fields);
            response
        }
        Err((error, description)) => {
            state.record(incoming, "token", 400, "rejected", None, Fields::default());
            oauth_error(error, &description)
        }
    }
}

/// Google's error body.
fn google_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .json(json!({ "error": { "code": status, "message": message, "status": code } }))
}

/// The fields of a send request, as the fake records them.
#[must_use]
pub fn send_fields(phone: &str, query: &str, body: &[u8]) -> (Fields, Option<Value>) {
    let params = form::parse(query.as_bytes()).unwrap_or_default();
    let param = |name: &str| form::first(&params, name).map(str::to_owned);
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let content = json.as_ref().and_then(|j| j.get("contentMessage"));
    let text = content
        .and_then(|c| {
            c.get("text")
                .or_else(|| c.pointer("/richCard/standaloneCard/cardContent/description"))
        })
        .and_then(Value::as_str)
        .map(str::to_owned);
    (
        Fields {
            to: Some(phone.to_owned()),
            from: param("agentId"),
            text,
            reference: param("messageId"),
        },
        content.cloned(),
    )
}

async fn send(
    req: HttpRequest,
    phone: web::Path<String>,
    body: web::Bytes,
    state: web::Data<FakeState>,
) -> HttpResponse {
    let phone = phone.into_inner();
    let (fields, content) = send_fields(&phone, req.query_string(), &body);
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
    if !matches!(authorization(&req), Some(("Bearer", token)) if issued(&token)) {
        return reject(
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, \
                 login cookie or other valid authentication credential.",
            ),
            fields,
        );
    }
    let Some(message_id) = fields.reference.clone() else {
        return reject(
            google_error(
                400,
                "INVALID_ARGUMENT",
                "Missing required parameter: messageId",
            ),
            fields,
        );
    };
    if uuid::Uuid::parse_str(&message_id).is_err() {
        return reject(
            google_error(400, "INVALID_ARGUMENT", "messageId must be a UUID"),
            fields,
        );
    }
    if fields.from.as_deref().is_none_or(str::is_empty) {
        return reject(
            google_error(
                400,
                "INVALID_ARGUMENT",
                "Missing required parameter: agentId",
            ),
            fields,
        );
    }
    if crate::phone::E164::parse(&phone).is_err() {
        return reject(
            google_error(400, "INVALID_ARGUMENT", "Invalid phone number"),
            fields,
        );
    }
    let Some(content) = content.filter(Value::is_object) else {
        return reject(
            google_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received. contentMessage is required.",
            ),
            fields,
        );
    };
    let name = format!("phones/{phone}/agentMessages/{message_id}");
    if state
        .accepted_with_reference(CARRIER, &message_id)
        .is_some()
    {
        let response = HttpResponse::Conflict().json(json!({ "error": {
            "code": 409,
            "message": "Requested entity already exists",
            "status": "ALREADY_EXISTS",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ResourceInfo",
                "resourceType": "agentMessage",
                "resourceName": name,
            }],
        } }));
        state.record(incoming, "send", 409, "replayed", Some(message_id), fields);
        return response;
    }
    // RBM's id for the message is ours: record it, whatever id the fake would have made up.
    let decision = match state.decide(CARRIER) {
        Decision::Accept { .. } => Decision::Accept {
            message_id: message_id.clone(),
        },
        Decision::Late { delay, .. } => Decision::Late {
            message_id: message_id.clone(),
            delay,
        },
        fail @ Decision::Fail { .. } => fail,
    };
    let traffic = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|j| j.get("messageTrafficType").cloned());
    answer(
        &state,
        incoming,
        fields,
        decision,
        |_| {
            HttpResponse::Ok().json(json!({
                "name": name,
                "sendTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "contentMessage": content,
                "messageTrafficType": traffic,
            }))
        },
        |mode| match mode {
            FailureMode::ServerError => {
                google_error(500, "INTERNAL", "Internal error encountered.")
            }
            FailureMode::Throttle => google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
            ),
            FailureMode::OptedOut | FailureMode::Timeout => google_error(
                403,
                "PERMISSION_DENIED",
                "The caller does not have permission",
            ),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
    }

    fn jwt(header: &Value, claims: &Value) -> String {
        format!(
            "{}.{}.{}",
            segment(header),
            segment(claims),
            URL_SAFE_NO_PAD.encode([7u8; 256])
        )
    }

    fn claims() -> Value {
        json!({
            "iss": "agent@project.iam.gserviceaccount.com",
            "scope": SCOPE,
            "aud": "http://127.0.0.1:9/token",
            "iat": 1_700_000_000,
            "exp": 1_700_003_600,
        })
    }

    #[test]
    fn assertions_are_checked_like_google_does() {
        let header = json!({"alg": "RS256", "typ": "JWT"});
        assert_eq!(
            check_assertion(&jwt(&header, &claims())).as_deref(),
            Ok("agent@project.iam.gserviceaccount.com")
        );
        let mut wrong = claims();
        wrong["scope"] = json!("https://www.googleapis.com/auth/cloud-platform");
        assert!(check_assertion(&jwt(&header, &wrong)).is_err());
        let mut wrong = claims();
        wrong["aud"] = json!("https://rcsbusinessmessaging.googleapis.com");
        assert!(check_assertion(&jwt(&header, &wrong)).is_err());
        let mut wrong = claims();
        wrong["exp"] = json!(1_700_007_201);
        assert!(check_assertion(&jwt(&header, &wrong)).is_err());
        assert!(check_assertion(&jwt(&json!({"alg": "HS256"}), &claims())).is_err());
        assert!(check_assertion("a.b").is_err());
        let unsigned = format!("{}.{}.", segment(&header), segment(&claims()));
        assert_eq!(check_assertion(&unsigned), Err("Invalid JWT Signature."));
    }

    #[test]
    fn tokens_are_recognised_by_their_tag() {
        let token = issue_token();
        assert!(issued(&token));
        assert!(!issued(&token.replacen("fake-", "fake-0", 1)));
        assert!(!issued("ya29.real-looking-token"));
    }

    #[test]
    fn send_fields_come_from_the_path_query_and_body() {
        let body = br#"{"contentMessage":{"text":"Hello"},"messageTrafficType":"TRANSACTION"}"#;
        let (fields, content) = send_fields(
            "+15551234567",
            "messageId=01972d4a-3b5c-7d6e-8f90-a1b2c3d4e5f6&agentId=drawbridge-test-agent",
            body,
        );
        assert_eq!(fields.to.as_deref(), Some("+15551234567"));
        assert_eq!(fields.from.as_deref(), Some("drawbridge-test-agent"));
        assert_eq!(fields.text.as_deref(), Some("Hello"));
        assert_eq!(
            fields.reference.as_deref(),
            Some("01972d4a-3b5c-7d6e-8f90-a1b2c3d4e5f6")
        );
        assert!(content.is_some());
        let card = br#"{"contentMessage":{"richCard":{"standaloneCard":{"cardContent":{"description":"See attached"}}}}}"#;
        let (fields, _) = send_fields("+15551234567", "", card);
        assert_eq!(fields.text.as_deref(), Some("See attached"));
        assert_eq!(fields.reference, None);
    }
}
