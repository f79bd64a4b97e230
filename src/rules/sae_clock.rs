//! `sae_clock`: regulatory reporting clocks for serious adverse events (docs/clinical-reference.md §4.2).
//!
//! Every serious AE starts a calendar-time clock at awareness (Day 0 = first knowledge):
//! the report to the sponsor (24 h), and for suspected unexpected serious adverse
//! reactions (SUSARs) the expedited report (7 days if fatal or life-threatening, else 15),
//! followed, after a 7-day report, by a follow-up report (8 more days). A clock is closed
//! by a submission of the right kind for the AE id; until then it warns (level 1) from
//! `warn_before` ahead of the deadline and is overdue (level 2) after it. Episode =
//! `sae-clock:<ae>:<clock>`, so an overdue clock re-alerts once above its warning.
//!
//! Clocks given in whole days (the expedited and follow-up reports) count calendar days
//! in the study's time zone: day 0 is the local date of awareness, and the report is due
//! by the end of day N, local midnight starting day N+1, whatever daylight saving does in
//! between. The sponsor's 24 h clock counts hours from the instant of awareness.
//!
//! A serious, suspected event whose expectedness is not recorded is treated as a SUSAR
//! provisionally (team decision: doubt starts the clock). The finding says so; a later
//! `expected: true` removes the finding (the alert resolves itself) and `expected: false`
//! confirms it under the same episode.

use super::Kind;
use super::{study_day_text, Context, Finding, Span};
use crate::model::{
    local_day, local_day_start, AdverseEvent, ClinicalTime, ReportKind, Seriousness, SubjectHistory, Submission,
};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::json;

/// The rule as written in the rule file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaeClockParams {
    /// Per-clock overrides; a clock left out keeps its regulatory default.
    #[serde(default)]
    pub clocks: Clocks,
    /// Where the clock starts when an SAE carries no `awareness` time.
    #[serde(default)]
    pub awareness_fallback: AwarenessFallback,
}

/// The rule ready to run: every clock resolved at load (overrides over the regulatory
/// defaults), indexed by `ClockName`.
#[derive(Debug, Clone)]
pub struct SaeClockRule {
    clocks: [Clock; 4],
    pub awareness_fallback: AwarenessFallback,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clocks {
    #[serde(default)]
    pub sponsor: ClockParams,
    #[serde(default)]
    pub expedited_fatal: ClockParams,
    #[serde(default)]
    pub expedited_other: ClockParams,
    #[serde(default)]
    pub follow_up: ClockParams,
}

/// One clock's overrides. Each key is optional so that `{within: 48h}` keeps that
/// clock's own default warning time rather than a shared one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockParams {
    /// Calendar time from the clock's start to the deadline.
    pub within: Option<Span>,
    /// How long before the deadline the warning (level 1) starts.
    pub warn_before: Option<Span>,
    /// `false` when the protocol or the jurisdiction does not require this report.
    pub enabled: Option<bool>,
    /// Count `within` as calendar days in the study's zone (due by the end of the last
    /// day, local time) rather than as elapsed time. Default: true for the expedited and
    /// follow-up reports, false for the sponsor's 24 h report.
    pub calendar_days: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AwarenessFallback {
    /// The AE's onset: never later than awareness, so the deadline is never too late.
    #[default]
    Onset,
    /// The date of the earliest record that carried the AE (when the site reported it).
    Record,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClockName {
    Sponsor,
    ExpeditedFatal,
    ExpeditedOther,
    FollowUp,
}

impl ClockName {
    /// In declaration order: `SaeClockRule::clock` indexes by `self as usize`.
    const ALL: [Self; 4] = [Self::Sponsor, Self::ExpeditedFatal, Self::ExpeditedOther, Self::FollowUp];

    /// The YAML key and the episode suffix.
    fn key(self) -> &'static str {
        match self {
            Self::Sponsor => "sponsor",
            Self::ExpeditedFatal => "expedited_fatal",
            Self::ExpeditedOther => "expedited_other",
            Self::FollowUp => "follow_up",
        }
    }

    /// Defaults (within, warn_before) in minutes, from docs/clinical-reference.md §4.2.
    fn defaults(self) -> (i64, i64) {
        const H: i64 = 60;
        const D: i64 = 24 * H;
        match self {
            Self::Sponsor => (24 * H, 6 * H),
            Self::ExpeditedFatal => (7 * D, 48 * H),
            Self::ExpeditedOther => (15 * D, 48 * H),
            Self::FollowUp => (8 * D, 48 * H),
        }
    }

    /// The regulations count the expedited reports in calendar days (ICH E2A: "day 0").
    fn counts_calendar_days(self) -> bool {
        !matches!(self, Self::Sponsor)
    }

    fn closed_by(self) -> ReportKind {
        match self {
            Self::Sponsor => ReportKind::Sponsor,
            Self::ExpeditedFatal | Self::ExpeditedOther => ReportKind::Expedited,
            Self::FollowUp => ReportKind::FollowUp,
        }
    }

    fn report(self) -> &'static str {
        match self {
            Self::Sponsor => "SAE report to the sponsor",
            Self::ExpeditedFatal => "7-day expedited SUSAR report",
            Self::ExpeditedOther => "15-day expedited SUSAR report",
            Self::FollowUp => "SUSAR follow-up report",
        }
    }

    /// What the clock counts from, for the summary.
    fn counted_from(self) -> &'static str {
        match self {
            Self::FollowUp => "the 7-day report",
            _ => "awareness",
        }
    }
}

/// A clock's resolved parameters, in minutes.
#[derive(Debug, Clone, Copy)]
struct Clock {
    within: i64,
    warn_before: i64,
    enabled: bool,
    calendar_days: bool,
}

/// Where a clock's start came from (named in the summary and the evidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartSource {
    Awareness,
    Onset,
    Record,
    ExpeditedSubmission,
}

impl StartSource {
    fn key(self) -> &'static str {
        match self {
            Self::Awareness => "awareness",
            Self::Onset => "onset",
            Self::Record => "record",
            Self::ExpeditedSubmission => "expedited_submission",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Start<'h> {
    at: DateTime<Utc>,
    source: StartSource,
    time: &'h ClinicalTime,
}

/// One serious AE as the clocks see it.
#[derive(Debug, Clone, Copy)]
struct Sae<'a> {
    ae: &'a AdverseEvent,
    /// Its episode key (id, else term and onset).
    key: &'a str,
    class: Class,
}

/// What the regulations need to know about one AE.
#[derive(Debug, Clone, Copy)]
struct Class {
    serious: bool,
    fatal_or_life_threatening: bool,
    /// Related possible or stronger ("reasonable possibility").
    suspected: bool,
    /// Unexpected for the clock chosen: explicit `expected: false`, or not recorded
    /// (then provisionally: doubt starts the clock until the event is assessed).
    unexpected: bool,
    /// Expectedness is not recorded: the expedited clock runs provisionally.
    provisional: bool,
}

impl Class {
    fn of(ae: &AdverseEvent) -> Self {
        // A grade 5 event is a death, so a serious one is on the 7-day clock.
        let grade5 = ae.grade.is_some_and(|g| g.value() == 5);
        let fatal_or_life_threatening = grade5
            || ae.seriousness.iter().any(|s| matches!(s, Seriousness::Death | Seriousness::LifeThreatening));
        Self {
            // Seriousness is the reporter's judgement (AESER). A fatal event marked not
            // serious is a contradiction to query (`seriousness-to-verify`), and does not
            // start a clock by itself (team decision, README clinical notes).
            serious: ae.serious,
            fatal_or_life_threatening,
            suspected: ae.related.is_some_and(|r| r.is_related()),
            unexpected: ae.expected != Some(true),
            provisional: ae.expected.is_none(),
        }
    }

    fn susar(self) -> bool {
        self.serious && self.suspected && self.unexpected
    }

    /// The expedited clock this AE is on, if it is a SUSAR.
    fn expedited(self) -> Option<ClockName> {
        match (self.susar(), self.fatal_or_life_threatening) {
            (false, _) => None,
            (true, true) => Some(ClockName::ExpeditedFatal),
            (true, false) => Some(ClockName::ExpeditedOther),
        }
    }
}

impl Clocks {
    /// One clock: its overrides over its regulatory defaults.
    fn resolve(&self, name: ClockName) -> Clock {
        let p = match name {
            ClockName::Sponsor => &self.sponsor,
            ClockName::ExpeditedFatal => &self.expedited_fatal,
            ClockName::ExpeditedOther => &self.expedited_other,
            ClockName::FollowUp => &self.follow_up,
        };
        let (within, warn_before) = name.defaults();
        Clock {
            within: p.within.map_or(within, Span::minutes),
            warn_before: p.warn_before.map_or(warn_before, Span::minutes),
            enabled: p.enabled.unwrap_or(true),
            calendar_days: p.calendar_days.unwrap_or(name.counts_calendar_days()),
        }
    }
}

impl Clock {
    /// The deadline of a clock started at `start`: elapsed time, or the end of the last
    /// calendar day in `zone` (day 0 = the local date of `start`); on time up to and
    /// including this instant.
    fn deadline(self, start: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
        if !self.calendar_days {
            return start + Duration::minutes(self.within);
        }
        let last_day = local_day(zone, start) + Duration::days(self.within / (24 * 60));
        local_day_start(zone, last_day + Duration::days(1)) - Duration::milliseconds(1)
    }
}

impl SaeClockRule {
    fn clock(&self, name: ClockName) -> Clock {
        // `clocks` is built from `ClockName::ALL`, whose order is the declaration order.
        self.clocks[name as usize]
    }

    /// What serde cannot see.
    fn validate(&self) -> Result<(), (String, String)> {
        for name in ClockName::ALL {
            let c = self.clock(name);
            let path = format!("clocks.{}", name.key());
            if c.within <= 0 {
                return Err((format!("{path}.within"), "a reporting clock needs a positive duration".into()));
            }
            if c.calendar_days && c.within % (24 * 60) != 0 {
                return Err((
                    format!("{path}.within"),
                    format!(
                        "{} is not a whole number of days: give days (e.g. 15d) or set calendar_days: false",
                        amount(c.within)
                    ),
                ));
            }
            if c.warn_before > c.within {
                return Err((
                    format!("{path}.warn_before"),
                    format!(
                        "warn_before ({}) is longer than within ({}): the warning would start before the clock",
                        amount(c.warn_before),
                        amount(c.within)
                    ),
                ));
            }
        }
        if ClockName::ALL.iter().all(|n| !self.clock(*n).enabled) {
            return Err(("clocks".into(), "every clock is disabled: the rule would never fire".into()));
        }
        Ok(())
    }

    /// When the clock starts for an AE: the current version's awareness (a correction
    /// wins), else the earliest awareness of an earlier version (a later version that
    /// omits the field does not undo first knowledge), else the configured fallback, else
    /// the other fallback. The earliest plausible
    /// instant of a date or partial date is used, so the deadline is never too late.
    fn start<'h>(&self, h: &'h SubjectHistory, ae: &'h AdverseEvent) -> Option<Start<'h>> {
        let versions: Vec<&'h AdverseEvent> = match ae.id.as_deref() {
            Some(id) => h
                .records
                .iter()
                .flat_map(|r| &r.adverse_events)
                .filter(|a| a.id.as_deref() == Some(id))
                .collect(),
            None => vec![ae],
        };
        let start = |time: &'h ClinicalTime, source| Start { at: time.earliest(), source, time };
        if let Some(t) = ae.awareness.as_ref() {
            return Some(start(t, StartSource::Awareness));
        }
        if let Some(t) = versions.iter().filter_map(|a| a.awareness.as_ref()).min_by_key(|t| t.earliest()) {
            return Some(start(t, StartSource::Awareness));
        }
        let onset = || ae.onset.as_ref().map(|t| start(t, StartSource::Onset));
        let record = || {
            h.records
                .iter()
                .filter(|r| r.adverse_events.iter().any(|a| versions.iter().any(|v| std::ptr::eq(*v, a))))
                .filter_map(|r| r.date.as_ref())
                .min_by_key(|t| t.earliest())
                .map(|t| start(t, StartSource::Record))
        };
        match self.awareness_fallback {
            AwarenessFallback::Onset => onset().or_else(record),
            AwarenessFallback::Record => record().or_else(onset),
        }
    }

    fn finding(
        &self,
        h: &SubjectHistory,
        ctx: &Context,
        sae: &Sae,
        name: ClockName,
        start: Start,
    ) -> Option<Finding> {
        let Sae { ae, key, class } = *sae;
        let clock = self.clock(name);
        let zone = start.time.study_zone();
        let deadline = clock.deadline(start.at, zone);
        let warn_from = deadline - Duration::minutes(clock.warn_before);
        if ctx.as_of < warn_from {
            return None;
        }
        let overdue = ctx.as_of > deadline;
        let report = name.report();
        // Study days and a local time only: emails carry no calendar dates of the subject.
        let local = deadline.with_timezone(&zone);
        let clock_time = match zone {
            Tz::UTC => local.format("%H:%M UTC").to_string(),
            _ => format!("{} {}", local.format("%H:%M %Z"), zone.name()),
        };
        let study_day = study_day_text(h, &ClinicalTime::at_in(deadline, zone));
        let deadline_text = if clock.calendar_days {
            format!(
                "by the end of calendar day {} after {} ({study_day}, {clock_time})",
                clock.within / (24 * 60),
                name.counted_from()
            )
        } else {
            format!("{} after {} ({study_day}, {clock_time})", amount(clock.within), name.counted_from())
        };
        let mut summary = format!("{}: {report} due {deadline_text}", describe(h, ae));
        if overdue {
            summary.push_str(&format!(
                "; overdue by {}, no {} report recorded.",
                amount(minutes_between(deadline, ctx.as_of)),
                report_kind_word(name.closed_by())
            ));
        } else {
            summary.push_str(&format!("; {} left.", amount(minutes_between(ctx.as_of, deadline))));
        }
        match start.source {
            StartSource::Onset => {
                summary.push_str(" No awareness time is recorded: the clock started at onset.")
            }
            StartSource::Record => summary.push_str(
                " No awareness time is recorded: the clock started on the day the event was reported.",
            ),
            StartSource::Awareness | StartSource::ExpeditedSubmission => {}
        }
        if start.time.is_partial() {
            summary.push_str(" The start date is partial: the earliest plausible day was used.");
        }
        if ae.id.is_none() {
            summary.push_str(" The event has no id, so no submission can close this clock.");
        }
        let provisional = class.provisional && name != ClockName::Sponsor;
        if provisional {
            summary.push_str(
                " Provisional: expectedness is not recorded, so the event is treated as unexpected \
                 (a SUSAR) until it is assessed against the reference safety information; \
                 `expected: true` closes this clock, `expected: false` confirms it.",
            );
        }
        let mut why = vec![reason(ae, class, name)];
        why.push(format!(
            "no {} submission for this event as of the evaluation",
            report_kind_word(name.closed_by())
        ));
        why.push(if overdue {
            format!("the deadline ({} after {}) has passed", amount(clock.within), start.source.key())
        } else {
            format!("within {} of the deadline", amount(clock.warn_before))
        });
        Some(Finding {
            episode: format!("sae-clock:{key}:{}", name.key()),
            clinical_time: Some(start.at),
            level: if overdue { 2 } else { 1 },
            severity: ctx.severity,
            title: Some(format!(
                "{report} {}{}",
                if overdue { "overdue" } else { "due soon" },
                if provisional { " (provisional)" } else { "" }
            )),
            summary,
            why: why.join("; "),
            evidence: json!({
                "adverse_event": ae,
                "clock": name.key(),
                "closed_by": name.closed_by(),
                "start": {"source": start.source.key(), "recorded": start.time, "at": start.at.to_rfc3339()},
                "within_minutes": clock.within,
                "calendar_days": clock.calendar_days,
                "timezone": zone.name(),
                "warn_before_minutes": clock.warn_before,
                "warn_from": warn_from.to_rfc3339(),
                "deadline": deadline.to_rfc3339(),
                "evaluated_at": ctx.as_of.to_rfc3339(),
                "classification": {"serious": class.serious,
                                   "fatal_or_life_threatening": class.fatal_or_life_threatening,
                                   "suspected": class.suspected, "unexpected": class.unexpected,
                                   "provisional": provisional},
            }),
        })
    }
}

impl Kind for SaeClockRule {
    const NAME: &'static str = "sae_clock";
    type Params = SaeClockParams;

    fn check(p: SaeClockParams) -> Result<Self, (String, String)> {
        let rule = Self {
            clocks: ClockName::ALL.map(|n| p.clocks.resolve(n)),
            awareness_fallback: p.awareness_fallback,
        };
        rule.validate().map(|()| rule)
    }

    fn evaluate(&self, h: &SubjectHistory, ctx: &Context) -> Vec<Finding> {
        // A submission dated after `as_of` has not happened yet at that time (replays and
        // rule tests evaluate the past against the whole history).
        let submissions: Vec<&Submission> =
            h.submissions().into_iter().filter(|s| s.submitted.earliest() <= ctx.as_of).collect();
        let mut out = Vec::new();
        for ae in h.adverse_events() {
            let class = Class::of(ae);
            if !class.serious {
                continue;
            }
            let key = ae_key(ae);
            let sae = Sae { ae, key: &key, class };
            let submitted = |kind: ReportKind| -> Vec<&Submission> {
                match ae.id.as_deref() {
                    Some(id) => {
                        submissions.iter().copied().filter(|s| s.ae_id == id && s.report == kind).collect()
                    }
                    None => Vec::new(),
                }
            };
            let mut awareness_clocks = vec![ClockName::Sponsor];
            awareness_clocks.extend(class.expedited());
            awareness_clocks.retain(|n| self.clock(*n).enabled && submitted(n.closed_by()).is_empty());
            match self.start(h, ae) {
                Some(start) => {
                    for name in awareness_clocks {
                        out.extend(self.finding(h, ctx, &sae, name, start));
                    }
                }
                None if !awareness_clocks.is_empty() => {
                    out.push(undated(ae, &key, class, &awareness_clocks, ctx))
                }
                None => {}
            }
            // The follow-up runs from the first 7-day report, whether or not it was on time.
            if class.expedited() == Some(ClockName::ExpeditedFatal)
                && self.clock(ClockName::FollowUp).enabled
                && submitted(ReportKind::FollowUp).is_empty()
            {
                if let Some(first) =
                    submitted(ReportKind::Expedited).into_iter().min_by_key(|s| s.submitted.earliest())
                {
                    let start = Start {
                        at: first.submitted.earliest(),
                        source: StartSource::ExpeditedSubmission,
                        time: &first.submitted,
                    };
                    out.extend(self.finding(h, ctx, &sae, ClockName::FollowUp, start));
                }
            }
        }
        out
    }

    fn is_time_driven(&self) -> bool {
        true
    }
}

/// An SAE whose clocks cannot start: no awareness, no onset, no dated record. Raised
/// once, because doubt about a regulatory deadline must reach a person.
fn undated(ae: &AdverseEvent, key: &str, class: Class, clocks: &[ClockName], ctx: &Context) -> Finding {
    let reports: Vec<&str> = clocks.iter().map(|n| n.report()).collect();
    Finding {
        episode: format!("sae-clock:{key}:undated"),
        clinical_time: None,
        level: 1,
        severity: ctx.severity,
        title: Some("SAE reporting clock cannot start".into()),
        summary: format!(
            "Serious adverse event \"{}\"{}: no awareness time, onset or record date, so the deadline of the {} \
             cannot be computed. Record the awareness time.",
            ae.term,
            ae.id.as_deref().map(|i| format!(" ({i})")).unwrap_or_default(),
            reports.join(" and the ")
        ),
        why: format!("{}; no time to start the clock from", reason(ae, class, ClockName::Sponsor)),
        evidence: json!({"adverse_event": ae, "clocks": clocks.iter().map(|n| n.key()).collect::<Vec<_>>()}),
    }
}

/// The episode key of an AE: its id, else term and onset (as the adverse_event rule does).
fn ae_key(ae: &AdverseEvent) -> String {
    match &ae.id {
        Some(id) => id.clone(),
        None => format!("{}@{}", ae.term.to_lowercase(), ae.onset.as_ref().map_or("", |o| o.raw())),
    }
}

/// "Serious adverse event "Sepsis" (AE-3, onset study day 12)".
fn describe(h: &SubjectHistory, ae: &AdverseEvent) -> String {
    let mut parts = Vec::new();
    if let Some(id) = &ae.id {
        parts.push(id.clone());
    }
    if let Some(onset) = &ae.onset {
        parts.push(format!("onset {}", study_day_text(h, onset)));
    }
    let mut s = format!("Serious adverse event \"{}\"", ae.term);
    if !parts.is_empty() {
        s.push_str(&format!(" ({})", parts.join(", ")));
    }
    s
}

/// Why the AE is on this clock, in the words of the regulation.
fn reason(ae: &AdverseEvent, class: Class, name: ClockName) -> String {
    let criteria: Vec<&str> = ae.seriousness.iter().map(|s| s.label()).collect();
    let mut r = if criteria.is_empty() {
        "serious".to_string()
    } else {
        format!("serious ({})", criteria.join(", "))
    };
    if ae.grade.is_some_and(|g| g.value() == 5) && !ae.seriousness.contains(&Seriousness::Death) {
        r.push_str(", CTCAE grade 5 (fatal)");
    }
    if name == ClockName::Sponsor {
        return r;
    }
    if let Some(rel) = ae.related {
        r.push_str(&format!(", suspected (related: {})", rel.label()));
    }
    r.push_str(match ae.expected {
        Some(false) => ", unexpected (expected: false)",
        Some(true) => ", expected",
        None if class.fatal_or_life_threatening => {
            ", expectedness not recorded: treated as unexpected (provisionally; fatal and life-threatening \
             reactions are normally unexpected)"
        }
        None => ", expectedness not recorded: treated as unexpected provisionally, until assessed",
    });
    if class.fatal_or_life_threatening {
        r.push_str(", fatal or life-threatening");
    }
    r
}

fn report_kind_word(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::Sponsor => "sponsor",
        ReportKind::Expedited => "expedited",
        ReportKind::FollowUp => "follow-up",
    }
}

fn minutes_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_minutes().max(0)
}

/// A duration for people: "45 min", "3 h", "3 h 20 min", "7 days", "2 days 4 h".
fn amount(minutes: i64) -> String {
    const DAY: i64 = 24 * 60;
    if minutes < 60 {
        format!("{minutes} min")
    } else if minutes < 2 * DAY {
        match (minutes / 60, minutes % 60) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        }
    } else {
        match (minutes / DAY, minutes % DAY / 60) {
            (d, 0) => format!("{d} days"),
            (d, h) => format!("{d} days {h} h"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Record, SubjectId};
    use crate::rules::Severity;

    const DOSE: &str = r#"{"subject":"KS-101","visit":"D1","date":"2019-02-25",
        "doses":[{"start":"2019-02-25T09:00:00Z"}]}"#;

    fn history(json: &[&str]) -> SubjectHistory {
        SubjectHistory::new(
            SubjectId::parse("KS-101").unwrap(),
            json.iter().map(|j| Record::from_json(j).unwrap()).collect(),
        )
    }

    fn rule(yaml: &str) -> SaeClockRule {
        SaeClockRule::check(serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn eval(r: &SaeClockRule, h: &SubjectHistory, as_of: &str) -> Vec<Finding> {
        r.evaluate(h, &Context { severity: Severity::Critical, as_of: at(as_of), schedule: &[] })
    }

    fn episodes(f: &[Finding]) -> Vec<(&str, i64)> {
        f.iter().map(|f| (f.episode.as_str(), f.level)).collect()
    }

    /// Aware on 2019-02-26 10:00 UTC (study day 2); sponsor deadline 2019-02-27 10:00.
    fn sae(extra: &str) -> String {
        format!(
            r#"{{"subject":"KS-101","visit":"D7","date":"2019-02-26","adverse_events":[{{"id":"AE-1",
                "term":"Pneumonia","grade":3,"onset":"2019-02-26T06:00:00Z",
                "awareness":"2019-02-26T10:00:00Z"{extra}}}]}}"#
        )
    }

    #[test]
    fn sponsor_clock_warns_from_deadline_minus_warn_before_then_goes_overdue() {
        let r = rule("{}");
        let h = history(&[DOSE, &sae(r#","seriousness":["hospitalization"],"related":"unlikely""#)]);
        assert!(eval(&r, &h, "2019-02-27T03:59:00Z").is_empty());
        let warn = eval(&r, &h, "2019-02-27T04:00:00Z");
        assert_eq!(episodes(&warn), [("sae-clock:AE-1:sponsor", 1)]);
        let s = &warn[0].summary;
        assert!(s.contains("due 24 h after awareness (study day 3, 10:00 UTC); 6 h left."), "{s}");
        assert!(s.contains("onset study day 2"), "{s}");
        assert!(!s.contains("2019-"), "emails carry study days, not dates: {s}");
        assert_eq!(warn[0].title.as_deref(), Some("SAE report to the sponsor due soon"));
        // At the deadline itself the report is still on time.
        assert_eq!(episodes(&eval(&r, &h, "2019-02-27T10:00:00Z")), [("sae-clock:AE-1:sponsor", 1)]);
        let late = eval(&r, &h, "2019-02-27T10:01:00Z");
        assert_eq!(episodes(&late), [("sae-clock:AE-1:sponsor", 2)]);
        assert!(
            late[0].summary.contains("overdue by 1 min, no sponsor report recorded"),
            "{}",
            late[0].summary
        );
        assert_eq!(late[0].evidence["deadline"], "2019-02-27T10:00:00+00:00");
        // Much later it is the same episode and level: no new alert.
        assert_eq!(episodes(&eval(&r, &h, "2019-03-20T00:00:00Z")), [("sae-clock:AE-1:sponsor", 2)]);
    }

    #[test]
    fn a_sponsor_submission_closes_the_clock_even_when_late() {
        let r = rule("{}");
        let submitted = r#"{"subject":"KS-101","submissions":[
            {"ae_id":"AE-1","report":"sponsor","submitted":"2019-02-27T12:00:00Z"}]}"#;
        let h = history(&[DOSE, &sae(r#","seriousness":["hospitalization"]"#), submitted]);
        // Before the submission's time it has not happened yet (replays, rule tests).
        assert_eq!(episodes(&eval(&r, &h, "2019-02-27T11:00:00Z")), [("sae-clock:AE-1:sponsor", 2)]);
        assert!(eval(&r, &h, "2019-02-27T12:00:00Z").is_empty());
        assert!(eval(&r, &h, "2019-04-01T00:00:00Z").is_empty());
        // A report of another kind or for another event does not close it.
        let other = r#"{"subject":"KS-101","submissions":[
            {"ae_id":"AE-2","report":"sponsor","submitted":"2019-02-26T12:00:00Z"},
            {"ae_id":"AE-1","report":"expedited","submitted":"2019-02-26T12:00:00Z"}]}"#;
        let h = history(&[DOSE, &sae(r#","seriousness":["hospitalization"]"#), other]);
        assert_eq!(episodes(&eval(&r, &h, "2019-02-27T11:00:00Z")), [("sae-clock:AE-1:sponsor", 2)]);
    }

    #[test]
    fn a_fatal_unexpected_related_sae_gets_the_7_day_clock() {
        let r = rule("{}");
        let h = history(&[DOSE, &sae(r#","seriousness":["death"],"related":"probable","expected":false"#)]);
        // Aware 2019-02-26 (day 0): due by the end of 2019-03-05 (day 7); warning from 48 h before.
        assert_eq!(episodes(&eval(&r, &h, "2019-03-03T23:59:00Z")), [("sae-clock:AE-1:sponsor", 2)]);
        let f = eval(&r, &h, "2019-03-04T00:00:00Z");
        assert_eq!(episodes(&f), [("sae-clock:AE-1:sponsor", 2), ("sae-clock:AE-1:expedited_fatal", 1)]);
        assert!(
            f[1].summary.contains(
                "7-day expedited SUSAR report due by the end of calendar day 7 after awareness \
                 (study day 9, 23:59 UTC)"
            ),
            "{}",
            f[1].summary
        );
        assert!(f[1].summary.contains("47 h 59 min left"), "{}", f[1].summary);
        assert!(f[1].why.contains("unexpected (expected: false)"), "{}", f[1].why);
        assert!(!f[1].summary.contains("Provisional"), "{}", f[1].summary);
        assert_eq!(episodes(&eval(&r, &h, "2019-03-05T23:59:00Z"))[1], ("sae-clock:AE-1:expedited_fatal", 1));
        let late = eval(&r, &h, "2019-03-06T00:00:00Z");
        assert_eq!(late[1].episode, "sae-clock:AE-1:expedited_fatal");
        assert_eq!(late[1].level, 2);
        // Unknown expectedness counts as unexpected for a fatal or life-threatening event.
        let h = history(&[DOSE, &sae(r#","seriousness":["life_threatening"],"related":"possible""#)]);
        let f = eval(&r, &h, "2019-03-04T00:00:00Z");
        assert_eq!(episodes(&f), [("sae-clock:AE-1:sponsor", 2), ("sae-clock:AE-1:expedited_fatal", 1)]);
        assert!(f[1].why.contains("expectedness not recorded"), "{}", f[1].why);
    }

    #[test]
    fn a_non_fatal_susar_gets_the_15_day_clock() {
        let r = rule("{}");
        let h = history(&[
            DOSE,
            &sae(r#","seriousness":["hospitalization"],"related":"possible","expected":false"#),
        ]);
        // Day 0 = 2019-02-26: due by the end of 2019-03-13 (day 15).
        assert_eq!(episodes(&eval(&r, &h, "2019-03-11T23:59:00Z")), [("sae-clock:AE-1:sponsor", 2)]);
        assert_eq!(
            episodes(&eval(&r, &h, "2019-03-12T00:00:00Z")),
            [("sae-clock:AE-1:sponsor", 2), ("sae-clock:AE-1:expedited_other", 1)]
        );
        assert_eq!(
            episodes(&eval(&r, &h, "2019-03-13T23:59:59Z")),
            [("sae-clock:AE-1:sponsor", 2), ("sae-clock:AE-1:expedited_other", 1)]
        );
        assert_eq!(
            episodes(&eval(&r, &h, "2019-03-14T00:00:00Z")),
            [("sae-clock:AE-1:sponsor", 2), ("sae-clock:AE-1:expedited_other", 2)]
        );
        // The expedited report closes it; the sponsor report closes the other.
        let sent = r#"{"subject":"KS-101","submissions":[
            {"ae_id":"AE-1","report":"sponsor","submitted":"2019-02-26T15:00:00Z"},
            {"ae_id":"AE-1","report":"expedited","submitted":"2019-03-12T09:00:00Z"}]}"#;
        let h = history(&[
            DOSE,
            &sae(r#","seriousness":["hospitalization"],"related":"possible","expected":false"#),
            sent,
        ]);
        assert!(eval(&r, &h, "2019-03-20T00:00:00Z").is_empty());
    }

    #[test]
    fn clocks_are_indexed_in_declaration_order() {
        for (i, n) in ClockName::ALL.iter().enumerate() {
            assert_eq!(*n as usize, i);
        }
        let r = rule("clocks: {follow_up: {within: 10d}}");
        assert_eq!(r.clock(ClockName::FollowUp).within, 10 * 24 * 60);
        assert_eq!(r.clock(ClockName::Sponsor).within, ClockName::Sponsor.defaults().0);
    }

    #[test]
    fn expected_or_unrelated_saes_get_only_the_sponsor_clock() {
        let r = rule("{}");
        for extra in [
            r#","seriousness":["death"],"related":"definite","expected":true"#,
            r#","seriousness":["death"],"related":"unlikely","expected":false"#,
            r#","seriousness":["death"],"expected":false"#,
            r#","seriousness":["hospitalization"],"related":"probable","expected":true"#,
        ] {
            let h = history(&[DOSE, &sae(extra)]);
            assert_eq!(
                episodes(&eval(&r, &h, "2019-03-20T00:00:00Z")),
                [("sae-clock:AE-1:sponsor", 2)],
                "{extra}"
            );
        }
    }

    #[test]
    fn non_serious_events_have_no_clock() {
        let r = rule("{}");
        let h = history(&[DOSE, &sae(r#","serious":false,"related":"definite","expected":false"#)]);
        assert!(eval(&r, &h, "2019-03-20T00:00:00Z").is_empty());
        // A fatal event the reporter marked not serious is queried, not clocked.
        let death = r#"{"subject":"KS-101","visit":"D7","date":"2019-02-26","adverse_events":[{"id":"AE-1",
            "term":"Pneumonia","grade":5,"onset":"2019-02-26T06:00:00Z","awareness":"2019-02-26T10:00:00Z",
            "serious":false,"related":"definite","expected":false}]}"#;
        let h = history(&[DOSE, death]);
        assert!(eval(&r, &h, "2019-03-20T00:00:00Z").is_empty());
    }

    #[test]
    fn without_awareness_the_clock_starts_at_onset_or_at_the_record() {
        let no_awareness = r#"{"subject":"KS-101","visit":"D7","date":"2019-02-28","adverse_events":[{"id":"AE-1",
            "term":"Pneumonia","onset":"2019-02-26T06:00:00Z","seriousness":["hospitalization"]}]}"#;
        let h = history(&[DOSE, no_awareness]);
        // Onset 2019-02-26 06:00 → warning from 2019-02-27 00:00, due 06:00.
        let r = rule("{}");
        assert!(eval(&r, &h, "2019-02-26T23:59:00Z").is_empty());
        let f = eval(&r, &h, "2019-02-27T00:00:00Z");
        assert_eq!(episodes(&f), [("sae-clock:AE-1:sponsor", 1)]);
        assert!(f[0].summary.contains("the clock started at onset"), "{}", f[0].summary);
        assert_eq!(f[0].evidence["start"]["source"], "onset");
        // `record`: the record is dated 2019-02-28, read as its first instant.
        let r = rule("awareness_fallback: record");
        assert!(eval(&r, &h, "2019-02-28T17:59:00Z").is_empty());
        assert_eq!(episodes(&eval(&r, &h, "2019-02-28T18:00:00Z")), [("sae-clock:AE-1:sponsor", 1)]);
        assert_eq!(episodes(&eval(&r, &h, "2019-03-01T00:01:00Z")), [("sae-clock:AE-1:sponsor", 2)]);
    }

    #[test]
    fn awareness_from_an_earlier_version_is_kept() {
        let r = rule("{}");
        let update = r#"{"subject":"KS-101","adverse_events":[{"id":"AE-1","term":"Pneumonia","grade":4,
            "seriousness":["hospitalization"]}]}"#;
        let h = history(&[DOSE, &sae(r#","seriousness":["hospitalization"]"#), update]);
        let f = eval(&r, &h, "2019-02-27T04:00:00Z");
        assert_eq!(episodes(&f), [("sae-clock:AE-1:sponsor", 1)]);
        assert_eq!(f[0].evidence["start"]["source"], "awareness");
    }

    #[test]
    fn an_sae_with_no_time_at_all_is_raised_once() {
        let r = rule("{}");
        let h = history(&[
            r#"{"subject":"KS-101","adverse_events":[{"id":"AE-1","term":"Sepsis","serious":true}]}"#,
        ]);
        let f = eval(&r, &h, "2019-03-01T00:00:00Z");
        assert_eq!(episodes(&f), [("sae-clock:AE-1:undated", 1)]);
        assert!(f[0].summary.contains("cannot be computed"));
    }

    #[test]
    fn the_follow_up_runs_8_days_from_the_7_day_report() {
        let r = rule("{}");
        let ae = sae(r#","seriousness":["death"],"related":"probable","expected":false"#);
        let sent = r#"{"subject":"KS-101","submissions":[
            {"ae_id":"AE-1","report":"sponsor","submitted":"2019-02-26T12:00:00Z"},
            {"ae_id":"AE-1","report":"expedited","submitted":"2019-03-01T08:00:00Z"}]}"#;
        let h = history(&[DOSE, &ae, sent]);
        // Day 0 = 2019-03-01: due by the end of 2019-03-09; warning from 48 h before.
        assert!(eval(&r, &h, "2019-03-07T23:59:00Z").is_empty());
        let f = eval(&r, &h, "2019-03-08T00:00:00Z");
        assert_eq!(episodes(&f), [("sae-clock:AE-1:follow_up", 1)]);
        assert!(
            f[0].summary.contains("due by the end of calendar day 8 after the 7-day report"),
            "{}",
            f[0].summary
        );
        assert_eq!(episodes(&eval(&r, &h, "2019-03-10T00:00:00Z")), [("sae-clock:AE-1:follow_up", 2)]);
        let done = r#"{"subject":"KS-101","submissions":[
            {"ae_id":"AE-1","report":"follow_up","submitted":"2019-03-08T08:00:00Z"}]}"#;
        let h = history(&[DOSE, &ae, sent, done]);
        assert!(eval(&r, &h, "2019-03-20T00:00:00Z").is_empty());
        // Off when the protocol does not ask for it.
        let off = rule("clocks: {follow_up: {enabled: false}}");
        let h = history(&[DOSE, &ae, sent]);
        assert!(eval(&off, &h, "2019-03-20T00:00:00Z").is_empty());
    }

    #[test]
    fn the_same_evaluation_twice_gives_the_same_findings() {
        let r = rule("{}");
        let h = history(&[DOSE, &sae(r#","seriousness":["death"],"related":"probable","expected":false"#)]);
        let a = eval(&r, &h, "2019-03-04T00:00:00Z");
        assert_eq!(a.len(), 2);
        assert_eq!(a, eval(&r, &h, "2019-03-04T00:00:00Z"));
    }

    #[test]
    fn unknown_expectedness_starts_the_15_day_clock_provisionally() {
        let r = rule("{}");
        let ae = |extra: &str| sae(&format!(r#","seriousness":["hospitalization"],"related":"probable"{extra}"#));
        let h = history(&[DOSE, &ae("")]);
        let f = eval(&r, &h, "2019-03-12T00:00:00Z");
        assert_eq!(episodes(&f), [("sae-clock:AE-1:sponsor", 2), ("sae-clock:AE-1:expedited_other", 1)]);
        assert_eq!(f[1].title.as_deref(), Some("15-day expedited SUSAR report due soon (provisional)"));
        assert!(f[1].summary.contains("Provisional: expectedness is not recorded"), "{}", f[1].summary);
        assert!(f[1].why.contains("treated as unexpected provisionally"), "{}", f[1].why);
        assert_eq!(f[1].evidence["classification"]["provisional"], true);
        // The sponsor clock does not depend on expectedness: never provisional.
        assert!(!f[0].summary.contains("Provisional"), "{}", f[0].summary);
        // A later version assessed as expected closes the clock: the finding is gone.
        let assessed = |expected: bool| {
            format!(
                r#"{{"subject":"KS-101","adverse_events":[{{"id":"AE-1","term":"Pneumonia","grade":3,
                    "seriousness":["hospitalization"],"related":"probable","expected":{expected}}}]}}"#
            )
        };
        let h = history(&[DOSE, &ae(""), &assessed(true)]);
        assert_eq!(episodes(&eval(&r, &h, "2019-03-12T00:00:00Z")), [("sae-clock:AE-1:sponsor", 2)]);
        // Assessed as unexpected: the same episode and level (no new alert), now confirmed.
        let h = history(&[DOSE, &ae(""), &assessed(false)]);
        let f = eval(&r, &h, "2019-03-12T00:00:00Z");
        assert_eq!(episodes(&f), [("sae-clock:AE-1:sponsor", 2), ("sae-clock:AE-1:expedited_other", 1)]);
        assert_eq!(f[1].title.as_deref(), Some("15-day expedited SUSAR report due soon"));
        assert!(!f[1].summary.contains("Provisional"), "{}", f[1].summary);
        assert_eq!(f[1].evidence["classification"]["provisional"], false);
    }

    fn stockholm() -> crate::model::Zones {
        let mut zones = crate::model::Zones { study: Tz::Europe__Stockholm, ..Default::default() };
        zones.sites.insert("01-701".into(), Tz::America__Chicago);
        zones
    }

    /// An SUSAR whose awareness is a local time without offset at `site`.
    fn local_susar(site: &str, awareness: &str, seriousness: &str) -> SubjectHistory {
        let ae = format!(
            r#"{{"subject":"KS-101","site":"{site}","adverse_events":[{{"id":"AE-1","term":"Pneumonia",
                "seriousness":["{seriousness}"],"related":"probable","expected":false,"awareness":"{awareness}"}}]}}"#
        );
        history(&[DOSE, &ae]).placed(&stockholm())
    }

    #[test]
    fn calendar_days_end_at_local_midnight_across_a_dst_change() {
        let r = rule("{}");
        // Aware 2026-03-20 10:00 in Stockholm (CET); day 15 is 2026-04-04, after the change
        // to CEST on 2026-03-29: due by local midnight, 22:00 UTC, not 15 × 24 h (09:00 UTC).
        let h = local_susar("KS", "2026-03-20T10:00", "hospitalization");
        let f = eval(&r, &h, "2026-04-04T21:59:00Z");
        assert_eq!(f[1].episode, "sae-clock:AE-1:expedited_other");
        assert_eq!(f[1].level, 1, "still on time at 23:59 local");
        assert_eq!(f[1].evidence["deadline"], "2026-04-04T21:59:59.999+00:00");
        assert_eq!(f[1].evidence["start"]["at"], "2026-03-20T09:00:00+00:00");
        assert!(f[1].summary.contains("23:59 CEST Europe/Stockholm"), "{}", f[1].summary);
        assert_eq!(eval(&r, &h, "2026-04-04T22:00:00Z")[1].level, 2, "overdue from local midnight");
        // The other way in autumn: aware 2026-10-20 (CEST), day 7 is 2026-10-27 in CET.
        let h = local_susar("KS", "2026-10-20T23:30", "death");
        let f = eval(&r, &h, "2026-10-27T22:59:00Z");
        assert_eq!(f[1].episode, "sae-clock:AE-1:expedited_fatal");
        assert_eq!(f[1].level, 1);
        assert_eq!(f[1].evidence["deadline"], "2026-10-27T22:59:59.999+00:00");
        assert_eq!(eval(&r, &h, "2026-10-27T23:00:00Z")[1].level, 2);
    }

    #[test]
    fn a_site_in_another_zone_counts_days_in_the_study_zone() {
        let r = rule("{}");
        // 20:00 in Chicago (CDT) on 2026-03-20 is 02:00 on 2026-03-21 in Stockholm: day 0
        // is the study's date, so day 15 ends at Stockholm midnight of 2026-04-05.
        let h = local_susar("01-701", "2026-03-20T20:00", "hospitalization");
        let f = eval(&r, &h, "2026-04-05T00:00:00Z");
        assert_eq!(f[1].evidence["start"]["at"], "2026-03-21T01:00:00+00:00");
        assert_eq!(f[1].evidence["deadline"], "2026-04-05T21:59:59.999+00:00");
        assert_eq!(f[1].evidence["timezone"], "Europe/Stockholm");
    }

    #[test]
    fn calendar_days_need_whole_days_and_can_be_turned_off() {
        let bad = SaeClockRule::check(serde_yaml::from_str("clocks: {expedited_other: {within: 36h}}").unwrap());
        assert_eq!(bad.unwrap_err().0, "clocks.expedited_other.within");
        let r = rule("clocks: {expedited_other: {within: 36h, warn_before: 1h, calendar_days: false}}");
        let h = local_susar("KS", "2026-03-20T10:00", "hospitalization");
        let f = eval(&r, &h, "2026-03-21T21:00:00Z");
        assert_eq!(f[1].evidence["deadline"], "2026-03-21T21:00:00+00:00");
        assert!(f[1].summary.contains("due 36 h after awareness"), "{}", f[1].summary);
    }

    #[test]
    fn overrides_keep_the_other_defaults_and_bad_values_are_refused() {
        let r = rule("clocks: {sponsor: {within: 48h}}");
        let h = history(&[DOSE, &sae(r#","seriousness":["hospitalization"]"#)]);
        assert!(eval(&r, &h, "2019-02-28T03:59:00Z").is_empty());
        assert_eq!(episodes(&eval(&r, &h, "2019-02-28T04:00:00Z")), [("sae-clock:AE-1:sponsor", 1)]);
        let bad = |yaml: &str| SaeClockRule::check(serde_yaml::from_str(yaml).unwrap()).unwrap_err().0;
        assert_eq!(bad("clocks: {sponsor: {within: 0h}}"), "clocks.sponsor.within");
        assert_eq!(
            bad("clocks: {expedited_other: {warn_before: 16d}}"),
            "clocks.expedited_other.warn_before"
        );
        assert_eq!(
            bad("clocks: {sponsor: {enabled: false}, expedited_fatal: {enabled: false}, \
                 expedited_other: {enabled: false}, follow_up: {enabled: false}}"),
            "clocks"
        );
        assert!(serde_yaml::from_str::<SaeClockParams>("clocks: {sponsr: {within: 1h}}").is_err());
        assert!(serde_yaml::from_str::<SaeClockParams>("awareness_fallback: visit").is_err());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(amount(45), "45 min");
        assert_eq!(amount(180), "3 h");
        assert_eq!(amount(200), "3 h 20 min");
        assert_eq!(amount(24 * 60), "24 h");
        assert_eq!(amount(7 * 24 * 60), "7 days");
        assert_eq!(amount(2 * 24 * 60 + 4 * 60 + 5), "2 days 4 h");
    }
}
