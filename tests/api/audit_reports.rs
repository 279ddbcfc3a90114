//! Issue #8 items 2 and 6: audit pruning with a signed checkpoint (on an adjustable clock), the
//! anchor kept outside the database, the audit trail browser and its API (filters, cursor,
//! verify, CSV/JSON export, all audited), and the compliance reports from real webhook traffic.

use crate::both_backends;
use crate::helpers::*;
use drawbridge::audit::prune::{self, AnchorCheck, PruneError};
use drawbridge::audit::{self, Actor, Break, Event, Problem};
use drawbridge::clock::Clock;
use drawbridge::store::tokens::Role;
use serde_json::{json, Value};
use sqlx::Row;

both_backends!(
    pruning_leaves_a_checkpoint_the_rest_verifies_from,
    the_audit_browser_filters_pages_verifies_and_exports,
    reports_count_real_traffic,
);

const PAN: &str = "4539148803436467";
const CUSTOMER: &str = "+15557654321";

async fn append(app: &TestApp, action: &str, subject: (&str, &str), n: i64) -> i64 {
    let mut tx = app.state.db.pool().begin().await.unwrap();
    let seq = audit::append(
        &mut tx,
        app.state.vault.audit_key(),
        &Event::new(Actor::User("0192f3a4-0000-7abc-8def-0123456789ab"), action)
            .subject(subject.0, subject.1)
            .detail("n", n),
        &app.state.clock.timestamp(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    seq
}

async fn verify(app: &TestApp) -> audit::Report {
    audit::verify(&app.state.db, app.state.vault.audit_key())
        .await
        .unwrap()
}

async fn execute(app: &TestApp, sql: &str) {
    sqlx::query(sql)
        .execute(app.state.db.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
    drawbridge::store::parse_timestamp(text).unwrap()
}

async fn pruning_leaves_a_checkpoint_the_rest_verifies_from(backend: Backend) {
    let clock = Clock::adjustable();
    clock.set(at("2018-03-01T12:00:00Z"));
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            clock: Some(clock.clone()),
            ..Options::default()
        },
    )
    .await;
    let key = app.state.vault.audit_key();
    // Start from an empty trail (the start-up's own events carry the system clock's time).
    execute(&app, "DELETE FROM audit_event").await;
    sqlx::query("UPDATE audit_head SET last_seq = 0, last_hash = $1")
        .bind(vec![0_u8; 32])
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let before_start = 0_i64;
    // Eight old events in 2018, then five eight years later.
    for n in 0..8 {
        append(&app, "test.old", ("contact", "c-old"), n).await;
    }
    clock.set(at("2026-03-01T12:00:00Z"));
    for n in 0..5 {
        append(&app, "test.new", ("contact", "c-new"), n).await;
    }
    assert!(verify(&app).await.is_intact());
    let anchor_before = prune::anchor(&app.state.db, key, &clock).await.unwrap();

    // A cut-off in the future is refused; the default keeps seven years: the 2018 events go.
    assert!(matches!(
        prune::prune(
            &app.state.db,
            key,
            at("2030-01-01T00:00:00Z"),
            &clock,
            Actor::System
        )
        .await,
        Err(PruneError::Future)
    ));
    let cutoff = prune::default_cutoff(clock.now());
    // Seven calendar years before now (the adjustable clock keeps running from where it is set).
    assert!(
        drawbridge::store::timestamp(cutoff).starts_with("2019-03-01T12:00:0"),
        "{cutoff}"
    );
    let pruned = prune::prune(&app.state.db, key, cutoff, &clock, Actor::Cli("ops"))
        .await
        .unwrap();
    assert_eq!(pruned.deleted, u64::try_from(8 + before_start).unwrap());
    let checkpoint = pruned.checkpoint.clone().unwrap();
    assert_eq!(checkpoint.last_seq, 8 + before_start);
    assert_eq!(checkpoint.pruned, 8 + before_start);
    assert_eq!(
        app.count("audit_event").await,
        5 + 1,
        "the new ones and the prune event"
    );
    let report = verify(&app).await;
    assert_eq!(report.to_string(), "audit trail intact: 6 events");
    // The prune is itself an event, by its actor.
    let prune_event = sqlx::query(
        "SELECT actor_kind, actor_id, subjects FROM audit_event WHERE action = 'audit.prune'",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(prune_event.get::<String, _>(0), "cli");
    assert_eq!(prune_event.get::<String, _>(1), "ops");
    // Pruning again finds nothing older and writes nothing.
    let again = prune::prune(&app.state.db, key, cutoff, &clock, Actor::System)
        .await
        .unwrap();
    assert_eq!(again.deleted, 0);
    assert_eq!(app.count("audit_event").await, 6);
    // The anchor taken before pruning still agrees (its head event is still there); a fresh one too.
    assert_eq!(
        prune::check_anchor(&app.state.db, key, &anchor_before)
            .await
            .unwrap(),
        AnchorCheck::Consistent
    );

    // An edited checkpoint is detected, and nothing is pruned while it is.
    execute(&app, "UPDATE audit_checkpoint SET pruned = pruned + 1").await;
    assert_eq!(
        verify(&app).await.first_bad,
        Some(Break {
            seq: checkpoint.last_seq,
            problem: Problem::Checkpoint
        })
    );
    assert!(matches!(
        prune::prune(&app.state.db, key, clock.now(), &clock, Actor::System).await,
        Err(PruneError::Broken(_))
    ));
    execute(&app, "UPDATE audit_checkpoint SET pruned = pruned - 1").await;
    assert!(verify(&app).await.is_intact());
    // A checkpoint moved forward (more rows deleted) without the key is detected too.
    execute(&app, "UPDATE audit_checkpoint SET last_seq = last_seq + 1").await;
    assert_eq!(
        verify(&app).await.first_bad.map(|b| b.problem),
        Some(Problem::Checkpoint)
    );
    execute(&app, "UPDATE audit_checkpoint SET last_seq = last_seq - 1").await;
    // Deleting the checkpoint leaves the trail starting after event #1: a gap.
    let saved = sqlx::query("SELECT last_seq, last_hash, pruned, pruned_before, at, key_version, mac FROM audit_checkpoint")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let saved: (i64, Vec<u8>, i64, String, String, i64, Vec<u8>) = (
        saved.get(0),
        saved.get(1),
        saved.get(2),
        saved.get(3),
        saved.get(4),
        saved.get(5),
        saved.get(6),
    );
    execute(&app, "DELETE FROM audit_checkpoint").await;
    assert_eq!(
        verify(&app).await.first_bad,
        Some(Break {
            seq: 1,
            problem: Problem::Missing
        })
    );
    sqlx::query("INSERT INTO audit_checkpoint (checkpoint_id, last_seq, last_hash, pruned, pruned_before, at, key_version, mac) VALUES (1, $1, $2, $3, $4, $5, $6, $7)")
        .bind(saved.0).bind(saved.1).bind(saved.2).bind(saved.3).bind(saved.4).bind(saved.5).bind(saved.6)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    assert!(verify(&app).await.is_intact());
    // Deleting the first row after the checkpoint is detected.
    let first_kept = checkpoint.last_seq + 1;
    execute(
        &app,
        &format!("DELETE FROM audit_event WHERE seq = {first_kept}"),
    )
    .await;
    assert_eq!(
        verify(&app).await.first_bad,
        Some(Break {
            seq: first_kept,
            problem: Problem::Missing
        })
    );
    // … and the prune refuses to launder it.
    assert!(matches!(
        prune::prune(&app.state.db, key, clock.now(), &clock, Actor::System).await,
        Err(PruneError::Broken(_))
    ));

    // The anchor kept outside catches a truncation with the head rolled back, which verify alone
    // cannot: delete the newest event and roll the head back to the one before.
    let app2 = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    let key2 = app2.state.vault.audit_key();
    for n in 0..3 {
        append(&app2, "test.step", ("contact", "c-1"), n).await;
    }
    let anchor = prune::anchor(&app2.state.db, key2, &app2.state.clock)
        .await
        .unwrap();
    let head: i64 = anchor["head"]["seq"].as_i64().unwrap();
    let mut forged = anchor.clone();
    forged["head"]["seq"] = json!(head - 1);
    assert_eq!(
        prune::check_anchor(&app2.state.db, key2, &forged)
            .await
            .unwrap(),
        AnchorCheck::BadSignature
    );
    let previous: Vec<u8> = sqlx::query("SELECT hash FROM audit_event WHERE seq = $1")
        .bind(head - 1)
        .fetch_one(app2.state.db.pool())
        .await
        .unwrap()
        .get(0);
    execute(
        &app2,
        &format!("DELETE FROM audit_event WHERE seq = {head}"),
    )
    .await;
    sqlx::query("UPDATE audit_head SET last_seq = $1, last_hash = $2")
        .bind(head - 1)
        .bind(previous)
        .execute(app2.state.db.pool())
        .await
        .unwrap();
    assert!(
        verify(&app2).await.is_intact(),
        "the chain alone cannot tell"
    );
    assert_eq!(
        prune::check_anchor(&app2.state.db, key2, &anchor)
            .await
            .unwrap(),
        AnchorCheck::RolledBack { seq: head }
    );
}

/// A signed-in console user: (cookie, csrf).
async fn signed_in(app: &TestApp, role: Role) -> (String, String) {
    let who = crate::console_inbox::signed_in(app, role).await;
    (who.cookie, who.csrf)
}

async fn console_get(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn the_audit_browser_filters_pages_verifies_and_exports(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    for n in 0..3 {
        append(&app, "secure_link.create", ("conversation", "conv_a"), n).await;
    }
    append(&app, "secure_link.revoke", ("conversation", "conv_b"), 9).await;
    append(&app, "consent.opt_out", ("contact", "contact_x"), 1).await;
    let compliance = app.token(Role::Compliance).await;

    // Prefix and exact actions, subjects, newest first, a cursor.
    let page: Value = app
        .api_get(
            &compliance,
            "/api/v1/audit/events?action=secure_link.&limit=2",
        )
        .await
        .json()
        .await
        .unwrap();
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["action"], "secure_link.revoke");
    assert!(events[0]["seq"].as_i64() > events[1]["seq"].as_i64());
    let cursor = page["next_cursor"].as_i64().unwrap();
    let rest: Value = app
        .api_get(
            &compliance,
            &format!("/api/v1/audit/events?action=secure_link.&limit=2&before={cursor}"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["events"].as_array().unwrap().len(), 2);
    assert!(rest["next_cursor"].is_null());
    let by_subject: Value = app
        .api_get(
            &compliance,
            "/api/v1/audit/events?subject_kind=conversation&subject_id=conv_b",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_subject["events"].as_array().unwrap().len(), 1);
    assert_eq!(by_subject["events"][0]["subjects"][0][1], "conv_b");
    let exact: Value = app
        .api_get(
            &compliance,
            "/api/v1/audit/events?action=consent.opt_out&actor_kind=user",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(exact["events"].as_array().unwrap().len(), 1);
    // `_` in a prefix is literal, not a wildcard: "secure_lin." is no prefix of "secure_link.".
    let none: Value = app
        .api_get(
            &compliance,
            "/api/v1/audit/events?action=secure_lin.&from=2000-01-01&until=2999-01-01",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["events"].as_array().unwrap().len(), 0);
    // A bad filter is a 400 naming the field, not echoing the value.
    let bad = app
        .api_get(
            &compliance,
            "/api/v1/audit/events?subject_id=%2B15551234567",
        )
        .await;
    assert_eq!(bad.status(), 400);
    let body = bad.text().await.unwrap();
    assert!(
        body.contains("subject_id") && !body.contains("5551234567"),
        "{body}"
    );
    assert_eq!(
        app.api_get(&compliance, "/api/v1/audit/events?colour=red")
            .await
            .status(),
        400
    );

    // Verify through the API, audited.
    let verified: Value = app
        .api_get(&compliance, "/api/v1/audit/verify")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verified["intact"], true);
    assert!(verified["first_bad"].is_null());
    let verify_events: i64 =
        sqlx::query("SELECT COUNT(*) FROM audit_event WHERE action = 'audit.verify'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    assert_eq!(verify_events, 1);

    // The console page shows the filtered events; the verify button works with CSRF.
    let (cookie, csrf) = signed_in(&app, Role::Compliance).await;
    let response = console_get(&app, &cookie, "/compliance/audit?action=secure_link.create").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert_eq!(html.matches("<tr data-seq=").count(), 3, "{html}");
    assert!(
        html.contains("Verify chain")
            && html.contains("/compliance/audit/export/csv?action=secure_link.create")
    );
    assert_eq!(
        console_get(&app, &cookie, "/compliance/audit?from=yesterday")
            .await
            .status(),
        400
    );
    let verified = app
        .client
        .post(format!("{}/compliance/audit/verify", app.address))
        .header("cookie", &cookie)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    let html = verified.text().await.unwrap();
    assert!(
        html.contains("data-intact=\"true\"") && html.contains("audit trail intact"),
        "{html}"
    );

    // Exports: CSV and JSON of the filtered events, each audited as audit.export.
    let csv = console_get(
        &app,
        &cookie,
        "/compliance/audit/export/csv?action=secure_link.",
    )
    .await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let text = csv.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        audit::query::CSV_HEADER.to_vec()
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(&rows[0][4], "secure_link.revoke");
    let json_export: Value = console_get(
        &app,
        &cookie,
        "/compliance/audit/export/json?subject_id=conv_a",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(json_export["events"].as_array().unwrap().len(), 3);
    let exports =
        sqlx::query("SELECT details FROM audit_event WHERE action = 'audit.export' ORDER BY seq")
            .fetch_all(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(exports.len(), 2);
    let first: Value = serde_json::from_str(&exports[0].get::<String, _>(0)).unwrap();
    assert_eq!(
        first,
        json!({"format": "csv", "events": 4, "filters": ["action"]})
    );
    // The anchor download is signed and audited.
    let anchor: Value = console_get(&app, &cookie, "/compliance/audit/anchor")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(anchor["format"], "drawbridge/audit-anchor/v1");
    assert_eq!(
        prune::check_anchor(&app.state.db, app.state.vault.audit_key(), &anchor)
            .await
            .unwrap(),
        AnchorCheck::Consistent
    );
    // The whole trail still verifies after all that.
    assert!(verify(&app).await.is_intact());
}

fn new_york(day: u32, hour: u32, minute: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono_tz::America::New_York
        .with_ymd_and_hms(2026, 11, day, hour, minute, 0)
        .single()
        .unwrap()
        .with_timezone(&chrono::Utc)
}

async fn reports_count_real_traffic(backend: Backend) {
    let clock = Clock::adjustable();
    clock.set(new_york(20, 19, 0));
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            clock: Some(clock.clone()),
            ..Options::default()
        },
    )
    .await;
    // Three inbound messages on Nov 21 (UTC): two card numbers in one, an SSN in another, a STOP.
    assert_eq!(
        app.text_from(CUSTOMER, "thanks, talk tomorrow")
            .await
            .status(),
        200
    );
    let (conversation, _) = app.conversation_of(CUSTOMER).await;
    clock.set(new_york(21, 10, 0));
    assert_eq!(
        app.text_from(
            CUSTOMER,
            &format!("cards {PAN} and 4111 1111 1111 1111 please")
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        app.text_from("+15557654322", "my ssn is 219-09-9999")
            .await
            .status(),
        200
    );
    assert_eq!(app.text_from("+15557654323", "STOP").await.status(), 200);
    // An agent's reply holding a card number is refused (recorded), and at 22:30 a reply is held.
    let agent = app.token(Role::Agent).await;
    let path = format!("/api/v1/conversations/{conversation}/messages");
    let refused = app
        .api_post(&agent, &path, json!({"body": format!("is it {PAN}?")}))
        .await;
    assert_eq!(refused.status(), 422);
    clock.set(new_york(21, 22, 30));
    let held = app
        .api_post(&agent, &path, json!({"body": "We will call tomorrow."}))
        .await;
    assert_eq!(held.status(), 202);
    assert_eq!(held.json::<Value>().await.unwrap()["status"], "held");

    let supervisor = app.token(Role::Supervisor).await;
    let range = "from=2026-11-15&to=2026-11-23";
    let get = |name: &'static str| {
        let app = &app;
        let supervisor = supervisor.clone();
        async move {
            let response = app
                .api_get(&supervisor, &format!("/api/v1/reports/{name}?{range}"))
                .await;
            assert_eq!(response.status(), 200, "{name}");
            response.json::<Value>().await.unwrap()
        }
    };
    let redactions = get("redactions").await;
    assert_eq!(redactions["totals"]["CARD_NUMBER"], 2, "{redactions}");
    assert_eq!(redactions["totals"]["US_SSN"], 1, "{redactions}");
    let day = redactions["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["day"] == "2026-11-21")
        .unwrap()
        .clone();
    assert_eq!(day["CARD_NUMBER"], 2);
    let escalations = get("escalations").await;
    assert_eq!(
        escalations["totals"]["conversations_escalated"], 2,
        "{escalations}"
    );
    assert_eq!(escalations["totals"]["links_created"], 2, "{escalations}");
    assert_eq!(escalations["totals"]["links_verified"], 0);
    assert_eq!(escalations["summary"]["completion_rate"], "0.0%");
    let opt_outs = get("opt_outs").await;
    assert_eq!(opt_outs["totals"]["keyword"], 1, "{opt_outs}");
    let holds = get("quiet_holds").await;
    assert_eq!(holds["totals"]["held"], 1, "{holds}");
    let dlp = get("dlp_refusals").await;
    assert_eq!(dlp["totals"]["refusals"], 1, "{dlp}");
    assert_eq!(dlp["totals"]["CARD_NUMBER"], 1, "{dlp}");
    // Refusals: unknown report, bad range, the wrong role.
    assert_eq!(
        app.api_get(&supervisor, "/api/v1/reports/nope")
            .await
            .status(),
        404
    );
    assert_eq!(
        app.api_get(
            &supervisor,
            "/api/v1/reports/opt_outs?from=2026-11-30&to=2026-11-01"
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        app.api_get(&agent, "/api/v1/reports/opt_outs")
            .await
            .status(),
        403
    );

    // The page: an accessible SVG per report with the numbers, and CSV links.
    let (cookie, _) = signed_in(&app, Role::Compliance).await;
    let response = console_get(&app, &cookie, &format!("/compliance/reports?{range}")).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    for name in drawbridge::compliance::reports::NAMES {
        assert!(html.contains(&format!("id=\"chart-{name}\"")), "{name}");
        assert!(
            html.contains(&format!(
                "/compliance/reports/csv/{name}?from=2026-11-15&amp;to=2026-11-23"
            )),
            "{name}"
        );
    }
    assert!(
        html.contains("role=\"img\"") && html.contains("<title id=\"chart-redactions-title\">")
    );
    assert!(
        html.contains("data-series=\"CARD_NUMBER\" data-count=\"2\""),
        "{html}"
    );
    assert!(html.contains("CARD_NUMBER 2, US_SSN 1"));
    assert!(!html.contains("<script>"), "no inline script");
    let csv = console_get(
        &app,
        &cookie,
        &format!("/compliance/reports/csv/redactions?{range}"),
    )
    .await;
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("day,CARD_NUMBER,US_SSN\n"), "{csv}");
    assert!(csv.contains("2026-11-21,2,1\n"), "{csv}");
    let escalation_csv = console_get(
        &app,
        &cookie,
        &format!("/compliance/reports/csv/escalations?{range}"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        escalation_csv.starts_with("day,conversations_escalated,links_created,links_verified\n")
    );

    // Nothing sensitive in any output, the stored bytes or the logs.
    let mut outputs = vec![html, csv, escalation_csv];
    for name in drawbridge::compliance::reports::NAMES {
        outputs.push(get(name).await.to_string());
    }
    for secret in [PAN, "4111 1111", "219-09-9999", "5557654321", "7654322"] {
        for output in &outputs {
            assert!(!output.contains(secret), "{secret} in output");
        }
        assert!(
            !contains(&app.stored_bytes().await, secret),
            "{secret} stored"
        );
        assert!(!captured_logs().contains(secret), "{secret} logged");
    }
}
