//! Critical-mail latency: from a file landing in the inbox (its rename) to the SMTP server
//! accepting the critical alert email it raises, through the real `vigil run` binary and a
//! real SMTP server (Debian's python3-aiosmtpd), in three scenarios:
//! - **idle**: nothing else to do;
//! - **bulk**: while a bulk NDJSON file (12,500 subjects × 8 visits of routine data) is
//!   read from the same inbox;
//! - **restart**: right after a restart that left a backlog (the daemon killed half-way
//!   through the bulk file: stored records not yet evaluated, the file still in the inbox).
//!
//! Each critical file holds one record of its own subject: a grade 4 infusion-related
//! reaction an hour after a dose (rule `infusion-reaction-severe`). It is written as
//! `x.tmp` and renamed into the inbox, 30 ms apart. The SMTP handler logs `epoch_ms subject`
//! per message; an email is matched to its files by the subject ids it names (grouped alerts
//! count for each subject).
//!
//! `cargo bench --bench latency` (200 alerts, 12,500 bulk subjects);
//! `cargo bench --bench latency -- 50 1000` for a quicker run (alerts, bulk subjects).

use anyhow::Context;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const VISITS: [(&str, i64); 8] =
    [("BL", 0), ("H2", 0), ("D7", 7), ("W4", 29), ("W12", 85), ("W24", 169), ("UNS", 200), ("W48", 337)];
const SPACING: Duration = Duration::from_millis(30);

/// Logs when the server accepted each message and the bench's subject ids it names (an
/// email may group several alerts).
const SMTP_SCRIPT: &str = r#"
import email, re, sys, time
from email import policy
from aiosmtpd.controller import Controller

port, log = int(sys.argv[1]), sys.argv[2]

class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        text = str(msg.get("subject", ""))
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                text += " " + part.get_content()
        ids = sorted(set(re.findall(r"CRIT-[A-Z]+[0-9]+", text)))
        with open(log, "a") as f:
            f.write(f"{int(time.time() * 1000)} {' '.join(ids)}\n")
        return "250 OK"

Controller(Handler(), hostname="127.0.0.1", port=port).start()
while True:
    time.sleep(3600)
"#;

fn epoch_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Smtp {
    _child: Killed,
    port: u16,
    log: PathBuf,
}

impl Smtp {
    fn start(dir: &Path) -> anyhow::Result<Smtp> {
        let script = dir.join("smtp_log.py");
        std::fs::write(&script, SMTP_SCRIPT)?;
        let port = free_port()?;
        let log = dir.join("accepted.log");
        let child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&log)
            .stdout(Stdio::null())
            .spawn()
            .context("start python3 (apt-get install python3-aiosmtpd)")?;
        let child = Killed(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(start.elapsed() < Duration::from_secs(20), "the SMTP server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Smtp { _child: child, port, log })
    }

    /// Subject id → when its first email was accepted.
    fn accepted(&self) -> HashMap<String, i64> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = HashMap::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let Some(Ok(ms)) = words.next().map(str::parse::<i64>) else { continue };
            for id in words {
                out.entry(id.to_string()).or_insert(ms);
            }
        }
        out
    }
}

/// A deployment: config, database, inbox in a temp dir.
struct Deployment {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Deployment {
    fn new(smtp_port: u16) -> anyhow::Result<Deployment> {
        let dir = tempfile::tempdir()?;
        let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/msc-progressive-ms.yaml");
        let config = format!(
            "study:\n  title: Latency bench\n  visits: [BL, H2, D7, W4, W12, W24, W48]\n\
             \x20 schedule:\n    - {{visit: D7, day: 7, window_days: 1}}\n    - {{visit: W4, day: 29, window_days: 3}}\n\
             \x20   - {{visit: W12, day: 85, window_days: 7, assessments: [EDSS, MRI]}}\n\
             \x20   - {{visit: W24, day: 169, window_days: 14, assessments: [EDSS]}}\n\
             \x20   - {{visit: W48, day: 337, window_days: 14, assessments: [EDSS, MRI]}}\n\
             database_url: \"sqlite://vigil.db\"\ninbox: inbox\nrules: [\"{rules}\"]\n\
             rescan_interval_secs: 5\nclock_interval_secs: 60\n\
             email:\n  from: \"vigil <vigil@trial.test>\"\n  smtp_url: \"smtp://127.0.0.1:{smtp_port}\"\n\
             \x20 outbox_dir: outbox\n  retry_initial_secs: 1\n  retry_max_secs: 2\n\
             recipients:\n  safety-officer:\n    addresses: [\"so@trial.test\"]\n\
             \x20 medical-monitor:\n    addresses: [\"mm@trial.test\"]\n\
             \x20 dsmb-chair:\n    addresses: [\"chair@trial.test\"]\n    blinded: false\n\
             default_roles: [safety-officer]\n"
        );
        let path = dir.path().join("vigil.yaml");
        std::fs::write(&path, config)?;
        std::fs::create_dir_all(dir.path().join("inbox"))?;
        Ok(Deployment { dir, config: path })
    }

    fn inbox(&self) -> PathBuf {
        self.dir.path().join("inbox")
    }

    /// `vigil run` (the binary named by `VIGIL_BIN`, else this build's); its log goes to `daemon-N.log`.
    fn start(&self, n: usize) -> anyhow::Result<Killed> {
        let log = std::fs::File::create(self.dir.path().join(format!("daemon-{n}.log")))?;
        let bin = std::env::var_os("VIGIL_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_vigil").into());
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .env_remove("VIGIL_SMTP_URL")
            .env_remove("VIGIL_DATABASE_URL")
            .env_remove("VIGIL_INBOX")
            .env_remove("VIGIL_HTTP_ADDR")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start vigil run")?;
        Ok(Killed(child))
    }

    /// Drops `name` with `text` the safe way: written as `.tmp`, then renamed in.
    fn drop_file(&self, name: &str, text: &str) -> anyhow::Result<i64> {
        let tmp = self.inbox().join(format!("{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.inbox().join(name))?;
        Ok(epoch_ms())
    }

    fn processed(&self, name: &str) -> bool {
        self.inbox().join("processed").join(name).exists()
    }

    fn record_count(&self) -> anyhow::Result<i64> {
        let url = format!("sqlite://{}", self.dir.path().join("vigil.db").display());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let store = vigil::store::Store::connect(&url).await?;
            let n = store.record_count().await;
            store.close().await;
            n
        })
    }
}

fn day(offset: i64) -> chrono::NaiveDate {
    chrono::Utc::now().date_naive() + chrono::Duration::days(offset)
}

/// Routine visits (no alert expected): the schedule kept, EDSS stable, normal labs, a
/// clean MRI. The first dose was 340 days ago, so no visit is overdue.
fn bulk_file(path: &Path, subjects: usize) -> anyhow::Result<usize> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (visit, offset) in VISITS {
        for s in 0..subjects {
            let date = day(offset - 340);
            let dose = if visit == "BL" {
                format!(
                    r#""doses":[{{"start":"{date}T09:00:00Z","end":"{date}T09:40:00Z","product":"MSC"}}],"#
                )
            } else {
                String::new()
            };
            writeln!(
                out,
                concat!(
                    r#"{{"subject":"BULK-{s:06}","site":"B{site}","arm":"{arm}","visit":"{visit}","date":"{date}","#,
                    r#""record_id":"bulk-{s}-{visit}",{dose}"#,
                    r#""vitals":[{{"time":"{date}T10:00:00Z","systolic_bp":{sbp},"diastolic_bp":78,"heart_rate":70,"temperature_c":36.8,"spo2":98}}],"#,
                    r#""labs":[{{"test":"ALT","value":{alt},"unit":"U/L","high":40,"time":"{date}T08:00:00Z"}}],"#,
                    r#""scores":[{{"name":"EDSS","value":4.0}}],"#,
                    r#""mri":{{"date":"{date}","t2_new_or_enlarging":0,"gd_enhancing":0}}}}"#
                ),
                s = s,
                site = s % 5,
                arm = if s % 2 == 0 { "MSC" } else { "placebo" },
                visit = visit,
                date = date,
                dose = dose,
                sbp = 110 + s % 20,
                alt = 18 + s % 15,
            )?;
        }
    }
    out.flush()?;
    Ok(subjects * VISITS.len())
}

/// One record that raises a critical alert for its own subject.
fn critical_record(subject: &str) -> String {
    let now = chrono::Utc::now();
    let t = |h: i64| (now - chrono::Duration::hours(h)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    format!(
        concat!(
            r#"{{"subject":"{s}","site":"KS","arm":"MSC","visit":"BL","date":"{date}","record_id":"{s}-bl","#,
            r#""doses":[{{"start":"{dose}","end":"{dose_end}","product":"autologous BM-MSC"}}],"#,
            r#""adverse_events":[{{"id":"AE-1","term":"Infusion related reaction","onset":"{onset}","grade":4,"#,
            r#""serious":false,"related":"probable"}}]}}"#,
            "\n"
        ),
        s = subject,
        date = now.date_naive(),
        dose = t(3),
        dose_end = t(2),
        onset = t(1),
    )
}

/// Drops `n` critical files 30 ms apart; returns subject → landing time.
fn drop_criticals(d: &Deployment, tag: &str, n: usize) -> anyhow::Result<HashMap<String, i64>> {
    let mut landed = HashMap::new();
    for i in 0..n {
        let subject = format!("CRIT-{tag}{i:04}");
        let at = d.drop_file(&format!("{subject}.ndjson"), &critical_record(&subject))?;
        landed.insert(subject, at);
        std::thread::sleep(SPACING);
    }
    Ok(landed)
}

/// Waits for every subject's email (or the timeout), then prints the latencies.
fn report(scenario: &str, smtp: &Smtp, landed: &HashMap<String, i64>, timeout: Duration) {
    let start = Instant::now();
    let mut accepted = smtp.accepted();
    while landed.keys().any(|s| !accepted.contains_key(s)) && start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(200));
        accepted = smtp.accepted();
    }
    let mut ms: Vec<i64> = landed.iter().filter_map(|(s, at)| accepted.get(s).map(|acc| acc - at)).collect();
    ms.sort_unstable();
    let missing = landed.len() - ms.len();
    if ms.is_empty() {
        println!("{scenario:<8} no critical email arrived ({missing} missing)");
        return;
    }
    let pct = |p: f64| ms[(((ms.len() as f64) * p).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "{scenario:<8} n={:<4} p50 {:>6} ms   p99 {:>6} ms   max {:>6} ms   min {:>5} ms{}",
        ms.len(),
        pct(0.50),
        pct(0.99),
        ms[ms.len() - 1],
        ms[0],
        if missing > 0 {
            format!("   ({missing} missing after {}s)", timeout.as_secs())
        } else {
            String::new()
        }
    );
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let start = Instant::now();
    while !done() {
        anyhow::ensure!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(start.elapsed())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; numbers are ours.
    let numbers: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let alerts = numbers.first().copied().unwrap_or(200);
    let subjects = numbers.get(1).copied().unwrap_or(12_500);
    let timeout = Duration::from_secs(60);
    println!(
        "critical alerts: {alerts}, {SPACING:?} apart; bulk: {subjects} subjects × {} visits",
        VISITS.len()
    );

    let scratch = tempfile::tempdir()?;
    let bulk = scratch.path().join("bulk.ndjson");
    let records = bulk_file(&bulk, subjects)?;
    let bulk_text = std::fs::read_to_string(&bulk)?;

    // (a) idle
    {
        let smtp = Smtp::start(scratch.path())?;
        let d = Deployment::new(smtp.port)?;
        let _daemon = d.start(0)?;
        std::thread::sleep(Duration::from_secs(2));
        let landed = drop_criticals(&d, "A", alerts)?;
        report("idle", &smtp, &landed, timeout);
    }

    // (b) while the bulk file is read from the same inbox
    {
        let dir = tempfile::tempdir()?;
        let smtp = Smtp::start(dir.path())?;
        let d = Deployment::new(smtp.port)?;
        let _daemon = d.start(0)?;
        std::thread::sleep(Duration::from_secs(2));
        let started = Instant::now();
        d.drop_file("bulk.ndjson", &bulk_text)?;
        std::thread::sleep(Duration::from_millis(500));
        let landed = drop_criticals(&d, "B", alerts)?;
        let bulk_busy = d.processed("bulk.ndjson");
        report("bulk", &smtp, &landed, timeout);
        wait_until("the bulk file", Duration::from_secs(900), || d.processed("bulk.ndjson"))?;
        println!(
            "         bulk file of {records} records filed {:.1} s after it landed{}",
            started.elapsed().as_secs_f64(),
            if bulk_busy { " (before the last critical file landed)" } else { "" }
        );
    }

    // (c) right after a restart with a backlog
    {
        let dir = tempfile::tempdir()?;
        let smtp = Smtp::start(dir.path())?;
        let d = Deployment::new(smtp.port)?;
        let mut daemon = d.start(0)?;
        std::thread::sleep(Duration::from_secs(2));
        d.drop_file("bulk.ndjson", &bulk_text)?;
        let half = (records / 2) as i64;
        wait_until("half the bulk file stored", Duration::from_secs(900), || {
            d.record_count().unwrap_or_default() >= half || d.processed("bulk.ndjson")
        })?;
        let _ = daemon.0.kill();
        let _ = daemon.0.wait();
        let stored = d.record_count()?;
        let _daemon = d.start(1)?;
        let landed = drop_criticals(&d, "C", alerts)?;
        report("restart", &smtp, &landed, timeout);
        println!(
            "         backlog: {stored} of {records} records stored, bulk file {}",
            if d.processed("bulk.ndjson") { "filed" } else { "still being read" }
        );
    }
    Ok(())
}
