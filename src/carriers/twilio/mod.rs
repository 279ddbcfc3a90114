//! Twilio Programmable Messaging: inbound SMS, MMS and RCS webhooks and status callbacks.
//!
//! Payload fields follow Twilio's webhook request reference (`shared/reference/carriers.md` §2):
//! `MessageSid`, `From`, `To`, `Body`, `NumMedia`, `MediaUrl{N}`/`MediaContentType{N}` (0-based),
//! `MessageStatus`, `ErrorCode`. Twilio adds parameters without notice; unknown ones are ignored
//! (but still signed over, see [`signature`]). RCS addresses arrive with an `rcs:` prefix.

pub mod signature;

use crate::carriers::form::first;
use crate::phone::E164;
use crate::pipeline::{Channel, Inbound, Media};
use zeroize::Zeroizing;

/// The carrier's name in routes, metrics and the database.
pub const CARRIER: &str = "twilio";

/// Why a Twilio payload was refused. Names the field, never its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("required field `{0}` is missing or empty")]
    Missing(&'static str),
    #[error("field `{0}` is not an E.164 phone number")]
    BadPhone(&'static str),
    #[error("field `{0}` is not a valid value")]
    Invalid(&'static str),
}

/// Splits a Twilio address into its channel prefix and number: `rcs:+1555…` is RCS.
fn address(
    params: &[(String, String)],
    field: &'static str,
) -> Result<(Option<Channel>, E164), PayloadError> {
    let raw = first(params, field)
        .filter(|v| !v.trim().is_empty())
        .ok_or(PayloadError::Missing(field))?;
    let (channel, number) = match raw.split_once(':') {
        Some(("rcs", number)) => (Some(Channel::Rcs), number),
        Some(("sms" | "mms", number)) => (None, number),
        _ => (None, raw),
    };
    let number = E164::parse(number).map_err(|_| PayloadError::BadPhone(field))?;
    Ok((channel, number))
}

/// The business number an inbound message was sent to (`To`): its account's token verifies the signature.
///
/// # Errors
/// When `To` is missing or not a phone number.
pub fn inbound_business_number(params: &[(String, String)]) -> Result<E164, PayloadError> {
    address(params, "To").map(|(_, n)| n)
}

/// The business number a status callback is about (`From`, the sender of our outbound message).
///
/// # Errors
/// When `From` is missing or not a phone number.
pub fn status_business_number(params: &[(String, String)]) -> Result<E164, PayloadError> {
    address(params, "From").map(|(_, n)| n)
}

/// `MessageSid` (or the deprecated `SmsSid`): letters and digits, at most 64 of them.
fn message_sid(params: &[(String, String)]) -> Result<&str, PayloadError> {
    let sid = first(params, "MessageSid")
        .or_else(|| first(params, "SmsSid"))
        .filter(|s| !s.is_empty())
        .ok_or(PayloadError::Missing("MessageSid"))?;
    if sid.len() > 64 || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(PayloadError::Invalid("MessageSid"));
    }
    Ok(sid)
}

/// Parses an inbound message webhook (already authenticated).
///
/// # Errors
/// [`PayloadError`] naming the first missing or malformed field.
pub fn parse_inbound(params: &[(String, String)]) -> Result<Inbound, PayloadError> {
    let sid = message_sid(params)?;
    let (from_channel, from) = address(params, "From")?;
    let (to_channel, to) = address(params, "To")?;
    let num_media: usize = match first(params, "NumMedia") {
        None | Some("") => 0,
        Some(n) => n
            .parse()
            .ok()
            .filter(|&n| n <= 100)
            .ok_or(PayloadError::Invalid("NumMedia"))?,
    };
    let media = (0..num_media)
        .map(|i| {
            let url = first(params, &format!("MediaUrl{i}"))
                .filter(|u| !u.is_empty())
                .ok_or(PayloadError::Missing("MediaUrl{N}"))?;
            Ok(Media {
                url: url.to_owned(),
                content_type: first(params, &format!("MediaContentType{i}")).map(str::to_owned),
            })
        })
        .collect::<Result<Vec<_>, PayloadError>>()?;
    let channel = from_channel.or(to_channel).unwrap_or(if media.is_empty() {
        Channel::Sms
    } else {
        Channel::Mms
    });
    Ok(Inbound {
        carrier: CARRIER,
        carrier_message_id: sid.to_owned(),
        from,
        to,
        channel,
        body: Zeroizing::new(first(params, "Body").unwrap_or_default().to_owned()),
        media,
    })
}

/// A parsed status callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    pub message_sid: String,
    /// Twilio's own word, e.g. `sending`.
    pub carrier_status: String,
    /// Ours, or `None` when Twilio's word has no place in our vocabulary (`receiving`, `received`).
    pub status: Option<&'static str>,
    pub error_code: Option<String>,
}

/// Maps Twilio's `MessageStatus` to ours: queued, sent, delivered, undelivered, failed, read.
#[must_use]
pub fn map_status(twilio: &str) -> Option<&'static str> {
    Some(match twilio {
        "accepted" | "scheduled" | "queued" | "sending" => "queued",
        "sent" => "sent",
        "delivered" | "partially_delivered" => "delivered",
        "undelivered" => "undelivered",
        "failed" | "canceled" => "failed",
        "read" => "read",
        _ => return None,
    })
}

/// Parses a status callback (already authenticated).
///
/// # Errors
/// [`PayloadError`] when `MessageSid` or `MessageStatus` is missing or malformed.
pub fn parse_status(params: &[(String, String)]) -> Result<StatusCallback, PayloadError> {
    let sid = message_sid(params)?;
    let carrier_status = first(params, "MessageStatus")
        .or_else(|| first(params, "SmsStatus"))
        .filter(|s| !s.is_empty())
        .ok_or(PayloadError::Missing("MessageStatus"))?;
    if carrier_status.len() > 32
        || !carrier_status
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        return Err(PayloadError::Invalid("MessageStatus"));
    }
    let error_code = first(params, "ErrorCode").filter(|c| !c.is_empty());
    if error_code.is_some_and(|c| c.len() > 16 || !c.bytes().all(|b| b.is_ascii_digit())) {
        return Err(PayloadError::Invalid("ErrorCode"));
    }
    Ok(StatusCallback {
        message_sid: sid.to_owned(),
        carrier_status: carrier_status.to_owned(),
        status: map_status(carrier_status),
        error_code: error_code.map(str::to_owned),
    })
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
        assert_eq!(inbound.to.as_str(), "+12028831111");
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
        assert_eq!(status.message_sid, "SM1f0e8ae6ade43cb3c0ce4525424e404f");
        let failed = parse_status(&fixture("status-undelivered-optout.form"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(failed.status, Some("undelivered"));
        assert_eq!(failed.error_code.as_deref(), Some("21610"));
        for (twilio, ours) in [
            ("sending", Some("queued")),
            ("sent", Some("sent")),
            ("read", Some("read")),
            ("canceled", Some("failed")),
            ("received", None),
        ] {
            assert_eq!(map_status(twilio), ours, "{twilio}");
        }
    }
}
