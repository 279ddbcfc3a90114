//! Google RCS Business Messaging (RBM): user messages and events by webhook, agent messages through
//! `phones.agentMessages.create`, authenticated with a service account (`shared/reference/carriers.md`
//! §10, vector §12.7).
//!
//! Sources: Google's guides (developers.google.com/business-communications/rcs-business-messaging/…)
//! `guides/integrate/webhooks` (handshake, `X-Goog-Signature`, retries), `guides/build/messages/receive`
//! and `guides/build/events/receive-events` (payload examples, unsubscribe), `guides/build/messages/send`
//! (content, suggestions, rich cards, traffic types, limits); the REST reference `UserMessage`,
//! `UserEvent`, `ServerEvent`, `AgentLaunchEvent`, `FileInfo`, `SuggestionResponse`,
//! `phones.agentMessages` and `phones.agentMessages/create`; Google's Node sample agent
//! (rcs-business-messaging/rbm-api-examples `nodejs/agents/rbm-nodejs-client-v1/routes/index.js`);
//! Google's service-account OAuth guide ([`token`]).
//!
//! # Account keys (`[[accounts]]` with `carrier = "rbm"`)
//!
//! - `agent_id`: the agent's id, the part before `@rbm.goog` (what the send API's `agentId` takes,
//!   per Google's Java sample). Our sender is `BusinessAddress::RcsAgent(agent_id)`, configured as
//!   `[[numbers]] rcs_agent = "<agent_id>"`.
//! - `client_token` (secret): the webhook's client token from the RBM console; it keys
//!   `X-Goog-Signature` and answers the set-up handshake. Production refuses fewer than 16
//!   characters and Google's documented examples.
//! - `service_account_key` (secret: the key JSON inline) or `service_account_key_file` (its path,
//!   read at start): exactly one. Its `client_email` and `private_key` (PKCS#8 PEM) sign the token
//!   assertion; its `token_uri` is where tokens come from (tests point it at the fake carrier).
//!   Production refuses a plain-http `token_uri` and the test-only key committed in `carriers/rbm/`.
//! - `message_traffic_type`: `TRANSACTION` (default), `SERVICEREQUEST`, `AUTHENTICATION`,
//!   `PROMOTION` or `ACKNOWLEDGEMENT`, sent as every message's `messageTrafficType`.
//! - `api_base`: default `https://rcsbusinessmessaging.googleapis.com`; a regional endpoint
//!   (`https://REGION-rcsbusinessmessaging.googleapis.com`) or the fake carrier.
//!
//! # Webhooks
//!
//! One URL receives everything (both routes parse alike); [`signature`] checks it.
//! - **Set-up handshake** `{"clientToken", "secret"}` → [`Event::Challenge`] with the secret, which
//!   the handler answers as plain text with 200 (Google's guide; its Node sample answers
//!   `secret: …`, which the guide does not). It names no agent, so every RBM account is tried.
//! - **Events**: a Pub/Sub push envelope whose `message.data` is the base64 event; only the
//!   decoded, signed bytes are read. `agentId` names our sender (with a trailing `@rbm.goog`
//!   removed, since Google's examples show both forms).
//! - **User messages** → [`Event::Message`], channel `rcs`, `carrier_message_id` = `messageId` (or
//!   `eventId`, which Google's guide examples carry instead):
//!   - `text` → the body.
//!   - `userFile` → one [`Media`] from `payload` (`fileUri`, `mimeType`, `fileSizeBytes`,
//!     `fileName`), empty body. The `thumbnail` is a second URL to a preview of the same personal
//!     file and is not kept.
//!   - `suggestionResponse` of a suggested **reply** → the body is the reply's `text` (what the
//!     customer saw sent in their conversation); `postbackData` is not kept: it is our own data
//!     echoed back by the customer's device, which a modified client can set to anything, so it
//!     must not be mistaken for a trusted value. (Only a reply without `text` falls back to it.)
//!     A tap on a suggested **action** (`type: ACTION`, or Google's action example with only
//!     `postbackData`) sends the customer nothing visible and no message: `Ignored("suggested_action")`.
//!   - `location` → the body `[location]`, coordinates dropped. They are precise personal data that
//!     the redaction engine would see as plain numbers and keep; a customer who needs to share a
//!     location can be asked for an address, which redaction does handle.
//! - **User events** (`eventType`): `DELIVERED`, `READ` → [`Event::Status`] for `messageId`, which
//!   is our outbox id (we send it as the `messageId`); `IS_TYPING` → `Ignored("typing")`;
//!   `UNSUBSCRIBE` / `SUBSCRIBE` (`UserEvent.EventType`) → [`Event::Consent`] opt-out / opt-in,
//!   `event_id` = `eventId`. Google Messages also sends a keyword text (`STOP`, …) with each, which
//!   arrives as an ordinary message.
//! - **Server events** `TTL_EXPIRATION_REVOKED` / `TTL_EXPIRATION_REVOKE_FAILED` (`ServerEvent`,
//!   with `phoneNumber`) → statuses (the first maps to `undelivered`); agent launch events
//!   (`message.attributes.type = agent_launch_event`) → `Ignored("agent_launch")`; any other
//!   event type → `Ignored("event")`, never an error (Google retries errors for 7 days).
//!
//! # Sending
//!
//! `POST {api_base}/v1/phones/{E.164}/agentMessages?messageId={outbox id}&agentId={agent_id}`,
//! `Authorization: Bearer {token}`, body `AgentMessage` `{"contentMessage", "messageTrafficType"}`.
//! `contentMessage` holds one of `text`, `contentInfo` or `richCard` (a union in the reference):
//! - text only → `text`; one file and no text → `contentInfo {fileUrl, forceRefresh: false}`;
//!   one file with text → a standalone rich card (vertical, medium media, the text as its
//!   description, at most 2000 bytes), Google's documented way to send both in one message.
//!   Rich card media must be an image or video; Google refuses others with 400.
//! - Several files are refused (`rcs_one_file_per_message`): one outbox row is one `messageId`, the
//!   key that makes resending safe, and splitting it into several messages would need several.
//! - Suggestions go in the message's chip list: a reply as `{"reply": {"text", "postbackData"}}`,
//!   an open-URL as `{"action": {"text", "postbackData": "open_url", "openUrlAction": {"url"}}}`.
//!   Google's limits are checked first (11 suggestions, 25 characters of label, 2048 of postback
//!   data, 3072 characters of text) so a refusal names the cause.
//! - The `messageId` must be a UUID (reference): outbox ids are UUIDv7; anything else is refused
//!   locally (`message_id_not_uuid`). RBM has no per-message callback URL: statuses arrive at the
//!   webhook configured in the console.
//!
//! Replies: `200` with the `AgentMessage`, `name` = `phones/{E.164}/agentMessages/{messageId}` →
//! accepted with our `messageId` as the carrier id, so `DELIVERED`/`READ` match. Errors are
//! Google's `{"error": {"code", "message", "status"}}`; `status` is the code the profile
//! classifies (`NOT_FOUND`: no RCS or unreachable → `invalid_number`; `RESOURCE_EXHAUSTED` →
//! throttled; …). `504` → uncertain.
//!
//! # Resolving an uncertain send: `idempotent`
//!
//! "The RCS for Business platform ignores any agent message sent with an ID that was used by an
//! earlier message or event sent from the same agent" (`phones.agentMessages/create`), so sending
//! again with the same `messageId` is safe; a reused id is answered `409 ALREADY_EXISTS`, read as
//! accepted. The 409 does not repeat the id: it is taken from a `google.rpc.ResourceInfo` detail
//! when there is one (Google's error model attaches one to `ALREADY_EXISTS`; not verified for
//! RBM), and [`parse_send_reply_for`] takes it from the request when the caller has it.
//!
//! # Tokens
//!
//! [`Account::access_token`] runs the service-account flow ([`token`]) and caches the token until
//! 60 s before it expires, shared by every clone of the account. Token endpoint 5xx or no answer →
//! transient; 429 → throttled; other refusals (`invalid_grant`) → permanent.

pub mod signature;
pub mod token;

use super::client::{CarrierClient, TransportError};
use super::{
    accepted, account_fields, check_token, endpoint, id_field, media, phone_field, word_field,
    Candidate, Carrier, ConsentKind, ConsentReport, ErrorClass, Event, HttpCall, HttpReply,
    LookupQuery, Method, OutboundMessage, PayloadError, Route, SendError, SendResult,
    SimulatedInbound, SimulatedStatus, SimulationKeys, StatusUpdate, Suggestion, Verification,
    WebhookRequest,
};
use crate::config::Mode;
use crate::phone::{BusinessAddress, E164};
use crate::pipeline::{Channel, Inbound, Media};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use signature::Body;
use std::sync::Arc;
use std::time::Instant;
use token::{CachedToken, ServiceAccountKey};
use zeroize::Zeroizing;

const CARRIER: Carrier = Carrier::Rbm;

/// The `client_email` of the test-only key in `carriers/rbm/`: refused in production.
pub const TEST_KEY_EMAIL: &str =
    "drawbridge-test-only@drawbridge-test-only.iam.gserviceaccount.com";

/// Client tokens printed in Google's guides: placeholders, refused in production.
const DOCUMENTED_CLIENT_TOKENS: [&str; 2] = ["SJENCPGJESMGUFPY", "YOURCLIENTTOKEN"];

/// `MessageTrafficType` values an agent may send (the reference's enum minus `…_UNSPECIFIED`).
const TRAFFIC_TYPES: [&str; 5] = [
    "TRANSACTION",
    "SERVICEREQUEST",
    "AUTHENTICATION",
    "PROMOTION",
    "ACKNOWLEDGEMENT",
];

/// Google's limits (guides/build/messages/send).
const MAX_TEXT_CHARS: usize = 3072;
const MAX_CARD_DESCRIPTION_BYTES: usize = 2000;
const MAX_SUGGESTIONS: usize = 11;
const MAX_SUGGESTION_TEXT_CHARS: usize = 25;
const MAX_POSTBACK_CHARS: usize = 2048;

/// The body a shared location becomes.
pub const LOCATION_BODY: &str = "[location]";

/// An RBM agent and the credentials for it.
#[derive(Clone)]
pub struct Account {
    /// The agent's id (without `@rbm.goog`): the sender, and the `agentId` of every send.
    pub agent_id: String,
    /// Keys `X-Goog-Signature` and answers the set-up handshake.
    pub client_token: SecretString,
    /// Signs the token assertion.
    pub service_account: ServiceAccountKey,
    /// `messageTrafficType` of every message.
    pub message_traffic_type: &'static str,
    pub api_base: url::Url,
    /// The access token, shared by every clone (see [`Account::access_token`]).
    token: Arc<tokio::sync::Mutex<Option<CachedToken>>>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("agent_id", &self.agent_id)
            .field("client_token", &"[REDACTED]")
            .field("service_account", &self.service_account)
            .field("message_traffic_type", &self.message_traffic_type)
            .field("api_base", &self.api_base.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    agent_id: String,
    client_token: SecretString,
    service_account_key: Option<SecretString>,
    service_account_key_file: Option<String>,
    message_traffic_type: Option<String>,
    api_base: Option<String>,
}

impl Account {
    /// Reads `agent_id`, `client_token`, `service_account_key` or `service_account_key_file`,
    /// `message_traffic_type` and `api_base` (see the module documentation).
    ///
    /// # Errors
    /// A message naming the key at fault, never quoting a secret.
    pub fn from_config(fields: &toml::Table, mode: Mode) -> Result<Self, String> {
        let raw: Raw = account_fields(fields, &["client_token", "service_account_key"])?;
        let agent_id = raw.agent_id.trim().to_owned();
        if agent_id.ends_with("@rbm.goog") {
            return Err("`agent_id`: give the part before `@rbm.goog`".to_owned());
        }
        if BusinessAddress::rcs_agent(&agent_id).is_err() || agent_id.contains('@') {
            return Err(
                "`agent_id`: an RBM agent id is 1 to 128 letters, digits and `-_.`".to_owned(),
            );
        }
        let client_token = raw.client_token.expose_secret();
        if client_token.trim().is_empty() {
            return Err("`client_token`: must not be empty".to_owned());
        }
        if mode == Mode::Production
            && (client_token.chars().count() < 16
                || DOCUMENTED_CLIENT_TOKENS.contains(&client_token))
        {
            return Err(
                "`client_token`: use the webhook's own client token, at least 16 characters \
                 (value not shown; Google's documented examples are refused)"
                    .to_owned(),
            );
        }
        let service_account = match (&raw.service_account_key, &raw.service_account_key_file) {
            (Some(json), None) => {
                ServiceAccountKey::parse(json.expose_secret(), "service_account_key")?
            }
            (None, Some(path)) => {
                let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    format!("`service_account_key_file`: cannot read `{path}`: {e}")
                })?);
                ServiceAccountKey::parse(&text, "service_account_key_file")?
            }
            _ => {
                return Err(
                    "`service_account_key`: set exactly one of `service_account_key` \
                            (the key JSON) and `service_account_key_file` (its path)"
                        .to_owned(),
                )
            }
        };
        let key_name = if raw.service_account_key.is_some() {
            "service_account_key"
        } else {
            "service_account_key_file"
        };
        if mode == Mode::Production {
            if service_account.token_uri.scheme() != "https" {
                return Err(format!(
                    "`{key_name}`: `token_uri` must be https in production"
                ));
            }
            if service_account.client_email == TEST_KEY_EMAIL {
                return Err(format!(
                    "`{key_name}`: this is the test-only key from the source tree; use your own"
                ));
            }
        }
        let message_traffic_type = match raw.message_traffic_type.as_deref() {
            None => "TRANSACTION",
            Some(text) => TRAFFIC_TYPES
                .iter()
                .find(|t| t.eq_ignore_ascii_case(text.trim()))
                .copied()
                .ok_or_else(|| {
                    format!(
                        "`message_traffic_type`: one of {}",
                        TRAFFIC_TYPES.join(", ")
                    )
                })?,
        };
        Ok(Self {
            agent_id,
            client_token: raw.client_token,
            service_account,
            message_traffic_type,
            api_base: super::api_base(CARRIER, raw.api_base.as_deref())?,
            token: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    #[must_use]
    pub fn api_base(&self) -> &url::Url {
        &self.api_base
    }

    #[must_use]
    pub fn verify(&self, request: &WebhookRequest, now: DateTime<Utc>) -> Verification {
        verify_with_secret(&self.client_token, request, now)
    }

    /// An access token for the RBM API: the cached one while it has more than 60 s to live, else
    /// a new one from the key's `token_uri` ([`token`]).
    ///
    /// # Errors
    /// The token endpoint unreachable or failing → transient; throttling → throttled; a refusal
    /// (`invalid_grant`: wrong key, clock skew, revoked account) → permanent.
    pub async fn access_token(
        &self,
        client: &CarrierClient,
    ) -> Result<Zeroizing<String>, SendError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| t.is_fresh(Instant::now())) {
            return Ok(token.token.clone());
        }
        let call = self.service_account.token_request(Utc::now().timestamp())?;
        let fetched = Instant::now();
        let reply = client.execute(&call).await.map_err(|e| SendError {
            class: ErrorClass::Transient,
            code: Some(
                match e {
                    TransportError::NotSent => "token_connect",
                    TransportError::Unknown(_) => "token_transport",
                }
                .to_owned(),
            ),
            http_status: None,
            retry_after: None,
        })?;
        let (token, expires_in) = token::parse_token_reply(&reply)?;
        *cached = CachedToken::new(token.clone(), fetched, expires_in);
        Ok(token)
    }

    /// `POST …/v1/phones/{E.164}/agentMessages?messageId=…&agentId=…` (module documentation).
    ///
    /// # Errors
    /// No token; a sender that is not this agent; a channel other than RCS; a message RBM cannot
    /// carry (several files, Google's size and count limits); a `messageId` that is not a UUID.
    pub fn build_send(
        &self,
        message: &OutboundMessage<'_>,
        token: Option<&str>,
    ) -> Result<HttpCall, SendError> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| SendError::local(ErrorClass::Permanent, "no_access_token"))?;
        match message.from {
            BusinessAddress::RcsAgent(agent) if *agent == self.agent_id => {}
            BusinessAddress::RcsAgent(_) => {
                return Err(SendError::local(
                    ErrorClass::Permanent,
                    "sender_not_this_agent",
                ))
            }
            _ => {
                return Err(SendError::local(
                    ErrorClass::Permanent,
                    "rbm_sends_from_an_agent",
                ))
            }
        }
        if message.channel != Channel::Rcs {
            return Err(SendError::local(ErrorClass::Permanent, "rbm_is_rcs_only"));
        }
        if uuid::Uuid::parse_str(message.outbox_id).is_err() {
            return Err(SendError::local(
                ErrorClass::Permanent,
                "message_id_not_uuid",
            ));
        }
        let body = json!({
            "contentMessage": content_message(message)?,
            "messageTrafficType": self.message_traffic_type,
        });
        let mut url = endpoint(
            &self.api_base,
            &format!("/v1/phones/{}/agentMessages", message.to.as_str()),
        )?;
        url.query_pairs_mut()
            .append_pair("messageId", message.outbox_id)
            .append_pair("agentId", &self.agent_id);
        Ok(HttpCall::new(Method::Post, url).bearer(token).json(&body))
    }

    /// None: RBM deduplicates on `messageId`, so an uncertain send is simply sent again.
    #[must_use]
    pub fn build_lookup(&self, _query: &LookupQuery<'_>, _token: Option<&str>) -> Option<HttpCall> {
        None
    }

    /// A signed user message, shaped as `UserMessage` (text, or one file as `userFile`).
    ///
    /// # Errors
    /// A recipient that is not an RCS agent; text and a file together, or several files (an RBM
    /// user message carries one kind of content).
    pub fn simulate_inbound(
        &self,
        url: &str,
        message: &SimulatedInbound<'_>,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        let BusinessAddress::RcsAgent(agent) = message.to else {
            return Err("RBM messages are sent to an RCS agent (`rcs:<agent id>`)".to_owned());
        };
        let mut event = Map::new();
        event.insert("senderPhoneNumber".into(), json!(message.from.as_str()));
        event.insert("messageId".into(), json!(message.message_id));
        event.insert("sendTime".into(), json!(rfc3339(keys.now)));
        event.insert("agentId".into(), json!(agent));
        match message.media {
            [] => {
                event.insert("text".into(), json!(message.body));
            }
            [file] if message.body.is_empty() => {
                let mut payload = Map::new();
                if let Some(content_type) = &file.content_type {
                    payload.insert("mimeType".into(), json!(content_type));
                }
                if let Some(size) = file.size {
                    payload.insert("fileSizeBytes".into(), json!(size));
                }
                payload.insert("fileUri".into(), json!(file.url));
                if let Some(name) = &file.name {
                    payload.insert("fileName".into(), json!(name));
                }
                event.insert("userFile".into(), json!({ "payload": payload }));
            }
            _ => {
                return Err(
                    "an RBM user message carries text or one file, not both or several".to_owned(),
                )
            }
        }
        Ok(self.signed_event(url, &Value::Object(event), keys.now))
    }

    /// A signed user event (`DELIVERED`, `READ`, `IS_TYPING`, `UNSUBSCRIBE`, `SUBSCRIBE`) or server
    /// event (`TTL_EXPIRATION_REVOKED`, `TTL_EXPIRATION_REVOKE_FAILED`). RBM events carry no error
    /// code; `error_code` is not used.
    ///
    /// # Errors
    /// A sender that is not an RCS agent, or another status word.
    pub fn simulate_status(
        &self,
        url: &str,
        status: &SimulatedStatus<'_>,
        keys: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        let BusinessAddress::RcsAgent(agent) = status.from else {
            return Err("RBM messages are sent from an RCS agent (`rcs:<agent id>`)".to_owned());
        };
        let word = status.status.trim().to_ascii_uppercase();
        let now = rfc3339(keys.now);
        let event = match word.as_str() {
            "DELIVERED" | "READ" => json!({
                "senderPhoneNumber": status.to.as_str(),
                "eventType": word,
                "eventId": new_event_id(),
                "messageId": status.carrier_message_id,
                "sendTime": now,
                "agentId": agent,
            }),
            "IS_TYPING" | "UNSUBSCRIBE" | "SUBSCRIBE" => json!({
                "senderPhoneNumber": status.to.as_str(),
                "eventType": word,
                "eventId": new_event_id(),
                "sendTime": now,
                "agentId": agent,
            }),
            "TTL_EXPIRATION_REVOKED" | "TTL_EXPIRATION_REVOKE_FAILED" => json!({
                "phoneNumber": status.to.as_str(),
                "agentId": agent,
                "messageId": status.carrier_message_id,
                "eventType": word,
                "eventId": new_event_id(),
                "sendTime": now,
            }),
            _ => {
                return Err(format!(
                    "RBM event types are DELIVERED, READ, IS_TYPING, UNSUBSCRIBE, SUBSCRIBE, \
                     TTL_EXPIRATION_REVOKED and TTL_EXPIRATION_REVOKE_FAILED, not `{}`",
                    status.status
                ))
            }
        };
        Ok(self.signed_event(url, &event, keys.now))
    }

    /// The Pub/Sub push envelope Google posts, with `X-Goog-Signature` over the event bytes.
    fn signed_event(&self, url: &str, event: &Value, now: DateTime<Utc>) -> WebhookRequest {
        let data = Zeroizing::new(serde_json::to_vec(event).unwrap_or_default());
        // Pub/Sub message ids are decimal, about 17 digits.
        let pubsub_id =
            (rand::random::<u64>() % 90_000_000_000_000_000 + 10_000_000_000_000_000).to_string();
        let published = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let envelope = json!({
            "message": {
                "data": STANDARD.encode(data.as_slice()),
                "messageId": pubsub_id,
                "message_id": pubsub_id,
                "publishTime": published,
                "publish_time": published,
            },
            "subscription": format!(
                "projects/rbm-{}/subscriptions/rbm-agent-subscription",
                self.agent_id
            ),
        });
        WebhookRequest::new(
            Method::Post,
            url,
            [
                ("Content-Type".to_owned(), "application/json".to_owned()),
                (
                    "X-Goog-Signature".to_owned(),
                    signature::sign(&self.client_token, &data),
                ),
            ],
            serde_json::to_vec(&envelope).unwrap_or_default(),
        )
    }

    /// The client token, the private key (as PEM and its first base64 line, which is what shows in
    /// a log that escaped the newlines), and the cached access token when there is one.
    #[must_use]
    pub fn secrets(&self) -> Vec<String> {
        let pem = self.service_account.private_key.expose_secret();
        let mut secrets = vec![self.client_token.expose_secret().to_owned(), pem.to_owned()];
        if let Some(line) = pem
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("-----"))
        {
            secrets.push(line.to_owned());
        }
        if let Ok(cached) = self.token.try_lock() {
            if let Some(token) = cached.as_ref() {
                secrets.push(token.token.to_string());
            }
        }
        secrets
    }
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The `contentMessage` of an agent message (module documentation).
fn content_message(message: &OutboundMessage<'_>) -> Result<Value, SendError> {
    let too = |code: &'static str| SendError::local(ErrorClass::Permanent, code);
    if message.body.chars().count() > MAX_TEXT_CHARS {
        return Err(too("rcs_text_too_long"));
    }
    let mut content = Map::new();
    match message.media_urls {
        [] if message.body.is_empty() => return Err(too("empty_message")),
        [] => {
            content.insert("text".into(), json!(message.body));
        }
        [file] if message.body.is_empty() => {
            content.insert(
                "contentInfo".into(),
                json!({ "fileUrl": file, "forceRefresh": false }),
            );
        }
        [file] => {
            if message.body.len() > MAX_CARD_DESCRIPTION_BYTES {
                return Err(too("rcs_card_text_too_long"));
            }
            content.insert(
                "richCard".into(),
                json!({
                    "standaloneCard": {
                        "cardOrientation": "VERTICAL",
                        "cardContent": {
                            "description": message.body,
                            "media": {
                                "height": "MEDIUM",
                                "contentInfo": { "fileUrl": file, "forceRefresh": false },
                            },
                        },
                    },
                }),
            );
        }
        _ => return Err(too("rcs_one_file_per_message")),
    }
    if !message.suggestions.is_empty() {
        if message.suggestions.len() > MAX_SUGGESTIONS {
            return Err(too("rcs_too_many_suggestions"));
        }
        let suggestions = message
            .suggestions
            .iter()
            .map(|suggestion| {
                let label = match suggestion {
                    Suggestion::Reply { text, .. } | Suggestion::OpenUrl { text, .. } => text,
                };
                if label.is_empty() || label.chars().count() > MAX_SUGGESTION_TEXT_CHARS {
                    return Err(too("rcs_suggestion_text_too_long"));
                }
                Ok(match suggestion {
                    Suggestion::Reply { text, postback } => {
                        if postback.is_empty() || postback.chars().count() > MAX_POSTBACK_CHARS {
                            return Err(too("rcs_postback_too_long"));
                        }
                        json!({ "reply": { "text": text, "postbackData": postback } })
                    }
                    Suggestion::OpenUrl { text, url } => {
                        if url.chars().count() > MAX_POSTBACK_CHARS {
                            return Err(too("rcs_url_too_long"));
                        }
                        json!({ "action": {
                            "text": text,
                            "postbackData": "open_url",
                            "openUrlAction": { "url": url },
                        } })
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        content.insert("suggestions".into(), Value::Array(suggestions));
    }
    Ok(Value::Object(content))
}

/// `X-Goog-Signature` over the decoded `message.data`, or the handshake's `clientToken`
/// ([`signature`]). `secret` is the client token. There is no timestamp to check: Google signs
/// none, and retries for up to 7 days (dedupe on `messageId`/`eventId` instead).
#[must_use]
pub fn verify_with_secret(
    secret: &SecretString,
    request: &WebhookRequest,
    _now: DateTime<Utc>,
) -> Verification {
    let (valid, details) = signature::check(secret, request);
    Verification::new(valid, signature::SCHEME, details)
}

fn json_body(request: &WebhookRequest) -> Result<Body, PayloadError> {
    let content_type = request.content_type();
    if !(content_type.is_empty() || content_type == "application/json") {
        return Err(PayloadError::ContentType("application/json"));
    }
    signature::read_body(&request.body)
}

/// Our sender from an `agentId`, without a trailing `@rbm.goog`.
fn agent_address(id: &str) -> Result<BusinessAddress, PayloadError> {
    let id = id.trim();
    let id = id.strip_suffix("@rbm.goog").unwrap_or(id);
    BusinessAddress::rcs_agent(id).map_err(|_| PayloadError::Invalid("agentId"))
}

fn decoded_event(data: &[u8]) -> Result<Map<String, Value>, PayloadError> {
    match serde_json::from_slice(data) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(PayloadError::Invalid("message.data")),
    }
}

/// The agent the event is for (`agentId` of the decoded event); `None` for the handshake, which
/// names none, and for an event without `agentId`.
///
/// # Errors
/// Wrong content type (415), an unreadable body, `message.data` or `agentId` (400).
pub fn hint(
    request: &WebhookRequest,
    _route: Route,
) -> Result<Option<BusinessAddress>, PayloadError> {
    match json_body(request)? {
        Body::Handshake { .. } => Ok(None),
        Body::Event { data, .. } => match decoded_event(&data)?.get("agentId") {
            None => Ok(None),
            Some(Value::String(id)) => agent_address(id).map(Some),
            Some(_) => Err(PayloadError::Invalid("agentId")),
        },
    }
}

/// The handshake or the event of an authenticated webhook (module documentation).
///
/// # Errors
/// [`PayloadError`] naming the first missing or malformed field.
pub fn parse(request: &WebhookRequest, _route: Route) -> Result<Vec<Event>, PayloadError> {
    Ok(vec![match json_body(request)? {
        Body::Handshake { secret, .. } => {
            if secret.len() > 1024 || secret.chars().any(char::is_control) {
                return Err(PayloadError::Invalid("secret"));
            }
            Event::Challenge(secret)
        }
        Body::Event {
            data,
            attribute_type,
            ..
        } => parse_event(&data, attribute_type.as_deref())?,
    }])
}

fn text_field<'a>(event: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    event.get(name).and_then(Value::as_str)
}

fn parse_event(data: &[u8], attribute_type: Option<&str>) -> Result<Event, PayloadError> {
    let event = decoded_event(data)?;
    if attribute_type == Some("agent_launch_event") || event.contains_key("newLaunchState") {
        return Ok(Event::Ignored("agent_launch"));
    }
    if let Some(event_type) = event.get("eventType") {
        let word = word_field(event_type.as_str(), "eventType")?;
        return match word.as_str() {
            "DELIVERED" | "READ" | "TTL_EXPIRATION_REVOKED" | "TTL_EXPIRATION_REVOKE_FAILED" => {
                Ok(Event::Status(StatusUpdate {
                    carrier_message_id: id_field(text_field(&event, "messageId"), "messageId")?,
                    status: CARRIER.profile().map_status(&word),
                    carrier_status: word,
                    error_code: None,
                }))
            }
            "IS_TYPING" => Ok(Event::Ignored("typing")),
            "UNSUBSCRIBE" | "SUBSCRIBE" => Ok(Event::Consent(ConsentReport {
                event_id: id_field(text_field(&event, "eventId"), "eventId")?,
                contact: phone_field(text_field(&event, "senderPhoneNumber"), "senderPhoneNumber")?,
                business: agent_address(
                    text_field(&event, "agentId").ok_or(PayloadError::Missing("agentId"))?,
                )?,
                kind: if word == "UNSUBSCRIBE" {
                    ConsentKind::OptOut
                } else {
                    ConsentKind::OptIn
                },
            })),
            _ => Ok(Event::Ignored("event")),
        };
    }
    parse_user_message(&event)
}

/// What a user message carries.
enum Content {
    Text(String),
    File(Media),
    Location,
    Reply(String),
    /// A tap on a suggested action: nothing the customer sees as sent.
    Action,
    /// None of the kinds above: one Google added since.
    Unknown,
}

fn user_content(event: &Map<String, Value>) -> Result<Content, PayloadError> {
    if let Some(text) = text_field(event, "text").filter(|t| !t.is_empty()) {
        return Ok(Content::Text(text.to_owned()));
    }
    if let Some(file) = event.get("userFile") {
        let payload = file
            .get("payload")
            .and_then(Value::as_object)
            .ok_or(PayloadError::Missing("userFile.payload"))?;
        let uri = payload
            .get("fileUri")
            .and_then(Value::as_str)
            .filter(|u| !u.trim().is_empty())
            .ok_or(PayloadError::Missing("userFile.payload.fileUri"))?;
        let size = match payload.get("fileSizeBytes") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_u64()
                    .ok_or(PayloadError::Invalid("userFile.payload.fileSizeBytes"))?,
            ),
            Some(Value::String(s)) => Some(
                s.parse()
                    .map_err(|_| PayloadError::Invalid("userFile.payload.fileSizeBytes"))?,
            ),
            Some(_) => return Err(PayloadError::Invalid("userFile.payload.fileSizeBytes")),
        };
        return Ok(Content::File(media(
            uri,
            payload.get("mimeType").and_then(Value::as_str),
            size,
            payload.get("fileName").and_then(Value::as_str),
        )));
    }
    if event.get("location").is_some_and(Value::is_object) {
        return Ok(Content::Location);
    }
    if let Some(response) = event.get("suggestionResponse") {
        let response = response
            .as_object()
            .ok_or(PayloadError::Invalid("suggestionResponse"))?;
        let text = text_field(response, "text").filter(|t| !t.is_empty());
        let is_reply = match text_field(response, "type") {
            Some("REPLY") => true,
            Some("ACTION") => false,
            // Google's action example carries only `postbackData`; a reply always has its text.
            _ => text.is_some(),
        };
        if !is_reply {
            return Ok(Content::Action);
        }
        let body = text
            .or_else(|| text_field(response, "postbackData").filter(|p| !p.is_empty()))
            .ok_or(PayloadError::Missing("suggestionResponse.text"))?;
        return Ok(Content::Reply(body.to_owned()));
    }
    Ok(Content::Unknown)
}

fn parse_user_message(event: &Map<String, Value>) -> Result<Event, PayloadError> {
    let (body, items) = match user_content(event)? {
        Content::Text(text) | Content::Reply(text) => (text, Vec::new()),
        Content::File(file) => (String::new(), vec![file]),
        Content::Location => (LOCATION_BODY.to_owned(), Vec::new()),
        Content::Action => return Ok(Event::Ignored("suggested_action")),
        Content::Unknown => return Ok(Event::Ignored("unsupported_content")),
    };
    let id = text_field(event, "messageId").or_else(|| text_field(event, "eventId"));
    Ok(Event::Message(Inbound {
        carrier: CARRIER.name(),
        carrier_message_id: id_field(id, "messageId")?,
        from: phone_field(text_field(event, "senderPhoneNumber"), "senderPhoneNumber")?,
        to: agent_address(text_field(event, "agentId").ok_or(PayloadError::Missing("agentId"))?)?,
        channel: Channel::Rcs,
        body: Zeroizing::new(body),
        media: items,
    }))
}

/// The `messageId` of `phones/{E.164}/agentMessages/{messageId}`.
fn message_id_from_name(name: &str) -> Option<&str> {
    let (parent, id) = name.rsplit_once("/agentMessages/")?;
    parent
        .strip_prefix("phones/")
        .filter(|phone| E164::parse(phone).is_ok())?;
    Some(id).filter(|id| check_token(id, 128))
}

/// `200` with the `AgentMessage` → accepted with the `messageId` from its `name`; `409
/// ALREADY_EXISTS` (a resend with a used `messageId`) → accepted, with the id from the error's
/// `ResourceInfo` when present (otherwise uncertain: use [`parse_send_reply_for`]); `504` →
/// uncertain; other errors → rejected, classified by Google's `error.status`.
#[must_use]
pub fn parse_send_reply(reply: &HttpReply) -> SendResult {
    read_send_reply(reply, None)
}

/// As [`parse_send_reply`], for a caller that knows the `messageId` it sent (the outbox id):
/// `409 ALREADY_EXISTS` and a `2xx` without `name` are then accepted with that id.
#[must_use]
pub fn parse_send_reply_for(reply: &HttpReply, message_id: &str) -> SendResult {
    read_send_reply(reply, Some(message_id))
}

fn read_send_reply(reply: &HttpReply, sent_id: Option<&str>) -> SendResult {
    let json = reply.json();
    if reply.is_success() {
        let named = json
            .as_ref()
            .and_then(|j| j.get("name"))
            .and_then(Value::as_str)
            .and_then(message_id_from_name);
        return accepted(CARRIER, named.or(sent_id), None);
    }
    let error = json.as_ref().and_then(|j| j.get("error"));
    let status = error
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if reply.status == 409 && status.as_deref() == Some("ALREADY_EXISTS") {
        let named = error
            .and_then(|e| e.get("details"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|d| d.get("resourceName").and_then(Value::as_str))
            .find_map(message_id_from_name);
        return match named.or(sent_id) {
            Some(id) => accepted(CARRIER, Some(id), None),
            None => SendResult::Uncertain("already_exists"),
        };
    }
    if reply.status == 504 {
        return SendResult::Uncertain("gateway_timeout");
    }
    SendResult::Rejected(SendError::classified(CARRIER, reply, status))
}

/// RBM is resolved by resending with the same `messageId`; it has no listing to read.
///
/// # Errors
/// Never.
pub fn parse_lookup_reply(_reply: &HttpReply) -> Result<Vec<Candidate>, SendError> {
    Ok(Vec::new())
}

/// An id shaped like RBM's user message ids (`MsW9d5RGeQRUK6zzZVYbH1kQ`: `Ms` and 22 base64url
/// characters, 128 random bits).
#[must_use]
pub fn new_message_id() -> String {
    format!("Ms{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()))
}

/// An event id for simulated events: the same shape with `Mx` (Google does not document the
/// format of `eventId`; 128 random bits).
#[must_use]
pub fn new_event_id() -> String {
    format!("Mx{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()))
}

#[cfg(test)]
mod tests;
