//! DSMB reports as published: a frozen cut, archived with its SHA-256, emailed as an
//! attachment, identical bytes for the same cut.

mod common;

use common::{Deployment, SmtpServer};
use sha2::Digest;

fn cohort() -> String {
    let mut lines = Vec::new();
    for (i, (bl, w12)) in [(4.0, 5.0), (6.0, 6.0), (3.0, 3.0)].iter().enumerate() {
        let s = format!("MSC-0{}", i + 1);
        lines.push(format!(
            r#"{{"subject":"{s}","site":"KS","arm":"MSC","visit":"BL","date":"2013-03-0{}","record_id":"{s}-bl","doses":[{{"start":"2013-03-0{}T09:00:00Z"}}],"scores":[{{"name":"EDSS","value":{bl}}}]}}"#,
            i + 1,
            i + 1
        ));
        lines.push(format!(
            r#"{{"subject":"{s}","site":"KS","arm":"MSC","visit":"W12","date":"2013-05-2{}","record_id":"{s}-w12","scores":[{{"name":"EDSS","value":{w12}}}],"mri":{{"t2_new_or_enlarging":{}}}}}"#,
            i + 1,
            i % 2
        ));
    }
    lines.join("\n")
}

/// A deployment mailing reports to the DSMB chair and the safety officer, with the cohort
/// ingested; returns the mail server, the deployment and its configuration path.
fn ingested() -> (SmtpServer, Deployment, String) {
    let smtp = SmtpServer::start();
    let d = Deployment::with(Some(&smtp.url()), "report:\n  recipients: [dsmb-chair, safety-officer]\n");
    let cfg = d.config.to_str().unwrap().to_string();
    let input = d.path("cohort.ndjson");
    std::fs::write(&input, cohort()).unwrap();
    assert!(d.vigil(&["ingest", "--config", &cfg, input.to_str().unwrap()]).status.success());
    (smtp, d, cfg)
}

/// `vigil report dsmb --config CFG --as-of AS_OF --out OUT EXTRA…`, which must succeed:
/// the path of the HTML it wrote.
fn dsmb(d: &Deployment, cfg: &str, as_of: &str, out: &std::path::Path, extra: &[&str]) -> String {
    let out = out.to_str().unwrap();
    let mut args = vec!["report", "dsmb", "--config", cfg, "--as-of", as_of, "--out", out];
    args.extend_from_slice(extra);
    let o = d.vigil(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn a_report_is_archived_with_its_hash_emailed_and_reproducible() {
    let (smtp, d, cfg) = ingested();

    let run = |out: &str, email: bool| {
        let extra: &[&str] = if email { &["--email"] } else { &[] };
        dsmb(&d, &cfg, "2014-01-01", &d.path(out), extra)
    };
    let first = run("a", true);
    let second = run("b", false);
    let (a, b) = (std::fs::read_to_string(&first).unwrap(), std::fs::read_to_string(&second).unwrap());
    // The title page witnesses the audit trail as it stood, which the first report moved on
    // (its generation is an entry): that one line differs, and must.
    let witness =
        |html: &str| html.lines().find(|l| l.contains("Audit trail at generation")).map(str::to_string);
    let (wa, wb) = (witness(&a).unwrap(), witness(&b).unwrap());
    assert_ne!(wa, wb, "the second report witnesses a later audit trail");
    assert_eq!(
        a.replace(&wa, ""),
        b.replace(&wb, ""),
        "same data and cut-off must give the same bytes otherwise"
    );
    let html = &a;
    assert!(html.contains("EDSS worse than baseline at W12: 1 of 3"), "computed from the cohort");
    assert!(!html.contains(">MSC<"), "the open report shows no arm");

    // The archive lists both with the file's SHA-256.
    let list = d.vigil(&["report", "list", "--config", &cfg, "--format", "json"]);
    let reports: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let sha = |html: &str| hex::encode(sha2::Sha256::digest(html.as_bytes()));
    assert_eq!(reports.as_array().unwrap().len(), 2);
    assert_eq!(reports[0]["sha256"], sha(&a).as_str());
    assert_eq!(reports[1]["sha256"], sha(&b).as_str());
    assert_eq!(reports[0]["snapshot"], reports[1]["snapshot"]);

    // The emailed one reached both roles, attached.
    let mail = smtp.wait_for_messages(2, std::time::Duration::from_secs(20));
    let mut to: Vec<&str> = mail.iter().map(|m| m.rcpt_to.as_str()).collect();
    to.sort();
    assert_eq!(to, ["chair@trial.test", "so@trial.test"]);
    for m in &mail {
        assert!(m.subject.contains("[vigil][DSMB] Open report, data cut-off 2014-01-01"), "{}", m.subject);
        assert!(m.raw.contains("Content-Disposition: attachment"), "no attachment");
        assert!(m.body.contains(&sha(&a)), "the email states the file's SHA-256");
    }
}

#[test]
fn the_closed_report_splits_by_arm_and_never_goes_to_a_blinded_role() {
    let (smtp, d, cfg) = ingested();
    let out = d.path("closed");
    let path = dsmb(&d, &cfg, "2014-01-01", &out, &["--closed", "--email"]);
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.contains("CLOSED"), "marked closed");
    assert!(html.contains("MSC"), "the closed report shows the arm");
    // `--email` delivers before the command exits: whatever the server accepted is here now.
    let mail = smtp.wait_for_messages(1, std::time::Duration::from_secs(20));
    let mail_after = smtp.messages();
    assert_eq!(mail_after.len(), 1, "{:?}", mail.iter().map(|m| &m.rcpt_to).collect::<Vec<_>>());
    assert_eq!(mail_after[0].rcpt_to, "chair@trial.test", "only the unblinded DSMB chair");
    assert!(mail_after[0].subject.contains("CLOSED report"));
    // CSV of every table beside the HTML.
    let csv_dir = path.trim_end_matches(".html").to_string() + "-csv";
    assert!(std::fs::read_dir(&csv_dir).unwrap().count() > 5, "{csv_dir}");
    // Unblinded data on disk is the owner's alone: no one else on the machine reads it.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(std::path::Path::new(&path)), 0o600, "closed report HTML");
    assert_eq!(mode(std::path::Path::new(&csv_dir)), 0o700, "closed report CSV folder");
    for f in std::fs::read_dir(&csv_dir).unwrap().flatten() {
        assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
    }
    // The open and closed reports of one cut share no fingerprint in their names.
    let open_path = dsmb(&d, &cfg, "2014-01-01", &out, &[]);
    let tail = |p: &str| p.rsplit('-').next().unwrap_or_default().trim_end_matches(".html").to_string();
    assert_ne!(tail(&open_path), tail(&path), "{open_path} {path}");
}

/// A back-filled trial: every alert is raised today for findings of 2013. The report's
/// cut-off goes by each alert's clinical time (the scan, the visit), not by when it was raised.
#[test]
fn a_back_filled_trial_reports_the_alerts_whose_finding_falls_before_the_cutoff() {
    let (_smtp, d, cfg) = ingested();
    let report = |as_of: &str| {
        let out = d.path(&format!("cut-{as_of}"));
        let html = std::fs::read_to_string(dsmb(&d, &cfg, as_of, &out, &[])).unwrap();
        let csv_dir = out.read_dir().unwrap().flatten().find(|e| e.path().is_dir()).unwrap().path();
        let listing = std::fs::read_dir(&csv_dir)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with("_alerts_listing.csv"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .unwrap();
        (html, listing)
    };
    // MSC-02's W12 scan (2013-05-22, study day 82) has a new T2 lesion.
    let (html, listing) = report("2014-01-01");
    let mri: Vec<&str> = listing.lines().filter(|l| l.contains("mri-new-t2")).collect();
    assert_eq!(mri.len(), 1, "{listing}");
    assert!(mri[0].contains("MSC-02") && mri[0].contains("study day 82"), "{}", mri[0]);
    assert!(
        !html.contains("No alerts were raised in the period."),
        "the back-filled alerts are in the report"
    );
    // Before the scan, its alert is not in the report.
    let (_, listing) = report("2013-04-01");
    assert!(!listing.contains("mri-new-t2"), "{listing}");
}

/// SDTM: the closed report splits by the treatment actually received (DM ACTARM), not the
/// planned arm (ARM): a subject randomised to the high dose who received the low dose is
/// counted in the low-dose column.
#[test]
fn the_closed_report_splits_an_sdtm_export_by_actual_treatment() {
    let d = Deployment::with(None, "");
    let cfg = d.config.to_str().unwrap().to_string();
    let dir = d.path("sdtm");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("dm.csv"),
        "STUDYID,DOMAIN,USUBJID,SITEID,ARM,ACTARM,RFXSTDTC\n\
         S,DM,S-1,01,High,High,2020-01-06\n\
         S,DM,S-2,01,High,Low,2020-01-07\n\
         S,DM,S-3,01,Low,Low,2020-01-08\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("ex.csv"),
        "STUDYID,DOMAIN,USUBJID,EXSEQ,EXTRT,EXSTDTC\n\
         S,EX,S-1,1,DRUG,2020-01-06\n\
         S,EX,S-2,1,DRUG,2020-01-07\n\
         S,EX,S-3,1,DRUG,2020-01-08\n",
    )
    .unwrap();
    let o = d.vigil(&["ingest", "--config", &cfg, "--format", "sdtm", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = d.path("closed");
    let html = std::fs::read_to_string(dsmb(&d, &cfg, "2021-01-01", &out, &["--closed"])).unwrap();
    assert!(html.contains("High (N=1)"), "S-2 did not receive the high dose");
    assert!(html.contains("Low (N=2)"), "S-2 received the low dose");
}

/// One outbox, one worker: a pass sends alert and report emails alike, and a closed
/// report that somehow was queued for a blinded role is refused, never sent.
#[tokio::test]
async fn one_worker_sends_alert_and_report_emails_and_keeps_closed_reports_from_blinded_roles() {
    use vigil::store::{Evaluation, Notice, NotificationKind, NotificationStatus, Recipient};
    let dir = tempfile::tempdir().unwrap();
    let db = common::TestDatabase::new(dir.path(), "v");
    let store = vigil::store::Store::connect(&db.url).await.unwrap();
    let so = Recipient { role: "safety-officer".into(), address: "so@trial.test".into(), blinded: true };
    let chair = Recipient { role: "dsmb-chair".into(), address: "chair@trial.test".into(), blinded: false };
    let file = dir.path().join("dsmb.html");
    std::fs::write(&file, "<html>report</html>").unwrap();
    let path = file.display().to_string();
    let now = chrono::Utc::now();
    let archive = |kind: vigil::store::ReportKind, to: Vec<Recipient>| {
        let (store, path) = (store.clone(), path.clone());
        async move {
            store
                .archive_report(kind, now, "manual", "aa", &path, "bb", &to, "trial.test", now)
                .await
                .unwrap()
        }
    };
    let closed = archive(vigil::store::ReportKind::Closed, vec![so.clone(), chair.clone()]).await;
    let open = archive(vigil::store::ReportKind::Open, vec![so.clone()]).await;
    let mut alert = common::ae_alert(3, &so);
    alert.severity = vigil::rules::Severity::Critical;
    alert.summary = "Rash grade 3".into();
    alert.delivery.escalate_at = None;
    let evaluation = Evaluation { subject: "KS-101", alerts: vec![alert], ..Default::default() };
    assert_eq!(store.commit_evaluation(evaluation, "trial.test").await.unwrap().len(), 1);

    let config = vigil::config::Config::from_str(
        "study:\n  title: Study\nemail:\n  from: vigil@trial.test\n",
        &dir.path().join("vigil.yaml"),
        |_| None,
    )
    .unwrap();
    let outbox = vigil::notify::Outbox::new(store.clone(), &config).unwrap();
    let pass = outbox.deliver_due().await.unwrap();
    assert_eq!((pass.sent, pass.failed, pass.retrying), (3, 1, 0));

    let by: Vec<(Notice, NotificationKind, String, NotificationStatus)> = store
        .notifications()
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.about, n.kind, n.recipient, n.status))
        .collect();
    assert!(by.contains(&(
        Notice::Report(closed),
        NotificationKind::Report,
        "chair@trial.test".into(),
        NotificationStatus::Sent
    )));
    assert!(by.contains(&(
        Notice::Report(closed),
        NotificationKind::Report,
        "so@trial.test".into(),
        NotificationStatus::Failed
    )));
    assert!(by.contains(&(
        Notice::Report(open),
        NotificationKind::Report,
        "so@trial.test".into(),
        NotificationStatus::Sent
    )));
    assert!(by.iter().any(|n| matches!(n.0, Notice::Alert(_))
        && n.1 == NotificationKind::Alert
        && n.3 == NotificationStatus::Sent));
    let refused = store.notifications().await.unwrap().into_iter().find(|n| n.status == "failed").unwrap();
    assert_eq!(
        refused.last_error.as_deref(),
        Some(format!("report {closed} is closed and so@trial.test is blinded").as_str())
    );
    let emails: Vec<String> = std::fs::read_dir(dir.path().join("var/outbox"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(emails.len(), 3);
    let to_so_closed =
        emails.iter().filter(|e| e.contains("To: so@trial.test") && e.contains("CLOSED report"));
    assert_eq!(to_so_closed.count(), 0, "the blinded role never gets the closed report");
    assert_eq!(store.next_notification_due().await.unwrap(), None, "nothing left pending");
}

/// A scheduled report falls due while the replica that would have made it is dead, and a
/// replica started after the due time takes over: the report is made, once. (Schedules
/// count from the first start on the database, not from each process's.)
#[tokio::test]
async fn a_report_due_while_no_replica_ran_is_made_once_by_the_next() {
    let d = common::Deployment::with(
        None,
        "report:\n  out_dir: reports\n  recipients: [dsmb-chair]\n  closed: false\n  schedule: [\"0 * * * *\"]\n",
    );
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&chrono::Utc);
    let config = || vigil::config::Config::load(&d.config).unwrap();
    // The first replica starts at 10:30 and dies before 11:00.
    let first = vigil::daemon::App::build_with_clock(
        config(),
        vigil::clock::Clock::manual(at("2026-03-02T10:30:00Z")),
    )
    .await
    .unwrap();
    drop(first);
    // The next starts at 11:20 and runs its clock pass.
    let next = vigil::daemon::App::build_with_clock(
        config(),
        vigil::clock::Clock::manual(at("2026-03-02T11:20:00Z")),
    )
    .await
    .unwrap();
    next.clock_pass().await.unwrap();
    next.clock_pass().await.unwrap();
    let reports = next.store.reports().await.unwrap();
    assert_eq!(reports.len(), 1, "the 11:00 report, once: {reports:?}");
    assert_eq!(reports[0].reason, "schedule:0 * * * *");
}
