//! Black-box test helpers: a real SMTP server (Debian's python3-aiosmtpd), the real
//! `vigil` binary with a temporary SQLite database, and waiting on conditions.

#![allow(dead_code)]

pub mod browser;

use base64::Engine;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Polls `check` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A received email, decoded.
#[derive(Debug, Clone)]
pub struct Email {
    pub rcpt_to: String,
    pub subject: String,
    pub message_id: String,
    /// The plain-text part, decoded.
    pub body: String,
    /// The HTML part, decoded (empty for a plain message).
    pub html: String,
    pub raw: String,
}

/// Splits a MIME entity into its (unfolded) header block and its decoded body.
fn entity(raw: &str) -> (String, String) {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let head = head.replace("\n ", " ").replace("\n\t", " ");
    let cte = header_in(&head, "Content-Transfer-Encoding");
    let body = if cte.eq_ignore_ascii_case("quoted-printable") {
        decode_qp(body)
    } else if cte.eq_ignore_ascii_case("base64") {
        String::from_utf8_lossy(
            &base64::engine::general_purpose::STANDARD
                .decode(body.replace(['\n', '\r'], ""))
                .unwrap_or_default(),
        )
        .into_owned()
    } else {
        body.to_string()
    };
    (head, body)
}

fn header_in(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

impl Email {
    pub fn parse(raw: &str) -> Email {
        let (head, body) = entity(raw);
        let ctype = header_in(&head, "Content-Type");
        let (mut text, mut html) = (body.clone(), String::new());
        // The first delimiter line names the boundary.
        let delimiter = body.lines().find(|l| l.starts_with("--")).map(str::to_string);
        if let (true, Some(boundary)) = (ctype.to_ascii_lowercase().starts_with("multipart/"), delimiter) {
            for part in body.split(boundary.as_str()).skip(1) {
                let (h, b) = entity(part.trim_start_matches('\n'));
                let t = header_in(&h, "Content-Type");
                if t.starts_with("text/plain") {
                    text = b;
                } else if t.starts_with("text/html") {
                    html = b;
                }
            }
        }
        Email {
            rcpt_to: header_in(&head, "X-RcptTo"),
            subject: decode_words(&header_in(&head, "Subject")),
            message_id: header_in(&head, "Message-ID"),
            body: text,
            html,
            raw: raw.to_string(),
        }
    }
}

fn decode_qp(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`).
fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("=?") {
        out.push_str(&rest[..start]);
        let tail = &rest[start + 2..];
        let parts: Vec<&str> = tail.splitn(3, '?').collect();
        if parts.len() < 3 {
            out.push_str(&rest[start..]);
            return out;
        }
        let Some(end) = parts[2].find("?=") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let text = &parts[2][..end];
        let decoded = if parts[1].eq_ignore_ascii_case("b") {
            String::from_utf8_lossy(
                &base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default(),
            )
            .into_owned()
        } else {
            decode_qp(&text.replace('_', " "))
        };
        out.push_str(&decoded);
        rest = &parts[2][end + 2..];
        // Whitespace between adjacent encoded words is not part of the text.
        if rest.trim_start().starts_with("=?") {
            rest = rest.trim_start();
        }
    }
    out.push_str(rest);
    out
}

/// aiosmtpd, saving every message into a Maildir.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> SmtpServer {
        Self::spawn(port, |maildir| {
            let mut c = Command::new("/usr/bin/python3");
            c.args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir);
            c
        })
    }

    /// A server that answers 550 to every recipient whose address contains "reject".
    pub fn start_rejecting() -> SmtpServer {
        let port = free_port();
        Self::spawn(port, |maildir| {
            let mut c = Command::new("/usr/bin/python3");
            c.arg(format!("{REPO}/tests/fixtures/smtp_reject.py")).arg(port.to_string()).arg(maildir);
            c
        })
    }

    /// Debian's interpreter runs the server: the one that sees python3-aiosmtpd (.ci/run).
    fn spawn(port: u16, command: impl FnOnce(&Path) -> Command) -> SmtpServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let maildir = dir.path().join("mail");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        let child = command(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd (apt-get install python3-aiosmtpd)");
        let server = SmtpServer { port, maildir, child, _dir: dir };
        wait_for("the SMTP server to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        server
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<Email> {
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.maildir.join(d)).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).map(|raw| Email::parse(&raw)).collect()
    }

    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Email> {
        wait_for(&format!("{n} emails"), timeout, || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A vigil deployment in a temporary folder: config, SQLite database, inbox.
pub struct Deployment {
    pub config: PathBuf,
    /// The deployment's database (dropped after the folder's users are gone).
    pub db: TestDatabase,
    pub dir: tempfile::TempDir,
}

/// The database a test runs on: SQLite in the test's folder, or — with
/// `VIGIL_TEST_BACKEND=postgres` (as `.ci/run` runs the integration tests a second time) —
/// a new database on the PostgreSQL server, dropped when the test is done.
pub struct TestDatabase {
    pub url: String,
    postgres: Option<String>,
}

impl TestDatabase {
    pub fn new(dir: &Path, name: &str) -> TestDatabase {
        if std::env::var("VIGIL_TEST_BACKEND").as_deref() != Ok("postgres") {
            return TestDatabase {
                url: format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
                postgres: None,
            };
        }
        Self::postgres()
    }

    /// A new database on the PostgreSQL server whatever the backend under test.
    pub fn postgres() -> TestDatabase {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let db = format!(
            "vigil_t{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            chrono::Utc::now().timestamp_micros()
        );
        psql(&format!("CREATE DATABASE {db}"));
        let base =
            admin_url().rsplit_once('/').map(|(b, _)| b.to_string()).expect("an admin URL with a database");
        TestDatabase { url: format!("{base}/{db}"), postgres: Some(db) }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(db) = &self.postgres {
            psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
    }
}

fn admin_url() -> String {
    std::env::var("VIGIL_TEST_POSTGRES_URL").unwrap_or_else(|_| ADMIN_URL.to_string())
}

/// One statement through psql (synchronous: usable from Drop and from sync helpers).
pub fn psql(sql: &str) {
    let out = Command::new("psql")
        .arg(admin_url())
        .args(["-qAtc", sql])
        .output()
        .expect("psql (PostgreSQL client)");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Deployment {
    /// `smtp_url`: None = .eml files in the outbox folder.
    pub fn new(smtp_url: Option<&str>) -> Deployment {
        Self::with(smtp_url, "")
    }

    /// With extra top-level YAML appended to the configuration (and `alerting:` replaced
    /// when the extra text has its own).
    pub fn with(smtp_url: Option<&str>, extra: &str) -> Deployment {
        Self::with_rules(smtp_url, extra, &format!("{REPO}/rules"))
    }

    /// With its own rules (a file or folder) instead of the shipped pack.
    pub fn with_rules(smtp_url: Option<&str>, extra: &str, rules: &str) -> Deployment {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = TestDatabase::new(dir.path(), "vigil");
        let db_url = db.url.clone();
        let smtp = smtp_url.map(|u| format!("  smtp_url: \"{u}\"\n")).unwrap_or_default();
        // Tests drop files by rename; in-process tests see no rename events, so no settling.
        let settle = if extra.contains("inbox_settle:") {
            ""
        } else {
            "inbox_settle: 0s\ninbox_unterminated_wait: 0s\n"
        };
        let config = format!(
            "study:\n  title: Test study\n  visits: [BL, H2, D7, W4, W12, W24, W48]\n\
             \x20 schedule:\n    - {{visit: D7, day: 7, window_days: 1}}\n    - {{visit: W4, day: 29, window_days: 3}}\n\
             \x20   - {{visit: W12, day: 85, window_days: 7, assessments: [EDSS, MRI]}}\n\
             \x20   - {{visit: W24, day: 169, window_days: 14, assessments: [EDSS]}}\n\
             \x20   - {{visit: W48, day: 337, window_days: 14, assessments: [EDSS, MRI]}}\n\
             database_url: \"{db_url}\"\ninbox: inbox\nrules: [\"{rules}\"]\n\
             rescan_interval_secs: 1\n{settle}\
             email:\n  from: \"vigil <vigil@trial.test>\"\n{smtp}  outbox_dir: outbox\n  retry_initial_secs: 1\n  retry_max_secs: 2\n\
             recipients:\n  safety-officer:\n    addresses: [\"so@trial.test\"]\n\
             \x20 medical-monitor:\n    addresses: [\"mm@trial.test\"]\n\
             \x20 dsmb-chair:\n    addresses: [\"chair@trial.test\"]\n    blinded: false\n\
             default_roles: [safety-officer]\n\
             clock_interval_secs: 1\n\
             audit:\n  daily_head_at_utc: \"off\"\n"
        );
        let alerting =
            if extra.contains("alerting:") { String::new() } else { "alerting:\n  group_wait: 1s\n".into() };
        let config = format!("{config}{alerting}{extra}");
        let path = dir.path().join("vigil.yaml");
        std::fs::write(&path, config).expect("write config");
        Deployment { dir, config: path, db }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn db_url(&self) -> String {
        self.db.url.clone()
    }

    /// Writes `name.tmp`, then renames it into the inbox, as a careful writer does.
    pub fn drop_file(&self, name: &str, content: &str) {
        let inbox = self.path("inbox");
        std::fs::create_dir_all(&inbox).expect("inbox");
        let tmp = inbox.join(format!("{name}.tmp"));
        std::fs::write(&tmp, content).expect("write");
        std::fs::rename(&tmp, inbox.join(name)).expect("rename");
    }

    pub fn processed(&self, name: &str) -> bool {
        self.path("inbox/processed").join(name).exists()
    }

    pub fn processed_count(&self) -> usize {
        std::fs::read_dir(self.path("inbox/processed")).map(|d| d.count()).unwrap_or(0)
    }

    pub fn quarantine_files(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = std::fs::read_dir(self.path("inbox/quarantine"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| {
                        let p = e.path();
                        (
                            p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                            std::fs::read_to_string(&p).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    pub fn start(&self) -> Daemon {
        Daemon::start(self)
    }

    /// Runs a vigil command to completion.
    pub fn vigil(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run vigil")
    }

    /// Runs a vigil command with `stdin` as its input (a password, say).
    pub fn vigil_with_input(&self, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run vigil");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("wait for vigil")
    }

    /// Adds a person with `roles` (comma-separated) and the password [`PASSWORD`].
    pub fn add_user(&self, id: &str, name: &str, roles: &str) {
        let config = self.config.to_str().expect("config path");
        let email = format!("{id}@trial.test");
        let args =
            ["users", "add", id, "--name", name, "--email", &email, "--roles", roles, "--config", config];
        let out = self.vigil_with_input(&args, &format!("{PASSWORD}\n"));
        assert!(out.status.success(), "users add {id}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A new API token of `user` with `scopes` (e.g. "read,operate").
    pub fn token_of(&self, user: &str, scopes: &str) -> String {
        let config = self.config.to_str().expect("config path");
        let out = self.vigil(&[
            "tokens", "add", "--user", user, "--name", "test", "--scopes", scopes, "--config", config,
        ]);
        assert!(out.status.success(), "tokens add: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub async fn store(&self) -> vigil::store::Store {
        vigil::store::Store::connect(&self.db_url()).await.expect("open the test database")
    }
}

/// The password of every person [`Deployment::add_user`] adds.
pub const PASSWORD: &str = "correct horse battery staple";

/// The real binary, running `vigil run`.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(d: &Deployment) -> Daemon {
        let log = d.path(&format!("vigil-{}.log", free_port()));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["run", "--config"])
            .arg(&d.config)
            .env("RUST_LOG", "info")
            .env_remove("VIGIL_SMTP_URL")
            .env_remove("VIGIL_DATABASE_URL")
            .env_remove("VIGIL_INBOX")
            .env_remove("VIGIL_HTTP_ADDR")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start vigil");
        let daemon = Daemon { child, log };
        wait_for("vigil to start", Duration::from_secs(30), || {
            daemon.log_text().contains("vigil started").then_some(())
        });
        daemon
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal (`HUP`, `TERM`, …) to the daemon.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name}");
    }

    /// SIGKILL: a crash, not a clean stop.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// vigil built in-process on a manual clock, against the deployment's real SQLite file
/// and SMTP server: a test drives the passes itself (ingest, evaluate, clock pass,
/// outbox) and moves time forward instead of sleeping.
pub struct InProcess {
    pub app: vigil::daemon::App,
    pub clock: vigil::clock::Clock,
}

impl InProcess {
    /// The app of this deployment, its clock standing at the present moment.
    pub async fn build(d: &Deployment) -> InProcess {
        let config = vigil::config::Config::load(&d.config).expect("the test config loads");
        let clock = vigil::clock::Clock::manual(chrono::Utc::now());
        let app = vigil::daemon::App::build_with_clock(config, clock.clone()).await.expect("the app builds");
        InProcess { app, clock }
    }

    /// Drops a file into the inbox and runs inbox passes until it is taken (the drop
    /// folder waits for a file to settle on disk, in real time), then settles.
    pub async fn ingest(&self, d: &Deployment, name: &str, content: &str) {
        d.drop_file(name, content);
        let start = Instant::now();
        while !d.processed(name) {
            assert!(start.elapsed() < Duration::from_secs(20), "the inbox never took {name}");
            self.app.process_inbox().await.expect("an inbox pass");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.settle().await;
    }

    /// Evaluates what is pending, runs the clock pass, and delivers the outbox until
    /// nothing is due any more (`dispatch_all_pending_emails`).
    pub async fn settle(&self) {
        self.app.evaluate().await.expect("an evaluation pass");
        self.app.clock_pass().await.expect("a clock pass");
        for _ in 0..20 {
            self.app.deliver_outbox().await.expect("an outbox pass");
            if self.app.store.due_notifications(1).await.expect("the outbox").is_empty() {
                return;
            }
        }
        panic!("the outbox did not empty in 20 passes");
    }

    /// Moves the clock forward and settles.
    pub async fn advance(&self, by: Duration) {
        self.clock.advance(chrono::Duration::from_std(by).expect("a short duration"));
        self.settle().await;
    }
}

/// An adverse-event alert on KS-101 (rule ae-grade, episode AE-1) at `level`, a warning
/// to `to` that escalates at once; a test changes what it needs.
pub fn ae_alert(level: i64, to: &vigil::store::Recipient) -> vigil::store::NewAlert {
    vigil::store::NewAlert {
        rule_id: "ae-grade".into(),
        rule_version: "v1".into(),
        subject: "KS-101".into(),
        site: Some("KS".into()),
        episode: "ae:AE-1".into(),
        level,
        severity: vigil::rules::Severity::Warning,
        title: "AE grade".into(),
        summary: "Rash grade".into(),
        evidence: serde_json::json!({"why": "test"}),
        clinical_time: None,
        recipients: vec![to.clone()],
        delivery: vigil::store::FirstNotice {
            notify_at: chrono::DateTime::UNIX_EPOCH,
            group: "rule:ae-grade".into(),
            escalate_at: Some(chrono::DateTime::UNIX_EPOCH),
        },
    }
}

pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A new, empty PostgreSQL database on the server at 127.0.0.1:5432 (override with
/// VIGIL_TEST_POSTGRES_URL): its URL and name.
pub async fn fresh_database() -> (String, String) {
    let admin = std::env::var("VIGIL_TEST_POSTGRES_URL").unwrap_or_else(|_| ADMIN_URL.to_string());
    let name = format!(
        "vigil_test_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (see .ci/run)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    (format!("{base}/{name}"), name)
}

pub async fn drop_database(name: &str) {
    let admin = std::env::var("VIGIL_TEST_POSTGRES_URL").unwrap_or_else(|_| ADMIN_URL.to_string());
    if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&mut conn)
            .await;
    }
}
