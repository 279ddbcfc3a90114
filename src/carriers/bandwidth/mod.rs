//! Bandwidth Messaging v2: SMS and MMS over one callback URL per messaging application, and the
//! Messages REST API (`shared/reference/carriers.md` §5; Bandwidth's archived `api-docs`
//! repository, `site/docs/messaging/webhooks.mdx`, `errors.mdx`, `rateLimits.mdx`; the Python
//! SDK's models `inbound_callback.py`, `status_callback.py`, `message_request.py` and
//! `api/messages_api.py`).
//!
//! # Account keys (`[[accounts]]` with `carrier = "bandwidth"`)
//!
//! | key | what |
//! |---|---|
//! | `account_id` | the Bandwidth account id (digits), in every API path |
//! | `application_id` | the messaging application (a UUID) whose callback URL points here; sent as `applicationId` |
//! | `username`, `password` | API credentials (HTTP Basic on the Messages API); `password` is a secret |
//! | `webhook_username`, `webhook_password` | the callback credentials set on the messaging application, which Bandwidth sends with every callback; `webhook_password` is a secret |
//! | `api_base` | default `https://messaging.bandwidth.com` (tests point it at the fake) |
//!
//! In production, passwords that are empty, shorter than 12 characters (the callback password) or
//! look like placeholders are refused: the callback password is the only thing that tells
//! Bandwidth's callbacks from anyone else's requests.
//!
//! # Webhooks
//!
//! Every callback is a JSON **array** of events, sent to the application's one URL; both of our
//! routes accept both kinds ([`parse`]).
//! - `message-received` → [`Event::Message`]: `message.id`, `message.from` (the customer), our
//!   number from the top-level `to` (the owned recipient; `message.owner` when absent), `text`,
//!   `media[]`. A group message arrives as one event, with its own id, per number of ours among
//!   the recipients, so each copy is stored against the number it reached. Media URLs point at
//!   Bandwidth's media API (downloadable with the API credentials for two days) and carry no
//!   content type: it is derived from the file name's extension where that is a known one.
//!   Messages from Bandwidth's multi-channel API (`message.channel` = `RBM`) are stored as RCS,
//!   with `content.text` when `text` is absent.
//! - `message-sending`, `message-sent`, `message-delivered`, `message-failed` (with `errorCode`),
//!   `message-read` → [`Event::Status`] keyed by `message.id`; the event type is the status word.
//! - Anything else (RBM `suggestion-response`, `request-location-response`, future types) →
//!   [`Event::Ignored`], answered 2xx so Bandwidth does not retry it for 24 hours.
//!
//! [`hint`] reads the first event: the top-level `to` (else `message.owner`) of a received
//! message; `message.from` of a status event. Bandwidth's examples disagree on `message.owner`
//! for outbound events (documented as the `from` number, shown as the recipient in the
//! `message-delivered` example), while `message.from` of an outbound message is always ours.
//!
//! # Authenticity
//!
//! HTTP Basic with the application's callback credentials; Bandwidth signs nothing
//! (carriers.md §5). User and password are both compared, as SHA-256 digests with
//! `subtle::ConstantTimeEq`, with no early exit. [`verify_with_secret`] takes `user:password`.
//! The details say which part did not match; no password, received or expected, is shown.
//!
//! # Sending
//!
//! `POST {api_base}/api/v2/users/{account_id}/messages`, Basic `username:password`, JSON
//! `applicationId`, `to` (one number), `from`, `text` (at most 2,048 characters, refused locally
//! beyond), `media` (URLs), `tag` = our outbox id. Bandwidth has no per-message callback URL:
//! status callbacks go to the application's URL. The reply is `202` with the message (`id`);
//! errors are `{"type", "description", "fieldErrors"}` (`429 max-message-queue-size-exceeded`).
//! An opted-out recipient is not refused by the API: the message is accepted and later reported
//! `message-failed` with `errorCode` 4775 (4482, 4470, 4770, 4720 and 4795 are related blocks;
//! the profile classifies each). RCS senders are refused locally: Bandwidth's RBM goes through a
//! different API.
//!
//! # Resolving an uncertain send: `lookup`
//!
//! The Messages API takes no idempotency key, so a resend could duplicate. Bandwidth's list
//! endpoint, `GET /api/v2/users/{accountId}/messages` (SDK `list_messages`), filters by
//! `sourceTn`, `destinationTn`, `messageDirection` and `fromDateTime` (ISO 8601, the time
//! Bandwidth received the message; 14-day window). Its items (`ListMessageItem`) carry
//! `messageId` and metadata but neither `tag` nor text: "Bandwidth does not store text message
//! content" (dev.bandwidth.com/docs/messaging/getMessage). So [`Account::build_lookup`] lists our
//! sender's outbound messages to the recipient since the attempt, and candidates carry neither
//! a client reference nor a body: the outbox takes one it has not recorded as ours.

use super::{
    accepted, account_fields, code_field, endpoint, id_field, media, word_field, Candidate,
    Carrier, ErrorClass, Event, HttpCall, HttpReply, LookupQuery, Method, OutboundMessage,
    PayloadError, Route, SendError, SendResult, SimulatedInbound, SimulatedStatus, SimulationKeys,
    StatusUpdate, Verification, WebhookRequest,
};
use crate::config::Mode;
use crate::phone::BusinessAddress;
use crate::pipeline::{Channel, Inbound, Media};
use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const CARRIER: Carrier = Carrier::Bandwidth;
const SCHEME: &str =
    "Authorization: Basic (the messaging application's callback user and password)";

/// The longest text the Messages API takes (`message_request.py`: `max_length=2048`).
const MAX_TEXT_CHARS: usize = 2048;

/// A Bandwidth account and the messaging application whose callbacks reach us.
#[derive(Debug, Clone)]
pub struct Account {
    /// Digits; the `{accountId}` of every API path.
    pub account_id: String,
    /// The messaging application (UUID): `applicationId` on every send; its callback URL and
    /// credentials are the webhook's.
    pub application_id: String,
    /// API user (HTTP Basic on the Messages API).
    pub username: String,
    pub password: SecretString,
    /// The callback user Bandwidth sends (the application's callback credentials).
    pub webhook_username: String,
    pub webhook_password: SecretString,
    pub api_base: url::Url,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    account_id: String,
    application_id: String,
    username: String,
    password: SecretString,
    webhook_username: String,
    webhook_password: SecretString,
    api_base: Option<String>,
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Values people leave in example configurations.
fn looks_like_placeholder(secret: &str) -> bool {
    let lower = secret.trim().to_ascii_lowercase();
    lower.is_empty()
        || ["replace", "changeme", "change-me", "placeholder", "example"]
            .iter()
            .any(|word| lower.contains(word))
        || matches!(lower.as_str(), "password" | "secret" | "xxx" | "test")
}

impl Account {
    /// Reads the keys listed in the module documentation.
    ///
    /// # Errors
    /// A message naming the key at fault, never a secret's value.
    pub fn from_config(fields: &toml::Table, mode: Mode) -> Result<Self, String> {
        let raw: Raw = account_fields(fields, &["password", "webhook_password"])?;
        let account_id = raw.account_id.trim().to_owned();
        if account_id.is_empty()
            || account_id.len() > 20
            || !account_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err("`account_id`: a Bandwidth account id is digits (`9900000`)".to_owned());
        }
        let application_id = raw.application_id.trim().to_owned();
        if !is_uuid(&application_id) {
            return Err(
                "`application_id`: a Bandwidth application id is a UUID (`93de2206-9669-4e07-948d-329f4b722ee2`)"
                    .to_owned(),
            );
        }
        if raw.username.trim().is_empty() {
            return Err("`username`: must not be empty".to_owned());
        }
        let webhook_username = raw.webhook_username.trim().to_owned();
        if webhook_username.is_empty() || webhook_username.contains(':') {
            return Err(
                "`webhook_username`: must not be empty or contain `:` (HTTP Basic user)".to_owned(),
            );
        }
        for (key, secret) in [
            ("password", &raw.password),
            ("webhook_password", &raw.webhook_password),
        ] {
            if secret.expose_secret().is_empty() {
                return Err(format!("`{key}`: must not be empty"));
            }
            if mode == Mode::Production && looks_like_placeholder(secret.expose_secret()) {
                return Err(format!(
                    "`{key}`: looks like a placeholder (value not shown); set the real credential"
                ));
            }
        }
        if mode == Mode::Production && raw.webhook_password.expose_secret().chars().count() < 12 {
            return Err(
                "`webhook_password`: at least 12 characters in production: it is all that authenticates Bandwidth's callbacks (value not shown)"
                    .to_owned(),
            );
        }
        Ok(Self {
            account_id,
            application_id,
            username: raw.username.trim().to_owned(),
            password: raw.password,
            webhook_username,
            webhook_password: raw.webhook_password,
            api_base: super::api_base(CARRIER, raw.api_base.as_deref())?,
        })
    }

    #[must_use]
    pub fn api_base(&self) -> &url::Url {
        &self.api_base
    }

    /// Checks the callback's Basic credentials against the application's.
    #[must_use]
    pub fn verify(&self, request: &WebhookRequest, _now: DateTime<Utc>) -> Verification {
        check_basic(
            request,
            &self.webhook_username,
            self.webhook_password.expose_secret(),
        )
    }

    fn messages_url(&self) -> Result<url::Url, SendError> {
        endpoint(
            &self.api_base,
            &format!("/api/v2/users/{}/messages", self.account_id),
        )
    }

    /// `POST /api/v2/users/{accountId}/messages`.
    ///
    /// # Errors
    /// RCS (another Bandwidth API), or a text longer than Bandwidth takes.
    pub fn build_send(
        &self,
        message: &OutboundMessage<'_>,
        _token: Option<&str>,
    ) -> Result<HttpCall, SendError> {
        if message.channel == Channel::Rcs || matches!(message.from, BusinessAddress::RcsAgent(_)) {
            return Err(SendError::local(ErrorClass::Permanent, "rcs_unsupported"));
        }
        let text = message.text_with_fallbacks();
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(SendError::local(ErrorClass::Permanent, "text_too_long"));
        }
        let mut body = json!({
            "applicationId": self.application_id,
            "to": [message.to.as_str()],
            "from": message.from.as_sender(),
            "text": text,
            "tag": message.outbox_id,
        });
        if !message.media_urls.is_empty() {
            if let Some(object) = body.as_object_mut() {
                object.insert("media".to_owned(), json!(message.media_urls));
            }
        }
        Ok(HttpCall::new(Method::Post, self.messages_url()?)
            .basic_auth(&self.username, self.password.expose_secret())
            .json(&body))
    }

    /// `GET /api/v2/users/{accountId}/messages?sourceTn=…&destinationTn=…&messageDirection=OUTBOUND&fromDateTime=…`.
    #[must_use]
    pub fn build_lookup(&self, query: &LookupQuery<'_>, _token: Option<&str>) -> Option<HttpCall> {
        if matches!(query.from, BusinessAddress::RcsAgent(_)) {
            return None;
        }
        let mut url = self.messages_url().ok()?;
        url.query_pairs_mut()
            .append_pair("sourceTn", query.from.as_sender())
            .append_pair("destinationTn", query.to.as_str())
            .append_pair("messageDirection", "OUTBOUND")
            .append_pair(
                "fromDateTime",
                &query.since.to_rfc3339_opts(SecondsFormat::Millis, true),
            )
            .append_pair("limit", "100");
        Some(
            HttpCall::new(Method::Get, url)
                .basic_auth(&self.username, self.password.expose_secret()),
        )
    }

    /// A `message-received` callback as Bandwidth sends it, with the application's credentials.
    ///
    /// # Errors
    /// Never for Bandwidth.
    pub fn simulate_inbound(
        &self,
        url: &str,
        message: &SimulatedInbound<'_>,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        let time = keys.now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let owner = message.to.as_sender();
        let mut inner = json!({
            "id": message.message_id,
            "owner": owner,
            "applicationId": self.application_id,
            "time": time,
            "segmentCount": 1,
            "direction": "in",
            "to": [owner],
            "from": message.from.as_str(),
            "text": message.body,
        });
        if !message.media.is_empty() {
            if let Some(object) = inner.as_object_mut() {
                object.insert(
                    "media".to_owned(),
                    message.media.iter().map(|m| m.url.as_str()).collect(),
                );
            }
        }
        let events = json!([{
            "type": "message-received",
            "time": time,
            "description": "Incoming message received",
            "to": owner,
            "message": inner,
        }]);
        Ok(self.callback(url, &events))
    }

    /// A status callback as Bandwidth sends it. `status` is the event type (`message-delivered`;
    /// a bare `delivered` is taken as `message-delivered`).
    ///
    /// # Errors
    /// Never for Bandwidth.
    pub fn simulate_status(
        &self,
        url: &str,
        status: &SimulatedStatus<'_>,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        let time = keys.now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let kind = if status.status.starts_with("message-") {
            status.status.to_owned()
        } else {
            format!("message-{}", status.status)
        };
        let description = match kind.as_str() {
            "message-sending" => "Message is sending to carrier",
            "message-delivered" => "ok",
            "message-failed" => "rejected",
            "message-read" => "Message read",
            _ => "Message sent",
        };
        let mut event = json!({
            "type": kind,
            "time": time,
            "description": description,
            "to": status.to.as_str(),
            "message": {
                "id": status.carrier_message_id,
                "owner": status.from.as_sender(),
                "applicationId": self.application_id,
                "time": time,
                "segmentCount": 1,
                "direction": "out",
                "to": [status.to.as_str()],
                "from": status.from.as_sender(),
                "text": "",
            },
        });
        if let (Some(code), Some(object)) = (status.error_code, event.as_object_mut()) {
            // `errorCode` is an integer in Bandwidth's callbacks.
            let value = code
                .trim()
                .parse::<i64>()
                .map_or_else(|_| json!(code), |n| json!(n));
            object.insert("errorCode".to_owned(), value);
        }
        if kind == "message-read" {
            if let Some(object) = event.as_object_mut() {
                object.insert("eventTime".to_owned(), json!(time));
            }
        }
        Ok(self.callback(url, &json!([event])))
    }

    fn callback(&self, url: &str, events: &Value) -> WebhookRequest {
        use base64::Engine;
        let credentials = Zeroizing::new(format!(
            "{}:{}",
            self.webhook_username,
            self.webhook_password.expose_secret()
        ));
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes());
        WebhookRequest::new(
            Method::Post,
            url,
            [
                (
                    "Content-Type".to_owned(),
                    "application/json; charset=utf-8".to_owned(),
                ),
                ("User-Agent".to_owned(), "BandwidthAPI/v2".to_owned()),
                ("Authorization".to_owned(), format!("Basic {encoded}")),
            ],
            serde_json::to_vec(events).unwrap_or_default(),
        )
    }

    #[must_use]
    pub fn secrets(&self) -> Vec<String> {
        vec![
            self.password.expose_secret().to_owned(),
            self.webhook_password.expose_secret().to_owned(),
        ]
    }
}

/// What the `Authorization` header holds, decoded.
enum BasicHeader {
    Missing,
    NotBasic,
    Malformed,
    Credentials(Zeroizing<String>, Zeroizing<String>),
}

fn basic_header(request: &WebhookRequest) -> BasicHeader {
    use base64::Engine;
    let Some(value) = request.header("authorization") else {
        return BasicHeader::Missing;
    };
    let value = value.trim();
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return BasicHeader::NotBasic;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return BasicHeader::NotBasic;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return BasicHeader::Malformed;
    };
    let decoded = Zeroizing::new(decoded);
    let Ok(text) = std::str::from_utf8(&decoded) else {
        return BasicHeader::Malformed;
    };
    match text.split_once(':') {
        Some((user, password)) => BasicHeader::Credentials(
            Zeroizing::new(user.to_owned()),
            Zeroizing::new(password.to_owned()),
        ),
        None => BasicHeader::Malformed,
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares the request's Basic credentials with `user` and `password`: both digests are
/// compared in constant time and combined without short-circuit.
fn check_basic(request: &WebhookRequest, user: &str, password: &str) -> Verification {
    let mut details = vec![format!("url:      {}", request.url)];
    let (received_user, received_password) = match basic_header(request) {
        BasicHeader::Credentials(u, p) => (u, p),
        BasicHeader::Missing => {
            details.push(
                "received: no Authorization header (set the callback user and password on the Bandwidth messaging application)"
                    .to_owned(),
            );
            return Verification::new(false, SCHEME, details);
        }
        BasicHeader::NotBasic => {
            details.push("received: an Authorization header that is not `Basic …`".to_owned());
            return Verification::new(false, SCHEME, details);
        }
        BasicHeader::Malformed => {
            details.push(
                "received: a Basic Authorization header that is not base64 of `user:password`"
                    .to_owned(),
            );
            return Verification::new(false, SCHEME, details);
        }
    };
    let user_ok = digest(received_user.as_bytes()).ct_eq(&digest(user.as_bytes()));
    let password_ok = digest(received_password.as_bytes()).ct_eq(&digest(password.as_bytes()));
    let valid: bool = (user_ok & password_ok).into();
    details.push(format!(
        "user:     received `{}`, expected `{user}`: {}",
        received_user.as_str(),
        if bool::from(user_ok) {
            "match"
        } else {
            "MISMATCH"
        }
    ));
    details.push(format!(
        "password: {} (neither value is shown)",
        if bool::from(password_ok) {
            "match"
        } else {
            "MISMATCH"
        }
    ));
    Verification::new(valid, SCHEME, details)
}

/// Checks a callback with `user:password`, the form `drawbridge webhook verify --secret` takes.
#[must_use]
pub fn verify_with_secret(
    secret: &SecretString,
    request: &WebhookRequest,
    _now: DateTime<Utc>,
) -> Verification {
    match secret.expose_secret().split_once(':') {
        Some((user, password)) => check_basic(request, user, password),
        None => Verification::new(
            false,
            SCHEME,
            vec!["the secret must be the callback credentials as `user:password`".to_owned()],
        ),
    }
}

/// The events of a callback: a JSON array (of objects, checked per event).
fn events(request: &WebhookRequest) -> Result<Vec<Value>, PayloadError> {
    if request.method != Method::Post {
        return Err(PayloadError::Body("a POST with a JSON array of events"));
    }
    if request.content_type() != "application/json" {
        return Err(PayloadError::ContentType("application/json"));
    }
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Array(events)) => Ok(events),
        _ => Err(PayloadError::Body("a JSON array of events")),
    }
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

const STATUS_TYPES: [&str; 5] = [
    "message-sending",
    "message-sent",
    "message-delivered",
    "message-failed",
    "message-read",
];

/// Our sender a callback concerns: from its first event, the top-level `to` (else
/// `message.owner`) of a received message, `message.from` (else `message.owner`) of a status;
/// `None` for an empty array, another event type, or a status whose sender is not an address.
///
/// # Errors
/// Not JSON (415/400), or the field naming our number is not one.
pub fn hint(
    request: &WebhookRequest,
    _route: Route,
) -> Result<Option<BusinessAddress>, PayloadError> {
    let events = events(request)?;
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let message = first.get("message").unwrap_or(&Value::Null);
    match text(first, "type") {
        Some("message-received") => our_number(first, message).map(Some),
        // Not an address of ours (an alphanumeric sender id): every account is tried rather
        // than the callback refused, which Bandwidth would retry for a day.
        Some(kind) if STATUS_TYPES.contains(&kind) => Ok(super::business_field(
            text(message, "from").or_else(|| text(message, "owner")),
            "message.from",
        )
        .ok()),
        _ => Ok(None),
    }
}

/// Our number on a received message: the top-level `to` (the owned recipient), else
/// `message.owner`; an RBM agent id when the message came through the multi-channel API.
fn our_number(event: &Value, message: &Value) -> Result<BusinessAddress, PayloadError> {
    let raw = text(event, "to")
        .filter(|t| !t.trim().is_empty())
        .or_else(|| text(message, "owner"));
    match super::business_field(raw, "to") {
        Ok(address) => Ok(address),
        Err(PayloadError::BadPhone(field)) if is_rbm(message) => raw
            .and_then(|r| BusinessAddress::rcs_agent(r).ok())
            .ok_or(PayloadError::BadPhone(field)),
        Err(e) => Err(e),
    }
}

fn is_rbm(message: &Value) -> bool {
    text(message, "channel").is_some_and(|c| c.eq_ignore_ascii_case("rbm"))
}

/// Parses an authenticated callback. Both routes take every event type, since Bandwidth sends
/// everything to the application's one URL.
///
/// # Errors
/// [`PayloadError`] naming the first missing or malformed field.
pub fn parse(request: &WebhookRequest, _route: Route) -> Result<Vec<Event>, PayloadError> {
    events(request)?
        .iter()
        .map(|event| {
            if !event.is_object() {
                return Err(PayloadError::Body("a JSON array of event objects"));
            }
            let kind = word_field(text(event, "type"), "type")?;
            match kind.as_str() {
                "message-received" => parse_received(event).map(Event::Message),
                k if STATUS_TYPES.contains(&k) => parse_status(event, kind).map(Event::Status),
                "suggestion-response" | "request-location-response" => {
                    Ok(Event::Ignored("rbm_response"))
                }
                _ => Ok(Event::Ignored("unhandled_event")),
            }
        })
        .collect()
}

fn parse_received(event: &Value) -> Result<Inbound, PayloadError> {
    let message = event
        .get("message")
        .filter(|m| m.is_object())
        .ok_or(PayloadError::Missing("message"))?;
    let id = id_field(text(message, "id"), "message.id")?;
    let from = super::phone_field(text(message, "from"), "message.from")?;
    let to = our_number(event, message)?;
    let content = message.get("content").unwrap_or(&Value::Null);
    let body = match message.get("text") {
        None | Some(Value::Null) => text(content, "text").unwrap_or_default(),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(PayloadError::Invalid("message.text")),
    };
    let mut items = match message.get("media") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(urls)) => urls
            .iter()
            .map(|url| {
                url.as_str()
                    .filter(|u| !u.trim().is_empty())
                    .map(media_item)
                    .ok_or(PayloadError::Invalid("message.media"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(PayloadError::Invalid("message.media")),
    };
    if let Some(file) = content.get("media").and_then(|m| text(m, "fileUrl")) {
        items.push(media_item(file));
    }
    let recipients = message
        .get("to")
        .and_then(Value::as_array)
        .map_or(1, Vec::len);
    let channel = if is_rbm(message) {
        Channel::Rcs
    } else if !items.is_empty() || recipients > 1 {
        // Group messages travel as MMS.
        Channel::Mms
    } else {
        Channel::Sms
    };
    Ok(Inbound {
        carrier: CARRIER.name(),
        carrier_message_id: id,
        from,
        to,
        channel,
        body: Zeroizing::new(body.to_owned()),
        media: items,
    })
}

/// A media reference with the content type its file name's extension implies (Bandwidth sends
/// only URLs: `…/media/{messageId}/{n}/{file name}`) and that file name.
fn media_item(url: &str) -> Media {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().filter(|n| n.contains('.'));
    let extension = name
        .and_then(|n| n.rsplit('.').next())
        .map(str::to_ascii_lowercase);
    let content_type = match extension.as_deref() {
        Some("jpg" | "jpeg") => Some("image/jpeg"),
        Some("png") => Some("image/png"),
        Some("gif") => Some("image/gif"),
        Some("bmp") => Some("image/bmp"),
        Some("webp") => Some("image/webp"),
        Some("heic") => Some("image/heic"),
        Some("mp4") => Some("video/mp4"),
        Some("3gp") => Some("video/3gpp"),
        Some("mov") => Some("video/quicktime"),
        Some("mp3") => Some("audio/mpeg"),
        Some("amr") => Some("audio/amr"),
        Some("m4a") => Some("audio/mp4"),
        Some("wav") => Some("audio/wav"),
        Some("txt") => Some("text/plain"),
        Some("vcf") => Some("text/vcard"),
        Some("smil") => Some("application/smil"),
        Some("pdf") => Some("application/pdf"),
        _ => None,
    };
    media(url, content_type, None, name)
}

fn parse_status(event: &Value, kind: String) -> Result<StatusUpdate, PayloadError> {
    let message = event
        .get("message")
        .filter(|m| m.is_object())
        .ok_or(PayloadError::Missing("message"))?;
    let id = id_field(text(message, "id"), "message.id")?;
    let code = match event.get("errorCode") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(PayloadError::Invalid("errorCode")),
    };
    // `0` means no error.
    let error_code =
        code_field(code.as_deref(), "errorCode")?.filter(|c| !c.trim_matches('0').is_empty());
    Ok(StatusUpdate {
        carrier_message_id: id,
        status: CARRIER.profile().map_status(&kind),
        carrier_status: kind,
        error_code,
    })
}

/// `202` with the message (`id`); errors `{"type", "description", "fieldErrors"}`.
#[must_use]
pub fn parse_send_reply(reply: &HttpReply) -> SendResult {
    let json = reply.json();
    if reply.is_success() {
        let id = json.as_ref().and_then(|j| text(j, "id"));
        return accepted(CARRIER, id, None);
    }
    if reply.status == 504 {
        return SendResult::Uncertain("gateway_timeout");
    }
    let code = json
        .as_ref()
        .and_then(|j| text(j, "type"))
        .map(str::to_owned);
    SendResult::Rejected(SendError::classified(CARRIER, reply, code))
}

/// `{"totalCount", "pageInfo", "messages": [{"messageId", "messageDirection", …}]}`: no text, no
/// tag.
///
/// # Errors
/// When Bandwidth refused the lookup or the reply is not a listing.
pub fn parse_lookup_reply(reply: &HttpReply) -> Result<Vec<Candidate>, SendError> {
    if !reply.is_success() {
        let code = reply
            .json()
            .as_ref()
            .and_then(|j| text(j, "type"))
            .map(str::to_owned);
        return Err(SendError::classified(CARRIER, reply, code));
    }
    let json = reply
        .json()
        .ok_or_else(|| SendError::local(ErrorClass::Transient, "lookup_unreadable"))?;
    let messages = json
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| SendError::local(ErrorClass::Transient, "lookup_unreadable"))?;
    Ok(messages
        .iter()
        .filter(|m| text(m, "messageDirection").is_none_or(|d| d.eq_ignore_ascii_case("outbound")))
        .filter_map(|m| {
            Some(Candidate {
                carrier_message_id: id_field(text(m, "messageId"), "messageId").ok()?,
                client_reference: None,
                body: None,
            })
        })
        .collect())
}

/// Like Bandwidth's ids (`14762070468292kw2fuqty55yp2b2`): the time in milliseconds (13
/// digits), then 16 random base-36 characters (about 82 bits).
#[must_use]
pub fn new_message_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let tail: String = (0..16)
        .map(|_| {
            let i = rng.gen_range(0..ALPHABET.len());
            ALPHABET.get(i).map_or('0', |&b| char::from(b))
        })
        .collect();
    format!("{}{tail}", Utc::now().timestamp_millis())
}

#[cfg(test)]
mod tests;
