//! Carrier conformance: one table per carrier, run by one harness on both backends (STYLE C12,
//! after courier's `handlertest`). Every carrier must pass every case:
//!
//! | case | expected |
//! |---|---|
//! | signed inbound SMS with a card number | 200; stored once, sealed, redacted; no number or card at rest |
//! | the same delivery again (a retry) | 200; nothing new stored |
//! | inbound with media (MMS / RCS file) | 200; a `message_media` row per file, its URL sealed |
//! | authenticity headers altered | 403; nothing stored |
//! | authenticity headers removed | 403 (503 where the carrier retries signed); nothing stored |
//! | body altered under a valid signature | 403 (carriers that sign the body) |
//! | malformed body | 400 |
//! | wrong content type | 415 |
//! | a queued reply | reaches the fake at the carrier's endpoint with its authentication, recipient, sender and text |
//! | status callback: delivered | 200; the reply is `delivered` |
//! | status callback: a failure with a code | 200; the reply is failed/undelivered with the code; an opt-out code opts the contact out |
//! | the carrier answers 500, then accepts | sent once, on the second attempt |
//! | the carrier answers 429 with `Retry-After: 1` | retried no sooner, sent once |
//! | the carrier takes a reply but answers too late | resolved (idempotent resend or lookup) without a second message |
//! | logs | carry no body, number, card or credential |
//!
//! The webhooks come from each carrier module's `simulate_inbound`/`simulate_status` (shaped as
//! its fixtures, which the modules' unit tests check against the carriers' documentation), so a
//! table holds only what differs between carriers.

mod bandwidth;
mod plivo;
mod rbm;
mod sinch;
mod telnyx;
mod twilio;
mod vonage;

use crate::helpers::*;
use drawbridge::carriers::{
    CarrierAccount, SimulatedInbound, SimulatedStatus, SimulationKeys, WebhookRequest,
};
use drawbridge::phone::{BusinessAddress, E164};
use drawbridge::simulate::fake;
use drawbridge::vault::{self, Aad};
use secrecy::SecretString;
use sqlx::Row;

/// Changes a body so that its signature no longer covers it.
pub type Tamper = fn(&[u8]) -> Vec<u8>;

/// What differs between carriers.
pub struct Table {
    pub carrier: drawbridge::carriers::Carrier,
    /// `[[accounts]]` (one account) and `[[numbers]]`; `{api_base}` becomes the fake's URL.
    pub accounts_toml: String,
    /// Our sender (`+15550001111` or `rcs:agent`).
    pub business: &'static str,
    /// The carrier's private signing key, where only the carrier can sign (Telnyx).
    pub signing_key: Option<&'static str>,
    /// The headers that carry a webhook's authenticity.
    pub auth_headers: &'static [&'static str],
    /// Or the body field that does (a JSON member or form parameter, as Vonage's SMS API `sig`).
    pub auth_field: Option<&'static str>,
    /// The answer to a request without them: 403, or 503 where the carrier sends an unsigned
    /// request only after an internal error and signs its retry (Vonage's Messages API).
    pub unsigned_status: u16,
    /// Changes a simulated inbound body so that its signature no longer covers it (`None` for
    /// carriers whose authenticity does not cover the body, such as HTTP Basic).
    pub tamper: Option<Tamper>,
    pub media: bool,
    /// A body the carrier's parser refuses, and its content type.
    pub malformed: (&'static str, &'static str),
    /// The carrier's word for delivered.
    pub delivered: &'static str,
    /// A failure: the carrier's word, its error code, and our status for it.
    pub failure: (&'static str, Option<&'static str>, &'static str),
    /// The fake must see sends under this path, with this `Authorization` (or, `None`, a Bearer).
    pub send_path: String,
    pub send_auth: Option<String>,
}

/// Replaces `from` with `to` once in a body (a tamper for bodies that carry the text in clear).
pub fn replace_once(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    assert!(text.contains(from), "the body does not carry {from:?}");
    text.replacen(from, to, 1).into_bytes()
}

fn with_body(request: &WebhookRequest, body: Vec<u8>) -> WebhookRequest {
    WebhookRequest::new(
        request.method,
        request.url.clone(),
        request.headers().map(|(n, v)| (n.to_owned(), v.to_owned())),
        body,
    )
}

fn with_headers(request: &WebhookRequest, headers: Vec<(String, String)>) -> WebhookRequest {
    WebhookRequest::new(
        request.method,
        request.url.clone(),
        headers,
        request.body.to_vec(),
    )
}

/// A body with `field` altered ([`alter`]) or, with `remove`, taken out: a JSON object's member or
/// a form's parameter.
fn with_field(request: &WebhookRequest, field: &str, remove: bool) -> WebhookRequest {
    let body = if request.content_type() == "application/json" {
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&request.body).unwrap();
        let value = object
            .remove(field)
            .unwrap_or_else(|| panic!("no {field} member"));
        if !remove {
            object.insert(field.to_owned(), alter(value.as_str().unwrap()).into());
        }
        serde_json::to_vec(&object).unwrap()
    } else {
        let pairs = drawbridge::carriers::form::parse(&request.body).unwrap();
        assert!(
            pairs.iter().any(|(n, _)| n == field),
            "no {field} parameter"
        );
        let kept: Vec<(String, String)> = pairs
            .into_iter()
            .filter_map(|(n, v)| match (n == field, remove) {
                (true, true) => None,
                (true, false) => Some((n, alter(&v))),
                (false, _) => Some((n, v)),
            })
            .collect();
        let refs: Vec<(&str, &str)> = kept.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        drawbridge::carriers::form::encode(&refs).into_bytes()
    };
    with_body(request, body)
}

/// Changes one character in the middle of a header value, keeping its alphabet.
fn alter(value: &str) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    let i = chars.len() / 2;
    chars[i] = match chars[i] {
        'A' => 'B',
        'a' => 'b',
        '0' => '1',
        _ => 'A',
    };
    chars.into_iter().collect()
}

async fn post(request: &WebhookRequest) -> (u16, String) {
    let outcome = drawbridge::simulate::deliver(request).await.unwrap();
    (outcome.status.as_u16(), outcome.body)
}

/// Inbound messages stored (an escalating one also queues a secure link, an outbound message).
async fn messages(app: &TestApp) -> i64 {
    app.inbound_messages().await
}

/// Runs every case of a table.
pub async fn run(table: Table, backend: Backend) {
    let fake = fake::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let app = TestApp::spawn_with(
        backend,
        Options {
            api_base: Some(fake.url()),
            accounts_toml: Some(table.accounts_toml.clone()),
            ..Options::default()
        },
    )
    .await;
    let name = table.carrier.name();
    let account: CarrierAccount = app.state.accounts[0].carrier.clone();
    assert_eq!(account.carrier(), table.carrier);
    let inbound_url = format!("{}/webhooks/{name}", app.public_url);
    let status_url = format!("{}/webhooks/{name}/status", app.public_url);
    let keys = SimulationKeys {
        now: chrono::Utc::now(),
        signing_key: table.signing_key.map(|k| SecretString::from(k.to_owned())),
    };
    let customer = E164::parse(CUSTOMER).unwrap();
    let business = BusinessAddress::from_key(table.business).unwrap();
    let simulate = |message_id: &str, body: &str, media: &[drawbridge::pipeline::Media]| {
        account
            .simulate_inbound(
                &inbound_url,
                &SimulatedInbound {
                    message_id,
                    from: &customer,
                    to: &business,
                    body,
                    media,
                },
                &keys,
            )
            .unwrap_or_else(|e| panic!("{name}: simulate_inbound: {e}"))
    };

    // Signed inbound SMS with a card number: stored once, sealed, redacted.
    let first_id = table.carrier.new_message_id();
    let request = simulate(&first_id, "my card is 4539148803436467 thanks", &[]);
    assert_eq!(post(&request).await.0, 200, "{name}: valid inbound");
    assert_eq!(messages(&app).await, 1, "{name}");
    let row = sqlx::query(
        "SELECT m.message_id, m.body_sealed, c.contact_id, c.data_key_wrapped, m.carrier, m.carrier_message_id, m.findings \
         FROM message m JOIN conversation v ON v.conversation_id = m.conversation_id JOIN contact c ON c.contact_id = v.contact_id",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    let (message_id, sealed, contact_id, wrapped): (String, Vec<u8>, String, Vec<u8>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(row.get::<String, _>(4), name);
    assert_eq!(
        row.get::<String, _>(5),
        first_id,
        "{name}: the carrier's id"
    );
    assert_eq!(row.get::<String, _>(6), r#"{"CARD_NUMBER":1}"#);
    let dek = app
        .state
        .vault
        .unwrap_data_key(&wrapped, &contact_id)
        .unwrap();
    let body = vault::open(
        &dek,
        &sealed,
        Aad::new("message", "body_sealed", &message_id),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(body.to_vec()).unwrap(),
        "my card is [CARD •••• 6467] thanks",
        "{name}"
    );

    // A retry: acknowledged, nothing new.
    assert_eq!(post(&request).await.0, 200, "{name}: retry");
    assert_eq!(messages(&app).await, 1, "{name}: a retry is stored once");

    // Media.
    if table.media {
        let media = [drawbridge::carriers::media(
            &format!("https://media.example/private-{name}-photo.jpg"),
            Some("image/jpeg"),
            Some(48_210),
            None,
        )];
        let request = simulate(&table.carrier.new_message_id(), "", &media);
        assert_eq!(post(&request).await.0, 200, "{name}: media inbound");
        let files: i64 = sqlx::query("SELECT COUNT(*) FROM message_media")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
        assert!(files >= 1, "{name}: media rows");
    }
    let stored_before = messages(&app).await;

    // Forgeries: nothing stored, 403.
    let forged = simulate(&table.carrier.new_message_id(), "forged request", &[]);
    let (altered, removed) = match table.auth_field {
        Some(field) => (
            with_field(&forged, field, false),
            with_field(&forged, field, true),
        ),
        None => {
            assert!(
                forged
                    .headers()
                    .any(|(n, _)| table.auth_headers.contains(&n)),
                "{name}: the simulated request carries {:?}",
                table.auth_headers
            );
            let altered: Vec<(String, String)> = forged
                .headers()
                .map(|(n, v)| {
                    if table.auth_headers.contains(&n) {
                        (n.to_owned(), alter(v))
                    } else {
                        (n.to_owned(), v.to_owned())
                    }
                })
                .collect();
            let removed: Vec<(String, String)> = forged
                .headers()
                .filter(|(n, _)| !table.auth_headers.contains(n))
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            (
                with_headers(&forged, altered),
                with_headers(&forged, removed),
            )
        }
    };
    let (status, text) = post(&altered).await;
    assert_eq!(status, 403, "{name}: altered authenticity: {text}");
    assert!(
        !text.contains("forged request") && !text.contains(CUSTOMER),
        "{text}"
    );
    assert_eq!(
        post(&removed).await.0,
        table.unsigned_status,
        "{name}: no authenticity"
    );
    if let Some(tamper) = table.tamper {
        let changed = with_body(&forged, tamper(&forged.body));
        assert_eq!(post(&changed).await.0, 403, "{name}: altered body");
    }
    assert_eq!(
        messages(&app).await,
        stored_before,
        "{name}: forgeries store nothing"
    );

    // Malformed and mistyped bodies.
    let client = reqwest::Client::new();
    let (malformed, content_type) = table.malformed;
    let response = client
        .post(&inbound_url)
        .header("content-type", content_type)
        .body(malformed)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        400,
        "{name}: malformed: {}",
        response.text().await.unwrap()
    );
    let response = client
        .post(&inbound_url)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415, "{name}: wrong content type");
    assert_eq!(messages(&app).await, stored_before, "{name}");

    // A reply reaches the carrier's API as the carrier documents it.
    let conversation: String = sqlx::query("SELECT conversation_id FROM conversation")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    let reply = app.queue_reply(&conversation, "Thanks, we got it.").await;
    assert_eq!(
        app.settled(&reply.outbox_id, 15).await,
        "accepted",
        "{name}: reply"
    );
    // The first message's card number escalated: its secure link went too (checked by the
    // secure-link tests); this is about the reply.
    let sends: Vec<_> = fake
        .state
        .records()
        .into_iter()
        .filter(|r| r.kind == "send")
        .filter(|r| {
            !r.text
                .as_deref()
                .unwrap_or_default()
                .contains("Continue here")
        })
        .collect();
    assert_eq!(sends.len(), 1, "{name}: {sends:#?}");
    let send = &sends[0];
    assert_eq!(send.carrier, name);
    assert!(
        send.path.starts_with(&table.send_path),
        "{name}: sent to {} not {}",
        send.path,
        table.send_path
    );
    let authorization = send
        .headers
        .get("authorization")
        .cloned()
        .unwrap_or_default();
    match &table.send_auth {
        Some(expected) => assert_eq!(&authorization, expected, "{name}: authentication"),
        None => assert!(
            authorization.starts_with("Bearer "),
            "{name}: {authorization}"
        ),
    }
    let digits = |s: &str| s.trim_start_matches('+').to_owned();
    assert_eq!(
        send.to.as_deref().map(digits),
        Some(digits(CUSTOMER)),
        "{name}: recipient"
    );
    if let Some(from) = &send.from {
        assert_eq!(digits(from), digits(business.as_sender()), "{name}: sender");
    }
    assert!(
        send.text
            .as_deref()
            .is_some_and(|t| t.contains("Thanks, we got it.")),
        "{name}: text {:?}",
        send.text
    );
    let carrier_id = app.outbox_row(&reply.outbox_id).await.2.unwrap();

    // Status callbacks: delivered, and a failure with its code.
    let status = |id: &str, word: &str, code: Option<&str>| {
        account
            .simulate_status(
                &status_url,
                &SimulatedStatus {
                    carrier_message_id: id,
                    status: word,
                    error_code: code,
                    from: &business,
                    to: &customer,
                },
                &keys,
            )
            .unwrap_or_else(|e| panic!("{name}: simulate_status: {e}"))
    };
    let (code, text) = post(&status(&carrier_id, table.delivered, None)).await;
    assert_eq!(code, 200, "{name}: status callback: {text}");
    assert_eq!(
        app.message_status(&reply.message_id).await.0,
        "delivered",
        "{name}"
    );

    // Faults: each reply is taken by the carrier exactly once.
    let taken = |text: &str| {
        fake.state
            .accepted(table.carrier)
            .into_iter()
            .filter(|r| r.text.as_deref().is_some_and(|t| t.contains(text)))
            .count()
    };
    for (plan, text) in [
        (
            fake::FailureRequest {
                mode: fake::FailureMode::ServerError,
                count: 1,
                carrier: None,
                retry_after: None,
                delay_ms: 0,
            },
            "after a server error",
        ),
        (
            fake::FailureRequest {
                mode: fake::FailureMode::Throttle,
                count: 1,
                carrier: None,
                retry_after: Some(1),
                delay_ms: 0,
            },
            "after throttling",
        ),
        (
            // Taken, answered after the client's 2 s timeout.
            fake::FailureRequest {
                mode: fake::FailureMode::Timeout,
                count: 1,
                carrier: None,
                retry_after: None,
                delay_ms: 3_000,
            },
            "after a timeout",
        ),
    ] {
        let mode = plan.mode;
        fake.state.plan(plan);
        let queued = app.queue_reply(&conversation, text).await;
        assert_eq!(
            app.settled(&queued.outbox_id, 30).await,
            "accepted",
            "{name}: {mode:?}"
        );
        assert_eq!(taken(text), 1, "{name}: {mode:?}: taken once");
        let (_, attempts, carrier_id, ..) = app.outbox_row(&queued.outbox_id).await;
        assert!(
            carrier_id.is_some(),
            "{name}: {mode:?}: carrier id recorded"
        );
        if mode != fake::FailureMode::Timeout {
            assert_eq!(attempts, 2, "{name}: {mode:?}");
        }
        if mode == fake::FailureMode::Throttle {
            let sends: Vec<_> = fake
                .state
                .records()
                .into_iter()
                .filter(|r| r.kind == "send" && r.text.as_deref().is_some_and(|t| t.contains(text)))
                .collect();
            let at = |r: &fake::Record| drawbridge::store::parse_timestamp(&r.at).unwrap();
            assert!(
                at(&sends[1]) - at(&sends[0]) >= chrono::Duration::seconds(1),
                "{name}: retried before Retry-After"
            );
        }
    }

    let second = app.queue_reply(&conversation, "A second reply.").await;
    assert_eq!(
        app.settled(&second.outbox_id, 15).await,
        "accepted",
        "{name}"
    );
    let second_id = app.outbox_row(&second.outbox_id).await.2.unwrap();
    let (word, code, ours) = table.failure;
    assert_eq!(
        post(&status(&second_id, word, code)).await.0,
        200,
        "{name}: failure callback"
    );
    let (status_now, code_now) = app.message_status(&second.message_id).await;
    assert_eq!(status_now, ours, "{name}: failure status");
    assert_eq!(code_now.as_deref(), code, "{name}: failure code");
    // A carrier's "recipient opted out" code is a consent change: the contact is opted out.
    if let Some(code) = code {
        if table.carrier.profile().error_class(code)
            == Some(drawbridge::carriers::ErrorClass::OptedOut)
        {
            let recorded: i64 = sqlx::query(
                "SELECT COUNT(*) FROM consent_event WHERE kind = 'opt_out' AND source = 'carrier_report' AND keyword = $1",
            )
            .bind(code)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
            assert_eq!(
                recorded, 1,
                "{name}: the carrier's opt-out is in the consent ledger"
            );
        }
    }

    // Nothing sensitive at rest or in the logs.
    let stored = app.stored_bytes().await;
    let mut forbidden = vec!["4539148803436467".to_owned(), "my card is".to_owned()];
    forbidden.extend(phone_forms(CUSTOMER));
    for needle in &forbidden {
        assert!(
            !contains(&stored, needle),
            "{name}: stored bytes contain {needle:?}"
        );
    }
    let logs = captured_logs();
    forbidden.extend(["Thanks, we got it.".to_owned(), "forged request".to_owned()]);
    forbidden.extend(account.secrets());
    for needle in &forbidden {
        assert!(
            !logs.contains(needle.as_str()),
            "{name}: logs contain {needle:?}"
        );
    }
    fake.handle.stop(false).await;
}
