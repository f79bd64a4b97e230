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
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub rules: Arc<RuleSet>,
    pub router: Arc<Router>,
    pub folder: DropFolder,
    pub outbox: Outbox,
    pub clock: Clock,
    evaluator: Evaluator,
    outbox_wake: Arc<Notify>,
    /// Records were stored elsewhere (the HTTP API): evaluate the pending subjects.
    evaluate_wake: Wake,
    /// When this process started (the origin of report schedules).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Inbox entries the watcher saw arriving by rename: complete, taken without settling.
    renamed_in: Arc<Mutex<HashSet<OsString>>>,
    /// Inbox entries that failed, and how many times in a row while the database answered.
    failures: Arc<Mutex<std::collections::HashMap<PathBuf, u32>>>,
}

/// Attempts at a file that fails while the database answers, before it is set aside: the
/// fault is in the file (or the folder), and a retry every few seconds forever would hide it.
const ATTEMPTS_PER_FILE: u32 = 5;

/// Loads the rules named by the configuration, or explains every problem.
pub fn load_rules(config: &Config) -> anyhow::Result<RuleSet> {
    let rules = crate::rules::load_rules(&config.rules).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid rules:\n{}", lines.join("\n"))
    })?;
    let mut problems = Router::new(config).unknown_roles(&rules);
    problems.extend(unscheduled_visits(config, &rules));
    if !problems.is_empty() {
        anyhow::bail!("invalid rules:\n{}", problems.join("\n"));
    }
    Ok(rules)
}

/// Overdue-visit rules that name a visit the schedule does not have (it would never fire).
pub fn unscheduled_visits(config: &Config, rules: &RuleSet) -> Vec<String> {
    let mut out = Vec::new();
    for r in &rules.rules {
        let crate::rules::RuleKind::OverdueVisit(o) = &r.kind else { continue };
        if config.study.schedule.is_empty() {
            out.push(format!(
                "{}:{}:1: rule `{}` needs `study.schedule` in the config",
                r.file.display(),
                r.line,
                r.id
            ));
            continue;
        }
        for v in o.visits.iter().flatten() {
            if !config.study.schedule.iter().any(|s| s.visit.eq_ignore_ascii_case(v)) {
                out.push(format!(
                    "{}:{}:1: rule `{}` watches visit `{v}`, which is not in `study.schedule`",
                    r.file.display(),
                    r.line,
                    r.id
                ));
            }
        }
    }
    out
}

impl App {
    /// The app on the system clock.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::System).await
    }

    /// The app on `clock` (a manual clock in tests), shared by the store and every stage.
    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Self> {
        let rules = Arc::new(load_rules(&config)?);
        let store = Store::connect_with_clock(&config.database_url, clock.clone())
            .await?
            .with_zones(config.study.zones.clone());
        let folder = DropFolder::new(&config.inbox, &config.processed_dir, &config.quarantine_dir)?;
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
        Ok(Self {
            started_at: clock.now(),
            config,
            store,
            rules,
            router,
            folder,
            outbox,
            clock,
            evaluator,
            outbox_wake: Arc::new(Notify::new()),
            evaluate_wake: Wake::default(),
            renamed_in: Arc::default(),
            failures: Arc::default(),
        })
    }

    /// Evaluates every subject with new records and wakes the outbox if anything was raised.
    pub async fn evaluate(&self) -> anyhow::Result<Vec<i64>> {
        self.evaluator
            .evaluate_pending_then(|ids| {
                if !ids.is_empty() {
                    self.outbox_wake.notify_one();
                }
            })
            .await
    }

    /// The evaluate stage (a cheap clone-able handle).
    pub fn evaluator(&self) -> &Evaluator {
        &self.evaluator
    }

    /// The handle that wakes the evaluate loop: lower stages that store records (the
    /// HTTP handler) ring it instead of evaluating themselves.
    pub fn evaluate_wake(&self) -> Wake {
        self.evaluate_wake.clone()
    }

    /// The clock pass: clock-driven rules (SAE clocks, overdue visits), cohort rules,
    /// escalations due, silences expired, reports due.
    pub async fn clock_pass(&self) -> anyhow::Result<Vec<i64>> {
        let raised = self.evaluator.clock_pass().await?;
        let publisher = crate::publish::Publisher::new(&self.store, &self.rules, &self.config);
        if let Err(e) = publisher.run_due(self.started_at, self.clock.now()).await {
            tracing::error!(error = %format!("{e:#}"), "Scheduled report failed; will retry.");
        }
        // Escalations, expired silences and reports queue emails too: let the outbox look.
        self.outbox_wake.notify_one();
        Ok(raised)
    }

    /// One outbox pass: every alert notification and report email that is due.
    pub async fn deliver_outbox(&self) -> anyhow::Result<()> {
        self.outbox.deliver_due().await?;
        Ok(())
    }

    /// Ingests every ready file in the inbox. Returns true if some file was too fresh
    /// to take and the inbox should be looked at again soon.
    pub async fn process_inbox(&self) -> anyhow::Result<bool> {
        let (files, waiting) = self.folder.ready_files(&self.renamed_in())?;
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
    async fn ingest_only(&self, path: &Path, between: &mut impl Between) {
        let error = match self.folder.ingest_file_between(&self.store, path, between).await {
            Ok(_) => {
                self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(path);
                return;
            }
            Err(e) => format!("{e:#}"),
        };
        // A database that does not answer is a reason to wait, not the file's fault.
        if self.store.ping().await.is_err() {
            tracing::error!(file = %path.display(), %error, "Cannot ingest file (database unreachable); will retry.");
            return;
        }
        let attempts = {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = failures.entry(path.to_path_buf()).or_insert(0);
            *n += 1;
            *n
        };
        if attempts < ATTEMPTS_PER_FILE {
            tracing::error!(file = %path.display(), %error, attempts, "Cannot ingest file; will retry.");
            return;
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
        tracing::info!(
            rules = app.rules.rules.len(),
            inbox = %app.config.inbox.display(),
            database = %crate::config::redact(&app.config.database_url),
            email = if app.config.email.smtp.is_some() { "smtp" } else { "files" },
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
        let http = match app.config.http_addr {
            Some(addr) => {
                let state =
                    crate::http::ApiState::from_config(&app.config, app.store.clone(), app.evaluate_wake())?;
                Some(tokio::spawn(crate::http::serve(addr, state)))
            }
            None => None,
        };
        let http_done = async {
            match http {
                Some(h) => h.await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            _ = shutdown => { tracing::info!("Shutting down."); Ok(()) }
            r = inbox => task_exit("inbox", r),
            r = outbox => task_exit("outbox", r),
            r = clock => task_exit("clock", r),
            r = http_done => task_exit("http", r),
        };
        app.store.close().await;
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
        .watch(&app.config.inbox, ::notify::RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", app.config.inbox.display()))?;
    let rescan = Duration::from_secs(app.config.rescan_interval_secs);
    loop {
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

impl Between for SmallFilesFirst<'_> {
    async fn run(&mut self) -> anyhow::Result<()> {
        let (ready, _) = self.app.folder.ready_files(&self.app.renamed_in())?;
        let mut taken = false;
        for small in ready.into_iter().filter(|p| p != self.current && DropFolder::is_small(p)) {
            if self.done.insert(small.clone()) {
                self.app.ingest_only(&small, &mut crate::ingest::Nothing).await;
                taken = true;
            }
        }
        // One evaluation for all of them (it covers the big file's batches so far too).
        if taken {
            self.app.evaluate().await?;
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
    let every = Duration::from_secs(app.config.clock_interval_secs);
    // Long enough to outlast a few slow passes, short enough for a prompt takeover.
    let lease = every.saturating_mul(3).max(Duration::from_secs(30));
    let holder = app.store.instance().to_string();
    let mut held: Option<i64> = None;
    loop {
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
        tokio::time::sleep(every).await;
    }
}

/// The lease of the clock pass (see `clock_loop`).
const CLOCK_LEASE: &str = "clock";

async fn outbox_loop(app: Arc<App>) -> anyhow::Result<()> {
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
