//! The alert lifecycle against a real SMTP server: escalation, acknowledgement, silences,
//! grouping, permanent failures, and blinding. What depends on time passing runs vigil
//! in-process on a manual clock (`common::InProcess`) and moves the clock instead of
//! sleeping; people's actions (ack, silence, show) go through the real `vigil` binary
//! against the same database.

mod common;

use common::{Deployment, InProcess, SmtpServer};
use std::time::Duration;

const ARM: &str = "MSC-HIGH-DOSE";

fn severe_reaction(subject: &str) -> String {
    [
        format!(
            r#"{{"subject":"{subject}","site":"KS","arm":"{ARM}","visit":"BL","date":"2019-02-26","record_id":"{subject}-bl","doses":[{{"start":"2019-02-26T09:10:00+01:00"}}]}}"#
        ),
        format!(
            r#"{{"subject":"{subject}","site":"KS","arm":"{ARM}","visit":"H2","record_id":"{subject}-h2","adverse_events":[{{"id":"AE-1","term":"Infusion related reaction","onset":"2019-02-26T09:35:00+01:00","grade":3,"related":"probable"}}]}}"#
        ),
    ]
    .join("\n")
}

const ESCALATION: &str = "alerting:\n  group_wait: 1s\n  escalation:\n    critical:\n      after: 2s\n      chain: [medical-monitor, dsmb-chair]\n";

fn to<'a>(mail: &'a [common::Email], address: &str, subject_part: &str) -> Vec<&'a common::Email> {
    mail.iter().filter(|m| m.rcpt_to == address && m.subject.contains(subject_part)).collect()
}

/// The id of the severe infusion-reaction alert, as `vigil alerts list` shows it.
fn severe_alert_id(d: &Deployment) -> String {
    let list = vigil_ok(d, &["alerts", "list", "--format", "json"]);
    let alerts: serde_json::Value = serde_json::from_str(&list).unwrap();
    let severe = alerts.as_array().unwrap().iter().find(|a| a["rule_id"] == "infusion-reaction-severe");
    severe.unwrap()["id"].as_i64().unwrap().to_string()
}

/// Runs a command as the person `user` (`--user`, their password on stdin).
fn vigil_as(d: &Deployment, user: &str, args: &[&str]) -> String {
    let mut full = args.to_vec();
    full.extend(["--user", user, "--config", d.config.to_str().unwrap()]);
    let out = d.vigil_with_input(&full, &format!("{}\n", common::PASSWORD));
    assert!(out.status.success(), "vigil {args:?} as {user}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn vigil_ok(d: &Deployment, args: &[&str]) -> String {
    let mut full = args.to_vec();
    full.extend(["--config", d.config.to_str().unwrap()]);
    let out = d.vigil(&full);
    assert!(out.status.success(), "vigil {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn an_unacknowledged_alert_escalates_along_its_chain_and_only_the_unblinded_see_the_arm() {
    let smtp = SmtpServer::start();
    let d = Deployment::with(Some(&smtp.url()), ESCALATION);
    let vigil = InProcess::build(&d).await;
    vigil.ingest(&d, "irr.ndjson", &severe_reaction("KS-101")).await;
    // First notices, then medical monitor (after 2 s), then DSMB chair (2 s later).
    assert!(to(&smtp.messages(), "chair@trial.test", "[ESCALATED] KS-101").is_empty());
    vigil.advance(Duration::from_secs(2)).await;
    assert_eq!(to(&smtp.messages(), "mm@trial.test", "[ESCALATED] KS-101").len(), 1);
    assert!(to(&smtp.messages(), "chair@trial.test", "[ESCALATED] KS-101").is_empty());
    vigil.advance(Duration::from_secs(2)).await;
    let mail = smtp.messages();
    let escalated_mm = to(&mail, "mm@trial.test", "[ESCALATED] KS-101");
    assert_eq!(
        escalated_mm.len(),
        1,
        "{:?}",
        mail.iter().map(|m| (&m.rcpt_to, &m.subject)).collect::<Vec<_>>()
    );
    assert!(escalated_mm[0].body.contains("nobody has acknowledged this alert"));
    let chair = to(&mail, "chair@trial.test", "[ESCALATED] KS-101");
    assert_eq!(chair.len(), 1, "{:?}", mail.iter().map(|m| (&m.rcpt_to, &m.subject)).collect::<Vec<_>>());
    let chair = chair[0];
    assert!(chair.body.contains(&format!("Treatment arm: {ARM}")), "unblinded recipient: {}", chair.body);
    assert!(chair.html.contains(ARM));
    for m in mail.iter().filter(|m| m.rcpt_to != "chair@trial.test") {
        assert!(!m.raw.contains(ARM), "arm sent to blinded {}: {}", m.rcpt_to, m.raw);
    }
    // The end of the chain: nothing more comes.
    vigil.advance(Duration::from_secs(3)).await;
    vigil.advance(Duration::from_secs(60)).await;
    assert_eq!(to(&smtp.messages(), "chair@trial.test", "[ESCALATED] KS-101").len(), 1);
    let show = vigil_ok(&d, &["alerts", "show", "1"]);
    assert!(show.contains("escalated") && show.contains("to dsmb-chair"), "{show}");
}

#[tokio::test]
async fn acknowledging_stops_escalation() {
    let smtp = SmtpServer::start();
    let d = Deployment::with(Some(&smtp.url()), &ESCALATION.replace("after: 2s", "after: 4s"));
    let vigil = InProcess::build(&d).await;
    vigil.ingest(&d, "irr.ndjson", &severe_reaction("KS-102")).await;
    assert!(!to(&smtp.messages(), "so@trial.test", "[CRITICAL] KS-102").is_empty(), "the critical notice");
    let id = severe_alert_id(&d);
    d.add_user("dr.safety", "Dr Safety", "safety-officer");
    let out = vigil_as(&d, "dr.safety", &["alerts", "ack", &id, "--comment", "patient seen"]);
    assert!(out.contains("acknowledged by user:dr.safety"), "{out}");
    // Past the escalation time, twice over.
    vigil.advance(Duration::from_secs(4)).await;
    vigil.advance(Duration::from_secs(4)).await;
    assert!(smtp.messages().iter().all(|m| !m.subject.contains("[ESCALATED] KS-102")));
    let show = vigil_ok(&d, &["alerts", "show", &id]);
    assert!(show.contains("acknowledged") && show.contains("by user:dr.safety: patient seen"), "{show}");
    // A second acknowledgement is refused (exit 1).
    let again = d.vigil(&["alerts", "ack", &id, "--config", d.config.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
}

#[tokio::test]
async fn a_silence_suppresses_then_expires() {
    let smtp = SmtpServer::start();
    let d = Deployment::with(Some(&smtp.url()), "");
    // The clock stands at a moment before the silence is made, so it expires 4 s later
    // on it too.
    let vigil = InProcess::build(&d).await;
    d.add_user("dr.mri", "Dr Mri", "medical-monitor");
    vigil_as(
        &d,
        "dr.mri",
        &["alerts", "silence", "--rule", "mri-new-t2", "--for", "4s", "--comment", "rescan pending"],
    );
    let scan = r#"{"subject":"KS-201","site":"KS","visit":"W12","date":"2019-05-21","mri":{"t2_new_or_enlarging":2,"gd_enhancing":0}}"#;
    vigil.ingest(&d, "mri.json", scan).await;
    let list = vigil_ok(&d, &["alerts", "list"]);
    assert!(list.contains("silenced"), "{list}");
    vigil.advance(Duration::from_millis(1500)).await;
    assert!(smtp.messages().iter().all(|m| !m.subject.contains("mri-new-t2")), "silenced alert was mailed");
    // After expiry the alert re-opens and its notice goes out. (Well past it: the silence's
    // 4 s count from when the command ran, after the manual clock was set.)
    vigil.advance(Duration::from_secs(10)).await;
    let mail = smtp.messages();
    assert_eq!(
        mail.iter().filter(|m| m.subject.contains("mri-new-t2")).count(),
        1,
        "the notice after the silence"
    );
    let silences = vigil_ok(&d, &["alerts", "silences"]);
    assert!(silences.contains("ended") && silences.contains("user:dr.mri: rescan pending"), "{silences}");
}

#[tokio::test]
async fn a_burst_of_alerts_of_one_rule_goes_out_as_one_email() {
    let smtp = SmtpServer::start();
    let d = Deployment::with(Some(&smtp.url()), "alerting:\n  group_wait: 2s\n");
    let vigil = InProcess::build(&d).await;
    let burst: Vec<String> = (1..=5)
        .map(|i| format!(r#"{{"subject":"KS-30{i}","site":"KS","visit":"W12","date":"2019-05-21","mri":{{"t2_new_or_enlarging":{i}}}}}"#))
        .collect();
    vigil.ingest(&d, "burst.ndjson", &burst.join("\n")).await;
    // The grouping wait holds the notices back.
    assert!(smtp.messages().is_empty(), "sent before the grouping wait");
    vigil.advance(Duration::from_secs(2)).await;
    let mail = smtp.messages();
    vigil.advance(Duration::from_secs(3)).await;
    let mail_after = smtp.messages();
    assert_eq!(mail_after.len(), 1, "{:?}", mail_after.iter().map(|m| &m.subject).collect::<Vec<_>>());
    let m = &mail[0];
    assert!(m.subject.contains("5 alerts"), "{}", m.subject);
    for i in 1..=5 {
        assert!(m.body.contains(&format!("Subject KS-30{i}")), "{}", m.body);
    }
}

/// A safety email never fails quietly: a refused email about a critical alert is tried a
/// bounded number of times, then recorded as failed, raised as a critical internal alert to
/// the administrators and the fallback address, shown in the alert's email log, and can be
/// queued again.
#[tokio::test]
async fn a_refused_safety_email_is_retried_a_few_times_then_raised_and_can_be_resent() {
    let smtp = SmtpServer::start_rejecting();
    let d = Deployment::with(
        Some(&smtp.url()),
        "alerting:\n  group_wait: 1s\n  undeliverable:\n    fallback: oncall@backup.test\n    critical_attempts: 3\n",
    );
    // The medical monitor's address is refused with 550.
    let config = std::fs::read_to_string(&d.config).unwrap().replace("mm@trial.test", "reject-mm@trial.test");
    std::fs::write(&d.config, config).unwrap();
    let vigil = InProcess::build(&d).await;
    vigil.ingest(&d, "irr.ndjson", &severe_reaction("KS-401")).await;
    assert!(!to(&smtp.messages(), "so@trial.test", "[CRITICAL]").is_empty(), "the accepted notice");
    let store = d.store().await;
    let refused = || async {
        store
            .notifications()
            .await
            .unwrap()
            .into_iter()
            .find(|n| n.recipient == "reject-mm@trial.test")
            .unwrap()
    };
    let first = refused().await;
    assert_eq!(
        (first.status.as_str(), first.attempts),
        ("pending", 1),
        "a 5xx on a critical email is tried again"
    );
    assert!(first.last_error.as_deref().unwrap_or_default().contains("550"), "{:?}", first.last_error);
    // Well past every retry time (1 s, then 2 s).
    vigil.advance(Duration::from_secs(3)).await;
    vigil.advance(Duration::from_secs(30)).await;
    vigil.advance(Duration::from_secs(30)).await;
    let failed = refused().await;
    assert_eq!((failed.status.as_str(), failed.attempts), ("failed", 3), "bounded: critical_attempts");

    // The failure is itself a critical alert, to the default role and the fallback address.
    let alerts = store.alerts().await.unwrap();
    let raised = alerts.iter().find(|a| a.rule_id == "vigil:undeliverable-email").expect("an internal alert");
    assert_eq!(raised.severity, vigil::rules::Severity::Critical);
    assert!(
        raised.summary.contains("reject-mm@trial.test") && raised.summary.contains("550"),
        "{}",
        raised.summary
    );
    assert!(
        raised.summary.contains(&format!("vigil notifications retry {}", failed.id)),
        "{}",
        raised.summary
    );
    let mail = smtp.messages();
    for who in ["so@trial.test", "oncall@backup.test"] {
        assert!(!to(&mail, who, "could not be delivered").is_empty(), "{who} is told");
    }
    // The alert's email log shows it.
    let original = alerts.iter().find(|a| a.rule_id == "infusion-reaction-severe").unwrap();
    let log = store.deliveries_of_alert(original.id).await.unwrap();
    assert!(log.iter().any(|m| m.recipient == "reject-mm@trial.test" && m.status == "failed"), "{log:?}");

    // Once the cause is fixed, it is queued again; a notification that did not fail is not.
    assert!(store.retry_notification(failed.id).await.unwrap());
    assert_eq!(refused().await.status.as_str(), "pending");
    let sent =
        store.notifications().await.unwrap().into_iter().find(|n| n.status.as_str() == "sent").unwrap();
    assert!(!store.retry_notification(sent.id).await.unwrap());
}

/// Resolved means "no longer present". An alert a person resolves while its condition
/// still holds opens again at the next evaluation (and its recipients hear of it again);
/// one that resolved itself when an AE was downgraded opens again when the AE is
/// upgraded back, instead of staying quiet because its episode was seen before.
#[tokio::test]
async fn a_resolved_alert_whose_condition_holds_opens_again() {
    let smtp = SmtpServer::start();
    let d = Deployment::new(Some(&smtp.url()));
    let vigil = InProcess::build(&d).await;
    vigil.ingest(&d, "irr.ndjson", &severe_reaction("KS-103")).await;
    let critical = |mail: &[common::Email]| to(mail, "so@trial.test", "[CRITICAL] KS-103").len();
    assert_eq!(critical(&smtp.messages()), 1);
    let id = severe_alert_id(&d);

    // Resolved by hand while the grade 3 reaction is still on record: it comes back.
    vigil_ok(&d, &["alerts", "resolve", &id, "--comment", "nothing to see"]);
    vigil.settle().await;
    let show = vigil_ok(&d, &["alerts", "show", &id]);
    assert!(show.contains("[CRITICAL] open"), "{show}");
    assert!(show.contains("re-opened") && show.contains("condition still present"), "{show}");
    assert_eq!(critical(&smtp.messages()), 2, "the recipients hear of it again");

    // Downgraded by the site: resolves itself. Upgraded back: opens again, and is told.
    let h2 = |grade: u8| {
        format!(
            r#"{{"subject":"KS-103","site":"KS","arm":"{ARM}","visit":"H2","record_id":"KS-103-h2-{grade}","adverse_events":[{{"id":"AE-1","term":"Infusion related reaction","onset":"2019-02-26T09:35:00+01:00","grade":{grade},"related":"probable"}}]}}"#
        )
    };
    vigil.ingest(&d, "down.ndjson", &h2(2)).await;
    let show = vigil_ok(&d, &["alerts", "show", &id]);
    assert!(show.contains("resolved") && show.contains("condition no longer present"), "{show}");
    vigil.ingest(&d, "up.ndjson", &h2(3)).await;
    let store = d.store().await;
    let alert = store.alert(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(alert.status.as_str(), "open");
    let severe = store.alerts().await.unwrap();
    assert_eq!(
        severe.iter().filter(|a| a.rule_id == "infusion-reaction-severe").count(),
        1,
        "the same alert"
    );
    store.close().await;
    assert_eq!(critical(&smtp.messages()), 3);
}

/// A recipient whose server keeps answering "try again later" (4xx) is retried with a
/// capped backoff, and given up once the notification has waited `give_up_after`: the
/// give-up is raised as a critical internal alert, like a refusal, not retried forever.
#[tokio::test]
async fn an_email_that_keeps_being_deferred_is_given_up_and_raised() {
    let smtp = SmtpServer::start_rejecting();
    let d = Deployment::with(
        Some(&smtp.url()),
        "alerting:\n  group_wait: 1s\n  undeliverable:\n    fallback: oncall@backup.test\n    give_up_after: 1h\n",
    );
    let config = std::fs::read_to_string(&d.config).unwrap().replace("mm@trial.test", "busy-mm@trial.test");
    std::fs::write(&d.config, config).unwrap();
    let vigil = InProcess::build(&d).await;
    vigil.ingest(&d, "irr.ndjson", &severe_reaction("KS-402")).await;
    let store = d.store().await;
    let deferred = || async {
        store
            .notifications()
            .await
            .unwrap()
            .into_iter()
            .find(|n| n.recipient == "busy-mm@trial.test")
            .unwrap()
    };
    let first = deferred().await;
    assert_eq!(first.status.as_str(), "pending");
    assert!(first.last_error.as_deref().unwrap_or_default().contains("451"), "{:?}", first.last_error);
    // Within the hour it stays pending, retried; past it, it is given up.
    for _ in 0..5 {
        vigil.advance(Duration::from_secs(600)).await;
    }
    assert_eq!(deferred().await.status.as_str(), "pending", "still within give_up_after");
    vigil.advance(Duration::from_secs(900)).await;
    vigil.advance(Duration::from_secs(60)).await;
    let given_up = deferred().await;
    assert_eq!(given_up.status.as_str(), "failed");
    assert!(
        given_up.last_error.as_deref().unwrap_or_default().contains("given up after 1 h"),
        "{given_up:?}"
    );
    let alerts = store.alerts().await.unwrap();
    let raised = alerts.iter().find(|a| a.rule_id == "vigil:undeliverable-email").expect("an internal alert");
    assert!(raised.summary.contains("busy-mm@trial.test"), "{}", raised.summary);
    assert!(!to(&smtp.messages(), "oncall@backup.test", "could not be delivered").is_empty());
    store.close().await;
}

/// Where the study says so, a critical alert is resolved by two people: the first resolve
/// is recorded as a request, the same person asking again changes nothing, and a second
/// person's resolve closes it, with both on the alert's history.
#[tokio::test]
async fn a_critical_resolution_can_need_a_second_person() {
    let d = Deployment::with(None, "alerting:\n  group_wait: 1s\n  second_person_resolves_critical: true\n");
    let vigil = InProcess::build(&d).await;
    vigil.ingest(&d, "irr.ndjson", &severe_reaction("KS-104")).await;
    let id = severe_alert_id(&d);
    let list = vigil_ok(&d, &["alerts", "list", "--format", "json"]);
    let alerts: serde_json::Value = serde_json::from_str(&list).unwrap();
    d.add_user("alice", "Alice Aalto", "safety-officer");
    d.add_user("bob", "Bob Berg", "medical-monitor");
    let first = vigil_as(&d, "alice", &["alerts", "resolve", &id, "--comment", "reaction resolved"]);
    assert!(first.contains("open") && first.contains("a second person must confirm"), "{first}");
    let again = vigil_as(&d, "alice", &["alerts", "resolve", &id, "--comment", "really"]);
    assert!(again.contains("a second person must confirm"), "the same person twice is not two: {again}");
    let second = vigil_as(&d, "bob", &["alerts", "resolve", &id, "--comment", "agreed"]);
    assert_eq!(second.trim(), format!("alert #{id} resolved by user:bob"));
    let show = vigil_ok(&d, &["alerts", "show", &id]);
    assert!(show.contains("resolution requested by user:alice: reaction resolved"), "{show}");
    assert!(show.contains("by user:bob: agreed (confirming the resolution asked by user:alice)"), "{show}");
    // A non-critical alert is closed by one person as before.
    let info = alerts.as_array().unwrap().iter().find(|a| a["severity"] != "critical").unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let one = vigil_as(&d, "alice", &["alerts", "resolve", &info]);
    assert_eq!(one.trim(), format!("alert #{info} resolved by user:alice"));
}
