//! The console's subject, reports, rules, silences and audit pages, against the real
//! daemon: signed in as a blinded safety officer and as the unblinded DSMB chair.
//!
//! With `VIGIL_SCREENSHOTS=DIR`, each page is also saved as HTML and, when `chromium` is
//! installed, photographed into DIR (for a person to look at; nothing is asserted on them).

mod common;

use common::{free_port, wait_for, Deployment, PASSWORD};
use serde_json::Value;
use std::time::Duration;

const RECORDS: &str = r#"{"subject":"KS-701","site":"KS","arm":"MSC-HIGH","visit":"BL","date":"2019-02-26","record_id":"ks701-bl","doses":[{"start":"2019-02-26T09:10:00Z","product":"MSC","amount":2,"unit":"M/kg"}],"scores":[{"name":"EDSS","value":4.0}],"labs":[{"test":"ALT","value":100,"high":40,"time":"2019-02-26T08:00:00Z"}],"vitals":[{"time":"2019-02-26T10:30:00Z","temperature_c":37.2,"heart_rate":80}],"mri":{"date":"2019-02-26","t2_new_or_enlarging":0,"gd_enhancing":0}}
{"subject":"KS-701","site":"KS","visit":"H2","record_id":"ks701-h2","adverse_events":[{"id":"AE-1","term":"Infusion related reaction","onset":"2019-02-26T09:35:00Z","grade":2,"related":"probable"}]}
{"subject":"KS-701","site":"KS","visit":"H2","record_id":"ks701-h2-v2","adverse_events":[{"id":"AE-1","term":"Infusion related reaction","onset":"2019-02-26T09:35:00Z","grade":3,"related":"probable"}]}
{"subject":"KS-701","site":"KS","visit":"W12","date":"2019-05-21","record_id":"ks701-w12","scores":[{"name":"EDSS","value":5.5}],"mri":{"date":"2019-05-21","t2_new_or_enlarging":2,"gd_enhancing":1}}
{"subject":"KS-702","site":"KS","arm":"PLACEBO","visit":"BL","date":"2019-03-01","record_id":"ks702-bl","doses":[{"start":"2019-03-01T09:00:00Z"}]}
"#;

fn vigil_ok(d: &Deployment, args: &[&str]) -> String {
    let mut full = args.to_vec();
    full.extend(["--config", d.config.to_str().unwrap()]);
    let out = d.vigil(&full);
    assert!(out.status.success(), "vigil {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn form(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    fields.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect::<Vec<_>>().join("&")
}

/// The value of cookie `name` set by a response.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|c| c.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

/// The first form's CSRF token on a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

struct Console {
    base: String,
    client: reqwest::Client,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Console {
    /// Signs in as `user`: the sign-in form's cookie and token, then the session cookie.
    async fn sign_in(&self, user: &str) -> String {
        let resp = self.client.get(format!("{}/console/sign-in", self.base)).send().await.unwrap();
        let pre = set_cookie(&resp, "vigil_sign_in").expect("sign-in cookie");
        let html = resp.text().await.unwrap();
        let body = form(&[
            ("user", user),
            ("password", PASSWORD),
            ("csrf", &csrf_of(&html)),
            ("next", "/console/alerts"),
        ]);
        let resp = self
            .client
            .post(format!("{}/console/sign-in", self.base))
            .header("Cookie", format!("vigil_sign_in={pre}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 303, "sign in as {user}");
        format!("vigil_session={}", set_cookie(&resp, "vigil_session").expect("session cookie"))
    }

    async fn get(&self, session: &str, path: &str) -> Page {
        let resp =
            self.client.get(format!("{}{path}", self.base)).header("Cookie", session).send().await.unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        Page { status, headers, body: resp.text().await.unwrap_or_default() }
    }

    async fn post(&self, session: &str, path: &str, fields: &[(&str, &str)]) -> Page {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Cookie", session)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(fields))
            .send()
            .await
            .unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        Page { status, headers, body: resp.text().await.unwrap_or_default() }
    }

    /// Saves the page for a person to look at, and photographs it when chromium is here.
    fn keep(&self, name: &str, html: &str) {
        let Ok(dir) = std::env::var("VIGIL_SCREENSHOTS") else { return };
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let html = html.replace(
            "href=\"/console/static/console.css\"",
            &format!("href=\"{}/console/static/console.css\"", self.base),
        );
        let file = dir.join(format!("{name}.html"));
        std::fs::write(&file, html).unwrap();
        for (suffix, size) in [("", "1280,1400"), ("-phone", "390,1400")] {
            let profile = tempfile::tempdir().unwrap();
            let _ = std::process::Command::new("chromium")
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
                .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .arg(format!("--screenshot={}", dir.join(format!("{name}{suffix}.png")).display()))
                .arg(format!("--window-size={size}"))
                .arg(format!("file://{}", file.display()))
                .output();
        }
    }
}

fn trail(d: &Deployment) -> Vec<Value> {
    serde_json::from_str(&vigil_ok(d, &["audit", "export", "--format", "json"])).unwrap()
}

#[tokio::test]
async fn the_console_pages_show_what_each_person_may_see() {
    let port = free_port();
    let d = Deployment::with(
        None,
        &format!("http:\n  addr: \"127.0.0.1:{port}\"\nsignatures:\n  required: [report_release]\n"),
    );
    d.add_user("dr.safety", "Dr Sarah Safety", "safety-officer");
    d.add_user("dr.chair", "Dr Claire Chair", "dsmb-chair");
    let input = d.path("in.ndjson");
    std::fs::write(&input, RECORDS).unwrap();
    let out = d.vigil(&["ingest", "--config", d.config.to_str().unwrap(), input.to_str().unwrap()]);
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", String::from_utf8_lossy(&out.stderr));
    let reports = d.path("reports");
    let open = vigil_ok(&d, &["report", "dsmb", "--out", reports.to_str().unwrap()]);
    let closed = vigil_ok(&d, &["report", "dsmb", "--closed", "--out", reports.to_str().unwrap()]);
    assert!(open.trim().ends_with(".html") && closed.contains("closed"), "{open} {closed}");
    let daemon = d.start();
    wait_for("the HTTP server", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let console = Console {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
    };
    let safety = console.sign_in("dr.safety").await;
    let chair = console.sign_in("dr.chair").await;

    // Subject: the EDSS chart with its baseline and threshold, AE versions, ×ULN; the arm
    // for the unblinded chair only.
    let blind = console.get(&safety, "/console/subjects/KS-701").await;
    assert_eq!(blind.status, 200, "{}", blind.body);
    console.keep("subject", &blind.body);
    for expected in [
        "<svg",
        "role=\"img\"",
        "EDSS of subject KS-701 over time",
        "baseline 4.0 (2019-02-26)",
        "worsening at ≥ 5.0 (+1.0)",
        "version 2: grade 2 → grade 3",
        "2.5×",
        "Infusion related reaction",
    ] {
        assert!(blind.body.contains(expected), "subject page lacks {expected}:\n{}", blind.body);
    }
    assert!(!blind.body.contains("MSC-HIGH"), "a blinded person sees no arm");
    let unblind = console.get(&chair, "/console/subjects/KS-701").await;
    assert!(unblind.body.contains("MSC-HIGH"), "the chair sees the arm");

    // Rules: the severe infusion reaction fired once, on one of two subjects.
    let started = std::time::Instant::now();
    let rules = loop {
        let page = console.get(&safety, "/console/rules").await;
        if page.body.contains("href=\"/console/alerts?rule=infusion-reaction-severe\">1</a>") {
            break page;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no severe alert on the rules page: {}\n{}",
            page.body,
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    console.keep("rules", &rules.body);
    assert!(rules.body.contains("<tr id=\"infusion-reaction-severe\""), "{}", rules.body);
    assert!(rules.body.contains("1 (50 %)"), "one subject of two: {}", rules.body);
    assert!(rules.body.contains("Never fired"));
    assert!(
        rules.body.contains("msc-progressive-ms.test.yaml") && rules.body.contains("pass-text"),
        "{}",
        rules.body
    );

    // Reports: the closed one is listed for the chair only; typed by the blinded, refused
    // and audited.
    let listed = console.get(&safety, "/console/reports").await;
    assert!(
        listed.body.contains("id=\"report-1\"") && !listed.body.contains("id=\"report-2\""),
        "{}",
        listed.body
    );
    let listed = console.get(&chair, "/console/reports").await;
    assert!(
        listed.body.contains("id=\"report-1\"") && listed.body.contains("id=\"report-2\""),
        "{}",
        listed.body
    );
    let refused = console.get(&safety, "/console/reports/2/file?format=html").await;
    assert_eq!(refused.status, 403);
    assert!(!refused.body.contains("MSC-HIGH"));
    let file = console.get(&chair, "/console/reports/2/file?format=html").await;
    assert_eq!(file.status, 200);
    assert!(file.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(file.body.contains("MSC-HIGH"), "the closed report is by arm");
    let entries = trail(&d);
    assert!(
        entries.iter().any(|e| e["actor"] == "user:dr.safety"
            && e["action"].as_str().is_some_and(|a| a.ends_with("refused"))
            && e["entity"] == "report"
            && e["entity_id"] == "2"),
        "the refusal is in the trail"
    );

    // Release: the study requires a signature; signed, the signer is shown.
    let csrf = csrf_of(&listed.body);
    let unsigned =
        console.post(&chair, "/console/reports/1/release", &[("csrf", &csrf), ("meaning", "")]).await;
    assert_eq!(unsigned.status, 422, "{}", unsigned.body);
    assert!(unsigned.body.contains("requires an electronic signature"));
    let fields =
        [("csrf", csrf.as_str()), ("meaning", "approved"), ("user", "dr.chair"), ("password", PASSWORD)];
    let signed = console.post(&chair, "/console/reports/1/release", &fields).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.headers["location"], "/console/reports?done=released");
    let after = console.get(&chair, "/console/reports?done=released").await;
    console.keep("reports", &after.body);
    assert!(after.body.contains("signed by Dr Claire Chair (dr.chair)"), "{}", after.body);
    assert!(after.body.contains("bound to this report"));
    assert!(after.body.contains("by user:dr.chair"));

    // Silences: one set from the alert's page is listed as active, with who and why.
    let alert =
        unblind.body.split("href=\"/console/alerts/").nth(1).and_then(|s| s.split('"').next()).unwrap();
    let silenced = console
        .post(
            &safety,
            &format!("/console/alerts/{alert}/silence"),
            &[("csrf", &csrf_of(&blind.body)), ("for", "4h"), ("comment", "seen, site calling back")],
        )
        .await;
    assert_eq!(silenced.status, 303, "{}", silenced.body);
    // Acknowledged, the rule's median time to acknowledgement appears.
    let ack = console
        .post(
            &safety,
            &format!("/console/alerts/{alert}/acknowledge"),
            &[("csrf", &csrf_of(&blind.body)), ("comment", "seen")],
        )
        .await;
    assert_eq!(ack.status, 303, "{}", ack.body);
    let rules = console.get(&safety, "/console/rules").await;
    let row = rules
        .body
        .split("<tr id=\"infusion-reaction-severe\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        row.contains(" s <span class=\"note\">(of 1)</span>")
            || row.contains(" min <span class=\"note\">(of 1)</span>"),
        "{row}"
    );
    let silences = console.get(&safety, "/console/silences").await;
    console.keep("silences", &silences.body);
    let active = silences.body.split("id=\"ended-h\"").next().unwrap();
    assert!(
        active.contains("seen, site calling back") && active.contains("user:dr.safety"),
        "{}",
        silences.body
    );
    assert!(active.contains("href=\"/console/subjects/KS-701\""));
    // Ended early from the page, signed (the session signed before: the password alone).
    let silence_id =
        active.split("action=\"/console/silences/").nth(1).and_then(|s| s.split('/').next()).unwrap();
    let ended = console
        .post(
            &safety,
            &format!("/console/silences/{silence_id}/close"),
            &[
                ("csrf", &csrf_of(&silences.body)),
                ("meaning", "approved"),
                ("user", "dr.safety"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(ended.status, 303, "{}", ended.body);
    let after = console.get(&safety, "/console/silences?done=ended").await;
    let (active, done) = after.body.split_once("id=\"ended-h\"").unwrap();
    assert!(!active.contains("seen, site calling back"), "no longer active");
    assert!(done.contains("ended by user:dr.safety") || done.contains("by user:dr.safety"), "{}", after.body);
    let again = console
        .post(&safety, &format!("/console/silences/{silence_id}/close"), &[("csrf", &csrf_of(&after.body))])
        .await;
    assert_eq!(again.status, 409, "ended once: {}", again.body);

    // Audit: the safety officer's sign-in, found by user; record hashes hidden when blinded.
    let found = console.get(&chair, "/console/audit?user=dr.safety&action=signed+in").await;
    assert_eq!(found.status, 200);
    assert!(found.body.contains("<td>user:dr.safety</td><td>signed in</td>"), "{}", found.body);
    assert!(!found.body.contains("<td>user:dr.chair</td>"), "only the user asked for");
    let blind_trail = console.get(&safety, "/console/audit?subject=KS-701&action=record").await;
    console.keep("audit", &blind_trail.body);
    assert!(blind_trail.body.contains("record stored"), "{}", blind_trail.body);
    assert!(blind_trail.body.contains("content_hash&quot;:&quot;—"), "{}", blind_trail.body);
    let chair_trail = console.get(&chair, "/console/audit?subject=KS-701&action=record").await;
    assert!(!chair_trail.body.contains("content_hash&quot;:&quot;—"), "the unblinded see the hashes");
    for path in [
        "/console/reports",
        "/console/rules",
        "/console/silences",
        "/console/audit",
        "/console/audit?subject=KS-701",
    ] {
        let page = console.get(&safety, path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains("MSC-HIGH") && !page.body.contains("PLACEBO"), "an arm on {path}");
    }
    let verified = console.get(&chair, "/console/audit?verify=1").await;
    assert!(verified.body.contains("the chain is intact"), "{}", verified.body);
}
