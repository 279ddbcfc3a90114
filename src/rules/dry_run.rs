//! The dry run: a draft and the rules in force run over the same corpus, and the messages whose
//! outcome differs are counted and shown (redacted by each rule set).
//!
//! A corpus is JSON lines with a `text` field (and optionally an `id`), like the labeled corpus
//! and the built-in sample, or plain text with one message per line. It is read in memory only.

use crate::redact::rules::Direction;
use crate::redact::Engine;
use serde::Serialize;
use std::collections::BTreeSet;

/// The built-in sample corpus (`redaction-rules/sample-corpus.jsonl`).
pub const SAMPLE_CORPUS: &str = include_str!("../../redaction-rules/sample-corpus.jsonl");

/// The most messages one dry run takes.
pub const MAX_MESSAGES: usize = 20_000;
/// The most bytes of corpus one dry run takes.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Examples shown per kind of difference.
const EXAMPLES_PER_KIND: usize = 10;

/// One message of a corpus.
#[derive(Debug, Clone)]
pub struct Sample {
    pub id: String,
    pub text: String,
}

/// Parses a corpus: JSON lines when the first non-blank line is a JSON object, else one message
/// per line.
///
/// # Errors
/// A message naming the first bad line, or the limit passed.
pub fn parse(corpus: &str) -> Result<Vec<Sample>, String> {
    if corpus.len() > MAX_BYTES {
        return Err(format!(
            "the corpus is larger than {} MiB",
            MAX_BYTES / 1024 / 1024
        ));
    }
    let jsonl = corpus
        .lines()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.trim_start().starts_with('{'));
    let mut samples = Vec::new();
    for (n, line) in corpus.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if samples.len() == MAX_MESSAGES {
            return Err(format!("the corpus has more than {MAX_MESSAGES} messages"));
        }
        if jsonl {
            let value: serde_json::Value = serde_json::from_str(line)
                .map_err(|_| format!("line {}: not a JSON object", n + 1))?;
            let text = value
                .get("text")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| format!("line {}: no \"text\" string", n + 1))?;
            let id = value
                .get("id")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| format!("line {}", n + 1), str::to_owned);
            samples.push(Sample {
                id,
                text: text.to_owned(),
            });
        } else {
            samples.push(Sample {
                id: format!("line {}", n + 1),
                text: line.to_owned(),
            });
        }
    }
    if samples.is_empty() {
        return Err("the corpus holds no messages".to_owned());
    }
    Ok(samples)
}

/// One message whose outcome differs.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub id: String,
    /// `newly_hit`, `newly_missed` or `changed`.
    pub kind: &'static str,
    /// The message as the rules in force redact it, and as the draft would.
    pub before: String,
    pub after: String,
    /// The rules that matched it, in force and in the draft.
    pub rules_before: Vec<String>,
    pub rules_after: Vec<String>,
}

/// What a dry run found.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    pub messages: usize,
    /// Messages any rule matches, in force and in the draft.
    pub hit_before: usize,
    pub hit_after: usize,
    /// Matched by the draft and by nothing in force.
    pub newly_hit: usize,
    /// Matched in force and by nothing in the draft.
    pub newly_missed: usize,
    /// Matched by both, but redacted or decided differently.
    pub changed: usize,
    pub escalations_before: usize,
    pub escalations_after: usize,
    pub examples: Vec<Example>,
}

/// Runs both engines over `samples` (inbound messages).
#[must_use]
pub fn run(before: &Engine, after: &Engine, samples: &[Sample]) -> DryRun {
    let mut report = DryRun {
        messages: samples.len(),
        hit_before: 0,
        hit_after: 0,
        newly_hit: 0,
        newly_missed: 0,
        changed: 0,
        escalations_before: 0,
        escalations_after: 0,
        examples: Vec::new(),
    };
    let mut shown = [0_usize; 3];
    for sample in samples {
        let a = before.redact(&sample.text, Direction::Inbound);
        let b = after.redact(&sample.text, Direction::Inbound);
        let rules = |r: &crate::redact::Redaction| -> Vec<String> {
            r.matched_rules()
                .into_iter()
                .map(str::to_owned)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let (rules_a, rules_b) = (rules(&a), rules(&b));
        report.hit_before += usize::from(!rules_a.is_empty());
        report.hit_after += usize::from(!rules_b.is_empty());
        report.escalations_before += usize::from(a.escalate);
        report.escalations_after += usize::from(b.escalate);
        let (kind, slot) = match (rules_a.is_empty(), rules_b.is_empty()) {
            (true, false) => {
                report.newly_hit += 1;
                ("newly_hit", 0)
            }
            (false, true) => {
                report.newly_missed += 1;
                ("newly_missed", 1)
            }
            (false, false)
                if *a.text != *b.text || a.escalate != b.escalate || rules_a != rules_b =>
            {
                report.changed += 1;
                ("changed", 2)
            }
            _ => continue,
        };
        if let Some(count) = shown.get_mut(slot) {
            if *count < EXAMPLES_PER_KIND {
                *count += 1;
                report.examples.push(Example {
                    id: sample.id.clone(),
                    kind,
                    before: a.text.to_string(),
                    after: b.text.to_string(),
                    rules_before: rules_a,
                    rules_after: rules_b,
                });
            }
        }
    }
    report
}
