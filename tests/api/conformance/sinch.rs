//! Sinch's conformance table.

use super::{replace_once, run, Table};
use crate::both_backends;
use crate::helpers::*;

both_backends!(sinch);

const PLAN: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "sinch-test-api-token-0123456789";
const SECRET: &str = "sinch-test-webhook-secret";

async fn sinch(backend: Backend) {
    run(
        Table {
            carrier: drawbridge::carriers::Carrier::Sinch,
            accounts_toml: format!(
                r#"
[[accounts]]
name = "c"
carrier = "sinch"
service_plan_id = "{PLAN}"
api_token = "{TOKEN}"
webhook_secret = "{SECRET}"
api_base = "{{api_base}}"

[[numbers]]
number = "{BUSINESS_NUMBER}"
account = "c"
throughput = 50.0
"#
            ),
            business: BUSINESS_NUMBER,
            signing_key: None,
            auth_headers: &["x-sinch-webhook-signature"],
            auth_field: None,
            unsigned_status: 403,
            tamper: Some(|body| replace_once(body, "forged", "forgeD")),
            media: true,
            malformed: (r#"{"type": "mo_text", "body": "#, "application/json"),
            delivered: "Delivered",
            failure: ("Deleted", Some("257"), "undelivered"),
            send_path: format!("/xms/v1/{PLAN}/batches"),
            send_auth: Some(format!("Bearer {TOKEN}")),
        },
        backend,
    )
    .await;
}
