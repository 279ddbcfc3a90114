//! Master key rotation (`crate::keys`): 10,000 contacts re-wrapped resumably, servers running
//! through it and restarted after it, the audit trail intact, wrong key configurations refused.

use crate::both_backends;
use crate::helpers::*;
use drawbridge::audit::Actor;
use drawbridge::keys::{self, RotateOptions, Rotation};
use drawbridge::vault::{self, Aad, Vault};
use sqlx::Row;

const OLD_KEY: [u8; 32] = [42; 32];
const NEW_KEY: [u8; 32] = [43; 32];
const CONTACTS: usize = 10_000;

fn v2_options(previous: Option<[u8; 32]>, reuse: &TestApp) -> Options {
    Options {
        master_key: Some(NEW_KEY),
        master_key_version: Some(2),
        previous_master_key: previous,
        reuse: Some((reuse.data_dir.clone(), reuse.database_url.clone())),
        outbox: Some(no_worker()),
        ..Options::default()
    }
}

fn settings_of(app: &TestApp, options: &Options) -> drawbridge::config::Settings {
    settings_with(
        &app.data_dir,
        &app.database_url,
        None,
        options.master_key.unwrap_or(OLD_KEY),
        options,
    )
}

/// Seeds `CONTACTS` contacts, each with a conversation and one sealed message, by direct inserts
/// with real data keys wrapped by the app's vault (batched in transactions: this is the fixture,
/// the pipeline itself is exercised by the texts the test also sends).
async fn seed(app: &TestApp) {
    seed_n(app, CONTACTS).await;
}

/// [`seed`] of `count` contacts, numbered +15552000000 onwards.
async fn seed_n(app: &TestApp, count: usize) {
    let vault = &app.state.vault;
    let now = drawbridge::store::now();
    let mut tx = app.state.db.pool().begin().await.unwrap();
    for i in 0..count {
        let contact_id = drawbridge::store::new_id();
        let conversation_id = drawbridge::store::new_id();
        let message_id = drawbridge::store::new_id();
        let phone = drawbridge::phone::E164::parse(&format!("+1555{:07}", 2_000_000 + i)).unwrap();
        let dek = vault.new_data_key();
        let wrapped = vault.wrap_data_key(&dek, &contact_id).unwrap();
        let phone_sealed = vault::seal(
            &dek,
            phone.as_str().as_bytes(),
            Aad::new("contact", "phone_sealed", &contact_id),
        )
        .unwrap();
        let body = vault::seal(
            &dek,
            format!("seeded message {i}").as_bytes(),
            Aad::new("message", "body_sealed", &message_id),
        )
        .unwrap();
        sqlx::query(
            "INSERT INTO contact (contact_id, phone_index, phone_sealed, data_key_wrapped, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&contact_id)
        .bind(vault.phone_index(&phone).current().to_vec())
        .bind(phone_sealed)
        .bind(wrapped)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO conversation (conversation_id, contact_id, business_number, created_at, last_message_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&conversation_id)
        .bind(&contact_id)
        .bind(BUSINESS_NUMBER)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO message (message_id, conversation_id, direction, channel, carrier, carrier_message_id, \
             body_sealed, status, status_updated_at, created_at) \
             VALUES ($1, $2, 'inbound', 'sms', 'twilio', $3, $4, 'received', $5, $5)",
        )
        .bind(&message_id)
        .bind(&conversation_id)
        .bind(format!("SEED{i}"))
        .bind(body)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .unwrap();
        if i % 2000 == 1999 {
            tx.commit().await.unwrap();
            tx = app.state.db.pool().begin().await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

/// Opens every message and every contact's phone directly with `vault`; returns how many
/// messages opened. Panics on the first that does not.
async fn open_everything(app: &TestApp, vault: &Vault) -> usize {
    let rows = sqlx::query(
        "SELECT m.message_id, m.body_sealed, c.contact_id, c.data_key_wrapped, c.phone_sealed \
         FROM message m JOIN conversation v ON v.conversation_id = m.conversation_id \
         JOIN contact c ON c.contact_id = v.contact_id",
    )
    .fetch_all(app.state.db.pool())
    .await
    .unwrap();
    for row in &rows {
        let (message_id, body, contact_id, wrapped, phone): (
            String,
            Vec<u8>,
            String,
            Vec<u8>,
            Vec<u8>,
        ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        let dek = vault
            .unwrap_data_key(&wrapped, &contact_id)
            .unwrap_or_else(|e| panic!("contact {contact_id}: {e}"));
        vault::open(&dek, &body, Aad::new("message", "body_sealed", &message_id))
            .unwrap_or_else(|e| panic!("message {message_id}: {e}"));
        let phone = vault::open(
            &dek,
            &phone,
            Aad::new("contact", "phone_sealed", &contact_id),
        )
        .unwrap_or_else(|e| panic!("contact {contact_id} phone: {e}"));
        // The blind index still finds the contact: purpose keys survive the rotation.
        let phone = drawbridge::phone::E164::parse(std::str::from_utf8(&phone).unwrap()).unwrap();
        let found: i64 = sqlx::query_scalar("SELECT count(*) FROM contact WHERE phone_index = $1")
            .bind(vault.phone_index(&phone).current().to_vec())
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
        assert_eq!(found, 1);
    }
    rows.len()
}

async fn wrapped_versions(app: &TestApp) -> Vec<(u32, i64)> {
    keys::status(&app.state.db).await.unwrap().wrapped
}

async fn rotation_over_10_000_contacts(backend: Backend) {
    // Version 1: a server that has taken real texts, and 10,000 seeded contacts.
    let old = TestApp::spawn_with(
        backend.clone(),
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(
        old.text_from("+15550100001", "my ssn is 078-05-1120")
            .await
            .status(),
        200
    );
    seed(&old).await;
    assert_eq!(wrapped_versions(&old).await, vec![(1, CONTACTS as i64 + 1)]);

    // A wrong key configuration is refused: a v2 key with a previous key that is not v1's, and
    // the new key alone while version 1 still wraps data keys.
    let wrong_previous = TestApp::try_spawn_with(backend.clone(), v2_options(Some([9; 32]), &old))
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        wrong_previous.contains("master key for version 1 is not the key"),
        "{wrong_previous}"
    );
    let without_previous = TestApp::try_spawn_with(backend.clone(), v2_options(None, &old))
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        without_previous.contains("holds this database's purpose keys")
            || without_previous.contains("version 1 is not retired"),
        "{without_previous}"
    );
    assert!(
        keys::status(&old.state.db).await.unwrap().masters.len() == 1,
        "a refused start registers nothing"
    );

    // The new configuration: v2 current, v1 previous. Starting the server registers v2.
    let options = v2_options(Some(OLD_KEY), &old);
    let server = TestApp::spawn_with(backend.clone(), options.clone()).await;
    assert_eq!(server.state.vault.current_version(), 2);
    let settings = settings_of(&old, &options);
    let db = &server.state.db;
    let (vault, _) = keys::open_vault(&settings, db, Actor::Cli("test"))
        .await
        .unwrap();

    // Interrupted: three batches of 1,000, then stop, as a crash or Ctrl-C would.
    let paused = keys::rotate(
        db,
        &vault,
        Actor::Cli("test"),
        &RotateOptions {
            batch: 1000,
            max_batches: Some(3),
            progress: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        paused,
        Rotation::Paused {
            version: 2,
            rewrapped: 3000
        }
    );
    let status = keys::status(db).await.unwrap();
    assert_eq!(
        status.rotation_in_progress.as_ref().map(|r| (r.0, r.2)),
        Some((2, 3000))
    );
    let mut versions = status.wrapped.clone();
    versions.sort_unstable();
    assert_eq!(versions, vec![(1, CONTACTS as i64 + 1 - 3000), (2, 3000)]);
    let text = status.to_string();
    assert!(text.contains("rotation to v2 in progress"), "{text}");

    // The running server works mid-rotation: an existing contact and a new one text in.
    assert_eq!(
        server.text_from("+15550100001", "again").await.status(),
        200
    );
    assert_eq!(
        server.text_from("+15550100002", "new here").await.status(),
        200
    );

    // Resume: it continues after the last committed batch, wraps nothing twice, and retires v1.
    let started = std::time::Instant::now();
    let finished = keys::rotate(
        db,
        &vault,
        Actor::Cli("test"),
        &RotateOptions {
            batch: 1000,
            max_batches: None,
            progress: false,
        },
    )
    .await
    .unwrap();
    eprintln!(
        "resumed rotation took {:?} ({})",
        started.elapsed(),
        old.database_url.split(':').next().unwrap_or("")
    );
    let Rotation::Finished {
        version,
        rewrapped,
        retired,
    } = finished
    else {
        panic!("{finished:?}");
    };
    assert_eq!((version, retired), (2, vec![1]));
    // Every contact made under v1 re-wrapped exactly once (the new contact was born under v2).
    assert_eq!(rewrapped, CONTACTS as i64 + 1);
    assert_eq!(
        wrapped_versions(&server).await,
        vec![(2, CONTACTS as i64 + 2)]
    );
    let status = keys::status(db).await.unwrap();
    assert!(status.rotation_in_progress.is_none());
    assert!(status
        .masters
        .iter()
        .any(|(v, _, retired)| *v == 1 && retired.is_some()));
    assert_eq!(status.current, Some(2));
    // Running it again does nothing.
    assert_eq!(
        keys::rotate(db, &vault, Actor::Cli("test"), &RotateOptions::default())
            .await
            .unwrap(),
        Rotation::NothingToDo { version: 2 }
    );

    // Every message opens, directly, with a vault holding the new key only.
    let only_new = keys::open_with(
        db,
        &[(2, vault::MasterKey::from_bytes(NEW_KEY))],
        Actor::Cli("test"),
    )
    .await
    .unwrap();
    assert_eq!(only_new.kek_versions(), vec![2]);
    let messages = open_everything(&server, &only_new).await;
    assert_eq!(messages as i64, server.count("message").await);
    assert!(messages > CONTACTS + 2, "the seeded messages and the texts");
    // …and the old key alone opens none of them any more.
    let old_only = Vault::new(&vault::MasterKey::from_bytes(OLD_KEY));
    let (contact, wrapped): (String, Vec<u8>) = {
        let row = sqlx::query("SELECT contact_id, data_key_wrapped FROM contact LIMIT 1")
            .fetch_one(db.pool())
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(old_only.unwrap_data_key(&wrapped, &contact).is_err());

    // The audit trail verifies (rows from before the rotation included) and holds the events.
    let report = drawbridge::audit::verify(db, only_new.audit_key())
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");
    let actions: Vec<(String, String)> = sqlx::query(
        "SELECT action, actor_kind FROM audit_event WHERE action LIKE 'keys.%' ORDER BY seq",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let expected: Vec<(String, String)> = [
        ("keys.version_add", "system"),
        ("keys.rotate.start", "cli"),
        ("keys.rotate.finish", "cli"),
        ("keys.retire", "cli"),
    ]
    .iter()
    .map(|(a, k)| ((*a).to_owned(), (*k).to_owned()))
    .collect();
    assert_eq!(actions, expected);

    // A server started after rotation with the new key only reads old messages, finds old
    // contacts by phone, and accepts new texts.
    let restarted = TestApp::spawn_with(backend.clone(), v2_options(None, &old)).await;
    assert_eq!(restarted.state.vault.kek_versions(), vec![2]);
    let (_, contact) = restarted.conversation_of("+15550100001").await;
    assert_eq!(
        restarted
            .text_from("+15550100001", "after rotation")
            .await
            .status(),
        200
    );
    assert_eq!(
        restarted.conversation_of("+15550100001").await.1,
        contact,
        "no duplicate contact"
    );
    assert_eq!(
        restarted
            .text_from("+15550100003", "brand new")
            .await
            .status(),
        200
    );
    assert_eq!(
        open_everything(&restarted, &restarted.state.vault).await,
        messages + 2
    );
    assert!(
        drawbridge::audit::verify(db, restarted.state.vault.audit_key())
            .await
            .unwrap()
            .is_intact()
    );

    // The retired key is not accepted back as current, and a wrong v2 key is refused.
    let wrong_new = TestApp::try_spawn_with(
        backend.clone(),
        Options {
            master_key: Some([7; 32]),
            ..v2_options(None, &old)
        },
    )
    .await
    .err()
    .map(|e| format!("{e:#}"))
    .unwrap_or_default();
    assert!(
        wrong_new.contains("master key for version 2 is not the key"),
        "{wrong_new}"
    );
    let back_to_old = TestApp::try_spawn_with(
        backend.clone(),
        Options {
            outbox: Some(no_worker()),
            reuse: Some((old.data_dir.clone(), old.database_url.clone())),
            ..Options::default()
        },
    )
    .await
    .err()
    .map(|e| format!("{e:#}"))
    .unwrap_or_default();
    assert!(
        back_to_old.contains("never registered") || back_to_old.contains("retired"),
        "{back_to_old}"
    );

    // Nothing printed or logged carries key material or the customers' numbers.
    let logs = captured_logs();
    for number in ["+15550100001", "5550100002", "+15552000000"] {
        assert!(!logs.contains(number), "logs hold {number}");
        assert!(!text.contains(number));
    }
}

/// Contacts whose data key was destroyed (erasure) are skipped, whatever the erasure leaves in
/// the column: NULL where the schema allows it, or an empty value.
async fn destroyed_keys_are_skipped(backend: Backend) {
    let old = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    for n in 0..3 {
        assert_eq!(
            old.text_from(&format!("+1555010010{n}"), "hello")
                .await
                .status(),
            200
        );
    }
    let (_, erased) = old.conversation_of("+15550100100").await;
    sqlx::query("UPDATE contact SET data_key_wrapped = $1 WHERE contact_id = $2")
        .bind(Vec::<u8>::new())
        .bind(&erased)
        .execute(old.state.db.pool())
        .await
        .unwrap();
    let options = v2_options(Some(OLD_KEY), &old);
    let settings = settings_of(&old, &options);
    let mut out = Vec::new();
    let outcome = keys::rotate_command(
        &settings,
        &RotateOptions {
            progress: false,
            ..RotateOptions::default()
        },
        "operator",
        &mut out,
    )
    .await
    .unwrap();
    assert!(
        matches!(outcome, Rotation::Finished { rewrapped: 2, .. }),
        "{outcome:?}"
    );
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("master key v1 retired"), "{out}");
    let empty: Vec<u8> =
        sqlx::query_scalar("SELECT data_key_wrapped FROM contact WHERE contact_id = $1")
            .bind(&erased)
            .fetch_one(old.state.db.pool())
            .await
            .unwrap();
    assert!(empty.is_empty(), "a destroyed key stays destroyed");
    let mut out = Vec::new();
    keys::status_command(&settings, &mut out).await.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("v1  created") && out.contains("retired"),
        "{out}"
    );
    assert!(out.contains("v2  2"), "{out}");
    assert!(!out.contains("555"), "{out}");
}

both_backends!(
    rotation_over_10_000_contacts,
    destroyed_keys_are_skipped,
    blind_index_keys_rotate_while_the_service_runs
);

fn seeded_phone(i: usize) -> drawbridge::phone::E164 {
    drawbridge::phone::E164::parse(&format!("+1555{:07}", 2_000_000 + i)).unwrap()
}

async fn stored_phone_indexes(app: &TestApp) -> std::collections::BTreeMap<String, Vec<u8>> {
    sqlx::query("SELECT contact_id, phone_index FROM contact")
        .fetch_all(app.state.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn contacts_with_index(app: &TestApp, index: &[u8]) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM contact WHERE phone_index = $1")
        .bind(index.to_vec())
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
}

/// Blind-index key rotation (`drawbridge keys reindex`): 3,000 seeded contacts, texted-in
/// contacts (one opted out and erased, so its number is gone), a staff account with a linked
/// sign-on identity. The re-index is interrupted mid-way while the server takes texts, and a
/// process that has not heard of the new keys is refused when it tries to add a row under the old
/// ones. Afterwards every row is under the new generation, nothing stored matches an index made
/// with the old keys alone, and every look-up (phone, e-mail, sign-on subject, the erased
/// contact's opt-out) still finds its row.
async fn blind_index_keys_rotate_while_the_service_runs(backend: Backend) {
    use drawbridge::keys::index::{self, Reindex, ReindexOptions};
    use drawbridge::store::{contacts, tokens::Role, users};
    const SEEDED: usize = 3_000;
    let app = TestApp::spawn_with(
        backend.clone(),
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    let (texter, opted_out) = ("+15550100001", "+15550100002");
    assert_eq!(app.text_from(texter, "hello").await.status(), 200);
    assert_eq!(app.text_from(opted_out, "STOP").await.status(), 200);
    let (_, opted_out_contact) = app.conversation_of(opted_out).await;
    let now = app.state.clock.timestamp();
    drawbridge::subject::erase(
        &app.state.db,
        &app.state.vault,
        &drawbridge::phone::E164::parse(opted_out).unwrap(),
        Actor::Cli("test"),
        &now,
    )
    .await
    .unwrap();
    seed_n(&app, SEEDED).await;
    let staff_email = "Reindex.Officer@example.com";
    let (issuer, subject) = ("https://login.example.com/", "subject-77");
    let user_id = {
        let mut conn = app.state.db.pool().acquire().await.unwrap();
        let vault = &app.state.vault;
        let new = users::NewUser {
            email: staff_email,
            role: Role::Compliance,
            password_hash: None,
            must_change_password: false,
        };
        let id = users::create(&mut conn, vault, &new, &now)
            .await
            .unwrap()
            .unwrap();
        assert!(
            users::link_subject(&mut conn, vault, &id, issuer, subject, &now)
                .await
                .unwrap()
        );
        id
    };
    let before = stored_phone_indexes(&app).await;
    assert_eq!(before.len(), SEEDED + 2);
    let total = i64::try_from(SEEDED + 2).unwrap();

    // A process holding generation 1 only, which will not hear of the re-index by itself.
    let settings = settings_of(&app, &Options::default());
    let (master_keys, _) = keys::configured_keys(&settings).unwrap();
    let stale = keys::open_with(&app.state.db, &master_keys, Actor::Cli("test"))
        .await
        .unwrap();
    assert_eq!(stale.index_generation(), 1);

    // Interrupted after one batch of 1,000.
    let options = ReindexOptions {
        batch: 1000,
        max_batches: Some(1),
        progress: false,
    };
    let paused = index::reindex(&app.state.db, &master_keys, Actor::Cli("test"), &options)
        .await
        .unwrap();
    assert_eq!(
        paused,
        Reindex::Paused {
            generation: 2,
            contacts: 1000
        }
    );
    let status = keys::status(&app.state.db).await.unwrap();
    assert_eq!(status.index_generation, 2);
    assert_eq!(
        status.contacts_by_index_generation,
        vec![(1, total - 1000), (2, 1000)]
    );
    assert_eq!(
        status.reindex_in_progress.as_ref().map(|r| (r.0, r.2)),
        Some((2, 1000))
    );
    assert!(status
        .to_string()
        .contains("re-index to generation 2 in progress"));

    // The stale process cannot add a contact under generation 1: the database refuses it, and
    // once it has refreshed its keys from the keyring the same number goes in under generation 2.
    let newcomer = drawbridge::phone::E164::parse("+15550100003").unwrap();
    let stale_index = stale.phone_index(&newcomer);
    let mut tx = app.state.db.pool().begin().await.unwrap();
    let refused = contacts::upsert(
        &mut tx,
        &contacts::NewContact {
            contact_id: "stale-newcomer",
            phone_index: &stale_index,
            phone_sealed: b"sealed",
            data_key_wrapped: b"wrapped",
        },
    )
    .await
    .unwrap();
    assert!(
        refused.is_none(),
        "a generation-1 row was written mid re-index"
    );
    assert!(index::refresh(&mut tx, &stale).await.unwrap());
    assert_eq!(stale.index_generation(), 2);
    tx.rollback().await.unwrap();
    // Within a second the running server has taken up generation 2 by itself.
    eventually(5, "the server to take up generation 2", || async {
        app.state.vault.index_generation() == 2
    })
    .await;

    // Mid-way, the server finds contacts on either side of the move and adds new ones once.
    for phone in [texter, "+15550100003", "+15552000000", "+15552002999"] {
        assert_eq!(app.text_from(phone, "mid re-index").await.status(), 200);
    }
    assert_eq!(
        app.count("contact").await,
        total + 1,
        "no duplicate contacts"
    );
    let (_, texter_contact) = app.conversation_of(texter).await;

    // Resumed in smaller batches while texts keep arriving, from numbers on either side of the
    // cursor and from new ones: the batches and the pipeline take turns (SQLite's one writer,
    // PostgreSQL's row locks) and it finishes.
    const NEW_NUMBERS: usize = 5;
    const TEXTS: usize = 20;
    let reindexing = index::reindex(
        &app.state.db,
        &master_keys,
        Actor::Cli("test"),
        &ReindexOptions {
            batch: 250,
            max_batches: None,
            progress: false,
        },
    );
    let texting = async {
        for i in 0..TEXTS {
            let from = if i % 4 == 0 {
                format!("+1555020{:04}", i / 4)
            } else {
                seeded_phone(i * 149).as_str().to_owned()
            };
            assert_eq!(
                app.text_from(&from, "during the re-index").await.status(),
                200
            );
        }
    };
    let (finished, ()) = tokio::join!(reindexing, texting);
    let finished = finished.unwrap();
    let total_now = total + 1 + i64::try_from(NEW_NUMBERS).unwrap();
    assert_eq!(
        app.count("contact").await,
        total_now,
        "no duplicate contacts"
    );
    let Reindex::Finished {
        generation: 2,
        contacts: rekeyed,
        users,
    } = finished
    else {
        panic!("{finished:?}");
    };
    assert_eq!(rekeyed, total, "each old row re-keyed once");
    assert_eq!(
        users,
        app.count("app_user").await,
        "every staff account re-keyed"
    );
    let status = keys::status(&app.state.db).await.unwrap();
    assert_eq!(status.contacts_by_index_generation, vec![(2, total_now)]);
    assert!(status.reindex_in_progress.is_none());

    // Every stored index changed, and none matches what the old keys alone compute.
    let after = stored_phone_indexes(&app).await;
    for (id, old) in &before {
        assert_ne!(after.get(id), Some(old), "contact {id} kept its old index");
    }
    let gen_one = Vault::new(&vault::MasterKey::from_bytes(OLD_KEY));
    for i in [0, 1, 1500, SEEDED - 1] {
        assert_eq!(
            contacts_with_index(&app, gen_one.phone_index(&seeded_phone(i)).current()).await,
            0
        );
        assert_eq!(
            contacts_with_index(
                &app,
                app.state.vault.phone_index(&seeded_phone(i)).current()
            )
            .await,
            1
        );
    }
    let email_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM app_user WHERE email_index = $1 OR oidc_subject_index = $2",
    )
    .bind(gen_one.email_index(staff_email).current().to_vec())
    .bind(gen_one.subject_index(issuer, subject).current().to_vec())
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(email_rows, 0);

    // Look-ups: staff by e-mail and by sign-on identity; every seeded contact's message opens.
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let vault = &app.state.vault;
    let by_email = users::find_by_email(&mut conn, vault, "reindex.officer@EXAMPLE.com")
        .await
        .unwrap();
    assert_eq!(by_email.map(|u| u.id), Some(user_id.clone()));
    let by_subject = users::find_by_subject(&mut conn, vault, issuer, subject)
        .await
        .unwrap();
    assert_eq!(by_subject.map(|u| u.id), Some(user_id));
    drop(conn);
    // Seeded messages, two from the texter, one each from the newcomer and two seeded numbers, and
    // the texts sent during the re-index.
    assert_eq!(open_everything(&app, vault).await, SEEDED + 5 + TEXTS);

    // The erased contact's number is gone, yet its opt-out holds: texting again lands on the
    // same contact, which is still opted out (no reply is queued to it).
    let outbox_before = app.count("outbox").await;
    assert_eq!(app.text_from(opted_out, "hello?").await.status(), 200);
    assert_eq!(app.conversation_of(opted_out).await.1, opted_out_contact);
    assert_eq!(app.count("outbox").await, outbox_before);
    {
        use drawbridge::compliance::consent::{self, Scope, State};
        let mut conn = app.state.db.pool().acquire().await.unwrap();
        let consent = consent::current(
            &mut conn,
            &opted_out_contact,
            BUSINESS_NUMBER,
            Scope::Number,
        )
        .await
        .unwrap();
        assert_eq!(consent.state, State::OptedOut);
    }
    assert_eq!(app.conversation_of(texter).await.1, texter_contact);

    // A second rotation layers generation 3 over 2 (timed: nothing else is running); a restarted
    // server starts on it.
    let started = std::time::Instant::now();
    let again = index::reindex(
        &app.state.db,
        &master_keys,
        Actor::Cli("test"),
        &ReindexOptions {
            progress: false,
            ..ReindexOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(again, Reindex::Finished { generation: 3, .. }),
        "{again:?}"
    );
    eprintln!(
        "re-index to generation 3: {} contacts re-keyed in {:?} ({})",
        total_now,
        started.elapsed(),
        app.database_url.split(':').next().unwrap_or("")
    );
    let restarted = TestApp::spawn_with(
        backend,
        Options {
            reuse: Some((app.data_dir.clone(), app.database_url.clone())),
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(restarted.state.vault.index_generation(), 3);
    assert_eq!(restarted.conversation_of(texter).await.1, texter_contact);
    assert_eq!(
        restarted.text_from("+15552001234", "after").await.status(),
        200
    );
    assert_eq!(restarted.count("contact").await, total_now);
    assert!(
        drawbridge::audit::verify(&restarted.state.db, restarted.state.vault.audit_key())
            .await
            .unwrap()
            .is_intact()
    );
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_event WHERE action LIKE 'keys.reindex.%' ORDER BY seq",
    )
    .fetch_all(restarted.state.db.pool())
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "keys.reindex.start",
            "keys.reindex.finish",
            "keys.reindex.start",
            "keys.reindex.finish"
        ]
    );
    let logs = captured_logs();
    for needle in [texter, opted_out, "5552001234", "reindex.officer"] {
        assert!(
            !contains(logs.as_bytes(), needle),
            "{needle} reached the logs"
        );
    }
}
