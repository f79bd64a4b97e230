//! `vigil ingest`: files (or SDTM folders) once, through the same entry as the drop folder
//! and the HTTP API, with progress on a terminal; then evaluate and queue alert emails.

use super::Findings;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vigil::config::Config;
use vigil::ingest::{Format, Reader};

pub async fn ingest(
    config: &Path,
    deliver: bool,
    format: Option<Format>,
    inputs: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let app = vigil::daemon::App::build(config).await?;
    let mut quarantined = 0;
    for input in inputs {
        let name = input.display().to_string();
        let bar = progress(&name);
        let mut reader = Reader::open(input, &name, format)?;
        let ingested = vigil::ingest::store_all(&app.store, &mut reader, |batch, outcome| {
            for r in batch.rejected.iter().chain(outcome.conflicts.iter()) {
                bar.suspend(|| eprintln!("{}:{}: {}: {}", r.source, r.line, r.field, r.reason));
            }
            bar.inc(batch.len() as u64);
            if bar.is_hidden() {
                tracing::info!(stored = outcome.stored, duplicates = outcome.duplicates, "Batch stored.");
            }
        })
        .await?;
        quarantined += ingested.quarantined;
        bar.finish_and_clear();
        if let Some(summary) = reader.sdtm_summary() {
            eprintln!("{summary}");
        }
        println!("{name}: {} stored, {} already stored", ingested.stored, ingested.duplicates);
    }
    let raised = app.evaluate().await?;
    println!("{} alerts raised", raised.len());
    if deliver {
        let pass = app.setup().outbox.deliver_due().await?;
        println!("{} emails sent, {} to retry, {} failed", pass.sent, pass.retrying, pass.failed);
    }
    // What was stored and raised is sealed into the audit chain now, not at the daemon's
    // next second.
    app.store.seal_audit().await?;
    app.store.close().await;
    if quarantined > 0 {
        return Err(Findings(format!("{quarantined} records quarantined")).into());
    }
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
