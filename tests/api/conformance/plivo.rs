//! Plivo's conformance table (signature V3 over the URL, the parameters and a nonce).

use super::{replace_once, run, Table};
use crate::both_backends;
use crate::helpers::*;

both_backends!(plivo);

const AUTH_ID: &str = "MAZDQ1ZWU4YWE2YTBKNT";
const AUTH_TOKEN_PLIVO: &str = "plivo-test-auth-token-0123456789abcdefghi";

async fn plivo(backend: Backend) {
    use base64::Engine;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_ID}:{AUTH_TOKEN_PLIVO}"));
    run(
        Table {
            carrier: drawbridge::carriers::Carrier::Plivo,
            accounts_toml: format!(
                r#"
[[accounts]]
name = "c"
carrier = "plivo"
auth_id = "{AUTH_ID}"
auth_token = "{AUTH_TOKEN_PLIVO}"
api_base = "{{api_base}}"

[[numbers]]
number = "{BUSINESS_NUMBER}"
account = "c"
throughput = 50.0
"#
            ),
            business: BUSINESS_NUMBER,
            signing_key: None,
            auth_headers: &[
                "x-plivo-signature-v3",
                "x-plivo-signature-ma-v3",
                "x-plivo-signature-v2",
                "x-plivo-signature-ma-v2",
            ],
            auth_field: None,
            unsigned_status: 403,
            tamper: Some(|body| replace_once(body, "forged", "forgeD")),
            media: true,
            malformed: (
                "To=15550001111&Text=%zz",
                "application/x-www-form-urlencoded",
            ),
            delivered: "delivered",
            failure: ("failed", Some("200"), "failed"),
            send_path: format!("/v1/Account/{AUTH_ID}/Message/"),
            send_auth: Some(format!("Basic {basic}")),
        },
        backend,
    )
    .await;
}
