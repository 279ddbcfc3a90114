//! The optional knowledge check: before a customer's secure session opens, Drawbridge asks the
//! business's own system whether what the customer typed (a date of birth, the last digits of an
//! account) is right. This module is the client of that callback; [`crate::simulate::knowledge`]
//! is a local fake of the business's endpoint.
//!
//! # Protocol (for the business's developers)
//!
//! | | |
//! |---|---|
//! | request | `POST {url}` — the configured URL, exactly; `https` (plain `http` only to a loopback host, for local development) |
//! | request headers | `Content-Type: application/json`; `X-Drawbridge-Signature: t=<unix seconds>,v1=<signature>` |
//! | request body | compact JSON, members in this order: `{"conversation_id":"<id>","answer":"<what the customer typed>","timestamp":<unix seconds>,"nonce":"<32 lowercase hex chars>"}`; `answer` is exactly what the customer typed (normalise it — trim, case — on your side) |
//! | signature | lowercase hex of HMAC-SHA256, keyed with the shared secret, over the ASCII bytes of `<t>` (the header's decimal timestamp), a `.`, then the raw body bytes exactly as received (do not re-serialise the JSON) |
//! | checking it | recompute the HMAC and compare in constant time; refuse a `t` more than 5 minutes from your clock (the fake and [`verify_signature`] do both); we recommend also refusing a `nonce` seen before within that window. Ignore unknown `key=value` items in the header; more than one `v1` may appear in future (secret rotation), any one matching suffices |
//! | answer: yes | HTTP `200`, body `{"verified": true}` |
//! | answer: no | HTTP `200`, body `{"verified": false}` |
//! | anything else | an error, and the customer is not let in: any status other than `200` (including `2xx` and `3xx` — redirects are never followed), a body that is not exactly one JSON object whose only member is the boolean `verified` (`{"verified": "true"}`, `{"verified": 1}`, extra members, duplicate members, other JSON are all refused), a body over 16 KiB, no complete answer within the timeout (5 s by default), a failed connection or TLS handshake |
//! | retries | none: an error is reported to the customer's page as "cannot check right now" |
//!
//! [`sign`] and [`verify_signature`] implement the signature for the business's side (and the
//! fake); [`KnowledgeCheck`] is Drawbridge's side.
//!
//! # What stays secret
//!
//! The answer (personal data) and the shared secret never appear in an error, a log line or a
//! `Debug` output, and neither does the business's reply or the reqwest error (its text can carry
//! the URL, with whatever the business put in its query). The request body, which holds the
//! answer, is serialised into a buffer that is zeroed when the HTTP stack drops it; copies the HTTP
//! and TLS layers make of it on the way out are beyond reach (best effort, as everywhere).

use actix_web::web::Bytes;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::{Host, Url};
use zeroize::Zeroizing;

/// The request header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Drawbridge-Signature";

/// The timeout when the configuration names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The shortest shared secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The longest prompt accepted, in characters.
pub const MAX_PROMPT_CHARS: usize = 200;

/// The most bytes of the business's answer that are read.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// A business's knowledge check, as configured.
#[derive(Clone)]
pub struct KnowledgeSettings {
    /// The business's endpoint; validated by [`KnowledgeCheck::new`].
    pub url: String,
    /// The shared HMAC secret (at least [`MIN_SECRET_BYTES`] bytes).
    pub secret: SecretString,
    /// What the page asks the customer, e.g. "Your date of birth (DD/MM/YYYY)".
    pub prompt: String,
    /// How long the whole call may take ([`DEFAULT_TIMEOUT`] is the usual choice).
    pub timeout: Duration,
}

impl fmt::Debug for KnowledgeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnowledgeSettings")
            .field("url", &redacted_url_text(&self.url))
            .field("secret", &"[redacted]")
            .field("prompt", &self.prompt)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why [`KnowledgeCheck::new`] refused the settings. Messages name the setting, never its secret
/// value.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeConfigError {
    /// The URL does not parse as an absolute URL.
    #[error("knowledge check `url` is not a valid absolute URL")]
    InvalidUrl,
    /// The URL's scheme is neither `https` nor `http`.
    #[error("knowledge check `url` must use https, not `{0}`")]
    UnsupportedScheme(String),
    /// Plain `http` to a host that is not loopback.
    #[error(
        "knowledge check `url` uses plain http to `{0}`; use https (plain http is allowed only to \
         a loopback host: 127.0.0.1, ::1 or localhost)"
    )]
    InsecureHttp(String),
    /// The secret is empty.
    #[error("knowledge check `secret` is empty")]
    EmptySecret,
    /// The secret is shorter than [`MIN_SECRET_BYTES`].
    #[error("knowledge check `secret` is too short: it must be at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    /// The prompt is empty or only white space.
    #[error("knowledge check `prompt` is empty")]
    EmptyPrompt,
    /// The prompt is longer than [`MAX_PROMPT_CHARS`].
    #[error(
        "knowledge check `prompt` is {0} characters long; it must be at most {MAX_PROMPT_CHARS}"
    )]
    LongPrompt(usize),
    /// The timeout is zero.
    #[error("knowledge check `timeout` must be greater than zero")]
    ZeroTimeout,
    /// The HTTP client could not be built (the TLS back end failed to initialise).
    #[error("knowledge check: cannot initialise the HTTP client")]
    HttpClient,
}

/// Why a knowledge check has no answer. None of these means "no": the customer is not let in,
/// and the page says the check cannot be made right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KnowledgeError {
    /// No complete answer within the configured timeout.
    #[error("the business's knowledge check did not answer in time")]
    Timeout,
    /// The connection (or TLS handshake) failed, or was lost before the answer was complete.
    #[error("the business's knowledge check could not be reached")]
    Unreachable,
    /// An HTTP status other than 200 (a redirect included: they are never followed).
    #[error("the business's knowledge check answered HTTP {0}")]
    Status(u16),
    /// A 200 whose body is not `{"verified": true}` or `{"verified": false}`, or is over 16 KiB.
    #[error("the business's knowledge check sent a malformed answer")]
    Malformed,
}

/// A configured knowledge check. Cheap to clone.
#[derive(Clone)]
pub struct KnowledgeCheck {
    inner: Arc<Inner>,
    http: reqwest::Client,
}

struct Inner {
    url: Url,
    secret: SecretString,
    prompt: String,
    timeout: Duration,
}

impl fmt::Debug for KnowledgeCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnowledgeCheck")
            .field("url", &redacted_url(&self.inner.url))
            .field("secret", &"[redacted]")
            .field("prompt", &self.inner.prompt)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl KnowledgeCheck {
    /// Validates the settings and builds the client.
    ///
    /// Refuses: a URL that does not parse; a scheme other than `https` — except plain `http` to a
    /// loopback host (127.0.0.1, ::1, localhost), allowed for tests and local development; an
    /// empty secret or one shorter than [`MIN_SECRET_BYTES`] bytes; an empty (or all white space)
    /// prompt or one over [`MAX_PROMPT_CHARS`] characters; a zero timeout.
    ///
    /// # Errors
    /// [`KnowledgeConfigError`] naming the setting at fault.
    pub fn new(settings: KnowledgeSettings) -> Result<Self, KnowledgeConfigError> {
        let KnowledgeSettings {
            url,
            secret,
            prompt,
            timeout,
        } = settings;
        let url = Url::parse(url.trim()).map_err(|_| KnowledgeConfigError::InvalidUrl)?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(KnowledgeConfigError::InsecureHttp(
                    url.host_str().unwrap_or("(none)").to_owned(),
                ))
            }
            other => return Err(KnowledgeConfigError::UnsupportedScheme(other.to_owned())),
        }
        if url.host().is_none() {
            return Err(KnowledgeConfigError::InvalidUrl);
        }
        let secret_len = secret.expose_secret().len();
        if secret_len == 0 {
            return Err(KnowledgeConfigError::EmptySecret);
        }
        if secret_len < MIN_SECRET_BYTES {
            return Err(KnowledgeConfigError::ShortSecret);
        }
        if prompt.trim().is_empty() {
            return Err(KnowledgeConfigError::EmptyPrompt);
        }
        let prompt_chars = prompt.chars().count();
        if prompt_chars > MAX_PROMPT_CHARS {
            return Err(KnowledgeConfigError::LongPrompt(prompt_chars));
        }
        if timeout.is_zero() {
            return Err(KnowledgeConfigError::ZeroTimeout);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("drawbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| KnowledgeConfigError::HttpClient)?;
        Ok(Self {
            inner: Arc::new(Inner {
                url,
                secret,
                prompt,
                timeout,
            }),
            http,
        })
    }

    /// What the page asks the customer.
    #[must_use]
    pub fn prompt(&self) -> &str {
        &self.inner.prompt
    }

    /// Asks the business whether `answer` is right for the conversation.
    ///
    /// `Ok(true)` when the business said yes, `Ok(false)` when it said no. The whole call —
    /// connecting, sending, reading the answer — takes at most the configured timeout.
    ///
    /// # Errors
    /// [`KnowledgeError`] when there is no valid answer; the customer must not be let in.
    pub async fn check(&self, conversation_id: &str, answer: &str) -> Result<bool, KnowledgeError> {
        // The business compares against its own wall clock, so this is the system time, not
        // the service's (test-adjustable) `Clock`.
        let timestamp = unix_now();
        let body = request_body(conversation_id, answer, timestamp, &random_nonce())?;
        let signature = sign(
            self.inner.secret.expose_secret().as_bytes(),
            timestamp,
            &body,
        );
        // The body goes to the HTTP stack in its zeroing buffer, not as a copy.
        let body = Bytes::from_owner(body);
        let call = async {
            let mut response = self
                .http
                .post(self.inner.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, signature)
                .body(body)
                .send()
                .await
                .map_err(|e| transport_error(&e))?;
            let status = response.status();
            if status != reqwest::StatusCode::OK {
                return Err(KnowledgeError::Status(status.as_u16()));
            }
            if response
                .content_length()
                .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
            {
                return Err(KnowledgeError::Malformed);
            }
            let mut reply = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
                if reply.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
                    return Err(KnowledgeError::Malformed);
                }
                reply.extend_from_slice(&chunk);
            }
            parse_reply(&reply)
        };
        tokio::time::timeout(self.inner.timeout, call)
            .await
            .unwrap_or(Err(KnowledgeError::Timeout))
    }
}

/// The request body, serialised into a buffer that is zeroed on drop and large enough that
/// serialising never reallocates (which would leave an unzeroed copy of the answer behind).
fn request_body(
    conversation_id: &str,
    answer: &str,
    timestamp: i64,
    nonce: &str,
) -> Result<Zeroizing<Vec<u8>>, KnowledgeError> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        conversation_id: &'a str,
        answer: &'a str,
        timestamp: i64,
        nonce: &'a str,
    }
    // JSON escapes a byte to at most 6 (`\u001f`); the rest is under 128 bytes.
    let capacity = conversation_id
        .len()
        .saturating_add(answer.len())
        .saturating_add(nonce.len())
        .saturating_mul(6)
        .saturating_add(128);
    let mut buffer = Zeroizing::new(Vec::with_capacity(capacity));
    serde_json::to_writer(
        &mut *buffer,
        &Body {
            conversation_id,
            answer,
            timestamp,
            nonce,
        },
    )
    // Serialising strings and an integer into memory cannot fail; were it to, no request is made.
    .map_err(|_| KnowledgeError::Malformed)?;
    Ok(buffer)
}

/// The business's answer: exactly `{"verified": <bool>}`.
fn parse_reply(body: &[u8]) -> Result<bool, KnowledgeError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Reply {
        verified: bool,
    }
    // A derived struct also deserialises from an array (`[true]`): only an object will do.
    let first = body
        .iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(KnowledgeError::Malformed);
    }
    serde_json::from_slice::<Reply>(body)
        .map(|reply| reply.verified)
        .map_err(|_| KnowledgeError::Malformed)
}

/// A reqwest failure as a variant; the error itself (which may name the URL) goes no further.
fn transport_error(error: &reqwest::Error) -> KnowledgeError {
    if error.is_timeout() {
        KnowledgeError::Timeout
    } else {
        KnowledgeError::Unreachable
    }
}

/// The value of [`SIGNATURE_HEADER`] for a body sent at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
#[must_use]
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Whether `header` (a [`SIGNATURE_HEADER`] value) signs `body` with `secret`, at a time within
/// `tolerance_secs` of `now_unix` (either way). The comparison is constant-time. The header must
/// carry exactly one `t`; any of its `v1` items may match; unknown items are ignored.
#[must_use]
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> bool {
    if tolerance_secs < 0 {
        return false;
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            return false;
        };
        match key {
            "t" => {
                if timestamp.is_some()
                    || value.is_empty()
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    return false;
                }
                let Ok(parsed) = value.parse::<i64>() else {
                    return false;
                };
                timestamp = Some(parsed);
            }
            "v1" => signatures.push(value),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    if timestamp.abs_diff(now_unix) > tolerance_secs.unsigned_abs() {
        return false;
    }
    signatures.into_iter().any(|signature| {
        hex::decode(signature)
            .is_ok_and(|bytes| mac(secret, timestamp, body).verify_slice(&bytes).is_ok())
    })
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// 128 random bits, as 32 lowercase hex characters.
fn random_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The URL without credentials, query or fragment (any of which may hold a secret), for `Debug`.
fn redacted_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    if shown.query().is_some() {
        shown.set_query(Some("[redacted]"));
    }
    shown.set_fragment(None);
    shown.to_string()
}

fn redacted_url_text(text: &str) -> String {
    Url::parse(text.trim()).map_or_else(|_| "[unparsed]".to_owned(), |url| redacted_url(&url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::knowledge::{FakeKnowledge, KnowledgeMode, RunningKnowledge};
    use std::io::{Read, Write};
    use std::time::Instant;

    const SECRET: &str = "whsec-test-0123456789abcdef";
    const ANSWER: &str = "01/02/1990";

    fn settings(url: &str) -> KnowledgeSettings {
        KnowledgeSettings {
            url: url.to_owned(),
            secret: SecretString::from(SECRET),
            prompt: "Your date of birth (DD/MM/YYYY)".to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    async fn setup() -> (RunningKnowledge, KnowledgeCheck) {
        let fake = FakeKnowledge::spawn(SECRET).await.unwrap();
        fake.accept("conv-1", ANSWER);
        let check = KnowledgeCheck::new(settings(&fake.url)).unwrap();
        (fake, check)
    }

    /// A one-shot HTTP server on loopback that answers the first request with `response`.
    fn raw_server(response: Vec<u8>) -> String {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                let _ = stream.write_all(&response);
                let _ = stream.flush();
            }
        });
        format!("http://{address}/verify")
    }

    #[test]
    fn the_body_and_signature_match_a_fixed_vector() {
        let body = request_body(
            "conv-42",
            ANSWER,
            1_700_000_000,
            "00112233445566778899aabbccddeeff",
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"conversation_id":"conv-42","answer":"01/02/1990","timestamp":1700000000,"nonce":"00112233445566778899aabbccddeeff"}"#
        );
        // printf '%s' '1700000000.<body>' | openssl dgst -sha256 -hmac 'whsec-test-0123456789abcdef'
        let expected =
            "t=1700000000,v1=e9cf060bb56b3e5ac1bad3cd37bcfbed475055fb9637e851bb534bb1559f376e";
        assert_eq!(sign(SECRET.as_bytes(), 1_700_000_000, &body), expected);
        assert!(verify_signature(
            SECRET.as_bytes(),
            expected,
            &body,
            1_700_000_000,
            300
        ));
    }

    #[test]
    fn the_body_escapes_what_the_customer_typed() {
        let typed = "a\"b\\c\u{1}\n é";
        let body = request_body("c", typed, 1, "n").unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["answer"], typed);
        // Large enough from the start: serialising never reallocated (and left a copy behind).
        assert!(body.capacity() >= body.len());
        let worst = "\u{1}".repeat(100);
        let body = request_body("c", &worst, 1, "n").unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["answer"],
            worst
        );
    }

    #[test]
    fn signatures_are_refused_when_anything_is_off() {
        let secret = SECRET.as_bytes();
        let body = br#"{"conversation_id":"c"}"#;
        let now = 1_700_000_000;
        let header = sign(secret, now, body);
        assert!(verify_signature(secret, &header, body, now, 300));
        // Within the tolerance either way, not beyond it.
        assert!(verify_signature(secret, &header, body, now + 300, 300));
        assert!(verify_signature(secret, &header, body, now - 300, 300));
        assert!(!verify_signature(secret, &header, body, now + 301, 300));
        assert!(!verify_signature(secret, &header, body, now - 301, 300));
        assert!(!verify_signature(secret, &header, body, now, -1));
        // Another secret, another body, a tampered timestamp.
        assert!(!verify_signature(
            b"another-secret-0123456789",
            &header,
            body,
            now,
            300
        ));
        assert!(!verify_signature(
            secret,
            &header,
            br#"{"conversation_id":"d"}"#,
            now,
            300
        ));
        let shifted = header.replace("t=1700000000", "t=1700000001");
        assert!(!verify_signature(secret, &shifted, body, now, 300));
        // Malformed headers.
        let v1 = header.split_once(",v1=").unwrap().1;
        for bad in [
            String::new(),
            format!("v1={v1}"),
            "t=1700000000".to_owned(),
            format!("t=1700000000,t=1700000000,v1={v1}"),
            format!("t=-1700000000,v1={v1}"),
            format!("t=1700000000,v1={}", &v1[..62]),
            format!("t=1700000000,v1={v1}zz"),
            format!("t=1700000000;v1={v1}"),
        ] {
            assert!(!verify_signature(secret, &bad, body, now, 300), "{bad}");
        }
        // Upper-case hex, spaces, unknown items and a second (rotated) v1 are accepted.
        let other = "0".repeat(64);
        for good in [
            format!("t=1700000000,v1={}", v1.to_uppercase()),
            format!("t=1700000000, v1={v1}"),
            format!("v0=abc,t=1700000000,v1={other},v1={v1}"),
        ] {
            assert!(verify_signature(secret, &good, body, now, 300), "{good}");
        }
    }

    #[test]
    fn only_exactly_verified_true_or_false_is_an_answer() {
        assert_eq!(parse_reply(br#"{"verified": true}"#), Ok(true));
        assert_eq!(parse_reply(br#"{"verified":false}"#), Ok(false));
        for bad in [
            &br#"{"verified": "true"}"#[..],
            br#"{"verified": 1}"#,
            br#"{"verified": null}"#,
            br#"{"verified": true, "extra": 1}"#,
            br#"{"verified": false, "verified": true}"#,
            br#"{"ok": true}"#,
            br#"[true]"#,
            br#" [true]"#,
            br#"{}"#,
            b"true",
            b"",
            br#"{"verified": true"#,
        ] {
            assert_eq!(
                parse_reply(bad),
                Err(KnowledgeError::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn the_business_says_yes_or_no() {
        let (fake, check) = setup().await;
        assert_eq!(check.check("conv-1", ANSWER).await, Ok(true));
        // The fake trims and ignores case; the client sends what was typed.
        assert_eq!(check.check("conv-1", "  01/02/1990 ").await, Ok(true));
        assert_eq!(check.check("conv-1", "02/01/1990").await, Ok(false));
        assert_eq!(check.check("conv-2", ANSWER).await, Ok(false));
        let requests = fake.requests();
        assert_eq!(requests.len(), 4);
        assert!(requests.iter().all(|r| r.signature_valid));
        let answered: Vec<_> = requests.iter().map(|r| r.answered).collect();
        assert_eq!(answered, [Some(true), Some(true), Some(false), Some(false)]);
        assert_eq!(requests[3].conversation_id, "conv-2");
        fake.stop().await;
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_by_the_business() {
        let (fake, _) = setup().await;
        let mut wrong = settings(&fake.url);
        wrong.secret = SecretString::from("another-secret-0123456789");
        let check = KnowledgeCheck::new(wrong).unwrap();
        assert_eq!(
            check.check("conv-1", ANSWER).await,
            Err(KnowledgeError::Status(401))
        );
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        assert!(!requests[0].signature_valid);
        assert_eq!(requests[0].answered, None);
        fake.stop().await;
    }

    #[tokio::test]
    async fn a_slow_business_times_out_within_the_timeout() {
        let fake = FakeKnowledge::spawn(SECRET).await.unwrap();
        fake.accept("conv-1", ANSWER);
        fake.set_mode(KnowledgeMode::Delay(Duration::from_secs(10)));
        let timeout = Duration::from_millis(400);
        let check = KnowledgeCheck::new(KnowledgeSettings {
            timeout,
            ..settings(&fake.url)
        })
        .unwrap();
        let started = Instant::now();
        assert_eq!(
            check.check("conv-1", ANSWER).await,
            Err(KnowledgeError::Timeout)
        );
        let elapsed = started.elapsed();
        assert!(elapsed >= timeout, "{elapsed:?}");
        assert!(elapsed < timeout + Duration::from_secs(1), "{elapsed:?}");
        // A delay inside the timeout is only a slow yes.
        fake.set_mode(KnowledgeMode::Delay(Duration::from_millis(50)));
        assert_eq!(check.check("conv-1", ANSWER).await, Ok(true));
        fake.stop().await;
    }

    #[tokio::test]
    async fn server_errors_malformed_answers_and_redirects_are_errors() {
        let (fake, check) = setup().await;
        fake.set_mode(KnowledgeMode::ServerError);
        assert_eq!(
            check.check("conv-1", ANSWER).await,
            Err(KnowledgeError::Status(500))
        );
        fake.set_mode(KnowledgeMode::Malformed);
        assert_eq!(
            check.check("conv-1", ANSWER).await,
            Err(KnowledgeError::Malformed)
        );
        fake.set_mode(KnowledgeMode::Redirect);
        assert_eq!(
            check.check("conv-1", ANSWER).await,
            Err(KnowledgeError::Status(302))
        );
        // Three requests, all to the check: the redirect's target (which says yes to anyone)
        // was never called.
        let requests = fake.requests();
        assert_eq!(requests.len(), 3, "{requests:?}");
        assert!(requests
            .iter()
            .all(|r| r.conversation_id == "conv-1" && r.signature_valid && r.answered.is_none()));
        fake.stop().await;
    }

    #[tokio::test]
    async fn an_oversized_answer_is_refused() {
        let mut big = br#"{"verified": true}"#.to_vec();
        big.resize(MAX_RESPONSE_BYTES + 1, b' ');
        for chunked in [false, true] {
            let mut response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n".to_vec();
            if chunked {
                response.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                response.extend_from_slice(format!("{:x}\r\n", big.len()).as_bytes());
                response.extend_from_slice(&big);
                response.extend_from_slice(b"\r\n0\r\n\r\n");
            } else {
                response
                    .extend_from_slice(format!("Content-Length: {}\r\n\r\n", big.len()).as_bytes());
                response.extend_from_slice(&big);
            }
            let check = KnowledgeCheck::new(settings(&raw_server(response))).unwrap();
            assert_eq!(
                check.check("conv-1", ANSWER).await,
                Err(KnowledgeError::Malformed),
                "chunked: {chunked}"
            );
        }
        // The same answer within the limit is accepted (so the refusal above is the size).
        let small = br#"{"verified": true}"#;
        let mut response =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", small.len()).into_bytes();
        response.extend_from_slice(small);
        let check = KnowledgeCheck::new(settings(&raw_server(response))).unwrap();
        assert_eq!(check.check("conv-1", ANSWER).await, Ok(true));
    }

    #[tokio::test]
    async fn errors_never_carry_the_answer_the_secret_or_the_url() {
        // Nothing listens on this port.
        let port = {
            let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
            listener.local_addr().unwrap().port()
        };
        let check = KnowledgeCheck::new(settings(&format!(
            "http://127.0.0.1:{port}/verify?key=query-secret-value"
        )))
        .unwrap();
        let unreachable = check.check("conv-1", ANSWER).await.unwrap_err();
        assert_eq!(unreachable, KnowledgeError::Unreachable);

        let (fake, good) = setup().await;
        let mut errors = vec![unreachable];
        for mode in [KnowledgeMode::ServerError, KnowledgeMode::Malformed] {
            fake.set_mode(mode);
            errors.push(good.check("conv-1", ANSWER).await.unwrap_err());
        }
        errors.push(KnowledgeError::Timeout);
        for error in errors {
            for text in [error.to_string(), format!("{error:?}")] {
                for secret in [ANSWER, SECRET, "query-secret-value", "verified"] {
                    assert!(!text.contains(secret), "{text} contains {secret}");
                }
            }
        }
        fake.stop().await;
    }

    #[test]
    fn debug_output_has_no_secret() {
        let mut with_query = settings("https://business.example/check?api_key=query-secret-value");
        with_query.secret = SecretString::from("another-secret-0123456789");
        for settings in [settings("https://business.example/check"), with_query] {
            let check = KnowledgeCheck::new(settings.clone()).unwrap();
            for text in [format!("{settings:?}"), format!("{check:?}")] {
                assert!(text.contains("business.example/check"), "{text}");
                assert!(text.contains("date of birth"), "{text}");
                for secret in [SECRET, "another-secret", "query-secret-value"] {
                    assert!(!text.contains(secret), "{text} contains {secret}");
                }
            }
        }
    }

    #[test]
    fn unusable_settings_are_refused() {
        let refused = |settings: KnowledgeSettings| KnowledgeCheck::new(settings).unwrap_err();
        assert!(matches!(
            refused(settings("not a url")),
            KnowledgeConfigError::InvalidUrl
        ));
        assert!(matches!(
            refused(settings("http://business.example/check")),
            KnowledgeConfigError::InsecureHttp(host) if host == "business.example"
        ));
        assert!(matches!(
            refused(settings("http://10.0.0.1/check")),
            KnowledgeConfigError::InsecureHttp(_)
        ));
        assert!(matches!(
            refused(settings("ftp://business.example/check")),
            KnowledgeConfigError::UnsupportedScheme(scheme) if scheme == "ftp"
        ));
        let mut short = settings("https://business.example/check");
        short.secret = SecretString::from("fifteen-bytes!!");
        assert!(matches!(refused(short), KnowledgeConfigError::ShortSecret));
        let mut empty = settings("https://business.example/check");
        empty.secret = SecretString::from("");
        assert!(matches!(refused(empty), KnowledgeConfigError::EmptySecret));
        for prompt in ["", "   "] {
            let mut s = settings("https://business.example/check");
            s.prompt = prompt.to_owned();
            assert!(matches!(refused(s), KnowledgeConfigError::EmptyPrompt));
        }
        let mut long = settings("https://business.example/check");
        long.prompt = "é".repeat(MAX_PROMPT_CHARS + 1);
        assert!(matches!(
            refused(long),
            KnowledgeConfigError::LongPrompt(201)
        ));
        let mut zero = settings("https://business.example/check");
        zero.timeout = Duration::ZERO;
        assert!(matches!(refused(zero), KnowledgeConfigError::ZeroTimeout));
        // Messages name the setting.
        assert!(refused(settings("http://business.example/"))
            .to_string()
            .contains("`url`"));
        let mut short = settings("https://business.example/check");
        short.secret = SecretString::from("fifteen-bytes!!");
        let message = refused(short).to_string();
        assert!(
            message.contains("`secret`") && !message.contains("fifteen"),
            "{message}"
        );

        // What is accepted: https anywhere, plain http to loopback, limits inclusive.
        for url in [
            "https://business.example/check",
            "http://127.0.0.1:8080/verify",
            "http://[::1]:8080/verify",
            "http://localhost/verify",
            "http://LOCALHOST/verify",
        ] {
            assert!(KnowledgeCheck::new(settings(url)).is_ok(), "{url}");
        }
        let mut edge = settings("https://business.example/check");
        edge.secret = SecretString::from("sixteen-bytes!!!");
        edge.prompt = "é".repeat(MAX_PROMPT_CHARS);
        edge.timeout = Duration::from_millis(1);
        let check = KnowledgeCheck::new(edge).unwrap();
        assert_eq!(check.prompt().chars().count(), MAX_PROMPT_CHARS);
    }
}
