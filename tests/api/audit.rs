//! The audit trail: appends (also concurrent ones) form an intact chain; every way of tampering
//! with the stored rows is named by `verify` and by `drawbridge audit verify`'s function; details
//! that look like customer data are refused before anything is written.

use crate::both_backends;
use crate::helpers::*;
use drawbridge::audit::{self, Actor, AuditError, Break, Event, Invalid, Problem};
use drawbridge::store;
use sqlx::Row;

both_backends!(
    appends_form_a_chain,
    tampering_is_named,
    verify_command_reports,
    sensitive_details_are_refused,
    verify_ten_thousand_events,
);

/// Appends one event in its own transaction.
async fn append_one(app: &TestApp, n: i64) -> i64 {
    let mut tx = app.state.db.pool().begin().await.unwrap();
    let seq = audit::append(
        &mut tx,
        app.state.vault.audit_key(),
        &Event::new(
            Actor::User("0192f3a4-0000-7abc-8def-0123456789ab"),
            "test.step",
        )
        .subject("contact", "0192f3a4-5678-7abc-8def-0123456789ab")
        .detail("n", n)
        .detail("keyword", "STOP"),
        &store::now(),
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

async fn appends_form_a_chain(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    empty_trail(&app).await;
    assert_eq!(
        verify(&app).await.to_string(),
        "audit trail intact: 0 events"
    );
    for n in 1..=3 {
        assert_eq!(append_one(&app, n).await, n);
    }
    // Several tasks at once, each appending in its own transactions.
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..10 {
                    seqs.push(append_one(&app, 100 + task * 10 + i).await);
                }
                seqs
            })
        })
        .collect();
    // Verifying while they append: every walk sees an intact trail (the head can run ahead of
    // the rows a walk has read; the walk reads on rather than calling that a deletion).
    let mut walks = 0;
    while !tasks.iter().all(tokio::task::JoinHandle::is_finished) {
        let report = verify(&app).await;
        assert!(report.is_intact(), "during appends: {report}");
        walks += 1;
    }
    assert!(walks > 0);
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (4..=83).collect::<Vec<i64>>(),
        "every seq distinct, no gaps"
    );
    let report = verify(&app).await;
    assert_eq!(report.to_string(), "audit trail intact: 83 events");
    assert!(report.is_intact());

    // A rolled-back append leaves nothing behind: the next one takes the same seq.
    let mut tx = app.state.db.pool().begin().await.unwrap();
    let seq = audit::append(
        &mut tx,
        app.state.vault.audit_key(),
        &Event::new(Actor::System, "test.rolled_back"),
        &store::now(),
    )
    .await
    .unwrap();
    assert_eq!(seq, 84);
    tx.rollback().await.unwrap();
    assert_eq!(append_one(&app, 84).await, 84);
    assert!(verify(&app).await.is_intact());

    // What is stored: ids, the action, the details as given.
    let row = sqlx::query(
        "SELECT actor_kind, actor_id, action, subjects, details, length(hash) FROM audit_event WHERE seq = 1",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), "user");
    assert_eq!(
        row.get::<String, _>(1),
        "0192f3a4-0000-7abc-8def-0123456789ab"
    );
    assert_eq!(row.get::<String, _>(2), "test.step");
    assert_eq!(
        row.get::<String, _>(3),
        r#"[["contact","0192f3a4-5678-7abc-8def-0123456789ab"]]"#
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&row.get::<String, _>(4)).unwrap(),
        serde_json::json!({"n": 1, "keyword": "STOP"})
    );
    assert_eq!(row.get::<i64, _>(5), 32);
}

/// Empties the trail, as a new database's is before the server's first start records its
/// configuration (`config.change`): the seq numbers in this file count from an empty trail.
async fn empty_trail(app: &TestApp) {
    execute(app, "DELETE FROM audit_event").await;
    sqlx::query("UPDATE audit_head SET last_seq = 0, last_hash = $1")
        .bind(vec![0_u8; 32])
        .execute(app.state.db.pool())
        .await
        .unwrap();
}

/// Empties the trail and appends six fresh events.
async fn fresh_trail(app: &TestApp) {
    empty_trail(app).await;
    for n in 1..=6 {
        append_one(app, n).await;
    }
    assert!(verify(app).await.is_intact());
}

async fn tampering_is_named(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    empty_trail(&app).await;
    let guess = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let hex_literal = |hex: &str| match app.state.db.backend() {
        store::Backend::Sqlite => format!("x'{hex}'"),
        store::Backend::Postgres => format!("decode('{hex}', 'hex')"),
    };
    let cases: Vec<(&str, Vec<String>, Break)> = vec![
        (
            "edit a row's action",
            vec!["UPDATE audit_event SET action = 'test.innocent' WHERE seq = 3".into()],
            Break {
                seq: 3,
                problem: Problem::Altered,
            },
        ),
        (
            "edit a row's details",
            vec![r#"UPDATE audit_event SET details = '{"keyword":"START","n":4}' WHERE seq = 4"#.into()],
            Break {
                seq: 4,
                problem: Problem::Altered,
            },
        ),
        (
            "edit a row's actor",
            vec!["UPDATE audit_event SET actor_kind = 'system', actor_id = '' WHERE seq = 1".into()],
            Break {
                seq: 1,
                problem: Problem::Altered,
            },
        ),
        (
            "delete a middle row",
            vec!["DELETE FROM audit_event WHERE seq = 3".into()],
            Break {
                seq: 3,
                problem: Problem::Missing,
            },
        ),
        (
            "delete the first row",
            vec!["DELETE FROM audit_event WHERE seq = 1".into()],
            Break {
                seq: 1,
                problem: Problem::Missing,
            },
        ),
        (
            "delete the last row",
            vec!["DELETE FROM audit_event WHERE seq = 6".into()],
            Break {
                seq: 6,
                problem: Problem::Truncated { head_seq: 6 },
            },
        ),
        (
            "insert a forged row at the end",
            vec![format!(
                "INSERT INTO audit_event (seq, at, actor_kind, actor_id, action, subjects, details, key_version, prev_hash, hash) \
                 SELECT 7, at, 'system', '', 'test.forged', '[]', '{{}}', key_version, hash, {} FROM audit_event WHERE seq = 6",
                hex_literal(guess)
            )],
            Break {
                seq: 7,
                problem: Problem::Altered,
            },
        ),
        (
            "insert a forged row at the end and move the head to it",
            vec![
                format!(
                    "INSERT INTO audit_event (seq, at, actor_kind, actor_id, action, subjects, details, key_version, prev_hash, hash) \
                     SELECT 7, at, 'system', '', 'test.forged', '[]', '{{}}', key_version, hash, {} FROM audit_event WHERE seq = 6",
                    hex_literal(guess)
                ),
                format!("UPDATE audit_head SET last_seq = 7, last_hash = {}", hex_literal(guess)),
            ],
            Break {
                seq: 7,
                problem: Problem::Altered,
            },
        ),
        (
            "insert a forged row in the middle",
            vec![
                "UPDATE audit_event SET seq = -(seq + 1) WHERE seq >= 3".into(),
                "UPDATE audit_event SET seq = -seq WHERE seq < 0".into(),
                format!(
                    "INSERT INTO audit_event (seq, at, actor_kind, actor_id, action, subjects, details, key_version, prev_hash, hash) \
                     SELECT 3, at, 'system', '', 'test.forged', '[]', '{{}}', key_version, hash, {} FROM audit_event WHERE seq = 2",
                    hex_literal(guess)
                ),
                "UPDATE audit_head SET last_seq = 7".into(),
            ],
            Break {
                seq: 3,
                problem: Problem::Altered,
            },
        ),
        (
            "swap two rows' seq",
            vec![
                "UPDATE audit_event SET seq = -1 WHERE seq = 2".into(),
                "UPDATE audit_event SET seq = 2 WHERE seq = 5".into(),
                "UPDATE audit_event SET seq = 5 WHERE seq = -1".into(),
            ],
            Break {
                seq: 2,
                problem: Problem::Unlinked,
            },
        ),
        (
            "roll the head back",
            vec!["UPDATE audit_head SET last_seq = 4, last_hash = (SELECT hash FROM audit_event WHERE seq = 4)".into()],
            Break {
                seq: 5,
                problem: Problem::BeyondHead { head_seq: 4 },
            },
        ),
        (
            "edit the head's hash",
            vec![format!("UPDATE audit_head SET last_hash = {}", hex_literal(guess))],
            Break {
                seq: 6,
                problem: Problem::HeadHash,
            },
        ),
        (
            "delete the head",
            vec!["DELETE FROM audit_head".into()],
            Break {
                seq: 6,
                problem: Problem::HeadMissing,
            },
        ),
    ];
    for (name, statements, expected) in cases {
        // The head may have been deleted by the previous case.
        execute(&app, "DELETE FROM audit_head").await;
        sqlx::query("INSERT INTO audit_head (head_id, last_seq, last_hash) VALUES (1, 0, $1)")
            .bind(vec![0_u8; 32])
            .execute(app.state.db.pool())
            .await
            .unwrap();
        fresh_trail(&app).await;
        for statement in &statements {
            execute(&app, statement).await;
        }
        let report = verify(&app).await;
        assert_eq!(
            report.first_bad.as_ref(),
            Some(&expected),
            "{name}: {report}"
        );
        assert!(
            report
                .to_string()
                .starts_with(&format!("audit trail broken at event #{}: ", expected.seq)),
            "{name}: {report}"
        );
    }
    // With the head gone, appending refuses rather than starting a new chain.
    let mut tx = app.state.db.pool().begin().await.unwrap();
    let result = audit::append(
        &mut tx,
        app.state.vault.audit_key(),
        &Event::new(Actor::System, "test.step"),
        &store::now(),
    )
    .await;
    assert!(matches!(result, Err(AuditError::HeadMissing)), "{result:?}");
}

async fn verify_command_reports(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    empty_trail(&app).await;
    let settings = settings_for(&app.data_dir, &app.database_url, None, [42; 32]);
    let run = |settings: drawbridge::config::Settings| async move {
        let mut out = Vec::new();
        let intact = drawbridge::audit::cli::verify_command(&settings, None, &mut out).await;
        (
            intact.map_err(|e| format!("{e:#}")),
            String::from_utf8(out).unwrap(),
        )
    };
    assert_eq!(
        run(settings.clone()).await,
        (Ok(true), "audit trail intact: 0 events\n".to_owned())
    );
    for n in 1..=3 {
        append_one(&app, n).await;
    }
    assert_eq!(
        run(settings.clone()).await,
        (Ok(true), "audit trail intact: 3 events\n".to_owned())
    );
    execute(&app, "DELETE FROM audit_event WHERE seq = 2").await;
    let (intact, out) = run(settings.clone()).await;
    assert_eq!(intact, Ok(false));
    assert!(out.starts_with("audit trail broken at event #2: "), "{out}");
    assert!(out.ends_with('\n') && out.lines().count() == 1, "{out}");

    // Another master key cannot check anything: an error, not a verdict.
    let wrong = settings_for(&app.data_dir, &app.database_url, None, [43; 32]);
    let (result, out) = run(wrong).await;
    let error = result.unwrap_err();
    assert!(error.contains("master key"), "{error}");
    assert!(out.is_empty());

    // Development mode without a key file: refuses, and does not generate one.
    let mut keyless = settings.clone();
    keyless.master_key = drawbridge::config::MasterKeySource::None;
    let (result, _) = run(keyless).await;
    assert!(result.unwrap_err().contains("no master key"));
    assert!(!app
        .data_dir
        .join(drawbridge::vault::DEVELOPMENT_KEY_FILE)
        .exists());
}

async fn sensitive_details_are_refused(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    empty_trail(&app).await;
    let long = "please call me back about my claim ".repeat(6);
    for (value, expected) in [
        ("+1 (555) 123-4567", Invalid::Digits { key: "text".into() }),
        ("jane.doe@example.com", Invalid::At { key: "text".into() }),
        (long.as_str(), Invalid::TooLong { key: "text".into() }),
    ] {
        let mut tx = app.state.db.pool().begin().await.unwrap();
        let result = audit::append(
            &mut tx,
            app.state.vault.audit_key(),
            &Event::new(Actor::System, "consent.opt_out").detail("text", value),
            &store::now(),
        )
        .await;
        match result {
            Err(AuditError::Invalid(invalid)) => assert_eq!(invalid, expected),
            other => panic!("{value}: {other:?}"),
        }
        tx.commit().await.unwrap();
    }
    assert_eq!(app.count("audit_event").await, 0);
    let bytes = app.stored_bytes().await;
    // Whole values, not fragments: a short digit run like "555" turns up by chance in the random
    // ids and hashes every test database holds.
    for secret in ["(555) 123-4567", "jane.doe", "call me back"] {
        assert!(!contains(&bytes, secret), "{secret} reached the database");
    }
    assert_eq!(append_one(&app, 1).await, 1, "nothing was consumed");
}

async fn verify_ten_thousand_events(backend: Backend) {
    let app = TestApp::spawn_with(
        backend.clone(),
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    empty_trail(&app).await;
    let key = app.state.vault.audit_key();
    let started = std::time::Instant::now();
    for batch in 0..20 {
        let mut tx = app.state.db.pool().begin().await.unwrap();
        for i in 0..500 {
            audit::append(
                &mut tx,
                key,
                &Event::new(Actor::System, "consent.opt_out")
                    .subject("contact", "0192f3a4-5678-7abc-8def-0123456789ab")
                    .detail("keyword", "STOP")
                    .detail("n", batch * 500 + i),
                &store::now(),
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let appended = started.elapsed();
    let started = std::time::Instant::now();
    let report = verify(&app).await;
    let verified = started.elapsed();
    assert_eq!(report.to_string(), "audit trail intact: 10000 events");
    eprintln!(
        "audit ({}): appended 10,000 events in {appended:?} (batches of 500), verified them in {verified:?}",
        app.state.db.backend().name()
    );
}
