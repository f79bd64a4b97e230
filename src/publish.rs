//! Publishing DSMB reports: generated from a frozen data cut, archived with the SHA-256 of
//! the file and of the data snapshot, and emailed as an attachment to the DSMB roles —
//! on demand, on cron schedules, and on triggers (a stopping rule fired, N subjects
//! reached a visit).
//!
//! Blinding is enforced here for reports: a closed (by-arm) report is only ever queued for
//! recipients whose role is unblinded. The emails themselves go through the one outbox
//! (`notify::Outbox`), as notifications of kind `report`.
//!
//! Publishing takes narrow inputs (`Publisher`: the store, the rules, the parts of the
//! configuration it reads) and the time from its caller.

use crate::config::{Config, ReportConfig, RoleConfig, StudyConfig};
use crate::rules::{eval, RuleSet};
use crate::store::{Recipient, ReportRow, Store};
use anyhow::Context;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Which report: open (arms pooled) or closed (split by arm, unblinded roles only).
pub use crate::store::ReportKind as Kind;

/// The records a report is made from, canonical: every record whose own time is not after
/// the cut-off (records without a time included), with or without the treatment arms.
fn snapshot_lines(
    histories: &[crate::model::SubjectHistory],
    as_of: DateTime<Utc>,
    arms: bool,
) -> Vec<String> {
    let mut lines: Vec<String> = histories
        .iter()
        .flat_map(|h| h.records.iter())
        .filter(|r| r.when().is_none_or(|t| t.earliest() <= as_of))
        .map(|r| {
            // A record serializes without its arms (they never leave that way).
            let record = serde_json::to_string(r).unwrap_or_default();
            match arms {
                true => {
                    let arm = |a: &Option<String>| a.clone().unwrap_or_default();
                    format!("{}\t{}\t{record}", arm(&r.arm), arm(&r.actual_arm))
                }
                false => record,
            }
        })
        .collect();
    lines.sort();
    lines
}

/// SHA-256 of the open data of a report's cut: the records without their arms. The open
/// report prints it and names its files by it, so it must not depend on the arms: a hash
/// over the arms could be matched by trying each assignment of subjects to arms.
pub fn open_snapshot(histories: &[crate::model::SubjectHistory], as_of: DateTime<Utc>) -> String {
    let mut h = Sha256::new();
    for l in snapshot_lines(histories, as_of, false) {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// The closed report's fingerprint of the same cut, arms included: HMAC-SHA-256 under
/// `key`, so that no one without the key can test a guess of the arms against it.
pub fn closed_snapshot(
    histories: &[crate::model::SubjectHistory],
    as_of: DateTime<Utc>,
    key: &[u8],
) -> String {
    let mut text = Vec::new();
    for l in snapshot_lines(histories, as_of, true) {
        text.extend_from_slice(l.as_bytes());
        text.push(b'\n');
    }
    hex::encode(hmac_sha256(key, &text))
}

/// HMAC-SHA-256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// The key of closed-report fingerprints: `VIGIL_SNAPSHOT_KEY` from the environment, so
/// that the trial statistician can recompute one; else a fresh random key, and the
/// fingerprint only tells closed reports apart.
fn snapshot_key() -> anyhow::Result<Vec<u8>> {
    match std::env::var("VIGIL_SNAPSHOT_KEY") {
        Ok(key) if !key.is_empty() => Ok(key.into_bytes()),
        _ => {
            let mut key = vec![0u8; 32];
            getrandom::getrandom(&mut key)
                .map_err(|e| anyhow::anyhow!("no random key for the closed report: {e}"))?;
            Ok(key)
        }
    }
}

/// Writes one file of a report; a private one is created with mode 0600 (on Unix), so it is
/// never readable by others, not even for a moment.
fn write_report_file(path: &std::path::Path, bytes: &[u8], private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    if private {
        // The mode above applies to a new file only; an existing one is narrowed here.
        restrict(path, 0o600)?;
    }
    Ok(())
}

/// Sets Unix permission bits (nothing elsewhere).
fn restrict(path: &std::path::Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Who may receive a report of this kind: the report roles, and for a closed report only
/// the unblinded among them. The single place that decides it.
pub fn recipients(report: &ReportConfig, roles: &BTreeMap<String, RoleConfig>, kind: Kind) -> Vec<Recipient> {
    let mut out = Vec::new();
    for role in &report.recipients {
        let Some(r) = roles.get(role) else { continue };
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

/// What publishing needs: the store, the rules, and the parts of the configuration it reads.
#[derive(Clone, Copy)]
pub struct Publisher<'a> {
    pub store: &'a Store,
    pub rules: &'a RuleSet,
    pub study: &'a StudyConfig,
    pub report: &'a ReportConfig,
    /// Every role under `recipients`, for addresses and blinding.
    pub roles: &'a BTreeMap<String, RoleConfig>,
    /// The domain of Message-IDs (the sender's).
    pub message_domain: &'a str,
}

/// One report to make.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub kind: Kind,
    /// The data cut-off.
    pub as_of: DateTime<Utc>,
    /// `manual`, `schedule:<cron>` or `trigger:<what>`.
    pub reason: String,
    /// Where the files go; default: `report.out_dir`.
    pub out: Option<PathBuf>,
    /// Queue it for the report recipients (scheduled and triggered reports always are).
    pub email: bool,
}

impl<'a> Publisher<'a> {
    /// The parts of `config` publishing reads.
    pub fn new(store: &'a Store, rules: &'a RuleSet, config: &'a Config) -> Self {
        Self {
            store,
            rules,
            study: &config.study,
            report: &config.report,
            roles: &config.recipients,
            message_domain: config.email.message_domain(),
        }
    }

    /// Generates, archives and queues one report at `now`. Returns its archive row.
    pub async fn generate(&self, request: &ReportRequest, now: DateTime<Utc>) -> anyhow::Result<ReportRow> {
        self.generate_due(request, None, now).await?.context("the report was not archived")
    }

    /// `generate` for the occurrence `due` of a schedule or trigger: None if another
    /// runner archived that one first (its emails are the ones queued).
    async fn generate_due(
        &self,
        request: &ReportRequest,
        due: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<ReportRow>> {
        let ReportRequest { kind, as_of, reason, out, email } = request;
        let (kind, as_of) = (*kind, *as_of);
        let subjects = self.store.all_histories().await?;
        let snapshot = match kind {
            Kind::Open => open_snapshot(&subjects, as_of),
            Kind::Closed => closed_snapshot(&subjects, as_of, &snapshot_key()?),
        };
        let quarantined = self.store.quarantine_count().await?;
        let edss_rule = self.rules.edss_rule();
        // The daily audit-head witness is about the system, not the trial.
        let mut alerts = self.store.alerts().await?;
        alerts.retain(|a| a.rule_id != crate::audit::HEAD_RULE);
        let (stopping_rules, overdue_visits) =
            rule_status(self.rules, &self.study.schedule, &subjects, as_of);
        self.store.seal_audit().await?;
        let audit_head = match self.store.audit_head().await? {
            Some((pos, hash)) => format!("entry {pos}, SHA-256 {hash}"),
            None => "empty".to_string(),
        };
        let signed: Vec<(i64, String)> =
            self.store.alert_signatures().await?.into_iter().map(|(id, s)| (id, s.line())).collect();
        let input = crate::report::DsmbInput {
            study_title: &self.study.title,
            as_of,
            subjects: &subjects,
            edss_rule: &edss_rule,
            visit_order: &self.study.visits,
            infusion_reaction_terms: &self.report.infusion_reaction_terms,
            quarantined_records: quarantined.max(0) as u64,
            alerts: &alerts,
            stopping_rules: &stopping_rules,
            snapshot_hash: &snapshot,
            closed: kind == Kind::Closed,
            overdue_visits: &overdue_visits,
            timezone: self.study.zones.study,
            audit_head: &audit_head,
            signed_decisions: &signed,
        };
        let summary = crate::report::summarize(&input);
        let html = crate::report::try_render_html(&input, &summary)?;
        let dir = out.clone().unwrap_or_else(|| self.report.out_dir.clone());
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let stem = format!("dsmb-{}-{}-{}", kind.as_str(), as_of.format("%Y-%m-%d"), &snapshot[..8]);
        // A closed report holds the arms: only its owner (the daemon's user) may read it.
        let private = kind == Kind::Closed;
        let path = dir.join(format!("{stem}.html"));
        write_report_file(&path, html.as_bytes(), private)?;
        // Every table as CSV, for the statistician.
        let csv_dir = dir.join(format!("{stem}-csv"));
        std::fs::create_dir_all(&csv_dir).with_context(|| format!("cannot create {}", csv_dir.display()))?;
        if private {
            restrict(&csv_dir, 0o700)?;
        }
        for (name, text) in crate::report::render_csv(&input, &summary) {
            write_report_file(&csv_dir.join(&name), text.as_bytes(), private)?;
        }
        #[cfg(feature = "pdf")]
        {
            let pdf = crate::report::render_pdf(&input, &summary)?;
            write_report_file(&dir.join(format!("{stem}.pdf")), &pdf, private)?;
        }
        let sha = hex::encode(Sha256::digest(html.as_bytes()));
        let recipients = if *email { recipients(self.report, self.roles, kind) } else { Vec::new() };
        let archived = self
            .store
            .archive_report_due(
                kind,
                as_of,
                reason,
                due,
                &snapshot,
                &path.display().to_string(),
                &sha,
                &recipients,
                self.message_domain,
                now,
            )
            .await?;
        let Some(id) = archived else {
            tracing::warn!(kind = kind.as_str(), %reason, "DSMB report already archived by another runner; not queued again.");
            return Ok(None);
        };
        tracing::info!(report_id = id, kind = kind.as_str(), path = %path.display(), %reason, "DSMB report generated.");
        Ok(Some(self.store.report(id).await?.context("the archived report vanished")?))
    }

    /// Generates the reports whose schedule or trigger has come by `now`; a schedule
    /// never reported on counts from `first_seen` (when the daemon started). Returns how
    /// many. Each is made once per due time (the schedule's occurrence; a trigger's is
    /// its reason alone) whichever replica gets there first (`Store::claim_report`).
    pub async fn run_due(&self, first_seen: DateTime<Utc>, now: DateTime<Utc>) -> anyhow::Result<usize> {
        // A trigger fires once: its due time is a constant.
        let once = DateTime::<Utc>::UNIX_EPOCH;
        let mut due = Vec::new();
        for s in &self.report.schedule {
            let reason = format!("schedule:{}", s.text);
            // The first scheduled report comes at the first occurrence after the daemon
            // first saw this schedule; afterwards, one per occurrence.
            let since = match self.store.last_report_for(&reason).await? {
                Some(r) => r.generated_at,
                None => first_seen,
            };
            if let Ok(next) = s.cron.find_next_occurrence(&since, false) {
                if next <= now {
                    due.push((reason, next));
                }
            }
        }
        let t = &self.report.triggers;
        if t.stopping_rule {
            let mut latest = None;
            for rule in self.rules.rules.iter().filter(|r| r.kind.is_cohort()) {
                latest = latest.max(self.store.latest_alert_of(&rule.id).await?);
            }
            if let Some(last) = latest {
                let reason = format!("trigger:stopping-rule-alert-{last}");
                if self.store.last_report_for(&reason).await?.is_none() {
                    due.push((reason, once));
                }
            }
        }
        if let Some(v) = &t.subjects_at_visit {
            let reason = format!("trigger:{}-subjects-at-{}", v.count, v.visit);
            if self.store.last_report_for(&reason).await?.is_none() {
                let reached = self
                    .store
                    .all_histories()
                    .await?
                    .iter()
                    .filter(|h| h.visits().iter().any(|(l, _)| *l == v.visit))
                    .count();
                if reached >= v.count {
                    due.push((reason, once));
                }
            }
        }
        let mut made = 0;
        for (reason, at) in &due {
            let Some(_claim) = self.store.claim_report(reason, *at).await? else {
                tracing::debug!(%reason, "Report made or being made by another replica.");
                continue;
            };
            let request =
                |kind| ReportRequest { kind, as_of: now, reason: reason.clone(), out: None, email: true };
            if self.generate_due(&request(Kind::Open), Some(*at), now).await?.is_some() {
                made += 1;
            }
            if self.report.closed {
                if let Err(e) = self.generate_due(&request(Kind::Closed), Some(*at), now).await {
                    tracing::error!(error = %format!("{e:#}"), "Closed report not generated.");
                }
            }
        }
        Ok(made)
    }
}

/// The stopping rules' state and the overdue visits at the cut-off, evaluated on the
/// records of the cut by the pure evaluator (the same rules the daemon runs).
fn rule_status(
    rules: &RuleSet,
    schedule: &[crate::rules::ScheduledVisit],
    subjects: &[crate::model::SubjectHistory],
    as_of: DateTime<Utc>,
) -> (Vec<crate::report::StoppingRuleStatus>, Vec<crate::report::OverdueVisit>) {
    let records: Vec<crate::model::Record> =
        subjects.iter().flat_map(|h| h.records.iter().cloned()).collect();
    let cut = eval::histories_at(&records, as_of);
    let mut stopping = Vec::new();
    let mut overdue = Vec::new();
    for rule in &rules.rules {
        if rule.kind.is_cohort() {
            let totals = eval::totals(rule, &cut, as_of);
            let findings = eval::cohort(rule, &totals, as_of);
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
                for f in rule.evaluate(h, as_of, schedule) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Record, SubjectHistory, SubjectId};

    fn cohort(arms: [&str; 3]) -> Vec<SubjectHistory> {
        arms.iter()
            .enumerate()
            .map(|(i, arm)| {
                let id = format!("KS-10{i}");
                let json = format!(
                    r#"{{"subject":"{id}","arm":"{arm}","actual_arm":"{arm}","visit":"BL","date":"2019-02-26","scores":[{{"name":"EDSS","value":4.5}}]}}"#
                );
                SubjectHistory::new(SubjectId::parse(&id).unwrap(), vec![Record::from_json(&json).unwrap()])
            })
            .collect()
    }

    #[test]
    fn the_open_fingerprint_does_not_depend_on_the_arms() {
        let as_of = Utc::now();
        let (a, b) = (cohort(["MSC", "placebo", "MSC"]), cohort(["placebo", "MSC", "MSC"]));
        // Whatever the assignment, a blinded reader's hash is the same: nothing to match.
        assert_eq!(open_snapshot(&a, as_of), open_snapshot(&b, as_of));
        // The closed one tells the two cuts apart, but only under its key.
        assert_ne!(closed_snapshot(&a, as_of, b"k"), closed_snapshot(&b, as_of, b"k"));
        assert_ne!(closed_snapshot(&a, as_of, b"k"), closed_snapshot(&a, as_of, b"other"));
        assert_eq!(closed_snapshot(&a, as_of, b"k"), closed_snapshot(&a, as_of, b"k"));
        assert_ne!(open_snapshot(&a, as_of)[..8], closed_snapshot(&a, as_of, b"k")[..8]);
    }

    #[test]
    fn hmac_follows_rfc_4231() {
        // RFC 4231 test case 2, and case 6 (a key longer than the block).
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}

/// Why a report cannot be released.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("no report #{0}")]
    NoSuchReport(i64),
    #[error("report #{0} was released already")]
    Released(i64),
    #[error("report #{id}'s file {path} is not the one archived (SHA-256 {found}, archived {archived}): it was changed after it was made, and is not released")]
    Changed { id: i64, path: String, found: String, archived: String },
}

/// The report's file as it is now must be the file archived: a release vouches for it.
pub fn check_unchanged(report: &ReportRow) -> Result<(), ReleaseError> {
    let found = std::fs::read(&report.path)
        .map(|b| hex::encode(Sha256::digest(&b)))
        .unwrap_or_else(|e| format!("unreadable ({e})"));
    if found != report.sha256 {
        return Err(ReleaseError::Changed {
            id: report.id,
            path: report.path.clone(),
            found,
            archived: report.sha256.clone(),
        });
    }
    Ok(())
}

/// The release page beside a released report (`…-release.html`): which file, its hash,
/// who released it and their signature (21 CFR Part 11 §11.50: shown with the record),
/// and the audit trail's head at release. Private like the report when it is closed.
pub fn write_release_page(
    report: &ReportRow,
    released_by: &str,
    signature: Option<&crate::accounts::Signature>,
    audit_head: &str,
) -> anyhow::Result<PathBuf> {
    const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Release of DSMB report #{{ r.id }}</title>
<style>body{font-family:sans-serif;max-width:46em;margin:2em auto;color:#111}
dt{font-weight:bold;margin-top:.6em}.hash{font-family:monospace;font-size:.9em;word-break:break-all}
.sig{border:2px solid #234;padding:.8em 1em;margin-top:1.2em}</style></head>
<body><h1>Release of DSMB report #{{ r.id }}</h1>
<dl>
<dt>Report</dt><dd>{{ r.kind }} report, data cut-off {{ r.as_of }}</dd>
<dt>File</dt><dd>{{ r.path }}</dd>
<dt>File SHA-256</dt><dd class="hash">{{ r.sha256 }}</dd>
<dt>Data snapshot SHA-256</dt><dd class="hash">{{ r.snapshot }}</dd>
<dt>Released by</dt><dd>{{ released_by }} at {{ released_at }} UTC</dd>
<dt>Audit trail at release</dt><dd class="hash">{{ audit_head }}</dd>
</dl>
{% if signature %}<div class="sig"><strong>Electronic signature</strong><br>
{{ signature.printed_name }} ({{ signature.user_id }}) — meaning: <strong>{{ signature.meaning }}</strong><br>
{{ signature.signed_at }} UTC ({{ signature.local_time }}, {{ signature.zone }})<br>
<span class="hash">bound to SHA-256 {{ signature.content_hash }}</span></div>
{% else %}<p>Released without an electronic signature.</p>{% endif %}
</body></html>
"#;
    let mut env = minijinja::Environment::new();
    env.add_template("release.html", PAGE)?;
    let html = env.get_template("release.html")?.render(minijinja::context! {
        r => minijinja::context! {
            id => report.id, kind => report.kind.as_str(), as_of => report.as_of.format("%Y-%m-%d %H:%M UTC").to_string(),
            path => report.path.clone(), sha256 => report.sha256.clone(), snapshot => report.snapshot.clone(),
        },
        released_by => released_by,
        released_at => report.released_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default(),
        audit_head => audit_head,
        signature => signature.map(|s| minijinja::context! {
            printed_name => s.printed_name.clone(), user_id => s.user_id.clone(), meaning => s.meaning.clone(),
            signed_at => s.signed_at.format("%Y-%m-%d %H:%M:%S").to_string(), local_time => s.local_time.clone(),
            zone => s.zone.clone(), content_hash => s.content_hash.clone(),
        }),
    })?;
    let path = PathBuf::from(report.path.trim_end_matches(".html").to_string() + "-release.html");
    write_report_file(&path, html.as_bytes(), report.kind == crate::store::ReportKind::Closed)?;
    Ok(path)
}
