//! `drawbridge simulate`: the service's own traffic, made on the command line.
//!
//! - `simulate inbound` sends the running service an inbound message, and `simulate status` a
//!   delivery status callback, shaped and signed exactly as the chosen carrier would (with the
//!   configured account's credentials, so the service accepts them).
//! - `simulate carrier` ([`fake`]) serves every carrier's send API on one port, for tests and
//!   demonstrations.
//! - [`idp`] is a fake OpenID Connect provider (authorization code + PKCE, ES256 ID tokens, with
//!   switchable faults) for testing and demonstrating the staff console's single sign-on.
//! - [`knowledge`] is a fake of a business's knowledge-check endpoint (signature checks, switchable
//!   faults) for testing the secure page's optional knowledge check.

pub mod fake;
pub mod idp;
pub mod knowledge;

use crate::carriers::{
    Carrier, Method, SimulatedInbound, SimulatedStatus, SimulationKeys, WebhookRequest,
};
use crate::config::Settings;
use crate::phone::{BusinessAddress, E164};
use crate::pipeline::Media;
use anyhow::{anyhow, bail, Context};
use secrecy::SecretString;

/// What the service answered.
#[derive(Debug)]
pub struct SimulateOutcome {
    pub method: &'static str,
    pub url: String,
    pub status: reqwest::StatusCode,
    pub body: String,
}

/// A simulated inbound message.
#[derive(Debug, Clone, Default)]
pub struct InboundArgs {
    /// The carrier to speak as; defaults to the carrier of the account owning `to`.
    pub carrier: Option<String>,
    /// The customer's number.
    pub from: String,
    /// Our number, short code or `rcs:agent`.
    pub to: String,
    pub body: String,
    /// Media URLs (MMS/RCS files).
    pub media: Vec<String>,
    /// The carrier's message id; a fresh one in the carrier's format by default. Repeat it to
    /// simulate a carrier's retry.
    pub message_id: Option<String>,
    /// The carrier's private signing key, where only the carrier holds one (Telnyx: base64 of
    /// the Ed25519 seed).
    pub signing_key: Option<SecretString>,
}

/// A simulated delivery status callback.
#[derive(Debug, Clone, Default)]
pub struct StatusArgs {
    pub carrier: Option<String>,
    /// Our sender of the message.
    pub from: String,
    /// The customer it went to.
    pub to: String,
    /// The carrier's id of the message.
    pub message_id: String,
    /// The carrier's own status word.
    pub status: String,
    pub error_code: Option<String>,
    pub signing_key: Option<SecretString>,
}

/// The account owning `to`, checked against `--carrier` when given.
fn account_for<'a>(
    settings: &'a Settings,
    carrier: Option<&str>,
    address: &BusinessAddress,
    flag: &str,
) -> anyhow::Result<&'a crate::config::Account> {
    let account = settings.account_for(address).ok_or_else(|| {
        anyhow!("{flag}: no [[numbers]] entry in the configuration has this sender")
    })?;
    if let Some(name) = carrier {
        let wanted = Carrier::from_name(name)
            .ok_or_else(|| anyhow!("--carrier: `{name}` is not one of {}", Carrier::names()))?;
        if wanted != account.carrier.carrier() {
            bail!(
                "--carrier: {flag} belongs to a {} account, not {name}",
                account.carrier.carrier().name()
            );
        }
    }
    Ok(account)
}

fn business(text: &str, flag: &str) -> anyhow::Result<BusinessAddress> {
    BusinessAddress::from_key(text.trim()).map_err(|e| anyhow!("{flag}: {e}"))
}

/// Posts a signed inbound message to the running service.
///
/// # Errors
/// When a number is malformed or not configured, the account cannot sign, or the service cannot
/// be reached.
pub async fn inbound(settings: &Settings, args: &InboundArgs) -> anyhow::Result<SimulateOutcome> {
    let from = E164::parse(&args.from).map_err(|e| anyhow!("--from: {e}"))?;
    let to = business(&args.to, "--to")?;
    let account = account_for(settings, args.carrier.as_deref(), &to, "--to")?;
    let carrier = account.carrier.carrier();
    let message_id = args
        .message_id
        .clone()
        .unwrap_or_else(|| carrier.new_message_id());
    let media: Vec<Media> = args
        .media
        .iter()
        .map(|url| crate::carriers::media(url, Some("image/jpeg"), None, None))
        .collect();
    let url = format!(
        "{}/webhooks/{}",
        settings.public_url_for(settings.listen),
        carrier.name()
    );
    let request = account
        .carrier
        .simulate_inbound(
            &url,
            &SimulatedInbound {
                message_id: &message_id,
                from: &from,
                to: &to,
                body: &args.body,
                media: &media,
            },
            &SimulationKeys {
                now: chrono::Utc::now(),
                signing_key: args.signing_key.clone(),
            },
        )
        .map_err(|e| anyhow!("{}: {e}", carrier.name()))?;
    deliver(&request).await
}

/// Posts a signed status callback to the running service.
///
/// # Errors
/// As [`inbound`].
pub async fn status(settings: &Settings, args: &StatusArgs) -> anyhow::Result<SimulateOutcome> {
    let from = business(&args.from, "--from")?;
    let to = E164::parse(&args.to).map_err(|e| anyhow!("--to: {e}"))?;
    let account = account_for(settings, args.carrier.as_deref(), &from, "--from")?;
    let carrier = account.carrier.carrier();
    let url = format!(
        "{}/webhooks/{}/status",
        settings.public_url_for(settings.listen),
        carrier.name()
    );
    let request = account
        .carrier
        .simulate_status(
            &url,
            &SimulatedStatus {
                carrier_message_id: &args.message_id,
                status: &args.status,
                error_code: args.error_code.as_deref(),
                from: &from,
                to: &to,
            },
            &SimulationKeys {
                now: chrono::Utc::now(),
                signing_key: args.signing_key.clone(),
            },
        )
        .map_err(|e| anyhow!("{}: {e}", carrier.name()))?;
    deliver(&request).await
}

/// Makes a [`WebhookRequest`] over HTTP, as the carrier would.
///
/// # Errors
/// When the service cannot be reached.
pub async fn deliver(request: &WebhookRequest) -> anyhow::Result<SimulateOutcome> {
    let client = reqwest::Client::new();
    let method = match request.method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
    };
    let mut call = client.request(method, &request.url);
    for (name, value) in request.headers() {
        call = call.header(name, value);
    }
    if request.method == Method::Post {
        call = call.body(request.body.to_vec());
    }
    let response = call
        .send()
        .await
        .with_context(|| format!("calling {} (is `drawbridge serve` running?)", request.url))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Ok(SimulateOutcome {
        method: request.method.as_str(),
        url: request.url.clone(),
        status,
        body,
    })
}
