//! Redaction throughput with the full default packs, single thread.
//!
//! - `redact/dev_corpus`: every message of `../shared/corpus/redaction-dev.jsonl` per iteration
//!   (criterion reports messages per second);
//! - `redact/sms_1600_chars`: a 1,600-character message (the longest concatenated SMS) with a few
//!   sensitive values in ordinary text (criterion reports bytes per second).
//!
//! `cargo bench --bench redact`. Figures are recorded in the README.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use drawbridge::redact::{load_engine, score, Direction};
use std::hint::black_box;

fn corpus() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/redaction-dev.jsonl"
    );
    let text = std::fs::read_to_string(path)
        .expect("the dev corpus at ../shared/corpus/redaction-dev.jsonl");
    score::parse_corpus(&text)
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect()
}

fn long_message() -> String {
    let parts = [
        "Hi, this is about the account I opened last spring. ",
        "I was charged twice for the same order and the second charge is still pending on my statement. ",
        "My card is 4539 1488 0343 6467 and the expiry is 04/29, you can call me on (415) 555-0132 any time after 5pm. ",
        "Also please update my address to 1234 N Lakeview Ave apt 5, Springfield, and my email is dana.q@example.org. ",
        "The reference on the letter was 3014077257582280 and the invoice number 708-8305006 if that helps. ",
        "Thanks so much for your help, I appreciate it, have a good evening! ",
    ];
    let mut out = String::new();
    while out.chars().count() < 1600 {
        for p in parts {
            out.push_str(p);
        }
    }
    out.chars().take(1600).collect()
}

fn bench(c: &mut Criterion) {
    let engine = load_engine(None).unwrap();
    let messages = corpus();
    let mut group = c.benchmark_group("redact");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.bench_function("dev_corpus", |b| {
        b.iter(|| {
            for m in &messages {
                black_box(engine.redact(black_box(m), Direction::Inbound));
            }
        });
    });
    let long = long_message();
    group.throughput(Throughput::Bytes(long.len() as u64));
    group.bench_function("sms_1600_chars", |b| {
        b.iter(|| black_box(engine.redact(black_box(&long), Direction::Inbound)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
