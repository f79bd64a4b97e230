//! The outbox worker: sends due notifications, retries with exponential backoff on
//! connection failures and 4xx replies, stops on 5xx and records why.

use super::message;
use super::smtp::{Mailer, SendError};
use crate::store::{Delivery, Store};
use lettre::message::Mailbox;

pub struct Outbox {
    pub store: Store,
    pub mailer: Mailer,
    pub from: Mailbox,
    pub study_title: String,
    pub retry_initial_secs: u64,
    pub retry_max_secs: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
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
        for n in self.store.due_notifications(100).await? {
            let outcome = match self.store.alert(n.alert_id).await? {
                None => Delivery::Failed { error: format!("alert {} does not exist", n.alert_id) },
                Some(alert) => match message::build(&alert, &n, &self.from, &self.study_title) {
                    Err(e) => Delivery::Failed { error: format!("cannot build the message: {e}") },
                    Ok(m) => match self.mailer.send(m).await {
                        Ok(()) => Delivery::Sent,
                        Err(SendError::Permanent(error)) => Delivery::Failed { error },
                        Err(SendError::Transient(error)) => Delivery::Retry {
                            at_ms: crate::store::now_ms() + 1000 * self.backoff_secs(n.attempts) as i64,
                            error,
                        },
                    },
                },
            };
            match &outcome {
                Delivery::Sent => {
                    pass.sent += 1;
                    tracing::info!(notification_id = n.id, alert_id = n.alert_id, role = %n.role, "Notification sent.");
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
            self.store.record_delivery(n.id, &outcome).await?;
        }
        Ok(pass)
    }
}
