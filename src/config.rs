//! Configuration: one YAML file, overridden by environment variables, parsed once at
//! start into the types the program runs with.
//!
//! Every value is parsed here and nowhere else: the digest time, the report schedules,
//! the sender address (and the Message-ID domain it gives), the SMTP settings and the
//! retry durations reach the other modules ready to use. Every problem of a file is
//! reported at once, each with its key and, where known, its line and column.
//!
//! Relative paths in the file are resolved against the file's own folder, so the same
//! command works from any working directory. Secrets (SMTP password, API token) come
//! from the environment, never from the file.

mod accounts;
mod console;
mod smtp;

pub use accounts::{AccountPolicy, Action, Authority, ADMIN_ROLE};
pub use console::ConsoleConfig;
pub use smtp::{SmtpSettings, SmtpUrlError, TlsMode};

use crate::model::Zones;
use crate::rules::yamlpos::Positions;
use anyhow::Context;
use chrono::NaiveTime;
use chrono_tz::Tz;
use lettre::message::Mailbox;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// The file as written (the YAML format). Values that need parsing are kept as text here
// and parsed into the runtime types below, so that every bad value is reported together.

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    study: StudyConfig,
    #[serde(default = "default_database_url")]
    database_url: String,
    /// Apply missing migrations at start (default); false: refuse to start until
    /// `vigil migrate` has run (a deployment step).
    #[serde(default)]
    migrate_at_start: Option<bool>,
    #[serde(default = "default_inbox")]
    inbox: PathBuf,
    #[serde(default)]
    processed_dir: Option<PathBuf>,
    #[serde(default)]
    quarantine_dir: Option<PathBuf>,
    #[serde(default = "default_rules")]
    rules: Vec<PathBuf>,
    #[serde(default)]
    rescan_interval_secs: Option<u64>,
    /// How long a file written in place (not renamed in) must stand still before it is taken.
    #[serde(default)]
    inbox_settle: Option<crate::rules::Span>,
    /// How long a line file whose last line has no newline must stand still.
    #[serde(default)]
    inbox_unterminated_wait: Option<crate::rules::Span>,
    /// An inbox file claimed by a replica silent this long is taken back (shared inboxes).
    #[serde(default)]
    inbox_claim_timeout: Option<crate::rules::Span>,
    /// How often clock-driven rules (SAE clocks, overdue visits) are evaluated.
    #[serde(default)]
    clock_interval_secs: Option<u64>,
    #[serde(default)]
    http: HttpConfig,
    #[serde(default)]
    email: EmailFile,
    #[serde(default)]
    recipients: BTreeMap<String, RoleConfig>,
    #[serde(default)]
    default_roles: Vec<String>,
    #[serde(default)]
    alerting: AlertingFile,
    #[serde(default)]
    report: ReportFile,
    #[serde(default)]
    accounts: accounts::AccountsFile,
    #[serde(default)]
    signatures: accounts::SignaturesFile,
    #[serde(default)]
    authority: accounts::AuthorityFile,
    #[serde(default)]
    audit: accounts::AuditFile,
    #[serde(default)]
    console: console::ConsoleFile,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertingFile {
    group_wait: Option<crate::rules::Span>,
    max_silence: Option<crate::rules::Span>,
    #[serde(default)]
    second_person_resolves_critical: bool,
    undeliverable: Option<UndeliverableFile>,
    digest: Option<DigestFile>,
    #[serde(default)]
    escalation: BTreeMap<String, EscalationConfig>,
    #[serde(default)]
    routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UndeliverableFile {
    #[serde(default)]
    notify: Vec<String>,
    fallback: Option<String>,
    give_up_after: Option<crate::rules::Span>,
    critical_attempts: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DigestFile {
    severities: Vec<String>,
    #[serde(default = "seven")]
    at_utc: String,
}

fn seven() -> String {
    "07:00".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailFile {
    #[serde(default = "default_from")]
    from: String,
    #[serde(default)]
    smtp_url: Option<String>,
    #[serde(default = "default_outbox_dir")]
    outbox_dir: PathBuf,
    #[serde(default = "default_retry_initial")]
    retry_initial_secs: u64,
    #[serde(default = "default_retry_max")]
    retry_max_secs: u64,
    #[serde(default = "default_timeout")]
    smtp_timeout_secs: u64,
    #[serde(default)]
    templates_dir: Option<PathBuf>,
}

impl Default for EmailFile {
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
struct ReportFile {
    #[serde(default = "default_report_dir")]
    out_dir: PathBuf,
    #[serde(default = "default_irr_terms")]
    infusion_reaction_terms: Vec<String>,
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default)]
    closed: bool,
    #[serde(default)]
    schedule: Vec<String>,
    #[serde(default)]
    triggers: ReportTriggers,
}

impl Default for ReportFile {
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

// ---------------------------------------------------------------------------------------
// Sections that need no parsing beyond serde's: the same types in the file and at run time.

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
    /// The study's IANA time zone (default UTC): SAE deadlines count its calendar days,
    /// and local times of sites without an override are read in it.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Sites whose local times are in another zone: `{"01-701": {timezone: America/Chicago}}`.
    #[serde(default)]
    pub sites: BTreeMap<String, SiteConfig>,
    /// `timezone` and `sites`, parsed at load.
    #[serde(skip)]
    pub zones: Zones,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub timezone: String,
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
    /// vigil serves plain HTTP: an address other than loopback is refused unless this says
    /// that a TLS proxy (or a private network) carries the traffic.
    #[serde(default)]
    pub allow_plaintext_bind: bool,
    /// Connections served at once; more wait to be accepted (default 256).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// How long a connection may wait on its client (headers, a body, an unread answer); default 60.
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    pub addresses: Vec<String>,
    /// Blinded recipients never see treatment arm. Default: blinded.
    #[serde(default = "yes")]
    pub blinded: bool,
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

// ---------------------------------------------------------------------------------------
// The runtime types.

/// Routing, grouping, digests and escalation of alerts.
#[derive(Debug, Clone)]
pub struct AlertingConfig {
    /// Non-critical alerts wait this long before their email goes, so that a burst of
    /// alerts of one rule goes out as one email (default 30 s). Critical ones never wait.
    pub group_wait: Option<crate::rules::Span>,
    /// The longest a silence may last (default 30 days): a silence is a pause, and alerts it
    /// keeps quiet come back when it ends.
    pub max_silence: crate::rules::Span,
    /// A critical alert is resolved by two people: one asks, another (a different actor)
    /// confirms (`alerting.second_person_resolves_critical`, off by default).
    pub second_person_resolves_critical: bool,
    /// What happens when an email cannot be delivered.
    pub undeliverable: Undeliverable,
    /// Severities that go into one daily digest per recipient instead of an email each.
    pub digest: Option<DigestConfig>,
    /// Escalation chains by severity (`critical`, `warning`, `info`).
    pub escalation: BTreeMap<String, EscalationConfig>,
    /// Extra recipients by severity, rule label or site, added to the rule's own `notify`.
    pub routes: Vec<RouteConfig>,
}

/// A safety email that cannot be delivered is never a quiet failure: it raises a critical
/// internal alert to these roles and the fallback address (`alerting.undeliverable`).
#[derive(Debug, Clone)]
pub struct Undeliverable {
    /// Roles told (default: `default_roles`).
    pub notify: Vec<String>,
    /// An address outside the trial's usual mail path, told as well.
    pub fallback: Option<String>,
    /// A notification still undelivered this long after it was queued is given up (default 24 h).
    pub give_up_after: crate::rules::Span,
    /// Attempts at an email about a critical alert, even after a 5xx reply (default 3).
    pub critical_attempts: i64,
}

impl Default for Undeliverable {
    fn default() -> Self {
        Self {
            notify: Vec::new(),
            fallback: None,
            give_up_after: crate::rules::Span::from_days(1),
            critical_attempts: 3,
        }
    }
}

/// How long a silence may last unless the configuration says (`alerting.max_silence`).
pub const DEFAULT_MAX_SILENCE: crate::rules::Span = crate::rules::Span::from_days(30);

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            group_wait: None,
            max_silence: DEFAULT_MAX_SILENCE,
            second_person_resolves_critical: false,
            undeliverable: Undeliverable::default(),
            digest: None,
            escalation: BTreeMap::new(),
            routes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DigestConfig {
    pub severities: Vec<String>,
    /// Time of day (UTC) the digest goes out (`HH:MM` in the file).
    pub at_utc: NaiveTime,
}

/// How the outbox retries: the first retry after `initial`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait before attempt `attempts + 1`: initial × 2^attempts, capped at `max`.
    pub fn after(&self, attempts: i64) -> Duration {
        let factor = 1u32 << attempts.clamp(0, 20);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Email: the sender, the transport and the retries.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub from: Mailbox,
    /// Absent = write .eml files into `outbox_dir` instead of sending.
    pub smtp: Option<SmtpSettings>,
    pub outbox_dir: PathBuf,
    pub retry: Backoff,
    pub smtp_timeout: Duration,
    /// A folder whose `email.subject.txt`, `email.txt`, `email.html` replace the built-in
    /// templates (minijinja).
    pub templates_dir: Option<PathBuf>,
}

impl EmailSettings {
    /// The domain of Message-IDs: the sender's domain.
    pub fn message_domain(&self) -> &str {
        self.from.email.domain()
    }
}

/// A report schedule: the cron text as written (it names the schedule in the archive)
/// and the parsed cron.
#[derive(Debug, Clone)]
pub struct ReportSchedule {
    pub text: String,
    pub cron: croner::Cron,
}

/// DSMB reports: where they go, who gets them, when they are made.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    pub out_dir: PathBuf,
    /// AE terms counted as infusion reactions in the report.
    pub infusion_reaction_terms: Vec<String>,
    /// Roles the DSMB reports are emailed to. The closed report goes only to unblinded ones.
    pub recipients: Vec<String>,
    /// Also produce the closed (by-arm) report, for unblinded recipients.
    pub closed: bool,
    /// Cron schedules (5 fields, UTC), e.g. "0 6 1 1,7 *" for every six months.
    pub schedule: Vec<ReportSchedule>,
    /// Unscheduled reports: when a stopping rule fires, when N subjects reach a visit.
    pub triggers: ReportTriggers,
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
    [
        "Infusion related reaction",
        "Anaphylaxis",
        "Allergic reaction",
        "Cytokine release syndrome",
        // The MedDRA PTs of the same reactions, as coded data and SDTM AEDECOD carry them.
        "Anaphylactic reaction",
        "Hypersensitivity",
    ]
    .map(String::from)
    .to_vec()
}

/// Hides the password of a URL with credentials (a database or SMTP URL) in messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The resolved configuration the program runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub study: StudyConfig,
    pub database_url: String,
    /// Whether `vigil run` applies missing migrations at start (`migrate_at_start`).
    pub migrate_at_start: bool,
    pub inbox: PathBuf,
    pub processed_dir: PathBuf,
    pub quarantine_dir: PathBuf,
    pub rules: Vec<PathBuf>,
    pub rescan_interval_secs: u64,
    /// When a file written in place is complete (see [`Settle`]).
    pub settle: Settle,
    /// A claimed inbox file whose replica has been silent this long is taken back.
    pub inbox_claim_timeout: std::time::Duration,
    pub clock_interval_secs: u64,
    pub http_addr: Option<std::net::SocketAddr>,
    pub http_token_file: Option<PathBuf>,
    pub http_max_body_bytes: usize,
    pub http_max_connections: usize,
    pub http_idle_timeout_secs: u64,
    pub email: EmailSettings,
    pub recipients: BTreeMap<String, RoleConfig>,
    pub default_roles: Vec<String>,
    pub alerting: AlertingConfig,
    pub report: ReportConfig,
    /// Lockout and password rules (`accounts`).
    pub accounts: AccountPolicy,
    /// Who may do what, and what must be signed (`authority`, `signatures`).
    pub authority: Authority,
    /// When the day's audit-head email goes out (UTC), if at all (`audit.daily_head_at_utc`).
    pub audit_head_at: Option<NaiveTime>,
    /// The safety console (`console`).
    pub console: ConsoleConfig,
}

/// One problem of a configuration file: the key, where it is, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    /// Line and column (1-based), where known.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

/// An invalid configuration: every problem found, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(file, issues))]
pub struct ConfigError {
    pub file: String,
    pub issues: Vec<ConfigIssue>,
}

fn render(file: &str, issues: &[ConfigIssue]) -> String {
    let lines: Vec<String> = issues
        .iter()
        .map(|i| {
            let at = i.at.map(|(l, c)| format!("{l}:{c}:")).unwrap_or_default();
            format!("{file}:{at} `{}`: {}", i.key, i.message)
        })
        .collect();
    lines.join("\n")
}

const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

/// Collects the problems of one file, placing each key in the text.
struct Issues<'a> {
    positions: &'a Positions,
    found: Vec<ConfigIssue>,
}

impl Issues<'_> {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        let at = self.positions.value(key);
        self.found.push(ConfigIssue { key: key.to_string(), at, message: message.into() });
    }

    /// A value that came from the environment has no place in the file.
    fn add_from_env(&mut self, key: &str, from_env: bool, message: impl Into<String>) {
        if from_env {
            self.found.push(ConfigIssue { key: key.to_string(), at: None, message: message.into() });
        } else {
            self.add(key, message);
        }
    }

    fn role_known(&mut self, roles: &BTreeMap<String, RoleConfig>, key: &str, role: &str) {
        if !roles.contains_key(role) {
            self.add(key, format!("role `{role}` is not defined under recipients"));
        }
    }
}

/// Files still being written are skipped. Writers should write `name.tmp` (or a dotfile)
/// and rename: a file seen arriving by rename is complete and taken at once. A file
/// written in place is taken once it has stood still (same size and mtime) for the
/// configured settle time and no process on this machine has it open for writing; a
/// line-format file whose last line has no newline waits longer (its writer may be
/// between the halves of a line).
#[derive(Debug, Clone, Copy)]
pub struct Settle {
    /// How long a file written in place must stand still (`inbox_settle`).
    pub quiet: std::time::Duration,
    /// How long a line file without a final newline must stand still (`inbox_unterminated_wait`).
    pub unterminated: std::time::Duration,
}

impl Default for Settle {
    fn default() -> Self {
        Self { quiet: std::time::Duration::from_secs(2), unterminated: std::time::Duration::from_secs(60) }
    }
}

impl Config {
    /// Reads the file, applies `VIGIL_*` environment overrides and parses every key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = crate::rules::read_bounded(path, crate::rules::MAX_RULE_FILE_BYTES)
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
        // serde stops at the first structural problem (a wrong type, an unknown key):
        // that one is reported alone, with serde's own position.
        let positions = Positions::index(text);
        let raw: FileConfig = match serde_path_to_error::deserialize(de) {
            Ok(raw) => raw,
            Err(e) => {
                let key = e.path().to_string();
                let inner = e.into_inner();
                let first = ConfigIssue {
                    at: inner.location().map(|l| (l.line(), l.column())),
                    message: serde_message(&key, &inner.to_string()),
                    key,
                };
                let issues = more_structural_issues(text, first, &positions);
                return Err(ConfigError { file, issues });
            }
        };
        let mut issues = Issues { positions: &positions, found: Vec::new() };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };

        let env_database_url = env("VIGIL_DATABASE_URL");
        let from_env = env_database_url.is_some();
        let database_url = env_database_url.unwrap_or_else(|| resolve_sqlite_url(&raw.database_url, &base));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            issues.add_from_env(
                "database_url",
                from_env,
                format!("`{database_url}` must start with sqlite:, postgres:// or postgresql://"),
            );
        }
        let inbox = env("VIGIL_INBOX").map(PathBuf::from).unwrap_or_else(|| resolve(&raw.inbox));
        let env_http_addr = env("VIGIL_HTTP_ADDR");
        let from_env = env_http_addr.is_some();
        let http_addr: Option<std::net::SocketAddr> =
            match env_http_addr.or(raw.http.addr.clone()).filter(|a| !a.trim().is_empty()) {
                None => None,
                Some(a) => a
                    .trim()
                    .parse()
                    .map_err(|_| {
                        let message = format!("`{a}` is not an address such as 127.0.0.1:8465");
                        issues.add_from_env("http.addr", from_env, message)
                    })
                    .ok(),
            };
        // Tokens and safety data would cross the network in clear.
        if let Some(addr) = http_addr.filter(|a| !a.ip().is_loopback() && !raw.http.allow_plaintext_bind) {
            let source = if from_env { " (from VIGIL_HTTP_ADDR)" } else { "" };
            let message = format!(
                "`{addr}`{source} is not a loopback address and vigil serves plain HTTP: bind to 127.0.0.1 behind a \
                 TLS proxy, or set http.allow_plaintext_bind: true if a TLS proxy or a private network carries it"
            );
            issues.add_from_env("http.addr", from_env, message);
        }
        let email = email_settings(&raw.email, &env, &resolve, &mut issues);
        check_recipients(&raw, &mut issues);
        let alerting = alerting(&raw, &mut issues);
        check_schedule(&raw.study, &mut issues);
        let zones = zones(&raw.study, &mut issues);
        let rescan = raw.rescan_interval_secs.unwrap_or(5);
        if rescan == 0 {
            issues.add("rescan_interval_secs", "must be at least 1");
        }
        if raw.http.max_connections == Some(0) {
            issues.add("http.max_connections", "must be at least 1");
        }
        if raw.http.idle_timeout_secs == Some(0) {
            issues.add("http.idle_timeout_secs", "must be at least 1");
        }
        let report = report(&raw, &resolve, &mut issues);
        let account_policy = accounts::policy(&raw.accounts, &mut issues);
        let authority = accounts::authority(&raw.authority, &raw.signatures, &raw.recipients, &mut issues);
        let audit_head_at = accounts::daily_head_at(&raw.audit, &mut issues);
        let console = console::console(&raw.console, &mut issues);
        let (Some(email), Some(report), true) = (email, report, issues.found.is_empty()) else {
            return Err(ConfigError { file, issues: issues.found });
        };
        Ok(Config {
            source: path.to_path_buf(),
            study: StudyConfig { zones, ..raw.study },
            database_url,
            migrate_at_start: raw.migrate_at_start.unwrap_or(true),
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
            settle: {
                let default = Settle::default();
                let secs = |s: crate::rules::Span| std::time::Duration::from_secs(s.seconds().unsigned_abs());
                Settle {
                    quiet: raw.inbox_settle.map_or(default.quiet, secs),
                    unterminated: raw.inbox_unterminated_wait.map_or(default.unterminated, secs),
                }
            },
            inbox_claim_timeout: std::time::Duration::from_secs(
                raw.inbox_claim_timeout.map_or(120, |s| s.seconds().unsigned_abs()).max(1),
            ),
            clock_interval_secs: raw.clock_interval_secs.unwrap_or(60).max(1),
            http_addr,
            http_token_file: raw.http.token_file.as_deref().map(resolve),
            http_max_body_bytes: raw.http.max_body_bytes.unwrap_or(10 << 20),
            http_max_connections: raw.http.max_connections.unwrap_or(256),
            http_idle_timeout_secs: raw.http.idle_timeout_secs.unwrap_or(60),
            email,
            recipients: raw.recipients,
            default_roles: raw.default_roles,
            alerting,
            report,
            accounts: account_policy,
            authority,
            audit_head_at,
            console,
        })
    }
}

/// serde stops at the first structural problem (a wrong type, an unknown key). To
/// report the others too, the section holding each problem is set aside and the rest
/// read again, until it reads: at most one problem per top-level section, each placed
/// by its key. Value problems are not looked for then: a section set aside would make
/// false ones (a role "not defined" because `recipients` was set aside).
fn more_structural_issues(text: &str, first: ConfigIssue, positions: &Positions) -> Vec<ConfigIssue> {
    let top = |key: &str| key.split(['.', '[']).next().unwrap_or_default().to_string();
    let mut set_aside = vec![top(&first.key)];
    let mut issues = vec![first];
    let Ok(serde_yaml::Value::Mapping(mut doc)) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return issues;
    };
    loop {
        for key in &set_aside {
            doc.remove(key.as_str());
        }
        let Err(e) =
            serde_path_to_error::deserialize::<_, FileConfig>(serde_yaml::Value::Mapping(doc.clone()))
        else {
            issues.sort_by_key(|i| i.at.unwrap_or((usize::MAX, 0)));
            return issues;
        };
        let key = e.path().to_string();
        let section = top(&key);
        // A problem of the whole document (a required section set aside) is not new.
        if section.is_empty() || section == "." || set_aside.contains(&section) {
            issues.sort_by_key(|i| i.at.unwrap_or((usize::MAX, 0)));
            return issues;
        }
        let message = serde_message(&key, &e.into_inner().to_string());
        // An unknown key is shown at the key, a bad value at the value.
        let at = if message.contains("unknown field") { positions.key(&key) } else { None };
        issues.push(ConfigIssue { at: at.or_else(|| positions.value(&key)), key, message });
        set_aside.push(section);
    }
}

fn email_settings(
    raw: &EmailFile,
    env: &impl Fn(&str) -> Option<String>,
    resolve: &impl Fn(&Path) -> PathBuf,
    issues: &mut Issues,
) -> Option<EmailSettings> {
    let env_url = env("VIGIL_SMTP_URL");
    let from_env = env_url.is_some();
    let smtp = match env_url.or_else(|| raw.smtp_url.clone()) {
        None => Some(None),
        Some(url) => match SmtpSettings::parse(&url, env("VIGIL_SMTP_PASSWORD")) {
            Ok(s) => Some(Some(s)),
            Err(e) => {
                issues.add_from_env("email.smtp_url", from_env, e.to_string());
                None
            }
        },
    };
    let from = raw
        .from
        .parse::<Mailbox>()
        .map_err(|_| issues.add("email.from", format!("`{}` is not an email address", raw.from)))
        .ok();
    if raw.retry_initial_secs == 0 || raw.retry_max_secs < raw.retry_initial_secs {
        issues.add("email.retry_initial_secs", "must be at least 1 and at most retry_max_secs");
    }
    if raw.smtp_timeout_secs == 0 {
        issues.add("email.smtp_timeout_secs", "must be at least 1");
    }
    Some(EmailSettings {
        from: from?,
        smtp: smtp?,
        outbox_dir: resolve(&raw.outbox_dir),
        retry: Backoff {
            initial: Duration::from_secs(raw.retry_initial_secs),
            max: Duration::from_secs(raw.retry_max_secs),
        },
        smtp_timeout: Duration::from_secs(raw.smtp_timeout_secs),
        templates_dir: raw.templates_dir.as_deref().map(resolve),
    })
}

fn check_recipients(raw: &FileConfig, issues: &mut Issues) {
    for (role, r) in &raw.recipients {
        let key = format!("recipients.{role}.addresses");
        if r.addresses.is_empty() {
            issues.add(&key, "lists no address");
        }
        for a in &r.addresses {
            if a.parse::<Mailbox>().is_err() {
                issues.add(&key, format!("`{a}` is not an email address"));
            }
        }
    }
    for role in &raw.default_roles {
        issues.role_known(&raw.recipients, "default_roles", role);
    }
}

fn alerting(raw: &FileConfig, issues: &mut Issues) -> AlertingConfig {
    let a = &raw.alerting;
    for (severity, e) in &a.escalation {
        let key = format!("alerting.escalation.{severity}");
        if !SEVERITIES.contains(&severity.as_str()) {
            issues.add(&key, "use critical, warning or info");
        }
        if e.chain.is_empty() || e.after.seconds() <= 0 {
            issues.add(&key, "needs a positive `after` and at least one role in `chain`");
        }
        for role in &e.chain {
            issues.role_known(&raw.recipients, &format!("{key}.chain"), role);
        }
    }
    for (i, r) in a.routes.iter().enumerate() {
        // An unknown severity would silently never match.
        if let Some(severity) = r.severity.as_deref().filter(|s| !SEVERITIES.contains(s)) {
            issues.add(
                &format!("alerting.routes[{i}].severity"),
                format!("`{severity}`: use critical, warning or info"),
            );
        }
        for role in &r.roles {
            issues.role_known(&raw.recipients, &format!("alerting.routes[{i}].roles"), role);
        }
    }
    if let Some(d) = &a.digest {
        for (i, severity) in d.severities.iter().enumerate() {
            if !SEVERITIES.contains(&severity.as_str()) {
                let key = format!("alerting.digest.severities[{i}]");
                issues.add(&key, format!("`{severity}`: use critical, warning or info"));
            }
        }
    }
    let digest = a.digest.as_ref().and_then(|d| {
        let at_utc = NaiveTime::parse_from_str(&d.at_utc, "%H:%M")
            .map_err(|_| {
                issues.add("alerting.digest.at_utc", format!("`{}` is not a time such as 07:00", d.at_utc))
            })
            .ok()?;
        Some(DigestConfig { severities: d.severities.clone(), at_utc })
    });
    let undeliverable = match &a.undeliverable {
        Some(u) => {
            for (i, role) in u.notify.iter().enumerate() {
                if !raw.recipients.contains_key(role) {
                    issues.add(
                        &format!("alerting.undeliverable.notify[{i}]"),
                        format!("unknown role `{role}`"),
                    );
                }
            }
            let d = Undeliverable::default();
            Undeliverable {
                notify: u.notify.clone(),
                fallback: u.fallback.clone(),
                give_up_after: u.give_up_after.unwrap_or(d.give_up_after),
                critical_attempts: u.critical_attempts.map_or(d.critical_attempts, i64::from).max(1),
            }
        }
        None => Undeliverable::default(),
    };
    AlertingConfig {
        group_wait: a.group_wait,
        max_silence: a.max_silence.unwrap_or(DEFAULT_MAX_SILENCE),
        second_person_resolves_critical: a.second_person_resolves_critical,
        undeliverable,
        digest,
        escalation: a.escalation.clone(),
        routes: a.routes.clone(),
    }
}

fn check_schedule(study: &StudyConfig, issues: &mut Issues) {
    let mut seen_visits = Vec::new();
    for (i, v) in study.schedule.iter().enumerate() {
        if v.window_days < 0 {
            issues.add(&format!("study.schedule[{i}].window_days"), "cannot be negative");
        }
        if seen_visits.contains(&v.visit) {
            issues.add(&format!("study.schedule[{i}].visit"), format!("`{}` is scheduled twice", v.visit));
        }
        seen_visits.push(v.visit.clone());
    }
}

/// The study's zone and the sites' overrides, each name checked against the IANA database.
fn zones(study: &StudyConfig, issues: &mut Issues) -> Zones {
    let mut parse = |key: &str, name: &str| match name.trim().parse::<Tz>() {
        Ok(tz) => tz,
        Err(_) => {
            let message = format!("`{name}` is not an IANA time zone name such as Europe/Stockholm or UTC");
            issues.add(key, message);
            Tz::UTC
        }
    };
    let study_zone = study.timezone.as_deref().map_or(Tz::UTC, |n| parse("study.timezone", n));
    let sites = study
        .sites
        .iter()
        .map(|(site, s)| (site.clone(), parse(&format!("study.sites.{site}.timezone"), &s.timezone)))
        .collect();
    Zones { study: study_zone, sites }
}

fn report(
    raw: &FileConfig,
    resolve: &impl Fn(&Path) -> PathBuf,
    issues: &mut Issues,
) -> Option<ReportConfig> {
    let r = &raw.report;
    for role in &r.recipients {
        issues.role_known(&raw.recipients, "report.recipients", role);
    }
    let mut schedule = Vec::new();
    for (i, text) in r.schedule.iter().enumerate() {
        match text.parse::<croner::Cron>() {
            Ok(cron) => schedule.push(ReportSchedule { text: text.clone(), cron }),
            Err(e) => issues.add(&format!("report.schedule[{i}]"), format!("`{text}`: {e}")),
        }
    }
    (schedule.len() == r.schedule.len()).then(|| ReportConfig {
        out_dir: resolve(&r.out_dir),
        infusion_reaction_terms: r.infusion_reaction_terms.clone(),
        recipients: r.recipients.clone(),
        closed: r.closed,
        schedule,
        triggers: r.triggers.clone(),
    })
}

/// serde's message without what the issue says already: the key and the position.
fn serde_message(key: &str, msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    msg.strip_prefix(key).and_then(|m| m.strip_prefix(": ")).unwrap_or(msg).to_string()
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
        assert!(c.email.smtp.is_none());
        assert!(c.http_addr.is_none());
        assert_eq!(c.email.message_domain(), "localhost");
        assert_eq!(c.email.retry, Backoff { initial: Duration::from_secs(5), max: Duration::from_secs(900) });
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
        let smtp = c.email.smtp.unwrap();
        assert_eq!((smtp.host.as_str(), smtp.port, smtp.tls), ("127.0.0.1", 2525, TlsMode::None));
        assert_eq!(c.inbox, PathBuf::from("/data/in"));
        assert_eq!(c.http_addr.unwrap().port(), 9000);
    }

    #[test]
    fn a_plaintext_bind_beyond_loopback_is_refused_unless_allowed() {
        let e = load(&format!("{MINIMAL}http:\n  addr: \"0.0.0.0:8465\"\n"), &[]).unwrap_err().to_string();
        assert!(e.contains("http.addr") && e.contains("not a loopback address"), "{e}");
        let e = load(MINIMAL, &[("VIGIL_HTTP_ADDR", "10.0.0.5:8465")]).unwrap_err().to_string();
        assert!(e.contains("VIGIL_HTTP_ADDR"), "{e}");
        let ok =
            load(&format!("{MINIMAL}http:\n  addr: \"0.0.0.0:8465\"\n  allow_plaintext_bind: true\n"), &[]);
        assert_eq!(ok.unwrap().http_addr.unwrap().port(), 8465);
        assert!(load(&format!("{MINIMAL}http:\n  addr: \"[::1]:8465\"\n"), &[]).is_ok());
    }

    #[test]
    fn time_zones_are_read_and_checked() {
        assert_eq!(load(MINIMAL, &[]).unwrap().study.zones, Zones::default(), "UTC by default");
        let c = load(
            "study:\n  title: T\n  timezone: Europe/Stockholm\n  sites:\n    \"01-701\": {timezone: America/Chicago}\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.study.zones.study, Tz::Europe__Stockholm);
        assert_eq!(c.study.zones.of_site(Some("01-701")), Tz::America__Chicago);
        assert_eq!(c.study.zones.of_site(Some("KS")), Tz::Europe__Stockholm);
        let e = load(
            "study:\n  title: T\n  timezone: Europe/Stokholm\n  sites:\n    KS: {timezone: CEST}\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/etc/vigil/vigil.yaml:3:13: `study.timezone`: `Europe/Stokholm` is not an IANA"),
            "{e}"
        );
        assert!(e.contains("`study.sites.KS.timezone`: `CEST`"), "{e}");
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

    #[test]
    fn values_are_parsed_once_into_their_types() {
        let c = load(
            "study:\n  title: T\nemail:\n  from: \"Safety <vigil@trial.example.org>\"\n  smtp_timeout_secs: 7\n\
             alerting:\n  digest:\n    severities: [info]\n    at_utc: \"06:30\"\n\
             report:\n  schedule: [\"0 6 1 1,7 *\"]\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.email.message_domain(), "trial.example.org");
        assert_eq!(c.email.from.name.as_deref(), Some("Safety"));
        assert_eq!(c.email.smtp_timeout, Duration::from_secs(7));
        assert_eq!(c.alerting.digest.unwrap().at_utc, NaiveTime::from_hms_opt(6, 30, 0).unwrap());
        assert_eq!(c.report.schedule[0].text, "0 6 1 1,7 *");
    }

    #[test]
    fn every_bad_value_is_reported_at_once_with_its_place() {
        let text = "study:\n  title: T\nemail:\n  from: nobody\nalerting:\n  digest:\n    severities: [info, urgent]\n    \
                    at_utc: \"25:99\"\nreport:\n  recipients: [dsmb]\n  schedule: [\"0 6 1 1,7 *\", \"every day\"]\n";
        let e = load(text, &[]).unwrap_err();
        let keys: Vec<&str> = e.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "email.from",
                "alerting.digest.severities[1]",
                "alerting.digest.at_utc",
                "report.recipients",
                "report.schedule[1]"
            ]
        );
        let at: Vec<Option<(usize, usize)>> = e.issues.iter().map(|i| i.at).collect();
        assert_eq!(at[0], Some((4, 9)), "{e}");
        assert_eq!(at[1], Some((7, 24)), "{e}");
        assert_eq!(at[2], Some((8, 13)), "{e}");
        assert_eq!(at[4], Some((11, 29)), "{e}");
        let text = e.to_string();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(
            text.starts_with("/etc/vigil/vigil.yaml:4:9: `email.from`: `nobody` is not an email address"),
            "{text}"
        );
    }

    #[test]
    fn every_structural_problem_is_reported_one_per_section() {
        let text = "study:\n  title: T\nemail:\n  retry_initial_secs: soon\nhttp:\n  adr: x\nemial: {}\n";
        let e = load(text, &[]).unwrap_err();
        let found: Vec<(&str, Option<(usize, usize)>)> =
            e.issues.iter().map(|i| (i.key.as_str(), i.at)).collect();
        assert_eq!(
            found,
            [
                ("email.retry_initial_secs", Some((4, 23))),
                ("http.adr", Some((6, 3))),
                ("emial", Some((7, 1)))
            ],
            "{e}"
        );
    }

    #[test]
    fn the_example_configuration_parses() {
        let c = load(include_str!("../config.example.yaml"), &[]).unwrap();
        assert_eq!(c.email.message_domain(), "trial.example.org");
        assert_eq!(c.alerting.digest.unwrap().at_utc, NaiveTime::from_hms_opt(7, 0, 0).unwrap());
        assert_eq!(c.report.schedule.len(), 1);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff { initial: Duration::from_secs(5), max: Duration::from_secs(60) };
        let waits: Vec<u64> = (0..6).map(|n| b.after(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
    }
}
