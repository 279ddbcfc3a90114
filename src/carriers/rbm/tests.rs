use super::*;
use crate::carriers::CarrierAccount;
use std::time::Duration;

const FIXTURE_TOKEN: &str = "SJENCPGJESMGUFPY";
const AGENT: &str = "drawbridge-test-agent";
const CUSTOMER: &str = "+15551234567";
const OUTBOX_ID: &str = "01972d4a-3b5c-7d6e-8f90-a1b2c3d4e5f6";
const URL: &str = "https://sms.example.com/webhooks/rbm";

fn path(name: &str) -> String {
    format!("{}/carriers/rbm/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> String {
    std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A complete signed request from `carriers/rbm/requests/` (capture format).
fn request(name: &str) -> WebhookRequest {
    WebhookRequest::parse_capture(read(&format!("requests/{name}.http")).as_bytes())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn key_json() -> String {
    read("TEST-ONLY-service-account-key.json")
}

fn fields(extra: &[(&str, &str)]) -> toml::Table {
    let mut table = toml::Table::new();
    for (k, v) in [
        ("agent_id", AGENT),
        ("client_token", FIXTURE_TOKEN),
        ("api_base", "http://127.0.0.1:9/rbm"),
    ]
    .iter()
    .chain(extra)
    {
        table.insert((*k).to_owned(), toml::Value::String((*v).to_owned()));
    }
    table
}

fn account() -> Account {
    let key = key_json();
    Account::from_config(&fields(&[("service_account_key", &key)]), Mode::Development)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn agent() -> BusinessAddress {
    BusinessAddress::rcs_agent(AGENT).unwrap_or_else(|e| panic!("{e}"))
}

fn customer() -> E164 {
    E164::parse(CUSTOMER).unwrap_or_else(|e| panic!("{e}"))
}

fn events(request: &WebhookRequest) -> Vec<Event> {
    parse(request, Route::Inbound).unwrap_or_else(|e| panic!("{e}"))
}

fn one(request: &WebhookRequest) -> Event {
    let mut events = events(request);
    assert_eq!(events.len(), 1);
    events.remove(0)
}

/// A request with an envelope around `data` and the given signature header.
fn envelope(data: &[u8], signature: Option<&str>) -> WebhookRequest {
    let body = json!({ "message": { "data": STANDARD.encode(data) } });
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Some(sig) = signature {
        headers.push(("X-Goog-Signature".to_owned(), sig.to_owned()));
    }
    WebhookRequest::new(
        Method::Post,
        URL,
        headers,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

// ---------------------------------------------------------------------------------------------
// Signatures

/// carriers.md §12.7, verbatim.
const VECTOR_DATA: &str = r#"{"senderPhoneNumber":"+12223334444","messageId":"MsW9d5RGeQRUK6zzZVYbH1kQ","sendTime":"2024-01-01T12:00:00.000000Z","text":"Hello","agentId":"example-agent"}"#;
const VECTOR_SIGNATURE: &str =
    "+1MqBKB5kKevr0UIQvp78o6A8QbSbw8rnARQQHP/+g9QGw5YLFvTshW0/081QsPhkU5htzfQhUbOvjs3IAb1CA==";

#[test]
fn published_vector_12_7() {
    let token = secret(FIXTURE_TOKEN);
    assert_eq!(
        signature::sign(&token, VECTOR_DATA.as_bytes()),
        VECTOR_SIGNATURE
    );
    let good = envelope(VECTOR_DATA.as_bytes(), Some(VECTOR_SIGNATURE));
    assert!(verify_with_secret(&token, &good, Utc::now()).valid);
    // One byte of the signed data changed.
    let tampered = VECTOR_DATA.replace("Hello", "Hellp");
    let bad = envelope(tampered.as_bytes(), Some(VECTOR_SIGNATURE));
    let verdict = verify_with_secret(&token, &bad, Utc::now());
    assert!(!verdict.valid);
    assert!(verdict.details.iter().any(|d| d.contains("Hellp")));
    // One character of the signature changed.
    let wrong_sig = VECTOR_SIGNATURE.replacen("+1M", "+1N", 1);
    let bad = envelope(VECTOR_DATA.as_bytes(), Some(&wrong_sig));
    assert!(!verify_with_secret(&token, &bad, Utc::now()).valid);
    // The same vector as a full request (carriers/rbm/requests/vector-12.7.http).
    let full = request("vector-12.7");
    assert!(verify_with_secret(&token, &full, Utc::now()).valid);
    let Event::Message(message) = one(&full) else {
        panic!("not a message")
    };
    assert_eq!(message.carrier_message_id, "MsW9d5RGeQRUK6zzZVYbH1kQ");
    assert_eq!(message.from.as_str(), "+12223334444");
    assert_eq!(message.to.key(), "rcs:example-agent");
    assert_eq!(message.body.as_str(), "Hello");
}

/// Self-computed: non-ASCII text, so the base64 has `+` and `/` (and `-`, `_` in its URL-safe
/// form). Computed with:
/// `python3 -c 'import hmac,hashlib,base64; d=DATA.encode(); print(base64.b64encode(hmac.new(b"drawbridge-test-client-token-0001", d, hashlib.sha512).digest()).decode())'`
#[test]
fn own_vector_with_non_ascii_data() {
    let data = r#"{"senderPhoneNumber":"+15551234567","messageId":"MsQ4nHf1pXk9LrT6wVb0YzCe","sendTime":"2026-03-02T15:04:02Z","agentId":"drawbridge-test-agent","text":"Grüße 👋 — can I pay €20?"}"#;
    let expected =
        "Xv/GV4FhJL1kLLPAyaoULCLFaREKTS4PJ6r9HwnVMWXsJi8BzmM8u9sOeyMaDxiijNwhvCfKK0CTavFBoUBORA==";
    let token = secret("drawbridge-test-client-token-0001");
    assert_eq!(signature::sign(&token, data.as_bytes()), expected);
    assert!(
        verify_with_secret(
            &token,
            &envelope(data.as_bytes(), Some(expected)),
            Utc::now()
        )
        .valid
    );
    // The URL-safe, unpadded encoding of the same bytes (python: base64.urlsafe_b64encode(d)
    // without "="): the same decoded bytes, so the same signature.
    let url_safe = "eyJzZW5kZXJQaG9uZU51bWJlciI6IisxNTU1MTIzNDU2NyIsIm1lc3NhZ2VJZCI6Ik1zUTRuSGYxcFhrOUxyVDZ3VmIwWXpDZSIsInNlbmRUaW1lIjoiMjAyNi0wMy0wMlQxNTowNDowMloiLCJhZ2VudElkIjoiZHJhd2JyaWRnZS10ZXN0LWFnZW50IiwidGV4dCI6Ikdyw7zDn2Ug8J-RiyDigJQgY2FuIEkgcGF5IOKCrDIwPyJ9";
    assert!(url_safe.contains('-'));
    let body = json!({ "message": { "data": url_safe } }).to_string();
    let request = WebhookRequest::new(
        Method::Post,
        URL,
        [("X-Goog-Signature".to_owned(), expected.to_owned())],
        body.into_bytes(),
    );
    assert!(verify_with_secret(&token, &request, Utc::now()).valid);
    let Event::Message(message) = one(&request) else {
        panic!("not a message")
    };
    assert_eq!(message.body.as_str(), "Grüße 👋 — can I pay €20?");
}

#[test]
fn verification_refuses_and_explains() {
    let request = request("user-text");
    let token = secret(FIXTURE_TOKEN);
    assert!(verify_with_secret(&token, &request, Utc::now()).valid);

    let wrong = verify_with_secret(&secret("another-client-token"), &request, Utc::now());
    assert!(!wrong.valid);
    assert_eq!(wrong.scheme, signature::SCHEME);
    for prefix in ["signed:", "expected:", "received:"] {
        assert!(
            wrong.details.iter().any(|d| d.starts_with(prefix)),
            "{prefix} missing: {:?}",
            wrong.details
        );
    }
    assert!(wrong
        .details
        .iter()
        .any(|d| d.contains("Hi, is my appointment")));

    // The envelope changed around the same data and signature: still valid (only the data is
    // signed, and only the data is read).
    let mut body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
    body["subscription"] = json!("projects/other/subscriptions/x");
    let rewrapped = WebhookRequest::new(
        Method::Post,
        URL,
        request.headers().map(|(n, v)| (n.to_owned(), v.to_owned())),
        serde_json::to_vec(&body).unwrap_or_default(),
    );
    assert!(verify_with_secret(&token, &rewrapped, Utc::now()).valid);

    // The data changed.
    let data = STANDARD.encode(
        fixture_json("user-text.json")
            .to_string()
            .replace("Tuesday", "Friday"),
    );
    body["message"]["data"] = json!(data);
    let tampered = WebhookRequest::new(
        Method::Post,
        URL,
        request.headers().map(|(n, v)| (n.to_owned(), v.to_owned())),
        serde_json::to_vec(&body).unwrap_or_default(),
    );
    assert!(!verify_with_secret(&token, &tampered, Utc::now()).valid);

    // No signature header.
    let unsigned = WebhookRequest::new(
        Method::Post,
        URL,
        [("Content-Type".to_owned(), "application/json".to_owned())],
        request.body.to_vec(),
    );
    let verdict = verify_with_secret(&token, &unsigned, Utc::now());
    assert!(!verdict.valid);
    assert!(verdict
        .details
        .iter()
        .any(|d| d.contains("no X-Goog-Signature header")));

    // Unreadable body.
    let garbage = WebhookRequest::new(Method::Post, URL, [], b"not json".to_vec());
    let verdict = verify_with_secret(&token, &garbage, Utc::now());
    assert!(!verdict.valid);
    assert!(verdict
        .details
        .iter()
        .any(|d| d.contains("could not be read")));
}

#[test]
fn common_signing_mistakes_are_named() {
    let token = secret(FIXTURE_TOKEN);
    let data = VECTOR_DATA.as_bytes();
    let over_base64 = signature::sign(&token, STANDARD.encode(data).as_bytes());
    let verdict = verify_with_secret(&token, &envelope(data, Some(&over_base64)), Utc::now());
    assert!(!verdict.valid);
    assert!(verdict.details.iter().any(|d| d.contains("base64 text")));
    let raw = {
        let mut mac =
            <hmac::Hmac<sha2::Sha512> as hmac::Mac>::new_from_slice(FIXTURE_TOKEN.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        hmac::Mac::update(&mut mac, data);
        hex::encode(hmac::Mac::finalize(mac).into_bytes())
    };
    let verdict = verify_with_secret(&token, &envelope(data, Some(&raw)), Utc::now());
    assert!(!verdict.valid);
    assert!(verdict.details.iter().any(|d| d.contains("hex")));
}

#[test]
fn handshake_needs_the_configured_client_token() {
    let request = request("handshake");
    assert_eq!(hint(&request, Route::Inbound), Ok(None));
    let ok = verify_with_secret(&secret(FIXTURE_TOKEN), &request, Utc::now());
    assert!(ok.valid);
    let wrong = verify_with_secret(&secret("SJENCPGJESMGUFPZ"), &request, Utc::now());
    assert!(!wrong.valid);
    assert!(wrong.details.iter().any(|d| d.contains("does not match")));
    let Event::Challenge(secret_text) = one(&request) else {
        panic!("not a challenge")
    };
    assert_eq!(secret_text.as_str(), "1234567890");
    // A body with `message` is an event even if it also carries a clientToken: it cannot be
    // verified as a handshake and parsed as an event.
    let mixed = WebhookRequest::new(
        Method::Post,
        URL,
        [],
        json!({"clientToken": FIXTURE_TOKEN, "secret": "x", "message": {"data": STANDARD.encode(VECTOR_DATA)}})
            .to_string()
            .into_bytes(),
    );
    assert!(!verify_with_secret(&secret(FIXTURE_TOKEN), &mixed, Utc::now()).valid);
    assert!(matches!(one(&mixed), Event::Message(_)));
    // Control characters in the secret are refused (it is echoed back as the response).
    let evil = WebhookRequest::new(
        Method::Post,
        URL,
        [],
        json!({"clientToken": FIXTURE_TOKEN, "secret": "a\r\nSet-Cookie: x"})
            .to_string()
            .into_bytes(),
    );
    assert_eq!(
        parse(&evil, Route::Inbound).err(),
        Some(PayloadError::Invalid("secret"))
    );
}

// ---------------------------------------------------------------------------------------------
// Fixtures

#[test]
fn every_signed_fixture_verifies_and_carries_its_json() {
    let token = secret(FIXTURE_TOKEN);
    for name in [
        "user-text",
        "user-file",
        "user-location",
        "suggestion-reply",
        "suggestion-action",
        "event-delivered",
        "event-read",
        "event-is-typing",
        "event-unsubscribe",
        "event-subscribe",
        "server-ttl-revoked",
    ] {
        let request = request(name);
        assert!(
            verify_with_secret(&token, &request, Utc::now()).valid,
            "{name}"
        );
        let Ok(Body::Event { data, .. }) = signature::read_body(&request.body) else {
            panic!("{name}: not an event")
        };
        let decoded: Value = serde_json::from_slice(&data).unwrap_or_default();
        assert_eq!(decoded, fixture_json(&format!("{name}.json")), "{name}");
        assert_eq!(hint(&request, Route::Status), Ok(Some(agent())), "{name}");
        // Both routes parse alike.
        assert_eq!(
            format!("{:?}", parse(&request, Route::Inbound)),
            format!("{:?}", parse(&request, Route::Status)),
        );
    }
}

#[test]
fn user_text_fixture() {
    let Event::Message(message) = one(&request("user-text")) else {
        panic!("not a message")
    };
    assert_eq!(message.carrier, "rbm");
    assert_eq!(message.carrier_message_id, "MsW9d5RGeQRUK6zzZVYbH1kQ");
    assert_eq!(message.from.as_str(), CUSTOMER);
    assert_eq!(message.to, agent());
    assert_eq!(message.channel, Channel::Rcs);
    assert_eq!(
        message.body.as_str(),
        "Hi, is my appointment still on for Tuesday?"
    );
    assert!(message.media.is_empty());
}

#[test]
fn user_file_fixture() {
    let Event::Message(message) = one(&request("user-file")) else {
        panic!("not a message")
    };
    assert_eq!(message.carrier_message_id, "MsAr7dLqHk2Vx0cP9wZtYbN3");
    assert_eq!(message.body.as_str(), "");
    assert_eq!(message.media.len(), 1);
    let file = &message.media[0];
    assert_eq!(
        file.url,
        "https://storage.googleapis.com/copper_test/77ddb795-24ad-4607-96ae-b08b4d86406a/d2dcc67ab888d34ee272899c020b13402856f81597228322079eb007e8c9"
    );
    assert_eq!(file.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(file.size, Some(127_806));
    assert_eq!(file.name.as_deref(), Some("insurance-card.jpg"));
}

#[test]
fn location_keeps_no_coordinates() {
    let Event::Message(message) = one(&request("user-location")) else {
        panic!("not a message")
    };
    assert_eq!(message.body.as_str(), LOCATION_BODY);
    assert!(!format!("{:?}{}", message, message.body.as_str()).contains("37.42"));
}

#[test]
fn suggestion_fixtures() {
    let Event::Message(reply) = one(&request("suggestion-reply")) else {
        panic!("not a message")
    };
    assert_eq!(reply.body.as_str(), "Yes, confirm");
    assert_eq!(reply.carrier_message_id, "MsQ4nHf1pXk9LrT6wVb0YzCe");
    assert!(matches!(
        one(&request("suggestion-action")),
        Event::Ignored("suggested_action")
    ));
    // A reply without its text falls back to the postback data; an ACTION with text is still
    // ignored.
    let data = json!({"senderPhoneNumber": CUSTOMER, "messageId": "Ms1", "agentId": AGENT,
        "suggestionResponse": {"postbackData": "yes", "type": "REPLY"}});
    let Event::Message(reply) =
        parse_event(data.to_string().as_bytes(), None).unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("not a message")
    };
    assert_eq!(reply.body.as_str(), "yes");
    let data = json!({"senderPhoneNumber": CUSTOMER, "eventId": "Mx1", "agentId": AGENT,
        "suggestionResponse": {"postbackData": "open_url", "text": "Open", "type": "ACTION"}});
    assert!(matches!(
        parse_event(data.to_string().as_bytes(), None),
        Ok(Event::Ignored("suggested_action"))
    ));
}

#[test]
fn status_fixtures_and_mapping() {
    for (name, word, ours) in [
        ("event-delivered", "DELIVERED", Some("delivered")),
        ("event-read", "READ", Some("read")),
        (
            "server-ttl-revoked",
            "TTL_EXPIRATION_REVOKED",
            Some("undelivered"),
        ),
    ] {
        let Event::Status(status) = one(&request(name)) else {
            panic!("{name}: not a status")
        };
        assert_eq!(status.carrier_message_id, OUTBOX_ID, "{name}");
        assert_eq!(status.carrier_status, word);
        assert_eq!(status.status, ours);
        assert_eq!(status.error_code, None);
    }
    assert!(matches!(
        one(&request("event-is-typing")),
        Event::Ignored("typing")
    ));
    let profile = CARRIER.profile();
    for (word, ours) in [
        ("DELIVERED", Some("delivered")),
        ("delivered", Some("delivered")),
        ("READ", Some("read")),
        ("TTL_EXPIRATION_REVOKED", Some("undelivered")),
        ("TTL_EXPIRATION_REVOKE_FAILED", None),
        ("IS_TYPING", None),
    ] {
        assert_eq!(profile.map_status(word), ours, "{word}");
    }
    assert_eq!(profile.resend, crate::carriers::profile::Resend::Idempotent);
    assert_eq!(profile.channels, vec![Channel::Rcs]);
}

#[test]
fn consent_fixtures() {
    for (name, kind, event_id) in [
        (
            "event-unsubscribe",
            ConsentKind::OptOut,
            "MxUn4Gs7Dk1Pw9Hz3Cv6Bt0R",
        ),
        (
            "event-subscribe",
            ConsentKind::OptIn,
            "MxSb2Fh6Yn0Qm8Kr4Ld1Wx7T",
        ),
    ] {
        let Event::Consent(report) = one(&request(name)) else {
            panic!("{name}: not consent")
        };
        assert_eq!(report.kind, kind);
        assert_eq!(report.event_id, event_id);
        assert_eq!(report.contact.as_str(), CUSTOMER);
        assert_eq!(report.business, agent());
    }
}

#[test]
fn other_events_are_ignored_not_refused() {
    let launch = json!({"eventId": "e1", "agentId": "a@rbm.goog", "oldLaunchState": "PENDING",
        "newLaunchState": "LAUNCHED"});
    assert!(matches!(
        parse_event(launch.to_string().as_bytes(), Some("agent_launch_event")),
        Ok(Event::Ignored("agent_launch"))
    ));
    let future = json!({"senderPhoneNumber": CUSTOMER, "eventType": "SOMETHING_NEW",
        "eventId": "e1", "agentId": AGENT});
    assert!(matches!(
        parse_event(future.to_string().as_bytes(), None),
        Ok(Event::Ignored("event"))
    ));
    let unknown_content = json!({"senderPhoneNumber": CUSTOMER, "messageId": "Ms1",
        "agentId": AGENT, "richMessageClassification": {}});
    assert!(matches!(
        parse_event(unknown_content.to_string().as_bytes(), None),
        Ok(Event::Ignored("unsupported_content"))
    ));
}

#[test]
fn agent_ids_with_the_rbm_goog_suffix_name_the_same_sender() {
    let data = json!({"senderPhoneNumber": CUSTOMER, "messageId": "Ms1",
        "agentId": "drawbridge-test-agent@rbm.goog", "text": "hi"});
    let token = secret(FIXTURE_TOKEN);
    let bytes = data.to_string();
    let request = envelope(
        bytes.as_bytes(),
        Some(&signature::sign(&token, bytes.as_bytes())),
    );
    assert_eq!(hint(&request, Route::Inbound), Ok(Some(agent())));
    let Event::Message(message) = one(&request) else {
        panic!("not a message")
    };
    assert_eq!(message.to, agent());
}

#[test]
fn malformed_payloads_name_the_field() {
    let raw = |body: &str, content_type: &str| {
        WebhookRequest::new(
            Method::Post,
            URL,
            [("Content-Type".to_owned(), content_type.to_owned())],
            body.as_bytes().to_vec(),
        )
    };
    let json = "application/json";
    assert_eq!(
        hint(
            &raw("{}", "application/x-www-form-urlencoded"),
            Route::Inbound
        ),
        Err(PayloadError::ContentType("application/json"))
    );
    assert_eq!(
        hint(&raw("nope", json), Route::Inbound),
        Err(PayloadError::Body("a JSON object"))
    );
    assert!(matches!(
        hint(&raw("{\"hello\":1}", json), Route::Inbound),
        Err(PayloadError::Body(_))
    ));
    assert_eq!(
        hint(&raw("{\"message\":{}}", json), Route::Inbound),
        Err(PayloadError::Missing("message.data"))
    );
    assert_eq!(
        hint(
            &raw("{\"message\":{\"data\":\"@@@\"}}", json),
            Route::Inbound
        ),
        Err(PayloadError::Invalid("message.data"))
    );
    let not_json = format!(
        "{{\"message\":{{\"data\":\"{}\"}}}}",
        STANDARD.encode("text")
    );
    assert_eq!(
        hint(&raw(&not_json, json), Route::Inbound),
        Err(PayloadError::Invalid("message.data"))
    );
    assert_eq!(
        hint(&raw("{\"clientToken\":\"x\"}", json), Route::Inbound),
        Err(PayloadError::Missing("secret"))
    );
    let wrapped = |event: Value| {
        raw(
            &json!({"message": {"data": STANDARD.encode(event.to_string())}}).to_string(),
            json,
        )
    };
    assert_eq!(
        hint(&wrapped(json!({"agentId": "bad agent!"})), Route::Inbound),
        Err(PayloadError::Invalid("agentId"))
    );
    let cases = [
        (
            json!({"messageId": "Ms1", "agentId": AGENT, "text": "hi"}),
            PayloadError::Missing("senderPhoneNumber"),
        ),
        (
            json!({"senderPhoneNumber": "12", "messageId": "Ms1", "agentId": AGENT, "text": "hi"}),
            PayloadError::BadPhone("senderPhoneNumber"),
        ),
        (
            json!({"senderPhoneNumber": CUSTOMER, "agentId": AGENT, "text": "hi"}),
            PayloadError::Missing("messageId"),
        ),
        (
            json!({"senderPhoneNumber": CUSTOMER, "messageId": "not an id", "agentId": AGENT, "text": "hi"}),
            PayloadError::Invalid("messageId"),
        ),
        (
            json!({"senderPhoneNumber": CUSTOMER, "messageId": "Ms1", "text": "hi"}),
            PayloadError::Missing("agentId"),
        ),
        (
            json!({"senderPhoneNumber": CUSTOMER, "messageId": "Ms1", "agentId": AGENT,
                "userFile": {"payload": {"mimeType": "image/png"}}}),
            PayloadError::Missing("userFile.payload.fileUri"),
        ),
        (
            json!({"senderPhoneNumber": CUSTOMER, "messageId": "Ms1", "agentId": AGENT,
                "userFile": {"thumbnail": {}}}),
            PayloadError::Missing("userFile.payload"),
        ),
        (
            json!({"senderPhoneNumber": CUSTOMER, "eventType": "DELIVERED", "eventId": "e",
                "agentId": AGENT}),
            PayloadError::Missing("messageId"),
        ),
        (
            json!({"senderPhoneNumber": CUSTOMER, "eventType": "UNSUBSCRIBE", "agentId": AGENT}),
            PayloadError::Missing("eventId"),
        ),
        (
            json!({"senderPhoneNumber": CUSTOMER, "eventType": "READ bad", "messageId": "m",
                "agentId": AGENT}),
            PayloadError::Invalid("eventType"),
        ),
    ];
    for (event, expected) in cases {
        assert_eq!(
            parse(&wrapped(event.clone()), Route::Inbound).err(),
            Some(expected),
            "{event}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Sending

fn outbound<'a>(
    from: &'a BusinessAddress,
    to: &'a E164,
    body: &'a str,
    media: &'a [String],
    suggestions: &'a [Suggestion],
) -> OutboundMessage<'a> {
    OutboundMessage {
        outbox_id: OUTBOX_ID,
        from,
        to,
        channel: Channel::Rcs,
        body,
        media_urls: media,
        suggestions,
        status_callback: "https://sms.example.com/webhooks/rbm/status",
    }
}

fn sent_json(call: &HttpCall) -> Value {
    serde_json::from_str(call.body_text()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn send_request_shape_matches_the_fixture() {
    let (from, to) = (agent(), customer());
    let suggestions = [
        Suggestion::Reply {
            text: "Reschedule".to_owned(),
            postback: "reschedule".to_owned(),
        },
        Suggestion::OpenUrl {
            text: "Open secure chat".to_owned(),
            url: "https://sms.example.com/s/abc123".to_owned(),
        },
    ];
    let message = outbound(
        &from,
        &to,
        "Your appointment is confirmed for Tuesday at 10:00.",
        &[],
        &suggestions,
    );
    let call = account()
        .build_send(&message, Some("ya29.token"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(call.method, Method::Post);
    assert_eq!(
        call.url.as_str(),
        "http://127.0.0.1:9/rbm/v1/phones/+15551234567/agentMessages?messageId=01972d4a-3b5c-7d6e-8f90-a1b2c3d4e5f6&agentId=drawbridge-test-agent"
    );
    assert_eq!(
        call.header_value("authorization"),
        Some("Bearer ya29.token")
    );
    assert_eq!(
        call.body.as_ref().map(|(t, _)| *t),
        Some("application/json")
    );
    assert_eq!(sent_json(&call), fixture_json("send-request.json"));
}

#[test]
fn files_and_cards() {
    let (from, to) = (agent(), customer());
    let one_file = ["https://media.example/card.jpg".to_owned()];
    let account = account();
    let file_only = account
        .build_send(&outbound(&from, &to, "", &one_file, &[]), Some("t"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        sent_json(&file_only)["contentMessage"],
        json!({"contentInfo": {"fileUrl": "https://media.example/card.jpg", "forceRefresh": false}})
    );
    let card = account
        .build_send(
            &outbound(&from, &to, "Your card", &one_file, &[]),
            Some("t"),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        sent_json(&card)["contentMessage"],
        json!({"richCard": {"standaloneCard": {
            "cardOrientation": "VERTICAL",
            "cardContent": {
                "description": "Your card",
                "media": {"height": "MEDIUM", "contentInfo": {
                    "fileUrl": "https://media.example/card.jpg", "forceRefresh": false}},
            },
        }}})
    );
    assert_eq!(sent_json(&card)["messageTrafficType"], json!("TRANSACTION"));
    let two_files = [
        one_file[0].clone(),
        "https://media.example/b.jpg".to_owned(),
    ];
    let refused = account.build_send(&outbound(&from, &to, "", &two_files, &[]), Some("t"));
    assert_eq!(
        refused.err().and_then(|e| e.code),
        Some("rcs_one_file_per_message".to_owned())
    );
    let long = "x".repeat(2001);
    let refused = account.build_send(&outbound(&from, &to, &long, &one_file, &[]), Some("t"));
    assert_eq!(
        refused.err().and_then(|e| e.code),
        Some("rcs_card_text_too_long".to_owned())
    );
}

#[test]
fn sends_refused_locally_say_why() {
    let (from, to) = (agent(), customer());
    let account = account();
    let code = |message: &OutboundMessage<'_>, token: Option<&str>| {
        account
            .build_send(message, token)
            .err()
            .map(|e| (e.class, e.code.unwrap_or_default()))
    };
    let ok = outbound(&from, &to, "hi", &[], &[]);
    assert_eq!(
        code(&ok, None),
        Some((ErrorClass::Permanent, "no_access_token".to_owned()))
    );
    let mut sms = ok.clone();
    sms.channel = Channel::Sms;
    assert_eq!(
        code(&sms, Some("t")),
        Some((ErrorClass::Permanent, "rbm_is_rcs_only".to_owned()))
    );
    let number = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        code(&outbound(&number, &to, "hi", &[], &[]), Some("t")).map(|(_, c)| c),
        Some("rbm_sends_from_an_agent".to_owned())
    );
    let other = BusinessAddress::rcs_agent("other-agent").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        code(&outbound(&other, &to, "hi", &[], &[]), Some("t")).map(|(_, c)| c),
        Some("sender_not_this_agent".to_owned())
    );
    let mut not_uuid = ok.clone();
    not_uuid.outbox_id = "o1";
    assert_eq!(
        code(&not_uuid, Some("t")).map(|(_, c)| c),
        Some("message_id_not_uuid".to_owned())
    );
    assert_eq!(
        code(&outbound(&from, &to, "", &[], &[]), Some("t")).map(|(_, c)| c),
        Some("empty_message".to_owned())
    );
    let long = "é".repeat(3073);
    assert_eq!(
        code(&outbound(&from, &to, &long, &[], &[]), Some("t")).map(|(_, c)| c),
        Some("rcs_text_too_long".to_owned())
    );
    let exactly = "é".repeat(3072);
    assert_eq!(
        code(&outbound(&from, &to, &exactly, &[], &[]), Some("t")),
        None
    );
    let twelve: Vec<Suggestion> = (0..12)
        .map(|i| Suggestion::Reply {
            text: format!("Option {i}"),
            postback: format!("o{i}"),
        })
        .collect();
    assert_eq!(
        code(&outbound(&from, &to, "pick", &[], &twelve), Some("t")).map(|(_, c)| c),
        Some("rcs_too_many_suggestions".to_owned())
    );
    let long_label = [Suggestion::Reply {
        text: "This label is far too long for RBM".to_owned(),
        postback: "x".to_owned(),
    }];
    assert_eq!(
        code(&outbound(&from, &to, "pick", &[], &long_label), Some("t")).map(|(_, c)| c),
        Some("rcs_suggestion_text_too_long".to_owned())
    );
}

#[test]
fn send_replies_are_classified() {
    let ok = HttpReply::new(200, read("send-reply.json"));
    let accepted_ours = SendResult::Accepted {
        carrier_message_id: OUTBOX_ID.to_owned(),
        status: None,
    };
    assert_eq!(parse_send_reply(&ok), accepted_ours);
    let replay = HttpReply::new(409, read("error-already-exists.json"));
    assert_eq!(parse_send_reply(&replay), accepted_ours);
    let bare_replay = HttpReply::new(
        409,
        r#"{"error":{"code":409,"message":"Requested entity already exists","status":"ALREADY_EXISTS"}}"#,
    );
    assert_eq!(
        parse_send_reply(&bare_replay),
        SendResult::Uncertain("already_exists")
    );
    assert_eq!(parse_send_reply_for(&bare_replay, OUTBOX_ID), accepted_ours);
    assert_eq!(
        parse_send_reply(&HttpReply::new(200, "{}")),
        SendResult::Uncertain("accepted_without_id")
    );
    assert_eq!(
        parse_send_reply_for(&HttpReply::new(200, "{}"), OUTBOX_ID),
        accepted_ours
    );
    assert_eq!(
        parse_send_reply(&HttpReply::new(504, "")),
        SendResult::Uncertain("gateway_timeout")
    );
    let class = |reply: HttpReply| match parse_send_reply(&reply) {
        SendResult::Rejected(e) => Some((e.class, e.code)),
        _ => None,
    };
    let google = |status: u16, code: &str| {
        HttpReply::new(
            status,
            format!(r#"{{"error":{{"code":{status},"message":"m","status":"{code}"}}}}"#),
        )
    };
    assert_eq!(
        class(HttpReply::new(404, read("error-not-found.json"))),
        Some((ErrorClass::InvalidNumber, Some("NOT_FOUND".to_owned())))
    );
    assert_eq!(
        class(HttpReply::new(429, read("error-resource-exhausted.json"))),
        Some((ErrorClass::Throttled, Some("RESOURCE_EXHAUSTED".to_owned())))
    );
    for (status, code, expected) in [
        (500, "INTERNAL", ErrorClass::Transient),
        (503, "UNAVAILABLE", ErrorClass::Transient),
        (401, "UNAUTHENTICATED", ErrorClass::Transient),
        (409, "ABORTED", ErrorClass::Transient),
        (400, "INVALID_ARGUMENT", ErrorClass::Permanent),
        (400, "FAILED_PRECONDITION", ErrorClass::Permanent),
        (403, "PERMISSION_DENIED", ErrorClass::Permanent),
    ] {
        assert_eq!(
            class(google(status, code)),
            Some((expected, Some(code.to_owned()))),
            "{code}"
        );
    }
    assert_eq!(
        class(HttpReply::new(502, "<html>bad gateway</html>")),
        Some((ErrorClass::Transient, None))
    );
    let mut throttled = google(429, "RESOURCE_EXHAUSTED");
    throttled.retry_after = Some(Duration::from_secs(7));
    let SendResult::Rejected(e) = parse_send_reply(&throttled) else {
        panic!("not rejected")
    };
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
}

#[test]
fn no_lookup_needed() {
    let (from, to) = (agent(), customer());
    let query = LookupQuery {
        outbox_id: OUTBOX_ID,
        from: &from,
        to: &to,
        since: Utc::now(),
    };
    assert!(account().build_lookup(&query, Some("t")).is_none());
    assert!(parse_lookup_reply(&HttpReply::new(200, "{}"))
        .unwrap_or_default()
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// Accounts and tokens

#[test]
fn account_keys_are_read_and_checked() {
    let account = account();
    assert_eq!(account.agent_id, AGENT);
    assert_eq!(account.message_traffic_type, "TRANSACTION");
    assert_eq!(account.api_base().as_str(), "http://127.0.0.1:9/rbm");
    assert_eq!(account.service_account.client_email, TEST_KEY_EMAIL);
    assert_eq!(
        account.service_account.token_uri.as_str(),
        "https://oauth2.googleapis.com/token"
    );
    let from_file = Account::from_config(
        &fields(&[
            (
                "service_account_key_file",
                &path("TEST-ONLY-service-account-key.json"),
            ),
            ("message_traffic_type", "serviceRequest"),
        ]),
        Mode::Development,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_file.message_traffic_type, "SERVICEREQUEST");
    let mut default_base = fields(&[("service_account_key", &key_json())]);
    default_base.remove("api_base");
    assert_eq!(
        Account::from_config(&default_base, Mode::Development)
            .map(|a| a.api_base.to_string())
            .ok()
            .as_deref(),
        Some("https://rcsbusinessmessaging.googleapis.com/")
    );

    let key = key_json();
    let error = |extra: &[(&str, &str)], mode: Mode| {
        Account::from_config(&fields(extra), mode)
            .err()
            .unwrap_or_default()
    };
    assert!(error(&[], Mode::Development).starts_with("`service_account_key`: set exactly one"));
    assert!(error(
        &[
            ("service_account_key", &key),
            ("service_account_key_file", "/x.json")
        ],
        Mode::Development
    )
    .starts_with("`service_account_key`: set exactly one"));
    assert!(error(
        &[("service_account_key_file", "/nonexistent/key.json")],
        Mode::Development
    )
    .starts_with("`service_account_key_file`: cannot read"));
    assert!(
        error(&[("service_account_key", "{nope")], Mode::Development)
            .starts_with("`service_account_key`: not a service account key JSON")
    );
    let broken = key.replace("MII", "MIX");
    let message = error(&[("service_account_key", &broken)], Mode::Development);
    assert!(message.contains("not a usable RSA key"), "{message}");
    assert!(error(
        &[
            ("service_account_key", &key),
            ("message_traffic_type", "SPAM")
        ],
        Mode::Development
    )
    .starts_with("`message_traffic_type`:"));
    assert!(error(
        &[("service_account_key", &key), ("colour", "blue")],
        Mode::Development
    )
    .contains("colour"));
    let mut suffixed = fields(&[("service_account_key", &key)]);
    suffixed.insert(
        "agent_id".to_owned(),
        toml::Value::String("drawbridge-test-agent@rbm.goog".to_owned()),
    );
    assert!(Account::from_config(&suffixed, Mode::Development)
        .err()
        .unwrap_or_default()
        .starts_with("`agent_id`:"));
    // Production: the documented example token and the committed test key are refused.
    let production = error(&[("service_account_key", &key)], Mode::Production);
    assert!(production.starts_with("`client_token`:"), "{production}");
    assert!(!production.contains(FIXTURE_TOKEN));
    let mut strong = fields(&[("service_account_key", &key)]);
    strong.insert(
        "client_token".to_owned(),
        toml::Value::String("a-long-random-client-token-0123456789".to_owned()),
    );
    let production = Account::from_config(&strong, Mode::Production)
        .err()
        .unwrap_or_default();
    assert!(production.contains("test-only key"), "{production}");
    let http_token_uri = key.replace(
        "https://oauth2.googleapis.com/token",
        "http://127.0.0.1:9/token",
    );
    strong.insert(
        "service_account_key".to_owned(),
        toml::Value::String(http_token_uri),
    );
    let production = Account::from_config(&strong, Mode::Production)
        .err()
        .unwrap_or_default();
    assert!(production.contains("must be https"), "{production}");
}

#[test]
fn debug_and_errors_show_no_secret() {
    let account = account();
    let debug = format!("{account:?}");
    for secret in account.secrets() {
        assert!(!debug.contains(&secret), "{debug}");
    }
    assert!(!debug.contains("PRIVATE KEY"));
    assert!(debug.contains(AGENT));
    // A wrongly typed secret is not quoted back.
    let mut table = fields(&[("service_account_key", &key_json())]);
    table.insert(
        "client_token".to_owned(),
        toml::Value::Integer(98_765_432_123),
    );
    let error = Account::from_config(&table, Mode::Development)
        .err()
        .unwrap_or_default();
    assert!(!error.contains("98765432123"), "{error}");
    let secrets = account.secrets();
    assert_eq!(secrets[0], FIXTURE_TOKEN);
    assert!(secrets[1].contains("BEGIN PRIVATE KEY"));
    assert_eq!(secrets[2].len(), 64);
}

#[test]
fn the_assertion_carries_every_claim_and_verifies_with_the_public_key() {
    use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
    let account = account();
    let now = Utc::now().timestamp();
    let assertion = account
        .service_account
        .assertion(now)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let header = decode_header(&assertion).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let key: Value = serde_json::from_str(&key_json()).unwrap_or_default();
    assert_eq!(header.kid.as_deref(), key["private_key_id"].as_str());
    let public =
        DecodingKey::from_rsa_pem(read("TEST-ONLY-service-account-key.pub.pem").as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["https://oauth2.googleapis.com/token"]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let claims = decode::<token::Claims>(&assertion, &public, &validation)
        .unwrap_or_else(|e| panic!("{e}"))
        .claims;
    assert_eq!(
        claims,
        token::Claims {
            iss: TEST_KEY_EMAIL.to_owned(),
            scope: "https://www.googleapis.com/auth/rcsbusinessmessaging".to_owned(),
            aud: "https://oauth2.googleapis.com/token".to_owned(),
            iat: now,
            exp: now + 3600,
        }
    );
    // Changed claims do not verify.
    let parts: Vec<&str> = assertion.split('.').collect();
    let mut changed = claims.clone();
    changed.exp += 1;
    let changed = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&changed).unwrap_or_default());
    let tampered = format!("{}.{changed}.{}", parts[0], parts[2]);
    assert!(decode::<token::Claims>(&tampered, &public, &validation).is_err());
    // The token request.
    let call = account
        .service_account
        .token_request(now)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(call.method, Method::Post);
    assert_eq!(call.url.as_str(), "https://oauth2.googleapis.com/token");
    let form = crate::carriers::form::parse(call.body_text().as_bytes()).unwrap_or_default();
    assert_eq!(
        crate::carriers::form::first(&form, "grant_type"),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let sent = crate::carriers::form::first(&form, "assertion").unwrap_or_default();
    assert!(decode::<token::Claims>(sent, &public, &validation).is_ok());
}

#[test]
fn token_replies() {
    let (token, lifetime) =
        token::parse_token_reply(&HttpReply::new(200, read("token-reply.json")))
            .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(token.as_str(), "ya29.c.b0AXv0zTPfake-token-for-tests-only");
    assert_eq!(lifetime, Duration::from_secs(3599));
    let refused = token::parse_token_reply(&HttpReply::new(400, read("token-error.json")))
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(refused.class, ErrorClass::Permanent);
    assert_eq!(refused.code.as_deref(), Some("invalid_grant"));
    assert_eq!(refused.http_status, Some(400));
    let class = |status: u16, body: &str| {
        token::parse_token_reply(&HttpReply::new(status, body))
            .err()
            .map(|e| e.class)
    };
    assert_eq!(class(503, ""), Some(ErrorClass::Transient));
    assert_eq!(class(429, ""), Some(ErrorClass::Throttled));
    assert_eq!(class(401, "{}"), Some(ErrorClass::Permanent));
    assert_eq!(class(200, "{}"), Some(ErrorClass::Transient));
    assert_eq!(
        class(200, r#"{"access_token":"a","token_type":"MAC"}"#),
        Some(ErrorClass::Transient)
    );

    let start = Instant::now();
    let cached = CachedToken::new(token.clone(), start, Duration::from_secs(3600))
        .unwrap_or_else(|| panic!("not cached"));
    assert!(cached.is_fresh(start + Duration::from_secs(3539)));
    assert!(!cached.is_fresh(start + Duration::from_secs(3540)));
    assert!(CachedToken::new(token, start, Duration::from_secs(59)).is_none());
}

/// The whole flow against the fake carrier: a token from its `/token`, cached; a send; the same
/// send again answered as a replay; an unknown token refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_flow_and_sends_against_the_fake() {
    let fake =
        crate::simulate::fake::spawn(([127, 0, 0, 1], 0).into()).unwrap_or_else(|e| panic!("{e}"));
    let key = key_json().replace(
        "https://oauth2.googleapis.com/token",
        &format!("{}/token", fake.url()),
    );
    let mut table = fields(&[("service_account_key", &key)]);
    table.insert("api_base".to_owned(), toml::Value::String(fake.url()));
    let account = Account::from_config(&table, Mode::Development).unwrap_or_else(|e| panic!("{e}"));
    let carrier_account = CarrierAccount::Rbm(account.clone());
    assert!(carrier_account.needs_access_token());
    let client = CarrierClient::new(Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));

    let first = account
        .access_token(&client)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    // A clone shares the cache.
    let second = account
        .clone()
        .access_token(&client)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(first.as_str(), second.as_str());
    assert!(first.starts_with("fake-"));
    let records = fake.state.records();
    let tokens: Vec<_> = records.iter().filter(|r| r.kind == "token").collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].from.as_deref(), Some(TEST_KEY_EMAIL));
    assert!(account.secrets().iter().any(|s| s == first.as_str()));

    let (from, to) = (agent(), customer());
    let message = outbound(&from, &to, "Hello from the clinic", &[], &[]);
    assert_eq!(
        client.send(&carrier_account, &message).await,
        SendResult::Accepted {
            carrier_message_id: OUTBOX_ID.to_owned(),
            status: None
        }
    );
    // Sent again (an uncertain send resolved by resending): a replay, still accepted.
    assert_eq!(
        client.send(&carrier_account, &message).await,
        SendResult::Accepted {
            carrier_message_id: OUTBOX_ID.to_owned(),
            status: None
        }
    );
    let sends: Vec<_> = fake
        .state
        .records()
        .into_iter()
        .filter(|r| r.kind == "send")
        .collect();
    assert_eq!(
        sends.iter().map(|r| r.outcome).collect::<Vec<_>>(),
        ["accepted", "replayed"]
    );
    assert_eq!(sends[0].message_id.as_deref(), Some(OUTBOX_ID));
    assert_eq!(sends[0].reference.as_deref(), Some(OUTBOX_ID));
    assert_eq!(sends[0].to.as_deref(), Some(CUSTOMER));
    assert_eq!(sends[0].from.as_deref(), Some(AGENT));
    assert_eq!(sends[0].text.as_deref(), Some("Hello from the clinic"));

    // A token the fake did not issue.
    let call = account
        .build_send(&message, Some("ya29.not-from-the-fake"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let reply = client
        .execute(&call)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(reply.status, 401);
    let SendResult::Rejected(error) = parse_send_reply(&reply) else {
        panic!("not rejected")
    };
    assert_eq!(error.code.as_deref(), Some("UNAUTHENTICATED"));
    fake.handle.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_failures_are_classified() {
    let fake =
        crate::simulate::fake::spawn(([127, 0, 0, 1], 0).into()).unwrap_or_else(|e| panic!("{e}"));
    let client = CarrierClient::new(Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
    // The fake refuses an assertion whose audience is not a token endpoint.
    let key = key_json().replace(
        "https://oauth2.googleapis.com/token",
        &format!("{}/token?", fake.url()),
    );
    let account =
        Account::from_config(&fields(&[("service_account_key", &key)]), Mode::Development)
            .unwrap_or_else(|e| panic!("{e}"));
    let error = account.access_token(&client).await.err();
    assert_eq!(
        error.map(|e| (e.class, e.code)),
        Some((ErrorClass::Permanent, Some("invalid_grant".to_owned())))
    );
    // Nothing listening: transient.
    let key = key_json().replace(
        "https://oauth2.googleapis.com/token",
        "http://127.0.0.1:9/token",
    );
    let account =
        Account::from_config(&fields(&[("service_account_key", &key)]), Mode::Development)
            .unwrap_or_else(|e| panic!("{e}"));
    let error = account.access_token(&client).await.err();
    assert_eq!(error.map(|e| e.class), Some(ErrorClass::Transient));
    fake.handle.stop(false).await;
}

// ---------------------------------------------------------------------------------------------
// Simulation

#[test]
fn simulated_messages_verify_and_parse_back() {
    let account = account();
    let (to, from) = (agent(), customer());
    let keys = SimulationKeys {
        now: Utc::now(),
        signing_key: None,
    };
    let message_id = new_message_id();
    let request = account
        .simulate_inbound(
            URL,
            &SimulatedInbound {
                message_id: &message_id,
                from: &from,
                to: &to,
                body: "hello",
                media: &[],
            },
            &keys,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(account.verify(&request, keys.now).valid);
    assert_eq!(hint(&request, Route::Inbound), Ok(Some(to.clone())));
    let Event::Message(message) = one(&request) else {
        panic!("not a message")
    };
    assert_eq!(message.carrier_message_id, message_id);
    assert_eq!(message.from, from);
    assert_eq!(message.to, to);
    assert_eq!(message.body.as_str(), "hello");

    let file = [crate::carriers::media(
        "https://storage.googleapis.com/copper_test/f",
        Some("image/png"),
        Some(10),
        Some("a.png"),
    )];
    let request = account
        .simulate_inbound(
            URL,
            &SimulatedInbound {
                message_id: &message_id,
                from: &from,
                to: &to,
                body: "",
                media: &file,
            },
            &keys,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(account.verify(&request, keys.now).valid);
    let Event::Message(message) = one(&request) else {
        panic!("not a message")
    };
    assert_eq!(message.media, file);
    let both = account.simulate_inbound(
        URL,
        &SimulatedInbound {
            message_id: &message_id,
            from: &from,
            to: &to,
            body: "and text",
            media: &file,
        },
        &keys,
    );
    assert!(both.is_err());
    let number = BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"));
    assert!(account
        .simulate_inbound(
            URL,
            &SimulatedInbound {
                message_id: &message_id,
                from: &from,
                to: &number,
                body: "x",
                media: &[],
            },
            &keys,
        )
        .is_err());
}

#[test]
fn simulated_events_verify_and_parse_back() {
    let account = account();
    let (from, to) = (agent(), customer());
    let keys = SimulationKeys {
        now: Utc::now(),
        signing_key: None,
    };
    let simulate = |word: &str| {
        account.simulate_status(
            "https://sms.example.com/webhooks/rbm/status",
            &SimulatedStatus {
                carrier_message_id: OUTBOX_ID,
                status: word,
                error_code: None,
                from: &from,
                to: &to,
            },
            &keys,
        )
    };
    for (word, ours) in [
        ("DELIVERED", Some("delivered")),
        ("read", Some("read")),
        ("TTL_EXPIRATION_REVOKED", Some("undelivered")),
    ] {
        let request = simulate(word).unwrap_or_else(|e| panic!("{e}"));
        assert!(account.verify(&request, keys.now).valid, "{word}");
        let Event::Status(status) = one(&request) else {
            panic!("{word}: not a status")
        };
        assert_eq!(status.carrier_message_id, OUTBOX_ID);
        assert_eq!(status.status, ours);
    }
    let request = simulate("UNSUBSCRIBE").unwrap_or_else(|e| panic!("{e}"));
    assert!(account.verify(&request, keys.now).valid);
    let Event::Consent(report) = one(&request) else {
        panic!("not consent")
    };
    assert_eq!(report.kind, ConsentKind::OptOut);
    assert_eq!(report.contact, to);
    assert_eq!(report.business, from);
    let request = simulate("subscribe").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(one(&request), Event::Consent(r) if r.kind == ConsentKind::OptIn));
    let request = simulate("IS_TYPING").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(one(&request), Event::Ignored("typing")));
    assert!(simulate("failed").is_err());
}

#[test]
fn ids_look_like_rbm_ids() {
    let id = new_message_id();
    assert_eq!(id.len(), "MsW9d5RGeQRUK6zzZVYbH1kQ".len());
    assert!(id.starts_with("Ms"));
    assert!(check_token(&id, 128));
    assert_ne!(id, new_message_id());
    assert!(new_event_id().starts_with("Mx"));
}
