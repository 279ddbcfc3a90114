//! The `redact`, `rules`, `webhook verify`, `tokens` and `users` commands.

use crate::redact::{self, rules, score, Direction};
use anyhow::{bail, Context};
use std::io::{BufRead, BufWriter, Read, Write};
use std::path::Path;

/// `drawbridge redact [--jsonl] [--rules DIR]`.
///
/// Plain: all of stdin is one text; its redaction goes to stdout. JSON lines: each input line
/// `{"id": …, "text": …}` (other fields ignored) gives one output line, in order:
/// `{"id", "redacted", "findings": [{"type", "rule", "start", "end"}], "topics", "escalate"}`,
/// offsets in Unicode code points of the original text, end exclusive.
///
/// # Errors
/// Rules that do not load, unreadable input, or a malformed input line (named by number).
pub fn redact(rules_dir: Option<&Path>, jsonl: bool) -> anyhow::Result<()> {
    let engine = redact::load_engine(rules_dir)?;
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    if !jsonl {
        let mut text = String::new();
        std::io::BufReader::new(stdin)
            .read_to_string(&mut text)
            .context("reading stdin (UTF-8 text expected)")?;
        out.write_all(engine.redact(&text, Direction::Inbound).text.as_bytes())?;
        return out.flush().context("writing stdout");
    }
    for (number, line) in stdin.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", number + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let input: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("line {}: not JSON", number + 1))?;
        let Some(text) = input.get("text").and_then(serde_json::Value::as_str) else {
            bail!("line {}: no string field \"text\"", number + 1);
        };
        let result = engine.redact(text, Direction::Inbound);
        let findings: Vec<serde_json::Value> = result
            .findings
            .iter()
            .map(|f| serde_json::json!({ "type": f.entity.as_str(), "rule": f.rule, "start": f.start, "end": f.end }))
            .collect();
        let topics: Vec<&str> = result.topics.iter().map(|t| t.as_str()).collect();
        let record = serde_json::json!({
            "id": input.get("id").cloned().unwrap_or(serde_json::Value::Null),
            "redacted": result.text.as_str(),
            "findings": findings,
            "topics": topics,
            "escalate": result.escalate,
        });
        serde_json::to_writer(&mut out, &record)?;
        out.write_all(b"\n")?;
    }
    out.flush().context("writing stdout")
}

/// `drawbridge rules check [DIR]`.
///
/// # Errors
/// When any pack or rule is refused; the report names each.
pub fn rules_check(dir: Option<&Path>) -> anyhow::Result<()> {
    let packs = match dir {
        Some(dir) => rules::load_dir(dir)?,
        None => rules::default_packs()?,
    };
    let rule_count: usize = packs.iter().map(|(_, p)| p.rules.len()).sum();
    let example_count: usize = packs
        .iter()
        .flat_map(|(_, p)| &p.rules)
        .map(|r| r.examples.matches.len() + r.examples.no_match.len())
        .sum();
    match redact::Engine::load(&packs) {
        Ok(engine) => {
            let mut out = std::io::stdout().lock();
            for (file, pack) in &packs {
                writeln!(
                    out,
                    "ok  {file}: {} ({} rules)",
                    pack.pack,
                    pack.rules.len()
                )?;
            }
            writeln!(
                out,
                "{} packs, {rule_count} rules ({} enabled), {example_count} examples: all pass",
                packs.len(),
                engine.rule_count()
            )?;
            Ok(())
        }
        Err(errors) => {
            let mut out = std::io::stdout().lock();
            for error in &errors {
                writeln!(out, "FAIL {error}")?;
            }
            bail!("{} problem(s) in {} packs", errors.len(), packs.len())
        }
    }
}

/// `drawbridge rules score CORPUS [--rules DIR] [--problems]`.
///
/// # Errors
/// Unreadable corpus or rules; or bars not met (listed).
pub fn rules_score(corpus: &Path, rules_dir: Option<&Path>, problems: bool) -> anyhow::Result<()> {
    let engine = redact::load_engine(rules_dir)?;
    let text =
        std::fs::read_to_string(corpus).with_context(|| format!("reading {}", corpus.display()))?;
    let labeled =
        score::parse_corpus(&text).map_err(|e| anyhow::anyhow!("{}: {e}", corpus.display()))?;
    let report = score::score(&engine, &labeled);
    let mut out = std::io::stdout().lock();
    write!(out, "{report}")?;
    if problems {
        for problem in &report.problems {
            writeln!(out, "  {problem}")?;
        }
    }
    let shortfalls = report.shortfalls();
    if shortfalls.is_empty() {
        writeln!(out, "all bars met")?;
        Ok(())
    } else {
        for s in &shortfalls {
            writeln!(out, "BELOW BAR: {s}")?;
        }
        bail!("{} bar(s) not met", shortfalls.len())
    }
}

/// The verdict of `drawbridge webhook verify`, and the exit code it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyVerdict {
    /// Exit 0.
    Valid,
    /// Exit 1.
    Invalid,
}

/// `drawbridge webhook verify --carrier NAME --secret S --request FILE [--at TIME]`: checks a
/// captured request and writes `valid` or `invalid`, then the scheme and exactly what was signed,
/// what was expected and what was received, so an operator can see a proxy's changes to the
/// scheme, host, port, path or query.
///
/// `at` is the time to check timestamps against (Telnyx allows ±5 minutes): Unix seconds or RFC
/// 3339; default now.
///
/// # Errors
/// Bad usage (an unknown carrier, an unreadable or malformed file, a bad time): exit 2.
pub fn webhook_verify(
    carrier: &str,
    secret: &secrecy::SecretString,
    file: &Path,
    at: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<VerifyVerdict> {
    let carrier = crate::carriers::Carrier::from_name(carrier).ok_or_else(|| {
        anyhow::anyhow!(
            "--carrier: `{carrier}` is not one of {}",
            crate::carriers::Carrier::names()
        )
    })?;
    let bytes = std::fs::read(file)
        .with_context(|| format!("--request: cannot read {}", file.display()))?;
    let request = crate::carriers::WebhookRequest::parse_capture(&bytes)
        .map_err(|e| anyhow::anyhow!("--request {}: {e}", file.display()))?;
    let now = match at {
        None => chrono::Utc::now(),
        Some(text) => parse_time(text).ok_or_else(|| {
            anyhow::anyhow!("--at: `{text}` is neither Unix seconds nor an RFC 3339 time")
        })?,
    };
    let verification = carrier.verify_with_secret(secret, &request, now);
    writeln!(
        out,
        "{}",
        if verification.valid {
            "valid"
        } else {
            "invalid"
        }
    )?;
    writeln!(out, "carrier:  {}", carrier.name())?;
    writeln!(out, "scheme:   {}", verification.scheme)?;
    writeln!(out, "request:  {} {}", request.method.as_str(), request.url)?;
    for line in &verification.details {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(if verification.valid {
        VerifyVerdict::Valid
    } else {
        VerifyVerdict::Invalid
    })
}

fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return chrono::DateTime::from_timestamp(seconds, 0);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// `drawbridge tokens create --role ROLE --name NAME`: creates an API token and returns it, the
/// only time it exists outside the caller; records the creation in the audit trail.
///
/// # Errors
/// An unknown role, a bad name, or the database or master key failing.
pub async fn tokens_create(
    settings: &crate::config::Settings,
    role: &str,
    name: &str,
) -> anyhow::Result<zeroize::Zeroizing<String>> {
    use crate::store::tokens::{self, Role};
    let role = Role::parse(role).ok_or_else(|| {
        anyhow::anyhow!("--role: `{role}` is not one of agent, supervisor, compliance, admin")
    })?;
    let name = name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        bail!("--name: 1 to 64 letters, digits, `-`, `_` or `.`");
    }
    // As `serve` does: the data directory holds the SQLite database and, in development, the
    // master key generated on first use.
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create data_dir {}: {e}",
            settings.data_dir.display()
        )
    })?;
    let db = crate::store::Db::connect_lazy(&settings.database_url())?;
    db.migrate().await?;
    let (vault, _) =
        crate::keys::open_vault(settings, &db, crate::audit::Actor::Cli(&operator_name())).await?;
    let mut tx = db.pool().begin().await?;
    let now = crate::store::now();
    let (id, token) = tokens::create(&mut tx, name, role, &now).await?;
    let operator = std::env::var("USER").unwrap_or_else(|_| "operator".to_owned());
    let operator: String = operator
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    crate::audit::append(
        &mut tx,
        vault.audit_key(),
        &crate::audit::Event::new(
            crate::audit::Actor::Cli(if operator.is_empty() {
                "operator"
            } else {
                &operator
            }),
            "token.create",
        )
        .subject("api_token", &id)
        .detail("role", role.as_str())
        .detail("name", name),
        &now,
    )
    .await
    .map_err(|e| anyhow::anyhow!("recording the token in the audit trail: {e}"))?;
    tx.commit().await?;
    db.close().await;
    Ok(token)
}

/// Opens the store as the command-line tools do: creates the data directory, loads the master
/// key, connects, migrates and checks the key against the database.
async fn open_store(
    settings: &crate::config::Settings,
) -> anyhow::Result<(crate::store::Db, crate::vault::Vault)> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create data_dir {}: {e}",
            settings.data_dir.display()
        )
    })?;
    let db = crate::store::Db::connect_lazy(&settings.database_url())?;
    db.migrate().await?;
    let (vault, _) =
        crate::keys::open_vault(settings, &db, crate::audit::Actor::Cli(&operator_name())).await?;
    Ok((db, vault))
}

/// The operator's name for the audit trail: `$USER`, reduced to safe characters.
pub fn operator_name() -> String {
    let operator: String = std::env::var("USER")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    if operator.is_empty() {
        "operator".to_owned()
    } else {
        operator
    }
}

/// `drawbridge users add --email E --role R`: creates a console user with `password` (checked
/// against the policy), or a generated one that must be changed at first sign-in; returns the
/// new user's id and the generated password, if one was generated. Records `user.create`.
///
/// # Errors
/// A bad address or role, a password the policy refuses, an address that already has an
/// account, or the database or master key failing.
pub async fn users_add(
    settings: &crate::config::Settings,
    email: &str,
    role: &str,
    password: Option<secrecy::SecretString>,
) -> anyhow::Result<(String, Option<secrecy::SecretString>)> {
    use crate::accounts::password as pw;
    use crate::store::tokens::Role;
    use crate::store::users::{self, NewUser};
    let role = Role::parse(role).ok_or_else(|| {
        anyhow::anyhow!("--role: `{role}` is not one of agent, supervisor, compliance, admin")
    })?;
    let email = email.trim().to_lowercase();
    if !email.contains('@')
        || email.starts_with('@')
        || email.len() > 254
        || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        bail!("--email: an e-mail address such as ana@example.com");
    }
    let (password, generated) = match password {
        Some(given) => {
            pw::check_policy(&given).map_err(|e| anyhow::anyhow!("the password: {e}"))?;
            (given, false)
        }
        None => (pw::generate(), true),
    };
    let hash = pw::hash(&password)?;
    let (db, vault) = open_store(settings).await?;
    let mut tx = db.pool().begin().await?;
    let now = crate::store::now();
    let Some(id) = users::create(
        &mut tx,
        &vault,
        &NewUser {
            email: &email,
            role,
            password_hash: Some(&hash),
            must_change_password: generated,
        },
        &now,
    )
    .await?
    else {
        tx.rollback().await.ok();
        db.close().await;
        bail!("--email: that address already has an account");
    };
    let operator = operator_name();
    crate::audit::append(
        &mut tx,
        vault.audit_key(),
        &crate::audit::Event::new(crate::audit::Actor::Cli(&operator), "user.create")
            .subject("user", &id)
            .detail("role", role.as_str()),
        &now,
    )
    .await
    .map_err(|e| anyhow::anyhow!("recording the user in the audit trail: {e}"))?;
    tx.commit().await?;
    db.close().await;
    Ok((id, generated.then_some(password)))
}

/// One line of `drawbridge users list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLine {
    pub id: String,
    pub email: String,
    pub role: &'static str,
    /// `on`, `required` (not yet enrolled) or `off`.
    pub two_factor: &'static str,
    pub sso_linked: bool,
    pub disabled: bool,
}

/// `drawbridge users list`: every console user, oldest first (never a password hash).
///
/// # Errors
/// The database or master key failing.
pub async fn users_list(settings: &crate::config::Settings) -> anyhow::Result<Vec<UserLine>> {
    let (db, vault) = open_store(settings).await?;
    let mut conn = db.pool().acquire().await?;
    let list = crate::store::users::list(&mut conn, &vault).await?;
    drop(conn);
    db.close().await;
    Ok(list
        .into_iter()
        .map(|u| UserLine {
            two_factor: if u.totp_enrolled {
                "on"
            } else if u.totp_required {
                "required"
            } else {
                "off"
            },
            role: u.role.as_str(),
            sso_linked: u.sso_linked,
            disabled: u.disabled,
            email: u.email,
            id: u.id,
        })
        .collect())
}

/// `drawbridge retention run`: runs the retention job once (as the background job does) and
/// returns what it removed. Recorded in `retention_run` and, when it removed anything, in the
/// audit trail with the operator as the actor.
///
/// # Errors
/// The database or master key failing.
pub async fn retention_run(
    settings: &crate::config::Settings,
) -> anyhow::Result<crate::retention::RunReport> {
    let (db, vault) = open_store(settings).await?;
    let operator = operator_name();
    let report = crate::retention::run(
        &db,
        &vault,
        &crate::clock::Clock::system(),
        &settings.retention,
        crate::retention::Trigger::Cli,
        crate::audit::Actor::Cli(&operator),
    )
    .await;
    db.close().await;
    Ok(report?)
}

/// `drawbridge export --phone N [--out DIR]`: writes `export.json` and `export.html` about the
/// number into `out` (created; refused if it already holds an export), with a progress bar on a
/// terminal. Returns the number of messages exported. Audited as `subject.export`.
///
/// # Errors
/// A malformed number, a number no contact has, an existing export in `out`, the database.
pub async fn export(
    settings: &crate::config::Settings,
    phone: &str,
    out: &std::path::Path,
) -> anyhow::Result<usize> {
    let phone = crate::phone::E164::parse(phone)
        .map_err(|_| anyhow::anyhow!("--phone: not an E.164 number such as +14155550123"))?;
    for name in ["export.json", "export.html"] {
        if out.join(name).exists() {
            bail!(
                "{} already exists: choose another --out directory",
                out.join(name).display()
            );
        }
    }
    let (db, vault) = open_store(settings).await?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} messages")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("exporting");
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let operator = operator_name();
    let result = crate::subject::export(
        &db,
        &vault,
        &phone,
        crate::audit::Actor::Cli(&operator),
        &crate::store::now(),
        &progress,
    )
    .await;
    db.close().await;
    bar.finish_and_clear();
    let bundle = result.map_err(|e| match e {
        crate::subject::SubjectError::NotFound => anyhow::anyhow!("no contact has that number"),
        other => anyhow::anyhow!("export failed: {other}"),
    })?;
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    write_private(&out.join("export.json"), bundle.to_json().as_bytes())?;
    write_private(&out.join("export.html"), bundle.to_html().as_bytes())?;
    Ok(bundle.message_count())
}

/// Writes a file only its owner can read (it holds personal data).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// `drawbridge erase --phone N`: erases the contact (see [`crate::subject`]). The caller has
/// already confirmed. Returns the contact id and what was removed.
///
/// # Errors
/// A malformed number, a number no contact has, a legal hold (the message says so), the database.
pub async fn erase(
    settings: &crate::config::Settings,
    phone: &str,
) -> anyhow::Result<crate::subject::Erasure> {
    let phone = crate::phone::E164::parse(phone)
        .map_err(|_| anyhow::anyhow!("--phone: not an E.164 number such as +14155550123"))?;
    let (db, vault) = open_store(settings).await?;
    let operator = operator_name();
    let result = crate::subject::erase(
        &db,
        &vault,
        &phone,
        crate::audit::Actor::Cli(&operator),
        &crate::store::now(),
    )
    .await;
    db.close().await;
    result.map_err(|e| match e {
        crate::subject::SubjectError::NotFound => anyhow::anyhow!("no contact has that number"),
        crate::subject::SubjectError::Held => anyhow::anyhow!(
            "refused: a legal hold covers this contact; release it (compliance console, \
             /compliance/holds) before erasing"
        ),
        other => anyhow::anyhow!("erasure failed: {other}"),
    })
}
