//! `vigil selftest --config F`: installation and operational qualification on an installed
//! system. Loads the configuration and rules (as `vigil check`), runs the shipped rule
//! tests of the configured rule folders, checks that the database has every migration
//! (without migrating), and that the mail server answers (or the outbox folder is
//! writable); prints one dated PASS/FAIL line per check, to be filed. Exit 1 on a FAIL.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use vigil::config::Config;
use vigil::store::{Migrations, Store};

/// One check's result.
struct Check {
    name: &'static str,
    passed: bool,
    detail: String,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, passed: true, detail: detail.into() }
    }
    fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, passed: false, detail: detail.into() }
    }
}

pub async fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    println!("vigil selftest (installation / operational qualification)");
    println!("vigil:  {}", super::version());
    println!("host:   {}", host());
    let shown = std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let config_hash = std::fs::read(config_path)
        .map(|b| hex::encode(Sha256::digest(&b)))
        .unwrap_or_else(|e| format!("unreadable: {e}"));
    println!("config: {} (sha256 {config_hash})", shown.display());
    println!("time:   {}", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));

    let mut checks = Vec::new();
    match Config::load(config_path) {
        Err(e) => checks.push(Check::fail("config", one_line(&format!("{e:#}")))),
        Ok(config) => {
            checks.push(Check::pass("config", "valid"));
            checks.push(rules(&config));
            checks.push(rule_tests(&config));
            checks.extend(database(&config).await);
            checks.push(mail(&config).await);
        }
    }
    for c in &checks {
        println!("{}  {:<11} {}", if c.passed { "PASS" } else { "FAIL" }, c.name, c.detail);
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    if failed == 0 {
        println!("result: PASS ({} checks)", checks.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("result: FAIL ({failed} of {} checks failed)", checks.len());
        Ok(ExitCode::from(1))
    }
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Multi-line errors on one line, so the result keeps one line per check.
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ")
}

fn rules(config: &Config) -> Check {
    match vigil::daemon::load_rules(config) {
        Ok(set) => Check::pass("rules", format!("{} rules valid", set.rules.len())),
        Err(e) => Check::fail("rules", one_line(&format!("{e:#}"))),
    }
}

/// The folders whose `*.test.yaml` are the shipped rule tests: each configured rule
/// folder, and for a configured rule file the `tests/` folder beside it.
fn test_folders(config: &Config) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in &config.rules {
        let folder = if p.is_dir() { Some(p.clone()) } else { p.parent().map(|d| d.join("tests")) };
        if let Some(f) = folder.filter(|f| f.is_dir() && !out.contains(f)) {
            out.push(f);
        }
    }
    out
}

fn rule_tests(config: &Config) -> Check {
    let folders = test_folders(config);
    if folders.is_empty() {
        return Check::fail("rule-tests", "no rule folder with tests in the configuration");
    }
    let outcome = vigil::rules::testing::run(&folders);
    let shown = folders.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ");
    if outcome.failed == 0 && outcome.passed > 0 {
        Check::pass("rule-tests", format!("{} passed, 0 failed ({shown})", outcome.passed))
    } else {
        let failures: Vec<&str> = outcome
            .report
            .iter()
            .filter(|l| l.starts_with("FAIL") || l.starts_with("no "))
            .map(String::as_str)
            .collect();
        Check::fail(
            "rule-tests",
            format!(
                "{} passed, {} failed ({shown}): {}",
                outcome.passed,
                outcome.failed,
                failures.join(" | ")
            ),
        )
    }
}

/// The database answers and has every migration; then the checks that need the store.
async fn database(config: &Config) -> Vec<Check> {
    // A missing SQLite file would be created by opening it: say so instead.
    if let Some(path) = config.database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if !Path::new(path).exists() {
            return vec![Check::fail("database", format!("no database file at {path}"))];
        }
    }
    let store = match Store::open(&config.database_url, vigil::clock::Clock::System, Migrations::Check).await
    {
        Ok(s) => s,
        Err(e) => return vec![Check::fail("database", one_line(&format!("{e:#}")))],
    };
    let backend = format!("{:?}", store.backend()).to_lowercase();
    let mut checks = vec![Check::pass("database", format!("{backend}: answers, every migration applied"))];
    checks.extend(with_store(&store).await);
    store.close().await;
    checks
}

/// The checks made on the open store.
///
/// The audit trail's hash chain, walked as `vigil audit verify` does (read-only: nothing
/// is sealed here, so unsealed entries are counted, not checked).
async fn with_store(store: &Store) -> Vec<Check> {
    let check = match store.verify_audit().await {
        Ok(v) => match (&v.first_break, &v.head) {
            (Some(b), _) => Check::fail("audit-chain", format!("{b}")),
            (None, Some((pos, hash))) => Check::pass(
                "audit-chain",
                format!(
                    "{} entries intact, head entry {pos} sha256 {hash}; {} not sealed yet",
                    v.entries, v.unsealed
                ),
            ),
            (None, None) => Check::pass("audit-chain", format!("empty; {} not sealed yet", v.unsealed)),
        },
        Err(e) => Check::fail("audit-chain", format!("{e:#}")),
    };
    vec![check]
}

/// The SMTP server answers a no-op connection (EHLO, NOOP, QUIT; TLS and AUTH as
/// configured); without SMTP, the outbox folder of .eml files is writable.
async fn mail(config: &Config) -> Check {
    match &config.email.smtp {
        Some(settings) => {
            let at = format!("{}:{} ({:?})", settings.host, settings.port, settings.tls);
            let transport = match vigil::notify::transport(settings, config.email.smtp_timeout) {
                Ok(t) => t,
                Err(e) => return Check::fail("smtp", format!("{at}: {e:#}")),
            };
            // The transport's own timeout covers each command; this bounds the whole.
            let limit = config.email.smtp_timeout.saturating_mul(2).max(Duration::from_secs(5));
            match tokio::time::timeout(limit, transport.test_connection()).await {
                Ok(Ok(true)) => Check::pass("smtp", format!("{at} answered")),
                Ok(Ok(false)) => Check::fail("smtp", format!("{at} did not answer NOOP")),
                Ok(Err(e)) => Check::fail("smtp", format!("{at}: {e}")),
                Err(_) => Check::fail("smtp", format!("{at}: no answer within {}s", limit.as_secs())),
            }
        }
        None => {
            let dir = &config.email.outbox_dir;
            let probe = dir.join(format!(".vigil-selftest-{}", std::process::id()));
            let written = std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&probe, b"selftest\n"))
                .and_then(|()| std::fs::remove_file(&probe));
            match written {
                Ok(()) => Check::pass("outbox", format!("no SMTP configured; {} is writable", dir.display())),
                Err(e) => Check::fail("outbox", format!("{}: {e}", dir.display())),
            }
        }
    }
}
