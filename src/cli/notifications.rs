//! `vigil notifications`: resend an email that failed, once its cause is fixed.

use super::{open_store, Findings};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum NotificationsCommand {
    /// Queue a failed notification again (the daemon's outbox sends it at once).
    Retry {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        /// The notification's id (`vigil alerts show ID` lists an alert's emails).
        id: i64,
    },
}

pub async fn run(command: NotificationsCommand) -> anyhow::Result<ExitCode> {
    match command {
        NotificationsCommand::Retry { config, id } => {
            let store = open_store(&config).await?;
            let queued = store.retry_notification(id).await?;
            store.seal_audit().await?;
            store.close().await;
            if !queued {
                return Err(Findings(format!("notification #{id} does not exist or has not failed")).into());
            }
            println!("notification #{id} queued again");
            Ok(ExitCode::SUCCESS)
        }
    }
}
