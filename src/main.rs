//! The `vigil` command line. Exit codes: 0 success, 1 findings or failures (invalid
//! rules, quarantined input), 2 usage or environment errors.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vigil::config::Config;
use vigil::store::Store;

#[derive(Parser)]
#[command(name = "vigil", version, about = "Safety and adverse-event monitoring for clinical trials")]
struct Cli {
    /// Log as JSON lines (for log collectors) instead of text.
    #[arg(long, global = true, env = "VIGIL_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        format: Format,
    },
    /// Write reports.
    Report {
        #[command(subcommand)]
        report: ReportCommand,
    },
    /// Look at alerts.
    Alerts {
        #[command(subcommand)]
        alerts: AlertsCommand,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// The DSMB report from a frozen data cut (archived; see `report list`).
    Dsmb {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Data cut-off (YYYY-MM-DD = the end of that day, or RFC 3339); default now.
        #[arg(long)]
        as_of: Option<String>,
        /// The closed report (by arm), for unblinded DSMB members only.
        #[arg(long)]
        closed: bool,
        /// Email it to the report recipients (`report.recipients`) now.
        #[arg(long)]
        email: bool,
    },
    /// The archive of generated reports, with their SHA-256.
    List {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// Every alert, oldest first.
    List {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// One alert with its explanation: the records, baseline, threshold and rule version.
    Show {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        id: i64,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Acknowledge an alert: you have it; its escalation stops.
    Ack {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        id: i64,
        /// Who acknowledges (recorded in the alert's history).
        #[arg(long)]
        by: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Resolve an alert.
    Resolve {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        id: i64,
        #[arg(long)]
        by: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Silence alerts matching a rule, subject and/or site until the silence expires.
    Silence {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        rule: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        #[arg(long)]
        site: Option<String>,
        /// How long, e.g. 4h, 2d.
        #[arg(long = "for")]
        duration: String,
        #[arg(long)]
        by: String,
        /// Why (required: a silence must be explained).
        #[arg(long)]
        comment: String,
    },
    /// The silences, active and ended.
    Silences {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Who would receive an alert of this rule (and its escalation chain).
    Route {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        rule: String,
        /// Default: the rule's severity.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long)]
        site: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// An error that is the input's fault (exit 1) rather than the environment's (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Findings(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vigil: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<Findings>().is_some() => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("vigil: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => {
            let config = Config::load(&config)?;
            let app = vigil::daemon::App::build(config).await?;
            app.run_until_stopped(shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, rules } => check(config.as_deref(), rules),
        Command::Test { tests } => {
            let outcome = vigil::rules::testing::run(&tests);
            for line in &outcome.report {
                println!("{line}");
            }
            println!("{} passed, {} failed", outcome.passed, outcome.failed);
            if outcome.failed > 0 {
                return Err(Findings(format!("{} rule tests failed", outcome.failed)).into());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { config, deliver, format, inputs } => {
            ingest(&config, deliver, format, &inputs).await
        }
        Command::Replay { config, from, to, rules, format } => {
            replay(&config, from.as_deref(), to.as_deref(), &rules, format).await
        }
        Command::Report { report: ReportCommand::Dsmb { config, out, as_of, closed, email } } => {
            report_dsmb(&config, out, as_of.as_deref(), closed, email).await
        }
        Command::Report { report: ReportCommand::List { config, format } } => {
            report_list(&config, format).await
        }
        Command::Alerts { alerts: AlertsCommand::List { config, format } } => {
            alerts_list(&config, format).await
        }
        Command::Alerts { alerts: AlertsCommand::Show { config, id, format } } => {
            alerts_show(&config, id, format).await
        }
        Command::Alerts { alerts: AlertsCommand::Ack { config, id, by, comment } } => {
            alerts_transition(&config, id, vigil::alerts::Transition::Acknowledge, &by, comment.as_deref())
                .await
        }
        Command::Alerts { alerts: AlertsCommand::Resolve { config, id, by, comment } } => {
            alerts_transition(&config, id, vigil::alerts::Transition::Resolve, &by, comment.as_deref()).await
        }
        Command::Alerts {
            alerts: AlertsCommand::Silence { config, rule, subject, site, duration, by, comment },
        } => {
            let config = Config::load(&config)?;
            let span = vigil::rules::Span::parse(&duration).map_err(|e| anyhow::anyhow!("--for: {e}"))?;
            if rule.is_none() && subject.is_none() && site.is_none() {
                anyhow::bail!("a silence needs at least one of --rule, --subject, --site");
            }
            let store = Store::connect(&config.database_url).await?;
            let expires = chrono::Utc::now() + span.chrono();
            let id = store
                .create_silence(rule.as_deref(), subject.as_deref(), site.as_deref(), expires, &by, &comment)
                .await?;
            store.close().await;
            println!("silence #{id} until {}", expires.format("%Y-%m-%d %H:%M UTC"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Alerts { alerts: AlertsCommand::Silences { config, format } } => {
            let config = Config::load(&config)?;
            let store = Store::connect(&config.database_url).await?;
            let silences = store.silences().await?;
            store.close().await;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&silences)?),
                Format::Text => {
                    for s in &silences {
                        println!(
                            "#{:<4} {:<7} until {}  rule={} subject={} site={}  by {}: {}",
                            s.id,
                            if s.ended { "ended" } else { "active" },
                            s.expires_at.format("%Y-%m-%d %H:%M UTC"),
                            s.rule_id.as_deref().unwrap_or("*"),
                            s.subject.as_deref().unwrap_or("*"),
                            s.site.as_deref().unwrap_or("*"),
                            s.created_by,
                            s.comment
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Alerts { alerts: AlertsCommand::Route { config, rule, severity, site } } => {
            route_test(&config, &rule, severity.as_deref(), site.as_deref())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn check(config: Option<&Path>, rules: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = config.map(Config::load).transpose()?;
    let paths = match (rules.is_empty(), &config) {
        (false, _) => rules,
        (true, Some(c)) => c.rules.clone(),
        (true, None) => vec![PathBuf::from("rules")],
    };
    let mut problems: Vec<String> = Vec::new();
    let loaded = match vigil::rules::load_rules(&paths) {
        Ok(set) => Some(set),
        Err(errors) => {
            problems.extend(errors.iter().map(ToString::to_string));
            None
        }
    };
    if let (Some(set), Some(c)) = (&loaded, &config) {
        problems.extend(vigil::alerts::Router::new(c).unknown_roles(set));
        problems.extend(vigil::daemon::unscheduled_visits(c, set));
    }
    if !problems.is_empty() {
        return Err(Findings(problems.join("\n")).into());
    }
    let n = loaded.map_or(0, |s| s.rules.len());
    println!("ok: {n} rules valid{}", if config.is_some() { ", configuration valid" } else { "" });
    Ok(ExitCode::SUCCESS)
}

/// Shows progress on a terminal; elsewhere (a log file, CI) logs a line per batch.
fn progress(what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix}: {pos} records ({per_sec}) {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_prefix(what.to_string());
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// Stores one batch and reports its refusals; returns (stored, duplicates, quarantined).
async fn store_batch(
    store: &Store,
    records: &[vigil::store::NewRecord],
    rejected: &[vigil::store::Rejected],
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<(usize, usize, usize)> {
    let outcome = store.store_batch(records, rejected).await?;
    for r in rejected.iter().chain(outcome.conflicts.iter()) {
        bar.suspend(|| eprintln!("{}:{}: {}: {}", r.source, r.line, r.field, r.reason));
    }
    bar.inc((records.len() + rejected.len()) as u64);
    if bar.is_hidden() {
        tracing::info!(stored = outcome.stored, duplicates = outcome.duplicates, "Batch stored.");
    }
    Ok((outcome.stored, outcome.duplicates, rejected.len() + outcome.conflicts.len()))
}

const BATCH: usize = 2_000;

async fn ingest(
    config: &Path,
    deliver: bool,
    format: Option<vigil::ingest::Format>,
    inputs: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    use vigil::ingest::Format as In;
    let config = Config::load(config)?;
    let app = vigil::daemon::App::build(config).await?;
    let mut quarantined = 0;
    for input in inputs {
        let name = input.display().to_string();
        let bar = progress(&name);
        let (mut stored, mut duplicates) = (0, 0);
        let fmt = match format {
            Some(f) => f,
            None if input.is_dir() => In::Sdtm,
            None => {
                // The first 4 KiB decide; a bulk file is not read whole just to look at it.
                use std::io::Read;
                let mut head = Vec::with_capacity(4096);
                std::fs::File::open(input)
                    .and_then(|f| f.take(4096).read_to_end(&mut head))
                    .with_context(|| format!("cannot read {name}"))?;
                In::detect(input, &String::from_utf8_lossy(&head))
            }
        };
        if fmt == In::Sdtm {
            let mut reader = vigil::ingest::sdtm::SdtmReader::open(input)?;
            while let Some(b) = reader.next_batch(BATCH)? {
                let (s, d, q) = store_batch(&app.store, &b.records, &b.rejected, &bar).await?;
                (stored, duplicates, quarantined) = (stored + s, duplicates + d, quarantined + q);
            }
            bar.finish_and_clear();
            eprintln!("{}", reader.summary());
        } else if fmt == In::Native && is_ndjson(input)? {
            // Large NDJSON exports stream line by line in bounded memory.
            use std::io::BufRead;
            let file = std::fs::File::open(input).with_context(|| format!("cannot read {name}"))?;
            let mut lines: Vec<String> = Vec::new();
            let mut first_line = 1;
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                lines.push(line.with_context(|| format!("cannot read {name}"))?);
                if lines.len() == BATCH {
                    let (s, d, q) = ndjson_batch(&app.store, &name, first_line, &lines, &bar).await?;
                    (stored, duplicates, quarantined) = (stored + s, duplicates + d, quarantined + q);
                    lines.clear();
                    first_line = i + 2;
                }
            }
            let (s, d, q) = ndjson_batch(&app.store, &name, first_line, &lines, &bar).await?;
            (stored, duplicates, quarantined) = (stored + s, duplicates + d, quarantined + q);
        } else {
            let text = std::fs::read_to_string(input).with_context(|| format!("cannot read {name}"))?;
            let parsed = vigil::ingest::parse(fmt, &name, &text);
            for chunk in parsed.records.chunks(BATCH) {
                let (s, d, q) = store_batch(&app.store, chunk, &[], &bar).await?;
                (stored, duplicates, quarantined) = (stored + s, duplicates + d, quarantined + q);
            }
            let (_, _, q) = store_batch(&app.store, &[], &parsed.rejected, &bar).await?;
            quarantined += q;
        }
        bar.finish_and_clear();
        println!("{name}: {stored} stored, {duplicates} already stored");
    }
    let raised = app.evaluate().await?;
    println!("{} alerts raised", raised.len());
    if deliver {
        let pass = app.outbox.deliver_due().await?;
        println!("{} emails sent, {} to retry, {} failed", pass.sent, pass.retrying, pass.failed);
    }
    app.store.close().await;
    if quarantined > 0 {
        return Err(Findings(format!("{quarantined} records quarantined")).into());
    }
    Ok(ExitCode::SUCCESS)
}

/// NDJSON: the first non-empty line is a complete JSON object on its own.
fn is_ndjson(path: &Path) -> anyhow::Result<bool> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        return Ok(
            line.trim_start().starts_with('{') && serde_json::from_str::<serde_json::Value>(&line).is_ok()
        );
    }
    Ok(false)
}

async fn ndjson_batch(
    store: &Store,
    name: &str,
    first_line: usize,
    lines: &[String],
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<(usize, usize, usize)> {
    let mut parsed = vigil::ingest::native::parse(name, &lines.join("\n"));
    for r in &mut parsed.records {
        r.line += first_line - 1;
    }
    for r in &mut parsed.rejected {
        r.line += first_line - 1;
    }
    store_batch(store, &parsed.records, &parsed.rejected, bar).await
}

async fn replay(
    config: &Path,
    from: Option<&str>,
    to: Option<&str>,
    rules: &[PathBuf],
    format: Format,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let to = parse_as_of(to)?;
    let from = from.map(|f| parse_as_of(Some(f))).transpose()?;
    let ruleset = if rules.is_empty() {
        vigil::daemon::load_rules(&config)?
    } else {
        vigil::rules::load_rules(rules).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            Findings(format!("invalid rules:\n{}", lines.join("\n")))
        })?
    };
    let store = Store::connect(&config.database_url).await?;
    let histories = store.all_histories().await?;
    let fired = store.alerts().await?;
    store.close().await;
    let diff = vigil::rules::replay::compare(&ruleset, &histories, &fired, from, to, &config.study.schedule);
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&diff)?),
        Format::Text => print!("{diff}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_as_of(s: Option<&str>) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    match s {
        None => Ok(chrono::Utc::now()),
        Some(s) => {
            let t = vigil::model::ClinicalTime::parse(s).map_err(|e| anyhow::anyhow!("--as-of: {e}"))?;
            // A date means the end of that day.
            Ok(t.latest())
        }
    }
}

async fn report_list(config: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let store = Store::connect(&config.database_url).await?;
    let reports = store.reports().await?;
    let deliveries = store.report_deliveries().await?;
    store.close().await;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
        Format::Text => {
            for r in &reports {
                let sent: Vec<String> =
                    deliveries.iter().filter(|d| d.0 == r.id).map(|d| format!("{} {}", d.2, d.3)).collect();
                println!(
                    "#{:<4} {:<6} cut-off {}  {}  sha256 {}  {}{}",
                    r.id,
                    r.kind,
                    r.as_of.format("%Y-%m-%d %H:%M"),
                    r.reason,
                    r.sha256,
                    r.path,
                    if sent.is_empty() { String::new() } else { format!("  [{}]", sent.join(", ")) }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn report_dsmb(
    config: &Path,
    out: Option<PathBuf>,
    as_of: Option<&str>,
    closed: bool,
    email: bool,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let as_of = parse_as_of(as_of)?;
    let app = vigil::daemon::App::build(config).await?;
    let kind = if closed { vigil::publish::Kind::Closed } else { vigil::publish::Kind::Open };
    let report = vigil::publish::generate(&app, kind, as_of, "manual", out, email).await?;
    if email {
        let sent = vigil::publish::deliver_due(&app).await?;
        eprintln!("{sent} report emails sent");
    }
    app.store.close().await;
    println!("{}", report.path);
    Ok(ExitCode::SUCCESS)
}

async fn alerts_list(config: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let store = Store::connect(&config.database_url).await?;
    let alerts = store.alerts().await?;
    store.close().await;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&alerts)?),
        Format::Text => {
            for a in &alerts {
                println!(
                    "#{:<5} {:<8} {:<9} {:<10} {} ({}, {})",
                    a.id,
                    a.severity.as_str().to_uppercase(),
                    a.status,
                    if a.subject.is_empty() { "cohort" } else { &a.subject },
                    a.title,
                    a.rule_id,
                    a.raised_at.format("%Y-%m-%d %H:%M UTC")
                );
            }
            if alerts.is_empty() {
                println!("no alerts");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn alerts_show(config: &Path, id: i64, format: Format) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let store = Store::connect(&config.database_url).await?;
    let alert = store.alert(id).await?;
    let events = store.alert_events(id).await?;
    store.close().await;
    let Some(a) = alert else {
        return Err(Findings(format!("no alert #{id}")).into());
    };
    match format {
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({"alert": a, "history": events}))?)
        }
        Format::Text => {
            println!("Alert #{} [{}] {} — {}", a.id, a.severity.as_str().to_uppercase(), a.status, a.title);
            println!(
                "Subject: {} (site {})",
                if a.subject.is_empty() { "cohort" } else { &a.subject },
                a.site.as_deref().unwrap_or("-")
            );
            println!("What:    {}", a.summary);
            if let Some(why) = a.evidence.get("why").and_then(|w| w.as_str()) {
                println!("Why:     {why}");
            }
            if let Some(rule) = a.evidence.get("rule") {
                println!(
                    "Rule:    {} version {} ({}), defined at {}:{}",
                    a.rule_id,
                    a.rule_version,
                    rule["kind"].as_str().unwrap_or("?"),
                    rule["file"].as_str().unwrap_or("?"),
                    rule["line"]
                );
            }
            println!("Episode: {} (level {})", a.episode, a.level);
            println!("Evidence:");
            for line in serde_json::to_string_pretty(&a.evidence["details"])?.lines() {
                println!("  {line}");
            }
            println!("History:");
            for e in &events {
                println!(
                    "  {}  {:<12} by {}{}",
                    e.at.format("%Y-%m-%d %H:%M:%S UTC"),
                    e.action,
                    e.actor,
                    e.comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn alerts_transition(
    config: &Path,
    id: i64,
    action: vigil::alerts::Transition,
    by: &str,
    comment: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let store = Store::connect(&config.database_url).await?;
    let result = store.transition(id, action, by, comment).await;
    store.close().await;
    match result {
        Ok(a) => {
            println!("alert #{} {}", a.id, a.status);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.downcast_ref::<vigil::store::TransitionError>().is_some() => {
            Err(Findings(e.to_string()).into())
        }
        Err(e) => Err(e),
    }
}

fn route_test(
    config: &Path,
    rule_id: &str,
    severity: Option<&str>,
    site: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let rules = vigil::daemon::load_rules(&config)?;
    let Some(rule) = rules.get(rule_id) else {
        return Err(Findings(format!("no rule `{rule_id}`")).into());
    };
    let severity = match severity.unwrap_or(rule.severity.as_str()) {
        "critical" => vigil::rules::Severity::Critical,
        "warning" => vigil::rules::Severity::Warning,
        "info" => vigil::rules::Severity::Info,
        other => anyhow::bail!("--severity `{other}`: use critical, warning or info"),
    };
    let router = vigil::alerts::Router::new(&config);
    println!("rule {} ({}), severity {severity}, site {}:", rule.id, rule.title, site.unwrap_or("-"));
    for r in router.recipients(rule, severity, site) {
        println!("  {:<18} {:<36} {}", r.role, r.address, if r.blinded { "blinded" } else { "UNBLINDED" });
    }
    match router.escalation(Some(rule), severity) {
        Some((after, chain)) => {
            println!("escalation: every {} min unacknowledged → {}", after.num_minutes(), chain.join(" → "))
        }
        None => println!("escalation: none"),
    }
    Ok(ExitCode::SUCCESS)
}
