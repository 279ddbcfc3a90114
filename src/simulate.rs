//! `drawbridge simulate inbound`: sends the running service a Twilio inbound webhook signed with
//! the configured account's auth token, exactly as Twilio would, and reports the HTTP status.

use crate::carriers::twilio::signature;
use crate::config::{CarrierAccount, Settings};
use crate::phone::E164;
use anyhow::{anyhow, Context};
use rand::RngCore;

/// What the service answered.
#[derive(Debug)]
pub struct SimulateOutcome {
    pub url: String,
    pub status: reqwest::StatusCode,
    pub body: String,
}

/// Posts a signed inbound webhook for a message from `from` to the business number `to`.
///
/// # Errors
/// When a number is malformed or not configured, or the service cannot be reached.
pub async fn inbound(
    settings: &Settings,
    from: &str,
    to: &str,
    body: &str,
) -> anyhow::Result<SimulateOutcome> {
    let from = E164::parse(from).map_err(|e| anyhow!("--from: {e}"))?;
    let to = E164::parse(to).map_err(|e| anyhow!("--to: {e}"))?;
    let account = settings.account_for_number(&to).ok_or_else(|| {
        anyhow!("--to: no [[numbers]] entry in the configuration has this number")
    })?;
    let CarrierAccount::Twilio(twilio) = &account.carrier;
    let mut sid = [0_u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut sid);
    let params: Vec<(String, String)> = [
        ("MessageSid", format!("SM{}", hex::encode(sid))),
        ("SmsSid", format!("SM{}", hex::encode(sid))),
        ("AccountSid", twilio.account_sid.clone()),
        ("From", from.as_str().to_owned()),
        ("To", to.as_str().to_owned()),
        ("Body", body.to_owned()),
        ("NumMedia", "0".to_owned()),
        ("NumSegments", "1".to_owned()),
        ("SmsStatus", "received".to_owned()),
        ("ApiVersion", "2010-04-01".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let url = format!(
        "{}/webhooks/twilio",
        settings.public_url_for(settings.listen)
    );
    let signature = signature::sign(&twilio.auth_token, &url, &params);
    let response = reqwest::Client::new()
        .post(&url)
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .with_context(|| format!("posting to {url} (is `drawbridge serve` running?)"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Ok(SimulateOutcome { url, status, body })
}
