//! Criterion benchmarks for the compliance layer: the work it adds to each inbound message
//! (keyword classification, the quiet-hours calculation, outbound DLP), the audit trail (one
//! append committed to SQLite; verifying 10,000 events) and the inbound pipeline when a message
//! changes consent (STOP / START: ledger, audit event and confirmation in one transaction).
//!
//! `cargo bench --bench compliance`; figures are recorded in the README.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use drawbridge::audit::{self, Actor, Event};
use drawbridge::compliance::{dlp, outbound};
use drawbridge::phone::E164;
use drawbridge::pipeline::{self, Channel, Inbound};
use drawbridge::store::{self, Db};
use drawbridge::vault::{MasterKey, Vault};
use secrecy::SecretString;
use std::hint::black_box;
use zeroize::Zeroizing;

const SENTENCE: &str = "Hi, I wanted to check whether the payment I made on Tuesday went through, and stop by the branch tomorrow if not.";
const REPLY: &str =
    "Thanks Dana, the payment posted on Tuesday. Anything else I can help with today?";

struct Bench {
    runtime: tokio::runtime::Runtime,
    state: drawbridge::web::AppState,
    _dir: tempfile::TempDir,
}

fn setup() -> Bench {
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
    let state = {
        let _context = runtime.enter();
        let db = Db::connect_lazy(&url).unwrap();
        runtime.block_on(db.migrate()).unwrap();
        let vault = Vault::new(&MasterKey::from_bytes([7; 32]));
        // A configured sender, so that confirmations can be queued; one customer sends every
        // message, so the flood limit is lifted to measure the ordinary path.
        let settings = drawbridge::config::Settings::from_toml(
            "[limits]\nflood_per_minute = 4000000000\n\
             [[accounts]]\nname = \"main\"\ncarrier = \"twilio\"\n\
             account_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
             auth_token = \"0123456789abcdef0123456789abcdef\"\n\
             [[numbers]]\nnumber = \"+15550001111\"\naccount = \"main\"\n",
        )
        .unwrap();
        drawbridge::web::AppState::standalone(&settings, db, vault).unwrap()
    };
    Bench {
        runtime,
        state,
        _dir: dir,
    }
}

fn per_message(c: &mut Criterion) {
    let settings = drawbridge::config::ComplianceSettings::default();
    let keywords = settings.keyword_set.clone();
    let mut group = c.benchmark_group("compliance");
    group.bench_function("classify_keyword", |b| {
        b.iter(|| keywords.classify(black_box("STOP!!")))
    });
    group.bench_function("classify_sentence", |b| {
        b.iter(|| keywords.classify(black_box(SENTENCE)))
    });
    let phone = E164::parse("+12125551234").unwrap();
    let now = chrono::Utc::now();
    group.bench_function("quiet_hold_nanp", |b| {
        b.iter(|| outbound::quiet_hold(&settings, black_box(&phone), None, None, now))
    });
    let engine = drawbridge::redact::load_engine(None).unwrap();
    group.bench_function("outbound_dlp_reply", |b| {
        b.iter(|| dlp::check(&engine, black_box(REPLY)))
    });
    group.finish();
}

/// A typical consent event.
fn event(n: u64) -> Event<'static> {
    Event::new(Actor::System, "consent.opt_out")
        .subject("contact", "0192f3a4-5678-7abc-8def-0123456789ab")
        .detail("keyword", "STOP")
        .detail("n", n)
}

fn audit_trail(c: &mut Criterion) {
    let bench = setup();
    let state = &bench.state;
    let key = state.vault.audit_key();
    let mut group = c.benchmark_group("audit");
    let mut n = 0_u64;
    group.bench_function("append_commit_sqlite", |b| {
        b.iter(|| {
            n += 1;
            bench.runtime.block_on(async {
                let mut tx = state.db.pool().begin().await.unwrap();
                audit::append(&mut tx, key, &event(n), &store::now())
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            });
        })
    });
    // A trail of exactly 10,000 events, in a database of its own, walked whole.
    let bench = setup();
    let state = &bench.state;
    bench.runtime.block_on(async {
        let mut tx = state.db.pool().begin().await.unwrap();
        for i in 0..10_000 {
            audit::append(&mut tx, key, &event(i), &store::now())
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    });
    group.sample_size(20);
    group.bench_function("verify_10k_sqlite", |b| {
        b.iter(|| {
            let report = bench
                .runtime
                .block_on(audit::verify(&state.db, key))
                .unwrap();
            assert!(report.is_intact());
            assert_eq!(report.events, 10_000);
        })
    });
    group.finish();
}

fn consent_changes(c: &mut Criterion) {
    let bench = setup();
    let state = &bench.state;
    let mut n = 0_u64;
    let mut group = c.benchmark_group("pipeline");
    group.bench_function("ingest_sqlite_stop_or_start", |b| {
        b.iter_batched(
            || {
                n += 1;
                Inbound {
                    carrier: "twilio",
                    carrier_message_id: format!("SM{n:032}"),
                    from: E164::parse("+15551234567").unwrap(),
                    to: drawbridge::phone::BusinessAddress::parse("+15550001111").unwrap(),
                    channel: Channel::Sms,
                    body: Zeroizing::new(if n % 2 == 1 { "STOP" } else { "START" }.to_owned()),
                    media: Vec::new(),
                }
            },
            |inbound| {
                bench
                    .runtime
                    .block_on(pipeline::ingest(state, inbound))
                    .unwrap()
            },
            BatchSize::SmallInput,
        );
    });
    // A new customer's first message holds a card number: contact, conversation, message, and
    // the secure link minted, its message queued and audited, in one transaction.
    group.bench_function("ingest_sqlite_new_customer_escalates", |b| {
        b.iter_batched(
            || {
                n += 1;
                Inbound {
                    carrier: "twilio",
                    carrier_message_id: format!("SM{n:032}"),
                    from: E164::parse(&format!("+1202{:07}", n % 10_000_000)).unwrap(),
                    to: drawbridge::phone::BusinessAddress::parse("+15550001111").unwrap(),
                    channel: Channel::Sms,
                    body: Zeroizing::new(
                        "I'd like to pay with my card 4539148803436467".to_owned(),
                    ),
                    media: Vec::new(),
                }
            },
            |inbound| {
                let outcome = bench
                    .runtime
                    .block_on(pipeline::ingest(state, inbound))
                    .unwrap();
                assert!(matches!(
                    outcome,
                    pipeline::Outcome::Stored {
                        link: Some(drawbridge::escalation::links::Escalated::Sent { .. }),
                        ..
                    }
                ));
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, per_message, audit_trail, consent_changes);
criterion_main!(benches);
