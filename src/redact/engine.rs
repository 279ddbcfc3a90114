//! The compiled engine: built once from rule packs, immutable, shared by every request.
//!
//! For each message:
//!
//! 1. the text is normalized ([`View`]);
//! 2. one `RegexSet` pass says which pattern rules can match at all, and only those run;
//! 3. one Aho-Corasick automaton finds every keyword and phrase of every keyword rule (whole words
//!    only); a second finds the context words that ambiguous rules need nearby;
//! 4. each candidate goes through its rule's validator, which may reject or narrow it;
//! 5. overlapping candidates are resolved: validated beats unvalidated, then longer beats shorter,
//!    then the higher `priority` wins, then the earlier start;
//! 6. the surviving findings are replaced in the original text (offsets mapped back from the
//!    view), and escalation follows the rules' actions (the default packs encode DESIGN.md's
//!    policy: every type but EMAIL, PHONE, STREET_ADDRESS and CARD_EXPIRY, and every topic).
//!
//! Intents (`opt_out_request`: "please stop texting me") are found by the same keyword automaton
//! and pattern prefilter but take no part in steps 4–6: an intent's span never competes with a
//! value's (a phrase beside a phone number must not keep the number from being redacted), never
//! replaces text and never escalates. It is only recorded in [`Redaction::intents`].

use super::normalize::View;
use super::rules::{
    Action, Category, Direction, EntityType, Intent, Pack, Rule, RuleError, RuleKind, Topic,
};
use super::validators::Validator;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use zeroize::Zeroizing;

/// Compiled size limit of one rule's regex.
const RULE_SIZE_LIMIT: usize = 1 << 20;
/// Compiled size limit of the prefilter set of all patterns.
const SET_SIZE_LIMIT: usize = 32 << 20;

/// One value found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub entity: EntityType,
    /// The id of the rule that found it.
    pub rule: String,
    /// Unicode code-point offsets into the original text, end exclusive.
    pub start: usize,
    pub end: usize,
    /// Byte offsets into the original text (on character boundaries).
    pub byte_start: usize,
    pub byte_end: usize,
}

/// A topic phrase found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMatch {
    pub topic: Topic,
    /// The id of the rule that found it.
    pub rule: String,
    /// Byte offsets into the original text (on character boundaries).
    pub byte_start: usize,
    pub byte_end: usize,
}

/// The result of running the engine on one message. The redacted text is still message
/// content, so `Debug` shows its length, the findings' types and places, and the decisions.
pub struct Redaction {
    /// The text with every redacting finding replaced. Wiped on drop.
    pub text: Zeroizing<String>,
    pub findings: Vec<Finding>,
    pub topics: BTreeSet<Topic>,
    /// What the message asks for (an opt-out request). Recorded only: intents change neither the
    /// text nor `escalate`.
    pub intents: BTreeSet<Intent>,
    /// For each intent, the id of the rule that recognised it (the first in the text): the
    /// ledger records which phrase was taken as an opt-out request.
    pub intent_rules: std::collections::BTreeMap<Intent, String>,
    /// Every topic phrase found, with its rule and place, in text order: what the rule editor's
    /// test panel highlights and what rule hit counts count.
    pub topic_matches: Vec<TopicMatch>,
    /// Whether the conversation should move to a secure link.
    pub escalate: bool,
    /// Whether an outbound message must be refused (a `block_outbound` rule matched).
    pub block_outbound: bool,
}

impl std::fmt::Debug for Redaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redaction")
            .field("text_chars", &self.text.chars().count())
            .field("findings", &self.findings)
            .field("topics", &self.topics)
            .field("intents", &self.intents)
            .field("intent_rules", &self.intent_rules)
            .field("topic_matches", &self.topic_matches)
            .field("escalate", &self.escalate)
            .field("block_outbound", &self.block_outbound)
            .finish()
    }
}

impl Redaction {
    /// The ids of the rules that matched, each once: findings, topic phrases and intents.
    #[must_use]
    pub fn matched_rules(&self) -> BTreeSet<&str> {
        self.findings
            .iter()
            .map(|f| f.rule.as_str())
            .chain(self.topic_matches.iter().map(|t| t.rule.as_str()))
            .chain(self.intent_rules.values().map(String::as_str))
            .collect()
    }

    /// Findings as stored: types and counts, never values.
    #[must_use]
    pub fn summary(&self) -> super::Findings {
        let mut summary = super::Findings::default();
        for finding in &self.findings {
            summary.add(finding.entity);
        }
        summary
    }
}

#[derive(Debug)]
enum Piece {
    Literal(String),
    Last4,
}

#[derive(Debug)]
struct CompiledRule {
    id: String,
    category: Category,
    regex: Option<Regex>,
    /// Index of the `value` capture group, when the pattern names one.
    value_group: Option<usize>,
    validator: Validator,
    /// Ids of this rule's context words in the context automaton, sorted.
    context: Vec<usize>,
    window: usize,
    replacement: Vec<Piece>,
    action: Action,
    direction: Direction,
    priority: i32,
}

impl CompiledRule {
    fn redacts(&self) -> bool {
        !matches!(self.action, Action::Escalate | Action::Detect)
    }
}

/// Keyword terms of one case mode while compiling: the distinct terms, the rules listing each,
/// and term → index.
type TermTable = (Vec<String>, Vec<Vec<usize>>, HashMap<String, usize>);

#[derive(Debug)]
struct Keywords {
    automaton: AhoCorasick,
    /// Automaton pattern id → every rule that lists the term (a word such as "hacked" can belong
    /// to two topics; the automaton reports each match once).
    rule_of: Vec<Vec<usize>>,
}

/// The compiled, immutable engine.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<CompiledRule>,
    /// Prefilter over every pattern rule, and set index → rule index.
    set: Option<(RegexSet, Vec<usize>)>,
    keywords_ci: Option<Keywords>,
    keywords_cs: Option<Keywords>,
    context: Option<AhoCorasick>,
    rule_count: usize,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    rule: usize,
    start: usize,
    end: usize,
    validated: bool,
}

/// Word positions and context-word hits of one text, computed only when a rule needs them.
struct ContextIndex {
    word_starts: Vec<usize>,
    /// (context word id, first word index, last word index)
    hits: Vec<(usize, usize, usize)>,
}

impl ContextIndex {
    fn new(text: &str, automaton: Option<&AhoCorasick>) -> Self {
        let mut word_starts = Vec::with_capacity(16);
        let mut in_word = false;
        for (i, c) in text.char_indices() {
            let word = c.is_alphanumeric();
            if word && !in_word {
                word_starts.push(i);
            }
            in_word = word;
        }
        let mut index = Self {
            word_starts,
            hits: Vec::new(),
        };
        if let Some(automaton) = automaton {
            for m in automaton.find_overlapping_iter(text) {
                if whole_word(text, m.start(), m.end()) {
                    let first = index.word_at(m.start());
                    let last = index.word_at(m.end().saturating_sub(1).max(m.start()));
                    index.hits.push((m.pattern().as_usize(), first, last));
                }
            }
        }
        index
    }

    fn word_at(&self, byte: usize) -> usize {
        self.word_starts
            .partition_point(|&s| s <= byte)
            .saturating_sub(1)
    }

    /// Whether any of `words` occurs anywhere in the text.
    fn any(&self, words: &[usize]) -> bool {
        self.hits
            .iter()
            .any(|&(id, _, _)| words.binary_search(&id).is_ok())
    }

    /// Whether one of `words` is within `window` words of the span.
    fn near(&self, words: &[usize], window: usize, start: usize, end: usize) -> bool {
        let first = self.word_at(start);
        let last = self.word_at(end.saturating_sub(1).max(start));
        self.hits.iter().any(|&(id, hs, he)| {
            words.binary_search(&id).is_ok()
                && (he.saturating_add(window) >= first && hs <= last.saturating_add(window))
        })
    }
}

/// True when `[start, end)` of `text` is not glued to letters or digits on either side.
fn whole_word(text: &str, start: usize, end: usize) -> bool {
    let before = text.get(..start).and_then(|t| t.chars().next_back());
    let after = text.get(end..).and_then(|t| t.chars().next());
    let first = text.get(start..end).and_then(|t| t.chars().next());
    let last = text.get(start..end).and_then(|t| t.chars().next_back());
    let glued = |edge: Option<char>, neighbour: Option<char>| {
        edge.is_some_and(char::is_alphanumeric) && neighbour.is_some_and(char::is_alphanumeric)
    };
    !glued(first, before) && !glued(last, after)
}

/// Why a rule mixes intents and the other categories' actions, if it does: an intent only records
/// (`detect`), and `detect` is only for intents (a value found but not replaced would be a leak; a
/// topic that does not escalate is not a topic).
fn intent_misuse(rule: &Rule) -> Option<&'static str> {
    match (rule.category, rule.action) {
        (Category::Intent(_), Action::Detect) => {
            if rule.replacement.is_some() {
                Some("an intent replaces nothing: remove `replacement`")
            } else if rule.validator.is_some() {
                Some("an intent takes no validator")
            } else {
                None
            }
        }
        (Category::Intent(_), _) => {
            Some("an intent is only recorded: its action must be `detect`")
        }
        (_, Action::Detect) => Some(
            "`detect` is for intents such as `opt_out_request`; a value type must be redacted and a topic must escalate or block",
        ),
        _ => None,
    }
}

fn rule_error(file: &str, rule: &Rule, reason: impl Into<String>) -> RuleError {
    RuleError {
        file: file.to_owned(),
        rule: Some(rule.id.clone()),
        reason: reason.into(),
    }
}

/// Rewrites `\b` and `\B` as ASCII word boundaries. Unicode word boundaries keep the regex
/// crate's fast DFA from running on non-ASCII text (one emoji sends a whole message to the slow
/// engine); the matchers see an NFKC view in which digits are ASCII, so nothing is lost.
pub(crate) fn ascii_word_boundaries(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push_str("(?-u:\\b)"),
            Some('B') => out.push_str("(?-u:\\B)"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn compile_pattern(file: &str, rule: &Rule) -> Result<(Regex, Option<usize>), RuleError> {
    let pattern = rule
        .pattern
        .as_deref()
        .ok_or_else(|| rule_error(file, rule, "a `pattern` rule needs `pattern`"))?;
    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(!rule.case_sensitive)
        .build()
        .parse(pattern)
        .map_err(|e| rule_error(file, rule, format!("the pattern does not compile: {e}")))?;
    if hir.properties().minimum_len() == Some(0) {
        return Err(rule_error(
            file,
            rule,
            "the pattern can match the empty string",
        ));
    }
    let regex = RegexBuilder::new(&ascii_word_boundaries(pattern))
        .case_insensitive(!rule.case_sensitive)
        .size_limit(RULE_SIZE_LIMIT)
        .dfa_size_limit(RULE_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            rule_error(
                file,
                rule,
                format!("the pattern does not compile within the size limit: {e}"),
            )
        })?;
    let value_group = regex.capture_names().position(|n| n == Some("value"));
    Ok((regex, value_group))
}

fn compile_replacement(rule: &Rule) -> Vec<Piece> {
    let template = rule
        .replacement
        .clone()
        .unwrap_or_else(|| format!("[{}]", rule.category));
    let mut pieces = Vec::new();
    let mut rest = template.as_str();
    while let Some(at) = rest.find("{last4}") {
        pieces.push(Piece::Literal(
            rest.get(..at).unwrap_or_default().to_owned(),
        ));
        pieces.push(Piece::Last4);
        rest = rest.get(at + "{last4}".len()..).unwrap_or_default();
    }
    pieces.push(Piece::Literal(rest.to_owned()));
    pieces.retain(|p| !matches!(p, Piece::Literal(s) if s.is_empty()));
    pieces
}

impl Engine {
    /// Compiles the enabled rules of `packs` and checks every rule's own examples. All problems
    /// are reported together, each naming its file and rule.
    ///
    /// # Errors
    /// Every [`RuleError`] found.
    pub fn load(packs: &[(String, Pack)]) -> Result<Self, Vec<RuleError>> {
        let compiled = Self::compile(packs);
        let mut failures = compiled.as_ref().err().cloned().unwrap_or_default();
        failures.extend(check_examples(packs));
        match compiled {
            Ok(engine) if failures.is_empty() => Ok(engine),
            _ => Err(failures),
        }
    }

    /// Compiles without running examples.
    ///
    /// # Errors
    /// Every [`RuleError`] found.
    pub fn compile(packs: &[(String, Pack)]) -> Result<Self, Vec<RuleError>> {
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        let mut rules = Vec::new();
        let mut patterns = Vec::new();
        let mut set_rule = Vec::new();
        // Per case mode: distinct terms, the rules listing each, and term → index.
        let mut terms: [TermTable; 2] = Default::default();
        let mut context_words: Vec<String> = Vec::new();
        let mut context_ids: HashMap<String, usize> = HashMap::new();

        for (file, pack) in packs {
            for rule in &pack.rules {
                if rule.id.trim().is_empty() {
                    errors.push(rule_error(file, rule, "`id` must not be empty"));
                    continue;
                }
                if !seen.insert(rule.id.clone()) {
                    errors.push(rule_error(file, rule, "another rule has the same id"));
                    continue;
                }
                if !rule.enabled {
                    continue;
                }
                if let Some(reason) = intent_misuse(rule) {
                    errors.push(rule_error(file, rule, reason));
                    continue;
                }
                let index = rules.len();
                let (regex, value_group) = match rule.kind {
                    RuleKind::Pattern => {
                        if !rule.terms.is_empty() {
                            errors.push(rule_error(
                                file,
                                rule,
                                "a `pattern` rule takes `pattern`, not `terms`",
                            ));
                            continue;
                        }
                        match compile_pattern(file, rule) {
                            Ok((regex, group)) => {
                                patterns.push(ascii_word_boundaries(
                                    rule.pattern.as_deref().unwrap_or_default(),
                                ));
                                set_rule.push(index);
                                (Some(regex), group)
                            }
                            Err(e) => {
                                errors.push(e);
                                continue;
                            }
                        }
                    }
                    RuleKind::Keywords => {
                        if rule.pattern.is_some() {
                            errors.push(rule_error(
                                file,
                                rule,
                                "a `keywords` rule takes `terms`, not `pattern`",
                            ));
                            continue;
                        }
                        if rule.terms.is_empty() || rule.terms.iter().any(|t| t.trim().is_empty()) {
                            errors.push(rule_error(
                                file,
                                rule,
                                "`terms` must list at least one word and no empty ones",
                            ));
                            continue;
                        }
                        let (list, owners, ids) = &mut terms[usize::from(rule.case_sensitive)];
                        for term in &rule.terms {
                            let term = term.trim();
                            let key = if rule.case_sensitive {
                                term.to_owned()
                            } else {
                                term.to_lowercase()
                            };
                            let id = *ids.entry(key).or_insert_with(|| {
                                list.push(term.to_owned());
                                owners.push(Vec::new());
                                list.len() - 1
                            });
                            if let Some(rules_of_term) = owners.get_mut(id) {
                                if !rules_of_term.contains(&index) {
                                    rules_of_term.push(index);
                                }
                            }
                        }
                        (None, None)
                    }
                };
                if rule.context.iter().any(|w| w.trim().is_empty()) {
                    errors.push(rule_error(
                        file,
                        rule,
                        "`context` must not hold empty words",
                    ));
                    continue;
                }
                let mut context: Vec<usize> = rule
                    .context
                    .iter()
                    .map(|w| {
                        let w = w.trim().to_lowercase();
                        let next = context_words.len();
                        *context_ids.entry(w.clone()).or_insert_with(|| {
                            context_words.push(w);
                            next
                        })
                    })
                    .collect();
                context.sort_unstable();
                context.dedup();
                rules.push(CompiledRule {
                    id: rule.id.clone(),
                    category: rule.category,
                    regex,
                    value_group,
                    validator: rule.validator,
                    context,
                    window: rule.context_window,
                    replacement: compile_replacement(rule),
                    action: rule.action,
                    direction: rule.direction,
                    priority: rule.priority,
                });
            }
        }

        let set = if patterns.is_empty() {
            None
        } else {
            // The set is only a prefilter; each rule's own case setting lives in its regex, so the
            // set runs case-insensitively to never miss what a rule would match.
            match RegexSetBuilder::new(&patterns)
                .case_insensitive(true)
                .size_limit(SET_SIZE_LIMIT)
                .dfa_size_limit(SET_SIZE_LIMIT)
                .build()
            {
                Ok(set) => Some((set, set_rule)),
                Err(e) => {
                    errors.push(RuleError {
                        file: "(all packs)".to_owned(),
                        rule: None,
                        reason: format!("the patterns together exceed the size limit: {e}"),
                    });
                    None
                }
            }
        };
        let automaton = |words: &[String], insensitive: bool, kind: MatchKind| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(insensitive)
                .match_kind(kind)
                .kind(Some(AhoCorasickKind::DFA))
                .build(words)
        };
        let mut keywords = [None, None];
        for (slot, (list, owners, _)) in terms.into_iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            // Standard semantics with overlapping search: every term at every position is seen, so
            // a longer phrase that fails the whole-word check cannot hide a shorter one inside it.
            match automaton(&list, slot == 0, MatchKind::Standard) {
                Ok(automaton) => {
                    keywords[slot] = Some(Keywords {
                        automaton,
                        rule_of: owners,
                    })
                }
                Err(e) => errors.push(RuleError {
                    file: "(all packs)".to_owned(),
                    rule: None,
                    reason: format!("keyword lists do not compile: {e}"),
                }),
            }
        }
        let context = if context_words.is_empty() {
            None
        } else {
            match automaton(&context_words, true, MatchKind::Standard) {
                Ok(a) => Some(a),
                Err(e) => {
                    errors.push(RuleError {
                        file: "(all packs)".to_owned(),
                        rule: None,
                        reason: format!("context words do not compile: {e}"),
                    });
                    None
                }
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let [keywords_ci, keywords_cs] = keywords;
        let rule_count = rules.len();
        Ok(Self {
            rules,
            set,
            keywords_ci,
            keywords_cs,
            context,
            rule_count,
        })
    }

    /// How many enabled rules the engine holds.
    #[must_use]
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// Runs every rule for `direction` over `original`.
    #[must_use]
    pub fn redact(&self, original: &str, direction: Direction) -> Redaction {
        let view = View::new(original);
        let text: &str = &view.text;
        let mut candidates: Vec<Candidate> = Vec::new();
        // Topic hits: (topic, rule, start, end, action). Kept unless an e-mail address covers them.
        let mut topic_hits: Vec<(Topic, usize, usize, usize, Action)> = Vec::new();
        // Intent hits: (intent, start, end). Likewise.
        let mut intent_hits: Vec<(Intent, usize, usize, usize)> = Vec::new();
        let mut context: Option<ContextIndex> = None;

        let consider = |rule_index: usize,
                        start: usize,
                        end: usize,
                        candidates: &mut Vec<Candidate>,
                        context: &mut Option<ContextIndex>| {
            let Some(rule) = self.rules.get(rule_index) else {
                return;
            };
            let Some(found) = text.get(start..end) else {
                return;
            };
            for (vs, ve) in rule.validator.spans(found) {
                let (start, end) = (start + vs, start + ve);
                if start >= end {
                    continue;
                }
                if !rule.context.is_empty()
                    && !context
                        .get_or_insert_with(|| ContextIndex::new(text, self.context.as_ref()))
                        .near(&rule.context, rule.window, start, end)
                {
                    continue;
                }
                candidates.push(Candidate {
                    rule: rule_index,
                    start,
                    end,
                    validated: rule.validator.is_some(),
                });
            }
        };

        if let Some((set, set_rule)) = &self.set {
            for set_index in set.matches(text).iter() {
                let Some(&rule_index) = set_rule.get(set_index) else {
                    continue;
                };
                let Some(rule) = self.rules.get(rule_index) else {
                    continue;
                };
                let Some(regex) = rule
                    .regex
                    .as_ref()
                    .filter(|_| rule.direction.covers(direction))
                else {
                    continue;
                };
                // A rule that needs context words runs only when one of them is in the message:
                // the context automaton has already looked, and most messages have none.
                if !rule.context.is_empty()
                    && !context
                        .get_or_insert_with(|| ContextIndex::new(text, self.context.as_ref()))
                        .any(&rule.context)
                {
                    continue;
                }
                if let Category::Intent(intent) = rule.category {
                    for m in regex.find_iter(text) {
                        if rule.context.is_empty()
                            || context
                                .get_or_insert_with(|| {
                                    ContextIndex::new(text, self.context.as_ref())
                                })
                                .near(&rule.context, rule.window, m.start(), m.end())
                        {
                            intent_hits.push((intent, rule_index, m.start(), m.end()));
                        }
                    }
                    continue;
                }
                match rule.value_group {
                    None => {
                        for m in regex.find_iter(text) {
                            consider(
                                rule_index,
                                m.start(),
                                m.end(),
                                &mut candidates,
                                &mut context,
                            );
                        }
                    }
                    Some(group) => {
                        for caps in regex.captures_iter(text) {
                            if let Some(m) = caps.get(group) {
                                consider(
                                    rule_index,
                                    m.start(),
                                    m.end(),
                                    &mut candidates,
                                    &mut context,
                                );
                            }
                        }
                    }
                }
            }
        }

        for keywords in [&self.keywords_ci, &self.keywords_cs].into_iter().flatten() {
            for m in keywords.automaton.find_overlapping_iter(text) {
                if !whole_word(text, m.start(), m.end()) {
                    continue;
                }
                for &rule_index in keywords
                    .rule_of
                    .get(m.pattern().as_usize())
                    .map_or(&[][..], Vec::as_slice)
                {
                    let Some(rule) = self.rules.get(rule_index) else {
                        continue;
                    };
                    if !rule.direction.covers(direction) {
                        continue;
                    }
                    match rule.category {
                        Category::Topic(topic) => {
                            if rule.context.is_empty()
                                || context
                                    .get_or_insert_with(|| {
                                        ContextIndex::new(text, self.context.as_ref())
                                    })
                                    .near(&rule.context, rule.window, m.start(), m.end())
                            {
                                topic_hits.push((
                                    topic,
                                    rule_index,
                                    m.start(),
                                    m.end(),
                                    rule.action,
                                ));
                            }
                        }
                        Category::Intent(intent) => {
                            if rule.context.is_empty()
                                || context
                                    .get_or_insert_with(|| {
                                        ContextIndex::new(text, self.context.as_ref())
                                    })
                                    .near(&rule.context, rule.window, m.start(), m.end())
                            {
                                intent_hits.push((intent, rule_index, m.start(), m.end()));
                            }
                        }
                        Category::Entity(_) => consider(
                            rule_index,
                            m.start(),
                            m.end(),
                            &mut candidates,
                            &mut context,
                        ),
                    }
                }
            }
        }

        // Resolve overlaps: validated, then longer, then higher priority, then earlier.
        candidates.sort_by(|a, b| {
            let priority = |c: &Candidate| self.rules.get(c.rule).map_or(0, |r| r.priority);
            b.validated
                .cmp(&a.validated)
                .then((b.end - b.start).cmp(&(a.end - a.start)))
                .then(priority(b).cmp(&priority(a)))
                .then(a.start.cmp(&b.start))
        });
        // Greedy acceptance in that order. `taken` maps each accepted span's start to its end; the
        // spans are disjoint, so one look at the nearest span starting before a candidate's end
        // says whether it overlaps: O(n log n) in the number of candidates.
        let mut taken: BTreeMap<usize, usize> = BTreeMap::new();
        let overlaps = |taken: &BTreeMap<usize, usize>, start: usize, end: usize| {
            taken
                .range(..end)
                .next_back()
                .is_some_and(|(_, &e)| e > start)
        };
        let mut accepted: Vec<Candidate> = Vec::with_capacity(candidates.len());
        let mut losers: Vec<Candidate> = Vec::new();
        for c in candidates {
            if overlaps(&taken, c.start, c.end) {
                losers.push(c);
            } else {
                taken.insert(c.start, c.end);
                accepted.push(c);
            }
        }
        // A candidate that lost an overlap may still cover text the winner does not: the digits of
        // "+14155550123" when a card follows it in one run, the "@gmail.com" after a card number.
        // Those uncovered parts are redacted under the loser's rule, so nothing a rule matched
        // survives because a neighbour won.
        for c in losers {
            let winners: Vec<(usize, usize)> = taken
                .range(..c.end)
                .rev()
                .take_while(|(_, &e)| e > c.start)
                .map(|(&s, &e)| (s, e))
                .collect();
            let mut gaps = Vec::new();
            let mut pos = c.start;
            for &(s, e) in winners.iter().rev() {
                if s > pos {
                    gaps.push((pos, s));
                }
                pos = pos.max(e);
            }
            if pos < c.end {
                gaps.push((pos, c.end));
            }
            for (start, end) in gaps {
                let Some(gap) = text.get(start..end) else {
                    continue;
                };
                let lead = gap.len()
                    - gap
                        .trim_start_matches(|ch: char| !ch.is_alphanumeric())
                        .len();
                let trimmed = gap.trim_matches(|ch: char| !ch.is_alphanumeric());
                if trimmed.is_empty() {
                    continue;
                }
                let (start, end) = (start + lead, start + lead + trimmed.len());
                if !overlaps(&taken, start, end) {
                    taken.insert(start, end);
                    accepted.push(Candidate {
                        rule: c.rule,
                        start,
                        end,
                        validated: false,
                    });
                }
            }
        }
        accepted.sort_by_key(|c| c.start);

        // A topic word inside an e-mail address ("bills" in bills@example.com) is part of the
        // address, not the subject of the message; likewise an intent ("unsubscribe-me@…").
        let inside_address = |start: usize, end: usize| {
            accepted.iter().any(|a| {
                self.rules
                    .get(a.rule)
                    .is_some_and(|r| r.category == Category::Entity(EntityType::Email))
                    && start < a.end
                    && a.start < end
            })
        };
        let mut intent_hits: Vec<(Intent, usize, usize, usize)> = intent_hits
            .into_iter()
            .filter(|&(_, _, start, end)| !inside_address(start, end))
            .collect();
        // The first in the text names the intent; of two starting together, the longer (the
        // more specific rule).
        intent_hits.sort_by_key(|&(_, _, start, end)| (start, std::cmp::Reverse(end)));
        let intents: BTreeSet<Intent> = intent_hits.iter().map(|&(intent, ..)| intent).collect();
        let mut intent_rules = std::collections::BTreeMap::new();
        for &(intent, rule_index, _, _) in &intent_hits {
            if let Some(rule) = self.rules.get(rule_index) {
                intent_rules
                    .entry(intent)
                    .or_insert_with(|| rule.id.clone());
            }
        }
        let mut topics = BTreeSet::new();
        let mut topic_escalates = false;
        let mut block_outbound = false;
        let mut topic_matches = Vec::new();
        for (topic, rule_index, start, end, action) in topic_hits {
            if !inside_address(start, end) {
                topics.insert(topic);
                if let Some(rule) = self.rules.get(rule_index) {
                    let (byte_start, byte_end) = view.original_range(start, end);
                    topic_matches.push(TopicMatch {
                        topic,
                        rule: rule.id.clone(),
                        byte_start,
                        byte_end,
                    });
                }
                topic_escalates |= matches!(action, Action::Escalate | Action::RedactAndEscalate);
                block_outbound |=
                    action == Action::BlockOutbound && direction == Direction::Outbound;
            }
        }

        let mut out = Zeroizing::new(String::with_capacity(original.len() + 16 * accepted.len()));
        let mut findings = Vec::with_capacity(accepted.len());
        let mut escalate = topic_escalates;
        let mut cursor = 0;
        // Code-point offsets, counted in one forward pass (findings are in order and disjoint).
        let ascii = original.is_ascii();
        let (mut counted_byte, mut counted_chars) = (0, 0);
        let mut char_offset = |byte: usize| {
            if ascii {
                return byte;
            }
            if byte >= counted_byte {
                counted_chars += original
                    .get(counted_byte..byte)
                    .map_or(0, |t| t.chars().count());
                counted_byte = byte;
                counted_chars
            } else {
                original.get(..byte).map_or(0, |t| t.chars().count())
            }
        };
        for c in &accepted {
            let Some(rule) = self.rules.get(c.rule) else {
                continue;
            };
            let Category::Entity(entity) = rule.category else {
                continue;
            };
            let (byte_start, byte_end) = view.original_range(c.start, c.end);
            escalate |= matches!(rule.action, Action::RedactAndEscalate | Action::Escalate);
            block_outbound |=
                rule.action == Action::BlockOutbound && direction == Direction::Outbound;
            let start = char_offset(byte_start);
            let end = char_offset(byte_end);
            findings.push(Finding {
                entity,
                rule: rule.id.clone(),
                start,
                end,
                byte_start,
                byte_end,
            });
            // Two findings from one original character (an expanded ligature or fraction): the
            // second continues the first's replacement instead of being dropped.
            if rule.redacts() && byte_end > cursor {
                out.push_str(
                    original
                        .get(cursor..byte_start.max(cursor))
                        .unwrap_or_default(),
                );
                let value = text.get(c.start..c.end).unwrap_or_default();
                for piece in &rule.replacement {
                    match piece {
                        Piece::Literal(s) => out.push_str(s),
                        Piece::Last4 => {
                            let digits = value.bytes().filter(u8::is_ascii_digit).count();
                            out.extend(
                                value
                                    .chars()
                                    .filter(char::is_ascii_digit)
                                    .skip(digits.saturating_sub(4)),
                            );
                        }
                    }
                }
                cursor = byte_end;
            }
        }
        out.push_str(original.get(cursor..).unwrap_or_default());
        Redaction {
            text: out,
            findings,
            topics,
            intents,
            intent_rules,
            topic_matches,
            escalate,
            block_outbound,
        }
    }
}

/// Runs every enabled rule's examples against that rule alone; returns the failures.
#[must_use]
pub fn check_examples(packs: &[(String, Pack)]) -> Vec<RuleError> {
    let mut failures = Vec::new();
    for (file, pack) in packs {
        for rule in pack.rules.iter().filter(|r| r.enabled) {
            let single = [(
                file.clone(),
                Pack {
                    pack: pack.pack.clone(),
                    description: String::new(),
                    rules: vec![rule.clone()],
                },
            )];
            let Ok(engine) = Engine::compile(&single) else {
                continue;
            };
            let direction = if rule.direction.covers(Direction::Inbound) {
                Direction::Inbound
            } else {
                Direction::Outbound
            };
            let hits = |text: &str| {
                let r = engine.redact(text, direction);
                !r.findings.is_empty() || !r.topics.is_empty() || !r.intents.is_empty()
            };
            for example in &rule.examples.matches {
                if !hits(example) {
                    failures.push(rule_error(
                        file,
                        rule,
                        format!("example {example:?} should match but does not"),
                    ));
                }
            }
            for example in &rule.examples.no_match {
                if hits(example) {
                    failures.push(rule_error(
                        file,
                        rule,
                        format!("example {example:?} should not match but does"),
                    ));
                }
            }
        }
    }
    failures
}
