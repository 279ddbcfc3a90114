//! Twilio's conformance table.

use super::{replace_once, run, Table};
use crate::both_backends;
use crate::helpers::*;

both_backends!(twilio);

async fn twilio(backend: Backend) {
    use base64::Engine;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    run(
        Table {
            carrier: drawbridge::carriers::Carrier::Twilio,
            accounts_toml: format!(
                r#"
[[accounts]]
name = "c"
carrier = "twilio"
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
api_base = "{{api_base}}"

[[numbers]]
number = "{BUSINESS_NUMBER}"
account = "c"
throughput = 50.0
"#
            ),
            business: BUSINESS_NUMBER,
            signing_key: None,
            auth_headers: &["x-twilio-signature"],
            auth_field: None,
            unsigned_status: 403,
            tamper: Some(|body| replace_once(body, "forged", "forgeD")),
            media: true,
            malformed: (
                "To=%2B15550001111&Body=%zz",
                "application/x-www-form-urlencoded",
            ),
            delivered: "delivered",
            failure: ("undelivered", Some("30007"), "undelivered"),
            send_path: format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"),
            send_auth: Some(format!("Basic {basic}")),
        },
        backend,
    )
    .await;
}
