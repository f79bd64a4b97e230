//! The numbers of the DSMB report, computed from subject histories.
//!
//! Every collection here is ordered (subjects by id, visits by protocol order), so the
//! same input always gives the same summary, whatever order the histories arrive in.
//!
//! Populations: subjects with any record up to the cut-off are *screened*; those not
//! marked screen failures are *enrolled*; those with a dose are *dosed*, the safety
//! population. Adverse events, infusion reactions, laboratory results and exposure are
//! counted in the safety population, and every percentage is of its size N (FDA ST&F
//! convention). EDSS and MRI are counted over every subject with an assessment, as before.

use super::terms::{term_table, TermTable};
use super::{DsmbInput, DsmbSummary};
use crate::model::{
    AdverseEvent, ClinicalTime, CtcaeGrade, DispositionStatus, Dose, Edss, MriReference, Precision,
    Relatedness, Seriousness, SubjectHistory, SubjectId,
};
use crate::rules::progression::{self, EventKind, EventStatus, ProgressionParams};
use crate::store::AlertRow;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// The group of closed-report subjects whose records name no arm.
pub const NO_ARM: &str = "Arm not recorded";

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
    /// Every subject with a record at this visit (screening visits included).
    pub subjects: usize,
    /// Dosed subjects with a record at this visit (a share of N).
    pub dosed: usize,
}

/// Dosed subjects who left the study, by status and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discontinuation {
    pub status: DispositionStatus,
    pub reason: Option<String>,
    pub subjects: usize,
}

impl Discontinuation {
    /// "Withdrawn: adverse event", "Lost to follow-up", "Death".
    pub fn label(&self) -> String {
        let status = status_label(self.status);
        match &self.reason {
            Some(r) => format!("{status}: {r}"),
            None => status.to_string(),
        }
    }
}

fn status_label(s: DispositionStatus) -> &'static str {
    match s {
        DispositionStatus::Completed => "Completed",
        DispositionStatus::Withdrawn => "Withdrawn",
        DispositionStatus::ScreenFailure => "Screen failure",
        DispositionStatus::LostToFollowUp => "Lost to follow-up",
        DispositionStatus::Death => "Death",
    }
}

/// Report order of the statuses; the match fails to compile if a status is added.
fn status_rank(s: DispositionStatus) -> u8 {
    match s {
        DispositionStatus::Completed => 0,
        DispositionStatus::Withdrawn => 1,
        DispositionStatus::LostToFollowUp => 2,
        DispositionStatus::Death => 3,
        DispositionStatus::ScreenFailure => 4,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    /// Subjects with any record up to the cut-off.
    pub screened: usize,
    /// Never dosed, with the disposition "screen failure".
    pub screen_failures: usize,
    /// Screened minus screen failures.
    pub enrolled: usize,
    /// Subjects with at least one dose: the safety population, N.
    pub dosed: usize,
    /// Dosed subjects whose latest disposition is "completed".
    pub completed: usize,
    /// Dosed subjects with no disposition yet.
    pub ongoing: usize,
    /// Dosed subjects who left early, by status then reason.
    pub discontinued: Vec<Discontinuation>,
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

    /// Dosed subjects who left early, whatever the reason.
    pub fn discontinued_total(&self) -> usize {
        self.discontinued.iter().map(|d| d.subjects).sum()
    }
}

/// Doses given to the safety population.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposure {
    /// Dosed subjects (N).
    pub subjects: usize,
    pub doses: usize,
    /// (number of doses, subjects who received exactly that many), by number of doses.
    pub per_subject: Vec<(usize, usize)>,
    pub mean_doses: Option<f64>,
    pub median_doses: Option<f64>,
    pub min_doses: Option<usize>,
    pub max_doses: Option<usize>,
    /// Days from the first dose to the end (else start) of the last, inclusive.
    pub mean_days: Option<f64>,
    pub min_days: Option<i64>,
    pub max_days: Option<i64>,
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

/// The overview of adverse events (FDA ST&F table "overview of AEs"): the current
/// version of each event of the safety population.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdverseEventSummary {
    pub grades: GradeTable,
    /// Relatedness possible, probable or definite.
    pub related: Tally,
    /// CTCAE grade 3 or higher.
    pub grade3_plus: Tally,
    pub serious: Tally,
    /// One tally per criterion, in [`ICH_CRITERIA`] order. An event meeting two criteria
    /// counts under both, so these rows do not add up to `serious`.
    pub by_criterion: [Tally; 6],
    /// Serious events whose criterion was not recorded.
    pub serious_without_criterion: Tally,
    /// Events that led to permanent discontinuation of study treatment.
    pub discontinued: Tally,
    /// Fatal events: grade 5, the death criterion, or the outcome "fatal".
    pub fatal: Tally,
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
    /// Closed report only.
    pub arm: Option<String>,
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

/// One adverse event in a listing (SAE listing). Times are study days, never dates.
#[derive(Debug, Clone, PartialEq)]
pub struct AeLine {
    pub subject: SubjectId,
    /// Closed report only.
    pub arm: Option<String>,
    pub ae_id: Option<String>,
    /// The MedDRA preferred term when coded, else the reported term.
    pub term: String,
    pub grade: Option<CtcaeGrade>,
    pub criteria: Vec<Seriousness>,
    pub onset_study_day: Option<i64>,
    pub onset_partial: bool,
    pub outcome: Option<String>,
    pub related: Option<Relatedness>,
    pub discontinued: bool,
}

/// Where a death is known from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathSource {
    /// A fatal adverse event (grade 5, the death criterion or a fatal outcome).
    AdverseEvent,
    /// Only the disposition says "death".
    Disposition,
}

/// One line of the death listing.
#[derive(Debug, Clone, PartialEq)]
pub struct DeathLine {
    pub subject: SubjectId,
    /// Closed report only.
    pub arm: Option<String>,
    /// The fatal event's term, or the disposition's reason.
    pub cause: Option<String>,
    pub source: DeathSource,
    pub grade: Option<CtcaeGrade>,
    pub study_day: Option<i64>,
    pub outcome: Option<String>,
}

/// eDISH quadrant of a subject's peak values (FDA ST&F IG 2025, T21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quadrant {
    /// ALT or AST ≥ 3×ULN and total bilirubin ≥ 2×ULN.
    PotentialHysLaw,
    /// ALT and AST < 3×ULN, total bilirubin ≥ 2×ULN.
    Cholestasis,
    /// ALT or AST ≥ 3×ULN, total bilirubin < 2×ULN.
    TemplesCorollary,
    Normal,
}

impl Quadrant {
    /// The quadrant of peak ALT-or-AST and peak bilirubin, both as multiples of ULN;
    /// both boundaries are inclusive (≥ 3×, ≥ 2×), as in the FDA's eDISH plot.
    pub fn of(alt_ast_x_uln: f64, bili_x_uln: f64) -> Self {
        match (alt_ast_x_uln >= 3.0, bili_x_uln >= 2.0) {
            (true, true) => Self::PotentialHysLaw,
            (false, true) => Self::Cholestasis,
            (true, false) => Self::TemplesCorollary,
            (false, false) => Self::Normal,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::PotentialHysLaw => "Potential Hy's law",
            Self::Cholestasis => "Cholestasis",
            Self::TemplesCorollary => "Temple's corollary",
            Self::Normal => "Normal",
        }
    }
}

/// One subject on the eDISH plot.
#[derive(Debug, Clone, PartialEq)]
pub struct EdishPoint {
    pub subject: SubjectId,
    /// Closed report only.
    pub arm: Option<String>,
    /// Peak ALT or AST, as a multiple of each sample's own ULN.
    pub alt_ast_x_uln: f64,
    /// Peak total bilirubin, as a multiple of each sample's own ULN.
    pub bili_x_uln: f64,
    pub quadrant: Quadrant,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdishQuadrants {
    pub potential_hys_law: usize,
    pub cholestasis: usize,
    pub temples_corollary: usize,
    pub normal: usize,
}

impl EdishQuadrants {
    /// Subjects on the plot (with both an ALT/AST and a bilirubin result).
    pub fn plotted(&self) -> usize {
        self.potential_hys_law + self.cholestasis + self.temples_corollary + self.normal
    }
}

/// Liver tests of the safety population, each value divided by its own sample's ULN.
#[derive(Debug, Clone, PartialEq)]
pub struct LabSummary {
    /// Subjects with at least one ALT, AST or bilirubin result with a ULN.
    pub subjects_tested: usize,
    /// Subjects with any ALT > 3×ULN (strictly above, as the usual abnormality flag).
    pub alt_above_3: usize,
    pub ast_above_3: usize,
    pub alt_or_ast_above_3: usize,
    /// Subjects with any total bilirubin > 2×ULN.
    pub bili_above_2: usize,
    pub quadrants: EdishQuadrants,
    /// Ordered by subject.
    pub points: Vec<EdishPoint>,
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
    /// `EDSS worse than baseline at {visit}: {worse} of {assessed} (stable {s}, better {b})`
    pub fn sentence(&self) -> String {
        format!(
            "EDSS worse than baseline at {}: {} of {} (stable {}, better {})",
            self.visit, self.worse, self.assessed, self.stable, self.better
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EdssSummary {
    /// Subjects with at least one EDSS (their first one is the baseline).
    pub baseline_subjects: usize,
    pub baseline_mean: Option<f64>,
    /// One row per visit with post-baseline assessments, in visit order.
    pub by_visit: Vec<EdssAtVisit>,
    /// Subjects with at least two EDSS assessments (who can show a worsening).
    pub followed: usize,
    /// Subjects with a confirmed disability worsening (`rules::progression::assess`,
    /// default confirmation settings with the trial's minimum change).
    pub confirmed_worsening: usize,
    /// Subjects whose earliest worsening still awaits confirmation at the cut-off.
    pub pending_worsening: usize,
}

impl EdssSummary {
    pub fn at(&self, visit: &str) -> Option<&EdssAtVisit> {
        self.by_visit.iter().find(|v| v.visit == visit)
    }

    /// `Confirmed EDSS worsening: {n} of {followed} subjects followed (pending: {p})`
    pub fn confirmed_sentence(&self) -> String {
        format!(
            "Confirmed EDSS worsening: {} of {} subjects with a follow-up assessment (awaiting confirmation: {})",
            self.confirmed_worsening, self.followed, self.pending_worsening
        )
    }
}

/// New or enlarging T2 and gadolinium-enhancing lesions at one visit.
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
    /// Subjects with at least one scan at this visit with a Gd+ count.
    pub subjects_gd_read: usize,
    pub total_gd: u64,
    /// Subjects with at least one gadolinium-enhancing lesion at this visit.
    pub subjects_with_gd: usize,
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

/// Every number of one group of subjects: one arm, or all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSummary {
    /// "All subjects" (open), the arm, or "Total" (closed).
    pub label: String,
    pub disposition: Disposition,
    pub exposure: Exposure,
    pub adverse_events: AdverseEventSummary,
    pub by_term: TermTable,
    /// Serious adverse events, by subject then onset.
    pub serious_listing: Vec<AeLine>,
    /// By subject.
    pub deaths: Vec<DeathLine>,
    pub infusion_reactions: InfusionSummary,
    pub labs: LabSummary,
    pub edss: EdssSummary,
    /// One row per visit that has MRI scans, in visit order.
    pub mri: Vec<MriAtVisit>,
}

impl GroupSummary {
    /// The safety population: the N of every percentage.
    pub fn n(&self) -> usize {
        self.disposition.dosed
    }
}

/// Alerts of one severity, by status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeverityRow {
    pub severity: String,
    /// Aligned with [`AlertSummary::statuses`].
    pub by_status: Vec<usize>,
    pub total: usize,
}

/// One alert of the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertLine {
    pub id: i64,
    pub severity: String,
    pub status: String,
    /// Empty for cohort alerts.
    pub subject: String,
    pub rule_id: String,
    pub title: String,
    /// Study day of the subject when it was raised, if the subject has a first dose.
    pub raised_study_day: Option<i64>,
    /// The raising day (UTC); shown only where no study day exists (cohort alerts).
    pub raised_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSummary {
    pub total: usize,
    /// open, acknowledged, resolved, silenced, then any other status by name.
    pub statuses: Vec<String>,
    /// critical, warning, info, then any other severity by name.
    pub by_severity: Vec<SeverityRow>,
    /// Ordered by raising time, then id.
    pub listing: Vec<AlertLine>,
}

impl AlertSummary {
    /// Alerts still open (not acknowledged, resolved or silenced).
    pub fn open(&self) -> usize {
        self.listing.iter().filter(|a| a.status == "open").count()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataQuality {
    pub quarantined_records: u64,
    /// Records dated after the data cut-off: left out of every number.
    pub records_after_cutoff: usize,
    /// Alerts raised after the cut-off: left out.
    pub alerts_after_cutoff: usize,
    /// Post-baseline EDSS assessments without a visit label (not in the visit table).
    pub edss_without_visit: usize,
    /// MRI scans without a visit label (not in the visit table).
    pub mri_without_visit: usize,
    pub ae_onset_missing: usize,
    pub ae_onset_partial: usize,
    /// Adverse events of subjects never dosed (not in the safety tables).
    pub ae_not_dosed: usize,
    /// Fatal adverse events not marked serious (a contradiction to query).
    pub fatal_not_serious: usize,
    /// ALT, AST or bilirubin results without an upper limit of normal (not evaluable).
    pub liver_results_without_uln: usize,
    pub overdue_visits: usize,
    /// Closed report: subjects whose records name no arm.
    pub subjects_without_arm: usize,
}

impl DataQuality {
    /// `Quarantined records: {n}.`
    pub fn sentence(&self) -> String {
        format!("Quarantined records: {}.", self.quarantined_records)
    }
}

/// One subject's EDSS over time, for the trajectory chart.
#[derive(Debug, Clone, PartialEq)]
pub struct EdssTrajectory {
    pub subject: SubjectId,
    /// Closed report only.
    pub arm: Option<String>,
    /// (study day, EDSS), by day. Day 1 is the first dose; undosed subjects have none.
    pub points: Vec<(i64, f64)>,
}

/// What the charts need beyond the tables.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChartData {
    /// Each dosed subject's first dose day, with the arm (closed report only), by date.
    pub first_doses: Vec<(NaiveDate, Option<String>)>,
    /// Study day of onset and grade of each safety-population AE with an onset.
    pub ae_onsets: Vec<(i64, Option<u8>)>,
    /// Dosed subjects with at least one EDSS, by subject.
    pub edss: Vec<EdssTrajectory>,
}

/// Compute a DSMB report's numbers. Pure: no clock, no I/O; the arm is read only for a
/// closed report.
///
/// Histories that share a subject id are merged (records in slice order), so a subject
/// is never counted twice. Records dated after `as_of` are left out.
pub fn summarize(input: &DsmbInput) -> DsmbSummary {
    let (subjects, after_cutoff) = data_cut(input.subjects, input.as_of);
    let visits = order_visits(input.visit_order, &subjects);
    let members: Vec<Member> = subjects
        .iter()
        .map(|h| Member { h, arm: arm_label(h, input.closed), dosed: !h.doses().is_empty() })
        .collect();

    let total_label = if input.closed { "Total" } else { "All subjects" };
    let total = group_summary(total_label, &members, &visits, input);
    let arms = if input.closed {
        let labels: BTreeSet<&str> = members.iter().filter_map(|m| m.arm).collect();
        labels
            .into_iter()
            .map(|label| {
                let of_arm: Vec<Member> = members.iter().filter(|m| m.arm == Some(label)).cloned().collect();
                group_summary(label, &of_arm, &visits, input)
            })
            .collect()
    } else {
        Vec::new()
    };

    let (alerts, alerts_after_cutoff) = alert_summary(input, &members);
    let mut overdue_visits = input.overdue_visits.to_vec();
    overdue_visits.sort_by(|a, b| (&a.subject, &a.visit).cmp(&(&b.subject, &b.visit)));
    let data_quality = data_quality(input, &members, after_cutoff, alerts_after_cutoff);
    DsmbSummary {
        closed: input.closed,
        charts: chart_data(&members),
        total,
        arms,
        alerts,
        stopping_rules: input.stopping_rules.to_vec(),
        overdue_visits,
        data_quality,
        visits,
    }
}

/// One subject as the report sees it: the history up to the cut-off, and the arm (closed
/// report only).
#[derive(Clone, Copy)]
pub(super) struct Member<'a> {
    pub h: &'a SubjectHistory,
    pub arm: Option<&'a str>,
    pub dosed: bool,
}

/// The only place the report reads the treatment arm: never for the open report.
fn arm_label(h: &SubjectHistory, closed: bool) -> Option<&str> {
    closed.then(|| h.arm().unwrap_or(NO_ARM))
}

/// One history per subject id, ordered by id, without the records dated after `as_of`
/// (records without any time are kept); subjects with nothing left are dropped. Also
/// returns how many records were left out.
fn data_cut(subjects: &[SubjectHistory], as_of: DateTime<Utc>) -> (Vec<SubjectHistory>, usize) {
    let mut by_id: BTreeMap<&SubjectId, Vec<&crate::model::Record>> = BTreeMap::new();
    let mut after = 0;
    for h in subjects {
        let kept = by_id.entry(&h.subject).or_default();
        for r in &h.records {
            if r.when().is_some_and(|t| t.earliest() > as_of) {
                after += 1;
            } else {
                kept.push(r);
            }
        }
    }
    let cut = by_id
        .into_iter()
        .filter(|(_, records)| !records.is_empty())
        .map(|(id, records)| SubjectHistory::new(id.clone(), records.into_iter().cloned().collect()))
        .collect();
    (cut, after)
}

/// Protocol visits in their given order, then every other label by first date (undated
/// last), ties by label.
fn order_visits(listed: &[String], subjects: &[SubjectHistory]) -> Vec<String> {
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

fn group_summary(label: &str, members: &[Member], visits: &[String], input: &DsmbInput) -> GroupSummary {
    let dosed: Vec<Member> = members.iter().filter(|m| m.dosed).copied().collect();
    let events: Vec<Vec<&AdverseEvent>> = dosed.iter().map(|m| m.h.adverse_events()).collect();
    GroupSummary {
        label: label.to_string(),
        disposition: disposition(members, visits),
        exposure: exposure(&dosed),
        adverse_events: adverse_event_summary(&events),
        by_term: term_table(&events),
        serious_listing: serious_listing(&dosed),
        deaths: deaths(&dosed),
        infusion_reactions: infusion_summary(&dosed, input.infusion_reaction_terms),
        labs: lab_summary(&dosed),
        edss: edss_summary(members, visits, input),
        mri: mri_summary(members, visits),
    }
}

fn disposition(members: &[Member], visits: &[String]) -> Disposition {
    let screen_failures = members
        .iter()
        .filter(|m| {
            !m.dosed && m.h.disposition().is_some_and(|d| d.status == DispositionStatus::ScreenFailure)
        })
        .count();
    let mut completed = 0;
    let mut ongoing = 0;
    let mut left: BTreeMap<(u8, Option<String>), (DispositionStatus, usize)> = BTreeMap::new();
    for m in members.iter().filter(|m| m.dosed) {
        match m.h.disposition() {
            None => ongoing += 1,
            Some(d) if d.status == DispositionStatus::Completed => completed += 1,
            Some(d) => {
                let reason = d.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(String::from);
                left.entry((status_rank(d.status), reason)).or_insert((d.status, 0)).1 += 1;
            }
        }
    }
    Disposition {
        screened: members.len(),
        screen_failures,
        enrolled: members.len() - screen_failures,
        dosed: members.iter().filter(|m| m.dosed).count(),
        completed,
        ongoing,
        discontinued: left
            .into_iter()
            .map(|((_, reason), (status, subjects))| Discontinuation { status, reason, subjects })
            .collect(),
        visits: visits
            .iter()
            .map(|v| {
                let at = |m: &&Member| m.h.records.iter().any(|r| r.visit.as_deref() == Some(v));
                VisitCompletion {
                    visit: v.clone(),
                    subjects: members.iter().filter(at).count(),
                    dosed: members.iter().filter(|m| m.dosed).filter(at).count(),
                }
            })
            .collect(),
    }
}

fn exposure(dosed: &[Member]) -> Exposure {
    let mut counts: Vec<usize> = Vec::new();
    let mut days: Vec<i64> = Vec::new();
    for m in dosed {
        let doses = m.h.doses();
        let (Some(first), Some(last)) = (doses.first(), doses.last()) else {
            continue;
        };
        counts.push(doses.len());
        let end =
            doses.iter().map(|d| d.end.as_ref().unwrap_or(&d.start).day()).max().unwrap_or(last.start.day());
        days.push((end - first.start.day()).num_days() + 1);
    }
    let mut per_subject: BTreeMap<usize, usize> = BTreeMap::new();
    for c in &counts {
        *per_subject.entry(*c).or_default() += 1;
    }
    counts.sort_unstable();
    let n = counts.len();
    let median = (n > 0).then(|| {
        if n % 2 == 1 {
            counts[n / 2] as f64
        } else {
            (counts[n / 2 - 1] + counts[n / 2]) as f64 / 2.0
        }
    });
    Exposure {
        subjects: n,
        doses: counts.iter().sum(),
        per_subject: per_subject.into_iter().collect(),
        mean_doses: mean(counts.iter().map(|&c| c as f64)),
        median_doses: median,
        min_doses: counts.first().copied(),
        max_doses: counts.last().copied(),
        mean_days: mean(days.iter().map(|&d| d as f64)),
        min_days: days.iter().min().copied(),
        max_days: days.iter().max().copied(),
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
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

/// Grade 5, the death criterion, or the outcome "fatal" (CDISC AEOUT = FATAL).
fn is_fatal(a: &AdverseEvent) -> bool {
    a.grade.is_some_and(|g| g.value() == 5)
        || a.seriousness.contains(&Seriousness::Death)
        || a.outcome.as_deref().is_some_and(|o| o.trim().eq_ignore_ascii_case("fatal"))
}

fn adverse_event_summary(events: &[Vec<&AdverseEvent>]) -> AdverseEventSummary {
    AdverseEventSummary {
        grades: GradeTable::from_subjects(events),
        related: tally(events, |a| a.related.is_some_and(Relatedness::is_related)),
        grade3_plus: tally(events, |a| a.grade.is_some_and(|g| g.value() >= 3)),
        serious: tally(events, |a| a.serious),
        by_criterion: ICH_CRITERIA.map(|c| tally(events, |a| a.seriousness.contains(&c))),
        serious_without_criterion: tally(events, |a| a.serious && a.seriousness.is_empty()),
        discontinued: tally(events, |a| a.discontinued),
        fatal: tally(events, is_fatal),
    }
}

/// Study day of `t` from the subject's first dose.
fn study_day(t: Option<&ClinicalTime>, doses: &[&Dose]) -> Option<i64> {
    t.zip(doses.first()).map(|(t, first)| t.study_day(&first.start))
}

/// The preferred term when coded, else the reported term.
fn display_term(a: &AdverseEvent) -> String {
    a.meddra_pt.clone().unwrap_or_else(|| a.term.clone())
}

/// Onset order, unknown last.
fn by_onset(events: &mut [&AdverseEvent]) {
    events.sort_by_key(|a| {
        let onset = a.onset.as_ref().map(ClinicalTime::earliest);
        (onset.is_none(), onset)
    });
}

fn serious_listing(dosed: &[Member]) -> Vec<AeLine> {
    let mut out = Vec::new();
    for m in dosed {
        let doses = m.h.doses();
        let mut serious: Vec<&AdverseEvent> =
            m.h.adverse_events().into_iter().filter(|a| a.serious).collect();
        by_onset(&mut serious);
        out.extend(serious.into_iter().map(|a| {
            let mut criteria = a.seriousness.clone();
            criteria.sort_by_key(|c| criterion_index(*c));
            AeLine {
                subject: m.h.subject.clone(),
                arm: m.arm.map(String::from),
                ae_id: a.id.clone(),
                term: display_term(a),
                grade: a.grade,
                criteria,
                onset_study_day: study_day(a.onset.as_ref(), &doses),
                onset_partial: a.onset.as_ref().is_some_and(ClinicalTime::is_partial),
                outcome: a.outcome.clone(),
                related: a.related,
                discontinued: a.discontinued,
            }
        }));
    }
    out
}

/// Fatal events, and subjects whose disposition says death without a fatal event.
fn deaths(dosed: &[Member]) -> Vec<DeathLine> {
    let mut out = Vec::new();
    for m in dosed {
        let doses = m.h.doses();
        let mut fatal: Vec<&AdverseEvent> =
            m.h.adverse_events().into_iter().filter(|a| is_fatal(a)).collect();
        by_onset(&mut fatal);
        let line = |cause, source, grade, day, outcome| DeathLine {
            subject: m.h.subject.clone(),
            arm: m.arm.map(String::from),
            cause,
            source,
            grade,
            study_day: day,
            outcome,
        };
        for a in &fatal {
            let day = study_day(a.end.as_ref().or(a.onset.as_ref()), &doses);
            out.push(line(Some(display_term(a)), DeathSource::AdverseEvent, a.grade, day, a.outcome.clone()));
        }
        if fatal.is_empty() {
            if let Some(d) = m.h.disposition().filter(|d| d.status == DispositionStatus::Death) {
                let day = study_day(d.date.as_ref(), &doses);
                out.push(line(d.reason.clone(), DeathSource::Disposition, None, day, None));
            }
        }
    }
    out
}

fn infusion_summary(dosed: &[Member], terms: &[String]) -> InfusionSummary {
    let wanted: BTreeSet<String> = terms.iter().map(|t| t.trim().to_lowercase()).collect();
    let mut per_subject: Vec<Vec<&AdverseEvent>> = Vec::new();
    let mut listing = Vec::new();
    for m in dosed {
        let h = m.h;
        let mut irr: Vec<&AdverseEvent> = h
            .adverse_events()
            .into_iter()
            .filter(|a| wanted.contains(&a.term.trim().to_lowercase()))
            .collect();
        by_onset(&mut irr);
        let doses = h.doses();
        listing.extend(irr.iter().map(|a| InfusionReaction {
            subject: h.subject.clone(),
            arm: m.arm.map(String::from),
            ae_id: a.id.clone(),
            term: a.term.clone(),
            grade: a.grade,
            serious: a.serious,
            related: a.related,
            onset_study_day: study_day(a.onset.as_ref(), &doses),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liver {
    Alt,
    Ast,
    Bili,
}

/// ALT/SGPT, AST/SGOT, BILI/TBILI, case-insensitive.
fn liver_test(name: &str) -> Option<Liver> {
    match name.trim().to_ascii_uppercase().as_str() {
        "ALT" | "SGPT" => Some(Liver::Alt),
        "AST" | "SGOT" => Some(Liver::Ast),
        "BILI" | "TBILI" => Some(Liver::Bili),
        _ => None,
    }
}

/// Peak multiples of ULN per subject; results without a positive ULN are skipped
/// (counted in the data quality section).
fn lab_summary(dosed: &[Member]) -> LabSummary {
    let mut s = LabSummary {
        subjects_tested: 0,
        alt_above_3: 0,
        ast_above_3: 0,
        alt_or_ast_above_3: 0,
        bili_above_2: 0,
        quadrants: EdishQuadrants::default(),
        points: Vec::new(),
    };
    for m in dosed {
        let (mut alt, mut ast, mut bili): (Option<f64>, Option<f64>, Option<f64>) = (None, None, None);
        for (_, _, lab) in m.h.labs() {
            let (Some(kind), Some(uln)) = (liver_test(&lab.test), lab.high.filter(|h| *h > 0.0)) else {
                continue;
            };
            let x = lab.value / uln;
            let slot = match kind {
                Liver::Alt => &mut alt,
                Liver::Ast => &mut ast,
                Liver::Bili => &mut bili,
            };
            *slot = Some(slot.map_or(x, |p| p.max(x)));
        }
        if alt.is_none() && ast.is_none() && bili.is_none() {
            continue;
        }
        s.subjects_tested += 1;
        let above = |v: Option<f64>, k: f64| v.is_some_and(|v| v > k);
        s.alt_above_3 += usize::from(above(alt, 3.0));
        s.ast_above_3 += usize::from(above(ast, 3.0));
        s.alt_or_ast_above_3 += usize::from(above(alt, 3.0) || above(ast, 3.0));
        s.bili_above_2 += usize::from(above(bili, 2.0));
        let transaminase = match (alt, ast) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let (Some(x), Some(y)) = (transaminase, bili) {
            let quadrant = Quadrant::of(x, y);
            let q = &mut s.quadrants;
            *match quadrant {
                Quadrant::PotentialHysLaw => &mut q.potential_hys_law,
                Quadrant::Cholestasis => &mut q.cholestasis,
                Quadrant::TemplesCorollary => &mut q.temples_corollary,
                Quadrant::Normal => &mut q.normal,
            } += 1;
            s.points.push(EdishPoint {
                subject: m.h.subject.clone(),
                arm: m.arm.map(String::from),
                alt_ast_x_uln: x,
                bili_x_uln: y,
                quadrant,
            });
        }
    }
    s
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
fn edss_summary(members: &[Member], visits: &[String], input: &DsmbInput) -> EdssSummary {
    let params = ProgressionParams { min_change: input.edss_change.clone(), ..ProgressionParams::default() };
    let mut acc: BTreeMap<String, EdssAcc> = BTreeMap::new();
    let mut baselines: Vec<Edss> = Vec::new();
    let (mut followed, mut confirmed, mut pending) = (0, 0, 0);
    for m in members {
        let assessments = m.h.edss();
        let Some((first, later)) = assessments.split_first() else {
            continue;
        };
        if !later.is_empty() {
            followed += 1;
            let relapses: Vec<NaiveDate> = m.h.relapses().into_iter().map(ClinicalTime::day).collect();
            let events = progression::assess(&assessments, &relapses, &params);
            let worsening =
                |s: EventStatus| events.iter().any(|e| e.kind == EventKind::Worsening && e.status == s);
            if worsening(EventStatus::Confirmed) {
                confirmed += 1;
            } else if events.iter().any(|e| e.awaiting_confirmation(input.as_of.date_naive())) {
                pending += 1;
            }
        }
        let baseline = first.score;
        baselines.push(baseline);
        let mut at_visit: BTreeMap<&str, Edss> = BTreeMap::new();
        for a in later {
            if let Some(v) = a.visit.as_deref() {
                at_visit.insert(v, a.score);
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
    EdssSummary {
        baseline_subjects: baselines.len(),
        baseline_mean,
        by_visit,
        followed,
        confirmed_worsening: confirmed,
        pending_worsening: pending,
    }
}

#[derive(Default)]
struct MriAcc {
    scans: usize,
    scans_without_count: usize,
    subjects_scanned: usize,
    total_new_t2: u64,
    subjects_with_new_t2: usize,
    subjects_gd_read: usize,
    total_gd: u64,
    subjects_with_gd: usize,
    against_previous: usize,
    against_baseline: usize,
}

/// What one subject's scans at one visit showed.
#[derive(Default)]
struct SeenAtVisit {
    t2_read: bool,
    t2_new: bool,
    gd_read: bool,
    gd_any: bool,
}

/// Scans without a visit label are left out (counted in the data quality section).
fn mri_summary(members: &[Member], visits: &[String]) -> Vec<MriAtVisit> {
    let mut acc: BTreeMap<String, MriAcc> = BTreeMap::new();
    for m in members {
        let mut seen: BTreeMap<&str, SeenAtVisit> = BTreeMap::new();
        for (visit, scan) in m.h.mri() {
            let Some(v) = visit else {
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
                    s.t2_read = true;
                    s.t2_new |= n > 0;
                }
            }
            if let Some(n) = scan.gd_enhancing {
                e.total_gd += u64::from(n);
                s.gd_read = true;
                s.gd_any |= n > 0;
            }
        }
        for (v, s) in seen {
            if let Some(e) = acc.get_mut(v) {
                e.subjects_scanned += usize::from(s.t2_read);
                e.subjects_with_new_t2 += usize::from(s.t2_new);
                e.subjects_gd_read += usize::from(s.gd_read);
                e.subjects_with_gd += usize::from(s.gd_any);
            }
        }
    }
    visits
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
                subjects_gd_read: e.subjects_gd_read,
                total_gd: e.total_gd,
                subjects_with_gd: e.subjects_with_gd,
                against_previous: e.against_previous,
                against_baseline: e.against_baseline,
            })
        })
        .collect()
}

/// Report order: the known values first, the rest by name.
fn ranked(known: &[&str], values: impl Iterator<Item = String>) -> Vec<String> {
    let seen: BTreeSet<String> = values.collect();
    let mut out: Vec<String> = known.iter().filter(|k| seen.contains(**k)).map(|k| k.to_string()).collect();
    out.extend(seen.into_iter().filter(|s| !known.contains(&s.as_str())));
    out
}

/// Alerts raised up to the cut-off, by severity and status, and listed. Also returns how
/// many were raised after it.
fn alert_summary(input: &DsmbInput, members: &[Member]) -> (AlertSummary, usize) {
    let kept: Vec<&AlertRow> = input.alerts.iter().filter(|a| a.raised_at <= input.as_of).collect();
    let after = input.alerts.len() - kept.len();
    let statuses = ranked(
        &["open", "acknowledged", "resolved", "silenced"],
        kept.iter().map(|a| a.status.as_str().to_lowercase()),
    );
    let severities =
        ranked(&["critical", "warning", "info"], kept.iter().map(|a| a.severity.as_str().to_lowercase()));
    let by_severity = severities
        .iter()
        .map(|sev| {
            let of_sev: Vec<&&AlertRow> =
                kept.iter().filter(|a| a.severity.as_str().eq_ignore_ascii_case(sev)).collect();
            SeverityRow {
                severity: sev.clone(),
                by_status: statuses
                    .iter()
                    .map(|st| of_sev.iter().filter(|a| a.status.as_str().eq_ignore_ascii_case(st)).count())
                    .collect(),
                total: of_sev.len(),
            }
        })
        .collect();
    let first_dose: BTreeMap<&str, ClinicalTime> = members
        .iter()
        .filter_map(|m| m.h.first_dose().map(|d| (m.h.subject.as_str(), d.start.clone())))
        .collect();
    let mut listing: Vec<(DateTime<Utc>, AlertLine)> = kept
        .iter()
        .map(|a| {
            let day = first_dose
                .get(a.subject.as_str())
                .map(|first| ClinicalTime::at(a.raised_at).study_day(first));
            let line = AlertLine {
                id: a.id,
                severity: a.severity.as_str().to_lowercase(),
                status: a.status.as_str().to_lowercase(),
                subject: a.subject.clone(),
                rule_id: a.rule_id.clone(),
                title: a.title.clone(),
                raised_study_day: day,
                raised_date: a.raised_at.date_naive(),
            };
            (a.raised_at, line)
        })
        .collect();
    listing.sort_by_key(|(t, a)| (*t, a.id));
    let summary = AlertSummary {
        total: kept.len(),
        statuses,
        by_severity,
        listing: listing.into_iter().map(|(_, a)| a).collect(),
    };
    (summary, after)
}

fn data_quality(
    input: &DsmbInput,
    members: &[Member],
    records_after_cutoff: usize,
    alerts_after_cutoff: usize,
) -> DataQuality {
    let mut q = DataQuality {
        quarantined_records: input.quarantined_records,
        records_after_cutoff,
        alerts_after_cutoff,
        overdue_visits: input.overdue_visits.len(),
        subjects_without_arm: members.iter().filter(|m| m.arm == Some(NO_ARM)).count(),
        ..DataQuality::default()
    };
    for m in members {
        let events = m.h.adverse_events();
        if !m.dosed {
            q.ae_not_dosed += events.len();
        }
        q.fatal_not_serious += events.iter().filter(|a| is_fatal(a) && !a.serious).count();
        for ae in events {
            match &ae.onset {
                None => q.ae_onset_missing += 1,
                Some(t) if t.is_partial() => q.ae_onset_partial += 1,
                Some(_) => {}
            }
        }
        q.liver_results_without_uln +=
            m.h.labs()
                .iter()
                .filter(|(_, _, l)| liver_test(&l.test).is_some() && !l.high.is_some_and(|h| h > 0.0))
                .count();
    }
    for m in members {
        q.edss_without_visit += m.h.edss().iter().skip(1).filter(|e| e.visit.is_none()).count();
        q.mri_without_visit += m.h.mri().iter().filter(|(v, _)| v.is_none()).count();
    }
    q
}

fn chart_data(members: &[Member]) -> ChartData {
    let mut data = ChartData::default();
    for m in members.iter().filter(|m| m.dosed) {
        let doses = m.h.doses();
        let Some(first) = doses.first() else { continue };
        data.first_doses.push((first.start.day(), m.arm.map(String::from)));
        for a in m.h.adverse_events() {
            if let Some(day) = study_day(a.onset.as_ref(), &doses) {
                data.ae_onsets.push((day, a.grade.map(CtcaeGrade::value)));
            }
        }
        let points: Vec<(i64, f64)> =
            m.h.edss()
                .iter()
                .map(|e| {
                    let day = (e.date - first.start.day()).num_days();
                    (if day >= 0 { day + 1 } else { day }, e.score.value())
                })
                .collect();
        if !points.is_empty() {
            data.edss.push(EdssTrajectory {
                subject: m.h.subject.clone(),
                arm: m.arm.map(String::from),
                points,
            });
        }
    }
    data.first_doses.sort();
    data.ae_onsets.sort();
    data
}
