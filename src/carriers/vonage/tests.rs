use super::*;
use crate::carriers::form;
use crate::carriers::{StatusUpdate, Suggestion};
use crate::pipeline::{Channel, Inbound, Media};

const SECRET: &str = "drawbridge-test-signature-secret";
const API_SECRET: &str = "0123456789abcdef";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/carriers/vonage/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn account(api: Api, method: SignatureMethod) -> Account {
    let base = url::Url::parse("http://127.0.0.1:9/fake").unwrap_or_else(|e| panic!("{e}"));
    Account {
        api_key: "abcd1234".to_owned(),
        api_secret: SecretString::from(API_SECRET.to_owned()),
        signature_secret: SecretString::from(SECRET.to_owned()),
        signature_method: method,
        api,
        api_base: base.clone(),
        sms_base: base,
    }
}

fn at(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or_default()
}

fn json_post(url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> WebhookRequest {
    let mut all = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    all.extend(
        headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    WebhookRequest::new(Method::Post, url, all, body)
}

const URL: &str = "https://sms.example.com/webhooks/vonage";
const STATUS_URL: &str = "https://sms.example.com/webhooks/vonage/status";

fn only(events: Vec<Event>) -> Event {
    let mut events = events.into_iter();
    let event = events.next().unwrap_or_else(|| panic!("no event"));
    assert!(events.next().is_none(), "more than one event");
    event
}

fn message(event: Event) -> Inbound {
    match event {
        Event::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

fn status(event: Event) -> StatusUpdate {
    match event {
        Event::Status(s) => s,
        other => panic!("not a status: {other:?}"),
    }
}

/// A status event followed by the opt-out it reports.
fn opted_out(events: Vec<Event>) -> (StatusUpdate, crate::carriers::ConsentReport) {
    let mut events = events.into_iter();
    match (events.next(), events.next(), events.next()) {
        (Some(Event::Status(update)), Some(Event::Consent(report)), None) => (update, report),
        other => panic!("not a status and an opt-out: {other:?}"),
    }
}

fn fixture_events(name: &str) -> Vec<Event> {
    parse(&json_post(URL, fixture(name), &[]), Route::Status).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_fixture(name: &str, route: Route) -> Event {
    let request = if name.ends_with(".query") {
        let query = String::from_utf8(fixture(name)).unwrap_or_default();
        WebhookRequest::new(
            Method::Get,
            format!("{URL}?{}", query.trim()),
            Vec::new(),
            Vec::new(),
        )
    } else {
        json_post(URL, fixture(name), &[])
    };
    only(parse(&request, route).unwrap_or_else(|e| panic!("{name}: {e}")))
}

fn number(text: &str) -> BusinessAddress {
    BusinessAddress::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn agent() -> BusinessAddress {
    BusinessAddress::rcs_agent("drawbridge-test-agent").unwrap_or_else(|e| panic!("{e}"))
}

// --- fixtures -------------------------------------------------------------------------------

#[test]
fn sms_api_inbound_fixtures() {
    let inbound = message(parse_fixture("sms-inbound.json", Route::Inbound));
    assert_eq!(inbound.carrier, "vonage");
    assert_eq!(inbound.carrier_message_id, "0A0000000123ABCD1");
    assert_eq!(inbound.from.as_str(), "+15551234567");
    assert_eq!(inbound.to, number("+15550001111"));
    assert_eq!(inbound.channel, Channel::Sms);
    assert_eq!(
        inbound.body.as_str(),
        "Hi there, can I move my appointment to Friday?"
    );
    assert!(inbound.media.is_empty());

    let get = message(parse_fixture("sms-inbound-get.query", Route::Inbound));
    assert_eq!(get.carrier_message_id, "0A0000000123ABCD2");
    assert_eq!(
        get.body.as_str(),
        "Is my card blocked? I saw a charge I don't know"
    );
    assert_eq!(get.from.as_str(), "+15551234567");

    // A concatenated part is stored as its own message under its own id.
    let part = message(parse_fixture(
        "sms-inbound-concat-part.json",
        Route::Inbound,
    ));
    assert_eq!(part.carrier_message_id, "0A0000000123ABCD3");
    assert!(part.body.starts_with("second part"));

    // A card number split between parts: the digits at each boundary are removed before
    // redaction, since neither part holds enough of them to be recognised.
    let split = |text: &str, part: &str| {
        let mut json: serde_json::Value =
            serde_json::from_slice(&fixture("sms-inbound-concat-part.json")).unwrap_or_default();
        json["text"] = text.into();
        json["concat-part"] = part.into();
        let request = json_post(URL, serde_json::to_vec(&json).unwrap_or_default(), &[]);
        message(only(
            parse(&request, Route::Inbound).unwrap_or_else(|e| panic!("{e}")),
        ))
        .body
        .to_string()
    };
    assert_eq!(
        split("my card is 4539 1488", "1"),
        "my card is [SPLIT NUMBER]"
    );
    assert_eq!(
        split("0343 6467 thanks. Also", "3"),
        "[SPLIT NUMBER] thanks. Also"
    );
    assert_eq!(split("0343 6467", "2"), "[SPLIT NUMBER]");
}

#[test]
fn sms_api_receipt_fixtures() {
    let delivered = status(parse_fixture("sms-dlr-delivered.json", Route::Status));
    assert_eq!(
        delivered,
        StatusUpdate {
            carrier_message_id: "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab".to_owned(),
            carrier_status: "delivered".to_owned(),
            status: Some("delivered"),
            error_code: None,
        }
    );
    let (update, consent) = opted_out(fixture_events("sms-dlr-failed-optout.json"));
    assert_eq!(update.status, Some("undelivered"));
    assert_eq!(update.error_code.as_deref(), Some("9"));
    assert_eq!(consent.kind, crate::carriers::ConsentKind::OptOut);
    assert_eq!(consent.contact.as_str(), "+15551234567");
    assert_eq!(consent.business, number("+15550001111"));
    assert_eq!(
        consent.event_id,
        "opt-out:aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
    );
    assert_eq!(
        CARRIER.profile().error_class("9"),
        Some(ErrorClass::OptedOut)
    );
    // Receipts parse on the inbound route too (one URL for everything).
    assert!(matches!(
        parse_fixture("sms-dlr-delivered.json", Route::Inbound),
        Event::Status(_)
    ));
}

#[test]
fn messages_api_inbound_fixtures() {
    let sms = message(parse_fixture("messages-inbound-sms.json", Route::Inbound));
    assert_eq!(
        sms.carrier_message_id,
        "52afe398-e31a-4362-8c42-beb0c3b1d098"
    );
    assert_eq!(sms.channel, Channel::Sms);
    assert_eq!(sms.to, number("+15550001111"));
    assert_eq!(sms.from.as_str(), "+15551234567");
    assert_eq!(
        sms.body.as_str(),
        "Hello, I need to update the address on my policy"
    );

    let mms = message(parse_fixture(
        "messages-inbound-mms-image.json",
        Route::Inbound,
    ));
    assert_eq!(mms.channel, Channel::Mms);
    assert_eq!(mms.body.as_str(), "Here is the receipt for the claim");
    assert_eq!(
        mms.media,
        vec![Media {
            url: "https://api-us.nexmo.com/v3/media/1b456509-974c-458b-aafa-45fc48a4d976"
                .to_owned(),
            content_type: None,
            size: None,
            name: Some("receipt.jpg".to_owned()),
        }]
    );

    let rcs = message(parse_fixture(
        "messages-inbound-rcs-text.json",
        Route::Inbound,
    ));
    assert_eq!(rcs.channel, Channel::Rcs);
    assert_eq!(rcs.to, agent());
    assert_eq!(
        rcs.body.as_str(),
        "What time does the branch open tomorrow?"
    );

    let reply = message(parse_fixture(
        "messages-inbound-rcs-reply.json",
        Route::Inbound,
    ));
    assert_eq!(reply.channel, Channel::Rcs);
    assert_eq!(reply.body.as_str(), "Yes, confirm");
    assert_eq!(
        reply.carrier_message_id,
        "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    );

    let image = message(parse_fixture(
        "messages-inbound-rcs-image.json",
        Route::Inbound,
    ));
    assert_eq!(image.channel, Channel::Rcs);
    assert_eq!(image.media.len(), 1);
    assert!(image.body.is_empty());
}

#[test]
fn messages_api_status_fixtures() {
    let delivered = status(parse_fixture(
        "messages-status-delivered.json",
        Route::Status,
    ));
    assert_eq!(delivered.status, Some("delivered"));
    assert_eq!(delivered.error_code, None);
    let (rejected, consent) = opted_out(fixture_events("messages-status-rejected-optout.json"));
    assert_eq!(consent.contact.as_str(), "+15551234567");
    assert_eq!(consent.business, number("+15550001111"));
    assert_eq!(rejected.carrier_status, "rejected");
    assert_eq!(rejected.status, Some("failed"));
    assert_eq!(rejected.error_code.as_deref(), Some("1240"));
    assert_eq!(
        CARRIER.profile().error_class("1240"),
        Some(ErrorClass::OptedOut)
    );
    let read = status(parse_fixture(
        "messages-status-rcs-read.json",
        Route::Status,
    ));
    assert_eq!(read.status, Some("read"));
}

#[test]
fn hints_name_our_sender() {
    let hint_of = |name: &str| {
        hint(&json_post(URL, fixture(name), &[]), Route::Inbound).unwrap_or_else(|e| panic!("{e}"))
    };
    let ours = Some(number("+15550001111"));
    assert_eq!(hint_of("sms-inbound.json"), ours);
    assert_eq!(hint_of("sms-dlr-delivered.json"), ours);
    assert_eq!(hint_of("messages-inbound-sms.json"), ours);
    assert_eq!(hint_of("messages-status-delivered.json"), ours);
    assert_eq!(hint_of("messages-inbound-rcs-reply.json"), Some(agent()));
    assert_eq!(hint_of("messages-status-rcs-read.json"), Some(agent()));
    // An alphanumeric sender on a receipt names no configured sender.
    let body = String::from_utf8(fixture("sms-dlr-failed-optout.json"))
        .unwrap_or_default()
        .replace("\"to\": \"15550001111\"", "\"to\": \"AcmeInc\"");
    let alphanumeric = json_post(URL, body.into_bytes(), &[]);
    assert_eq!(hint(&alphanumeric, Route::Status), Ok(None));
    // Its status still counts; no opt-out can be recorded without our sender.
    let update = status(only(
        parse(&alphanumeric, Route::Status).unwrap_or_default(),
    ));
    assert_eq!(update.error_code.as_deref(), Some("9"));
    // Channels we do not handle name none (every account is tried, then the message ignored).
    let whatsapp = br#"{"channel":"whatsapp","message_uuid":"x","to":"15550001111","from":"15551234567","message_type":"text","text":"hi"}"#;
    assert_eq!(
        hint(&json_post(URL, whatsapp.to_vec(), &[]), Route::Inbound),
        Ok(None)
    );
    assert!(matches!(
        only(parse(&json_post(URL, whatsapp.to_vec(), &[]), Route::Inbound).unwrap_or_default()),
        Event::Ignored("unsupported_channel")
    ));
}

// --- malformed payloads ---------------------------------------------------------------------

fn edited(
    name: &str,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> WebhookRequest {
    let mut value: serde_json::Value =
        serde_json::from_slice(&fixture(name)).unwrap_or_else(|e| panic!("{e}"));
    if let Some(object) = value.as_object_mut() {
        edit(object);
    }
    json_post(URL, serde_json::to_vec(&value).unwrap_or_default(), &[])
}

#[test]
fn malformed_payloads_name_the_field() {
    let err = |request: WebhookRequest| parse(&request, Route::Inbound).err();
    assert_eq!(
        err(edited("sms-inbound.json", |o| {
            o.remove("messageId");
        })),
        Some(PayloadError::Missing("messageId"))
    );
    assert_eq!(
        err(edited("sms-inbound.json", |o| {
            o.insert("msisdn".into(), "not-a-number".into());
        })),
        Some(PayloadError::BadPhone("msisdn"))
    );
    assert_eq!(
        err(edited("sms-inbound.json", |o| {
            o.insert("messageId".into(), "has spaces in it".into());
        })),
        Some(PayloadError::Invalid("messageId"))
    );
    assert_eq!(
        err(edited("sms-dlr-delivered.json", |o| {
            o.insert("status".into(), "deliv ered".into());
        })),
        Some(PayloadError::Invalid("status"))
    );
    assert_eq!(
        err(edited("sms-dlr-delivered.json", |o| {
            o.insert("err-code".into(), "nine or so".into());
        })),
        Some(PayloadError::Invalid("err-code"))
    );
    assert_eq!(
        err(edited("messages-inbound-sms.json", |o| {
            o.remove("from");
        })),
        Some(PayloadError::Missing("from"))
    );
    assert_eq!(
        err(edited("messages-inbound-mms-image.json", |o| {
            o.insert("image".into(), serde_json::json!({"name": "x.jpg"}));
        })),
        Some(PayloadError::Missing("image.url"))
    );
    assert_eq!(
        err(edited("messages-inbound-rcs-text.json", |o| {
            o.insert("to".into(), "not an agent".into());
        })),
        Some(PayloadError::BadPhone("to"))
    );
    assert_eq!(
        err(edited("messages-inbound-rcs-reply.json", |o| {
            o.insert("button".into(), serde_json::json!({}));
        })),
        Some(PayloadError::Missing("button.text"))
    );
    assert_eq!(
        err(edited("messages-status-delivered.json", |o| {
            o.remove("message_uuid");
            o.insert("channel".into(), "sms".into());
        })),
        // Without `message_uuid` the body reads as an SMS API receipt, which names its own id.
        Some(PayloadError::Missing("messageId"))
    );
    assert_eq!(
        err(edited("messages-status-rejected-optout.json", |o| {
            o.insert(
                "error".into(),
                serde_json::json!({"type": "https://x/errors#not a code"}),
            );
        })),
        Some(PayloadError::Invalid("error.type"))
    );
    // Wrong content type: 415; not JSON: 400.
    let text = WebhookRequest::new(
        Method::Post,
        URL,
        [("Content-Type".to_owned(), "text/plain".to_owned())],
        b"hello".to_vec(),
    );
    assert!(matches!(
        hint(&text, Route::Inbound),
        Err(PayloadError::ContentType(_))
    ));
    assert_eq!(
        hint(&json_post(URL, b"[1,2]".to_vec(), &[]), Route::Inbound),
        Err(PayloadError::Body("a JSON object"))
    );
    let bad_form =
        WebhookRequest::new(Method::Get, format!("{URL}?to=%zz"), Vec::new(), Vec::new());
    assert!(matches!(
        hint(&bad_form, Route::Inbound),
        Err(PayloadError::Form(_))
    ));
    // Binary SMS and message types we do not keep are acknowledged, not refused.
    assert!(matches!(
        only(
            parse(
                &edited("sms-inbound.json", |o| {
                    o.insert("type".into(), "binary".into());
                }),
                Route::Inbound
            )
            .unwrap_or_default()
        ),
        Event::Ignored("binary_sms")
    ));
    assert!(matches!(
        only(
            parse(
                &edited("messages-inbound-rcs-text.json", |o| {
                    o.insert("message_type".into(), "location".into());
                }),
                Route::Inbound
            )
            .unwrap_or_default()
        ),
        Event::Ignored("unsupported_message_type")
    ));
}

#[test]
fn mms_with_several_attachments_and_whatsapp_style_replies() {
    let request = edited("messages-inbound-mms-image.json", |o| {
        o.insert("message_type".into(), "content".into());
        o.remove("image");
        o.insert(
            "content".into(),
            serde_json::json!([
                {"type": "image", "url": "https://example.com/a.jpg", "caption": "front"},
                {"type": "file", "url": "https://example.com/b.pdf"}
            ]),
        );
    });
    let mms = message(only(parse(&request, Route::Inbound).unwrap_or_default()));
    assert_eq!(mms.media.len(), 2);
    assert_eq!(mms.body.as_str(), "front");
    let reply = edited("messages-inbound-rcs-reply.json", |o| {
        o.insert("message_type".into(), "reply".into());
        o.remove("button");
        o.insert(
            "reply".into(),
            serde_json::json!({"id": "confirm_appointment", "title": "Yes, confirm"}),
        );
    });
    let reply = message(only(parse(&reply, Route::Inbound).unwrap_or_default()));
    assert_eq!(reply.body.as_str(), "Yes, confirm");
}

// --- signatures -----------------------------------------------------------------------------

fn get_fixture() -> WebhookRequest {
    let query = String::from_utf8(fixture("sms-inbound-get.query")).unwrap_or_default();
    WebhookRequest::new(
        Method::Get,
        format!("{URL}?{}", query.trim()),
        Vec::new(),
        Vec::new(),
    )
}

#[test]
fn sms_get_signature_with_the_configured_method_only() {
    let now = at(1_577_880_300 + 60);
    let request = get_fixture();
    let verdict = account(Api::Sms, SignatureMethod::Sha256).verify(&request, now);
    assert!(verdict.valid, "{:?}", verdict.details);
    assert_eq!(verdict.scheme, SignatureMethod::Sha256.scheme());
    assert!(verdict
        .details
        .iter()
        .any(|d| d.starts_with("signed: &keyword=IS&message-timestamp=2020-01-01 12:05:00")));
    // An account configured for another method refuses it: no downgrade, no guessing.
    let other = account(Api::Sms, SignatureMethod::Md5Hash).verify(&request, now);
    assert!(!other.valid);
    assert!(other.details.iter().any(|d| d.contains("md5hash only")));
    // The CLI's check tries every method and says which matched.
    let cli = verify_with_secret(&SecretString::from(SECRET.to_owned()), &request, now);
    assert!(cli.valid);
    assert!(cli.details.iter().any(|d| d == "matched method: sha256"));
    assert!(!verify_with_secret(&SecretString::from("wrong".to_owned()), &request, now).valid);
}

#[test]
fn sms_signature_refusals() {
    let account = account(Api::Sms, SignatureMethod::Sha256);
    let now = at(1_577_880_300);
    // Tampered value.
    let tampered = WebhookRequest::new(
        Method::Get,
        get_fixture()
            .url
            .replace("msisdn=15551234567", "msisdn=15551234568"),
        Vec::new(),
        Vec::new(),
    );
    assert!(!account.verify(&tampered, now).valid);
    // Stale and future timestamps.
    let stale = account.verify(
        &get_fixture(),
        at(1_577_880_300 + signature::MAX_AGE_SECS + 1),
    );
    assert!(!stale.valid);
    assert!(
        stale.details.iter().any(|d| d.contains("too old")),
        "{:?}",
        stale.details
    );
    let future = account.verify(
        &get_fixture(),
        at(1_577_880_300 - signature::MAX_SKEW_SECS - 1),
    );
    assert!(!future.valid);
    // A parameter given twice.
    let twice = WebhookRequest::new(
        Method::Get,
        format!("{}&text=other", get_fixture().url),
        Vec::new(),
        Vec::new(),
    );
    let verdict = account.verify(&twice, now);
    assert!(!verdict.valid);
    assert!(verdict
        .details
        .iter()
        .any(|d| d.contains("`text` appears more than once")));
    // No sig at all.
    let unsigned = json_post(URL, fixture("sms-inbound.json"), &[]);
    let verdict = account.verify(&unsigned, now);
    assert!(!verdict.valid);
    assert!(verdict
        .details
        .iter()
        .any(|d| d.starts_with("no `sig` parameter")));
    // A Messages API body without its bearer token.
    let verdict = account.verify(
        &json_post(URL, fixture("messages-inbound-sms.json"), &[]),
        now,
    );
    assert!(!verdict.valid);
    assert_eq!(verdict.scheme, signature::JWT_SCHEME);
    // An Authorization header that is not a bearer token does not sign a Messages API body...
    let basic = json_post(
        URL,
        fixture("messages-inbound-sms.json"),
        &[("Authorization", "Basic Zm9vOmJhcg==")],
    );
    assert!(!account.verify(&basic, now).valid);
    // ...but on an SMS API webhook (credentials in the webhook URL) it is ignored: `sig` rules.
    let query = String::from_utf8(fixture("sms-inbound-get.query")).unwrap_or_default();
    let with_basic = WebhookRequest::new(
        Method::Get,
        format!("{URL}?{}", query.trim()),
        [("Authorization".to_owned(), "Basic Zm9vOmJhcg==".to_owned())],
        Vec::new(),
    );
    let verdict = account.verify(&with_basic, now);
    assert!(verdict.valid, "{:?}", verdict.details);
    assert!(verdict
        .details
        .iter()
        .any(|d| d.contains("not a bearer token: ignored")));
}

/// SMS API JSON and form bodies, signed over their parameters. Vectors computed with
/// `python3`: `s = ''.join('&%s=%s' % (k, v.replace('&','_').replace('=','_')) for k, v in
/// sorted(json.load(open(f)).items()))`, then `hashlib.md5(s.encode() + secret)` and
/// `hmac.new(secret, s.encode(), hashlib.sha1 / sha512 / md5)` with the secret
/// `drawbridge-test-signature-secret`.
#[test]
fn sms_json_and_form_bodies_with_every_method() {
    let with_sig = |name: &str, sig: &str| {
        let mut value: serde_json::Value =
            serde_json::from_slice(&fixture(name)).unwrap_or_default();
        if let Some(o) = value.as_object_mut() {
            o.insert("sig".into(), sig.into());
        }
        value
    };
    for (method, name, sig, now) in [
        (SignatureMethod::Md5Hash, "sms-inbound.json", "560e0e30f279e7783c38859e22339c0d", 1_577_880_000),
        (SignatureMethod::Sha1, "sms-inbound.json", "AC2506DD571AC7651844F1155FCB6925BE22C163", 1_577_880_000),
        (SignatureMethod::Md5, "sms-dlr-delivered.json", "1c0bc0c57f261da87224aa524b746fce", 1_577_887_200),
        (SignatureMethod::Sha512, "sms-dlr-delivered.json", "c1252198b44f576ad8c169c3644a73b841424817ed009d269e02e657c311a7895477b2333745a3b964699e45fc4bf51512e297ba83df18b3f62bb145b84e79f9", 1_577_887_200),
    ] {
        let value = with_sig(name, sig);
        let json = json_post(URL, serde_json::to_vec(&value).unwrap_or_default(), &[]);
        let verdict = account(Api::Sms, method).verify(&json, at(now));
        assert!(verdict.valid, "{method:?} {name}: {:?}", verdict.details);
        // The same parameters as a form body (POST) verify the same.
        let pairs: Vec<(String, String)> = value
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let form_request = WebhookRequest::new(
            Method::Post,
            STATUS_URL,
            [("Content-Type".to_owned(), "application/x-www-form-urlencoded".to_owned())],
            form::encode(&refs).into_bytes(),
        );
        assert!(account(Api::Sms, method).verify(&form_request, at(now)).valid);
        // Another method on the account: refused.
        let other = if method == SignatureMethod::Sha256 { SignatureMethod::Sha1 } else { SignatureMethod::Sha256 };
        assert!(!account(Api::Sms, other).verify(&json, at(now)).valid);
    }
}

/// A Messages API token built independently with Python `hmac`/`hashlib`/`base64` over the
/// exact bytes of `messages-inbound-sms.json` (header `{"alg":"HS256","typ":"JWT"}`, claims
/// `iat` 1738584865, `jti`, `iss` "Vonage", `payload_hash`, `api_key`, `application_id`).
const PYTHON_JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3Mzg1ODQ4NjUsImp0aSI6ImM1YmE4ZjI0LTFhMTQtNGMxMC1iZmRmLTNmYmU4Y2U1MTFiNSIsImlzcyI6IlZvbmFnZSIsInBheWxvYWRfaGFzaCI6IjllNmMwYzRlZmQ5NzA4YjJhNWExMmYyMjZhZTczYzQwN2U5YWNiNmM3MDFjMGU1YThkMWI0NDQ1NDM5ZmNiMmUiLCJhcGlfa2V5IjoiYWJjZDEyMzQiLCJhcHBsaWNhdGlvbl9pZCI6ImFhYWFhYWFhLWJiYmItY2NjYy1kZGRkLTAxMjM0NTY3ODlhYiJ9.qw5bW0TjZU8upaA1lFJaH5pACVmPMYcecGFnX7Chjfg";

#[test]
fn messages_jwt_from_an_independent_implementation() {
    let bearer = format!("Bearer {PYTHON_JWT}");
    let request = json_post(
        URL,
        fixture("messages-inbound-sms.json"),
        &[("Authorization", &bearer)],
    );
    let now = at(1_738_584_865 + 10);
    // The Messages API ignores the SMS method setting: any account verifies it.
    for method in SignatureMethod::ALL {
        let verdict = account(Api::Messages, method).verify(&request, now);
        assert!(verdict.valid, "{:?}", verdict.details);
        assert_eq!(verdict.scheme, signature::JWT_SCHEME);
    }
    assert!(verify_with_secret(&SecretString::from(SECRET.to_owned()), &request, now).valid);
    // The body changed by one byte: the payload hash no longer matches.
    let mut body = fixture("messages-inbound-sms.json");
    if let Some(b) = body.iter_mut().find(|b| **b == b'H') {
        *b = b'J';
    }
    let tampered = json_post(URL, body, &[("Authorization", &bearer)]);
    let verdict = account(Api::Messages, SignatureMethod::Sha256).verify(&tampered, now);
    assert!(!verdict.valid);
    assert!(verdict.details.iter().any(|d| d.contains("MISMATCH")));
    // Wrong secret, stale token, lower-case scheme word.
    assert!(!verify_with_secret(&SecretString::from("wrong".to_owned()), &request, now).valid);
    assert!(
        !account(Api::Messages, SignatureMethod::Sha256)
            .verify(&request, at(1_738_584_865 + signature::MAX_AGE_SECS + 1))
            .valid
    );
    let lower = json_post(
        URL,
        fixture("messages-inbound-sms.json"),
        &[("authorization", &format!("bearer {PYTHON_JWT}"))],
    );
    assert!(
        account(Api::Messages, SignatureMethod::Sha256)
            .verify(&lower, now)
            .valid
    );
}

// --- sending --------------------------------------------------------------------------------

struct Parts {
    from: BusinessAddress,
    to: E164,
}

fn parts(from: BusinessAddress) -> Parts {
    Parts {
        from,
        to: E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}")),
    }
}

fn outbound<'a>(
    p: &'a Parts,
    channel: Channel,
    body: &'a str,
    media: &'a [String],
    suggestions: &'a [Suggestion],
) -> OutboundMessage<'a> {
    OutboundMessage {
        outbox_id: "0190f5a2-7c3e-7d41-9a6b-3f2e1d0c9b8a",
        from: &p.from,
        to: &p.to,
        channel,
        body,
        media_urls: media,
        suggestions,
        status_callback: STATUS_URL,
    }
}

fn json_body(call: &HttpCall) -> serde_json::Value {
    serde_json::from_str(call.body_text()).unwrap_or_else(|e| panic!("{e}"))
}

const BASIC: &str = "Basic YWJjZDEyMzQ6MDEyMzQ1Njc4OWFiY2RlZg==";

fn secure_link() -> Vec<Suggestion> {
    vec![
        Suggestion::OpenUrl {
            text: "Open secure chat".to_owned(),
            url: "https://x.example/s/abc".to_owned(),
        },
        Suggestion::Reply {
            text: "Not now".to_owned(),
            postback: "not_now".to_owned(),
        },
    ]
}

#[test]
fn messages_api_sms_send() {
    let p = parts(number("+15550001111"));
    let suggestions = secure_link();
    let call = account(Api::Messages, SignatureMethod::Sha256)
        .build_send(
            &outbound(&p, Channel::Sms, "For your security:", &[], &suggestions),
            None,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(call.method, Method::Post);
    assert_eq!(call.url.as_str(), "http://127.0.0.1:9/fake/v1/messages");
    assert_eq!(call.header_value("authorization"), Some(BASIC));
    assert_eq!(
        json_body(&call),
        serde_json::json!({
            "to": "15551234567",
            "from": "15550001111",
            "client_ref": "0190f5a2-7c3e-7d41-9a6b-3f2e1d0c9b8a",
            "webhook_url": STATUS_URL,
            "channel": "sms",
            "message_type": "text",
            "text": "For your security:\nOpen secure chat: https://x.example/s/abc",
        })
    );
    assert_eq!(
        call.body.as_ref().map(|(t, _)| *t),
        Some("application/json")
    );
    // Media cannot travel on SMS.
    let media = ["https://m.example/a.jpg".to_owned()];
    assert!(matches!(
        account(Api::Messages, SignatureMethod::Sha256)
            .build_send(&outbound(&p, Channel::Sms, "x", &media, &[]), None),
        Err(SendError {
            class: ErrorClass::Permanent,
            ..
        })
    ));
}

#[test]
fn messages_api_mms_send() {
    let p = parts(number("+15550001111"));
    let one = ["https://m.example/a.jpg".to_owned()];
    let call = account(Api::Messages, SignatureMethod::Sha256)
        .build_send(
            &outbound(&p, Channel::Mms, "Your statement", &one, &[]),
            None,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    let body = json_body(&call);
    assert_eq!(body["channel"], "mms");
    assert_eq!(body["message_type"], "image");
    assert_eq!(
        body["image"],
        serde_json::json!({"url": "https://m.example/a.jpg", "caption": "Your statement"})
    );
    let two = [
        "https://m.example/a.jpg".to_owned(),
        "https://m.example/b.jpg".to_owned(),
    ];
    let call = account(Api::Messages, SignatureMethod::Sha256)
        .build_send(&outbound(&p, Channel::Mms, "Two pages", &two, &[]), None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let body = json_body(&call);
    assert_eq!(body["message_type"], "content");
    assert_eq!(
        body["content"],
        serde_json::json!([
            {"type": "image", "url": "https://m.example/a.jpg", "caption": "Two pages"},
            {"type": "image", "url": "https://m.example/b.jpg"}
        ])
    );
}

#[test]
fn messages_api_rcs_send_with_native_suggestions() {
    let p = parts(agent());
    let suggestions = secure_link();
    let call = account(Api::Messages, SignatureMethod::Sha256)
        .build_send(
            &outbound(&p, Channel::Rcs, "For your security:", &[], &suggestions),
            None,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        json_body(&call),
        serde_json::json!({
            "to": "15551234567",
            "from": "drawbridge-test-agent",
            "client_ref": "0190f5a2-7c3e-7d41-9a6b-3f2e1d0c9b8a",
            "webhook_url": STATUS_URL,
            "channel": "rcs",
            "message_type": "text",
            "text": "For your security:",
            "suggestions": [
                {"type": "open_url", "text": "Open secure chat", "postback_data": "open_url",
                 "url": "https://x.example/s/abc", "description": "Open secure chat"},
                {"type": "reply", "text": "Not now", "postback_data": "not_now"}
            ]
        })
    );
    // One image: a rich card through `custom`, suggestions in RBM's shape.
    let media = ["https://m.example/card.jpg".to_owned()];
    let call = account(Api::Messages, SignatureMethod::Sha256)
        .build_send(
            &outbound(&p, Channel::Rcs, "Your card", &media, &suggestions),
            None,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    let body = json_body(&call);
    assert_eq!(body["message_type"], "custom");
    let content = &body["custom"]["contentMessage"];
    assert_eq!(
        content["richCard"]["standaloneCard"]["cardContent"],
        serde_json::json!({
            "description": "Your card",
            "media": {"height": "MEDIUM", "contentInfo": {"fileUrl": "https://m.example/card.jpg"}}
        })
    );
    assert_eq!(
        content["suggestions"],
        serde_json::json!([
            {"action": {"text": "Open secure chat", "postbackData": "open_url",
                        "openUrlAction": {"url": "https://x.example/s/abc"}}},
            {"reply": {"text": "Not now", "postbackData": "not_now"}}
        ])
    );
    // What RCS cannot take.
    let two = [
        "https://m.example/a.jpg".to_owned(),
        "https://m.example/b.jpg".to_owned(),
    ];
    assert!(account(Api::Messages, SignatureMethod::Sha256)
        .build_send(&outbound(&p, Channel::Rcs, "x", &two, &[]), None)
        .is_err());
    let many: Vec<Suggestion> = (0..12)
        .map(|i| Suggestion::Reply {
            text: format!("{i}"),
            postback: format!("{i}"),
        })
        .collect();
    assert!(account(Api::Messages, SignatureMethod::Sha256)
        .build_send(&outbound(&p, Channel::Rcs, "x", &[], &many), None)
        .is_err());
}

#[test]
fn sms_api_send() {
    let p = parts(number("+15550001111"));
    let suggestions = secure_link();
    let account = account(Api::Sms, SignatureMethod::Sha256);
    let call = account
        .build_send(
            &outbound(&p, Channel::Sms, "Grüße – see you", &[], &suggestions),
            None,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(call.method, Method::Post);
    assert_eq!(call.url.as_str(), "http://127.0.0.1:9/fake/sms/json");
    assert_eq!(call.header_value("authorization"), None);
    let fields = form::parse(call.body_text().as_bytes()).unwrap_or_default();
    let field = |name: &str| form::first(&fields, name);
    assert_eq!(field("api_key"), Some("abcd1234"));
    assert_eq!(field("api_secret"), Some(API_SECRET));
    assert_eq!(field("from"), Some("15550001111"));
    assert_eq!(field("to"), Some("15551234567"));
    assert_eq!(
        field("text"),
        Some("Grüße – see you\nOpen secure chat: https://x.example/s/abc")
    );
    assert_eq!(field("type"), Some("unicode"));
    assert_eq!(field("status-report-req"), Some("1"));
    assert_eq!(field("callback"), Some(STATUS_URL));
    assert_eq!(
        field("client-ref"),
        Some("0190f5a2-7c3e-7d41-9a6b-3f2e1d0c9b8a")
    );
    assert_eq!(fields.len(), 9);
    let plain = account
        .build_send(&outbound(&p, Channel::Sms, "See you at 5", &[], &[]), None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let fields = form::parse(plain.body_text().as_bytes()).unwrap_or_default();
    assert_eq!(form::first(&fields, "type"), Some("text"));
    // The SMS API has no MMS or RCS, and no RCS agent sender.
    let media = ["https://m.example/a.jpg".to_owned()];
    assert!(account
        .build_send(&outbound(&p, Channel::Mms, "x", &media, &[]), None)
        .is_err());
    let rcs = parts(agent());
    assert!(account
        .build_send(&outbound(&rcs, Channel::Sms, "x", &[], &[]), None)
        .is_err());
    assert_eq!(account.api_base().as_str(), "http://127.0.0.1:9/fake");
}

// --- replies --------------------------------------------------------------------------------

fn class(reply: &HttpReply) -> Option<(ErrorClass, Option<String>)> {
    match parse_send_reply(reply) {
        SendResult::Rejected(e) => Some((e.class, e.code)),
        _ => None,
    }
}

#[test]
fn messages_api_replies() {
    assert_eq!(
        parse_send_reply(&HttpReply::new(202, fixture("messages-send-accepted.json"))),
        SendResult::Accepted {
            carrier_message_id: "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab".to_owned(),
            status: None
        }
    );
    assert_eq!(
        class(&HttpReply::new(
            422,
            fixture("messages-send-invalid-params.json")
        )),
        Some((ErrorClass::Permanent, Some("1150".to_owned())))
    );
    let problem = |code: &str, title: &str| {
        format!(
            r#"{{"type":"https://developer.vonage.com/api-errors/messages#{code}","title":"{title}","detail":"d","instance":"i"}}"#
        )
    };
    assert_eq!(
        class(&HttpReply::new(422, problem("1240", "Illegal Number"))),
        Some((ErrorClass::OptedOut, Some("1240".to_owned())))
    );
    assert_eq!(
        class(&HttpReply::new(429, problem("1000", "Throttled"))),
        Some((ErrorClass::Throttled, Some("1000".to_owned())))
    );
    assert_eq!(
        class(&HttpReply::new(422, problem("1040", "Invalid message"))),
        Some((ErrorClass::InvalidNumber, Some("1040".to_owned())))
    );
    assert_eq!(
        class(&HttpReply::new(
            401,
            r#"{"type":"https://developer.nexmo.com/api-errors#unauthorized","title":"Unauthorized"}"#
        )),
        Some((ErrorClass::Permanent, Some("unauthorized".to_owned())))
    );
    assert_eq!(
        class(&HttpReply::new(500, "oops")),
        Some((ErrorClass::Transient, None))
    );
    assert_eq!(
        class(&HttpReply::new(429, "")),
        Some((ErrorClass::Throttled, None))
    );
    assert_eq!(
        parse_send_reply(&HttpReply::new(504, "")),
        SendResult::Uncertain("gateway_timeout")
    );
    assert_eq!(
        parse_send_reply(&HttpReply::new(202, "{}")),
        SendResult::Uncertain("accepted_without_id")
    );
}

#[test]
fn sms_api_replies() {
    assert_eq!(
        parse_send_reply(&HttpReply::new(200, fixture("sms-send-accepted.json"))),
        SendResult::Accepted {
            carrier_message_id: "0A0000000123ABCD1".to_owned(),
            status: None
        }
    );
    assert_eq!(
        class(&HttpReply::new(200, fixture("sms-send-throttled.json"))),
        Some((ErrorClass::Throttled, Some("submit:1".to_owned())))
    );
    let refused = |code: &str| {
        format!(r#"{{"message-count":"1","messages":[{{"status":"{code}","error-text":"x"}}]}}"#)
    };
    assert_eq!(
        class(&HttpReply::new(200, refused("7"))),
        Some((ErrorClass::OptedOut, Some("submit:7".to_owned())))
    );
    assert_eq!(
        class(&HttpReply::new(200, refused("6"))),
        Some((ErrorClass::InvalidNumber, Some("submit:6".to_owned())))
    );
    assert_eq!(
        class(&HttpReply::new(200, refused("4"))),
        Some((ErrorClass::Permanent, Some("submit:4".to_owned())))
    );
    assert_eq!(
        class(&HttpReply::new(200, refused("5"))),
        Some((ErrorClass::Transient, Some("submit:5".to_owned())))
    );
    let mut throttled = HttpReply::new(429, refused("1"));
    throttled.retry_after = Some(std::time::Duration::from_secs(2));
    match parse_send_reply(&throttled) {
        SendResult::Rejected(e) => {
            assert_eq!(e.class, ErrorClass::Throttled);
            assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(2)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_send_reply(&HttpReply::new(
            200,
            r#"{"message-count":"0","messages":[]}"#
        )),
        SendResult::Uncertain("accepted_without_id")
    );
    assert_eq!(
        parse_send_reply(&HttpReply::new(200, r#"{"messages":[{"status":"0"}]}"#)),
        SendResult::Uncertain("accepted_without_id")
    );
}

// --- lookup ---------------------------------------------------------------------------------

#[test]
fn lookup_reads_the_reports_api() {
    let p = parts(number("+15550001111"));
    let since = DateTime::parse_from_rfc3339("2025-02-03T12:10:00Z")
        .unwrap_or_else(|e| panic!("{e}"))
        .with_timezone(&Utc);
    let query = LookupQuery {
        outbox_id: "0190f5a2-7c3e-7d41-9a6b-3f2e1d0c9b8a",
        from: &p.from,
        to: &p.to,
        since,
    };
    let call = account(Api::Messages, SignatureMethod::Sha256)
        .build_lookup(&query, None)
        .unwrap_or_else(|| panic!("no lookup"));
    assert_eq!(call.method, Method::Get);
    assert_eq!(call.url.path(), "/fake/v2/reports/records");
    assert_eq!(
        call.url.query(),
        Some("account_id=abcd1234&product=MESSAGES&direction=outbound&date_start=2025-02-03T12%3A10%3A00Z&date_end=2025-02-04T12%3A10%3A00Z&include_message=false")
    );
    assert_eq!(call.header_value("authorization"), Some(BASIC));
    let sms = account(Api::Sms, SignatureMethod::Sha256)
        .build_lookup(&query, None)
        .unwrap_or_else(|| panic!("no lookup"));
    assert!(sms.url.query().unwrap_or_default().contains("product=SMS"));

    let found = parse_lookup_reply(&HttpReply::new(200, fixture("reports-records.json")))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        found.len(),
        1,
        "the record without a client reference is not ours"
    );
    let first = found.first().unwrap_or_else(|| panic!("none"));
    assert_eq!(
        first.carrier_message_id,
        "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"
    );
    assert_eq!(
        first.client_reference.as_deref(),
        Some("0190f5a2-7c3e-7d41-9a6b-3f2e1d0c9b8a")
    );
    assert!(first.body.is_none());
    assert_eq!(
        parse_lookup_reply(&HttpReply::new(
            200,
            r#"{"request_status":"SUCCESS","items_count":0}"#
        ))
        .map(|c| c.len()),
        Ok(0)
    );
    assert!(parse_lookup_reply(&HttpReply::new(200, "[]")).is_err());
    let refused = parse_lookup_reply(&HttpReply::new(
        401,
        r#"{"type":"https://developer.nexmo.com/api-errors#unauthorized","title":"Unauthorized"}"#,
    ));
    assert!(matches!(
        refused,
        Err(SendError {
            class: ErrorClass::Permanent,
            ..
        })
    ));
}

// --- simulation round trips -----------------------------------------------------------------

fn keys() -> SimulationKeys {
    SimulationKeys {
        now: Utc::now(),
        signing_key: None,
    }
}

#[test]
fn simulated_messages_api_webhooks_verify_and_parse() {
    let account = account(Api::Messages, SignatureMethod::Sha256);
    let keys = keys();
    let from = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
    let picture = [crate::carriers::media(
        "https://m.example/p.jpg",
        Some("image/jpeg"),
        None,
        None,
    )];
    for (to, media, channel) in [
        (number("+15550001111"), &[][..], Channel::Sms),
        (number("+15550001111"), &picture[..], Channel::Mms),
        (agent(), &[][..], Channel::Rcs),
        (agent(), &picture[..], Channel::Rcs),
    ] {
        let id = new_message_id();
        let request = account
            .simulate_inbound(
                URL,
                &SimulatedInbound {
                    message_id: &id,
                    from: &from,
                    to: &to,
                    body: "hello there",
                    media,
                },
                &keys,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let verdict = account.verify(&request, keys.now);
        assert!(verdict.valid, "{:?}", verdict.details);
        assert_eq!(hint(&request, Route::Inbound), Ok(Some(to.clone())));
        let inbound = message(only(parse(&request, Route::Inbound).unwrap_or_default()));
        assert_eq!(inbound.carrier_message_id, id);
        assert_eq!(inbound.channel, channel);
        assert_eq!(inbound.to, to);
        assert_eq!(inbound.from, from);
        assert_eq!(inbound.body.as_str(), "hello there");
        assert_eq!(inbound.media.len(), media.len());
        // Any byte of the body changed: refused.
        let mut body = request.body.to_vec();
        if let Some(b) = body.iter_mut().find(|b| **b == b'h') {
            *b = b'H';
        }
        let forged = WebhookRequest::new(
            Method::Post,
            URL,
            request.headers().map(|(n, v)| (n.to_owned(), v.to_owned())),
            body,
        );
        assert!(!account.verify(&forged, keys.now).valid);
    }
    let two = [picture[0].clone(), picture[0].clone()];
    let request = account
        .simulate_inbound(
            URL,
            &SimulatedInbound {
                message_id: "m",
                from: &from,
                to: &number("+15550001111"),
                body: "pages",
                media: &two,
            },
            &keys,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        message(only(parse(&request, Route::Inbound).unwrap_or_default()))
            .media
            .len(),
        2
    );

    for (sender, word, code, ours) in [
        (number("+15550001111"), "delivered", None, Some("delivered")),
        (
            number("+15550001111"),
            "rejected",
            Some("1240"),
            Some("failed"),
        ),
        (agent(), "read", None, Some("read")),
    ] {
        let request = account
            .simulate_status(
                STATUS_URL,
                &SimulatedStatus {
                    carrier_message_id: "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
                    status: word,
                    error_code: code,
                    from: &sender,
                    to: &from,
                },
                &keys,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(account.verify(&request, keys.now).valid);
        assert_eq!(hint(&request, Route::Status), Ok(Some(sender.clone())));
        let mut events = parse(&request, Route::Status).unwrap_or_default();
        // A rejection for an opt-out also reports the opt-out.
        assert_eq!(events.len(), if code.is_some() { 2 } else { 1 });
        events.truncate(1);
        let update = status(only(events));
        assert_eq!(update.carrier_status, word);
        assert_eq!(update.status, ours);
        assert_eq!(update.error_code.as_deref(), code);
    }
}

#[test]
fn simulated_sms_api_webhooks_verify_and_parse() {
    let keys = keys();
    let from = E164::parse("+15551234567").unwrap_or_else(|e| panic!("{e}"));
    let to = number("+15550001111");
    for method in SignatureMethod::ALL {
        let account = account(Api::Sms, method);
        let request = account
            .simulate_inbound(
                URL,
                &SimulatedInbound {
                    message_id: "0A0000000123ABCD9",
                    from: &from,
                    to: &to,
                    body: "stop & go = fine",
                    media: &[],
                },
                &keys,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let verdict = account.verify(&request, keys.now);
        assert!(verdict.valid, "{method:?}: {:?}", verdict.details);
        assert_eq!(hint(&request, Route::Inbound), Ok(Some(to.clone())));
        let inbound = message(only(parse(&request, Route::Inbound).unwrap_or_default()));
        assert_eq!(inbound.body.as_str(), "stop & go = fine");
        assert_eq!(inbound.carrier_message_id, "0A0000000123ABCD9");

        let receipt = account
            .simulate_status(
                STATUS_URL,
                &SimulatedStatus {
                    carrier_message_id: "0A0000000123ABCD9",
                    status: "failed",
                    error_code: Some("9"),
                    from: &to,
                    to: &from,
                },
                &keys,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(account.verify(&receipt, keys.now).valid);
        let (update, consent) = opted_out(parse(&receipt, Route::Status).unwrap_or_default());
        assert_eq!(consent.contact, from);
        assert_eq!(update.error_code.as_deref(), Some("9"));
        assert_eq!(update.status, Some("undelivered"));
    }
    // The SMS API carries no media.
    let picture = [crate::carriers::media(
        "https://m.example/p.jpg",
        None,
        None,
        None,
    )];
    assert!(account(Api::Sms, SignatureMethod::Sha256)
        .simulate_inbound(
            URL,
            &SimulatedInbound {
                message_id: "x",
                from: &from,
                to: &to,
                body: "",
                media: &picture
            },
            &keys,
        )
        .is_err());
}

// --- profile, configuration, ids ------------------------------------------------------------

#[test]
fn profile_maps_every_status_word() {
    let profile = CARRIER.profile();
    for (word, ours) in [
        ("submitted", Some("sent")),
        ("delivered", Some("delivered")),
        ("read", Some("read")),
        ("rejected", Some("failed")),
        ("undeliverable", Some("failed")),
        ("accepted", Some("sent")),
        ("buffered", Some("sent")),
        ("expired", Some("undelivered")),
        ("failed", Some("undelivered")),
        ("unknown", None),
        ("DELIVERED", Some("delivered")),
    ] {
        assert_eq!(profile.map_status(word), ours, "{word}");
    }
    assert_eq!(profile.error_class("submit:1"), Some(ErrorClass::Throttled));
    assert_eq!(profile.error_class("1000"), Some(ErrorClass::Throttled));
    assert_eq!(profile.error_class("2"), Some(ErrorClass::Transient));
    assert!(profile.accepts_method(Method::Get));
    assert_eq!(profile.resend, crate::carriers::profile::Resend::Lookup);
}

fn table(text: &str) -> toml::Table {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn configuration() {
    let dev = table(
        r#"api_key = "abcd1234"
api_secret = "s3cret"
signature_secret = "dev-signature-secret-1"
signature_method = "sha256"
"#,
    );
    let account = Account::from_config(&dev, Mode::Development).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(account.api, Api::Messages);
    assert_eq!(account.api_base.as_str(), "https://api.nexmo.com/");
    assert_eq!(account.sms_base.as_str(), "https://rest.nexmo.com/");
    assert_eq!(
        account.secrets(),
        vec!["s3cret".to_owned(), "dev-signature-secret-1".to_owned()]
    );
    let debug = format!("{account:?}");
    assert!(
        !debug.contains("s3cret") && !debug.contains("dev-signature"),
        "{debug}"
    );

    let mut sms = dev.clone();
    sms.insert("api".into(), "sms".into());
    sms.insert("api_base".into(), "http://127.0.0.1:4010/".into());
    let account = Account::from_config(&sms, Mode::Development).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(account.api_base().as_str(), "http://127.0.0.1:4010/");
    assert_eq!(account.api_base.as_str(), "http://127.0.0.1:4010/");

    let err = |t: &toml::Table, mode| Account::from_config(t, mode).err().unwrap_or_default();
    // Production refuses placeholders and names the key, never the value.
    let e = err(&dev, Mode::Production);
    assert!(e.contains("`api_key`"), "{e}");
    let mut real = table(
        r#"api_key = "7f3e9a21"
api_secret = "Qw3rTy9UiOp4AsDf"
signature_secret = "kJ8s7Hd6Gf5Ds4Aa3Ss2Dd1Ff0Gg9Hh8"
signature_method = "sha512"
"#,
    );
    assert!(Account::from_config(&real, Mode::Production).is_ok());
    real.insert("api_secret".into(), "replace-me-please".into());
    let e = err(&real, Mode::Production);
    assert!(
        e.contains("`api_secret`") && !e.contains("replace-me"),
        "{e}"
    );
    real.insert("api_secret".into(), "Qw3rTy9UiOp4AsDf".into());
    real.insert("signature_secret".into(), "tiny1".into());
    let e = err(&real, Mode::Production);
    assert!(
        e.contains("`signature_secret`") && !e.contains("tiny1"),
        "{e}"
    );
    // Configuration mistakes.
    let mut bad = dev.clone();
    bad.insert("signature_method".into(), "sha384".into());
    assert!(err(&bad, Mode::Development).contains("sha384"));
    let mut bad = dev.clone();
    bad.remove("signature_method");
    let e = err(&bad, Mode::Development);
    assert!(e.contains("signature_method"), "{e}");
    let mut bad = dev.clone();
    bad.insert("colour".into(), "blue".into());
    assert!(err(&bad, Mode::Development).contains("colour"));
    let mut bad = dev.clone();
    bad.insert("api_key".into(), "has spaces".into());
    assert!(err(&bad, Mode::Development).contains("`api_key`"));
    let mut bad = dev;
    bad.insert("api_secret".into(), toml::Value::Integer(12_345_678_901));
    let e = err(&bad, Mode::Development);
    assert!(!e.contains("12345678901"), "{e}");
}

#[test]
fn message_ids_look_like_vonages() {
    let id = new_message_id();
    assert_eq!(id.len(), 36);
    assert!(uuid::Uuid::parse_str(&id).is_ok_and(|u| u.get_version_num() == 4));
    assert_ne!(id, new_message_id());
    assert!(crate::carriers::check_token(&id, 128));
}
