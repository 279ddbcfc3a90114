//! The outbox against the fake carrier (Twilio's API): a queued reply reaches the carrier with the
//! right endpoint, authentication and fields; retries, throttling, timeouts and refusals behave as
//! documented; every message goes out exactly once.

use crate::both_backends;
use crate::helpers::*;
use drawbridge::simulate::fake::{Record, RunningFake};
use std::time::Duration;

both_backends!(
    reply_reaches_the_carrier_and_callbacks_move_it,
    server_error_then_success_sends_once,
    throttling_waits_before_retrying,
    a_timeout_is_resolved_by_lookup_not_resent,
    an_opted_out_recipient_fails_permanently,
    sends_are_spaced_by_the_senders_throughput,
    queued_replies_hold_no_plaintext,
);

/// Plans a failure on the fake through its HTTP API, as an operator would.
async fn plan(fake: &RunningFake, body: serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/_fail", fake.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

fn sends_of<'a>(records: &'a [Record], text: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.kind == "send" && r.text.as_deref() == Some(text))
        .collect()
}

async fn reply_reaches_the_carrier_and_callbacks_move_it(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let conversation = app.conversation().await;
    let queued = app
        .queue_reply(&conversation, "Your card is on its way.")
        .await;
    assert_eq!(app.settled(&queued.outbox_id, 10).await, "accepted");

    // GET /_sent, as a test or an operator reads it.
    let sent: serde_json::Value = reqwest::get(format!("{}/_sent?carrier=twilio", fake.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let requests = sent["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{sent:#}");
    let request = &requests[0];
    assert_eq!(request["method"], "POST");
    assert_eq!(
        request["path"],
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    );
    // Basic auth with the account SID and auth token.
    use base64::Engine;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    assert_eq!(
        request["headers"]["authorization"],
        format!("Basic {basic}")
    );
    assert_eq!(request["to"], CUSTOMER);
    // Out through the business number the customer texted.
    assert_eq!(request["from"], BUSINESS_NUMBER);
    assert_eq!(request["text"], "Your card is on its way.");
    let form =
        drawbridge::carriers::form::parse(request["body"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(
        drawbridge::carriers::form::first(&form, "StatusCallback"),
        Some(format!("{}/webhooks/twilio/status", app.public_url).as_str())
    );
    assert_eq!(request["outcome"], "accepted");

    // The carrier's id is recorded on the row and the message.
    let id = request["message_id"].as_str().unwrap().to_owned();
    let (state, attempts, carrier_id, ..) = app.outbox_row(&queued.outbox_id).await;
    assert_eq!(
        (state.as_str(), attempts, carrier_id.as_deref()),
        ("accepted", 1, Some(id.as_str()))
    );
    assert_eq!(app.message_status(&queued.message_id).await.0, "queued");

    // Status callbacks move it forward: sent, then delivered.
    let callback = |status: &'static str| {
        vec![
            ("MessageSid", id.clone()),
            ("MessageStatus", status.to_owned()),
            ("AccountSid", ACCOUNT_SID.to_owned()),
            ("From", BUSINESS_NUMBER.to_owned()),
            ("To", CUSTOMER.to_owned()),
        ]
    };
    for status in ["sent", "delivered"] {
        let form = callback(status);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            app.post_signed("/webhooks/twilio/status", &form)
                .await
                .status(),
            200
        );
    }
    assert_eq!(app.message_status(&queued.message_id).await.0, "delivered");

    // A second reply fails at the carrier after acceptance: the callback's code is kept.
    let second = app.queue_reply(&conversation, "Second reply").await;
    assert_eq!(app.settled(&second.outbox_id, 10).await, "accepted");
    let second_id = app.outbox_row(&second.outbox_id).await.2.unwrap();
    let form = [
        ("MessageSid", second_id.as_str()),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30007"),
        ("AccountSid", ACCOUNT_SID),
        ("From", BUSINESS_NUMBER),
        ("To", CUSTOMER),
    ];
    assert_eq!(
        app.post_signed("/webhooks/twilio/status", &form)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.message_status(&second.message_id).await,
        ("undelivered".to_owned(), Some("30007".to_owned()))
    );
    fake.handle.stop(false).await;
}

async fn server_error_then_success_sends_once(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let conversation = app.conversation().await;
    plan(
        &fake,
        serde_json::json!({"mode": "500", "count": 1, "carrier": "twilio"}),
    )
    .await;
    let queued = app.queue_reply(&conversation, "after a hiccup").await;
    assert_eq!(app.settled(&queued.outbox_id, 10).await, "accepted");
    let records = fake.state.records();
    let sends = sends_of(&records, "after a hiccup");
    assert_eq!(
        sends.iter().map(|r| r.outcome).collect::<Vec<_>>(),
        ["server_error", "accepted"]
    );
    assert_eq!(app.outbox_row(&queued.outbox_id).await.1, 2, "two attempts");
    fake.handle.stop(false).await;
}

async fn throttling_waits_before_retrying(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let conversation = app.conversation().await;
    plan(
        &fake,
        serde_json::json!({"mode": "429", "count": 1, "retry_after": 2}),
    )
    .await;
    let queued = app.queue_reply(&conversation, "slow down").await;
    assert_eq!(app.settled(&queued.outbox_id, 15).await, "accepted");
    let records = fake.state.records();
    let sends = sends_of(&records, "slow down");
    assert_eq!(
        sends
            .iter()
            .map(|r| (r.outcome, r.status))
            .collect::<Vec<_>>(),
        [("throttled", 429), ("accepted", 201)]
    );
    let at = |r: &Record| drawbridge::store::parse_timestamp(&r.at).unwrap();
    let waited = at(sends[1]) - at(sends[0]);
    assert!(
        waited >= chrono::Duration::seconds(2),
        "retried after {waited}, before Retry-After"
    );
    fake.handle.stop(false).await;
}

async fn a_timeout_is_resolved_by_lookup_not_resent(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let conversation = app.conversation().await;
    // The carrier takes the message but answers after the client gave up (2 s).
    plan(
        &fake,
        serde_json::json!({"mode": "timeout", "count": 1, "delay_ms": 4000}),
    )
    .await;
    let queued = app.queue_reply(&conversation, "did it go?").await;
    assert_eq!(app.settled(&queued.outbox_id, 20).await, "accepted");
    let records = fake.state.records();
    let sends = sends_of(&records, "did it go?");
    assert_eq!(sends.len(), 1, "sent once: {sends:?}");
    assert_eq!(sends[0].outcome, "late");
    assert!(
        records.iter().any(|r| r.kind == "lookup"),
        "resolved by reading the carrier's Messages list"
    );
    // The id the carrier gave is recorded although its answer never arrived.
    assert_eq!(
        app.outbox_row(&queued.outbox_id).await.2,
        sends[0].message_id
    );
    fake.handle.stop(false).await;
}

async fn an_opted_out_recipient_fails_permanently(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let conversation = app.conversation().await;
    plan(&fake, serde_json::json!({"mode": "opted_out"})).await;
    let queued = app.queue_reply(&conversation, "are you there?").await;
    assert_eq!(app.settled(&queued.outbox_id, 10).await, "failed");
    let (_, attempts, carrier_id, class, code) = app.outbox_row(&queued.outbox_id).await;
    assert_eq!(
        (attempts, carrier_id, class.as_deref(), code.as_deref()),
        (1, None, Some("opted_out"), Some("21610"))
    );
    assert_eq!(
        app.message_status(&queued.message_id).await,
        ("failed".to_owned(), Some("21610".to_owned()))
    );
    // Not retried.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sends_of(&fake.state.records(), "are you there?").len(), 1);
    fake.handle.stop(false).await;
}

async fn sends_are_spaced_by_the_senders_throughput(backend: Backend) {
    // A long code's default: one message per second.
    let (app, fake) = TestApp::with_fake(
        backend,
        Options {
            throughput: Some(1.0),
            ..Options::default()
        },
    )
    .await;
    let conversation = app.conversation().await;
    let mut queued = Vec::new();
    for i in 0..3 {
        queued.push(app.queue_reply(&conversation, &format!("paced {i}")).await);
    }
    for q in &queued {
        assert_eq!(app.settled(&q.outbox_id, 15).await, "accepted");
    }
    let records = fake.state.records();
    let times: Vec<_> = (0..3)
        .map(|i| {
            let text = format!("paced {i}");
            drawbridge::store::parse_timestamp(&sends_of(&records, &text)[0].at).unwrap()
        })
        .collect();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= chrono::Duration::milliseconds(900),
            "sends {gap} apart at 1 message/s"
        );
    }
    fake.handle.stop(false).await;
}

async fn queued_replies_hold_no_plaintext(backend: Backend) {
    // No worker: the rows stay queued, and what is stored is ciphertext.
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    let conversation = app.conversation().await;
    let queued = app
        .queue_reply(
            &conversation,
            "Your PIN reset code is in the post to Quokka Lane",
        )
        .await;
    assert_eq!(app.outbox_row(&queued.outbox_id).await.0, "pending");
    let stored = app.stored_bytes().await;
    for needle in ["PIN reset", "Quokka Lane"]
        .into_iter()
        .map(str::to_owned)
        .chain(phone_forms(CUSTOMER))
    {
        assert!(
            !contains(&stored, &needle),
            "stored bytes contain {needle:?}"
        );
    }
}
