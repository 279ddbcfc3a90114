//! Telnyx's conformance table. Webhooks are signed with the RFC 8032 §7.1 test seed, whose
//! public key the account holds (development mode accepts it; production refuses it).

use super::{replace_once, run, Table};
use crate::both_backends;
use crate::helpers::*;

both_backends!(telnyx);

const SEED: &str = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
const PUBLIC_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
const API_KEY: &str = "KEY0123456789ABCDEF_test-telnyx-key";

async fn telnyx(backend: Backend) {
    run(
        Table {
            carrier: drawbridge::carriers::Carrier::Telnyx,
            accounts_toml: format!(
                r#"
[[accounts]]
name = "c"
carrier = "telnyx"
api_key = "{API_KEY}"
public_key = "{PUBLIC_KEY}"
api_base = "{{api_base}}"

[[numbers]]
number = "{BUSINESS_NUMBER}"
account = "c"
throughput = 50.0
"#
            ),
            business: BUSINESS_NUMBER,
            signing_key: Some(SEED),
            auth_headers: &["telnyx-signature-ed25519"],
            auth_field: None,
            unsigned_status: 403,
            tamper: Some(|body| replace_once(body, "forged", "forgeD")),
            media: true,
            malformed: (
                r#"{"data": {"event_type": "message.received""#,
                "application/json",
            ),
            delivered: "delivered",
            failure: ("delivery_failed", Some("40300"), "undelivered"),
            send_path: "/v2/messages".to_owned(),
            send_auth: Some(format!("Bearer {API_KEY}")),
        },
        backend,
    )
    .await;
}
