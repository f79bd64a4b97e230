//! The evaluate stage: takes the subjects with new records through the pure evaluator
//! (`rules::eval`), turns findings into alerts (`alerts`) and commits the outcome to the
//! store. The clock pass does what time alone changes: time-driven rules (SAE clocks,
//! overdue visits), cohort judgement, escalations that fell due, silences that expired.

pub mod replay;

use crate::alerts::{self, Router};
use crate::clock::Clock;
use crate::rules::{eval, Rule, RuleSet, ScheduledVisit, Totals};
use crate::store::{AlertRow, CohortContribution, Evaluation, Store};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Subjects evaluated and committed together: one history query and one transaction
/// for all of them, small enough that a new record waits little between two chunks of a
/// backlog (restart p99 2.1-2.6 s at 500, 1.4-2.0 s at 200, same ingest rate; BENCHMARKS.md).
const SUBJECTS_PER_COMMIT: usize = 200;

/// Everything the stage needs; cheap to clone (the store is a pool handle, the rest
/// shared), so the daemon's loops and the HTTP wake handle can each hold one.
#[derive(Clone)]
pub struct Evaluator {
    pub store: Store,
    pub rules: Arc<RuleSet>,
    pub router: Arc<Router>,
    pub schedule: Arc<[ScheduledVisit]>,
    /// The domain of the Message-IDs of queued notifications.
    pub message_domain: String,
    pub clock: Clock,
}

/// Work done before each chunk of a backlog (see [`Evaluator::evaluate_pending_between`]).
pub trait BeforeChunk {
    fn run(&mut self) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

/// Nothing before each chunk.
pub struct NothingFirst;

impl BeforeChunk for NothingFirst {
    async fn run(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Evaluator {
    /// An evaluator that routes to nobody (no recipients, no schedule): for benchmarks and
    /// tests that look at what the rules find, not at who hears of it.
    pub fn unrouted(store: Store, rules: RuleSet, clock: Clock) -> Self {
        Self {
            store,
            rules: Arc::new(rules),
            router: Arc::new(Router::default()),
            schedule: Arc::new([]),
            message_domain: "localhost".into(),
            clock,
        }
    }

    /// Evaluates every subject whose history changed (all rules), then the cohort rules.
    /// Returns the ids of the alerts raised.
    pub async fn evaluate_pending(&self) -> anyhow::Result<Vec<i64>> {
        self.evaluate_pending_then(|_| {}).await
    }

    /// Evaluates only these subjects, if they have records not yet evaluated (the small
    /// files taken between a bulk file's batches: a critical record is not made to wait
    /// for the bulk's backlog, which the pass after the bulk file evaluates).
    pub async fn evaluate_pending_of(
        &self,
        only: &[&str],
        committed: impl FnMut(&[i64]),
    ) -> anyhow::Result<Vec<i64>> {
        let pending = self.store.pending_subjects_of(only).await?;
        self.evaluate_chunks(&pending, self.clock.now(), committed).await
    }

    /// `evaluate_pending`, calling `committed` with the alerts of each chunk as soon as it
    /// is committed: the outbox can send them while a backlog is still being evaluated.
    pub async fn evaluate_pending_then(&self, committed: impl FnMut(&[i64])) -> anyhow::Result<Vec<i64>> {
        self.evaluate_pending_between(&mut NothingFirst, committed).await
    }

    /// `evaluate_pending_then`, running `first` before each chunk of the backlog but the
    /// first: the
    /// daemon takes the small files that arrived meanwhile there, so that a critical record
    /// waits for one chunk of a long backlog (after a restart, say), not for all of it.
    pub async fn evaluate_pending_between(
        &self,
        first: &mut impl BeforeChunk,
        mut committed: impl FnMut(&[i64]),
    ) -> anyhow::Result<Vec<i64>> {
        let as_of = self.clock.now();
        let pending = self.store.pending_subjects().await?;
        let mut raised = Vec::new();
        for (i, chunk) in pending.chunks(SUBJECTS_PER_COMMIT).enumerate() {
            // What arrived while the chunks before were evaluated.
            if i > 0 {
                first.run().await?;
            }
            raised.extend(self.evaluate_chunks(chunk, as_of, &mut committed).await?);
        }
        if !pending.is_empty() {
            let ids = self.judge_cohort(as_of).await?;
            committed(&ids);
            raised.extend(ids);
        }
        Ok(raised)
    }

    /// Evaluates pending subjects (with the record seq each evaluation covers) a chunk at a
    /// time, each chunk committed and reported to `committed` as soon as it is.
    async fn evaluate_chunks(
        &self,
        pending: &[(String, i64)],
        as_of: DateTime<Utc>,
        mut committed: impl FnMut(&[i64]),
    ) -> anyhow::Result<Vec<i64>> {
        let mut raised = Vec::new();
        for chunk in pending.chunks(SUBJECTS_PER_COMMIT) {
            let subjects: Vec<(&str, Option<i64>)> =
                chunk.iter().map(|(s, seq)| (s.as_str(), Some(*seq))).collect();
            let ids = self.evaluate_subjects(&subjects, as_of, Pass::NewRecords).await?;
            committed(&ids);
            raised.extend(ids);
        }
        Ok(raised)
    }

    /// What time alone changes: clock-driven rules (SAE clocks, overdue visits) for every
    /// subject, cohort rules, escalations that fell due, silences that expired. Subjects
    /// marked pending by other means (a person resolved one of their alerts from the command
    /// line) are left to the evaluate stage, which the daemon's clock loop wakes after each
    /// pass: two passes over one backlog would only compete for it.
    pub async fn clock_pass(&self) -> anyhow::Result<Vec<i64>> {
        self.clock_pass_between(&mut NothingFirst).await
    }

    /// `clock_pass`, running `first` before each chunk of subjects but the first: the
    /// daemon takes the small files that arrived meanwhile there, so that a critical record
    /// does not wait for a pass over every subject (at a start, thousands of them).
    pub async fn clock_pass_between(&self, first: &mut impl BeforeChunk) -> anyhow::Result<Vec<i64>> {
        let mut raised = Vec::new();
        let as_of = self.clock.now();
        if self.rules.rules.iter().any(|r| r.kind.is_time_driven()) {
            let all = self.store.subjects().await?;
            for (i, chunk) in all.chunks(SUBJECTS_PER_COMMIT).enumerate() {
                if i > 0 {
                    first.run().await?;
                }
                let subjects: Vec<(&str, Option<i64>)> = chunk.iter().map(|s| (s.as_str(), None)).collect();
                raised.extend(self.evaluate_subjects(&subjects, as_of, Pass::Clock).await?);
            }
        }
        raised.extend(self.judge_cohort(as_of).await?);
        self.escalate_due().await?;
        self.expire_silences().await?;
        Ok(raised)
    }

    /// Evaluates these subjects (with the newest record seq each evaluation covers, if it
    /// clears a pending mark) and commits the outcome in one transaction.
    async fn evaluate_subjects(
        &self,
        subjects: &[(&str, Option<i64>)],
        as_of: DateTime<Utc>,
        pass: Pass,
    ) -> anyhow::Result<Vec<i64>> {
        let _timing = crate::metrics::evaluation_timer(subjects.len());
        let names: Vec<&str> = subjects.iter().map(|(s, _)| *s).collect();
        let histories = self.store.histories(&names).await?;
        let (rules, router, schedule) =
            (Arc::clone(&self.rules), Arc::clone(&self.router), Arc::clone(&self.schedule));
        let now = self.clock.now();
        // The rules are pure CPU work: off the async threads, spread over the cores.
        let judged = tokio::task::spawn_blocking(move || {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let per_thread = histories.len().div_ceil(threads).max(1);
            std::thread::scope(|scope| {
                let parts: Vec<_> = histories
                    .chunks(per_thread)
                    .map(|part| {
                        let (rules, router, schedule) = (&rules, &router, &schedule);
                        scope.spawn(move || {
                            part.iter()
                                .map(|h| judge(rules, router, schedule, h, as_of, now, pass))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                let mut all = Vec::new();
                for part in parts {
                    all.extend(part.join().map_err(|_| anyhow::anyhow!("a rule evaluation panicked"))?);
                }
                anyhow::Ok(all)
            })
        })
        .await??;
        let evaluations: Vec<Evaluation> = subjects
            .iter()
            .zip(judged)
            .map(|(&(subject, up_to_seq), j)| Evaluation {
                pending: up_to_seq.map(|s| (subject, s)),
                subject,
                alerts: j.alerts,
                contributions: j.contributions,
                still_firing: j.still_firing,
            })
            .collect();
        let ids = self.store.commit_evaluations(evaluations, &self.message_domain).await?;
        for id in &ids {
            tracing::info!(alert_id = id, "Alert raised.");
        }
        Ok(ids)
    }

    /// Judges each cohort rule from the stored running totals (a sum per rule).
    async fn judge_cohort(&self, as_of: DateTime<Utc>) -> anyhow::Result<Vec<i64>> {
        let now = self.clock.now();
        let mut e = Evaluation::default();
        for rule in self.rules.rules.iter().filter(|r| r.kind.is_cohort()) {
            let t = self.store.cohort_totals(&rule.id).await?;
            // The running totals never go below zero; a negative sum would be a bug upstream.
            let count = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
            let mut totals = Totals {
                evaluable: count(t.evaluable),
                matching_subjects: count(t.matching),
                events: count(t.events),
                subjects: Vec::new(),
            };
            let mut findings = eval::cohort(rule, &totals, as_of);
            if !findings.is_empty() {
                // Only a firing rule needs the names for its evidence.
                totals.subjects = self.store.cohort_matching_subjects(&rule.id).await?;
                findings = eval::cohort(rule, &totals, as_of);
            }
            e.still_firing.push(alerts::StillFiring {
                rule_id: rule.id.clone(),
                episodes: findings.iter().map(|f| f.episode.clone()).collect(),
                resolved_notice: alerts::resolved_notice(&self.router, rule, None),
            });
            e.alerts
                .extend(findings.into_iter().map(|f| alerts::new_alert(rule, None, f, &self.router, now)));
        }
        if e.still_firing.is_empty() {
            return Ok(Vec::new());
        }
        let ids = self.store.commit_evaluation(e, &self.message_domain).await?;
        for id in &ids {
            tracing::info!(alert_id = id, "Cohort alert raised.");
        }
        Ok(ids)
    }

    /// Escalates every open alert whose time has come to the next role of its chain.
    pub async fn escalate_due(&self) -> anyhow::Result<usize> {
        let mut n = 0;
        for alert in self.store.due_escalations().await? {
            let rule = self.rules.get(&alert.rule_id);
            let Some((after, chain)) = self.router.escalation(rule, alert.severity) else { continue };
            let step = usize::try_from(alert.escalation_step).unwrap_or(0);
            let Some(role) = chain.get(step) else { continue };
            let recipients = self.router.expand(std::slice::from_ref(role));
            let next = (step + 1 < chain.len()).then(|| self.clock.now() + after);
            if self.store.escalate(&alert, &recipients, next, &self.message_domain).await? {
                tracing::warn!(alert_id = alert.id, role = %role, step = step + 1, "Alert escalated.");
                n += 1;
            }
        }
        Ok(n)
    }

    /// Ends expired silences; alerts they kept quiet re-open and are notified now.
    pub async fn expire_silences(&self) -> anyhow::Result<usize> {
        let reopened: Vec<AlertRow> = self.store.expire_silences().await?;
        for a in &reopened {
            let (recipients, escalate_at) = match self.rules.get(&a.rule_id) {
                Some(rule) => (
                    self.router.recipients(rule, a.severity, a.site.as_deref()),
                    self.router.escalation(Some(rule), a.severity).map(|(d, _)| self.clock.now() + d),
                ),
                None => (self.router.default_recipients(), None),
            };
            self.store.notify_reopened(a.id, &recipients, escalate_at, &self.message_domain).await?;
            tracing::info!(alert_id = a.id, "Silence expired; alert re-opened and notified.");
        }
        Ok(reopened.len())
    }
}

/// Which rules a pass evaluates.
#[derive(Debug, Clone, Copy)]
enum Pass {
    /// New records: every rule.
    NewRecords,
    /// Time alone: the rules whose findings change with the clock.
    Clock,
}

impl Pass {
    fn wants(self, rule: &Rule) -> bool {
        match self {
            Pass::NewRecords => true,
            Pass::Clock => rule.kind.is_time_driven(),
        }
    }
}

/// What the rules make of one subject, before the store compares it with what it has.
struct Judged {
    alerts: Vec<alerts::NewAlert>,
    contributions: Vec<CohortContribution>,
    still_firing: Vec<alerts::StillFiring>,
}

fn judge(
    rules: &RuleSet,
    router: &Router,
    schedule: &[ScheduledVisit],
    history: &crate::model::SubjectHistory,
    as_of: DateTime<Utc>,
    now: DateTime<Utc>,
    pass: Pass,
) -> Judged {
    let outcome = eval::subject(rules, history, as_of, schedule, |r| pass.wants(r));
    let mut j = Judged { alerts: Vec::new(), contributions: Vec::new(), still_firing: Vec::new() };
    for eval::RuleFindings { rule, findings } in outcome.findings {
        j.still_firing.push(alerts::StillFiring {
            rule_id: rule.id.clone(),
            episodes: findings.iter().map(|f| f.episode.clone()).collect(),
            resolved_notice: alerts::resolved_notice(router, rule, history.site()),
        });
        j.alerts.extend(findings.into_iter().map(|f| alerts::new_alert(rule, Some(history), f, router, now)));
    }
    j.contributions = outcome
        .contributions
        .into_iter()
        .map(|(rule, c)| CohortContribution {
            rule_id: rule.id.clone(),
            evaluable: c.evaluable,
            matching: c.matching,
            events: i64::from(c.events),
        })
        .collect();
    j
}

/// Wakes the evaluate stage: whoever stores records (the HTTP handler, an import) rings
/// it instead of evaluating inside its own request; the daemon's evaluate loop listens.
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<tokio::sync::Notify>);

impl Wake {
    /// Asks for an evaluation pass soon; rings coalesce while one is pending.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Resolves when someone has rung.
    pub async fn woken(&self) {
        self.0.notified().await;
    }
}

/// Loads the rules named by the configuration, or explains every problem.
pub fn load_rules(config: &crate::config::Config) -> anyhow::Result<crate::rules::RuleSet> {
    let rules = crate::rules::load_rules(&config.rules).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid rules:\n{}", lines.join("\n"))
    })?;
    let mut problems = crate::alerts::Router::new(config).unknown_roles(&rules);
    problems.extend(unscheduled_visits(config, &rules));
    if !problems.is_empty() {
        anyhow::bail!("invalid rules:\n{}", problems.join("\n"));
    }
    Ok(rules)
}

/// Overdue-visit rules that name a visit the schedule does not have (it would never fire).
pub fn unscheduled_visits(config: &crate::config::Config, rules: &crate::rules::RuleSet) -> Vec<String> {
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
