//! What particular carriers need beyond the shared conformance table.

use crate::both_backends;
use crate::helpers::*;
use drawbridge::carriers::{SimulatedInbound, SimulationKeys, WebhookRequest};
use drawbridge::phone::{BusinessAddress, E164};

both_backends!(
    plivo_v2_nonces_cannot_carry_another_body,
    vonage_unsigned_messages_callbacks_are_asked_again
);

fn rebuild(request: &WebhookRequest, drop_headers: &[&str], body: Vec<u8>) -> WebhookRequest {
    WebhookRequest::new(
        request.method,
        request.url.clone(),
        request
            .headers()
            .filter(|(n, _)| !drop_headers.contains(n))
            .map(|(n, v)| (n.to_owned(), v.to_owned())),
        body,
    )
}

async fn plivo_v2_nonces_cannot_carry_another_body(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            accounts_toml: Some(format!(
                "[[accounts]]\nname = \"c\"\ncarrier = \"plivo\"\nauth_id = \"MAZDQ1ZWU4YWE2YTBKNT\"\nauth_token = \"plivo-test-auth-token-0123456789abcdefghi\"\n\n[[numbers]]\nnumber = \"{BUSINESS_NUMBER}\"\naccount = \"c\"\n"
            )),
            ..Options::default()
        },
    )
    .await;
    let account = app.state.accounts[0].carrier.clone();
    let request = account
        .simulate_inbound(
            &format!("{}/webhooks/plivo", app.public_url),
            &SimulatedInbound {
                message_id: "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
                from: &E164::parse(CUSTOMER).unwrap(),
                to: &BusinessAddress::parse(BUSINESS_NUMBER).unwrap(),
                body: "see you at noon",
                media: &[],
            },
            &SimulationKeys {
                now: chrono::Utc::now(),
                signing_key: None,
            },
        )
        .unwrap();
    // As Plivo's messaging callbacks arrive: V2 headers only.
    let v3 = [
        "x-plivo-signature-v3",
        "x-plivo-signature-ma-v3",
        "x-plivo-signature-v3-nonce",
    ];
    let v2_only = rebuild(&request, &v3, request.body.to_vec());
    let send = |r: WebhookRequest| async move { drawbridge::simulate::deliver(&r).await.unwrap() };
    assert_eq!(
        send(rebuild(&v2_only, &[], v2_only.body.to_vec()))
            .await
            .status,
        200
    );
    // Plivo's retry: the same nonce and body.
    assert_eq!(
        send(rebuild(&v2_only, &[], v2_only.body.to_vec()))
            .await
            .status,
        200
    );
    assert_eq!(app.count("message").await, 1);
    // The captured signature and nonce on forged content: V2 does not cover the body, the nonce
    // guard does.
    let forged = String::from_utf8(v2_only.body.to_vec())
        .unwrap()
        .replace("see+you+at+noon", "send+your+PIN")
        .replace(
            "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
            "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb37",
        );
    let response = send(rebuild(&v2_only, &[], forged.into_bytes())).await;
    assert_eq!(response.status, 403, "{}", response.body);
    assert!(response.body.contains("nonce"), "{}", response.body);
    assert_eq!(app.count("message").await, 1);
}

async fn vonage_unsigned_messages_callbacks_are_asked_again(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            accounts_toml: Some(format!(
                "[[accounts]]\nname = \"c\"\ncarrier = \"vonage\"\napi_key = \"a1b2c3d4\"\napi_secret = \"vonage-test-api-secret-0123\"\nsignature_secret = \"vonage-test-signature-secret-0123456789\"\nsignature_method = \"sha256\"\n\n[[numbers]]\nnumber = \"{BUSINESS_NUMBER}\"\naccount = \"c\"\n"
            )),
            ..Options::default()
        },
    )
    .await;
    let body = serde_json::json!({
        "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
        "to": "14155550101",
        "from": BUSINESS_NUMBER.trim_start_matches('+'),
        "timestamp": "2026-11-27T12:00:00Z",
        "status": "delivered",
        "channel": "sms"
    });
    let response = app
        .client
        .post(format!("{}/webhooks/vonage/status", app.address))
        .json(&body)
        .send()
        .await
        .unwrap();
    // Vonage signs its retry: 503 asks for it, where 403 would lose the callback.
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(app.count("message_status_event").await, 0);
}
