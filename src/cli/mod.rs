//! The `vigil` command line: the commands and their arguments, and what they share (exit
//! codes, text-or-JSON output). One file per command group does the work.
//!
//! Exit codes: 0 success, 1 findings or failures (invalid rules, quarantined input),
//! 2 usage or environment errors.

mod alerts;
mod audit;
mod ingest;
pub mod logging;
mod notifications;
mod reload;
mod report;
mod rules;
mod run;
mod selftest;
mod users;
mod validation;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vigil::config::Config;
use vigil::store::Store;

/// `vigil --version`: the version, the commit and the build features, so that a validation
/// record can name exactly what runs. A packaging build sets `VIGIL_BUILD_COMMIT`
/// (`VIGIL_BUILD_COMMIT=$(git rev-parse --short=12 HEAD) cargo build --release --features pdf`).
fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        format!(
            "{} (commit {}, {}, pdf reports {})",
            env!("CARGO_PKG_VERSION"),
            option_env!("VIGIL_BUILD_COMMIT").unwrap_or("unknown"),
            if cfg!(debug_assertions) { "debug build" } else { "release build" },
            if cfg!(feature = "pdf") { "on" } else { "off" },
        )
    })
}

#[derive(Parser)]
#[command(name = "vigil", version = version(), about = "Safety and adverse-event monitoring for clinical trials")]
pub struct Cli {
    /// Log as JSON lines (for log collectors) instead of text.
    #[arg(long, global = true, env = "VIGIL_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon: watch the inbox, evaluate rules, send alert emails.
    Run {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
    },
    /// Validate the configuration and rule files; exit 1 on any error.
    Check {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: Option<PathBuf>,
        /// Rule files or folders (default: those of the config, else ./rules).
        rules: Vec<PathBuf>,
    },
    /// Run rule tests (`*.test.yaml`): records on a timeline and the alerts expected.
    Test {
        /// Test files or folders.
        #[arg(required = true)]
        tests: Vec<PathBuf>,
    },
    /// Ingest files once: store, evaluate, queue alert emails (and send them with --deliver).
    Ingest {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        /// Also try to send the queued emails once before exiting.
        #[arg(long)]
        deliver: bool,
        /// The input format (default: guessed — a folder is SDTM, .csv the native CSV
        /// variant, JSON with a resourceType FHIR, anything else native JSON/NDJSON).
        #[arg(long, value_enum)]
        format: Option<vigil::ingest::Format>,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Re-evaluate stored history with the current (or another) rule set, send nothing,
    /// and show which alerts would appear or vanish compared with what fired.
    Replay {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        /// Start of the period (alerts raised from then on are compared).
        #[arg(long)]
        from: Option<String>,
        /// End of the period: records up to then are evaluated as of then (default now).
        #[arg(long)]
        to: Option<String>,
        /// Rule files or folders to try instead of the configured ones.
        #[arg(long)]
        rules: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
    },
    /// Write reports.
    Report {
        #[command(subcommand)]
        report: report::ReportCommand,
    },
    /// Look at alerts.
    Alerts {
        #[command(subcommand)]
        alerts: alerts::AlertsCommand,
    },
    /// Apply the database migrations the database lacks (a deployment step when
    /// `migrate_at_start: false`; safe to run while replicas start: PostgreSQL serializes it).
    Migrate {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
    },
    /// The database itself.
    Store {
        #[command(subcommand)]
        store: StoreCommand,
    },
    /// Ask the running daemon to reload its configuration, rules and templates (through
    /// its API, with VIGIL_API_TOKEN); prints the files now in force or every problem.
    Reload {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
    },
    /// Emails: resend one that failed.
    Notifications {
        #[command(subcommand)]
        notifications: notifications::NotificationsCommand,
    },
    /// People who act in vigil: add, list, disable, change a password, unlock.
    Users {
        #[command(subcommand)]
        users: users::UsersCommand,
    },
    /// People's API tokens: add (printed once), list, revoke.
    Tokens {
        #[command(subcommand)]
        tokens: users::TokensCommand,
    },
    /// The audit trail: verify its hash chain, export it, show its head.
    Audit {
        #[command(subcommand)]
        audit: audit::AuditCommand,
    },
    /// Write the HTML validation report: requirements (docs/requirements.yaml) against a
    /// captured `cargo test` output, with hashes of the build and the rule pack.
    ValidationReport(validation::ReportArgs),
    /// Installation/operational qualification: config, rules, rule tests, database, mail
    /// server; prints a dated PASS/FAIL per check; exit 1 on a failure.
    Selftest {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy a trial's database into a new, empty one (SQLite to PostgreSQL, say), every
    /// row with its ids, and check each table's count and content hash on both sides.
    /// Stop the daemon first. A PostgreSQL password comes from PGPASSWORD, not the URL.
    Copy {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
}

/// How a listing is printed: for people, or as JSON for programs.
#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Prints `value` as pretty JSON, or runs `text` to print it for people. The one place
/// every `--format text|json` goes through.
pub fn print<T: serde::Serialize + ?Sized>(
    output: Output,
    value: &T,
    text: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match output {
        Output::Json => {
            println!("{}", serde_json::to_string_pretty(value)?);
            Ok(())
        }
        Output::Text => text(),
    }
}

/// Prints a listing: one line per row for people (`empty`, if given, when there are no
/// rows), or the rows as JSON.
pub fn print_rows<T: serde::Serialize>(
    output: Output,
    rows: &[T],
    empty: Option<&str>,
    line: impl Fn(&T) -> String,
) -> anyhow::Result<ExitCode> {
    print(output, rows, || {
        for row in rows {
            println!("{}", line(row));
        }
        if let (true, Some(empty)) = (rows.is_empty(), empty) {
            println!("{empty}");
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// An error that is the input's fault (exit 1) rather than the environment's (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Findings(pub String);

/// Runs one command; the error decides the exit code (see [`Findings`]).
pub async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => run::run(&config).await,
        Command::Check { config, rules } => rules::check(config.as_deref(), rules),
        Command::Test { tests } => rules::test(&tests),
        Command::Ingest { config, deliver, format, inputs } => {
            ingest::ingest(&config, deliver, format, &inputs).await
        }
        Command::Replay { config, from, to, rules, format } => {
            rules::replay(&config, from.as_deref(), to.as_deref(), &rules, format).await
        }
        Command::Report { report } => report::run(report).await,
        Command::Alerts { alerts } => alerts::run(alerts).await,
        Command::Notifications { notifications } => notifications::run(notifications).await,
        Command::Reload { config } => reload::run(&config).await,
        Command::Users { users } => users::users(users).await,
        Command::Tokens { tokens } => users::tokens(tokens).await,
        Command::Audit { audit } => audit::run(audit).await,
        Command::ValidationReport(args) => validation::run(args),
        Command::Selftest { config } => selftest::run(&config).await,
        Command::Store { store: StoreCommand::Copy { from, to } } => {
            let copied = vigil::store::copy::copy(&from, &to).await?;
            for t in &copied {
                println!("{:<24} {:>9} rows  sha256 {}", t.table, t.rows, t.sha256);
            }
            let rows: usize = copied.iter().map(|t| t.rows).sum();
            println!("copied and verified: {} tables, {rows} rows", copied.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { config } => {
            let config = Config::load(&config)?;
            let applied = vigil::store::Store::migrate(&config.database_url).await?;
            if applied.is_empty() {
                println!("the database is up to date");
            }
            for m in applied {
                println!("applied {m}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The store named by a configuration file.
async fn open_store(config: &Path) -> anyhow::Result<Store> {
    let config = Config::load(config)?;
    Ok(Store::connect(&config.database_url).await?.with_zones(config.study.zones))
}

/// `--as-of` / `--from` / `--to`: a date means the end of that day in the study's zone
/// (as are the records' dates); none means now.
fn parse_as_of(s: Option<&str>, zone: chrono_tz::Tz) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    match s {
        None => Ok(chrono::Utc::now()),
        Some(s) => {
            let t =
                vigil::model::ClinicalTime::parse_in(s, zone).map_err(|e| anyhow::anyhow!("--as-of: {e}"))?;
            Ok(t.latest())
        }
    }
}
