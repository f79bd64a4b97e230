//! The daemon: wires the stages together and runs them until told to stop.
//!
//! Tasks: the inbox watcher (notify events plus a periodic rescan, which also covers
//! network file systems where inotify sees nothing), the outbox worker, and the HTTP
//! server. Work left pending by a crash (unevaluated subjects, unsent emails) is picked
//! up at start because it lives in the database, not in memory.
//!
//! Time comes from the app's `Clock`: the system clock in production, a manual one in
//! tests, which then drive the passes (`evaluate`, `clock_pass`, `deliver_outbox`)
//! themselves instead of running the loops.

use crate::alerts::Router;
use crate::clock::Clock;
use crate::config::Config;
use crate::evaluate::{Evaluator, Wake};
use crate::ingest::Between;
use crate::ingest::DropFolder;
use crate::notify::Outbox;
use crate::rules::RuleSet;
use crate::store::Store;
use ::notify::Watcher;
use anyhow::Context;
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

pub struct App {
    /// What the config and rules files say, swapped whole by a reload (SIGHUP, `POST
    /// /v1/reload`): each pass takes the current one at its start and keeps it to its end.
    setup: RwLock<Arc<Setup>>,
    pub store: Store,
    pub folder: DropFolder,
    pub clock: Clock,
    outbox_wake: Arc<Notify>,
    /// Records were stored elsewhere (the HTTP API): evaluate the pending subjects.
    evaluate_wake: Wake,
    /// When this process started (the origin of report schedules).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Inbox entries the watcher saw arriving by rename: complete, taken without settling.
    renamed_in: Arc<Mutex<HashSet<OsString>>>,
    /// Inbox entries that failed, and how many times in a row while the database answered.
    failures: Arc<Mutex<std::collections::HashMap<PathBuf, u32>>>,
    /// The files being written in place and what was last seen of them (size, mtime).
    growing: Mutex<crate::ingest::Settling>,
    /// Set on SIGTERM: each loop finishes the pass it is in and returns.
    stopping: tokio::sync::watch::Sender<bool>,
    /// This replica's name on the inbox files it claims (stable across its restarts).
    holder: String,
    /// Whether the claims left by this replica's previous life were taken back yet.
    recovered_own_claims: std::sync::atomic::AtomicBool,
}

/// The name this replica claims inbox files under: the host and the configuration it runs,
/// so that after a restart it takes back at once what it held when it stopped.
fn inbox_holder(config: &Config) -> String {
    use sha2::{Digest, Sha256};
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect();
    let source = std::fs::canonicalize(&config.source).unwrap_or_else(|_| config.source.clone());
    let digest = Sha256::digest(source.display().to_string().as_bytes());
    format!("{}-{}", if host.is_empty() { "vigil" } else { &host }, &hex::encode(digest)[..8])
}

/// Everything read from the configuration and the rules files: the stages built from them.
/// A reload builds a new one beside the old and swaps it in only if all of it is valid.
pub struct Setup {
    pub config: Config,
    pub rules: Arc<RuleSet>,
    pub router: Arc<Router>,
    pub outbox: Outbox,
    evaluator: Evaluator,
    /// Each file it was read from (config, rules, templates) with its SHA-256.
    pub files: Vec<(PathBuf, String)>,
}

impl Setup {
    fn build(config: Config, store: &Store, clock: &Clock) -> anyhow::Result<Self> {
        let rules = Arc::new(load_rules(&config)?);
        let outbox = Outbox::new(store.clone(), &config)?;
        let router = Arc::new(Router::new(&config));
        let evaluator = Evaluator {
            store: store.clone(),
            rules: rules.clone(),
            router: router.clone(),
            schedule: config.study.schedule.clone().into(),
            message_domain: config.email.message_domain().to_string(),
            clock: clock.clone(),
        };
        let files = fingerprints(&config);
        Ok(Self { config, rules, router, outbox, evaluator, files })
    }
}

/// The files a setup is read from, each with the SHA-256 of its content (the record of
/// what was running when; a file that cannot be read shows as `unreadable`).
fn fingerprints(config: &Config) -> Vec<(PathBuf, String)> {
    use sha2::{Digest, Sha256};
    let mut paths = vec![config.source.clone()];
    for r in &config.rules {
        match std::fs::read_dir(r) {
            Ok(entries) => {
                let mut inner: Vec<PathBuf> =
                    entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
                inner.sort();
                paths.extend(inner);
            }
            Err(_) => paths.push(r.clone()),
        }
    }
    if let Some(dir) = &config.email.templates_dir {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut inner: Vec<PathBuf> =
                entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
            inner.sort();
            paths.extend(inner);
        }
    }
    paths
        .into_iter()
        .map(|p| {
            let hash = std::fs::read(&p)
                .map_or_else(|_| "unreadable".to_string(), |b| hex::encode(Sha256::digest(b)));
            (p, hash)
        })
        .collect()
}

/// What a reload did: applied (with the files now running and the settings that wait for
/// a restart), or refused with every problem, the running setup untouched.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reloaded {
    pub rules: usize,
    pub files: Vec<(String, String)>,
    /// Settings that changed but only take effect at the next start.
    pub needs_restart: Vec<&'static str>,
}

/// Settings read once at start (the database, the folders, the listener).
fn restart_only(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("database_url", old.database_url != new.database_url);
    check("migrate_at_start", old.migrate_at_start != new.migrate_at_start);
    check("inbox", old.inbox != new.inbox);
    check("processed_dir", old.processed_dir != new.processed_dir);
    check("quarantine_dir", old.quarantine_dir != new.quarantine_dir);
    check("http.addr", old.http_addr != new.http_addr);
    check("http.token_file", old.http_token_file != new.http_token_file);
    check("http.max_body_bytes", old.http_max_body_bytes != new.http_max_body_bytes);
    // The store reads times without an offset in these zones.
    check("study.timezone / study.sites", old.study.zones != new.study.zones);
    changed
}

/// Attempts at a file that fails while the database answers, before it is set aside: the
/// fault is in the file (or the folder), and a retry every few seconds forever would hide it.
const ATTEMPTS_PER_FILE: u32 = 5;

pub use crate::evaluate::{load_rules, unscheduled_visits};

impl App {
    /// The app on the system clock.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::System).await
    }

    /// The app on `clock` (a manual clock in tests), shared by the store and every stage.
    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Self> {
        let migrations = if config.migrate_at_start {
            crate::store::Migrations::Apply
        } else {
            crate::store::Migrations::Check
        };
        let store = Store::open(&config.database_url, clock.clone(), migrations)
            .await?
            .with_zones(config.study.zones.clone());
        let folder = DropFolder::new(&config.inbox, &config.processed_dir, &config.quarantine_dir)?;
        let holder = inbox_holder(&config);
        let setup = Setup::build(config, &store, &clock)?;
        store.record_config_load("start", Ok(&setup.files)).await?;
        Ok(Self {
            started_at: clock.now(),
            setup: RwLock::new(Arc::new(setup)),
            store,
            folder,
            clock,
            outbox_wake: Arc::new(Notify::new()),
            evaluate_wake: Wake::default(),
            renamed_in: Arc::default(),
            failures: Arc::default(),
            growing: Mutex::default(),
            stopping: tokio::sync::watch::Sender::new(false),
            holder,
            recovered_own_claims: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The setup in force now (config, rules, router, outbox).
    pub fn setup(&self) -> Arc<Setup> {
        self.setup.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the configuration file again (and the rules and templates it names) and swaps
    /// the new setup in if every part is valid; otherwise the running one stays and the
    /// error names each problem (file:line:col). Either way the attempt is recorded.
    pub async fn reload(&self, by: &str) -> anyhow::Result<Reloaded> {
        let old = self.setup();
        let built = Config::load(&old.config.source)
            .and_then(|config| Setup::build(config, &self.store, &self.clock));
        let new = match built {
            Ok(new) => new,
            Err(e) => {
                let error = format!("{e:#}");
                self.store.record_config_load(by, Err(&error)).await?;
                tracing::error!(by, %error, "Reload refused; the running configuration and rules stay.");
                anyhow::bail!("reload refused, the running configuration and rules stay:\n{error}");
            }
        };
        let reloaded = Reloaded {
            rules: new.rules.rules.len(),
            files: new.files.iter().map(|(p, h)| (p.display().to_string(), h.clone())).collect(),
            needs_restart: restart_only(&old.config, &new.config),
        };
        self.store.record_config_load(by, Ok(&new.files)).await?;
        *self.setup.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        tracing::warn!(
            by,
            rules = reloaded.rules,
            needs_restart = ?reloaded.needs_restart,
            "Configuration and rules reloaded."
        );
        // New rules may find something in what is stored, and new recipients may be due mail.
        self.outbox_wake.notify_one();
        Ok(reloaded)
    }

    /// Evaluates every subject with new records and wakes the outbox if anything was raised.
    pub async fn evaluate(&self) -> anyhow::Result<Vec<i64>> {
        // Before each chunk of a long backlog, the small files that arrived meanwhile are
        // stored and evaluated first: after a restart with thousands of subjects pending, a
        // critical record waits for one chunk, not for the whole backlog.
        let mut done = HashSet::new();
        let mut small_first = SmallFilesFirst { app: self, current: Path::new(""), done: &mut done };
        self.setup()
            .evaluator
            .evaluate_pending_between(&mut small_first, |ids| {
                if !ids.is_empty() {
                    self.outbox_wake.notify_one();
                }
            })
            .await
    }

    /// The evaluate stage of the setup in force (a cheap clone-able handle).
    pub fn evaluator(&self) -> Evaluator {
        self.setup().evaluator.clone()
    }

    /// The handle that wakes the evaluate loop: lower stages that store records (the
    /// HTTP handler) ring it instead of evaluating themselves.
    pub fn evaluate_wake(&self) -> Wake {
        self.evaluate_wake.clone()
    }

    /// The clock pass: clock-driven rules (SAE clocks, overdue visits), cohort rules,
    /// escalations due, silences expired, reports due.
    pub async fn clock_pass(&self) -> anyhow::Result<Vec<i64>> {
        let _timing = crate::metrics::clock_pass_timer();
        let setup = self.setup();
        let mut done = HashSet::new();
        let mut small_first = SmallFilesFirst { app: self, current: Path::new(""), done: &mut done };
        let raised = setup.evaluator.clock_pass_between(&mut small_first).await?;
        if let Err(e) = self.witness_audit_head(&setup).await {
            tracing::error!(error = %format!("{e:#}"), "The day's audit-head email could not be queued; will retry.");
        }
        let publisher = crate::publish::Publisher::new(&self.store, &setup.rules, &setup.config);
        // Schedules count from the first start of any replica on this database, not from
        // this process's: a replica that replaces a dead one still makes the report that
        // fell due between the two.
        let origin = match self.store.first_start().await {
            Ok(Some(first)) => first.min(self.started_at),
            _ => self.started_at,
        };
        if let Err(e) = publisher.run_due(origin, self.clock.now()).await {
            tracing::error!(error = %format!("{e:#}"), "Scheduled report failed; will retry.");
        }
        // Escalations, expired silences and reports queue emails too: let the outbox look.
        self.outbox_wake.notify_one();
        Ok(raised)
    }

    /// Once a day (after `audit.daily_head_at_utc`), the administrators get the audit
    /// trail's head by email: a witness outside the database, so that a rewrite of the whole
    /// chain shows against what was sent. It goes as an info alert (`vigil:audit-head`,
    /// one per day, acknowledged by vigil at once), so it rides the outbox, the retries
    /// and the info digest like any other.
    async fn witness_audit_head(&self, setup: &Setup) -> anyhow::Result<()> {
        let now = self.clock.now();
        let Some(at) = setup.config.audit_head_at.filter(|at| now.time() >= *at) else { return Ok(()) };
        self.store.seal_audit().await?;
        let Some((pos, hash)) = self.store.audit_head().await? else { return Ok(()) };
        let day = now.date_naive();
        let alert = crate::alerts::NewAlert {
            rule_id: crate::audit::HEAD_RULE.into(),
            rule_version: "built-in".into(),
            subject: String::new(),
            site: None,
            episode: format!("day:{day}"),
            level: 1,
            severity: crate::rules::Severity::Info,
            title: format!("Audit trail head on {day}"),
            summary: format!(
                "At {} UTC on {day} the audit trail stood at entry {pos}, SHA-256 {hash}. Keep this email: \
                 `vigil audit verify` on the same database must find this entry with this hash; if it does \
                 not, the trail was rewritten after this email was sent.",
                now.format("%H:%M")
            ),
            evidence: serde_json::json!({ "pos": pos, "sha256": hash, "after": at.format("%H:%M").to_string() }),
            recipients: setup.router.undeliverable_recipients(),
            clinical_time: None,
            delivery: crate::alerts::FirstNotice {
                notify_at: now,
                group: crate::audit::HEAD_RULE.into(),
                escalate_at: None,
            },
        };
        let e = crate::store::Evaluation { subject: "", alerts: vec![alert], ..Default::default() };
        for id in self.store.commit_evaluation(e, setup.config.email.message_domain()).await? {
            self.store
                .transition(
                    id,
                    crate::alerts::Transition::Acknowledge,
                    "vigil",
                    Some("a witness: nothing to do"),
                )
                .await?;
        }
        Ok(())
    }

    /// One outbox pass: every alert notification and report email that is due.
    pub async fn deliver_outbox(&self) -> anyhow::Result<()> {
        self.setup().outbox.deliver_due().await?;
        Ok(())
    }

    /// Ingests every ready file in the inbox. Returns true if some file was too fresh
    /// to take and the inbox should be looked at again soon.
    pub async fn process_inbox(&self) -> anyhow::Result<bool> {
        self.recover_claims();
        let (files, waiting) = self.ready_files()?;
        let mut done = HashSet::new();
        for path in files {
            if done.contains(&path) {
                continue;
            }
            // Between the batches of a bulk file, small files (a site's critical record)
            // that are ready are stored and evaluated first.
            let mut small_first = SmallFilesFirst { app: self, current: &path, done: &mut done };
            self.ingest_one(&path, &mut small_first).await?;
        }
        self.forget_renames_gone();
        Ok(waiting)
    }

    /// Stores, files away and evaluates one inbox file.
    async fn ingest_one(&self, path: &Path, between: &mut impl Between) -> anyhow::Result<()> {
        self.ingest_only(path, between).await;
        self.evaluate().await?;
        Ok(())
    }

    /// Stores and files away one inbox file.
    async fn ingest_only(&self, path: &Path, between: &mut impl Between) -> Vec<String> {
        // Replicas may share the inbox: the one whose rename claims the file reads it.
        let claimed = match self.folder.claim(path, &self.holder) {
            Ok(Some(claimed)) => claimed,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %format!("{e:#}"), "Cannot claim an inbox file; will retry.");
                return Vec::new();
            }
        };
        let error = match self.folder.ingest_file_between(&self.store, &claimed, between).await {
            Ok(outcome) => {
                self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(path);
                return outcome.subjects;
            }
            Err(e) => format!("{e:#}"),
        };
        // Back into the inbox, for this replica or another to try again.
        let path = match self.folder.unclaim(&claimed) {
            Ok(back) => back,
            Err(e) => {
                tracing::error!(file = %claimed.display(), error = %format!("{e:#}"), "Cannot put a failed inbox file back; it returns when its claim is recovered.");
                return Vec::new();
            }
        };
        let path = path.as_path();
        // A database that does not answer is a reason to wait, not the file's fault.
        if self.store.ping().await.is_err() {
            tracing::error!(file = %path.display(), %error, "Cannot ingest file (database unreachable); will retry.");
            return Vec::new();
        }
        let attempts = {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = failures.entry(path.to_path_buf()).or_insert(0);
            *n += 1;
            *n
        };
        if attempts < ATTEMPTS_PER_FILE {
            tracing::error!(file = %path.display(), %error, attempts, "Cannot ingest file; will retry.");
            return Vec::new();
        }
        match self.folder.set_aside(path, &format!("failed {attempts} times: {error}")) {
            Ok(to) => {
                self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(path);
                tracing::error!(file = %path.display(), set_aside = %to.display(), %error, "File set aside after repeated failures; it needs a person.");
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %format!("{e:#}"), "Cannot set a failing file aside.")
            }
        }
        Vec::new()
    }

    /// Marks this replica alive on its claims, and returns to the inbox the files of a
    /// replica that died holding them (and, once, this replica's own from before a restart).
    fn recover_claims(&self) {
        use std::sync::atomic::Ordering;
        let first = !self.recovered_own_claims.swap(true, Ordering::SeqCst);
        // The holder marks itself alive on every inbox pass and between batches.
        let stale = self.setup().config.inbox_claim_timeout;
        if let Err(e) = self.folder.recover_claims(&self.holder, stale, first) {
            tracing::error!(error = %format!("{e:#}"), "Cannot look at the inbox claims; will retry.");
        }
    }

    /// The inbox entries ready to take (see [`DropFolder::ready_files`]).
    fn ready_files(&self) -> anyhow::Result<(Vec<PathBuf>, bool)> {
        let settle = self.setup().config.settle;
        let mut settling = self.growing.lock().unwrap_or_else(|e| e.into_inner());
        self.folder.ready_files(&self.renamed_in(), &mut settling, settle)
    }

    fn renamed_in(&self) -> HashSet<OsString> {
        self.renamed_in.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Names that left the inbox (filed away, renamed out) are forgotten: a new file of
    /// the same name written in place must settle again.
    fn forget_renames_gone(&self) {
        let mut names = self.renamed_in.lock().unwrap_or_else(|e| e.into_inner());
        names.retain(|n| self.folder.inbox.join(n).exists());
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let app = Arc::new(self);
        let setup = app.setup();
        let config = &setup.config;
        tracing::info!(
            rules = setup.rules.rules.len(),
            inbox = %config.inbox.display(),
            database = %crate::config::redact(&config.database_url),
            email = if config.email.smtp.is_some() { "smtp" } else { "files" },
            "vigil started."
        );
        // The outbox first: mail queued before a crash goes out at once. The backlog a crash
        // left pending is evaluated by the inbox loop (rung here), which takes files dropped
        // meanwhile first: the newest records are evaluated first and each chunk's alerts
        // go out as soon as it is committed. The clock loop starts with a pass.
        let outbox = tokio::spawn(outbox_loop(app.clone()));
        app.evaluate_wake.wake();
        let inbox = tokio::spawn(inbox_loop(app.clone()));
        let clock = tokio::spawn(clock_loop(app.clone()));
        let seal = tokio::spawn(seal_loop(app.clone()));
        let (reload_requests, reload_asked) = tokio::sync::mpsc::channel(4);
        let reloads = tokio::spawn(reload_loop(app.clone(), reload_asked));
        let http = match config.http_addr {
            Some(addr) => {
                let state =
                    crate::http::ApiState::from_config(config, app.store.clone(), app.evaluate_wake())?
                        .with_reload(reload_requests);
                let console = match config.console.enabled {
                    true => Some(crate::console::router(crate::console::ConsoleState::new(
                        app.store.clone(),
                        config,
                    )?)),
                    false => None,
                };
                Some(tokio::spawn(crate::http::serve(addr, state, console)))
            }
            None => None,
        };
        // Whatever is still running when the daemon stops is cut off at its next wait: its
        // transaction rolls back and its work resumes at the next start (nothing is lost),
        // and the store can close instead of waiting on a connection held by it.
        let mut running: Vec<tokio::task::AbortHandle> = vec![
            inbox.abort_handle(),
            outbox.abort_handle(),
            clock.abort_handle(),
            seal.abort_handle(),
            reloads.abort_handle(),
        ];
        running.extend(http.as_ref().map(|h| h.abort_handle()));
        let http_done = async {
            match http {
                Some(h) => h.await,
                None => std::future::pending().await,
            }
        };
        let (mut inbox, mut outbox, mut clock) = (inbox, outbox, clock);
        let failed = tokio::select! {
            _ = shutdown => None,
            r = &mut inbox => Some(task_exit("inbox", r)),
            r = &mut outbox => Some(task_exit("outbox", r)),
            r = &mut clock => Some(task_exit("clock", r)),
            r = reloads => Some(task_exit("reload", r)),
            r = seal => Some(task_exit("audit seal", r)),
            r = http_done => Some(task_exit("http", r)),
        };
        let result = match failed {
            Some(r) => r,
            None => {
                // In-flight work (a batch being stored, an evaluation, an email being sent)
                // is finished; each loop stops at its next wait. What would not finish in
                // time is safe anyway: it is in the database and picked up at the next start.
                tracing::info!("Shutting down: finishing the work in progress.");
                app.stopping.send_replace(true);
                let all = async { tokio::join!(inbox, outbox, clock) };
                match tokio::time::timeout(Duration::from_secs(25), all).await {
                    Ok(_) => tracing::info!("Stopped cleanly."),
                    Err(_) => tracing::warn!("Stopped with work in progress; it resumes at the next start."),
                }
                // Another replica takes the clock over now rather than when the lease runs out.
                if let Err(e) = app.store.release_lease(CLOCK_LEASE, app.store.instance()).await {
                    tracing::warn!(error = %format!("{e:#}"), "Cannot release the clock lease; it runs out by itself.");
                }
                Ok(())
            }
        };
        for task in running {
            task.abort();
        }
        if tokio::time::timeout(Duration::from_secs(5), app.store.close()).await.is_err() {
            tracing::warn!("The database connections did not close in time; exiting anyway.");
        }
        result
    }
}

fn task_exit(name: &str, r: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    match r {
        Ok(Ok(())) => anyhow::bail!("the {name} task stopped"),
        Ok(Err(e)) => Err(e.context(format!("the {name} task failed"))),
        Err(e) => anyhow::bail!("the {name} task panicked: {e}"),
    }
}

async fn inbox_loop(app: Arc<App>) -> anyhow::Result<()> {
    // Each event says whether it was a file renamed in (complete: no need to wait).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let renamed_in = app.renamed_in.clone();
    let mut watcher = ::notify::recommended_watcher(move |event: ::notify::Result<::notify::Event>| {
        let renamed = match event {
            Ok(event) => note_rename(&mut renamed_in.lock().unwrap_or_else(|e| e.into_inner()), &event),
            Err(_) => false,
        };
        let _ = tx.send(renamed);
    })
    .context("cannot start the inbox watcher")?;
    watcher
        .watch(&app.folder.inbox, ::notify::RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", app.folder.inbox.display()))?;
    let mut stop = app.stopping.subscribe();
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let rescan = Duration::from_secs(app.setup().config.rescan_interval_secs);
        let waiting = match app.process_inbox().await {
            Ok(w) => w,
            Err(e) => {
                // Usually the database is unreachable: keep the daemon up and try again.
                tracing::error!(error = %format!("{e:#}"), "Inbox pass failed; will retry.");
                true
            }
        };
        let wait = if waiting { Duration::from_millis(350) } else { rescan };
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = app.evaluate_wake.woken() => {
                // Records came in another way (HTTP): evaluate them now.
                if let Err(e) = app.evaluate().await {
                    tracing::error!(error = %format!("{e:#}"), "Evaluation failed; will retry.");
                }
            }
            renamed = rx.recv() => {
                // Let a burst of writes settle, then take them all at once; a file renamed
                // in is complete and taken now.
                if renamed != Some(true) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                while rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Between the batches of a big file: the small files ready meanwhile are stored and
/// filed, then evaluated together (with the big file's batches committed so far, which
/// the evaluation takes first: a bulk file thus costs a critical record about a batch).
struct SmallFilesFirst<'a> {
    app: &'a App,
    current: &'a Path,
    done: &'a mut HashSet<PathBuf>,
}

impl crate::evaluate::BeforeChunk for SmallFilesFirst<'_> {
    async fn run(&mut self) -> anyhow::Result<()> {
        Between::run(self).await
    }
}

impl Between for SmallFilesFirst<'_> {
    async fn run(&mut self) -> anyhow::Result<()> {
        self.app.recover_claims();
        let (ready, _) = self.app.ready_files()?;
        let mut subjects = HashSet::new();
        for small in ready.into_iter().filter(|p| p != self.current && DropFolder::is_small(p)) {
            if self.done.insert(small.clone()) {
                subjects.extend(self.app.ingest_only(&small, &mut crate::ingest::Nothing).await);
            }
        }
        // One evaluation for their subjects only: the big file's batches so far wait for
        // the pass after it, so a critical record does not queue behind the bulk backlog.
        if !subjects.is_empty() {
            let outbox = &self.app.outbox_wake;
            let subjects: Vec<&str> = subjects.iter().map(String::as_str).collect();
            self.app
                .setup()
                .evaluator
                .evaluate_pending_of(&subjects, |ids| {
                    if !ids.is_empty() {
                        outbox.notify_one();
                    }
                })
                .await?;
        }
        Ok(())
    }
}

/// Keeps `renamed_in` up to date with one watcher event: an entry renamed into the inbox
/// (Linux inotify IN_MOVED_TO: `Name(To)`, and `Name(Both)` from→to within the inbox) is
/// complete; one written in place again must settle. Returns whether it was a rename in.
fn note_rename(renamed_in: &mut HashSet<OsString>, event: &::notify::Event) -> bool {
    use ::notify::event::{ModifyKind, RenameMode};
    use ::notify::EventKind;
    let name = |p: Option<&std::path::PathBuf>| p.and_then(|p| p.file_name()).map(OsString::from);
    match event.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => name(event.paths.first()),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => name(event.paths.last()),
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
            for p in &event.paths {
                if let Some(n) = name(Some(p)) {
                    renamed_in.remove(&n);
                }
            }
            None
        }
        _ => None,
    }
    .map(|n| renamed_in.insert(n))
    .is_some()
}

/// Time passing can raise alerts too (a clock runs out, a visit window closes). Replicas
/// on one database take turns through a lease: one runs the clock pass (escalations,
/// silence expiry and report schedules included), renewing the lease each time; when it
/// dies, another takes over once the lease has run out. On SQLite the lease is always granted.
async fn clock_loop(app: Arc<App>) -> anyhow::Result<()> {
    let mut stop = app.stopping.subscribe();
    let holder = app.store.instance().to_string();
    let mut held: Option<i64> = None;
    loop {
        let every = Duration::from_secs(app.setup().config.clock_interval_secs);
        // Long enough to outlast a few slow passes, short enough for a prompt takeover.
        let lease = every.saturating_mul(3).max(Duration::from_secs(30));
        match app.store.try_lease(CLOCK_LEASE, &holder, lease).await {
            Ok(Some(token)) => {
                if held != Some(token) {
                    tracing::info!(%holder, token, "Clock lease taken: this replica runs the clock pass.");
                }
                held = Some(token);
                if let Err(e) = app.clock_pass().await {
                    tracing::error!(error = %format!("{e:#}"), "Clock evaluation failed; will retry.");
                }
            }
            Ok(None) => {
                if held.take().is_some() {
                    tracing::warn!(%holder, "Clock lease lost to another replica.");
                }
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "Cannot take the clock lease; will retry."),
        }
        // Every replica, lease or not: records another replica stored and did not live to
        // evaluate are pending in the database; the evaluate loop takes them.
        app.evaluate_wake.wake();
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Seals new audit entries into the hash chain every second (and a last time at stop), so
/// that the window in which an entry exists unsealed is short.
async fn seal_loop(app: Arc<App>) -> anyhow::Result<()> {
    let mut stop = app.stopping.subscribe();
    loop {
        let stopping = tokio::select! {
            _ = stop.changed() => true,
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
        };
        if let Err(e) = app.store.seal_audit().await {
            tracing::error!(error = %format!("{e:#}"), "Cannot seal the audit trail; will retry.");
        }
        if stopping {
            // Kept pending: the select above ends the daemon when this task returns.
            std::future::pending::<()>().await;
        }
    }
}

/// SIGHUP (`systemctl reload vigil`) and `POST /v1/reload` reload the configuration and
/// rules, one at a time.
async fn reload_loop(
    app: Arc<App>,
    mut asked: tokio::sync::mpsc::Receiver<crate::http::ReloadRequest>,
) -> anyhow::Result<()> {
    #[cfg(unix)]
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    loop {
        #[cfg(unix)]
        let hangup = hangups.recv();
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        tokio::select! {
            Some(()) = hangup => {
                // A refused reload is logged and recorded; the daemon goes on as it was.
                let _ = app.reload("signal:SIGHUP").await;
            }
            Some(request) = asked.recv() => {
                let outcome = app
                    .reload(&request.by)
                    .await
                    .map(|done| serde_json::to_value(done).unwrap_or_default())
                    .map_err(|e| format!("{e:#}"));
                let _ = request.answer.send(outcome);
            }
            else => std::future::pending::<()>().await,
        }
    }
}

/// The lease of the clock pass (see `clock_loop`).
const CLOCK_LEASE: &str = "clock";

async fn outbox_loop(app: Arc<App>) -> anyhow::Result<()> {
    let mut stop = app.stopping.subscribe();
    loop {
        if let Err(e) = app.deliver_outbox().await {
            tracing::error!(error = %format!("{e:#}"), "Outbox pass failed; will retry.");
        }
        let wait = match app.store.next_notification_due().await {
            Ok(Some(due)) => {
                Duration::from_millis((due - app.clock.now_ms()).clamp(50, 30_000).unsigned_abs())
            }
            _ => Duration::from_secs(30),
        };
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = app.outbox_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the platform's watcher really delivers for `x.tmp` written, then renamed to `x`.
    #[test]
    fn a_file_renamed_into_the_inbox_is_noted_as_complete_and_its_temp_name_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher = ::notify::recommended_watcher(move |e: ::notify::Result<::notify::Event>| {
            let _ = tx.send(e);
        })
        .unwrap();
        watcher.watch(dir.path(), ::notify::RecursiveMode::NonRecursive).unwrap();
        std::fs::write(dir.path().join("critical.ndjson.tmp"), "{}").unwrap();
        std::fs::rename(dir.path().join("critical.ndjson.tmp"), dir.path().join("critical.ndjson")).unwrap();
        std::fs::write(dir.path().join("copied.ndjson"), "{}").unwrap();

        let mut renamed_in = HashSet::new();
        let mut renames = 0;
        while let Ok(event) = rx.recv_timeout(Duration::from_millis(500)) {
            renames += usize::from(note_rename(&mut renamed_in, &event.unwrap()));
        }
        assert_eq!(renamed_in, HashSet::from([OsString::from("critical.ndjson")]));
        assert!(renames >= 1);

        // Written in place again after the rename: it must settle like any copy.
        std::fs::write(dir.path().join("critical.ndjson"), "{}\n{}").unwrap();
        while let Ok(event) = rx.recv_timeout(Duration::from_millis(500)) {
            note_rename(&mut renamed_in, &event.unwrap());
        }
        assert!(renamed_in.is_empty(), "{renamed_in:?}");
    }
}
