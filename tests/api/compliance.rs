//! Messaging compliance, black box over HTTP with the fake carrier: keywords and the consent
//! ledger, free-text revocation, carrier-reported opt-outs, quiet hours on a controllable clock,
//! outbound DLP, floods and rate limits, the API's view of a contact.

use crate::both_backends;
use crate::helpers::*;
use drawbridge::clock::Clock;
use drawbridge::simulate::fake::{self, RunningFake};
use drawbridge::store::tokens::Role;
use sqlx::Row;
use std::time::Duration;

both_backends!(
    stop_keywords_opt_out_once_and_start_opts_back_in,
    help_keywords_send_the_help_text,
    free_text_revocation_opts_out_and_near_misses_do_not,
    agents_confirm_free_text_revocations_when_configured,
    a_carrier_opt_out_on_send_opts_the_contact_out,
    quiet_hours_hold_business_messages_until_morning,
    outbound_dlp_refuses_card_numbers_and_queues_nothing,
    a_flood_is_stored_but_gets_one_automatic_reply,
    webhooks_and_api_calls_are_rate_limited,
    consent_and_quiet_hours_are_visible_through_the_api,
    carrier_reports_of_opt_outs_arriving_early_or_late,
    a_stop_overtakes_a_waiting_opt_in_confirmation,
    a_flooding_contact_still_gets_one_opt_out_confirmation,
    a_consent_event_is_always_the_newest,
);

const PAN: &str = "4539148803436467";

/// The texts the fake carrier took for `to`, in order.
fn sent_to(fake: &RunningFake, to: &str) -> Vec<String> {
    fake.state
        .records()
        .into_iter()
        .filter(|r| r.kind == "send" && r.is_accepted() && r.to.as_deref() == Some(to))
        .filter_map(|r| r.text)
        .collect()
}

async fn consent_events(app: &TestApp, contact_id: &str) -> Vec<(String, String, Option<String>)> {
    sqlx::query(
        "SELECT kind, source, keyword FROM consent_event WHERE contact_id = $1 ORDER BY at, consent_event_id",
    )
    .bind(contact_id)
    .fetch_all(app.state.db.pool())
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Waits until the outbox has nothing left to send now (held rows aside).
async fn drained(app: &TestApp) {
    eventually(15, "the outbox to drain", || async {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'in_flight') AND (error_class IS NULL OR error_class <> 'quiet_hours')",
        )
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
        row.get::<i64, _>(0) == 0
    })
    .await;
}

async fn stop_keywords_opt_out_once_and_start_opts_back_in(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    for body in ["STOP", "Stop.", " stop ", "STOP!!"] {
        assert_eq!(
            app.text_from(CUSTOMER, body).await.status(),
            200,
            "{body:?}"
        );
    }
    drained(&app).await;
    let (conversation, contact) = app.conversation_of(CUSTOMER).await;
    assert_eq!(
        consent_events(&app, &contact).await,
        [(
            "opt_out".to_owned(),
            "keyword".to_owned(),
            Some("STOP".to_owned())
        )],
        "one opt-out event for four STOPs"
    );
    let sent = sent_to(&fake, CUSTOMER);
    assert_eq!(sent.len(), 1, "exactly one confirmation: {sent:?}");
    assert!(
        sent[0].contains("START"),
        "it says how to opt back in: {sent:?}"
    );

    // An agent's reply is refused, naming why; nothing is queued.
    let agent = app.token(Role::Agent).await;
    let outbox_before = app.count("outbox").await;
    let response = app
        .api_post(
            &agent,
            &format!("/api/v1/conversations/{conversation}/messages"),
            serde_json::json!({"body": "Are you still there?"}),
        )
        .await;
    assert_eq!(response.status(), 409);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "opted_out");
    assert!(
        problem["message"].as_str().unwrap().contains("keyword"),
        "{problem}"
    );
    assert_eq!(app.count("outbox").await, outbox_before);

    // START: opted in again, one confirmation; replies go.
    assert_eq!(app.text_from(CUSTOMER, "start").await.status(), 200);
    drained(&app).await;
    assert_eq!(consent_events(&app, &contact).await.len(), 2);
    let response = app
        .api_post(
            &agent,
            &format!("/api/v1/conversations/{conversation}/messages"),
            serde_json::json!({"body": "Welcome back."}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let accepted: serde_json::Value = response.json().await.unwrap();
    assert_eq!(accepted["status"], "queued");
    drained(&app).await;
    let sent = sent_to(&fake, CUSTOMER);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(
        sent[1].contains("subscribed again") && sent[2] == "Welcome back.",
        "{sent:?}"
    );

    // "stop by the branch tomorrow" is not a keyword and not a revocation.
    assert_eq!(
        app.text_from(CUSTOMER, "I'll stop by the branch tomorrow")
            .await
            .status(),
        200
    );
    assert_eq!(consent_events(&app, &contact).await.len(), 2);
    // The trail holds the two changes and still verifies.
    let actions: Vec<String> =
        sqlx::query("SELECT action FROM audit_event WHERE action LIKE 'consent.%' ORDER BY seq")
            .fetch_all(app.state.db.pool())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.get(0))
            .collect();
    assert_eq!(actions, ["consent.opt_out", "consent.opt_in"]);
    // Counted once per change, by kind and source.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for kind in ["opt_out", "opt_in"] {
        let line =
            format!("drawbridge_consent_events_total{{kind=\"{kind}\",source=\"keyword\"}} 1");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    let report = drawbridge::audit::verify(&app.state.db, app.state.vault.audit_key())
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");
    fake.handle.stop(false).await;
}

async fn help_keywords_send_the_help_text(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    const OTHER: &str = "+15557654321";
    assert_eq!(app.text_from(CUSTOMER, "HELP").await.status(), 200);
    assert_eq!(app.text_from(OTHER, "ayuda").await.status(), 200);
    drained(&app).await;
    for who in [CUSTOMER, OTHER] {
        let sent = sent_to(&fake, who);
        assert_eq!(sent.len(), 1, "{who}: {sent:?}");
        for part in [
            "Msg & data rates may apply",
            "STOP",
            "This service",
            "reply to this message",
        ] {
            assert!(
                sent[0].contains(part),
                "help text lacks {part:?}: {}",
                sent[0]
            );
        }
        let (_, contact) = app.conversation_of(who).await;
        let events = consent_events(&app, &contact).await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, "help", "no consent change");
    }
    fake.handle.stop(false).await;
}

async fn free_text_revocation_opts_out_and_near_misses_do_not(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    for body in [
        "stop by the branch tomorrow",
        "can you stop the payment on my card",
        "my subscription ends at the end of the month",
    ] {
        assert_eq!(app.text_from(CUSTOMER, body).await.status(), 200);
    }
    let (_, contact) = app.conversation_of(CUSTOMER).await;
    assert!(consent_events(&app, &contact).await.is_empty());
    assert_eq!(
        app.text_from(CUSTOMER, "Please stop texting me, thanks")
            .await
            .status(),
        200
    );
    drained(&app).await;
    let events = consent_events(&app, &contact).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        ("opt_out", "free_text")
    );
    // The phrase rule that recognised it is what the agent sees.
    // ("revocation-stop-only": the whole message is a STOP with polite filler words.)
    assert_eq!(events[0].2.as_deref(), Some("revocation-stop-only"));
    // ("stop the payment on my card" is about payment: it got a secure link, not a confirmation.)
    let confirmations: Vec<String> = sent_to(&fake, CUSTOMER)
        .into_iter()
        .filter(|t| !t.contains("/s/"))
        .collect();
    assert_eq!(
        confirmations.len(),
        1,
        "one confirmation: {confirmations:?}"
    );
    fake.handle.stop(false).await;
}

async fn agents_confirm_free_text_revocations_when_configured(backend: Backend) {
    let clock = Clock::adjustable();
    clock.set(new_york(27, 12, 0));
    let (app, fake) = TestApp::with_fake(
        backend,
        Options {
            clock: Some(clock.clone()),
            compliance: Some(drawbridge::config::ComplianceSettings {
                revocation: drawbridge::config::Revocation::AgentConfirms,
                ..drawbridge::config::ComplianceSettings::default()
            }),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(
        app.text_from(CUSTOMER, "take me off your list")
            .await
            .status(),
        200
    );
    let (conversation, contact) = app.conversation_of(CUSTOMER).await;
    let events = consent_events(&app, &contact).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        ("opt_out_request", "free_text")
    );
    // Not opted out yet: an agent can still reply (and decide).
    let agent = app.token(Role::Agent).await;
    let response = app
        .api_post(
            &agent,
            &format!("/api/v1/conversations/{conversation}/messages"),
            serde_json::json!({"body": "Understood, one moment."}),
        )
        .await;
    assert_eq!(response.status(), 202);
    drained(&app).await;

    // The agent confirms: opted out, with the one confirmation (the request is two minutes old).
    clock.advance(std::time::Duration::from_secs(120));
    let consent_path = format!("/api/v1/conversations/{conversation}/consent");
    // Records `kind` with `token`: whether it changed the state, and the confirmation queued.
    let change = |token: String, kind: &'static str| {
        let (app, path) = (&app, &consent_path);
        async move {
            let response = app
                .api_post(&token, path, serde_json::json!({ "kind": kind }))
                .await;
            assert_eq!(response.status(), 200, "{kind}");
            let done: serde_json::Value = response.json().await.unwrap();
            (
                done["changed"].as_bool().unwrap(),
                done["confirmation_id"].as_str().map(str::to_owned),
            )
        }
    };
    let response = app
        .api_post(&agent, &consent_path, serde_json::json!({"kind": "opt_in"}))
        .await;
    assert_eq!(response.status(), 403, "agents cannot opt a contact in");
    let (changed, confirmation) = change(agent.clone(), "opt_out").await;
    assert!(changed && confirmation.is_some());
    assert_eq!(change(agent.clone(), "opt_out").await, (false, None));
    let response = app
        .api_post(
            &agent,
            &format!("/api/v1/conversations/{conversation}/messages"),
            serde_json::json!({"body": "One more thing."}),
        )
        .await;
    assert_eq!(response.status(), 409);

    // Compliance records an opt-in given on paper: nothing is sent for it.
    let compliance = app.token(Role::Compliance).await;
    assert_eq!(change(compliance, "opt_in").await, (true, None));
    // An opt-out recorded long after the customer's last message sends no confirmation.
    clock.advance(std::time::Duration::from_secs(600));
    assert_eq!(change(agent.clone(), "opt_out").await, (true, None));
    let response = app
        .api_post(&agent, &consent_path, serde_json::json!({"kind": "maybe"}))
        .await;
    assert_eq!(response.status(), 422);

    drained(&app).await;
    let sent = sent_to(&fake, CUSTOMER);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[1].contains("START"), "{sent:?}");
    let events = consent_events(&app, &contact).await;
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|(kind, source, _)| (kind.as_str(), source.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("opt_out_request", "free_text"),
            ("opt_out", "api"),
            ("opt_in", "api"),
            ("opt_out", "api")
        ]
    );
    let actors: Vec<(String, String)> = sqlx::query(
        "SELECT action, actor_kind FROM audit_event WHERE action LIKE 'consent.%' ORDER BY seq",
    )
    .fetch_all(app.state.db.pool())
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert_eq!(
        actors,
        [
            ("consent.opt_out_request".to_owned(), "system".to_owned()),
            ("consent.opt_out".to_owned(), "api_token".to_owned()),
            ("consent.opt_in".to_owned(), "api_token".to_owned()),
            ("consent.opt_out".to_owned(), "api_token".to_owned()),
        ]
    );
    fake.handle.stop(false).await;
}

async fn a_carrier_opt_out_on_send_opts_the_contact_out(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let conversation = app.conversation().await;
    let (_, contact) = app.conversation_of(CUSTOMER).await;
    let agent = app.token(Role::Agent).await;
    fake.state.plan(fake::FailureRequest {
        mode: fake::FailureMode::OptedOut,
        count: 1,
        carrier: None,
        retry_after: None,
        delay_ms: 0,
    });
    let path = format!("/api/v1/conversations/{conversation}/messages");
    let response = app
        .api_post(
            &agent,
            &path,
            serde_json::json!({"body": "Your statement is ready."}),
        )
        .await;
    assert_eq!(response.status(), 202);
    eventually(10, "the carrier's refusal", || async {
        !consent_events(&app, &contact).await.is_empty()
    })
    .await;
    assert_eq!(
        consent_events(&app, &contact).await,
        [(
            "opt_out".to_owned(),
            "carrier_report".to_owned(),
            Some("21610".to_owned())
        )]
    );
    let response = app
        .api_post(&agent, &path, serde_json::json!({"body": "Hello?"}))
        .await;
    assert_eq!(response.status(), 409);
    fake.handle.stop(false).await;
}

/// 2026-11-27 at `hh:mm` in New York (EST, UTC−5): the default zone, since the test numbers'
/// area code 555 is no real one.
fn new_york(day: u32, hour: u32, minute: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono_tz::America::New_York
        .with_ymd_and_hms(2026, 11, day, hour, minute, 0)
        .single()
        .unwrap()
        .with_timezone(&chrono::Utc)
}

async fn quiet_hours_hold_business_messages_until_morning(backend: Backend) {
    let clock = Clock::adjustable();
    let (app, fake) = TestApp::with_fake(
        backend,
        Options {
            clock: Some(clock.clone()),
            ..Options::default()
        },
    )
    .await;
    let agent = app.token(Role::Agent).await;
    let supervisor = app.token(Role::Supervisor).await;

    // The customer last wrote at 19:00.
    clock.set(new_york(27, 19, 0));
    assert_eq!(
        app.text_from(CUSTOMER, "thanks, talk tomorrow")
            .await
            .status(),
        200
    );
    let (conversation, _) = app.conversation_of(CUSTOMER).await;
    let path = format!("/api/v1/conversations/{conversation}/messages");

    // 22:30: an agent-started message is held until 08:00 the next morning.
    clock.set(new_york(27, 22, 30));
    let response = app
        .api_post(
            &agent,
            &path,
            serde_json::json!({"body": "Reminder: your payment is due."}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let held: serde_json::Value = response.json().await.unwrap();
    assert_eq!(held["status"], "held");
    assert_eq!(
        held["held_until"],
        drawbridge::store::timestamp(new_york(28, 8, 0))
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(sent_to(&fake, CUSTOMER).is_empty(), "nothing at night");

    // A reply at 22:40 to the customer's 22:25 message goes at once.
    clock.set(new_york(27, 22, 25));
    assert_eq!(
        app.text_from(CUSTOMER, "one more question").await.status(),
        200
    );
    clock.set(new_york(27, 22, 40));
    let response = app
        .api_post(
            &agent,
            &path,
            serde_json::json!({"body": "Sure, go ahead."}),
        )
        .await;
    let reply: serde_json::Value = response.json().await.unwrap();
    assert_eq!(reply["status"], "queued");
    eventually(10, "the reply inside the window", || async {
        sent_to(&fake, CUSTOMER) == ["Sure, go ahead."]
    })
    .await;

    // 23:50: outside the reply window again. A supervisor releases one held message.
    clock.set(new_york(27, 23, 50));
    let response = app
        .api_post(
            &agent,
            &path,
            serde_json::json!({"body": "Your card was mailed."}),
        )
        .await;
    let second: serde_json::Value = response.json().await.unwrap();
    assert_eq!(second["status"], "held");
    let id = second["id"].as_str().unwrap().to_owned();
    let refused = app
        .api_post(
            &agent,
            &format!("/api/v1/messages/{id}/override-quiet-hours"),
            serde_json::json!({"reason": "customer_requested"}),
        )
        .await;
    assert_eq!(refused.status(), 403, "agents cannot override");
    let override_path = format!("/api/v1/messages/{id}/override-quiet-hours");
    // Reasons come from a fixed set; a ticket reference may not hold a phone number.
    for (body, status) in [
        (
            serde_json::json!({"reason": "the customer Jane asked"}),
            400,
        ),
        (serde_json::json!({"reason": "other"}), 422),
        (
            serde_json::json!({"reason": "other", "ticket": "5551234567"}),
            422,
        ),
        (
            serde_json::json!({"reason": "other", "ticket": "call me"}),
            422,
        ),
    ] {
        let response = app
            .api_post(&supervisor, &override_path, body.clone())
            .await;
        assert_eq!(response.status(), status, "{body}");
    }
    let released = app
        .api_post(
            &supervisor,
            &override_path,
            serde_json::json!({"reason": "other", "ticket": "CX-4411"}),
        )
        .await;
    assert_eq!(released.status(), 200);
    // Once released it is no longer held: a second override changes nothing and is not audited.
    let again = app
        .api_post(
            &supervisor,
            &override_path,
            serde_json::json!({"reason": "customer_requested"}),
        )
        .await;
    assert_eq!(again.status(), 404);
    eventually(10, "the released message", || async {
        sent_to(&fake, CUSTOMER).len() == 2
    })
    .await;
    assert_eq!(sent_to(&fake, CUSTOMER)[1], "Your card was mailed.");
    let overrides: i64 = sqlx::query(
        "SELECT COUNT(*) FROM audit_event WHERE action = 'outbox.quiet_hours_override' AND actor_kind = 'api_token'",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(overrides, 1, "the override is in the audit trail");

    // 08:00: the first held message goes.
    clock.set(new_york(28, 8, 0));
    eventually(10, "the morning send", || async {
        sent_to(&fake, CUSTOMER).len() == 3
    })
    .await;
    assert_eq!(
        sent_to(&fake, CUSTOMER)[2],
        "Reminder: your payment is due."
    );
    fake.handle.stop(false).await;
}

async fn outbound_dlp_refuses_card_numbers_and_queues_nothing(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let conversation = app.conversation().await;
    let agent = app.token(Role::Agent).await;
    let before = app.count("outbox").await;
    let response = app
        .api_post(
            &agent,
            &format!("/api/v1/conversations/{conversation}/messages"),
            serde_json::json!({"body": format!("Your new card is {PAN}")}),
        )
        .await;
    assert_eq!(response.status(), 422);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "sensitive_content");
    let message = problem["message"].as_str().unwrap();
    assert!(
        message.contains("CARD_NUMBER") && message.contains("secure link"),
        "{message}"
    );
    assert!(!message.contains(PAN));
    // Malformed bodies are refused without quoting them back.
    let pan: u64 = PAN.parse().unwrap();
    for body in [
        serde_json::json!({ "body": pan }),
        serde_json::json!({ "body": "hi", PAN: 1 }),
    ] {
        let response = app
            .api_post(
                &agent,
                &format!("/api/v1/conversations/{conversation}/messages"),
                body,
            )
            .await;
        assert_eq!(response.status(), 400);
        let text = response.text().await.unwrap();
        assert!(
            text.contains("fields") && !text.contains(&PAN[..6]),
            "{text}"
        );
    }
    assert_eq!(app.count("outbox").await, before, "nothing queued");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sent_to(&fake, CUSTOMER).is_empty());
    assert!(!captured_logs().contains(PAN));
    fake.handle.stop(false).await;
}

async fn a_flood_is_stored_but_gets_one_automatic_reply(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    for _ in 0..100 {
        assert_eq!(app.text_from(CUSTOMER, "HELP").await.status(), 200);
    }
    drained(&app).await;
    assert_eq!(app.count("message WHERE direction = 'inbound'").await, 100);
    assert!(
        sent_to(&fake, CUSTOMER).len() <= 1,
        "{:?}",
        sent_to(&fake, CUSTOMER)
    );
    let (conversation, _) = app.conversation_of(CUSTOMER).await;
    let flagged: Option<String> =
        sqlx::query("SELECT flooded_at FROM conversation WHERE conversation_id = $1")
            .bind(&conversation)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    assert!(flagged.is_some(), "the conversation is flagged");
    // 30 a minute are allowed; the rest of the 100 (less what the limit recovered while the
    // test ran) are counted as a flood.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let flooded: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("drawbridge_inbound_flood_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!((55..=70).contains(&flooded), "{flooded} counted as flood");
    fake.handle.stop(false).await;
}

async fn webhooks_and_api_calls_are_rate_limited(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            limits: Some(drawbridge::compliance::limits::LimitSettings {
                webhook_refusals_per_ip_per_minute: 3,
                api_per_token_per_minute: 2,
                ..drawbridge::compliance::limits::LimitSettings::default()
            }),
            ..Options::default()
        },
    )
    .await;
    // Genuine, signed traffic is never limited: far more than the budget all goes through.
    for _ in 0..10 {
        assert_eq!(app.text_from(CUSTOMER, "hi").await.status(), 200);
    }
    // Forged requests spend the address's budget of refusals …
    let sid = new_sid();
    let forged = inbound_form(&sid, "hi");
    for _ in 0..4 {
        let refused = app
            .post_form("/webhooks/twilio", &forged, Some("Zm9yZ2Vk"))
            .await;
        assert_eq!(refused.status(), 403);
    }
    // … and then the address gets 429, signed or not, with when to come back.
    let limited = app.text_from(CUSTOMER, "hi").await;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        app.count("message").await,
        10,
        "the refused webhooks stored nothing"
    );

    let token = app.token(Role::Agent).await;
    let (_, contact) = app.conversation_of(CUSTOMER).await;
    let path = format!("/api/v1/contacts/{contact}/consent");
    assert_eq!(app.api_get(&token, &path).await.status(), 200);
    assert_eq!(app.api_get(&token, &path).await.status(), 200);
    let limited = app.api_get(&token, &path).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let problem: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");
    // Without a token: 401 in the API's error format.
    let anonymous = app
        .client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let problem: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(problem["code"], "unauthorized");
}

async fn consent_and_quiet_hours_are_visible_through_the_api(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    assert_eq!(app.text_from(CUSTOMER, "UNSUBSCRIBE").await.status(), 200);
    let (_, contact) = app.conversation_of(CUSTOMER).await;
    let compliance = app.token(Role::Compliance).await;
    let response = app
        .api_get(&compliance, &format!("/api/v1/contacts/{contact}/consent"))
        .await;
    assert_eq!(response.status(), 200);
    let view: serde_json::Value = response.json().await.unwrap();
    assert_eq!(view["consent"][0]["business_number"], BUSINESS_NUMBER);
    assert_eq!(view["consent"][0]["state"], "opted_out");
    assert_eq!(view["consent"][0]["source"], "keyword");
    assert_eq!(view["consent"][0]["keyword"], "UNSUBSCRIBE");
    assert_eq!(view["history"].as_array().unwrap().len(), 1);
    assert_eq!(view["quiet_hours"]["window"], "08:00–21:00");
    assert_eq!(view["quiet_hours"]["time_zones"][0], "America/New_York");
    assert_eq!(view["quiet_hours"]["time_zone_source"], "default");
    assert_eq!(view["quiet_hours"]["reply_window_open"], true);
    assert_eq!(view["flooding"], false);
    // No customer data in the view: no number, no text.
    let text = view.to_string();
    for needle in phone_forms(CUSTOMER) {
        assert!(!text.contains(&needle), "{needle} in {text}");
    }
    let missing = app
        .api_get(&compliance, "/api/v1/contacts/no-such-contact/consent")
        .await;
    assert_eq!(missing.status(), 404);

    // The customer says where they are: an agent records the zone, which quiet hours then use
    // before the area code; the change is audited.
    let agent = app.token(Role::Agent).await;
    let zone_path = format!("/api/v1/contacts/{contact}/time-zone");
    let put = |token: String, body: serde_json::Value| {
        let (app, path) = (&app, &zone_path);
        async move {
            app.client
                .put(format!("{}{path}", app.address))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        put(
            agent.clone(),
            serde_json::json!({"time_zone": "Mars/Olympus"})
        )
        .await,
        422
    );
    assert_eq!(
        put(
            compliance.clone(),
            serde_json::json!({"time_zone": "America/Denver"})
        )
        .await,
        403
    );
    assert_eq!(
        put(
            agent.clone(),
            serde_json::json!({"time_zone": "America/Los_Angeles"})
        )
        .await,
        200
    );
    let view: serde_json::Value = app
        .api_get(&compliance, &format!("/api/v1/contacts/{contact}/consent"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["quiet_hours"]["time_zone_source"], "stored");
    assert_eq!(view["quiet_hours"]["time_zones"][0], "America/Los_Angeles");
    let audited: i64 =
        sqlx::query("SELECT COUNT(*) FROM audit_event WHERE action = 'contact.time_zone'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    assert_eq!(audited, 1);
    assert_eq!(
        put(agent, serde_json::json!({"time_zone": null})).await,
        200
    );
    fake.handle.stop(false).await;
}

/// A signed Twilio status callback for one of our messages.
async fn twilio_status(app: &TestApp, message_sid: &str, status: &str, code: &str) {
    let form = [
        ("MessageSid", message_sid),
        ("MessageStatus", status),
        ("ErrorCode", code),
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
}

async fn carrier_reports_of_opt_outs_arriving_early_or_late(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let conversation = app.conversation().await;
    let (_, contact) = app.conversation_of(CUSTOMER).await;

    // Early: the carrier takes the message but answers after we gave up, and its "opted out"
    // callback arrives before we know the message's id. The report is kept, and applied — to
    // consent too — when the id is recorded.
    fake.state.plan(fake::FailureRequest {
        mode: fake::FailureMode::Timeout,
        count: 1,
        carrier: None,
        retry_after: None,
        delay_ms: 4000,
    });
    let queued = app.queue_reply(&conversation, "Statement ready").await;
    let mut carrier_id = None;
    eventually(10, "the carrier to take the message", || {
        carrier_id = fake
            .state
            .records()
            .into_iter()
            .find(|r| r.kind == "send")
            .and_then(|r| r.message_id);
        let found = carrier_id.is_some();
        async move { found }
    })
    .await;
    let carrier_id = carrier_id.unwrap_or_default();
    twilio_status(&app, &carrier_id, "failed", "21610").await;
    assert!(
        consent_events(&app, &contact).await.is_empty(),
        "not ours yet"
    );
    assert_eq!(app.settled(&queued.outbox_id, 20).await, "accepted");
    assert_eq!(
        consent_events(&app, &contact).await,
        [(
            "opt_out".to_owned(),
            "carrier_report".to_owned(),
            Some("21610".to_owned())
        )]
    );

    // Late: the customer opts back in; a repeated report about the old message changes nothing.
    assert_eq!(app.text_from(CUSTOMER, "START").await.status(), 200);
    twilio_status(&app, &carrier_id, "failed", "21610").await;
    let events = consent_events(&app, &contact).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].0, "opt_in");
    fake.handle.stop(false).await;
}

async fn a_stop_overtakes_a_waiting_opt_in_confirmation(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    assert_eq!(app.text_from(CUSTOMER, "STOP").await.status(), 200);
    drained(&app).await;
    // The opt-in confirmation meets a throttled carrier and waits; meanwhile the customer stops
    // again. It must not arrive after the second opt-out.
    fake.state.plan(fake::FailureRequest {
        mode: fake::FailureMode::Throttle,
        count: 1,
        carrier: None,
        retry_after: Some(1),
        delay_ms: 0,
    });
    assert_eq!(app.text_from(CUSTOMER, "START").await.status(), 200);
    eventually(10, "the throttled attempt", || async {
        fake.state
            .records()
            .iter()
            .any(|r| r.kind == "send" && r.status == 429)
    })
    .await;
    assert_eq!(app.text_from(CUSTOMER, "STOP").await.status(), 200);
    drained(&app).await;
    let sent = sent_to(&fake, CUSTOMER);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter().all(|text| text.contains("unsubscribed")),
        "{sent:?}"
    );
    fake.handle.stop(false).await;
}

async fn a_flooding_contact_still_gets_one_opt_out_confirmation(backend: Backend) {
    // A low flood limit, so the limiter cannot refill a cell (one per 60/limit seconds) while a
    // loaded machine takes a few seconds over these 45 webhooks.
    let (app, fake) = TestApp::with_fake(
        backend,
        Options {
            limits: Some(drawbridge::compliance::limits::LimitSettings {
                flood_per_minute: 5,
                ..drawbridge::compliance::limits::LimitSettings::default()
            }),
            ..Options::default()
        },
    )
    .await;
    for _ in 0..40 {
        assert_eq!(app.text_from(CUSTOMER, "hello?").await.status(), 200);
    }
    // Flooding now. STOP is still confirmed (CTIA); toggling gets nothing more. The carrier
    // throttles that confirmation, so it is still waiting when the toggling ends opted out: it
    // must still go, since it is the only one the flood gets.
    fake.state.plan(fake::FailureRequest {
        mode: fake::FailureMode::Throttle,
        count: 1,
        carrier: None,
        retry_after: Some(1),
        delay_ms: 0,
    });
    assert_eq!(app.text_from(CUSTOMER, "STOP").await.status(), 200);
    eventually(10, "the throttled attempt", || async {
        fake.state
            .records()
            .iter()
            .any(|r| r.kind == "send" && r.status == 429)
    })
    .await;
    for body in ["START", "STOP", "START", "STOP"] {
        assert_eq!(app.text_from(CUSTOMER, body).await.status(), 200);
    }
    drained(&app).await;
    let sent = sent_to(&fake, CUSTOMER);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("unsubscribed"), "{sent:?}");
    let (_, contact) = app.conversation_of(CUSTOMER).await;
    assert_eq!(
        consent_events(&app, &contact).await.len(),
        5,
        "every change is recorded"
    );
    fake.handle.stop(false).await;
}

async fn a_consent_event_is_always_the_newest(backend: Backend) {
    use drawbridge::compliance::consent::{self, Kind, NewEvent, Outcome, Scope, Source, State};
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(app.text_from(CUSTOMER, "hi").await.status(), 200);
    let (_, contact) = app.conversation_of(CUSTOMER).await;
    let record = |kind, at: &'static str| {
        let app = &app;
        let contact = contact.clone();
        async move {
            let mut tx = app.state.db.pool().begin().await.unwrap();
            let recorded = consent::record(
                &mut tx,
                app.state.vault.audit_key(),
                Scope::Number,
                &NewEvent {
                    contact_id: &contact,
                    business_number: BUSINESS_NUMBER,
                    kind,
                    source: Source::Api,
                    keyword: None,
                    message_id: None,
                    actor: None,
                    at,
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            recorded
        }
    };
    // An opt-in at 12:00, then an opt-out whose time was taken earlier (another instance's
    // clock is behind, or its transaction waited for the lock).
    record(Kind::OptOut, "2026-11-27T11:00:00.000000Z").await;
    record(Kind::OptIn, "2026-11-27T12:00:00.000000Z").await;
    let late = record(Kind::OptOut, "2026-11-27T11:59:00.000000Z").await;
    assert_eq!(late.outcome, Outcome::Changed);
    assert_eq!(late.at, "2026-11-27T12:00:00.000001Z");
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let now = consent::current(&mut conn, &contact, BUSINESS_NUMBER, Scope::Number)
        .await
        .unwrap();
    assert_eq!(
        now.state,
        State::OptedOut,
        "the state says what record reported"
    );
}
