//! SIGHUP reloads the configuration and rules: a valid new set is swapped in and recorded,
//! an invalid one is refused with file:line:col while the running set goes on.

mod common;

use common::{wait_for, Deployment};
use std::time::Duration;

fn rash_rule(grade: u8) -> String {
    format!(
        "rules:\n  - id: rash\n    title: Rash of grade {grade} or higher\n    kind: adverse_event\n    match:\n      \
         terms: [Rash]\n      grade: {{at_least: {grade}}}\n    severity: warning\n    notify: [safety-officer]\n"
    )
}

fn rash(subject: &str, grade: u8) -> String {
    format!(
        "{{\"subject\":\"{subject}\",\"site\":\"KS\",\"date\":\"2026-03-02\",\
         \"adverse_events\":[{{\"id\":\"AE-1\",\"term\":\"Rash\",\"grade\":{grade},\"onset\":\"2026-03-01\"}}]}}\n"
    )
}

async fn alerts_of(d: &Deployment, subject: &str) -> usize {
    let store = d.store().await;
    let n = store.alerts().await.unwrap().iter().filter(|a| a.subject == subject).count();
    store.close().await;
    n
}

async fn wait_alerts(d: &Deployment, subject: &str, n: usize) {
    let start = std::time::Instant::now();
    while alerts_of(d, subject).await != n {
        assert!(start.elapsed() < Duration::from_secs(20), "{subject} never had {n} alerts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sighup_swaps_in_valid_rules_and_refuses_broken_ones_while_the_old_ones_run() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, rash_rule(3)).unwrap();
    let d = Deployment::with_rules(None, "", &rules.display().to_string());
    let daemon = d.start();

    d.drop_file("a.ndjson", &rash("KS-101", 2));
    wait_for("a.ndjson stored", Duration::from_secs(20), || d.processed("a.ndjson").then_some(()));

    // A broken file: refused with its position, and the running rules go on.
    std::fs::write(&rules, rash_rule(3).replace("grade: {at_least", "grde: {at_least")).unwrap();
    daemon.signal("HUP");
    let log = wait_for("the refusal", Duration::from_secs(20), || {
        let log = daemon.log_text();
        log.contains("Reload refused").then_some(log)
    });
    let at = format!("{}:7:", rules.display());
    assert!(log.contains(&at), "the refusal names file:line:col ({at}):\n{log}");
    d.drop_file("b.ndjson", &rash("KS-102", 3));
    wait_alerts(&d, "KS-102", 1).await;

    // A valid file: swapped in, and the new threshold applies to what arrives next.
    std::fs::write(&rules, rash_rule(2)).unwrap();
    daemon.signal("HUP");
    wait_for("the reload", Duration::from_secs(20), || {
        daemon.log_text().contains("Configuration and rules reloaded").then_some(())
    });
    d.drop_file("c.ndjson", &rash("KS-103", 2));
    wait_alerts(&d, "KS-103", 1).await;
    assert_eq!(alerts_of(&d, "KS-101").await, 0, "a record evaluated under the old rules stays as it was");

    // Each load is on record: who, what came of it, and the files with their SHA-256.
    let store = d.store().await;
    let loads = store.config_loads().await.unwrap();
    let seen: Vec<(&str, &str)> = loads.iter().map(|l| (l.actor.as_str(), l.outcome.as_str())).collect();
    assert_eq!(seen, [("start", "applied"), ("signal:SIGHUP", "refused"), ("signal:SIGHUP", "applied")]);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(rash_rule(2)))
    };
    let files = loads[2].detail["files"].as_array().unwrap();
    assert!(
        files.iter().any(|f| f["file"] == rules.display().to_string() && f["sha256"] == sha),
        "{files:?}"
    );
    assert!(loads[1].detail["problems"].as_str().unwrap().contains(&at));
    store.close().await;
}
