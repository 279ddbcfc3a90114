//! Carriers: one module per carrier, each implementing that carrier exactly as it documents
//! itself (facts and sources: `shared/reference/carriers.md`; profiles: `carriers/<name>.toml`).
//!
//! | carrier | inbound webhook | authenticity | send API |
//! |---|---|---|---|
//! | [`twilio`] | form POST/GET | `X-Twilio-Signature` HMAC-SHA1 over URL + params | `Messages.json`, Basic |
//! | [`telnyx`] | JSON v2 events | Ed25519 over `timestamp\|body`, ±5 min | `/v2/messages`, Bearer |
//! | [`vonage`] | SMS API params / Messages API JSON | `sig` (MD5 hash, HMAC-MD5/SHA1/SHA256/SHA512) / JWT `payload_hash` | `/sms/json`, `/v1/messages` |
//! | [`bandwidth`] | JSON array | HTTP Basic | `/api/v2/users/{id}/messages`, Basic |
//! | [`plivo`] | form POST/GET | `X-Plivo-Signature-V3` (and V2) HMAC-SHA256 | `/v1/Account/{id}/Message/`, Basic |
//! | [`sinch`] | JSON | `x-sinch-webhook-signature` HMAC-SHA256 | `/xms/v1/{plan}/batches`, Bearer |
//! | [`rbm`] | JSON, event in base64 `message.data` | `X-Goog-Signature` HMAC-SHA512 | `agentMessages`, OAuth 2 |
//!
//! # What a carrier module provides
//!
//! Account-independent functions (module level):
//! - `hint(&WebhookRequest, Route) -> Result<Option<BusinessAddress>, PayloadError>`: which of our
//!   senders a webhook concerns, read *before* authentication only to choose whose credentials
//!   verify it (`None`: try every account of the carrier);
//! - `parse(&WebhookRequest, Route) -> Result<Vec<Event>, PayloadError>`: the authenticated
//!   payload as normalized [`Event`]s (one webhook may carry several);
//! - `verify_with_secret(&SecretString, &WebhookRequest, now) -> Verification`: the check with
//!   only the verifying secret, as `drawbridge webhook verify --secret` has it;
//! - `parse_send_reply(&HttpReply) -> SendResult` and `parse_lookup_reply(&HttpReply)`;
//! - `new_message_id() -> String`: an id shaped like the carrier's own (the fake and `simulate`).
//!
//! Account methods (`<carrier>::Account`): `from_config`, `verify`, `build_send`,
//! `build_lookup`, `simulate_inbound`, `simulate_status`, `secrets`. [`CarrierAccount`] dispatches
//! to them.
//!
//! Every comparison of a signature, token or credential is constant-time.

pub mod bandwidth;
pub mod client;
pub mod form;
pub mod plivo;
pub mod profile;
pub mod rbm;
pub mod sinch;
pub mod telnyx;
pub mod twilio;
pub mod vonage;
pub mod wire;

pub use profile::Profile;
pub use wire::{HttpCall, HttpReply, Method, WebhookRequest};

use crate::config::Mode;
use crate::phone::{BusinessAddress, E164};
use crate::pipeline::{Channel, Inbound, Media};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use std::time::Duration;
use zeroize::Zeroizing;

/// The carriers Drawbridge speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Carrier {
    Twilio,
    Telnyx,
    Vonage,
    Bandwidth,
    Plivo,
    Sinch,
    /// Google RCS Business Messaging.
    Rbm,
}

impl Carrier {
    pub const ALL: [Self; 7] = [
        Self::Twilio,
        Self::Telnyx,
        Self::Vonage,
        Self::Bandwidth,
        Self::Plivo,
        Self::Sinch,
        Self::Rbm,
    ];

    /// The name used in routes (`/webhooks/{name}`), configuration, metrics and the database.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
            Self::Telnyx => "telnyx",
            Self::Vonage => "vonage",
            Self::Bandwidth => "bandwidth",
            Self::Plivo => "plivo",
            Self::Sinch => "sinch",
            Self::Rbm => "rbm",
        }
    }

    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Every carrier name, comma-separated (error messages).
    #[must_use]
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    #[must_use]
    pub fn profile(self) -> &'static Profile {
        profile::get(self)
    }

    /// See the module documentation.
    ///
    /// # Errors
    /// [`PayloadError`] when the payload is too malformed to say.
    pub fn hint(
        self,
        request: &WebhookRequest,
        route: Route,
    ) -> Result<Option<BusinessAddress>, PayloadError> {
        match self {
            Self::Twilio => twilio::hint(request, route),
            Self::Telnyx => telnyx::hint(request, route),
            Self::Vonage => vonage::hint(request, route),
            Self::Bandwidth => bandwidth::hint(request, route),
            Self::Plivo => plivo::hint(request, route),
            Self::Sinch => sinch::hint(request, route),
            Self::Rbm => rbm::hint(request, route),
        }
    }

    /// Parses an authenticated webhook into events.
    ///
    /// # Errors
    /// [`PayloadError`] naming the first missing or malformed field.
    pub fn parse(self, request: &WebhookRequest, route: Route) -> Result<Vec<Event>, PayloadError> {
        match self {
            Self::Twilio => twilio::parse(request, route),
            Self::Telnyx => telnyx::parse(request, route),
            Self::Vonage => vonage::parse(request, route),
            Self::Bandwidth => bandwidth::parse(request, route),
            Self::Plivo => plivo::parse(request, route),
            Self::Sinch => sinch::parse(request, route),
            Self::Rbm => rbm::parse(request, route),
        }
    }

    /// Checks a request with only the verifying secret (`drawbridge webhook verify`): the Twilio
    /// or Plivo auth token, the Telnyx public key (base64), the Vonage signature secret, Bandwidth
    /// `user:password`, the Sinch webhook secret, the RBM client token.
    #[must_use]
    pub fn verify_with_secret(
        self,
        secret: &SecretString,
        request: &WebhookRequest,
        now: DateTime<Utc>,
    ) -> Verification {
        match self {
            Self::Twilio => twilio::verify_with_secret(secret, request, now),
            Self::Telnyx => telnyx::verify_with_secret(secret, request, now),
            Self::Vonage => vonage::verify_with_secret(secret, request, now),
            Self::Bandwidth => bandwidth::verify_with_secret(secret, request, now),
            Self::Plivo => plivo::verify_with_secret(secret, request, now),
            Self::Sinch => sinch::verify_with_secret(secret, request, now),
            Self::Rbm => rbm::verify_with_secret(secret, request, now),
        }
    }

    /// Reads the carrier's answer to a send.
    #[must_use]
    pub fn parse_send_reply(self, reply: &HttpReply) -> SendResult {
        match self {
            Self::Twilio => twilio::parse_send_reply(reply),
            Self::Telnyx => telnyx::parse_send_reply(reply),
            Self::Vonage => vonage::parse_send_reply(reply),
            Self::Bandwidth => bandwidth::parse_send_reply(reply),
            Self::Plivo => plivo::parse_send_reply(reply),
            Self::Sinch => sinch::parse_send_reply(reply),
            Self::Rbm => rbm::parse_send_reply(reply),
        }
    }

    /// Reads the carrier's answer to a lookup ([`CarrierAccount::build_lookup`]).
    ///
    /// # Errors
    /// [`SendError`] when the carrier refused the lookup or answered something unreadable.
    pub fn parse_lookup_reply(self, reply: &HttpReply) -> Result<Vec<Candidate>, SendError> {
        match self {
            Self::Twilio => twilio::parse_lookup_reply(reply),
            Self::Telnyx => telnyx::parse_lookup_reply(reply),
            Self::Vonage => vonage::parse_lookup_reply(reply),
            Self::Bandwidth => bandwidth::parse_lookup_reply(reply),
            Self::Plivo => plivo::parse_lookup_reply(reply),
            Self::Sinch => sinch::parse_lookup_reply(reply),
            Self::Rbm => rbm::parse_lookup_reply(reply),
        }
    }

    /// A fresh message id in the carrier's own format.
    #[must_use]
    pub fn new_message_id(self) -> String {
        match self {
            Self::Twilio => twilio::new_message_id(),
            Self::Telnyx => telnyx::new_message_id(),
            Self::Vonage => vonage::new_message_id(),
            Self::Bandwidth => bandwidth::new_message_id(),
            Self::Plivo => plivo::new_message_id(),
            Self::Sinch => sinch::new_message_id(),
            Self::Rbm => rbm::new_message_id(),
        }
    }

    /// The body and media type the carrier expects when a webhook was accepted.
    #[must_use]
    pub fn success_reply(self) -> (&'static str, &'static str) {
        match self {
            Self::Twilio => (
                "text/xml; charset=utf-8",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>",
            ),
            Self::Plivo => (
                "application/xml; charset=utf-8",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
            ),
            Self::Telnyx | Self::Vonage | Self::Bandwidth | Self::Sinch | Self::Rbm => {
                ("text/plain; charset=utf-8", "")
            }
        }
    }
}

/// Which of a carrier's two webhook routes a request arrived on. Carriers that send everything
/// to one URL (Bandwidth, RBM, Telnyx) are parsed the same on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/webhooks/{carrier}`.
    Inbound,
    /// `/webhooks/{carrier}/status`.
    Status,
}

impl Route {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Status => "status",
        }
    }
}

/// Why a payload was refused. Names the field, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("required field `{0}` is missing or empty")]
    Missing(&'static str),
    #[error("field `{0}` is not a phone number")]
    BadPhone(&'static str),
    #[error("field `{0}` is not a valid value")]
    Invalid(&'static str),
    #[error("the body is not {0}")]
    Body(&'static str),
    #[error("the request's content type is not {0}")]
    ContentType(&'static str),
    #[error(transparent)]
    Form(#[from] form::FormError),
}

/// Something a carrier told us, normalized.
#[derive(Debug)]
pub enum Event {
    /// A customer's message (SMS, MMS, RCS).
    Message(Inbound),
    /// A delivery status for a message we sent.
    Status(StatusUpdate),
    /// The customer opted out or back in through the carrier (RBM unsubscribe, for example).
    Consent(ConsentReport),
    /// A set-up handshake to answer with this text (RBM's webhook verification `secret`).
    Challenge(Zeroizing<String>),
    /// Acknowledged and counted, nothing stored (typing indicators, events about inbound
    /// messages, carrier events we have no use for). The reason is a fixed word for metrics.
    Ignored(&'static str),
}

/// A delivery status report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The carrier's id of the message we sent.
    pub carrier_message_id: String,
    /// The carrier's own word, as sent (bounded by [`check_token`]).
    pub carrier_status: String,
    /// Ours (from the profile), or `None` when the carrier's word is not in our vocabulary.
    pub status: Option<&'static str>,
    pub error_code: Option<String>,
}

/// Whether a customer opted out or back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentKind {
    OptOut,
    OptIn,
}

impl ConsentKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptOut => "opt_out",
            Self::OptIn => "opt_in",
        }
    }
}

/// A consent change the carrier reported.
#[derive(Debug)]
pub struct ConsentReport {
    /// The carrier's id of the event: retries carry the same one.
    pub event_id: String,
    pub contact: E164,
    pub business: BusinessAddress,
    pub kind: ConsentKind,
}

/// The result of checking a webhook's authenticity.
#[derive(Debug, Clone)]
pub struct Verification {
    pub valid: bool,
    /// The scheme checked, e.g. `X-Twilio-Signature (HMAC-SHA1)`.
    pub scheme: &'static str,
    /// Exactly what was signed, what was expected and what was received, for each form tried.
    /// Holds request content: shown by `drawbridge webhook verify`, never logged.
    pub details: Vec<String>,
    /// An invalid request the carrier will send again, signed, if answered 5xx (Vonage's Messages
    /// API after an internal error): the handler answers 503 instead of 403.
    pub retry_signed: bool,
    /// A valid request whose signature does not cover the body (Plivo V2 signs the URL and a
    /// nonce): the handler refuses this key if it was seen before with a different body, so a
    /// captured signature cannot carry forged content.
    pub replay_key: Option<String>,
}

impl Verification {
    #[must_use]
    pub fn new(valid: bool, scheme: &'static str, details: Vec<String>) -> Self {
        Self {
            valid,
            scheme,
            details,
            retry_signed: false,
            replay_key: None,
        }
    }

    /// See [`Verification::retry_signed`].
    #[must_use]
    pub fn retry_signed(mut self) -> Self {
        self.retry_signed = true;
        self
    }

    /// See [`Verification::replay_key`].
    #[must_use]
    pub fn replay_key(mut self, key: String) -> Self {
        self.replay_key = Some(key);
        self
    }
}

/// A suggestion attached to a rich (RCS) message. Carriers without rich messages send the text
/// fallback ([`OutboundMessage::text_with_fallbacks`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Suggestion {
    /// A suggested reply: tapping it sends `text` back, with `postback` as its data.
    Reply { text: String, postback: String },
    /// An open-URL action.
    OpenUrl { text: String, url: String },
}

/// A message to send, everything already decided (sender, channel, text).
#[derive(Clone)]
pub struct OutboundMessage<'a> {
    /// Our outbox row id: the RBM `messageId`, a client reference where the carrier has one.
    pub outbox_id: &'a str,
    pub from: &'a BusinessAddress,
    pub to: &'a E164,
    pub channel: Channel,
    pub body: &'a str,
    pub media_urls: &'a [String],
    pub suggestions: &'a [Suggestion],
    /// Where the carrier should send status callbacks: `{public_url}/webhooks/{carrier}/status`.
    pub status_callback: &'a str,
}

impl std::fmt::Debug for OutboundMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundMessage")
            .field("outbox_id", &self.outbox_id)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("channel", &self.channel)
            .field("body_chars", &self.body.chars().count())
            .field("media", &self.media_urls.len())
            .field("suggestions", &self.suggestions.len())
            .finish()
    }
}

impl OutboundMessage<'_> {
    /// The body followed by each open-URL suggestion as `text: url` on its own line, for carriers
    /// and channels without rich messages.
    #[must_use]
    pub fn text_with_fallbacks(&self) -> String {
        let mut text = self.body.to_owned();
        for suggestion in self.suggestions {
            if let Suggestion::OpenUrl { text: label, url } = suggestion {
                if !text.contains(url.as_str()) {
                    text.push_str(&format!("\n{label}: {url}"));
                }
            }
        }
        text
    }
}

/// Our classes of send failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The recipient opted out; do not retry.
    OptedOut,
    /// Too many requests; retry later (after `Retry-After` when given).
    Throttled,
    /// The number cannot receive messages; do not retry.
    InvalidNumber,
    /// A temporary failure on the carrier's side or the network's; retry.
    Transient,
    /// Anything else the carrier refused; do not retry.
    Permanent,
}

impl ErrorClass {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptedOut => "opted_out",
            Self::Throttled => "throttled",
            Self::InvalidNumber => "invalid_number",
            Self::Transient => "transient",
            Self::Permanent => "permanent",
        }
    }

    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::OptedOut,
            Self::Throttled,
            Self::InvalidNumber,
            Self::Transient,
            Self::Permanent,
        ]
        .into_iter()
        .find(|c| c.as_str() == text)
    }

    /// Whether a send that failed this way may be tried again.
    #[must_use]
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Throttled | Self::Transient)
    }
}

/// A send the carrier refused, or that could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub class: ErrorClass,
    /// The carrier's own error code (bounded by [`check_token`]), when it gave one.
    pub code: Option<String>,
    pub http_status: Option<u16>,
    pub retry_after: Option<Duration>,
}

impl SendError {
    /// An error classified by `carrier`'s profile from the HTTP status and the carrier's code.
    #[must_use]
    pub fn classified(carrier: Carrier, reply: &HttpReply, code: Option<String>) -> Self {
        let code = code.filter(|c| check_token(c, 64));
        Self {
            class: carrier
                .profile()
                .classify(Some(reply.status), code.as_deref()),
            code,
            http_status: Some(reply.status),
            retry_after: reply.retry_after,
        }
    }

    /// An error of our own making (a message the carrier cannot take, a missing credential).
    #[must_use]
    pub fn local(class: ErrorClass, code: &'static str) -> Self {
        Self {
            class,
            code: Some(code.to_owned()),
            http_status: None,
            retry_after: None,
        }
    }
}

/// What became of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// The carrier accepted the message and gave it this id.
    Accepted {
        carrier_message_id: String,
        /// Our status for the carrier's word in the reply, if it gave one.
        status: Option<&'static str>,
    },
    /// The carrier did not take the message.
    Rejected(SendError),
    /// The carrier may or may not have taken it (a timeout, a dropped connection, a gateway
    /// timeout): resolve before sending again (see [`profile::Resend`]).
    Uncertain(&'static str),
}

/// What to look for when resolving an uncertain send.
#[derive(Debug, Clone)]
pub struct LookupQuery<'a> {
    pub outbox_id: &'a str,
    pub from: &'a BusinessAddress,
    pub to: &'a E164,
    /// When the uncertain attempt began, less a margin for clock skew.
    pub since: DateTime<Utc>,
}

/// A message the carrier's API lists as sent from our sender to the recipient since the query's
/// time.
#[derive(Clone)]
pub struct Candidate {
    pub carrier_message_id: String,
    /// Our outbox id, where the carrier echoes a client reference.
    pub client_reference: Option<String>,
    /// The text, where the carrier's listing includes it.
    pub body: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate")
            .field("carrier_message_id", &self.carrier_message_id)
            .field("client_reference", &self.client_reference)
            .field("has_body", &self.body.is_some())
            .finish()
    }
}

/// A simulated inbound message (`drawbridge simulate inbound`, tests).
#[derive(Debug, Clone)]
pub struct SimulatedInbound<'a> {
    pub message_id: &'a str,
    pub from: &'a E164,
    pub to: &'a BusinessAddress,
    pub body: &'a str,
    pub media: &'a [Media],
}

/// A simulated status callback for a message we sent.
#[derive(Debug, Clone)]
pub struct SimulatedStatus<'a> {
    pub carrier_message_id: &'a str,
    /// The carrier's own status word (`delivered`, `message-delivered`, `DELIVERED` …).
    pub status: &'a str,
    pub error_code: Option<&'a str>,
    /// Our sender.
    pub from: &'a BusinessAddress,
    /// The recipient.
    pub to: &'a E164,
}

/// What signing a simulated webhook needs beyond the account.
#[derive(Debug, Clone)]
pub struct SimulationKeys {
    pub now: DateTime<Utc>,
    /// The carrier's private signing key where only the carrier holds one (Telnyx: base64 of the
    /// 32-byte Ed25519 seed).
    pub signing_key: Option<SecretString>,
}

/// A carrier account: the credentials that verify the carrier's webhooks to our senders and
/// authenticate our calls to its API.
#[derive(Debug, Clone)]
pub enum CarrierAccount {
    Twilio(twilio::Account),
    Telnyx(telnyx::Account),
    Vonage(vonage::Account),
    Bandwidth(bandwidth::Account),
    Plivo(plivo::Account),
    Sinch(sinch::Account),
    Rbm(rbm::Account),
}

macro_rules! dispatch {
    ($self:expr, $account:ident => $body:expr) => {
        match $self {
            CarrierAccount::Twilio($account) => $body,
            CarrierAccount::Telnyx($account) => $body,
            CarrierAccount::Vonage($account) => $body,
            CarrierAccount::Bandwidth($account) => $body,
            CarrierAccount::Plivo($account) => $body,
            CarrierAccount::Sinch($account) => $body,
            CarrierAccount::Rbm($account) => $body,
        }
    };
}

impl CarrierAccount {
    /// Reads the carrier-specific keys of an `[[accounts]]` entry (everything but `name` and
    /// `carrier`).
    ///
    /// # Errors
    /// A message naming the key at fault (never a secret's value).
    pub fn from_config(carrier: Carrier, fields: &toml::Table, mode: Mode) -> Result<Self, String> {
        Ok(match carrier {
            Carrier::Twilio => Self::Twilio(twilio::Account::from_config(fields, mode)?),
            Carrier::Telnyx => Self::Telnyx(telnyx::Account::from_config(fields, mode)?),
            Carrier::Vonage => Self::Vonage(vonage::Account::from_config(fields, mode)?),
            Carrier::Bandwidth => Self::Bandwidth(bandwidth::Account::from_config(fields, mode)?),
            Carrier::Plivo => Self::Plivo(plivo::Account::from_config(fields, mode)?),
            Carrier::Sinch => Self::Sinch(sinch::Account::from_config(fields, mode)?),
            Carrier::Rbm => Self::Rbm(rbm::Account::from_config(fields, mode)?),
        })
    }

    #[must_use]
    pub fn carrier(&self) -> Carrier {
        match self {
            Self::Twilio(_) => Carrier::Twilio,
            Self::Telnyx(_) => Carrier::Telnyx,
            Self::Vonage(_) => Carrier::Vonage,
            Self::Bandwidth(_) => Carrier::Bandwidth,
            Self::Plivo(_) => Carrier::Plivo,
            Self::Sinch(_) => Carrier::Sinch,
            Self::Rbm(_) => Carrier::Rbm,
        }
    }

    /// The API base in use: the account's override or the profile's.
    #[must_use]
    pub fn api_base(&self) -> &url::Url {
        dispatch!(self, a => a.api_base())
    }

    /// Checks a webhook's authenticity with this account's credentials.
    #[must_use]
    pub fn verify(&self, request: &WebhookRequest, now: DateTime<Utc>) -> Verification {
        dispatch!(self, a => a.verify(request, now))
    }

    /// The request that sends `message`. `token` is the OAuth access token for carriers that need
    /// one ([`CarrierAccount::needs_access_token`]).
    ///
    /// # Errors
    /// [`SendError`] when the message cannot be expressed for this carrier (a channel it does not
    /// offer, a missing credential).
    pub fn build_send(
        &self,
        message: &OutboundMessage<'_>,
        token: Option<&str>,
    ) -> Result<HttpCall, SendError> {
        dispatch!(self, a => a.build_send(message, token))
    }

    /// The request that lists messages matching `query`, for carriers resolved by lookup.
    #[must_use]
    pub fn build_lookup(&self, query: &LookupQuery<'_>, token: Option<&str>) -> Option<HttpCall> {
        dispatch!(self, a => a.build_lookup(query, token))
    }

    /// Whether calls need an OAuth access token first (RBM).
    #[must_use]
    pub fn needs_access_token(&self) -> bool {
        matches!(self, Self::Rbm(_))
    }

    /// A signed inbound webhook as the carrier would send it to `url`.
    ///
    /// # Errors
    /// When the account cannot sign (Telnyx without `signing_key`) or the message cannot be
    /// expressed for this carrier.
    pub fn simulate_inbound(
        &self,
        url: &str,
        message: &SimulatedInbound<'_>,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        dispatch!(self, a => a.simulate_inbound(url, message, keys))
    }

    /// A signed status callback as the carrier would send it to `url`.
    ///
    /// # Errors
    /// As [`CarrierAccount::simulate_inbound`].
    pub fn simulate_status(
        &self,
        url: &str,
        status: &SimulatedStatus<'_>,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        dispatch!(self, a => a.simulate_status(url, status, keys))
    }

    /// Every secret this account holds, for tests that scan logs and stored bytes for them.
    #[must_use]
    pub fn secrets(&self) -> Vec<String> {
        dispatch!(self, a => a.secrets())
    }
}

/// Deserializes an account's keys into a carrier's own struct (which should deny unknown
/// fields). A serde message that quotes the value of a key named in `secret_keys` is replaced by
/// one that does not.
///
/// # Errors
/// The problem, naming the key where serde does.
pub fn account_fields<T: DeserializeOwned>(
    fields: &toml::Table,
    secret_keys: &[&str],
) -> Result<T, String> {
    T::deserialize(toml::Value::Table(fields.clone())).map_err(|e| {
        let message = e.message().trim().to_owned();
        let leaked = secret_keys.iter().find(|key| {
            fields.get(**key).is_some_and(|value| {
                let text = match value {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                !text.is_empty() && message.contains(&text)
            })
        });
        match leaked {
            Some(key) => format!("`{key}`: invalid value (not shown: the key holds a secret)"),
            None => message,
        }
    })
}

/// The API base: `configured` when given (an http(s) URL with a host), else the profile's.
///
/// # Errors
/// When `configured` is not such a URL.
pub fn api_base(carrier: Carrier, configured: Option<&str>) -> Result<url::Url, String> {
    match configured {
        None => Ok(carrier.profile().api_base.clone()),
        Some(text) => {
            let url = url::Url::parse(text.trim())
                .map_err(|e| format!("`api_base`: `{text}` is not a URL ({e})"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(format!(
                    "`api_base`: `{text}` must be an http:// or https:// URL with a host"
                ));
            }
            Ok(url)
        }
    }
}

/// Joins a path onto an API base, keeping any path prefix the base has (`http://fake/twilio` +
/// `/2010-04-01/…`).
///
/// # Errors
/// When the result is not a URL (a path with characters that cannot be in one).
pub fn endpoint(base: &url::Url, path: &str) -> Result<url::Url, SendError> {
    let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path);
    url::Url::parse(&joined).map_err(|_| SendError::local(ErrorClass::Permanent, "bad_endpoint"))
}

/// True when `text` is a short token safe to store: at most `max` bytes of ASCII letters, digits
/// and `-_.:/`. Carrier message ids, status words and error codes must pass this before they are
/// stored, so a carrier (or a forger) cannot put free text into those columns.
#[must_use]
pub fn check_token(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
}

/// A required id field (a message or event id): present and a [`check_token`] of at most 128 bytes.
///
/// # Errors
/// [`PayloadError`] naming `field`.
pub fn id_field(value: Option<&str>, field: &'static str) -> Result<String, PayloadError> {
    let value = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(PayloadError::Missing(field))?;
    if check_token(value, 128) {
        Ok(value.to_owned())
    } else {
        Err(PayloadError::Invalid(field))
    }
}

/// A required status word: present and a [`check_token`] of at most 64 bytes.
///
/// # Errors
/// [`PayloadError`] naming `field`.
pub fn word_field(value: Option<&str>, field: &'static str) -> Result<String, PayloadError> {
    let value = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(PayloadError::Missing(field))?;
    if check_token(value, 64) {
        Ok(value.to_owned())
    } else {
        Err(PayloadError::Invalid(field))
    }
}

/// An optional error code: absent, empty or `0`-like values are `None`; otherwise a
/// [`check_token`] of at most 32 bytes.
///
/// # Errors
/// [`PayloadError::Invalid`] naming `field`.
pub fn code_field(
    value: Option<&str>,
    field: &'static str,
) -> Result<Option<String>, PayloadError> {
    match value
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.bytes().all(|b| b == b'0'))
    {
        None => Ok(None),
        Some(code) if check_token(code, 32) => Ok(Some(code.to_owned())),
        Some(_) => Err(PayloadError::Invalid(field)),
    }
}

/// A customer's phone number, E.164 or digits without `+`.
///
/// # Errors
/// [`PayloadError`] naming `field`.
pub fn phone_field(value: Option<&str>, field: &'static str) -> Result<E164, PayloadError> {
    let value = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(PayloadError::Missing(field))?;
    E164::parse_msisdn(value).map_err(|_| PayloadError::BadPhone(field))
}

/// One of our numbers as a carrier writes it (E.164, digits, or a short code).
///
/// # Errors
/// [`PayloadError`] naming `field`.
pub fn business_field(
    value: Option<&str>,
    field: &'static str,
) -> Result<BusinessAddress, PayloadError> {
    let value = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(PayloadError::Missing(field))?;
    BusinessAddress::parse_carrier(value).map_err(|_| PayloadError::BadPhone(field))
}

/// A media reference. The URL is kept (it is sealed before storage); the content type is kept
/// only when it looks like one (`type/subtype`, at most 100 bytes), the name only when short.
#[must_use]
pub fn media(
    url: &str,
    content_type: Option<&str>,
    size: Option<u64>,
    name: Option<&str>,
) -> Media {
    let content_type = content_type
        .map(str::trim)
        .filter(|t| {
            t.len() <= 100
                && t.contains('/')
                && t.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b'.' | b'-' | b'_')
                })
        })
        .map(str::to_ascii_lowercase);
    Media {
        url: url.trim().to_owned(),
        content_type,
        size,
        name: name
            .map(str::trim)
            .filter(|n| !n.is_empty() && n.len() <= 255)
            .map(str::to_owned),
    }
}

/// The JSON object body of a webhook (content type `application/json`).
///
/// # Errors
/// [`PayloadError::ContentType`] for another content type; [`PayloadError::Body`] for anything
/// but a JSON object.
pub fn json_object_body(request: &WebhookRequest) -> Result<serde_json::Value, PayloadError> {
    if request.content_type() != "application/json" {
        return Err(PayloadError::ContentType("application/json"));
    }
    match serde_json::from_slice::<serde_json::Value>(&request.body) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        _ => Err(PayloadError::Body("a JSON object")),
    }
}

/// The string at a JSON pointer (`/data/payload/id`).
#[must_use]
pub fn json_str<'a>(value: &'a serde_json::Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(serde_json::Value::as_str)
}

/// A code at a JSON pointer, written as a string or a number.
#[must_use]
pub fn json_code(value: &serde_json::Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The id of an accepted send, if it is a plausible carrier id ([`check_token`], 128 bytes).
#[must_use]
pub fn accepted(carrier: Carrier, id: Option<&str>, word: Option<&str>) -> SendResult {
    match id.filter(|id| check_token(id, 128)) {
        Some(id) => SendResult::Accepted {
            carrier_message_id: id.to_owned(),
            status: word.and_then(|w| carrier.profile().map_status(w)),
        },
        // A success without a usable id: the message may be on its way, but nothing could
        // match its callbacks. Resolve it like any other uncertain send.
        None => SendResult::Uncertain("accepted_without_id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for carrier in Carrier::ALL {
            assert_eq!(Carrier::from_name(carrier.name()), Some(carrier));
        }
        assert_eq!(Carrier::from_name("pigeon"), None);
        assert!(Carrier::names().contains("rbm"));
    }

    #[test]
    fn tokens_are_bounded() {
        assert!(check_token("SM1f0e8ae6ade43cb3c0ce4525424e404f", 64));
        assert!(!check_token("phones/+15551234567/agentMessages/x", 128));
        assert!(!check_token("", 8));
        assert!(!check_token("a b", 8));
        assert!(!check_token("x".repeat(65).as_str(), 64));
    }

    #[test]
    fn secrets_stay_out_of_account_errors() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Raw {
            token: String,
        }
        let mut table = toml::Table::new();
        table.insert("token".to_owned(), toml::Value::Integer(98_765_432_123));
        let err = account_fields::<Raw>(&table, &["token"])
            .err()
            .unwrap_or_default();
        assert!(!err.contains("98765432123"), "{err}");
        let mut table = toml::Table::new();
        table.insert("colour".to_owned(), toml::Value::String("blue".to_owned()));
        let err = account_fields::<Raw>(&table, &["token"])
            .err()
            .unwrap_or_default();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn fallbacks_carry_open_url_suggestions() {
        let from = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
        let to = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
        let suggestions = [
            Suggestion::OpenUrl {
                text: "Open secure chat".to_owned(),
                url: "https://x.example/s/abc".to_owned(),
            },
            Suggestion::Reply {
                text: "Yes".to_owned(),
                postback: "yes".to_owned(),
            },
        ];
        let message = OutboundMessage {
            outbox_id: "o1",
            from: &from,
            to: &to,
            channel: Channel::Sms,
            body: "For your security:",
            media_urls: &[],
            suggestions: &suggestions,
            status_callback: "https://x.example/webhooks/twilio/status",
        };
        assert_eq!(
            message.text_with_fallbacks(),
            "For your security:\nOpen secure chat: https://x.example/s/abc"
        );
        assert!(!format!("{message:?}").contains("security"));
    }
}
