//! Google RBM's conformance table. The service account key is the test-only key committed in
//! `carriers/rbm/`, with its `token_uri` pointed at the fake carrier.

use super::{run, Table};
use crate::both_backends;
use crate::helpers::*;
use base64::Engine;

both_backends!(rbm);

const CLIENT_TOKEN: &str = "drawbridge-test-client-token-0123";

/// Changes the event inside `message.data`, keeping the signature of the original.
fn tamper(body: &[u8]) -> Vec<u8> {
    let mut envelope: serde_json::Value = serde_json::from_slice(body).unwrap();
    let data = envelope["message"]["data"].as_str().unwrap();
    let event = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    let changed = String::from_utf8(event)
        .unwrap()
        .replacen("forged", "forgeD", 1);
    envelope["message"]["data"] = base64::engine::general_purpose::STANDARD
        .encode(changed)
        .into();
    serde_json::to_vec(&envelope).unwrap()
}

async fn rbm(backend: Backend) {
    let key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/carriers/rbm/TEST-ONLY-service-account-key.json"
    ))
    .unwrap();
    let mut key: serde_json::Value = serde_json::from_str(&key).unwrap();
    key["token_uri"] = "{api_base}/token".into();
    run(
        Table {
            carrier: drawbridge::carriers::Carrier::Rbm,
            accounts_toml: format!(
                r#"
[[accounts]]
name = "c"
carrier = "rbm"
agent_id = "drawbridge-test-agent"
client_token = "{CLIENT_TOKEN}"
service_account_key = '''{key}'''
api_base = "{{api_base}}"

[[numbers]]
rcs_agent = "drawbridge-test-agent"
account = "c"
throughput = 50.0
"#
            ),
            business: "rcs:drawbridge-test-agent",
            signing_key: None,
            auth_headers: &["x-goog-signature"],
            auth_field: None,
            unsigned_status: 403,
            tamper: Some(tamper),
            media: true,
            malformed: (
                r#"{"message": {"data": "not base64!"}}"#,
                "application/json",
            ),
            delivered: "DELIVERED",
            failure: ("TTL_EXPIRATION_REVOKED", None, "undelivered"),
            send_path: "/v1/phones/".to_owned(),
            send_auth: None,
        },
        backend,
    )
    .await;
}
