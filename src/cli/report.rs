//! `vigil report`: the DSMB report from a frozen data cut, and the archive of reports.

use super::{open_store, parse_as_of, print_rows, Findings, Output};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vigil::config::Config;

#[derive(Subcommand)]
pub enum ReportCommand {
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
    /// Release a generated report to its readers (checks that its file is the one archived),
    /// as the local operator or as a named person, signed where the study asks for it;
    /// writes its release page beside it.
    Release {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        id: i64,
        /// Release as this person (password asked for).
        #[arg(long)]
        user: Option<String>,
        /// Sign the release: reviewed, approved or responsible (needs --user).
        #[arg(long)]
        sign: Option<String>,
    },
    /// The archive of generated reports, with their SHA-256.
    List {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
    },
}

pub async fn run(command: ReportCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReportCommand::Dsmb { config, out, as_of, closed, email } => {
            dsmb(&config, out, as_of.as_deref(), closed, email).await
        }
        ReportCommand::List { config, format } => list(&config, format).await,
        ReportCommand::Release { config, id, user, sign } => {
            release(&config, id, user.as_deref(), sign.as_deref()).await
        }
    }
}

async fn list(config: &Path, output: Output) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let reports = store.reports().await?;
    let deliveries = store.report_deliveries().await?;
    store.close().await;
    print_rows(output, &reports, None, |r| {
        let sent: Vec<String> =
            deliveries.iter().filter(|d| d.0 == r.id).map(|d| format!("{} {}", d.2, d.3)).collect();
        format!(
            "#{:<4} {:<6} cut-off {}  {}  sha256 {}  {}{}{}",
            r.id,
            r.kind,
            r.as_of.format("%Y-%m-%d %H:%M"),
            r.reason,
            r.sha256,
            r.path,
            if sent.is_empty() { String::new() } else { format!("  [{}]", sent.join(", ")) },
            match (&r.released_by, r.released_at) {
                (Some(by), Some(at)) => format!("  released by {by} {}", at.format("%Y-%m-%d %H:%M UTC")),
                _ => "  not released".to_string(),
            }
        )
    })
}

async fn dsmb(
    config: &Path,
    out: Option<PathBuf>,
    as_of: Option<&str>,
    closed: bool,
    email: bool,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let as_of = parse_as_of(as_of, config.study.zones.study)?;
    let app = vigil::daemon::App::build(config).await?;
    let kind = if closed { vigil::publish::Kind::Closed } else { vigil::publish::Kind::Open };
    let request = vigil::publish::ReportRequest { kind, as_of, reason: "manual".into(), out, email };
    let setup = app.setup();
    let publisher = vigil::publish::Publisher::new(&app.store, &setup.rules, &setup.config);
    let report = publisher.generate(&request, app.clock.now()).await?;
    if email {
        let sent = setup.outbox.deliver_due_of(Some(vigil::store::NotificationKind::Report)).await?.sent;
        eprintln!("{sent} report emails sent");
    }
    app.store.seal_audit().await?;
    app.store.close().await;
    println!("{}", report.path);
    Ok(ExitCode::SUCCESS)
}

async fn release(config: &Path, id: i64, user: Option<&str>, sign: Option<&str>) -> anyhow::Result<ExitCode> {
    use vigil::config::Action;
    let config = Config::load(config)?;
    let store =
        vigil::store::Store::connect(&config.database_url).await?.with_zones(config.study.zones.clone());
    let report = store
        .report(id)
        .await?
        .ok_or(vigil::publish::ReleaseError::NoSuchReport(id))
        .map_err(|e| Findings(e.to_string()))?;
    if report.released_at.is_some() {
        return Err(Findings(vigil::publish::ReleaseError::Released(id).to_string()).into());
    }
    vigil::publish::check_unchanged(&report).map_err(|e| Findings(e.to_string()))?;
    let content = report.signed_content();
    let (by, signature) = super::alerts::signed_actor(
        &config,
        &store,
        user,
        sign,
        Action::ReleaseReport,
        "report",
        &id.to_string(),
        &content,
        None,
    )
    .await?;
    if !store.release_report(id, &by, signature.as_ref()).await? {
        return Err(Findings(vigil::publish::ReleaseError::Released(id).to_string()).into());
    }
    store.seal_audit().await?;
    let released = store.report(id).await?.ok_or(vigil::publish::ReleaseError::NoSuchReport(id))?;
    let recorded = match released.signature_id {
        Some(sid) => store.signature(sid).await?,
        None => None,
    };
    let head = match store.audit_head().await? {
        Some((pos, hash)) => format!("entry {pos}, SHA-256 {hash}"),
        None => "empty".into(),
    };
    let page = vigil::publish::write_release_page(&released, &by, recorded.as_ref(), &head)?;
    store.close().await;
    match &recorded {
        Some(s) => println!("report #{id} released by {by}, {}", s.line()),
        None => println!("report #{id} released by {by}"),
    }
    println!("{}", page.display());
    Ok(ExitCode::SUCCESS)
}
