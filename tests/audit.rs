//! 21 CFR Part 11 end to end, black-box: the audit trail's hash chain names an entry edited
//! or deleted behind the database's back; every action of the alert lifecycle, over HTTP
//! and the command line, is in the trail with the authenticated person, and refusals too;
//! a signed acknowledgement shows who, when and what it means; a wrong password signs
//! nothing and locks the account after N tries, alerting the administrators.

mod common;

use common::{free_port, wait_for, Deployment, SmtpServer, PASSWORD};
use serde_json::{json, Value};
use std::time::Duration;

const SERVICE_TOKEN: &str = "site-token-0123456789abcdef";

const SEVERE: &str = r#"{"subject":"KS-701","site":"KS","arm":"MSC-HIGH","visit":"BL","date":"2019-02-26","record_id":"ks701-bl","doses":[{"start":"2019-02-26T09:10:00Z"}]}
{"subject":"KS-701","site":"KS","visit":"H2","record_id":"ks701-h2","adverse_events":[{"id":"AE-1","term":"Infusion related reaction","onset":"2019-02-26T09:35:00Z","grade":3,"related":"probable"}]}
"#;

fn vigil_ok(d: &Deployment, args: &[&str]) -> String {
    let mut full = args.to_vec();
    full.extend(["--config", d.config.to_str().unwrap()]);
    let out = d.vigil(&full);
    assert!(out.status.success(), "vigil {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn trail(d: &Deployment) -> Vec<Value> {
    serde_json::from_str(&vigil_ok(d, &["audit", "export", "--format", "json"])).unwrap()
}

fn has(trail: &[Value], actor: &str, action: &str, entity_id: &str) -> bool {
    trail.iter().any(|e| e["actor"] == actor && e["action"] == action && e["entity_id"] == entity_id)
}

struct Site {
    d: Deployment,
    base: String,
    client: reqwest::Client,
    _daemon: common::Daemon,
}

impl Site {
    fn start(smtp: Option<&str>, extra: &str) -> Site {
        let port = free_port();
        let d = Deployment::with(smtp, &format!("http:\n  addr: \"127.0.0.1:{port}\"\n{extra}"));
        // The same service token for every test of this file: the daemon inherits it.
        std::env::set_var("VIGIL_API_TOKENS", format!("site:{SERVICE_TOKEN}"));
        let daemon = d.start();
        wait_for("the HTTP server", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        d.add_user("dr.safety", "Dr Sarah Safety", "safety-officer");
        d.add_user("dr.mm", "Dr Mark Monitor", "medical-monitor");
        Site { d, base: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new(), _daemon: daemon }
    }

    async fn post(&self, path: &str, token: Option<&str>, body: impl Into<String>) -> (u16, Value) {
        let mut req = self.client.post(format!("{}{path}", self.base)).body(body.into());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = self.client.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    /// The severe infusion reaction's alert id, once the daemon has raised it.
    async fn severe_alert(&self, token: &str) -> i64 {
        let start = std::time::Instant::now();
        loop {
            let (_, alerts) = self.get("/v1/alerts?subject=KS-701", token).await;
            let found = alerts.as_array().and_then(|a| {
                a.iter().find(|a| a["rule_id"] == "infusion-reaction-severe").and_then(|a| a["id"].as_i64())
            });
            if let Some(id) = found {
                return id;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no severe alert: {alerts}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs SQL on the deployment's database as an attacker with file or superuser access.
async fn attacker_sql(d: &Deployment, statements: &[&str]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&d.db_url()).await.unwrap();
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

async fn refused_sql(d: &Deployment, sql: &str) -> String {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&d.db_url()).await.unwrap();
    let err = sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&pool).await.unwrap_err();
    pool.close().await;
    err.to_string()
}

#[tokio::test]
async fn an_edited_audit_row_is_named_by_verify() {
    let d = Deployment::new(None);
    let postgres = d.db_url().starts_with("postgres");
    d.add_user("dr.safety", "Dr Sarah Safety", "safety-officer");
    let input = d.path("in.ndjson");
    std::fs::write(&input, SEVERE).unwrap();
    let out = d.vigil(&["ingest", "--config", d.config.to_str().unwrap(), input.to_str().unwrap()]);
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", String::from_utf8_lossy(&out.stderr));
    let intact = vigil_ok(&d, &["audit", "verify"]);
    assert!(intact.contains("the chain is intact"), "{intact}");
    let entries = trail(&d);
    assert!(entries.len() > 10, "user, configuration, records, alerts, notifications: {}", entries.len());

    // The database itself refuses to change or remove an entry.
    let refused = refused_sql(&d, "UPDATE audit_log SET actor = 'user:mallory' WHERE pos = 3").await;
    assert!(refused.contains("append-only"), "{refused}");
    let refused = refused_sql(&d, "DELETE FROM audit_log WHERE pos = 3").await;
    assert!(refused.contains("append-only"), "{refused}");
    let refused = refused_sql(&d, "UPDATE records SET body = '{}'").await;
    assert!(refused.contains("kept as written"), "{refused}");

    // An attacker with file (or superuser) access drops the trigger and edits entry 3.
    let on = if postgres { " ON audit_log" } else { "" };
    let original = entries.iter().find(|e| e["pos"] == 3).unwrap()["actor"].as_str().unwrap().to_string();
    attacker_sql(
        &d,
        &[
            &format!("DROP TRIGGER audit_log_no_update{on}"),
            "UPDATE audit_log SET actor = 'user:mallory' WHERE pos = 3",
        ],
    )
    .await;
    let out = d.vigil(&["audit", "verify", "--config", d.config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("BROKEN: entry 3 (seq 3) was edited"), "{text}");

    // Put back as it was, the chain holds again: the check is on content, not on a flag.
    attacker_sql(&d, &[&format!("UPDATE audit_log SET actor = '{original}' WHERE pos = 3")]).await;
    assert!(vigil_ok(&d, &["audit", "verify"]).contains("the chain is intact"));

    // A deleted entry is named too.
    attacker_sql(
        &d,
        &[&format!("DROP TRIGGER audit_log_no_delete{on}"), "DELETE FROM audit_log WHERE pos = 5"],
    )
    .await;
    let out = d.vigil(&["audit", "verify", "--config", d.config.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["first_break"], json!({"kind": "unlinked", "pos": 6, "seq": 6, "expected_pos": 5}), "{v}");
    assert_eq!(v["entries"], 4);
}

#[tokio::test]
async fn every_lifecycle_action_is_in_the_trail_with_its_user() {
    let site = Site::start(None, "");
    let d = &site.d;
    let safety = d.token_of("dr.safety", "ingest,read,operate");
    assert_eq!(site.post("/v1/records", Some(&safety), SEVERE).await.0, 202);
    let id = site.severe_alert(&safety).await;
    let (status, _) =
        site.post(&format!("/v1/alerts/{id}/ack"), Some(&safety), r#"{"comment":"patient seen"}"#).await;
    assert_eq!(status, 200);
    let (status, silenced) = site
        .post("/v1/silences", Some(&safety), r#"{"subject":"KS-701","for":"1h","comment":"under review"}"#)
        .await;
    assert_eq!(status, 201);
    // Closed early, with a signature.
    let close = format!("/v1/silences/{}/close", silenced["id"]);
    let signed = json!({"signature": {"password": PASSWORD, "meaning": "approved"}}).to_string();
    let (status, closed) = site.post(&close, Some(&safety), signed.clone()).await;
    assert_eq!((status, closed["signed"].as_bool()), (200, Some(true)), "{closed}");
    assert_eq!(site.post(&close, Some(&safety), signed).await.0, 409, "ended once");
    // The command line, as a named person (password on stdin) and as the local operator.
    let config = d.config.to_str().unwrap();
    let id_text = id.to_string();
    let args = [
        "alerts",
        "resolve",
        &id_text,
        "--user",
        "dr.mm",
        "--comment",
        "resolved on day 2",
        "--config",
        config,
    ];
    let out = d.vigil_with_input(&args, &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    vigil_ok(d, &["users", "disable", "dr.mm"]);

    let entries = trail(d);
    let alert = id.to_string();
    assert!(has(&entries, "user:dr.safety", "acknowledged", &alert), "the HTTP acknowledgement");
    assert!(has(&entries, "user:dr.mm", "resolved", &alert), "the CLI resolution");
    assert!(entries.iter().any(|e| e["actor"] == "user:dr.safety" && e["action"] == "silence created"));
    assert!(entries.iter().any(|e| e["actor"] == "user:dr.safety" && e["action"] == "silence ended"));
    assert!(entries.iter().any(|e| e["actor"] == "user:dr.safety"
        && e["action"] == "signed"
        && e["detail"].as_str().unwrap_or_default().contains("close_silence")));
    assert!(entries
        .iter()
        .any(|e| e["actor"] == "vigil" && e["action"] == "alert raised" && e["entity_id"] == alert));
    assert!(entries.iter().any(|e| e["action"] == "notification queued"));
    let record =
        entries.iter().find(|e| e["action"] == "record stored" && e["entity_id"] == "id:ks701-h2").unwrap();
    assert!(record["actor"].as_str().unwrap().starts_with("http:user:dr.safety/"), "{record}");
    let local = entries.iter().find(|e| e["action"] == "user changed" && e["entity_id"] == "dr.mm").unwrap();
    assert!(
        local["actor"].as_str().unwrap().starts_with("local:"),
        "the CLI names the local operator: {local}"
    );
    assert!(entries.iter().any(|e| e["action"] == "configuration applied" && e["actor"] == "start"));
    // Every entry is sealed within a few seconds by the daemon (here by the export itself).
    assert!(entries.iter().all(|e| e["hash"].is_string()), "sealed");
    assert!(vigil_ok(d, &["audit", "verify"]).contains("the chain is intact"));
}

#[tokio::test]
async fn a_refused_action_is_audited() {
    let site = Site::start(None, "authority:\n  acknowledge: [safety-officer, medical-monitor]\n");
    let d = &site.d;
    d.add_user("dr.chair", "Dr Claire Chair", "dsmb-chair");
    let safety = d.token_of("dr.safety", "ingest,read,operate");
    assert_eq!(site.post("/v1/records", Some(&safety), SEVERE).await.0, 202);
    let id = site.severe_alert(&safety).await;
    let ack = format!("/v1/alerts/{id}/ack");
    // Unauthenticated, a service token, a token without `operate`, a person without the role.
    assert_eq!(site.post(&ack, None, "").await.0, 401);
    assert_eq!(site.post(&ack, Some("not-a-token-at-all-000000"), "").await.0, 401);
    assert_eq!(site.post(&ack, Some(SERVICE_TOKEN), "").await.0, 403);
    let reader = d.token_of("dr.safety", "read");
    assert_eq!(site.post(&ack, Some(&reader), "").await.0, 403);
    let chair = d.token_of("dr.chair", "read,operate");
    let (status, body) = site.post(&ack, Some(&chair), "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("dr.chair may not acknowledge"), "{body}");
    // And on the command line.
    let config = d.config.to_str().unwrap();
    let id_text = id.to_string();
    let out = d.vigil_with_input(
        &["alerts", "ack", &id_text, "--user", "dr.chair", "--config", config],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));

    let entries = trail(d);
    let refused: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["action"].as_str().unwrap_or_default().ends_with("refused"))
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        refused
            .iter()
            .filter(|(a, act)| a.starts_with("anonymous@127.0.0.1") && *act == "authentication refused")
            .count(),
        2,
        "{refused:?}"
    );
    assert!(refused.contains(&("token:site", "acknowledge refused")), "{refused:?}");
    assert_eq!(
        refused.iter().filter(|r| **r == ("user:dr.safety", "acknowledge refused")).count(),
        1,
        "{refused:?}"
    );
    assert_eq!(
        refused.iter().filter(|r| **r == ("user:dr.chair", "acknowledge refused")).count(),
        2,
        "{refused:?}"
    );
    // Nothing was acknowledged.
    let (_, shown) = site.get(&format!("/v1/alerts/{id}"), &reader).await;
    assert_eq!(shown["alert"]["status"], "open");
}

#[tokio::test]
async fn a_signed_acknowledgement_shows_name_time_and_meaning() {
    let smtp = SmtpServer::start();
    let site = Site::start(Some(&smtp.url()), "signatures:\n  required: [resolve]\n");
    let d = &site.d;
    let safety = d.token_of("dr.safety", "ingest,read,operate");
    assert_eq!(site.post("/v1/records", Some(&safety), SEVERE).await.0, 202);
    let id = site.severe_alert(&safety).await;
    let body = json!({"comment": "patient seen at 10:05", "signature": {"password": PASSWORD, "meaning": "reviewed"}});
    let (status, acked) = site.post(&format!("/v1/alerts/{id}/ack"), Some(&safety), body.to_string()).await;
    assert_eq!(status, 200, "{acked}");

    let show = vigil_ok(d, &["alerts", "show", &id.to_string()]);
    let line = show.lines().find(|l| l.contains("signed by")).unwrap_or_else(|| panic!("{show}"));
    assert!(line.contains("signed by Dr Sarah Safety (dr.safety), reviewed, "), "{line}");
    assert!(line.contains(" UTC (") && line.contains("bound to this alert"), "{line}");
    let (_, shown) = site.get(&format!("/v1/alerts/{id}"), &safety).await;
    assert_eq!(shown["signatures"][0]["holds"], true, "{shown}");
    assert_eq!(shown["history"][1]["signature"]["meaning"], "reviewed", "{shown}");

    // This study requires resolutions to be signed: unsigned is refused, signed goes through.
    let resolve = format!("/v1/alerts/{id}/resolve");
    let (status, body) = site.post(&resolve, Some(&safety), r#"{"comment":"over"}"#).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("requires an electronic signature"), "{body}");
    let signed = json!({"comment": "treated", "signature": {"password": PASSWORD, "meaning": "responsible"}});
    assert_eq!(site.post(&resolve, Some(&safety), signed.to_string()).await.0, 200);
    // The grade 3 reaction is still on record: the alert opens again, and its email shows
    // the signatures on it so far.
    let reopened = wait_for("the re-open email", Duration::from_secs(30), || {
        smtp.messages().into_iter().find(|m| m.body.contains("Signed: resolve signed by"))
    });
    assert!(
        reopened.body.contains("Signed: acknowledge signed by Dr Sarah Safety (dr.safety), reviewed"),
        "{}",
        reopened.body
    );
    assert!(
        reopened.body.contains("Signed: resolve signed by Dr Sarah Safety (dr.safety), responsible"),
        "{}",
        reopened.body
    );

    // The DSMB report shows the signature, and the audit trail's head on its title page.
    let out = vigil_ok(d, &["report", "dsmb", "--out", d.path("reports").to_str().unwrap()]);
    let html = std::fs::read_to_string(out.trim()).unwrap();
    assert!(html.contains("Electronically signed decisions"), "the signed decisions table");
    assert!(html.contains("signed by Dr Sarah Safety (dr.safety), reviewed"), "the signature in the report");
    // The title page witnesses an entry of the chain with its hash: "entry N, SHA-256 H".
    let witness = html
        .split("Audit trail at generation: <span class=\"hash\">entry ")
        .nth(1)
        .and_then(|w| w.split('<').next())
        .unwrap_or_else(|| panic!("no audit head on the title page"));
    let (pos, hash) = witness.split_once(", SHA-256 ").unwrap();
    let pos: i64 = pos.parse().unwrap();
    let entries = trail(d);
    let entry = entries.iter().find(|e| e["pos"] == pos).unwrap();
    assert_eq!(entry["hash"], hash, "the report's head is the chain's entry {pos}");
}

#[tokio::test]
async fn a_wrong_password_signs_nothing_and_counts_toward_lockout() {
    let smtp = SmtpServer::start();
    let site = Site::start(Some(&smtp.url()), "accounts:\n  lockout_after: 3\n");
    let d = &site.d;
    let safety = d.token_of("dr.safety", "ingest,read,operate");
    assert_eq!(site.post("/v1/records", Some(&safety), SEVERE).await.0, 202);
    let id = site.severe_alert(&safety).await;
    let ack = format!("/v1/alerts/{id}/ack");
    let wrong =
        json!({"signature": {"password": "not my password at all", "meaning": "reviewed"}}).to_string();
    for attempt in 1..=2 {
        let (status, body) = site.post(&ack, Some(&safety), wrong.clone()).await;
        assert_eq!(status, 403, "attempt {attempt}: {body}");
        assert!(body["error"].as_str().unwrap().contains("nothing was signed"), "{body}");
    }
    let (_, shown) = site.get(&format!("/v1/alerts/{id}"), &safety).await;
    assert_eq!(shown["alert"]["status"], "open", "nothing was acknowledged");
    assert_eq!(shown["signatures"], json!([]), "nothing was signed");
    // The third wrong password locks the account, and the administrators hear of it.
    let (status, body) = site.post(&ack, Some(&safety), wrong.clone()).await;
    assert_eq!(status, 403);
    assert!(body["error"].as_str().unwrap().contains("locked"), "{body}");
    let locked = wait_for("the lockout email", Duration::from_secs(30), || {
        smtp.messages().into_iter().find(|m| m.subject.contains("account was locked"))
    });
    assert!(locked.rcpt_to.contains("so@trial.test") && locked.body.contains("dr.safety"), "{}", locked.body);
    // Locked: the right password is refused too, and the person's tokens stop working.
    let right = json!({"signature": {"password": PASSWORD, "meaning": "reviewed"}}).to_string();
    assert_eq!(site.post(&ack, Some(&safety), right.clone()).await.0, 401);
    let users = vigil_ok(d, &["users", "list"]);
    assert!(users.lines().any(|l| l.starts_with("dr.safety") && l.contains("LOCKED")), "{users}");
    let entries = trail(d);
    let refusals = entries
        .iter()
        .filter(|e| e["action"] == "signature refused" && e["actor"] == "user:dr.safety")
        .count();
    assert_eq!(refusals, 3);
    let lock = entries.iter().find(|e| {
        let detail: Value = serde_json::from_str(e["detail"].as_str().unwrap_or("{}")).unwrap_or_default();
        e["action"] == "user changed" && e["entity_id"] == "dr.safety" && detail["locked_at"].is_i64()
    });
    assert!(lock.is_some_and(|e| e["actor"] == "vigil"), "the lockout is in the trail");
    // An administrator unlocks it; the right password signs.
    vigil_ok(d, &["users", "unlock", "dr.safety"]);
    let (status, body) = site.post(&ack, Some(&safety), right).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_report_release_is_signed_and_refused_for_a_changed_file() {
    let d = Deployment::with(None, "signatures:\n  required: [report_release]\n");
    d.add_user("dr.chair", "Dr Claire Chair", "dsmb-chair");
    d.add_user("dr.safety", "Dr Sarah Safety", "safety-officer");
    let input = d.path("in.ndjson");
    std::fs::write(&input, SEVERE).unwrap();
    let config = d.config.to_str().unwrap();
    d.vigil(&["ingest", "--config", config, input.to_str().unwrap()]);
    let made = |dir: &str| {
        vigil_ok(&d, &["report", "dsmb", "--out", d.path(dir).to_str().unwrap()]).trim().to_string()
    };
    let (first, second) = (made("r1"), made("r2"));
    let password = format!("{PASSWORD}\n");
    let release = |id: &str, who: &str, sign: Option<&str>| {
        let mut args = vec!["report", "release", id, "--user", who, "--config", config];
        if let Some(m) = sign {
            args.extend(["--sign", m]);
        }
        d.vigil_with_input(&args, &password)
    };
    // Unsigned is refused where the study requires a signature; a blinded role may not release.
    let unsigned = release("1", "dr.chair", None);
    assert_eq!(unsigned.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("requires an electronic signature"));
    let blinded = release("1", "dr.safety", Some("approved"));
    assert_eq!(blinded.status.code(), Some(1), "{}", String::from_utf8_lossy(&blinded.stderr));
    assert!(String::from_utf8_lossy(&blinded.stderr).contains("dr.safety may not report_release"));

    let out = release("1", "dr.chair", Some("approved"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .contains("report #1 released by user:dr.chair, signed by Dr Claire Chair (dr.chair), approved"),
        "{stdout}"
    );
    let page =
        std::fs::read_to_string(first.trim_end_matches(".html").to_string() + "-release.html").unwrap();
    assert!(
        page.contains("Dr Claire Chair (dr.chair)") && page.contains("<strong>approved</strong>"),
        "{page}"
    );
    assert!(page.contains("Audit trail at release"), "{page}");
    let list = vigil_ok(&d, &["report", "list"]);
    assert!(list.lines().next().unwrap().contains("released by user:dr.chair"), "{list}");
    assert_eq!(release("1", "dr.chair", Some("approved")).status.code(), Some(1), "released once");

    // A report whose file was changed after it was made is not released.
    std::fs::write(&second, std::fs::read_to_string(&second).unwrap().replace("Test study", "Edited study"))
        .unwrap();
    let changed = release("2", "dr.chair", Some("approved"));
    assert_eq!(changed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&changed.stderr).contains("is not the one archived"));
    let entries = trail(&d);
    assert!(has(&entries, "user:dr.chair", "report released", "1"));
    assert!(entries.iter().any(|e| e["action"] == "signed" && e["actor"] == "user:dr.chair"));
}

#[tokio::test]
async fn the_audit_head_is_emailed_once_a_day_and_matches_the_chain() {
    let smtp = SmtpServer::start();
    let site = Site::start(Some(&smtp.url()), "");
    let d = &site.d;
    // The test deployment turns the daily email off; this one wants it, due from midnight.
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("daily_head_at_utc: \"off\"", "daily_head_at_utc: \"00:00\"");
    std::fs::write(&d.config, text).unwrap();
    site._daemon.signal("HUP");
    let mail = wait_for("the audit-head email", Duration::from_secs(30), || {
        smtp.messages().into_iter().find(|m| m.subject.contains("Audit trail head"))
    });
    assert_eq!(mail.rcpt_to, "so@trial.test", "the administrators (alerting.undeliverable.notify)");
    // "… stood at entry N, SHA-256 H": that entry of the chain has that hash.
    let at = mail.body.find("stood at entry ").expect("the head in the email") + "stood at entry ".len();
    let rest = &mail.body[at..];
    let pos: i64 = rest[..rest.find(',').unwrap()].parse().unwrap();
    let hash: String = rest[rest.find("SHA-256 ").unwrap() + 8..].chars().take(64).collect();
    let entries = trail(d);
    let entry = entries.iter().find(|e| e["pos"] == pos).unwrap();
    assert_eq!(entry["hash"], hash.as_str());
    // Once a day: further clock passes send no second one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let heads = smtp.messages().iter().filter(|m| m.subject.contains("Audit trail head")).count();
    assert_eq!(heads, 1);
    let list = vigil_ok(d, &["alerts", "list"]);
    assert!(list.lines().any(|l| l.contains("Audit trail head") && l.contains("acknowledged")), "{list}");
}

/// deploy/postgres-roles.sql, as a deployment runs it: the daemon's role writes and seals the
/// trail but cannot change, delete or unprotect it (PostgreSQL, whatever the backend under test).
#[tokio::test]
async fn on_postgresql_the_daemons_role_cannot_touch_the_trail() {
    let db = common::TestDatabase::postgres();
    vigil::store::Store::migrate(&db.url).await.unwrap();
    let role = format!("vigil_app_{}", std::process::id());
    let script = format!("{}/deploy/postgres-roles.sql", common::REPO);
    let out = std::process::Command::new("psql")
        .args([&db.url, "-q", "-v", &format!("app={role}"), "-f", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let as_app = db.url.replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(as_app, db.url, "the test database URL names its user");

    // The daemon's work: records in (the triggers audit them), the trail sealed, verified.
    let store =
        vigil::store::Store::open(&as_app, vigil::clock::Clock::System, vigil::store::Migrations::Check)
            .await
            .unwrap();
    store
        .create_user(
            "ada",
            "Ada L",
            "ada@trial.test",
            &["safety-officer".into()],
            "$argon2id$x",
            "local:test",
        )
        .await
        .unwrap();
    assert!(store.seal_audit().await.unwrap() >= 1);
    let v = store.verify_audit().await.unwrap();
    assert!(v.first_break.is_none() && v.entries >= 1, "{v:?}");
    store.close().await;

    // What an intruder with the daemon's credentials cannot do.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&as_app).await.unwrap();
    for sql in [
        "UPDATE audit_log SET actor = 'user:mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "DROP TRIGGER audit_log_no_update ON audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        "UPDATE users SET name = 'x' WHERE false",
    ] {
        let refused = sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&pool).await;
        let allowed = sql.starts_with("UPDATE users");
        assert_eq!(refused.is_ok(), allowed, "{sql}: {refused:?}");
        if let Err(e) = refused {
            let e = e.to_string();
            assert!(e.contains("permission denied") || e.contains("must be owner"), "{sql}: {e}");
        }
    }
    pool.close().await;
    drop(db);
    common::psql(&format!("DROP ROLE IF EXISTS {role}"));
}
