//! The one outbox worker: sends due notifications (alert notices and DSMB report emails),
//! retries with exponential backoff on connection failures and 4xx replies, stops on 5xx
//! and records why. Alert notifications that are pending together for the same recipient
//! and rule (or digest) go out as one email.

use super::message;
use super::render::{alert_context, Templates};
use super::smtp::{Mailer, SendError};
use crate::config::{Backoff, Config};
use crate::store::{Delivery, Notice, NotificationKind, NotificationRow, ReportKind, Store};
use lettre::message::Mailbox;
use std::time::Duration;

/// The rule id of the internal alert raised when an email cannot be delivered.
pub const UNDELIVERABLE: &str = "vigil:undeliverable-email";

pub struct Outbox {
    pub store: Store,
    /// Who hears of an undeliverable email, and the retry bounds.
    pub router: crate::alerts::Router,
    /// The domain of Message-IDs of the internal alerts it queues.
    pub message_domain: String,
    pub mailer: Mailer,
    pub templates: Templates,
    pub from: Mailbox,
    pub study_title: String,
    pub retry: Backoff,
    /// How long a claimed notification stays this replica's: longer than one send can
    /// take (a few SMTP timeouts), short enough that a dead replica's email is soon taken over.
    pub claim_for: Duration,
}

/// Notifications (or groups) sent per pass at most: the loop looks at the clock and the
/// wake-ups between passes.
const PER_PASS: usize = 100;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Emails accepted by the server (a grouped email counts once).
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
}

impl Outbox {
    /// The outbox the configuration describes: its mailer, templates, sender and retries.
    pub fn new(store: Store, config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            store,
            router: crate::alerts::Router::new(config),
            message_domain: config.email.message_domain().to_string(),
            mailer: super::mailer(&config.email)?,
            templates: Templates::load(config.email.templates_dir.as_deref())?
                .in_zone(config.study.zones.study)
                .with_console(config.console.base_url.clone()),
            from: config.email.from.clone(),
            study_title: config.study.title.clone(),
            retry: config.email.retry,
            claim_for: config.email.smtp_timeout.saturating_mul(4) + Duration::from_secs(10),
        })
    }

    /// Backoff before attempt `attempts + 1`, in seconds: initial × 2^attempts, capped.
    pub fn backoff_secs(&self, attempts: i64) -> u64 {
        self.retry.after(attempts).as_secs()
    }

    /// One pass over every due notification, alert and report emails alike.
    pub async fn deliver_due(&self) -> anyhow::Result<Pass> {
        self.deliver_due_of(None).await
    }

    /// One pass over the due notifications, only those of `kind` if given. Each is claimed
    /// (with the rest of its group) before it is sent, one at a time, so that replicas
    /// sharing the database send disjoint notifications, most urgent first, and a claim
    /// outlives one send only.
    pub async fn deliver_due_of(&self, kind: Option<NotificationKind>) -> anyhow::Result<Pass> {
        let mut pass = Pass::default();
        for _ in 0..PER_PASS {
            let group = self.store.claim_next_due(kind, self.claim_for).await?;
            let Some(n) = group.first().cloned() else { break };
            let outcome = self.send(&group).await;
            let outcome = self.settle(&n, outcome).await;
            match &outcome {
                Delivery::Sent => {
                    pass.sent += 1;
                    tracing::info!(notification_id = n.id, about = ?n.about, role = %n.role, alerts = group.len(), kind = %n.kind, "Notification sent.");
                }
                Delivery::Retry { error, .. } => {
                    pass.retrying += 1;
                    tracing::warn!(notification_id = n.id, attempt = n.attempts + 1, %error, "Notification not delivered; will retry.");
                }
                Delivery::Failed { error } => {
                    pass.failed += 1;
                    tracing::error!(notification_id = n.id, about = ?n.about, %error, "Notification failed permanently.");
                }
            }
            for g in &group {
                if !self.store.record_delivery(g.id, &outcome).await? {
                    // Our claim ran out (a send slower than `claim_for`) and another replica
                    // took the row: its outcome stands; this one may have been a duplicate.
                    tracing::warn!(
                        notification_id = g.id,
                        "Notification claimed by another replica meanwhile; its outcome not recorded here."
                    );
                }
            }
            if let Delivery::Failed { error } = &outcome {
                self.raise_undeliverable(&n, error).await?;
            }
        }
        Ok(pass)
    }

    /// Bounds the outcome of an attempt: an email about a critical alert is tried again
    /// after a 5xx up to `critical_attempts` times; one that has waited past
    /// `give_up_after` is given up, so that its failure is raised instead of retried forever.
    async fn settle(&self, n: &NotificationRow, outcome: Delivery) -> Delivery {
        let policy = self.router.undeliverable();
        match outcome {
            Delivery::Failed { error }
                if n.attempts + 1 < policy.critical_attempts && self.is_critical(n).await =>
            {
                self.retry(n.attempts, error)
            }
            Delivery::Retry { error, .. }
                if self.store.now() - n.created_at >= policy.give_up_after.chrono() =>
            {
                Delivery::Failed { error: format!("given up after {}: {error}", policy.give_up_after) }
            }
            other => other,
        }
    }

    async fn is_critical(&self, n: &NotificationRow) -> bool {
        match n.about {
            Notice::Alert(id) => {
                matches!(self.store.alert(id).await, Ok(Some(a)) if a.severity == crate::rules::Severity::Critical)
            }
            Notice::Report(_) => false,
        }
    }

    /// A notification failed for good: a critical internal alert tells the administrators
    /// and the fallback address, through the same outbox. (If that one fails too, it is
    /// logged and shown by `/readyz`, not raised again: no loop.)
    async fn raise_undeliverable(&self, n: &NotificationRow, error: &str) -> anyhow::Result<()> {
        let about = match n.about {
            Notice::Alert(id) => match self.store.alert(id).await? {
                Some(a) if a.rule_id == UNDELIVERABLE => {
                    tracing::error!(
                        notification_id = n.id,
                        "The notice of an undeliverable email failed too."
                    );
                    return Ok(());
                }
                Some(a) => format!("alert #{} ({}, {})", a.id, a.severity.as_str(), a.title),
                None => format!("alert #{id}"),
            },
            Notice::Report(id) => format!("DSMB report #{id}"),
        };
        let now = self.store.now();
        let alert = crate::alerts::NewAlert {
            rule_id: UNDELIVERABLE.into(),
            rule_version: "built-in".into(),
            subject: String::new(),
            site: None,
            episode: format!("notification:{}", n.id),
            level: 1,
            severity: crate::rules::Severity::Critical,
            title: "A safety email could not be delivered".into(),
            summary: format!(
                "The email about {about} to {} ({}) was not delivered after {} attempt(s): {error}. \
                 Resend it with `vigil notifications retry {}` once the cause is fixed.",
                n.role,
                n.recipient,
                n.attempts + 1,
                n.id
            ),
            evidence: serde_json::json!({"notification_id": n.id, "recipient": n.recipient, "role": n.role, "error": error}),
            recipients: self.router.undeliverable_recipients(),
            clinical_time: None,
            delivery: crate::alerts::FirstNotice {
                notify_at: now,
                group: UNDELIVERABLE.into(),
                escalate_at: None,
            },
        };
        let e = crate::store::Evaluation { subject: "", alerts: vec![alert], ..Default::default() };
        let ids = self.store.commit_evaluation(e, &self.message_domain).await?;
        tracing::error!(notification_id = n.id, alert_ids = ?ids, "Undeliverable email raised as an internal alert.");
        Ok(())
    }

    /// Builds and sends one email for a group of notifications to one recipient.
    async fn send(&self, group: &[NotificationRow]) -> Delivery {
        let Some(first) = group.first() else {
            return Delivery::Failed { error: "empty group".into() };
        };
        let message = match first.about {
            Notice::Report(report_id) => self.report_message(first, report_id).await,
            Notice::Alert(_) => self.alert_message(group).await,
        };
        let message = match message {
            Ok(m) => m,
            Err(outcome) => return outcome,
        };
        match self.mailer.send(message).await {
            Ok(()) => Delivery::Sent,
            Err(SendError::Permanent(error)) => Delivery::Failed { error },
            Err(SendError::Transient(error)) => self.retry(first.attempts, error),
        }
    }

    /// The email about one or more alerts; the outcome to record when it cannot be made.
    async fn alert_message(&self, group: &[NotificationRow]) -> Result<lettre::Message, Delivery> {
        let attempts = group.first().map_or(0, |n| n.attempts);
        let mut alerts = Vec::new();
        let listed = group.len().min(super::message::ALERTS_PER_EMAIL);
        for n in &group[..listed] {
            let Notice::Alert(alert_id) = n.about else {
                return Err(Delivery::Failed {
                    error: format!("notification {} is not about an alert", n.id),
                });
            };
            match self.store.alert(alert_id).await {
                Ok(Some(a)) => {
                    // The arm is looked up only for an unblinded recipient, and
                    // alert_context drops it for a blinded one whatever is passed.
                    let arm = if n.blinded || a.subject.is_empty() {
                        None
                    } else {
                        self.store.history(&a.subject).await.ok().and_then(|h| h.arm().map(str::to_string))
                    };
                    let mut context = alert_context(&a, n.blinded, arm.as_deref());
                    context.signatures = match self.store.alert_events(alert_id).await {
                        Ok(events) => events
                            .iter()
                            .filter_map(|e| e.signature.as_ref())
                            .map(|s| format!("{} {}", s.action, s.line()))
                            .collect(),
                        Err(e) => {
                            return Err(
                                self.retry(attempts, format!("cannot read alert {alert_id}'s history: {e}"))
                            )
                        }
                    };
                    alerts.push(context);
                }
                Ok(None) => {
                    return Err(Delivery::Failed { error: format!("alert {alert_id} does not exist") })
                }
                Err(e) => return Err(self.retry(attempts, format!("cannot read alert {alert_id}: {e}"))),
            }
        }
        message::build(&self.templates, group, &alerts, group.len() - listed, &self.from, &self.study_title)
            .map_err(|e| Delivery::Failed { error: format!("cannot build the message: {e}") })
    }

    /// The email carrying one archived report.
    async fn report_message(&self, n: &NotificationRow, report_id: i64) -> Result<lettre::Message, Delivery> {
        let report = match self.store.report(report_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(Delivery::Failed { error: format!("report {report_id} does not exist") }),
            Err(e) => return Err(self.retry(n.attempts, format!("cannot read report {report_id}: {e}"))),
        };
        // Blinding: a closed report is only ever queued for an unblinded role (publish);
        // should a row say otherwise, it is refused here rather than sent.
        if report.kind == ReportKind::Closed && n.blinded {
            return Err(Delivery::Failed {
                error: format!("report {report_id} is closed and {} is blinded", n.recipient),
            });
        }
        message::report(&report, &n.recipient, &n.message_id, &self.from, &self.study_title)
            .map_err(|e| Delivery::Failed { error: format!("cannot build the message: {e:#}") })
    }

    fn retry(&self, attempts: i64, error: String) -> Delivery {
        Delivery::Retry { at_ms: self.store.now_ms() + 1000 * self.backoff_secs(attempts) as i64, error }
    }
}
