//! Carrier webhooks and the outbox: `cargo bench --bench carriers`.
//!
//! - `verify/<carrier>`: checking one simulated inbound webhook's authenticity with the account's
//!   credentials (the work every webhook does before anything else);
//! - `parse/<carrier>`: turning it into normalized events;
//! - `outbox/enqueue_sqlite`: queueing one reply in its own transaction on SQLite (seal, message
//!   row, outbox row, commit with `synchronous = FULL`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use drawbridge::carriers::{Route, SimulatedInbound, SimulationKeys};
use drawbridge::config::Settings;
use drawbridge::phone::{BusinessAddress, E164};
use secrecy::SecretString;

const BUSINESS: &str = "+15550001111";

/// One account per carrier, as TOML (the same shapes the conformance tests use).
fn accounts() -> String {
    let rbm_key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/carriers/rbm/TEST-ONLY-service-account-key.json"
    ))
    .unwrap();
    format!(
        r#"
[[accounts]]
name = "twilio"
carrier = "twilio"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "test-auth-token-0123456789"
[[accounts]]
name = "telnyx"
carrier = "telnyx"
api_key = "KEY0123456789ABCDEF_test-telnyx-key"
public_key = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
[[accounts]]
name = "vonage"
carrier = "vonage"
api_key = "a1b2c3d4"
api_secret = "vonage-test-api-secret-0123"
signature_secret = "vonage-test-signature-secret-0123456789"
signature_method = "sha256"
[[accounts]]
name = "bandwidth"
carrier = "bandwidth"
account_id = "9900000"
application_id = "93de2206-9669-4e07-948d-329f4b722ee2"
username = "api-user"
password = "bandwidth-test-api-password"
webhook_username = "bw-callbacks"
webhook_password = "bandwidth-test-webhook-password"
[[accounts]]
name = "plivo"
carrier = "plivo"
auth_id = "MAZDQ1ZWU4YWE2YTBKNT"
auth_token = "plivo-test-auth-token-0123456789abcdefghi"
[[accounts]]
name = "sinch"
carrier = "sinch"
service_plan_id = "0123456789abcdef0123456789abcdef"
api_token = "sinch-test-api-token-0123456789"
webhook_secret = "sinch-test-webhook-secret"
[[accounts]]
name = "rbm"
carrier = "rbm"
agent_id = "drawbridge-test-agent"
client_token = "drawbridge-test-client-token-0123"
service_account_key = '''{rbm_key}'''
"#
    )
}

fn webhooks(c: &mut Criterion) {
    let settings = Settings::from_toml(&accounts()).unwrap();
    let from = E164::parse("+15551234567").unwrap();
    let keys = SimulationKeys {
        now: chrono::Utc::now(),
        signing_key: Some(SecretString::from(
            "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=".to_owned(),
        )),
    };
    let mut verify = c.benchmark_group("verify");
    let mut requests = Vec::new();
    for account in &settings.accounts {
        let carrier = account.carrier.carrier();
        let to = if account.name == "rbm" {
            BusinessAddress::rcs_agent("drawbridge-test-agent").unwrap()
        } else {
            BusinessAddress::parse(BUSINESS).unwrap()
        };
        let request = account
            .carrier
            .simulate_inbound(
                &format!("https://sms.example.com/webhooks/{}", carrier.name()),
                &SimulatedInbound {
                    message_id: &carrier.new_message_id(),
                    from: &from,
                    to: &to,
                    body: "Hi, is my appointment still on for Tuesday at 3pm? Thanks",
                    media: &[],
                },
                &keys,
            )
            .unwrap();
        assert!(account.carrier.verify(&request, keys.now).valid);
        verify.bench_function(carrier.name(), |b| {
            b.iter(|| account.carrier.verify(&request, keys.now).valid);
        });
        requests.push((carrier, request));
    }
    verify.finish();
    let mut parse = c.benchmark_group("parse");
    for (carrier, request) in &requests {
        parse.bench_function(carrier.name(), |b| {
            b.iter(|| carrier.parse(request, Route::Inbound).unwrap().len());
        });
    }
    parse.finish();
}

fn outbox(c: &mut Criterion) {
    use drawbridge::pipeline::{self, Channel, Inbound};
    use drawbridge::store::Db;
    use drawbridge::vault::{MasterKey, Vault};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = SecretString::from(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    ));
    let _context = runtime.enter();
    let db = Db::connect_lazy(&url).unwrap();
    runtime.block_on(db.migrate()).unwrap();
    let vault = Vault::new(&MasterKey::from_bytes([7; 32]));
    let settings = Settings::from_toml(&format!(
        "{}\n[[numbers]]\nnumber = \"{BUSINESS}\"\naccount = \"twilio\"\n",
        accounts()
    ))
    .unwrap();
    let senders = settings.senders();
    let state = drawbridge::web::AppState::standalone(
        &settings,
        db.clone(),
        Vault::new(&MasterKey::from_bytes([7; 32])),
    )
    .unwrap();
    runtime
        .block_on(pipeline::ingest(
            &state,
            Inbound {
                carrier: "twilio",
                carrier_message_id: "SM0".to_owned(),
                from: E164::parse("+15551234567").unwrap(),
                to: BusinessAddress::parse(BUSINESS).unwrap(),
                channel: Channel::Sms,
                body: zeroize::Zeroizing::new("hello".to_owned()),
                media: Vec::new(),
            },
        ))
        .unwrap();
    let conversation: String = runtime.block_on(async {
        sqlx::Row::get(
            &sqlx::query("SELECT conversation_id FROM conversation")
                .fetch_one(db.pool())
                .await
                .unwrap(),
            0,
        )
    });
    let mut group = c.benchmark_group("outbox");
    group.bench_function("enqueue_sqlite", |b| {
        b.iter_batched(
            || (),
            |()| {
                runtime.block_on(async {
                    let mut tx = db.pool().begin().await.unwrap();
                    drawbridge::outbox::enqueue(
                        &mut tx,
                        &vault,
                        &senders,
                        &drawbridge::outbox::Outbound {
                            conversation_id: &conversation,
                            kind: drawbridge::outbox::Kind::Reply,
                            body: "Your appointment is confirmed for Tuesday at 3pm.",
                            shown: None,
                            media_urls: &[],
                            suggestions: &[],
                            not_before: None,
                        },
                        chrono::Utc::now(),
                    )
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                });
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, webhooks, outbox);
criterion_main!(benches);
