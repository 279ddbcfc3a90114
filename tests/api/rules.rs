//! The rule editor through the API, black box: a rule published with a second approval redacts
//! on another running instance within seconds and a rollback undoes it; rules that do not load
//! cannot be published; drafts are guarded against lost updates and staleness; the test panel,
//! the dry run and hit counts; everything audited, and no tested text stored or logged.

use crate::both_backends;
use crate::helpers::{captured_logs, contains, no_worker, Backend, Options, TestApp};
use drawbridge::rules::RuleSettings;
use drawbridge::store::tokens::Role;
use serde_json::{json, Value};
use sqlx::Row;
use std::time::{Duration, Instant};

both_backends!(
    a_published_rule_reaches_a_running_instance_and_a_rollback_undoes_it,
    rules_that_do_not_load_cannot_be_published,
    drafts_are_guarded_against_lost_updates_and_staleness,
    the_test_panel_dry_run_and_hit_counts,
);

/// A rule for member ids, as the API takes it.
fn member_rule(examples_match: &[&str]) -> Value {
    json!({
        "pack": "members",
        "rule": {
            "id": "member-id",
            "description": "Our member numbers",
            "type": "BANK_ACCOUNT",
            "kind": "pattern",
            "pattern": r"\bMB-\d{6}\b",
            "replacement": "[MEMBER ID]",
            "action": "redact",
            "direction": "both",
            "examples": {"match": examples_match, "no_match": ["MB-12"]}
        }
    })
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if got != status {
        let logs = captured_logs();
        let errors: Vec<&str> = logs.lines().filter(|l| l.contains("ERROR")).collect();
        panic!("{got}, expected {status}: {body}\n{}", errors.join("\n"));
    }
    body
}

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.client
        .put(format!("{}{path}", app.address))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The newest inbound body from `from`, as stored (redacted), read through the API.
async fn newest_body(app: &TestApp, supervisor: &str, from: &str) -> String {
    let (conversation, _) = app.conversation_of(from).await;
    let thread = json_of(
        app.api_get(
            supervisor,
            &format!("/api/v1/conversations/{conversation}/messages"),
        )
        .await,
        200,
    )
    .await;
    thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["direction"] == "inbound")
        .and_then(|m| m["body"].as_str())
        .unwrap()
        .to_owned()
}

async fn actions(app: &TestApp) -> Vec<String> {
    sqlx::query("SELECT action FROM audit_event ORDER BY seq")
        .fetch_all(app.state.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn a_published_rule_reaches_a_running_instance_and_a_rollback_undoes_it(backend: Backend) {
    let publisher = TestApp::spawn(backend).await;
    // A second instance on the same database, as behind a load balancer.
    let other = TestApp::spawn_with(
        publisher.backend.clone(),
        Options {
            reuse: Some((publisher.data_dir.clone(), publisher.database_url.clone())),
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    let author = publisher.token(Role::Compliance).await;
    let reviewer = publisher.token(Role::Compliance).await;
    let supervisor = publisher.token(Role::Supervisor).await;
    let from = "+15553010001";

    assert_eq!(
        other
            .text_from(from, "member MB-123456 here")
            .await
            .status(),
        200
    );
    assert_eq!(
        newest_body(&publisher, &supervisor, from).await,
        "member MB-123456 here"
    );

    let draft = json_of(
        publisher
            .api_post(&author, "/api/v1/rules/drafts", json!({}))
            .await,
        201,
    )
    .await;
    let id = draft["id"].as_str().unwrap().to_owned();
    assert_eq!(draft["based_on"], 0);
    let saved = json_of(
        put(
            &publisher,
            &author,
            &format!("/api/v1/rules/drafts/{id}/rules/member-id"),
            member_rule(&["my member id is MB-123456"]),
        )
        .await,
        200,
    )
    .await;
    let revision = saved["revision"].as_i64().unwrap();
    assert_eq!(revision, 2);

    // The diff shows the new rule.
    let shown = json_of(
        publisher
            .api_get(&author, &format!("/api/v1/rules/drafts/{id}"))
            .await,
        200,
    )
    .await;
    assert_eq!(shown["diff"][0]["rule"], "member-id");
    assert_eq!(shown["diff"][0]["kind"], "added");

    // Two people: not without an approval, and not approved by its own author.
    let publish = format!("/api/v1/rules/drafts/{id}/publish");
    let approve = format!("/api/v1/rules/drafts/{id}/approve");
    let refused = json_of(
        publisher
            .api_post(&author, &publish, json!({"revision": revision}))
            .await,
        403,
    )
    .await;
    assert!(refused["message"].as_str().unwrap().contains("two-person"));
    json_of(
        publisher
            .api_post(&author, &approve, json!({"revision": revision}))
            .await,
        403,
    )
    .await;
    // An approval names the revision it saw.
    json_of(
        publisher
            .api_post(&reviewer, &approve, json!({"revision": revision - 1}))
            .await,
        409,
    )
    .await;
    let approved = json_of(
        publisher
            .api_post(&reviewer, &approve, json!({"revision": revision}))
            .await,
        200,
    )
    .await;
    assert_eq!(approved["approved"], true);
    let version = json_of(
        publisher
            .api_post(&author, &publish, json!({"revision": revision}))
            .await,
        201,
    )
    .await;
    assert_eq!(version["version"], 1);
    let published_at = Instant::now();

    // The other instance redacts with it within 5 seconds, without a restart.
    let mut n = 0;
    loop {
        n += 1;
        let sender = format!("+155530200{n:02}");
        assert_eq!(
            other
                .text_from(&sender, "member MB-123456 here")
                .await
                .status(),
            200
        );
        let body = newest_body(&publisher, &supervisor, &sender).await;
        if body == "member [MEMBER ID] here" {
            break;
        }
        assert_eq!(body, "member MB-123456 here");
        assert!(
            published_at.elapsed() < Duration::from_secs(5),
            "the other instance still does not redact with version 1 after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(other.state.redactor.version(), 1);

    // Roll back to the shipped rules: a new version, and the rule no longer applies anywhere.
    let rolled = json_of(
        publisher
            .api_post(&author, "/api/v1/rules/versions/0/rollback", json!({}))
            .await,
        201,
    )
    .await;
    assert_eq!(rolled["version"], 2);
    assert_eq!(rolled["restores"], 0);
    let rolled_at = Instant::now();
    loop {
        n += 1;
        let sender = format!("+155530200{n:02}");
        assert_eq!(
            other
                .text_from(&sender, "member MB-123456 here")
                .await
                .status(),
            200
        );
        if newest_body(&publisher, &supervisor, &sender).await == "member MB-123456 here" {
            break;
        }
        assert!(
            rolled_at.elapsed() < Duration::from_secs(5),
            "the other instance still redacts after the rollback"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let versions = json_of(
        publisher.api_get(&author, "/api/v1/rules/versions").await,
        200,
    )
    .await;
    let numbers: Vec<i64> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, vec![2, 1], "versions are immutable and kept");

    // A restarted instance starts with the version in force.
    let restarted = TestApp::spawn_with(
        publisher.backend.clone(),
        Options {
            reuse: Some((publisher.data_dir.clone(), publisher.database_url.clone())),
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(restarted.state.redactor.version(), 2);

    let trail = actions(&publisher).await;
    for action in [
        "rules.draft_create",
        "rules.rule_save",
        "rules.approve",
        "rules.publish",
        "rules.rollback",
    ] {
        assert!(trail.iter().any(|a| a == action), "{action} in {trail:?}");
    }
}

async fn rules_that_do_not_load_cannot_be_published(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            rules: Some(RuleSettings {
                two_person: false,
                ..RuleSettings::default()
            }),
            ..Options::default()
        },
    )
    .await;
    let token = app.token(Role::Compliance).await;
    let draft = json_of(
        app.api_post(&token, "/api/v1/rules/drafts", json!({}))
            .await,
        201,
    )
    .await;
    let id = draft["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/rules/drafts/{id}/rules/member-id");

    // An example that does not match.
    let refused = json_of(
        put(&app, &token, &path, member_rule(&["member MB-12345"])).await,
        422,
    )
    .await;
    assert_eq!(refused["code"], "invalid_rules");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("should match"),
        "{refused}"
    );
    // A pattern that can match the empty string.
    let mut empty = member_rule(&["member MB-123456"]);
    empty["rule"]["pattern"] = json!(r"(MB-\d{6})?");
    let refused = json_of(put(&app, &token, &path, empty).await, 422).await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("empty string"),
        "{refused}"
    );
    // A pattern that does not compile.
    let mut broken = member_rule(&["member MB-123456"]);
    broken["rule"]["pattern"] = json!(r"MB-(\d{6}");
    let refused = json_of(put(&app, &token, &path, broken).await, 422).await;
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("does not compile"));
    // Nothing was saved.
    let shown = json_of(
        app.api_get(&token, &format!("/api/v1/rules/drafts/{id}"))
            .await,
        200,
    )
    .await;
    assert_eq!(shown["revision"], 1);
    assert_eq!(shown["diff"], json!([]));

    // A draft whose stored rules fail an example (written around the editor) is refused at
    // publish, and nothing is published.
    let row = sqlx::query("SELECT packs FROM rule_draft WHERE rule_draft_id = $1")
        .bind(&id)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let mut packs: Value = serde_json::from_str(&row.get::<String, _>(0)).unwrap();
    packs[0]["pack"]["rules"][0]["examples"]["match"] = json!(["nothing sensitive here"]);
    sqlx::query("UPDATE rule_draft SET packs = $1 WHERE rule_draft_id = $2")
        .bind(packs.to_string())
        .bind(&id)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let refused = json_of(
        app.api_post(
            &token,
            &format!("/api/v1/rules/drafts/{id}/publish"),
            json!({"revision": 1}),
        )
        .await,
        422,
    )
    .await;
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("should match"));
    assert_eq!(app.count("rule_set_version").await, 0);
    assert_eq!(app.state.redactor.version(), 0);
}

async fn drafts_are_guarded_against_lost_updates_and_staleness(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            rules: Some(RuleSettings {
                two_person: false,
                ..RuleSettings::default()
            }),
            ..Options::default()
        },
    )
    .await;
    let token = app.token(Role::Compliance).await;
    let first = json_of(
        app.api_post(&token, "/api/v1/rules/drafts", json!({}))
            .await,
        201,
    )
    .await;
    let second = json_of(
        app.api_post(&token, "/api/v1/rules/drafts", json!({}))
            .await,
        201,
    )
    .await;
    let (first, second) = (
        first["id"].as_str().unwrap().to_owned(),
        second["id"].as_str().unwrap().to_owned(),
    );
    // An edit made against an old revision is a conflict, not a silent overwrite.
    let mut edit = member_rule(&["member MB-123456"]);
    edit["revision"] = json!(1);
    let path = format!("/api/v1/rules/drafts/{first}/rules/member-id");
    json_of(put(&app, &token, &path, edit.clone()).await, 200).await;
    json_of(put(&app, &token, &path, edit).await, 409).await;
    // Removing a rule the draft has, and one it does not.
    let delete = |rule: &str| {
        app.client
            .delete(format!(
                "{}/api/v1/rules/drafts/{second}/rules/{rule}",
                app.address
            ))
            .bearer_auth(&token)
            .send()
    };
    let removed = json_of(delete("card-number").await.unwrap(), 200).await;
    assert_eq!(removed["revision"], 2);
    json_of(delete("no-such-rule").await.unwrap(), 404).await;

    // Publishing one makes the other stale.
    json_of(
        app.api_post(
            &token,
            &format!("/api/v1/rules/drafts/{first}/publish"),
            json!({"revision": 2}),
        )
        .await,
        201,
    )
    .await;
    let stale = json_of(
        app.api_post(
            &token,
            &format!("/api/v1/rules/drafts/{second}/publish"),
            json!({"revision": 2}),
        )
        .await,
        409,
    )
    .await;
    assert!(stale["message"]
        .as_str()
        .unwrap()
        .contains("make a new draft"));
    // A published draft is closed.
    json_of(
        put(&app, &token, &path, member_rule(&["member MB-123456"])).await,
        409,
    )
    .await;
    // Discarding.
    json_of(
        app.api_post(
            &token,
            &format!("/api/v1/rules/drafts/{second}/discard"),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    let overview = json_of(app.api_get(&token, "/api/v1/rules").await, 200).await;
    assert_eq!(overview["version"], 1);
    assert_eq!(overview["drafts"], json!([]));
    // Rolling back to the version in force is refused; to an unknown one, 404.
    json_of(
        app.api_post(&token, "/api/v1/rules/versions/1/rollback", json!({}))
            .await,
        409,
    )
    .await;
    json_of(
        app.api_post(&token, "/api/v1/rules/versions/7/rollback", json!({}))
            .await,
        404,
    )
    .await;
}

async fn the_test_panel_dry_run_and_hit_counts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(Role::Compliance).await;
    // A tested card number and a dry-run corpus marker: neither may be stored or logged.
    let tested = "my card 4539 1488 0343 6467 was stolen";
    let tested_card = "4539148803436467";
    let corpus_marker = "MB-777123";

    let result = json_of(
        app.api_post(&token, "/api/v1/rules/test", json!({"text": tested}))
            .await,
        200,
    )
    .await;
    let card = result["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "CARD_NUMBER")
        .unwrap()
        .clone();
    assert_eq!(card["text"], "4539 1488 0343 6467");
    assert_eq!(card["rule"], "card-number");
    assert!(result["segments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["kind"] == "fraud"));
    assert_eq!(result["escalate"], true);
    assert!(!result["redacted"].as_str().unwrap().contains("4539"));
    // Too long a text is refused with a reason.
    let long = "a".repeat(5000);
    json_of(
        app.api_post(&token, "/api/v1/rules/test", json!({"text": long}))
            .await,
        400,
    )
    .await;

    let draft = json_of(
        app.api_post(&token, "/api/v1/rules/drafts", json!({}))
            .await,
        201,
    )
    .await;
    let id = draft["id"].as_str().unwrap().to_owned();
    json_of(
        put(
            &app,
            &token,
            &format!("/api/v1/rules/drafts/{id}/rules/member-id"),
            member_rule(&["member MB-123456"]),
        )
        .await,
        200,
    )
    .await;
    let result = json_of(
        app.api_post(
            &token,
            &format!("/api/v1/rules/drafts/{id}/test"),
            json!({"text": "member MB-123456"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(result["redacted"], "member [MEMBER ID]");
    assert_eq!(result["segments"][1]["rule"], "member-id");

    // Dry run over the built-in sample, then over an uploaded corpus.
    let dry = |body: String| {
        app.client
            .post(format!("{}/api/v1/rules/drafts/{id}/dry-run", app.address))
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body(body)
            .send()
    };
    let builtin = json_of(dry(String::new()).await.unwrap(), 200).await;
    assert_eq!(builtin["messages"], 1000);
    assert_eq!(builtin["newly_missed"], 0);
    let corpus = format!(
        "{{\"id\": \"m1\", \"text\": \"my member number is {corpus_marker}\"}}\n{{\"id\": \"m2\", \"text\": \"hello\"}}\n"
    );
    let uploaded = json_of(dry(corpus).await.unwrap(), 200).await;
    assert_eq!(uploaded["messages"], 2);
    assert_eq!(uploaded["newly_hit"], 1);
    assert_eq!(uploaded["examples"][0]["id"], "m1");
    assert_eq!(
        uploaded["examples"][0]["after"],
        "my member number is [MEMBER ID]"
    );
    let bad = json_of(dry("{\"nope\": 1}".to_owned()).await.unwrap(), 400).await;
    assert!(bad["message"].as_str().unwrap().contains("line 1"));

    // Hit counts: two stored messages with a card number, one with a fraud word.
    for (from, body) in [
        ("+15553030001", "card 4111111111111111 please"),
        ("+15553030002", "card 4111111111111111 was stolen"),
    ] {
        assert_eq!(app.text_from(from, body).await.status(), 200);
    }
    let overview = json_of(app.api_get(&token, "/api/v1/rules").await, 200).await;
    let rule = |id: &str| -> Value {
        overview["packs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["rules"].as_array().unwrap().iter())
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(rule("card-number")["hits_7d"], 2);
    assert_eq!(rule("card-number")["hits_30d"], 2);
    assert_eq!(overview["drafts"][0]["id"], json!(id));

    // The tested and uploaded texts went nowhere.
    let stored = app.stored_bytes().await;
    for secret in [tested_card, "4539 1488 0343 6467", corpus_marker] {
        assert!(!contains(&stored, secret), "{secret} in the database");
        assert!(!captured_logs().contains(secret), "{secret} in the logs");
    }
    let trail = actions(&app).await;
    assert!(trail.iter().any(|a| a == "rules.dry_run"));
}
