//! Redaction and topic detection.
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

pub use engine::{Engine, Finding, Redaction};
pub use rules::{Action, Category, Direction, EntityType, Topic};

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
    let packs = match dir {
        Some(dir) => rules::load_dir(dir)?,
        None => rules::default_packs()?,
    };
    Engine::load(&packs).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("redaction rules refused:\n  {}", lines.join("\n  "))
    })
}

/// The engine in use, swappable while requests run.
#[derive(Debug)]
pub struct Redactor {
    current: ArcSwap<Engine>,
}

impl Redactor {
    #[must_use]
    pub fn new(engine: Engine) -> Self {
        Self {
            current: ArcSwap::from_pointee(engine),
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

    /// Replaces the engine. Messages already being redacted finish with the engine they started with.
    pub fn swap(&self, engine: Engine) {
        self.current.store(Arc::new(engine));
    }
}

#[cfg(test)]
mod tests;
