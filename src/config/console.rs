//! The safety console (`console`): served by `vigil run` on the HTTP address.

use super::Issues;
use crate::rules::Span;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsoleFile {
    enabled: Option<bool>,
    base_url: Option<String>,
    session_idle: Option<Span>,
}

/// How the console is served.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Served under `/console` when `http.addr` is set (default true).
    pub enabled: bool,
    /// Where people reach it (`https://safety.trial.example.org`): alert emails link to
    /// their alert's page there, and cookies are marked Secure when it is https.
    pub base_url: Option<String>,
    /// A session with no request for this long is signed out (default 15 minutes).
    pub session_idle: std::time::Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self { enabled: true, base_url: None, session_idle: std::time::Duration::from_secs(15 * 60) }
    }
}

pub(super) fn console(raw: &ConsoleFile, issues: &mut Issues) -> ConsoleConfig {
    let default = ConsoleConfig::default();
    let base_url = raw.base_url.as_deref().map(|u| u.trim().trim_end_matches('/').to_string());
    if let Some(u) = &base_url {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            issues.add(
                "console.base_url",
                format!("`{u}` must start with https:// (or http:// for a loopback test)"),
            );
        }
    }
    let session_idle = match raw.session_idle {
        Some(s) if s.seconds() < 60 => {
            issues.add("console.session_idle", "must be at least 1m");
            default.session_idle
        }
        Some(s) => std::time::Duration::from_secs(s.seconds().unsigned_abs()),
        None => default.session_idle,
    };
    ConsoleConfig { enabled: raw.enabled.unwrap_or(true), base_url, session_idle }
}
