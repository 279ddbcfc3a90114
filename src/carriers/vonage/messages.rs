//! The Messages API (`shared/reference/carriers.md` §4b): JSON webhooks for inbound messages and
//! status callbacks on the `sms`, `mms` and `rcs` channels, and `POST {api_base}/v1/messages`.
//!
//! - **Inbound** (field names as the Vonage SDKs model the webhook: vonage-java-sdk
//!   `messages/InboundMessage.java`, vonage-dotnet-sdk `Vonage.Test/Messages/Webhooks/Data/*`):
//!   `message_uuid`, `to` (our number, or our RCS agent id on `rcs`), `from` (the customer,
//!   digits without `+`), `channel`, `message_type` and the content: `text`;
//!   `image`/`video`/`audio`/`file`/`vcard` `{url, name, caption}`; `content[]` `{type, url,
//!   caption}` (MMS with several attachments); `button` `{payload, text}` (an RCS suggestion
//!   tapped: vonage-java-sdk `Button.java` says its payload is a string on RCS) and `reply`
//!   `{id, title}` (the same on channels that report it that way). A tapped suggestion is stored
//!   as the text the customer saw and sent (`button.text` / `reply.title`). Other channels
//!   (WhatsApp, Viber, Messenger) and message types we do not keep (location, sticker, reaction,
//!   order) are acknowledged and ignored.
//! - **Status** (…/messages/concepts/messages-status-callbacks): `message_uuid`, `to`, `from`,
//!   `timestamp`, `status` (`submitted delivered read rejected undeliverable`), `channel`,
//!   `client_ref`, and on failures `error` `{type, title, detail, instance}`, whose code is the
//!   fragment of `type` (`…/api-errors/messages#1240`) or a numeric `title`.
//! - **Send**: JSON `message_type`, `to`, `from` (digits, short code or RCS agent id), `channel`,
//!   `client_ref` (the outbox id), `webhook_url` (our status URL), and the content:
//!   - SMS: `text` (open-URL suggestions as text lines);
//!   - MMS: `image` `{url, caption}` for one attachment, `content[]` for several (vonage-node-sdk
//!     `MMSContent`), `text` on the `mms` channel for none; the text is the first caption;
//!   - RCS without media: `text` with Vonage's native `suggestions` (vonage-curl-code-snippets
//!     `messages/rcs/send-suggested-reply.sh`, `send-suggested-action-open-url-webview.sh`;
//!     vonage-python-sdk `models/rcs.py`): `{type: "reply", text, postback_data}` and
//!     `{type: "open_url", text, postback_data, url, description}`;
//!   - RCS with one image: `custom` (a pass-through to Google RBM, …/guides/rcs/rcs-custom-messages)
//!     holding a standalone rich card with the text as its description and the suggestions in
//!     RBM's own shape (`reply {text, postbackData}`, `action {text, postbackData,
//!     openUrlAction {url}}`), since Vonage's RCS `image` type has no caption.
//!
//!   Suggestion chips show at most 25 characters (Python SDK `max_length=25`, RBM's limit): a
//!   longer label is cut to 24 and `…`. At most 11 suggestions (Node SDK `RCSTextParams`).
//!   Reply `202 {"message_uuid"}`; errors are RFC 7807 JSON `{type, title, detail, instance}`.

use super::{CARRIER, MESSAGES_CLIENT_REF_MAX};
use crate::carriers::{
    accepted, business_field, code_field, endpoint, id_field, media, phone_field, word_field,
    ErrorClass, Event, HttpCall, HttpReply, Method, OutboundMessage, PayloadError, SendError,
    SendResult, SimulatedInbound, SimulatedStatus, SimulationKeys, StatusUpdate, Suggestion,
    WebhookRequest,
};
use crate::phone::BusinessAddress;
use crate::pipeline::{Channel, Inbound, Media};
use secrecy::ExposeSecret;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

type Object = Map<String, Value>;

/// Most suggestions on one RCS message.
pub const MAX_SUGGESTIONS: usize = 11;
/// Most characters on a suggestion chip.
pub const MAX_CHIP_CHARS: usize = 25;

fn text<'a>(object: &'a Object, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

/// Whether the payload is a status callback (it carries `status`) rather than a message.
pub(super) fn is_status(object: &Object) -> bool {
    object.contains_key("status")
}

/// One of our senders as the Messages API writes it: an RCS agent id on `rcs`, else a number
/// without `+` or a short code.
fn business(
    channel: Option<&str>,
    value: Option<&str>,
    field: &'static str,
) -> Result<BusinessAddress, PayloadError> {
    if channel == Some("rcs") {
        let value = value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(PayloadError::Missing(field))?;
        BusinessAddress::rcs_agent(value).map_err(|_| PayloadError::BadPhone(field))
    } else {
        business_field(value, field)
    }
}

fn supported(channel: Option<&str>) -> bool {
    matches!(channel, Some("sms" | "mms" | "rcs"))
}

/// Our sender the webhook concerns: `to` inbound, `from` on a status callback (absent or
/// alphanumeric: `None`, every account is tried). Channels we do not handle name none.
pub(super) fn hint(object: &Object) -> Result<Option<BusinessAddress>, PayloadError> {
    let channel = text(object, "channel");
    if is_status(object) {
        Ok(business(channel, text(object, "from"), "from").ok())
    } else if supported(channel) {
        business(channel, text(object, "to"), "to").map(Some)
    } else {
        Ok(None)
    }
}

/// An authenticated Messages API webhook as an event.
/// A status reporting an opt-out also yields the opt-out itself ([`super::opt_out`]).
pub(super) fn parse(object: &Object) -> Result<Vec<Event>, PayloadError> {
    if is_status(object) {
        let update = parse_status(object)?;
        let consent = super::opt_out(
            &update,
            text(object, "to"),
            business(text(object, "channel"), text(object, "from"), "from").ok(),
        );
        Ok(std::iter::once(Event::Status(update))
            .chain(consent)
            .collect())
    } else {
        parse_inbound(object).map(|event| vec![event])
    }
}

/// The code of an RFC 7807 error object: the fragment of `type` (`…#1240`, `…#unauthorized`),
/// else `title` when it is a number.
pub(super) fn error_code(error: Option<&Value>) -> Option<String> {
    let error = error?;
    let from_type = error
        .get("type")
        .and_then(Value::as_str)
        .and_then(|t| t.rsplit_once('#'))
        .map(|(_, code)| code.trim().to_owned())
        .filter(|code| !code.is_empty());
    let from_title = match error.get("title") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    };
    from_type.or(from_title)
}

fn parse_status(object: &Object) -> Result<StatusUpdate, PayloadError> {
    let id = id_field(text(object, "message_uuid"), "message_uuid")?;
    let word = word_field(text(object, "status"), "status")?;
    let code = error_code(object.get("error"));
    Ok(StatusUpdate {
        carrier_message_id: id,
        status: CARRIER.profile().map_status(&word),
        carrier_status: word,
        error_code: code_field(code.as_deref(), "error.type")?,
    })
}

/// The attachment kinds and the name of each one's URL field (for errors).
const ATTACHMENTS: [(&str, &str); 5] = [
    ("image", "image.url"),
    ("video", "video.url"),
    ("audio", "audio.url"),
    ("file", "file.url"),
    ("vcard", "vcard.url"),
];

fn attachment(object: &Object, kind: &str, field: &'static str) -> Result<Media, PayloadError> {
    let item = object.get(kind).ok_or(PayloadError::Missing(field))?;
    let url = item
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.trim().is_empty())
        .ok_or(PayloadError::Missing(field))?;
    Ok(media(
        url,
        None,
        None,
        item.get("name").and_then(Value::as_str),
    ))
}

fn parse_inbound(object: &Object) -> Result<Event, PayloadError> {
    let channel = match text(object, "channel").map(str::trim) {
        None | Some("") => return Err(PayloadError::Missing("channel")),
        Some("sms") => Channel::Sms,
        Some("mms") => Channel::Mms,
        Some("rcs") => Channel::Rcs,
        Some(_) => return Ok(Event::Ignored("unsupported_channel")),
    };
    let id = id_field(text(object, "message_uuid"), "message_uuid")?;
    let from = phone_field(text(object, "from"), "from")?;
    let to = business(Some(channel.as_str()), text(object, "to"), "to")?;
    let message_type = match text(object, "message_type").map(str::trim) {
        Some(kind) if !kind.is_empty() => kind,
        _ if object.contains_key("text") => "text",
        _ => return Err(PayloadError::Missing("message_type")),
    };
    let mut items = Vec::new();
    let mut body = String::new();
    match message_type {
        "text" => {
            body = text(object, "text")
                .ok_or(PayloadError::Missing("text"))?
                .to_owned();
        }
        "button" => {
            let button = object
                .get("button")
                .ok_or(PayloadError::Missing("button"))?;
            body = button
                .get("text")
                .and_then(Value::as_str)
                .or_else(|| button.get("payload").and_then(Value::as_str))
                .ok_or(PayloadError::Missing("button.text"))?
                .to_owned();
        }
        "reply" => {
            body = object
                .get("reply")
                .and_then(|r| r.get("title"))
                .and_then(Value::as_str)
                .ok_or(PayloadError::Missing("reply.title"))?
                .to_owned();
        }
        "content" => {}
        kind => match ATTACHMENTS.iter().find(|(k, _)| *k == kind) {
            Some((kind, field)) => {
                items.push(attachment(object, kind, field)?);
                body = object
                    .get(*kind)
                    .and_then(|i| i.get("caption"))
                    .and_then(Value::as_str)
                    .or_else(|| text(object, "text"))
                    .unwrap_or_default()
                    .to_owned();
            }
            None => return Ok(Event::Ignored("unsupported_message_type")),
        },
    }
    // Several MMS attachments arrive as `content[]`; it then lists every one.
    if let Some(content) = object.get("content").and_then(Value::as_array) {
        items.clear();
        for entry in content {
            let url = entry
                .get("url")
                .and_then(Value::as_str)
                .filter(|u| !u.trim().is_empty())
                .ok_or(PayloadError::Missing("content.url"))?;
            items.push(media(
                url,
                None,
                None,
                entry.get("name").and_then(Value::as_str),
            ));
            if body.is_empty() {
                if let Some(caption) = entry.get("caption").and_then(Value::as_str) {
                    caption.clone_into(&mut body);
                }
            }
        }
        if items.is_empty() && message_type == "content" {
            return Err(PayloadError::Missing("content.url"));
        }
    } else if message_type == "content" {
        return Err(PayloadError::Missing("content"));
    }
    Ok(Event::Message(Inbound {
        carrier: CARRIER.name(),
        carrier_message_id: id,
        from,
        to,
        channel,
        body: Zeroizing::new(body),
        media: items,
    }))
}

/// A chip label of at most [`MAX_CHIP_CHARS`] characters.
fn chip(label: &str) -> String {
    if label.chars().count() <= MAX_CHIP_CHARS {
        label.to_owned()
    } else {
        let mut cut: String = label.chars().take(MAX_CHIP_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// The postback an open-URL chip returns if the client reports the tap.
const OPEN_URL_POSTBACK: &str = "open_url";

/// Suggestions in the Messages API's native RCS form.
fn native_suggestions(suggestions: &[Suggestion]) -> Vec<Value> {
    suggestions
        .iter()
        .map(|s| match s {
            Suggestion::Reply { text, postback } => json!({
                "type": "reply",
                "text": chip(text),
                "postback_data": postback,
            }),
            Suggestion::OpenUrl { text, url } => json!({
                "type": "open_url",
                "text": chip(text),
                "postback_data": OPEN_URL_POSTBACK,
                "url": url,
                "description": text,
            }),
        })
        .collect()
}

/// Suggestions in Google RBM's form, for `custom` messages.
fn rbm_suggestions(suggestions: &[Suggestion]) -> Vec<Value> {
    suggestions
        .iter()
        .map(|s| match s {
            Suggestion::Reply { text, postback } => json!({
                "reply": {"text": chip(text), "postbackData": postback}
            }),
            Suggestion::OpenUrl { text, url } => json!({
                "action": {
                    "text": chip(text),
                    "postbackData": OPEN_URL_POSTBACK,
                    "openUrlAction": {"url": url}
                }
            }),
        })
        .collect()
}

/// The JSON body of `POST /v1/messages` for `message`.
pub(super) fn send_body(message: &OutboundMessage<'_>) -> Result<Value, SendError> {
    if message.outbox_id.chars().count() > MESSAGES_CLIENT_REF_MAX {
        return Err(SendError::local(
            ErrorClass::Permanent,
            "client_ref_too_long",
        ));
    }
    let mut body = json!({
        "to": message.to.digits(),
        "from": message.from.digits(),
        "client_ref": message.outbox_id,
        "webhook_url": message.status_callback,
    });
    let fields = match message.channel {
        Channel::Sms => {
            if !message.media_urls.is_empty() {
                return Err(SendError::local(
                    ErrorClass::Permanent,
                    "sms_cannot_carry_media",
                ));
            }
            json!({"channel": "sms", "message_type": "text", "text": message.text_with_fallbacks()})
        }
        Channel::Mms => {
            let caption = message.text_with_fallbacks();
            match message.media_urls {
                [] => json!({"channel": "mms", "message_type": "text", "text": caption}),
                [url] => {
                    let mut image = json!({"url": url});
                    if !caption.is_empty() {
                        image["caption"] = Value::String(caption);
                    }
                    json!({"channel": "mms", "message_type": "image", "image": image})
                }
                urls => {
                    let content: Vec<Value> = urls
                        .iter()
                        .enumerate()
                        .map(|(i, url)| {
                            let mut item = json!({"type": "image", "url": url});
                            if i == 0 && !caption.is_empty() {
                                item["caption"] = Value::String(caption.clone());
                            }
                            item
                        })
                        .collect();
                    json!({"channel": "mms", "message_type": "content", "content": content})
                }
            }
        }
        Channel::Rcs => {
            if message.suggestions.len() > MAX_SUGGESTIONS {
                return Err(SendError::local(
                    ErrorClass::Permanent,
                    "rcs_too_many_suggestions",
                ));
            }
            match message.media_urls {
                [] => {
                    let mut fields =
                        json!({"channel": "rcs", "message_type": "text", "text": message.body});
                    if !message.suggestions.is_empty() {
                        fields["suggestions"] =
                            Value::Array(native_suggestions(message.suggestions));
                    }
                    fields
                }
                [url] => {
                    let mut card_content = json!({
                        "media": {"height": "MEDIUM", "contentInfo": {"fileUrl": url}}
                    });
                    if !message.body.is_empty() {
                        card_content["description"] = Value::String(message.body.to_owned());
                    }
                    let mut content_message = json!({
                        "richCard": {"standaloneCard": {
                            "cardOrientation": "VERTICAL",
                            "cardContent": card_content,
                        }}
                    });
                    if !message.suggestions.is_empty() {
                        content_message["suggestions"] =
                            Value::Array(rbm_suggestions(message.suggestions));
                    }
                    json!({"channel": "rcs", "message_type": "custom",
                           "custom": {"contentMessage": content_message}})
                }
                _ => {
                    return Err(SendError::local(
                        ErrorClass::Permanent,
                        "rcs_one_attachment_per_message",
                    ))
                }
            }
        }
    };
    if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields);
    }
    Ok(body)
}

/// `POST {api_base}/v1/messages`, Basic `api_key:api_secret`.
pub(super) fn build_send(
    account: &super::Account,
    message: &OutboundMessage<'_>,
) -> Result<HttpCall, SendError> {
    let body = send_body(message)?;
    Ok(
        HttpCall::new(Method::Post, endpoint(&account.api_base, "/v1/messages")?)
            .basic_auth(&account.api_key, account.api_secret.expose_secret())
            .json(&body),
    )
}

/// `202 {"message_uuid"}`, or an RFC 7807 error.
pub(super) fn parse_reply(reply: &HttpReply, json: Option<&Value>) -> SendResult {
    if reply.is_success() {
        let id = json
            .and_then(|j| j.get("message_uuid"))
            .and_then(Value::as_str);
        return accepted(CARRIER, id, None);
    }
    if reply.status == 504 {
        return SendResult::Uncertain("gateway_timeout");
    }
    SendResult::Rejected(SendError::classified(CARRIER, reply, error_code(json)))
}

fn channel_for(address: &BusinessAddress, media: bool) -> &'static str {
    match (address, media) {
        (BusinessAddress::RcsAgent(_), _) => "rcs",
        (_, true) => "mms",
        (_, false) => "sms",
    }
}

fn iso(now: chrono::DateTime<chrono::Utc>) -> String {
    now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A signed inbound message as the Messages API POSTs it.
pub(super) fn simulate_inbound(
    account: &super::Account,
    url: &str,
    message: &SimulatedInbound<'_>,
    keys: &SimulationKeys,
) -> Result<WebhookRequest, String> {
    let channel = channel_for(message.to, !message.media.is_empty());
    let mut body = json!({
        "channel": channel,
        "message_uuid": message.message_id,
        "to": message.to.digits(),
        "from": message.from.digits(),
        "timestamp": iso(keys.now),
    });
    let content = match message.media {
        [] => json!({"message_type": "text", "text": message.body}),
        [item] => {
            let mut image = json!({"url": item.url});
            if let Some(name) = &item.name {
                image["name"] = Value::String(name.clone());
            }
            if !message.body.is_empty() {
                image["caption"] = Value::String(message.body.to_owned());
            }
            json!({"message_type": "image", "image": image})
        }
        items => {
            let list: Vec<Value> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let mut entry = json!({"type": "image", "url": item.url});
                    if i == 0 && !message.body.is_empty() {
                        entry["caption"] = Value::String(message.body.to_owned());
                    }
                    entry
                })
                .collect();
            json!({"message_type": "content", "content": list})
        }
    };
    if let (Some(body), Value::Object(content)) = (body.as_object_mut(), content) {
        body.extend(content);
    }
    if channel == "sms" {
        body["sms"] = json!({"num_messages": "1", "total_count": "1"});
    }
    signed(account, url, &body, keys)
}

/// A signed status callback as the Messages API POSTs it.
pub(super) fn simulate_status(
    account: &super::Account,
    url: &str,
    status: &SimulatedStatus<'_>,
    keys: &SimulationKeys,
) -> Result<WebhookRequest, String> {
    let mut body = json!({
        "message_uuid": status.carrier_message_id,
        "to": status.to.digits(),
        "from": status.from.digits(),
        "timestamp": iso(keys.now),
        "status": status.status,
        "channel": channel_for(status.from, false),
    });
    if let Some(code) = status.error_code {
        body["error"] = json!({
            "type": format!("https://developer.vonage.com/api-errors/messages#{code}"),
            "title": code,
            "detail": "Simulated failure",
            "instance": super::new_message_id(),
        });
    }
    signed(account, url, &body, keys)
}

fn signed(
    account: &super::Account,
    url: &str,
    body: &Value,
    keys: &SimulationKeys,
) -> Result<WebhookRequest, String> {
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let token = super::signature::sign_jwt(
        &account.signature_secret,
        &account.api_key,
        &bytes,
        keys.now,
    )?;
    Ok(WebhookRequest::new(
        Method::Post,
        url,
        [
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Authorization".to_owned(), format!("Bearer {token}")),
        ],
        bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chips_are_cut_to_the_limit() {
        assert_eq!(chip("Yes"), "Yes");
        let long = "Open the secure conversation now";
        let cut = chip(long);
        assert_eq!(cut.chars().count(), MAX_CHIP_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(chip(&"é".repeat(25)), "é".repeat(25));
    }

    #[test]
    fn error_codes_from_rfc7807() {
        let code = |v: Value| error_code(Some(&v));
        assert_eq!(
            code(
                json!({"type": "https://developer.vonage.com/api-errors/messages#1240", "title": "Illegal Number"})
            ),
            Some("1240".to_owned())
        );
        assert_eq!(
            code(json!({"type": "https://developer.nexmo.com/api-errors#unauthorized"})),
            Some("unauthorized".to_owned())
        );
        assert_eq!(code(json!({"title": 1000})), Some("1000".to_owned()));
        assert_eq!(code(json!({"title": "Invalid sender"})), None);
        assert_eq!(error_code(None), None);
    }
}
