//! `cohort`: a count over the whole cohort, e.g. the design's stopping rule "two subjects
//! with a related grade ≥ 3 event". Each subject contributes whether it is evaluable and
//! how many of its adverse events match `where` (CEL over `ae` and `subject`); the cohort
//! finding fires once the count reaches `at_least`. Episode "cohort-threshold", level =
//! the count, so each further subject (or event) alerts again.

use super::expr::{self, Expr};
use super::{Context, Contribution, Finding, Kind, Span, Totals};
use crate::model::SubjectHistory;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

/// The rule as written in the rule file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortParams {
    /// Count matching subjects (default) or matching events.
    #[serde(default)]
    pub count: Count,
    /// CEL over each adverse event (`ae`, `subject`).
    #[serde(rename = "where")]
    pub condition: String,
    pub at_least: u32,
    /// Who is in the denominator shown in the evidence.
    #[serde(default)]
    pub evaluable: Evaluable,
    /// A dosed subject is evaluable only once this long has passed since the first dose
    /// (the protocol's DLT window, e.g. `28d`); a subject with a matching event always is.
    pub evaluable_after: Option<Span>,
}

/// The rule ready to run: its condition compiled once, at load.
#[derive(Debug, Clone)]
pub struct CohortRule {
    pub count: Count,
    pub condition: Expr,
    pub at_least: u32,
    pub denominator: Denominator,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Count {
    #[default]
    Subjects,
    Events,
}

/// Who counts as evaluable. A subject with a matching event always does: the event
/// shows exposure even when the dose record has not arrived yet, and a numerator
/// larger than its denominator would make no sense.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evaluable {
    /// Subjects with at least one recorded dose.
    #[default]
    Dosed,
    /// Every subject with a record.
    All,
}

/// Who counts in a cohort rule's denominator, and from when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denominator {
    pub who: Evaluable,
    /// Dosed subjects count once this long after their first dose (a DLT window).
    pub after: Option<Span>,
}

impl Denominator {
    /// Checks the rule-file keys: a waiting time counts from a dose, so it needs `dosed`.
    pub(super) fn parse(who: Evaluable, after: Option<Span>) -> Result<Self, (String, String)> {
        if after.is_some() && who != Evaluable::Dosed {
            return Err(("evaluable_after".into(), "counts from the first dose: use it with `evaluable: dosed`".into()));
        }
        Ok(Self { who, after })
    }

    /// Whether a subject without a matching event counts at `as_of`. A partial dose date
    /// is read at its latest: counting a subject early would lower the observed rate.
    fn counts(&self, h: &SubjectHistory, as_of: DateTime<Utc>) -> bool {
        match (self.who, self.after) {
            (Evaluable::All, _) => true,
            (Evaluable::Dosed, None) => h.first_dose().is_some(),
            (Evaluable::Dosed, Some(window)) => {
                h.first_dose().is_some_and(|d| d.start.latest() + window.chrono() <= as_of)
            }
        }
    }

    pub(super) fn noun(&self) -> String {
        match self.after {
            Some(w) => format!("{} (past the {w} window)", self.who.noun()),
            None => self.who.noun().to_string(),
        }
    }
}

impl Evaluable {
    pub(super) fn noun(self) -> &'static str {
        match self {
            Self::Dosed => "dosed",
            Self::All => "enrolled",
        }
    }
}

/// Compiles an adverse-event condition of a cohort rule (`ae` and `subject`).
pub(super) fn compile(source: &str) -> Result<Expr, String> {
    Expr::compile(source, &[&expr::AE, &expr::SUBJECT])
}

/// One subject's contribution, and the events the condition could not be evaluated for.
/// Such an event counts as matching: for a stopping rule, doubt must raise the alert,
/// not hide it (and the error is reported by `evaluate` and logged).
pub(super) fn contribute(
    rule: &Expr,
    denominator: &Denominator,
    h: &SubjectHistory,
    as_of: DateTime<Utc>,
) -> (Contribution, Vec<(String, String)>) {
    let doses = h.doses();
    let mut events = 0u32;
    let mut errors = Vec::new();
    let subject = expr::subject_value(h);
    for ae in h.adverse_events() {
        let value = expr::ae_value(&doses, ae);
        match rule.eval_bool(&[("ae", &value), ("subject", &subject)]) {
            Ok(false) => {}
            Ok(true) => events += 1,
            Err(e) => {
                events += 1;
                errors.push((expr::ae_episode(ae), e));
            }
        }
    }
    let matching = events > 0;
    let evaluable = matching || denominator.counts(h, as_of);
    if let Some((item, error)) = errors.first() {
        tracing::warn!(
            subject = %h.subject,
            item = %item,
            error = %error,
            failures = errors.len(),
            "Cohort rule could not be evaluated; the event is counted as matching."
        );
    }
    (Contribution { evaluable, matching, events }, errors)
}

impl Kind for CohortRule {
    const NAME: &'static str = "cohort";
    type Params = CohortParams;

    fn check(p: CohortParams) -> Result<Self, (String, String)> {
        if p.at_least == 0 {
            return Err(("at_least".into(), "must be at least 1 (0 would fire on an empty cohort)".into()));
        }
        let denominator = Denominator::parse(p.evaluable, p.evaluable_after)?;
        let condition = compile(&p.condition).map_err(|e| ("where".to_string(), e))?;
        Ok(Self { count: p.count, condition, at_least: p.at_least, denominator })
    }

    fn contribution(&self, h: &SubjectHistory, as_of: DateTime<Utc>) -> Option<Contribution> {
        Some(contribute(&self.condition, &self.denominator, h, as_of).0)
    }

    /// With a DLT window, time alone makes a subject evaluable.
    fn is_time_driven(&self) -> bool {
        self.denominator.after.is_some()
    }

    /// The subject-level "rule could not be evaluated" finding, if any: `contribution`
    /// cannot carry it.
    fn evaluate(&self, h: &SubjectHistory, ctx: &Context) -> Vec<Finding> {
        let (_, errors) = contribute(&self.condition, &self.denominator, h, ctx.as_of);
        if errors.is_empty() {
            return Vec::new();
        }
        vec![expr::evaluation_error(self.condition.source(), "adverse event", &errors)]
    }

    fn is_cohort(&self) -> bool {
        true
    }

    fn judge(&self, totals: &Totals, ctx: &Context) -> Vec<Finding> {
        let value = match self.count {
            Count::Subjects => totals.matching_subjects,
            Count::Events => totals.events,
        };
        if value < self.at_least {
            return Vec::new();
        }
        let n = totals.evaluable.max(totals.matching_subjects);
        let of = format!("of {n} {} subject{}", self.denominator.noun(), if n == 1 { "" } else { "s" });
        let subjects = totals.subjects.join(", ");
        let summary = match self.count {
            Count::Subjects => format!(
                "{value} subject{} ({of}) had an adverse event matching the rule: {subjects}.",
                if value == 1 { "" } else { "s" }
            ),
            Count::Events => format!(
                "{value} matching adverse event{} in {} subject{} ({of}): {subjects}.",
                if value == 1 { "" } else { "s" },
                totals.matching_subjects,
                if totals.matching_subjects == 1 { "" } else { "s" }
            ),
        };
        let noun = match self.count {
            Count::Subjects => "subjects",
            Count::Events => "events",
        };
        vec![Finding {
            episode: "cohort-threshold".into(),
            clinical_time: None,
            level: i64::from(value),
            severity: ctx.severity,
            title: None,
            summary,
            why: format!("{value} {noun} >= {} with `{}`", self.at_least, self.condition.source()),
            evidence: json!({
                "count": noun,
                "value": value,
                "at_least": self.at_least,
                "matching_subjects": totals.matching_subjects,
                "events": totals.events,
                "evaluable": n,
                "evaluable_means": self.denominator.noun(),
                "subjects": totals.subjects,
                "where": self.condition.source(),
            }),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Record, SubjectId};
    use crate::rules::Severity;

    fn ctx() -> Context<'static> {
        Context { severity: Severity::Critical, as_of: Utc::now(), schedule: &[] }
    }

    fn history(id: &str, json: &[&str]) -> SubjectHistory {
        SubjectHistory::new(
            SubjectId::parse(id).unwrap(),
            json.iter().map(|j| Record::from_json(&j.replace("{id}", id)).unwrap()).collect(),
        )
    }

    fn rule(yaml: &str) -> CohortRule {
        CohortRule::check(serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    const DESIGN: &str =
        "{count: subjects, where: \"ae.grade >= 3 && ae.related in ['possible', 'probable', \
                          'definite']\", at_least: 2}";
    const DOSE: &str = r#"{"subject":"{id}","doses":[{"start":"2019-02-26T09:10:00+01:00"}]}"#;
    const SEVERE_RELATED: &str = r#"{"subject":"{id}","adverse_events":[{"id":"A","term":"Anaphylaxis","grade":3,"related":"probable"},
        {"id":"B","term":"Rash","grade":4,"related":"definite"}]}"#;
    const SEVERE_UNRELATED: &str = r#"{"subject":"{id}","adverse_events":[{"id":"C","term":"Fracture","grade":3,"related":"not_related"}]}"#;

    #[test]
    fn evaluable_after_the_dlt_window_only() {
        let r = rule(&DESIGN.replace("at_least: 2}", "at_least: 2, evaluable_after: 28d}"));
        assert!(r.is_time_driven(), "time alone makes a subject evaluable: the clock pass runs it");
        let dosed = history("KS-101", &[DOSE]);
        let at = |day: &str| chrono::DateTime::parse_from_rfc3339(day).unwrap().to_utc();
        // Dosed 2019-02-26 09:10 +01:00: not evaluable 27 days on, evaluable after 28 days.
        assert!(!r.contribution(&dosed, at("2019-03-25T00:00:00Z")).unwrap().evaluable);
        assert!(r.contribution(&dosed, at("2019-03-26T08:10:00Z")).unwrap().evaluable);
        // A subject with a matching event inside the window is evaluable at once.
        let toxic = history("KS-102", &[DOSE, SEVERE_RELATED]);
        let c = r.contribution(&toxic, at("2019-02-27T00:00:00Z")).unwrap();
        assert!(c.evaluable && c.matching);
        // Without a window, dosed is enough.
        assert!(rule(DESIGN).contribution(&dosed, at("2019-02-27T00:00:00Z")).unwrap().evaluable);
        assert!(!rule(DESIGN).is_time_driven());
        // The window counts from a dose: with `evaluable: all` it is refused.
        let all = DESIGN.replace("at_least: 2}", "at_least: 2, evaluable: all, evaluable_after: 28d}");
        let refused = CohortRule::check(serde_yaml::from_str(&all).unwrap());
        assert_eq!(refused.err().map(|e| e.0), Some("evaluable_after".to_string()));
    }

    fn totals(r: &CohortRule, histories: &[SubjectHistory]) -> Totals {
        let cs: Vec<(String, Contribution)> = histories
            .iter()
            .map(|h| (h.subject.to_string(), r.contribution(h, Utc::now()).unwrap()))
            .collect();
        Totals::from_contributions(cs.iter().map(|(s, c)| (s.as_str(), *c)))
    }

    #[test]
    fn contributions_count_matching_events_and_dosed_subjects() {
        let r = rule(DESIGN);
        let c = r.contribution(&history("S1", &[DOSE, SEVERE_RELATED]), Utc::now()).unwrap();
        assert_eq!(c, Contribution { evaluable: true, matching: true, events: 2 });
        let c = r.contribution(&history("S2", &[DOSE, SEVERE_UNRELATED]), Utc::now()).unwrap();
        assert_eq!(c, Contribution { evaluable: true, matching: false, events: 0 });
        let c = r.contribution(&history("S3", &[SEVERE_UNRELATED]), Utc::now()).unwrap();
        assert_eq!(c, Contribution { evaluable: false, matching: false, events: 0 });
        let all = rule("{where: \"ae.grade >= 3\", at_least: 1, evaluable: all}");
        assert!(
            all.contribution(&history("S3", &[r#"{"subject":"{id}","visit":"SCR"}"#]), Utc::now())
                .unwrap()
                .evaluable
        );
        // A matching event makes the subject evaluable even before its dose record.
        let c = r.contribution(&history("S4", &[SEVERE_RELATED]), Utc::now()).unwrap();
        assert!(c.evaluable && c.matching);
    }

    #[test]
    fn fires_at_exactly_at_least_and_again_for_each_further_subject() {
        let r = rule(DESIGN);
        let s1 = history("S1", &[DOSE, SEVERE_RELATED]);
        let s2 = history("S2", &[DOSE, SEVERE_RELATED]);
        let s3 = history("S3", &[DOSE, SEVERE_UNRELATED]);
        let s4 = history("S4", &[DOSE, SEVERE_RELATED]);
        // One subject: below the threshold.
        assert!(r.judge(&totals(&r, &[s1.clone(), s3.clone()]), &ctx()).is_empty());
        // Exactly two: fires.
        let t = totals(&r, &[s1.clone(), s2.clone(), s3.clone()]);
        let f = r.judge(&t, &ctx());
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].episode.as_str(), f[0].level, f[0].severity),
            ("cohort-threshold", 2, Severity::Critical)
        );
        assert_eq!(
            f[0].summary,
            "2 subjects (of 3 dosed subjects) had an adverse event matching the rule: S1, S2."
        );
        assert_eq!(f[0].evidence["subjects"], json!(["S1", "S2"]));
        // Judging the same totals again gives the same finding.
        assert_eq!(r.judge(&t, &ctx()), f);
        // A third subject: a higher level, so it alerts again.
        let f3 = r.judge(&totals(&r, &[s1, s2, s3, s4]), &ctx());
        assert_eq!(f3[0].level, 3);
    }

    #[test]
    fn counting_events() {
        let r = rule("{count: events, where: \"ae.grade >= 3 && ae.related in ['probable', 'definite']\", at_least: 2}");
        let f = r.judge(&totals(&r, &[history("S1", &[DOSE, SEVERE_RELATED])]), &ctx());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, 2);
        assert_eq!(f[0].summary, "2 matching adverse events in 1 subject (of 1 dosed subject): S1.");
        let r3 = rule("{count: events, where: \"ae.grade >= 3\", at_least: 3}");
        assert!(r3.judge(&totals(&r3, &[history("S1", &[DOSE, SEVERE_RELATED])]), &ctx()).is_empty());
    }

    #[test]
    fn check_refuses_bad_conditions_and_thresholds() {
        let check = |yaml: &str| CohortRule::check(serde_yaml::from_str(yaml).unwrap()).unwrap_err();
        let (key, msg) = check("{where: \"ae.grade >= \", at_least: 2}");
        assert_eq!(key, "where");
        assert!(msg.contains("syntax error"), "{msg}");
        let (_, msg) = check("{where: \"ae.grde >= 3\", at_least: 2}");
        assert!(msg.contains("did you mean `grade`"), "{msg}");
        let (_, msg) = check("{where: \"lab.value > 3.0\", at_least: 2}");
        assert!(msg.contains("unknown variable `lab`"), "{msg}");
        let (_, msg) = check("{where: \"ae.grade > 'x'\", at_least: 2}");
        assert!(msg.contains("no matching overload"), "{msg}");
        let (key, _) = check("{where: \"ae.grade >= 3\", at_least: 0}");
        assert_eq!(key, "at_least");
        assert!(serde_yaml::from_str::<CohortParams>("{where: x, at_least: 1, count: patients}").is_err());
        assert!(serde_yaml::from_str::<CohortParams>("{where: x, at_least: 1, evaluable: treated}").is_err());
    }

    /// The design's rule file, as `vigil check` reads it.
    const DESIGN_FILE: &str = "rules:
  - id: halt-enrollment
    title: Stopping rule — two subjects with related grade ≥3 events
    kind: cohort
    count: subjects
    where: \"ae.grade >= 3 && ae.related in ['possible', 'probable', 'definite']\"
    at_least: 2
    severity: critical
    notify: [dsmb-chair, safety-officer]
";

    #[test]
    fn the_design_rule_file_loads_and_errors_point_at_the_expression() {
        let path = std::path::Path::new("r.yaml");
        let rules = crate::rules::parse_rules(path, DESIGN_FILE).unwrap();
        assert_eq!(rules[0].kind.name(), "cohort");
        let errors =
            crate::rules::parse_rules(path, &DESIGN_FILE.replace("ae.grade", "ae.grde")).unwrap_err();
        let e = errors[0].to_string();
        assert!(e.starts_with("r.yaml:6:12:") && e.contains("did you mean `grade`"), "{e}");
    }

    #[test]
    fn an_event_that_cannot_be_evaluated_counts_and_is_reported() {
        // An ungraded but related event: `ae.grade >= 3` is an error, not false.
        let r = rule(DESIGN);
        let h = history(
            "S1",
            &[
                DOSE,
                r#"{"subject":"{id}","adverse_events":[{"id":"U","term":"Seizure","related":"possible"}]}"#,
            ],
        );
        assert_eq!(
            r.contribution(&h, Utc::now()).unwrap(),
            Contribution { evaluable: true, matching: true, events: 1 }
        );
        let f = r.evaluate(&h, &ctx());
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].episode.as_str(), f[0].severity), ("evaluation-error", Severity::Warning));
        assert_eq!(f[0].evidence["errors"][0]["item"], "ae:U");
        // An ungraded unrelated event is decided by the other side of `&&`: no error.
        let h = history(
            "S2",
            &[
                DOSE,
                r#"{"subject":"{id}","adverse_events":[{"id":"V","term":"Cold","related":"not_related"}]}"#,
            ],
        );
        assert!(!r.contribution(&h, Utc::now()).unwrap().matching);
        assert!(r.evaluate(&h, &ctx()).is_empty());
    }
}
