//! Unit tests of the workspace's pure parts: rule checks, diff, test panel, dry run, encoding.

use super::diff::diff;
use super::dry_run::{self, Sample};
use super::*;
use crate::redact::rules::{Action, Category, Direction, EntityType, Examples, RuleKind};
use crate::redact::validators::Validator;

fn rule(id: &str, pattern: &str) -> Rule {
    Rule {
        id: id.to_owned(),
        description: "test".to_owned(),
        category: Category::Entity(EntityType::BankAccount),
        kind: RuleKind::Pattern,
        pattern: Some(pattern.to_owned()),
        terms: Vec::new(),
        validator: Validator::None,
        context: Vec::new(),
        context_window: 5,
        case_sensitive: false,
        replacement: Some("[MEMBER ID]".to_owned()),
        action: Action::Redact,
        direction: Direction::Both,
        enabled: true,
        priority: 0,
        examples: Examples {
            matches: vec!["member MB-123456".to_owned()],
            no_match: vec!["member MB-12".to_owned()],
        },
    }
}

fn shipped() -> RuleSet {
    crate::redact::rules::default_packs().unwrap_or_default()
}

#[test]
fn a_rule_that_compiles_and_passes_its_examples_is_accepted() {
    assert_eq!(
        check_rule("members", &rule("member-id", r"\bMB-\d{6}\b")),
        Ok(())
    );
}

#[test]
fn a_pattern_that_matches_the_empty_string_is_refused() {
    let problems = check_rule("members", &rule("member-id", r"(MB-\d{6})?")).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("empty string")),
        "{problems:?}"
    );
}

#[test]
fn a_pattern_that_does_not_compile_is_refused() {
    let problems = check_rule("members", &rule("member-id", r"MB-(\d{6}")).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("does not compile")),
        "{problems:?}"
    );
}

#[test]
fn a_pattern_over_the_size_limit_is_refused() {
    let problems = check_rule("members", &rule("member-id", r"\w{1000}\d{1000}")).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("size limit")),
        "{problems:?}"
    );
}

#[test]
fn a_failing_example_is_refused_even_on_a_disabled_rule() {
    let mut bad = rule("member-id", r"\bMB-\d{6}\b");
    bad.examples.matches.push("member MB-12345".to_owned());
    let problems = check_rule("members", &bad).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("should match")),
        "{problems:?}"
    );
    bad.enabled = false;
    assert!(check_rule("members", &bad).is_err());
}

#[test]
fn rule_sets_survive_storage() {
    let set = shipped();
    assert_eq!(decode(&encode(&set)).unwrap(), set);
    assert!(matches!(decode("not json"), Err(RulesError::Corrupt)));
}

#[test]
fn the_diff_names_added_removed_and_changed_rules() {
    let old = shipped();
    let mut new = old.clone();
    let (_, first) = new.first_mut().unwrap();
    let removed = first.rules.remove(0);
    let changed_id = first.rules[0].id.clone();
    first.rules[0].priority += 7;
    first.rules.push(rule("member-id", r"\bMB-\d{6}\b"));
    let changes = diff(&old, &new);
    assert_eq!(changes.len(), 3, "{changes:?}");
    let find = |id: &str| changes.iter().find(|c| c.rule == id).unwrap();
    assert_eq!(find("member-id").kind, "added");
    assert!(find("member-id").after.as_deref().unwrap().contains("MB-"));
    assert_eq!(find(&removed.id).kind, "removed");
    assert_eq!(find(&changed_id).kind, "changed");
    assert_eq!(find(&changed_id).fields, vec!["priority".to_owned()]);
    assert!(diff(&old, &old).is_empty());
}

#[test]
fn the_test_panel_cuts_the_text_at_every_match() {
    let engine = Engine::load(&shipped()).unwrap();
    let text = "my card 4111 1111 1111 1111 was stolen, call me";
    let result = test(&engine, text, Direction::Inbound);
    let joined: String = result.segments.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(joined, text, "segments cover the text exactly");
    let card = result
        .segments
        .iter()
        .find(|s| s.kind.as_deref() == Some("CARD_NUMBER"))
        .unwrap();
    assert_eq!(card.text, "4111 1111 1111 1111");
    assert!(card.rule.is_some());
    assert!(result
        .segments
        .iter()
        .any(|s| s.kind.as_deref() == Some("fraud")));
    assert!(result.redacted.contains("1111]"));
    assert!(!result.redacted.contains("4111 1111"));
    assert!(result.escalate);
}

#[test]
fn a_dry_run_counts_what_a_new_rule_newly_hits() {
    let before = Engine::load(&shipped()).unwrap();
    let mut set = shipped();
    set.push((
        "members.toml".to_owned(),
        Pack {
            pack: "members".to_owned(),
            description: String::new(),
            rules: vec![rule("member-id", r"\bMB-\d{6}\b")],
        },
    ));
    let after = Engine::load(&set).unwrap();
    let samples = dry_run::parse(
        "{\"id\": \"a\", \"text\": \"my member id is MB-123456\"}\n{\"text\": \"hello there\"}\n",
    )
    .unwrap();
    let report = dry_run::run(&before, &after, &samples);
    assert_eq!(report.messages, 2);
    assert_eq!(report.newly_hit, 1);
    assert_eq!(report.newly_missed, 0);
    let example = &report.examples[0];
    assert_eq!(example.id, "a");
    assert_eq!(example.after, "my member id is [MEMBER ID]");
    assert_eq!(example.rules_after, vec!["member-id".to_owned()]);
    // Reversed, the same message is newly missed.
    let report = dry_run::run(&after, &before, &samples);
    assert_eq!((report.newly_hit, report.newly_missed), (0, 1));
}

#[test]
fn corpora_parse_as_json_lines_or_plain_lines() {
    let plain = dry_run::parse("first\n\nsecond\n").unwrap();
    assert_eq!(plain.len(), 2);
    assert_eq!(plain[1].id, "line 3");
    assert!(dry_run::parse("{\"text\": 1}")
        .unwrap_err()
        .contains("line 1"));
    assert!(dry_run::parse("{\"text\": \"a\"}\nnot json")
        .unwrap_err()
        .contains("line 2"));
    assert!(dry_run::parse("\n \n").is_err());
    let sample = dry_run::parse(dry_run::SAMPLE_CORPUS).unwrap();
    assert_eq!(sample.len(), 1000);
    let _: &[Sample] = &sample;
}

#[test]
fn approval_needs_someone_who_did_not_edit() {
    let draft = Draft {
        id: "d".to_owned(),
        based_on: 0,
        packs: Vec::new(),
        revision: 3,
        status: "draft".to_owned(),
        created_by: "user:a".to_owned(),
        editors: vec!["user:b".to_owned()],
        approved_by: Some("user:c".to_owned()),
        approved_revision: Some(2),
        created_at: String::new(),
        updated_at: String::new(),
        published_version: None,
    };
    assert!(
        !draft.approved(),
        "an approval of an earlier revision does not count"
    );
    assert!(!draft.may_approve(&Principal::user("a", Role::Compliance)));
    assert!(!draft.may_approve(&Principal::user("b", Role::Compliance)));
    assert!(!draft.may_approve(&Principal::user("c", Role::Supervisor)));
    assert!(draft.may_approve(&Principal::user("c", Role::Compliance)));
}

#[test]
fn hit_counts_are_kept_per_day_and_rule() {
    let counter = hits::HitCounter::default();
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    counter.record(at, &["card-number", "fraud"].into_iter().collect());
    counter.record(at, &["card-number"].into_iter().collect());
    let pending = counter.pending_for_tests();
    assert_eq!(
        pending.get(&("2023-11-14".to_owned(), "card-number".to_owned())),
        Some(&2)
    );
    assert_eq!(
        pending.get(&("2023-11-14".to_owned(), "fraud".to_owned())),
        Some(&1)
    );
}
