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

/// `vigil reload` asks the running daemon through its API and prints the answer: the files
/// now in force, or every problem of a refused set (exit 1) while the old set runs on.
#[tokio::test]
async fn vigil_reload_goes_through_the_api_and_says_what_came_of_it() {
    const TOKEN: &str = "reload-token-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, rash_rule(3)).unwrap();
    let port = common::free_port();
    let d = Deployment::with_rules(
        None,
        &format!("http:\n  addr: \"127.0.0.1:{port}\"\n"),
        &rules.display().to_string(),
    );
    let token_file = d.path("tokens.txt");
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()))
    };
    std::fs::write(&token_file, format!("operator {hash}\n")).unwrap();
    let cfg = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("http:\n", &format!("http:\n  token_file: \"{}\"\n", token_file.display()));
    std::fs::write(&d.config, cfg).unwrap();
    let _daemon = d.start();
    wait_for("the HTTP server", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let reload = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["reload", "--config"])
            .arg(&d.config)
            .env("VIGIL_API_TOKEN", TOKEN)
            .output()
            .unwrap()
    };

    std::fs::write(&rules, rash_rule(2)).unwrap();
    let ok = reload();
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{out}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(out.contains("reloaded: 1 rules") && out.contains(&rules.display().to_string()), "{out}");

    std::fs::write(&rules, "rules:\n  - id: rash\n    kind: no_such_kind\n").unwrap();
    let refused = reload();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{}:3:", rules.display())), "{err}");
    d.drop_file("a.ndjson", &rash("KS-201", 2));
    wait_alerts(&d, "KS-201", 1).await;

    let store = d.store().await;
    let actors: Vec<String> = store.config_loads().await.unwrap().into_iter().map(|l| l.actor).collect();
    assert_eq!(actors, ["start", "http:token:operator", "http:token:operator"]);
    store.close().await;
}
