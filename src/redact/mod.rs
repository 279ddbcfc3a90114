//! Redaction, topic detection, and intents.
//!
//! Besides replacing values and naming sensitive topics, the engine records what a message asks
//! for ([`Intent`]: an opt-out request written as a sentence, from `redaction-rules/revocation.toml`).
//! Intents never change the text or the escalation decision; read them from
//! [`Redaction::intents`].
//!
//! Rules live in TOML packs ([`rules`]; the defaults are in `redaction-rules/` and compiled into
//! the binary). [`Engine`] compiles a set of packs once — a `RegexSet` prefilter, one
//! Aho-Corasick automaton for every keyword list, validators, context windows — and is then
//! immutable. [`Redactor`] holds the engine in use and swaps in a newly compiled one atomically,
//! so a rule change never pauses or half-applies to a message.
//!
//! - [`normalize`]: the NFKC, zero-width-free view the matchers see, with offsets mapped back.
//! - [`validators`]: Luhn, ABA, IBAN, SSN, ITIN, MBI.
//! - [`engine`]: matching, overlap resolution, replacement, escalation.
//! - [`score`]: measures an engine against a labeled corpus.
//!
//! Plaintext passes through here only in memory; the redacted text is [`Zeroizing`] and the stored
//! summary ([`Findings`]) holds types and counts, never values.

pub mod engine;
pub mod normalize;
pub mod rules;
pub mod score;
pub mod validators;

pub use engine::{Engine, Finding, Redaction, TopicMatch};
pub use rules::{Action, Category, Direction, EntityType, Intent, Topic};

use arc_swap::ArcSwap;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What was found in a message: types and counts, never values. The stored form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Findings(BTreeMap<&'static str, u32>);

impl Findings {
    fn add(&mut self, kind: EntityType) {
        *self.0.entry(kind.as_str()).or_default() += 1;
    }

    /// How many values of `kind` were found.
    #[must_use]
    pub fn count(&self, kind: EntityType) -> u32 {
        self.0.get(kind.as_str()).copied().unwrap_or_default()
    }

    /// Each type found (by name), with its count.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The stored JSON: type names to counts, e.g. `{"CARD_NUMBER":1}`.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Compiles the packs in `dir`, or the built-in default packs when `dir` is `None`. Every rule
/// must compile, be safe and pass its examples.
///
/// # Errors
/// One line per problem, each naming the file, the rule and the reason.
pub fn load_engine(dir: Option<&std::path::Path>) -> anyhow::Result<Engine> {
    engine_from(&load_packs(dir)?)
}

/// The packs in `dir`, or the built-in packs.
///
/// # Errors
/// The file, and why it does not parse.
pub fn load_packs(dir: Option<&std::path::Path>) -> anyhow::Result<Vec<(String, rules::Pack)>> {
    Ok(match dir {
        Some(dir) => rules::load_dir(dir)?,
        None => rules::default_packs()?,
    })
}

/// Compiles `packs` and runs their examples.
///
/// # Errors
/// One line per problem, each naming the file, the rule and the reason.
pub fn engine_from(packs: &[(String, rules::Pack)]) -> anyhow::Result<Engine> {
    Engine::load(packs).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("redaction rules refused:\n  {}", lines.join("\n  "))
    })
}

/// What replaces digits at the boundary of a message part ([`mask_split_edges`]).
pub const SPLIT_NUMBER: &str = "[SPLIT NUMBER]";

/// Removes digit runs that touch the edges of one part of a message delivered in parts (Vonage's
/// SMS API sends each part of a long SMS as its own webhook). A value split across parts — a card
/// number whose first digits end one part and whose last begin the next — cannot be checked
/// whole, so the digits at a boundary are replaced by [`SPLIT_NUMBER`] before the part is
/// redacted: over-redaction, never a leak. `leading` and `trailing` say which edges are
/// boundaries (not at the start of the first part, not at the end of the last). A run is digits
/// (any script) with the separators people put in numbers (space, `-`, `.`, `/`, `(`, `)`), and
/// counts only with at least two digits.
#[must_use]
pub fn mask_split_edges(text: &str, leading: bool, trailing: bool) -> zeroize::Zeroizing<String> {
    fn in_run(c: char) -> bool {
        c.is_numeric() || matches!(c, ' ' | '-' | '.' | '/' | '(' | ')' | '\u{a0}')
    }
    fn digits(run: &str) -> usize {
        run.chars().filter(|c| c.is_numeric()).count()
    }
    let mut start = 0;
    let mut end = text.len();
    if leading {
        let run_end = text
            .char_indices()
            .find(|(_, c)| !in_run(*c))
            .map_or(text.len(), |(i, _)| i);
        let run = text.get(..run_end).unwrap_or_default();
        if digits(run) >= 2 {
            start = run_end;
        }
    }
    if trailing {
        let run_start = text
            .char_indices()
            .rev()
            .find(|(_, c)| !in_run(*c))
            .map_or(0, |(i, c)| i + c.len_utf8())
            .max(start);
        let run = text.get(run_start..).unwrap_or_default();
        if digits(run) >= 2 {
            end = run_start;
        }
    }
    let mut out = zeroize::Zeroizing::new(String::with_capacity(text.len() + 32));
    if start > 0 {
        out.push_str(SPLIT_NUMBER);
        if start < end {
            out.push(' ');
        }
    }
    out.push_str(text.get(start..end).unwrap_or_default().trim_start());
    if end < text.len() {
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
        if !out.ends_with(SPLIT_NUMBER) {
            out.push_str(SPLIT_NUMBER);
        }
    }
    out
}

/// The engine in use, swappable while requests run, and the published rule-set version it was
/// built from (0: the packs shipped with the binary or read from `rules_dir`).
#[derive(Debug)]
pub struct Redactor {
    current: ArcSwap<Engine>,
    /// Held while installing, so that an older version never replaces a newer one.
    version: std::sync::Mutex<i64>,
}

impl Redactor {
    #[must_use]
    pub fn new(engine: Engine) -> Self {
        Self {
            current: ArcSwap::from_pointee(engine),
            version: std::sync::Mutex::new(0),
        }
    }

    /// The engine built from the default packs compiled into the binary.
    ///
    /// # Errors
    /// The packs' errors (a build defect: the test suite loads the same packs).
    pub fn with_default_rules() -> Result<Self, Vec<rules::RuleError>> {
        let packs = rules::default_packs().map_err(|e| vec![e])?;
        Engine::load(&packs).map(Self::new)
    }

    /// The engine to use for one message. Cheap: an atomic load and a reference count.
    #[must_use]
    pub fn current(&self) -> Arc<Engine> {
        self.current.load_full()
    }

    /// The published rule-set version of the engine in use.
    #[must_use]
    pub fn version(&self) -> i64 {
        *self
            .version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Installs the engine of published version `version` (messages already being redacted finish
    /// with the engine they started with), unless a version at least as new is already in use (two instances' watchers and a publish can race). True when installed.
    pub fn install(&self, engine: Engine, version: i64) -> bool {
        let mut current = self
            .version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if version <= *current {
            return false;
        }
        self.current.store(Arc::new(engine));
        *current = version;
        true
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn digits_at_part_boundaries_are_removed() {
        // A card number split between part 1 and part 2 of a long SMS.
        let first = mask_split_edges("Hi, my card number is 4539 1488", false, true);
        assert_eq!(first.as_str(), "Hi, my card number is [SPLIT NUMBER]");
        let second = mask_split_edges("0343 6467 exp 12/25 thanks", true, false);
        assert_eq!(second.as_str(), "[SPLIT NUMBER] exp 12/25 thanks");
        // A middle part of nothing but digits.
        assert_eq!(
            mask_split_edges("1234 5678", true, true).as_str(),
            "[SPLIT NUMBER]"
        );
        // Words at the edges, or a single digit, are left alone.
        assert_eq!(
            mask_split_edges("see you at 5", true, true).as_str(),
            "see you at 5"
        );
        assert_eq!(
            mask_split_edges("call me about 4111", false, false).as_str(),
            "call me about 4111"
        );
        // Other scripts' digits count.
        assert_eq!(
            mask_split_edges("رقم ٤٥٣٩ ١٤٨٨", false, true).as_str(),
            "رقم [SPLIT NUMBER]"
        );
    }
}
