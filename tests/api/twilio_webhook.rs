//! `POST /webhooks/twilio`: signed inbound messages land redacted and sealed, once.

use crate::both_backends;
use crate::helpers::*;
use drawbridge::store::messages;
use drawbridge::vault::{self, Aad};
use sqlx::Row;

const PAN: &str = "4539148803436467";
const SSN: &str = "219-09-9999";

both_backends!(
    signed_webhook_is_redacted_sealed_and_stored_once,
    bad_signatures_are_refused_and_store_nothing,
    malformed_requests_get_clear_4xx,
    database_unavailable_gets_503,
    logs_carry_no_body_phone_or_secret,
    concurrent_retries_store_one_message,
    public_url_with_https_prefix_and_query,
    json_body_with_body_sha256,
    mms_media_is_sealed,
    each_number_uses_its_own_accounts_token,
    another_master_key_is_refused,
);

async fn signed_webhook_is_redacted_sealed_and_stored_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = format!("my card is {PAN} and ssn {SSN}");
    let sid = new_sid();
    let form = inbound_form(&sid, &body);

    let response = app.post_signed("/webhooks/twilio", &form).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/xml; charset=utf-8"
    );
    assert!(response.headers().contains_key("x-request-id"));
    let twiml = response.text().await.unwrap();
    assert!(twiml.contains("<Response/>"), "{twiml}");
    assert_eq!(app.inbound_messages().await, 1);
    assert_eq!(app.count("contact").await, 1);
    assert_eq!(app.count("conversation").await, 1);

    // The stored bytes hold none of the sensitive values, the number or the body's words.
    let stored = app.stored_bytes().await;
    let mut forbidden = vec![
        PAN.to_owned(),
        "4539 1488 0343 6467".to_owned(),
        SSN.to_owned(),
        SSN.replace('-', ""),
        body.clone(),
    ];
    forbidden.extend(["my card is", "and ssn", "card is"].map(str::to_owned));
    forbidden.extend(phone_forms(CUSTOMER));
    for needle in &forbidden {
        assert!(
            !contains(&stored, needle),
            "stored bytes contain {needle:?}"
        );
    }

    // What is stored opens, under the contact's key, to the redacted text; findings hold counts only.
    let row = sqlx::query(
        "SELECT m.message_id, m.body_sealed, m.findings, m.status, m.channel, c.contact_id, c.data_key_wrapped, c.phone_sealed, m.direction, m.carrier_message_id \
         FROM message m JOIN conversation v ON v.conversation_id = m.conversation_id JOIN contact c ON c.contact_id = v.contact_id",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    let (message_id, sealed, findings, status, channel): (String, Vec<u8>, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let (contact_id, wrapped, phone_sealed): (String, Vec<u8>, Vec<u8>) =
        (row.get(5), row.get(6), row.get(7));
    assert_eq!(
        (row.get::<String, _>(8), row.get::<String, _>(9)),
        ("inbound".to_owned(), sid.clone())
    );
    let dek = app
        .state
        .vault
        .unwrap_data_key(&wrapped, &contact_id)
        .unwrap();
    let opened = vault::open(
        &dek,
        &sealed,
        Aad::new("message", "body_sealed", &message_id),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(opened.to_vec()).unwrap(),
        "my card is [CARD •••• 6467] and ssn [SSN]"
    );
    let phone = vault::open(
        &dek,
        &phone_sealed,
        Aad::new("contact", "phone_sealed", &contact_id),
    )
    .unwrap();
    assert_eq!(phone.as_slice(), CUSTOMER.as_bytes());
    // A ciphertext moved to another row does not open.
    assert!(vault::open(
        &dek,
        &sealed,
        Aad::new("message", "body_sealed", "another-row")
    )
    .is_err());
    assert_eq!(findings, r#"{"CARD_NUMBER":1,"US_SSN":1}"#);
    assert_eq!((status.as_str(), channel.as_str()), ("received", "sms"));

    // The same delivery again (a carrier retry): 200, nothing new.
    let again = app.post_signed("/webhooks/twilio", &form).await;
    assert_eq!(again.status(), 200);
    assert!(again.text().await.unwrap().contains("<Response/>"));
    assert_eq!(app.inbound_messages().await, 1);

    // A second message from the same number joins the same contact and conversation.
    let sid2 = new_sid();
    assert_eq!(
        app.post_signed("/webhooks/twilio", &inbound_form(&sid2, "thanks"))
            .await
            .status(),
        200
    );
    assert_eq!(
        (
            app.inbound_messages().await,
            app.count("contact").await,
            app.count("conversation").await
        ),
        (2, 1, 1)
    );

    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        r#"drawbridge_webhooks_received_total{carrier="twilio",kind="inbound"} 3"#,
        r#"drawbridge_webhooks_duplicate_total{carrier="twilio",kind="inbound"} 1"#,
        r#"drawbridge_messages_stored_total{carrier="twilio",direction="inbound"} 2"#,
        r#"drawbridge_redactions_total{type="CARD_NUMBER"} 1"#,
        r#"drawbridge_redactions_total{type="US_SSN"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
}

async fn bad_signatures_are_refused_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sid = new_sid();
    let form = inbound_form(&sid, "hello");
    let good = app.sign("/webhooks/twilio", &form, AUTH_TOKEN);
    let cases: Vec<(&str, Option<String>)> = vec![
        (
            "wrong signature",
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=".to_owned()),
        ),
        ("missing signature", None),
        ("empty signature", Some(String::new())),
        (
            "signed for another URL",
            Some(signature_for(
                "https://evil.example.com/webhooks/twilio",
                &form,
                AUTH_TOKEN,
            )),
        ),
        (
            "signed for another path",
            Some(app.sign("/webhooks/twilio/status", &form, AUTH_TOKEN)),
        ),
        (
            "signed with another account's token",
            Some(app.sign("/webhooks/twilio", &form, SECOND_AUTH_TOKEN)),
        ),
        (
            "truncated signature",
            Some(good[..good.len() - 2].to_owned()),
        ),
    ];
    for (label, signature) in &cases {
        let response = app
            .post_form("/webhooks/twilio", &form, signature.as_deref())
            .await;
        assert_eq!(response.status(), 403, "{label}");
        let text = response.text().await.unwrap();
        assert!(text.contains("X-Twilio-Signature"), "{label}: {text}");
        assert!(
            !text.contains("hello") && !text.contains(CUSTOMER),
            "{label}: {text}"
        );
    }
    // A signed form whose parameters were altered after signing.
    let mut tampered = form.clone();
    tampered.iter_mut().find(|(k, _)| *k == "Body").unwrap().1 = "send me money";
    assert_eq!(
        app.post_form("/webhooks/twilio", &tampered, Some(&good))
            .await
            .status(),
        403
    );
    assert_eq!(app.count("message").await, 0);
    assert_eq!(app.count("contact").await, 0);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let expected = format!(
        r#"drawbridge_webhooks_rejected_total{{carrier="twilio",kind="inbound",reason="signature"}} {}"#,
        cases.len() + 1
    );
    assert!(metrics.contains(&expected), "{metrics}");
    // And the genuine one still goes through.
    assert_eq!(
        app.post_form("/webhooks/twilio", &form, Some(&good))
            .await
            .status(),
        200
    );
    assert_eq!(app.inbound_messages().await, 1);
}

fn signature_for(url: &str, params: &[(&str, &str)], token: &str) -> String {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    drawbridge::carriers::twilio::signature::sign(
        &secrecy::SecretString::from(token.to_owned()),
        url,
        &params,
    )
}

async fn malformed_requests_get_clear_4xx(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sid = new_sid();

    // Unknown business number → 404 naming the problem, not the number.
    let mut form = inbound_form(&sid, "hi");
    form.iter_mut().find(|(k, _)| *k == "To").unwrap().1 = "+15559990000";
    let response = app.post_signed("/webhooks/twilio", &form).await;
    assert_eq!(response.status(), 404);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("`To`") && !text.contains("5559990000"),
        "{text}"
    );

    // Missing `To` → 400.
    let form: Vec<_> = inbound_form(&sid, "hi")
        .into_iter()
        .filter(|(k, _)| *k != "To")
        .collect();
    let response = app.post_signed("/webhooks/twilio", &form).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("`To`"));

    // Signed but without MessageSid → 400 naming the field.
    let form: Vec<_> = inbound_form(&sid, "hi")
        .into_iter()
        .filter(|(k, _)| !k.ends_with("Sid") || *k == "AccountSid")
        .collect();
    let response = app.post_signed("/webhooks/twilio", &form).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("MessageSid"));

    // A body that is not a well-formed form → 400.
    let response = app
        .client
        .post(format!("{}/webhooks/twilio", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("To=%2B15550001111&Body=%zz")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("percent-escape"));

    // Not a form at all → 415.
    let response = app
        .client
        .post(format!("{}/webhooks/twilio", app.address))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);

    // Over 64 KiB → 413, with and without a Content-Length.
    let big = "x".repeat(70 * 1024);
    let mut form = inbound_form(&sid, &big);
    form.push(("Extra", "1"));
    let response = app.post_signed("/webhooks/twilio", &form).await;
    assert_eq!(response.status(), 413);
    assert!(response.text().await.unwrap().contains("65536"));
    let chunks =
        futures_util::stream::iter((0..70).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 1024])));
    let response = app
        .client
        .post(format!("{}/webhooks/twilio", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // Twilio can be configured to use GET: without parameters it is malformed, not missing.
    let response = app.get("/webhooks/twilio").await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("`To`"));
    // A carrier we do not have → 404; a method a carrier never uses → 405.
    assert_eq!(app.get("/webhooks/pigeon").await.status(), 404);
    assert_eq!(app.get("/webhooks/telnyx").await.status(), 405);
    assert_eq!(app.count("message").await, 0);
}

async fn database_unavailable_gets_503(backend: Backend) {
    let app = TestApp::spawn(backend.clone()).await;
    let sid = new_sid();

    if let Backend::Postgres(server) = &backend {
        // The database disappears under the running service.
        let pg = app.pg.as_ref().unwrap();
        crate::helpers::PgDatabase::drop_now(server, &pg.name).await;
        let response = app
            .post_signed("/webhooks/twilio", &inbound_form(&sid, "are you there?"))
            .await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "30");
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("a retry is never stored twice"));
        assert_eq!(app.get("/readyz").await.status(), 503);
    } else {
        // Another process holds SQLite's write lock past the busy timeout.
        use sqlx::{Connection, Executor};
        let mut locker = sqlx::SqliteConnection::connect(&app.database_url)
            .await
            .unwrap();
        locker.execute("BEGIN EXCLUSIVE").await.unwrap();
        let response = app
            .post_signed("/webhooks/twilio", &inbound_form(&sid, "are you there?"))
            .await;
        assert_eq!(response.status(), 503);
        locker.execute("ROLLBACK").await.unwrap();
        // Once the lock is gone the carrier's retry is stored.
        assert_eq!(
            app.post_signed("/webhooks/twilio", &inbound_form(&sid, "are you there?"))
                .await
                .status(),
            200
        );
        assert_eq!(app.inbound_messages().await, 1);
    }

    // The pool is closed (the database is gone for good).
    app.state.db.close().await;
    let response = app
        .post_signed(
            "/webhooks/twilio",
            &inbound_form(&new_sid(), "still there?"),
        )
        .await;
    assert_eq!(response.status(), 503);
    let response = app
        .post_signed(
            "/webhooks/twilio/status",
            &[
                ("MessageSid", "SM1"),
                ("MessageStatus", "sent"),
                ("From", BUSINESS_NUMBER),
                ("AccountSid", ACCOUNT_SID),
            ],
        )
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/healthz").await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .contains(r#"drawbridge_webhooks_unavailable_total{carrier="twilio",kind="inbound"}"#),
        "{metrics}"
    );
}

async fn logs_carry_no_body_phone_or_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = format!("Quokka umbrella: my card is {PAN} and ssn {SSN}");
    let sid = new_sid();
    let form = inbound_form(&sid, &body);
    let stored = app.post_signed("/webhooks/twilio", &form).await;
    assert_eq!(stored.status(), 200);
    let request_id = stored.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // Every other path a webhook can take: retry, bad signature, unknown number, malformed,
    // status callback, and the database gone.
    assert_eq!(
        app.post_signed("/webhooks/twilio", &form).await.status(),
        200
    );
    assert_eq!(
        app.post_form("/webhooks/twilio", &form, Some("bad"))
            .await
            .status(),
        403
    );
    let mut bad_to = form.clone();
    bad_to.iter_mut().find(|(k, _)| *k == "To").unwrap().1 = "+15559990000";
    assert_eq!(
        app.post_signed("/webhooks/twilio", &bad_to).await.status(),
        404
    );
    let no_sid: Vec<_> = form
        .iter()
        .copied()
        .filter(|(k, _)| !k.ends_with("Sid") || *k == "AccountSid")
        .collect();
    assert_eq!(
        app.post_signed("/webhooks/twilio", &no_sid).await.status(),
        400
    );
    let status = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "delivered"),
        ("From", BUSINESS_NUMBER),
        ("To", CUSTOMER),
        ("AccountSid", ACCOUNT_SID),
    ];
    assert_eq!(
        app.post_signed("/webhooks/twilio/status", &status)
            .await
            .status(),
        200
    );
    app.state.db.close().await;
    let retry = inbound_form(&sid, &body);
    assert_eq!(
        app.post_signed("/webhooks/twilio", &retry).await.status(),
        503
    );

    let logs = captured_logs();
    // The capture holds this test's own request (other tests share the process-wide buffer).
    assert!(
        logs.contains(&request_id),
        "the capture must hold this test's request"
    );
    assert!(logs.contains("webhook not stored: database unavailable"));
    let mut forbidden = vec![
        body.clone(),
        "Quokka".to_owned(),
        PAN.to_owned(),
        SSN.to_owned(),
        AUTH_TOKEN.to_owned(),
        "5559990000".to_owned(),
    ];
    forbidden.extend(phone_forms(CUSTOMER));
    for needle in &forbidden {
        assert!(!logs.contains(needle.as_str()), "logs contain {needle:?}");
    }
}

async fn concurrent_retries_store_one_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sid = new_sid();
    let form = inbound_form(&sid, "my card is 4111111111111111");
    let signature = app.sign("/webhooks/twilio", &form, AUTH_TOKEN);
    let posts = (0..8).map(|_| app.post_form("/webhooks/twilio", &form, Some(&signature)));
    let statuses: Vec<u16> = futures_util::future::join_all(posts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses, vec![200; 8]);
    assert_eq!(app.inbound_messages().await, 1);
    // Different customers writing at once each get their own contact.
    let posts = (0..6).map(|i| {
        let app = &app;
        async move {
            let sid = new_sid();
            let from = format!("+1555300000{i}");
            let mut form = inbound_form(&sid, "hello");
            form.iter_mut().find(|(k, _)| *k == "From").unwrap().1 = &from;
            app.post_signed("/webhooks/twilio", &form)
                .await
                .status()
                .as_u16()
        }
    });
    assert_eq!(futures_util::future::join_all(posts).await, vec![200; 6]);
    assert_eq!(
        (app.inbound_messages().await, app.count("contact").await),
        (7, 7)
    );
    // A new number sending several different messages at once: one contact, one conversation,
    // every message kept (this races the contact insert and the one-open-conversation index).
    let burst_from = "+15554440000";
    let posts = (0..8).map(|_| {
        let app = &app;
        async move {
            let sid = new_sid();
            let mut form = inbound_form(&sid, "are you open?");
            form.iter_mut().find(|(k, _)| *k == "From").unwrap().1 = burst_from;
            app.post_signed("/webhooks/twilio", &form)
                .await
                .status()
                .as_u16()
        }
    });
    assert_eq!(futures_util::future::join_all(posts).await, vec![200; 8]);
    assert_eq!(
        (
            app.inbound_messages().await,
            app.count("contact").await,
            app.count("conversation").await
        ),
        (15, 8, 8)
    );
}

async fn public_url_with_https_prefix_and_query(backend: Backend) {
    // Behind a TLS-terminating proxy that strips the /drawbridge prefix.
    let app = TestApp::spawn_with(
        backend,
        Options {
            public_url: Some("https://sms.example.com/drawbridge".to_owned()),
            ..Options::default()
        },
    )
    .await;
    let sid = new_sid();
    let form = inbound_form(&sid, "hello");
    let path = "/webhooks/twilio?channel=main&note=it%27s+ok";
    let public = format!("https://sms.example.com/drawbridge{path}");
    // Signed for the public URL, raw query included: accepted.
    let signature = signature_for(&public, &form, AUTH_TOKEN);
    assert_eq!(
        app.post_form(path, &form, Some(&signature)).await.status(),
        200
    );
    // Twilio's port variant: signed with :443.
    let sid2 = new_sid();
    let form2 = inbound_form(&sid2, "hello");
    let signature = signature_for(
        &format!("https://sms.example.com:443/drawbridge{path}"),
        &form2,
        AUTH_TOKEN,
    );
    assert_eq!(
        app.post_form(path, &form2, Some(&signature)).await.status(),
        200
    );
    // Signed for the address the request really reached: that is not what Twilio signs. Refused.
    let form3_sid = new_sid();
    let form3 = inbound_form(&form3_sid, "hello");
    let signature = signature_for(&format!("{}{path}", app.address), &form3, AUTH_TOKEN);
    assert_eq!(
        app.post_form(path, &form3, Some(&signature)).await.status(),
        403
    );
    // A re-encoded query (`'` instead of `%27`) is a different URL.
    let signature = signature_for(
        "https://sms.example.com/drawbridge/webhooks/twilio?channel=main&note=it's+ok",
        &form3,
        AUTH_TOKEN,
    );
    assert_eq!(
        app.post_form(path, &form3, Some(&signature)).await.status(),
        403
    );
    assert_eq!(app.count("message").await, 2);
}

async fn json_body_with_body_sha256(backend: Backend) {
    use sha2::Digest;
    let app = TestApp::spawn(backend).await;
    let sid = new_sid();
    let body = serde_json::json!({ "MessageSid": sid, "From": CUSTOMER, "To": BUSINESS_NUMBER, "Body": "my ssn is 219-09-9999", "NumMedia": 0 }).to_string();
    let hash = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    let path = format!("/webhooks/twilio?bodySHA256={hash}");
    let signature = app.sign(&path, &[], AUTH_TOKEN);
    let post = |body: String, signature: String| {
        app.client
            .post(format!("{}{path}", app.address))
            .header("content-type", "application/json")
            .header("X-Twilio-Signature", signature)
            .body(body)
            .send()
    };
    assert_eq!(
        post(body.clone(), signature.clone())
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(app.inbound_messages().await, 1);
    // The same signature over a forged body fails on the hash.
    let forged = body.replace("219-09-9999", "nothing here");
    assert_eq!(post(forged, signature).await.unwrap().status(), 403);
    assert_eq!(app.inbound_messages().await, 1);
}

async fn mms_media_is_sealed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/carriers/twilio/inbound-mms.form"
    ))
    .unwrap();
    let pairs = drawbridge::carriers::form::parse(text.trim().as_bytes()).unwrap();
    // Point the courier fixture at our numbers, with real-looking media URLs.
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "To" => (k, BUSINESS_NUMBER.to_owned()),
            "From" => (k, CUSTOMER.to_owned()),
            "MediaUrl0" => (
                k,
                "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME-private-0"
                    .to_owned(),
            ),
            _ => (k, v),
        })
        .collect();
    let form: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        app.post_signed("/webhooks/twilio", &form).await.status(),
        200
    );
    let row = sqlx::query("SELECT channel, media_count, message_id FROM message")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), "mms");
    assert_eq!(row.get::<i64, _>(1), 2);
    let message_id: String = row.get(2);
    // One row per file: metadata in clear, the URL sealed and bound to its message and position.
    let media = sqlx::query(
        "SELECT position, content_type, url_sealed FROM message_media WHERE message_id = $1 ORDER BY position",
    )
    .bind(&message_id)
    .fetch_all(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(media.len(), 2);
    assert_eq!(media[0].get::<i64, _>(0), 0);
    assert_eq!(media[0].get::<Option<String>, _>(1), None);
    let contact: (String, Vec<u8>) = {
        let c = sqlx::query("SELECT contact_id, data_key_wrapped FROM contact")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
        (c.get(0), c.get(1))
    };
    let dek = app
        .state
        .vault
        .unwrap_data_key(&contact.1, &contact.0)
        .unwrap();
    let url = vault::open(
        &dek,
        &media[0].get::<Vec<u8>, _>(2),
        Aad::new("message_media", "url_sealed", &format!("{message_id}/0")),
    )
    .unwrap();
    assert!(String::from_utf8(url.to_vec())
        .unwrap()
        .ends_with("ME-private-0"));
    assert!(!contains(&app.stored_bytes().await, "ME-private-0"));
}

async fn each_number_uses_its_own_accounts_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sid = new_sid();
    let mut form = inbound_form(&sid, "hello second");
    form.iter_mut().find(|(k, _)| *k == "To").unwrap().1 = SECOND_BUSINESS_NUMBER;
    form.iter_mut().find(|(k, _)| *k == "AccountSid").unwrap().1 = SECOND_ACCOUNT_SID;
    // The main account's token is the wrong one for the second account's number.
    let wrong = app.sign("/webhooks/twilio", &form, AUTH_TOKEN);
    assert_eq!(
        app.post_form("/webhooks/twilio", &form, Some(&wrong))
            .await
            .status(),
        403
    );
    let right = app.sign("/webhooks/twilio", &form, SECOND_AUTH_TOKEN);
    assert_eq!(
        app.post_form("/webhooks/twilio", &form, Some(&right))
            .await
            .status(),
        200
    );
    let number: String = sqlx::query("SELECT business_number FROM conversation")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(number, SECOND_BUSINESS_NUMBER);
}

async fn another_master_key_is_refused(backend: Backend) {
    let first = TestApp::spawn(backend.clone()).await;
    assert_eq!(
        first
            .post_signed("/webhooks/twilio", &inbound_form(&new_sid(), "hi"))
            .await
            .status(),
        200
    );
    let reuse = Some((first.data_dir.clone(), first.database_url.clone()));
    // The same key starts again on the same data (without a second outbox worker, which SQLite
    // would refuse while the first runs).
    let again = TestApp::try_spawn_with(
        backend.clone(),
        Options {
            reuse: reuse.clone(),
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    assert!(again.is_ok(), "{:?}", again.err());
    // A different key is refused before it can write anything.
    let other = TestApp::try_spawn_with(
        backend,
        Options {
            reuse,
            master_key: Some([9; 32]),
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    let message = format!(
        "{:#}",
        other.err().expect("a different master key must be refused")
    );
    assert!(
        message.contains("master key is not the key this database was written with"),
        "{message}"
    );
}

// Status callbacks live beside inbound ones: they need a stored outbound message.
both_backends!(status_callbacks_update_delivery_status);

async fn status_callbacks_update_delivery_status(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // An inbound message makes the contact and conversation; then an outbound message as the
    // outbox will store it.
    assert_eq!(
        app.post_signed("/webhooks/twilio", &inbound_form(&new_sid(), "hi"))
            .await
            .status(),
        200
    );
    let conversation_id: String = sqlx::query("SELECT conversation_id FROM conversation")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    let outbound_sid = new_sid();
    insert_outbound(&app, &conversation_id, &outbound_sid, "queued").await;

    let status_of = || async {
        let row = sqlx::query(
            "SELECT status, status_error_code FROM message WHERE carrier_message_id = $1",
        )
        .bind(&outbound_sid)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
        (row.get::<String, _>(0), row.get::<Option<String>, _>(1))
    };
    let callback = |status: &'static str, error: Option<&'static str>| {
        let mut form = vec![
            ("SmsSid", outbound_sid.as_str()),
            ("SmsStatus", status),
            ("MessageStatus", status),
            ("To", CUSTOMER),
            ("MessageSid", outbound_sid.as_str()),
            ("AccountSid", ACCOUNT_SID),
            ("From", BUSINESS_NUMBER),
            ("ApiVersion", "2010-04-01"),
        ];
        if let Some(code) = error {
            form.push(("ErrorCode", code));
        }
        form
    };

    assert_eq!(
        app.post_signed("/webhooks/twilio/status", &callback("sending", None))
            .await
            .status(),
        200
    );
    assert_eq!(status_of().await, ("queued".to_owned(), None));
    assert_eq!(
        app.post_signed("/webhooks/twilio/status", &callback("sent", None))
            .await
            .status(),
        200
    );
    assert_eq!(status_of().await.0, "sent");
    assert_eq!(
        app.post_signed("/webhooks/twilio/status", &callback("delivered", None))
            .await
            .status(),
        200
    );
    assert_eq!(status_of().await.0, "delivered");
    // A late `sent` does not move it backwards.
    assert_eq!(
        app.post_signed("/webhooks/twilio/status", &callback("sent", None))
            .await
            .status(),
        200
    );
    assert_eq!(status_of().await.0, "delivered");
    assert_eq!(
        app.post_signed("/webhooks/twilio/status", &callback("read", None))
            .await
            .status(),
        200
    );
    assert_eq!(status_of().await.0, "read");
    // Every callback is kept as an event.
    assert_eq!(app.count("message_status_event").await, 5);

    // Failures carry the error code.
    let form = callback("undelivered", Some("30003"));
    // (read outranks undelivered, so use a fresh message id for this one)
    let failed_sid = new_sid();
    let form: Vec<(&str, &str)> = form
        .into_iter()
        .map(|(k, v)| {
            if v == outbound_sid {
                (k, failed_sid.as_str())
            } else {
                (k, v)
            }
        })
        .collect();
    insert_outbound(&app, &conversation_id, &failed_sid, "sent").await;
    assert_eq!(
        app.post_signed("/webhooks/twilio/status", &form)
            .await
            .status(),
        200
    );
    let row =
        sqlx::query("SELECT status, status_error_code FROM message WHERE carrier_message_id = $1")
            .bind(&failed_sid)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(
        (row.get::<String, _>(0), row.get::<Option<String>, _>(1)),
        ("undelivered".to_owned(), Some("30003".to_owned()))
    );

    // A callback for a message we do not have yet is kept, answered 200, and changes nothing.
    let unknown = new_sid();
    let form: Vec<(&str, &str)> = callback("delivered", None)
        .into_iter()
        .map(|(k, v)| {
            if v == outbound_sid {
                (k, unknown.as_str())
            } else {
                (k, v)
            }
        })
        .collect();
    assert_eq!(
        app.post_signed("/webhooks/twilio/status", &form)
            .await
            .status(),
        200
    );
    assert_eq!(app.count("message_status_event").await, 7);

    // Status callbacks are authenticated like everything else.
    let form = callback("failed", None);
    assert_eq!(
        app.post_form("/webhooks/twilio/status", &form, Some("bad"))
            .await
            .status(),
        403
    );
    assert_eq!(
        app.post_form("/webhooks/twilio/status", &form, None)
            .await
            .status(),
        403
    );
    assert_eq!(status_of().await.0, "read");
    // Missing MessageStatus → 400.
    let form: Vec<_> = callback("failed", None)
        .into_iter()
        .filter(|(k, _)| !k.ends_with("Status"))
        .collect();
    assert_eq!(
        app.post_signed("/webhooks/twilio/status", &form)
            .await
            .status(),
        400
    );
    // An account we do not know → 404.
    let form: Vec<_> = callback("sent", None)
        .into_iter()
        .map(|(k, v)| match k {
            "From" => (k, "+15559990000"),
            "AccountSid" => (k, "ACnope"),
            _ => (k, v),
        })
        .collect();
    assert_eq!(
        app.post_signed("/webhooks/twilio/status", &form)
            .await
            .status(),
        404
    );
    // Statuses outside our vocabulary are acknowledged, kept as `unknown` events, and not applied.
    assert_eq!(
        app.post_signed("/webhooks/twilio/status", &callback("received", None))
            .await
            .status(),
        200
    );
    assert_eq!(status_of().await.0, "read");
    assert_eq!(app.count("message_status_event").await, 8);
    let kept: String =
        sqlx::query("SELECT status FROM message_status_event WHERE carrier_status = 'received'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    assert_eq!(kept, "unknown");

    // Final statuses do not flip into one another, and a reported error code is kept.
    let flip: Vec<(&str, &str)> = callback("delivered", None)
        .into_iter()
        .map(|(k, v)| {
            if v == outbound_sid {
                (k, failed_sid.as_str())
            } else {
                (k, v)
            }
        })
        .collect();
    assert_eq!(
        app.post_signed("/webhooks/twilio/status", &flip)
            .await
            .status(),
        200
    );
    let row =
        sqlx::query("SELECT status, status_error_code FROM message WHERE carrier_message_id = $1")
            .bind(&failed_sid)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(
        (row.get::<String, _>(0), row.get::<Option<String>, _>(1)),
        ("undelivered".to_owned(), Some("30003".to_owned()))
    );
}

both_backends!(engine_findings_and_topics_reach_storage_and_metrics);

async fn engine_findings_and_topics_reach_storage_and_metrics(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = "someone stole my card, routing 021000021 acct 12345678, email jo@example.com";
    assert_eq!(
        app.post_signed("/webhooks/twilio", &inbound_form(&new_sid(), body))
            .await
            .status(),
        200
    );
    let findings: String = sqlx::query("SELECT findings FROM message")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        findings,
        r#"{"BANK_ACCOUNT":1,"EMAIL":1,"ROUTING_NUMBER":1}"#
    );
    let stored = app.stored_bytes().await;
    for needle in ["021000021", "12345678", "jo@example.com", "someone stole"] {
        assert!(!contains(&stored, needle), "{needle}");
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        r#"drawbridge_topic_escalations_total{topic="fraud"} 1"#,
        r#"drawbridge_topic_escalations_total{topic="payment"} 1"#,
        r#"drawbridge_redactions_total{type="ROUTING_NUMBER"} 1"#,
        r#"drawbridge_redactions_total{type="EMAIL"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
}

/// Stores an outbound message as the outbox will, for status callbacks to update.
async fn insert_outbound(
    app: &TestApp,
    conversation_id: &str,
    carrier_message_id: &str,
    status: &str,
) {
    let now = drawbridge::store::now();
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let message = messages::NewMessage {
        message_id: &drawbridge::store::new_id(),
        conversation_id,
        direction: "outbound",
        channel: "sms",
        carrier: "twilio",
        carrier_message_id: Some(carrier_message_id),
        body_sealed: b"sealed",
        media_count: 0,
        findings_json: "{}",
        status,
        created_at: &now,
    };
    assert!(messages::insert(&mut conn, &message).await.unwrap());
}
