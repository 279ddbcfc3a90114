//! The two HTTP shapes every carrier module works with, independent of actix and reqwest:
//!
//! - [`WebhookRequest`]: a request a carrier made to us, exactly as received — method, the URL the
//!   carrier called (our `public_url` plus the raw path and query), headers and raw body. Signature
//!   checks, payload parsing, the `webhook verify` command and the tests all take this one type.
//! - [`HttpCall`]: a request we are about to make to a carrier's REST API (send a message, look one
//!   up, fetch a token). Building it is a pure function of the account and the message, so the
//!   conformance tests can check endpoint, authentication and fields without a network.
//!
//! Both hold message text and phone numbers, and [`HttpCall`] holds credentials: their `Debug`
//! shows lengths and header names only, and their bodies are wiped when dropped.

use crate::carriers::form::{self, FormError};
use zeroize::Zeroizing;

/// HTTP methods carriers use for webhooks and we use for their APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }

    /// `GET` or `POST`, any case.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("GET") {
            Some(Self::Get)
        } else if text.eq_ignore_ascii_case("POST") {
            Some(Self::Post)
        } else {
            None
        }
    }
}

/// A webhook request as the carrier sent it. Header names are kept lower-cased; values and the
/// body are kept byte for byte, since signatures cover them.
pub struct WebhookRequest {
    pub method: Method,
    /// The absolute URL the carrier called: what signature schemes that sign the URL cover.
    pub url: String,
    headers: Vec<(String, String)>,
    pub body: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRequest")
            .field("method", &self.method)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Why a captured request file could not be read (`drawbridge webhook verify --request FILE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error("the first line must be `METHOD absolute-URL`, e.g. `POST https://sms.example.com/webhooks/twilio`")]
    RequestLine,
    #[error("the first line must be `METHOD absolute-URL` with METHOD GET or POST")]
    Method,
    #[error("line {0}: a header line must be `Name: value`")]
    Header(usize),
    #[error("the file is not UTF-8 before the blank line that starts the body")]
    NotUtf8,
}

impl WebhookRequest {
    /// A request from its parts. Header names are lower-cased.
    #[must_use]
    pub fn new(
        method: Method,
        url: impl Into<String>,
        headers: impl IntoIterator<Item = (String, String)>,
        body: Vec<u8>,
    ) -> Self {
        Self {
            method,
            url: url.into(),
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v))
                .collect(),
            body: Zeroizing::new(body),
        }
    }

    /// Reads the capture format of `drawbridge webhook verify`: a first line `METHOD absolute-URL`,
    /// then `Name: value` header lines, a blank line, and the raw body (kept byte for byte; a
    /// file without a blank line has an empty body). Lines may end in `\n` or `\r\n`.
    ///
    /// # Errors
    /// [`CaptureError`] naming the line at fault.
    pub fn parse_capture(file: &[u8]) -> Result<Self, CaptureError> {
        // The head ends at the first empty line; the body is everything after it, untouched.
        let mut head_end = file.len();
        let mut body_start = file.len();
        let mut line_start = 0;
        while line_start < file.len() {
            let rest = file.get(line_start..).unwrap_or_default();
            let line_len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let line = rest.get(..line_len).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let next = (line_start + line_len + 1).min(file.len());
            if line.is_empty() && line_start > 0 {
                head_end = line_start;
                body_start = next;
                break;
            }
            line_start = next;
        }
        let head = std::str::from_utf8(file.get(..head_end).unwrap_or_default())
            .map_err(|_| CaptureError::NotUtf8)?;
        let mut lines = head.lines();
        let request_line = lines.next().ok_or(CaptureError::RequestLine)?.trim();
        let (method, url) = request_line
            .split_once(char::is_whitespace)
            .ok_or(CaptureError::RequestLine)?;
        let method = Method::parse(method).ok_or(CaptureError::Method)?;
        let url = url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CaptureError::RequestLine);
        }
        let mut headers = Vec::new();
        for (i, line) in lines.enumerate() {
            let (name, value) = line.split_once(':').ok_or(CaptureError::Header(i + 2))?;
            if name.trim().is_empty() {
                return Err(CaptureError::Header(i + 2));
            }
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        Ok(Self::new(
            method,
            url,
            headers,
            file.get(body_start..).unwrap_or_default().to_vec(),
        ))
    }

    /// The first value of a header, by case-insensitive name.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header, names lower-cased, in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The raw query string of [`WebhookRequest::url`], without `?` and any fragment.
    #[must_use]
    pub fn query(&self) -> &str {
        self.url
            .split_once('?')
            .map(|(_, q)| q.split('#').next().unwrap_or_default())
            .unwrap_or_default()
    }

    /// The URL without its query and fragment.
    #[must_use]
    pub fn url_without_query(&self) -> &str {
        self.url.split(['?', '#']).next().unwrap_or_default()
    }

    /// The media type of the body, lower-cased, without parameters (`application/json`).
    #[must_use]
    pub fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }

    /// The parameters of a form webhook: the URL-encoded body of a POST, or the query of a GET.
    ///
    /// # Errors
    /// [`FormError`] when they are not well-formed.
    pub fn form_params(&self) -> Result<Vec<(String, String)>, FormError> {
        match self.method {
            Method::Get => form::parse(self.query().as_bytes()),
            Method::Post => form::parse(&self.body),
        }
    }

    /// The parameters of the URL's query string.
    ///
    /// # Errors
    /// [`FormError`] when they are not well-formed.
    pub fn query_params(&self) -> Result<Vec<(String, String)>, FormError> {
        form::parse(self.query().as_bytes())
    }
}

/// A request to a carrier's REST API, built but not yet made.
pub struct HttpCall {
    pub method: Method,
    pub url: url::Url,
    /// Header names and values. `Authorization` holds a credential: never log values.
    pub headers: Vec<(&'static str, Zeroizing<String>)>,
    /// The body and its media type, if any. Holds message text and phone numbers.
    pub body: Option<(&'static str, Zeroizing<Vec<u8>>)>,
}

impl std::fmt::Debug for HttpCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCall")
            .field("method", &self.method)
            .field("host", &self.url.host_str())
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .field("body_bytes", &self.body.as_ref().map(|(_, b)| b.len()))
            .finish()
    }
}

impl HttpCall {
    /// A call with no headers and no body.
    #[must_use]
    pub fn new(method: Method, url: url::Url) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, Zeroizing::new(value.into())));
        self
    }

    /// `Authorization: Basic base64(user:password)`.
    #[must_use]
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        use base64::Engine;
        let credentials = Zeroizing::new(format!("{user}:{password}"));
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes());
        self.header("authorization", format!("Basic {encoded}"))
    }

    /// `Authorization: Bearer token`.
    #[must_use]
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// A JSON body.
    #[must_use]
    pub fn json(mut self, value: &serde_json::Value) -> Self {
        self.body = Some((
            "application/json",
            Zeroizing::new(serde_json::to_vec(value).unwrap_or_default()),
        ));
        self
    }

    /// An `application/x-www-form-urlencoded` body; names may repeat.
    #[must_use]
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        self.body = Some((
            "application/x-www-form-urlencoded",
            Zeroizing::new(form::encode(pairs).into_bytes()),
        ));
        self
    }

    /// The value of a header, by case-insensitive name (tests).
    #[must_use]
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text (tests).
    #[must_use]
    pub fn body_text(&self) -> &str {
        self.body
            .as_ref()
            .and_then(|(_, b)| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

/// What a carrier's API answered, read in full (bounded by the client).
#[derive(Clone)]
pub struct HttpReply {
    pub status: u16,
    /// `Retry-After`, when the carrier sent one in seconds.
    pub retry_after: Option<std::time::Duration>,
    pub body: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for HttpReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpReply")
            .field("status", &self.status)
            .field("retry_after", &self.retry_after)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl HttpReply {
    /// A reply from a status and body (tests and the conformance tables).
    #[must_use]
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            retry_after: None,
            body: Zeroizing::new(body.into()),
        }
    }

    /// The body parsed as JSON, if it is JSON.
    #[must_use]
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    #[must_use]
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_format_keeps_the_body_byte_for_byte() {
        let file = b"POST https://sms.example.com/webhooks/telnyx?x=1\r\nContent-Type: application/json\r\ntelnyx-timestamp: 1700000000\r\n\r\n{\"a\":\n1}\r\n";
        let request = WebhookRequest::parse_capture(file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.method, Method::Post);
        assert_eq!(request.url, "https://sms.example.com/webhooks/telnyx?x=1");
        assert_eq!(request.query(), "x=1");
        assert_eq!(
            request.url_without_query(),
            "https://sms.example.com/webhooks/telnyx"
        );
        assert_eq!(request.header("Telnyx-Timestamp"), Some("1700000000"));
        assert_eq!(request.content_type(), "application/json");
        assert_eq!(request.body.as_slice(), b"{\"a\":\n1}\r\n");
    }

    #[test]
    fn capture_format_errors_name_the_problem() {
        assert_eq!(
            WebhookRequest::parse_capture(b"POST /relative\n\n").err(),
            Some(CaptureError::RequestLine)
        );
        assert_eq!(
            WebhookRequest::parse_capture(b"PUT https://x/\n\n").err(),
            Some(CaptureError::Method)
        );
        assert_eq!(
            WebhookRequest::parse_capture(b"POST https://x/\nno colon here\n\nbody").err(),
            Some(CaptureError::Header(2))
        );
        let get = WebhookRequest::parse_capture(b"GET https://x/hook?To=%2B1&Text=hi")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(get.body.is_empty());
        assert_eq!(
            get.form_params().unwrap_or_default(),
            vec![
                ("To".to_owned(), "+1".to_owned()),
                ("Text".to_owned(), "hi".to_owned())
            ]
        );
    }

    #[test]
    fn debug_shows_no_values() {
        let call = HttpCall::new(
            Method::Post,
            url::Url::parse("https://api.example.com/x").unwrap_or_else(|e| panic!("{e}")),
        )
        .basic_auth("user", "hunter2")
        .form(&[("Body", "my secret text"), ("To", "+15551234567")]);
        let debug = format!("{call:?}");
        for needle in ["hunter2", "secret", "5551234567", "Basic"] {
            assert!(!debug.contains(needle), "{debug}");
        }
        assert!(call.body_text().contains("Body=my+secret+text"));
        let request = WebhookRequest::new(
            Method::Post,
            "https://x/y",
            [("X-Sig".to_owned(), "abc".to_owned())],
            b"Body=secret".to_vec(),
        );
        let debug = format!("{request:?}");
        assert!(
            !debug.contains("secret") && !debug.contains("abc"),
            "{debug}"
        );
    }
}
