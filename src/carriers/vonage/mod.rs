//! PLACEHOLDER — being replaced by the real Vonage module (issue #4). Refuses everything.

use super::{
    Candidate, ErrorClass, Event, HttpCall, HttpReply, LookupQuery, OutboundMessage, PayloadError,
    Route, SendError, SendResult, SimulatedInbound, SimulatedStatus, SimulationKeys, Verification,
    WebhookRequest,
};
use crate::config::Mode;
use crate::phone::BusinessAddress;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

#[derive(Debug, Clone)]
pub struct Account {
    pub api_base: url::Url,
}

impl Account {
    pub fn from_config(_fields: &toml::Table, _mode: Mode) -> Result<Self, String> {
        Err("not yet supported".to_owned())
    }
    #[must_use]
    pub fn api_base(&self) -> &url::Url {
        &self.api_base
    }
    #[must_use]
    pub fn verify(&self, _request: &WebhookRequest, _now: DateTime<Utc>) -> Verification {
        Verification::new(false, "placeholder", Vec::new())
    }
    pub fn build_send(
        &self,
        _m: &OutboundMessage<'_>,
        _t: Option<&str>,
    ) -> Result<HttpCall, SendError> {
        Err(SendError::local(ErrorClass::Permanent, "unsupported"))
    }
    #[must_use]
    pub fn build_lookup(&self, _q: &LookupQuery<'_>, _t: Option<&str>) -> Option<HttpCall> {
        None
    }
    pub fn simulate_inbound(
        &self,
        _u: &str,
        _m: &SimulatedInbound<'_>,
        _k: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        Err("unsupported".to_owned())
    }
    pub fn simulate_status(
        &self,
        _u: &str,
        _s: &SimulatedStatus<'_>,
        _k: &SimulationKeys,
    ) -> Result<WebhookRequest, String> {
        Err("unsupported".to_owned())
    }
    #[must_use]
    pub fn secrets(&self) -> Vec<String> {
        Vec::new()
    }
}

pub fn hint(_r: &WebhookRequest, _route: Route) -> Result<Option<BusinessAddress>, PayloadError> {
    Err(PayloadError::Body("supported yet"))
}
pub fn parse(_r: &WebhookRequest, _route: Route) -> Result<Vec<Event>, PayloadError> {
    Err(PayloadError::Body("supported yet"))
}
#[must_use]
pub fn verify_with_secret(
    _s: &SecretString,
    _r: &WebhookRequest,
    _now: DateTime<Utc>,
) -> Verification {
    Verification::new(false, "placeholder", Vec::new())
}
#[must_use]
pub fn parse_send_reply(_r: &HttpReply) -> SendResult {
    SendResult::Uncertain("unsupported")
}
pub fn parse_lookup_reply(_r: &HttpReply) -> Result<Vec<Candidate>, SendError> {
    Ok(Vec::new())
}
#[must_use]
pub fn new_message_id() -> String {
    String::new()
}
