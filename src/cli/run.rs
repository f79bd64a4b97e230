//! `vigil run`: the daemon, until SIGINT or SIGTERM.

use std::path::Path;
use std::process::ExitCode;
use vigil::config::Config;

pub async fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let app = vigil::daemon::App::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
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
