//! What a draft changes against the version it would replace: rules added, removed and changed,
//! with the changed fields named and both versions of each rule as TOML, as a pack file shows it.

use super::RuleSet;
use crate::redact::rules::Rule;
use serde::Serialize;
use std::collections::BTreeMap;

/// One rule's change.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    pub rule: String,
    /// The pack it is in (after the change; before it, for a removal).
    pub pack: String,
    /// `added`, `removed` or `changed`.
    pub kind: &'static str,
    /// The fields that differ (for `changed`), or the pack move (`pack`).
    pub fields: Vec<String>,
    /// The rule as TOML before and after (absent for an addition or a removal respectively).
    pub before: Option<String>,
    pub after: Option<String>,
}

fn index(set: &RuleSet) -> BTreeMap<&str, (&str, &Rule)> {
    set.iter()
        .flat_map(|(_, pack)| {
            pack.rules
                .iter()
                .map(move |rule| (rule.id.as_str(), (pack.pack.as_str(), rule)))
        })
        .collect()
}

/// The rule as a `[[rules]]` entry of a pack file.
#[must_use]
pub fn rule_toml(rule: &Rule) -> String {
    toml::to_string(rule).unwrap_or_default()
}

fn fields(rule: &Rule) -> BTreeMap<String, toml::Value> {
    match toml::Value::try_from(rule) {
        Ok(toml::Value::Table(table)) => table.into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

/// The changes from `old` to `new`, in rule-id order.
#[must_use]
pub fn diff(old: &RuleSet, new: &RuleSet) -> Vec<Change> {
    let (old, new) = (index(old), index(new));
    let mut changes = Vec::new();
    for (id, (pack, rule)) in &new {
        match old.get(id) {
            None => changes.push(Change {
                rule: (*id).to_owned(),
                pack: (*pack).to_owned(),
                kind: "added",
                fields: Vec::new(),
                before: None,
                after: Some(rule_toml(rule)),
            }),
            Some((old_pack, old_rule)) => {
                let (a, b) = (fields(old_rule), fields(rule));
                let mut changed: Vec<String> = a
                    .keys()
                    .chain(b.keys())
                    .filter(|k| a.get(*k) != b.get(*k))
                    .cloned()
                    .collect();
                changed.sort();
                changed.dedup();
                if old_pack != pack {
                    changed.insert(0, "pack".to_owned());
                }
                if !changed.is_empty() {
                    changes.push(Change {
                        rule: (*id).to_owned(),
                        pack: (*pack).to_owned(),
                        kind: "changed",
                        fields: changed,
                        before: Some(rule_toml(old_rule)),
                        after: Some(rule_toml(rule)),
                    });
                }
            }
        }
    }
    for (id, (pack, rule)) in &old {
        if !new.contains_key(id) {
            changes.push(Change {
                rule: (*id).to_owned(),
                pack: (*pack).to_owned(),
                kind: "removed",
                fields: Vec::new(),
                before: Some(rule_toml(rule)),
                after: None,
            });
        }
    }
    changes.sort_by(|a, b| a.rule.cmp(&b.rule));
    changes
}
