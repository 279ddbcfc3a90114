//! The `drawbridge` command line: `serve`, `migrate`, `simulate inbound`.

use clap::{Parser, Subcommand};
use drawbridge::config::{Mode, Settings};
use drawbridge::startup::{Application, ServerOptions};
use drawbridge::store::Db;
use drawbridge::vault::MasterKeyOrigin;
use std::io::Write;
use std::path::PathBuf;
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
    /// Send the running service a test webhook.
    #[command(subcommand)]
    Simulate(Simulate),
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
    /// A Twilio inbound message, signed with the auth token of the account owning --to.
    Inbound {
        /// The customer's number, E.164.
        #[arg(long)]
        from: String,
        /// The business number, E.164 (the development sandbox answers on +15550001111).
        #[arg(long)]
        to: String,
        /// The message text.
        #[arg(long)]
        body: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            Command::Simulate(Simulate::Inbound { from, to, body }) => {
                simulate(settings, &from, &to, &body).await
            }
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
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
            number.as_str(),
            settings.data_dir.join(drawbridge::config::SANDBOX_TOKEN_FILE).display(),
            number.as_str()
        );
    }
    if settings.mode == Mode::Development {
        eprintln!("Mode: development. Set mode = \"production\" for real traffic.");
    }
    let url = app.public_url().to_owned();
    tracing::info!(port = app.port(), public_url = %url, "drawbridge listening; Twilio webhooks at {url}/webhooks/twilio");
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

async fn simulate(mut settings: Settings, from: &str, to: &str, body: &str) -> anyhow::Result<()> {
    settings.add_development_sandbox()?;
    let outcome = drawbridge::simulate::inbound(&settings, from, to, body).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "POST {} -> HTTP {}", outcome.url, outcome.status)?;
    if !outcome.status.is_success() {
        writeln!(out, "{}", outcome.body)?;
        anyhow::bail!("the service refused the webhook");
    }
    Ok(())
}
