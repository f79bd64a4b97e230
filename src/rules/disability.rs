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
                include_improvement: false,
            },
            unconfirmed_severity,
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
            if e.kind != EventKind::Worsening {
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
