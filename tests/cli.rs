//! The `drawbridge` binary as an operator runs it: `migrate`, `serve`, `simulate inbound`,
//! `tokens create`, `audit verify`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_drawbridge");

/// A command with a clean environment: no DRAWBRIDGE_* from the developer's shell leaks in.
fn drawbridge(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("DRAWBRIDGE_LOG", "info");
    for (key, _) in std::env::vars() {
        if key.starts_with("DRAWBRIDGE_") && key != "DRAWBRIDGE_LOG" {
            command.env_remove(key);
        }
    }
    command
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("custom.toml");
    std::fs::write(&path, body).unwrap();
    path
}

/// Waits for `/readyz` to answer 200.
fn wait_ready(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("serve exited early ({status}): {err}");
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            let _ = write!(
                stream,
                "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            );
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if response.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("serve did not become ready");
}

#[test]
fn migrate_creates_the_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "data_dir = \"state\"\n");
    let output = drawbridge(dir.path())
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let (_, err) = text(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("migrations applied (sqlite)"), "{err}");
    assert!(dir.path().join("state/drawbridge.db").exists());
    // Again: nothing pending, still fine.
    assert!(drawbridge(dir.path())
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .unwrap()
        .status
        .success());
}

#[test]
fn migrate_on_postgres() {
    let Ok(server) = std::env::var("DRAWBRIDGE_TEST_POSTGRES_URL") else {
        eprintln!("notice: DRAWBRIDGE_TEST_POSTGRES_URL is not set; PostgreSQL tests are skipped");
        return;
    };
    let name = format!("drawbridge_cli_{}", std::process::id());
    let admin = |sql: &str| {
        let status = Command::new("psql")
            .args(["-X", "-q", "-d", &server, "-c", sql])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "psql failed: {sql}");
    };
    admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    admin(&format!("CREATE DATABASE {name}"));
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&format!("/{name}"));
    let dir = tempfile::tempdir().unwrap();
    let output = drawbridge(dir.path())
        .arg("migrate")
        .env("DRAWBRIDGE_DATABASE_URL", url.as_str())
        .output()
        .unwrap();
    admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    let (_, err) = text(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("migrations applied (postgres)"), "{err}");
}

#[test]
fn production_refuses_to_start_without_a_master_key() {
    let dir = tempfile::tempdir().unwrap();
    // Production also requires the business's name and contact for confirmations and HELP.
    let output = drawbridge(dir.path())
        .arg("serve")
        .env("DRAWBRIDGE_MODE", "production")
        .env("DRAWBRIDGE_PUBLIC_URL", "https://sms.example.com")
        .output()
        .unwrap();
    assert!(text(&output).1.contains(
        "compliance.business_name and compliance.support_contact are required in production"
    ));
    write_config(
        dir.path(),
        "[compliance]\nbusiness_name = \"Acme Bank\"\nsupport_contact = \"acme.example/help\"\n",
    );
    let output = drawbridge(dir.path())
        .args(["serve", "--config", "custom.toml"])
        .env("DRAWBRIDGE_MODE", "production")
        .env("DRAWBRIDGE_PUBLIC_URL", "https://sms.example.com")
        .output()
        .unwrap();
    let (_, err) = text(&output);
    assert!(!output.status.success());
    assert!(
        err.contains("production mode requires a master key"),
        "{err}"
    );
    assert!(
        !dir.path().join("data/master.key").exists(),
        "production must not generate a key"
    );
    // Nor without the URL carriers call, which signatures are checked against.
    let output = drawbridge(dir.path())
        .args(["serve", "--config", "custom.toml"])
        .env("DRAWBRIDGE_MODE", "production")
        .output()
        .unwrap();
    assert!(text(&output)
        .1
        .contains("`public_url` is required in production"));
}

#[test]
fn bad_configuration_names_the_key_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[accounts]]\nname = \"main\"\ncarrier = \"twilio\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"sekrit-token-value\"\n\n[[numbers]]\nnumber = \"5550001111\"\naccount = \"main\"\n",
    );
    for command in ["serve", "migrate"] {
        let output = drawbridge(dir.path())
            .args([command, "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let (out, err) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{command}: {err}");
        assert!(err.contains("numbers[0].number"), "{command}: {err}");
        assert!(!err.contains("sekrit") && !out.contains("sekrit"), "{err}");
    }
    let output = drawbridge(dir.path())
        .arg("serve")
        .env("DRAWBRIDGE_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(text(&output).1.contains("DRAWBRIDGE_LISTEN"));
    let output = drawbridge(dir.path())
        .args(["serve", "--config", "missing.toml"])
        .output()
        .unwrap();
    assert!(text(&output).1.contains("missing.toml"));
}

#[test]
fn serve_then_simulate_then_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &format!("listen = \"127.0.0.1:{port}\"\n"));
    let mut child = drawbridge(dir.path())
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(port, &mut child);

    // First start in development: a master key was generated, owner-only.
    let key = dir.path().join("data/master.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let output = drawbridge(dir.path())
        .args(["simulate", "inbound", "--config"])
        .arg(&config)
        .args([
            "--from",
            "+15551234567",
            "--to",
            "+15550001111",
            "--body",
            "my card is 4111 1111 1111 1111",
        ])
        .output()
        .unwrap();
    let (out, err) = text(&output);
    assert!(output.status.success(), "{out}{err}");
    assert!(
        out.contains(&format!(
            "POST http://127.0.0.1:{port}/webhooks/twilio -> HTTP 200 OK"
        )),
        "{out}"
    );

    // A status callback, signed as Twilio would, for a message the service has not sent: kept as
    // an event and acknowledged.
    let output = drawbridge(dir.path())
        .args(["simulate", "status", "--config"])
        .arg(&config)
        .args([
            "--from",
            "+15550001111",
            "--to",
            "+15551234567",
            "--message-id",
            "SM0123456789abcdef0123456789abcdef",
            "--status",
            "delivered",
        ])
        .output()
        .unwrap();
    let (out, err) = text(&output);
    assert!(output.status.success(), "{out}{err}");
    assert!(
        out.contains(&format!(
            "POST http://127.0.0.1:{port}/webhooks/twilio/status -> HTTP 200 OK"
        )),
        "{out}"
    );

    // A number nobody configured.
    let output = drawbridge(dir.path())
        .args(["simulate", "inbound", "--config"])
        .arg(&config)
        .args([
            "--from",
            "+15551234567",
            "--to",
            "+15559990000",
            "--body",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(text(&output).1.contains("--to"));

    // SIGTERM: graceful stop, exit 0.
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("generated a new master key"), "{err}");
    assert!(err.contains("drawbridge stopped"), "{err}");
    assert!(!err.contains("4111"), "logs must not carry the body: {err}");

    // Second start reuses the key and the data.
    let mut child = drawbridge(dir.path())
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(port, &mut child);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("using the master key in") && !err.contains("generated a new master key"),
        "{err}"
    );
}

/// A captured Twilio request, signed with `token` for `url`.
fn twilio_capture(url: &str, token: &str, body_params: &[(&str, &str)]) -> String {
    use drawbridge::carriers::twilio::signature;
    let params: Vec<(String, String)> = body_params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let sig = signature::sign(&secrecy::SecretString::from(token.to_owned()), url, &params);
    format!(
        "POST {url}\nContent-Type: application/x-www-form-urlencoded\nX-Twilio-Signature: {sig}\n\n{}",
        drawbridge::carriers::form::encode(body_params)
    )
}

#[test]
fn webhook_verify_explains_its_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let url = "https://sms.example.com/webhooks/twilio?x=1";
    let params = [
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("From", "+15551234567"),
        ("To", "+15550001111"),
        ("Body", "hello"),
    ];
    let file = dir.path().join("request.txt");
    std::fs::write(&file, twilio_capture(url, "s3cret-token", &params)).unwrap();
    let verify = |secret: &str, file: &Path| {
        drawbridge(dir.path())
            .args([
                "webhook",
                "verify",
                "--carrier",
                "twilio",
                "--secret",
                secret,
                "--request",
            ])
            .arg(file)
            .output()
            .unwrap()
    };

    let output = verify("s3cret-token", &file);
    let (out, err) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{err}");
    assert!(out.starts_with("valid\n"), "{out}");

    // The same request as a proxy that stripped the query string would forward it.
    let stripped = dir.path().join("stripped.txt");
    std::fs::write(
        &stripped,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("twilio?x=1", "twilio"),
    )
    .unwrap();
    let output = verify("s3cret-token", &stripped);
    let (out, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.starts_with("invalid\n"), "{out}");
    // Exactly what was signed, what was expected (both port forms), and what was received.
    assert!(
        out.contains("signed:   https://sms.example.com/webhooks/twilioBodyhelloFrom+15551234567"),
        "{out}"
    );
    assert!(
        out.contains("signed:   https://sms.example.com:443/webhooks/twilio"),
        "{out}"
    );
    assert_eq!(out.matches("expected: ").count(), 2, "{out}");
    assert!(out.contains("received: "), "{out}");
    // A wrong secret is invalid too.
    assert_eq!(verify("other", &file).status.code(), Some(1));

    // Bad usage: exit 2 with the reason.
    let output = drawbridge(dir.path())
        .args([
            "webhook",
            "verify",
            "--carrier",
            "pigeon",
            "--secret",
            "x",
            "--request",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("--carrier"));
    assert_eq!(
        verify("x", &dir.path().join("missing.txt")).status.code(),
        Some(2)
    );
    let malformed = dir.path().join("malformed.txt");
    std::fs::write(&malformed, "this is not a request line\n\nbody").unwrap();
    let output = verify("x", &malformed);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("METHOD absolute-URL"));
    let output = drawbridge(dir.path())
        .args(["webhook", "verify", "--carrier", "twilio"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "missing arguments");
}

#[test]
fn fake_carrier_serves_records_and_fails_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = drawbridge(dir.path())
        .args([
            "simulate",
            "carrier",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = |request: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::Write;
                stream.write_all(request.as_bytes()).unwrap();
                let mut response = String::new();
                let _ = stream.read_to_string(&mut response);
                return response;
            }
            assert!(Instant::now() < deadline, "the fake did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let fail = r#"{"mode":"429","count":1,"retry_after":7}"#;
    let response = http(&format!(
        "POST /_fail HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{fail}",
        fail.len()
    ));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD
        .encode("AC0123456789abcdef0123456789abcdef:token");
    let send = |body: &str| {
        http(&format!(
            "POST /2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    let throttled = send("To=%2B15551234567&From=%2B15550001111&Body=hi");
    assert!(throttled.starts_with("HTTP/1.1 429"), "{throttled}");
    assert!(
        throttled.to_ascii_lowercase().contains("retry-after: 7"),
        "{throttled}"
    );
    assert!(throttled.contains("20429"), "{throttled}");
    let accepted = send("To=%2B15551234567&From=%2B15550001111&Body=hi");
    assert!(accepted.starts_with("HTTP/1.1 201"), "{accepted}");
    assert!(accepted.contains("\"sid\":\"SM"), "{accepted}");
    let sent = http("GET /_sent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(sent.contains("\"outcome\":\"throttled\""), "{sent}");
    assert!(sent.contains("\"outcome\":\"accepted\""), "{sent}");
    assert!(sent.contains("\"carrier\":\"twilio\""), "{sent}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn webhook_verify_checks_telnyx_timestamps_at_a_given_time() {
    // carriers.md §12.3: RFC 8032 seed, timestamp 1700000000.
    let dir = tempfile::tempdir().unwrap();
    let body =
        r#"{"data":{"event_type":"message.received","id":"evt_1","payload":{"text":"STOP"}}}"#;
    let file = dir.path().join("telnyx.txt");
    std::fs::write(
        &file,
        format!(
            "POST https://sms.example.com/webhooks/telnyx\ncontent-type: application/json\ntelnyx-timestamp: 1700000000\ntelnyx-signature-ed25519: 5eBCpsveIw1Ky0besfAw3w95i45vhErk64Oe5ufCg9HIfS+ptTLXX/AEDl7H65qro7FGYrDUBsPSuH7ZX1+YAg==\n\n{body}"
        ),
    )
    .unwrap();
    let verify = |extra: &[&str]| {
        drawbridge(dir.path())
            .args([
                "webhook",
                "verify",
                "--carrier",
                "telnyx",
                "--secret",
                "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
                "--request",
            ])
            .arg(&file)
            .args(extra)
            .output()
            .unwrap()
    };
    let output = verify(&["--at", "1700000060"]);
    let (out, err) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{err}");
    assert!(out.starts_with("valid\n"), "{out}");
    // Now, the signature is right but the timestamp is years old: invalid, and it says why.
    let output = verify(&[]);
    let (out, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.starts_with("invalid\n") && out.contains("1700000000|"),
        "{out}"
    );
    assert_eq!(verify(&["--at", "yesterday"]).status.code(), Some(2));
}

/// Runs one SQL statement against the SQLite database in `dir/data`, as someone with file access
/// could.
fn tamper(dir: &Path, sql: &str) {
    let url = format!(
        "sqlite://{}",
        dir.join("data/drawbridge.db").to_string_lossy()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    });
}

#[test]
fn tokens_are_audited_and_audit_verify_names_a_tampered_event() {
    let dir = tempfile::tempdir().unwrap();
    let verify = || {
        let output = drawbridge(dir.path())
            .args(["audit", "verify"])
            .output()
            .unwrap();
        let (out, err) = text(&output);
        (output.status.code(), out, err)
    };
    // Before anything exists there is no key to check with: neither intact nor broken.
    let (code, _, err) = verify();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no master key"), "{err}");

    let mut tokens = Vec::new();
    for (role, name) in [("agent", "desk-1"), ("supervisor", "floor-lead")] {
        let output = drawbridge(dir.path())
            .args(["tokens", "create", "--role", role, "--name", name])
            .output()
            .unwrap();
        let (out, err) = text(&output);
        assert!(output.status.success(), "{err}");
        let token = out.trim().to_owned();
        assert!(token.len() >= 40, "{token}");
        assert!(err.contains("shown once"), "{err}");
        tokens.push(token);
    }
    assert_ne!(tokens[0], tokens[1]);
    let output = drawbridge(dir.path())
        .args(["tokens", "create", "--role", "janitor", "--name", "x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(text(&output).1.contains("--role"));

    let (code, out, err) = verify();
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.trim(), "audit trail intact: 2 events");

    // Someone with database access edits the second event: the chain names it.
    tamper(
        dir.path(),
        "UPDATE audit_event SET details = replace(details, 'floor-lead', 'desk-2') WHERE seq = 2",
    );
    let (code, out, err) = verify();
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.starts_with("audit trail broken at event #2: "), "{out}");
    // Deleting the first instead is named too.
    tamper(
        dir.path(),
        "UPDATE audit_event SET details = replace(details, 'desk-2', 'floor-lead') WHERE seq = 2",
    );
    assert_eq!(verify().0, Some(0));
    tamper(dir.path(), "DELETE FROM audit_event WHERE seq = 1");
    let (code, out, _) = verify();
    assert_eq!(code, Some(1));
    assert!(out.starts_with("audit trail broken at event #1: "), "{out}");
    // The stored tokens are hashes: neither token's text is in the database file.
    let stored = std::fs::read(dir.path().join("data/drawbridge.db")).unwrap();
    for token in &tokens {
        assert!(
            !stored.windows(token.len()).any(|w| w == token.as_bytes()),
            "a token is stored in clear"
        );
    }
}

#[test]
fn audit_prune_leaves_a_checkpoint_and_anchor_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = drawbridge(dir.path()).args(args).output().unwrap();
        let (out, err) = text(&output);
        (output.status.code(), out, err)
    };
    for name in ["desk-1", "desk-2", "desk-3"] {
        assert_eq!(
            run(&["tokens", "create", "--role", "agent", "--name", name]).0,
            Some(0)
        );
    }
    // Backdate the first two events past the default retention of seven years.
    tamper(
        dir.path(),
        "UPDATE audit_event SET at = '2010-01-01T00:00:00.000000Z' WHERE seq <= 2",
    );
    // A bad --before is refused; the edited rows are refused too (their hashes no longer match).
    let (code, _, err) = run(&["audit", "prune", "--before", "last year"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("--before"), "{err}");
    let (code, _, err) = run(&["audit", "prune"]);
    assert_ne!(code, Some(0), "a broken trail is not pruned");
    assert!(err.contains("broken"), "{err}");
    // A clean trail in a fresh directory: everything before now goes.
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = drawbridge(dir.path()).args(args).output().unwrap();
        let (out, err) = text(&output);
        (output.status.code(), out, err)
    };
    for name in ["desk-1", "desk-2"] {
        assert_eq!(
            run(&["tokens", "create", "--role", "agent", "--name", name]).0,
            Some(0)
        );
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (code, out, err) = run(&["audit", "prune", "--before", &now]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.starts_with("pruned 2 events before ") && out.contains("starts after event #2"),
        "{out}"
    );
    let (code, out, err) = run(&["audit", "verify"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.trim(), "audit trail intact: 1 event");
    let (code, out, err) = run(&["audit", "anchor"]);
    assert_eq!(code, Some(0), "{err}");
    let anchor: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(anchor["checkpoint"]["last_seq"], 2);
    assert_eq!(anchor["head"]["seq"], 3);
    let anchor_file = dir.path().join("anchor.json");
    std::fs::write(&anchor_file, &out).unwrap();
    let anchor_path = anchor_file.to_str().unwrap();
    let (code, out, err) = run(&["audit", "verify", "--anchor", anchor_path]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("(head #3): consistent"), "{out}");
    // An edited anchor is named as such.
    let mut edited = anchor.clone();
    edited["head"]["seq"] = serde_json::json!(4);
    let edited_file = dir.path().join("edited.json");
    std::fs::write(&edited_file, edited.to_string()).unwrap();
    let (code, out, _) = run(&["audit", "verify", "--anchor", edited_file.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(out.contains("signature does not verify"), "{out}");
    // Not an anchor at all: it cannot be checked (exit 2).
    let (code, _, err) = run(&["audit", "verify", "--anchor", "/nonexistent/anchor.json"]);
    assert_eq!(code, Some(2), "{err}");
    // The newest events deleted and the head moved back to the checkpoint: the chain alone still
    // verifies, the anchor shows the rollback.
    tamper(dir.path(), "DELETE FROM audit_event");
    tamper(
        dir.path(),
        "UPDATE audit_head SET last_seq = 2, last_hash = (SELECT last_hash FROM audit_checkpoint)",
    );
    let (code, out, err) = run(&["audit", "verify"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, _) = run(&["audit", "verify", "--anchor", anchor_path]);
    assert_eq!(code, Some(1));
    assert!(out.contains("no longer holds event #3"), "{out}");
    // A forged checkpoint is named by verify.
    tamper(dir.path(), "UPDATE audit_checkpoint SET pruned = 99");
    let (code, out, _) = run(&["audit", "verify"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("checkpoint"), "{out}");
}

#[test]
fn export_erase_and_retention_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &format!("listen = \"127.0.0.1:{port}\"\n"));
    let mut child = drawbridge(dir.path())
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(port, &mut child);
    let phone = "+15551234567";
    let output = drawbridge(dir.path())
        .args(["simulate", "inbound", "--config"])
        .arg(&config)
        .args([
            "--from",
            phone,
            "--to",
            "+15550001111",
            "--body",
            "my order is late",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{:?}", text(&output));
    let run = |args: &[&str]| {
        let output = drawbridge(dir.path())
            .args(args)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (out, err) = text(&output);
        (output.status.success(), out, err)
    };

    // No terminal to confirm on and no --yes: refused, nothing erased.
    let (ok, _, err) = run(&["erase", "--phone", phone]);
    assert!(!ok);
    assert!(err.contains("--yes"), "{err}");
    // Under a legal hold: refused with a clear message.
    tamper(
        dir.path(),
        "INSERT INTO legal_hold (legal_hold_id, contact_id, reason, placed_by, placed_at) \
         SELECT 'hold-1', contact_id, 'litigation', 'cli:test', '2026-01-01T00:00:00.000000Z' FROM contact",
    );
    let (ok, _, err) = run(&["erase", "--phone", phone, "--yes"]);
    assert!(!ok);
    assert!(err.contains("legal hold"), "{err}");

    // Export: a directory with export.json and export.html, owner-only.
    let out = dir.path().join("bundle");
    let (ok, stdout, err) = run(&["export", "--phone", phone, "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(stdout.contains("exported 1 messages"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("export.json")).unwrap()).unwrap();
    assert_eq!(
        json["conversations"][0]["messages"][0]["body"],
        "my order is late"
    );
    let html = std::fs::read_to_string(out.join("export.html")).unwrap();
    assert!(html.contains("my order is late") && !html.contains(phone));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out.join("export.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // An existing export is never overwritten.
    let (ok, _, err) = run(&["export", "--phone", phone, "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(&["export", "--phone", "+15557654321"]);
    assert!(!ok && err.contains("no contact"), "{err}");

    // Released: erased; a second export holds no conversations.
    tamper(
        dir.path(),
        "UPDATE legal_hold SET released_at = '2026-01-02T00:00:00.000000Z', released_by = 'cli:test'",
    );
    let (ok, stdout, err) = run(&["erase", "--phone", phone, "--yes"]);
    assert!(ok, "{err}");
    assert!(stdout.starts_with("erased contact "), "{stdout}");
    let after = dir.path().join("after");
    let (ok, _, err) = run(&["export", "--phone", phone, "--out", after.to_str().unwrap()]);
    assert!(ok, "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(after.join("export.json")).unwrap()).unwrap();
    assert_eq!(json["conversations"], serde_json::json!([]));
    assert!(json["contact"]["erased_at"].is_string());

    // Retention once: nothing is old enough; the run is reported per class.
    let (ok, stdout, err) = run(&["retention", "run"]);
    assert!(ok, "{err}");
    assert!(stdout.contains("message_content\t0"), "{stdout}");
    assert!(stdout.contains("consent_events\t0"), "{stdout}");
    assert!(stdout.contains("quiet_holds\t0"), "{stdout}");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
    let stored = std::fs::read(dir.path().join("data/drawbridge.db")).unwrap();
    assert!(
        !stored
            .windows(b"my order is late".len())
            .any(|w| w == b"my order is late"),
        "a body stored in clear"
    );
}

#[test]
fn keys_status_generate_and_rotate_in_development() {
    let dir = tempfile::tempdir().unwrap();
    let run = |version: Option<&str>, args: &[&str]| {
        let mut command = drawbridge(dir.path());
        if let Some(version) = version {
            command.env("DRAWBRIDGE_MASTER_KEY_VERSION", version);
        }
        let output = command.args(args).output().unwrap();
        let (out, err) = text(&output);
        (output.status.code(), out, err)
    };
    // A database with version 1 (generated development key) and one audited event.
    let (code, _, err) = run(
        None,
        &["tokens", "create", "--role", "agent", "--name", "desk"],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(None, &["keys", "status"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("v1  created") && out.contains("current"),
        "{out}"
    );
    assert!(out.contains("rotation in progress: no"), "{out}");
    let (code, out, _) = run(None, &["keys", "rotate"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("nothing to rotate"), "{out}");

    // `keys generate` writes an owner-only key and never overwrites one.
    let new_key = dir.path().join("new.key");
    let (code, _, err) = run(None, &["keys", "generate", new_key.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&new_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = std::fs::read(&new_key).unwrap();
    let (code, _, _) = run(None, &["keys", "generate", new_key.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert_eq!(std::fs::read(&new_key).unwrap(), before);

    // A wrong key for version 1 is refused, and nothing is registered.
    let mut command = drawbridge(dir.path());
    let output = command
        .env("DRAWBRIDGE_MASTER_KEY_VERSION", "2")
        .env(
            "DRAWBRIDGE_PREVIOUS_MASTER_KEY_FILE",
            new_key.to_str().unwrap(),
        )
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    let (_, err) = text(&output);
    assert!(!output.status.success());
    assert!(
        err.contains("master key for version 1 is not the key"),
        "{err}"
    );

    // Development rotation: version 2's key is generated beside master.key, which is read as the
    // previous key; v1 is retired.
    let (code, out, err) = run(Some("2"), &["keys", "rotate"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("rotation to master key v2 finished"), "{out}");
    assert!(out.contains("master key v1 retired"), "{out}");
    assert!(dir.path().join("data/master.v2.key").exists());
    let (code, out, _) = run(Some("2"), &["keys", "status"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("retired") && out.contains("v2  created"),
        "{out}"
    );
    // No key material is printed.
    for file in ["data/master.key", "data/master.v2.key"] {
        let key = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(!out.contains(key.trim()), "{file} printed");
    }
    // Blind-index keys rotate too: a new generation, stored under the current master key only
    // (v1 is retired), every stored index re-keyed, the trail intact.
    let (code, out, err) = run(Some("2"), &["keys", "reindex", "--batch", "1"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("re-index to blind-index generation 2 finished"),
        "{out}"
    );
    let (code, out, _) = run(Some("2"), &["keys", "status"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("blind-index key generation: 2"), "{out}");
    assert!(out.contains("re-index in progress: no"), "{out}");
    // The trail, including the rows from before the rotation and its own events, verifies with
    // the new key; the old key alone no longer runs anything.
    let (code, out, err) = run(Some("2"), &["audit", "verify"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("audit trail intact: "), "{out}");
    let (code, _, err) = run(None, &["audit", "verify"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("version 2 is not retired"), "{err}");
}
