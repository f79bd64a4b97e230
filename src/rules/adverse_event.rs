//! `adverse_event`: an AE that matches terms, a minimum CTCAE grade, seriousness,
//! relatedness and an onset window after a dose. Episode = the AE; level = its grade,
//! so the same event worsening (grade 2 → 3) raises again.
//!
//! Doubt raises the alert: an event that matches everything it can be checked against,
//! but has no grade (when the rule needs one) or no onset (when the rule has a window),
//! gives a finding that names what is missing instead of being dropped.

use super::window::{latest_dose_within, Anchor, AtLeast, Window};
use super::Kind;
use super::{study_day_text, Context, Finding};
use crate::model::{AdverseEvent, Dose, Relatedness, Seriousness, SubjectHistory};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdverseEventRule {
    #[serde(rename = "match")]
    pub criteria: Criteria,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    /// AE terms, matched against the reported term and the MedDRA PT, ignoring case,
    /// spaces and punctuation; empty = any term.
    #[serde(default)]
    pub terms: Vec<String>,
    pub grade: Option<AtLeast>,
    /// Only serious (true) or only non-serious (false) events.
    pub serious: Option<bool>,
    /// Only events assessed as related (possible or stronger), or as not related.
    pub related: Option<bool>,
    /// Only events whose causality is at least this strong (e.g. `probable`).
    pub related_at_least: Option<String>,
    /// MedDRA preferred terms (case-insensitive); matches coded events only.
    #[serde(default)]
    pub meddra_pt: Vec<String>,
    /// MedDRA system organ classes (case-insensitive); matches coded events only.
    #[serde(default)]
    pub meddra_soc: Vec<String>,
    /// Any of these ICH E2A criteria (death, life_threatening, hospitalization, …).
    #[serde(default)]
    pub seriousness: Vec<String>,
    /// Only unexpected (false) or expected (true) events, per the reference safety information.
    pub expected: Option<bool>,
    /// Only events whose seriousness contradicts its criteria (true: not serious, yet an
    /// ICH E2A criterion is given or the event was fatal), or only consistent ones (false).
    pub seriousness_inconsistent: Option<bool>,
    pub onset_within: Option<Window<Anchor>>,
}

impl AdverseEventRule {
    /// What serde cannot see.
    fn validate(&self) -> Result<(), (String, String)> {
        if let Some(g) = &self.criteria.grade {
            if !(1..=5).contains(&g.at_least) {
                return Err((
                    "match.grade.at_least".into(),
                    format!("CTCAE grades are 1 to 5, not {}", g.at_least),
                ));
            }
        }
        if let Some(w) = &self.criteria.onset_within {
            w.validate("match.onset_within")?;
        }
        if self.criteria.terms.iter().any(|t| t.trim().is_empty()) {
            return Err(("match.terms".into(), "an empty term matches nothing".into()));
        }
        if let Some(r) = &self.criteria.related_at_least {
            Relatedness::parse(r).map_err(|e| ("match.related_at_least".to_string(), e))?;
        }
        for (i, c) in self.criteria.seriousness.iter().enumerate() {
            Seriousness::parse(c).map_err(|e| (format!("match.seriousness[{i}]"), e))?;
        }
        Ok(())
    }

    fn listed(list: &[String], value: Option<&str>) -> bool {
        list.is_empty() || value.is_some_and(|v| list.iter().any(|x| same_term(x, v)))
    }

    /// Everything but the grade and the onset window, which may be unknown (see `evaluate`).
    fn matches(&self, ae: &AdverseEvent) -> bool {
        let c = &self.criteria;
        let at_least = c.related_at_least.as_deref().and_then(|r| Relatedness::parse(r).ok());
        let criteria: Vec<Seriousness> =
            c.seriousness.iter().filter_map(|s| Seriousness::parse(s).ok()).collect();
        self.term_matches(ae)
            && Self::listed(&c.meddra_pt, ae.meddra_pt.as_deref())
            && Self::listed(&c.meddra_soc, ae.meddra_soc.as_deref())
            && c.serious.is_none_or(|s| s == ae.serious)
            && c.related.is_none_or(|r| r == ae.related.is_some_and(|x| x.is_related()))
            && at_least.is_none_or(|min| ae.related.is_some_and(|r| r >= min))
            && (criteria.is_empty() || ae.seriousness.iter().any(|s| criteria.contains(s)))
            && c.expected.is_none_or(|e| ae.expected == Some(e))
            && c.seriousness_inconsistent.is_none_or(|i| i == ae.seriousness_inconsistent())
    }

    fn term_matches(&self, ae: &AdverseEvent) -> bool {
        // Sites report CTCAE words, MedDRA-coded data carries the PT (SDTM AEDECOD): either counts.
        self.criteria.terms.is_empty()
            || self.criteria.terms.iter().any(|t| {
                same_term(t, &ae.term) || ae.meddra_pt.as_deref().is_some_and(|pt| same_term(t, pt))
            })
    }

    /// Where the onset stands against the rule's window. Partial onsets count if any
    /// plausible instant is inside the window: for safety, doubt raises the alert.
    fn dose_window<'h>(&self, ae: &AdverseEvent, doses: &[&'h Dose]) -> OnsetFit<'h> {
        let Some(w) = &self.criteria.onset_within else {
            return OnsetFit::NoWindow;
        };
        let candidates = match w.after {
            Anchor::Dose => doses.len(),
            Anchor::FirstDose => doses.len().min(1),
        };
        match &ae.onset {
            Some(onset) => match latest_dose_within(onset, w.span(), &doses[..candidates]) {
                Some(d) => OnsetFit::Within(d),
                None => OnsetFit::Outside,
            },
            // Without a dose there is no window the onset could fall in.
            None if candidates == 0 => OnsetFit::Outside,
            None => OnsetFit::Unknown,
        }
    }
}

/// An event's onset against a rule's `onset_within`.
enum OnsetFit<'h> {
    /// The rule has no window.
    NoWindow,
    /// In the window of this dose (index, dose).
    Within((usize, &'h Dose)),
    /// Known and outside every window (or no dose yet).
    Outside,
    /// No onset recorded: the window cannot be excluded.
    Unknown,
}

/// Terms compare ignoring case, whitespace and punctuation, so "Infusion-related
/// reaction" is "Infusion related reaction".
fn same_term(a: &str, b: &str) -> bool {
    let a = crate::model::name_key(a);
    !a.is_empty() && a == crate::model::name_key(b)
}

impl Kind for AdverseEventRule {
    const NAME: &'static str = "adverse_event";
    type Params = Self;

    fn check(rule: Self) -> Result<Self, (String, String)> {
        rule.validate().map(|()| rule)
    }

    fn evaluate(&self, h: &SubjectHistory, ctx: &Context) -> Vec<Finding> {
        let severity = ctx.severity;
        let c = &self.criteria;
        let doses = h.doses();
        let mut out = Vec::new();
        for ae in h.adverse_events() {
            if !self.matches(ae) {
                continue;
            }
            let grade = ae.grade.map(|g| g.value());
            let grade_missing = match (&c.grade, grade) {
                (Some(min), Some(g)) if g < min.at_least => continue,
                (Some(_), None) => true,
                _ => false,
            };
            let (dose, onset_missing) = match self.dose_window(ae, &doses) {
                OnsetFit::Outside => continue,
                OnsetFit::NoWindow => (None, false),
                OnsetFit::Within(d) => (Some(d), false),
                OnsetFit::Unknown => (None, true),
            };
            // An unknown grade is alerted at the rule's threshold: "cannot exclude grade
            // >= 3" is level 3, so the real grade 3 arriving later on the same AE (same
            // episode) does not alert again, but a grade 4 does, and a grade below the
            // threshold simply ends the finding.
            let level = match (grade, &c.grade) {
                (Some(g), _) => g,
                (None, Some(min)) => min.at_least,
                (None, None) => 0,
            };
            let episode = super::expr::ae_episode(ae);
            let mut what = headline(ae);
            if let Some(onset) = &ae.onset {
                what.push_str(&format!(", onset {}", study_day_text(h, onset)));
                if let Some((i, d)) = dose {
                    what.push_str(&format!(", {} after the start of dose {}", elapsed(d, onset), i + 1));
                }
                if onset.is_partial() {
                    what.push_str(" (partial onset date, imputed)");
                }
            }
            if let Some(r) = ae.related {
                what.push_str(&format!(", related: {}", causality_text(ae, r)));
            }
            if ae.seriousness_inconsistent() {
                what.push_str(&format!(", {}", inconsistency_text(ae)));
            }
            if grade_missing || onset_missing {
                what.push_str("; ");
                what.push_str(&doubt(c, grade_missing, onset_missing));
            }
            what.push('.');
            let mut why = Vec::new();
            match (&c.grade, grade) {
                (Some(min), Some(g)) => why.push(format!("grade {g} >= {}", min.at_least)),
                (Some(min), None) => why.push(format!("grade not recorded (rule needs >= {})", min.at_least)),
                _ => {}
            }
            if !c.terms.is_empty() {
                why.push(format!("term \"{}\" is in the rule's list", ae.term));
            }
            if let Some(s) = c.serious {
                why.push(if s { "serious".into() } else { "non-serious".into() });
            }
            if c.related == Some(true) {
                why.push("assessed as related".into());
            }
            if c.seriousness_inconsistent == Some(true) {
                why.push("seriousness contradicts its criteria: verify with the site".into());
            }
            if let Some(w) = &c.onset_within {
                why.push(if onset_missing {
                    format!("onset not recorded (rule needs within {} h of {})", w.hours, w.after.noun())
                } else {
                    format!("onset within {} h of {}", w.hours, w.after.noun())
                });
            }
            let missing: Vec<&str> =
                [(grade_missing, "grade"), (onset_missing, "onset")].into_iter().filter(|m| m.0).map(|m| m.1).collect();
            out.push(Finding {
                episode,
                clinical_time: ae.onset.as_ref().map(crate::model::ClinicalTime::earliest),
                level: i64::from(level),
                severity,
                title: None,
                summary: what,
                why: why.join(" and "),
                evidence: json!({
                    "adverse_event": ae,
                    "dose": dose.map(|(i, d)| json!({"number": i + 1, "study_day": 1 + d.start.days_since(&doses[0].start)})),
                    "missing": missing,
                    "threshold": {"grade_at_least": c.grade.as_ref().map(|g| g.at_least),
                                  "onset_within_hours": c.onset_within.as_ref().map(|w| w.hours)},
                }),
            });
        }
        out
    }
}

/// `grade missing: cannot exclude grade ≥ 3 within 24 h of a dose`
fn doubt(c: &Criteria, grade_missing: bool, onset_missing: bool) -> String {
    let missing = match (grade_missing, onset_missing) {
        (true, true) => "grade and onset time missing",
        (true, false) => "grade missing",
        _ => "onset time missing",
    };
    let mut what = String::new();
    if grade_missing {
        if let Some(g) = &c.grade {
            what.push_str(&format!(" grade ≥ {}", g.at_least));
        }
    } else if onset_missing {
        what.push_str(" onset");
    }
    if let Some(w) = &c.onset_within {
        what.push_str(&format!(" within {} h of {}", w.hours, w.after.noun()));
    }
    format!("{missing}: cannot exclude{what}")
}

/// `possible (reported as "Conditional")` when the source's own category was read as ours.
pub(super) fn causality_text(ae: &AdverseEvent, r: Relatedness) -> String {
    match &ae.causality_reported {
        Some(orig) => format!("{} (reported as \"{orig}\")", r.label()),
        None => r.label().to_string(),
    }
}

/// `not serious per the investigator, but death, hospitalization given: seriousness to verify`
fn inconsistency_text(ae: &AdverseEvent) -> String {
    let mut given: Vec<&str> = ae.seriousness.iter().map(|s| s.label()).collect();
    if given.is_empty() {
        given.push("fatal outcome");
    }
    format!("not serious per the reporter, but {} given: seriousness to verify", given.join(", "))
}

fn elapsed(dose: &Dose, onset: &crate::model::ClinicalTime) -> String {
    if onset.is_partial() || onset.precision() != crate::model::Precision::Time {
        return "on the day".to_string();
    }
    let m = (onset.earliest() - dose.start.earliest()).num_minutes();
    if m < 120 {
        format!("{m} min")
    } else {
        format!("{:.1} h", m as f64 / 60.0)
    }
}

/// `Adverse event "Rash", CTCAE grade 3, serious (hospitalization)`: the start of a
/// finding's summary, shared with `expression` rules over adverse events.
pub(super) fn headline(ae: &AdverseEvent) -> String {
    let mut what = format!("Adverse event \"{}\"", ae.term);
    what.push_str(&match ae.grade_text() {
        Some(g) => format!(", {g}"),
        None => ", not graded".to_string(),
    });
    if ae.serious {
        let criteria: Vec<&str> = ae.seriousness.iter().map(|s| s.label()).collect();
        what.push_str(&if criteria.is_empty() {
            ", serious".to_string()
        } else {
            format!(", serious ({})", criteria.join(", "))
        });
    }
    what
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Record, SubjectId};
    use crate::rules::Severity;

    fn ctx(severity: Severity) -> Context<'static> {
        Context { severity, as_of: chrono::Utc::now(), schedule: &[] }
    }

    fn history(json: &[&str]) -> SubjectHistory {
        SubjectHistory::new(
            SubjectId::parse("KS-101").unwrap(),
            json.iter().map(|j| Record::from_json(j).unwrap()).collect(),
        )
    }

    fn rule(yaml: &str) -> AdverseEventRule {
        serde_yaml::from_str(yaml).unwrap()
    }

    const DOSE: &str = r#"{"subject":"KS-101","visit":"D1","doses":[{"start":"2019-02-26T09:10:00+01:00"}]}"#;

    #[test]
    fn severe_reaction_within_a_day_of_the_dose() {
        let r = rule("match: {terms: [Infusion related reaction], grade: {at_least: 3}, onset_within: {after: dose, hours: 24}}");
        let h = history(&[
            DOSE,
            r#"{"subject":"KS-101","adverse_events":[{"id":"AE-1","term":"infusion related reaction","grade":3,
                "onset":"2019-02-26T09:35:00+01:00","seriousness":["hospitalization"],"related":"probable"}]}"#,
        ]);
        let f = r.evaluate(&h, &ctx(Severity::Critical));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].episode, "ae:AE-1");
        assert_eq!(f[0].level, 3);
        assert!(f[0].summary.contains("CTCAE grade 3"), "{}", f[0].summary);
        assert!(f[0].summary.contains("25 min after the start of dose 1"), "{}", f[0].summary);
        assert!(f[0].summary.contains("study day 1"), "{}", f[0].summary);
        assert!(f[0].why.contains("grade 3 >= 3"));
    }

    #[test]
    fn outside_the_window_or_below_grade_is_quiet() {
        let r = rule("match: {terms: [Infusion related reaction], grade: {at_least: 3}, onset_within: {after: dose, hours: 24}}");
        let late = history(&[
            DOSE,
            r#"{"subject":"KS-101","adverse_events":[{"term":"Infusion related reaction","grade":3,"onset":"2019-02-27T09:11:00+01:00"}]}"#,
        ]);
        assert!(r.evaluate(&late, &ctx(Severity::Critical)).is_empty());
        let mild = history(&[
            DOSE,
            r#"{"subject":"KS-101","adverse_events":[{"term":"Infusion related reaction","grade":2,"onset":"2019-02-26T10:00:00+01:00"}]}"#,
        ]);
        assert!(r.evaluate(&mild, &ctx(Severity::Critical)).is_empty());
        // Exactly 24 h after the start is inside the window.
        let edge = history(&[
            DOSE,
            r#"{"subject":"KS-101","adverse_events":[{"term":"Infusion related reaction","grade":3,"onset":"2019-02-27T09:10:00+01:00"}]}"#,
        ]);
        assert_eq!(r.evaluate(&edge, &ctx(Severity::Critical)).len(), 1);
    }

    #[test]
    fn a_partial_onset_that_may_be_in_the_window_counts() {
        let r = rule("match: {grade: {at_least: 1}, onset_within: {after: dose, hours: 24}}");
        let h = history(&[
            DOSE,
            r#"{"subject":"KS-101","adverse_events":[{"term":"Fever","grade":1,"onset":"2019-02"}]}"#,
        ]);
        let f = r.evaluate(&h, &ctx(Severity::Info));
        assert_eq!(f.len(), 1);
        assert!(f[0].summary.contains("partial onset"));
    }

    #[test]
    fn the_latest_version_of_an_event_decides_the_level() {
        let r = rule("match: {grade: {at_least: 2}}");
        let h = history(&[
            r#"{"subject":"KS-101","record_id":"a","adverse_events":[{"id":"AE-9","term":"Headache","grade":2}]}"#,
            r#"{"subject":"KS-101","record_id":"b","adverse_events":[{"id":"AE-9","term":"Headache","grade":3}]}"#,
        ]);
        let f = r.evaluate(&h, &ctx(Severity::Warning));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, 3);
    }

    #[test]
    fn meddra_seriousness_expectedness_and_causality_filters() {
        let h = history(&[r#"{"subject":"KS-101","adverse_events":[
            {"id":"1","term":"Fainting","meddra_pt":"Syncope","meddra_soc":"Nervous system disorders",
             "seriousness":["hospitalization"],"related":"probable","expected":false},
            {"id":"2","term":"Itch","meddra_pt":"Pruritus","meddra_soc":"Skin and subcutaneous tissue disorders",
             "related":"possible"},
            {"id":"3","term":"Uncoded headache","related":"definite"}]}"#]);
        let ids = |yaml: &str| -> Vec<String> {
            rule(yaml).evaluate(&h, &ctx(Severity::Warning)).into_iter().map(|f| f.episode).collect()
        };
        assert_eq!(ids("match: {meddra_soc: [nervous system disorders]}"), ["ae:1"]);
        assert_eq!(ids("match: {meddra_pt: [Pruritus, Syncope]}"), ["ae:1", "ae:2"]);
        assert_eq!(ids("match: {seriousness: [death, hospitalization]}"), ["ae:1"]);
        assert_eq!(ids("match: {expected: false}"), ["ae:1"]);
        assert_eq!(ids("match: {related_at_least: probable}"), ["ae:1", "ae:3"]);
        let bad = rule("match: {related_at_least: maybe}");
        assert!(bad.validate().is_err());
        let bad = rule("match: {seriousness: [hungry]}");
        assert_eq!(bad.validate().unwrap_err().0, "match.seriousness[0]");
    }

    #[test]
    fn serious_and_related_filters() {
        let r = rule("match: {serious: true, related: true}");
        let h = history(&[
            r#"{"subject":"KS-101","adverse_events":[{"term":"Syncope","seriousness":["life_threatening"],"related":"possible"},
                {"term":"Rash","serious":true,"related":"unlikely"},{"term":"Cough","related":"definite"}]}"#,
        ]);
        let f = r.evaluate(&h, &ctx(Severity::Critical));
        assert_eq!(f.len(), 1);
        assert!(f[0].summary.contains("Syncope") && f[0].summary.contains("life-threatening"));
    }

    #[test]
    fn seriousness_inconsistent_selects_non_serious_events_with_a_criterion_or_a_fatal_outcome() {
        let h = history(&[r#"{"subject":"KS-101","adverse_events":[
            {"id":"1","term":"Pneumonia","grade":3,"serious":false,"seriousness":["hospitalization"]},
            {"id":"2","term":"Sudden death","grade":5,"serious":false,"outcome":"fatal"},
            {"id":"3","term":"Syncope","grade":2,"serious":true,"seriousness":["hospitalization"]},
            {"id":"4","term":"Rash","grade":1,"serious":false}]}"#]);
        let ids = |yaml: &str| -> Vec<String> {
            rule(yaml).evaluate(&h, &ctx(Severity::Warning)).into_iter().map(|f| f.episode).collect()
        };
        assert_eq!(ids("match: {seriousness_inconsistent: true}"), ["ae:1", "ae:2"]);
        assert_eq!(ids("match: {seriousness_inconsistent: false}"), ["ae:3", "ae:4"]);
        // Seriousness follows the judgement: the inconsistent ones are not serious events.
        assert_eq!(ids("match: {serious: true}"), ["ae:3"]);
        let f = rule("match: {seriousness_inconsistent: true}").evaluate(&h, &ctx(Severity::Warning));
        assert!(f[0].summary.contains("hospitalization given: seriousness to verify"), "{}", f[0].summary);
        assert!(f[1].summary.contains("fatal outcome given"), "{}", f[1].summary);
    }

    #[test]
    fn a_mapped_grade_and_a_reported_causality_are_shown_as_such() {
        let h = history(&[r#"{"subject":"KS-101","adverse_events":[
            {"id":"1","term":"Rash","grade":3,"grade_source":"severity","related":"possible",
             "causality_reported":"Conditional-classified"}]}"#]);
        let f = rule("match: {grade: {at_least: 3}}").evaluate(&h, &ctx(Severity::Warning));
        assert!(f[0].summary.contains("grade 3 (mapped from severity)"), "{}", f[0].summary);
        assert!(!f[0].summary.contains("CTCAE"), "{}", f[0].summary);
        assert!(f[0].summary.contains("possible (reported as \"Conditional-classified\")"), "{}", f[0].summary);
    }

    const SEVERE: &str =
        "match: {terms: [Infusion related reaction, Anaphylactic reaction], grade: {at_least: 3}, onset_within: {after: dose, hours: 24}}";

    #[test]
    fn a_hyphenated_term_matches() {
        let h = history(&[
            DOSE,
            r#"{"subject":"KS-101","adverse_events":[{"id":"AE-1","term":"Infusion-related  Reaction","grade":3,
                "onset":"2019-02-26T09:35:00+01:00"}]}"#,
        ]);
        assert_eq!(rule(SEVERE).evaluate(&h, &ctx(Severity::Critical)).len(), 1);
    }

    #[test]
    fn a_meddra_coded_event_matches_on_its_pt() {
        let h = history(&[
            DOSE,
            r#"{"subject":"KS-101","adverse_events":[{"id":"AE-1","term":"Swollen lips and wheeze","meddra_pt":"Anaphylactic reaction",
                "grade":4,"onset":"2019-02-26T09:35:00+01:00"}]}"#,
        ]);
        let f = rule(SEVERE).evaluate(&h, &ctx(Severity::Critical));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, 4);
    }

    #[test]
    fn an_ungraded_serious_reaction_cannot_be_excluded() {
        let h = history(&[
            DOSE,
            r#"{"subject":"KS-101","adverse_events":[{"id":"AE-1","term":"Infusion related reaction","serious":true,
                "onset":"2019-02-26T09:35:00+01:00"}]}"#,
        ]);
        let f = rule(SEVERE).evaluate(&h, &ctx(Severity::Critical));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].episode, "ae:AE-1");
        // At the threshold: the real grade 3 later does not re-alert, a grade 4 does.
        assert_eq!(f[0].level, 3);
        assert!(f[0].summary.contains("cannot exclude grade ≥ 3 within 24 h"), "{}", f[0].summary);
        assert!(f[0].why.contains("grade not recorded"), "{}", f[0].why);
    }

    #[test]
    fn a_reaction_without_onset_says_the_onset_is_missing() {
        let h = history(&[
            DOSE,
            r#"{"subject":"KS-101","adverse_events":[{"id":"AE-1","term":"Infusion related reaction","grade":3}]}"#,
        ]);
        let f = rule(SEVERE).evaluate(&h, &ctx(Severity::Critical));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, 3);
        assert!(f[0].summary.contains("onset time missing"), "{}", f[0].summary);
        assert!(f[0].summary.contains("cannot exclude onset within 24 h"), "{}", f[0].summary);
        // No dose yet: no window the onset could fall in.
        let undosed = history(&[r#"{"subject":"KS-101","adverse_events":[{"term":"Infusion related reaction","grade":3}]}"#]);
        assert!(rule(SEVERE).evaluate(&undosed, &ctx(Severity::Critical)).is_empty());
    }

    #[test]
    fn a_known_grade_below_the_threshold_stays_quiet_without_onset_too() {
        let h = history(&[
            DOSE,
            r#"{"subject":"KS-101","adverse_events":[{"term":"Infusion related reaction","grade":2,"onset":"2019-02-26T10:00:00+01:00"},
                {"term":"Infusion related reaction","grade":2},
                {"term":"Headache","serious":true,"onset":"2019-02-26T10:00:00+01:00"}]}"#,
        ]);
        assert!(rule(SEVERE).evaluate(&h, &ctx(Severity::Critical)).is_empty());
    }
}
