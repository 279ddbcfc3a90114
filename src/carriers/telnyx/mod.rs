//! Telnyx Messaging v2: SMS and MMS by JSON webhooks signed with Ed25519, and the `/v2/messages`
//! REST API (`shared/reference/carriers.md` §3, vectors §12.3; developers.telnyx.com
//! "Receiving webhooks", "Send a message", "Message Detail Records", "Messaging error codes";
//! SDK types from team-telnyx/telnyx-python `src/telnyx/types/`).
//!
//! # Account keys (`[[accounts]]` with `carrier = "telnyx"`)
//!
//! | key | | |
//! |---|---|---|
//! | `api_key` | required, secret | the API v2 key, sent as `Authorization: Bearer` |
//! | `public_key` | required | base64 of the 32-byte Ed25519 public key from the portal (Keys & Credentials → Public Key); verifies webhooks. Anything that does not decode to 32 bytes is refused, and in production so is the published RFC 8032 test key |
//! | `messaging_profile_id` | optional | a messaging profile UUID, sent with every message |
//! | `api_base` | optional | default `https://api.telnyx.com` (tests point it at the fake) |
//!
//! # Webhooks
//!
//! One URL receives everything (the messaging profile's URL and each message's `webhook_url`), so
//! both routes parse both kinds. The JSON v2 envelope is
//! `{"data": {"event_type", "id", "occurred_at", "payload", "record_type": "event"}, "meta": {"attempt", "delivered_to"}}`:
//!
//! - `message.received` → [`Event::Message`]: `payload.id`, `payload.from.phone_number` (the
//!   customer), `payload.to[0].phone_number` (our number), `payload.type` (`SMS`/`MMS`, any case),
//!   `payload.text`, `payload.media[]` (`url`, `content_type`, `size`). A non-empty MMS `subject`
//!   is kept as the first line of the body: it is the customer's text too.
//! - `message.sent`, `message.finalized` → [`Event::Status`] keyed by `payload.id`, with
//!   `payload.to[0].status` and `payload.errors[0].code` (a string such as `"40300"`).
//! - any other event type → [`Event::Ignored`] (`unhandled_event`).
//!
//! [`hint`] reads our sender before authentication: `payload.to[0].phone_number` for
//! `message.received`, `payload.from.phone_number` for status events, nothing otherwise.
//!
//! Authenticity is [`signature`]: `telnyx-signature-ed25519` over `"{telnyx-timestamp}|{body}"`,
//! ±300 s. The secret for `drawbridge webhook verify --secret` is the public key (base64).
//!
//! # Sending
//!
//! `POST {api_base}/v2/messages`, `Authorization: Bearer {api_key}`, JSON `from`, `to`, `text`
//! (when not empty), `media_urls` (when there are any), `messaging_profile_id` (when configured),
//! `webhook_url` and `use_profile_webhooks: true` (the profile's URLs stay as a fallback; both
//! land on Drawbridge). The reply is `{"data": {"id", "to": [{"status": "queued"}], …}}`; refusals
//! are `{"errors": [{"code": "40300", "title": "Blocked due to STOP message", …}]}` (HTTP 409 for
//! 40300). RCS and RCS-agent senders are refused locally: Telnyx's RCS is a different API.
//!
//! # Resolving an uncertain send: `lookup`
//!
//! Telnyx documents `Idempotency-Key` only for endpoints "whose API reference declares
//! Idempotency-Key support" (developers.telnyx.com/docs/development/api-fundamentals/idempotency);
//! the `POST /v2/messages` reference, the OpenAPI spec (team-telnyx/openapi `spec3.yml`, no such
//! parameter) and the generated SDKs (telnyx-python `resources/messages/messages.py` `send()`
//! takes no idempotency key) declare none. So no key is sent and nothing is assumed to be
//! deduplicated.
//!
//! Instead every message carries our outbox id in its status callback:
//! `webhook_url = {status_callback}?drawbridge_outbox={outbox_id}` (the query does not affect the
//! route or the Ed25519 check, which covers only the body). Telnyx keeps that URL on the message's
//! detail record as `delivery_status_webhook_url`, and the Detail Record Search API lists records
//! by recipient, sender, direction and day:
//! `GET /v2/detail_records?filter[record_type]=messaging&filter[direction]=outbound&filter[cld]=…&filter[cli]=…&filter[created_at][gte]=YYYY-MM-DD&sort=-created_at&page[size]=50`
//! (telnyx-python `types/detail_record_list_params.py`, `detail_record_list_response.py`). A
//! record whose URL carries our outbox id is ours ([`Candidate::client_reference`]). Detail
//! records hold no text.
//!
//! Error codes: see `carriers/telnyx.toml`. A `10008` ("Request timeout") refusal and an HTTP 504
//! are [`SendResult::Uncertain`]: Telnyx may have created the message.

pub mod signature;

use super::{
    accepted, account_fields, business_field, code_field, endpoint, id_field, media, phone_field,
    word_field, Candidate, Carrier, ErrorClass, Event, HttpCall, HttpReply, LookupQuery, Method,
    OutboundMessage, PayloadError, Route, SendError, SendResult, SimulatedInbound, SimulatedStatus,
    SimulationKeys, StatusUpdate, Verification, WebhookRequest,
};
use super::{json_code as code_at, json_object_body as body_json, json_str as str_at};
use crate::config::Mode;
use crate::phone::BusinessAddress;
use crate::pipeline::{Channel, Inbound};
use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

const CARRIER: Carrier = Carrier::Telnyx;

/// The query parameter of `webhook_url` that carries our outbox id back in detail records.
pub const OUTBOX_PARAM: &str = "drawbridge_outbox";

/// A Telnyx account (one API key; one portal public key verifies all its webhooks).
#[derive(Debug, Clone)]
pub struct Account {
    /// API v2 key (`Authorization: Bearer`).
    pub api_key: SecretString,
    /// The portal's Ed25519 public key, base64 as configured. Public; kept for explanations.
    pub public_key: String,
    public_key_bytes: [u8; 32],
    /// Sent with every message when set.
    pub messaging_profile_id: Option<String>,
    pub api_base: url::Url,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    api_key: SecretString,
    public_key: String,
    messaging_profile_id: Option<String>,
    api_base: Option<String>,
}

/// Looks like a value someone forgot to replace.
fn placeholder(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    [
        "changeme",
        "change_me",
        "change-me",
        "replace",
        "placeholder",
        "example",
        "xxxx",
        "your",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

fn is_uuid(text: &str) -> bool {
    uuid::Uuid::try_parse(text).is_ok() && text.len() == 36
}

impl Account {
    /// Reads `api_key`, `public_key`, `messaging_profile_id` and `api_base`.
    ///
    /// # Errors
    /// A message naming the key at fault. A `public_key` that is not the base64 of 32 bytes is
    /// always refused; in production so are the RFC 8032 test key (its private half is published)
    /// and an `api_key` that is short or looks like a placeholder.
    pub fn from_config(fields: &toml::Table, mode: Mode) -> Result<Self, String> {
        let raw: Raw = account_fields(fields, &["api_key"])?;
        let key = raw.api_key.expose_secret().trim();
        if key.is_empty() {
            return Err("`api_key`: must not be empty".to_owned());
        }
        if mode == Mode::Production && (key.len() < 20 || placeholder(key)) {
            return Err(
                "`api_key`: does not look like a Telnyx API v2 key (too short or a placeholder; \
                 value not shown)"
                    .to_owned(),
            );
        }
        let public_key_bytes = signature::decode_public_key(&raw.public_key).map_err(|e| {
            format!(
                "`public_key`: {e}; it must be the base64 Ed25519 public key from the Telnyx \
                 portal (Keys & Credentials → Public Key)"
            )
        })?;
        if mode == Mode::Production && raw.public_key.trim() == signature::RFC8032_TEST_PUBLIC_KEY {
            return Err(
                "`public_key`: this is the RFC 8032 test key, whose private key is published: \
                 anyone could sign webhooks with it"
                    .to_owned(),
            );
        }
        if let Some(id) = &raw.messaging_profile_id {
            if !is_uuid(id) {
                return Err(
                    "`messaging_profile_id`: a Telnyx messaging profile id is a UUID".to_owned(),
                );
            }
        }
        Ok(Self {
            api_key: raw.api_key,
            public_key: raw.public_key.trim().to_owned(),
            public_key_bytes,
            messaging_profile_id: raw.messaging_profile_id,
            api_base: super::api_base(CARRIER, raw.api_base.as_deref())?,
        })
    }

    #[must_use]
    pub fn api_base(&self) -> &url::Url {
        &self.api_base
    }

    /// The Ed25519 check with this account's public key.
    #[must_use]
    pub fn verify(&self, request: &WebhookRequest, now: DateTime<Utc>) -> Verification {
        signature::check(&self.public_key_bytes, request, now)
    }

    /// `POST {api_base}/v2/messages`.
    ///
    /// # Errors
    /// RCS (channel or agent sender): Telnyx's RCS is a separate API. A status callback that is
    /// not a URL.
    pub fn build_send(
        &self,
        message: &OutboundMessage<'_>,
        _token: Option<&str>,
    ) -> Result<HttpCall, SendError> {
        if message.channel == Channel::Rcs || matches!(message.from, BusinessAddress::RcsAgent(_)) {
            return Err(SendError::local(
                ErrorClass::Permanent,
                "telnyx_rcs_not_supported",
            ));
        }
        let text = message.text_with_fallbacks();
        let mut body = serde_json::Map::new();
        body.insert("from".to_owned(), json!(message.from.as_sender()));
        body.insert("to".to_owned(), json!(message.to.as_str()));
        if !text.is_empty() {
            body.insert("text".to_owned(), json!(text));
        }
        if !message.media_urls.is_empty() {
            body.insert("media_urls".to_owned(), json!(message.media_urls));
        }
        if let Some(profile) = &self.messaging_profile_id {
            body.insert("messaging_profile_id".to_owned(), json!(profile));
        }
        body.insert(
            "webhook_url".to_owned(),
            json!(webhook_url(message.status_callback, message.outbox_id)?),
        );
        body.insert("use_profile_webhooks".to_owned(), json!(true));
        Ok(
            HttpCall::new(Method::Post, endpoint(&self.api_base, "/v2/messages")?)
                .bearer(self.api_key.expose_secret())
                .json(&Value::Object(body)),
        )
    }

    /// `GET {api_base}/v2/detail_records?…`: our outbound messages to the recipient since the
    /// query's day, newest first.
    #[must_use]
    pub fn build_lookup(&self, query: &LookupQuery<'_>, _token: Option<&str>) -> Option<HttpCall> {
        if matches!(query.from, BusinessAddress::RcsAgent(_)) {
            return None;
        }
        let mut url = endpoint(&self.api_base, "/v2/detail_records").ok()?;
        url.query_pairs_mut()
            .append_pair("filter[record_type]", "messaging")
            .append_pair("filter[direction]", "outbound")
            .append_pair("filter[cld]", query.to.as_str())
            .append_pair("filter[cli]", query.from.as_sender())
            .append_pair(
                "filter[created_at][gte]",
                &query.since.format("%Y-%m-%d").to_string(),
            )
            .append_pair("sort", "-created_at")
            .append_pair("page[size]", "50");
        Some(HttpCall::new(Method::Get, url).bearer(self.api_key.expose_secret()))
    }

    /// A signed `message.received` webhook, shaped as Telnyx sends one.
    ///
    /// # Errors
    /// Without `keys.signing_key` (the base64 Ed25519 seed: only Telnyx holds the real one), or
    /// for an RCS agent recipient.
    pub fn simulate_inbound(
        &self,
        url: &str,
        message: &SimulatedInbound<'_>,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        let to = telnyx_address(message.to)?;
        let kind = if message.media.is_empty() {
            "SMS"
        } else {
            "MMS"
        };
        let media: Vec<Value> = message
            .media
            .iter()
            .map(|m| {
                json!({
                    "content_type": m.content_type,
                    "hash_sha256": null,
                    "size": m.size,
                    "url": m.url,
                })
            })
            .collect();
        let at = keys.now.to_rfc3339_opts(SecondsFormat::Millis, false);
        let payload = json!({
            "cc": [],
            "completed_at": null,
            "cost": null,
            "direction": "inbound",
            "encoding": "GSM-7",
            "errors": [],
            "from": {
                "carrier": "T-Mobile USA",
                "line_type": "Wireless",
                "phone_number": message.from.as_str(),
                "status": "received",
            },
            "id": message.message_id,
            "media": media,
            "messaging_profile_id": self.messaging_profile_id,
            "parts": 1,
            "received_at": at,
            "record_type": "message",
            "sent_at": null,
            "tags": [],
            "text": message.body,
            "to": [{
                "carrier": "Telnyx",
                "line_type": "Wireless",
                "phone_number": to,
                "status": "webhook_delivered",
            }],
            "type": kind,
            "valid_until": null,
            "webhook_failover_url": null,
            "webhook_url": url,
        });
        self.signed_event(url, "message.received", payload, keys)
    }

    /// A signed `message.sent` (for `queued`, `sending`, `sent`) or `message.finalized` (any
    /// other word) webhook for a message we sent.
    ///
    /// # Errors
    /// As [`Account::simulate_inbound`].
    pub fn simulate_status(
        &self,
        url: &str,
        status: &SimulatedStatus<'_>,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        let from = telnyx_address(status.from)?;
        let event_type = if matches!(status.status, "queued" | "sending" | "sent") {
            "message.sent"
        } else {
            "message.finalized"
        };
        let errors: Vec<Value> = status
            .error_code
            .map(|code| {
                json!({
                    "code": code,
                    "title": error_title(code),
                    "detail": error_title(code),
                })
            })
            .into_iter()
            .collect();
        let at = keys.now.to_rfc3339_opts(SecondsFormat::Millis, false);
        let payload = json!({
            "cc": [],
            "completed_at": if event_type == "message.finalized" { json!(at) } else { Value::Null },
            "cost": {"amount": "0.0040", "currency": "USD"},
            "direction": "outbound",
            "encoding": "GSM-7",
            "errors": errors,
            "from": {"carrier": "Telnyx", "line_type": "Wireless", "phone_number": from},
            "id": status.carrier_message_id,
            "media": [],
            "messaging_profile_id": self.messaging_profile_id,
            "parts": 1,
            "received_at": at,
            "record_type": "message",
            "sent_at": at,
            "tags": [],
            "text": null,
            "to": [{
                "carrier": "T-MOBILE USA, INC.",
                "line_type": "Wireless",
                "phone_number": status.to.as_str(),
                "status": status.status,
            }],
            "type": "SMS",
            "valid_until": null,
            "webhook_failover_url": null,
            "webhook_url": url,
        });
        self.signed_event(url, event_type, payload, keys)
    }

    /// Wraps `payload` in the v2 envelope and signs it with `keys.signing_key`.
    fn signed_event(
        &self,
        url: &str,
        event_type: &str,
        payload: Value,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        let seed_text = keys.signing_key.as_ref().ok_or_else(|| {
            "Telnyx signs webhooks with its own Ed25519 private key, which only Telnyx holds: \
             give the test seed that matches this account's public_key as the signing key \
             (base64 of 32 bytes)"
                .to_owned()
        })?;
        let seed = signature::decode_seed(seed_text.expose_secret())
            .map_err(|e| format!("the signing key {e}"))?;
        let envelope = json!({
            "data": {
                "event_type": event_type,
                "id": new_message_id(),
                "occurred_at": keys.now.to_rfc3339_opts(SecondsFormat::Millis, false),
                "payload": payload,
                "record_type": "event",
            },
            "meta": {"attempt": 1, "delivered_to": url},
        });
        let body = serde_json::to_vec(&envelope).map_err(|e| e.to_string())?;
        let timestamp = keys.now.timestamp().to_string();
        let sig = signature::sign(&seed, &timestamp, &body)?;
        Ok(WebhookRequest::new(
            Method::Post,
            url,
            [
                ("Content-Type".to_owned(), "application/json".to_owned()),
                (signature::SIGNATURE_HEADER.to_owned(), sig),
                (signature::TIMESTAMP_HEADER.to_owned(), timestamp),
            ],
            body,
        ))
    }

    #[must_use]
    pub fn secrets(&self) -> Vec<String> {
        vec![self.api_key.expose_secret().to_owned()]
    }
}

/// How Telnyx writes one of our senders (`+1555…` or a short code).
fn telnyx_address(address: &BusinessAddress) -> Result<&str, String> {
    match address {
        BusinessAddress::RcsAgent(_) => {
            Err("Telnyx messaging webhooks have no RCS agent addresses".to_owned())
        }
        other => Ok(other.as_sender()),
    }
}

/// The title Telnyx gives an error code in webhooks (simulations only).
fn error_title(code: &str) -> &'static str {
    match code {
        "40300" => "Blocked due to STOP message",
        "40001" => "Not routable",
        "40002" => "Blocked as spam - temporary",
        "40008" => "Undeliverable",
        "40012" => "Invalid messaging destination number",
        _ => "Message delivery failed",
    }
}

/// The status callback with our outbox id as [`OUTBOX_PARAM`].
fn webhook_url(status_callback: &str, outbox_id: &str) -> Result<String, SendError> {
    let mut url = url::Url::parse(status_callback)
        .map_err(|_| SendError::local(ErrorClass::Permanent, "bad_status_callback"))?;
    url.query_pairs_mut().append_pair(OUTBOX_PARAM, outbox_id);
    Ok(url.into())
}

/// The outbox id a `webhook_url` carries, if any.
#[must_use]
pub fn outbox_id_of(webhook_url: &str) -> Option<String> {
    let url = url::Url::parse(webhook_url).ok()?;
    let found = url
        .query_pairs()
        .find(|(name, _)| name == OUTBOX_PARAM)
        .map(|(_, value)| value.into_owned());
    found.filter(|v| super::check_token(v, 128))
}

fn event_type(json: &Value) -> Result<&str, PayloadError> {
    str_at(json, "/data/event_type")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(PayloadError::Missing("data.event_type"))
}

/// Which of our senders the webhook concerns: `payload.to[0].phone_number` for inbound messages,
/// `payload.from.phone_number` for status events, none for other events.
///
/// # Errors
/// [`PayloadError::ContentType`] for anything but JSON; other [`PayloadError`]s when the body or
/// the sender field is unreadable.
pub fn hint(
    request: &WebhookRequest,
    _route: Route,
) -> Result<Option<BusinessAddress>, PayloadError> {
    let json = body_json(request)?;
    let (pointer, field) = match event_type(&json)? {
        "message.received" => (
            "/data/payload/to/0/phone_number",
            "data.payload.to[0].phone_number",
        ),
        "message.sent" | "message.finalized" => (
            "/data/payload/from/phone_number",
            "data.payload.from.phone_number",
        ),
        _ => return Ok(None),
    };
    business_field(str_at(&json, pointer), field).map(Some)
}

/// Parses an authenticated webhook (either route: Telnyx sends every event to one URL).
///
/// # Errors
/// [`PayloadError`] naming the first missing or malformed field.
pub fn parse(request: &WebhookRequest, _route: Route) -> Result<Vec<Event>, PayloadError> {
    let json = body_json(request)?;
    let kind = event_type(&json)?;
    if !matches!(
        kind,
        "message.received" | "message.sent" | "message.finalized"
    ) {
        return Ok(vec![Event::Ignored("unhandled_event")]);
    }
    let payload = json
        .pointer("/data/payload")
        .filter(|p| p.is_object())
        .ok_or(PayloadError::Missing("data.payload"))?;
    Ok(vec![if kind == "message.received" {
        Event::Message(parse_inbound(payload)?)
    } else {
        Event::Status(parse_status(payload)?)
    }])
}

fn parse_inbound(payload: &Value) -> Result<Inbound, PayloadError> {
    let id = id_field(str_at(payload, "/id"), "data.payload.id")?;
    let from = phone_field(
        str_at(payload, "/from/phone_number"),
        "data.payload.from.phone_number",
    )?;
    let to = business_field(
        str_at(payload, "/to/0/phone_number"),
        "data.payload.to[0].phone_number",
    )?;
    let items = match payload.get("media") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let url = str_at(item, "/url")
                    .filter(|u| !u.trim().is_empty())
                    .ok_or(PayloadError::Missing("data.payload.media[].url"))?;
                Ok(media(
                    url,
                    str_at(item, "/content_type"),
                    item.get("size").and_then(Value::as_u64),
                    None,
                ))
            })
            .collect::<Result<Vec<_>, PayloadError>>()?,
        Some(_) => return Err(PayloadError::Invalid("data.payload.media")),
    };
    let channel = match str_at(payload, "/type") {
        Some(t) if t.eq_ignore_ascii_case("MMS") => Channel::Mms,
        Some(t) if t.eq_ignore_ascii_case("SMS") => Channel::Sms,
        _ if items.is_empty() => Channel::Sms,
        _ => Channel::Mms,
    };
    let text = str_at(payload, "/text").unwrap_or_default();
    let body = match str_at(payload, "/subject").map(str::trim) {
        Some(subject) if !subject.is_empty() => format!("{subject}\n{text}"),
        _ => text.to_owned(),
    };
    Ok(Inbound {
        carrier: CARRIER.name(),
        carrier_message_id: id,
        from,
        to,
        channel,
        body: Zeroizing::new(body),
        media: items,
    })
}

fn parse_status(payload: &Value) -> Result<StatusUpdate, PayloadError> {
    let id = id_field(str_at(payload, "/id"), "data.payload.id")?;
    let word = word_field(str_at(payload, "/to/0/status"), "data.payload.to[0].status")?;
    let error_code = code_field(
        code_at(payload, "/errors/0/code").as_deref(),
        "data.payload.errors[0].code",
    )?;
    Ok(StatusUpdate {
        carrier_message_id: id,
        status: CARRIER.profile().map_status(&word),
        carrier_status: word,
        error_code,
    })
}

/// The Ed25519 check with only the public key (base64), as `drawbridge webhook verify --secret`
/// has it.
#[must_use]
pub fn verify_with_secret(
    public_key: &SecretString,
    request: &WebhookRequest,
    now: DateTime<Utc>,
) -> Verification {
    match signature::decode_public_key(public_key.expose_secret()) {
        Ok(key) => signature::check(&key, request, now),
        Err(e) => Verification::new(
            false,
            signature::SCHEME,
            vec![format!(
                "the public key given {e}: use the base64 Ed25519 public key from the Telnyx portal"
            )],
        ),
    }
}

/// `200 {"data": {"id": "…", "to": [{"status": "queued"}]}}`, or
/// `{"errors": [{"code": "40300", …}]}`.
#[must_use]
pub fn parse_send_reply(reply: &HttpReply) -> SendResult {
    let json = reply.json();
    if reply.is_success() {
        let id = json.as_ref().and_then(|j| str_at(j, "/data/id"));
        let word = json.as_ref().and_then(|j| str_at(j, "/data/to/0/status"));
        return accepted(CARRIER, id, word);
    }
    if reply.status == 504 {
        return SendResult::Uncertain("gateway_timeout");
    }
    let code = json.as_ref().and_then(|j| code_at(j, "/errors/0/code"));
    if code.as_deref() == Some("10008") {
        // "Request timeout": Telnyx gave up answering, not necessarily processing.
        return SendResult::Uncertain("carrier_request_timeout");
    }
    SendResult::Rejected(SendError::classified(CARRIER, reply, code))
}

/// `{"data": [{"record_type": "message_detail_record", "uuid", "delivery_status_webhook_url", …}]}`.
///
/// # Errors
/// When Telnyx refused the lookup or the reply is not a listing.
pub fn parse_lookup_reply(reply: &HttpReply) -> Result<Vec<Candidate>, SendError> {
    let json = reply.json();
    if !reply.is_success() {
        let code = json.as_ref().and_then(|j| code_at(j, "/errors/0/code"));
        return Err(SendError::classified(CARRIER, reply, code));
    }
    let records = json
        .as_ref()
        .and_then(|j| j.get("data"))
        .and_then(Value::as_array)
        .ok_or_else(|| SendError::local(ErrorClass::Transient, "lookup_unreadable"))?;
    Ok(records
        .iter()
        .filter(|r| str_at(r, "/direction").is_none_or(|d| d == "outbound"))
        .filter_map(|r| {
            let id = id_field(str_at(r, "/uuid"), "uuid").ok()?;
            Some(Candidate {
                carrier_message_id: id,
                client_reference: str_at(r, "/delivery_status_webhook_url").and_then(outbox_id_of),
                body: None,
            })
        })
        .collect())
}

/// A UUID (version 4, 122 random bits), as Telnyx message and event ids are.
#[must_use]
pub fn new_message_id() -> String {
    uuid::Builder::from_random_bytes(rand::random::<[u8; 16]>())
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::E164;

    const SEED_B64: &str = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";

    fn fixture(name: &str) -> WebhookRequest {
        let path = format!("{}/carriers/telnyx/{name}", env!("CARGO_MANIFEST_DIR"));
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        WebhookRequest::new(
            Method::Post,
            "https://sms.example.com/webhooks/telnyx",
            [(
                "Content-Type".to_owned(),
                "application/json; charset=utf-8".to_owned(),
            )],
            body,
        )
    }

    fn reply_fixture(name: &str, status: u16) -> HttpReply {
        let path = format!("{}/carriers/telnyx/{name}", env!("CARGO_MANIFEST_DIR"));
        HttpReply::new(
            status,
            std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        )
    }

    fn one(events: Vec<Event>) -> Event {
        let mut events = events;
        assert_eq!(events.len(), 1);
        events.pop().unwrap_or_else(|| panic!("no event"))
    }

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn account() -> Account {
        Account::from_config(
            &table(&format!(
                "api_key = \"KEY0123456789ABCDEF0123456789ABCDEF_test\"\n\
                 public_key = \"{}\"\n\
                 api_base = \"http://127.0.0.1:9/telnyx\"\n",
                signature::RFC8032_TEST_PUBLIC_KEY
            )),
            Mode::Development,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn inbound_sms_fixture() {
        let request = fixture("inbound-sms.json");
        let to = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hint(&request, Route::Inbound), Ok(Some(to.clone())));
        let Event::Message(m) =
            one(parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}")))
        else {
            panic!("not a message")
        };
        assert_eq!(m.carrier, "telnyx");
        assert_eq!(m.carrier_message_id, "84cca175-9755-4859-b67f-4730d7f58aa3");
        assert_eq!(m.from.as_str(), "+15551234567");
        assert_eq!(m.to, to);
        assert_eq!(m.channel, Channel::Sms);
        assert_eq!(
            m.body.as_str(),
            "Hi, is my appointment still on for Tuesday?"
        );
        assert!(m.media.is_empty());
    }

    #[test]
    fn inbound_mms_fixture() {
        let Event::Message(m) =
            one(parse(&fixture("inbound-mms.json"), Route::Status)
                .unwrap_or_else(|e| panic!("{e}")))
        else {
            panic!("not a message")
        };
        assert_eq!(m.channel, Channel::Mms);
        assert_eq!(m.body.as_str(), "Here is the photo of the damage");
        assert_eq!(m.media.len(), 2);
        let first = m.media.first().unwrap_or_else(|| panic!("media"));
        assert_eq!(
            first.url,
            "https://media.telnyx.example/6e3a1b8e-77c4-4e1f-9e51-0d1f3a6b2c11.jpg"
        );
        assert_eq!(first.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(first.size, Some(48210));
    }

    #[test]
    fn keyword_and_other_events() {
        let Event::Message(m) = one(parse(&fixture("inbound-stop-keyword.json"), Route::Inbound)
            .unwrap_or_else(|e| panic!("{e}")))
        else {
            panic!("not a message")
        };
        assert_eq!(m.body.as_str(), "STOP");
        // An event type this module has no use for (a hypothetical future one).
        let other = json_request(
            r#"{"data":{"event_type":"message.unknown_future_event","id":"e1","payload":{}},"meta":{}}"#,
        );
        assert_eq!(hint(&other, Route::Inbound), Ok(None));
        assert!(matches!(
            one(parse(&other, Route::Inbound).unwrap_or_else(|e| panic!("{e}"))),
            Event::Ignored("unhandled_event")
        ));
    }

    #[test]
    fn status_fixtures() {
        let from = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
        for (name, word, ours, code) in [
            ("status-sent.json", "sent", Some("sent"), None),
            (
                "status-delivered.json",
                "delivered",
                Some("delivered"),
                None,
            ),
            (
                "status-failed-optout.json",
                "sending_failed",
                Some("failed"),
                Some("40300"),
            ),
        ] {
            let request = fixture(name);
            assert_eq!(
                hint(&request, Route::Status),
                Ok(Some(from.clone())),
                "{name}"
            );
            let Event::Status(s) =
                one(parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{name}: {e}")))
            else {
                panic!("{name}: not a status")
            };
            assert_eq!(s.carrier_message_id, "40385f64-5717-4562-b3fc-2c963f66afa6");
            assert_eq!(s.carrier_status, word, "{name}");
            assert_eq!(s.status, ours, "{name}");
            assert_eq!(s.error_code.as_deref(), code, "{name}");
        }
    }

    #[test]
    fn profile_maps_every_status_word() {
        let profile = CARRIER.profile();
        for (word, ours) in [
            ("queued", Some("queued")),
            ("sending", Some("queued")),
            ("sent", Some("sent")),
            ("delivered", Some("delivered")),
            ("sending_failed", Some("failed")),
            ("delivery_failed", Some("undelivered")),
            ("expired", Some("undelivered")),
            ("delivery_unconfirmed", None),
            ("webhook_delivered", None),
        ] {
            assert_eq!(profile.map_status(word), ours, "{word}");
        }
        assert_eq!(profile.resend, super::super::profile::Resend::Lookup);
    }

    fn json_request(body: &str) -> WebhookRequest {
        WebhookRequest::new(
            Method::Post,
            "https://x/webhooks/telnyx",
            [("Content-Type".to_owned(), "application/json".to_owned())],
            body.as_bytes().to_vec(),
        )
    }

    #[test]
    fn malformed_payloads_name_the_field() {
        let form = WebhookRequest::new(
            Method::Post,
            "https://x/webhooks/telnyx",
            [(
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            )],
            b"a=b".to_vec(),
        );
        assert_eq!(
            hint(&form, Route::Inbound),
            Err(PayloadError::ContentType("application/json"))
        );
        assert_eq!(
            parse(&json_request("[1]"), Route::Inbound).err(),
            Some(PayloadError::Body("a JSON object"))
        );
        assert_eq!(
            parse(&json_request(r#"{"data":{}}"#), Route::Inbound).err(),
            Some(PayloadError::Missing("data.event_type"))
        );
        assert_eq!(
            parse(
                &json_request(r#"{"data":{"event_type":"message.received"}}"#),
                Route::Inbound
            )
            .err(),
            Some(PayloadError::Missing("data.payload"))
        );
        let received = |payload: &str| {
            parse(
                &json_request(&format!(
                    r#"{{"data":{{"event_type":"message.received","payload":{payload}}}}}"#
                )),
                Route::Inbound,
            )
            .err()
        };
        assert_eq!(
            received(r#"{"from":{"phone_number":"+15551234567"}}"#),
            Some(PayloadError::Missing("data.payload.id"))
        );
        assert_eq!(
            received(r#"{"id":"a b","from":{"phone_number":"+15551234567"}}"#),
            Some(PayloadError::Invalid("data.payload.id"))
        );
        assert_eq!(
            received(r#"{"id":"m1","from":{"phone_number":"call me"},"to":[]}"#),
            Some(PayloadError::BadPhone("data.payload.from.phone_number"))
        );
        assert_eq!(
            received(r#"{"id":"m1","from":{"phone_number":"+15551234567"},"to":[]}"#),
            Some(PayloadError::Missing("data.payload.to[0].phone_number"))
        );
        assert_eq!(
            received(
                r#"{"id":"m1","from":{"phone_number":"+15551234567"},"to":[{"phone_number":"+15550001111"}],"media":[{"content_type":"image/png"}]}"#
            ),
            Some(PayloadError::Missing("data.payload.media[].url"))
        );
        let finalized = parse(
            &json_request(
                r#"{"data":{"event_type":"message.finalized","payload":{"id":"m1","to":[{"status":"delivered"}],"errors":[{"code":"not a code!"}]}}}"#,
            ),
            Route::Status,
        );
        assert_eq!(
            finalized.err(),
            Some(PayloadError::Invalid("data.payload.errors[0].code"))
        );
    }

    fn outbound<'a>(
        from: &'a BusinessAddress,
        to: &'a E164,
        channel: Channel,
        media: &'a [String],
    ) -> OutboundMessage<'a> {
        OutboundMessage {
            outbox_id: "0190d2c4-5b6a-7c00-8000-000000000001",
            from,
            to,
            channel,
            body: "Your claim was received",
            media_urls: media,
            suggestions: &[],
            status_callback: "https://sms.example.com/webhooks/telnyx/status",
        }
    }

    #[test]
    fn send_request_shape() {
        let from = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
        let to = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let call = account()
            .build_send(&outbound(&from, &to, Channel::Sms, &[]), None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(call.method, Method::Post);
        assert_eq!(call.url.as_str(), "http://127.0.0.1:9/telnyx/v2/messages");
        assert_eq!(
            call.header_value("authorization"),
            Some("Bearer KEY0123456789ABCDEF0123456789ABCDEF_test")
        );
        assert_eq!(call.header_value("idempotency-key"), None);
        let body: Value = serde_json::from_str(call.body_text()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            body,
            json!({
                "from": "+15550001111",
                "to": "+15551234567",
                "text": "Your claim was received",
                "webhook_url": "https://sms.example.com/webhooks/telnyx/status?drawbridge_outbox=0190d2c4-5b6a-7c00-8000-000000000001",
                "use_profile_webhooks": true,
            })
        );
        assert_eq!(
            body.get("webhook_url")
                .and_then(Value::as_str)
                .and_then(outbox_id_of)
                .as_deref(),
            Some("0190d2c4-5b6a-7c00-8000-000000000001")
        );
    }

    #[test]
    fn send_mms_short_code_profile_and_refusals() {
        let mut account = account();
        account.messaging_profile_id = Some("740572b6-099c-44a1-89b9-6c92163bc68d".to_owned());
        let short = BusinessAddress::parse("55500").unwrap_or_else(|e| panic!("{e}"));
        let to = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let media = ["https://media.example/a.jpg".to_owned()];
        let call = account
            .build_send(&outbound(&short, &to, Channel::Mms, &media), None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let body: Value = serde_json::from_str(call.body_text()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body.get("from"), Some(&json!("55500")));
        assert_eq!(
            body.get("media_urls"),
            Some(&json!(["https://media.example/a.jpg"]))
        );
        assert_eq!(
            body.get("messaging_profile_id"),
            Some(&json!("740572b6-099c-44a1-89b9-6c92163bc68d"))
        );
        let agent =
            BusinessAddress::rcs_agent("drawbridge-test-agent").unwrap_or_else(|e| panic!("{e}"));
        let refused = account.build_send(&outbound(&agent, &to, Channel::Rcs, &[]), None);
        assert_eq!(
            refused.err().and_then(|e| e.code),
            Some("telnyx_rcs_not_supported".to_owned())
        );
        let number = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
        let mut bad = outbound(&number, &to, Channel::Sms, &[]);
        bad.status_callback = "not a url";
        assert_eq!(
            account.build_send(&bad, None).err().and_then(|e| e.code),
            Some("bad_status_callback".to_owned())
        );
    }

    #[test]
    fn send_replies_are_classified() {
        assert_eq!(
            parse_send_reply(&reply_fixture("send-accepted.json", 200)),
            SendResult::Accepted {
                carrier_message_id: "40385f64-5717-4562-b3fc-2c963f66afa6".to_owned(),
                status: Some("queued"),
            }
        );
        let class = |reply: HttpReply| match parse_send_reply(&reply) {
            SendResult::Rejected(e) => Some((e.class, e.code)),
            _ => None,
        };
        assert_eq!(
            class(reply_fixture("send-error-optout.json", 409)),
            Some((ErrorClass::OptedOut, Some("40300".to_owned())))
        );
        assert_eq!(
            class(reply_fixture("send-error-throttled.json", 429)),
            Some((ErrorClass::Throttled, Some("10011".to_owned())))
        );
        assert_eq!(
            class(HttpReply::new(
                422,
                r#"{"errors":[{"code":"10016","title":"Phone number must be in +E.164 format"}]}"#
            )),
            Some((ErrorClass::InvalidNumber, Some("10016".to_owned())))
        );
        assert_eq!(
            class(HttpReply::new(
                401,
                r#"{"errors":[{"code":"10009","title":"Authentication failed"}]}"#
            )),
            Some((ErrorClass::Permanent, Some("10009".to_owned())))
        );
        assert_eq!(
            class(HttpReply::new(500, "<html>oops</html>")),
            Some((ErrorClass::Transient, None))
        );
        assert_eq!(
            class(HttpReply::new(429, "")),
            Some((ErrorClass::Throttled, None))
        );
        assert_eq!(
            parse_send_reply(&HttpReply::new(504, "")),
            SendResult::Uncertain("gateway_timeout")
        );
        assert_eq!(
            parse_send_reply(&HttpReply::new(
                408,
                r#"{"errors":[{"code":"10008","title":"Request timeout"}]}"#
            )),
            SendResult::Uncertain("carrier_request_timeout")
        );
        assert_eq!(
            parse_send_reply(&HttpReply::new(200, r#"{"data":{}}"#)),
            SendResult::Uncertain("accepted_without_id")
        );
    }

    #[test]
    fn lookup_lists_detail_records() {
        let from = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
        let to = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let since = DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timezone(&Utc);
        let call = account()
            .build_lookup(
                &LookupQuery {
                    outbox_id: "o",
                    from: &from,
                    to: &to,
                    since,
                },
                None,
            )
            .unwrap_or_else(|| panic!("no lookup"));
        assert_eq!(call.method, Method::Get);
        assert_eq!(
            call.url.as_str(),
            "http://127.0.0.1:9/telnyx/v2/detail_records?filter%5Brecord_type%5D=messaging&filter%5Bdirection%5D=outbound&filter%5Bcld%5D=%2B15551234567&filter%5Bcli%5D=%2B15550001111&filter%5Bcreated_at%5D%5Bgte%5D=2026-11-27&sort=-created_at&page%5Bsize%5D=50"
        );
        assert!(call
            .header_value("authorization")
            .is_some_and(|v| v.starts_with("Bearer KEY")));
        let found = parse_lookup_reply(&reply_fixture("lookup-detail-records.json", 200))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(found.len(), 2);
        let ours = found.first().unwrap_or_else(|| panic!("candidate"));
        assert_eq!(
            ours.carrier_message_id,
            "40385f64-5717-4562-b3fc-2c963f66afa6"
        );
        assert_eq!(
            ours.client_reference.as_deref(),
            Some("0190d2c4-5b6a-7c00-8000-000000000001")
        );
        assert!(ours.body.is_none());
        assert_eq!(found.get(1).and_then(|c| c.client_reference.clone()), None);
        let refused = parse_lookup_reply(&HttpReply::new(
            401,
            r#"{"errors":[{"code":"10009","title":"Authentication failed"}]}"#,
        ));
        assert_eq!(refused.err().map(|e| e.class), Some(ErrorClass::Permanent));
        assert!(parse_lookup_reply(&HttpReply::new(200, "{}")).is_err());
    }

    #[test]
    fn simulated_webhooks_verify_and_parse() {
        let account = account();
        let from = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let to = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
        let now = Utc::now();
        let keys = SimulationKeys {
            now,
            signing_key: Some(SecretString::from(SEED_B64.to_owned())),
        };
        let photo = [media(
            "https://media.example/p.jpg",
            Some("image/jpeg"),
            Some(10),
            None,
        )];
        let url = "https://sms.example.com/webhooks/telnyx";
        let request = account
            .simulate_inbound(
                url,
                &SimulatedInbound {
                    message_id: "84cca175-9755-4859-b67f-4730d7f58aa3",
                    from: &from,
                    to: &to,
                    body: "hello ✓",
                    media: &photo,
                },
                &keys,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(account.verify(&request, now).valid);
        assert!(
            verify_with_secret(
                &SecretString::from(signature::RFC8032_TEST_PUBLIC_KEY.to_owned()),
                &request,
                now
            )
            .valid
        );
        assert_eq!(hint(&request, Route::Inbound), Ok(Some(to.clone())));
        let Event::Message(m) =
            one(parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}")))
        else {
            panic!("not a message")
        };
        assert_eq!(m.body.as_str(), "hello ✓");
        assert_eq!(m.carrier_message_id, "84cca175-9755-4859-b67f-4730d7f58aa3");
        assert_eq!(m.channel, Channel::Mms);
        assert_eq!(m.media, photo.to_vec());
        assert_eq!(m.from, from);

        let status = account
            .simulate_status(
                &format!("{url}/status"),
                &SimulatedStatus {
                    carrier_message_id: "40385f64-5717-4562-b3fc-2c963f66afa6",
                    status: "sending_failed",
                    error_code: Some("40300"),
                    from: &to,
                    to: &from,
                },
                &keys,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(account.verify(&status, now).valid);
        assert_eq!(hint(&status, Route::Status), Ok(Some(to.clone())));
        let Event::Status(s) = one(parse(&status, Route::Status).unwrap_or_else(|e| panic!("{e}")))
        else {
            panic!("not a status")
        };
        assert_eq!(s.status, Some("failed"));
        assert_eq!(s.error_code.as_deref(), Some("40300"));

        // Ten minutes later the same request is stale.
        assert!(
            !account
                .verify(&request, now + chrono::Duration::minutes(10))
                .valid
        );
        // Without a signing key the simulation says what is missing.
        let unsigned = account.simulate_inbound(
            url,
            &SimulatedInbound {
                message_id: "m",
                from: &from,
                to: &to,
                body: "x",
                media: &[],
            },
            &SimulationKeys {
                now,
                signing_key: None,
            },
        );
        assert!(unsigned.is_err_and(|e| e.contains("signing key")));
        // A forged body fails with the same headers.
        let forged = WebhookRequest::new(
            Method::Post,
            url,
            request.headers().map(|(n, v)| (n.to_owned(), v.to_owned())),
            request.body.iter().copied().chain(*b" ").collect(),
        );
        assert!(!account.verify(&forged, now).valid);
    }

    #[test]
    fn account_keys_are_checked() {
        let good_key = "api_key = \"KEY0123456789ABCDEF0123456789ABCDEF_abcdefghijklmnopqrstuv\"\n";
        let err = |text: &str, mode: Mode| Account::from_config(&table(text), mode).err();
        assert!(err(
            &format!("{good_key}public_key = \"AAAA\""),
            Mode::Development
        )
        .is_some_and(|e| e.starts_with("`public_key`") && e.contains("3 bytes")));
        assert!(err(
            &format!(
                "{good_key}public_key = \"{}\"",
                signature::RFC8032_TEST_PUBLIC_KEY
            ),
            Mode::Production
        )
        .is_some_and(|e| e.contains("RFC 8032")));
        let other_key = "PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=";
        assert!(err(
            &format!("{good_key}public_key = \"{other_key}\""),
            Mode::Production
        )
        .is_none());
        assert!(err(
            &format!("api_key = \"changeme\"\npublic_key = \"{other_key}\""),
            Mode::Production
        )
        .is_some_and(|e| e.starts_with("`api_key`") && !e.contains("changeme")));
        assert!(err(
            &format!(
                "{good_key}public_key = \"{other_key}\"\nmessaging_profile_id = \"profile-1\""
            ),
            Mode::Development
        )
        .is_some_and(|e| e.starts_with("`messaging_profile_id`")));
        assert!(err(
            &format!("{good_key}public_key = \"{other_key}\"\ncolour = \"blue\""),
            Mode::Development
        )
        .is_some_and(|e| e.contains("colour")));
        let account = account();
        assert_eq!(
            account.secrets(),
            vec!["KEY0123456789ABCDEF0123456789ABCDEF_test"]
        );
        assert!(!format!("{account:?}").contains("KEY0123"));
        assert_eq!(account.api_base().as_str(), "http://127.0.0.1:9/telnyx");
        let default = Account::from_config(
            &table(&format!("{good_key}public_key = \"{other_key}\"")),
            Mode::Development,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(default.api_base().as_str(), "https://api.telnyx.com/");
    }

    #[test]
    fn message_ids_look_like_telnyx_uuids() {
        let id = new_message_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.get(14..15), Some("4"));
        assert!(uuid::Uuid::try_parse(&id).is_ok());
        assert_ne!(id, new_message_id());
    }
}
