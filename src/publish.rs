//! Publishing DSMB reports: generated from a frozen data cut, archived with the SHA-256 of
//! the file and of the data snapshot, and emailed as an attachment to the DSMB roles —
//! on demand, on cron schedules, and on triggers (a stopping rule fired, N subjects
//! reached a visit).
//!
//! Blinding is enforced here for reports: a closed (by-arm) report is only ever queued for
//! recipients whose role is unblinded.

use crate::daemon::App;
use crate::notify::SendError;
use crate::store::{Delivery, Recipient, ReportRow};
use anyhow::Context;
use chrono::{DateTime, Utc};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Arms pooled: may go to anyone on the report list.
    Open,
    /// Split by arm: DSMB only, unblinded recipients only.
    Closed,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// SHA-256 of the data a report is made from: every record whose own time is not after
/// the cut-off (records without a time included), arm included, in a canonical order.
pub fn snapshot_hash(histories: &[crate::model::SubjectHistory], as_of: DateTime<Utc>) -> String {
    let mut lines: Vec<String> = histories
        .iter()
        .flat_map(|h| h.records.iter())
        .filter(|r| r.when().is_none_or(|t| t.earliest() <= as_of))
        .map(|r| {
            format!("{}\t{}", r.arm.as_deref().unwrap_or(""), serde_json::to_string(r).unwrap_or_default())
        })
        .collect();
    lines.sort();
    let mut h = Sha256::new();
    for l in &lines {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Who may receive a report of this kind: the report roles, and for a closed report only
/// the unblinded among them. The single place that decides it.
pub fn recipients(app: &App, kind: Kind) -> Vec<Recipient> {
    let mut out = Vec::new();
    for role in &app.config.report.recipients {
        let Some(r) = app.config.recipients.get(role) else { continue };
        if kind == Kind::Closed && r.blinded {
            tracing::warn!(role = %role, "The closed report is not sent to a blinded role.");
            continue;
        }
        for address in &r.addresses {
            out.push(Recipient { role: role.clone(), address: address.clone(), blinded: r.blinded });
        }
    }
    out
}

/// Generates, archives and queues one report. Returns its archive row.
/// `email`: queue it for the report recipients (scheduled and triggered reports always are).
pub async fn generate(
    app: &App,
    kind: Kind,
    as_of: DateTime<Utc>,
    reason: &str,
    out: Option<PathBuf>,
    email: bool,
) -> anyhow::Result<ReportRow> {
    let subjects = app.store.all_histories().await?;
    let snapshot = snapshot_hash(&subjects, as_of);
    let quarantined = app.store.quarantine_count().await?;
    let edss_change = app.rules.edss_change();
    let alerts = app.store.alerts().await?;
    let (stopping_rules, overdue_visits) = rule_status(app, &subjects, as_of);
    let input = crate::report::DsmbInput {
        study_title: &app.config.study.title,
        as_of,
        subjects: &subjects,
        edss_change: &edss_change,
        visit_order: &app.config.study.visits,
        infusion_reaction_terms: &app.config.report.infusion_reaction_terms,
        quarantined_records: quarantined.max(0) as u64,
        alerts: &alerts,
        stopping_rules: &stopping_rules,
        snapshot_hash: &snapshot,
        closed: kind == Kind::Closed,
        overdue_visits: &overdue_visits,
    };
    let summary = crate::report::summarize(&input);
    let html = crate::report::try_render_html(&input, &summary)?;
    let dir = out.unwrap_or_else(|| app.config.report.out_dir.clone());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let stem = format!("dsmb-{}-{}-{}", kind.as_str(), as_of.format("%Y-%m-%d"), &snapshot[..8]);
    let path = dir.join(format!("{stem}.html"));
    std::fs::write(&path, &html).with_context(|| format!("cannot write {}", path.display()))?;
    // Every table as CSV, for the statistician.
    let csv_dir = dir.join(format!("{stem}-csv"));
    std::fs::create_dir_all(&csv_dir).with_context(|| format!("cannot create {}", csv_dir.display()))?;
    for (name, text) in crate::report::render_csv(&input, &summary) {
        std::fs::write(csv_dir.join(&name), text).with_context(|| format!("cannot write {name}"))?;
    }
    #[cfg(feature = "pdf")]
    {
        let pdf = crate::report::render_pdf(&input, &summary)?;
        let pdf_path = dir.join(format!("{stem}.pdf"));
        std::fs::write(&pdf_path, pdf).with_context(|| format!("cannot write {}", pdf_path.display()))?;
    }
    let sha = hex::encode(Sha256::digest(html.as_bytes()));
    let recipients = if email { recipients(app, kind) } else { Vec::new() };
    let id = app
        .store
        .archive_report(
            kind.as_str(),
            as_of,
            reason,
            &snapshot,
            &path.display().to_string(),
            &sha,
            &recipients,
            &crate::notify::message_domain(&app.config),
        )
        .await?;
    tracing::info!(report_id = id, kind = kind.as_str(), path = %path.display(), %reason, "DSMB report generated.");
    app.store.report(id).await?.context("the archived report vanished")
}

/// The stopping rules' state and the overdue visits at the cut-off, evaluated on the
/// records of the cut (the same code the daemon runs).
fn rule_status(
    app: &App,
    subjects: &[crate::model::SubjectHistory],
    as_of: DateTime<Utc>,
) -> (Vec<crate::report::StoppingRuleStatus>, Vec<crate::report::OverdueVisit>) {
    let records: Vec<crate::model::Record> =
        subjects.iter().flat_map(|h| h.records.iter().cloned()).collect();
    let cut = crate::rules::eval::histories_at(&records, as_of);
    let mut stopping = Vec::new();
    let mut overdue = Vec::new();
    for rule in &app.rules.rules {
        if rule.kind.is_cohort() {
            let totals = crate::rules::Totals::from_contributions(
                cut.iter().filter_map(|h| rule.contribution(h, as_of).map(|c| (h.subject.as_str(), c))),
            );
            let findings = rule.judge(&totals, as_of);
            stopping.push(crate::report::StoppingRuleStatus {
                rule_id: rule.id.clone(),
                title: rule.title.clone(),
                threshold: findings.first().map(|f| f.why.clone()).unwrap_or_else(|| rule.title.clone()),
                current: match findings.first() {
                    Some(f) => f.summary.clone(),
                    None => format!(
                        "{} of {} evaluable subjects with a matching event ({} events)",
                        totals.matching_subjects, totals.evaluable, totals.events
                    ),
                },
                fired: !findings.is_empty(),
            });
        }
        if let crate::rules::RuleKind::OverdueVisit(_) = rule.kind {
            for h in &cut {
                for f in rule.evaluate(h, as_of, &app.config.study.schedule) {
                    let Some(visit) = f.episode.strip_prefix("overdue:") else { continue };
                    let due = f.evidence["overdue_from"]
                        .as_str()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
                    overdue.push(crate::report::OverdueVisit {
                        subject: h.subject.to_string(),
                        visit: visit.to_string(),
                        days_overdue: due.map_or(0, |d| (as_of - d.with_timezone(&Utc)).num_days().max(0)),
                    });
                }
            }
        }
    }
    (stopping, overdue)
}

/// Generates the reports whose schedule or trigger has come. Returns how many.
pub async fn run_due(app: &App, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let mut reasons = Vec::new();
    for cron in &app.config.report.schedule {
        let Ok(c) = cron.parse::<croner::Cron>() else { continue };
        let reason = format!("schedule:{cron}");
        // The first scheduled report comes at the first occurrence after the daemon
        // first saw this schedule; afterwards, one per occurrence.
        let since = match app.store.last_report_for(&reason).await? {
            Some(r) => r.generated_at,
            None => app.started_at,
        };
        if c.find_next_occurrence(&since, false).is_ok_and(|next| next <= now) {
            reasons.push(reason);
        }
    }
    let t = &app.config.report.triggers;
    if t.stopping_rule {
        let mut latest = None;
        for rule in app.rules.rules.iter().filter(|r| r.kind.is_cohort()) {
            latest = latest.max(app.store.latest_alert_of(&rule.id).await?);
        }
        if let Some(last) = latest {
            let reason = format!("trigger:stopping-rule-alert-{last}");
            if app.store.last_report_for(&reason).await?.is_none() {
                reasons.push(reason);
            }
        }
    }
    if let Some(v) = &t.subjects_at_visit {
        let reason = format!("trigger:{}-subjects-at-{}", v.count, v.visit);
        if app.store.last_report_for(&reason).await?.is_none() {
            let reached = app
                .store
                .all_histories()
                .await?
                .iter()
                .filter(|h| h.visits().iter().any(|(l, _)| *l == v.visit))
                .count();
            if reached >= v.count {
                reasons.push(reason);
            }
        }
    }
    for reason in &reasons {
        generate(app, Kind::Open, now, reason, None, true).await?;
        if app.config.report.closed {
            if let Err(e) = generate(app, Kind::Closed, now, reason, None, true).await {
                tracing::error!(error = %format!("{e:#}"), "Closed report not generated.");
            }
        }
    }
    Ok(reasons.len())
}

/// Sends due report emails with the report attached; retries like alert emails.
pub async fn deliver_due(app: &App) -> anyhow::Result<usize> {
    let mut sent = 0;
    for d in app.store.due_report_deliveries().await? {
        let outcome = match app.store.report(d.report_id).await? {
            None => Delivery::Failed { error: format!("report {} does not exist", d.report_id) },
            Some(r) => match message(app, &r, &d.recipient, &d.message_id) {
                Err(e) => Delivery::Failed { error: format!("cannot build the message: {e:#}") },
                Ok(m) => match app.outbox.mailer.send(m).await {
                    Ok(()) => Delivery::Sent,
                    Err(SendError::Permanent(error)) => Delivery::Failed { error },
                    Err(SendError::Transient(error)) => Delivery::Retry {
                        at_ms: crate::store::now_ms() + 1000 * app.outbox.backoff_secs(d.attempts) as i64,
                        error,
                    },
                },
            },
        };
        if matches!(outcome, Delivery::Sent) {
            sent += 1;
        }
        app.store.record_report_delivery(d.id, &outcome).await?;
    }
    Ok(sent)
}

fn message(app: &App, r: &ReportRow, to: &str, message_id: &str) -> anyhow::Result<Message> {
    let html = std::fs::read(&r.path).with_context(|| format!("cannot read {}", r.path))?;
    let file_name =
        PathBuf::from(&r.path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let to: Mailbox = to.parse()?;
    let text = format!(
        "The {} DSMB report of {}, data cut-off {}, is attached ({}).\n\
         Data snapshot SHA-256: {}\nReport file SHA-256: {}\nReason: {}\n",
        r.kind,
        app.config.study.title,
        r.as_of.format("%Y-%m-%d %H:%M UTC"),
        file_name,
        r.snapshot,
        r.sha256,
        r.reason
    );
    Ok(Message::builder()
        .from(app.outbox.from.clone())
        .to(to)
        .subject(format!(
            "[vigil][DSMB] {} report, data cut-off {}",
            if r.kind == "closed" { "CLOSED" } else { "Open" },
            r.as_of.format("%Y-%m-%d")
        ))
        .message_id(Some(message_id.to_string()))
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(text))
                .singlepart(Attachment::new(file_name).body(html, "text/html".parse()?)),
        )?)
}
