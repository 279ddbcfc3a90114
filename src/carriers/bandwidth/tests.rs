use super::*;
use crate::carriers::check_token;
use crate::phone::E164;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/carriers/bandwidth/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const URL: &str = "https://sms.example.com/webhooks/bandwidth";

fn callback(body: Vec<u8>, authorization: Option<&str>) -> WebhookRequest {
    let mut headers = vec![(
        "Content-Type".to_owned(),
        "application/json; charset=utf-8".to_owned(),
    )];
    if let Some(value) = authorization {
        headers.push(("Authorization".to_owned(), value.to_owned()));
    }
    WebhookRequest::new(Method::Post, URL, headers, body)
}

fn events_of(name: &str) -> Vec<Event> {
    parse(&callback(fixture(name), None), Route::Inbound).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn account() -> Account {
    Account {
        account_id: "9900000".to_owned(),
        application_id: "93de2206-9669-4e07-948d-329f4b722ee2".to_owned(),
        username: "api-user".to_owned(),
        password: SecretString::from("api-pass".to_owned()),
        webhook_username: "bw-callbacks".to_owned(),
        webhook_password: SecretString::from("s3cret-callback-pw".to_owned()),
        api_base: url::Url::parse("http://127.0.0.1:9/bandwidth").unwrap_or_else(|e| panic!("{e}")),
    }
}

fn business() -> BusinessAddress {
    BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"))
}

fn customer() -> E164 {
    E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn inbound_sms_fixture() {
    let events = events_of("inbound-sms.json");
    let [Event::Message(m)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(m.carrier, "bandwidth");
    assert_eq!(m.carrier_message_id, "14762070468292kw2fuqty55yp2b2");
    assert_eq!(m.from.as_str(), "+15551234567");
    assert_eq!(m.to, business());
    assert_eq!(m.channel, Channel::Sms);
    assert_eq!(
        m.body.as_str(),
        "Hi, is my appointment still on for Tuesday?"
    );
    assert!(m.media.is_empty());
}

#[test]
fn inbound_mms_fixture_derives_the_content_type() {
    let events = events_of("inbound-mms.json");
    let [Event::Message(m)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(m.channel, Channel::Mms);
    assert_eq!(m.body.as_str(), "Hey, check this out!");
    assert_eq!(m.media.len(), 1);
    assert_eq!(
        m.media[0].url,
        "https://messaging.bandwidth.com/api/v2/users/9900000/media/14762070468292kw2fuqty55yp2b3/0/bw.png"
    );
    assert_eq!(m.media[0].content_type.as_deref(), Some("image/png"));
    assert_eq!(m.media[0].name.as_deref(), Some("bw.png"));
    // No extension, no guess.
    assert_eq!(
        media_item("https://messaging.bandwidth.com/api/v2/users/1/media/x/0/blob").content_type,
        None
    );
}

#[test]
fn group_message_is_stored_against_the_owned_recipient() {
    let request = callback(fixture("inbound-group-mms.json"), None);
    assert_eq!(hint(&request, Route::Inbound), Ok(Some(business())));
    let events = parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}"));
    let [Event::Message(m)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(m.to, business());
    assert_eq!(m.carrier_message_id, "14762070468292kw2fuqty55yp2b4");
    assert_eq!(m.channel, Channel::Mms);
}

#[test]
fn status_fixtures() {
    let expect = |name: &str, id: &str, word: &str, ours: &str, code: Option<&str>| {
        let events = events_of(name);
        let [Event::Status(s)] = &events[..] else {
            panic!("{name}: {events:?}")
        };
        assert_eq!(s.carrier_message_id, id, "{name}");
        assert_eq!(s.carrier_status, word, "{name}");
        assert_eq!(s.status, Some(ours), "{name}");
        assert_eq!(s.error_code.as_deref(), code, "{name}");
    };
    expect(
        "status-sending.json",
        "1593110555875xo7watq5px6rbe5d",
        "message-sending",
        "queued",
        None,
    );
    expect(
        "status-delivered.json",
        "1585321273456iprz22vjeo4tvooc",
        "message-delivered",
        "delivered",
        None,
    );
    expect(
        "status-failed-optout.json",
        "14762070468292kw2fuqty55yp2b5",
        "message-failed",
        "failed",
        Some("4775"),
    );
    expect(
        "status-read.json",
        "1714564800000a1b2c3d4e5f6g7h8",
        "message-read",
        "read",
        None,
    );
    assert_eq!(
        CARRIER.profile().error_class("4775"),
        Some(ErrorClass::OptedOut)
    );
}

#[test]
fn status_routes_are_interchangeable_and_hinted_by_our_sender() {
    let request = callback(fixture("status-delivered.json"), None);
    assert_eq!(hint(&request, Route::Status), Ok(Some(business())));
    assert_eq!(hint(&request, Route::Inbound), Ok(Some(business())));
    for route in [Route::Inbound, Route::Status] {
        assert!(matches!(
            &parse(&request, route).unwrap_or_else(|e| panic!("{e}"))[..],
            [Event::Status(_)]
        ));
    }
    let inbound = callback(fixture("inbound-sms.json"), None);
    assert!(matches!(
        &parse(&inbound, Route::Status).unwrap_or_else(|e| panic!("{e}"))[..],
        [Event::Message(_)]
    ));
}

#[test]
fn other_events_are_ignored_and_arrays_may_carry_several() {
    let body = br#"[
        {"type":"suggestion-response","time":"2024-01-01T00:00:00Z","to":"+15550001111","message":{"id":"a"}},
        {"type":"message-something-new","time":"2024-01-01T00:00:00Z"},
        {"type":"message-sent","time":"2024-01-01T00:00:00Z","to":"+15551234567","description":"sent",
         "message":{"id":"1700000000000abcdefghijklmnop","from":"+15550001111","owner":"+15550001111","to":["+15551234567"],"direction":"out","text":""}}
    ]"#;
    let request = callback(body.to_vec(), None);
    assert_eq!(hint(&request, Route::Inbound), Ok(None));
    let events = parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        &events[..],
        [
            Event::Ignored("rbm_response"),
            Event::Ignored("unhandled_event"),
            Event::Status(StatusUpdate {
                status: Some("sent"),
                ..
            })
        ]
    ));
    let sender_id = callback(
        br#"[{"type":"message-delivered","message":{"id":"a","from":"MyBrand"}}]"#.to_vec(),
        None,
    );
    assert_eq!(hint(&sender_id, Route::Status), Ok(None));
    let empty = callback(b"[]".to_vec(), None);
    assert_eq!(hint(&empty, Route::Inbound), Ok(None));
    assert!(parse(&empty, Route::Inbound).unwrap_or_default().is_empty());
}

#[test]
fn rbm_messages_from_the_multichannel_api_are_rcs() {
    let body = br#"[{"type":"message-received","time":"2024-01-01T00:00:00Z","to":"drawbridge-test-agent",
        "message":{"id":"1700000000000rbmrbmrbmrbmrbm","owner":"drawbridge-test-agent","from":"+15551234567",
        "to":["drawbridge-test-agent"],"direction":"in","channel":"RBM","content":{"text":"Yes please"}}}]"#;
    let request = callback(body.to_vec(), None);
    let agent =
        BusinessAddress::rcs_agent("drawbridge-test-agent").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hint(&request, Route::Inbound), Ok(Some(agent.clone())));
    let events = parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}"));
    let [Event::Message(m)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (m.channel, &m.to, m.body.as_str()),
        (Channel::Rcs, &agent, "Yes please")
    );
}

#[test]
fn malformed_payloads_name_the_field() {
    let parse_body =
        |body: &str| parse(&callback(body.as_bytes().to_vec(), None), Route::Inbound).err();
    let form = WebhookRequest::new(
        Method::Post,
        URL,
        [(
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        )],
        b"a=1".to_vec(),
    );
    assert_eq!(
        hint(&form, Route::Inbound),
        Err(PayloadError::ContentType("application/json"))
    );
    assert_eq!(
        parse_body(r#"{"type":"message-received"}"#),
        Some(PayloadError::Body("a JSON array of events"))
    );
    assert_eq!(
        parse_body("[1]"),
        Some(PayloadError::Body("a JSON array of event objects"))
    );
    assert_eq!(parse_body("[{}]"), Some(PayloadError::Missing("type")));
    assert_eq!(
        parse_body(r#"[{"type":"message-received","to":"+15550001111"}]"#),
        Some(PayloadError::Missing("message"))
    );
    assert_eq!(
        parse_body(
            r#"[{"type":"message-received","to":"+15550001111","message":{"from":"+15551234567","text":"x"}}]"#
        ),
        Some(PayloadError::Missing("message.id"))
    );
    assert_eq!(
        parse_body(
            r#"[{"type":"message-received","to":"+15550001111","message":{"id":"a b","from":"+15551234567"}}]"#
        ),
        Some(PayloadError::Invalid("message.id"))
    );
    assert_eq!(
        parse_body(
            r#"[{"type":"message-received","to":"+15550001111","message":{"id":"a","from":"nobody"}}]"#
        ),
        Some(PayloadError::BadPhone("message.from"))
    );
    assert_eq!(
        parse_body(
            r#"[{"type":"message-received","to":"hello","message":{"id":"a","from":"+15551234567"}}]"#
        ),
        Some(PayloadError::BadPhone("to"))
    );
    assert_eq!(
        parse_body(
            r#"[{"type":"message-received","to":"+15550001111","message":{"id":"a","from":"+15551234567","media":"x"}}]"#
        ),
        Some(PayloadError::Invalid("message.media"))
    );
    assert_eq!(
        parse_body(
            r#"[{"type":"message-failed","errorCode":"47 75","message":{"id":"a","from":"+15550001111"}}]"#
        ),
        Some(PayloadError::Invalid("errorCode"))
    );
    assert_eq!(
        parse_body(r#"[{"type":"message failed!"}]"#),
        Some(PayloadError::Invalid("type"))
    );
}

fn basic(credentials: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

#[test]
fn basic_credentials_are_checked_in_full() {
    let account = account();
    let now = Utc::now();
    let good = callback(
        fixture("inbound-sms.json"),
        Some(&basic("bw-callbacks:s3cret-callback-pw")),
    );
    let verdict = account.verify(&good, now);
    assert!(verdict.valid, "{:?}", verdict.details);

    let wrong_password = callback(
        fixture("inbound-sms.json"),
        Some(&basic("bw-callbacks:s3cret-callback-pX")),
    );
    let verdict = account.verify(&wrong_password, now);
    assert!(!verdict.valid);
    assert!(verdict
        .details
        .iter()
        .any(|d| d.starts_with("password: MISMATCH")));
    assert!(verdict
        .details
        .iter()
        .any(|d| d.contains("user:") && d.ends_with("match")));
    for detail in &verdict.details {
        assert!(!detail.contains("s3cret"), "{detail}");
    }

    let wrong_user = callback(
        fixture("inbound-sms.json"),
        Some(&basic("someone:s3cret-callback-pw")),
    );
    let verdict = account.verify(&wrong_user, now);
    assert!(!verdict.valid);
    assert!(verdict
        .details
        .iter()
        .any(|d| d.contains("received `someone`, expected `bw-callbacks`: MISMATCH")));
    assert!(verdict
        .details
        .iter()
        .any(|d| d.starts_with("password: match")));

    for (header, expected) in [
        (None, "no Authorization header"),
        (Some("Bearer abc"), "not `Basic"),
        (Some("Basic !!!"), "not base64"),
        (
            Some(basic("no-colon").as_str()),
            "not base64 of `user:password`",
        ),
    ] {
        let verdict = account.verify(&callback(fixture("inbound-sms.json"), header), now);
        assert!(!verdict.valid);
        assert!(
            verdict.details.iter().any(|d| d.contains(expected)),
            "{expected}: {:?}",
            verdict.details
        );
    }
    // The scheme is case-insensitive (RFC 7235).
    let lower = callback(
        fixture("inbound-sms.json"),
        Some(&basic("bw-callbacks:s3cret-callback-pw").replacen("Basic", "basic", 1)),
    );
    assert!(account.verify(&lower, now).valid);
}

#[test]
fn the_cli_secret_is_user_colon_password() {
    let now = Utc::now();
    let request = callback(
        fixture("inbound-sms.json"),
        Some(&basic("bw-callbacks:pass:with:colons")),
    );
    let secret = SecretString::from("bw-callbacks:pass:with:colons".to_owned());
    assert!(verify_with_secret(&secret, &request, now).valid);
    let wrong = SecretString::from("bw-callbacks:pass".to_owned());
    assert!(!verify_with_secret(&wrong, &request, now).valid);
    let no_colon = SecretString::from("justapassword".to_owned());
    let verdict = verify_with_secret(&no_colon, &request, now);
    assert!(!verdict.valid);
    assert!(verdict.details[0].contains("user:password"));
}

fn message<'a>(
    from: &'a BusinessAddress,
    to: &'a E164,
    channel: Channel,
    body: &'a str,
    media: &'a [String],
) -> OutboundMessage<'a> {
    OutboundMessage {
        outbox_id: "0190f3a2-7c1e-7d2a-9b1c-3e4f5a6b7c8d",
        from,
        to,
        channel,
        body,
        media_urls: media,
        suggestions: &[],
        status_callback: "https://sms.example.com/webhooks/bandwidth/status",
    }
}

#[test]
fn send_request_shape() {
    let (from, to) = (business(), customer());
    let media = ["https://dev.bandwidth.com/images/bandwidth-logo.png".to_owned()];
    let call = account()
        .build_send(
            &message(
                &from,
                &to,
                Channel::Mms,
                "Your appointment is confirmed.",
                &media,
            ),
            None,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(call.method, Method::Post);
    assert_eq!(
        call.url.as_str(),
        "http://127.0.0.1:9/bandwidth/api/v2/users/9900000/messages"
    );
    // base64("api-user:api-pass")
    assert_eq!(
        call.header_value("authorization"),
        Some("Basic YXBpLXVzZXI6YXBpLXBhc3M=")
    );
    assert_eq!(
        call.body.as_ref().map(|(t, _)| *t),
        Some("application/json")
    );
    let body: Value = serde_json::from_str(call.body_text()).unwrap_or_default();
    let documented: Value =
        serde_json::from_slice(&fixture("send-request.json")).unwrap_or_default();
    assert_eq!(body, documented);

    let sms = account()
        .build_send(&message(&from, &to, Channel::Sms, "Hi", &[]), None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let body: Value = serde_json::from_str(sms.body_text()).unwrap_or_default();
    assert!(body.get("media").is_none());
    assert_eq!(body["to"], json!(["+15551234567"]));
    assert_eq!(body["tag"], json!("0190f3a2-7c1e-7d2a-9b1c-3e4f5a6b7c8d"));

    let short_code = BusinessAddress::parse("12345").unwrap_or_else(|e| panic!("{e}"));
    let call = account()
        .build_send(&message(&short_code, &to, Channel::Sms, "Hi", &[]), None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(call.body_text().contains(r#""from":"12345""#));
}

#[test]
fn send_refuses_what_bandwidth_cannot_take() {
    let (from, to) = (business(), customer());
    let agent =
        BusinessAddress::rcs_agent("drawbridge-test-agent").unwrap_or_else(|e| panic!("{e}"));
    let refused =
        |m: OutboundMessage<'_>| account().build_send(&m, None).err().and_then(|e| e.code);
    assert_eq!(
        refused(message(&agent, &to, Channel::Rcs, "x", &[])),
        Some("rcs_unsupported".to_owned())
    );
    assert_eq!(
        refused(message(&from, &to, Channel::Rcs, "x", &[])),
        Some("rcs_unsupported".to_owned())
    );
    let long = "é".repeat(2049);
    assert_eq!(
        refused(message(&from, &to, Channel::Sms, &long, &[])),
        Some("text_too_long".to_owned())
    );
    let limit = "é".repeat(2048);
    assert!(account()
        .build_send(&message(&from, &to, Channel::Sms, &limit, &[]), None)
        .is_ok());
}

#[test]
fn send_replies_are_classified() {
    assert_eq!(
        parse_send_reply(&HttpReply::new(202, fixture("send-reply-202.json"))),
        SendResult::Accepted {
            carrier_message_id: "1589228074636lm4k2je7j7jklbn2".to_owned(),
            status: None
        }
    );
    let class = |status: u16, body: Vec<u8>| match parse_send_reply(&HttpReply::new(status, body)) {
        SendResult::Rejected(e) => Some((e.class, e.code)),
        _ => None,
    };
    assert_eq!(
        class(429, fixture("error-429.json")),
        Some((
            ErrorClass::Throttled,
            Some("max-message-queue-size-exceeded".to_owned())
        ))
    );
    assert_eq!(
        class(400, fixture("error-400.json")),
        Some((ErrorClass::Permanent, Some("request-validation".to_owned())))
    );
    assert_eq!(
        class(401, fixture("error-401.json")),
        Some((ErrorClass::Permanent, Some("unauthorized".to_owned())))
    );
    assert_eq!(
        class(500, b"<html>oops</html>".to_vec()),
        Some((ErrorClass::Transient, None))
    );
    assert_eq!(class(429, Vec::new()), Some((ErrorClass::Throttled, None)));
    assert_eq!(
        parse_send_reply(&HttpReply::new(504, "")),
        SendResult::Uncertain("gateway_timeout")
    );
    assert_eq!(
        parse_send_reply(&HttpReply::new(202, "{}")),
        SendResult::Uncertain("accepted_without_id")
    );
    // Delivery error codes reach us by callback; the profile still classifies them.
    let profile = CARRIER.profile();
    for (code, class) in [
        ("4775", ErrorClass::OptedOut),
        ("4482", ErrorClass::Permanent),
        ("4470", ErrorClass::Permanent),
        ("4770", ErrorClass::Permanent),
        ("4720", ErrorClass::InvalidNumber),
        ("4795", ErrorClass::Permanent),
        ("4785", ErrorClass::Throttled),
        ("5600", ErrorClass::Transient),
    ] {
        assert_eq!(profile.error_class(code), Some(class), "{code}");
    }
}

#[test]
fn lookup_lists_our_outbound_messages() {
    let (from, to) = (business(), customer());
    let since = DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
        .unwrap_or_else(|e| panic!("{e}"))
        .with_timezone(&Utc);
    let call = account()
        .build_lookup(
            &LookupQuery {
                outbox_id: "o",
                from: &from,
                to: &to,
                since,
            },
            None,
        )
        .unwrap_or_else(|| panic!("no lookup"));
    assert_eq!(call.method, Method::Get);
    assert_eq!(call.url.path(), "/bandwidth/api/v2/users/9900000/messages");
    assert_eq!(
        call.url.query(),
        Some("sourceTn=%2B15550001111&destinationTn=%2B15551234567&messageDirection=OUTBOUND&fromDateTime=2026-11-27T10%3A00%3A00.000Z&limit=100")
    );
    assert_eq!(
        call.header_value("authorization"),
        Some("Basic YXBpLXVzZXI6YXBpLXBhc3M=")
    );
    let found = parse_lookup_reply(&HttpReply::new(200, fixture("list-messages.json")))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].carrier_message_id, "1589228074636lm4k2je7j7jklbn2");
    assert!(found[0].body.is_none() && found[0].client_reference.is_none());
    let mixed = br#"{"messages":[{"messageId":"a1","messageDirection":"INBOUND"},{"messageId":"bad id"},{"messageId":"b2"}]}"#;
    let found = parse_lookup_reply(&HttpReply::new(200, mixed.to_vec())).unwrap_or_default();
    assert_eq!(
        found
            .iter()
            .map(|c| c.carrier_message_id.as_str())
            .collect::<Vec<_>>(),
        ["b2"]
    );
    assert_eq!(
        parse_lookup_reply(&HttpReply::new(429, fixture("error-429.json")))
            .err()
            .map(|e| e.class),
        Some(ErrorClass::Throttled)
    );
    assert!(parse_lookup_reply(&HttpReply::new(200, "[]")).is_err());
}

#[test]
fn simulated_webhooks_verify_and_parse() {
    let account = account();
    let (to, from) = (business(), customer());
    let keys = SimulationKeys {
        now: Utc::now(),
        signing_key: None,
    };
    let media = [crate::carriers::media(
        "https://messaging.bandwidth.com/api/v2/users/9900000/media/m/0/photo.jpg",
        Some("image/jpeg"),
        None,
        None,
    )];
    let id = new_message_id();
    let request = account
        .simulate_inbound(
            URL,
            &SimulatedInbound {
                message_id: &id,
                from: &from,
                to: &to,
                body: "hello",
                media: &media,
            },
            &keys,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(account.verify(&request, keys.now).valid);
    assert_eq!(hint(&request, Route::Inbound), Ok(Some(to.clone())));
    let events = parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}"));
    let [Event::Message(m)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (
            m.carrier_message_id.as_str(),
            &m.from,
            &m.to,
            m.body.as_str()
        ),
        (id.as_str(), &from, &to, "hello")
    );
    // Bandwidth sends URLs only: the type comes back from the extension, the name from the path.
    assert_eq!(m.media.len(), 1);
    assert_eq!(m.media[0].url, media[0].url);
    assert_eq!(m.media[0].content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(m.media[0].name.as_deref(), Some("photo.jpg"));

    let status_url = "https://sms.example.com/webhooks/bandwidth/status";
    for (word, ours, code) in [
        ("message-delivered", "delivered", None),
        ("delivered", "delivered", None),
        ("message-failed", "failed", Some("4775")),
        ("message-read", "read", None),
    ] {
        let request = account
            .simulate_status(
                status_url,
                &SimulatedStatus {
                    carrier_message_id: &id,
                    status: word,
                    error_code: code,
                    from: &to,
                    to: &from,
                },
                &keys,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(account.verify(&request, keys.now).valid);
        assert_eq!(hint(&request, Route::Status), Ok(Some(to.clone())));
        let events = parse(&request, Route::Status).unwrap_or_else(|e| panic!("{e}"));
        let [Event::Status(s)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(s.carrier_message_id, id);
        assert_eq!(s.status, Some(ours), "{word}");
        assert_eq!(s.error_code.as_deref(), code);
    }

    let forged = callback(request.body.to_vec(), Some(&basic("bw-callbacks:guess")));
    assert!(!account.verify(&forged, keys.now).valid);
}

#[test]
fn message_ids_look_like_bandwidths() {
    let id = new_message_id();
    assert_eq!(id.len(), 29, "{id}");
    let (millis, tail) = id.split_at(13);
    assert!(millis.bytes().all(|b| b.is_ascii_digit()), "{id}");
    assert!(
        tail.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
        "{id}"
    );
    assert!(check_token(&id, 128));
    assert_ne!(new_message_id(), new_message_id());
}

fn table(text: &str) -> toml::Table {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
}

const GOOD: &str = r#"
account_id = "9900000"
application_id = "93de2206-9669-4e07-948d-329f4b722ee2"
username = "api-user"
password = "a-long-api-password"
webhook_username = "bw-callbacks"
webhook_password = "Zx8-long-callback-password"
"#;

#[test]
fn configuration_is_checked() {
    let account =
        Account::from_config(&table(GOOD), Mode::Production).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        account.api_base.as_str(),
        "https://messaging.bandwidth.com/"
    );
    assert_eq!(
        account.secrets(),
        ["a-long-api-password", "Zx8-long-callback-password"]
    );
    let debug = format!("{account:?}");
    assert!(
        !debug.contains("a-long-api-password") && !debug.contains("Zx8"),
        "{debug}"
    );

    let refused = |text: &str, mode: Mode| {
        Account::from_config(&table(text), mode)
            .err()
            .unwrap_or_default()
    };
    assert!(refused(&GOOD.replace("9900000", "99x"), Mode::Development).starts_with("`account_id`"));
    assert!(
        refused(&GOOD.replace("93de2206-", "93de2206"), Mode::Development)
            .starts_with("`application_id`")
    );
    assert!(refused(
        &GOOD.replace("\"bw-callbacks\"", "\"a:b\""),
        Mode::Development
    )
    .starts_with("`webhook_username`"));
    assert!(refused(&format!("{GOOD}colour = \"blue\"\n"), Mode::Development).contains("colour"));
    let short = GOOD.replace("Zx8-long-callback-password", "short");
    assert!(Account::from_config(&table(&short), Mode::Development).is_ok());
    let err = refused(&short, Mode::Production);
    assert!(
        err.starts_with("`webhook_password`") && !err.contains("short"),
        "{err}"
    );
    let placeholder = GOOD.replace("a-long-api-password", "replace-me");
    let err = refused(&placeholder, Mode::Production);
    assert!(
        err.starts_with("`password`") && !err.contains("replace-me"),
        "{err}"
    );
    let fake = Account::from_config(
        &table(&format!("{GOOD}api_base = \"http://127.0.0.1:4010\"\n")),
        Mode::Development,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fake.api_base().as_str(), "http://127.0.0.1:4010/");
}

#[test]
fn profile_maps_every_status_word() {
    let profile = CARRIER.profile();
    for (word, ours) in [
        ("message-sending", "queued"),
        ("message-sent", "sent"),
        ("message-delivered", "delivered"),
        ("message-failed", "failed"),
        ("message-read", "read"),
        ("MESSAGE-DELIVERED", "delivered"),
    ] {
        assert_eq!(profile.map_status(word), Some(ours), "{word}");
    }
    assert_eq!(profile.map_status("message-received"), None);
    assert_eq!(profile.status_words().count(), 5);
    assert_eq!(profile.resend, crate::carriers::profile::Resend::Lookup);
    assert_eq!(profile.webhook_methods, [Method::Post]);
}
