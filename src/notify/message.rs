//! Rendering an alert into an email. Only what `AlertRow` carries can appear: the
//! pseudonymous subject id, site, rule, severity, summary and evidence — never a name,
//! never the treatment arm (the model does not serialize it).

use crate::store::{AlertRow, NotificationRow};
use lettre::message::{header::ContentType, Mailbox};
use lettre::Message;

pub fn subject_line(alert: &AlertRow) -> String {
    let who = if alert.subject.is_empty() { "cohort" } else { &alert.subject };
    format!("[vigil][{}] {who} — {} (rule {})", alert.severity.to_uppercase(), alert.title, alert.rule_id)
}

pub fn body(alert: &AlertRow, study_title: &str) -> String {
    let mut b = String::new();
    if alert.subject.is_empty() {
        b.push_str("Cohort-level alert.\n");
    } else {
        b.push_str(&format!(
            "Subject {} (site {}).\n",
            alert.subject,
            alert.site.as_deref().unwrap_or("not recorded")
        ));
    }
    b.push_str(&alert.summary);
    b.push('\n');
    if let Some(why) = alert.evidence.get("why").and_then(|w| w.as_str()) {
        b.push_str(&format!(
            "Why this fired: {why} (rule {}, version {}).\n",
            alert.rule_id, alert.rule_version
        ));
    }
    b.push_str(&format!("Severity: {}. Alert #{}.\n\n", alert.severity, alert.id));
    if let Some(details) = alert.evidence.get("details") {
        b.push_str("Evidence:\n");
        for line in serde_json::to_string_pretty(details).unwrap_or_default().lines() {
            b.push_str("  ");
            b.push_str(line);
            b.push('\n');
        }
        b.push('\n');
    }
    b.push_str(&format!("Acknowledge: vigil alerts ack {}\n", alert.id));
    b.push_str(&format!(
        "-- \nvigil safety monitoring, {study_title}. Subjects are identified by pseudonymous study IDs only.\n"
    ));
    b
}

pub fn build(
    alert: &AlertRow,
    n: &NotificationRow,
    from: &Mailbox,
    study_title: &str,
) -> anyhow::Result<Message> {
    let to: Mailbox = n.recipient.parse()?;
    Ok(Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject_line(alert))
        .message_id(Some(n.message_id.clone()))
        .header(ContentType::TEXT_PLAIN)
        .body(body(alert, study_title))?)
}
