//! The outbox worker: sends due notifications, retries with exponential backoff on
//! connection failures and 4xx replies, stops on 5xx and records why. Notifications that
//! are pending together for the same recipient and rule (or digest) go out as one email.

use super::message;
use super::render::{alert_context, Templates};
use super::smtp::{Mailer, SendError};
use crate::store::{Delivery, NotificationRow, Store};
use lettre::message::Mailbox;
use std::collections::HashSet;

pub struct Outbox {
    pub store: Store,
    pub mailer: Mailer,
    pub templates: Templates,
    pub from: Mailbox,
    pub study_title: String,
    pub retry_initial_secs: u64,
    pub retry_max_secs: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Emails accepted by the server (a grouped email counts once).
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
}

impl Outbox {
    /// Backoff before attempt `attempts + 1`: initial × 2^attempts, capped.
    pub fn backoff_secs(&self, attempts: i64) -> u64 {
        let factor = 1u64 << attempts.clamp(0, 20);
        self.retry_initial_secs.saturating_mul(factor).min(self.retry_max_secs)
    }

    /// One pass over the due notifications.
    pub async fn deliver_due(&self) -> anyhow::Result<Pass> {
        let mut pass = Pass::default();
        let mut done: HashSet<i64> = HashSet::new();
        for n in self.store.due_notifications(100).await? {
            if done.contains(&n.id) {
                continue;
            }
            let group = match &n.group_key {
                Some(key) => {
                    let g = self.store.pending_group(key).await?;
                    if g.is_empty() {
                        vec![n.clone()]
                    } else {
                        g
                    }
                }
                None => vec![n.clone()],
            };
            done.extend(group.iter().map(|g| g.id));
            let outcome = self.send(&group).await;
            match &outcome {
                Delivery::Sent => {
                    pass.sent += 1;
                    tracing::info!(notification_id = n.id, alert_id = n.alert_id, role = %n.role, alerts = group.len(), kind = %n.kind, "Notification sent.");
                }
                Delivery::Retry { error, .. } => {
                    pass.retrying += 1;
                    tracing::warn!(notification_id = n.id, attempt = n.attempts + 1, %error, "Notification not delivered; will retry.");
                }
                Delivery::Failed { error } => {
                    pass.failed += 1;
                    tracing::error!(notification_id = n.id, alert_id = n.alert_id, %error, "Notification failed permanently.");
                }
            }
            for g in &group {
                self.store.record_delivery(g.id, &outcome).await?;
            }
        }
        Ok(pass)
    }

    /// Builds and sends one email for a group of notifications to one recipient.
    async fn send(&self, group: &[NotificationRow]) -> Delivery {
        let Some(first) = group.first() else {
            return Delivery::Failed { error: "empty group".into() };
        };
        let mut alerts = Vec::new();
        for n in group {
            match self.store.alert(n.alert_id).await {
                Ok(Some(a)) => {
                    // The arm is looked up only for an unblinded recipient, and
                    // alert_context drops it for a blinded one whatever is passed.
                    let arm = if n.blinded || a.subject.is_empty() {
                        None
                    } else {
                        self.store.history(&a.subject).await.ok().and_then(|h| h.arm().map(str::to_string))
                    };
                    alerts.push(alert_context(&a, n.blinded, arm.as_deref()));
                }
                Ok(None) => {
                    return Delivery::Failed { error: format!("alert {} does not exist", n.alert_id) }
                }
                Err(e) => {
                    return self.retry(first.attempts, format!("cannot read alert {}: {e}", n.alert_id))
                }
            }
        }
        let message = match message::build(&self.templates, group, &alerts, &self.from, &self.study_title) {
            Ok(m) => m,
            Err(e) => return Delivery::Failed { error: format!("cannot build the message: {e}") },
        };
        match self.mailer.send(message).await {
            Ok(()) => Delivery::Sent,
            Err(SendError::Permanent(error)) => Delivery::Failed { error },
            Err(SendError::Transient(error)) => self.retry(first.attempts, error),
        }
    }

    fn retry(&self, attempts: i64, error: String) -> Delivery {
        Delivery::Retry { at_ms: self.store.now_ms() + 1000 * self.backoff_secs(attempts) as i64, error }
    }
}
