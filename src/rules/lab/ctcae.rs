//! CTCAE v5 grading of laboratory results (docs/clinical-reference.md §6.2; admiral's ncictcaev5 criteria):
//! the terms vigil grades, their bands on ULN, LLN, baseline or absolute values, and the
//! units read for the terms graded on absolute values.

use super::criteria::{reaches, signif, Judged};
use super::series::{num, same_unit, uln};
use crate::model::{Lab, LabTest, LabUnit};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtcaeCriterion {
    /// The lowest grade that fires, 1 to 4.
    pub at_least: u8,
    /// The CTCAE term; default: named by `test` (ALT → alanine_aminotransferase_increased,
    /// HGB → anemia, K → hyperkalemia, …).
    pub term: Option<CtcaeTerm>,
    /// The unit to read a result in when it carries none, for terms graded on absolute
    /// values (counts, haemoglobin, potassium). Default: such results are not graded, as
    /// admiral's unit check would not grade them.
    pub assume_unit: Option<String>,
}

/// The CTCAE v5 laboratory terms vigil grades (admiral's ncictcaev5 criteria).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CtcaeTerm {
    AlanineAminotransferaseIncreased,
    AspartateAminotransferaseIncreased,
    BloodBilirubinIncreased,
    AlkalinePhosphataseIncreased,
    CreatinineIncreased,
    NeutrophilCountDecreased,
    PlateletCountDecreased,
    LymphocyteCountDecreased,
    WhiteBloodCellDecreased,
    Anemia,
    Hyperkalemia,
}

/// A `ctcae` criterion ready to run: its term resolved and its unit parsed, at load.
#[derive(Debug, Clone)]
pub struct CtcaeGrading {
    pub at_least: u8,
    pub term: CtcaeTerm,
    pub assume_unit: Option<LabUnit>,
}

impl CtcaeTerm {
    pub(super) const ALL: [CtcaeTerm; 11] = [
        Self::AlanineAminotransferaseIncreased,
        Self::AspartateAminotransferaseIncreased,
        Self::BloodBilirubinIncreased,
        Self::AlkalinePhosphataseIncreased,
        Self::CreatinineIncreased,
        Self::NeutrophilCountDecreased,
        Self::PlateletCountDecreased,
        Self::LymphocyteCountDecreased,
        Self::WhiteBloodCellDecreased,
        Self::Anemia,
        Self::Hyperkalemia,
    ];

    /// The term for a test (by its code, name or synonym).
    pub(super) fn for_test(test: &LabTest) -> Option<Self> {
        Some(match test {
            LabTest::Alt => Self::AlanineAminotransferaseIncreased,
            LabTest::Ast => Self::AspartateAminotransferaseIncreased,
            LabTest::Bilirubin => Self::BloodBilirubinIncreased,
            LabTest::Alp => Self::AlkalinePhosphataseIncreased,
            LabTest::Creatinine => Self::CreatinineIncreased,
            LabTest::Neutrophils => Self::NeutrophilCountDecreased,
            LabTest::Platelets => Self::PlateletCountDecreased,
            LabTest::Lymphocytes => Self::LymphocyteCountDecreased,
            LabTest::Leukocytes => Self::WhiteBloodCellDecreased,
            LabTest::Hemoglobin => Self::Anemia,
            LabTest::Potassium => Self::Hyperkalemia,
            _ => return None,
        })
    }

    pub(super) fn key(self) -> &'static str {
        match self {
            Self::AlanineAminotransferaseIncreased => "alanine_aminotransferase_increased",
            Self::AspartateAminotransferaseIncreased => "aspartate_aminotransferase_increased",
            Self::BloodBilirubinIncreased => "blood_bilirubin_increased",
            Self::AlkalinePhosphataseIncreased => "alkaline_phosphatase_increased",
            Self::CreatinineIncreased => "creatinine_increased",
            Self::NeutrophilCountDecreased => "neutrophil_count_decreased",
            Self::PlateletCountDecreased => "platelet_count_decreased",
            Self::LymphocyteCountDecreased => "lymphocyte_count_decreased",
            Self::WhiteBloodCellDecreased => "white_blood_cell_decreased",
            Self::Anemia => "anemia",
            Self::Hyperkalemia => "hyperkalemia",
        }
    }

    pub(super) fn label(self) -> String {
        self.key().replace('_', " ")
    }

    /// Anemia grade 4 is clinical ("life-threatening"), not a lab value.
    pub(super) fn max_grade(self) -> u8 {
        if self == Self::Anemia {
            3
        } else {
            4
        }
    }

    /// Graded on absolute values, so the unit matters.
    pub(super) fn absolute(self) -> bool {
        matches!(
            self,
            Self::NeutrophilCountDecreased
                | Self::PlateletCountDecreased
                | Self::LymphocyteCountDecreased
                | Self::WhiteBloodCellDecreased
                | Self::Anemia
                | Self::Hyperkalemia
        )
    }

    pub(super) fn units(self) -> &'static str {
        match self {
            Self::Anemia => "g/L, g/dL or mmol/L",
            Self::Hyperkalemia => "mmol/L or mEq/L",
            _ => "10^9/L (GI/L, 10^3/uL) or /uL (/mm3)",
        }
    }

    /// How to read a value in this unit: (factor to the table's unit, thresholds in
    /// mmol/L instead of g/L). None = a unit vigil does not convert.
    pub(super) fn unit_scale(self, unit: &LabUnit) -> Option<(f64, bool)> {
        let u = unit.as_str();
        match self {
            Self::Anemia => match u {
                "g/l" => Some((1.0, false)),
                "g/dl" => Some((10.0, false)),
                // CTCAE v5 gives its own mmol/L limits for haemoglobin (6.2 and 4.9).
                "mmol/l" => Some((1.0, true)),
                _ => None,
            },
            Self::Hyperkalemia => matches!(u, "mmol/l" | "meq/l").then_some((1.0, false)),
            _ if self.absolute() => match u {
                "10^9/l" | "10e9/l" | "10*9/l" | "x10^9/l" | "x10e9/l" | "gi/l" | "10^3/ul" | "10e3/ul"
                | "10*3/ul" | "x10^3/ul" | "k/ul" | "/nl" | "10^3/mm3" => Some((1.0, false)),
                "/ul" | "/mm3" | "cells/ul" | "cells/mm3" | "10^6/l" => Some((0.001, false)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The grade of one result (admiral's algorithm: from the most severe grade down, the
    /// first match wins; grade 0 within normal limits; None when a value the table needs —
    /// ULN, LLN, baseline, a known unit — is missing).
    pub(super) fn grade(
        self,
        lab: &Lab,
        baseline: Option<&Lab>,
        assume_unit: Option<&LabUnit>,
    ) -> Option<Judged> {
        // A result's own unit wins; `assume_unit` is for results that carry none.
        let unit = || lab.unit.as_deref().map(LabUnit::parse).or_else(|| assume_unit.cloned());
        let v = lab.value;
        let (level, why) = match self {
            Self::AlanineAminotransferaseIncreased
            | Self::AspartateAminotransferaseIncreased
            | Self::BloodBilirubinIncreased
            | Self::AlkalinePhosphataseIncreased => {
                let limit = uln(lab)?;
                // (grade, multiple, inclusive) for a normal and for a high baseline.
                let (normal, high): (Bands, Bands) = match self {
                    Self::BloodBilirubinIncreased => (
                        &[(4, 10.0, false), (3, 3.0, false), (2, 1.5, false), (1, 1.0, false)],
                        &[(4, 10.0, false), (3, 3.0, false), (2, 1.5, false), (1, 1.0, false)],
                    ),
                    Self::AlkalinePhosphataseIncreased => (
                        &[(4, 20.0, false), (3, 5.0, false), (2, 2.5, false), (1, 1.0, false)],
                        &[(4, 20.0, false), (3, 5.0, false), (2, 2.5, false), (1, 2.0, true)],
                    ),
                    _ => (
                        &[(4, 20.0, false), (3, 5.0, false), (2, 3.0, false), (1, 1.0, false)],
                        &[(4, 20.0, false), (3, 5.0, false), (2, 3.0, false), (1, 1.5, true)],
                    ),
                };
                // Admiral's BNRIND: a baseline above its own ULN is "abnormal"; unknown = normal.
                let abnormal = baseline.filter(|b| uln(b).is_some_and(|bu| reaches(b.value, 1.0, bu, false)));
                match abnormal {
                    Some(b) if !same_unit(lab, b) || b.value <= 0.0 => return None,
                    Some(b) => bands_up(v, b.value, "baseline", high, "baseline above ULN"),
                    None => bands_up(v, limit, "ULN", normal, "baseline within normal limits"),
                }
            }
            Self::CreatinineIncreased => {
                let uln = uln(lab);
                let base = baseline.filter(|b| b.value > 0.0 && same_unit(lab, b)).map(|b| b.value);
                let over = |k: f64, r: Option<f64>| r.is_some_and(|r| reaches(v, k, r, false));
                let both = |k: f64| {
                    if over(k, uln) {
                        uln.map(|u| format!("{} > {}×ULN ({})", num(v), num(k), num(k * u)))
                    } else if over(k, base) {
                        base.map(|b| format!("{} > {}×baseline ({})", num(v), num(k), num(k * b)))
                    } else {
                        None
                    }
                };
                if over(6.0, uln) {
                    (4, format!("{} > 6×ULN", num(v)))
                } else if let Some(w) = both(3.0) {
                    (3, w)
                } else if let Some(w) = both(1.5) {
                    (2, w)
                } else {
                    let u = uln?;
                    if reaches(v, 1.0, u, false) {
                        (1, format!("{} > ULN ({})", num(v), num(u)))
                    } else {
                        (0, "within normal limits".to_string())
                    }
                }
            }
            Self::Hyperkalemia => {
                self.unit_scale(&unit()?)?;
                let band =
                    [(4, 7.0), (3, 6.0), (2, 5.5)].into_iter().find(|(_, l)| reaches(v, 1.0, *l, false));
                match band {
                    Some((g, l)) => (g, format!("{} > {} mmol/L", num(v), num(l))),
                    None => {
                        let u = uln(lab)?;
                        if reaches(v, 1.0, u, false) {
                            (1, format!("{} > ULN ({})", num(v), num(u)))
                        } else {
                            (0, "within normal limits".to_string())
                        }
                    }
                }
            }
            _ => {
                // Decreased counts and haemoglobin: fixed limits in the table's unit, then LLN.
                let (factor, hb_mmol) = self.unit_scale(&unit()?)?;
                let (limits, unit): (&[(u8, f64)], &str) = match self {
                    Self::NeutrophilCountDecreased => (&[(4, 0.5), (3, 1.0), (2, 1.5)], "10^9/L"),
                    Self::PlateletCountDecreased => (&[(4, 25.0), (3, 50.0), (2, 75.0)], "10^9/L"),
                    Self::LymphocyteCountDecreased => (&[(4, 0.2), (3, 0.5), (2, 0.8)], "10^9/L"),
                    Self::WhiteBloodCellDecreased => (&[(4, 1.0), (3, 2.0), (2, 3.0)], "10^9/L"),
                    _ if hb_mmol => (&[(3, 4.9), (2, 6.2)], "mmol/L"),
                    _ => (&[(3, 80.0), (2, 100.0)], "g/L"),
                };
                let x = signif(v * factor);
                match limits.iter().find(|(_, l)| x < signif(*l)) {
                    Some((g, l)) => (*g, format!("{} {unit} < {} {unit}", num(x), num(*l))),
                    None => {
                        let lln = lab.low.map(|l| signif(l * factor))?;
                        if x < lln {
                            (1, format!("{} < LLN ({})", num(x), num(lln)))
                        } else {
                            (0, "within normal limits".to_string())
                        }
                    }
                }
            }
        };
        Some(Judged {
            level: i64::from(level),
            what: format!("CTCAE grade {level} {}", self.label()),
            why,
            extra: json!({"ctcae": {"version": "5.0", "term": self.key(), "grade": level}}),
        })
    }
}

/// Grade bands, most severe first: (grade, multiple, inclusive).
type Bands = &'static [(u8, f64, bool)];

/// The first band (most severe first) that `v` reaches as a multiple of `reference`.
fn bands_up(v: f64, reference: f64, name: &str, bands: Bands, note: &str) -> (u8, String) {
    for (g, k, inclusive) in bands {
        if reaches(v, *k, reference, *inclusive) {
            let op = if *inclusive { ">=" } else { ">" };
            let k_text = if *k == 1.0 { name.to_string() } else { format!("{}×{name}", num(*k)) };
            return (*g, format!("{} {op} {k_text} ({}), {note}", num(v), num(k * reference)));
        }
    }
    (0, format!("{} within {name} limits", num(v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::lab::tests::{alt, one, rule, visit, DOSE};

    #[test]
    fn terms_by_test_and_units() {
        assert_eq!(
            CtcaeTerm::for_test(&LabTest::parse("SGPT")),
            Some(CtcaeTerm::AlanineAminotransferaseIncreased)
        );
        assert_eq!(
            CtcaeTerm::for_test(&LabTest::parse("Total bilirubin")),
            Some(CtcaeTerm::BloodBilirubinIncreased)
        );
        assert_eq!(CtcaeTerm::for_test(&LabTest::parse("Platelet")), Some(CtcaeTerm::PlateletCountDecreased));
        assert_eq!(CtcaeTerm::for_test(&LabTest::parse("GGT")), None);
        assert_eq!(CtcaeTerm::Anemia.unit_scale(&LabUnit::parse("g/dL")), Some((10.0, false)));
        assert_eq!(
            CtcaeTerm::PlateletCountDecreased.unit_scale(&LabUnit::parse("10^9 /L")),
            Some((1.0, false))
        );
        assert_eq!(CtcaeTerm::Hyperkalemia.unit_scale(&LabUnit::parse("furlongs")), None);
    }

    fn grade_of(test: &str, lab: &str, extra: &[String]) -> Option<i64> {
        let mut data: Vec<String> = extra.to_vec();
        data.push(visit("W8", "2019-04-23", &[lab]));
        let r = rule(&format!("test: {test}\nctcae: {{at_least: 1}}"));
        let f = one(&r, &data);
        f.iter().find(|f| f.episode.ends_with("2019-04-23")).map(|f| f.level)
    }

    #[test]
    fn alt_exactly_3x_uln_is_ctcae_grade_1_the_g2_band_is_above_3() {
        let g = |v: f64| grade_of("ALT", &alt(v, 40.0), &[]);
        assert_eq!(g(40.0), None, "= ULN is grade 0");
        assert_eq!(g(40.1), Some(1));
        assert_eq!(g(120.0), Some(1), "exactly 3.0×ULN");
        assert_eq!(g(120.1), Some(2));
        assert_eq!(g(200.0), Some(2), "exactly 5.0×ULN");
        assert_eq!(g(200.1), Some(3));
        assert_eq!(g(800.0), Some(3), "exactly 20×ULN");
        assert_eq!(g(800.1), Some(4));
        let f = one(
            &rule("test: ALT\nctcae: {at_least: 2}"),
            &[DOSE.into(), visit("W2", "2019-03-12", &[&alt(130.0, 40.0)])],
        );
        assert_eq!((f[0].episode.as_str(), f[0].level), ("lab:ALT@2019-03-12", 2));
        assert_eq!(
            f[0].summary,
            "ALT 130 U/L at visit W2, study day 15: CTCAE grade 2 alanine aminotransferase increased."
        );
        assert_eq!(f[0].why, "grade 2 >= 2: 130 > 3×ULN (120), baseline within normal limits");
        assert_eq!(f[0].evidence["ctcae"]["grade"], 2);
        assert!(one(
            &rule("test: ALT\nctcae: {at_least: 3}"),
            &[visit("W2", "2019-03-12", &[&alt(130.0, 40.0)])]
        )
        .is_empty());
    }

    #[test]
    fn abnormal_baseline_grades_against_baseline() {
        // Baseline (last before the first dose) 60 U/L with ULN 40: above normal.
        let base = [visit("SCR", "2019-02-20", &[&alt(60.0, 40.0)]), DOSE.to_string()];
        let g = |v: f64| grade_of("ALT", &alt(v, 40.0), &base);
        assert_eq!(g(89.9), None);
        assert_eq!(g(90.0), Some(1), "1.5×baseline is grade 1 (inclusive)");
        assert_eq!(g(180.0), Some(1), "exactly 3.0×baseline");
        assert_eq!(g(180.1), Some(2));
        assert_eq!(g(300.1), Some(3));
        assert_eq!(g(1200.1), Some(4));
        // Bilirubin with a normal baseline: > 1.5×ULN is grade 2, 1.5× itself grade 1.
        let bili = |v: f64| format!(r#"{{"test":"BILI","value":{v},"unit":"umol/L","high":20}}"#);
        assert_eq!(grade_of("BILI", &bili(30.0), &[]), Some(1));
        assert_eq!(grade_of("BILI", &bili(30.1), &[]), Some(2));
        assert_eq!(grade_of("BILI", &bili(200.1), &[]), Some(4));
        // ALP: 2.5×ULN is grade 1, above it grade 2.
        let alp = |v: f64| format!(r#"{{"test":"ALP","value":{v},"unit":"U/L","high":100}}"#);
        assert_eq!(grade_of("ALP", &alp(250.0), &[]), Some(1));
        assert_eq!(grade_of("ALP", &alp(250.1), &[]), Some(2));
    }

    #[test]
    fn creatinine_reaches_grades_2_and_3_through_baseline() {
        let cr = |v: f64| format!(r#"{{"test":"CREAT","value":{v},"unit":"umol/L","high":100}}"#);
        let base = [visit("SCR", "2019-02-20", &[&cr(50.0)]), DOSE.to_string()];
        assert_eq!(grade_of("CREAT", &cr(75.0), &base), None, "1.5×baseline exactly is not above it");
        assert_eq!(grade_of("CREAT", &cr(76.0), &base), Some(2), "below ULN, above 1.5×baseline");
        assert_eq!(grade_of("CREAT", &cr(151.0), &base), Some(3), "above 3×baseline");
        assert_eq!(grade_of("CREAT", &cr(601.0), &base), Some(4));
        assert_eq!(grade_of("CREAT", &cr(101.0), &[]), Some(1));
    }

    #[test]
    fn decreased_counts_haemoglobin_and_potassium_in_their_units() {
        let count =
            |t: &str, v: f64, u: &str| format!(r#"{{"test":"{t}","value":{v},"unit":"{u}","low":2.0}}"#);
        assert_eq!(grade_of("NEUT", &count("NEUT", 1.5, "10^9/L"), &[]), Some(1));
        assert_eq!(grade_of("NEUT", &count("NEUT", 1.49, "10^9/L"), &[]), Some(2));
        assert_eq!(grade_of("NEUT", &count("NEUT", 1.0, "GI/L"), &[]), Some(2));
        assert_eq!(grade_of("NEUT", &count("NEUT", 0.99, "10^9/L"), &[]), Some(3));
        assert_eq!(grade_of("NEUT", &count("NEUT", 400.0, "/uL"), &[]), Some(4), "400/uL = 0.4×10^9/L");
        assert_eq!(grade_of("NEUT", &count("NEUT", 2.5, "10^9/L"), &[]), None);
        assert_eq!(grade_of("NEUT", &count("NEUT", 0.4, "furlongs"), &[]), None, "unknown unit: not graded");
        let plat = r#"{"test":"PLAT","value":49,"low":150}"#;
        assert_eq!(grade_of("PLAT", plat, &[]), None, "no unit: not graded");
        let r = rule("test: PLAT\nctcae: {at_least: 3, assume_unit: 10^9/L}");
        assert_eq!(one(&r, &[visit("W8", "2019-04-23", &[plat])])[0].level, 3);
        let hb = |v: f64, u: &str| format!(r#"{{"test":"HGB","value":{v},"unit":"{u}","low":120}}"#);
        assert_eq!(grade_of("HGB", &hb(8.0, "g/dL"), &[]), Some(2), "80 g/L is not below 80");
        assert_eq!(grade_of("HGB", &hb(7.9, "g/dL"), &[]), Some(3));
        assert_eq!(grade_of("HGB", &hb(100.0, "g/L"), &[]), Some(1));
        let hb_mmol = |v: f64| format!(r#"{{"test":"HGB","value":{v},"unit":"mmol/L","low":7.5}}"#);
        assert_eq!(grade_of("HGB", &hb_mmol(4.8), &[]), Some(3));
        assert_eq!(grade_of("HGB", &hb_mmol(6.2), &[]), Some(1));
        let k = |v: f64| format!(r#"{{"test":"K","value":{v},"unit":"mmol/L","high":5.0}}"#);
        assert_eq!(grade_of("K", &k(5.0), &[]), None);
        assert_eq!(grade_of("K", &k(5.5), &[]), Some(1));
        assert_eq!(grade_of("K", &k(6.0), &[]), Some(2));
        assert_eq!(grade_of("K", &k(7.0), &[]), Some(3));
        assert_eq!(grade_of("K", &k(7.1), &[]), Some(4));
    }
}
