//! The SMS API (`shared/reference/carriers.md` §4a): inbound SMS and delivery receipts as flat
//! parameters (GET query, POST form or POST JSON, as the account is configured), and
//! `POST {sms_base}/sms/json`.
//!
//! - **Inbound** (developer.vonage.com/messaging/sms/guides/inbound-sms): `msisdn` (the
//!   customer), `to` (our number), `messageId`, `text`, `type` (`text`, `unicode`, `binary`),
//!   `keyword`, `message-timestamp`, `timestamp`, `nonce`, concatenation fields and `sig`.
//!   Binary messages (`data`/`udh`) carry nothing a person can read: acknowledged and ignored.
//! - **Concatenated inbound SMS**: Vonage delivers each part as its own webhook with its own
//!   `messageId`, plus `concat=true`, `concat-ref`, `concat-total`, `concat-part`. Each part is
//!   stored as its own message keyed by its own `messageId`. Reassembly would need state across
//!   webhooks that a carrier module does not have (and holding back an acknowledged part until
//!   the others arrive would risk losing it); the Messages API reassembles before it delivers,
//!   which is one reason it is the default API. A value split across parts (a card number, say)
//!   cannot be redacted whole, so digits that touch a boundary with another part are removed
//!   before redaction ([`crate::redact::mask_split_edges`]): over-redaction, never a leak.
//! - **Delivery receipts** (…/sms/guides/delivery-receipts): `msisdn` (the recipient), `to` (our
//!   sender, which may be alphanumeric), `messageId`, `status`, `err-code`, `network-code`,
//!   `price`, `scts`, `client-ref`, `message-timestamp`. A receipt is told apart from an inbound
//!   message by its `status` parameter, so both may share a URL. `err-code` `0` means no error.
//! - **Send**: form `api_key`, `api_secret`, `from`, `to`, `text`, `type` (`unicode` when the text
//!   is not GSM-7), `status-report-req=1`, `callback` (our status URL), `client-ref` (the outbox
//!   id, at most 40 characters). The reply lists one entry per part in `messages[]`, each with a
//!   `status` (`"0"` = accepted) and its own `message-id`; see [`parse_reply`].

use super::{CARRIER, SMS_CLIENT_REF_MAX};
use crate::carriers::form::first;
use crate::carriers::{
    accepted, business_field, code_field, endpoint, id_field, phone_field, word_field, ErrorClass,
    Event, HttpCall, HttpReply, Method, OutboundMessage, PayloadError, SendError, SendResult,
    SimulatedInbound, SimulatedStatus, SimulationKeys, StatusUpdate, WebhookRequest,
};
use crate::phone::BusinessAddress;
use crate::pipeline::{Channel, Inbound};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

/// Whether the parameters are a delivery receipt (they carry `status`) rather than a message.
pub(super) fn is_receipt(params: &[(String, String)]) -> bool {
    first(params, "status").is_some()
}

/// Our sender named by the webhook: `to` on both kinds. A receipt's `to` may be an alphanumeric
/// sender id, which names no configured sender: `None` then, and every account is tried.
pub(super) fn hint(params: &[(String, String)]) -> Result<Option<BusinessAddress>, PayloadError> {
    if is_receipt(params) {
        Ok(first(params, "to").and_then(|to| BusinessAddress::parse_carrier(to).ok()))
    } else {
        business_field(first(params, "to"), "to").map(Some)
    }
}

/// An authenticated SMS API webhook as an event.
/// A receipt reporting an opt-out also yields the opt-out itself ([`super::opt_out`]).
pub(super) fn parse(params: &[(String, String)]) -> Result<Vec<Event>, PayloadError> {
    if is_receipt(params) {
        let update = parse_receipt(params)?;
        let consent = super::opt_out(
            &update,
            first(params, "msisdn"),
            first(params, "to").and_then(|to| BusinessAddress::parse_carrier(to).ok()),
        );
        Ok(std::iter::once(Event::Status(update))
            .chain(consent)
            .collect())
    } else {
        parse_inbound(params).map(|event| vec![event])
    }
}

fn parse_inbound(params: &[(String, String)]) -> Result<Event, PayloadError> {
    let id = id_field(first(params, "messageId"), "messageId")?;
    let from = phone_field(first(params, "msisdn"), "msisdn")?;
    let to = business_field(first(params, "to"), "to")?;
    if first(params, "type").map(str::trim) == Some("binary") {
        return Ok(Event::Ignored("binary_sms"));
    }
    let text = first(params, "text").unwrap_or_default();
    // One part of a long SMS: digits at a boundary with another part cannot be checked whole.
    let body = if first(params, "concat").map(str::trim) == Some("true") {
        let part = first(params, "concat-part").and_then(|p| p.trim().parse::<u32>().ok());
        let total = first(params, "concat-total").and_then(|p| p.trim().parse::<u32>().ok());
        let leading = part != Some(1);
        let trailing = !(part.is_some() && part == total);
        crate::redact::mask_split_edges(text, leading, trailing)
    } else {
        Zeroizing::new(text.to_owned())
    };
    Ok(Event::Message(Inbound {
        carrier: CARRIER.name(),
        carrier_message_id: id,
        from,
        to,
        channel: Channel::Sms,
        body,
        media: Vec::new(),
    }))
}

fn parse_receipt(params: &[(String, String)]) -> Result<StatusUpdate, PayloadError> {
    let id = id_field(first(params, "messageId"), "messageId")?;
    let word = word_field(first(params, "status"), "status")?;
    let code = first(params, "err-code").filter(|c| c.trim() != "0");
    Ok(StatusUpdate {
        carrier_message_id: id,
        status: CARRIER.profile().map_status(&word),
        carrier_status: word,
        error_code: code_field(code, "err-code")?,
    })
}

/// `POST {sms_base}/sms/json`.
pub(super) fn build_send(
    account: &super::Account,
    message: &OutboundMessage<'_>,
) -> Result<HttpCall, SendError> {
    if message.channel != Channel::Sms {
        return Err(SendError::local(
            ErrorClass::Permanent,
            "sms_api_sends_sms_only",
        ));
    }
    if !message.media_urls.is_empty() {
        return Err(SendError::local(
            ErrorClass::Permanent,
            "sms_cannot_carry_media",
        ));
    }
    if matches!(message.from, BusinessAddress::RcsAgent(_)) {
        return Err(SendError::local(
            ErrorClass::Permanent,
            "sms_api_cannot_send_from_rcs_agent",
        ));
    }
    if message.outbox_id.chars().count() > SMS_CLIENT_REF_MAX {
        return Err(SendError::local(
            ErrorClass::Permanent,
            "client_ref_too_long",
        ));
    }
    let text = message.text_with_fallbacks();
    let kind = if is_gsm7(&text) { "text" } else { "unicode" };
    let form: [(&str, &str); 9] = [
        ("api_key", &account.api_key),
        ("api_secret", account.api_secret.expose_secret()),
        ("from", message.from.digits()),
        ("to", message.to.digits()),
        ("text", &text),
        ("type", kind),
        ("status-report-req", "1"),
        ("callback", message.status_callback),
        ("client-ref", message.outbox_id),
    ];
    Ok(HttpCall::new(Method::Post, endpoint(&account.sms_base, "/sms/json")?).form(&form))
}

fn status_text(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => Some(s.trim().to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `{"message-count": "1", "messages": [{"status": "0", "message-id": …}, …]}`: one entry per
/// part of a long message.
///
/// - Some part accepted: the message went out (perhaps in part); its first accepted part's id is
///   the one recorded. Receipts for the other parts carry their own ids and are kept as
///   statuses of no message we know. Treating a partly accepted message as refused would send
///   the accepted parts twice.
/// - No part accepted: refused, classified by the first part's status code as `submit:N` (the
///   SMS API's submission codes overlap its receipt `err-code`s, so they get their own prefix).
/// - 504: uncertain; other non-2xx replies without a body: classified by HTTP status.
pub(super) fn parse_reply(reply: &HttpReply, parts: &[serde_json::Value]) -> SendResult {
    if reply.status == 504 {
        return SendResult::Uncertain("gateway_timeout");
    }
    let accepted_part = parts
        .iter()
        .find(|part| status_text(part.get("status")).as_deref() == Some("0"));
    if let (true, Some(part)) = (reply.is_success(), accepted_part) {
        let id = part.get("message-id").and_then(serde_json::Value::as_str);
        return accepted(CARRIER, id, None);
    }
    let code = parts
        .iter()
        .filter_map(|part| status_text(part.get("status")))
        .find(|status| status != "0")
        .filter(|status| !status.is_empty() && status.bytes().all(|b| b.is_ascii_digit()))
        .map(|status| format!("submit:{status}"));
    if code.is_none() && reply.is_success() {
        return SendResult::Uncertain("accepted_without_id");
    }
    SendResult::Rejected(SendError::classified(CARRIER, reply, code))
}

/// Whether every character is in the GSM 03.38 default alphabet or its extension table, so the
/// SMS API can send the text as `type=text` (otherwise `unicode`, UCS-2).
#[must_use]
pub fn is_gsm7(text: &str) -> bool {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENSION: &str = "\u{c}^{}\\[~]|€";
    text.chars()
        .all(|c| BASIC.contains(c) || EXTENSION.contains(c))
}

/// The first word of the text, upper-cased, as Vonage fills `keyword`.
fn keyword(text: &str) -> String {
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_uppercase()
}

/// A signed inbound SMS as Vonage POSTs it with the "POST-JSON" webhook setting.
pub(super) fn simulate_inbound(
    account: &super::Account,
    url: &str,
    message: &SimulatedInbound<'_>,
    keys: &SimulationKeys,
) -> Result<WebhookRequest, String> {
    if !message.media.is_empty() {
        return Err(
            "the SMS API carries no media: simulate MMS with an account whose `api` is \"messages\""
                .to_owned(),
        );
    }
    let now = keys.now;
    let kind = if is_gsm7(message.body) {
        "text"
    } else {
        "unicode"
    };
    let mut params: Vec<(String, String)> = vec![
        ("msisdn".to_owned(), message.from.digits().to_owned()),
        ("to".to_owned(), message.to.digits().to_owned()),
        ("messageId".to_owned(), message.message_id.to_owned()),
        ("text".to_owned(), message.body.to_owned()),
        ("type".to_owned(), kind.to_owned()),
    ];
    let word = keyword(message.body);
    if !word.is_empty() {
        params.push(("keyword".to_owned(), word));
    }
    params.extend(stamp(account, now));
    Ok(signed_json(account, url, params))
}

/// A signed delivery receipt as Vonage POSTs it.
pub(super) fn simulate_status(
    account: &super::Account,
    url: &str,
    status: &SimulatedStatus<'_>,
    keys: &SimulationKeys,
) -> Result<WebhookRequest, String> {
    let now = keys.now;
    let mut params: Vec<(String, String)> = vec![
        ("msisdn".to_owned(), status.to.digits().to_owned()),
        ("to".to_owned(), status.from.digits().to_owned()),
        ("network-code".to_owned(), "310090".to_owned()),
        ("messageId".to_owned(), status.carrier_message_id.to_owned()),
        ("price".to_owned(), "0.00770000".to_owned()),
        ("status".to_owned(), status.status.to_owned()),
        ("scts".to_owned(), now.format("%y%m%d%H%M").to_string()),
        (
            "err-code".to_owned(),
            status.error_code.unwrap_or("0").to_owned(),
        ),
    ];
    params.extend(stamp(account, now));
    Ok(signed_json(account, url, params))
}

/// `api-key`, `message-timestamp`, `timestamp` and `nonce`, as Vonage adds them.
fn stamp(account: &super::Account, now: chrono::DateTime<chrono::Utc>) -> Vec<(String, String)> {
    vec![
        ("api-key".to_owned(), account.api_key.clone()),
        (
            "message-timestamp".to_owned(),
            now.format("%Y-%m-%d %H:%M:%S").to_string(),
        ),
        ("timestamp".to_owned(), now.timestamp().to_string()),
        ("nonce".to_owned(), super::new_message_id()),
    ]
}

/// The parameters signed with the account's method, as a JSON POST.
fn signed_json(
    account: &super::Account,
    url: &str,
    mut params: Vec<(String, String)>,
) -> WebhookRequest {
    let sig = super::signature::sign(&account.signature_secret, account.signature_method, &params);
    params.push(("sig".to_owned(), sig));
    let object: serde_json::Map<String, serde_json::Value> = params
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    WebhookRequest::new(
        Method::Post,
        url,
        [("Content-Type".to_owned(), "application/json".to_owned())],
        serde_json::to_vec(&object).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_detection() {
        assert!(is_gsm7("Hello @ £5 - no"));
        assert!(!is_gsm7("Hello – dash"));
        assert!(is_gsm7("Price: 5€ [ok] {x} ~ ^ | \\"));
        assert!(!is_gsm7("Grüße 👋"));
        assert!(!is_gsm7("¢"));
        assert!(is_gsm7(""));
        assert_eq!(keyword("  stop please"), "STOP");
        assert_eq!(keyword(""), "");
    }

    fn parts(json: &str) -> Vec<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v.get("messages").cloned())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    #[test]
    fn replies_with_several_parts() {
        let body = r#"{"message-count":"2","messages":[
            {"to":"15551234567","message-id":"aaaaaaaa-0000-4000-8000-000000000001","status":"0"},
            {"to":"15551234567","message-id":"aaaaaaaa-0000-4000-8000-000000000002","status":"0"}]}"#;
        let reply = HttpReply::new(200, body);
        assert_eq!(
            parse_reply(&reply, &parts(body)),
            SendResult::Accepted {
                carrier_message_id: "aaaaaaaa-0000-4000-8000-000000000001".to_owned(),
                status: None
            }
        );
        // The first part refused, the second accepted: it went out in part.
        let body = r#"{"message-count":"2","messages":[
            {"status":"1","error-text":"Throughput Rate Exceeded - please wait [ 10 ] and retry"},
            {"message-id":"aaaaaaaa-0000-4000-8000-000000000002","status":"0"}]}"#;
        assert!(matches!(
            parse_reply(&HttpReply::new(200, body), &parts(body)),
            SendResult::Accepted { .. }
        ));
        // Numeric statuses (some SDK mocks) read the same as strings.
        let body = r#"{"messages":[{"status":29,"error-text":"Non White-listed Destination"}]}"#;
        match parse_reply(&HttpReply::new(200, body), &parts(body)) {
            SendResult::Rejected(e) => {
                assert_eq!(e.code.as_deref(), Some("submit:29"));
                assert_eq!(e.class, ErrorClass::Permanent);
            }
            other => panic!("{other:?}"),
        }
    }
}
