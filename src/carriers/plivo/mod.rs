//! Plivo Messaging: SMS and MMS by form webhook (POST or GET), status callbacks, and the Message
//! REST API (`shared/reference/carriers.md` §6, §11.5, §12.2; Plivo's docs
//! `docs/messaging/api/message/handling-incoming`, `…/message-status-callbacks`,
//! `…/list-all-messages`, `docs/messaging/concepts/signature-validation`; plivo-python
//! `plivo/utils/signature_v3.py`, `plivo/resources/messages.py`; plivo-go `utils.go`,
//! `messages.go`).
//!
//! # Account keys (`[[accounts]]` with `carrier = "plivo"`)
//!
//! | key | what |
//! |---|---|
//! | `auth_id` | `MA` (main account) or `SA` (subaccount) and 18 letters or digits |
//! | `auth_token` | a secret: signs Plivo's webhooks and authenticates REST calls; in production it must look like Plivo's (40 letters and digits) |
//! | `api_base` | default `https://api.plivo.com` (tests point it at the fake) |
//!
//! The id format is plivo-python's own check (`is_valid_mainaccount`/`is_valid_subaccount`: 20
//! characters, `MA`/`SA`); every Plivo auth token published in SDK tests and documentation is 40
//! letters and digits (`Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4`).
//!
//! # Webhooks
//!
//! Form POST, or GET with the parameters in the query, as the application's `message_method`
//! says (the profile accepts both).
//! - **Inbound** (`/webhooks/plivo`): `MessageUUID`, `From` (the customer), `To` (ours; both
//!   digits without `+`), `Type` (`sms`, `mms`, `whatsapp`), `Text` (SMS, multipart joined) or
//!   `Body` (MMS), `MediaCount` and `Media{N}`: Plivo's docs number media from 1, a support
//!   article from 0, so every `Media<digits>` is taken in numeric order, with
//!   `MediaContentType{N}` when present (not documented; used if Plivo sends it). WhatsApp
//!   messages are not a channel of ours and are ignored. `MessageIntent` (`optout`, `optin`,
//!   `help`: Plivo matched a standard keyword and, for opt-out and opt-in, changed the number's
//!   DND state itself) does not change what is stored: the message is stored like any other, so
//!   our own keyword handling sees it; an `optout`/`optin` intent *also* yields an
//!   [`Event::Consent`] (event id = `MessageUUID`), recording that Plivo now blocks (or again
//!   allows) sends to that customer. `help` adds nothing: Plivo answers HELP itself.
//! - **Status** (`/webhooks/plivo/status`, the `url` we pass on every send): `MessageUUID`,
//!   `Status` (`queued sent failed delivered undelivered read`, older `rejected`), `ErrorCode`
//!   (`200`: the recipient opted out; `000` and empty mean none).
//!
//! [`hint`]: `To` of an inbound message, `From` of a status callback.
//!
//! # Authenticity
//!
//! See [`signature`] for the algorithms. Plivo's messaging documentation says every messaging
//! callback carries `X-Plivo-Signature-V2`, `-Ma-V2` and `-V2-Nonce`; its voice documentation
//! says every request carries `X-Plivo-Signature-V3`, `-Ma-V3` and `-V3-Nonce`. We check:
//! - **V3 first**: when a V3 signature header is present, it must verify (either header, with
//!   this account's auth token; any of its comma-separated signatures; the query read decoded
//!   or raw). V3 covers the URL, its query and every parameter, so a failing V3 is never
//!   overridden by a passing V2.
//! - **V2 otherwise**: without a V3 header, `X-Plivo-Signature-V2` or `-Ma-V2` must verify.
//!   V2 covers only the URL without its query and the nonce, not the parameters: a V2 signature
//!   seen once can be replayed with other parameters to the same URL. Plivo documents no
//!   timestamp or replay window for either version. This is Plivo's scheme; serve the webhook
//!   over HTTPS only.
//! - `-Ma-` headers are signed with the *main* account's token: they verify when the configured
//!   account is the main account while the number sits in a subaccount. Both are HMACs under a
//!   token we hold, so accepting either is no weaker.
//! - **V1** (`X-Plivo-Signature`, HMAC-SHA1) is not accepted: Plivo documents it only as
//!   deprecated, its messaging documentation does not list it, and every request it is on
//!   also carries V2.
//!
//! [`verify_with_secret`] takes the auth token.
//!
//! # Sending
//!
//! `POST {api_base}/v1/Account/{auth_id}/Message/`, Basic `auth_id:auth_token`, JSON `src`,
//! `dst` (E.164), `text`, `url` (our status callback) and `method` `POST`, plus `type` `mms`
//! and `media_urls` when there is media. The reply is `202 {"api_id", "message":
//! "message(s) queued", "message_uuid": [..]}`; errors are `{"api_id", "error"}` with a phrase,
//! not a code. A short phrase without digits becomes the error code, lower-cased with `_` for
//! spaces (`too many requests` → `too_many_requests`), so the profile can classify it;
//! otherwise the HTTP status decides (429 throttled, 5xx transient, other 4xx permanent).
//! Opt-outs are not refused synchronously: Plivo accepts the message and reports it `failed`
//! with `ErrorCode` 200. RCS senders are refused locally.
//!
//! # Resolving an uncertain send: `lookup`
//!
//! Plivo's Message API takes no idempotency key. Its list, `GET /v1/Account/{auth_id}/Message/`
//! ("List all messages", rate-limited to 20 requests a minute), filters by `message_direction`,
//! `message_time__gte` (`YYYY-MM-DD HH:MM:SS`, UTC), and in the current documentation by
//! `from_number` and `to_number` (E.164); plivo-go's `MessageListParams` and plivo-python's
//! `list` predate those two. Each record (MDR) has `message_uuid`, `from_number`, `to_number`,
//! `message_state`, `message_time`, but not the text and no client reference. So
//! [`Account::build_lookup`] lists our sender's outbound messages to the recipient since the
//! attempt, and the outbox takes one it has not recorded as ours. [`parse_lookup_reply`] drops
//! records whose direction is not outbound, in case a filter is ignored.

pub mod signature;

use super::form::first;
use super::{
    accepted, account_fields, code_field, endpoint, id_field, media, word_field, Candidate,
    Carrier, ConsentKind, ConsentReport, ErrorClass, Event, HttpCall, HttpReply, LookupQuery,
    Method, OutboundMessage, PayloadError, Route, SendError, SendResult, SimulatedInbound,
    SimulatedStatus, SimulationKeys, StatusUpdate, Verification, WebhookRequest,
};
use crate::config::Mode;
use crate::phone::BusinessAddress;
use crate::pipeline::{Channel, Inbound};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

const CARRIER: Carrier = Carrier::Plivo;
const SCHEME_V3: &str = "X-Plivo-Signature-V3 / -Ma-V3: base64 HMAC-SHA256(auth token, URL + sorted query + sorted parameters + \".\" + nonce)";
const SCHEME_V2: &str =
    "X-Plivo-Signature-V2 / -Ma-V2: base64 HMAC-SHA256(auth token, URL without query + nonce)";

const V3_HEADERS: [&str; 2] = ["x-plivo-signature-v3", "x-plivo-signature-ma-v3"];
const V3_NONCE: &str = "x-plivo-signature-v3-nonce";
const V2_HEADERS: [&str; 2] = ["x-plivo-signature-v2", "x-plivo-signature-ma-v2"];
const V2_NONCE: &str = "x-plivo-signature-v2-nonce";

/// A Plivo main account or subaccount.
#[derive(Debug, Clone)]
pub struct Account {
    /// `MA…` or `SA…`: the account in every API path and the Basic user.
    pub auth_id: String,
    /// Signs Plivo's webhooks (HMAC-SHA256) and authenticates REST calls.
    pub auth_token: SecretString,
    pub api_base: url::Url,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    auth_id: String,
    auth_token: SecretString,
    api_base: Option<String>,
}

fn is_auth_id(text: &str) -> bool {
    (text.starts_with("MA") || text.starts_with("SA"))
        && text.len() == 20
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl Account {
    /// Reads `auth_id`, `auth_token` and `api_base`.
    ///
    /// # Errors
    /// A message naming the key at fault. In production an auth token that is not 40 letters and
    /// digits is refused: it is a placeholder, and would let anyone forge webhooks.
    pub fn from_config(fields: &toml::Table, mode: Mode) -> Result<Self, String> {
        let raw: Raw = account_fields(fields, &["auth_token"])?;
        let auth_id = raw.auth_id.trim().to_owned();
        if !is_auth_id(&auth_id) {
            return Err(
                "`auth_id`: a Plivo auth id is `MA` or `SA` followed by 18 capital letters or digits"
                    .to_owned(),
            );
        }
        let token = raw.auth_token.expose_secret();
        if token.trim().is_empty() {
            return Err("`auth_token`: must not be empty".to_owned());
        }
        if mode == Mode::Production
            && !(token.len() == 40 && token.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(
                "`auth_token`: a Plivo auth token is 40 letters and digits (value not shown)"
                    .to_owned(),
            );
        }
        Ok(Self {
            auth_id,
            auth_token: raw.auth_token,
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
            &format!("/v1/Account/{}/Message/", self.auth_id),
        )
    }

    /// `POST /v1/Account/{auth_id}/Message/`.
    ///
    /// # Errors
    /// RCS, which this API does not send.
    pub fn build_send(
        &self,
        message: &OutboundMessage<'_>,
        _token: Option<&str>,
    ) -> Result<HttpCall, SendError> {
        if message.channel == Channel::Rcs || matches!(message.from, BusinessAddress::RcsAgent(_)) {
            return Err(SendError::local(ErrorClass::Permanent, "rcs_unsupported"));
        }
        let mut body = json!({
            "src": message.from.as_sender(),
            "dst": message.to.as_str(),
            "text": message.text_with_fallbacks(),
            "url": message.status_callback,
            "method": "POST",
        });
        if !message.media_urls.is_empty() {
            if let Some(object) = body.as_object_mut() {
                object.insert("type".to_owned(), json!("mms"));
                object.insert("media_urls".to_owned(), json!(message.media_urls));
            }
        }
        Ok(HttpCall::new(Method::Post, self.messages_url()?)
            .basic_auth(&self.auth_id, self.auth_token.expose_secret())
            .json(&body))
    }

    /// `GET /v1/Account/{auth_id}/Message/?message_direction=outbound&from_number=…&to_number=…&message_time__gte=…&limit=20`.
    #[must_use]
    pub fn build_lookup(&self, query: &LookupQuery<'_>, _token: Option<&str>) -> Option<HttpCall> {
        if matches!(query.from, BusinessAddress::RcsAgent(_)) {
            return None;
        }
        let mut url = self.messages_url().ok()?;
        url.query_pairs_mut()
            .append_pair("message_direction", "outbound")
            .append_pair("from_number", query.from.as_sender())
            .append_pair("to_number", query.to.as_str())
            .append_pair(
                "message_time__gte",
                &query.since.format("%Y-%m-%d %H:%M:%S").to_string(),
            )
            .append_pair("limit", "20");
        Some(
            HttpCall::new(Method::Get, url)
                .basic_auth(&self.auth_id, self.auth_token.expose_secret()),
        )
    }

    /// A signed inbound message webhook, shaped as Plivo sends one (form POST).
    ///
    /// # Errors
    /// Never for Plivo.
    pub fn simulate_inbound(
        &self,
        url: &str,
        message: &SimulatedInbound<'_>,
        _keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        let mms = !message.media.is_empty();
        let mut params: Vec<(String, String)> = vec![
            ("From".to_owned(), message.from.digits().to_owned()),
            ("To".to_owned(), message.to.digits().to_owned()),
            (
                "Type".to_owned(),
                if mms { "mms" } else { "sms" }.to_owned(),
            ),
            (
                if mms { "Body" } else { "Text" }.to_owned(),
                message.body.to_owned(),
            ),
            ("MessageUUID".to_owned(), message.message_id.to_owned()),
            ("Units".to_owned(), "1".to_owned()),
            ("TotalRate".to_owned(), "0".to_owned()),
            ("TotalAmount".to_owned(), "0".to_owned()),
            ("MessageIntent".to_owned(), String::new()),
            ("PowerpackUUID".to_owned(), String::new()),
        ];
        if mms {
            params.push(("MediaCount".to_owned(), message.media.len().to_string()));
            for (i, item) in message.media.iter().enumerate() {
                params.push((format!("Media{}", i + 1), item.url.clone()));
            }
        }
        Ok(self.signed_form(url, &params))
    }

    /// A signed status callback, shaped as Plivo sends one (form POST to the `url` of the send).
    ///
    /// # Errors
    /// Never for Plivo.
    pub fn simulate_status(
        &self,
        url: &str,
        status: &SimulatedStatus<'_>,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        let time = keys.now.format("%Y-%m-%d %H:%M:%S%:z").to_string();
        let mut params: Vec<(String, String)> = [
            ("MessageUUID", status.carrier_message_id),
            ("To", status.to.digits()),
            ("From", status.from.digits()),
            ("Type", "sms"),
            ("Status", status.status),
            ("Units", "1"),
            ("TotalRate", "0.0050"),
            ("TotalAmount", "0.0050"),
            ("MCC", "310"),
            ("MNC", "410"),
            ("ParentMessageUUID", status.carrier_message_id),
            ("PartInfo", "1 of 1"),
            ("Sequence", "1"),
            ("MessageTime", &time),
            ("QueuedTime", &time),
            ("SentTime", &time),
            ("DeliveryReportTime", &time),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let Some(code) = status.error_code {
            params.push(("ErrorCode".to_owned(), code.to_owned()));
        }
        Ok(self.signed_form(url, &params))
    }

    /// A form POST with every signature header Plivo sends: V3 and V2, each also as the `-Ma-`
    /// form (signed here with the same token, as for a main account).
    fn signed_form(&self, url: &str, params: &[(String, String)]) -> WebhookRequest {
        let v3_nonce = nonce();
        let v2_nonce = nonce();
        let base = signature::v3_base(Method::Post, url, params, signature::QueryReading::Decoded)
            .unwrap_or_else(|| url.to_owned());
        let v3 = signature::sign(
            &self.auth_token,
            &signature::v3_string_to_sign(&base, &v3_nonce),
        );
        let v2 = signature::sign(
            &self.auth_token,
            &signature::v2_string_to_sign(url, &v2_nonce),
        );
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
                ("X-Plivo-Signature-V3".to_owned(), v3.clone()),
                ("X-Plivo-Signature-Ma-V3".to_owned(), v3),
                ("X-Plivo-Signature-V3-Nonce".to_owned(), v3_nonce),
                ("X-Plivo-Signature-V2".to_owned(), v2.clone()),
                ("X-Plivo-Signature-Ma-V2".to_owned(), v2),
                ("X-Plivo-Signature-V2-Nonce".to_owned(), v2_nonce),
            ],
            super::form::encode(&pairs).into_bytes(),
        )
    }

    #[must_use]
    pub fn secrets(&self) -> Vec<String> {
        vec![self.auth_token.expose_secret().to_owned()]
    }
}

/// Twenty random digits, like Plivo's nonces (`31627761595286130198`).
fn nonce() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// The values of the present headers among `names`, with their names.
fn present<'a>(
    request: &'a WebhookRequest,
    names: &[&'static str],
) -> Vec<(&'static str, &'a str)> {
    names
        .iter()
        .filter_map(|name| request.header(name).map(|value| (*name, value)))
        .collect()
}

/// Checks a webhook with the auth token: V3 when a V3 signature header is present, else V2 (see
/// the module documentation).
#[must_use]
pub fn verify_with_secret(
    token: &SecretString,
    request: &WebhookRequest,
    _now: DateTime<Utc>,
) -> Verification {
    let mut details = vec![
        format!("url:      {}", request.url),
        format!("method:   {}", request.method.as_str()),
    ];
    let v3 = present(request, &V3_HEADERS);
    let v2 = present(request, &V2_HEADERS);
    if v3.is_empty() && v2.is_empty() {
        details.push("received: no X-Plivo-Signature-V3, -Ma-V3, -V2 or -Ma-V2 header".to_owned());
        if request.header("x-plivo-signature").is_some() {
            details.push(
                "note:     X-Plivo-Signature (V1, deprecated) is present but not accepted"
                    .to_owned(),
            );
        }
        return Verification::new(false, SCHEME_V3, details);
    }
    if !v3.is_empty() {
        let valid = check_v3(token, request, &v3, &mut details);
        if !v2.is_empty() {
            details.push(
                "note:     V2 headers are present but not used: a V3 signature takes precedence"
                    .to_owned(),
            );
        }
        return Verification::new(valid, SCHEME_V3, details);
    }
    let valid = check_v2(token, request, &v2, &mut details);
    let verification = Verification::new(valid, SCHEME_V2, details);
    // V2 covers the URL and the nonce, not the parameters: a nonce must never carry another body.
    match request.header(V2_NONCE) {
        Some(nonce) if valid => verification.replay_key(format!("v2:{nonce}")),
        _ => verification,
    }
}

fn check_v3(
    token: &SecretString,
    request: &WebhookRequest,
    headers: &[(&'static str, &str)],
    details: &mut Vec<String>,
) -> bool {
    let Some(nonce) = request.header(V3_NONCE) else {
        details.push("received: no X-Plivo-Signature-V3-Nonce header".to_owned());
        return false;
    };
    let params = match request.method {
        Method::Get => Vec::new(),
        Method::Post => match request.form_params() {
            Ok(params) => params,
            Err(e) => {
                details.push(format!("the form body could not be read: {e}"));
                return false;
            }
        },
    };
    let mut valid = false;
    for (reading, base) in signature::v3_bases(request.method, &request.url, &params) {
        let signed = signature::v3_string_to_sign(&base, nonce);
        details.push(format!("signed:   {signed}   [{}]", reading.label()));
        details.push(format!("expected: {}", signature::sign(token, &signed)));
        for (_, value) in headers {
            // No early exit: every form against every received signature.
            valid |= signature::matches(token, &signed, value);
        }
    }
    for (name, value) in headers {
        details.push(format!("received: {name}: {value}"));
    }
    valid
}

fn check_v2(
    token: &SecretString,
    request: &WebhookRequest,
    headers: &[(&'static str, &str)],
    details: &mut Vec<String>,
) -> bool {
    let Some(nonce) = request.header(V2_NONCE) else {
        details.push("received: no X-Plivo-Signature-V2-Nonce header".to_owned());
        return false;
    };
    let signed = signature::v2_string_to_sign(&request.url, nonce);
    details.push(format!("signed:   {signed}"));
    details.push(format!("expected: {}", signature::sign(token, &signed)));
    let mut valid = false;
    for (name, value) in headers {
        details.push(format!("received: {name}: {value}"));
        valid |= signature::matches(token, &signed, value);
    }
    valid
}

/// The parameters of a webhook: the query of a GET, the form body of a POST.
fn params(request: &WebhookRequest) -> Result<Vec<(String, String)>, PayloadError> {
    match request.method {
        Method::Get => Ok(request.form_params()?),
        Method::Post if request.content_type() == "application/x-www-form-urlencoded" => {
            Ok(request.form_params()?)
        }
        Method::Post => Err(PayloadError::ContentType(
            "application/x-www-form-urlencoded",
        )),
    }
}

/// Our number a webhook concerns: `To` of an inbound message, `From` of a status callback (absent
/// or not an address: every Plivo account is tried).
///
/// # Errors
/// When the form is malformed, or `To` is missing or not a number.
pub fn hint(
    request: &WebhookRequest,
    route: Route,
) -> Result<Option<BusinessAddress>, PayloadError> {
    let params = params(request)?;
    match route {
        Route::Inbound => super::business_field(first(&params, "To"), "To").map(Some),
        // A status callback whose `From` is not one of our kinds of address (an alphanumeric
        // sender) is checked against every account, not refused: Plivo would retry it for a day.
        Route::Status => Ok(super::business_field(first(&params, "From"), "From").ok()),
    }
}

/// Parses an authenticated webhook: an inbound message on [`Route::Inbound`], a status callback
/// on [`Route::Status`].
///
/// # Errors
/// [`PayloadError`] naming the first missing or malformed field.
pub fn parse(request: &WebhookRequest, route: Route) -> Result<Vec<Event>, PayloadError> {
    let params = params(request)?;
    match route {
        Route::Inbound => parse_inbound(&params),
        Route::Status => Ok(vec![Event::Status(parse_status(&params)?)]),
    }
}

/// `Media<digits>` values in numeric order, with `MediaContentType<same digits>`.
fn media_items(params: &[(String, String)]) -> Result<Vec<crate::pipeline::Media>, PayloadError> {
    let mut numbered: Vec<(u32, &str, &str)> = params
        .iter()
        .filter_map(|(name, value)| {
            let digits = name.strip_prefix("Media")?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((digits.parse().ok()?, digits, value.as_str()))
        })
        .collect();
    numbered.sort_by_key(|(n, _, _)| *n);
    numbered.dedup_by_key(|(n, _, _)| *n);
    numbered
        .into_iter()
        .map(|(_, digits, url)| {
            if url.trim().is_empty() {
                return Err(PayloadError::Missing("Media{N}"));
            }
            Ok(media(
                url,
                first(params, &format!("MediaContentType{digits}")),
                None,
                None,
            ))
        })
        .collect()
}

fn parse_inbound(params: &[(String, String)]) -> Result<Vec<Event>, PayloadError> {
    let uuid = id_field(first(params, "MessageUUID"), "MessageUUID")?;
    let kind = first(params, "Type")
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if kind == "whatsapp" {
        return Ok(vec![Event::Ignored("whatsapp")]);
    }
    let from = super::phone_field(first(params, "From"), "From")?;
    let to = super::business_field(first(params, "To"), "To")?;
    let count: usize = match first(params, "MediaCount").map(str::trim) {
        None | Some("") => 0,
        Some(n) => n
            .parse()
            .ok()
            .filter(|&n| n <= 100)
            .ok_or(PayloadError::Invalid("MediaCount"))?,
    };
    let items = media_items(params)?;
    if items.len() < count {
        return Err(PayloadError::Missing("Media{N}"));
    }
    let body = if kind == "mms" {
        first(params, "Body").or_else(|| first(params, "Text"))
    } else {
        first(params, "Text").or_else(|| first(params, "Body"))
    };
    let channel = if kind == "mms" || !items.is_empty() {
        Channel::Mms
    } else {
        Channel::Sms
    };
    let intent = first(params, "MessageIntent")
        .map(|i| i.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let consent = match intent.as_str() {
        "optout" => Some(ConsentKind::OptOut),
        "optin" => Some(ConsentKind::OptIn),
        _ => None,
    };
    let mut events = vec![];
    if let Some(kind) = consent {
        events.push(Event::Consent(ConsentReport {
            event_id: uuid.clone(),
            contact: from.clone(),
            business: to.clone(),
            kind,
        }));
    }
    events.insert(
        0,
        Event::Message(Inbound {
            carrier: CARRIER.name(),
            carrier_message_id: uuid,
            from,
            to,
            channel,
            body: Zeroizing::new(body.unwrap_or_default().to_owned()),
            media: items,
        }),
    );
    Ok(events)
}

fn parse_status(params: &[(String, String)]) -> Result<StatusUpdate, PayloadError> {
    let uuid = id_field(first(params, "MessageUUID"), "MessageUUID")?;
    let word = word_field(first(params, "Status"), "Status")?;
    // Plivo writes `000` for "no error".
    let error_code = code_field(first(params, "ErrorCode"), "ErrorCode")?
        .filter(|c| !c.trim_matches('0').is_empty());
    Ok(StatusUpdate {
        carrier_message_id: uuid,
        status: CARRIER.profile().map_status(&word),
        carrier_status: word,
        error_code,
    })
}

/// Plivo's `error` phrase as a code: lower-cased, spaces as `_`, when it is short and has only
/// letters, spaces, `_` and `-` (a phrase with digits could quote a phone number).
fn error_code(reply: &HttpReply) -> Option<String> {
    let json = reply.json()?;
    let phrase = json.get("error").and_then(Value::as_str)?.trim();
    let usable = !phrase.is_empty()
        && phrase.len() <= 48
        && phrase
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || matches!(b, b' ' | b'_' | b'-'));
    usable.then(|| phrase.to_ascii_lowercase().replace(' ', "_"))
}

/// `202 {"api_id", "message": "message(s) queued", "message_uuid": ["…"]}`, or an error
/// `{"api_id", "error": "…"}`.
#[must_use]
pub fn parse_send_reply(reply: &HttpReply) -> SendResult {
    if reply.is_success() {
        let json = reply.json();
        let id = json.as_ref().and_then(|j| match j.get("message_uuid") {
            Some(Value::Array(ids)) => ids.first().and_then(Value::as_str),
            Some(Value::String(id)) => Some(id.as_str()),
            _ => None,
        });
        return accepted(CARRIER, id, Some("queued"));
    }
    if reply.status == 504 {
        return SendResult::Uncertain("gateway_timeout");
    }
    SendResult::Rejected(SendError::classified(CARRIER, reply, error_code(reply)))
}

/// `{"api_id", "meta", "objects": [{"message_uuid", "message_direction", …}]}`: no text.
///
/// # Errors
/// When Plivo refused the lookup or the reply is not a listing.
pub fn parse_lookup_reply(reply: &HttpReply) -> Result<Vec<Candidate>, SendError> {
    if !reply.is_success() {
        return Err(SendError::classified(CARRIER, reply, error_code(reply)));
    }
    let json = reply
        .json()
        .ok_or_else(|| SendError::local(ErrorClass::Transient, "lookup_unreadable"))?;
    let objects = json
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| SendError::local(ErrorClass::Transient, "lookup_unreadable"))?;
    Ok(objects
        .iter()
        .filter(|m| {
            m.get("message_direction")
                .and_then(Value::as_str)
                .is_none_or(|d| d.eq_ignore_ascii_case("outbound"))
        })
        .filter_map(|m| {
            Some(Candidate {
                carrier_message_id: id_field(
                    m.get("message_uuid").and_then(Value::as_str),
                    "message_uuid",
                )
                .ok()?,
                client_reference: None,
                body: None,
            })
        })
        .collect())
}

/// A time-based (version 1) UUID like Plivo's (`7a242edc-2f57-11e7-98c9-06ab0bf64327`): the
/// current time in 100 ns steps since 1582, a random 14-bit clock sequence and a random node id
/// with the multicast bit set (RFC 4122 §4.5): 61 random bits.
#[must_use]
pub fn new_message_id() -> String {
    // 100 ns intervals between 1582-10-15 and 1970-01-01.
    const GREGORIAN_OFFSET: u64 = 0x01B2_1DD2_1381_4000;
    let now = Utc::now();
    let since_epoch = u64::try_from(now.timestamp()).unwrap_or_default() * 10_000_000
        + u64::from(now.timestamp_subsec_nanos() / 100);
    let ticks = since_epoch + GREGORIAN_OFFSET;
    let time_low = ticks & 0xFFFF_FFFF;
    let time_mid = (ticks >> 32) & 0xFFFF;
    let time_high = ((ticks >> 48) & 0x0FFF) | 0x1000;
    let clock = (rand::random::<u16>() & 0x3FFF) | 0x8000;
    let mut node: [u8; 6] = rand::random();
    node[0] |= 0x01;
    format!(
        "{time_low:08x}-{time_mid:04x}-{time_high:04x}-{clock:04x}-{}",
        hex::encode(node)
    )
}

#[cfg(test)]
mod tests;
