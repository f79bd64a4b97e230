//! `vigil audit`: walk the audit trail's hash chain, export it for an inspector, show its
//! head (to compare with the head printed on a DSMB report or sent in a digest).

use super::{parse_as_of, print, Output};
use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use vigil::config::Config;
use vigil::store::Store;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Seal what is pending, then walk the chain from its first entry; exit 1 naming the
    /// first entry edited, deleted or reordered.
    Verify {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
    },
    /// The trail between two times (dates: whole days in the study's zone), as CSV or JSON.
    Export {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The last sealed entry: its position and hash.
    Head {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

async fn open(config: &std::path::Path) -> anyhow::Result<(Config, Store)> {
    let config = Config::load(config)?;
    let store = Store::connect(&config.database_url).await?.with_zones(config.study.zones.clone());
    store.seal_audit().await?;
    Ok((config, store))
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { config, format } => {
            let (_, store) = open(&config).await?;
            let v = store.verify_audit().await?;
            store.close().await;
            print(format, &v, || {
                match &v.head {
                    Some((pos, hash)) => {
                        println!("{} entries checked; head: entry {pos}, sha256 {hash}", v.entries)
                    }
                    None => println!("the audit trail is empty"),
                }
                if v.unsealed > 0 {
                    println!("{} entries written since are not sealed yet", v.unsealed);
                }
                match &v.first_break {
                    Some(b) => println!("BROKEN: {b}"),
                    None => println!("the chain is intact"),
                }
                Ok(())
            })?;
            Ok(if v.first_break.is_some() { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        AuditCommand::Export { config, from, to, format, out } => {
            let (config, store) = open(&config).await?;
            let zone = config.study.zones.study;
            let from_ms = match from.as_deref() {
                Some(f) => {
                    let t = vigil::model::ClinicalTime::parse_in(f, zone)
                        .map_err(|e| anyhow::anyhow!("--from: {e}"))?;
                    t.earliest().timestamp_millis()
                }
                None => i64::MIN,
            };
            let to_ms = match to.as_deref() {
                Some(_) => parse_as_of(to.as_deref(), zone)?.timestamp_millis() + 1,
                None => i64::MAX,
            };
            let entries = store.audit_between(from_ms, to_ms).await?;
            let text = match format {
                ExportFormat::Csv => vigil::audit::to_csv(&entries),
                ExportFormat::Json => serde_json::to_string_pretty(&entries)? + "\n",
            };
            // The export is itself an action on the record.
            let detail = serde_json::json!({"from": from, "to": to, "entries": entries.len()});
            store
                .audit(&vigil::audit::local_operator(), "audit trail exported", "audit", "", &detail)
                .await?;
            store.seal_audit().await?;
            store.close().await;
            match out {
                Some(path) => {
                    std::fs::write(&path, text)?;
                    eprintln!("{} entries written to {}", entries.len(), path.display());
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Head { config } => {
            let (_, store) = open(&config).await?;
            let head = store.audit_head().await?;
            store.close().await;
            match head {
                Some((pos, hash)) => println!("entry {pos} sha256 {hash}"),
                None => println!("the audit trail is empty"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
