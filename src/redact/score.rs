//! Measures an engine against a labeled corpus (format: `shared/corpus/README.md`).
//!
//! - **Leak recall**, per type: a labeled value is caught when its sensitive core no longer appears
//!   in the redacted text. For numeric values the core is the digits (a card number may keep its
//!   last four), searched in the redacted text's digit runs with separators ignored; for the rest
//!   it is the value itself.
//! - **Span precision and recall**, per type: findings matched to labels by type and overlap.
//! - **Decoys kept**: a look-alike counts as kept when it appears verbatim in the output.
//! - **Escalation** and **topic** precision and recall, over messages.
//!
//! [`Report::shortfalls`] lists every bar of the redaction issue that is not met.

use super::engine::Engine;
use super::rules::{Direction, EntityType, Topic};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, Deserialize)]
pub struct Labeled {
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub entities: Vec<Span>,
    #[serde(default)]
    pub decoys: Vec<Decoy>,
    #[serde(default)]
    pub topics: Vec<Topic>,
    #[serde(default)]
    pub escalate: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Span {
    #[serde(rename = "type")]
    pub entity: EntityType,
    pub start: usize,
    pub end: usize,
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Decoy {
    pub kind: String,
    pub text: String,
}

/// Counts for one type.
#[derive(Debug, Clone, Default)]
pub struct TypeScore {
    pub labels: usize,
    pub leaked: usize,
    pub labels_found: usize,
    pub findings: usize,
    pub findings_matched: usize,
}

/// Precision and recall counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Confusion {
    pub true_positive: usize,
    pub false_positive: usize,
    pub false_negative: usize,
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        1.0
    } else {
        #[expect(
            clippy::cast_precision_loss,
            reason = "corpus counts are far below 2^52"
        )]
        let r = num as f64 / den as f64;
        r
    }
}

impl Confusion {
    fn add(&mut self, predicted: bool, truth: bool) {
        match (predicted, truth) {
            (true, true) => self.true_positive += 1,
            (true, false) => self.false_positive += 1,
            (false, true) => self.false_negative += 1,
            (false, false) => {}
        }
    }
    #[must_use]
    pub fn precision(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_positive)
    }
    #[must_use]
    pub fn recall(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_negative)
    }
}

impl TypeScore {
    #[must_use]
    pub fn leak_recall(&self) -> f64 {
        ratio(self.labels - self.leaked, self.labels)
    }
    #[must_use]
    pub fn span_recall(&self) -> f64 {
        ratio(self.labels_found, self.labels)
    }
    #[must_use]
    pub fn span_precision(&self) -> f64 {
        ratio(self.findings_matched, self.findings)
    }
}

/// The whole measurement.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub messages: usize,
    pub types: BTreeMap<EntityType, TypeScore>,
    pub decoys: usize,
    pub decoys_kept: usize,
    pub decoys_lost_by_kind: BTreeMap<String, usize>,
    pub escalation: Confusion,
    pub topics: BTreeMap<Topic, Confusion>,
    /// Corpus ids with a problem, and what it was (for tuning; the corpus is synthetic).
    pub problems: Vec<String>,
}

/// Digit runs of `text`, with single separators between digits ignored.
fn digit_runs(text: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_digit() {
            current.push(c);
        } else {
            let joins = matches!(c, ' ' | '-' | '.' | '/')
                && i > 0
                && chars.get(i - 1).is_some_and(char::is_ascii_digit)
                && chars.get(i + 1).is_some_and(char::is_ascii_digit);
            if !joins && !current.is_empty() {
                runs.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// Whether the labeled value's core survives in the redacted text.
fn leaked(span: &Span, redacted: &str) -> bool {
    if redacted.contains(&span.text) {
        return true;
    }
    let alnum: String = span.text.chars().filter(|c| c.is_alphanumeric()).collect();
    if alnum.is_empty() || !alnum.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let mut core = alnum;
    if span.entity == EntityType::CardNumber && core.len() > 4 {
        core.truncate(core.len() - 4);
    }
    digit_runs(redacted).iter().any(|run| run.contains(&core))
}

impl Report {
    /// Leak recall over all types.
    #[must_use]
    pub fn overall_leak_recall(&self) -> f64 {
        let labels = self.types.values().map(|t| t.labels).sum();
        ratio(
            labels - self.types.values().map(|t| t.leaked).sum::<usize>(),
            labels,
        )
    }

    #[must_use]
    pub fn decoys_kept_rate(&self) -> f64 {
        ratio(self.decoys_kept, self.decoys)
    }

    /// Every bar of the redaction issue this report does not meet; empty when all are met.
    #[must_use]
    pub fn shortfalls(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (entity, score) in &self.types {
            let bar = if matches!(
                entity,
                EntityType::CardNumber | EntityType::CardCvv | EntityType::UsSsn
            ) {
                1.0
            } else {
                0.995
            };
            if score.leak_recall() < bar {
                out.push(format!(
                    "{} leak recall {:.4} < {bar}",
                    entity.as_str(),
                    score.leak_recall()
                ));
            }
        }
        if self.decoys_kept_rate() < 0.995 {
            out.push(format!(
                "decoys kept {:.4} < 0.995",
                self.decoys_kept_rate()
            ));
        }
        if self.escalation.recall() < 0.99 {
            out.push(format!(
                "escalation recall {:.4} < 0.99",
                self.escalation.recall()
            ));
        }
        if self.escalation.precision() < 0.97 {
            out.push(format!(
                "escalation precision {:.4} < 0.97",
                self.escalation.precision()
            ));
        }
        for (topic, c) in &self.topics {
            if c.recall() < 0.95 {
                out.push(format!(
                    "topic {} recall {:.4} < 0.95",
                    topic.as_str(),
                    c.recall()
                ));
            }
        }
        out
    }
}

/// Runs `engine` over the corpus (inbound direction) and measures it.
pub fn score<'a>(engine: &Engine, corpus: impl IntoIterator<Item = &'a Labeled>) -> Report {
    let mut report = Report::default();
    for item in corpus {
        report.messages += 1;
        let result = engine.redact(&item.text, Direction::Inbound);
        for span in &item.entities {
            let score = report.types.entry(span.entity).or_default();
            score.labels += 1;
            if leaked(span, &result.text) {
                score.leaked += 1;
                report.problems.push(format!(
                    "{}: {} leaked: {:?}",
                    item.id,
                    span.entity.as_str(),
                    item.text
                ));
            }
            if result
                .findings
                .iter()
                .any(|f| f.entity == span.entity && f.start < span.end && span.start < f.end)
            {
                score.labels_found += 1;
            }
        }
        for finding in &result.findings {
            let score = report.types.entry(finding.entity).or_default();
            score.findings += 1;
            if item.entities.iter().any(|s| {
                s.entity == finding.entity && finding.start < s.end && s.start < finding.end
            }) {
                score.findings_matched += 1;
            } else {
                report.problems.push(format!(
                    "{}: extra {} ({}) at {}..{}: {:?}",
                    item.id,
                    finding.entity.as_str(),
                    finding.rule,
                    finding.start,
                    finding.end,
                    item.text
                ));
            }
        }
        for decoy in &item.decoys {
            report.decoys += 1;
            if result.text.contains(&decoy.text) {
                report.decoys_kept += 1;
            } else {
                *report
                    .decoys_lost_by_kind
                    .entry(decoy.kind.clone())
                    .or_default() += 1;
                report.problems.push(format!(
                    "{}: decoy {} lost: {:?}",
                    item.id, decoy.kind, item.text
                ));
            }
        }
        report.escalation.add(result.escalate, item.escalate);
        if result.escalate != item.escalate {
            report.problems.push(format!(
                "{}: escalate {} (labeled {}): {:?}",
                item.id, result.escalate, item.escalate, item.text
            ));
        }
        let truth: BTreeSet<Topic> = item.topics.iter().copied().collect();
        for topic in Topic::ALL {
            let (predicted, labeled) = (result.topics.contains(&topic), truth.contains(&topic));
            report
                .topics
                .entry(topic)
                .or_default()
                .add(predicted, labeled);
            if predicted != labeled {
                report.problems.push(format!(
                    "{}: topic {} {} : {:?}",
                    item.id,
                    topic.as_str(),
                    if predicted { "extra" } else { "missed" },
                    item.text
                ));
            }
        }
    }
    report
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} messages", self.messages)?;
        writeln!(
            f,
            "{:<16} {:>6} {:>8} {:>8} {:>10} {:>10}",
            "type", "labels", "leaked", "leak-rec", "span-prec", "span-rec"
        )?;
        for (entity, s) in &self.types {
            writeln!(
                f,
                "{:<16} {:>6} {:>8} {:>8.4} {:>10.4} {:>10.4}",
                entity.as_str(),
                s.labels,
                s.leaked,
                s.leak_recall(),
                s.span_precision(),
                s.span_recall()
            )?;
        }
        writeln!(f, "overall leak recall {:.4}", self.overall_leak_recall())?;
        writeln!(
            f,
            "decoys kept {}/{} = {:.4} {:?}",
            self.decoys_kept,
            self.decoys,
            self.decoys_kept_rate(),
            self.decoys_lost_by_kind
        )?;
        writeln!(
            f,
            "escalation precision {:.4} recall {:.4}",
            self.escalation.precision(),
            self.escalation.recall()
        )?;
        for (topic, c) in &self.topics {
            writeln!(
                f,
                "topic {:<15} precision {:.4} recall {:.4}",
                topic.as_str(),
                c.precision(),
                c.recall()
            )?;
        }
        Ok(())
    }
}

/// Parses a JSONL corpus.
///
/// # Errors
/// The first malformed line, by number.
pub fn parse_corpus(text: &str) -> Result<Vec<Labeled>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}
