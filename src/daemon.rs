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
use crate::ingest::DropFolder;
use crate::notify::Outbox;
use crate::rules::RuleSet;
use crate::store::Store;
use ::notify::Watcher;
use anyhow::Context;
use std::sync::Arc;
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
}

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
        let (files, waiting) = self.folder.ready_files()?;
        for path in files {
            if let Err(e) = self.folder.ingest_file(&self.store, &path).await {
                // The file stays in the inbox and is tried again on the next scan.
                tracing::error!(file = %path.display(), error = %format!("{e:#}"), "Cannot ingest file; will retry.");
            }
            self.evaluate().await?;
        }
        Ok(waiting)
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
        // The outbox first: mail queued before a crash goes out while the backlog that the
        // crash left pending is evaluated, and each evaluated chunk's alerts follow at once.
        let outbox = tokio::spawn(outbox_loop(app.clone()));
        app.evaluate().await?;

        app.clock_pass().await?;
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
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = ::notify::recommended_watcher(move |_event: ::notify::Result<::notify::Event>| {
        let _ = tx.send(());
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
            _ = rx.recv() => {
                // Let a burst of events settle, then take them all at once.
                tokio::time::sleep(Duration::from_millis(100)).await;
                while rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Time passing can raise alerts too (a clock runs out, a visit window closes).
async fn clock_loop(app: Arc<App>) -> anyhow::Result<()> {
    let every = Duration::from_secs(app.config.clock_interval_secs);
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = app.clock_pass().await {
            tracing::error!(error = %format!("{e:#}"), "Clock evaluation failed; will retry.");
        }
    }
}

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
