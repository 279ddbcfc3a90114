//! The outbox under faults a review found: database errors mid-send, absurd `Retry-After`
//! values, one sender's backlog, an instance whose claim expired mid-call, and a status callback
//! racing the worker's record of the carrier's answer.

use crate::both_backends;
use crate::helpers::*;
use drawbridge::simulate::fake;
use std::time::Duration;

both_backends!(
    a_database_error_after_acceptance_is_never_resolved,
    a_huge_retry_after_kills_the_senders_lane,
    one_senders_backlog_stalls_every_other_sender,
    a_stale_instance_clobbers_the_new_claim_holders_attempt,
    a_callback_racing_record_accepted_is_never_applied,
);

async fn run(app: &TestApp, sql: &str) {
    sqlx::query(sql).execute(app.state.db.pool()).await.unwrap();
}

/// worker.rs `process`: "Database errors leave the row to its claim's expiry". But the heartbeat
/// (`outbox::renew`) extends every row `claimed_by` this instance, including the one whose
/// processing just failed, so the claim never expires while the process lives: the row stays
/// `in_flight` forever, its carrier id is never recorded and it is never resolved.
async fn a_database_error_after_acceptance_is_never_resolved(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend.clone(), Options::default()).await;
    let conversation = app.conversation().await;
    // A brief database fault that hits exactly record_accepted's first statement.
    match backend {
        Backend::Sqlite => {
            run(&app, "CREATE TRIGGER block_accept BEFORE UPDATE OF state ON outbox \
                       WHEN NEW.state = 'accepted' BEGIN SELECT RAISE(ABORT, 'simulated fault'); END").await;
        }
        Backend::Postgres(_) => {
            run(&app, "CREATE FUNCTION block_accept() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'simulated fault'; END $$ LANGUAGE plpgsql").await;
            run(
                &app,
                "CREATE TRIGGER block_accept BEFORE UPDATE ON outbox FOR EACH ROW \
                       WHEN (NEW.state = 'accepted') EXECUTE FUNCTION block_accept()",
            )
            .await;
        }
    }
    let queued = app.queue_reply(&conversation, "one fault").await;
    eventually(10, "the carrier to take the message", || async {
        fake.state
            .accepted(drawbridge::carriers::Carrier::Twilio)
            .len()
            == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The fault is over.
    match backend {
        Backend::Sqlite => run(&app, "DROP TRIGGER block_accept").await,
        Backend::Postgres(_) => run(&app, "DROP TRIGGER block_accept ON outbox").await,
    }
    // Three leases (5 s each in tests): a crashed instance's row would have been taken over and
    // resolved by lookup by now.
    tokio::time::sleep(Duration::from_secs(16)).await;
    let (state, attempts, carrier_id, ..) = app.outbox_row(&queued.outbox_id).await;
    assert_eq!(
        (state.as_str(), attempts, carrier_id.is_some()),
        ("accepted", 1, true),
        "the carrier took the message 16 s ago; the row is still {state} with no carrier id"
    );
    fake.handle.stop(false).await;
}

/// worker.rs: `Utc::now() + delay` panics (chrono) when the carrier's `Retry-After` is huge.
/// The panic kills the sender's lane task; from then on `claim()` cannot hand that number's rows
/// to a lane and fails every one of them permanently as `sender_not_configured`.
async fn a_huge_retry_after_kills_the_senders_lane(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let conversation = app.conversation().await;
    reqwest::Client::new()
        .post(format!("{}/_fail", fake.url()))
        .json(
            &serde_json::json!({"mode": "429", "count": 1, "retry_after": 10_000_000_000_000_u64}),
        )
        .send()
        .await
        .unwrap();
    let first = app.queue_reply(&conversation, "first").await;
    eventually(10, "the throttled send", || async {
        fake.state
            .records()
            .iter()
            .any(|r| r.outcome == "throttled")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = app.queue_reply(&conversation, "second").await;
    let settled = app.settled(&second.outbox_id, 10).await;
    let (_, _, _, _, code) = app.outbox_row(&second.outbox_id).await;
    let first_state = app.outbox_row(&first.outbox_id).await.0;
    assert_eq!(
        settled, "accepted",
        "a later, unrelated message on the same number ended {settled} ({code:?}); the first row is {first_state}"
    );
    fake.handle.stop(false).await;
}

/// worker.rs `claim`: `held` is one budget for all lanes. A backlog on a slow sender (a long code
/// at 1 message/s) fills the whole batch, and another number's reply waits for that backlog.
async fn one_senders_backlog_stalls_every_other_sender(backend: Backend) {
    let fake = fake::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let app = TestApp::spawn_with(
        backend,
        Options {
            api_base: Some(fake.url()),
            throughput: Some(1.0),
            outbox: Some(drawbridge::config::OutboxSettings {
                batch: 3,
                ..fast_outbox()
            }),
            ..Options::default()
        },
    )
    .await;
    let first = app.conversation().await;
    // A customer texts the second business number too.
    let sid = new_sid();
    let form: Vec<(&str, &str)> = inbound_form(&sid, "hi second")
        .into_iter()
        .map(|(k, v)| match k {
            "To" => (k, SECOND_BUSINESS_NUMBER),
            "AccountSid" => (k, SECOND_ACCOUNT_SID),
            _ => (k, v),
        })
        .collect();
    let signature = app.sign("/webhooks/twilio", &form, SECOND_AUTH_TOKEN);
    assert_eq!(
        app.post_form("/webhooks/twilio", &form, Some(&signature))
            .await
            .status(),
        200
    );
    let second: String =
        sqlx::query("SELECT conversation_id FROM conversation WHERE business_number = $1")
            .bind(SECOND_BUSINESS_NUMBER)
            .fetch_one(app.state.db.pool())
            .await
            .map(|r| sqlx::Row::get(&r, 0))
            .unwrap();
    assert_ne!(first, second);
    for i in 0..8 {
        app.queue_reply(&first, &format!("blast {i}")).await;
    }
    let started = std::time::Instant::now();
    let reply = app.queue_reply(&second, "reply on the idle number").await;
    assert_eq!(app.settled(&reply.outbox_id, 20).await, "accepted");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(1500),
        "an idle sender's reply waited {waited:?} behind another sender's backlog"
    );
    fake.handle.stop(false).await;
}

/// store/outbox.rs `reschedule` and `finish` do not check who holds the row. Instance A's claim on
/// an in-flight row expired (heartbeat failed during a database blip, a pause, clock skew); B took
/// it over (uncertain) and is now calling the carrier. A's late answer (a 500) puts the row back
/// to pending, unclaimed and *certain*, so a third claim sends it again with no resolution while
/// B's call is still out.
async fn a_stale_instance_clobbers_the_new_claim_holders_attempt(backend: Backend) {
    use drawbridge::store::{self, outbox};
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    let conversation = app.conversation().await;
    let queued = app.queue_reply(&conversation, "race").await;
    let db = &app.state.db;
    let mut conn = db.pool().acquire().await.unwrap();
    let t = |secs: i64| store::timestamp(chrono::Utc::now() + chrono::Duration::seconds(secs));
    // A claims and starts.
    let a = outbox::claim(
        &mut conn,
        db.backend(),
        "A",
        &t(0),
        &t(5),
        10,
        BUSINESS_NUMBER,
    )
    .await
    .unwrap();
    assert_eq!(a.len(), 1);
    assert!(
        outbox::start_attempt(&mut conn, &queued.outbox_id, "A", &t(0), &t(5))
            .await
            .unwrap()
    );
    // A's lease runs out; B takes the in-flight row over and (after resolving) sends it.
    let b = outbox::claim(
        &mut conn,
        db.backend(),
        "B",
        &t(10),
        &t(15),
        10,
        BUSINESS_NUMBER,
    )
    .await
    .unwrap();
    assert_eq!(b.len(), 1);
    assert!(
        outbox::start_attempt(&mut conn, &queued.outbox_id, "B", &t(10), &t(15))
            .await
            .unwrap()
    );
    // A's call comes back with a retryable 500: its write is refused, the row is B's.
    let a_guard = outbox::Guard {
        instance: "A",
        state: "in_flight",
        attempts: 1,
    };
    let kept = outbox::reschedule(
        &mut conn,
        &queued.outbox_id,
        a_guard,
        &t(0),
        false,
        (Some("transient"), Some("20500")),
        &t(0),
    )
    .await
    .unwrap();
    assert!(!kept, "a stale instance's write must not apply");
    assert!(!outbox::finish(
        &mut conn,
        &queued.outbox_id,
        a_guard,
        "failed",
        "permanent",
        None,
        &t(0)
    )
    .await
    .unwrap());
    // C claims while B's call is still out: the row is not claimable.
    let c = outbox::claim(
        &mut conn,
        db.backend(),
        "C",
        &t(11),
        &t(16),
        10,
        BUSINESS_NUMBER,
    )
    .await
    .unwrap();
    assert!(
        c.is_empty(),
        "B is mid-call, yet A's stale reschedule made the row claimable (and not uncertain) for C"
    );
    // B's own guarded write applies.
    let b_guard = outbox::Guard {
        instance: "B",
        state: "in_flight",
        attempts: 2,
    };
    assert!(outbox::reschedule(
        &mut conn,
        &queued.outbox_id,
        b_guard,
        &t(12),
        true,
        (None, None),
        &t(12)
    )
    .await
    .unwrap());
}

/// PostgreSQL (READ COMMITTED): a status callback whose transaction overlaps the worker's
/// `record_accepted` is applied by neither. The webhook's UPDATE cannot see the uncommitted
/// carrier id; `apply_recorded_statuses` cannot see the uncommitted event. The statements below
/// are record_accepted's (worker.rs:625-668) and the status webhook's (webhooks.rs:234-236).
async fn a_callback_racing_record_accepted_is_never_applied(backend: Backend) {
    use drawbridge::store::{self, messages, outbox};
    if matches!(backend, Backend::Sqlite) {
        return; // one writer: the two transactions serialize
    }
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    let conversation = app.conversation().await;
    let queued = app.queue_reply(&conversation, "race").await;
    let pool = app.state.db.pool();
    let sid = "SMracing0000000000000000000000000";
    // The carrier answered the send; its callback arrives at the same moment: the webhook's
    // transaction has stored the event and not yet committed when the worker records the id.
    let mut webhook = pool.begin().await.unwrap();
    let applied = messages::record_status(
        &mut webhook,
        &messages::StatusReport {
            carrier: "twilio",
            carrier_message_id: sid,
            status: Some("delivered"),
            carrier_status: "delivered",
            error_code: None,
        },
    )
    .await
    .unwrap();
    assert!(!applied);
    let job = {
        let mut conn = pool.acquire().await.unwrap();
        outbox::load(&mut conn, &queued.outbox_id)
            .await
            .unwrap()
            .unwrap()
    };
    let worker_pool = pool.clone();
    let worker = tokio::spawn(async move {
        let mut tx = worker_pool.begin().await.unwrap();
        let outcome = outbox::accept(&mut tx, &job, "twilio", sid, None, &store::now())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        outcome
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    webhook.commit().await.unwrap();
    assert_eq!(worker.await.unwrap(), outbox::Accepted::Recorded);
    assert_eq!(
        app.message_status(&queued.message_id).await.0,
        "delivered",
        "the callback was stored and acknowledged but never applied"
    );
}

/// One outbox worker per SQLite database: a second process's worker would take over the first's
/// claims at start. A second instance with its worker is refused, with the way out named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_worker_on_one_sqlite_file_is_refused() {
    let first = TestApp::spawn(Backend::Sqlite).await;
    let second = TestApp::try_spawn_with(
        Backend::Sqlite,
        Options {
            reuse: Some((first.data_dir.clone(), first.database_url.clone())),
            ..Options::default()
        },
    )
    .await;
    let message = format!(
        "{:#}",
        second.err().expect("a second worker must be refused")
    );
    assert!(
        message.contains("another drawbridge process is running the outbox")
            && message.contains("PostgreSQL"),
        "{message}"
    );
}
