//! Building emails: the one for one or more alert notifications to one recipient
//! (rendered by the templates, a plain-text and an HTML part), and the one carrying a
//! DSMB report as its attachment; each with the notification's stable Message-ID.

use super::render::{AlertContext, Templates};
use crate::store::{NotificationRow, ReportKind, ReportRow};
use anyhow::Context;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use std::path::Path;

/// One email about `alerts` (at most [`ALERTS_PER_EMAIL`], the first of the group) and
/// `more` others of the same group that are counted, not listed.
pub fn build(
    templates: &Templates,
    notifications: &[NotificationRow],
    alerts: &[AlertContext],
    more: usize,
    from: &Mailbox,
    study_title: &str,
) -> anyhow::Result<Message> {
    let first = notifications.first().ok_or_else(|| anyhow::anyhow!("no notification to send"))?;
    let digest = first.group_key.as_deref().is_some_and(|g| g.starts_with("digest"));
    let r = templates.render_more(first.kind.as_str(), digest, alerts, more, &first.role, study_title)?;
    let to: Mailbox = first.recipient.parse()?;
    Ok(Message::builder()
        .from(from.clone())
        .to(to)
        .subject(r.subject)
        .message_id(Some(first.message_id.clone()))
        .multipart(MultiPart::alternative_plain_html(crlf(&r.text), crlf(&r.html)))?)
}

/// The alerts listed in one email at most: a burst of thousands of alerts of one rule is
/// one email, but nobody reads thousands of entries; the rest are counted.
pub const ALERTS_PER_EMAIL: usize = 200;

/// CRLF line endings, made in one pass: lettre would insert each CR into the string,
/// which is quadratic in the body's length.
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    for line in text.split_inclusive('\n') {
        match line.strip_suffix('\n') {
            Some(body) => {
                out.push_str(body.strip_suffix('\r').unwrap_or(body));
                out.push_str("\r\n");
            }
            None => out.push_str(line),
        }
    }
    out
}

/// The email for one archived report to one recipient, the report file attached.
pub fn report(
    r: &ReportRow,
    to: &str,
    message_id: &str,
    from: &Mailbox,
    study_title: &str,
) -> anyhow::Result<Message> {
    let html = std::fs::read(&r.path).with_context(|| format!("cannot read {}", r.path))?;
    let file_name =
        Path::new(&r.path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let to: Mailbox = to.parse()?;
    let text = format!(
        "The {} DSMB report of {}, data cut-off {}, is attached ({}).\n\
         Data snapshot SHA-256: {}\nReport file SHA-256: {}\nReason: {}\n",
        r.kind,
        study_title,
        r.as_of.format("%Y-%m-%d %H:%M UTC"),
        file_name,
        r.snapshot,
        r.sha256,
        r.reason
    );
    Ok(Message::builder()
        .from(from.clone())
        .to(to)
        .subject(format!(
            "[vigil][DSMB] {} report, data cut-off {}",
            match r.kind {
                ReportKind::Closed => "CLOSED",
                ReportKind::Open => "Open",
            },
            r.as_of.format("%Y-%m-%d")
        ))
        .message_id(Some(message_id.to_string()))
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(text))
                .singlepart(Attachment::new(file_name).body(html, "text/html".parse()?)),
        )?)
}

#[cfg(test)]
mod tests {
    use super::crlf;

    #[test]
    fn line_endings_become_crlf_in_one_pass() {
        assert_eq!(crlf("a\nb\r\nc"), "a\r\nb\r\nc");
        assert_eq!(crlf("x\n\n"), "x\r\n\r\n");
        // A long body (a burst of alerts) is converted at once, not insert by insert.
        let long = "line of an alert email\n".repeat(200_000);
        let start = std::time::Instant::now();
        let out = crlf(&long);
        assert_eq!(out.len(), long.len() + 200_000);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
