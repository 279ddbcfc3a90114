//! The outbox across real `drawbridge serve` processes and the fake carrier: a server killed with
//! SIGKILL mid-send and restarted delivers every queued reply exactly once; two instances on one
//! PostgreSQL drain a shared outbox without sending anything twice, and both take part.

use crate::helpers::*;
use drawbridge::config::Settings;
use drawbridge::phone::{BusinessAddress, E164};
use drawbridge::pipeline::{self, Channel, Inbound};
use drawbridge::simulate::fake::{self, RunningFake};
use drawbridge::store::Db;
use drawbridge::vault::{MasterKey, Vault};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const BIN: &str = env!("CARGO_BIN_EXE_drawbridge");
const KEY: [u8; 32] = [42; 32];

mod sigkill_mid_send_then_restart {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::sigkill_mid_send_then_restart(crate::helpers::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(backend) = crate::helpers::postgres() {
            super::sigkill_mid_send_then_restart(backend).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_drain_one_outbox() {
    if let Some(backend) = postgres() {
        scale_out(backend).await;
    }
}

/// A database for the processes: a SQLite file in `dir`, or a fresh PostgreSQL database.
async fn database(backend: &Backend, dir: &std::path::Path) -> (String, Option<PgDatabase>) {
    match backend {
        Backend::Sqlite => (
            format!("sqlite://{}?mode=rwc", dir.join("drawbridge.db").display()),
            None,
        ),
        Backend::Postgres(server) => {
            let pg = PgDatabase::create(server).await;
            (pg.url(), Some(pg))
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The configuration every process of a test shares, but for its port.
fn config(
    dir: &std::path::Path,
    database_url: &str,
    fake: &RunningFake,
    port: u16,
    extra: &str,
) -> std::path::PathBuf {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode(KEY);
    let text = format!(
        r#"listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
data_dir = "{dir}"
database_url = "{database_url}"
master_key = "{key}"

[[accounts]]
name = "main"
carrier = "twilio"
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
api_base = "{api_base}"

[[numbers]]
number = "{BUSINESS_NUMBER}"
account = "main"
throughput = 40.0

[outbox]
poll_interval_ms = 50
lease_secs = 3
request_timeout_secs = 2
backoff_base_ms = 200
backoff_max_secs = 2
lookup_delay_secs = 0
{extra}
"#,
        dir = dir.display(),
        api_base = fake.url(),
    );
    let path = dir.join(format!("drawbridge-{port}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn serve(config: &std::path::Path) -> Child {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("DRAWBRIDGE_") {
            command.env_remove(key);
        }
    }
    command
        .args(["serve", "--config"])
        .arg(config)
        .env("DRAWBRIDGE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_ready(port: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if response.status() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "serve on {port} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Migrates the database and queues `count` replies `reply NNNN` to [`CUSTOMER`], as the
/// service itself would (same library, same master key).
async fn queue_replies(config: &std::path::Path, count: usize) -> Db {
    let settings = Settings::load_with(Some(config), |_| None).unwrap();
    let db = Db::connect_lazy(&settings.database_url()).unwrap();
    db.migrate().await.unwrap();
    let vault = Vault::new(&MasterKey::from_bytes(KEY));
    let inbound = Inbound {
        carrier: "twilio",
        carrier_message_id: new_sid(),
        from: E164::parse(CUSTOMER).unwrap(),
        to: BusinessAddress::parse(BUSINESS_NUMBER).unwrap(),
        channel: Channel::Sms,
        body: Zeroizing::new("please call me back".to_owned()),
        media: Vec::new(),
    };
    let state = drawbridge::web::AppState::standalone(
        &settings,
        db.clone(),
        Vault::new(&MasterKey::from_bytes(KEY)),
    )
    .unwrap();
    pipeline::ingest(&state, inbound).await.unwrap();
    let conversation: String = sqlx::Row::get(
        &sqlx::query("SELECT conversation_id FROM conversation")
            .fetch_one(db.pool())
            .await
            .unwrap(),
        0,
    );
    let senders = settings.senders();
    let mut tx = db.pool().begin().await.unwrap();
    for i in 0..count {
        drawbridge::outbox::enqueue(
            &mut tx,
            &vault,
            &senders,
            &drawbridge::outbox::Outbound {
                conversation_id: &conversation,
                kind: drawbridge::outbox::Kind::Reply,
                body: &format!("reply {i:04}"),
                shown: None,
                media_urls: &[],
                suggestions: &[],
                not_before: None,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    db
}

async fn accepted_rows(db: &Db) -> i64 {
    sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) FROM outbox WHERE state = 'accepted'")
            .fetch_one(db.pool())
            .await
            .unwrap(),
        0,
    )
}

/// Every reply `0..count` was taken by the carrier exactly once.
fn assert_each_once(fake: &RunningFake, count: usize) {
    let mut taken: HashMap<String, usize> = HashMap::new();
    for record in fake.state.accepted(drawbridge::carriers::Carrier::Twilio) {
        *taken.entry(record.text.unwrap_or_default()).or_default() += 1;
    }
    for i in 0..count {
        let text = format!("reply {i:04}");
        assert_eq!(
            taken.get(&text).copied(),
            Some(1),
            "{text} taken {:?} times",
            taken.get(&text)
        );
    }
    assert_eq!(taken.len(), count, "nothing else was sent");
}

fn kill(child: &mut Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn sigkill_mid_send_then_restart(backend: Backend) {
    let fake = fake::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (database_url, _pg) = database(&backend, dir.path()).await;
    let port = free_port();
    let config = config(dir.path(), &database_url, &fake, port, "");
    let db = queue_replies(&config, 100).await;

    let mut server = serve(&config);
    wait_ready(port).await;
    // Let a third go out, then make the carrier take the next one but answer too late, and kill
    // the server while it waits: that message was accepted and the server never learned its id.
    eventually(30, "30 replies sent", || async {
        fake.state
            .accepted(drawbridge::carriers::Carrier::Twilio)
            .len()
            >= 30
    })
    .await;
    fake.state.plan(fake::FailureRequest {
        mode: fake::FailureMode::Timeout,
        count: 1,
        carrier: None,
        retry_after: None,
        delay_ms: 60_000,
    });
    eventually(30, "a reply taken late", || async {
        fake.state.records().iter().any(|r| r.outcome == "late")
    })
    .await;
    kill(&mut server, "-KILL");
    let _ = server.wait();
    let killed_at = accepted_rows(&db).await;
    assert!(
        killed_at < 100,
        "the kill came before the end ({killed_at} accepted)"
    );

    let mut server = serve(&config);
    wait_ready(port).await;
    eventually(60, "every reply accepted after the restart", || async {
        accepted_rows(&db).await == 100
    })
    .await;
    kill(&mut server, "-TERM");
    let status = server.wait().unwrap();
    assert!(status.success(), "{status}");

    assert_each_once(&fake, 100);
    // The late one is recorded under the id the carrier gave it, found by a lookup.
    let late = fake
        .state
        .records()
        .into_iter()
        .find(|r| r.outcome == "late")
        .unwrap();
    let recorded: Option<String> = sqlx::Row::get(
        &sqlx::query("SELECT m.carrier_message_id FROM outbox o JOIN message m ON m.message_id = o.message_id WHERE o.carrier_message_id = $1")
            .bind(late.message_id.as_deref().unwrap())
            .fetch_one(db.pool())
            .await
            .unwrap(),
        0,
    );
    assert_eq!(recorded, late.message_id);
    assert!(fake.state.records().iter().any(|r| r.kind == "lookup"));
    db.close().await;
    fake.handle.stop(false).await;
}

async fn scale_out(backend: Backend) {
    let fake = fake::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (database_url, _pg) = database(&backend, dir.path()).await;
    let ports = [free_port(), free_port()];
    let configs: Vec<_> = ports
        .iter()
        .map(|&port| {
            config(
                dir.path(),
                &database_url,
                &fake,
                port,
                "instances = 2\nbatch = 50",
            )
        })
        .collect();
    // 400 messages/s for the number across both instances: 200/s each.
    for path in &configs {
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace("throughput = 40.0", "throughput = 400.0");
        std::fs::write(path, text).unwrap();
    }
    let db = queue_replies(&configs[0], 1000).await;
    let mut servers: Vec<Child> = configs.iter().map(|c| serve(c)).collect();
    for &port in &ports {
        wait_ready(port).await;
    }
    let started = Instant::now();
    eventually(120, "1000 replies accepted", || async {
        accepted_rows(&db).await == 1000
    })
    .await;
    eprintln!(
        "two instances drained 1,000 replies in {:.2?} (throughput set to 400/s for the number)",
        started.elapsed()
    );
    let mut per_instance = Vec::new();
    for &port in &ports {
        let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let sent: u64 = metrics
            .lines()
            .find(|l| {
                l.starts_with("drawbridge_outbox_total{") && l.contains(r#"outcome="accepted""#)
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        per_instance.push(sent);
    }
    for server in &mut servers {
        kill(server, "-TERM");
        assert!(server.wait().unwrap().success());
    }
    assert_each_once(&fake, 1000);
    assert_eq!(per_instance.iter().sum::<u64>(), 1000, "{per_instance:?}");
    assert!(
        per_instance.iter().all(|&n| n > 0),
        "both instances sent some: {per_instance:?}"
    );
    db.close().await;
    fake.handle.stop(false).await;
}
