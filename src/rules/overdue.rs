//! `overdue_visit`: scheduled visits (and their assessments) not recorded by the end of
//! their protocol window (anchors.md §8 item 2).
//!
//! The schedule comes from the configuration (`study.schedule`), anchored on the first
//! dose (study day 1). A window is whole calendar days (UTC), inclusive: a visit is
//! overdue from the first instant of the day after its last window day (plus `grace`).
//! Episodes `overdue:<visit>` and `missing:<visit>:<assessment>`, level 1; both vanish
//! once the visit or assessment is recorded.

use super::Kind;
use super::{study_day_text, Context, Finding, Span};
use crate::model::{ClinicalTime, DispositionStatus, Record, SubjectHistory};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::Deserialize;
use serde_json::json;

/// One visit of the protocol schedule (config `study.schedule`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledVisit {
    /// The visit label records carry (e.g. W12).
    pub visit: String,
    /// Target study day (day 1 = first dose).
    pub day: i64,
    /// Accepted days before and after the target.
    #[serde(default)]
    pub window_days: i64,
    /// Assessments expected at this visit (e.g. EDSS, MRI).
    #[serde(default)]
    pub assessments: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverdueVisitRule {
    /// Visit labels to watch; absent = every scheduled visit.
    #[serde(default)]
    pub visits: Option<Vec<String>>,
    /// Also raise a finding for each scheduled assessment missing from a recorded visit.
    #[serde(default = "yes")]
    pub assessments: bool,
    /// Extra time after the window closes before a visit counts as overdue (default 0).
    #[serde(default)]
    pub grace: Option<Span>,
}

fn yes() -> bool {
    true
}

/// A scheduled visit placed on the calendar of one subject.
#[derive(Debug, Clone, Copy)]
struct Window {
    target: NaiveDate,
    opens: NaiveDate,
    closes: NaiveDate,
    /// The first instant at which the visit counts as overdue.
    due: DateTime<Utc>,
}

impl OverdueVisitRule {
    /// What serde cannot see.
    fn validate(&self) -> Result<(), (String, String)> {
        if let Some(visits) = &self.visits {
            if visits.is_empty() {
                return Err((
                    "visits".into(),
                    "an empty list watches no visit; leave `visits` out to watch every scheduled visit"
                        .into(),
                ));
            }
            for (i, v) in visits.iter().enumerate() {
                if v.trim().is_empty() {
                    return Err((format!("visits[{i}]"), "an empty visit label matches nothing".into()));
                }
                if visits[..i].iter().any(|w| same_label(w, v)) {
                    return Err((format!("visits[{i}]"), format!("visit `{v}` is listed twice")));
                }
            }
        }
        Ok(())
    }

    fn watches(&self, visit: &ScheduledVisit) -> bool {
        self.visits.as_ref().is_none_or(|vs| vs.iter().any(|v| same_label(v, &visit.visit)))
    }

    /// Places a scheduled visit on the subject's calendar. Day 1 is the first dose's day;
    /// days before it count back with no day 0 (CDISC), and a `day: 0` is read as the
    /// dosing day. None only for days far outside the calendar.
    fn window(&self, day1: NaiveDate, v: &ScheduledVisit) -> Option<Window> {
        let offset = if v.day >= 1 { v.day - 1 } else { v.day };
        // A negative window is a configuration slip; it cannot shrink the target day.
        let w = Duration::try_days(v.window_days.max(0))?;
        let target = day1.checked_add_signed(Duration::try_days(offset)?)?;
        let opens = target.checked_sub_signed(w)?;
        let closes = target.checked_add_signed(w)?;
        let after = closes.succ_opt()?.and_time(NaiveTime::MIN).and_utc();
        let due = after.checked_add_signed(self.grace.map_or(Duration::zero(), Span::chrono))?;
        Some(Window { target, opens, closes, due })
    }

    fn overdue(
        &self,
        h: &SubjectHistory,
        ctx: &Context,
        v: &ScheduledVisit,
        w: &Window,
        left: Option<(DispositionStatus, NaiveDate)>,
    ) -> Finding {
        let days_late = (ctx.as_of.date_naive() - w.closes).num_days();
        let mut summary = format!(
            "Visit {} (target {}, window {} to {}) has not been recorded; the window closed at the end of {}, \
             {days_late} day{} ago.",
            v.visit,
            day_text(h, w.target),
            day_text(h, w.opens),
            day_number(h, w.closes),
            day_text(h, w.closes),
            if days_late == 1 { "" } else { "s" },
        );
        if let Some((label, date)) = last_visit(h) {
            summary.push_str(&format!(" Last recorded visit: {label}, {}.", study_day_text(h, date)));
        }
        Finding {
            episode: format!("overdue:{}", v.visit),
            clinical_time: Some(w.due),
            level: 1,
            severity: ctx.severity,
            title: Some(format!("Visit {} overdue", v.visit)),
            summary,
            why: format!(
                "no record labelled {} and no unscheduled record with observations dated inside the window \
                 (study day {} ± {} days){}",
                v.visit,
                v.day,
                v.window_days.max(0),
                self.grace_text()
            ),
            evidence: json!({
                "visit": v.visit,
                "target_day": v.day,
                "window_days": v.window_days,
                "window": {"opens": w.opens.to_string(), "closes": w.closes.to_string()},
                "overdue_from": w.due.to_rfc3339(),
                "grace_minutes": self.grace.map_or(0, Span::minutes),
                "evaluated_at": ctx.as_of.to_rfc3339(),
                "disposition": left.map(|(s, d)| json!({"status": s, "date": d.to_string()})),
            }),
        }
    }

    fn missing(
        &self,
        h: &SubjectHistory,
        ctx: &Context,
        v: &ScheduledVisit,
        w: &Window,
        records: &[&Record],
        assessment: &str,
    ) -> Finding {
        let held = records.iter().filter_map(|r| r.date.as_ref()).min_by_key(|d| d.earliest());
        let when = held.map(|d| format!(" ({})", study_day_text(h, d))).unwrap_or_default();
        Finding {
            episode: format!("missing:{}:{assessment}", v.visit),
            clinical_time: Some(w.due),
            level: 1,
            severity: ctx.severity,
            title: Some(format!("{assessment} missing at visit {}", v.visit)),
            summary: format!(
                "Visit {}{when} was recorded without {assessment}, which the schedule expects; the window \
                 closed at the end of {}.",
                v.visit,
                day_text(h, w.closes)
            ),
            why: format!(
                "{assessment} is scheduled at {} and no record of the visit or dated inside its window carries \
                 it{}",
                v.visit,
                self.grace_text()
            ),
            evidence: json!({
                "visit": v.visit,
                "assessment": assessment,
                "scheduled": v.assessments,
                "records": records.iter().map(|r| json!({"visit": r.visit, "date": r.date, "record_id": r.record_id}))
                    .collect::<Vec<_>>(),
                "window": {"opens": w.opens.to_string(), "closes": w.closes.to_string()},
                "overdue_from": w.due.to_rfc3339(),
                "evaluated_at": ctx.as_of.to_rfc3339(),
            }),
        }
    }

    fn grace_text(&self) -> String {
        match self.grace.filter(|g| g.minutes() > 0) {
            Some(g) => format!(", {g} of grace included"),
            None => String::new(),
        }
    }
}

impl Kind for OverdueVisitRule {
    const NAME: &'static str = "overdue_visit";
    type Params = Self;

    fn check(rule: Self) -> Result<Self, (String, String)> {
        rule.validate().map(|()| rule)
    }

    fn evaluate(&self, h: &SubjectHistory, ctx: &Context) -> Vec<Finding> {
        // Subjects never dosed have no study day 1, so no schedule.
        let Some(dose) = h.first_dose() else {
            return Vec::new();
        };
        let day1 = dose.start.day();
        let left = left_study_on(h);
        let mut out = Vec::new();
        for v in ctx.schedule.iter().filter(|v| self.watches(v)) {
            let Some(w) = self.window(day1, v) else {
                continue;
            };
            // A subject who left is not expected at windows that open afterwards; a window
            // already open when they left was still theirs to attend.
            if left.is_some_and(|(_, d)| w.opens > d) || ctx.as_of < w.due {
                continue;
            }
            let records = visit_records(h, ctx, v, &w);
            if records.is_empty() {
                out.push(self.overdue(h, ctx, v, &w, left));
            } else if self.assessments {
                for a in &v.assessments {
                    if !has_assessment(h, &records, a, &w) {
                        out.push(self.missing(h, ctx, v, &w, &records, a));
                    }
                }
            }
        }
        out
    }

    fn is_time_driven(&self) -> bool {
        true
    }
}

fn same_label(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// The records that stand for a scheduled visit: those labelled with it (any date), and,
/// as a fallback, records dated inside the window whose label is absent or unscheduled
/// and that carry observations. The last condition keeps an AE report or a submission
/// that happens to fall in the window from hiding a missed visit.
fn visit_records<'h>(
    h: &'h SubjectHistory,
    ctx: &Context,
    v: &ScheduledVisit,
    w: &Window,
) -> Vec<&'h Record> {
    h.records
        .iter()
        .filter(|r| match r.visit.as_deref() {
            Some(label) if same_label(label, &v.visit) => true,
            Some(label) if ctx.schedule.iter().any(|s| same_label(&s.visit, label)) => false,
            _ => r.date.as_ref().is_some_and(|d| in_window(d, w)) && has_observations(r),
        })
        .collect()
}

fn has_observations(r: &Record) -> bool {
    !r.vitals.is_empty()
        || !r.labs.is_empty()
        || !r.scores.is_empty()
        || r.mri.is_some()
        || !r.doses.is_empty()
}

/// A whole-day date inside the window (a partial date cannot place a visit).
fn in_window(d: &ClinicalTime, w: &Window) -> bool {
    !d.is_partial() && (w.opens..=w.closes).contains(&d.day())
}

/// Whether a visit's records carry an assessment: `MRI` is an mri section (or a scan
/// dated inside the window, as scans are often done days before the visit); `vitals` and
/// `labs` are those sections; any other name is a score or a lab test of that name.
fn has_assessment(h: &SubjectHistory, records: &[&Record], assessment: &str, w: &Window) -> bool {
    let a = assessment.trim();
    if a.eq_ignore_ascii_case("mri") {
        return records.iter().any(|r| r.mri.is_some()) || h.mri().iter().any(|(_, m)| in_window(&m.date, w));
    }
    if a.eq_ignore_ascii_case("vitals") || a.eq_ignore_ascii_case("vital_signs") {
        return records.iter().any(|r| !r.vitals.is_empty());
    }
    if a.eq_ignore_ascii_case("labs") {
        return records.iter().any(|r| !r.labs.is_empty());
    }
    records.iter().any(|r| {
        r.scores.iter().any(|s| same_label(&s.name, a)) || r.labs.iter().any(|l| same_label(&l.test, a))
    })
}

/// The subject's end of study (every disposition status ends the schedule) and its day.
/// A partial date counts as its latest day, so no visit the subject may have owed is
/// dropped; without a date, the date of the record that reported it, else the subject's
/// last dated record.
fn left_study_on(h: &SubjectHistory) -> Option<(DispositionStatus, NaiveDate)> {
    let d = h.disposition()?;
    // Exhaustive on purpose: a new status must decide whether it ends the schedule.
    match d.status {
        DispositionStatus::Completed
        | DispositionStatus::Withdrawn
        | DispositionStatus::ScreenFailure
        | DispositionStatus::LostToFollowUp
        | DispositionStatus::Death => {}
    }
    let reported = h.records.iter().rev().find(|r| r.disposition.is_some()).and_then(|r| r.date.as_ref());
    let last = || h.records.iter().filter_map(|r| r.when()).max_by_key(|t| t.latest());
    let date = d.date.as_ref().or(reported).or_else(last)?;
    Some((d.status, date.last_day()))
}

/// The latest visit recorded with a date (context for an overdue visit).
fn last_visit(h: &SubjectHistory) -> Option<(&str, &ClinicalTime)> {
    h.visits().into_iter().filter_map(|(v, d)| d.map(|d| (v, d))).max_by_key(|(_, d)| d.earliest())
}

fn day_clinical(d: NaiveDate) -> ClinicalTime {
    ClinicalTime::at(d.and_time(NaiveTime::MIN).and_utc())
}

/// "study day 92" for a calendar day (emails carry study days, not dates).
fn day_text(h: &SubjectHistory, d: NaiveDate) -> String {
    study_day_text(h, &day_clinical(d))
}

/// Just the number, for ranges ("window study day 78 to 92").
fn day_number(h: &SubjectHistory, d: NaiveDate) -> String {
    super::study_day(h, &day_clinical(d)).map_or_else(String::new, |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SubjectId;
    use crate::rules::Severity;

    /// First dose 2019-02-26: W4 = day 29 ± 3 (2019-03-23 to 03-29), W12 = day 85 ± 7
    /// (2019-05-14 to 05-28), W24 = day 169 ± 14 (2019-07-30 to 08-27).
    fn schedule() -> Vec<ScheduledVisit> {
        serde_yaml::from_str(
            "[{visit: W4, day: 29, window_days: 3, assessments: [EDSS]},
              {visit: W12, day: 85, window_days: 7, assessments: [EDSS]},
              {visit: W24, day: 169, window_days: 14, assessments: [EDSS, MRI]}]",
        )
        .unwrap()
    }

    const DOSE: &str = r#"{"subject":"KS-101","visit":"D1","date":"2019-02-26",
        "doses":[{"start":"2019-02-26T09:10:00+01:00"}]}"#;
    const W4: &str =
        r#"{"subject":"KS-101","visit":"W4","date":"2019-03-26","scores":[{"name":"EDSS","value":4.0}]}"#;

    fn history(json: &[&str]) -> SubjectHistory {
        SubjectHistory::new(
            SubjectId::parse("KS-101").unwrap(),
            json.iter().map(|j| Record::from_json(j).unwrap()).collect(),
        )
    }

    fn rule(yaml: &str) -> OverdueVisitRule {
        let r: OverdueVisitRule = serde_yaml::from_str(yaml).unwrap();
        r.validate().unwrap();
        r
    }

    fn eval(r: &OverdueVisitRule, h: &SubjectHistory, as_of: &str) -> Vec<(String, i64)> {
        findings(r, h, as_of).into_iter().map(|f| (f.episode, f.level)).collect()
    }

    fn findings(r: &OverdueVisitRule, h: &SubjectHistory, as_of: &str) -> Vec<Finding> {
        let schedule = schedule();
        let as_of = DateTime::parse_from_rfc3339(as_of).unwrap().with_timezone(&Utc);
        r.evaluate(h, &Context { severity: Severity::Warning, as_of, schedule: &schedule })
    }

    fn eps(list: &[&str]) -> Vec<(String, i64)> {
        list.iter().map(|e| (e.to_string(), 1)).collect()
    }

    #[test]
    fn a_visit_is_overdue_from_the_day_after_its_window() {
        let r = rule("visits: [W12]");
        let h = history(&[DOSE, W4]);
        assert!(eval(&r, &h, "2019-05-20T12:00:00Z").is_empty(), "not yet due");
        // The window's last day (study day 92) is allowed to its end.
        assert!(eval(&r, &h, "2019-05-28T23:59:59Z").is_empty());
        assert_eq!(eval(&r, &h, "2019-05-29T00:00:00Z"), eps(&["overdue:W12"]));
        let f = findings(&r, &h, "2019-05-29T08:00:00Z");
        let s = &f[0].summary;
        assert!(s.contains("Visit W12 (target study day 85, window study day 78 to 92)"), "{s}");
        assert!(s.contains("closed at the end of study day 92, 1 day ago"), "{s}");
        assert!(s.contains("Last recorded visit: W4, study day 29"), "{s}");
        assert!(!s.contains("2019-"), "emails carry study days, not dates: {s}");
        assert_eq!(f[0].title.as_deref(), Some("Visit W12 overdue"));
        // Later evaluations give the same episode and level: no new alert.
        assert_eq!(eval(&r, &h, "2019-07-01T00:00:00Z"), eps(&["overdue:W12"]));
    }

    #[test]
    fn an_arrived_visit_is_quiet_even_when_late_or_unlabelled() {
        let r = rule("visits: [W12]");
        let late = r#"{"subject":"KS-101","visit":"w12","date":"2019-06-10","scores":[{"name":"EDSS","value":4.0}]}"#;
        assert!(eval(&r, &history(&[DOSE, late]), "2019-07-01T00:00:00Z").is_empty());
        let unlabelled = r#"{"subject":"KS-101","date":"2019-05-20","scores":[{"name":"EDSS","value":4.0}]}"#;
        assert!(eval(&r, &history(&[DOSE, unlabelled]), "2019-07-01T00:00:00Z").is_empty());
        // An AE report or another scheduled visit dated in the window is not the visit.
        let ae =
            r#"{"subject":"KS-101","date":"2019-05-20","adverse_events":[{"term":"Headache","grade":1}]}"#;
        let w4_late =
            r#"{"subject":"KS-101","visit":"W4","date":"2019-05-20","scores":[{"name":"EDSS","value":4.0}]}"#;
        assert_eq!(eval(&r, &history(&[DOSE, ae, w4_late]), "2019-07-01T00:00:00Z"), eps(&["overdue:W12"]));
    }

    #[test]
    fn a_visit_without_its_scheduled_mri_is_flagged_after_the_window() {
        let r = rule("visits: [W24]");
        let w24 = r#"{"subject":"KS-101","visit":"W24","date":"2019-08-12","scores":[{"name":"EDSS","value":4.5}]}"#;
        let h = history(&[DOSE, w24]);
        // The scan may still come while the window is open.
        assert!(eval(&r, &h, "2019-08-27T23:00:00Z").is_empty());
        let f = findings(&r, &h, "2019-08-28T00:00:00Z");
        assert_eq!(
            f.iter().map(|f| (f.episode.as_str(), f.level)).collect::<Vec<_>>(),
            [("missing:W24:MRI", 1)]
        );
        assert!(
            f[0].summary.contains("Visit W24 (study day 168) was recorded without MRI"),
            "{}",
            f[0].summary
        );
        assert_eq!(f[0].title.as_deref(), Some("MRI missing at visit W24"));
        // A scan dated inside the window, sent on its own, fills it.
        let scan = r#"{"subject":"KS-101","mri":{"date":"2019-08-05","t2_new_or_enlarging":0}}"#;
        assert!(eval(&r, &history(&[DOSE, w24, scan]), "2019-09-01T00:00:00Z").is_empty());
        // `assessments: false` checks the visit only.
        assert!(eval(&rule("{visits: [W24], assessments: false}"), &h, "2019-09-01T00:00:00Z").is_empty());
    }

    #[test]
    fn a_withdrawn_subject_is_not_expected_at_later_visits() {
        let r = rule("{}");
        let gone = r#"{"subject":"KS-101","date":"2019-04-01","disposition":{"status":"withdrawn","date":"2019-04-01"}}"#;
        let h = history(&[DOSE, W4, gone]);
        assert!(eval(&r, &h, "2020-01-01T00:00:00Z").is_empty());
        // A window that opened before the withdrawal was still owed.
        let h = history(&[DOSE, gone]);
        assert_eq!(eval(&r, &h, "2020-01-01T00:00:00Z"), eps(&["overdue:W4"]));
        // Without a disposition date, the date of the record that reported it is used.
        let undated =
            r#"{"subject":"KS-101","date":"2019-04-01","disposition":{"status":"lost_to_follow_up"}}"#;
        assert_eq!(eval(&r, &history(&[DOSE, undated]), "2020-01-01T00:00:00Z"), eps(&["overdue:W4"]));
    }

    #[test]
    fn every_visit_by_default_and_none_without_a_dose() {
        let r = rule("{}");
        assert_eq!(
            eval(&r, &history(&[DOSE]), "2020-01-01T00:00:00Z"),
            eps(&["overdue:W4", "overdue:W12", "overdue:W24"])
        );
        let undosed = r#"{"subject":"KS-101","visit":"SCR","date":"2019-02-01"}"#;
        assert!(eval(&r, &history(&[undosed]), "2020-01-01T00:00:00Z").is_empty());
    }

    #[test]
    fn grace_delays_the_alert() {
        let r = rule("{visits: [W12], grace: 2d}");
        let h = history(&[DOSE]);
        assert!(eval(&r, &h, "2019-05-30T23:59:00Z").is_empty());
        assert_eq!(eval(&r, &h, "2019-05-31T00:00:00Z"), eps(&["overdue:W12"]));
        assert!(findings(&r, &h, "2019-05-31T00:00:00Z")[0].why.contains("2 days of grace"));
    }

    #[test]
    fn the_same_evaluation_twice_gives_the_same_findings() {
        let r = rule("{}");
        let h = history(&[DOSE, W4]);
        let a = findings(&r, &h, "2020-01-01T00:00:00Z");
        assert_eq!(a.len(), 2);
        assert_eq!(a, findings(&r, &h, "2020-01-01T00:00:00Z"));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let bad =
            |yaml: &str| serde_yaml::from_str::<OverdueVisitRule>(yaml).unwrap().validate().unwrap_err().0;
        assert_eq!(bad("visits: []"), "visits");
        assert_eq!(bad("visits: [W12, ' ']"), "visits[1]");
        assert_eq!(bad("visits: [W12, w12]"), "visits[1]");
        assert!(serde_yaml::from_str::<OverdueVisitRule>("visit: [W12]").is_err());
        assert!(serde_yaml::from_str::<OverdueVisitRule>("grace: 2").is_err());
    }
}
