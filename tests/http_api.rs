//! The HTTP API with a real client against the running daemon: tokens, durability,
//! size limits, idempotency, per-line errors, alerts and the subject timeline.

mod common;

use common::{free_port, wait_for, Deployment};
use serde_json::Value;
use std::time::Duration;

const TOKEN: &str = "s3cret-token-for-tests";

struct Api {
    base: String,
    client: reqwest::Client,
    _daemon: common::Daemon,
    deployment: Deployment,
}

async fn start() -> Api {
    let port = free_port();
    let d =
        Deployment::with(None, &format!("http:\n  addr: \"127.0.0.1:{port}\"\n  max_body_bytes: 65536\n"));
    // Tokens come from the environment; the config file holds none.
    let token_file = d.path("tokens.txt");
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()))
    };
    std::fs::write(&token_file, format!("# name sha256\nsite-ks {hash}\n")).unwrap();
    let cfg = std::fs::read_to_string(&d.config).unwrap().replace(
        "  max_body_bytes: 65536\n",
        &format!("  max_body_bytes: 65536\n  token_file: \"{}\"\n", token_file.display()),
    );
    std::fs::write(&d.config, cfg).unwrap();
    let daemon = d.start();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_for("the HTTP server", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    Api { base, client, _daemon: daemon, deployment: d }
}

impl Api {
    async fn post(&self, path: &str, token: Option<&str>, body: String) -> (u16, Value) {
        let mut req = self.client.post(format!("{}{path}", self.base)).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

const GOOD: &str = r#"{"subject":"KS-501","site":"KS","arm":"MSC-HIGH","record_id":"r1","doses":[{"start":"2019-02-26T09:10:00Z"}],"adverse_events":[{"id":"AE-1","term":"Infusion related reaction","grade":3,"onset":"2019-02-26T09:40:00Z"}]}"#;

#[tokio::test]
async fn records_over_http_need_a_token_are_durable_idempotent_and_reported_per_line() {
    let api = start().await;
    assert_eq!(api.get("/healthz", None).await.0, 200);
    assert_eq!(api.get("/v1/openapi.json", None).await.1["openapi"], "3.0.3");

    assert_eq!(api.post("/v1/records", None, GOOD.into()).await.0, 401);
    assert_eq!(api.post("/v1/records", Some("wrong"), GOOD.into()).await.0, 401);
    assert_eq!(api.get("/v1/alerts", Some("wrong")).await.0, 401);

    let (status, body) = api.post("/v1/records", Some(TOKEN), GOOD.into()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["stored"], 1);
    // Durable before the answer: the database has it now.
    let store = api.deployment.store().await;
    assert_eq!(store.record_count().await.unwrap(), 1);

    // The same record again changes nothing.
    let (status, body) = api.post("/v1/records", Some(TOKEN), GOOD.into()).await;
    assert_eq!(status, 202);
    assert_eq!((body["stored"].as_u64(), body["duplicates"].as_u64()), (Some(0), Some(1)));

    // NDJSON with bad lines: good ones stored, bad ones reported by line and field.
    let ndjson = [
        r#"{"subject":"KS-502","date":"2019-03-01"}"#,
        r#"{"subject":"KS-503","adverse_events":[{"term":"Rash","grade":9}]}"#,
        r#"{"subject":"KS-504","date":"2019-03-02"}"#,
        r#"{"subject":""}"#,
    ]
    .join("\n");
    let (status, body) = api.post("/v1/records", Some(TOKEN), ndjson).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["stored"], 2);
    let rejected = body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(
        (rejected[0]["line"].as_u64(), rejected[0]["field"].as_str()),
        (Some(2), Some("adverse_events[0].grade"))
    );
    assert_eq!((rejected[1]["line"].as_u64(), rejected[1]["field"].as_str()), (Some(4), Some("subject")));
    assert_eq!(store.record_count().await.unwrap(), 3);

    // Nothing readable: 422. Too large: 413.
    assert_eq!(api.post("/v1/records", Some(TOKEN), "not json".into()).await.0, 422);
    let (status, empty) = api.post("/v1/records", Some(TOKEN), String::new()).await;
    assert_eq!(status, 400, "an empty body is a client error: {empty}");
    assert_eq!(api.post("/v1/records", Some(TOKEN), " \n".into()).await.0, 400);
    let big = format!("[{}]", vec![GOOD; 400].join(","));
    assert_eq!(api.post("/v1/records", Some(TOKEN), big).await.0, 413);

    // The alert the record raised (the request woke the evaluator, which raises it on its
    // own time), acknowledged over HTTP by the token's owner.
    let start = std::time::Instant::now();
    let id = loop {
        let (status, alerts) = api.get("/v1/alerts?subject=KS-501", Some(TOKEN)).await;
        assert_eq!(status, 200);
        let severe = alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule_id"] == "infusion-reaction-severe")
            .and_then(|a| a["id"].as_i64());
        if let Some(id) = severe {
            break id;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no alert for KS-501: {alerts}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A decision about an alert is a person's: the site's service token is refused, and so
    // is a person's token without the `operate` scope.
    let ack_path = format!("/v1/alerts/{id}/ack");
    let (status, refused) = api.post(&ack_path, Some(TOKEN), r#"{"comment":"seen"}"#.into()).await;
    assert_eq!(status, 403, "{refused}");
    api.deployment.add_user("dr.safety", "Dr Safety", "safety-officer");
    let reader = api.deployment.token_of("dr.safety", "read");
    assert_eq!(api.post(&ack_path, Some(&reader), r#"{"comment":"seen"}"#.into()).await.0, 403);
    let person = api.deployment.token_of("dr.safety", "read,operate");
    let (status, acked) = api.post(&ack_path, Some(&person), r#"{"comment":"seen"}"#.into()).await;
    assert_eq!((status, acked["status"].as_str()), (200, Some("acknowledged")));
    assert_eq!(api.post(&ack_path, Some(&person), String::new()).await.0, 409);
    let (_, shown) = api.get(&format!("/v1/alerts/{id}"), Some(TOKEN)).await;
    let history = shown["history"].as_array().unwrap();
    assert!(history
        .iter()
        .any(|e| e["action"] == "acknowledged" && e["actor"] == "user:dr.safety" && e["comment"] == "seen"));

    // The timeline never shows the arm.
    let (status, timeline) = api.get("/v1/subjects/KS-501", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(timeline["records"].as_array().unwrap().len(), 1);
    assert!(!timeline.to_string().contains("MSC-HIGH"));
    assert_eq!(api.get("/v1/subjects/NOBODY", Some(TOKEN)).await.0, 404);
    let (status, bad) = api.get("/v1/subjects/%3Cscript%3E", Some(TOKEN)).await;
    assert_eq!(status, 400, "a malformed subject id is the client's error: {bad}");

    let (status, _) = api
        .post("/v1/silences", Some(&person), r#"{"rule":"mri-new-t2","for":"1h","comment":"rescan"}"#.into())
        .await;
    assert_eq!(status, 201);

    // A critical alert is not resolved without a reason on the record.
    let resolve_path = format!("/v1/alerts/{id}/resolve");
    let resolve = |body: &'static str| api.post(&resolve_path, Some(&person), body.into());
    let (status, body) = resolve(r#"{"comment":"  "}"#).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("needs a reason"), "{body}");
    assert_eq!(resolve(r#"{"comment":"reviewed with the investigator"}"#).await.0, 200);
    // Its condition (the grade 3 reaction on record) still holds: it opens again at the next
    // evaluation, which the resolve asked for.
    let start = std::time::Instant::now();
    loop {
        let (_, shown) = api.get(&format!("/v1/alerts/{id}"), Some(TOKEN)).await;
        if shown["alert"]["status"] == "open" {
            assert!(
                shown["history"].as_array().unwrap().iter().any(|e| e["action"] == "re-opened"),
                "{shown}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never re-opened: {shown}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // What an operator watches, without a token and without a subject or an arm.
    let (status, ready) = api.get("/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["vitals"]["records"], 3, "{ready}");
    let metrics = api.client.get(format!("{}/metrics", api.base)).send().await.unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("# TYPE vigil_records gauge\nvigil_records 3\n"), "{text}");
    // The resolved one re-opened: both critical alerts are open, none resolved.
    assert!(text.contains("vigil_alerts{severity=\"critical\",status=\"open\"} 2"), "{text}");
    assert!(!text.contains("vigil_alerts{severity=\"critical\",status=\"resolved\"}"), "{text}");
    assert!(text.contains("vigil_failed_notifications 0"), "{text}");
    assert!(!text.contains("KS-501") && !text.contains("MSC-HIGH"), "{text}");

    // The token is checked before the body is read: a stalled upload without a valid token
    // is answered at its headers instead of being held in memory.
    {
        use std::io::{Read, Write};
        let host = api.base.trim_start_matches("http://").to_string();
        let mut stream = std::net::TcpStream::connect(&host).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            stream,
            "POST /v1/records HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer wrong-token-0123456789\r\n\
             Content-Type: application/x-ndjson\r\nContent-Length: 60000\r\n\r\n{{\"subject\":"
        )
        .unwrap();
        let mut answer = [0u8; 64];
        let n = stream.read(&mut answer).expect("an answer before the body is complete");
        assert!(
            String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 401"),
            "{}",
            String::from_utf8_lossy(&answer[..n])
        );
    }
    // Guessing is slowed down; a caller with a valid token is not.
    let mut last = 0;
    for _ in 0..25 {
        last = api.get("/v1/alerts", Some("guess-0123456789abcdef")).await.0;
    }
    assert_eq!(last, 429, "failed authentications are rate-limited");
    assert_eq!(api.get("/v1/alerts", Some(TOKEN)).await.0, 200);

    // A change of data is attributed: a downgrade sent over HTTP that resolves a critical
    // alert leaves the token's name in the alert's history.
    let severe = r#"{"subject":"KS-502","site":"KS","record_id":"d1","doses":[{"start":"2019-02-26T09:10:00Z"}],"adverse_events":[{"id":"AE-9","term":"Infusion related reaction","grade":3,"onset":"2019-02-26T09:40:00Z"}]}"#;
    assert_eq!(api.post("/v1/records", Some(TOKEN), severe.into()).await.0, 202);
    let alert_of = |status: &'static str| {
        let api = &api;
        async move {
            let start = std::time::Instant::now();
            loop {
                let (_, alerts) = api.get("/v1/alerts?subject=KS-502", Some(TOKEN)).await;
                let found = alerts
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["rule_id"] == "infusion-reaction-severe" && a["status"] == status);
                if let Some(id) = found.and_then(|a| a["id"].as_i64()) {
                    return id;
                }
                assert!(start.elapsed() < Duration::from_secs(20), "no {status} alert for KS-502: {alerts}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let id = alert_of("open").await;
    let downgrade = r#"{"subject":"KS-502","site":"KS","record_id":"d2","adverse_events":[{"id":"AE-9","term":"Infusion related reaction","grade":1,"onset":"2019-02-26T09:40:00Z"}]}"#;
    assert_eq!(api.post("/v1/records", Some(TOKEN), downgrade.into()).await.0, 202);
    assert_eq!(alert_of("resolved").await, id);
    let (_, shown) = api.get(&format!("/v1/alerts/{id}"), Some(TOKEN)).await;
    let resolved = shown["history"].as_array().unwrap().iter().find(|e| e["action"] == "resolved").cloned();
    let comment = resolved.as_ref().and_then(|e| e["comment"].as_str()).unwrap_or_default().to_string();
    assert!(comment.contains("from http:site-ks"), "{shown}");

    // Silences are pauses with a reason, never a way to switch vigil off.
    api.deployment.add_user("dr.mri", "Dr Mri", "medical-monitor");
    let person = api.deployment.token_of("dr.mri", "operate");
    for (body, why) in [
        (r#"{"rule":"mri-new-t2","for":"5200w","comment":"quiet"}"#, "at most"),
        (r#"{"rule":"mri-new-t2","for":"9999999999999999999w","comment":"quiet"}"#, "duration"),
        (r#"{"rule":"mri-new-t2","for":"99999999999999w","comment":"quiet"}"#, "longest"),
        (r#"{"rule":"mri-new-t2","for":"1h","comment":" "}"#, "reason"),
    ] {
        let (status, answer) = api.post("/v1/silences", Some(&person), body.into()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(why), "{body}: {answer}");
    }
}
