use super::*;
use crate::vault::{MasterKey, Vault};
use serde_json::json;

fn vault() -> Vault {
    Vault::new(&MasterKey::from_bytes([7; 32]))
}

const AT: &str = "2026-11-27T10:00:00.000000Z";

fn sample() -> Fields<'static> {
    Fields {
        seq: 1,
        key_version: 1,
        at: AT,
        actor_kind: "user",
        actor_id: "u-1",
        action: "consent.opt_out",
        subjects: r#"[["contact","c-1"]]"#,
        details: r#"{"keyword":"STOP"}"#,
    }
}

/// The documented encoding, byte for byte, and its HMAC under the key HKDF gives for master key
/// [7; 32]. Both were computed independently (Python's `hmac`, `hashlib` and `struct`, following
/// the module documentation and RFC 5869 with an empty salt and info `drawbridge/v1/audit-chain`).
#[test]
fn encoding_and_hmac_match_an_independent_implementation() {
    let expected = "647261776272696467652f61756469742f7631\
        0000000000000020\
        0000000000000000000000000000000000000000000000000000000000000000\
        0000000000000008\
        0000000000000001\
        0000000000000008\
        0000000000000001\
        000000000000001b\
        323032362d31312d32375431303a30303a30302e3030303030305a\
        0000000000000004\
        75736572\
        0000000000000003\
        752d31\
        000000000000000f\
        636f6e73656e742e6f70745f6f7574\
        0000000000000013\
        5b5b22636f6e74616374222c22632d31225d5d\
        0000000000000012\
        7b226b6579776f7264223a2253544f50227d";
    let encoded = canonical(&GENESIS_HASH, &sample());
    assert_eq!(hex::encode(&encoded), expected);
    assert_eq!(
        hex::encode(vault().audit_key().mac(&encoded)),
        "d4809d0432367f966bcf07db8e031ae1ca8947b8fec8bb48648d828829561b94"
    );
}

#[test]
fn every_field_is_covered_and_none_can_borrow_from_its_neighbour() {
    let base = canonical(&GENESIS_HASH, &sample());
    let mut variants = vec![
        canonical(&[1; HASH_LEN], &sample()),
        canonical(&GENESIS_HASH[..31], &sample()),
    ];
    let changes: Vec<fn(&mut Fields<'static>)> = vec![
        |f| f.seq = 2,
        |f| f.seq = -1,
        |f| f.key_version = 2,
        |f| f.at = "2026-11-27T10:00:00.000001Z",
        |f| f.actor_kind = "cli",
        |f| f.actor_id = "u-2",
        |f| f.action = "consent.opt_in",
        |f| f.subjects = r#"[["contact","c-2"]]"#,
        |f| f.details = r#"{"keyword":"START"}"#,
        // The same bytes shifted from one field into the next.
        |f| {
            f.actor_kind = "use";
            f.actor_id = "ru-1";
        },
        |f| {
            f.actor_id = "u-1consent";
            f.action = ".opt_out";
        },
        |f| {
            f.subjects = r#"[["contact","c-1"]]{"keyword""#;
            f.details = r#":"STOP"}"#;
        },
        |f| {
            f.actor_id = "";
            f.action = "u-1consent.opt_out";
        },
    ];
    for change in changes {
        let mut fields = sample();
        change(&mut fields);
        variants.push(canonical(&GENESIS_HASH, &fields));
    }
    let mut seen = std::collections::HashSet::new();
    assert!(seen.insert(base.clone()));
    for (index, variant) in variants.into_iter().enumerate() {
        assert!(
            seen.insert(variant),
            "variant {index} encodes like another row"
        );
    }
}

#[test]
fn the_hash_depends_on_key_and_predecessor() {
    let key = vault();
    let other = Vault::new(&MasterKey::from_bytes([8; 32]));
    let row = sample();
    let first = key.audit_key().mac(&canonical(&GENESIS_HASH, &row));
    assert_ne!(
        first,
        other.audit_key().mac(&canonical(&GENESIS_HASH, &row))
    );
    assert_ne!(first, key.audit_key().mac(&canonical(&first, &row)));
    assert!(key
        .audit_key()
        .verify(&canonical(&GENESIS_HASH, &row), &first));
}

#[test]
fn actors() {
    assert_eq!((Actor::System.kind(), Actor::System.id()), ("system", ""));
    assert_eq!(
        (Actor::User("u1").kind(), Actor::User("u1").id()),
        ("user", "u1")
    );
    assert_eq!(
        (Actor::ApiToken("t1").kind(), Actor::ApiToken("t1").id()),
        ("api_token", "t1")
    );
    assert_eq!(
        (Actor::Cli("ops").kind(), Actor::Cli("ops").id()),
        ("cli", "ops")
    );
}

fn event() -> Event<'static> {
    Event::new(
        Actor::User("0192f3a4-1234-7abc-8def-0123456789ab"),
        "consent.opt_out",
    )
    .subject("contact", "0192f3a4-5678-7abc-8def-0123456789ab")
    .detail("keyword", "STOP")
    .detail("rule", "us-ssn.v3")
    .detail("count", 3)
    .detail("escalate", true)
    .detail("reason", Value::Null)
    .detail("types", json!(["CARD_NUMBER", "US_SSN"]))
}

#[test]
fn ordinary_events_are_accepted() {
    let prepared = prepare(&event(), AT).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        prepared.subjects,
        r#"[["contact","0192f3a4-5678-7abc-8def-0123456789ab"]]"#
    );
    let details: Value = serde_json::from_str(&prepared.details).unwrap_or_default();
    assert_eq!(details["keyword"], "STOP");
    assert_eq!(details["types"][1], "US_SSN");
    // Short numbers, versions, times of day and five-digit codes are not sensitive.
    for fine in ["12345", "v1.2.3", "21:00", "30007", "a1b2c3d4e5f6", "E.164"] {
        assert!(
            prepare(
                &Event::new(Actor::System, "config.change").detail("x", fine),
                AT
            )
            .is_ok(),
            "{fine}"
        );
    }
    assert!(prepare(
        &Event::new(Actor::System, "config.change").detail("n", 99_999),
        AT
    )
    .is_ok());
}

fn refusal(event: &Event<'_>) -> Invalid {
    match prepare(event, AT) {
        Err(invalid) => invalid,
        Ok(_) => panic!("{event:?} was accepted"),
    }
}

#[test]
fn sensitive_looking_details_are_refused_by_key_without_their_value() {
    let digits = |key: &str| Invalid::Digits {
        key: key.to_owned(),
    };
    for (value, expected) in [
        (json!("+15551234567"), digits("v")),
        (json!("call 555-123-4567"), digits("v")),
        (json!("(555) 123 4567"), digits("v")),
        (json!("4242 4242 4242 4242"), digits("v")),
        (json!("123456"), digits("v")),
        (json!("DOB 1990/01/31"), digits("v")),
        (json!("١٢٣٤٥٦٧"), digits("v")),
        (json!(15_551_234_567_i64), digits("v")),
        (json!(["STOP", "078-05-1120"]), digits("v")),
        (
            json!("jane.doe@example.com"),
            Invalid::At { key: "v".into() },
        ),
        (json!("jane＠example.com"), Invalid::At { key: "v".into() }),
        (json!("x".repeat(201)), Invalid::TooLong { key: "v".into() }),
        (json!({"nested": 1}), Invalid::NotScalar { key: "v".into() }),
        (json!([["a"]]), Invalid::NotScalar { key: "v".into() }),
        (
            json!(vec!["a"; MAX_LIST_ITEMS + 1]),
            Invalid::NotScalar { key: "v".into() },
        ),
    ] {
        let rendered = value.to_string();
        let refused = refusal(&Event::new(Actor::System, "consent.opt_out").detail("v", value));
        assert_eq!(refused, expected, "{rendered}");
        let message = AuditError::from(refused).to_string();
        assert!(message.contains("details.v"), "{message}");
        for secret in ["555", "4242", "example", "1120", "xxxxx"] {
            assert!(!message.contains(secret), "{message}");
        }
    }
    // 200 characters is the limit, not past it.
    assert!(prepare(
        &Event::new(Actor::System, "consent.opt_out").detail("v", "x".repeat(200)),
        AT
    )
    .is_ok());
}

#[test]
fn malformed_events_are_refused() {
    let system = |action| Event::new(Actor::System, action);
    assert_eq!(refusal(&system("optout")), Invalid::Action);
    assert_eq!(refusal(&system("Consent.OptOut")), Invalid::Action);
    assert_eq!(refusal(&system("consent..x")), Invalid::Action);
    assert_eq!(refusal(&system("consent.")), Invalid::Action);
    assert_eq!(
        refusal(&Event::new(Actor::User("a@b.c"), "consent.opt_out")),
        Invalid::ActorId
    );
    assert_eq!(
        refusal(&Event::new(Actor::Cli(""), "consent.opt_out")),
        Invalid::ActorId
    );
    assert_eq!(
        refusal(&system("consent.opt_out").subject("Contact", "c1")),
        Invalid::SubjectKind { index: 0 }
    );
    assert_eq!(
        refusal(
            &system("consent.opt_out")
                .subject("contact", "c1")
                .subject("phone", "+1 555 123 4567")
        ),
        Invalid::SubjectId { index: 1 }
    );
    let mut many = system("consent.opt_out");
    for _ in 0..=MAX_SUBJECTS {
        many = many.subject("contact", "c1");
    }
    assert_eq!(refusal(&many), Invalid::TooManySubjects);
    let mut not_object = system("consent.opt_out");
    not_object.details = json!(["STOP"]);
    assert_eq!(refusal(&not_object), Invalid::DetailsNotObject);
    assert_eq!(
        refusal(
            &system("consent.opt_out")
                .detail("a", 1)
                .detail("Bad Key", 1)
        ),
        Invalid::DetailKey { index: 0 }
    );
    let mut big = system("config.change");
    for i in 0..=MAX_DETAILS {
        big = big.detail(&format!("k{i}"), 1);
    }
    assert_eq!(refusal(&big), Invalid::TooManyDetails);
    let mut large = system("config.change");
    for i in 0..MAX_DETAILS {
        large = large.detail(&format!("k{i}"), "x".repeat(150));
    }
    assert_eq!(refusal(&large), Invalid::TooLarge);
    for at in ["2026-11-27T10:00:00Z", "2026-11-27 10:00:00", "", "now"] {
        assert_eq!(
            prepare(&system("consent.opt_out"), at).err(),
            Some(Invalid::Timestamp),
            "{at}"
        );
    }
}

#[test]
fn debug_of_an_event_shows_keys_not_values() {
    let event = Event::new(Actor::System, "consent.opt_out").detail("oops", "+15551234567");
    let text = format!("{event:?}");
    assert!(text.contains("oops") && !text.contains("555"), "{text}");
}

/// A chain of `n` rows made the way `append` makes them.
fn chain(key: &AuditKey, n: i64) -> Vec<StoredRow> {
    let mut prev = GENESIS_HASH.to_vec();
    (1..=n)
        .map(|seq| {
            let mut row = StoredRow {
                seq,
                at: AT.to_owned(),
                actor_kind: "system".to_owned(),
                actor_id: String::new(),
                action: "test.step".to_owned(),
                subjects: "[]".to_owned(),
                details: format!(r#"{{"n":{seq}}}"#),
                key_version: i64::from(key.version()),
                prev_hash: prev.clone(),
                hash: Vec::new(),
            };
            row.hash = key.mac(&canonical(&row.prev_hash, &row.fields())).to_vec();
            prev = row.hash.clone();
            row
        })
        .collect()
}

fn walk(key: &AuditKey, rows: &[StoredRow], head: Option<(i64, &[u8])>) -> Report {
    let mut walk = Walk::new(key, Anchor::genesis());
    for row in rows {
        if walk.step(row).is_some() {
            break;
        }
    }
    walk.finish(head)
}

fn head_of(rows: &[StoredRow]) -> (i64, Vec<u8>) {
    rows.last()
        .map_or((0, GENESIS_HASH.to_vec()), |r| (r.seq, r.hash.clone()))
}

#[test]
fn walking_an_intact_chain() {
    let vault = vault();
    let key = vault.audit_key();
    let rows = chain(key, 5);
    let (seq, hash) = head_of(&rows);
    let report = walk(key, &rows, Some((seq, &hash)));
    assert_eq!(report.to_string(), "audit trail intact: 5 events");
    assert!(report.is_intact());
    let empty = walk(key, &[], Some((0, &GENESIS_HASH)));
    assert_eq!(empty.to_string(), "audit trail intact: 0 events");
    // Another master key sees every row as altered, starting with the first.
    let other = Vault::new(&MasterKey::from_bytes([8; 32]));
    let report = walk(other.audit_key(), &rows, Some((seq, &hash)));
    assert_eq!(
        report.first_bad,
        Some(Break {
            seq: 1,
            problem: Problem::Altered
        })
    );
}

#[test]
fn walking_finds_the_first_bad_row() {
    let vault = vault();
    let key = vault.audit_key();
    let bad = |seq, problem| Some(Break { seq, problem });
    type Tamper<'k> = Box<dyn Fn(&mut Vec<StoredRow>) + 'k>;
    let cases: Vec<(&str, Tamper<'_>, Option<Break>)> = vec![
        (
            "edited action",
            Box::new(|rows| rows[2].action = "test.other".to_owned()),
            bad(3, Problem::Altered),
        ),
        (
            "edited time",
            Box::new(|rows| rows[0].at = "2026-11-27T10:00:00.000001Z".to_owned()),
            bad(1, Problem::Altered),
        ),
        (
            "deleted middle",
            Box::new(|rows| {
                rows.remove(2);
            }),
            bad(3, Problem::Missing),
        ),
        (
            "deleted first",
            Box::new(|rows| {
                rows.remove(0);
            }),
            bad(1, Problem::Missing),
        ),
        (
            "deleted last",
            Box::new(|rows| {
                rows.pop();
            }),
            bad(5, Problem::Truncated { head_seq: 5 }),
        ),
        (
            "swapped",
            Box::new(|rows| {
                rows.swap(1, 3);
                rows[1].seq = 2;
                rows[3].seq = 4;
            }),
            bad(2, Problem::Unlinked),
        ),
        (
            "seq renumbered",
            Box::new(|rows| rows[3].seq = 40),
            bad(4, Problem::Missing),
        ),
        (
            "row zero",
            Box::new(|rows| {
                let mut forged = chain(key, 1).remove(0);
                forged.seq = 0;
                rows.insert(0, forged);
            }),
            bad(0, Problem::BeforeStart),
        ),
        (
            "forged after the end",
            Box::new(|rows| {
                let mut forged = chain(key, 1).remove(0);
                forged.seq = 6;
                forged.prev_hash = rows[4].hash.clone();
                forged.hash = vec![0x5a; 32];
                rows.push(forged);
            }),
            bad(6, Problem::Altered),
        ),
        (
            "other key version",
            Box::new(|rows| rows[1].key_version = 2),
            bad(2, Problem::KeyVersion { found: 2 }),
        ),
    ];
    for (name, tamper, expected) in cases {
        let mut rows = chain(key, 5);
        let (seq, hash) = head_of(&rows);
        tamper(&mut rows);
        let report = walk(key, &rows, Some((seq, &hash)));
        assert_eq!(report.first_bad, expected, "{name}");
        assert!(
            report.to_string().starts_with(&format!(
                "audit trail broken at event #{}: ",
                expected.as_ref().map_or(0, |b| b.seq)
            )),
            "{name}: {report}"
        );
    }
}

#[test]
fn walking_checks_the_head() {
    let vault = vault();
    let key = vault.audit_key();
    let rows = chain(key, 5);
    let (_, hash) = head_of(&rows);
    assert_eq!(
        walk(key, &rows, Some((5, &[9; 32]))).first_bad,
        Some(Break {
            seq: 5,
            problem: Problem::HeadHash
        })
    );
    assert_eq!(
        walk(key, &rows, Some((3, &rows[2].hash))).first_bad,
        Some(Break {
            seq: 4,
            problem: Problem::BeyondHead { head_seq: 3 }
        })
    );
    // Rolled back, and a row past the head edited too: the head's break comes first.
    let mut edited = chain(key, 5);
    edited[4].action = "test.other".to_owned();
    let report = walk(key, &edited, Some((3, &rows[2].hash)));
    assert_eq!(
        report.first_bad,
        Some(Break {
            seq: 4,
            problem: Problem::BeyondHead { head_seq: 3 }
        })
    );
    assert_eq!(report.events, 3);
    assert_eq!(
        walk(key, &rows, None).first_bad,
        Some(Break {
            seq: 5,
            problem: Problem::HeadMissing
        })
    );
    assert_eq!(
        walk(key, &rows[..0], Some((5, &hash))).first_bad,
        Some(Break {
            seq: 1,
            problem: Problem::Truncated { head_seq: 5 }
        })
    );
}
