//! The HTTP client for carriers' APIs: one `reqwest` client shared by every account, bounded in
//! every dimension — a connect timeout, a total timeout per call, no redirects (a credential must
//! never follow one to another host), and a cap on how much of a reply is read.
//!
//! What a failed call means matters more than the failure: a connection that was never made
//! means the carrier never saw the message, and it is safe to send again; a timeout or a
//! connection lost after the request went out means the carrier may have taken it
//! ([`SendResult::Uncertain`]), and the outbox resolves that before sending again.

use super::{
    Candidate, CarrierAccount, ErrorClass, HttpCall, HttpReply, LookupQuery, Method,
    OutboundMessage, SendError, SendResult,
};
use std::time::Duration;
use zeroize::Zeroizing;

/// Most bytes of a carrier's reply that are read; a send reply is a few hundred bytes, a lookup
/// listing a few tens of KiB.
const MAX_REPLY: usize = 1024 * 1024;

/// The longest `Retry-After` honoured: a day. A larger value (or a date far ahead) would hold a
/// message past any use.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Why a call produced no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// The connection could not be made: the carrier never saw the request.
    NotSent,
    /// The request may have reached the carrier (a timeout, a connection lost mid-call).
    Unknown(&'static str),
}

/// The shared client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CarrierClient {
    http: reqwest::Client,
}

impl CarrierClient {
    /// A client whose calls each take at most `timeout`.
    ///
    /// # Errors
    /// When the TLS back end cannot be initialised.
    pub fn new(timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("drawbridge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http })
    }

    /// Makes a call and reads the reply (at most [`MAX_REPLY`] bytes of it).
    ///
    /// # Errors
    /// [`TransportError`] saying whether the carrier may have seen the request.
    pub async fn execute(&self, call: &HttpCall) -> Result<HttpReply, TransportError> {
        let method = match call.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut request = self.http.request(method, call.url.clone());
        for (name, value) in &call.headers {
            request = request.header(*name, value.as_str());
        }
        if let Some((content_type, body)) = &call.body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, *content_type)
                .body(body.to_vec());
        }
        let mut response = request.send().await.map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|seconds| Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
            if body.len() + chunk.len() > MAX_REPLY {
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpReply {
            status,
            retry_after,
            body,
        })
    }

    /// Sends a message through `account`: fetches an access token if the carrier needs one,
    /// builds the carrier's request, makes it and reads the answer.
    pub async fn send(
        &self,
        account: &CarrierAccount,
        message: &OutboundMessage<'_>,
    ) -> SendResult {
        let token = match self.access_token(account).await {
            Ok(token) => token,
            Err(error) => return SendResult::Rejected(error),
        };
        let call = match account.build_send(message, token.as_deref().map(String::as_str)) {
            Ok(call) => call,
            Err(error) => return SendResult::Rejected(error),
        };
        match self.execute(&call).await {
            // RBM's carrier id is the messageId we sent (the outbox id), which a 409
            // ALREADY_EXISTS answer to a resend need not repeat.
            Ok(reply) => match account {
                CarrierAccount::Rbm(_) => {
                    super::rbm::parse_send_reply_for(&reply, message.outbox_id)
                }
                _ => account.carrier().parse_send_reply(&reply),
            }
            .with_server_errors_uncertain(),
            Err(TransportError::NotSent) => SendResult::Rejected(SendError {
                class: ErrorClass::Transient,
                code: Some("connect".to_owned()),
                http_status: None,
                retry_after: None,
            }),
            Err(TransportError::Unknown(reason)) => SendResult::Uncertain(reason),
        }
    }

    /// Lists what the carrier sent matching `query`. `Ok(None)` when the carrier has no lookup.
    ///
    /// # Errors
    /// [`SendError`] when the lookup could not be made or answered; try again later.
    pub async fn lookup(
        &self,
        account: &CarrierAccount,
        query: &LookupQuery<'_>,
    ) -> Result<Option<Vec<Candidate>>, SendError> {
        let token = self.access_token(account).await?;
        let Some(call) = account.build_lookup(query, token.as_deref().map(String::as_str)) else {
            return Ok(None);
        };
        let reply = self.execute(&call).await.map_err(|_| SendError {
            class: ErrorClass::Transient,
            code: Some("lookup_transport".to_owned()),
            http_status: None,
            retry_after: None,
        })?;
        account.carrier().parse_lookup_reply(&reply).map(Some)
    }

    /// The OAuth access token for carriers that need one (RBM), else `None`.
    async fn access_token(
        &self,
        account: &CarrierAccount,
    ) -> Result<Option<Zeroizing<String>>, SendError> {
        match account {
            CarrierAccount::Rbm(rbm) => rbm.access_token(self).await.map(Some),
            _ => Ok(None),
        }
    }
}

impl SendResult {
    /// A 500, 502 or 504 says the carrier's side failed, not whether it had stored the message
    /// first: such an answer is resolved (idempotent resend or lookup) before the message may go
    /// again. A 503 is "not processed" and stays retryable.
    fn with_server_errors_uncertain(self) -> Self {
        match self {
            Self::Rejected(SendError {
                http_status: Some(500 | 502 | 504),
                ..
            }) => Self::Uncertain("server_error"),
            other => other,
        }
    }
}

fn transport_error(error: &reqwest::Error) -> TransportError {
    // A request that could not be built or a connection that was never made: nothing was sent.
    if error.is_builder() || error.is_connect() {
        TransportError::NotSent
    } else if error.is_timeout() {
        TransportError::Unknown("timeout")
    } else {
        TransportError::Unknown("connection_lost")
    }
}
