//! Section "MRI activity": new or enlarging T2 and gadolinium-enhancing lesions per visit,
//! with the reference scan each count is against, and the chart of new lesions per visit.

use crate::model::MriReference;
use crate::report::charts;
use crate::report::cut::Member;
use crate::report::document::{Cell, Chart, Row, Section, Table};
use crate::report::DsmbSummary;
use crate::rules::combined_active;
use std::collections::BTreeMap;

/// New or enlarging T2 and gadolinium-enhancing lesions at one visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MriAtVisit {
    pub visit: String,
    pub scans: usize,
    /// Scans that carry no new/enlarging T2 count (not read, or not reported).
    pub scans_without_count: usize,
    /// Subjects with at least one scan at this visit that carries a count.
    pub subjects_scanned: usize,
    pub total_new_t2: u64,
    /// Subjects with at least one new or enlarging T2 lesion at this visit.
    pub subjects_with_new_t2: usize,
    /// Subjects with at least one scan at this visit with a Gd+ count.
    pub subjects_gd_read: usize,
    pub total_gd: u64,
    /// Subjects with at least one gadolinium-enhancing lesion at this visit.
    pub subjects_with_gd: usize,
    /// Scans whose count is against the previous scan / against the baseline scan.
    pub against_previous: usize,
    pub against_baseline: usize,
    /// Combined unique active lesions (`rules::mri::combined_active`): the firm total and
    /// the upper bound (they differ when a scan with both counts does not report the overlap).
    pub total_combined: u64,
    pub total_combined_upper: u64,
}

impl MriAtVisit {
    /// `New or enlarging T2 lesions at {visit}: {with_any} of {scanned}`
    pub fn sentence(&self) -> String {
        format!(
            "New or enlarging T2 lesions at {}: {} of {}",
            self.visit, self.subjects_with_new_t2, self.subjects_scanned
        )
    }
}

#[derive(Default)]
struct MriAcc {
    total_combined: u64,
    total_combined_upper: u64,
    scans: usize,
    scans_without_count: usize,
    subjects_scanned: usize,
    total_new_t2: u64,
    subjects_with_new_t2: usize,
    subjects_gd_read: usize,
    total_gd: u64,
    subjects_with_gd: usize,
    against_previous: usize,
    against_baseline: usize,
}

/// What one subject's scans at one visit showed.
#[derive(Default)]
struct SeenAtVisit {
    t2_read: bool,
    t2_new: bool,
    gd_read: bool,
    gd_any: bool,
}

/// A subject's baseline scan: the first one, when it is on or before the first dose (or
/// the subject has no dose). It is the reference of later counts, not activity.
fn is_baseline(m: &Member, scan: &crate::model::Mri, first: bool) -> bool {
    first && m.h.first_dose().is_none_or(|d| scan.date.day() <= d.start.day())
}

/// Per visit, the scans after each subject's baseline scan; also returns how many baseline
/// scans there were. Scans without a visit label are left out (counted in the data
/// quality section).
pub(crate) fn mri_summary(members: &[Member], visits: &[String]) -> (Vec<MriAtVisit>, usize) {
    let mut acc: BTreeMap<String, MriAcc> = BTreeMap::new();
    let mut baselines = 0;
    for m in members {
        let mut seen: BTreeMap<&str, SeenAtVisit> = BTreeMap::new();
        for (i, (visit, scan)) in m.h.mri().into_iter().enumerate() {
            if is_baseline(m, &scan, i == 0) {
                baselines += 1;
                continue;
            }
            let Some(v) = visit else {
                continue;
            };
            let e = acc.entry(v.to_string()).or_default();
            e.scans += 1;
            match scan.reference {
                MriReference::Previous => e.against_previous += 1,
                MriReference::Baseline => e.against_baseline += 1,
            }
            if let Some((firm, upper)) = combined_active(&scan) {
                e.total_combined += u64::from(firm);
                e.total_combined_upper += u64::from(upper);
            }
            let s = seen.entry(v).or_default();
            match scan.t2_new_or_enlarging {
                None => e.scans_without_count += 1,
                Some(n) => {
                    e.total_new_t2 += u64::from(n);
                    s.t2_read = true;
                    s.t2_new |= n > 0;
                }
            }
            if let Some(n) = scan.gd_enhancing {
                e.total_gd += u64::from(n);
                s.gd_read = true;
                s.gd_any |= n > 0;
            }
        }
        for (v, s) in seen {
            if let Some(e) = acc.get_mut(v) {
                e.subjects_scanned += usize::from(s.t2_read);
                e.subjects_with_new_t2 += usize::from(s.t2_new);
                e.subjects_gd_read += usize::from(s.gd_read);
                e.subjects_with_gd += usize::from(s.gd_any);
            }
        }
    }
    let rows = visits
        .iter()
        .filter_map(|v| {
            let e = acc.get(v).filter(|e| e.scans > 0)?;
            Some(MriAtVisit {
                visit: v.clone(),
                scans: e.scans,
                scans_without_count: e.scans_without_count,
                subjects_scanned: e.subjects_scanned,
                total_new_t2: e.total_new_t2,
                subjects_with_new_t2: e.subjects_with_new_t2,
                subjects_gd_read: e.subjects_gd_read,
                total_gd: e.total_gd,
                subjects_with_gd: e.subjects_with_gd,
                against_previous: e.against_previous,
                against_baseline: e.against_baseline,
                total_combined: e.total_combined,
                total_combined_upper: e.total_combined_upper,
            })
        })
        .collect();
    (rows, baselines)
}

// --- the section in the report ---------------------------------------------------------

/// Section "MRI activity".
pub(crate) fn section(s: &DsmbSummary) -> Section {
    let mut stub = vec!["Visit"];
    if s.closed {
        stub.insert(0, "Arm");
    }
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    for g in s.groups() {
        for m in &g.mri {
            let mut labels = vec![m.visit.clone()];
            if s.closed {
                labels.insert(0, g.label.clone());
                findings.push(format!("{}: {}", g.label, m.sentence()));
            } else {
                findings.push(m.sentence());
            }
            rows.push(Row {
                stub: labels,
                cells: vec![
                    Cell::int(m.scans),
                    Cell::int(m.subjects_scanned),
                    Cell::Int(i64::try_from(m.total_new_t2).unwrap_or(i64::MAX)),
                    Cell::count(m.subjects_with_new_t2, m.subjects_scanned),
                    Cell::Int(i64::try_from(m.total_gd).unwrap_or(i64::MAX)),
                    Cell::count(m.subjects_with_gd, m.subjects_gd_read),
                    if m.total_combined == m.total_combined_upper {
                        Cell::Int(i64::try_from(m.total_combined).unwrap_or(i64::MAX))
                    } else {
                        Cell::text(format!("{} to {}", m.total_combined, m.total_combined_upper))
                    },
                    Cell::text(reference(m.against_previous, m.against_baseline)),
                ],
                strong: false,
                indent: false,
            });
        }
    }
    let table = Table {
        id: "mri_by_visit".to_string(),
        title: "MRI: new or enlarging T2 and gadolinium-enhancing lesions by visit".to_string(),
        stub: stub.iter().map(|h| h.to_string()).collect(),
        groups: Vec::new(),
        columns: [
            "Scans",
            "Subjects scanned",
            "New/enlarging T2 lesions",
            "Subjects with ≥ 1 new T2 n (%)",
            "Gd+ lesions",
            "Subjects with ≥ 1 Gd+ n (%)",
            "Combined active lesions",
            "Counted against",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        empty: "No MRI scans recorded.".to_string(),
    };
    Section {
        title: "MRI activity".to_string(),
        notes: vec![
            "Counts as reported per scan, against the reference scan shown. Subjects scanned are those \
             with a scan that carries a new/enlarging T2 count; Gd+ percentages are of the subjects \
             with a Gd+ count. Combined active lesions count each lesion once (new T2 or Gd+): the \
             reader's unique count when reported; otherwise a lesion may be both, and the column \
             shows the range from the larger count to their sum."
                .to_string(),
            format!(
                "Baseline scans (each subject's first scan, on or before the first dose): {}. They are \
                 the reference of later counts, not activity, and have no row.",
                s.total.mri_baseline_scans
            ),
        ],
        findings,
        tables: vec![table],
        charts: vec![Chart {
            title: "MRI new lesions per visit".to_string(),
            caption: "Total new or enlarging T2 lesions and gadolinium-enhancing lesions at each visit, \
                      all subjects."
                .to_string(),
            svg: charts::mri(&s.total.mri),
        }],
    }
}

fn reference(previous: usize, baseline: usize) -> String {
    match (previous, baseline) {
        (_, 0) => "previous scan".to_string(),
        (0, _) => "baseline scan".to_string(),
        (p, b) => format!("mixed: {p} previous, {b} baseline"),
    }
}

/// Tests through the whole report on the constructed cohort of `report::tests`.
#[cfg(test)]
mod report_tests {
    use crate::report::tests::*;

    #[test]
    fn mri_new_t2_by_construction() {
        let s = Fixture::new(cohort()).summary();
        let rows: Vec<(&str, usize, usize, u64, usize)> = s
            .total
            .mri
            .iter()
            .map(|m| (m.visit.as_str(), m.scans, m.subjects_scanned, m.total_new_t2, m.subjects_with_new_t2))
            .collect();
        assert_eq!(rows, [("W12", 6, 6, 1, 1), ("W48", 5, 5, 4, 3)]);
        assert_eq!(s.total.mri[1].sentence(), "New or enlarging T2 lesions at W48: 3 of 5");
        assert_eq!(s.total.mri[1].against_previous, 5);
    }

    #[test]
    fn the_baseline_scan_is_the_reference_not_a_row() {
        let mut subjects = cohort();
        for (i, h) in subjects.iter_mut().enumerate().take(6) {
            h.records.push(rec(&format!("KS-10{}", i + 1), "SCR", r#","mri":{"t2_new_or_enlarging":0}"#));
        }
        let f = Fixture::new(subjects);
        let s = f.summary();
        let visits: Vec<&str> = s.total.mri.iter().map(|m| m.visit.as_str()).collect();
        assert_eq!(visits, ["W12", "W48"], "no row for the screening (baseline) scans");
        assert_eq!(s.total.mri_baseline_scans, 6);
        assert!(!f.html().contains("New or enlarging T2 lesions at SCR"));
    }

    #[test]
    fn mri_counts_gadolinium_enhancing_lesions_too() {
        let mut subjects = cohort();
        subjects[0].records.push(rec("KS-101", "W48", r#","mri":{"gd_enhancing":2}"#));
        subjects[1].records.push(rec("KS-102", "W48", r#","mri":{"gd_enhancing":0}"#));
        let s = Fixture::new(subjects).summary();
        let w48 = s.total.mri.iter().find(|m| m.visit == "W48").unwrap();
        assert_eq!((w48.total_gd, w48.subjects_with_gd, w48.subjects_gd_read), (2, 1, 2));
        assert_eq!((w48.total_new_t2, w48.subjects_with_new_t2), (4, 3), "merged with the T2 counts");
        // KS-101: 1 new T2 and 2 Gd+, overlap not reported: 2 to 3 unique lesions.
        assert_eq!((w48.total_combined, w48.total_combined_upper), (4 + 1, 4 + 2));
    }

    #[test]
    fn combined_active_lesions_count_a_lesion_once() {
        let mut subjects = cohort();
        // KS-101's W48 scan: 1 new T2, 2 Gd+, 2 unique (the new T2 lesion enhances).
        subjects[0].records.push(rec("KS-101", "W48", r#","mri":{"gd_enhancing":2,"combined_active":2}"#));
        let f = Fixture::new(subjects);
        let s = f.summary();
        let w48 = s.total.mri.iter().find(|m| m.visit == "W48").unwrap();
        assert_eq!((w48.total_combined, w48.total_combined_upper), (5, 5), "2 + KS-102's 2 + KS-103's 1");
        let mut subjects = cohort();
        subjects[0].records.push(rec("KS-101", "W48", r#","mri":{"gd_enhancing":2}"#));
        let csv = Fixture::new(subjects).csv_of("mri_by_visit");
        assert!(csv.contains("5 to 6"), "{csv}");
    }
}
