//! `vigil reload`: asks the running daemon (through its API, `POST /v1/reload`) to re-read
//! its configuration, rules and templates, and prints what came of it. The same as
//! `systemctl reload vigil` (SIGHUP), but with the answer: the files now in force, or
//! every problem of a refused set.

use super::Findings;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil::config::Config;

pub async fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let addr = config
        .http_addr
        .context("the config has no http.addr: send SIGHUP to the daemon instead (systemctl reload vigil)")?;
    let token = std::env::var("VIGIL_API_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .context("VIGIL_API_TOKEN must hold an API token for the reload request")?;
    // The API listens on loopback (or behind a TLS proxy): a plain HTTP/1.1 request.
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot reach the daemon at {addr}: is it running?"))?;
    let request = format!(
        "POST /v1/reload HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        token.trim()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    let status: u16 = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    match status {
        200 => {
            println!("reloaded: {} rules", json["rules"]);
            for f in json["files"].as_array().into_iter().flatten() {
                println!("  {}  {}", f[1].as_str().unwrap_or_default(), f[0].as_str().unwrap_or_default());
            }
            for s in json["needs_restart"].as_array().into_iter().flatten() {
                println!("changed, takes effect at the next start: {}", s.as_str().unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
        422 => Err(Findings(json["error"].as_str().unwrap_or(body).to_string()).into()),
        _ => anyhow::bail!("the daemon answered {status}: {}", json["error"].as_str().unwrap_or(body)),
    }
}
