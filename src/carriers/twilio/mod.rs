//! Twilio Programmable Messaging: SMS, MMS and RCS over one webhook, status callbacks, and the
//! Messages REST API (`shared/reference/carriers.md` §2).
//!
//! - **Inbound**: form POST (or GET, as configured) with `MessageSid`, `From`, `To`, `Body`,
//!   `NumMedia`, `MediaUrl{N}`/`MediaContentType{N}` (0-based). Twilio adds parameters without
//!   notice; unknown ones are ignored but still signed over ([`signature`]). RCS addresses arrive
//!   with an `rcs:` prefix.
//! - **Status**: `MessageSid`, `MessageStatus`, `ErrorCode`.
//! - **Send**: `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, Basic
//!   `AccountSid:AuthToken`, form `To`, `From` (or `MessagingServiceSid`), `Body`, `MediaUrl`
//!   (repeated), `StatusCallback`. The reply carries `sid` and `status`; errors carry `code`
//!   (21610: the recipient replied STOP).
//! - **Resolving an uncertain send**: Twilio has no idempotency key for messages, so the
//!   Messages list is read (`To`, `From`, `DateSent>`), and a message with our text that we have
//!   not recorded is ours.
//! - **RCS**: plain text through the same API (Twilio picks RCS for an RCS-capable Messaging
//!   Service); open-URL suggestions travel as text lines, since Twilio's rich cards need Content
//!   API templates.

pub mod signature;

use super::form::first;
use super::{
    accepted, account_fields, code_field, endpoint, id_field, media, word_field, Candidate,
    Carrier, ErrorClass, Event, HttpCall, HttpReply, LookupQuery, Method, OutboundMessage,
    PayloadError, Route, SendError, SendResult, SimulatedInbound, SimulatedStatus, SimulationKeys,
    StatusUpdate, Verification, WebhookRequest,
};
use crate::config::Mode;
use crate::phone::{BusinessAddress, E164};
use crate::pipeline::{Channel, Inbound};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

const CARRIER: Carrier = Carrier::Twilio;
const SCHEME: &str =
    "X-Twilio-Signature: base64 HMAC-SHA1(auth token, URL + sorted form parameters)";

/// A Twilio (sub-)account.
#[derive(Debug, Clone)]
pub struct Account {
    /// `AC…`: the (sub-)account that owns the numbers.
    pub account_sid: String,
    /// Signs Twilio's webhooks (HMAC-SHA1) and authenticates REST calls.
    pub auth_token: SecretString,
    /// `MG…`: send through this Messaging Service instead of `From` (needed for RCS senders).
    pub messaging_service_sid: Option<String>,
    pub api_base: url::Url,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    account_sid: String,
    auth_token: SecretString,
    messaging_service_sid: Option<String>,
    api_base: Option<String>,
}

fn is_sid(text: &str, prefix: &str) -> bool {
    text.starts_with(prefix) && text.len() == 34 && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Account {
    /// Reads `account_sid`, `auth_token`, `messaging_service_sid` and `api_base`.
    ///
    /// # Errors
    /// A message naming the key at fault. In production an auth token that is not 32 hexadecimal
    /// digits is refused: it is a placeholder, and would let anyone forge webhooks.
    pub fn from_config(fields: &toml::Table, mode: Mode) -> Result<Self, String> {
        let raw: Raw = account_fields(fields, &["auth_token"])?;
        if !is_sid(&raw.account_sid, "AC") {
            return Err(
                "`account_sid`: a Twilio account SID is `AC` followed by 32 letters or digits"
                    .to_owned(),
            );
        }
        let token = raw.auth_token.expose_secret();
        if token.trim().is_empty() {
            return Err("`auth_token`: must not be empty".to_owned());
        }
        if mode == Mode::Production
            && !(token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(
                "`auth_token`: a Twilio auth token is 32 hexadecimal digits (value not shown)"
                    .to_owned(),
            );
        }
        if let Some(sid) = &raw.messaging_service_sid {
            if !is_sid(sid, "MG") {
                return Err(
                    "`messaging_service_sid`: `MG` followed by 32 letters or digits".to_owned(),
                );
            }
        }
        Ok(Self {
            account_sid: raw.account_sid,
            auth_token: raw.auth_token,
            messaging_service_sid: raw.messaging_service_sid,
            api_base: super::api_base(CARRIER, raw.api_base.as_deref())?,
        })
    }

    #[must_use]
    pub fn api_base(&self) -> &url::Url {
        &self.api_base
    }

    #[must_use]
    pub fn verify(&self, request: &WebhookRequest, now: DateTime<Utc>) -> Verification {
        verify_with_secret(&self.auth_token, request, now)
    }

    fn messages_url(&self) -> Result<url::Url, SendError> {
        endpoint(
            &self.api_base,
            &format!("/2010-04-01/Accounts/{}/Messages.json", self.account_sid),
        )
    }

    /// `POST …/Messages.json`.
    ///
    /// # Errors
    /// An RCS agent sender without a Messaging Service.
    pub fn build_send(
        &self,
        message: &OutboundMessage<'_>,
        _token: Option<&str>,
    ) -> Result<HttpCall, SendError> {
        let text = message.text_with_fallbacks();
        let mut form: Vec<(&str, &str)> = vec![("To", message.to.as_str())];
        match (&self.messaging_service_sid, message.from) {
            (Some(service), _) => form.push(("MessagingServiceSid", service)),
            (None, BusinessAddress::RcsAgent(_)) => {
                return Err(SendError::local(
                    ErrorClass::Permanent,
                    "rcs_needs_messaging_service",
                ))
            }
            (None, from) => form.push(("From", from.as_sender())),
        }
        form.push(("Body", &text));
        for url in message.media_urls {
            form.push(("MediaUrl", url));
        }
        form.push(("StatusCallback", message.status_callback));
        Ok(HttpCall::new(Method::Post, self.messages_url()?)
            .basic_auth(&self.account_sid, self.auth_token.expose_secret())
            .form(&form))
    }

    /// `GET …/Messages.json?To=…&From=…&DateSent>=YYYY-MM-DD`.
    #[must_use]
    pub fn build_lookup(&self, query: &LookupQuery<'_>, _token: Option<&str>) -> Option<HttpCall> {
        let mut url = self.messages_url().ok()?;
        let from = match (&self.messaging_service_sid, query.from) {
            (None, from) | (Some(_), from @ BusinessAddress::Number(_)) => from.as_sender(),
            (Some(_), _) => return None,
        };
        url.query_pairs_mut()
            .append_pair("To", query.to.as_str())
            .append_pair("From", from)
            .append_pair("DateSent>", &query.since.format("%Y-%m-%d").to_string())
            .append_pair("PageSize", "100");
        Some(
            HttpCall::new(Method::Get, url)
                .basic_auth(&self.account_sid, self.auth_token.expose_secret()),
        )
    }

    /// A signed inbound webhook, shaped as Twilio sends one.
    ///
    /// # Errors
    /// Never for Twilio; the signature needs only the auth token.
    pub fn simulate_inbound(
        &self,
        url: &str,
        message: &SimulatedInbound<'_>,
        _keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        let num_media = message.media.len().to_string();
        let mut params: Vec<(String, String)> = [
            ("ToCountry", "US"),
            ("SmsMessageSid", message.message_id),
            ("NumMedia", &num_media),
            ("SmsSid", message.message_id),
            ("SmsStatus", "received"),
            ("Body", message.body),
            ("To", &message.to.key()),
            ("NumSegments", "1"),
            ("MessageSid", message.message_id),
            ("AccountSid", &self.account_sid),
            ("From", message.from.as_str()),
            ("ApiVersion", "2010-04-01"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (i, item) in message.media.iter().enumerate() {
            params.push((format!("MediaUrl{i}"), item.url.clone()));
            if let Some(content_type) = &item.content_type {
                params.push((format!("MediaContentType{i}"), content_type.clone()));
            }
        }
        Ok(self.signed_form(url, &params))
    }

    /// A signed status callback, shaped as Twilio sends one.
    ///
    /// # Errors
    /// Never for Twilio.
    pub fn simulate_status(
        &self,
        url: &str,
        status: &SimulatedStatus<'_>,
        _keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        let mut params: Vec<(String, String)> = [
            ("SmsSid", status.carrier_message_id),
            ("SmsStatus", status.status),
            ("MessageStatus", status.status),
            ("To", status.to.as_str()),
            ("MessageSid", status.carrier_message_id),
            ("AccountSid", &self.account_sid),
            ("From", &status.from.key()),
            ("ApiVersion", "2010-04-01"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let Some(code) = status.error_code {
            params.push(("ErrorCode".to_owned(), code.to_owned()));
        }
        Ok(self.signed_form(url, &params))
    }

    fn signed_form(&self, url: &str, params: &[(String, String)]) -> WebhookRequest {
        let sig = signature::sign(&self.auth_token, url, params);
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        WebhookRequest::new(
            Method::Post,
            url,
            [
                (
                    "Content-Type".to_owned(),
                    "application/x-www-form-urlencoded".to_owned(),
                ),
                ("X-Twilio-Signature".to_owned(), sig),
            ],
            super::form::encode(&pairs).into_bytes(),
        )
    }

    #[must_use]
    pub fn secrets(&self) -> Vec<String> {
        vec![self.auth_token.expose_secret().to_owned()]
    }
}

/// `X-Twilio-Signature` over the URL and the form parameters (POST), the URL alone (GET, whose
/// parameters are in it), or the URL with `bodySHA256` and the body's hash (JSON).
#[must_use]
pub fn verify_with_secret(
    token: &SecretString,
    request: &WebhookRequest,
    _now: DateTime<Utc>,
) -> Verification {
    let received = request.header("x-twilio-signature");
    let mut details = vec![format!("url:      {}", request.url)];
    let json = request.method == Method::Post && request.content_type() == "application/json";
    let params = match (request.method, json) {
        (Method::Get, _) | (Method::Post, true) => Vec::new(),
        (Method::Post, false) => match request.form_params() {
            Ok(params) => params,
            Err(e) => {
                details.push(format!("the form body could not be read: {e}"));
                return Verification::new(false, SCHEME, details);
            }
        },
    };
    details.extend(signature::explain_form(token, &request.url, &params));
    if json {
        let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            request.body.as_slice(),
        ));
        details.push(format!(
            "bodySHA256 in the URL: {}; SHA-256 of the body: {actual}",
            signature::claimed_body_hash(&request.url).unwrap_or_else(|| "(missing)".to_owned())
        ));
    }
    details.push(format!(
        "received: {}",
        received.unwrap_or("(no X-Twilio-Signature header)")
    ));
    let valid = received.is_some_and(|sig| {
        if json {
            signature::verify_json(token, &request.url, &request.body, sig)
        } else {
            signature::verify_form(token, &request.url, &params, sig)
        }
    });
    Verification::new(valid, SCHEME, details)
}

/// The parameters of a webhook: the form (POST), the query (GET), or a JSON body's top-level
/// scalars.
fn params(request: &WebhookRequest) -> Result<Vec<(String, String)>, PayloadError> {
    match (request.method, request.content_type().as_str()) {
        (Method::Get, _) | (Method::Post, "application/x-www-form-urlencoded") => {
            Ok(request.form_params()?)
        }
        (Method::Post, "application/json") => {
            json_params(&request.body).ok_or(PayloadError::Body("a JSON object"))
        }
        _ => Err(PayloadError::ContentType(
            "application/x-www-form-urlencoded (or JSON with bodySHA256)",
        )),
    }
}

/// Top-level scalar members of a JSON object as string pairs (numbers and booleans as written).
fn json_params(body: &[u8]) -> Option<Vec<(String, String)>> {
    let serde_json::Value::Object(map) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    Some(
        map.into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                serde_json::Value::Number(n) => Some((k, n.to_string())),
                serde_json::Value::Bool(b) => Some((k, b.to_string())),
                _ => None,
            })
            .collect(),
    )
}

/// Splits a Twilio address into its channel prefix and the address: `rcs:+1555…` is RCS.
fn split_channel(raw: &str) -> (Option<Channel>, &str) {
    match raw.split_once(':') {
        Some(("rcs", rest)) => (Some(Channel::Rcs), rest),
        Some(("sms" | "mms", rest)) => (None, rest),
        _ => (None, raw),
    }
}

fn business(
    params: &[(String, String)],
    field: &'static str,
) -> Result<BusinessAddress, PayloadError> {
    let raw = first(params, field)
        .filter(|v| !v.trim().is_empty())
        .ok_or(PayloadError::Missing(field))?;
    let (channel, address) = split_channel(raw.trim());
    match BusinessAddress::parse_carrier(address) {
        Ok(address) => Ok(address),
        // An RCS sender id that is not a number is an agent.
        Err(_) if channel == Some(Channel::Rcs) => {
            BusinessAddress::rcs_agent(address).map_err(|_| PayloadError::BadPhone(field))
        }
        Err(_) => Err(PayloadError::BadPhone(field)),
    }
}

fn customer(
    params: &[(String, String)],
    field: &'static str,
) -> Result<(Option<Channel>, E164), PayloadError> {
    let raw = first(params, field)
        .filter(|v| !v.trim().is_empty())
        .ok_or(PayloadError::Missing(field))?;
    let (channel, number) = split_channel(raw.trim());
    let number = E164::parse(number).map_err(|_| PayloadError::BadPhone(field))?;
    Ok((channel, number))
}

/// The business address a webhook concerns: `To` inbound, `From` on a status callback (absent:
/// every Twilio account is tried, for callbacks that name only the `AccountSid`).
///
/// # Errors
/// When the form is malformed or `To` is missing or not an address.
pub fn hint(
    request: &WebhookRequest,
    route: Route,
) -> Result<Option<BusinessAddress>, PayloadError> {
    let params = params(request)?;
    match route {
        Route::Inbound => business(&params, "To").map(Some),
        Route::Status => Ok(business(&params, "From").ok()),
    }
}

/// `MessageSid` (or the deprecated `SmsSid`): letters and digits, at most 64 of them.
fn message_sid(params: &[(String, String)]) -> Result<String, PayloadError> {
    let sid = first(params, "MessageSid")
        .or_else(|| first(params, "SmsSid"))
        .filter(|s| !s.is_empty())
        .ok_or(PayloadError::Missing("MessageSid"))?;
    if sid.len() > 64 || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(PayloadError::Invalid("MessageSid"));
    }
    Ok(sid.to_owned())
}

/// Parses an authenticated webhook: an inbound message on [`Route::Inbound`], a status callback
/// on [`Route::Status`].
///
/// # Errors
/// [`PayloadError`] naming the first missing or malformed field.
pub fn parse(request: &WebhookRequest, route: Route) -> Result<Vec<Event>, PayloadError> {
    let params = params(request)?;
    Ok(vec![match route {
        Route::Inbound => Event::Message(parse_inbound(&params)?),
        Route::Status => Event::Status(parse_status(&params)?),
    }])
}

fn parse_inbound(params: &[(String, String)]) -> Result<Inbound, PayloadError> {
    let sid = message_sid(params)?;
    let (from_channel, from) = customer(params, "From")?;
    let to = business(params, "To")?;
    let to_channel = first(params, "To").and_then(|t| split_channel(t.trim()).0);
    let num_media: usize = match first(params, "NumMedia") {
        None | Some("") => 0,
        Some(n) => n
            .parse()
            .ok()
            .filter(|&n| n <= 100)
            .ok_or(PayloadError::Invalid("NumMedia"))?,
    };
    let items = (0..num_media)
        .map(|i| {
            let url = first(params, &format!("MediaUrl{i}"))
                .filter(|u| !u.is_empty())
                .ok_or(PayloadError::Missing("MediaUrl{N}"))?;
            Ok(media(
                url,
                first(params, &format!("MediaContentType{i}")),
                None,
                None,
            ))
        })
        .collect::<Result<Vec<_>, PayloadError>>()?;
    let channel = from_channel.or(to_channel).unwrap_or(if items.is_empty() {
        Channel::Sms
    } else {
        Channel::Mms
    });
    Ok(Inbound {
        carrier: CARRIER.name(),
        carrier_message_id: sid,
        from,
        to,
        channel,
        body: Zeroizing::new(first(params, "Body").unwrap_or_default().to_owned()),
        media: items,
    })
}

fn parse_status(params: &[(String, String)]) -> Result<StatusUpdate, PayloadError> {
    let sid = message_sid(params)?;
    let word = word_field(
        first(params, "MessageStatus").or_else(|| first(params, "SmsStatus")),
        "MessageStatus",
    )?;
    let error_code = code_field(first(params, "ErrorCode"), "ErrorCode")?;
    Ok(StatusUpdate {
        carrier_message_id: sid,
        status: CARRIER.profile().map_status(&word),
        carrier_status: word,
        error_code,
    })
}

/// `201 {"sid": "SM…", "status": "queued"}`, or an error `{"code": 21610, "message": …}`.
#[must_use]
pub fn parse_send_reply(reply: &HttpReply) -> SendResult {
    let json = reply.json();
    if reply.is_success() {
        let field = |name: &str| {
            json.as_ref()
                .and_then(|j| j.get(name))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        return accepted(CARRIER, field("sid").as_deref(), field("status").as_deref());
    }
    if reply.status == 504 {
        return SendResult::Uncertain("gateway_timeout");
    }
    let code = json
        .as_ref()
        .and_then(|j| j.get("code"))
        .and_then(|c| match c {
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::String(s) => Some(s.clone()),
            _ => None,
        });
    SendResult::Rejected(SendError::classified(CARRIER, reply, code))
}

/// `{"messages": [{"sid", "body", …}]}`.
///
/// # Errors
/// When Twilio refused the lookup or the reply is not a listing.
pub fn parse_lookup_reply(reply: &HttpReply) -> Result<Vec<Candidate>, SendError> {
    if !reply.is_success() {
        return Err(SendError::classified(CARRIER, reply, None));
    }
    let json = reply
        .json()
        .ok_or_else(|| SendError::local(ErrorClass::Transient, "lookup_unreadable"))?;
    let messages = json
        .get("messages")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| SendError::local(ErrorClass::Transient, "lookup_unreadable"))?;
    Ok(messages
        .iter()
        .filter_map(|m| {
            let sid = id_field(m.get("sid").and_then(serde_json::Value::as_str), "sid").ok()?;
            Some(Candidate {
                carrier_message_id: sid,
                client_reference: None,
                body: m
                    .get("body")
                    .and_then(serde_json::Value::as_str)
                    .map(|b| Zeroizing::new(b.to_owned())),
            })
        })
        .collect())
}

/// `SM` and 32 hexadecimal digits (128 random bits).
#[must_use]
pub fn new_message_id() -> String {
    format!("SM{}", hex::encode(rand::random::<[u8; 16]>()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carriers::form;

    fn fixture(name: &str) -> Vec<(String, String)> {
        let path = format!("{}/carriers/twilio/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        form::parse(text.trim().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn inbound_mms_fixture() {
        let inbound = parse_inbound(&fixture("inbound-mms.form")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            inbound.carrier_message_id,
            "SMe287d7109a5a925f182f0e07fe5b223b"
        );
        assert_eq!(inbound.from.as_str(), "+14133881111");
        assert_eq!(inbound.to.key(), "+12028831111");
        assert_eq!(inbound.channel, Channel::Mms);
        assert_eq!(
            inbound
                .media
                .iter()
                .map(|m| m.url.as_str())
                .collect::<Vec<_>>(),
            ["cat.jpg", "dog.jpg"]
        );
        assert_eq!(inbound.body.as_str(), "");
    }

    #[test]
    fn inbound_sms_and_rcs_fixtures() {
        let sms = parse_inbound(&fixture("inbound-sms.form")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sms.channel, Channel::Sms);
        assert_eq!(
            sms.body.as_str(),
            "Hi, is my appointment still on for Tuesday?"
        );
        let rcs = parse_inbound(&fixture("inbound-rcs.form")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rcs.channel, Channel::Rcs);
        assert_eq!(rcs.from.as_str(), "+14155551234");
    }

    #[test]
    fn inbound_errors_name_the_field() {
        let mut params = fixture("inbound-sms.form");
        params.retain(|(n, _)| n != "MessageSid" && n != "SmsSid");
        assert_eq!(
            parse_inbound(&params).err(),
            Some(PayloadError::Missing("MessageSid"))
        );
        let mut params = fixture("inbound-sms.form");
        for (n, v) in &mut params {
            if n == "From" {
                *v = "not-a-number".to_owned();
            }
        }
        assert_eq!(
            parse_inbound(&params).err(),
            Some(PayloadError::BadPhone("From"))
        );
        let mut params = fixture("inbound-sms.form");
        params.push(("NumMedia".to_owned(), "1".to_owned()));
        params.retain(|(n, v)| n != "NumMedia" || v == "1");
        assert_eq!(
            parse_inbound(&params).err(),
            Some(PayloadError::Missing("MediaUrl{N}"))
        );
    }

    #[test]
    fn status_fixture_and_mapping() {
        let status =
            parse_status(&fixture("status-delivered.form")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status.status, Some("delivered"));
        assert_eq!(
            status.carrier_message_id,
            "SM1f0e8ae6ade43cb3c0ce4525424e404f"
        );
        let failed = parse_status(&fixture("status-undelivered-optout.form"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(failed.status, Some("undelivered"));
        assert_eq!(failed.error_code.as_deref(), Some("21610"));
        let profile = CARRIER.profile();
        for (twilio, ours) in [
            ("sending", Some("queued")),
            ("sent", Some("sent")),
            ("read", Some("read")),
            ("canceled", Some("failed")),
            ("partially_delivered", Some("delivered")),
            ("received", None),
        ] {
            assert_eq!(profile.map_status(twilio), ours, "{twilio}");
        }
    }

    fn account() -> Account {
        Account {
            account_sid: "AC0123456789abcdef0123456789abcdef".to_owned(),
            auth_token: SecretString::from("12345".to_owned()),
            messaging_service_sid: None,
            api_base: url::Url::parse("http://127.0.0.1:9/twilio")
                .unwrap_or_else(|e| panic!("{e}")),
        }
    }

    #[test]
    fn send_request_shape() {
        let from = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
        let to = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let media = ["https://media.example/a.jpg".to_owned()];
        let message = OutboundMessage {
            outbox_id: "0190-x",
            from: &from,
            to: &to,
            channel: Channel::Mms,
            body: "Hello & welcome",
            media_urls: &media,
            suggestions: &[],
            status_callback: "https://sms.example.com/webhooks/twilio/status",
        };
        let call = account()
            .build_send(&message, None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(call.method, Method::Post);
        assert_eq!(
            call.url.as_str(),
            "http://127.0.0.1:9/twilio/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"
        );
        // base64("AC0123456789abcdef0123456789abcdef:12345")
        assert_eq!(
            call.header_value("authorization"),
            Some("Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjoxMjM0NQ==")
        );
        let form = form::parse(call.body_text().as_bytes()).unwrap_or_default();
        assert_eq!(form::first(&form, "To"), Some("+15551234567"));
        assert_eq!(form::first(&form, "From"), Some("+15550001111"));
        assert_eq!(form::first(&form, "Body"), Some("Hello & welcome"));
        assert_eq!(
            form::first(&form, "MediaUrl"),
            Some("https://media.example/a.jpg")
        );
        assert_eq!(
            form::first(&form, "StatusCallback"),
            Some("https://sms.example.com/webhooks/twilio/status")
        );
    }

    #[test]
    fn send_replies_are_classified() {
        let ok = HttpReply::new(
            201,
            r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"}"#,
        );
        assert_eq!(
            parse_send_reply(&ok),
            SendResult::Accepted {
                carrier_message_id: "SM0123456789abcdef0123456789abcdef".to_owned(),
                status: Some("queued")
            }
        );
        let class = |status: u16, body: &str| match parse_send_reply(&HttpReply::new(status, body))
        {
            SendResult::Rejected(e) => Some((e.class, e.code)),
            _ => None,
        };
        assert_eq!(
            class(
                400,
                r#"{"code":21610,"message":"Attempt to send to unsubscribed recipient"}"#
            ),
            Some((ErrorClass::OptedOut, Some("21610".to_owned())))
        );
        assert_eq!(
            class(
                400,
                r#"{"code":21211,"message":"Invalid 'To' Phone Number"}"#
            ),
            Some((ErrorClass::InvalidNumber, Some("21211".to_owned())))
        );
        assert_eq!(
            class(429, r#"{"code":20429,"message":"Too Many Requests"}"#),
            Some((ErrorClass::Throttled, Some("20429".to_owned())))
        );
        assert_eq!(class(500, "oops"), Some((ErrorClass::Transient, None)));
        assert_eq!(
            parse_send_reply(&HttpReply::new(504, "")),
            SendResult::Uncertain("gateway_timeout")
        );
        assert_eq!(
            parse_send_reply(&HttpReply::new(201, "{}")),
            SendResult::Uncertain("accepted_without_id")
        );
    }

    #[test]
    fn lookup_lists_our_messages() {
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
            call.url.query(),
            Some("To=%2B15551234567&From=%2B15550001111&DateSent%3E=2026-11-27&PageSize=100")
        );
        let reply = HttpReply::new(
            200,
            r#"{"messages":[{"sid":"SMaaaa","body":"hi"},{"sid":"bad id!"}],"next_page_uri":null}"#,
        );
        let found = parse_lookup_reply(&reply).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].carrier_message_id, "SMaaaa");
        assert_eq!(found[0].body.as_deref().map(String::as_str), Some("hi"));
    }

    #[test]
    fn simulated_webhooks_verify_and_parse() {
        let account = account();
        let from = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let to = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
        let keys = SimulationKeys {
            now: Utc::now(),
            signing_key: None,
        };
        let url = "https://sms.example.com/webhooks/twilio";
        let request = account
            .simulate_inbound(
                url,
                &SimulatedInbound {
                    message_id: "SM1",
                    from: &from,
                    to: &to,
                    body: "hello",
                    media: &[],
                },
                &keys,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(account.verify(&request, keys.now).valid);
        assert_eq!(hint(&request, Route::Inbound), Ok(Some(to.clone())));
        let events = parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(&events[..], [Event::Message(m)] if m.body.as_str() == "hello"));
        let forged = WebhookRequest::new(
            Method::Post,
            url,
            request.headers().map(|(n, v)| (n.to_owned(), v.to_owned())),
            request.body.iter().copied().chain(*b"&x=1").collect(),
        );
        let verdict = account.verify(&forged, keys.now);
        assert!(!verdict.valid);
        assert!(verdict.details.iter().any(|d| d.starts_with("signed:")));
    }
}
