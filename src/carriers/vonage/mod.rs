//! Vonage: both of its messaging APIs, on one webhook pair (`shared/reference/carriers.md` §4a,
//! §4b, §11.5, §12.4; profile `carriers/vonage.toml`; fixtures `carriers/vonage/`).
//!
//! | | SMS API ([`sms`]) | Messages API ([`messages`]) |
//! |---|---|---|
//! | webhooks | flat parameters: GET query, POST form or POST JSON | JSON POST |
//! | authenticity | `sig` parameter ([`signature`]: MD5 hash or HMAC-MD5/SHA1/SHA256/SHA512) | `Authorization: Bearer` HS256 JWT with `payload_hash` |
//! | channels | SMS | SMS, MMS, RCS |
//! | send | `POST rest.nexmo.com/sms/json`, form, key and secret as parameters | `POST api.nexmo.com/v1/messages`, JSON, Basic auth |
//!
//! Everything is accepted on both routes (`/webhooks/vonage` and `/webhooks/vonage/status`): the
//! payload says what it is — a JSON body with `message_uuid` is the Messages API, anything else the
//! SMS API; a `status` member makes it a delivery report. Operators may point Vonage's inbound and
//! receipt URLs anywhere they like.
//!
//! # Account keys (`[[accounts]]` with `carrier = "vonage"`)
//!
//! - `api_key` — the account's API key (8 letters and digits; also the Reports API `account_id`).
//! - `api_secret` — secret: Basic auth for the Messages and Reports APIs, `api_secret` parameter
//!   of the SMS API.
//! - `signature_secret` — secret: verifies both webhook signatures and is what `drawbridge
//!   webhook verify --secret` takes.
//! - `signature_method` — `md5hash`, `md5`, `sha1`, `sha256` or `sha512`: the method the
//!   dashboard is set to for SMS API signatures. Required. The account check accepts *only* this
//!   method, so a forger cannot fall back to a weaker one; `webhook verify` tries every method and
//!   says which matched. (The Messages API always uses HS256.) Prefer `sha256` or `sha512`.
//! - `api` — `messages` (default) or `sms`: which API sends. Webhooks from both are accepted
//!   whatever this says. The Messages API is the default: it covers MMS and RCS, reassembles
//!   long inbound SMS, signs every webhook by default and gives one id per message.
//! - `api_base` — override for tests and staging (the fake carrier): replaces both
//!   `https://api.nexmo.com` (Messages, Reports) and `https://rest.nexmo.com` (SMS API).
//!
//! In production, placeholder-looking credentials are refused: an `api_key` that is not 8
//! letters and digits or is a documentation example, and secrets that are short, one repeated
//! character, or contain words like `replace`, `changeme`, `example`, `placeholder`.
//!
//! # Signatures and timestamps
//!
//! Signed webhooks are required. Inbound SMS API signing must be switched on by Vonage support
//! (carriers.md §4a); the Messages API signs by default. A signed SMS API `timestamp` and a JWT
//! `iat` must lie within 25 hours back and 5 minutes ahead ([`signature::MAX_AGE_SECS`]): Vonage
//! retries an unacknowledged webhook for 24 hours and does not document whether a retry is
//! re-signed, and a replay inside that window is harmless because every message and status is
//! deduplicated on its Vonage id. A Messages API webhook without a bearer token (Vonage sends
//! one, rarely, after an internal error) is refused; Vonage retries it signed.
//!
//! # Numbers
//!
//! Vonage writes numbers without `+`. On `rcs`, `to` (inbound) and `from` (status) are our RCS
//! agent id (`[[numbers]] rcs_agent = "…"`). A receipt's `to` may be an alphanumeric sender id:
//! then no sender is hinted and every Vonage account is tried.
//!
//! # Resolving an uncertain send: `resend = "lookup"`
//!
//! Neither send API deduplicates: the Messages API documents `client_ref` only as a reference
//! echoed in status webhooks (up to 100 characters), the SMS API `client-ref` likewise (up to 40),
//! and no idempotency key exists on either (API reference; the vonage-python/node/java SDKs send
//! none). The SMS API's old message search (`/search/messages`) is retired; its replacement is
//! the Reports API, whose synchronous `GET /v2/reports/records` lists an account's outbound
//! `SMS` or `MESSAGES` records over a window of at most 24 hours, each with `message_id`,
//! `client_ref`, `to`, `from` and `status` (api-specification `reports.yml` 2.2.2,
//! `json_sms_outbound`/`csv_messages_outbound`; Nexmo/nexmo-developer `_partials/reports/
//! parameters.md`). Every send carries the outbox id as its client reference, so
//! [`Account::build_lookup`] reads the window starting at the attempt and
//! [`parse_lookup_reply`] returns only records that carry a client reference — never bodies
//! (`include_message=false`: customers' texts are not fetched back): a record is ours exactly
//! when its reference is our outbox id.
//!
//! # Opt-outs
//!
//! Opt-Out Assist (a feature support enables) blocks opted-out recipients: the SMS API still
//! answers `status 0`, then a receipt `failed`/`rejected` with `err-code` 9; the Messages API
//! answers 202, then a `rejected` status whose error is 1240 ("Illegal Number"), as
//! developer.vonage.com/en/opt-out-assist/guides/messaging-opted-out-numbers describes. The
//! profile maps both to `opted_out`, and such a status yields, besides the status, an
//! [`Event::Consent`] opt-out for that customer and sender ([`opt_out`]). STOP messages
//! themselves arrive as ordinary inbound messages (Opt-Out Assist forwards them) and go through
//! the pipeline's keyword handling.

pub mod messages;
pub mod signature;
pub mod sms;

use super::form::first;
use super::{
    endpoint, id_field, Candidate, Carrier, ConsentKind, ConsentReport, ErrorClass, Event,
    HttpCall, HttpReply, LookupQuery, Method, OutboundMessage, PayloadError, Route, SendError,
    SendResult, SimulatedInbound, SimulatedStatus, SimulationKeys, StatusUpdate, Verification,
    WebhookRequest,
};
use crate::config::Mode;
use crate::phone::{BusinessAddress, E164};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
pub use signature::SignatureMethod;

const CARRIER: Carrier = Carrier::Vonage;

/// The SMS API's production base.
pub const SMS_API_BASE: &str = "https://rest.nexmo.com";
/// Longest SMS API `client-ref`.
pub const SMS_CLIENT_REF_MAX: usize = 40;
/// Longest Messages API `client_ref`.
pub const MESSAGES_CLIENT_REF_MAX: usize = 100;

/// The scheme `webhook verify --secret` reports for SMS API webhooks, every method tried.
const ANY_SMS_SCHEME: &str =
    "sig parameter: hex MD5 hash or HMAC-MD5/SHA1/SHA256/SHA512 over sorted &name=value parameters (every method tried)";

/// Which API sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `POST /v1/messages`: SMS, MMS and RCS.
    #[default]
    Messages,
    /// `POST /sms/json`: SMS only.
    Sms,
}

/// A Vonage account (or sub-account: use the API key that owns the numbers).
#[derive(Debug, Clone)]
pub struct Account {
    /// The API key: Basic auth user, SMS API `api_key`, Reports API `account_id`.
    pub api_key: String,
    /// Basic auth password and SMS API `api_secret`.
    pub api_secret: SecretString,
    /// Verifies SMS API `sig` parameters and Messages API JWTs.
    pub signature_secret: SecretString,
    /// The one method SMS API signatures are checked with.
    pub signature_method: SignatureMethod,
    /// Which API sends.
    pub api: Api,
    /// Messages API and Reports API base.
    pub api_base: url::Url,
    /// SMS API base.
    pub sms_base: url::Url,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    api_key: String,
    api_secret: SecretString,
    signature_secret: SecretString,
    signature_method: SignatureMethod,
    #[serde(default)]
    api: Api,
    api_base: Option<String>,
}

/// Whether a secret looks like a placeholder rather than something Vonage generated.
fn placeholder(secret: &str, min_len: usize) -> bool {
    let lower = secret.to_ascii_lowercase();
    let first = secret.chars().next();
    secret.chars().count() < min_len
        || secret.chars().all(|c| Some(c) == first)
        || [
            "replace",
            "changeme",
            "change-me",
            "change_me",
            "example",
            "placeholder",
            "your",
            "xxxx",
            "dummy",
        ]
        .iter()
        .any(|word| lower.contains(word))
}

impl Account {
    /// Reads `api_key`, `api_secret`, `signature_secret`, `signature_method`, `api` and
    /// `api_base` (see the module documentation).
    ///
    /// # Errors
    /// A message naming the key at fault, never a secret's value.
    pub fn from_config(fields: &toml::Table, mode: Mode) -> Result<Self, String> {
        let raw: Raw = account_fields(fields)?;
        let key = raw.api_key.trim();
        if key.is_empty() || key.len() > 32 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("`api_key`: a Vonage API key is letters and digits (8 of them)".to_owned());
        }
        if raw.api_secret.expose_secret().trim().is_empty() {
            return Err("`api_secret`: must not be empty".to_owned());
        }
        if raw.signature_secret.expose_secret().trim().is_empty() {
            return Err("`signature_secret`: must not be empty".to_owned());
        }
        if mode == Mode::Production {
            if key.len() != 8 || ["abcd1234", "a1b2c3d4", "12345678"].contains(&key) {
                return Err(
                    "`api_key`: a Vonage API key is 8 letters and digits, not a documentation example"
                        .to_owned(),
                );
            }
            if placeholder(raw.api_secret.expose_secret(), 8) {
                return Err(
                    "`api_secret`: looks like a placeholder (value not shown); copy it from the Vonage dashboard"
                        .to_owned(),
                );
            }
            if placeholder(raw.signature_secret.expose_secret(), 16) {
                return Err(
                    "`signature_secret`: looks like a placeholder (value not shown); a short or made-up secret would let anyone forge webhooks"
                        .to_owned(),
                );
            }
        }
        let api_base = super::api_base(CARRIER, raw.api_base.as_deref())?;
        let sms_base = match raw.api_base.as_deref() {
            Some(_) => api_base.clone(),
            None => url::Url::parse(SMS_API_BASE).map_err(|e| format!("`api_base`: {e}"))?,
        };
        Ok(Self {
            api_key: key.to_owned(),
            api_secret: raw.api_secret,
            signature_secret: raw.signature_secret,
            signature_method: raw.signature_method,
            api: raw.api,
            api_base,
            sms_base,
        })
    }

    /// The base of the API that sends: the Messages API's or the SMS API's.
    #[must_use]
    pub fn api_base(&self) -> &url::Url {
        match self.api {
            Api::Messages => &self.api_base,
            Api::Sms => &self.sms_base,
        }
    }

    /// Checks a webhook with the signature secret: a Messages API JWT, or an SMS API `sig` made
    /// with the configured method only.
    #[must_use]
    pub fn verify(&self, request: &WebhookRequest, now: DateTime<Utc>) -> Verification {
        check(
            &self.signature_secret,
            &[self.signature_method],
            self.signature_method.scheme(),
            request,
            now,
        )
    }

    /// The send request for the configured API.
    ///
    /// # Errors
    /// What the API cannot express: MMS or RCS on the SMS API, media on SMS, several attachments
    /// on RCS, more than 11 suggestions, an outbox id too long to be a client reference.
    pub fn build_send(
        &self,
        message: &OutboundMessage<'_>,
        _token: Option<&str>,
    ) -> Result<HttpCall, SendError> {
        match self.api {
            Api::Messages => messages::build_send(self, message),
            Api::Sms => sms::build_send(self, message),
        }
    }

    /// `GET {api_base}/v2/reports/records?account_id=…&product=MESSAGES|SMS&direction=outbound
    /// &date_start=…&date_end=…&include_message=false`, Basic auth: the account's outbound
    /// records over the 24 hours (the synchronous endpoint's widest window) from `since`.
    #[must_use]
    pub fn build_lookup(&self, query: &LookupQuery<'_>, _token: Option<&str>) -> Option<HttpCall> {
        let mut url = endpoint(&self.api_base, "/v2/reports/records").ok()?;
        let format = "%Y-%m-%dT%H:%M:%SZ";
        let end = query.since + chrono::Duration::hours(24);
        url.query_pairs_mut()
            .append_pair("account_id", &self.api_key)
            .append_pair(
                "product",
                match self.api {
                    Api::Messages => "MESSAGES",
                    Api::Sms => "SMS",
                },
            )
            .append_pair("direction", "outbound")
            .append_pair("date_start", &query.since.format(format).to_string())
            .append_pair("date_end", &end.format(format).to_string())
            .append_pair("include_message", "false");
        Some(
            HttpCall::new(Method::Get, url)
                .basic_auth(&self.api_key, self.api_secret.expose_secret()),
        )
    }

    /// A signed inbound webhook: Messages API JSON (RCS always, and everything when `api =
    /// "messages"`), else an SMS API POST-JSON inbound.
    ///
    /// # Errors
    /// Media with `api = "sms"` (the SMS API has no MMS).
    pub fn simulate_inbound(
        &self,
        url: &str,
        message: &SimulatedInbound<'_>,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        if self.api == Api::Messages || matches!(message.to, BusinessAddress::RcsAgent(_)) {
            messages::simulate_inbound(self, url, message, keys)
        } else {
            sms::simulate_inbound(self, url, message, keys)
        }
    }

    /// A signed status webhook in the form of the sending API: a Messages API status, or an SMS
    /// API delivery receipt.
    ///
    /// # Errors
    /// Never for Vonage; the signature needs only the signature secret.
    pub fn simulate_status(
        &self,
        url: &str,
        status: &SimulatedStatus<'_>,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        if self.api == Api::Messages || matches!(status.from, BusinessAddress::RcsAgent(_)) {
            messages::simulate_status(self, url, status, keys)
        } else {
            sms::simulate_status(self, url, status, keys)
        }
    }

    #[must_use]
    pub fn secrets(&self) -> Vec<String> {
        vec![
            self.api_secret.expose_secret().to_owned(),
            self.signature_secret.expose_secret().to_owned(),
        ]
    }
}

fn account_fields(fields: &toml::Table) -> Result<Raw, String> {
    super::account_fields(fields, &["api_secret", "signature_secret"])
}

/// A webhook's payload, read once for hinting and parsing.
enum Payload {
    /// SMS API parameters, in the order received.
    Sms(Vec<(String, String)>),
    /// A Messages API JSON object.
    Messages(serde_json::Map<String, serde_json::Value>),
}

/// Top-level scalar members of a JSON object as parameters (numbers and booleans as written),
/// which is what the SMS API's POST-JSON webhooks sign.
fn json_params(object: serde_json::Map<String, serde_json::Value>) -> Vec<(String, String)> {
    object
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            serde_json::Value::Number(n) => Some((k, n.to_string())),
            serde_json::Value::Bool(b) => Some((k, b.to_string())),
            _ => None,
        })
        .collect()
}

const CONTENT_TYPES: &str = "application/json or application/x-www-form-urlencoded";

fn read_payload(request: &WebhookRequest) -> Result<Payload, PayloadError> {
    match (request.method, request.content_type().as_str()) {
        (Method::Get, _) => Ok(Payload::Sms(request.query_params()?)),
        (Method::Post, "application/x-www-form-urlencoded") => {
            Ok(Payload::Sms(request.form_params()?))
        }
        (Method::Post, "application/json") => {
            let Ok(serde_json::Value::Object(object)) =
                serde_json::from_slice::<serde_json::Value>(&request.body)
            else {
                return Err(PayloadError::Body("a JSON object"));
            };
            if object.contains_key("message_uuid") {
                Ok(Payload::Messages(object))
            } else {
                Ok(Payload::Sms(json_params(object)))
            }
        }
        _ => Err(PayloadError::ContentType(CONTENT_TYPES)),
    }
}

/// Which of our senders a webhook concerns: an inbound message's `to`; a status's `from`
/// (Messages API) or `to` (SMS API receipt) when it is one of our numbers or agents.
///
/// # Errors
/// A content type other than JSON or form (415), an unreadable body, or an inbound message
/// without a usable `to`.
pub fn hint(
    request: &WebhookRequest,
    _route: Route,
) -> Result<Option<BusinessAddress>, PayloadError> {
    match read_payload(request)? {
        Payload::Sms(params) => sms::hint(&params),
        Payload::Messages(object) => messages::hint(&object),
    }
}

/// The authenticated payload as one event: a message, a status, or an ignored kind.
///
/// # Errors
/// [`PayloadError`] naming the first missing or malformed field.
pub fn parse(request: &WebhookRequest, _route: Route) -> Result<Vec<Event>, PayloadError> {
    match read_payload(request)? {
        Payload::Sms(params) => sms::parse(&params),
        Payload::Messages(object) => messages::parse(&object),
    }
}

/// The opt-out a failed status reports: when its error code is one the profile classes as
/// `opted_out` (receipt `err-code` 9, Messages API 1240 or 1050) and the status names both the
/// customer and one of our senders, Vonage has told us the customer no longer takes messages
/// from that sender. Keyed on the message id, so a retried status records it once.
fn opt_out(
    update: &StatusUpdate,
    customer: Option<&str>,
    business: Option<BusinessAddress>,
) -> Option<Event> {
    let code = update.error_code.as_deref()?;
    if CARRIER.profile().error_class(code) != Some(ErrorClass::OptedOut) {
        return None;
    }
    Some(Event::Consent(ConsentReport {
        event_id: format!("opt-out:{}", update.carrier_message_id),
        contact: E164::parse_msisdn(customer?).ok()?,
        business: business?,
        kind: ConsentKind::OptOut,
    }))
}

/// `Bearer <token>`, any case of `Bearer`.
fn bearer(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// The check shared by [`Account::verify`] (one method) and [`verify_with_secret`] (all).
fn check(
    secret: &SecretString,
    methods: &[SignatureMethod],
    sms_scheme: &'static str,
    request: &WebhookRequest,
    now: DateTime<Utc>,
) -> Verification {
    let authorization = request.header("authorization");
    if let Some(token) = authorization.and_then(bearer) {
        let outcome = signature::verify_jwt(secret, token, &request.body, now);
        return Verification::new(outcome.valid, signature::JWT_SCHEME, outcome.details);
    }
    let mut details = Vec::new();
    if authorization.is_some() {
        // Credentials in the configured webhook URL (`https://user:pass@…`) arrive as Basic auth
        // on SMS API webhooks: not what authenticates them; the `sig` parameter is.
        details.push("an Authorization header that is not a bearer token: ignored".to_owned());
    }
    let refuse = |mut details: Vec<String>, line: String| {
        details.push(line);
        Verification::new(false, sms_scheme, details)
    };
    let (source, params) = match (request.method, request.content_type().as_str()) {
        (Method::Get, _) => ("the query string (GET)", request.query_params()),
        (Method::Post, "application/x-www-form-urlencoded") => {
            ("the form body (POST)", request.form_params())
        }
        (Method::Post, "application/json") => {
            match serde_json::from_slice::<serde_json::Value>(&request.body) {
                Ok(serde_json::Value::Object(object)) if object.contains_key("message_uuid") => {
                    details.push("a Messages API webhook without `Authorization: Bearer <JWT>`: unsigned, refused with 503 (Vonage retries such a callback signed)".to_owned());
                    return Verification::new(false, signature::JWT_SCHEME, details).retry_signed();
                }
                Ok(serde_json::Value::Object(object)) => (
                    "the JSON body's top-level members (POST)",
                    Ok(json_params(object)),
                ),
                _ => return refuse(details, "the body is not a JSON object".to_owned()),
            }
        }
        (Method::Post, other) => {
            return refuse(
                details,
                format!("content type `{other}` is neither JSON nor a form: nothing to verify"),
            )
        }
    };
    let params = match params {
        Ok(params) => params,
        Err(e) => return refuse(details, format!("the parameters could not be read: {e}")),
    };
    details.push(format!("parameters from {source}"));
    let mut names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w.first() == w.get(1)) {
        let name = pair.first().copied().unwrap_or_default();
        return refuse(
            details,
            format!("parameter `{name}` appears more than once: refused (which copy was signed is ambiguous)"),
        );
    }
    let Some(received) = first(&params, "sig") else {
        return refuse(
            details,
            "no `sig` parameter and no Authorization header: the webhook is unsigned (ask Vonage support to sign SMS API webhooks)".to_owned(),
        );
    };
    let timestamp = first(&params, "timestamp").and_then(|t| t.trim().parse::<i64>().ok());
    let (fresh, line) = signature::check_age("timestamp", timestamp, now);
    let signed = signature::string_to_sign(&params);
    details.push(format!("signed: {signed}"));
    let mut matched = None;
    for method in methods {
        let expected = signature::sign(secret, *method, &params);
        let ok = signature::verify_sms(secret, *method, &params, received);
        if ok && matched.is_none() {
            matched = Some(*method);
        }
        let how = if *method == SignatureMethod::Md5Hash {
            " (MD5 of the signed string followed by the secret)"
        } else {
            ""
        };
        details.push(format!("expected ({}): {expected}{how}", method.name()));
    }
    details.push(format!("received: {received}"));
    details.push(line);
    if methods.len() > 1 {
        details.push(format!(
            "matched method: {}",
            matched.map_or("none", SignatureMethod::name)
        ));
    } else if let Some(method) = methods.first() {
        details.push(format!(
            "method: {} only (the account's configured method; others are refused)",
            method.name()
        ));
    }
    Verification::new(matched.is_some() && fresh, sms_scheme, details)
}

/// The check with only the signature secret (`drawbridge webhook verify --secret`): a Messages
/// API JWT, or an SMS API `sig` under any of the five methods (the details say which matched).
#[must_use]
pub fn verify_with_secret(
    secret: &SecretString,
    request: &WebhookRequest,
    now: DateTime<Utc>,
) -> Verification {
    check(secret, &SignatureMethod::ALL, ANY_SMS_SCHEME, request, now)
}

/// The reply of either send API: SMS API JSON carries `messages[]`; anything else is read as the
/// Messages API's.
#[must_use]
pub fn parse_send_reply(reply: &HttpReply) -> SendResult {
    let json = reply.json();
    match json
        .as_ref()
        .and_then(|j| j.get("messages"))
        .and_then(serde_json::Value::as_array)
    {
        Some(parts) => sms::parse_reply(reply, parts),
        None => messages::parse_reply(reply, json.as_ref()),
    }
}

/// `{"records": [{"message_id", "client_ref", …}], "request_status": "SUCCESS", …}`: every
/// record carrying a client reference, as a candidate with that reference and no body.
///
/// # Errors
/// When the Reports API refused the query or answered something that is not a listing.
pub fn parse_lookup_reply(reply: &HttpReply) -> Result<Vec<Candidate>, SendError> {
    if !reply.is_success() {
        let code = messages::error_code(reply.json().as_ref());
        return Err(SendError::classified(CARRIER, reply, code));
    }
    let unreadable = || SendError::local(ErrorClass::Transient, "lookup_unreadable");
    let json = reply.json().ok_or_else(unreadable)?;
    let records = match json.get("records") {
        Some(serde_json::Value::Array(records)) => records.as_slice(),
        // A successful query that found nothing may leave `records` out.
        None if json.get("request_status").is_some() || json.get("items_count").is_some() => &[],
        _ => return Err(unreadable()),
    };
    Ok(records
        .iter()
        .filter_map(|record| {
            let id = id_field(
                record.get("message_id").and_then(serde_json::Value::as_str),
                "message_id",
            )
            .ok()?;
            let reference = record
                .get("client_ref")
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|r| !r.is_empty())?;
            Some(Candidate {
                carrier_message_id: id,
                client_reference: Some(reference.to_owned()),
                body: None,
            })
        })
        .collect())
}

/// A UUID (random, version 4 layout, 122 random bits): the form of both a Messages API
/// `message_uuid` and a current SMS API `messageId` (the opt-out guide's receipt shows one).
#[must_use]
pub fn new_message_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    if let Some(b) = bytes.get_mut(6) {
        *b = (*b & 0x0f) | 0x40;
    }
    if let Some(b) = bytes.get_mut(8) {
        *b = (*b & 0x3f) | 0x80;
    }
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        hex.get(0..8).unwrap_or_default(),
        hex.get(8..12).unwrap_or_default(),
        hex.get(12..16).unwrap_or_default(),
        hex.get(16..20).unwrap_or_default(),
        hex.get(20..32).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests;
