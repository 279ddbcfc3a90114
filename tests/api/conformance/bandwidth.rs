//! Bandwidth's conformance table. Authenticity is HTTP Basic, which does not cover the body.

use super::{run, Table};
use crate::both_backends;
use crate::helpers::*;

both_backends!(bandwidth);

const ACCOUNT_ID: &str = "9900000";
const APPLICATION_ID: &str = "93de2206-9669-4e07-948d-329f4b722ee2";
const API_PASSWORD: &str = "bandwidth-test-api-password";

async fn bandwidth(backend: Backend) {
    use base64::Engine;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("api-user:{API_PASSWORD}"));
    run(
        Table {
            carrier: drawbridge::carriers::Carrier::Bandwidth,
            accounts_toml: format!(
                r#"
[[accounts]]
name = "c"
carrier = "bandwidth"
account_id = "{ACCOUNT_ID}"
application_id = "{APPLICATION_ID}"
username = "api-user"
password = "{API_PASSWORD}"
webhook_username = "bw-callbacks"
webhook_password = "bandwidth-test-webhook-password"
api_base = "{{api_base}}"

[[numbers]]
number = "{BUSINESS_NUMBER}"
account = "c"
throughput = 50.0
"#
            ),
            business: BUSINESS_NUMBER,
            signing_key: None,
            auth_headers: &["authorization"],
            auth_field: None,
            unsigned_status: 403,
            tamper: None,
            media: true,
            malformed: (
                r#"[{"type": "message-received", "message": "#,
                "application/json",
            ),
            delivered: "message-delivered",
            failure: ("message-failed", Some("4775"), "failed"),
            send_path: format!("/api/v2/users/{ACCOUNT_ID}/messages"),
            send_auth: Some(format!("Basic {basic}")),
        },
        backend,
    )
    .await;
}
