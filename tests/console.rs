//! The safety console in a real browser (headless Chromium through chromedriver), against
//! the real daemon: sign in, see a grade 3 infusion reaction arrive after a file is dropped,
//! open it, acknowledge it with a signature, find the signed action in the audit trail;
//! an emailed link asks for a sign-in; wrong passwords lock the account; a form without its
//! CSRF token is refused; a blinded person never sees the arm and is refused a closed
//! report. Each page is photographed ($VIGIL_ARTIFACTS/screenshots, else target/screenshots).

mod common;

use common::browser::Browser;
use common::{free_port, wait_for, Deployment, SmtpServer, PASSWORD};
use std::time::Duration;

const SEVERE: &str = r#"{"subject":"KS-801","site":"KS","arm":"MSC-HIGH","visit":"BL","date":"2019-02-26","record_id":"ks801-bl","doses":[{"start":"2019-02-26T09:10:00Z"}]}
{"subject":"KS-801","site":"KS","visit":"H2","record_id":"ks801-h2","adverse_events":[{"id":"AE-1","term":"Infusion related reaction","onset":"2019-02-26T09:35:00Z","grade":3,"related":"probable"}]}
"#;

struct Site {
    d: Deployment,
    base: String,
    _daemon: common::Daemon,
}

fn site(smtp: Option<&str>, extra: &str) -> Site {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let d = Deployment::with(
        smtp,
        &format!("http:\n  addr: \"127.0.0.1:{port}\"\nconsole:\n  base_url: \"{base}\"\n{extra}"),
    );
    let daemon = d.start();
    wait_for("the HTTP server", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    d.add_user("dr.safety", "Dr Sarah Safety", "safety-officer");
    Site { d, base, _daemon: daemon }
}

async fn sign_in(b: &Browser, user: &str, password: &str) {
    b.find("#user").await.send_keys(user).await;
    b.find("#password").await.send_keys(password).await;
    // Mark the page, then wait until another page has replaced it: reading the next page's
    // message must not find this one's.
    b.execute("document.body.setAttribute('data-left', '1')", vec![]).await;
    b.find("form.card button[type=submit]").await.click().await;
    let start = std::time::Instant::now();
    let check = "return document.readyState === 'complete' && !document.body.hasAttribute('data-left')";
    while b.execute(check, vec![]).await != serde_json::Value::Bool(true) {
        assert!(start.elapsed() < Duration::from_secs(10), "the sign-in form was not answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reloads until `text` shows (the inbox also refreshes itself every 15 s).
async fn reload_until(b: &Browser, text: &str, timeout: Duration) {
    let start = std::time::Instant::now();
    while !b.body_text().await.contains(text) {
        assert!(start.elapsed() < timeout, "`{text}` never showed on {}", b.url().await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.refresh().await;
    }
}

#[tokio::test]
async fn a_safety_officer_acknowledges_a_new_reaction_with_a_signature() {
    let smtp = SmtpServer::start();
    let s = site(Some(&smtp.url()), "");
    let b = Browser::start().await;
    b.goto(&format!("{}/console/alerts", s.base)).await;
    assert!(b.url().await.contains("/console/sign-in?next=/console/alerts"), "{}", b.url().await);
    b.screenshot("console-sign-in").await;
    sign_in(&b, "dr.safety", PASSWORD).await;
    b.wait_for("table.alerts", Duration::from_secs(10)).await;
    assert!(b.body_text().await.contains("No alerts match."));

    // A file lands in the drop folder; the reaction shows in the inbox.
    s.d.drop_file("site-ks.ndjson", SEVERE);
    reload_until(&b, "Grade 3 or higher infusion-related reaction", Duration::from_secs(30)).await;
    let text = b.body_text().await;
    assert!(!text.contains("MSC-HIGH"), "a blinded safety officer never sees the arm");
    b.screenshot("console-inbox").await;
    b.set_window_size(390, 844).await;
    b.screenshot("console-inbox-phone").await;
    b.set_window_size(1280, 900).await;

    // Open it and acknowledge it with a signature (first of the session: id and password).
    b.find("table.alerts tr.sev-critical td:nth-child(4) a").await.click().await;
    b.wait_for("#ack-form", Duration::from_secs(10)).await;
    assert!(b.body_text().await.contains("Why"), "the explanation");
    b.screenshot("console-alert").await;
    b.find("#ack-comment").await.send_keys("Patient seen at 10:05, treated, stable.").await;
    b.execute("document.querySelector('#ack-form select[name=meaning]').value = 'reviewed'", vec![]).await;
    b.find("#ack-form input[name=user]").await.send_keys("dr.safety").await;
    b.find("#ack-form input[name=password]").await.send_keys(PASSWORD).await;
    b.find("#ack-form button[type=submit]").await.click().await;
    b.wait_for_text("Done: acknowledged", Duration::from_secs(10)).await;
    let page = b.body_text().await;
    assert!(page.contains("signed by Dr Sarah Safety (dr.safety), reviewed"), "{page}");
    assert!(page.contains("bound to this alert"), "{page}");
    b.screenshot("console-alert-acknowledged").await;

    // The signed action is in the audit trail, with the person.
    b.goto(&format!("{}/console/audit?user=user:dr.safety", s.base)).await;
    let audit = b.body_text().await;
    assert!(audit.contains("acknowledged") && audit.contains("signed"), "{audit}");
    b.screenshot("console-audit").await;

    // The critical email links to the alert; a browser without a session must sign in first.
    let mail = wait_for("the critical email", Duration::from_secs(30), || {
        smtp.messages().into_iter().find(|m| m.subject.contains("[CRITICAL] KS-801"))
    });
    let link = mail
        .body
        .lines()
        .find_map(|l| l.strip_prefix("Open it (sign-in required): "))
        .unwrap()
        .trim()
        .to_string();
    assert!(link.starts_with(&format!("{}/console/alerts/", s.base)), "{link}");
    let fresh = Browser::start().await;
    fresh.goto(&link).await;
    assert!(
        fresh.url().await.contains("/console/sign-in?next=/console/alerts/"),
        "a forwarded link gives no access"
    );
    assert!(!fresh.body_text().await.contains("KS-801"));
    sign_in(&fresh, "dr.safety", PASSWORD).await;
    fresh.wait_for("#ack-comment, .history", Duration::from_secs(10)).await;
    assert_eq!(fresh.url().await, link, "signed in, the link leads to its alert");
}

#[tokio::test]
async fn wrong_passwords_lock_the_account() {
    let s = site(None, "accounts:\n  lockout_after: 3\n");
    let b = Browser::start().await;
    b.goto(&format!("{}/console/sign-in", s.base)).await;
    for attempt in 1..=3 {
        sign_in(&b, "dr.safety", "not the password at all").await;
        b.wait_for("p.error", Duration::from_secs(10)).await;
        let message = b.find("p.error").await.text().await;
        if attempt < 3 {
            assert!(message.contains("Unknown user or wrong password"), "{message}");
        } else {
            assert!(message.contains("locked"), "{message}");
        }
    }
    b.screenshot("console-locked").await;
    // The right password no longer opens it.
    sign_in(&b, "dr.safety", PASSWORD).await;
    b.wait_for("p.error", Duration::from_secs(10)).await;
    assert!(b.find("p.error").await.text().await.contains("locked"));
    assert!(b.url().await.contains("/console/sign-in"));
    let users = s.d.vigil(&["users", "list", "--config", s.d.config.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&users.stdout)
        .lines()
        .any(|l| l.starts_with("dr.safety") && l.contains("LOCKED")));
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let s = site(None, "");
    s.d.drop_file("site-ks.ndjson", SEVERE);
    let b = Browser::start().await;
    b.goto(&format!("{}/console/sign-in", s.base)).await;
    sign_in(&b, "dr.safety", PASSWORD).await;
    b.wait_for("table.alerts", Duration::from_secs(10)).await;
    reload_until(&b, "Grade 3 or higher infusion-related reaction", Duration::from_secs(30)).await;
    b.find("table.alerts tr.sev-critical td:nth-child(4) a").await.click().await;
    b.wait_for("#ack-form", Duration::from_secs(10)).await;
    let alert_url = b.url().await;
    // A forged form: the token removed (as a cross-site page cannot know it).
    b.execute("document.querySelector('#ack-form input[name=csrf]').remove()", vec![]).await;
    b.find("#ack-form button[type=submit]").await.click().await;
    b.wait_for_text("security token", Duration::from_secs(10)).await;
    b.screenshot("console-csrf-refused").await;
    b.goto(&alert_url).await;
    assert!(b.body_text().await.contains("open"), "nothing was acknowledged");
    assert!(!b.body_text().await.contains("acknowledged by"), "nothing was acknowledged");
    let export = s.d.vigil(&["audit", "export", "--config", s.d.config.to_str().unwrap()]);
    let trail = String::from_utf8_lossy(&export.stdout);
    assert!(trail.lines().any(|l| l.contains("user:dr.safety") && l.contains("form refused")), "{trail}");
}

#[tokio::test]
async fn a_blinded_person_never_sees_the_arm_and_is_refused_a_closed_report() {
    let s = site(None, "");
    s.d.add_user("dr.chair", "Dr Claire Chair", "dsmb-chair");
    let config = s.d.config.to_str().unwrap().to_string();
    let input = s.d.path("in.ndjson");
    std::fs::write(&input, SEVERE).unwrap();
    s.d.vigil(&["ingest", "--config", &config, input.to_str().unwrap()]);
    let reports = s.d.path("reports");
    let closed =
        s.d.vigil(&["report", "dsmb", "--closed", "--out", reports.to_str().unwrap(), "--config", &config]);
    assert!(closed.status.success(), "{}", String::from_utf8_lossy(&closed.stderr));
    let list = s.d.vigil(&["report", "list", "--format", "json", "--config", &config]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let closed_id =
        list.as_array().unwrap().iter().find(|r| r["kind"] == "closed").unwrap()["id"].as_i64().unwrap();

    // The blinded safety officer: every page, and no arm anywhere.
    let b = Browser::start().await;
    b.goto(&format!("{}/console/sign-in", s.base)).await;
    sign_in(&b, "dr.safety", PASSWORD).await;
    for (page, shot) in [
        ("/console/alerts", "console-blinded-inbox"),
        ("/console/alerts/1", "console-blinded-alert"),
        ("/console/subjects/KS-801", "console-blinded-subject"),
        ("/console/reports", "console-blinded-reports"),
        ("/console/rules", "console-rules"),
        ("/console/silences", "console-silences"),
        ("/console/audit", "console-audit-blinded"),
    ] {
        b.goto(&format!("{}{page}", s.base)).await;
        assert!(!b.source().await.contains("MSC-HIGH"), "{page} shows the arm to a blinded person");
        b.screenshot(shot).await;
    }
    // Typing the closed report's address: refused, and audited.
    b.goto(&format!("{}/console/reports/{closed_id}/file?format=html", s.base)).await;
    let text = b.body_text().await;
    assert!(text.contains("Forbidden") && !b.source().await.contains("MSC-HIGH"), "{text}");
    b.screenshot("console-blinded-closed-report-403").await;
    let export = s.d.vigil(&["audit", "export", "--config", &config]);
    assert!(String::from_utf8_lossy(&export.stdout)
        .lines()
        .any(|l| l.contains("user:dr.safety") && l.contains("refused") && l.contains("report")));

    // The DSMB chair (unblinded) sees the arm and the closed report.
    let chair = Browser::start().await;
    chair.goto(&format!("{}/console/sign-in", s.base)).await;
    sign_in(&chair, "dr.chair", PASSWORD).await;
    chair.goto(&format!("{}/console/subjects/KS-801", s.base)).await;
    assert!(chair.body_text().await.contains("MSC-HIGH"), "the unblinded see the arm");
    chair.screenshot("console-unblinded-subject").await;
    chair.goto(&format!("{}/console/reports", s.base)).await;
    chair.screenshot("console-reports-unblinded").await;
    chair.goto(&format!("{}/console/reports/{closed_id}/file?format=html", s.base)).await;
    assert!(chair.source().await.contains("CLOSED REPORT"), "the chair opens the closed report");
}
