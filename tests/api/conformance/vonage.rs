//! Vonage's conformance tables: the Messages API (JWT-signed JSON, SMS with media as MMS) and the
//! SMS API (signed parameters, delivery receipts).

use super::{replace_once, run, Table};
use crate::both_backends;
use crate::helpers::*;

both_backends!(vonage_messages_api, vonage_sms_api);

const API_KEY: &str = "a1b2c3d4";
const API_SECRET: &str = "vonage-test-api-secret-0123";
const SIGNATURE_SECRET: &str = "vonage-test-signature-secret-0123456789";

fn accounts(api: &str) -> String {
    format!(
        r#"
[[accounts]]
name = "c"
carrier = "vonage"
api_key = "{API_KEY}"
api_secret = "{API_SECRET}"
signature_secret = "{SIGNATURE_SECRET}"
signature_method = "sha256"
api = "{api}"
api_base = "{{api_base}}"

[[numbers]]
number = "{BUSINESS_NUMBER}"
account = "c"
throughput = 50.0
"#
    )
}

fn basic() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{API_KEY}:{API_SECRET}"))
    )
}

async fn vonage_messages_api(backend: Backend) {
    run(
        Table {
            carrier: drawbridge::carriers::Carrier::Vonage,
            accounts_toml: accounts("messages"),
            business: BUSINESS_NUMBER,
            signing_key: None,
            auth_headers: &["authorization"],
            auth_field: None,
            unsigned_status: 503,
            tamper: Some(|body| replace_once(body, "forged", "forgeD")),
            media: true,
            malformed: (r#"{"message_uuid": "#, "application/json"),
            delivered: "delivered",
            failure: ("rejected", Some("1240"), "failed"),
            send_path: "/v1/messages".to_owned(),
            send_auth: Some(basic()),
        },
        backend,
    )
    .await;
}

async fn vonage_sms_api(backend: Backend) {
    run(
        Table {
            carrier: drawbridge::carriers::Carrier::Vonage,
            accounts_toml: accounts("sms"),
            business: BUSINESS_NUMBER,
            signing_key: None,
            auth_headers: &[],
            auth_field: Some("sig"),
            unsigned_status: 403,
            tamper: Some(|body| replace_once(body, "forged", "forgeD")),
            media: false,
            malformed: (r#"{"msisdn": "#, "application/json"),
            delivered: "delivered",
            failure: ("failed", Some("9"), "undelivered"),
            send_path: "/sms/json".to_owned(),
            // The SMS API authenticates with api_key and api_secret in the form.
            send_auth: Some(String::new()),
        },
        backend,
    )
    .await;
}
