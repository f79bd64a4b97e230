//! The numbers of the DSMB report: [`summarize`] cuts the data and computes, for every
//! group of subjects (all of them, and each arm in a closed report), what each section
//! of `sections/` needs.
//!
//! Every collection here is ordered (subjects by id, visits by protocol order), so the
//! same input always gives the same summary, whatever order the histories arrive in.
//!
//! Populations: subjects with any record up to the cut-off are *screened*; those not
//! marked screen failures are *enrolled*; those with a dose are *dosed*, the safety
//! population. Adverse events, infusion reactions, laboratory results and exposure are
//! counted in the safety population, and every percentage is of its size N (FDA ST&F
//! convention). EDSS and MRI are counted over every subject with an assessment, as before.

use super::cut::{arm_label, data_cut, order_visits, study_day, Member};
use super::sections::adverse_events::{adverse_event_summary, AdverseEventSummary};
use super::sections::alerts::{alert_summary, AlertSummary};
use super::sections::data_quality::{data_quality, DataQuality, OverdueVisit};
use super::sections::edss::{edss_summary, EdssSummary};
use super::sections::enrollment::{disposition, Disposition};
use super::sections::exposure::{exposure, Exposure};
use super::sections::infusion::{infusion_summary, InfusionSummary};
use super::sections::liver::{lab_summary, LabSummary};
use super::sections::mri::{mri_summary, MriAtVisit};
use super::sections::serious_and_deaths::{deaths, serious_listing, AeLine, DeathLine};
use super::sections::stopping_rules::StoppingRuleStatus;
use super::terms::{term_table, TermTable};
use super::DsmbInput;
use crate::model::{AdverseEvent, CtcaeGrade, SubjectId};
use chrono::NaiveDate;
use std::collections::BTreeSet;

/// The computed numbers of a DSMB report.
#[derive(Debug, Clone, PartialEq)]
pub struct DsmbSummary {
    pub closed: bool,
    /// Every visit label, in report order: `visit_order` first, then the others by
    /// first date (then by label).
    pub visits: Vec<String>,
    /// Every subject. Labelled "All subjects" in the open report, "Total" in the closed.
    pub total: GroupSummary,
    /// Closed report only: one group per arm, ordered by arm label. Empty when open.
    pub arms: Vec<GroupSummary>,
    pub alerts: AlertSummary,
    pub stopping_rules: Vec<StoppingRuleStatus>,
    /// Ordered by subject, then visit.
    pub overdue_visits: Vec<OverdueVisit>,
    pub data_quality: DataQuality,
    pub charts: ChartData,
}

impl DsmbSummary {
    /// The columns of every split table: the arms, then the total (just the total when open).
    pub fn groups(&self) -> Vec<&GroupSummary> {
        self.arms.iter().chain(std::iter::once(&self.total)).collect()
    }

    /// The group of one arm (closed report only).
    pub fn arm(&self, label: &str) -> Option<&GroupSummary> {
        self.arms.iter().find(|g| g.label == label)
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
    /// One row per visit that has MRI scans after the baseline scan, in visit order.
    pub mri: Vec<MriAtVisit>,
    /// Subjects' baseline scans (the reference, not counted as activity).
    pub mri_baseline_scans: usize,
}

impl GroupSummary {
    /// The safety population: the N of every percentage.
    pub fn n(&self) -> usize {
        self.disposition.dosed
    }
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

fn group_summary(label: &str, members: &[Member], visits: &[String], input: &DsmbInput) -> GroupSummary {
    let dosed: Vec<Member> = members.iter().filter(|m| m.dosed).copied().collect();
    let (mri, mri_baseline_scans) = mri_summary(members, visits);
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
        mri,
        mri_baseline_scans,
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
