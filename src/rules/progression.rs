//! EDSS disability worsening: baselines, minimum change, confirmation.
//!
//! [`assess`] is a pure function from one subject's EDSS visits and relapse onsets to
//! disability events. It follows msprog's `MSprog()` scan (R package msprog, `R/MSprog.R`,
//! development version 1.0.0.9000) and docs/clinical-reference.md §2.2–2.3, so that its confirmed events can
//! be checked against numbers published by someone else.
//!
//! # The scan
//!
//! Visits are read in date order (sorted here; of two visits on one day the later in the
//! input is kept, as msprog does).
//!
//! 1. **Baseline.** The first visit that is not within `relapse_exclusion_days` after a
//!    relapse onset (0 ≤ visit − onset < N days; a visit exactly N days after is usable).
//! 2. **Onset.** The first later visit that is worse than the baseline by the baseline's
//!    [`MinimumChange`] (or better, when improvements are wanted). The onset itself may lie
//!    inside a relapse window: such worsening still counts (msprog `relapse_to_event=0`).
//! 3. **Confirmation window.** From `onset + confirm_after_days − confirm_tolerance_before_days`
//!    to `onset + confirm_after_days + confirm_tolerance_after_days` (unbounded when `None`),
//!    both ends inclusive. A visit in the window is *eligible* unless it lies within
//!    `relapse_exclusion_days` after a relapse onset.
//! 4. **Verdict.** Only the *first* eligible visit decides. The onset is confirmed when that
//!    visit is still worse than the baseline (measured from the baseline, not from the onset)
//!    and every visit between onset and that visit is worse too, relapse-window visits
//!    included (msprog's default `check_intermediate=TRUE`: "confirmed over 84 days").
//!    Otherwise it is disproved. With `sustained`, every visit after the onset up to the
//!    last visit must stay worse as well (msprog `require_sust_days=Inf`).
//! 5. **Next search.** After a confirmed event the search goes on after the confirmation
//!    visit; after an unconfirmed onset it goes on from the visit after the onset.
//!    * `Fixed`: the baseline never moves and the scan ends at the first confirmed
//!      worsening (msprog `event="firstCDW"`); with `include_improvement` the first
//!      confirmed improvement before it is reported too.
//!    * `Roving`: after every confirmed event the baseline moves to its confirmation visit
//!      (msprog `proceed_from="firstconf"`), so each further event is measured from there.
//!      Improvements move it too when `include_improvement` is on. As in msprog, the
//!      baseline moves even when `sustained` later rejects the event.
//!
//! # What is returned, in onset order
//!
//! * Every confirmed worsening ([`EventStatus::Confirmed`]) and, with `include_improvement`,
//!   every confirmed improvement: msprog's `firstCDW` events for `Fixed`, and its
//!   `event="multiple", baseline="roving"` events for `Roving` with `include_improvement`.
//! * Every **alerted worsening onset** that did not end confirmed, with `confirmation: None`.
//!   An onset is alerted when, looking only at the visits up to some date, it was the
//!   earliest worsening still awaiting confirmation. That is the moment the daemon raises its
//!   "unconfirmed worsening" alert, so once returned, such an onset keeps being returned as
//!   visits are appended: its [`EventStatus`] then says whether it is still `Pending`, was
//!   `Disproved`, or `Lapsed` (a later visit shows its bounded window passed with no eligible
//!   visit in it). Later worse visits of the same excursion are not separate onsets, and a
//!   disproved onset never blocks finding later events.
//!
//! Unconfirmed improvements are not returned. With `sustained`, a confirmation is provisional:
//! a later visit that is not worse turns the event into a disproved onset.

use crate::model::{Edss, EdssVisit, MinimumChange};
use chrono::{NaiveDate, TimeDelta};
use serde::{Deserialize, Serialize};

/// Which visit worsening is measured from: protocols pick one, and the choice changes the
/// event count (Kappos et al., MSJ 2018).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// The first visit out of relapse influence, for the whole follow-up.
    /// `first` is accepted as an alias, the word the rule files use.
    #[default]
    #[serde(alias = "first")]
    Fixed,
    /// Moved to the confirmation visit of each confirmed event.
    Roving,
}

/// Settings of the confirmed-worsening definition; every threshold is a protocol choice.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressionParams {
    pub baseline: Baseline,
    /// The baseline-dependent minimum EDSS change (docs/clinical-reference.md §2.2).
    pub min_change: MinimumChange,
    /// Days from onset to the confirmation target, e.g. 84 for 12 weeks.
    pub confirm_after_days: i64,
    /// A confirmation visit this many days before the target still counts (msprog: 7).
    pub confirm_tolerance_before_days: i64,
    /// A confirmation visit this many days after the target still counts; `None` means no
    /// limit (msprog's default of 730.5 days is the same as `Some(730)` on whole days).
    pub confirm_tolerance_after_days: Option<i64>,
    /// No baseline or confirmation visit within this many days after a relapse onset.
    pub relapse_exclusion_days: i64,
    /// Every visit from onset to the end of follow-up must stay worse than baseline.
    pub sustained: bool,
    /// Also report confirmed improvements (and, with a roving baseline, re-baseline on them).
    pub include_improvement: bool,
}

impl Default for ProgressionParams {
    /// msprog's EDSS defaults with a fixed baseline and a window unbounded on the right.
    fn default() -> Self {
        Self {
            baseline: Baseline::Fixed,
            min_change: MinimumChange::variant_a(),
            confirm_after_days: 84,
            confirm_tolerance_before_days: 7,
            confirm_tolerance_after_days: None,
            relapse_exclusion_days: 30,
            sustained: false,
            include_improvement: false,
        }
    }
}

/// The direction of a change, so alerts can tell worsening from improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Worsening,
    Improvement,
}

/// Where an event stands, so the daemon can word (and later close) its alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Confirmed (and, with `sustained`, sustained so far).
    Confirmed,
    /// No eligible confirmation visit yet and nothing against it; see
    /// [`ProgressionEvent::awaiting_confirmation`] for whether it still can be confirmed.
    Pending,
    /// A visit that had to be worse than baseline was not.
    Disproved,
    /// A later visit shows the bounded window passed with no eligible visit in it.
    Lapsed,
}

/// The dates a confirmation visit may have, both inclusive, kept as evidence for the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConfirmationWindow {
    pub opens: NaiveDate,
    /// `None`: no upper limit.
    pub closes: Option<NaiveDate>,
}

/// One disability event with the visits that make it one: the evidence an alert carries.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressionEvent {
    pub kind: EventKind,
    /// The reference score used.
    pub baseline: EdssVisit,
    /// First visit meeting the threshold.
    pub onset: EdssVisit,
    /// `None`: unconfirmed (pending, disproved or lapsed; see `status`).
    pub confirmation: Option<EdssVisit>,
    /// The minimum change applied to this baseline.
    pub required_change: f64,
    pub status: EventStatus,
    pub window: ConfirmationWindow,
}

impl ProgressionEvent {
    /// True when a confirmation visit was found (and, with `sustained`, held).
    pub fn is_confirmed(&self) -> bool {
        self.confirmation.is_some()
    }

    /// True while a pending onset can still be confirmed by a visit on or after `as_of`
    /// (today, for the daemon): `assess` itself never reads the clock.
    pub fn awaiting_confirmation(&self, as_of: NaiveDate) -> bool {
        self.status == EventStatus::Pending && self.window.closes.is_none_or(|c| as_of <= c)
    }
}

/// Confirmed events and alerted worsening onsets for one subject (see the module comment for
/// exactly what counts). `visits` need not be sorted; `relapses` are relapse onset dates.
pub fn assess(
    visits: &[EdssVisit],
    relapses: &[NaiveDate],
    params: &ProgressionParams,
) -> Vec<ProgressionEvent> {
    let visits = by_date(visits);
    let scanner = Scanner { params, relapses };
    // The earliest worsening awaiting confirmation, as seen after each visit in turn: one
    // re-scan per visit, cubic at worst, which is nothing for a trial's tens of visits.
    let alerted: Vec<usize> = (0..visits.len())
        .filter_map(|last| {
            scanner
                .scan(&visits[..=last])
                .into_iter()
                .find(|s| s.kind == EventKind::Worsening && s.verdict == Verdict::Pending)
                .map(|s| s.onset)
        })
        .collect();
    scanner
        .scan(&visits)
        .into_iter()
        .filter(|s| {
            s.verdict.confirmed_at().is_some()
                || (s.kind == EventKind::Worsening && alerted.contains(&s.onset))
        })
        .filter_map(|s| scanner.event(&visits, &s))
        .collect()
}

/// Visits in date order, one per day (the later record wins), as msprog reads them.
fn by_date(visits: &[EdssVisit]) -> Vec<EdssVisit> {
    let mut sorted = visits.to_vec();
    sorted.sort_by_key(|v| v.date);
    let mut out: Vec<EdssVisit> = Vec::with_capacity(sorted.len());
    for v in sorted {
        match out.last_mut() {
            Some(last) if last.date == v.date => *last = v,
            _ => out.push(v),
        }
    }
    out
}

/// What the visits say about one candidate onset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The first eligible visit (index `at`) confirms; `retained` is false when `sustained`
    /// is on and a later visit falls back.
    Confirmed {
        at: usize,
        retained: bool,
    },
    Disproved,
    Lapsed,
    Pending,
}

impl Verdict {
    /// The confirmation visit of an event that counts.
    fn confirmed_at(self) -> Option<usize> {
        match self {
            Self::Confirmed { at, retained: true } => Some(at),
            _ => None,
        }
    }

    fn status(self) -> EventStatus {
        match self {
            Self::Confirmed { retained: true, .. } => EventStatus::Confirmed,
            Self::Confirmed { retained: false, .. } | Self::Disproved => EventStatus::Disproved,
            Self::Lapsed => EventStatus::Lapsed,
            Self::Pending => EventStatus::Pending,
        }
    }
}

/// One candidate onset met by the scan, by index into the visits scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    kind: EventKind,
    baseline: usize,
    onset: usize,
    verdict: Verdict,
}

/// The settings and relapses shared by every scan of one subject.
struct Scanner<'a> {
    params: &'a ProgressionParams,
    relapses: &'a [NaiveDate],
}

impl Scanner<'_> {
    /// True within `relapse_exclusion_days` after a relapse onset (onset day included).
    fn after_relapse(&self, date: NaiveDate) -> bool {
        let n = self.params.relapse_exclusion_days;
        self.relapses.iter().any(|r| (0..n).contains(&days_between(*r, date)))
    }

    /// True when `score` has moved from `baseline` by the required change in direction `kind`.
    fn meets(&self, kind: EventKind, baseline: Edss, score: Edss) -> bool {
        match kind {
            EventKind::Worsening => self.params.min_change.is_worse(baseline, score),
            EventKind::Improvement => self.params.min_change.is_better(baseline, score),
        }
    }

    /// Days after onset that bound the window: (opens, closes).
    fn window_days(&self) -> (i64, Option<i64>) {
        let p = self.params;
        let opens = p.confirm_after_days.saturating_sub(p.confirm_tolerance_before_days);
        let closes = p.confirm_tolerance_after_days.map(|t| p.confirm_after_days.saturating_add(t));
        (opens, closes)
    }

    /// Judges the onset at `visits[onset]` against `baseline` with the visits after it.
    fn verdict(&self, visits: &[EdssVisit], baseline: Edss, onset: usize, kind: EventKind) -> Verdict {
        let Some(onset_date) = visits.get(onset).map(|v| v.date) else {
            return Verdict::Pending;
        };
        let holds = |v: &EdssVisit| self.meets(kind, baseline, v.score);
        let (opens, closes) = self.window_days();
        for (i, v) in visits.iter().enumerate().skip(onset + 1) {
            let offset = days_between(onset_date, v.date);
            if closes.is_some_and(|c| offset > c) {
                return Verdict::Lapsed;
            }
            if offset >= opens && !self.after_relapse(v.date) {
                if !holds(v) {
                    return Verdict::Disproved;
                }
                let retained = !self.params.sustained || visits.iter().skip(i + 1).all(holds);
                return Verdict::Confirmed { at: i, retained };
            }
            if !holds(v) {
                return Verdict::Disproved;
            }
        }
        Verdict::Pending
    }

    /// msprog's sequential scan over date-sorted visits: every candidate onset, in order.
    fn scan(&self, visits: &[EdssVisit]) -> Vec<Step> {
        let p = self.params;
        let mut steps = Vec::new();
        let Some(mut baseline) = visits.iter().position(|v| !self.after_relapse(v.date)) else {
            return steps;
        };
        let mut from = baseline + 1;
        let mut improvement_found = false;
        while let Some(base) = visits.get(baseline).map(|v| v.score) {
            let want_improvement =
                p.include_improvement && (p.baseline == Baseline::Roving || !improvement_found);
            let candidate = visits.iter().enumerate().skip(from).find_map(|(i, v)| {
                if self.meets(EventKind::Worsening, base, v.score) {
                    Some((i, EventKind::Worsening))
                } else if want_improvement && self.meets(EventKind::Improvement, base, v.score) {
                    Some((i, EventKind::Improvement))
                } else {
                    None
                }
            });
            let Some((onset, kind)) = candidate else {
                break;
            };
            let verdict = self.verdict(visits, base, onset, kind);
            steps.push(Step { kind, baseline, onset, verdict });
            from = onset + 1;
            if let Verdict::Confirmed { at, retained } = verdict {
                match p.baseline {
                    // msprog moves a roving baseline even when the event is not retained.
                    Baseline::Roving => {
                        baseline = at;
                        from = at + 1;
                    }
                    Baseline::Fixed if retained => match kind {
                        EventKind::Worsening => break,
                        EventKind::Improvement => {
                            improvement_found = true;
                            from = at + 1;
                        }
                    },
                    Baseline::Fixed => {}
                }
            }
        }
        steps
    }

    /// The public form of a step; `None` only if the step does not fit `visits`.
    fn event(&self, visits: &[EdssVisit], step: &Step) -> Option<ProgressionEvent> {
        let baseline = visits.get(step.baseline)?.clone();
        let onset = visits.get(step.onset)?.clone();
        let confirmation = match step.verdict.confirmed_at() {
            Some(at) => Some(visits.get(at)?.clone()),
            None => None,
        };
        let (opens, closes) = self.window_days();
        let window = ConfirmationWindow {
            opens: shift(onset.date, opens).unwrap_or(NaiveDate::MAX),
            closes: closes.and_then(|c| shift(onset.date, c)),
        };
        Some(ProgressionEvent {
            kind: step.kind,
            required_change: self.params.min_change.required(baseline.score),
            baseline,
            onset,
            confirmation,
            status: step.verdict.status(),
            window,
        })
    }
}

/// Whole days from `from` to `to` (negative when `to` is earlier).
fn days_between(from: NaiveDate, to: NaiveDate) -> i64 {
    to.signed_duration_since(from).num_days()
}

/// `date` moved by `days`, or `None` past chrono's calendar range.
fn shift(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    date.checked_add_signed(TimeDelta::try_days(days)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + TimeDelta::days(n)
    }

    fn v(d: i64, score: f64) -> EdssVisit {
        EdssVisit { date: day(d), visit: None, score: Edss::parse(score).unwrap() }
    }

    fn visits(list: &[(i64, f64)]) -> Vec<EdssVisit> {
        list.iter().map(|&(d, s)| v(d, s)).collect()
    }

    fn confirmed(events: &[ProgressionEvent]) -> Vec<&ProgressionEvent> {
        events.iter().filter(|e| e.is_confirmed()).collect()
    }

    // ---- msprog toy data -------------------------------------------------------------

    type Subjects = BTreeMap<u32, (Vec<EdssVisit>, Vec<NaiveDate>)>;

    fn csv_rows(name: &str) -> Vec<Vec<String>> {
        let path = format!("{}/tests/data/ms-msprog/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split(',').map(|f| f.trim().to_string()).collect())
            .collect()
    }

    /// Columns: visits `id,date,visit_day,EDSS,SDMT`; relapses `id,date,visit_day`.
    fn toy_data() -> Subjects {
        let mut subjects = Subjects::new();
        for r in csv_rows("toydata_visits.csv") {
            let visit = EdssVisit {
                date: r[1].parse().unwrap(),
                visit: Some(format!("day {}", r[2])),
                score: Edss::parse(r[3].parse().unwrap()).unwrap(),
            };
            subjects.entry(r[0].parse().unwrap()).or_default().0.push(visit);
        }
        for r in csv_rows("toydata_relapses.csv") {
            subjects.entry(r[0].parse().unwrap()).or_default().1.push(r[1].parse().unwrap());
        }
        subjects
    }

    /// The msprog README settings: 84 days, -7/+730.5 days, relapse 30 days, msprog deltas.
    fn msprog_readme(baseline: Baseline, include_improvement: bool) -> ProgressionParams {
        ProgressionParams {
            baseline,
            include_improvement,
            confirm_tolerance_after_days: Some(730),
            ..ProgressionParams::default()
        }
    }

    fn days_from_first(visits: &[EdssVisit], e: &ProgressionEvent) -> i64 {
        let first = visits.iter().map(|v| v.date).min().unwrap();
        days_between(first, e.onset.date)
    }

    #[test]
    fn toydata_has_seven_subjects_and_five_relapses() {
        let data = toy_data();
        assert_eq!(data.len(), 7);
        assert_eq!(data.values().map(|(v, _)| v.len()).sum::<usize>(), 57);
        assert_eq!(data.values().map(|(_, r)| r.len()).sum::<usize>(), 5);
    }

    #[test]
    fn msprog_fixed_baseline_first_cdw_in_4_of_7() {
        for after in [Some(730), None] {
            let params = ProgressionParams {
                confirm_tolerance_after_days: after,
                ..msprog_readme(Baseline::Fixed, false)
            };
            let mut first_cdw = BTreeMap::new();
            for (id, (vis, rel)) in toy_data() {
                let events = assess(&vis, &rel, &params);
                let cdw: Vec<_> = confirmed(&events);
                assert!(cdw.len() <= 1, "fixed baseline stops at the first CDW");
                if let Some(e) = cdw.first() {
                    first_cdw.insert(id, days_from_first(&vis, e));
                }
            }
            let expected = BTreeMap::from([(1, 292), (2, 198), (5, 140), (7, 372)]);
            assert_eq!(first_cdw, expected, "tolerance after: {after:?}");
        }
    }

    #[test]
    fn msprog_roving_baseline_event_sequences_match_the_readme() {
        use EventKind::{Improvement as Cdi, Worsening as Cdw};
        let expected: BTreeMap<u32, Vec<(EventKind, i64, i64)>> = BTreeMap::from([
            // (kind, days from first visit to event, days from current baseline to event)
            (1, vec![(Cdw, 292, 292)]),
            (2, vec![(Cdw, 198, 198), (Cdw, 539, 257)]),
            (3, vec![]),
            (4, vec![(Cdi, 77, 77), (Cdw, 304, 129)]),
            (5, vec![(Cdw, 140, 140)]),
            (6, vec![(Cdi, 120, 120)]),
            (7, vec![(Cdw, 372, 372)]),
        ]);
        let params = msprog_readme(Baseline::Roving, true);
        let mut got = BTreeMap::new();
        for (id, (vis, rel)) in toy_data() {
            let events = assess(&vis, &rel, &params);
            let seq: Vec<_> = confirmed(&events)
                .into_iter()
                .map(|e| {
                    let bl2event = days_between(e.baseline.date, e.onset.date);
                    (e.kind, days_from_first(&vis, e), bl2event)
                })
                .collect();
            got.insert(id, seq);
        }
        assert_eq!(got, expected);
        let all: Vec<_> = got.values().flatten().collect();
        assert_eq!(all.iter().filter(|e| e.0 == Cdw).count(), 6);
        assert_eq!(all.iter().filter(|e| e.0 == Cdi).count(), 2);
    }

    /// Beyond msprog's table: the unconfirmed onsets the daemon alerts on for the toy data.
    #[test]
    fn msprog_roving_unconfirmed_onsets() {
        let params = msprog_readme(Baseline::Roving, true);
        let data = toy_data();
        let unconfirmed = |id: u32| {
            let (vis, rel) = &data[&id];
            assess(vis, rel, &params)
                .into_iter()
                .filter(|e| !e.is_confirmed())
                .map(|e| (days_from_first(vis, &e), e.status))
                .collect::<Vec<_>>()
        };
        // 3.5 -> 4.5 at day 44; the first eligible visit (day 320) is 3.5, and day 120 is an
        // intermediate 3.5 (76 days after onset: one day short of the window).
        assert_eq!(unconfirmed(3), [(44, EventStatus::Disproved)]);
        // 4.5 -> 6.0 at day 430, the second-to-last visit: nothing eligible yet.
        assert_eq!(unconfirmed(6), [(430, EventStatus::Pending)]);
        // 3.5 -> 5.0 at day 185 (relapse that day): day 267 is back at 3.5.
        assert_eq!(unconfirmed(7), [(185, EventStatus::Disproved)]);
    }

    #[test]
    fn alerted_onsets_never_disappear_as_visits_arrive() {
        for baseline in [Baseline::Fixed, Baseline::Roving] {
            let params = msprog_readme(baseline, true);
            for (id, (vis, rel)) in toy_data() {
                let mut before: Vec<(NaiveDate, bool)> = Vec::new();
                for n in 1..=vis.len() {
                    let now: Vec<_> = assess(&vis[..n], &rel, &params)
                        .iter()
                        .map(|e| (e.onset.date, e.is_confirmed()))
                        .collect();
                    for (date, was_confirmed) in &before {
                        let still = now.iter().find(|(d, _)| d == date);
                        assert!(still.is_some(), "subject {id}: onset {date} vanished at {n}");
                        assert!(!was_confirmed || still.is_some_and(|s| s.1), "subject {id}");
                    }
                    before = now;
                }
            }
        }
    }

    // ---- boundaries --------------------------------------------------------------------

    #[test]
    fn baseline_5_5_to_6_0_is_worsening_under_variant_a_only() {
        let vis = visits(&[(0, 5.5), (100, 6.0), (200, 6.0)]);
        let a = assess(&vis, &[], &ProgressionParams::default());
        assert_eq!(a.len(), 1);
        assert!(a[0].is_confirmed());
        assert_eq!(a[0].required_change, 0.5);
        assert_eq!(a[0].confirmation.as_ref().map(|c| c.date), Some(day(200)));

        let b = ProgressionParams { min_change: MinimumChange::variant_b(), ..Default::default() };
        assert!(assess(&vis, &[], &b).is_empty());
    }

    #[test]
    fn confirmation_window_opens_at_onset_plus_84_minus_7_inclusive() {
        let p = ProgressionParams::default();
        let on_edge = assess(&visits(&[(0, 4.0), (10, 5.0), (87, 5.0)]), &[], &p);
        assert_eq!(on_edge.len(), 1);
        assert_eq!(on_edge[0].status, EventStatus::Confirmed);
        assert_eq!(on_edge[0].confirmation, Some(v(87, 5.0)));
        assert_eq!(on_edge[0].window.opens, day(87));

        let day_early = assess(&visits(&[(0, 4.0), (10, 5.0), (86, 5.0)]), &[], &p);
        assert_eq!(day_early.len(), 1);
        assert_eq!(day_early[0].confirmation, None);
        assert_eq!(day_early[0].status, EventStatus::Pending);
    }

    #[test]
    fn bounded_window_closes_inclusively_and_then_lapses() {
        let p = ProgressionParams { confirm_tolerance_after_days: Some(30), ..Default::default() };
        let last_day = assess(&visits(&[(0, 4.0), (10, 5.0), (124, 5.0)]), &[], &p);
        assert!(last_day[0].is_confirmed());
        assert_eq!(last_day[0].window.closes, Some(day(124)));

        let late = assess(&visits(&[(0, 4.0), (10, 5.0), (125, 5.0)]), &[], &p);
        // Day 125 lapses the day-10 onset; it is itself a new onset, awaiting its own window.
        let statuses: Vec<_> = late.iter().map(|e| (e.onset.date, e.status)).collect();
        assert_eq!(statuses, [(day(10), EventStatus::Lapsed), (day(125), EventStatus::Pending)]);
    }

    #[test]
    fn confirmation_inside_relapse_exclusion_does_not_confirm() {
        let p = ProgressionParams::default();
        let vis = visits(&[(0, 4.0), (10, 5.0), (100, 5.0)]);
        // Relapse onset 29 days before the only candidate: excluded.
        let excluded = assess(&vis, &[day(71)], &p);
        assert_eq!(excluded.len(), 1);
        assert_eq!(excluded[0].status, EventStatus::Pending);
        // Exactly 30 days after the relapse onset the visit counts again.
        let allowed = assess(&vis, &[day(70)], &p);
        assert!(allowed[0].is_confirmed());
        // An excluded visit is skipped, and the next eligible one confirms.
        let later = assess(&visits(&[(0, 4.0), (10, 5.0), (100, 5.0), (150, 5.0)]), &[day(80)], &p);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].confirmation, Some(v(150, 5.0)));
    }

    #[test]
    fn baseline_inside_relapse_exclusion_moves_to_the_next_visit() {
        let p = ProgressionParams::default();
        let vis = visits(&[(0, 2.0), (40, 3.5), (130, 4.5), (230, 4.5)]);
        let events = assess(&vis, &[day(-5)], &p);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].baseline, v(40, 3.5));
        assert_eq!(events[0].onset, v(130, 4.5));
        assert!(events[0].is_confirmed());
        // Without the relapse, day 0 is the baseline and 2.0 -> 3.5 is the worsening.
        let no_relapse = assess(&vis, &[], &p);
        assert_eq!(no_relapse[0].baseline, v(0, 2.0));
        assert_eq!(no_relapse[0].onset, v(40, 3.5));
        // Every visit in relapse influence: no baseline, no events.
        assert!(assess(&visits(&[(0, 2.0), (10, 4.0)]), &[day(0)], &p).is_empty());
    }

    #[test]
    fn unconfirmed_onset_at_last_visit_is_returned_pending() {
        let p = ProgressionParams { confirm_tolerance_after_days: Some(30), ..Default::default() };
        let events = assess(&visits(&[(0, 4.0), (90, 5.0)]), &[], &p);
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.kind, e.status, e.confirmation.clone()),
            (EventKind::Worsening, EventStatus::Pending, None)
        );
        assert_eq!(e.required_change, 1.0);
        assert!(e.awaiting_confirmation(day(120)));
        assert!(e.awaiting_confirmation(day(204)));
        assert!(!e.awaiting_confirmation(day(205)));
    }

    #[test]
    fn a_dip_between_onset_and_confirmation_disproves() {
        let vis = visits(&[(0, 4.0), (10, 5.0), (50, 4.0), (100, 5.0)]);
        let sustained = ProgressionParams { sustained: true, ..Default::default() };
        // As in msprog (check_intermediate=TRUE), the visits in between must be worse even
        // without `sustained`; day 100 is then a new onset of its own.
        for p in [sustained, ProgressionParams::default()] {
            let events = assess(&vis, &[], &p);
            let seen: Vec<_> = events.iter().map(|e| (e.onset.date, e.status)).collect();
            assert_eq!(seen, [(day(10), EventStatus::Disproved), (day(100), EventStatus::Pending)]);
        }
        // A dip inside a relapse window counts against the onset too.
        let in_relapse = assess(&vis, &[day(45)], &ProgressionParams::default());
        assert_eq!(in_relapse[0].status, EventStatus::Disproved);
    }

    #[test]
    fn sustained_also_rejects_a_fall_after_confirmation() {
        let vis = visits(&[(0, 4.0), (10, 5.0), (100, 5.0), (200, 4.0)]);
        assert!(assess(&vis, &[], &ProgressionParams::default())[0].is_confirmed());
        let p = ProgressionParams { sustained: true, ..Default::default() };
        let events = assess(&vis, &[], &p);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].status, EventStatus::Disproved);
    }

    #[test]
    fn disproved_onset_is_kept_and_does_not_block_later_events() {
        let vis = visits(&[(0, 4.0), (10, 5.0), (40, 5.0), (100, 4.0), (200, 5.0), (300, 5.0)]);
        let events = assess(&vis, &[], &ProgressionParams::default());
        let seen: Vec<_> = events.iter().map(|e| (e.onset.date, e.status)).collect();
        // Day 40 is the same excursion as day 10, never awaiting confirmation on its own.
        assert_eq!(seen, [(day(10), EventStatus::Disproved), (day(200), EventStatus::Confirmed)]);
    }

    #[test]
    fn roving_baseline_moves_to_the_confirmation_visit() {
        let vis = visits(&[(0, 2.0), (10, 3.0), (100, 3.0), (200, 4.0), (300, 4.0)]);
        let fixed = assess(&vis, &[], &ProgressionParams::default());
        assert_eq!(confirmed(&fixed).len(), 1);

        let p = ProgressionParams { baseline: Baseline::Roving, ..Default::default() };
        let roving = assess(&vis, &[], &p);
        let got: Vec<_> = roving.iter().map(|e| (e.baseline.date, e.onset.date)).collect();
        assert_eq!(got, [(day(0), day(10)), (day(100), day(200))]);
        assert!(roving.iter().all(ProgressionEvent::is_confirmed));
    }

    #[test]
    fn roving_rebaselines_on_improvement_only_when_asked() {
        // 4.0 -> 3.0 confirmed, then back to 4.0: worse than 3.0, not than 4.0.
        let vis = visits(&[(0, 4.0), (10, 3.0), (100, 3.0), (200, 4.0), (300, 4.0)]);
        let p = ProgressionParams { baseline: Baseline::Roving, ..Default::default() };
        assert!(assess(&vis, &[], &p).is_empty());
        let with = ProgressionParams { include_improvement: true, ..p };
        let kinds: Vec<_> = assess(&vis, &[], &with).iter().map(|e| (e.kind, e.is_confirmed())).collect();
        assert_eq!(kinds, [(EventKind::Improvement, true), (EventKind::Worsening, true)]);
    }

    #[test]
    fn unsorted_input_and_same_day_repeats() {
        let mut vis = visits(&[(100, 5.0), (0, 4.0), (10, 4.0)]);
        vis.push(v(10, 5.0)); // a later record for day 10 replaces the earlier one
        let events = assess(&vis, &[], &ProgressionParams::default());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].onset, v(10, 5.0));
        assert!(events[0].is_confirmed());
    }

    #[test]
    fn empty_and_single_visit_give_nothing() {
        assert!(assess(&[], &[], &ProgressionParams::default()).is_empty());
        assert!(assess(&[], &[day(0)], &ProgressionParams::default()).is_empty());
        assert!(assess(&visits(&[(0, 6.0)]), &[], &ProgressionParams::default()).is_empty());
    }

    #[test]
    fn odd_settings_do_not_panic() {
        let vis = visits(&[(0, 4.0), (10, 5.0), (20, 5.0)]);
        let p = ProgressionParams {
            confirm_after_days: i64::MAX,
            confirm_tolerance_before_days: i64::MIN,
            confirm_tolerance_after_days: Some(i64::MAX),
            relapse_exclusion_days: -5,
            ..Default::default()
        };
        let events = assess(&vis, &[day(0)], &p);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].window.opens, NaiveDate::MAX);
    }

    #[test]
    fn baseline_reads_snake_case_and_the_rule_file_word() {
        let read = |s: &str| serde_json::from_str::<Baseline>(s).unwrap();
        assert_eq!(read("\"fixed\""), Baseline::Fixed);
        assert_eq!(read("\"roving\""), Baseline::Roving);
        assert_eq!(read("\"first\""), Baseline::Fixed);
        assert!(serde_json::from_str::<Baseline>("\"Roving\"").is_err());
    }
}
