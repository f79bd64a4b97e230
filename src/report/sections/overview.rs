//! Section "Overview": the key figures of every group (screened, enrolled, dosed, doses,
//! subjects with adverse events of each kind, deaths, potential Hy's law cases) and one
//! sentence each on the stopping rules and the alerts of the period. It computes nothing
//! of its own: it restates the numbers of the other sections.

use super::{per_group, row, split_table};
use crate::report::document::{Cell, Section};
use crate::report::{DsmbSummary, GroupSummary};

/// Section "Overview".
pub(crate) fn section(s: &DsmbSummary) -> Section {
    let cols = s.groups();
    let ae = |label: &str, f: fn(&GroupSummary) -> usize| {
        row(&cols, label, move |g| vec![Cell::count(f(g), g.n())])
    };
    let mut rows = vec![
        row(&cols, "Screened", |g| vec![Cell::int(g.disposition.screened)]),
        row(&cols, "Enrolled", |g| vec![Cell::int(g.disposition.enrolled)]),
        row(&cols, "Dosed (safety population, N)", |g| vec![Cell::int(g.n())]).strong(),
        ae("Completed the study", |g| g.disposition.completed),
        ae("Left the study early", |g| g.disposition.discontinued_total()),
        row(&cols, "Doses given", |g| vec![Cell::int(g.exposure.doses)]),
        ae("Subjects with any adverse event", |g| g.adverse_events.grades.any.subjects),
        ae("… with a grade ≥ 3 adverse event", |g| g.adverse_events.grade3_plus.subjects),
        ae("… with a related adverse event", |g| g.adverse_events.related.subjects),
        ae("… with a serious adverse event", |g| g.adverse_events.serious.subjects),
        ae("… with an adverse event leading to discontinuation", |g| {
            g.adverse_events.discontinued.subjects
        }),
        ae("Deaths (fatal adverse event)", |g| g.adverse_events.fatal.subjects),
        ae("Potential Hy's law cases", |g| g.labs.quadrants.potential_hys_law),
    ];
    let fired: Vec<&str> = s.stopping_rules.iter().filter(|r| r.fired).map(|r| r.rule_id.as_str()).collect();
    let rules = match (s.stopping_rules.len(), fired.len()) {
        (0, _) => "Stopping rules: none configured.".to_string(),
        (n, 0) => format!("Stopping rules: none of {n} fired."),
        (n, k) => format!("Stopping rules: {k} of {n} FIRED ({}).", fired.join(", ")),
    };
    let by_status: Vec<String> = s
        .alerts
        .statuses
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let n: usize = s.alerts.by_severity.iter().map(|r| r.by_status[i]).sum();
            format!("{st}: {n}")
        })
        .collect();
    let alerts = if s.alerts.total == 0 {
        "Alerts raised in the period: none.".to_string()
    } else {
        format!("Alerts raised in the period: {} ({}).", s.alerts.total, by_status.join(", "))
    };
    let none_recorded = s.total.disposition.none_recorded();
    if none_recorded {
        rows.retain(|r| !r.stub.iter().any(|s| s == "Completed the study" || s == "Left the study early"));
    }
    let mut findings = per_group(s, |g| Some(g.disposition.sentence()));
    if none_recorded {
        findings.push(super::enrollment::NO_DISPOSITION.to_string());
    }
    findings.push(rules);
    findings.push(alerts);
    Section {
        title: "Overview".to_string(),
        notes: vec!["Percentages are of N, the dosed subjects (safety population) of each column. Adverse \
             events are the current version of each event; a subject is counted once per row."
            .to_string()],
        findings,
        tables: vec![split_table(&cols, "key_figures", "Key figures", &["Measure"], &["n (%)"], rows)],
        charts: Vec::new(),
    }
}

/// Tests through the whole report on the constructed cohort of `report::tests`.
#[cfg(test)]
mod report_tests {
    use crate::report::tests::*;

    #[test]
    fn percentages_are_of_the_dosed_subjects() {
        let f = Fixture::new(cohort());
        let csv = f.csv_of("key_figures");
        assert!(csv.starts_with("Measure,group,N,n,%\n"), "{csv}");
        assert_eq!(
            csv_line(&csv, "Dosed (safety population, N)"),
            ["Dosed (safety population, N)", "All subjects", "6", "6", ""]
        );
        // 4 of the 6 dosed subjects had an adverse event: 66.7 %.
        assert_eq!(csv_line(&csv, "Subjects with any adverse event")[3..], ["4", "66.7"]);
        assert_eq!(csv_line(&csv, "… with a serious adverse event")[3..], ["1", "16.7"]);
        let html = f.html();
        assert!(
            html.contains("<td>Subjects with any adverse event</td><td class=\"num\">4 (66.7%)</td>"),
            "{html}"
        );
        assert!(html.contains("All subjects (N=6)"));
    }
}
