//! Configuration: one YAML file, overridden by environment variables, checked at start.
//!
//! Relative paths in the file are resolved against the file's own folder, so the same
//! command works from any working directory. Secrets (SMTP password, API token) come
//! from the environment, never from the file.

use anyhow::Context;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub study: StudyConfig,
    #[serde(default = "default_database_url")]
    pub database_url: String,
    #[serde(default = "default_inbox")]
    pub inbox: PathBuf,
    #[serde(default)]
    pub processed_dir: Option<PathBuf>,
    #[serde(default)]
    pub quarantine_dir: Option<PathBuf>,
    #[serde(default = "default_rules")]
    pub rules: Vec<PathBuf>,
    #[serde(default)]
    pub rescan_interval_secs: Option<u64>,
    /// How often clock-driven rules (SAE clocks, overdue visits) are evaluated.
    #[serde(default)]
    pub clock_interval_secs: Option<u64>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub email: EmailConfig,
    #[serde(default)]
    pub recipients: BTreeMap<String, RoleConfig>,
    #[serde(default)]
    pub default_roles: Vec<String>,
    #[serde(default)]
    pub alerting: AlertingConfig,
    #[serde(default)]
    pub report: ReportConfig,
}

/// Routing, grouping, digests and escalation of alerts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// Non-critical alerts wait this long before their email goes, so that a burst of
    /// alerts of one rule goes out as one email (default 30 s). Critical ones never wait.
    pub group_wait: Option<crate::rules::Span>,
    /// Severities that go into one daily digest per recipient instead of an email each.
    pub digest: Option<DigestConfig>,
    /// Escalation chains by severity (`critical`, `warning`, `info`).
    #[serde(default)]
    pub escalation: BTreeMap<String, EscalationConfig>,
    /// Extra recipients by severity, rule label or site, added to the rule's own `notify`.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestConfig {
    pub severities: Vec<String>,
    /// Time of day (UTC) the digest goes out, `HH:MM`.
    #[serde(default = "seven")]
    pub at_utc: String,
}

fn seven() -> String {
    "07:00".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    /// Unacknowledged for this long → the next role of the chain is notified, again and
    /// again to the end of the chain.
    pub after: crate::rules::Span,
    pub chain: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub severity: Option<String>,
    pub site: Option<String>,
    pub rule: Option<String>,
    /// Every label given must match the rule's label.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    pub title: String,
    /// Protocol visit labels in schedule order (used to order report tables).
    #[serde(default)]
    pub visits: Vec<String>,
    /// The schedule of assessments, for overdue-visit rules.
    #[serde(default)]
    pub schedule: Vec<crate::rules::ScheduledVisit>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on; empty or absent = no HTTP server.
    #[serde(default)]
    pub addr: Option<String>,
    /// API tokens as `name sha256-hex` lines (or set VIGIL_API_TOKENS=name:token,…).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Larger request bodies are refused with 413 (default 10 MiB).
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[serde(default = "default_from")]
    pub from: String,
    /// `smtp://host:port` (plain, loopback only), `smtp://…?tls=starttls`, `smtps://user:pass@host`.
    /// Absent = write .eml files into `outbox_dir` instead of sending.
    #[serde(default)]
    pub smtp_url: Option<String>,
    #[serde(default = "default_outbox_dir")]
    pub outbox_dir: PathBuf,
    #[serde(default = "default_retry_initial")]
    pub retry_initial_secs: u64,
    #[serde(default = "default_retry_max")]
    pub retry_max_secs: u64,
    #[serde(default = "default_timeout")]
    pub smtp_timeout_secs: u64,
    /// A folder whose `email.subject.txt`, `email.txt`, `email.html` replace the built-in
    /// templates (minijinja).
    #[serde(default)]
    pub templates_dir: Option<PathBuf>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            from: default_from(),
            smtp_url: None,
            outbox_dir: default_outbox_dir(),
            retry_initial_secs: default_retry_initial(),
            retry_max_secs: default_retry_max(),
            smtp_timeout_secs: default_timeout(),
            templates_dir: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    pub addresses: Vec<String>,
    /// Blinded recipients never see treatment arm. Default: blinded.
    #[serde(default = "yes")]
    pub blinded: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    #[serde(default = "default_report_dir")]
    pub out_dir: PathBuf,
    /// AE terms counted as infusion reactions in the report.
    #[serde(default = "default_irr_terms")]
    pub infusion_reaction_terms: Vec<String>,
    /// Roles the DSMB reports are emailed to. The closed report goes only to unblinded ones.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Also produce the closed (by-arm) report, for unblinded recipients.
    #[serde(default)]
    pub closed: bool,
    /// Cron schedules (5 fields, UTC), e.g. "0 6 1 1,7 *" for every six months.
    #[serde(default)]
    pub schedule: Vec<String>,
    /// Unscheduled reports: when a stopping rule fires, when N subjects reach a visit.
    #[serde(default)]
    pub triggers: ReportTriggers,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportTriggers {
    #[serde(default)]
    pub stopping_rule: bool,
    pub subjects_at_visit: Option<VisitTrigger>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitTrigger {
    pub visit: String,
    pub count: usize,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            out_dir: default_report_dir(),
            infusion_reaction_terms: default_irr_terms(),
            recipients: Vec::new(),
            closed: false,
            schedule: Vec::new(),
            triggers: ReportTriggers::default(),
        }
    }
}

fn default_database_url() -> String {
    "sqlite://var/vigil.db".into()
}
fn default_inbox() -> PathBuf {
    "var/inbox".into()
}
fn default_rules() -> Vec<PathBuf> {
    vec!["rules".into()]
}
fn default_from() -> String {
    "vigil <vigil@localhost>".into()
}
fn default_outbox_dir() -> PathBuf {
    "var/outbox".into()
}
fn default_report_dir() -> PathBuf {
    "var/reports".into()
}
fn default_retry_initial() -> u64 {
    5
}
fn default_retry_max() -> u64 {
    900
}
fn default_timeout() -> u64 {
    30
}
fn yes() -> bool {
    true
}
fn default_irr_terms() -> Vec<String> {
    ["Infusion related reaction", "Anaphylaxis", "Allergic reaction", "Cytokine release syndrome"]
        .map(String::from)
        .to_vec()
}

/// The resolved configuration the program runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub study: StudyConfig,
    pub database_url: String,
    pub inbox: PathBuf,
    pub processed_dir: PathBuf,
    pub quarantine_dir: PathBuf,
    pub rules: Vec<PathBuf>,
    pub rescan_interval_secs: u64,
    pub clock_interval_secs: u64,
    pub http_addr: Option<std::net::SocketAddr>,
    pub http_token_file: Option<PathBuf>,
    pub http_max_body_bytes: usize,
    pub email: EmailConfig,
    pub recipients: BTreeMap<String, RoleConfig>,
    pub default_roles: Vec<String>,
    pub alerting: AlertingConfig,
    pub report: ReportConfig,
}

/// An invalid configuration, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: `{key}`: {message}")]
    Invalid { file: String, key: String, message: String },
}

impl Config {
    /// Reads the file, applies `VIGIL_*` environment overrides and checks every key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Ok(Self::from_str(&text, path, env)?)
    }

    pub fn from_str(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let de = serde_yaml::Deserializer::from_str(text);
        let raw: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let at = inner.location().map(|l| format!("{}:{}: ", l.line(), l.column())).unwrap_or_default();
            ConfigError::Parse {
                file: file.clone(),
                message: format!("{at}`{key}`: {}", strip_location(&inner.to_string())),
            }
        })?;
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: file.clone(),
            key: key.to_string(),
            message,
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let database_url =
            env("VIGIL_DATABASE_URL").unwrap_or_else(|| resolve_sqlite_url(&raw.database_url, &base));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                format!("`{database_url}` must start with sqlite:, postgres:// or postgresql://"),
            ));
        }
        let inbox = env("VIGIL_INBOX").map(PathBuf::from).unwrap_or_else(|| resolve(&raw.inbox));
        let http_addr =
            match env("VIGIL_HTTP_ADDR").or(raw.http.addr.clone()).filter(|a| !a.trim().is_empty()) {
                None => None,
                Some(a) => Some(a.trim().parse().map_err(|_| {
                    invalid("http.addr", format!("`{a}` is not an address such as 127.0.0.1:8465"))
                })?),
            };
        let mut email = raw.email.clone();
        email.outbox_dir = resolve(&email.outbox_dir);
        email.templates_dir = email.templates_dir.as_deref().map(resolve);
        if let Some(url) = env("VIGIL_SMTP_URL") {
            email.smtp_url = Some(url);
        }
        if let Some(url) = &email.smtp_url {
            crate::notify::SmtpSettings::parse(url).map_err(|m| invalid("email.smtp_url", m))?;
        }
        if email.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid("email.from", format!("`{}` is not an email address", email.from)));
        }
        if email.retry_initial_secs == 0 || email.retry_max_secs < email.retry_initial_secs {
            return Err(invalid(
                "email.retry_initial_secs",
                "must be at least 1 and at most retry_max_secs".into(),
            ));
        }
        for (role, r) in &raw.recipients {
            if r.addresses.is_empty() {
                return Err(invalid(&format!("recipients.{role}.addresses"), "lists no address".into()));
            }
            for a in &r.addresses {
                if a.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(invalid(
                        &format!("recipients.{role}.addresses"),
                        format!("`{a}` is not an email address"),
                    ));
                }
            }
        }
        for role in &raw.default_roles {
            if !raw.recipients.contains_key(role) {
                return Err(invalid(
                    "default_roles",
                    format!("role `{role}` is not defined under recipients"),
                ));
            }
        }
        let role_known = |key: &str, role: &String| {
            if raw.recipients.contains_key(role) {
                Ok(())
            } else {
                Err(invalid(key, format!("role `{role}` is not defined under recipients")))
            }
        };
        for (severity, e) in &raw.alerting.escalation {
            if !["critical", "warning", "info"].contains(&severity.as_str()) {
                return Err(invalid(
                    &format!("alerting.escalation.{severity}"),
                    "use critical, warning or info".into(),
                ));
            }
            if e.chain.is_empty() || e.after.seconds() <= 0 {
                return Err(invalid(
                    &format!("alerting.escalation.{severity}"),
                    "needs a positive `after` and at least one role in `chain`".into(),
                ));
            }
            for role in &e.chain {
                role_known(&format!("alerting.escalation.{severity}.chain"), role)?;
            }
        }
        for (i, r) in raw.alerting.routes.iter().enumerate() {
            for role in &r.roles {
                role_known(&format!("alerting.routes[{i}].roles"), role)?;
            }
        }
        if let Some(d) = &raw.alerting.digest {
            if chrono::NaiveTime::parse_from_str(&d.at_utc, "%H:%M").is_err() {
                return Err(invalid(
                    "alerting.digest.at_utc",
                    format!("`{}` is not a time such as 07:00", d.at_utc),
                ));
            }
        }
        let mut seen_visits = Vec::new();
        for (i, v) in raw.study.schedule.iter().enumerate() {
            if v.window_days < 0 {
                return Err(invalid(
                    &format!("study.schedule[{i}].window_days"),
                    "cannot be negative".into(),
                ));
            }
            if seen_visits.contains(&v.visit) {
                return Err(invalid(
                    &format!("study.schedule[{i}].visit"),
                    format!("`{}` is scheduled twice", v.visit),
                ));
            }
            seen_visits.push(v.visit.clone());
        }
        let rescan = raw.rescan_interval_secs.unwrap_or(5);
        if rescan == 0 {
            return Err(invalid("rescan_interval_secs", "must be at least 1".into()));
        }
        for role in &raw.report.recipients {
            role_known("report.recipients", role)?;
        }
        for (i, c) in raw.report.schedule.iter().enumerate() {
            c.parse::<croner::Cron>()
                .map_err(|e| invalid(&format!("report.schedule[{i}]"), format!("`{c}`: {e}")))?;
        }
        let mut report = raw.report.clone();
        report.out_dir = resolve(&report.out_dir);
        Ok(Config {
            source: path.to_path_buf(),
            study: raw.study,
            database_url,
            processed_dir: raw
                .processed_dir
                .as_deref()
                .map(resolve)
                .unwrap_or_else(|| inbox.join("processed")),
            quarantine_dir: raw
                .quarantine_dir
                .as_deref()
                .map(resolve)
                .unwrap_or_else(|| inbox.join("quarantine")),
            inbox,
            rules: raw.rules.iter().map(|p| resolve(p)).collect(),
            rescan_interval_secs: rescan,
            clock_interval_secs: raw.clock_interval_secs.unwrap_or(60).max(1),
            http_addr,
            http_token_file: raw.http.token_file.as_deref().map(resolve),
            http_max_body_bytes: raw.http.max_body_bytes.unwrap_or(10 << 20),
            email,
            recipients: raw.recipients,
            default_roles: raw.default_roles,
            alerting: raw.alerting,
            report,
        })
    }
}

fn strip_location(msg: &str) -> String {
    msg.split(" at line ").next().unwrap_or(msg).to_string()
}

/// `sqlite://var/vigil.db` is relative to the config file's folder; made absolute here.
fn resolve_sqlite_url(url: &str, base: &Path) -> String {
    let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
        return url.to_string();
    };
    let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
    if path == ":memory:" || path.starts_with('/') {
        return url.to_string();
    }
    let abs = base.join(path);
    match query {
        Some(q) => format!("sqlite://{}?{q}", abs.display()),
        None => format!("sqlite://{}", abs.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "study:\n  title: Test\n";

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_str(text, Path::new("/etc/vigil/vigil.yaml"), move |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_resolve_against_the_config_folder() {
        let c = load(MINIMAL, &[]).unwrap();
        assert_eq!(c.database_url, "sqlite:///etc/vigil/var/vigil.db");
        assert_eq!(c.inbox, PathBuf::from("/etc/vigil/var/inbox"));
        assert_eq!(c.processed_dir, PathBuf::from("/etc/vigil/var/inbox/processed"));
        assert!(c.email.smtp_url.is_none());
        assert!(c.http_addr.is_none());
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load(
            MINIMAL,
            &[
                ("VIGIL_DATABASE_URL", "postgres://127.0.0.1/test"),
                ("VIGIL_SMTP_URL", "smtp://127.0.0.1:2525"),
                ("VIGIL_INBOX", "/data/in"),
                ("VIGIL_HTTP_ADDR", "127.0.0.1:9000"),
            ],
        )
        .unwrap();
        assert_eq!(c.database_url, "postgres://127.0.0.1/test");
        assert_eq!(c.email.smtp_url.as_deref(), Some("smtp://127.0.0.1:2525"));
        assert_eq!(c.inbox, PathBuf::from("/data/in"));
        assert_eq!(c.http_addr.unwrap().port(), 9000);
    }

    #[test]
    fn errors_name_the_key() {
        let e =
            load("study:\n  title: T\nemail:\n  retry_initial_secs: soon\n", &[]).unwrap_err().to_string();
        assert!(e.contains("email.retry_initial_secs"), "{e}");
        let e = load("study:\n  title: T\nemial: {}\n", &[]).unwrap_err().to_string();
        assert!(e.contains("emial"), "{e}");
        let e = load(MINIMAL, &[("VIGIL_HTTP_ADDR", "localhost")]).unwrap_err().to_string();
        assert!(e.contains("http.addr"), "{e}");
        let e = load(
            "study:\n  title: T\nrecipients:\n  safety-officer:\n    addresses: [not-an-address]\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("recipients.safety-officer.addresses"), "{e}");
        let e = load(MINIMAL, &[("VIGIL_SMTP_URL", "ftp://x")]).unwrap_err().to_string();
        assert!(e.contains("email.smtp_url"), "{e}");
        let e = load("study:\n  title: T\ndefault_roles: [dsmb]\n", &[]).unwrap_err().to_string();
        assert!(e.contains("default_roles"), "{e}");
    }
}
