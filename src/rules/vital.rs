//! `vital`: one vital sign against absolute limits, or temperature against the CTCAE v5
//! fever grades (docs/clinical-reference.md §1.2), optionally only within some hours after a dose.
//!
//! Episode = the reading (`vital:temperature_c@<time>`), level = 1 (or the fever grade), so
//! re-evaluating the same data raises nothing and a fever that turns out to have lasted
//! more than 24 h raises again at grade 4.
//!
//! Presets, as rules: hypotension `measure: systolic_bp, below: 90, inclusive: false`;
//! hypoxia `measure: spo2, below: 92, inclusive: false`; tachycardia
//! `measure: heart_rate, above: 100, inclusive: false`; fever `measure: temperature_c,
//! ctcae_fever: {at_least: 1}`.

use super::window::{latest_dose_within, AtLeast, DoseAnchor, Window};
use super::Kind;
use super::{study_day, study_day_text, Context, Finding};
use crate::model::{ClinicalTime, Dose, SubjectHistory, Vital};
use chrono::Duration;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitalRule {
    /// The vital sign read from each reading.
    pub measure: Measure,
    /// Fires when the value reaches this limit.
    pub above: Option<f64>,
    /// Fires when the value reaches this limit from above (with `above`: outside the range).
    pub below: Option<f64>,
    /// Whether `above`/`below` include the limit: true (default) = ≥ / ≤, false = > / <.
    pub inclusive: Option<bool>,
    /// CTCAE v5 fever grade at least this (1–4), for `temperature_c` instead of limits.
    pub ctcae_fever: Option<AtLeast>,
    /// Only readings within this window; default: every reading.
    pub within: Option<Window<DoseAnchor>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    TemperatureC,
    SystolicBp,
    DiastolicBp,
    HeartRate,
    Spo2,
    RespiratoryRate,
}

impl Measure {
    fn key(self) -> &'static str {
        match self {
            Self::TemperatureC => "temperature_c",
            Self::SystolicBp => "systolic_bp",
            Self::DiastolicBp => "diastolic_bp",
            Self::HeartRate => "heart_rate",
            Self::Spo2 => "spo2",
            Self::RespiratoryRate => "respiratory_rate",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::TemperatureC => "Temperature",
            Self::SystolicBp => "Systolic BP",
            Self::DiastolicBp => "Diastolic BP",
            Self::HeartRate => "Heart rate",
            Self::Spo2 => "SpO2",
            Self::RespiratoryRate => "Respiratory rate",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::TemperatureC => "°C",
            Self::SystolicBp | Self::DiastolicBp => "mmHg",
            Self::HeartRate | Self::RespiratoryRate => "/min",
            Self::Spo2 => "%",
        }
    }

    fn read(self, v: &Vital) -> Option<f64> {
        match self {
            Self::TemperatureC => v.temperature_c,
            Self::SystolicBp => v.systolic_bp,
            Self::DiastolicBp => v.diastolic_bp,
            Self::HeartRate => v.heart_rate,
            Self::Spo2 => v.spo2,
            Self::RespiratoryRate => v.respiratory_rate,
        }
    }
}

/// One reading of the measure, with the time and visit the history gives it.
struct Reading<'h> {
    time: Option<&'h ClinicalTime>,
    visit: Option<&'h str>,
    value: f64,
}

impl VitalRule {
    /// What serde cannot see.
    fn validate(&self) -> Result<(), (String, String)> {
        let limits = self.above.is_some() || self.below.is_some();
        match (limits, &self.ctcae_fever) {
            (false, None) => {
                return Err((String::new(), "give above and/or below, or ctcae_fever".into()));
            }
            (true, Some(_)) => {
                return Err((
                    "ctcae_fever".into(),
                    "give either above/below or ctcae_fever, not both".into(),
                ));
            }
            _ => {}
        }
        for (key, v) in [("above", self.above), ("below", self.below)] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err((key.into(), "must be a number".into()));
            }
        }
        if let (Some(a), Some(b)) = (self.above, self.below) {
            if b >= a {
                return Err((
                    "below".into(),
                    format!("below: {b} is not under above: {a}; every value would fire"),
                ));
            }
        }
        if let Some(f) = &self.ctcae_fever {
            if self.measure != Measure::TemperatureC {
                return Err(("ctcae_fever".into(), "fever grades apply to measure: temperature_c".into()));
            }
            if !(1..=4).contains(&f.at_least) {
                return Err((
                    "ctcae_fever.at_least".into(),
                    format!("fever is graded 1 to 4 from temperatures, not {}", f.at_least),
                ));
            }
            if self.inclusive.is_some() {
                return Err((
                    "inclusive".into(),
                    "applies to above/below; fever grades fix their own limits".into(),
                ));
            }
        }
        if let Some(w) = &self.within {
            w.validate("within")?;
        }
        Ok(())
    }

    /// ("above 38", "38.2 >= 38") when the value reaches a limit.
    fn beyond_limit(&self, v: f64) -> Option<(String, String)> {
        let inclusive = self.inclusive.unwrap_or(true);
        if let Some(a) = self.above {
            if if inclusive { v >= a } else { v > a } {
                let op = if inclusive { ">=" } else { ">" };
                return Some((format!("above {}", num(a)), format!("{} {op} {}", num(v), num(a))));
            }
        }
        let b = self.below?;
        if if inclusive { v <= b } else { v < b } {
            let op = if inclusive { "<=" } else { "<" };
            return Some((format!("below {}", num(b)), format!("{} {op} {}", num(v), num(b))));
        }
        None
    }
}

impl Kind for VitalRule {
    const NAME: &'static str = "vital";
    type Params = Self;

    fn check(rule: Self) -> Result<Self, (String, String)> {
        rule.validate().map(|()| rule)
    }

    fn evaluate(&self, h: &SubjectHistory, ctx: &Context) -> Vec<Finding> {
        let readings: Vec<Reading> = h
            .vitals()
            .into_iter()
            .filter_map(|(time, visit, v)| self.measure.read(v).map(|value| Reading { time, visit, value }))
            .collect();
        let doses = h.doses();
        let mut out = Vec::new();
        for (i, r) in readings.iter().enumerate() {
            let dose = match &self.within {
                Some(w) => match r.time.and_then(|t| dose_window(t, w.hours, &doses)) {
                    Some(d) => Some(d),
                    None => continue,
                },
                None => None,
            };
            let (level, what, why) = match &self.ctcae_fever {
                Some(f) => match fever_grade(&readings, i) {
                    Some((g, why)) if g >= f.at_least => (
                        i64::from(g),
                        format!("CTCAE fever grade {g}"),
                        format!("grade {g} >= {}: {why}", f.at_least),
                    ),
                    _ => continue,
                },
                None => match self.beyond_limit(r.value) {
                    Some((what, why)) => (1, what, why),
                    None => continue,
                },
            };
            let time = r.time.map_or_else(|| format!("untimed={}", r.value), |t| t.raw().to_string());
            let mut at = match r.time {
                Some(t) if t.is_partial() => format!("{} (partial date)", study_day_text(h, t)),
                Some(t) => study_day_text(h, t),
                None => "an unrecorded time".to_string(),
            };
            if let Some(v) = r.visit {
                at = format!("visit {v}, {at}");
            }
            if let (Some((n, d)), Some(t)) = (dose, r.time) {
                at.push_str(&format!(", {} after the start of dose {}", elapsed(d, t), n + 1));
            }
            out.push(Finding {
                episode: format!("vital:{}@{time}", self.measure.key()),
                clinical_time: r.time.map(ClinicalTime::earliest),
                level,
                severity: ctx.severity,
                title: None,
                summary: format!(
                    "{} {} {} at {at}: {what}.",
                    self.measure.label(),
                    num(r.value),
                    self.measure.unit()
                ),
                why,
                evidence: json!({
                    "reading": {
                        "measure": self.measure.key(),
                        "value": r.value,
                        "unit": self.measure.unit(),
                        "visit": r.visit,
                        "study_day": r.time.and_then(|t| study_day(h, t)),
                    },
                    "dose": dose.map(|(n, d)| json!({"number": n + 1, "study_day": study_day(h, &d.start)})),
                    "threshold": {
                        "above": self.above, "below": self.below,
                        "inclusive": self.inclusive.unwrap_or(true),
                        "ctcae_fever_at_least": self.ctcae_fever.as_ref().map(|f| f.at_least),
                        "within_hours_after_dose": self.within.as_ref().map(|w| w.hours),
                    },
                }),
            });
        }
        out
    }
}

/// The CTCAE v5 fever grade of reading `i`: G1 38.0–39.0, G2 > 39.0–40.0, G3 > 40.0 for
/// ≤ 24 h, G4 > 40.0 for > 24 h. Single readings show no duration, so a reading > 40.0 is
/// grade 4 only when a later reading more than 24 h after it is still > 40.0 with no
/// reading of 40.0 or less between them (the fever lasted); otherwise grade 3.
fn fever_grade(readings: &[Reading], i: usize) -> Option<(u8, String)> {
    let reading = readings.get(i)?;
    let t = reading.value;
    if t > 40.0 {
        let start = reading.time;
        let mut lasted = None;
        for r in readings.iter().skip(i + 1) {
            if r.value <= 40.0 {
                break;
            }
            if let (Some(a), Some(b)) = (start, r.time) {
                if b.earliest() - a.earliest() > Duration::hours(24) {
                    lasted = Some(b.earliest() - a.earliest());
                    break;
                }
            }
        }
        return Some(match lasted {
            Some(d) => {
                (4, format!("{} °C > 40.0 °C and still > 40.0 °C {} h later", num(t), d.num_minutes() / 60))
            }
            None => (3, format!("{} °C > 40.0 °C (not shown to last > 24 h)", num(t))),
        });
    }
    if t > 39.0 {
        return Some((2, format!("{} °C in > 39.0–40.0 °C", num(t))));
    }
    if t >= 38.0 {
        return Some((1, format!("{} °C in 38.0–39.0 °C", num(t))));
    }
    None
}

/// The dose (index, dose) whose window holds the reading: from its start to `hours` after,
/// both ends included. A date without a time counts if any instant of it could be inside:
/// for safety, doubt raises the alert.
fn dose_window<'d>(t: &ClinicalTime, hours: f64, doses: &[&'d Dose]) -> Option<(usize, &'d Dose)> {
    let span = Duration::milliseconds((hours * 3_600_000.0).round() as i64);
    latest_dose_within(t, span, doses)
}

fn elapsed(dose: &Dose, t: &ClinicalTime) -> String {
    if t.is_partial() || t.precision() != crate::model::Precision::Time {
        return "on the day".to_string();
    }
    let m = (t.earliest() - dose.start.earliest()).num_minutes();
    if m < 120 {
        format!("{m} min")
    } else {
        format!("{:.1} h", m as f64 / 60.0)
    }
}

/// A number as a reader writes it: up to 2 decimals, no trailing zeros.
fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Record, SubjectId};
    use crate::rules::Severity;
    use std::collections::{BTreeMap, BTreeSet};

    fn ctx() -> Context<'static> {
        Context { severity: Severity::Critical, as_of: chrono::Utc::now(), schedule: &[] }
    }

    fn rule(yaml: &str) -> VitalRule {
        let r: VitalRule = serde_yaml::from_str(yaml).unwrap();
        r.validate().unwrap();
        r
    }

    fn refused(yaml: &str) -> String {
        let r: VitalRule = serde_yaml::from_str(yaml).unwrap();
        r.validate().unwrap_err().0
    }

    const DOSE: &str = r#"{"subject":"KS-101","visit":"D1","doses":[{"start":"2019-02-26T09:10:00+01:00"}]}"#;

    /// A record with one vital-sign set, e.g. `reading("2019-02-26T10:10:00+01:00", "temperature_c", 38.2)`.
    fn reading(time: &str, measure: &str, value: f64) -> String {
        format!(r#"{{"subject":"KS-101","visit":"H2","vitals":[{{"time":"{time}","{measure}":{value}}}]}}"#)
    }

    fn evaluate(r: &VitalRule, records: &[String]) -> Vec<Finding> {
        let h = SubjectHistory::new(
            SubjectId::parse("KS-101").unwrap(),
            records.iter().map(|j| Record::from_json(j).unwrap()).collect(),
        );
        r.evaluate(&h, &ctx())
    }

    #[test]
    fn yaml_shapes_and_refusals() {
        let r = rule("measure: spo2\nbelow: 92\ninclusive: false");
        assert_eq!((r.measure, r.below, r.inclusive), (Measure::Spo2, Some(92.0), Some(false)));
        rule("measure: temperature_c\nctcae_fever: {at_least: 2}\nwithin: {after: dose, hours: 2}");
        assert!(serde_yaml::from_str::<VitalRule>("measure: pulse\nabove: 100").is_err());
        assert!(serde_yaml::from_str::<VitalRule>(
            "measure: spo2\nbelow: 92\nwithin: {after: visit, hours: 2}"
        )
        .is_err());
        assert_eq!(refused("measure: spo2"), "");
        assert_eq!(refused("measure: heart_rate\nctcae_fever: {at_least: 1}"), "ctcae_fever");
        assert_eq!(refused("measure: temperature_c\nabove: 38\nctcae_fever: {at_least: 1}"), "ctcae_fever");
        assert_eq!(refused("measure: temperature_c\nctcae_fever: {at_least: 5}"), "ctcae_fever.at_least");
        assert_eq!(
            refused("measure: temperature_c\nctcae_fever: {at_least: 1}\ninclusive: false"),
            "inclusive"
        );
        assert_eq!(refused("measure: heart_rate\nabove: 50\nbelow: 100"), "below");
        assert_eq!(refused("measure: spo2\nbelow: 92\nwithin: {after: dose, hours: 0}"), "within.hours");
    }

    #[test]
    fn loads_through_the_rule_file_parser_with_positions() {
        let file = std::path::Path::new("vital.yaml");
        let yaml = "rules:
  - id: fever-after-infusion
    kind: vital
    measure: temperature_c
    ctcae_fever: {at_least: 2}
    within: {after: dose, hours: 24}
    severity: warning
";
        assert_eq!(crate::rules::parse_rules(file, yaml).unwrap()[0].kind.name(), "vital");
        let errors = crate::rules::parse_rules(file, &yaml.replace("hours: 24", "hours: -1")).unwrap_err();
        assert_eq!((errors.len(), errors[0].line), (1, 6), "{}", errors[0]);
    }

    fn fever_level(t: f64) -> Option<i64> {
        let r = rule("measure: temperature_c\nctcae_fever: {at_least: 1}");
        let f = evaluate(&r, &[DOSE.into(), reading("2019-02-26T12:10:00+01:00", "temperature_c", t)]);
        assert!(f.len() <= 1);
        f.first().map(|f| f.level)
    }

    #[test]
    fn fever_grades_at_the_ctcae_boundaries() {
        assert_eq!(fever_level(37.9), None);
        assert_eq!(fever_level(38.0), Some(1));
        assert_eq!(fever_level(39.0), Some(1));
        assert_eq!(fever_level(39.1), Some(2));
        assert_eq!(fever_level(40.0), Some(2));
        assert_eq!(fever_level(40.1), Some(3));
        let r = rule("measure: temperature_c\nctcae_fever: {at_least: 2}");
        let f = evaluate(&r, &[DOSE.into(), reading("2019-02-26T12:10:00+01:00", "temperature_c", 39.4)]);
        assert_eq!((f[0].episode.as_str(), f[0].level), ("vital:temperature_c@2019-02-26T12:10:00+01:00", 2));
        assert_eq!(f[0].summary, "Temperature 39.4 °C at visit H2, study day 1: CTCAE fever grade 2.");
        assert_eq!(f[0].why, "grade 2 >= 2: 39.4 °C in > 39.0–40.0 °C");
        assert!(evaluate(&r, &[reading("2019-02-26T12:10:00+01:00", "temperature_c", 39.0)]).is_empty());
    }

    #[test]
    fn fever_above_40_for_more_than_24_hours_is_grade_4() {
        let r = rule("measure: temperature_c\nctcae_fever: {at_least: 3}");
        let t = |time: &str, v: f64| reading(time, "temperature_c", v);
        let levels = |records: &[String]| evaluate(&r, records).iter().map(|f| f.level).collect::<Vec<_>>();
        // The first reading was followed 25 h later by one still above 40.0.
        let lasting = [
            t("2019-02-26T12:00:00Z", 40.5),
            t("2019-02-27T00:00:00Z", 40.3),
            t("2019-02-27T13:00:00Z", 40.2),
        ];
        assert_eq!(levels(&lasting), [4, 3, 3]);
        // Exactly 24 h is not more than 24 h.
        assert_eq!(levels(&[t("2019-02-26T12:00:00Z", 40.5), t("2019-02-27T12:00:00Z", 40.2)]), [3, 3]);
        // A reading of 40.0 or less in between breaks the episode.
        let broken = [
            t("2019-02-26T12:00:00Z", 40.5),
            t("2019-02-27T00:00:00Z", 38.0),
            t("2019-02-27T13:00:00Z", 40.2),
        ];
        assert_eq!(levels(&broken), [3, 3]);
        // The upgrade keeps the episode of the first reading, so it raises again at level 4.
        let first = evaluate(&r, &lasting[..1]);
        let later = evaluate(&r, &lasting);
        assert_eq!((first[0].episode.clone(), first[0].level), (later[0].episode.clone(), 3));
        assert_eq!(later[0].level, 4);
        assert!(later[0].why.contains("25 h later"), "{}", later[0].why);
    }

    #[test]
    fn dose_window_includes_its_edge_and_nothing_outside() {
        let r = rule("measure: systolic_bp\nbelow: 90\ninclusive: false\nwithin: {after: dose, hours: 2}");
        let bp = |time: &str| reading(time, "systolic_bp", 84.0);
        let f = evaluate(&r, &[DOSE.into(), bp("2019-02-26T11:10:00+01:00")]);
        assert_eq!(f.len(), 1, "exactly 2 h after the start");
        assert_eq!(
            f[0].summary,
            "Systolic BP 84 mmHg at visit H2, study day 1, 2.0 h after the start of dose 1: below 90."
        );
        assert_eq!(f[0].evidence["dose"]["number"], 1);
        assert!(
            evaluate(&r, &[DOSE.into(), bp("2019-02-26T11:10:01+01:00")]).is_empty(),
            "1 s past the window"
        );
        assert!(evaluate(&r, &[DOSE.into(), bp("2019-02-26T09:09:00+01:00")]).is_empty(), "before the dose");
        assert_eq!(evaluate(&r, &[DOSE.into(), bp("2019-02-26T09:10:00+01:00")]).len(), 1, "at the start");
        assert!(evaluate(&r, &[bp("2019-02-26T10:10:00+01:00")]).is_empty(), "no dose, no window");
        // Without a window every reading counts.
        let any = rule("measure: systolic_bp\nbelow: 90\ninclusive: false");
        assert_eq!(evaluate(&any, &[DOSE.into(), bp("2019-03-26T11:10:00+01:00")]).len(), 1);
    }

    #[test]
    fn limits_are_inclusive_unless_told_otherwise() {
        let at_90 = [reading("2019-02-26T11:10:00+01:00", "systolic_bp", 90.0)];
        let f = evaluate(&rule("measure: systolic_bp\nbelow: 90"), &at_90);
        assert_eq!((f.len(), f[0].level, f[0].why.as_str()), (1, 1, "90 <= 90"));
        assert!(evaluate(&rule("measure: systolic_bp\nbelow: 90\ninclusive: false"), &at_90).is_empty());
        let hr = [reading("2019-02-26T11:10:00+01:00", "heart_rate", 100.0)];
        assert_eq!(evaluate(&rule("measure: heart_rate\nabove: 100\nbelow: 50"), &hr).len(), 1);
        assert!(evaluate(&rule("measure: heart_rate\nabove: 100\ninclusive: false"), &hr).is_empty());
        // Another measure in the same set is not read.
        assert!(evaluate(&rule("measure: spo2\nbelow: 92"), &hr).is_empty());
    }

    #[test]
    fn summaries_carry_study_days_not_dates() {
        let r = rule("measure: spo2\nbelow: 92\ninclusive: false");
        let f = evaluate(&r, &[DOSE.into(), reading("2019-03-05T11:10:00+01:00", "spo2", 88.0)]);
        assert_eq!(f.len(), 1);
        assert!(f[0].summary.contains("study day 8"), "{}", f[0].summary);
        assert!(!f[0].summary.contains("2019") && !f[0].evidence.to_string().contains("2019"), "{f:?}");
        // Re-evaluating gives the same finding (same episode and level: no new alert).
        assert_eq!(evaluate(&r, &[DOSE.into(), reading("2019-03-05T11:10:00+01:00", "spo2", 88.0)]), f);
    }

    /// vs.csv SYSBP, PULSE and TEMP as one history per USUBJID.
    fn cdisc_pilot() -> Vec<SubjectHistory> {
        {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cdiscpilot01/vs.csv");
            let mut subjects: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
            for r in crate::ingest::csv::rows(std::path::Path::new(path)).unwrap() {
                let f = |col: &str| r.get(col).map_or("", String::as_str);
                let measure = match f("VSTESTCD") {
                    "SYSBP" => "systolic_bp",
                    "PULSE" => "heart_rate",
                    "TEMP" => "temperature_c",
                    _ => continue,
                };
                if let Ok(v) = f("VSSTRESN").parse::<f64>() {
                    subjects
                        .entry(f("USUBJID").to_string())
                        .or_default()
                        .push(json!({"time": f("VSDTC"), measure: v}));
                }
            }
            subjects
                .into_iter()
                .map(|(s, vitals)| {
                    let record = json!({"subject": s, "vitals": vitals}).to_string();
                    SubjectHistory::new(
                        SubjectId::parse(&s).unwrap(),
                        vec![Record::from_json(&record).unwrap()],
                    )
                })
                .collect()
        }
    }

    #[test]
    fn cdisc_pilot_vital_sign_counts() {
        let pilot = cdisc_pilot();
        let subjects = |yaml: &str| {
            let r = rule(yaml);
            pilot
                .iter()
                .filter(|h| !r.evaluate(h, &ctx()).is_empty())
                .map(|h| h.subject.to_string())
                .collect::<BTreeSet<_>>()
                .len()
        };
        // README facts: TEMP >= 38 C 2 subjects; SYSBP < 90 6; PULSE > 100 19; SYSBP >= 180 26.
        assert_eq!(subjects("measure: temperature_c\nabove: 38"), 2);
        assert_eq!(subjects("measure: temperature_c\nctcae_fever: {at_least: 1}"), 2);
        assert_eq!(subjects("measure: systolic_bp\nbelow: 90\ninclusive: false"), 6);
        assert_eq!(subjects("measure: heart_rate\nabove: 100\ninclusive: false"), 19);
        assert_eq!(subjects("measure: systolic_bp\nabove: 180"), 26);
    }
}
