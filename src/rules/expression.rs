//! `expression`: a CEL condition (see `expr`) over each adverse event, lab result,
//! vital-sign set or record of a subject, for what no other kind covers. One finding
//! per item for which it is true; episode = the item, level 1. An item the condition
//! cannot be evaluated for is not skipped: the subject gets a "rule could not be
//! evaluated" finding instead.

use super::expr::{self, Expr, Var};
use super::{Context, Finding, Kind};
use crate::model::SubjectHistory;
use serde::Deserialize;
use serde_json::{json, Value as Json};

/// The rule as written in the rule file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpressionParams {
    /// What each candidate item is.
    pub over: Over,
    /// CEL, true for an item that should raise a finding.
    pub condition: String,
    /// Fixed text put before the item's own description in the summary.
    pub describe: Option<String>,
}

/// The rule ready to run: its condition compiled once, at load.
#[derive(Debug, Clone)]
pub struct ExpressionRule {
    pub over: Over,
    pub condition: Expr,
    pub describe: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Over {
    AdverseEvents,
    Labs,
    Vitals,
    Records,
}

impl Over {
    fn var(self) -> &'static Var {
        match self {
            Self::AdverseEvents => &expr::AE,
            Self::Labs => &expr::LAB,
            Self::Vitals => &expr::VITAL,
            Self::Records => &expr::RECORD,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::AdverseEvents => "adverse event",
            Self::Labs => "lab result",
            Self::Vitals => "vital-sign set",
            Self::Records => "record",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::AdverseEvents => "adverse_events",
            Self::Labs => "labs",
            Self::Vitals => "vitals",
            Self::Records => "records",
        }
    }
}

/// One candidate: its identity (the episode), its variable value and its description.
struct Item {
    episode: String,
    value: Json,
    what: String,
}

impl Kind for ExpressionRule {
    const NAME: &'static str = "expression";
    type Params = ExpressionParams;

    fn check(p: ExpressionParams) -> Result<Self, (String, String)> {
        if p.describe.as_deref().is_some_and(|d| d.trim().is_empty()) {
            return Err(("describe".into(), "an empty description says nothing; leave it out".into()));
        }
        let condition = Expr::compile(&p.condition, &[p.over.var(), &expr::SUBJECT])
            .map_err(|e| ("condition".to_string(), e))?;
        Ok(Self { over: p.over, condition, describe: p.describe })
    }

    fn evaluate(&self, h: &SubjectHistory, ctx: &Context) -> Vec<Finding> {
        let noun = self.over.noun();
        let expr = &self.condition;
        let subject = expr::subject_value(h);
        let var = self.over.var().name;
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for item in self.items(h) {
            match expr.eval_bool(&[(var, &item.value), ("subject", &subject)]) {
                Ok(false) => {}
                Ok(true) => out.push(Finding {
                    clinical_time: None,
                    summary: match &self.describe {
                        Some(d) => format!("{}: {}", d.trim().trim_end_matches('.'), item.what),
                        None => item.what,
                    },
                    why: format!("`{}` is true for this {noun}", expr.source()),
                    evidence: json!({
                        "over": self.over.key(),
                        "condition": expr.source(),
                        (var): item.value,
                    }),
                    episode: item.episode,
                    level: 1,
                    severity: ctx.severity,
                    title: None,
                }),
                Err(e) => errors.push((item.episode, e)),
            }
        }
        if !errors.is_empty() {
            out.push(expr::evaluation_error(expr.source(), noun, &errors));
        }
        out
    }
}

impl ExpressionRule {
    fn items(&self, h: &SubjectHistory) -> Vec<Item> {
        let doses = h.doses();
        let mut items = Vec::new();
        match self.over {
            Over::AdverseEvents => {
                for ae in h.adverse_events() {
                    let value = expr::ae_value(&doses, ae);
                    let episode = expr::ae_episode(ae);
                    let mut what = super::adverse_event::headline(ae);
                    what.push_str(&match (&ae.onset, value["study_day"].as_i64()) {
                        (None, _) => ", onset unknown".to_string(),
                        (Some(_), Some(d)) => format!(", onset study day {d}"),
                        (Some(_), None) => ", onset before any recorded dose".to_string(),
                    });
                    if let Some(r) = ae.related {
                        what.push_str(&format!(", related: {}", r.label()));
                    }
                    what.push('.');
                    items.push(Item { episode, value, what });
                }
            }
            Over::Labs => {
                for (i, (time, visit, lab)) in h.labs().into_iter().enumerate() {
                    let value = expr::lab_value(&doses, time, visit, lab);
                    let mut what = format!("{} {}", lab.test, lab.value);
                    if let Some(u) = &lab.unit {
                        what.push_str(&format!(" {u}"));
                    }
                    if let Some(x) = value["x_uln"].as_f64() {
                        what.push_str(&format!(" ({x:.1} × ULN)"));
                    }
                    what.push_str(&when_text(&value));
                    what.push('.');
                    items.push(Item { episode: format!("lab:{}@{}", lab.test, at(&value, i)), value, what });
                }
            }
            Over::Vitals => {
                for (i, (time, visit, v)) in h.vitals().into_iter().enumerate() {
                    let value = expr::vital_value(&doses, time, visit, v);
                    let parts: Vec<String> = [
                        ("systolic BP", v.systolic_bp, "mmHg"),
                        ("diastolic BP", v.diastolic_bp, "mmHg"),
                        ("heart rate", v.heart_rate, "/min"),
                        ("temperature", v.temperature_c, "°C"),
                        ("SpO2", v.spo2, "%"),
                        ("respiratory rate", v.respiratory_rate, "/min"),
                    ]
                    .iter()
                    .filter_map(|(name, x, unit)| x.map(|x| format!("{name} {x} {unit}")))
                    .collect();
                    let what = format!("Vital signs{}: {}.", when_text(&value), parts.join(", "));
                    items.push(Item { episode: format!("vital@{}", at(&value, i)), value, what });
                }
            }
            Over::Records => {
                for (i, r) in h.records.iter().enumerate() {
                    let value = expr::record_value(&doses, r);
                    let episode = match (&r.record_id, &r.visit, &r.date) {
                        (Some(id), _, _) => format!("record:{id}"),
                        (None, Some(v), d) => format!("record:{v}@{}", d.as_ref().map_or("", |d| d.raw())),
                        (None, None, _) => format!("record#{i}"),
                    };
                    let what = format!("Record{}.", when_text(&value));
                    items.push(Item { episode, value, what });
                }
            }
        }
        items
    }
}

/// ", study day 8, visit W1" from an item's value: study days, never calendar dates.
fn when_text(value: &Json) -> String {
    let mut s = String::new();
    match value["study_day"].as_i64() {
        Some(d) => s.push_str(&format!(", study day {d}")),
        None if value["time"].is_string() || value["date"].is_string() => {
            s.push_str(", before any recorded dose")
        }
        None => {}
    }
    if let Some(v) = value["visit"].as_str() {
        s.push_str(&format!(", visit {v}"));
    }
    s
}

/// An item's place in time for its episode: its raw time, else its visit, else its index.
fn at(value: &Json, index: usize) -> String {
    match (value["time"].as_str(), value["visit"].as_str()) {
        (Some(t), _) => t.to_string(),
        (None, Some(v)) => format!("visit:{v}"),
        (None, None) => format!("#{index}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Record, SubjectId};
    use crate::rules::Severity;

    fn ctx() -> Context<'static> {
        Context { severity: Severity::Warning, as_of: chrono::Utc::now(), schedule: &[] }
    }

    fn history(json: &[&str]) -> SubjectHistory {
        SubjectHistory::new(
            SubjectId::parse("KS-101").unwrap(),
            json.iter().map(|j| Record::from_json(j).unwrap()).collect(),
        )
    }

    fn rule(yaml: &str) -> ExpressionRule {
        ExpressionRule::check(serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    const AES: &str = r#"{"subject":"KS-101","visit":"D1","doses":[{"start":"2019-02-26T09:10:00+01:00"}],
        "adverse_events":[
          {"id":"AE-1","term":"Headache","grade":2,"onset":"2019-02-28","meddra_soc":"Nervous system disorders"},
          {"id":"AE-2","term":"Dizziness","grade":1,"onset":"2019-02-28","meddra_soc":"Nervous system disorders"},
          {"id":"AE-3","term":"Nausea","grade":3,"onset":"2019-03-01","meddra_soc":"Gastrointestinal disorders"}]}"#;

    #[test]
    fn one_finding_per_matching_adverse_event() {
        let r = rule(
            "{over: adverse_events, condition: \"ae.grade >= 2 && ae.meddra_soc == 'Nervous system disorders'\", \
             describe: Neurological event}",
        );
        let f = r.evaluate(&history(&[AES]), &ctx());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].episode.as_str(), f[0].level, f[0].severity), ("ae:AE-1", 1, Severity::Warning));
        assert_eq!(
            f[0].summary,
            "Neurological event: Adverse event \"Headache\", CTCAE grade 2, onset study day 3."
        );
        assert!(f[0].why.contains("is true for this adverse event"));
        assert_eq!(f[0].evidence["ae"]["term"], "Headache");
        // The same data, evaluated again, gives the same findings.
        assert_eq!(r.evaluate(&history(&[AES]), &ctx()), f);
    }

    #[test]
    fn nothing_matching_is_quiet() {
        let r = rule("{over: adverse_events, condition: \"ae.grade >= 4\"}");
        assert!(r.evaluate(&history(&[AES]), &ctx()).is_empty());
    }

    #[test]
    fn the_threshold_is_inclusive() {
        let r = rule("{over: adverse_events, condition: \"ae.grade >= 3\"}");
        let f = r.evaluate(&history(&[AES]), &ctx());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].episode, "ae:AE-3");
    }

    #[test]
    fn labs_vitals_and_records() {
        let h = history(&[
            r#"{"subject":"KS-101","visit":"D1","date":"2019-02-26","doses":[{"start":"2019-02-26T09:10:00+01:00"}],
                "labs":[{"test":"ALT","value":150,"unit":"U/L","high":45},{"test":"ALT","value":40,"unit":"U/L","high":45}],
                "vitals":[{"time":"2019-02-26T11:10:00+01:00","temperature_c":38.2,"heart_rate":96}]}"#,
            r#"{"subject":"KS-101","visit":"W12","date":"2019-05-21","scores":[{"name":"EDSS","value":6.0}],
                "mri":{"t2_new_or_enlarging":2}}"#,
        ]);
        let labs =
            rule("{over: labs, condition: \"lab.test == 'ALT' && lab.x_uln != null && lab.x_uln >= 3.0\"}");
        let f = labs.evaluate(&h, &ctx());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].summary, "ALT 150 U/L (3.3 × ULN), study day 1, visit D1.");
        assert_eq!(f[0].episode, "lab:ALT@2019-02-26");
        let vitals =
            rule("{over: vitals, condition: \"vital.temperature_c != null && vital.temperature_c >= 38\"}");
        let f = vitals.evaluate(&h, &ctx());
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].summary, "Vital signs, study day 1, visit D1: heart rate 96 /min, temperature 38.2 °C.",
            "{f:?}"
        );
        let records = rule(
            "{over: records, condition: \"record.mri != null && record.mri.t2_new_or_enlarging >= 1 \
             && record.edss != null && record.edss >= 6.0\"}",
        );
        let f = records.evaluate(&h, &ctx());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].episode, "record:W12@2019-05-21");
        assert_eq!(f[0].summary, "Record, study day 85, visit W12.");
    }

    #[test]
    fn compile_errors_are_refused_by_check() {
        let check = |yaml: &str| ExpressionRule::check(serde_yaml::from_str(yaml).unwrap()).unwrap_err();
        let (key, msg) = check("{over: adverse_events, condition: \"ae.grade >= >= 3\"}");
        assert_eq!(key, "condition");
        assert!(msg.contains("syntax error"), "{msg}");
        let (_, msg) = check("{over: adverse_events, condition: \"ae.grde >= 3\"}");
        assert!(msg.contains("did you mean `grade`"), "{msg}");
        let (_, msg) = check("{over: labs, condition: \"ae.grade >= 3\"}");
        assert!(msg.contains("unknown variable `ae`") && msg.contains("lab, subject"), "{msg}");
        let (_, msg) = check("{over: adverse_events, condition: \"ae.grade > 'x'\"}");
        assert!(msg.contains("no matching overload"), "{msg}");
        let (_, msg) = check("{over: adverse_events, condition: \"subject.arm == 'A'\"}");
        assert!(msg.contains("no field `arm`"), "{msg}");
        assert!(serde_yaml::from_str::<ExpressionParams>("{over: adverse_event, condition: x}").is_err());
        assert!(serde_yaml::from_str::<ExpressionParams>("{over: labs, condition: x, colour: red}").is_err());
    }

    #[test]
    fn evaluation_errors_become_a_visible_finding() {
        // Compiles (a recorded grade compares), but AE-4 is not graded.
        let r = rule("{over: adverse_events, condition: \"ae.grade >= 3\"}");
        let h = history(&[
            AES,
            r#"{"subject":"KS-101","adverse_events":[{"id":"AE-4","term":"Fatigue"},{"id":"AE-5","term":"Rash"}]}"#,
        ]);
        let f = r.evaluate(&h, &ctx());
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].episode, "ae:AE-3");
        let e = &f[1];
        assert_eq!((e.episode.as_str(), e.level, e.severity), ("evaluation-error", 2, Severity::Warning));
        assert_eq!(e.title.as_deref(), Some("Rule could not be evaluated"));
        assert!(e.why.contains("cannot be evaluated") && e.why.contains("null_type"), "{}", e.why);
        assert_eq!(e.evidence["errors"][0]["item"], "ae:AE-4");
    }
}
