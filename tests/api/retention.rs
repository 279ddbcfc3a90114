//! Issue #8 items 3 and 4: legal holds, the retention job, export and erasure.

use crate::both_backends;
use crate::helpers::{
    captured_logs, contains, eventually, no_worker, phone_forms, Backend, Options, TestApp,
};
use drawbridge::audit::Actor;
use drawbridge::phone::E164;
use drawbridge::store::tokens::Role;
use drawbridge::subject::{self, SubjectError};
use drawbridge::vault::{self, Aad};
use serde_json::{json, Value};
use sqlx::Row;

both_backends!(
    erasure_shreds_content_keeps_consent_and_respects_holds,
    retention_removes_expired_content_keeps_consent_and_held_data,
    legal_holds_through_the_api,
    a_text_arriving_during_erasure_is_never_sealed_under_the_destroyed_key
);

async fn app(
    backend: Backend,
    retention: Option<drawbridge::config::RetentionSettings>,
) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            clock: Some(drawbridge::clock::Clock::adjustable()),
            retention,
            ..Options::default()
        },
    )
    .await
}

async fn inbound_count(app: &TestApp, conversation: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM message WHERE conversation_id = $1 AND direction = 'inbound'")
        .bind(conversation)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0)
}

async fn audit_actions(app: &TestApp, action: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM audit_event WHERE action = $1")
        .bind(action)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0)
}

async fn erasure_shreds_content_keeps_consent_and_respects_holds(backend: Backend) {
    let app = app(backend, None).await;
    let phone = "+15557001234";
    assert_eq!(
        app.text_from(phone, "my order 77 is late, call me")
            .await
            .status(),
        200
    );
    assert_eq!(app.text_from(phone, "STOP").await.status(), 200);
    let (conversation, contact) = app.conversation_of(phone).await;
    let e164 = E164::parse(phone).unwrap();
    let compliance = app.token(Role::Compliance).await;

    // The sealed bytes as stored, read before erasing.
    let sealed: Vec<(String, Vec<u8>)> =
        sqlx::query("SELECT message_id, body_sealed FROM message WHERE conversation_id = $1")
            .bind(&conversation)
            .fetch_all(app.state.db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert!(sealed.len() >= 2, "two inbound messages and a confirmation");
    let wrapped_before: Vec<u8> =
        sqlx::query("SELECT data_key_wrapped FROM contact WHERE contact_id = $1")
            .bind(&contact)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    // They open now, with the contact's key.
    let dek = app
        .state
        .vault
        .unwrap_data_key(&wrapped_before, &contact)
        .unwrap();
    for (id, bytes) in &sealed {
        assert!(vault::open(&dek, bytes, Aad::new("message", "body_sealed", id)).is_ok());
    }
    drop(dek);
    let consent_before = app.count("consent_event").await;
    assert!(consent_before >= 1);

    // A legal hold on the contact makes erasure fail.
    let placed = app
        .api_post(
            &compliance,
            "/api/v1/legal-holds",
            json!({"phone": phone, "reason": "litigation", "note": "case 2026-14"}),
        )
        .await;
    assert_eq!(placed.status(), 201);
    let hold: Value = placed.json().await.unwrap();
    let now = app.state.clock.timestamp();
    let refused = subject::erase(
        &app.state.db,
        &app.state.vault,
        &e164,
        Actor::Cli("test"),
        &now,
    )
    .await;
    assert!(matches!(refused, Err(SubjectError::Held)), "{refused:?}");
    assert_eq!(
        inbound_count(&app, &conversation).await,
        2,
        "nothing erased under the hold"
    );
    // A hold on just one conversation blocks it too.
    let released = app
        .api_post(
            &compliance,
            &format!(
                "/api/v1/legal-holds/{}/release",
                hold["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(released.status(), 200);
    let placed = app
        .api_post(
            &compliance,
            "/api/v1/legal-holds",
            json!({"conversation_id": conversation, "reason": "subpoena"}),
        )
        .await;
    assert_eq!(placed.status(), 201);
    let hold: Value = placed.json().await.unwrap();
    assert!(matches!(
        subject::erase(
            &app.state.db,
            &app.state.vault,
            &e164,
            Actor::Cli("test"),
            &now
        )
        .await,
        Err(SubjectError::Held)
    ));
    app.api_post(
        &compliance,
        &format!(
            "/api/v1/legal-holds/{}/release",
            hold["id"].as_str().unwrap()
        ),
        json!({}),
    )
    .await;

    // Released: erasure goes through.
    let erasure = subject::erase(
        &app.state.db,
        &app.state.vault,
        &e164,
        Actor::Cli("test"),
        &now,
    )
    .await
    .unwrap();
    assert_eq!(erasure.contact_id, contact);
    assert_eq!(
        erasure.counts["messages"],
        u64::try_from(sealed.len()).unwrap()
    );

    // The earlier ciphertexts no longer open: not with the key the contact row now holds, and
    // the old wrapped key is gone from the database.
    let wrapped_after: Vec<u8> =
        sqlx::query("SELECT data_key_wrapped FROM contact WHERE contact_id = $1")
            .bind(&contact)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    assert_ne!(wrapped_after, wrapped_before);
    let current = app
        .state
        .vault
        .unwrap_data_key(&wrapped_after, &contact)
        .unwrap();
    for (id, bytes) in &sealed {
        assert!(
            vault::open(&current, bytes, Aad::new("message", "body_sealed", id)).is_err(),
            "an erased message opened"
        );
    }
    let stored = app.stored_bytes().await;
    assert!(
        stored
            .windows(wrapped_before.len())
            .all(|w| w != wrapped_before.as_slice()),
        "the old wrapped data key is still stored"
    );
    for (_, bytes) in &sealed {
        assert!(
            stored.windows(bytes.len()).all(|w| w != bytes.as_slice()),
            "an erased ciphertext is still stored"
        );
    }
    assert_eq!(app.count("conversation").await, 0);
    assert_eq!(app.count("message").await, 0);

    // Consent kept; the contact row and blind index kept, so the opt-out holds.
    assert_eq!(app.count("consent_event").await, consent_before);
    let newest: String = sqlx::query(
        "SELECT kind FROM consent_event WHERE contact_id = $1 AND kind IN ('opt_in', 'opt_out') ORDER BY at DESC, consent_event_id DESC LIMIT 1",
    )
    .bind(&contact)
    .fetch_one(app.state.db.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(newest, "opt_out");

    // Export now holds only the consent history.
    let bundle = subject::export(
        &app.state.db,
        &app.state.vault,
        &e164,
        Actor::Cli("test"),
        &now,
        &|_, _| {},
    )
    .await
    .unwrap();
    assert!(bundle.conversations.is_empty());
    assert_eq!(i64::try_from(bundle.consent.len()).unwrap(), consent_before);
    assert!(bundle.contact.erased_at.is_some());
    assert!(!bundle.to_html().contains(phone));

    // Audited by contact id, never the number; the number is nowhere in storage or logs.
    assert_eq!(audit_actions(&app, "subject.erase").await, 1);
    assert_eq!(audit_actions(&app, "legal_hold.place").await, 2);
    assert_eq!(audit_actions(&app, "legal_hold.release").await, 2);
    let stored = app.stored_bytes().await;
    for form in phone_forms(phone) {
        assert!(!contains(&stored, &form), "{form} stored");
        assert!(!captured_logs().contains(&form), "{form} logged");
    }
    assert!(
        !contains(&stored, "case 2026-14"),
        "the hold's note is sealed"
    );

    // The number texts again: a fresh key, a new conversation, still opted out.
    assert_eq!(app.text_from(phone, "hello again").await.status(), 200);
    let (again, same_contact) = app.conversation_of(phone).await;
    assert_eq!(same_contact, contact);
    assert_ne!(again, conversation);
    let bundle = subject::export(
        &app.state.db,
        &app.state.vault,
        &e164,
        Actor::Cli("test"),
        &now,
        &|_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(bundle.conversations.len(), 1);
    assert_eq!(bundle.conversations[0].messages[0].body, "hello again");
    assert!(bundle.contact.erased_at.is_none());
    let revived: Vec<u8> =
        sqlx::query("SELECT data_key_wrapped FROM contact WHERE contact_id = $1")
            .bind(&contact)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    let revived = app.state.vault.unwrap_data_key(&revived, &contact).unwrap();
    for (id, bytes) in &sealed {
        assert!(vault::open(&revived, bytes, Aad::new("message", "body_sealed", id)).is_err());
    }
    assert_eq!(audit_actions(&app, "subject.export").await, 2);
}

async fn retention_removes_expired_content_keeps_consent_and_held_data(backend: Backend) {
    let settings = drawbridge::config::RetentionSettings {
        interval: std::time::Duration::from_millis(200),
        ..Default::default()
    };
    let app = app(backend, Some(settings)).await;
    let (a, b) = ("+15557002001", "+15557002002");
    assert_eq!(app.text_from(a, "old news from a").await.status(), 200);
    assert_eq!(app.text_from(a, "STOP").await.status(), 200);
    assert_eq!(app.text_from(a, "START").await.status(), 200);
    assert_eq!(app.text_from(b, "old news from b").await.status(), 200);
    let (conversation_a, contact_a) = app.conversation_of(a).await;
    let (conversation_b, _) = app.conversation_of(b).await;
    let compliance = app.token(Role::Compliance).await;
    let placed = app
        .api_post(
            &compliance,
            "/api/v1/legal-holds",
            json!({"phone": b, "reason": "regulatory_inquiry"}),
        )
        .await;
    assert_eq!(placed.status(), 201);
    let hold: Value = placed.json().await.unwrap();
    let consent_a = app.count("consent_event").await;
    // A quiet-hours record (content-free; proof that quiet hours held a reply back).
    let now = app.state.clock.timestamp();
    sqlx::query(
        "INSERT INTO quiet_hold (hold_id, message_id, at, held_until) \
         SELECT 'quiet-1', message_id, $1, $1 FROM message WHERE conversation_id = $2 LIMIT 1",
    )
    .bind(&now)
    .bind(&conversation_a)
    .execute(app.state.db.pool())
    .await
    .unwrap();

    // Three years on: past the two-year content period, inside the five-year consent period.
    app.state
        .clock
        .advance(std::time::Duration::from_secs(3 * 365 * 24 * 3600));
    eventually(20, "a's content removed", || async {
        inbound_count(&app, &conversation_a).await == 0
    })
    .await;
    assert_eq!(
        inbound_count(&app, &conversation_b).await,
        1,
        "held data stays"
    );
    assert_eq!(
        app.count("consent_event").await,
        consent_a,
        "consent events stay"
    );
    assert_eq!(
        app.count("quiet_hold").await,
        1,
        "quiet-hours records stay as long as consent events"
    );
    // The run finishes after its last batch: its row and audit event follow shortly.
    eventually(20, "the run recorded", || async {
        let recorded: Option<String> = sqlx::query(
            "SELECT counts FROM retention_run WHERE finished_at IS NOT NULL AND counts LIKE '%\"message_content\":%' \
             AND counts NOT LIKE '%\"message_content\":0,%' LIMIT 1",
        )
        .fetch_optional(app.state.db.pool())
        .await
        .unwrap()
        .map(|r| r.get(0));
        recorded.is_some() && audit_actions(&app, "retention.run").await >= 1
    })
    .await;

    // Released: b's content goes at the next run.
    let released = app
        .api_post(
            &compliance,
            &format!(
                "/api/v1/legal-holds/{}/release",
                hold["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(released.status(), 200);
    eventually(20, "b's content removed after release", || async {
        inbound_count(&app, &conversation_b).await == 0
    })
    .await;

    // Six years on: old consent events go, but the newest opt-in/opt-out per number (the one
    // that decides whether it may be texted) never does.
    app.state
        .clock
        .advance(std::time::Duration::from_secs(3 * 365 * 24 * 3600));
    let kinds = || async {
        sqlx::query("SELECT kind FROM consent_event WHERE contact_id = $1 AND kind IN ('opt_in', 'opt_out')")
            .bind(&contact_a)
            .fetch_all(app.state.db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect::<Vec<_>>()
    };
    eventually(20, "the superseded opt-out removed", || async {
        kinds().await.len() == 1
    })
    .await;
    assert_eq!(
        kinds().await,
        vec!["opt_in".to_owned()],
        "the deciding opt-in stays"
    );
    eventually(20, "the quiet-hours record removed", || async {
        app.count("quiet_hold").await == 0
    })
    .await;
    for form in phone_forms(a) {
        assert!(!captured_logs().contains(&form), "{form} logged");
    }
}

async fn legal_holds_through_the_api(backend: Backend) {
    let app = app(backend, None).await;
    let phone = "+15557003003";
    assert_eq!(app.text_from(phone, "hi").await.status(), 200);
    let compliance = app.token(Role::Compliance).await;
    // Clear 4xx for bad input.
    for (body, status) in [
        (json!({"reason": "litigation"}), 400),
        (
            json!({"phone": phone, "conversation_id": "x", "reason": "litigation"}),
            400,
        ),
        (
            json!({"phone": "not a number", "reason": "litigation"}),
            400,
        ),
        (json!({"phone": phone, "reason": "because"}), 422),
        (
            json!({"phone": phone, "reason": "other", "note": "x".repeat(501)}),
            422,
        ),
        (json!({"phone": "+15557009999", "reason": "other"}), 404),
        (
            json!({"conversation_id": "no-such", "reason": "other"}),
            404,
        ),
    ] {
        let response = app
            .api_post(&compliance, "/api/v1/legal-holds", body.clone())
            .await;
        assert_eq!(response.status().as_u16(), status, "{body}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(phone), "the error echoes the number");
    }
    let placed: Value = app
        .api_post(
            &compliance,
            "/api/v1/legal-holds",
            json!({"phone": phone, "reason": "investigation", "note": "ticket ABC"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let listed: Value = app
        .api_get(&compliance, "/api/v1/legal-holds")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["legal_holds"][0]["id"], placed["id"]);
    assert_eq!(listed["legal_holds"][0]["note"], "ticket ABC");
    let path = format!(
        "/api/v1/legal-holds/{}/release",
        placed["id"].as_str().unwrap()
    );
    assert_eq!(
        app.api_post(&compliance, &path, json!({})).await.status(),
        200
    );
    assert_eq!(
        app.api_post(&compliance, &path, json!({})).await.status(),
        409
    );
    let listed: Value = app
        .api_get(&compliance, "/api/v1/legal-holds")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["legal_holds"], json!([]));
    let stored = app.stored_bytes().await;
    assert!(!contains(&stored, "ticket ABC"));
}

/// Texts from a number arrive while it is being erased, several rounds over. Whatever order the
/// transactions land in, every message stored for the contact must open with the contact's key
/// as it is afterwards: a message sealed under the destroyed key would be acknowledged to the
/// carrier and yet lost.
async fn a_text_arriving_during_erasure_is_never_sealed_under_the_destroyed_key(backend: Backend) {
    let app = app(backend, None).await;
    let phone = "+15557009876";
    let e164 = E164::parse(phone).unwrap();
    assert_eq!(app.text_from(phone, "hello").await.status(), 200);
    let (_, contact) = app.conversation_of(phone).await;
    for round in 0..6 {
        let now = app.state.clock.timestamp();
        let erase = subject::erase(
            &app.state.db,
            &app.state.vault,
            &e164,
            Actor::Cli("test"),
            &now,
        );
        let bodies: Vec<String> = (0..4).map(|i| format!("round {round} text {i}")).collect();
        let texts =
            futures_util::future::join_all(bodies.iter().map(|body| app.text_from(phone, body)));
        let (erased, responses) = tokio::join!(erase, texts);
        erased.unwrap();
        for response in responses {
            assert_eq!(response.status(), 200, "round {round}");
        }

        let row = sqlx::query(
            "SELECT data_key_wrapped, phone_sealed, erased_at FROM contact WHERE contact_id = $1",
        )
        .bind(&contact)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
        let wrapped: Vec<u8> = row.get(0);
        let phone_sealed: Vec<u8> = row.get(1);
        let erased_at: Option<String> = row.get(2);
        let dek = app.state.vault.unwrap_data_key(&wrapped, &contact).unwrap();
        let messages: Vec<(String, Vec<u8>)> = sqlx::query(
            "SELECT m.message_id, m.body_sealed FROM message m \
             JOIN conversation v ON v.conversation_id = m.conversation_id WHERE v.contact_id = $1",
        )
        .bind(&contact)
        .fetch_all(app.state.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        for (id, sealed) in &messages {
            assert!(
                vault::open(&dek, sealed, Aad::new("message", "body_sealed", id)).is_ok(),
                "round {round}: message {id} is sealed under a key the contact no longer has"
            );
        }
        if erased_at.is_none() {
            // Revived by a text after the erasure: its number is sealed again, under this key.
            let opened = vault::open(
                &dek,
                &phone_sealed,
                Aad::new("contact", "phone_sealed", &contact),
            )
            .unwrap();
            assert_eq!(opened.as_slice(), phone.as_bytes(), "round {round}");
        } else {
            assert!(
                messages.is_empty(),
                "round {round}: erased, yet messages remain"
            );
        }
    }
}
