//! Criterion benchmarks for the foundation's per-message work: sealing, signature verification,
//! and a whole inbound message through the pipeline into SQLite (redaction alone: `benches/redact.rs`).
//!
//! `cargo bench --bench foundation`; figures are recorded in the README.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use drawbridge::carriers::twilio::signature;
use drawbridge::phone::E164;
use drawbridge::pipeline::{self, Channel, Inbound};
use drawbridge::store::Db;
use drawbridge::vault::{self, Aad, MasterKey, SecretKey, Vault};
use secrecy::SecretString;
use std::hint::black_box;
use zeroize::Zeroizing;

const SMS: &str = "Hi, this is Dana. My card is 4539 1488 0343 6467 and my ssn is 219-09-9999, can you update my billing address before Friday? Thanks!";

fn sealing(c: &mut Criterion) {
    let key = SecretKey::random(1);
    let aad = Aad::new(
        "message",
        "body_sealed",
        "01936a3e-0000-7000-8000-000000000000",
    );
    let mut group = c.benchmark_group("vault");
    group.throughput(Throughput::Bytes(SMS.len() as u64));
    group.bench_function("seal_sms", |b| {
        b.iter(|| vault::seal(&key, black_box(SMS.as_bytes()), aad))
    });
    let sealed = vault::seal(&key, SMS.as_bytes(), aad).unwrap();
    group.bench_function("open_sms", |b| {
        b.iter(|| vault::open(&key, black_box(&sealed), aad).unwrap())
    });
    group.finish();
    let mut group = c.benchmark_group("keys");
    let vault = Vault::new(&MasterKey::from_bytes([7; 32]));
    let phone = E164::parse("+15551234567").unwrap();
    group.bench_function("phone_blind_index", |b| {
        b.iter(|| vault.phone_index(black_box(&phone)))
    });
    let dek = vault.new_data_key();
    let wrapped = vault.wrap_data_key(&dek, "contact").unwrap();
    group.bench_function("unwrap_data_key", |b| {
        b.iter(|| {
            vault
                .unwrap_data_key(black_box(&wrapped), "contact")
                .unwrap()
        })
    });
    group.finish();
}

fn signatures(c: &mut Criterion) {
    let token = SecretString::from("12345".to_owned());
    let params: Vec<(String, String)> = [
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", "+15551234567"),
        ("To", "+15550001111"),
        ("Body", SMS),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let url = "https://sms.example.com/webhooks/twilio";
    let sig = signature::sign(&token, url, &params);
    c.bench_function("twilio/verify_signature", |b| {
        b.iter(|| {
            assert!(signature::verify_form(
                &token,
                url,
                black_box(&params),
                &sig
            ))
        })
    });
}

fn ingest(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = SecretString::from(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    ));
    let _context = runtime.enter();
    let db = Db::connect_lazy(&url).unwrap();
    runtime.block_on(db.migrate()).unwrap();
    let vault = Vault::new(&MasterKey::from_bytes([7; 32]));
    // One returning customer sends every message: the flood limit would flag them, so it is
    // lifted to measure the ordinary path. The message's card number escalates: the first one
    // texts a secure link (through the configured sender), the rest fall in the cool-down.
    let settings = drawbridge::config::Settings::from_toml(
        "[limits]\nflood_per_minute = 4000000000\n\
         [[accounts]]\nname = \"main\"\ncarrier = \"twilio\"\n\
         account_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
         auth_token = \"0123456789abcdef0123456789abcdef\"\n\
         [[numbers]]\nnumber = \"+15550001111\"\naccount = \"main\"\n",
    )
    .unwrap();
    let state = drawbridge::web::AppState::standalone(&settings, db, vault).unwrap();
    let mut n = 0_u64;
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ingest_sqlite_returning_customer", |b| {
        b.iter_batched(
            || {
                n += 1;
                Inbound {
                    carrier: "twilio",
                    carrier_message_id: format!("SM{n:032}"),
                    from: E164::parse("+15551234567").unwrap(),
                    to: drawbridge::phone::BusinessAddress::parse("+15550001111").unwrap(),
                    channel: Channel::Sms,
                    body: Zeroizing::new(SMS.to_owned()),
                    media: Vec::new(),
                }
            },
            |inbound| runtime.block_on(pipeline::ingest(&state, inbound)).unwrap(),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, sealing, signatures, ingest);
criterion_main!(benches);
