//! Sinch SMS REST API ("XMS"): SMS and MMS callbacks signed with HMAC-SHA256, and the batches API
//! (`shared/reference/carriers.md` §7, vectors §12.5; developers.sinch.com SMS API reference
//! "Batches", "Webhooks", "Delivery reports", "Status codes"; models from sinch/sinch-sdk-python
//! `sinch/domains/sms/models/v1/`).
//!
//! # Account keys (`[[accounts]]` with `carrier = "sinch"`)
//!
//! | key | | |
//! |---|---|---|
//! | `service_plan_id` | required | the service plan (letters and digits; 32 in production), part of every API path |
//! | `api_token` | required, secret | the service plan's API token, sent as `Authorization: Bearer` |
//! | `webhook_secret` | required, secret | the HMAC secret Sinch signs callbacks with |
//! | `region` | optional | `us` (default), `eu`, `au`, `br` or `ca`: the API base `https://{region}.sms.api.sinch.com` |
//! | `api_base` | optional | overrides the region's base (tests point it at the fake) |
//!
//! # Callbacks
//!
//! A service plan has one callback URL for inbound messages and delivery reports (a batch's
//! `callback_url` overrides it for that batch's reports), so both routes parse every kind. JSON,
//! told apart by `type` (sinch-sdk-python `sms_sinch_event.py`):
//!
//! - `mo_text` → [`Event::Message`] (SMS): `id`, `from` (the customer, digits without `+`), `to`
//!   (our number or short code), `body`.
//! - `mo_media` → [`Event::Message`] (MMS): `body.message`, preceded by `body.subject` on its own
//!   line when there is one (it is the customer's text too), and `body.media[]` (`url`,
//!   `content_type`). Items without a URL (status `Failed`: Sinch could not store them) are left
//!   out: there is nothing to fetch.
//! - `mo_binary` → [`Event::Ignored`] (`binary_sms`). Its `body` is base64 of 8-bit data addressed
//!   by the `udh` header (ports, SIM or WAP messages made by software, not typed by a person). It
//!   is not text, so there is nothing to redact, show an agent or answer; storing the bytes would
//!   keep data no one can read. Sinch's own records keep it.
//! - `delivery_report_sms`/`_mms` (a batch report: `statuses[]` with `status`, `code`, `count`)
//!   and `recipient_delivery_report_sms`/`_mms` (`status`, `code` for one recipient) →
//!   [`Event::Status`] keyed by `batch_id`: we send one recipient per batch, so the batch id is
//!   the message id. Status words (`Delivered`, `Aborted`, …) are matched case-insensitively; the
//!   numeric `code` becomes the error code unless it is 0 (delivered), 400 (queued) or 401
//!   (dispatched), which describe progress rather than a failure.
//! - anything else → [`Event::Ignored`] (`unhandled_event`).
//!
//! [`hint`] names our sender from `to` for inbound messages; delivery reports name none (their
//! `recipient` is the customer), so every Sinch account is tried.
//!
//! Authenticity is [`signature`]: `x-sinch-webhook-signature` = base64(HMAC-SHA256(secret,
//! `body.nonce.timestamp`)) with a 24-hour timestamp window (why: see that module). Sinch can
//! also provision Basic, OAuth 2.0 or mTLS callbacks; Drawbridge requires the HMAC signature.
//!
//! # Sending
//!
//! `POST {api_base}/xms/v1/{service_plan_id}/batches`, `Authorization: Bearer {api_token}`, JSON
//! `from` and `to: [one]` (digits without `+`, as Sinch writes them), `body` (the text),
//! `delivery_report: "per_recipient"`, `callback_url` (our status URL), `client_reference` (our
//! outbox id). With one media URL the batch is `type: "mt_media"` with
//! `body: {"url", "message"}`; Sinch MMS takes one file, so more are refused locally, as are RCS
//! senders. The reply (`201`) is the batch, its `id` our message id. Refusals are
//! `{"code": "syntax_constraint_violation", "text": "…"}` (400) or
//! `{"code": "illegal_number_type", …}` (403); codes are mapped in `carriers/sinch.toml`.
//! Opt-outs are not refused at send: a toll-free recipient who texted STOP gets a delivery report
//! with code 257 ("User opted out (STOP)"), which the profile maps to `opted_out`.
//!
//! # Resolving an uncertain send: `lookup`
//!
//! Sinch has no idempotency key for batches, but its List Batches operation filters by the client
//! reference we sent (`GET /xms/v1/{plan}/batches?client_reference=…&from=…&start_date=…`,
//! batches of the last 14 days; developers.sinch.com `listbatches`, sinch-sdk-python
//! `list_batches_request.py`). A listed batch carrying our outbox id is ours, with its text.
//! Cancelled batches are not listed as candidates: they were never sent.

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

const CARRIER: Carrier = Carrier::Sinch;

/// The regions of the SMS API (`https://{region}.sms.api.sinch.com`).
pub const REGIONS: [&str; 5] = ["us", "eu", "au", "br", "ca"];

/// A Sinch service plan.
#[derive(Debug, Clone)]
pub struct Account {
    /// Part of every API path.
    pub service_plan_id: String,
    /// `Authorization: Bearer`.
    pub api_token: SecretString,
    /// Verifies `x-sinch-webhook-signature`.
    pub webhook_secret: SecretString,
    pub region: &'static str,
    pub api_base: url::Url,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    service_plan_id: String,
    api_token: SecretString,
    webhook_secret: SecretString,
    region: Option<String>,
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

impl Account {
    /// Reads `service_plan_id`, `api_token`, `webhook_secret`, `region` and `api_base`.
    ///
    /// # Errors
    /// A message naming the key at fault. In production a service plan id that is not 32 letters
    /// and digits, an API token shorter than 20 characters, a webhook secret shorter than 16, or
    /// either that looks like a placeholder, is refused: a guessable webhook secret lets anyone
    /// forge inbound messages.
    pub fn from_config(fields: &toml::Table, mode: Mode) -> Result<Self, String> {
        let raw: Raw = account_fields(fields, &["api_token", "webhook_secret"])?;
        let plan = raw.service_plan_id.trim();
        if plan.is_empty() || plan.len() > 64 || !plan.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(
                "`service_plan_id`: a Sinch service plan id is letters and digits (32 of them)"
                    .to_owned(),
            );
        }
        if mode == Mode::Production && plan.len() != 32 {
            return Err(format!(
                "`service_plan_id`: has {} characters; Sinch service plan ids have 32",
                plan.len()
            ));
        }
        let token = raw.api_token.expose_secret().trim();
        if token.is_empty() {
            return Err("`api_token`: must not be empty".to_owned());
        }
        if mode == Mode::Production && (token.len() < 20 || placeholder(token)) {
            return Err(
                "`api_token`: does not look like a Sinch API token (too short or a placeholder; \
                 value not shown)"
                    .to_owned(),
            );
        }
        let secret = raw.webhook_secret.expose_secret().trim();
        if secret.is_empty() {
            return Err("`webhook_secret`: must not be empty".to_owned());
        }
        if mode == Mode::Production && (secret.len() < 16 || placeholder(secret)) {
            return Err(
                "`webhook_secret`: too short or a placeholder (at least 16 characters; value not \
                 shown): it is all that stops forged inbound messages"
                    .to_owned(),
            );
        }
        let region = match raw.region.as_deref().map(str::trim) {
            None => "us",
            Some(given) => REGIONS
                .into_iter()
                .find(|r| r.eq_ignore_ascii_case(given))
                .ok_or_else(|| {
                    format!(
                        "`region`: `{given}` is not one of {} (the SMS API regions)",
                        REGIONS.join(", ")
                    )
                })?,
        };
        let configured = match (raw.api_base, region) {
            (Some(base), _) => Some(base),
            (None, "us") => None,
            (None, region) => Some(format!("https://{region}.sms.api.sinch.com")),
        };
        Ok(Self {
            service_plan_id: plan.to_owned(),
            api_token: raw.api_token,
            webhook_secret: raw.webhook_secret,
            region,
            api_base: super::api_base(CARRIER, configured.as_deref())?,
        })
    }

    #[must_use]
    pub fn api_base(&self) -> &url::Url {
        &self.api_base
    }

    /// The HMAC check with this account's webhook secret.
    #[must_use]
    pub fn verify(&self, request: &WebhookRequest, now: DateTime<Utc>) -> Verification {
        signature::check(&self.webhook_secret, request, now)
    }

    fn batches_url(&self) -> Result<url::Url, SendError> {
        endpoint(
            &self.api_base,
            &format!("/xms/v1/{}/batches", self.service_plan_id),
        )
    }

    /// `POST {api_base}/xms/v1/{service_plan_id}/batches`.
    ///
    /// # Errors
    /// RCS (channel or agent sender); more than one media URL (Sinch MMS carries one file).
    pub fn build_send(
        &self,
        message: &OutboundMessage<'_>,
        _token: Option<&str>,
    ) -> Result<HttpCall, SendError> {
        if message.channel == Channel::Rcs || matches!(message.from, BusinessAddress::RcsAgent(_)) {
            return Err(SendError::local(
                ErrorClass::Permanent,
                "sinch_rcs_not_supported",
            ));
        }
        let text = message.text_with_fallbacks();
        let mut body = serde_json::Map::new();
        body.insert("from".to_owned(), json!(message.from.digits()));
        body.insert("to".to_owned(), json!([message.to.digits()]));
        match message.media_urls {
            [] => {
                body.insert("body".to_owned(), json!(text));
            }
            [url] => {
                let mut media_body = serde_json::Map::new();
                media_body.insert("url".to_owned(), json!(url));
                if !text.is_empty() {
                    media_body.insert("message".to_owned(), json!(text));
                }
                body.insert("type".to_owned(), json!("mt_media"));
                body.insert("body".to_owned(), Value::Object(media_body));
            }
            _ => {
                return Err(SendError::local(
                    ErrorClass::Permanent,
                    "sinch_one_media_per_mms",
                ))
            }
        }
        body.insert("delivery_report".to_owned(), json!("per_recipient"));
        body.insert("callback_url".to_owned(), json!(message.status_callback));
        body.insert("client_reference".to_owned(), json!(message.outbox_id));
        Ok(HttpCall::new(Method::Post, self.batches_url()?)
            .bearer(self.api_token.expose_secret())
            .json(&Value::Object(body)))
    }

    /// `GET {api_base}/xms/v1/{service_plan_id}/batches?client_reference=…&from=…&start_date=…`.
    #[must_use]
    pub fn build_lookup(&self, query: &LookupQuery<'_>, _token: Option<&str>) -> Option<HttpCall> {
        if matches!(query.from, BusinessAddress::RcsAgent(_)) {
            return None;
        }
        let mut url = self.batches_url().ok()?;
        url.query_pairs_mut()
            .append_pair("client_reference", query.outbox_id)
            .append_pair("from", query.from.digits())
            .append_pair(
                "start_date",
                &query.since.to_rfc3339_opts(SecondsFormat::Millis, true),
            )
            .append_pair("page", "0")
            .append_pair("page_size", "100");
        Some(HttpCall::new(Method::Get, url).bearer(self.api_token.expose_secret()))
    }

    /// A signed `mo_text` (no media) or `mo_media` callback, shaped as Sinch sends one.
    ///
    /// # Errors
    /// For an RCS agent recipient (Sinch SMS has none).
    pub fn simulate_inbound(
        &self,
        url: &str,
        message: &SimulatedInbound<'_>,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        let to = sinch_address(message.to)?;
        let received_at = keys.now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let event = if message.media.is_empty() {
            json!({
                "type": "mo_text",
                "id": message.message_id,
                "from": message.from.digits(),
                "to": to,
                "body": message.body,
                "operator_id": "310260",
                "received_at": received_at,
            })
        } else {
            let items: Vec<Value> = message
                .media
                .iter()
                .map(|m| {
                    json!({
                        "url": m.url,
                        "content_type": m.content_type.as_deref().unwrap_or("application/octet-stream"),
                        "status": "Uploaded",
                        "code": 0,
                    })
                })
                .collect();
            json!({
                "type": "mo_media",
                "id": message.message_id,
                "from": message.from.digits(),
                "to": to,
                "body": {"message": message.body, "media": items},
                "operator_id": "310260",
                "received_at": received_at,
            })
        };
        Ok(self.signed(url, &event, keys))
    }

    /// A signed `recipient_delivery_report_sms` for a batch we sent (`code` is the error code,
    /// or 0).
    ///
    /// # Errors
    /// For an RCS agent sender, or an error code that is not a number (Sinch's codes are).
    pub fn simulate_status(
        &self,
        url: &str,
        status: &SimulatedStatus<'_>,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        sinch_address(status.from)?;
        let code: u32 = match status.error_code {
            None => 0,
            Some(code) => code
                .trim()
                .parse()
                .map_err(|_| format!("Sinch delivery report codes are numbers, not `{code}`"))?,
        };
        let at = keys.now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let event = json!({
            "type": "recipient_delivery_report_sms",
            "batch_id": status.carrier_message_id,
            "recipient": status.to.digits(),
            "code": code,
            "status": status.status,
            "at": at,
            "operator_status_at": keys.now.to_rfc3339_opts(SecondsFormat::Secs, true),
        });
        Ok(self.signed(url, &event, keys))
    }

    fn signed(&self, url: &str, event: &Value, keys: &SimulationKeys) -> WebhookRequest {
        let body = serde_json::to_vec(event).unwrap_or_default();
        let nonce = new_message_id();
        let timestamp = keys.now.timestamp().to_string();
        let sig = signature::sign(&self.webhook_secret, &body, &nonce, &timestamp);
        WebhookRequest::new(
            Method::Post,
            url,
            [
                ("Content-Type".to_owned(), "application/json".to_owned()),
                (signature::SIGNATURE_HEADER.to_owned(), sig),
                (signature::NONCE_HEADER.to_owned(), nonce),
                (signature::TIMESTAMP_HEADER.to_owned(), timestamp),
            ],
            body,
        )
    }

    #[must_use]
    pub fn secrets(&self) -> Vec<String> {
        vec![
            self.api_token.expose_secret().to_owned(),
            self.webhook_secret.expose_secret().to_owned(),
        ]
    }
}

/// How Sinch writes one of our senders: digits without `+`, or the short code.
fn sinch_address(address: &BusinessAddress) -> Result<&str, String> {
    match address {
        BusinessAddress::RcsAgent(_) => Err("Sinch SMS has no RCS agent addresses".to_owned()),
        other => Ok(other.digits()),
    }
}

fn event_type(json: &Value) -> Result<&str, PayloadError> {
    str_at(json, "/type")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(PayloadError::Missing("type"))
}

/// Which of our senders the callback concerns: `to` of an inbound message; none for delivery
/// reports (they name only the recipient) or other kinds.
///
/// # Errors
/// [`PayloadError::ContentType`] for anything but JSON; other [`PayloadError`]s when the body or
/// `to` is unreadable.
pub fn hint(
    request: &WebhookRequest,
    _route: Route,
) -> Result<Option<BusinessAddress>, PayloadError> {
    let json = body_json(request)?;
    match event_type(&json)? {
        "mo_text" | "mo_media" | "mo_binary" => {
            business_field(str_at(&json, "/to"), "to").map(Some)
        }
        _ => Ok(None),
    }
}

/// Parses an authenticated callback (either route: Sinch sends everything to one URL).
///
/// # Errors
/// [`PayloadError`] naming the first missing or malformed field.
pub fn parse(request: &WebhookRequest, _route: Route) -> Result<Vec<Event>, PayloadError> {
    let json = body_json(request)?;
    match event_type(&json)? {
        "mo_text" => Ok(vec![Event::Message(parse_inbound(&json, false)?)]),
        "mo_media" => Ok(vec![Event::Message(parse_inbound(&json, true)?)]),
        "mo_binary" => Ok(vec![Event::Ignored("binary_sms")]),
        "recipient_delivery_report_sms" | "recipient_delivery_report_mms" => {
            let batch = id_field(str_at(&json, "/batch_id"), "batch_id")?;
            Ok(vec![Event::Status(status_update(
                batch, &json, "status", "code",
            )?)])
        }
        "delivery_report_sms" | "delivery_report_mms" => {
            let batch = id_field(str_at(&json, "/batch_id"), "batch_id")?;
            let statuses = json
                .get("statuses")
                .and_then(Value::as_array)
                .filter(|s| !s.is_empty())
                .ok_or(PayloadError::Missing("statuses"))?;
            statuses
                .iter()
                .map(|entry| {
                    status_update(batch.clone(), entry, "statuses[].status", "statuses[].code")
                        .map(Event::Status)
                })
                .collect()
        }
        _ => Ok(vec![Event::Ignored("unhandled_event")]),
    }
}

fn parse_inbound(json: &Value, with_media: bool) -> Result<Inbound, PayloadError> {
    let id = id_field(str_at(json, "/id"), "id")?;
    let from = phone_field(str_at(json, "/from"), "from")?;
    let to = business_field(str_at(json, "/to"), "to")?;
    let (body, items) = if with_media {
        let body = json
            .get("body")
            .filter(|b| b.is_object())
            .ok_or(PayloadError::Missing("body"))?;
        let message = str_at(body, "/message").unwrap_or_default();
        let text = match str_at(body, "/subject").map(str::trim) {
            Some(subject) if !subject.is_empty() => format!("{subject}\n{message}"),
            _ => message.to_owned(),
        };
        let items = match body.get("media") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| {
                    let url = str_at(item, "/url").filter(|u| !u.trim().is_empty())?;
                    Some(media(url, str_at(item, "/content_type"), None, None))
                })
                .collect(),
            Some(_) => return Err(PayloadError::Invalid("body.media")),
        };
        (text, items)
    } else {
        let text = str_at(json, "/body").ok_or(PayloadError::Missing("body"))?;
        (text.to_owned(), Vec::new())
    };
    Ok(Inbound {
        carrier: CARRIER.name(),
        carrier_message_id: id,
        from,
        to,
        channel: if with_media {
            Channel::Mms
        } else {
            Channel::Sms
        },
        body: Zeroizing::new(body),
        media: items,
    })
}

/// A status for `batch` from an object with a status word and a numeric code.
fn status_update(
    batch: String,
    entry: &Value,
    status_field: &'static str,
    code_name: &'static str,
) -> Result<StatusUpdate, PayloadError> {
    let word = word_field(entry.get("status").and_then(Value::as_str), status_field)?;
    let code = code_at(entry, "/code").filter(|c| !matches!(c.as_str(), "0" | "400" | "401"));
    let error_code = code_field(code.as_deref(), code_name)?;
    Ok(StatusUpdate {
        carrier_message_id: batch,
        status: CARRIER.profile().map_status(&word),
        carrier_status: word,
        error_code,
    })
}

/// The HMAC check with only the webhook secret, as `drawbridge webhook verify --secret` has it.
#[must_use]
pub fn verify_with_secret(
    secret: &SecretString,
    request: &WebhookRequest,
    now: DateTime<Utc>,
) -> Verification {
    signature::check(secret, request, now)
}

/// `201` with the batch (`id`), or `{"code": "…", "text": "…"}`.
#[must_use]
pub fn parse_send_reply(reply: &HttpReply) -> SendResult {
    let json = reply.json();
    if reply.is_success() {
        return accepted(CARRIER, json.as_ref().and_then(|j| str_at(j, "/id")), None);
    }
    if reply.status == 504 {
        return SendResult::Uncertain("gateway_timeout");
    }
    let code = json.as_ref().and_then(|j| code_at(j, "/code"));
    SendResult::Rejected(SendError::classified(CARRIER, reply, code))
}

/// `{"count", "page", "page_size", "batches": [{"id", "client_reference", "body", "canceled", …}]}`.
///
/// # Errors
/// When Sinch refused the lookup or the reply is not a listing.
pub fn parse_lookup_reply(reply: &HttpReply) -> Result<Vec<Candidate>, SendError> {
    let json = reply.json();
    if !reply.is_success() {
        let code = json.as_ref().and_then(|j| code_at(j, "/code"));
        return Err(SendError::classified(CARRIER, reply, code));
    }
    let batches = json
        .as_ref()
        .and_then(|j| j.get("batches"))
        .and_then(Value::as_array)
        .ok_or_else(|| SendError::local(ErrorClass::Transient, "lookup_unreadable"))?;
    Ok(batches
        .iter()
        .filter(|b| b.get("canceled").and_then(Value::as_bool) != Some(true))
        .filter_map(|b| {
            let id = id_field(str_at(b, "/id"), "id").ok()?;
            let text = str_at(b, "/body").or_else(|| str_at(b, "/body/message"));
            Some(Candidate {
                carrier_message_id: id,
                client_reference: str_at(b, "/client_reference")
                    .filter(|r| super::check_token(r, 128))
                    .map(str::to_owned),
                body: text.map(|t| Zeroizing::new(t.to_owned())),
            })
        })
        .collect())
}

/// Crockford base32 digits, as in ULIDs.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A 26-character ULID-shaped id like Sinch's (`01FC66621XXXXX119Z8PMV1QPQ`): 48 bits of
/// milliseconds since 1970, then 80 random bits, in Crockford base32.
#[must_use]
pub fn new_message_id() -> String {
    let millis = u128::try_from(Utc::now().timestamp_millis()).unwrap_or(0) & ((1 << 48) - 1);
    let mut random = [0_u8; 16];
    random[6..].copy_from_slice(&rand::random::<[u8; 10]>());
    let value = (millis << 80) | u128::from_be_bytes(random);
    (0..26)
        .rev()
        .map(|i| {
            let digit = usize::try_from((value >> (i * 5)) & 31).unwrap_or(0);
            char::from(CROCKFORD.get(digit).copied().unwrap_or(b'0'))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::E164;

    const PLAN: &str = "9f3b2c1d4e5f60718293a4b5c6d7e8f9";
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";
    const SECRET: &str = "KayakingTheSwell";

    fn fixture(name: &str) -> WebhookRequest {
        let path = format!("{}/carriers/sinch/{name}", env!("CARGO_MANIFEST_DIR"));
        WebhookRequest::new(
            Method::Post,
            "https://sms.example.com/webhooks/sinch",
            [("Content-Type".to_owned(), "application/json".to_owned())],
            std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        )
    }

    fn reply_fixture(name: &str, status: u16) -> HttpReply {
        let path = format!("{}/carriers/sinch/{name}", env!("CARGO_MANIFEST_DIR"));
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

    fn keys_toml() -> String {
        format!(
            "service_plan_id = \"{PLAN}\"\napi_token = \"{TOKEN}\"\nwebhook_secret = \"{SECRET}\"\n"
        )
    }

    fn account() -> Account {
        Account::from_config(
            &table(&format!(
                "{}api_base = \"http://127.0.0.1:9/sinch\"\n",
                keys_toml()
            )),
            Mode::Development,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn ours() -> BusinessAddress {
        BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn inbound_sms_fixture() {
        let request = fixture("inbound-sms.json");
        assert_eq!(hint(&request, Route::Inbound), Ok(Some(ours())));
        let Event::Message(m) =
            one(parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}")))
        else {
            panic!("not a message")
        };
        assert_eq!(m.carrier, "sinch");
        assert_eq!(m.carrier_message_id, "01JDN3ZQ1V8X4K2M7R5T9W6YBC");
        assert_eq!(m.from.as_str(), "+15551234567");
        assert_eq!(m.to, ours());
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
        assert_eq!(
            m.body.as_str(),
            "Claim 4471\nHere is the photo of the damage"
        );
        assert_eq!(
            m.media
                .iter()
                .map(|i| (i.url.as_str(), i.content_type.as_deref()))
                .collect::<Vec<_>>(),
            [
                (
                    "https://mms.sinch.example/media/01JDN41F7C2XH9QW3E5R8T6Y4M/0.jpg",
                    Some("image/jpeg")
                ),
                (
                    "https://mms.sinch.example/media/01JDN41F7C2XH9QW3E5R8T6Y4M/1.smil",
                    Some("application/smil")
                ),
            ]
        );
    }

    #[test]
    fn binary_sms_is_acknowledged_not_stored() {
        let request = fixture("inbound-binary.json");
        assert_eq!(hint(&request, Route::Inbound), Ok(Some(ours())));
        assert!(matches!(
            one(parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}"))),
            Event::Ignored("binary_sms")
        ));
    }

    #[test]
    fn delivery_report_fixtures() {
        for (name, word, status, code) in [
            (
                "status-delivered.json",
                "Delivered",
                Some("delivered"),
                None,
            ),
            (
                "status-failed-optout.json",
                "Deleted",
                Some("undelivered"),
                Some("257"),
            ),
            (
                "status-aborted.json",
                "Aborted",
                Some("failed"),
                Some("412"),
            ),
            (
                "delivery-report-batch.json",
                "Delivered",
                Some("delivered"),
                None,
            ),
        ] {
            let request = fixture(name);
            assert_eq!(hint(&request, Route::Status), Ok(None), "{name}");
            let Event::Status(s) =
                one(parse(&request, Route::Status).unwrap_or_else(|e| panic!("{name}: {e}")))
            else {
                panic!("{name}: not a status")
            };
            assert_eq!(s.carrier_message_id, "01FC66621XXXXX119Z8PMV1QPQ", "{name}");
            assert_eq!(s.carrier_status, word, "{name}");
            assert_eq!(s.status, status, "{name}");
            assert_eq!(s.error_code.as_deref(), code, "{name}");
        }
        assert_eq!(
            CARRIER.profile().error_class("257"),
            Some(ErrorClass::OptedOut)
        );
    }

    #[test]
    fn profile_maps_every_status_word() {
        let profile = CARRIER.profile();
        for (word, ours) in [
            ("Queued", Some("queued")),
            ("Dispatched", Some("sent")),
            ("Delivered", Some("delivered")),
            ("DELIVERED", Some("delivered")),
            ("Failed", Some("undelivered")),
            ("Expired", Some("undelivered")),
            ("Deleted", Some("undelivered")),
            ("Aborted", Some("failed")),
            ("Cancelled", Some("failed")),
            ("Rejected", Some("failed")),
            ("Unknown", None),
        ] {
            assert_eq!(profile.map_status(word), ours, "{word}");
        }
        assert_eq!(profile.resend, super::super::profile::Resend::Lookup);
    }

    fn json_request(body: &str) -> WebhookRequest {
        WebhookRequest::new(
            Method::Post,
            "https://x/webhooks/sinch",
            [("Content-Type".to_owned(), "application/json".to_owned())],
            body.as_bytes().to_vec(),
        )
    }

    #[test]
    fn malformed_payloads_name_the_field() {
        let form = WebhookRequest::new(
            Method::Post,
            "https://x/webhooks/sinch",
            [("Content-Type".to_owned(), "text/plain".to_owned())],
            b"{}".to_vec(),
        );
        assert_eq!(
            parse(&form, Route::Inbound).err(),
            Some(PayloadError::ContentType("application/json"))
        );
        let err = |body: &str| parse(&json_request(body), Route::Inbound).err();
        assert_eq!(err("nope"), Some(PayloadError::Body("a JSON object")));
        assert_eq!(err(r#"{"id":"x"}"#), Some(PayloadError::Missing("type")));
        assert_eq!(
            err(r#"{"type":"mo_text","from":"15551234567","to":"15550001111","body":"x"}"#),
            Some(PayloadError::Missing("id"))
        );
        assert_eq!(
            err(r#"{"type":"mo_text","id":"M1","from":"hello","to":"15550001111","body":"x"}"#),
            Some(PayloadError::BadPhone("from"))
        );
        assert_eq!(
            err(r#"{"type":"mo_text","id":"M1","from":"15551234567","body":"x"}"#),
            Some(PayloadError::Missing("to"))
        );
        assert_eq!(
            err(r#"{"type":"mo_text","id":"M1","from":"15551234567","to":"15550001111"}"#),
            Some(PayloadError::Missing("body"))
        );
        assert_eq!(
            err(
                r#"{"type":"mo_media","id":"M1","from":"15551234567","to":"15550001111","body":"x"}"#
            ),
            Some(PayloadError::Missing("body"))
        );
        assert_eq!(
            err(r#"{"type":"recipient_delivery_report_sms","code":0,"status":"Delivered"}"#),
            Some(PayloadError::Missing("batch_id"))
        );
        assert_eq!(
            err(r#"{"type":"recipient_delivery_report_sms","batch_id":"B1","code":0}"#),
            Some(PayloadError::Missing("status"))
        );
        assert_eq!(
            err(
                r#"{"type":"recipient_delivery_report_sms","batch_id":"B1","status":"Failed","code":"no code"}"#
            ),
            Some(PayloadError::Invalid("code"))
        );
        assert_eq!(
            err(r#"{"type":"delivery_report_sms","batch_id":"B1","statuses":[]}"#),
            Some(PayloadError::Missing("statuses"))
        );
        assert_eq!(
            err(
                r#"{"type":"delivery_report_sms","batch_id":"B1","statuses":[{"code":0,"count":1}]}"#
            ),
            Some(PayloadError::Missing("statuses[].status"))
        );
        // A media item Sinch could not store has no URL: left out, not an error.
        let Some(Ok(Event::Message(m))) = parse(
            &json_request(
                r#"{"type":"mo_media","id":"M1","from":"15551234567","to":"15550001111","body":{"message":"pic","media":[{"content_type":"image/png","status":"Failed","code":1}]}}"#,
            ),
            Route::Inbound,
        )
        .map(|mut e| e.pop())
        .transpose() else {
            panic!("not a message")
        };
        assert!(m.media.is_empty());
        assert!(matches!(
            parse(&json_request(r#"{"type":"mt_future"}"#), Route::Inbound).map(one),
            Ok(Event::Ignored("unhandled_event"))
        ));
    }

    fn outbound<'a>(
        from: &'a BusinessAddress,
        to: &'a E164,
        media: &'a [String],
    ) -> OutboundMessage<'a> {
        OutboundMessage {
            outbox_id: "0190d2c4-5b6a-7c00-8000-000000000001",
            from,
            to,
            channel: if media.is_empty() {
                Channel::Sms
            } else {
                Channel::Mms
            },
            body: "Your claim was received",
            media_urls: media,
            suggestions: &[],
            status_callback: "https://sms.example.com/webhooks/sinch/status",
        }
    }

    #[test]
    fn send_request_shape() {
        let to = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let from = ours();
        let call = account()
            .build_send(&outbound(&from, &to, &[]), None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(call.method, Method::Post);
        assert_eq!(
            call.url.as_str(),
            format!("http://127.0.0.1:9/sinch/xms/v1/{PLAN}/batches")
        );
        assert_eq!(
            call.header_value("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        let body: Value = serde_json::from_str(call.body_text()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            body,
            json!({
                "from": "15550001111",
                "to": ["15551234567"],
                "body": "Your claim was received",
                "delivery_report": "per_recipient",
                "callback_url": "https://sms.example.com/webhooks/sinch/status",
                "client_reference": "0190d2c4-5b6a-7c00-8000-000000000001",
            })
        );
    }

    #[test]
    fn send_mms_short_code_and_refusals() {
        let to = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let short = BusinessAddress::parse("55500").unwrap_or_else(|e| panic!("{e}"));
        let one_file = ["https://media.example/a.jpg".to_owned()];
        let call = account()
            .build_send(&outbound(&short, &to, &one_file), None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let body: Value = serde_json::from_str(call.body_text()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body.get("from"), Some(&json!("55500")));
        assert_eq!(body.get("type"), Some(&json!("mt_media")));
        assert_eq!(
            body.get("body"),
            Some(
                &json!({"url": "https://media.example/a.jpg", "message": "Your claim was received"})
            )
        );
        let two_files = [
            "https://media.example/a.jpg".to_owned(),
            "https://media.example/b.jpg".to_owned(),
        ];
        let code = |message: &OutboundMessage<'_>| {
            account()
                .build_send(message, None)
                .err()
                .and_then(|e| e.code)
        };
        assert_eq!(
            code(&outbound(&short, &to, &two_files)),
            Some("sinch_one_media_per_mms".to_owned())
        );
        let agent =
            BusinessAddress::rcs_agent("drawbridge-test-agent").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            code(&outbound(&agent, &to, &[])),
            Some("sinch_rcs_not_supported".to_owned())
        );
    }

    #[test]
    fn send_replies_are_classified() {
        assert_eq!(
            parse_send_reply(&reply_fixture("send-accepted.json", 201)),
            SendResult::Accepted {
                carrier_message_id: "01FC66621XXXXX119Z8PMV1QPQ".to_owned(),
                status: None,
            }
        );
        let class = |reply: HttpReply| match parse_send_reply(&reply) {
            SendResult::Rejected(e) => Some((e.class, e.code)),
            _ => None,
        };
        assert_eq!(
            class(reply_fixture("send-error-forbidden.json", 403)),
            Some((
                ErrorClass::InvalidNumber,
                Some("illegal_number_type".to_owned())
            ))
        );
        assert_eq!(
            class(reply_fixture("send-error-invalid.json", 400)),
            Some((
                ErrorClass::Permanent,
                Some("syntax_invalid_parameter_format".to_owned())
            ))
        );
        assert_eq!(
            class(HttpReply::new(
                403,
                r#"{"code":"blocked_account","text":"Account blocked"}"#
            )),
            Some((ErrorClass::Permanent, Some("blocked_account".to_owned())))
        );
        assert_eq!(
            class(HttpReply::new(429, "")),
            Some((ErrorClass::Throttled, None))
        );
        assert_eq!(
            class(HttpReply::new(503, "Service Unavailable")),
            Some((ErrorClass::Transient, None))
        );
        assert_eq!(
            class(HttpReply::new(401, "")),
            Some((ErrorClass::Permanent, None))
        );
        assert_eq!(
            parse_send_reply(&HttpReply::new(504, "")),
            SendResult::Uncertain("gateway_timeout")
        );
        assert_eq!(
            parse_send_reply(&HttpReply::new(201, r#"{"to":["15551234567"]}"#)),
            SendResult::Uncertain("accepted_without_id")
        );
    }

    #[test]
    fn lookup_lists_batches_by_client_reference() {
        let to = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let from = ours();
        let since = DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timezone(&Utc);
        let call = account()
            .build_lookup(
                &LookupQuery {
                    outbox_id: "0190d2c4-5b6a-7c00-8000-000000000001",
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
            format!(
                "http://127.0.0.1:9/sinch/xms/v1/{PLAN}/batches?client_reference=0190d2c4-5b6a-7c00-8000-000000000001&from=15550001111&start_date=2026-11-27T10%3A00%3A00.000Z&page=0&page_size=100"
            )
        );
        assert_eq!(
            call.header_value("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        let found = parse_lookup_reply(&reply_fixture("lookup-batches.json", 200))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(found.len(), 1);
        let ours = found.first().unwrap_or_else(|| panic!("candidate"));
        assert_eq!(ours.carrier_message_id, "01FC66621XXXXX119Z8PMV1QPQ");
        assert_eq!(
            ours.client_reference.as_deref(),
            Some("0190d2c4-5b6a-7c00-8000-000000000001")
        );
        assert_eq!(
            ours.body.as_deref().map(String::as_str),
            Some("Your claim 4471 was received. Reply STOP to opt out.")
        );
        let listing = HttpReply::new(
            200,
            r#"{"count":2,"page":0,"page_size":2,"batches":[
                {"id":"01JDN4X4Y9ZQ0V1R5W8E3K6M2P","canceled":true,"client_reference":"r","body":"x"},
                {"id":"01JDN4X4Y9ZQ0V1R5W8E3K6M2Q","type":"mt_media","body":{"url":"https://m/a.jpg","message":"pic"}}]}"#,
        );
        let found = parse_lookup_reply(&listing).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(found.len(), 1);
        assert_eq!(
            found
                .first()
                .and_then(|c| c.body.as_deref().map(String::as_str)),
            Some("pic")
        );
        assert!(parse_lookup_reply(&HttpReply::new(
            403,
            r#"{"code":"blocked_account","text":"x"}"#
        ))
        .is_err());
        assert!(parse_lookup_reply(&HttpReply::new(200, "[]")).is_err());
    }

    #[test]
    fn simulated_callbacks_verify_and_parse() {
        let account = account();
        let customer = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let now = Utc::now();
        let keys = SimulationKeys {
            now,
            signing_key: None,
        };
        let url = "https://sms.example.com/webhooks/sinch";
        for media_items in [
            Vec::new(),
            vec![media(
                "https://media.example/p.jpg",
                Some("image/jpeg"),
                None,
                None,
            )],
        ] {
            let request = account
                .simulate_inbound(
                    url,
                    &SimulatedInbound {
                        message_id: "01JDN3ZQ1V8X4K2M7R5T9W6YBC",
                        from: &customer,
                        to: &ours(),
                        body: "Hello ✓",
                        media: &media_items,
                    },
                    &keys,
                )
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(account.verify(&request, now).valid);
            assert!(
                verify_with_secret(&SecretString::from(SECRET.to_owned()), &request, now).valid
            );
            assert_eq!(hint(&request, Route::Inbound), Ok(Some(ours())));
            let Event::Message(m) =
                one(parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}")))
            else {
                panic!("not a message")
            };
            assert_eq!(m.body.as_str(), "Hello ✓");
            assert_eq!(m.carrier_message_id, "01JDN3ZQ1V8X4K2M7R5T9W6YBC");
            assert_eq!(m.from, customer);
            assert_eq!(m.media, media_items);
            assert_eq!(
                m.channel,
                if media_items.is_empty() {
                    Channel::Sms
                } else {
                    Channel::Mms
                }
            );
        }
        let status = account
            .simulate_status(
                &format!("{url}/status"),
                &SimulatedStatus {
                    carrier_message_id: "01FC66621XXXXX119Z8PMV1QPQ",
                    status: "Deleted",
                    error_code: Some("257"),
                    from: &ours(),
                    to: &customer,
                },
                &keys,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(account.verify(&status, now).valid);
        let Event::Status(s) = one(parse(&status, Route::Status).unwrap_or_else(|e| panic!("{e}")))
        else {
            panic!("not a status")
        };
        assert_eq!(s.carrier_message_id, "01FC66621XXXXX119Z8PMV1QPQ");
        assert_eq!(s.status, Some("undelivered"));
        assert_eq!(s.error_code.as_deref(), Some("257"));
        // Another secret, or a day and a bit later, does not verify.
        let other: Account = Account {
            webhook_secret: SecretString::from("another secret entirely".to_owned()),
            ..account.clone()
        };
        let verdict = other.verify(&status, now);
        assert!(!verdict.valid);
        assert!(verdict.details.iter().any(|d| d.starts_with("expected:")));
        assert!(
            !account
                .verify(&status, now + chrono::Duration::hours(25))
                .valid
        );
        assert!(account
            .simulate_status(
                url,
                &SimulatedStatus {
                    carrier_message_id: "B",
                    status: "Failed",
                    error_code: Some("E12"),
                    from: &ours(),
                    to: &customer,
                },
                &keys
            )
            .is_err());
    }

    #[test]
    fn account_keys_are_checked() {
        let err = |text: &str, mode: Mode| Account::from_config(&table(text), mode).err();
        assert!(err(&keys_toml(), Mode::Production).is_none());
        assert!(err(
            &format!("service_plan_id = \"plan/1\"\napi_token = \"{TOKEN}\"\nwebhook_secret = \"{SECRET}\""),
            Mode::Development
        )
        .is_some_and(|e| e.starts_with("`service_plan_id`")));
        assert!(err(
            &format!(
                "service_plan_id = \"abc\"\napi_token = \"{TOKEN}\"\nwebhook_secret = \"{SECRET}\""
            ),
            Mode::Production
        )
        .is_some_and(|e| e.starts_with("`service_plan_id`")));
        let short_secret = err(
            &format!("service_plan_id = \"{PLAN}\"\napi_token = \"{TOKEN}\"\nwebhook_secret = \"s3cr3t\""),
            Mode::Production,
        );
        assert!(short_secret
            .is_some_and(|e| e.starts_with("`webhook_secret`") && !e.contains("s3cr3t")));
        assert!(err(
            &format!("service_plan_id = \"{PLAN}\"\napi_token = \"your-api-token-goes-here\"\nwebhook_secret = \"{SECRET}\""),
            Mode::Production
        )
        .is_some_and(|e| e.starts_with("`api_token`") && !e.contains("your-api")));
        assert!(err(
            &format!(
                "service_plan_id = \"{PLAN}\"\napi_token = \"{TOKEN}\"\nwebhook_secret = \"replace-me-with-the-secret\""
            ),
            Mode::Production
        )
        .is_some_and(|e| e.starts_with("`webhook_secret`")));
        assert!(err(
            &format!("{}region = \"mars\"", keys_toml()),
            Mode::Development
        )
        .is_some_and(|e| e.starts_with("`region`")));
        assert!(err(
            &format!("{}colour = \"blue\"", keys_toml()),
            Mode::Development
        )
        .is_some_and(|e| e.contains("colour")));
        let base = |extra: &str| {
            Account::from_config(
                &table(&format!("{}{extra}", keys_toml())),
                Mode::Development,
            )
            .map(|a| a.api_base().as_str().to_owned())
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(base(""), "https://us.sms.api.sinch.com/");
        assert_eq!(base("region = \"EU\""), "https://eu.sms.api.sinch.com/");
        assert_eq!(
            base("region = \"au\"\napi_base = \"http://127.0.0.1:7\""),
            "http://127.0.0.1:7/"
        );
        let account = account();
        assert_eq!(account.secrets(), vec![TOKEN.to_owned(), SECRET.to_owned()]);
        let debug = format!("{account:?}");
        assert!(!debug.contains(TOKEN) && !debug.contains(SECRET), "{debug}");
    }

    #[test]
    fn message_ids_look_like_sinch_ids() {
        let id = new_message_id();
        assert_eq!(id.len(), 26);
        assert!(id.bytes().all(|b| CROCKFORD.contains(&b)), "{id}");
        assert!(id.starts_with('0'), "{id}");
        assert_ne!(id, new_message_id());
        // Time-ordered: the first ten characters are the milliseconds.
        assert!(id.get(..10) <= new_message_id().get(..10));
    }
}
