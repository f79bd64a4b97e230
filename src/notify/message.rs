//! Building the email for one or more notifications to one recipient: rendered by the
//! templates, with a plain-text and an HTML part and the notification's stable Message-ID.

use super::render::{AlertContext, Templates};
use crate::store::NotificationRow;
use lettre::message::{Mailbox, MultiPart};
use lettre::Message;

pub fn build(
    templates: &Templates,
    notifications: &[NotificationRow],
    alerts: &[AlertContext],
    from: &Mailbox,
    study_title: &str,
) -> anyhow::Result<Message> {
    let first = notifications.first().ok_or_else(|| anyhow::anyhow!("no notification to send"))?;
    let digest = first.group_key.as_deref().is_some_and(|g| g.starts_with("digest"));
    let r = templates.render(&first.kind, digest, alerts, &first.role, study_title)?;
    let to: Mailbox = first.recipient.parse()?;
    Ok(Message::builder()
        .from(from.clone())
        .to(to)
        .subject(r.subject)
        .message_id(Some(first.message_id.clone()))
        .multipart(MultiPart::alternative_plain_html(r.text, r.html))?)
}
