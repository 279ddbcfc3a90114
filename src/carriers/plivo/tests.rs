use super::*;
use crate::carriers::{check_token, form};
use crate::phone::E164;

fn fixture(name: &str) -> String {
    let path = format!("{}/carriers/plivo/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_owned()
}

const URL: &str = "https://sms.example.com/webhooks/plivo";
const STATUS_URL: &str = "https://sms.example.com/webhooks/plivo/status";
const TOKEN: &str = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4";

fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> WebhookRequest {
    let mut all = vec![(
        "Content-Type".to_owned(),
        "application/x-www-form-urlencoded".to_owned(),
    )];
    all.extend(
        headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    WebhookRequest::new(Method::Post, url, all, body.as_bytes().to_vec())
}

fn get(url: &str, headers: &[(&str, &str)]) -> WebhookRequest {
    WebhookRequest::new(
        Method::Get,
        url,
        headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        Vec::new(),
    )
}

fn account() -> Account {
    Account {
        auth_id: "MAXXXXXXXXXXXXXXXXXX".to_owned(),
        auth_token: SecretString::from(TOKEN.to_owned()),
        api_base: url::Url::parse("http://127.0.0.1:9/plivo").unwrap_or_else(|e| panic!("{e}")),
    }
}

fn business() -> BusinessAddress {
    BusinessAddress::parse("+15550001111").unwrap_or_else(|e| panic!("{e}"))
}

fn customer() -> E164 {
    E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"))
}

fn inbound(events: &[Event]) -> &Inbound {
    match events {
        [Event::Message(m), ..] => m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn inbound_sms_fixture() {
    let request = post(URL, &fixture("inbound-sms.form"), &[]);
    assert_eq!(hint(&request, Route::Inbound), Ok(Some(business())));
    let events = parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events.len(), 1);
    let m = inbound(&events);
    assert_eq!(m.carrier, "plivo");
    assert_eq!(m.carrier_message_id, "7a242edc-2f57-11e7-98c9-06ab0bf64327");
    assert_eq!(m.from, customer());
    assert_eq!(m.to, business());
    assert_eq!(m.channel, Channel::Sms);
    assert_eq!(
        m.body.as_str(),
        "Hi, is my appointment still on for Tuesday?"
    );
    assert!(m.media.is_empty());
}

#[test]
fn inbound_get_fixture() {
    let request = get(&format!("{URL}?{}", fixture("inbound-sms-get.query")), &[]);
    assert_eq!(hint(&request, Route::Inbound), Ok(Some(business())));
    let events = parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inbound(&events).body.as_str(), "Hello there!");
}

#[test]
fn inbound_mms_fixtures_number_media_from_one_or_zero() {
    let events = parse(
        &post(URL, &fixture("inbound-mms.form"), &[]),
        Route::Inbound,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let m = inbound(&events);
    assert_eq!(m.channel, Channel::Mms);
    assert_eq!(m.body.as_str(), "Here is the damage");
    assert_eq!(
        m.media.iter().map(|x| x.url.as_str()).collect::<Vec<_>>(),
        [
            "https://media.plivo.com/Account/MAXXXXXXXXXXXXXXXXXX/Message/8f2a3b5c-5a8e-11ee-9a1b-0242ac110003/Media/1",
            "https://media.plivo.com/Account/MAXXXXXXXXXXXXXXXXXX/Message/8f2a3b5c-5a8e-11ee-9a1b-0242ac110003/Media/2",
        ]
    );
    assert!(m.media.iter().all(|x| x.content_type.is_none()));

    let events = parse(
        &post(URL, &fixture("inbound-mms-media0.form"), &[]),
        Route::Inbound,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let m = inbound(&events);
    assert_eq!(m.media.len(), 1);
    assert!(m.media[0].url.ends_with("/Media/0"));
    assert_eq!(m.body.as_str(), "");

    // Numeric order (Media10 after Media2) and MediaContentType{N} when sent.
    let body = "From=15551234567&To=15550001111&Type=mms&MessageUUID=u1&MediaCount=3\
        &Media10=https%3A%2F%2Fm%2Fc&Media2=https%3A%2F%2Fm%2Fb&Media1=https%3A%2F%2Fm%2Fa\
        &MediaContentType2=image%2Fpng";
    let events = parse(&post(URL, body, &[]), Route::Inbound).unwrap_or_else(|e| panic!("{e}"));
    let m = inbound(&events);
    assert_eq!(
        m.media.iter().map(|x| x.url.as_str()).collect::<Vec<_>>(),
        ["https://m/a", "https://m/b", "https://m/c"]
    );
    assert_eq!(m.media[1].content_type.as_deref(), Some("image/png"));
}

#[test]
fn opt_out_intent_is_a_message_and_a_consent_report() {
    let events = parse(
        &post(URL, &fixture("inbound-optout.form"), &[]),
        Route::Inbound,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let [Event::Message(m), Event::Consent(c)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(m.body.as_str(), "STOP");
    assert_eq!(c.kind, ConsentKind::OptOut);
    assert_eq!(c.event_id, "7a242edc-2f57-11e7-98c9-06ab0bf64329");
    assert_eq!((&c.contact, &c.business), (&customer(), &business()));
    let optin = fixture("inbound-optout.form")
        .replace("Text=STOP", "Text=START")
        .replace("optout", "optin");
    let events = parse(&post(URL, &optin, &[]), Route::Inbound).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        &events[..],
        [
            Event::Message(_),
            Event::Consent(ConsentReport {
                kind: ConsentKind::OptIn,
                ..
            })
        ]
    ));
    let help = fixture("inbound-optout.form").replace("optout", "help");
    let events = parse(&post(URL, &help, &[]), Route::Inbound).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events.len(), 1);
}

#[test]
fn whatsapp_is_ignored() {
    let body = fixture("inbound-sms.form").replace("Type=sms", "Type=whatsapp");
    let events = parse(&post(URL, &body, &[]), Route::Inbound).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(&events[..], [Event::Ignored("whatsapp")]));
}

#[test]
fn status_fixtures_and_mapping() {
    let delivered = post(STATUS_URL, &fixture("status-delivered.form"), &[]);
    assert_eq!(hint(&delivered, Route::Status), Ok(Some(business())));
    let events = parse(&delivered, Route::Status).unwrap_or_else(|e| panic!("{e}"));
    let [Event::Status(s)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(s.carrier_message_id, "db3ce55a-7f1d-11e1-8ea7-1231380bc196");
    assert_eq!(s.carrier_status, "delivered");
    assert_eq!(s.status, Some("delivered"));
    assert_eq!(s.error_code, None, "000 means no error");

    let failed = post(STATUS_URL, &fixture("status-failed-optout.form"), &[]);
    let events = parse(&failed, Route::Status).unwrap_or_else(|e| panic!("{e}"));
    let [Event::Status(s)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(s.status, Some("failed"));
    assert_eq!(s.error_code.as_deref(), Some("200"));
    assert_eq!(
        CARRIER.profile().error_class("200"),
        Some(ErrorClass::OptedOut)
    );

    let without_from = post(STATUS_URL, "MessageUUID=a&Status=sent", &[]);
    assert_eq!(hint(&without_from, Route::Status), Ok(None));
    let sender_id = post(STATUS_URL, "MessageUUID=a&Status=sent&From=MyBrand", &[]);
    assert_eq!(hint(&sender_id, Route::Status), Ok(None));
}

#[test]
fn malformed_payloads_name_the_field() {
    let inbound_error = |body: &str| parse(&post(URL, body, &[]), Route::Inbound).err();
    let sms = fixture("inbound-sms.form");
    assert_eq!(
        inbound_error(&sms.replace("MessageUUID=", "Message=")),
        Some(PayloadError::Missing("MessageUUID"))
    );
    assert_eq!(
        inbound_error(&sms.replace("MessageUUID=7a242edc", "MessageUUID=7a%20242edc")),
        Some(PayloadError::Invalid("MessageUUID"))
    );
    assert_eq!(
        inbound_error(&sms.replace("From=15551234567", "From=abc")),
        Some(PayloadError::BadPhone("From"))
    );
    assert_eq!(
        inbound_error(&sms.replace("To=15550001111", "To=")),
        Some(PayloadError::Missing("To"))
    );
    assert_eq!(
        inbound_error(&format!("{sms}&MediaCount=many")),
        Some(PayloadError::Invalid("MediaCount"))
    );
    assert_eq!(
        inbound_error(&format!("{sms}&MediaCount=2&Media1=https%3A%2F%2Fm%2Fa")),
        Some(PayloadError::Missing("Media{N}"))
    );
    assert_eq!(
        inbound_error(&format!("{sms}&Media1=")),
        Some(PayloadError::Missing("Media{N}"))
    );
    assert!(matches!(
        inbound_error(&format!("{sms}&Text=%ZZ")),
        Some(PayloadError::Form(_))
    ));
    assert_eq!(
        parse(&post(STATUS_URL, "MessageUUID=a", &[]), Route::Status).err(),
        Some(PayloadError::Missing("Status"))
    );
    assert_eq!(
        parse(
            &post(STATUS_URL, "MessageUUID=a&Status=sent&ErrorCode=2+0", &[]),
            Route::Status
        )
        .err(),
        Some(PayloadError::Invalid("ErrorCode"))
    );
    let json = WebhookRequest::new(
        Method::Post,
        URL,
        [("Content-Type".to_owned(), "application/json".to_owned())],
        b"{}".to_vec(),
    );
    assert_eq!(
        hint(&json, Route::Inbound),
        Err(PayloadError::ContentType(
            "application/x-www-form-urlencoded"
        ))
    );
    assert_eq!(
        hint(&post(URL, "From=15551234567&To=hello", &[]), Route::Inbound),
        Err(PayloadError::BadPhone("To"))
    );
}

/// A request signed as Plivo signs it: V3 over the URL and form, V2 over the URL.
fn signed(url: &str, body: &str, v3: bool, v2: bool) -> WebhookRequest {
    let token = SecretString::from(TOKEN.to_owned());
    let params = form::parse(body.as_bytes()).unwrap_or_default();
    let mut headers = Vec::new();
    if v3 {
        let base = signature::v3_base(Method::Post, url, &params, signature::QueryReading::Decoded)
            .unwrap_or_default();
        let signature = signature::sign(&token, &signature::v3_string_to_sign(&base, "11111"));
        headers.push(("X-Plivo-Signature-V3".to_owned(), signature));
        headers.push(("X-Plivo-Signature-V3-Nonce".to_owned(), "11111".to_owned()));
    }
    if v2 {
        let signature = signature::sign(&token, &signature::v2_string_to_sign(url, "22222"));
        headers.push(("X-Plivo-Signature-V2".to_owned(), signature));
        headers.push(("X-Plivo-Signature-V2-Nonce".to_owned(), "22222".to_owned()));
    }
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    post(url, body, &refs)
}

fn with_body(request: &WebhookRequest, body: &str) -> WebhookRequest {
    WebhookRequest::new(
        request.method,
        request.url.clone(),
        request.headers().map(|(n, v)| (n.to_owned(), v.to_owned())),
        body.as_bytes().to_vec(),
    )
}

#[test]
fn published_v3_vector_through_the_webhook_path() {
    // plivo-go TestValidateSignatureV3Pass1 (§12.2), as a request: the form body carries the
    // vector's parameters.
    let uuid = "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36";
    let body = form::encode(&[
        ("Direction", "outbound"),
        ("From", "19792014278"),
        ("ALegUUID", uuid),
        ("CallStatus", "in-progress"),
        ("BillRate", "0.002"),
        ("ParentAuthID", "MANWVLYTK4ZWU1YTY4QA"),
        (
            "To",
            "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com",
        ),
        ("ALegRequestUUID", uuid),
        ("CallUUID", uuid),
        ("RequestUUID", uuid),
        (
            "SIP-H-To",
            "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1",
        ),
        ("SessionStart", "2020-04-08 11:34:33.238707"),
        ("Event", "StartApp"),
    ]);
    let url = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml/?a=b&c=d";
    let request = post(
        url,
        &body,
        &[
            (
                "X-Plivo-Signature-V3",
                "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=",
            ),
            ("X-Plivo-Signature-V3-Nonce", "31627761595286130198"),
        ],
    );
    let token = SecretString::from(TOKEN.to_owned());
    let verdict = verify_with_secret(&token, &request, Utc::now());
    assert!(verdict.valid, "{:#?}", verdict.details);
    assert_eq!(verdict.scheme, SCHEME_V3);
    let tampered = with_body(&request, &body.replace("in-progress", "in-progresS"));
    assert!(!verify_with_secret(&token, &tampered, Utc::now()).valid);
}

#[test]
fn v3_verifies_posts_and_refuses_changes() {
    let account = account();
    let now = Utc::now();
    let body = fixture("inbound-sms.form");
    let request = signed(URL, &body, true, true);
    let verdict = account.verify(&request, now);
    assert!(verdict.valid, "{:#?}", verdict.details);
    assert_eq!(verdict.scheme, SCHEME_V3);
    assert!(
        verdict
            .details
            .iter()
            .any(|d| d
                .starts_with("signed:   https://sms.example.com/webhooks/plivo?From15551234567"))
    );
    assert!(verdict.details.iter().any(|d| d.starts_with("expected: ")));
    assert!(verdict
        .details
        .iter()
        .any(|d| d.starts_with("received: x-plivo-signature-v3: ")));
    assert!(verdict
        .details
        .iter()
        .any(|d| d.contains("V3 signature takes precedence")));

    // A changed parameter fails V3, and the passing V2 on the same request does not rescue it.
    let tampered = with_body(&request, &body.replace("Tuesday", "Friday"));
    assert!(!account.verify(&tampered, now).valid);
    // Another URL, port or query.
    for url in [
        "https://sms.example.com:8443/webhooks/plivo",
        "http://sms.example.com/webhooks/plivo",
        "https://sms.example.com/webhooks/plivo?x=1",
    ] {
        let moved = WebhookRequest::new(
            Method::Post,
            url,
            request.headers().map(|(n, v)| (n.to_owned(), v.to_owned())),
            body.as_bytes().to_vec(),
        );
        assert!(!account.verify(&moved, now).valid, "{url}");
    }
    // Wrong token.
    let other = SecretString::from("Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc5".to_owned());
    assert!(!verify_with_secret(&other, &request, now).valid);
}

#[test]
fn v3_headers_variants() {
    let account = account();
    let now = Utc::now();
    let body = fixture("inbound-sms.form");
    let request = signed(URL, &body, true, false);
    let signature = request
        .header("x-plivo-signature-v3")
        .unwrap_or_default()
        .to_owned();
    let nonce = ("X-Plivo-Signature-V3-Nonce", "11111");
    // Only the main-account header.
    let ma = post(
        URL,
        &body,
        &[("X-Plivo-Signature-Ma-V3", &signature), nonce],
    );
    assert!(account.verify(&ma, now).valid);
    // Several signatures in one header, ours among them.
    let list = format!("c29tZW9uZSBlbHNl, {signature}");
    let several = post(URL, &body, &[("X-Plivo-Signature-V3", &list), nonce]);
    assert!(account.verify(&several, now).valid);
    // A V3 header without its nonce.
    let no_nonce = post(URL, &body, &[("X-Plivo-Signature-V3", &signature)]);
    let verdict = account.verify(&no_nonce, now);
    assert!(!verdict.valid);
    assert!(verdict
        .details
        .iter()
        .any(|d| d.contains("no X-Plivo-Signature-V3-Nonce")));
    // A wrong nonce.
    let wrong_nonce = post(
        URL,
        &body,
        &[
            ("X-Plivo-Signature-V3", &signature),
            ("X-Plivo-Signature-V3-Nonce", "11112"),
        ],
    );
    assert!(!account.verify(&wrong_nonce, now).valid);
}

#[test]
fn v3_verifies_get_webhooks_in_both_readings() {
    // Own vectors (see signature.rs for the computation): the §12.2 token, nonce
    // 05429567804466091622, plivo-python's decoded reading and plivo-go's raw one.
    let url = "https://sms.example.com/webhooks/plivo?From=15551234567&To=15550001111&Type=sms&Text=Hello+there%21&MessageUUID=7a242edc-2f57-11e7-98c9-06ab0bf64327";
    let account = account();
    for signature in [
        "JhGUcCH8fd8RHMDdssYEprcH/CHDb9XZG+TQYoIFYeg=",
        "DKB4j1xQVblVdbeAU+JxC+nBLjqub3DcnspkLJK/h5M=",
    ] {
        let request = get(
            url,
            &[
                ("X-Plivo-Signature-V3", signature),
                ("X-Plivo-Signature-V3-Nonce", "05429567804466091622"),
            ],
        );
        let verdict = account.verify(&request, Utc::now());
        assert!(verdict.valid, "{signature}: {:#?}", verdict.details);
        assert_eq!(
            verdict
                .details
                .iter()
                .filter(|d| d.starts_with("signed:"))
                .count(),
            2
        );
        let events = parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inbound(&events).body.as_str(), "Hello there!");
    }
    let changed = get(
        &url.replace("Hello", "Jello"),
        &[
            (
                "X-Plivo-Signature-V3",
                "JhGUcCH8fd8RHMDdssYEprcH/CHDb9XZG+TQYoIFYeg=",
            ),
            ("X-Plivo-Signature-V3-Nonce", "05429567804466091622"),
        ],
    );
    assert!(!account.verify(&changed, Utc::now()).valid);
}

#[test]
fn v2_alone_covers_the_url_only() {
    let account = account();
    let now = Utc::now();
    let body = fixture("inbound-sms.form");
    let request = signed(URL, &body, false, true);
    let verdict = account.verify(&request, now);
    assert!(verdict.valid, "{:#?}", verdict.details);
    assert_eq!(verdict.scheme, SCHEME_V2);
    assert!(verdict
        .details
        .iter()
        .any(|d| d == "signed:   https://sms.example.com/webhooks/plivo22222"));
    // V2 does not cover the parameters: that is Plivo's scheme.
    assert!(
        account
            .verify(
                &with_body(&request, "To=15550001111&From=1&Text=x&MessageUUID=u"),
                now
            )
            .valid
    );
    // It covers the URL and needs its nonce.
    let moved = WebhookRequest::new(
        Method::Post,
        "https://sms.example.com/webhooks/plivo/status",
        request.headers().map(|(n, v)| (n.to_owned(), v.to_owned())),
        body.as_bytes().to_vec(),
    );
    assert!(!account.verify(&moved, now).valid);
    let signature = request
        .header("x-plivo-signature-v2")
        .unwrap_or_default()
        .to_owned();
    let no_nonce = post(URL, &body, &[("X-Plivo-Signature-V2", &signature)]);
    assert!(!account.verify(&no_nonce, now).valid);
    let ma = post(
        URL,
        &body,
        &[
            ("X-Plivo-Signature-Ma-V2", &signature),
            ("X-Plivo-Signature-V2-Nonce", "22222"),
        ],
    );
    assert!(account.verify(&ma, now).valid);
}

#[test]
fn missing_or_v1_only_headers_are_refused() {
    let account = account();
    let body = fixture("inbound-sms.form");
    let verdict = account.verify(&post(URL, &body, &[]), Utc::now());
    assert!(!verdict.valid);
    assert!(verdict
        .details
        .iter()
        .any(|d| d.contains("no X-Plivo-Signature-V3, -Ma-V3, -V2 or -Ma-V2 header")));
    let v1 = post(
        URL,
        &body,
        &[("X-Plivo-Signature", "EJEt0ELanhr8hjMPIJnLNLex0dE=")],
    );
    let verdict = account.verify(&v1, Utc::now());
    assert!(!verdict.valid);
    assert!(verdict.details.iter().any(|d| d.contains("V1, deprecated")));
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
        status_callback: STATUS_URL,
    }
}

#[test]
fn send_request_shape() {
    let (from, to) = (business(), customer());
    let media = ["https://media.example.com/claim-form.png".to_owned()];
    let call = account()
        .build_send(
            &message(&from, &to, Channel::Mms, "Here is your claim form.", &media),
            None,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(call.method, Method::Post);
    assert_eq!(
        call.url.as_str(),
        "http://127.0.0.1:9/plivo/v1/Account/MAXXXXXXXXXXXXXXXXXX/Message/"
    );
    // base64("MAXXXXXXXXXXXXXXXXXX:Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4")
    assert_eq!(
        call.header_value("authorization"),
        Some("Basic TUFYWFhYWFhYWFhYWFhYWFhYWFg6WTJRMlpEZ3habVk1WVdSaU9USTVZbVExTmpnME1UQXhaV0l5T1RjNA==")
    );
    assert_eq!(
        call.body.as_ref().map(|(t, _)| *t),
        Some("application/json")
    );
    let body: Value = serde_json::from_str(call.body_text()).unwrap_or_default();
    let documented: Value = serde_json::from_str(&fixture("send-request.json")).unwrap_or_default();
    assert_eq!(body, documented);

    let sms = account()
        .build_send(&message(&from, &to, Channel::Sms, "Hi", &[]), None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let body: Value = serde_json::from_str(sms.body_text()).unwrap_or_default();
    assert_eq!(
        body,
        json!({"src": "+15550001111", "dst": "+15551234567", "text": "Hi", "url": STATUS_URL, "method": "POST"})
    );

    let agent =
        BusinessAddress::rcs_agent("drawbridge-test-agent").unwrap_or_else(|e| panic!("{e}"));
    for (sender, channel) in [(&agent, Channel::Rcs), (&from, Channel::Rcs)] {
        assert_eq!(
            account()
                .build_send(&message(sender, &to, channel, "x", &[]), None)
                .err()
                .and_then(|e| e.code),
            Some("rcs_unsupported".to_owned())
        );
    }
}

#[test]
fn send_replies_are_classified() {
    assert_eq!(
        parse_send_reply(&HttpReply::new(202, fixture("send-reply-202.json"))),
        SendResult::Accepted {
            carrier_message_id: "db3ce55a-7f1d-11e1-8ea7-1231380bc196".to_owned(),
            status: Some("queued")
        }
    );
    let class = |status: u16, body: &str| match parse_send_reply(&HttpReply::new(status, body)) {
        SendResult::Rejected(e) => Some((e.class, e.code)),
        _ => None,
    };
    assert_eq!(
        class(429, &fixture("error-429.json")),
        Some((ErrorClass::Throttled, Some("too_many_requests".to_owned())))
    );
    assert_eq!(
        class(400, r#"{"api_id":"x","error":"invalid_parameter"}"#),
        Some((ErrorClass::Permanent, Some("invalid_parameter".to_owned())))
    );
    assert_eq!(
        class(401, r#"{"api_id":"x","error":"authentication_failed"}"#),
        Some((
            ErrorClass::Permanent,
            Some("authentication_failed".to_owned())
        ))
    );
    assert_eq!(
        class(404, &fixture("error-404.json")),
        Some((ErrorClass::Permanent, Some("not_found".to_owned())))
    );
    // A phrase with digits (it could quote a number) is not kept as a code.
    assert_eq!(
        class(
            400,
            r#"{"api_id":"x","error":"dst 15551234567 is invalid"}"#
        ),
        Some((ErrorClass::Permanent, None))
    );
    assert_eq!(class(500, "oops"), Some((ErrorClass::Transient, None)));
    assert_eq!(class(429, ""), Some((ErrorClass::Throttled, None)));
    assert_eq!(
        parse_send_reply(&HttpReply::new(504, "")),
        SendResult::Uncertain("gateway_timeout")
    );
    assert_eq!(
        parse_send_reply(&HttpReply::new(
            202,
            r#"{"api_id":"x","message":"message(s) queued"}"#
        )),
        SendResult::Uncertain("accepted_without_id")
    );
    let profile = CARRIER.profile();
    for (code, class) in [
        ("200", ErrorClass::OptedOut),
        ("50", ErrorClass::InvalidNumber),
        ("20", ErrorClass::Transient),
        ("450", ErrorClass::Permanent),
        ("rate_limit_exceeded", ErrorClass::Throttled),
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
    assert_eq!(
        call.url.path(),
        "/plivo/v1/Account/MAXXXXXXXXXXXXXXXXXX/Message/"
    );
    assert_eq!(
        call.url.query(),
        Some("message_direction=outbound&from_number=%2B15550001111&to_number=%2B15551234567&message_time__gte=2026-11-27+10%3A00%3A00&limit=20")
    );
    assert!(call
        .header_value("authorization")
        .is_some_and(|h| h.starts_with("Basic ")));
    let found = parse_lookup_reply(&HttpReply::new(200, fixture("list-messages.json")))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].carrier_message_id,
        "db3ce55a-7f1d-11e1-8ea7-1231380bc196"
    );
    assert!(found[0].body.is_none() && found[0].client_reference.is_none());
    let mixed = r#"{"objects":[{"message_uuid":"a","message_direction":"inbound"},{"message_uuid":"b c"},{"message_uuid":"d"}]}"#;
    let found = parse_lookup_reply(&HttpReply::new(200, mixed)).unwrap_or_default();
    assert_eq!(
        found
            .iter()
            .map(|c| c.carrier_message_id.as_str())
            .collect::<Vec<_>>(),
        ["d"]
    );
    assert_eq!(
        parse_lookup_reply(&HttpReply::new(429, fixture("error-429.json")))
            .err()
            .map(|e| e.class),
        Some(ErrorClass::Throttled)
    );
    assert!(parse_lookup_reply(&HttpReply::new(200, "{}")).is_err());
}

#[test]
fn simulated_webhooks_verify_and_parse() {
    let account = account();
    let (to, from) = (business(), customer());
    let keys = SimulationKeys {
        now: Utc::now(),
        signing_key: None,
    };
    let id = new_message_id();
    for media in [
        vec![],
        vec![crate::carriers::media(
            "https://media.example.com/a.jpg",
            Some("image/jpeg"),
            None,
            None,
        )],
    ] {
        let request = account
            .simulate_inbound(
                URL,
                &SimulatedInbound {
                    message_id: &id,
                    from: &from,
                    to: &to,
                    body: "hello & welcome",
                    media: &media,
                },
                &keys,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let verdict = account.verify(&request, keys.now);
        assert!(verdict.valid, "{:#?}", verdict.details);
        // Both signature versions are on it, and each verifies alone.
        assert!(
            verify_with_secret(
                &account.auth_token,
                &post(
                    URL,
                    std::str::from_utf8(&request.body).unwrap_or_default(),
                    &[
                        (
                            "X-Plivo-Signature-V2",
                            request.header("x-plivo-signature-v2").unwrap_or_default()
                        ),
                        (
                            "X-Plivo-Signature-V2-Nonce",
                            request
                                .header("x-plivo-signature-v2-nonce")
                                .unwrap_or_default()
                        ),
                    ],
                ),
                keys.now
            )
            .valid
        );
        assert_eq!(hint(&request, Route::Inbound), Ok(Some(to.clone())));
        let events = parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}"));
        let m = inbound(&events);
        assert_eq!(
            (
                m.carrier_message_id.as_str(),
                &m.from,
                &m.to,
                m.body.as_str()
            ),
            (id.as_str(), &from, &to, "hello & welcome")
        );
        assert_eq!(
            m.media.iter().map(|x| x.url.as_str()).collect::<Vec<_>>(),
            media.iter().map(|x| x.url.as_str()).collect::<Vec<_>>()
        );
        assert_eq!(
            m.channel,
            if media.is_empty() {
                Channel::Sms
            } else {
                Channel::Mms
            }
        );
    }

    for (word, ours, code) in [
        ("delivered", "delivered", None),
        ("failed", "failed", Some("200")),
    ] {
        let request = account
            .simulate_status(
                STATUS_URL,
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
        assert_eq!(
            (s.carrier_message_id.as_str(), s.status),
            (id.as_str(), Some(ours))
        );
        assert_eq!(s.error_code.as_deref(), code);
    }
}

#[test]
fn message_ids_look_like_plivos() {
    let id = new_message_id();
    let groups: Vec<&str> = id.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12],
        "{id}"
    );
    assert!(id
        .bytes()
        .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert!(groups[2].starts_with('1'), "version 1: {id}");
    assert!(
        matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
        "RFC 4122 variant: {id}"
    );
    assert!(check_token(&id, 128));
    assert_ne!(new_message_id(), new_message_id());
    assert_eq!(nonce().len(), 20);
}

fn table(text: &str) -> toml::Table {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn configuration_is_checked() {
    let good = format!("auth_id = \"MANWVLYTK4ZWU1YTY4QA\"\nauth_token = \"{TOKEN}\"\n");
    let account =
        Account::from_config(&table(&good), Mode::Production).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(account.api_base().as_str(), "https://api.plivo.com/");
    assert_eq!(account.secrets(), [TOKEN]);
    assert!(!format!("{account:?}").contains(TOKEN));
    assert!(Account::from_config(&table(&good.replace("MANW", "SANW")), Mode::Production).is_ok());
    let refused = |text: &str, mode: Mode| {
        Account::from_config(&table(text), mode)
            .err()
            .unwrap_or_default()
    };
    assert!(refused(&good.replace("MANW", "XXNW"), Mode::Development).starts_with("`auth_id`"));
    assert!(refused(&good.replace("4QA\"", "4Q\""), Mode::Development).starts_with("`auth_id`"));
    let placeholder = good.replace(TOKEN, "replace-me");
    assert!(Account::from_config(&table(&placeholder), Mode::Development).is_ok());
    let err = refused(&placeholder, Mode::Production);
    assert!(
        err.starts_with("`auth_token`") && !err.contains("replace-me"),
        "{err}"
    );
    assert!(refused(&good.replace(TOKEN, ""), Mode::Development).starts_with("`auth_token`"));
    assert!(refused(&format!("{good}region = \"eu\"\n"), Mode::Development).contains("region"));
}

#[test]
fn profile_maps_every_status_word() {
    let profile = CARRIER.profile();
    for (word, ours) in [
        ("queued", "queued"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("undelivered", "undelivered"),
        ("failed", "failed"),
        ("rejected", "failed"),
        ("read", "read"),
    ] {
        assert_eq!(profile.map_status(word), Some(ours), "{word}");
    }
    assert_eq!(profile.map_status("received"), None);
    assert_eq!(profile.resend, crate::carriers::profile::Resend::Lookup);
    assert!(profile.accepts_method(Method::Get) && profile.accepts_method(Method::Post));
}
