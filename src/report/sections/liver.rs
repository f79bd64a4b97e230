//! Section "Liver tests and Hy's law": ALT, AST and total bilirubin of the safety
//! population as multiples of each sample's upper limit of normal, the abnormality counts,
//! the eDISH quadrants of each subject's peak values, the subjects outside the normal
//! quadrant, and the eDISH plot.

use super::{listing, listing_row, row, safety_groups, split_table};
use crate::model::SubjectId;
use crate::report::charts;
use crate::report::cut::Member;
use crate::report::document::{Cell, Chart, Section};
use crate::report::{DsmbSummary, GroupSummary};

/// eDISH quadrant of a subject's peak values (FDA ST&F IG 2025, T21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quadrant {
    /// ALT or AST ≥ 3×ULN and total bilirubin ≥ 2×ULN.
    PotentialHysLaw,
    /// ALT and AST < 3×ULN, total bilirubin ≥ 2×ULN.
    Cholestasis,
    /// ALT or AST ≥ 3×ULN, total bilirubin < 2×ULN.
    TemplesCorollary,
    Normal,
}

impl Quadrant {
    /// The quadrant of peak ALT-or-AST and peak bilirubin, both as multiples of ULN;
    /// both boundaries are inclusive (≥ 3×, ≥ 2×), as in the FDA's eDISH plot.
    pub fn of(alt_ast_x_uln: f64, bili_x_uln: f64) -> Self {
        match (alt_ast_x_uln >= 3.0, bili_x_uln >= 2.0) {
            (true, true) => Self::PotentialHysLaw,
            (false, true) => Self::Cholestasis,
            (true, false) => Self::TemplesCorollary,
            (false, false) => Self::Normal,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::PotentialHysLaw => "Potential Hy's law",
            Self::Cholestasis => "Cholestasis",
            Self::TemplesCorollary => "Temple's corollary",
            Self::Normal => "Normal",
        }
    }
}

/// One subject on the eDISH plot.
#[derive(Debug, Clone, PartialEq)]
pub struct EdishPoint {
    pub subject: SubjectId,
    /// Closed report only.
    pub arm: Option<String>,
    /// Peak ALT or AST, as a multiple of each sample's own ULN.
    pub alt_ast_x_uln: f64,
    /// Peak total bilirubin, as a multiple of each sample's own ULN.
    pub bili_x_uln: f64,
    pub quadrant: Quadrant,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdishQuadrants {
    pub potential_hys_law: usize,
    pub cholestasis: usize,
    pub temples_corollary: usize,
    pub normal: usize,
}

impl EdishQuadrants {
    /// Subjects on the plot (with both an ALT/AST and a bilirubin result).
    pub fn plotted(&self) -> usize {
        self.potential_hys_law + self.cholestasis + self.temples_corollary + self.normal
    }
}

/// Liver tests of the safety population, each value divided by its own sample's ULN.
#[derive(Debug, Clone, PartialEq)]
pub struct LabSummary {
    /// Subjects with at least one ALT, AST or bilirubin result with a ULN.
    pub subjects_tested: usize,
    /// Subjects with any ALT > 3×ULN (strictly above, as the usual abnormality flag).
    pub alt_above_3: usize,
    pub ast_above_3: usize,
    pub alt_or_ast_above_3: usize,
    /// Subjects with any total bilirubin > 2×ULN.
    pub bili_above_2: usize,
    pub quadrants: EdishQuadrants,
    /// Ordered by subject.
    pub points: Vec<EdishPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liver {
    Alt,
    Ast,
    Bili,
}

/// The liver tests by the one lab vocabulary (`model::LabTest`), so that a result the
/// Hy's-law rule reads as bilirubin counts here too, under any of its names.
pub(crate) fn liver_test(name: &str) -> Option<Liver> {
    match crate::model::LabTest::parse(name) {
        crate::model::LabTest::Alt => Some(Liver::Alt),
        crate::model::LabTest::Ast => Some(Liver::Ast),
        crate::model::LabTest::Bilirubin => Some(Liver::Bili),
        _ => None,
    }
}

/// Peak multiples of ULN per subject; results without a positive ULN are skipped
/// (counted in the data quality section).
pub(crate) fn lab_summary(dosed: &[Member]) -> LabSummary {
    let mut s = LabSummary {
        subjects_tested: 0,
        alt_above_3: 0,
        ast_above_3: 0,
        alt_or_ast_above_3: 0,
        bili_above_2: 0,
        quadrants: EdishQuadrants::default(),
        points: Vec::new(),
    };
    for m in dosed {
        let (mut alt, mut ast, mut bili): (Option<f64>, Option<f64>, Option<f64>) = (None, None, None);
        // eDISH plots treatment-emergent peaks: samples drawn after the first dose only (a
        // sample dated on the dose day without a time counts as baseline).
        let (mut post_alt, mut post_ast, mut post_bili): (Option<f64>, Option<f64>, Option<f64>) =
            (None, None, None);
        let first_dose = m.h.first_dose().map(|d| d.start.earliest());
        for (t, _, lab) in m.h.labs() {
            let (Some(kind), Some(uln)) = (liver_test(&lab.test), lab.high.filter(|h| *h > 0.0)) else {
                continue;
            };
            let x = lab.value / uln;
            let (slot, post) = match kind {
                Liver::Alt => (&mut alt, &mut post_alt),
                Liver::Ast => (&mut ast, &mut post_ast),
                Liver::Bili => (&mut bili, &mut post_bili),
            };
            *slot = Some(slot.map_or(x, |p| p.max(x)));
            if t.zip(first_dose).is_some_and(|(t, d)| t.earliest() > d) {
                *post = Some(post.map_or(x, |p| p.max(x)));
            }
        }
        if alt.is_none() && ast.is_none() && bili.is_none() {
            continue;
        }
        s.subjects_tested += 1;
        let above = |v: Option<f64>, k: f64| v.is_some_and(|v| v > k);
        s.alt_above_3 += usize::from(above(alt, 3.0));
        s.ast_above_3 += usize::from(above(ast, 3.0));
        s.alt_or_ast_above_3 += usize::from(above(alt, 3.0) || above(ast, 3.0));
        s.bili_above_2 += usize::from(above(bili, 2.0));
        let transaminase = match (post_alt, post_ast) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let (Some(x), Some(y)) = (transaminase, post_bili) {
            let quadrant = Quadrant::of(x, y);
            let q = &mut s.quadrants;
            *match quadrant {
                Quadrant::PotentialHysLaw => &mut q.potential_hys_law,
                Quadrant::Cholestasis => &mut q.cholestasis,
                Quadrant::TemplesCorollary => &mut q.temples_corollary,
                Quadrant::Normal => &mut q.normal,
            } += 1;
            s.points.push(EdishPoint {
                subject: m.h.subject.clone(),
                arm: m.arm.map(String::from),
                alt_ast_x_uln: x,
                bili_x_uln: y,
                quadrant,
            });
        }
    }
    s
}

// --- the section in the report ---------------------------------------------------------

/// Section "Liver tests and Hy's law".
pub(crate) fn section(s: &DsmbSummary) -> Section {
    let cols = safety_groups(s);
    let count = |label: &str, f: fn(&GroupSummary) -> usize| {
        row(&cols, label, move |g| vec![Cell::count(f(g), g.n())])
    };
    let abnormal = vec![
        count("Subjects with a liver test", |g| g.labs.subjects_tested),
        count("ALT > 3×ULN", |g| g.labs.alt_above_3),
        count("AST > 3×ULN", |g| g.labs.ast_above_3),
        count("ALT or AST > 3×ULN", |g| g.labs.alt_or_ast_above_3),
        count("Total bilirubin > 2×ULN", |g| g.labs.bili_above_2),
    ];
    let quadrants = vec![
        count("Potential Hy's law (ALT/AST ≥ 3×ULN, bilirubin ≥ 2×ULN)", |g| {
            g.labs.quadrants.potential_hys_law
        }),
        count("Cholestasis (ALT/AST < 3×ULN, bilirubin ≥ 2×ULN)", |g| g.labs.quadrants.cholestasis),
        count("Temple's corollary (ALT/AST ≥ 3×ULN, bilirubin < 2×ULN)", |g| {
            g.labs.quadrants.temples_corollary
        }),
        count("Normal (ALT/AST < 3×ULN, bilirubin < 2×ULN)", |g| g.labs.quadrants.normal),
        count("Subjects plotted", |g| g.labs.quadrants.plotted()).strong(),
    ];
    let mut outside = listing(
        s,
        "edish_listing",
        "Subjects outside the normal eDISH quadrant",
        &["Subject", "Peak ALT or AST (×ULN)", "Peak total bilirubin (×ULN)", "Quadrant"],
        "Every plotted subject is in the normal quadrant.",
    );
    let mut points: Vec<_> = s.total.labs.points.iter().filter(|p| p.quadrant != Quadrant::Normal).collect();
    points.sort_by(|a, b| (a.quadrant, &a.subject).cmp(&(b.quadrant, &b.subject)));
    outside.rows = points
        .into_iter()
        .map(|p| {
            listing_row(
                s,
                p.arm.as_deref(),
                vec![
                    Cell::text(p.subject.as_str()),
                    Cell::num(Some(p.alt_ast_x_uln), 2),
                    Cell::num(Some(p.bili_x_uln), 2),
                    Cell::text(p.quadrant.label()),
                ],
            )
        })
        .collect();
    Section {
        title: "Liver tests and Hy's law".to_string(),
        notes: vec![
            "ALT, AST and total bilirubin, under any of their names (SGPT, SGOT, BILI, \"Total bilirubin\", …), \
             of the safety population, each \
             value divided by its own sample's upper limit of normal; every sample up to the cut-off \
             counts, screening included. Abnormality rows use > (strictly above); the eDISH quadrants \
             use each subject's peak after the first dose (post-baseline samples only) and ≥, as in the \
             FDA eDISH plot. A potential Hy's law case \
             needs clinical review (other causes, ALP, timing)."
                .to_string(),
        ],
        findings: Vec::new(),
        tables: vec![
            split_table(
                &cols,
                "liver_abnormalities",
                "Liver test abnormalities",
                &["Subjects"],
                &["n (%)"],
                abnormal,
            ),
            split_table(
                &cols,
                "edish_quadrants",
                "eDISH quadrants (peak values per subject)",
                &["Quadrant"],
                &["n (%)"],
                quadrants,
            ),
            outside,
        ],
        charts: vec![Chart {
            title: "eDISH: peak ALT or AST vs peak total bilirubin".to_string(),
            caption: "One point per subject; both axes are multiples of the upper limit of normal on a \
                      log scale. Dashed lines at 3×ULN (ALT/AST) and 2×ULN (bilirubin)."
                .to_string(),
            svg: charts::edish(&s.total.labs.points, s.closed),
        }],
    }
}

/// Tests through the whole report on the constructed cohort of `report::tests`.
#[cfg(test)]
mod report_tests {
    use super::Liver;
    use crate::report::tests::*;
    use crate::report::*;

    #[test]
    fn liver_tests_are_read_by_the_one_lab_vocabulary() {
        // The Hy's-law rule reads these names as ALT, AST and bilirubin: so does the report.
        for (name, liver) in [
            ("Bilirubin", Liver::Bili),
            ("Total bilirubin", Liver::Bili),
            ("tbili", Liver::Bili),
            ("Alanine Aminotransferase", Liver::Alt),
            ("SGOT", Liver::Ast),
        ] {
            assert_eq!(super::liver_test(name), Some(liver), "{name}");
        }
        assert_eq!(super::liver_test("ALP"), None);
        let dose = r#","doses":[{"start":"2019-03-04"}]"#;
        let h = history(
            "B-1",
            vec![
                rec_on("B-1", "2019-03-04", dose),
                rec_on("B-1", "2019-03-10", &lab("Bilirubin", 50.0, 20.0)),
            ],
        );
        let s = Fixture::new(vec![h]).summary();
        assert_eq!(s.total.labs.bili_above_2, 1, "a result named Bilirubin at 2.5×ULN counts");
    }

    #[test]
    fn edish_plots_post_baseline_peaks_only() {
        // High ALT and bilirubin at screening, normal after the dose: tested, not Hy's law.
        let dose = r#","doses":[{"start":"2019-03-04T09:00:00+01:00"}]"#;
        let h = history(
            "E-1",
            vec![
                rec_on("E-1", "2019-03-01", &lab("ALT", 200.0, 40.0)),
                rec_on("E-1", "2019-03-01", &lab("BILI", 60.0, 21.0)),
                rec_on("E-1", "2019-03-04", dose),
                // Dated on the dose day without a time: baseline.
                rec_on("E-1", "2019-03-04", &lab("ALT", 180.0, 40.0)),
                rec_on("E-1", "2019-03-11", &lab("ALT", 30.0, 40.0)),
                rec_on("E-1", "2019-03-11", &lab("BILI", 10.0, 21.0)),
            ],
        );
        let s = Fixture::new(vec![h]).summary();
        let labs = &s.total.labs;
        assert_eq!(labs.alt_above_3, 1, "the abnormality rows still count every sample");
        let q = labs.quadrants;
        assert_eq!((q.potential_hys_law, q.normal), (0, 1), "the post-dose peaks are normal");
        assert!((labs.points[0].alt_ast_x_uln - 0.75).abs() < 1e-9, "{:?}", labs.points);
    }

    #[test]
    fn edish_quadrants_at_the_exact_boundaries() {
        assert_eq!(Quadrant::of(3.0, 2.0), Quadrant::PotentialHysLaw);
        assert_eq!(Quadrant::of(2.999, 2.0), Quadrant::Cholestasis);
        assert_eq!(Quadrant::of(3.0, 1.999), Quadrant::TemplesCorollary);
        assert_eq!(Quadrant::of(2.999, 1.999), Quadrant::Normal);

        let dose = r#","doses":[{"start":"2019-03-04"}]"#;
        let subject = |id: &str, labs: &[String]| {
            let mut records = vec![rec_on(id, "2019-03-04", dose)];
            records.extend(
                labs.iter().enumerate().map(|(i, l)| rec_on(id, &format!("2019-03-{:02}", 10 + i), l)),
            );
            history(id, records)
        };
        let subjects = vec![
            // Exactly 3×ULN (ALT 120 / 40) and exactly 2×ULN (bilirubin 42 / 21): Hy's law,
            // but neither is "> 3×" or "> 2×".
            subject("H-1", &[lab("ALT", 120.0, 40.0), lab("BILI", 42.0, 21.0)]),
            // AST (as SGOT) gives the peak; bilirubin as lowercase tbili just under 2×.
            subject("H-2", &[lab("ALT", 50.0, 40.0), lab("SGOT", 150.0, 36.0), lab("tbili", 41.9, 21.0)]),
            // Bilirubin 2× with normal transaminases, each against its own sample's ULN.
            subject("H-3", &[lab("SGPT", 119.0, 40.0), lab("BILI", 50.0, 25.0), lab("BILI", 30.0, 21.0)]),
            subject("H-4", &[lab("ALT", 20.0, 40.0), lab("BILI", 10.0, 21.0)]),
            // Only ALT: tested, not plotted. A result without ULN is not evaluable.
            subject("H-5", &[lab("ALT", 200.0, 40.0), r#","labs":[{"test":"AST","value":500}]"#.to_string()]),
        ];
        let f = Fixture::new(subjects);
        let s = f.summary();
        let labs = &s.total.labs;
        assert_eq!(labs.subjects_tested, 5);
        assert_eq!(labs.alt_above_3, 1, "only H-5 (5×); H-1 is exactly 3×");
        assert_eq!(labs.ast_above_3, 1, "H-2 (4.2×)");
        assert_eq!(labs.alt_or_ast_above_3, 2);
        assert_eq!(labs.bili_above_2, 0, "2× exactly is not above 2×");
        let q = labs.quadrants;
        assert_eq!((q.potential_hys_law, q.temples_corollary, q.cholestasis, q.normal), (1, 1, 1, 1));
        let by_subject: Vec<(&str, Quadrant)> =
            labs.points.iter().map(|p| (p.subject.as_str(), p.quadrant)).collect();
        assert_eq!(
            by_subject,
            [
                ("H-1", Quadrant::PotentialHysLaw),
                ("H-2", Quadrant::TemplesCorollary),
                ("H-3", Quadrant::Cholestasis),
                ("H-4", Quadrant::Normal)
            ]
        );
        assert!((labs.points[1].alt_ast_x_uln - 150.0 / 36.0).abs() < 1e-12);
        assert_eq!(s.data_quality.liver_results_without_uln, 1);
        let csv = f.csv_of("edish_quadrants");
        assert!(
            csv.contains("\"Potential Hy's law (ALT/AST ≥ 3×ULN, bilirubin ≥ 2×ULN)\",All subjects,5,1,20.0"),
            "{csv}"
        );
        let csv = f.csv_of("edish_listing");
        assert_eq!(csv.lines().nth(1), Some("H-1,3.00,2.00,Potential Hy's law"));
    }
}
