//! `disability_progression`: EDSS worsening from baseline by the baseline-dependent
//! minimum change, confirmed at a later visit (docs/clinical-reference.md §2.2–2.3).
//!
//! One rule gives two alerts per worsening episode: "unconfirmed" at the onset visit
//! (level 1, `unconfirmed_severity`) and "confirmed" once a visit at least
//! `confirm_after` later still shows it (level 2, the rule's severity).

use super::progression::{self, Baseline, EventKind, EventStatus, ProgressionParams};
use super::Kind;
use super::{Context, Finding, Severity, Span};
use crate::model::{ChangeStep, EdssVisit, MinimumChange, SubjectHistory};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct DisabilityRule {
    pub params: ProgressionParams,
    pub unconfirmed_severity: Option<Severity>,
    /// Also raise an info finding for each confirmed improvement.
    pub report_improvement: bool,
}

/// The rule as written in YAML; turned into `DisabilityRule` after checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    /// Only EDSS is supported so far.
    score: String,
    #[serde(default = "fixed")]
    baseline: Baseline,
    /// Explicit table of minimum increases; or `threshold_variant`.
    increase: Option<Vec<ChangeStep>>,
    /// A, B or C of docs/clinical-reference.md §2.2 (default A).
    threshold_variant: Option<String>,
    confirm_after: Span,
    #[serde(default = "seven_days")]
    confirm_tolerance_before: Span,
    /// Absent = no upper limit (the first eligible later visit decides).
    confirm_tolerance_after: Option<Span>,
    #[serde(default = "thirty_days")]
    relapse_exclusion: Span,
    /// Ignore scores taken within the relapse exclusion window (default true).
    #[serde(default = "yes")]
    ignore_during_relapse: bool,
    #[serde(default)]
    sustained: bool,
    /// Severity of the unconfirmed-worsening alert; `none` = no such alert.
    #[serde(default = "info")]
    unconfirmed_severity: String,
    /// Report confirmed improvements too (an info finding each). With a roving baseline
    /// improvements are always tracked, since they move the baseline; this only says
    /// whether they are reported.
    #[serde(default)]
    report_improvement: bool,
}

/// A confirmed improvement, reported for information (it is not a safety signal).
fn improvement(
    e: &progression::ProgressionEvent,
    c: &EdssVisit,
    describe: &dyn Fn(&EdssVisit) -> String,
    confirm_after_days: i64,
) -> Finding {
    Finding {
        episode: format!("edss-improvement:{}", e.onset.date),
        clinical_time: Some(super::day_start(c.date)),
        level: 2,
        severity: Severity::Info,
        title: Some("Confirmed EDSS improvement".to_string()),
        summary: format!(
            "EDSS {} at {}, down from baseline {} at {}; confirmed at {} with EDSS {}.",
            e.onset.score,
            describe(&e.onset),
            e.baseline.score,
            describe(&e.baseline),
            describe(c),
            c.score
        ),
        why: format!(
            "decrease {:.1} reaching the {:.1} required from a baseline of {}, still met at a visit >= {} days later",
            e.baseline.score.value() - e.onset.score.value(),
            e.required_change,
            e.baseline.score,
            confirm_after_days
        ),
        evidence: json!({
            "baseline": {"date": e.baseline.date, "visit": e.baseline.visit, "edss": e.baseline.score},
            "onset": {"date": e.onset.date, "visit": e.onset.visit, "edss": e.onset.score},
            "confirmation": {"date": c.date, "visit": c.visit, "edss": c.score},
        }),
    }
}

/// "study day N" for a date, when the subject has a dose.
fn describe_date(h: &SubjectHistory, date: chrono::NaiveDate) -> String {
    match h.first_dose() {
        Some(d) => {
            let n = (date - d.start.day()).num_days();
            format!("study day {}", if n >= 0 { n + 1 } else { n })
        }
        None => "the confirmation window".to_string(),
    }
}

fn fixed() -> Baseline {
    Baseline::Fixed
}
fn seven_days() -> Span {
    Span::from_days(7)
}
fn thirty_days() -> Span {
    Span::from_days(30)
}
fn yes() -> bool {
    true
}
fn info() -> String {
    "info".into()
}

impl<'de> Deserialize<'de> for DisabilityRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let w = Written::deserialize(d)?;
        if !w.score.eq_ignore_ascii_case("EDSS") {
            return Err(D::Error::custom(format!("score `{}`: only EDSS is supported so far", w.score)));
        }
        let min_change = match (&w.increase, w.threshold_variant.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(D::Error::custom("give either `increase` or `threshold_variant`, not both"))
            }
            (Some(steps), None) => {
                MinimumChange::new(steps.clone()).map_err(|e| D::Error::custom(format!("increase: {e}")))?
            }
            (None, None) | (None, Some("A")) => MinimumChange::variant_a(),
            (None, Some("B")) => MinimumChange::variant_b(),
            (None, Some("C")) => MinimumChange::variant_c(),
            (None, Some(v)) => {
                return Err(D::Error::custom(format!("threshold_variant `{v}`: use A, B or C")))
            }
        };
        let unconfirmed_severity = match w.unconfirmed_severity.as_str() {
            "none" => None,
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            other => {
                return Err(D::Error::custom(format!(
                    "unconfirmed_severity `{other}`: use info, warning, critical or none"
                )))
            }
        };
        Ok(DisabilityRule {
            params: ProgressionParams {
                baseline: w.baseline,
                min_change,
                confirm_after_days: w.confirm_after.days(),
                confirm_tolerance_before_days: w.confirm_tolerance_before.days(),
                confirm_tolerance_after_days: w.confirm_tolerance_after.map(Span::days),
                relapse_exclusion_days: if w.ignore_during_relapse { w.relapse_exclusion.days() } else { 0 },
                sustained: w.sustained,
                // A roving baseline moves after a confirmed improvement as after a worsening
                // (clinical reference §2.3, msprog): without it later worsening is missed.
                include_improvement: w.baseline == Baseline::Roving || w.report_improvement,
            },
            unconfirmed_severity,
            report_improvement: w.report_improvement,
        })
    }
}

impl DisabilityRule {
    /// What serde cannot see.
    fn validate(&self) -> Result<(), (String, String)> {
        if self.params.confirm_after_days < 1 {
            return Err(("confirm_after".into(), "must be at least 1 day".into()));
        }
        Ok(())
    }
}

impl Kind for DisabilityRule {
    const NAME: &'static str = "disability_progression";
    type Params = Self;

    fn check(rule: Self) -> Result<Self, (String, String)> {
        rule.validate().map(|()| rule)
    }

    fn evaluate(&self, h: &SubjectHistory, ctx: &Context) -> Vec<Finding> {
        let severity = ctx.severity;
        let visits = h.edss();
        let relapses: Vec<chrono::NaiveDate> = h.relapses().iter().map(|t| t.day()).collect();
        let describe = |v: &EdssVisit| {
            let day = h
                .first_dose()
                .map(|d| (v.date - d.start.day()).num_days() + if v.date >= d.start.day() { 1 } else { 0 });
            match (&v.visit, day) {
                (Some(name), Some(d)) => format!("{name} (study day {d})"),
                (Some(name), None) => name.clone(),
                (None, Some(d)) => format!("study day {d}"),
                (None, None) => "an unlabelled visit".into(),
            }
        };
        let mut out = Vec::new();
        for e in progression::assess(&visits, &relapses, &self.params) {
            if e.kind == EventKind::Improvement {
                if let Some(c) = e.confirmation.as_ref().filter(|_| self.report_improvement) {
                    out.push(improvement(&e, c, &describe, self.params.confirm_after_days));
                }
                continue;
            }
            let (level, sev, title) = match &e.confirmation {
                Some(_) => (2, severity, None),
                None => match self.unconfirmed_severity {
                    Some(s) => (1, s, Some("Unconfirmed EDSS worsening".to_string())),
                    None => continue,
                },
            };
            let mut summary = format!(
                "EDSS {} at {}, up from baseline {} at {}",
                e.onset.score,
                describe(&e.onset),
                e.baseline.score,
                describe(&e.baseline)
            );
            match &e.confirmation {
                Some(c) => {
                    summary.push_str(&format!("; confirmed at {} with EDSS {}.", describe(c), c.score))
                }
                None => summary.push_str(&match e.status {
                    EventStatus::Disproved => {
                        "; not confirmed: a later visit no longer showed the increase.".to_string()
                    }
                    EventStatus::Lapsed => {
                        "; not confirmed: no visit within the confirmation window.".to_string()
                    }
                    _ => format!(
                        "; not confirmed yet (a visit from {} on can confirm it).",
                        describe_date(h, e.window.opens)
                    ),
                }),
            }
            let why = format!(
                "increase {:+.1} >= {:.1} required from a baseline of {} ({} baseline){}",
                e.onset.score.value() - e.baseline.score.value(),
                e.required_change,
                e.baseline.score,
                match self.params.baseline {
                    Baseline::Fixed => "fixed",
                    Baseline::Roving => "roving",
                },
                if e.confirmation.is_some() {
                    format!(", still met at a visit >= {} days later", self.params.confirm_after_days)
                } else {
                    String::new()
                }
            );
            out.push(Finding {
                episode: format!("edss-worsening:{}", e.onset.date),
                clinical_time: Some(super::day_start(e.confirmation.as_ref().map_or(e.onset.date, |c| c.date))),
                level,
                severity: sev,
                title,
                summary,
                why,
                evidence: json!({
                    "baseline": {"date": e.baseline.date, "visit": e.baseline.visit, "edss": e.baseline.score},
                    "onset": {"date": e.onset.date, "visit": e.onset.visit, "edss": e.onset.score},
                    "confirmation": e.confirmation.as_ref().map(|c| json!({"date": c.date, "visit": c.visit, "edss": c.score})),
                    "threshold": {"required_change": e.required_change, "confirm_after_days": self.params.confirm_after_days},
                }),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    //! The rule against pymsprog 1.0.7 on data nobody here wrote (tests/data/pymsprog:
    //! the outputs, and the command that made them).
    use crate::model::{Record, SubjectHistory, SubjectId};
    use serde_json::json;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

    /// (subject, CDW or CDI, event onset date).
    type Events = BTreeSet<(String, String, String)>;

    fn rows(file: &str) -> Vec<BTreeMap<String, String>> {
        crate::ingest::csv::rows(&Path::new(DATA).join(file)).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// One record per EDSS visit (and per relapse), one history per subject.
    fn histories(visits: &str, id: &str, date: &str, relapses: Option<&str>) -> Vec<SubjectHistory> {
        let subject = |raw: &str| raw.replace(' ', "-");
        let mut by: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for r in rows(visits).iter().filter(|r| !r["EDSS"].is_empty()) {
            let edss: f64 = r["EDSS"].parse().unwrap();
            let j = json!({"subject": subject(&r[id]), "date": r[date], "scores": [{"name": "EDSS", "value": edss}]});
            by.entry(subject(&r[id])).or_default().push(Record::from_json(&j.to_string()).unwrap());
        }
        for r in relapses.map(rows).unwrap_or_default() {
            let j = json!({"subject": subject(&r["id"]), "date": r["date"], "relapse": {"onset": r["date"]}});
            by.entry(subject(&r["id"])).or_default().push(Record::from_json(&j.to_string()).unwrap());
        }
        by.into_iter().map(|(s, r)| SubjectHistory::new(SubjectId::parse(&s).unwrap(), r)).collect()
    }

    fn reference(file: &str) -> Events {
        rows(&format!("pymsprog/{file}"))
            .iter()
            .map(|r| (r["ID"].replace(' ', "-"), r["event_type"].clone(), r["date"].clone()))
            .collect()
    }

    /// The confirmed events the rule reports, with msprog's settings (84 days, -7/+730 days).
    fn confirmed(baseline: &str, report_improvement: bool, subjects: &[SubjectHistory]) -> Events {
        let yaml = format!(
            "rules:\n  - id: edss\n    kind: disability_progression\n    score: EDSS\n    baseline: {baseline}\n    \
             threshold_variant: A\n    confirm_after: 84d\n    confirm_tolerance_after: 730d\n    \
             unconfirmed_severity: none\n    report_improvement: {report_improvement}\n    severity: warning\n"
        );
        let rules = crate::rules::parse_rules(Path::new("edss.yaml"), &yaml).unwrap();
        let as_of = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap().to_utc();
        let mut out = Events::new();
        for h in subjects {
            for f in rules[0].evaluate(h, as_of, &[]).into_iter().filter(|f| f.level == 2) {
                let (kind, date) = f.episode.split_once(':').unwrap();
                let kind = if kind == "edss-worsening" { "CDW" } else { "CDI" };
                out.insert((h.subject.to_string(), kind.to_string(), date.to_string()));
            }
        }
        out
    }

    fn msoutcomes() -> Vec<SubjectHistory> {
        histories("ms-msoutcomes/sampledata.csv", "ID", "dateEDSS", None)
    }

    fn toy() -> Vec<SubjectHistory> {
        histories("ms-msprog/toydata_visits.csv", "id", "date", Some("ms-msprog/toydata_relapses.csv"))
    }

    #[test]
    fn roving_baseline_equals_pymsprog_on_msoutcomes_every_cdw_and_cdi() {
        let expected = reference("msoutcomes-roving.csv");
        assert_eq!(expected.iter().filter(|e| e.1 == "CDW").count(), 49);
        assert_eq!(confirmed("roving", true, &msoutcomes()), expected);
    }

    #[test]
    fn roving_baseline_finds_the_worsening_after_an_improvement_without_reporting_it() {
        // Improvements move a roving baseline even when they are not reported.
        let cdw: Events = reference("msoutcomes-roving.csv").into_iter().filter(|e| e.1 == "CDW").collect();
        assert_eq!(confirmed("roving", false, &msoutcomes()), cdw);
        let toy_cdw: Events = reference("msprog-toy-roving.csv").into_iter().filter(|e| e.1 == "CDW").collect();
        assert!(toy_cdw.contains(&("4".into(), "CDW".into(), "2022-07-19".into())), "{toy_cdw:?}");
        assert_eq!(confirmed("roving", false, &toy()), toy_cdw);
    }

    #[test]
    fn roving_baseline_equals_pymsprog_on_the_msprog_toy_cohort() {
        assert_eq!(confirmed("roving", true, &toy()), reference("msprog-toy-roving.csv"));
    }

    #[test]
    fn fixed_baseline_first_cdw_equals_pymsprog() {
        assert_eq!(confirmed("fixed", false, &msoutcomes()), reference("msoutcomes-fixed.csv"));
        assert_eq!(confirmed("fixed", false, &toy()), reference("msprog-toy-fixed.csv"));
    }
}
