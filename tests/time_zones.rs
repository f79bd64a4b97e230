//! SAE clocks through the whole pipeline in a study with a time zone: records with local
//! times go in through the inbox, alerts come out of the store.

mod common;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use common::{Deployment, InProcess, REPO};

/// A deployment of the shipped rules whose study is in Stockholm.
fn stockholm() -> Deployment {
    let d = Deployment::with_rules(None, "", &format!("{REPO}/rules"));
    let text = std::fs::read_to_string(&d.config).unwrap();
    let text = text.replacen(
        "study:\n  title: Test study\n",
        "study:\n  title: Test study\n  timezone: Europe/Stockholm\n  sites: {\"01-701\": {timezone: America/Chicago}}\n",
        1,
    );
    std::fs::write(&d.config, text).unwrap();
    d
}

/// A serious, related AE at site KS, aware on the local `day` (no time: a whole local day).
fn susar(day: NaiveDate, expected: &str) -> String {
    format!(
        r#"{{"subject":"KS-101","site":"KS","adverse_events":[{{"id":"AE-1","term":"Pneumonia","grade":3,
            "serious":true,"seriousness":["hospitalization"],"related":"probable"{expected},"awareness":"{day}"}}]}}"#
    )
    .replace('\n', " ")
}

async fn alerts(app: &InProcess) -> Vec<vigil::store::AlertRow> {
    app.app.store.alerts().await.unwrap()
}

#[tokio::test]
async fn unknown_expectedness_raises_a_provisional_15_day_clock_that_expected_true_resolves() {
    let d = stockholm();
    let app = InProcess::build(&d).await;
    let zone = Tz::Europe__Stockholm;
    // Aware 14 local days ago: the 15-day report is due by the end of tomorrow, local time.
    let today = app.clock.now().with_timezone(&zone).date_naive();
    let aware = today - Duration::days(14);
    app.ingest(&d, "ae.ndjson", &susar(aware, "")).await;
    let all = alerts(&app).await;
    let clock = all.iter().find(|a| a.episode == "sae-clock:AE-1:expedited_other").expect("a 15-day clock");
    assert_eq!(clock.status.to_string(), "open");
    assert!(clock.title.contains("provisional"), "{}", clock.title);
    assert!(clock.summary.contains("Provisional: expectedness is not recorded"), "{}", clock.summary);
    assert!(clock.summary.contains("Europe/Stockholm"), "{}", clock.summary);
    let midnight =
        zone.from_local_datetime(&(aware + Duration::days(16)).and_hms_opt(0, 0, 0).unwrap()).unwrap();
    let expected_deadline = (midnight.with_timezone(&Utc) - Duration::milliseconds(1)).to_rfc3339();
    assert_eq!(clock.evidence["details"]["deadline"], expected_deadline.as_str());

    // The medical monitor assesses the event as expected: the clock's alert resolves itself.
    app.ingest(&d, "assessed.ndjson", &susar(aware, r#","expected":true"#)).await;
    let all = alerts(&app).await;
    let clock = all.iter().find(|a| a.episode == "sae-clock:AE-1:expedited_other").unwrap();
    assert_eq!(clock.status.to_string(), "resolved");
    let sponsor = all.iter().find(|a| a.episode == "sae-clock:AE-1:sponsor").expect("the sponsor clock");
    assert_ne!(sponsor.status.to_string(), "resolved", "expectedness does not close the sponsor clock");
}

#[tokio::test]
async fn times_without_offset_are_read_at_their_site_across_the_dst_change() {
    let d = stockholm();
    let app = InProcess::build(&d).await;
    // 02:30 on 2026-03-29 does not exist in Stockholm (clocks jump from 02:00 to 03:00):
    // the clock starts at the earliest of its two readings, 02:30 CEST = 00:30 UTC. The
    // same text at the Chicago site (CDT since 2026-03-08) is 07:30 UTC.
    let sae = |subject: &str, site: &str| {
        format!(
            r#"{{"subject":"{subject}","site":"{site}","adverse_events":[{{"id":"AE-9","term":"Sepsis",
                "serious":true,"awareness":"2026-03-29T02:30"}}]}}"#
        )
        .replace('\n', " ")
    };
    app.ingest(&d, "ks.ndjson", &sae("KS-101", "KS")).await;
    app.ingest(&d, "chicago.ndjson", &sae("US-201", "01-701")).await;
    let all = alerts(&app).await;
    let start = |subject: &str| {
        let a = all.iter().find(|a| a.subject == subject && a.episode == "sae-clock:AE-9:sponsor").unwrap();
        a.evidence["details"]["start"]["at"].as_str().unwrap().to_string()
    };
    assert_eq!(start("KS-101"), "2026-03-29T00:30:00+00:00");
    assert_eq!(start("US-201"), "2026-03-29T07:30:00+00:00");
}

#[test]
fn a_report_cut_off_date_is_the_end_of_the_studys_day() {
    let d = stockholm();
    let cfg = d.config.to_str().unwrap();
    // Two visits on consecutive local days; the second starts at 22:00 UTC on the 29th.
    let visit =
        |day: &str| format!(r#"{{"subject":"KS-101","site":"KS","visit":"D{day}","date":"2026-03-{day}"}}"#);
    let input = d.path("visits.ndjson");
    std::fs::write(&input, format!("{}\n{}\n", visit("29"), visit("30"))).unwrap();
    let out = d.vigil(&["ingest", "--config", cfg, input.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reports = d.path("reports");
    let out = d.vigil(&[
        "report",
        "dsmb",
        "--config",
        cfg,
        "--out",
        reports.to_str().unwrap(),
        "--as-of",
        "2026-03-29",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert!(
        html.contains("Data cut-off: <strong>2026-03-29 23:59 CEST (Europe&#x2f;Stockholm)</strong>"),
        "{html}"
    );
    assert!(
        html.contains("<td>Records dated after the data cut-off (left out)</td><td class=\"num\">1</td>"),
        "the visit of the 30th is after the cut-off: {html}"
    );
}
