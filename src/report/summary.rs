//! The numbers of the open DSMB report, computed from subject histories.
//!
//! Every collection here is ordered (subjects by id, visits by protocol order), so the
//! same input always gives the same summary, whatever order the histories arrive in.

use super::{DsmbInput, DsmbSummary};
use crate::model::{
    AdverseEvent, ClinicalTime, CtcaeGrade, Dose, Edss, MriReference, Precision, Relatedness, Seriousness,
    SubjectHistory, SubjectId,
};
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// A count of events and of distinct subjects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub events: usize,
    pub subjects: usize,
}

/// Subjects with at least one record carrying a visit label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitCompletion {
    pub visit: String,
    pub subjects: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    /// Subjects with any record.
    pub enrolled: usize,
    /// Subjects with at least one dose.
    pub dosed: usize,
    /// Every visit in report order, including protocol visits nobody has reached yet.
    pub visits: Vec<VisitCompletion>,
}

impl Disposition {
    /// `Enrolled: {n}. Dosed: {n}.`
    pub fn sentence(&self) -> String {
        format!("Enrolled: {}. Dosed: {}.", self.enrolled, self.dosed)
    }

    /// Subjects with a record at `visit`, if the visit is known at all.
    pub fn completed(&self, visit: &str) -> Option<usize> {
        self.visits.iter().find(|v| v.visit == visit).map(|v| v.subjects)
    }
}

/// Events and subjects by CTCAE grade. Events are counted at their own grade; a subject
/// is counted once, at their worst grade ("not graded" only when none of their events
/// has a grade), so the subject column adds up to `any.subjects`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GradeTable {
    /// Grades 1 to 5, at index 0 to 4.
    pub by_grade: [Tally; 5],
    pub not_graded: Tally,
    pub any: Tally,
}

impl GradeTable {
    /// The row of grade `g` (1 to 5); an empty tally for any other number.
    pub fn grade(&self, g: u8) -> Tally {
        match g {
            1..=5 => self.by_grade[usize::from(g) - 1],
            _ => Tally::default(),
        }
    }

    fn slot(&mut self, g: Option<CtcaeGrade>) -> &mut Tally {
        match g {
            Some(g) => {
                let i = usize::from(g.value()).clamp(1, 5) - 1;
                &mut self.by_grade[i]
            }
            None => &mut self.not_graded,
        }
    }

    fn from_subjects(per_subject: &[Vec<&AdverseEvent>]) -> Self {
        let mut t = Self::default();
        for events in per_subject.iter().filter(|e| !e.is_empty()) {
            t.any.events += events.len();
            t.any.subjects += 1;
            for ae in events {
                t.slot(ae.grade).events += 1;
            }
            let worst = events.iter().filter_map(|a| a.grade).max();
            t.slot(worst).subjects += 1;
        }
        t
    }
}

/// The ICH E2A seriousness criteria, in the order the report lists them.
pub const ICH_CRITERIA: [Seriousness; 6] = [
    Seriousness::Death,
    Seriousness::LifeThreatening,
    Seriousness::Hospitalization,
    Seriousness::Disability,
    Seriousness::CongenitalAnomaly,
    Seriousness::ImportantMedicalEvent,
];

/// Position in [`ICH_CRITERIA`]; the match fails to compile if a criterion is added.
fn criterion_index(s: Seriousness) -> usize {
    match s {
        Seriousness::Death => 0,
        Seriousness::LifeThreatening => 1,
        Seriousness::Hospitalization => 2,
        Seriousness::Disability => 3,
        Seriousness::CongenitalAnomaly => 4,
        Seriousness::ImportantMedicalEvent => 5,
    }
}

/// Adverse events (the current version of each) by grade and by seriousness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdverseEventSummary {
    pub grades: GradeTable,
    pub serious: Tally,
    /// One tally per criterion, in [`ICH_CRITERIA`] order. An event meeting two criteria
    /// counts under both, so these rows do not add up to `serious`.
    pub by_criterion: [Tally; 6],
    /// Serious events whose criterion was not recorded.
    pub serious_without_criterion: Tally,
}

impl AdverseEventSummary {
    pub fn criterion(&self, s: Seriousness) -> Tally {
        self.by_criterion[criterion_index(s)]
    }
}

/// When an infusion reaction began, relative to the dose before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoseTiming {
    /// Onset after the start of dose number `dose` (1 = first dose). `minutes` is
    /// `None` when the dose start has no time of day.
    AfterDose { dose: usize, minutes: Option<i64> },
    /// The onset is known to the minute but precedes every recorded dose.
    NoPrecedingDose,
    /// The onset is missing or has no time of day.
    OnsetTimeUnknown,
}

/// One line of the infusion reaction listing.
#[derive(Debug, Clone, PartialEq)]
pub struct InfusionReaction {
    pub subject: SubjectId,
    pub ae_id: Option<String>,
    pub term: String,
    pub grade: Option<CtcaeGrade>,
    pub serious: bool,
    pub related: Option<Relatedness>,
    /// Study day of onset relative to the subject's first dose (day 1, no day 0).
    pub onset_study_day: Option<i64>,
    /// The onset date was partial; the study day is the earliest plausible one.
    pub onset_partial: bool,
    pub timing: DoseTiming,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InfusionSummary {
    /// The configured terms, as given.
    pub terms: Vec<String>,
    pub grades: GradeTable,
    /// Ordered by subject, then onset (unknown last).
    pub listing: Vec<InfusionReaction>,
}

/// EDSS change from each subject's first EDSS, at one visit.
#[derive(Debug, Clone, PartialEq)]
pub struct EdssAtVisit {
    pub visit: String,
    /// Subjects with a post-baseline assessment at this visit.
    pub assessed: usize,
    pub mean_change: f64,
    pub worse: usize,
    pub stable: usize,
    pub better: usize,
}

impl EdssAtVisit {
    /// `EDSS worse than baseline at {visit}: {worse} of {assessed}`
    pub fn sentence(&self) -> String {
        format!("EDSS worse than baseline at {}: {} of {}", self.visit, self.worse, self.assessed)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EdssSummary {
    /// Subjects with at least one EDSS (their first one is the baseline).
    pub baseline_subjects: usize,
    pub baseline_mean: Option<f64>,
    /// One row per visit with post-baseline assessments, in visit order.
    pub by_visit: Vec<EdssAtVisit>,
}

impl EdssSummary {
    pub fn at(&self, visit: &str) -> Option<&EdssAtVisit> {
        self.by_visit.iter().find(|v| v.visit == visit)
    }
}

/// New or enlarging T2 lesions at one visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MriAtVisit {
    pub visit: String,
    pub scans: usize,
    /// Scans that carry no new/enlarging T2 count (not read, or not reported).
    pub scans_without_count: usize,
    /// Subjects with at least one scan at this visit that carries a count.
    pub subjects_scanned: usize,
    pub total_new_t2: u64,
    /// Subjects with at least one new or enlarging T2 lesion at this visit.
    pub subjects_with_new_t2: usize,
    /// Scans whose count is against the previous scan / against the baseline scan.
    pub against_previous: usize,
    pub against_baseline: usize,
}

impl MriAtVisit {
    /// `New or enlarging T2 lesions at {visit}: {with_any} of {scanned}`
    pub fn sentence(&self) -> String {
        format!(
            "New or enlarging T2 lesions at {}: {} of {}",
            self.visit, self.subjects_with_new_t2, self.subjects_scanned
        )
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataQuality {
    pub quarantined_records: u64,
    /// Records whose time is after the data cut-off (they are still counted).
    pub records_after_cutoff: usize,
    /// Post-baseline EDSS assessments without a visit label (not in the visit table).
    pub edss_without_visit: usize,
    /// MRI scans without a visit label (not in the visit table).
    pub mri_without_visit: usize,
    pub ae_onset_missing: usize,
    pub ae_onset_partial: usize,
}

impl DataQuality {
    /// `Quarantined records: {n}.`
    pub fn sentence(&self) -> String {
        format!("Quarantined records: {}.", self.quarantined_records)
    }
}

/// Compute the open DSMB report's numbers. Pure: no clock, no I/O, no treatment arm.
///
/// Histories that share a subject id are merged (records in slice order), so a subject
/// is never counted twice.
pub fn summarize(input: &DsmbInput) -> DsmbSummary {
    let subjects = merge_by_subject(input.subjects);
    let visits = order_visits(input.visit_order, &subjects);
    let mut quality = DataQuality {
        quarantined_records: input.quarantined_records,
        records_after_cutoff: subjects
            .iter()
            .flat_map(|h| &h.records)
            .filter(|r| r.when().is_some_and(|t| t.earliest() > input.as_of))
            .count(),
        ..DataQuality::default()
    };
    let events: Vec<Vec<&AdverseEvent>> = subjects.iter().map(|h| h.adverse_events()).collect();
    for ae in events.iter().flatten() {
        match &ae.onset {
            None => quality.ae_onset_missing += 1,
            Some(t) if t.is_partial() => quality.ae_onset_partial += 1,
            Some(_) => {}
        }
    }
    let (edss, edss_without_visit) = edss_summary(&subjects, &visits, input);
    let (mri, mri_without_visit) = mri_summary(&subjects, &visits);
    quality.edss_without_visit = edss_without_visit;
    quality.mri_without_visit = mri_without_visit;

    DsmbSummary {
        disposition: disposition(&subjects, &visits),
        adverse_events: adverse_event_summary(&events),
        infusion_reactions: infusion_summary(&subjects, input.infusion_reaction_terms),
        edss,
        mri,
        data_quality: quality,
        visits,
    }
}

/// One history per subject id, ordered by id.
fn merge_by_subject(subjects: &[SubjectHistory]) -> Vec<Cow<'_, SubjectHistory>> {
    let mut by_id: BTreeMap<&SubjectId, Vec<&SubjectHistory>> = BTreeMap::new();
    for h in subjects {
        by_id.entry(&h.subject).or_default().push(h);
    }
    by_id
        .into_values()
        .filter_map(|hs| match hs.as_slice() {
            [] => None,
            [one] => Some(Cow::Borrowed(*one)),
            [first, ..] => Some(Cow::Owned(SubjectHistory::new(
                first.subject.clone(),
                hs.iter().flat_map(|h| h.records.iter().cloned()).collect(),
            ))),
        })
        .collect()
}

/// Protocol visits in their given order, then every other label by first date (undated
/// last), ties by label.
fn order_visits(listed: &[String], subjects: &[Cow<'_, SubjectHistory>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in listed {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    let mut first: BTreeMap<&str, Option<DateTime<Utc>>> = BTreeMap::new();
    for r in subjects.iter().flat_map(|h| &h.records) {
        let Some(v) = r.visit.as_deref() else {
            continue;
        };
        if listed.iter().any(|l| l == v) {
            continue;
        }
        let t = r.when().map(ClinicalTime::earliest);
        let slot = first.entry(v).or_insert(t);
        *slot = match (*slot, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let mut rest: Vec<(bool, Option<DateTime<Utc>>, &str)> =
        first.into_iter().map(|(v, t)| (t.is_none(), t, v)).collect();
    rest.sort();
    out.extend(rest.into_iter().map(|(_, _, v)| v.to_string()));
    out
}

fn disposition(subjects: &[Cow<'_, SubjectHistory>], visits: &[String]) -> Disposition {
    Disposition {
        enrolled: subjects.iter().filter(|h| !h.records.is_empty()).count(),
        dosed: subjects.iter().filter(|h| !h.doses().is_empty()).count(),
        visits: visits
            .iter()
            .map(|v| VisitCompletion {
                visit: v.clone(),
                subjects: subjects
                    .iter()
                    .filter(|h| h.records.iter().any(|r| r.visit.as_deref() == Some(v)))
                    .count(),
            })
            .collect(),
    }
}

/// Events meeting `pred`, and the subjects with at least one of them.
fn tally(per_subject: &[Vec<&AdverseEvent>], pred: impl Fn(&AdverseEvent) -> bool) -> Tally {
    per_subject.iter().fold(Tally::default(), |mut t, events| {
        let n = events.iter().filter(|a| pred(a)).count();
        t.events += n;
        t.subjects += usize::from(n > 0);
        t
    })
}

fn adverse_event_summary(events: &[Vec<&AdverseEvent>]) -> AdverseEventSummary {
    AdverseEventSummary {
        grades: GradeTable::from_subjects(events),
        serious: tally(events, |a| a.serious),
        by_criterion: ICH_CRITERIA.map(|c| tally(events, |a| a.seriousness.contains(&c))),
        serious_without_criterion: tally(events, |a| a.serious && a.seriousness.is_empty()),
    }
}

fn infusion_summary(subjects: &[Cow<'_, SubjectHistory>], terms: &[String]) -> InfusionSummary {
    let wanted: BTreeSet<String> = terms.iter().map(|t| t.trim().to_lowercase()).collect();
    let mut per_subject: Vec<Vec<&AdverseEvent>> = Vec::new();
    let mut listing = Vec::new();
    for h in subjects {
        let mut irr: Vec<&AdverseEvent> = h
            .adverse_events()
            .into_iter()
            .filter(|a| wanted.contains(&a.term.trim().to_lowercase()))
            .collect();
        irr.sort_by_key(|a| {
            let onset = a.onset.as_ref().map(ClinicalTime::earliest);
            (onset.is_none(), onset)
        });
        let doses = h.doses();
        let first = doses.first().map(|d| &d.start);
        listing.extend(irr.iter().map(|a| InfusionReaction {
            subject: h.subject.clone(),
            ae_id: a.id.clone(),
            term: a.term.clone(),
            grade: a.grade,
            serious: a.serious,
            related: a.related,
            onset_study_day: a.onset.as_ref().zip(first).map(|(o, f)| o.study_day(f)),
            onset_partial: a.onset.as_ref().is_some_and(ClinicalTime::is_partial),
            timing: dose_timing(a.onset.as_ref(), &doses),
        }));
        per_subject.push(irr);
    }
    InfusionSummary { terms: terms.to_vec(), grades: GradeTable::from_subjects(&per_subject), listing }
}

/// Time from the start of the latest dose that began at or before the onset.
fn dose_timing(onset: Option<&ClinicalTime>, doses: &[&Dose]) -> DoseTiming {
    let Some(onset) = onset.filter(|o| o.precision() == Precision::Time) else {
        return DoseTiming::OnsetTimeUnknown;
    };
    let t = onset.earliest();
    match doses.iter().enumerate().rev().find(|(_, d)| d.start.earliest() <= t) {
        None => DoseTiming::NoPrecedingDose,
        Some((i, d)) => DoseTiming::AfterDose {
            dose: i + 1,
            minutes: (d.start.precision() == Precision::Time).then(|| (t - d.start.earliest()).num_minutes()),
        },
    }
}

#[derive(Default)]
struct EdssAcc {
    assessed: usize,
    change_halves: i64,
    worse: usize,
    stable: usize,
    better: usize,
}

/// Per visit: the change from each subject's first EDSS. When a subject has two
/// post-baseline assessments with the same label, the later one counts.
fn edss_summary(
    subjects: &[Cow<'_, SubjectHistory>],
    visits: &[String],
    input: &DsmbInput,
) -> (EdssSummary, usize) {
    let mut acc: BTreeMap<String, EdssAcc> = BTreeMap::new();
    let mut baselines: Vec<Edss> = Vec::new();
    let mut without_visit = 0;
    for h in subjects {
        let assessments = h.edss();
        let Some((baseline, later)) = assessments.split_first() else {
            continue;
        };
        let baseline = baseline.score;
        baselines.push(baseline);
        let mut at_visit: BTreeMap<&str, Edss> = BTreeMap::new();
        for a in later {
            match a.visit.as_deref() {
                Some(v) => {
                    at_visit.insert(v, a.score);
                }
                None => without_visit += 1,
            }
        }
        for (v, score) in at_visit {
            let e = acc.entry(v.to_string()).or_default();
            e.assessed += 1;
            e.change_halves += i64::from(score.halves()) - i64::from(baseline.halves());
            if input.edss_change.is_worse(baseline, score) {
                e.worse += 1;
            } else if input.edss_change.is_better(baseline, score) {
                e.better += 1;
            } else {
                e.stable += 1;
            }
        }
    }
    let by_visit = visits
        .iter()
        .filter_map(|v| {
            let e = acc.get(v).filter(|e| e.assessed > 0)?;
            Some(EdssAtVisit {
                visit: v.clone(),
                assessed: e.assessed,
                mean_change: e.change_halves as f64 / 2.0 / e.assessed as f64,
                worse: e.worse,
                stable: e.stable,
                better: e.better,
            })
        })
        .collect();
    let baseline_mean = (!baselines.is_empty()).then(|| {
        let halves: u64 = baselines.iter().map(|b| u64::from(b.halves())).sum();
        halves as f64 / 2.0 / baselines.len() as f64
    });
    let summary = EdssSummary { baseline_subjects: baselines.len(), baseline_mean, by_visit };
    (summary, without_visit)
}

#[derive(Default)]
struct MriAcc {
    scans: usize,
    scans_without_count: usize,
    subjects_scanned: usize,
    total_new_t2: u64,
    subjects_with_new_t2: usize,
    against_previous: usize,
    against_baseline: usize,
}

fn mri_summary(subjects: &[Cow<'_, SubjectHistory>], visits: &[String]) -> (Vec<MriAtVisit>, usize) {
    let mut acc: BTreeMap<String, MriAcc> = BTreeMap::new();
    let mut without_visit = 0;
    for h in subjects {
        // Per visit: did this subject have a counted scan, and any new T2 in it?
        let mut seen: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
        for (visit, scan) in h.mri() {
            let Some(v) = visit else {
                without_visit += 1;
                continue;
            };
            let e = acc.entry(v.to_string()).or_default();
            e.scans += 1;
            match scan.reference {
                MriReference::Previous => e.against_previous += 1,
                MriReference::Baseline => e.against_baseline += 1,
            }
            let s = seen.entry(v).or_default();
            match scan.t2_new_or_enlarging {
                None => e.scans_without_count += 1,
                Some(n) => {
                    e.total_new_t2 += u64::from(n);
                    s.0 = true;
                    s.1 |= n > 0;
                }
            }
        }
        for (v, (counted, any_new)) in seen {
            if let Some(e) = acc.get_mut(v) {
                e.subjects_scanned += usize::from(counted);
                e.subjects_with_new_t2 += usize::from(any_new);
            }
        }
    }
    let rows = visits
        .iter()
        .filter_map(|v| {
            let e = acc.get(v).filter(|e| e.scans > 0)?;
            Some(MriAtVisit {
                visit: v.clone(),
                scans: e.scans,
                scans_without_count: e.scans_without_count,
                subjects_scanned: e.subjects_scanned,
                total_new_t2: e.total_new_t2,
                subjects_with_new_t2: e.subjects_with_new_t2,
                against_previous: e.against_previous,
                against_baseline: e.against_baseline,
            })
        })
        .collect();
    (rows, without_visit)
}
