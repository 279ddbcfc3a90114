//! The `drawbridge` command line: `serve`, `migrate`, `simulate`, `webhook verify`, `audit`,
//! `tokens`, `users`, `redact`, `rules`, `retention run`, `export`, `erase`.

use clap::{Parser, Subcommand};
use drawbridge::config::{Mode, Settings};
use drawbridge::startup::{Application, ServerOptions};
use drawbridge::store::Db;
use drawbridge::vault::MasterKeyOrigin;
use secrecy::SecretString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "drawbridge",
    version,
    about = "Two-way SMS/RCS bridge that redacts before it stores"
)]
struct Cli {
    /// Configuration file (default: ./drawbridge.toml when present). See drawbridge.example.toml.
    #[arg(long, global = true, env = "DRAWBRIDGE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations, load keys and serve HTTP until SIGINT/SIGTERM.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Simulate carriers: signed webhooks to the running service, or a fake carrier API.
    #[command(subcommand)]
    Simulate(Simulate),
    /// Carrier webhooks.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// The hash-chained audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// API bearer tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Console users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Redact text: stdin to stdout, or JSON lines with --jsonl.
    Redact {
        /// Read lines {"id": …, "text": …}; write {"id", "redacted", "findings", "topics", "escalate"} per line.
        #[arg(long)]
        jsonl: bool,
        /// A directory of rule packs (default: rules_dir from the configuration, else the built-in packs).
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Validate and measure redaction rule packs.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Retention: remove what outlived its period (see [retention] in the configuration).
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Data subject access: write everything held about a number (export.json, export.html).
    Export {
        /// The number, E.164 (+14155550123).
        #[arg(long)]
        phone: String,
        /// The directory to write into (created; default: ./export-<time>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Data subject erasure: destroy a number's data key and delete its content, keeping its
    /// consent records. Asks for confirmation unless --yes; refused under a legal hold.
    Erase {
        /// The number, E.164 (+14155550123).
        #[arg(long)]
        phone: String,
        /// Do not ask for confirmation (required without a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Master key versions: status, rotation, new key files.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Run the retention job once and print what it removed.
    Run,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Master key versions, data keys per version, purpose key version, rotation in progress.
    /// Prints no key material.
    Status,
    /// Re-wraps every contact's data key under the configured (newest) master key version and
    /// retires the older version once nothing uses it. Resumable: run it again after an
    /// interruption and it continues where it stopped.
    Rotate {
        /// Contacts per transaction.
        #[arg(long, default_value_t = drawbridge::keys::DEFAULT_BATCH)]
        batch: u32,
        /// Stop after this many committed batches (the next run continues).
        #[arg(long)]
        max_batches: Option<u64>,
    },
    /// Rotates the blind-index keys (phone, e-mail, sign-on subject): adds a generation of fresh
    /// keys and re-keys every stored index to it while the service runs. Resumable: run it again
    /// after an interruption and it continues where it stopped.
    Reindex {
        /// Contacts per transaction.
        #[arg(long, default_value_t = drawbridge::keys::DEFAULT_BATCH)]
        batch: u32,
        /// Stop after this many committed batches (the next run continues).
        #[arg(long)]
        max_batches: Option<u64>,
    },
    /// Writes a new random master key (base64, mode 0600) to FILE, which must not exist.
    Generate { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Compile every rule and run its examples; non-zero exit and a report on failure.
    Check {
        /// A directory of packs (default: the built-in packs).
        dir: Option<PathBuf>,
    },
    /// Measure the rules against a labeled JSONL corpus (format: shared/corpus/README.md).
    Score {
        corpus: PathBuf,
        /// A directory of packs (default: the built-in packs).
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        /// Also list every message with a leak, a lost decoy, an extra finding or a wrong decision.
        #[arg(long)]
        problems: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Simulate {
    /// An inbound message, shaped and signed as the carrier of the account owning --to sends it.
    Inbound {
        /// The carrier to speak as (default: the carrier of the account owning --to).
        #[arg(long)]
        carrier: Option<String>,
        /// The customer's number, E.164.
        #[arg(long)]
        from: String,
        /// The business number, short code or `rcs:AGENT` (the development sandbox answers on
        /// +15550001111).
        #[arg(long)]
        to: String,
        /// The message text.
        #[arg(long, default_value = "")]
        body: String,
        /// A media URL (MMS/RCS); repeat for several.
        #[arg(long = "media", value_name = "URL")]
        media: Vec<String>,
        /// The carrier's message id (default: a fresh one). Repeat one to simulate a retry.
        #[arg(long)]
        message_id: Option<String>,
        /// The carrier's private signing key where only the carrier holds one (Telnyx: base64 of
        /// the Ed25519 seed).
        #[arg(long, env = "DRAWBRIDGE_SIMULATE_SIGNING_KEY", hide_env_values = true)]
        signing_key: Option<String>,
    },
    /// A delivery status callback for a message the service sent.
    Status {
        #[arg(long)]
        carrier: Option<String>,
        /// Our sender of the message (number, short code or `rcs:AGENT`).
        #[arg(long)]
        from: String,
        /// The customer the message went to, E.164.
        #[arg(long)]
        to: String,
        /// The carrier's id of the message.
        #[arg(long)]
        message_id: String,
        /// The carrier's own status word, e.g. `delivered` (Twilio), `message-failed` (Bandwidth).
        #[arg(long)]
        status: String,
        /// The carrier's error code, if any.
        #[arg(long)]
        error_code: Option<String>,
        #[arg(long, env = "DRAWBRIDGE_SIMULATE_SIGNING_KEY", hide_env_values = true)]
        signing_key: Option<String>,
    },
    /// A fake carrier: every supported carrier's send API on one port, recording each request
    /// (GET /_sent) and failing on demand (POST /_fail).
    Carrier {
        /// Address to listen on, e.g. 127.0.0.1:9090.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the audit chain: exit 0 when intact, 1 naming the first bad event, 2 when it cannot be
    /// checked (no key, the wrong key, no database).
    Verify {
        /// An anchor written earlier by `audit anchor` and kept outside the database: also check
        /// that the trail still holds its head (exit 1 when it was rolled back past it).
        #[arg(long)]
        anchor: Option<PathBuf>,
    },
    /// Delete audit events older than the retention, leaving a signed checkpoint from which the
    /// rest still verifies (refused when the trail is broken).
    Prune {
        /// Delete events before this RFC 3339 time (default: seven years ago).
        #[arg(long)]
        before: Option<String>,
    },
    /// Print the signed head and checkpoint (JSON) to keep outside the database.
    Anchor,
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// Create an API token and print it once (only its SHA-256 is stored).
    Create {
        /// agent, supervisor, compliance or admin.
        #[arg(long)]
        role: String,
        /// What the token is for, e.g. `crm`.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Add a console user. The password is read from stdin (one line); with --generate, or when
    /// stdin is a terminal or empty, one is generated, printed once, and must be changed at first
    /// sign-in.
    Add {
        /// The user's e-mail address (their sign-in name).
        #[arg(long)]
        email: String,
        /// agent, supervisor, compliance or admin.
        #[arg(long)]
        role: String,
        /// Generate the password instead of reading it from stdin.
        #[arg(long)]
        generate: bool,
    },
    /// List console users (never a password hash).
    List,
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Explain whether a captured webhook request is authentic. Exit 0 "valid", 1 "invalid", 2 bad
    /// usage. FILE: a first line `METHOD absolute-URL`, `Name: value` header lines, a blank
    /// line, the raw body.
    Verify {
        /// twilio, telnyx, vonage, bandwidth, plivo, sinch or rbm.
        #[arg(long)]
        carrier: String,
        /// The verifying secret: the Twilio or Plivo auth token, the Telnyx public key (base64),
        /// the Vonage signature secret, Bandwidth `user:password`, the Sinch secret, the RBM
        /// client token.
        #[arg(long, env = "DRAWBRIDGE_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// The captured request.
        #[arg(long, value_name = "FILE")]
        request: PathBuf,
        /// Check timestamps as of this time (Unix seconds or RFC 3339) instead of now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that need no configuration run without reading it.
    match cli.command {
        Command::Webhook(WebhookCommand::Verify {
            carrier,
            secret,
            request,
            at,
        }) => return webhook_verify(&carrier, secret, &request, at.as_deref()),
        Command::Simulate(Simulate::Carrier { listen }) => return fake_carrier(listen),
        Command::Keys(KeysCommand::Generate { file }) => {
            return match drawbridge::vault::generate_key_file(&file) {
                Ok(()) => {
                    eprintln!(
                        "wrote a new master key to {} (mode 0600); back it up before using it",
                        file.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: cannot write {}: {error}", file.display());
                    ExitCode::FAILURE
                }
            }
        }
        _ => {}
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    drawbridge::telemetry::init(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(&settings).await,
            Command::Simulate(Simulate::Inbound {
                carrier,
                from,
                to,
                body,
                media,
                message_id,
                signing_key,
            }) => {
                let args = drawbridge::simulate::InboundArgs {
                    carrier,
                    from,
                    to,
                    body,
                    media,
                    message_id,
                    signing_key: signing_key.map(SecretString::from),
                };
                simulate_inbound(settings, &args).await
            }
            Command::Simulate(Simulate::Status {
                carrier,
                from,
                to,
                message_id,
                status,
                error_code,
                signing_key,
            }) => {
                let args = drawbridge::simulate::StatusArgs {
                    carrier,
                    from,
                    to,
                    message_id,
                    status,
                    error_code,
                    signing_key: signing_key.map(SecretString::from),
                };
                simulate_status(settings, &args).await
            }
            Command::Simulate(Simulate::Carrier { .. })
            | Command::Webhook(_)
            | Command::Keys(KeysCommand::Generate { .. }) => Ok(()),
            Command::Keys(KeysCommand::Status) => {
                drawbridge::keys::status_command(&settings, &mut std::io::stdout().lock()).await
            }
            Command::Keys(KeysCommand::Rotate { batch, max_batches }) => {
                let options = drawbridge::keys::RotateOptions {
                    batch,
                    max_batches,
                    progress: true,
                };
                drawbridge::keys::rotate_command(
                    &settings,
                    &options,
                    &drawbridge::cli::operator_name(),
                    &mut std::io::stdout().lock(),
                )
                .await
                .map(|_| ())
            }
            Command::Keys(KeysCommand::Reindex { batch, max_batches }) => {
                let options = drawbridge::keys::index::ReindexOptions {
                    batch,
                    max_batches,
                    progress: true,
                };
                drawbridge::keys::index::reindex_command(
                    &settings,
                    &options,
                    &drawbridge::cli::operator_name(),
                    &mut std::io::stdout().lock(),
                )
                .await
                .map(|_| ())
            }
            Command::Audit(AuditCommand::Verify { anchor }) => {
                audit_verify(&settings, anchor.as_deref()).await
            }
            Command::Audit(AuditCommand::Prune { before }) => {
                drawbridge::audit::cli::prune_command(
                    &settings,
                    before.as_deref(),
                    &mut std::io::stdout().lock(),
                )
                .await
            }
            Command::Audit(AuditCommand::Anchor) => {
                drawbridge::audit::cli::anchor_command(&settings, &mut std::io::stdout().lock())
                    .await
            }
            Command::Tokens(TokensCommand::Create { role, name }) => {
                tokens_create(&settings, &role, &name).await
            }
            Command::Users(UsersCommand::Add {
                email,
                role,
                generate,
            }) => users_add(&settings, &email, &role, generate).await,
            Command::Users(UsersCommand::List) => users_list(&settings).await,
            Command::Redact { jsonl, rules } => {
                drawbridge::cli::redact(rules.as_deref().or(settings.rules_dir.as_deref()), jsonl)
            }
            Command::Rules(RulesCommand::Check { dir }) => {
                drawbridge::cli::rules_check(dir.as_deref())
            }
            Command::Rules(RulesCommand::Score {
                corpus,
                rules,
                problems,
            }) => drawbridge::cli::rules_score(&corpus, rules.as_deref(), problems),
            Command::Retention(RetentionCommand::Run) => retention_run(&settings).await,
            Command::Export { phone, out } => export(&settings, &phone, out).await,
            Command::Erase { phone, yes } => erase(&settings, &phone, yes).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.downcast_ref::<Broken>().is_some() => ExitCode::from(1),
        Err(error) if error.downcast_ref::<CannotCheck>().is_some() => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(mut settings: Settings) -> anyhow::Result<()> {
    let sandbox = settings.add_development_sandbox()?;
    let app = Application::build(&settings, ServerOptions::default()).await?;
    match app.master_key_origin() {
        MasterKeyOrigin::Generated(path) => eprintln!(
            "\n*** Development mode: generated a new master key in {} (mode 0600).\n\
             *** Everything stored is sealed under it: back it up, and never use this key in production.\n",
            path.display()
        ),
        MasterKeyOrigin::DevelopmentFile(path) => eprintln!("Development mode: using the master key in {}", path.display()),
        MasterKeyOrigin::Inline | MasterKeyOrigin::File(_) => {}
    }
    if let Some(number) = sandbox {
        eprintln!(
            "Development sandbox: Twilio number {} is configured (auth token in {}).\n\
             Try: cargo run --release -- simulate inbound --from +15551234567 --to {} --body \"hello\"",
            number,
            settings.data_dir.join(drawbridge::config::SANDBOX_TOKEN_FILE).display(),
            number
        );
    }
    if settings.mode == Mode::Development {
        eprintln!("Mode: development. Set mode = \"production\" for real traffic.");
    }
    if let Some((email, password)) = app.first_admin() {
        // Printed once, here, and never logged.
        eprintln!(
            "\nfirst admin: {email}, one-time password: {} (must be changed at first sign-in)\n",
            secrecy::ExposeSecret::expose_secret(password)
        );
    }
    let url = app.public_url().to_owned();
    tracing::info!(port = app.port(), public_url = %url, "drawbridge listening; carrier webhooks at {url}/webhooks/{{carrier}}");
    app.run_until_stopped().await?;
    tracing::info!("drawbridge stopped");
    Ok(())
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)?;
    }
    let db = Db::connect_lazy(&settings.database_url())?;
    db.migrate().await?;
    db.close().await;
    eprintln!("migrations applied ({})", db.backend().name());
    Ok(())
}

async fn simulate_inbound(
    mut settings: Settings,
    args: &drawbridge::simulate::InboundArgs,
) -> anyhow::Result<()> {
    settings.add_development_sandbox()?;
    report(drawbridge::simulate::inbound(&settings, args).await?)
}

async fn simulate_status(
    mut settings: Settings,
    args: &drawbridge::simulate::StatusArgs,
) -> anyhow::Result<()> {
    settings.add_development_sandbox()?;
    report(drawbridge::simulate::status(&settings, args).await?)
}

/// Exit code 1 for a broken chain (the error path exits 2).
#[derive(Debug)]
struct Broken;

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the audit trail is broken")
    }
}

impl std::error::Error for Broken {}

async fn audit_verify(settings: &Settings, anchor: Option<&std::path::Path>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let intact = drawbridge::audit::cli::verify_command(settings, anchor, &mut out)
        .await
        .map_err(|e| e.context(CannotCheck))?;
    if intact {
        Ok(())
    } else {
        Err(Broken.into())
    }
}

/// Marks an audit check that could not run (exit 2).
#[derive(Debug)]
struct CannotCheck;

impl std::fmt::Display for CannotCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the audit trail could not be checked")
    }
}

async fn retention_run(settings: &Settings) -> anyhow::Result<()> {
    let report = drawbridge::cli::retention_run(settings).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "retention run {}", report.run_id)?;
    for (class, n) in &report.counts {
        writeln!(out, "{class}\t{n}")?;
    }
    Ok(())
}

async fn export(settings: &Settings, phone: &str, out: Option<PathBuf>) -> anyhow::Result<()> {
    let out = out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "export-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    });
    let messages = drawbridge::cli::export(settings, phone, &out).await?;
    writeln!(
        std::io::stdout().lock(),
        "exported {messages} messages to {}",
        out.display()
    )?;
    Ok(())
}

/// Asks on the terminal; without one, refuses (an unattended erase needs --yes).
fn confirm_erase() -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!("refusing to erase without confirmation: no terminal to ask on; pass --yes");
    }
    eprint!(
        "This destroys the contact's data key and deletes its messages for good (consent records \
         are kept). Type ERASE to continue: "
    );
    std::io::stderr().flush().ok();
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim() == "ERASE")
}

async fn erase(settings: &Settings, phone: &str, yes: bool) -> anyhow::Result<()> {
    if drawbridge::phone::E164::parse(phone).is_err() {
        anyhow::bail!("--phone: not an E.164 number such as +14155550123");
    }
    if !yes && !confirm_erase()? {
        anyhow::bail!("not erased: confirmation not given");
    }
    let erasure = drawbridge::cli::erase(settings, phone).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "erased contact {}", erasure.contact_id)?;
    for (name, n) in &erasure.counts {
        writeln!(out, "{name}\t{n}")?;
    }
    Ok(())
}

async fn tokens_create(settings: &Settings, role: &str, name: &str) -> anyhow::Result<()> {
    let token = drawbridge::cli::tokens_create(settings, role, name).await?;
    writeln!(std::io::stdout().lock(), "{}", token.as_str())?;
    eprintln!("This token is shown once; only its hash is stored. Keep it like a password.");
    Ok(())
}

/// Reads the new user's password: one line of stdin, unless `--generate` or stdin is a terminal
/// (or empty), in which case `None` (generate one).
fn password_from_stdin(generate: bool) -> anyhow::Result<Option<SecretString>> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if generate || stdin.is_terminal() {
        return Ok(None);
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    Ok((!password.is_empty()).then(|| SecretString::from(password.to_owned())))
}

async fn users_add(
    settings: &Settings,
    email: &str,
    role: &str,
    generate: bool,
) -> anyhow::Result<()> {
    let password = password_from_stdin(generate)?;
    let (id, generated) = drawbridge::cli::users_add(settings, email, role, password).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "user {id} added")?;
    if let Some(password) = generated {
        writeln!(
            out,
            "one-time password: {}",
            secrecy::ExposeSecret::expose_secret(&password)
        )?;
        eprintln!("This password is shown once and must be changed at first sign-in.");
    }
    Ok(())
}

async fn users_list(settings: &Settings) -> anyhow::Result<()> {
    let users = drawbridge::cli::users_list(settings).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "id\temail\trole\ttwo_factor\tsso\tstatus")?;
    for user in users {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            user.id,
            user.email,
            user.role,
            user.two_factor,
            if user.sso_linked { "linked" } else { "-" },
            if user.disabled { "disabled" } else { "active" }
        )?;
    }
    Ok(())
}

fn report(outcome: drawbridge::simulate::SimulateOutcome) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} {} -> HTTP {}",
        outcome.method, outcome.url, outcome.status
    )?;
    if !outcome.status.is_success() {
        writeln!(out, "{}", outcome.body)?;
        anyhow::bail!("the service refused the webhook");
    }
    Ok(())
}

/// `webhook verify`: exit 0 valid, 1 invalid, 2 bad usage.
fn webhook_verify(carrier: &str, secret: String, request: &Path, at: Option<&str>) -> ExitCode {
    let secret = SecretString::from(secret);
    let mut out = std::io::stdout().lock();
    match drawbridge::cli::webhook_verify(carrier, &secret, request, at, &mut out) {
        Ok(drawbridge::cli::VerifyVerdict::Valid) => ExitCode::SUCCESS,
        Ok(drawbridge::cli::VerifyVerdict::Invalid) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// `simulate carrier`: the fake carrier API, until SIGINT/SIGTERM.
fn fake_carrier(listen: std::net::SocketAddr) -> ExitCode {
    drawbridge::telemetry::init(drawbridge::config::LogFormat::Text);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(drawbridge::simulate::fake::run(listen)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
