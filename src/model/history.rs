//! A subject's whole stored history, in the order it happened, and the views rules read.

use super::record::{AdverseEvent, Disposition, Dose, Lab, Mri, Record, Submission, Vital};
use super::scales::{Edss, SubjectId};
use super::time::{ClinicalTime, Zones};
use chrono::NaiveDate;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct SubjectHistory {
    pub subject: SubjectId,
    /// Records in arrival order (store sequence). Views below sort by clinical time.
    pub records: Vec<Record>,
}

/// One EDSS assessment.
#[derive(Debug, Clone, PartialEq)]
pub struct EdssVisit {
    pub date: NaiveDate,
    pub visit: Option<String>,
    pub score: Edss,
}

impl SubjectHistory {
    pub fn new(subject: SubjectId, records: Vec<Record>) -> Self {
        Self { subject, records }
    }

    /// The history with every record placed at its site, so local times and dates are
    /// read in the site's zone (a record naming no site is at the subject's site).
    pub fn placed(self, zones: &Zones) -> Self {
        if *zones == Zones::default() {
            return self; // every time was read in UTC already
        }
        let site = self.site().map(str::to_string);
        let records = self.records.into_iter().map(|r| r.placed(zones, site.as_deref())).collect();
        Self { subject: self.subject, records }
    }

    /// The site of the most recent record that names one.
    pub fn site(&self) -> Option<&str> {
        self.records.iter().rev().find_map(|r| r.site.as_deref())
    }

    /// The treatment arm (blinded information: only for unblinded outputs).
    pub fn arm(&self) -> Option<&str> {
        self.records.iter().rev().find_map(|r| r.arm.as_deref())
    }

    /// The treatment actually received (blinded information): `actual_arm`, else the
    /// planned arm. Safety is analysed by what a subject received.
    pub fn actual_arm(&self) -> Option<&str> {
        self.records.iter().rev().find_map(|r| r.actual_arm.as_deref()).or_else(|| self.arm())
    }

    /// Every dose, earliest first, without repeats from re-sent records.
    pub fn doses(&self) -> Vec<&Dose> {
        let mut doses: Vec<&Dose> = self.records.iter().flat_map(|r| &r.doses).collect();
        doses.sort_by_key(|d| d.start.earliest());
        doses.dedup_by(|a, b| a.start == b.start && a.product == b.product);
        doses
    }

    pub fn first_dose(&self) -> Option<&Dose> {
        self.doses().into_iter().next()
    }

    /// The current version of every adverse event: an event sent again with the same id
    /// replaces the earlier version in this view (the store keeps every version).
    pub fn adverse_events(&self) -> Vec<&AdverseEvent> {
        let mut latest: Vec<&AdverseEvent> = Vec::new();
        let mut by_id: HashMap<&str, usize> = HashMap::new();
        for ae in self.records.iter().flat_map(|r| &r.adverse_events) {
            match ae.id.as_deref() {
                Some(id) => match by_id.get(id) {
                    Some(&i) => latest[i] = ae,
                    None => {
                        by_id.insert(id, latest.len());
                        latest.push(ae);
                    }
                },
                None => latest.push(ae),
            }
        }
        latest
    }

    /// EDSS assessments by date; a later record for the same date replaces the earlier.
    pub fn edss(&self) -> Vec<EdssVisit> {
        let mut by_day: Vec<EdssVisit> = Vec::new();
        for r in &self.records {
            let (Some(score), Some(date)) = (r.edss(), r.date.as_ref()) else {
                continue;
            };
            let v = EdssVisit { date: date.day(), visit: r.visit.clone(), score };
            match by_day.iter_mut().find(|e| e.date == v.date) {
                Some(e) => *e = v,
                None => by_day.push(v),
            }
        }
        by_day.sort_by_key(|e| e.date);
        by_day
    }

    /// MRI scans by date, with the visit label of the record that carried them. Several
    /// records about one scan are merged measure by measure (a later value wins), so a
    /// count sent on its own is never lost.
    pub fn mri(&self) -> Vec<(Option<&str>, Mri)> {
        let mut scans: Vec<(Option<&str>, Mri)> = Vec::new();
        for r in &self.records {
            let Some(m) = &r.mri else { continue };
            match scans.iter_mut().find(|(_, s)| s.date == m.date) {
                Some((visit, s)) => {
                    *visit = r.visit.as_deref().or(*visit);
                    s.t2_new_or_enlarging = m.t2_new_or_enlarging.or(s.t2_new_or_enlarging);
                    s.gd_enhancing = m.gd_enhancing.or(s.gd_enhancing);
                    s.combined_active = m.combined_active.or(s.combined_active);
                    s.t2_total = m.t2_total.or(s.t2_total);
                    s.reference = m.reference;
                }
                None => scans.push((r.visit.as_deref(), m.clone())),
            }
        }
        scans.sort_by_key(|(_, m)| m.date.earliest());
        scans
    }

    /// Relapse onsets, earliest first.
    pub fn relapses(&self) -> Vec<&ClinicalTime> {
        let mut r: Vec<&ClinicalTime> = self.records.iter().filter_map(|r| r.relapse.as_ref()).collect();
        r.sort_by_key(|t| t.earliest());
        r.dedup();
        r
    }

    /// Every lab result with its time (its own, else its record's date), earliest first;
    /// results without any time come last.
    pub fn labs(&self) -> Vec<(Option<&ClinicalTime>, Option<&str>, &Lab)> {
        let mut labs: Vec<(Option<&ClinicalTime>, Option<&str>, &Lab)> = self
            .records
            .iter()
            .flat_map(|r| {
                r.labs.iter().map(move |l| (l.time.as_ref().or(r.date.as_ref()), r.visit.as_deref(), l))
            })
            .collect();
        labs.sort_by_key(|(t, _, _)| (t.is_none(), t.map(|t| t.earliest())));
        labs
    }

    /// Every vital-sign set with its time (its own, else its record's date), earliest first.
    pub fn vitals(&self) -> Vec<(Option<&ClinicalTime>, Option<&str>, &Vital)> {
        let mut v: Vec<(Option<&ClinicalTime>, Option<&str>, &Vital)> = self
            .records
            .iter()
            .flat_map(|r| {
                r.vitals.iter().map(move |x| (x.time.as_ref().or(r.date.as_ref()), r.visit.as_deref(), x))
            })
            .collect();
        v.sort_by_key(|(t, _, _)| (t.is_none(), t.map(|t| t.earliest())));
        v
    }

    /// Safety reports submitted, in arrival order.
    pub fn submissions(&self) -> Vec<&Submission> {
        self.records.iter().flat_map(|r| &r.submissions).collect()
    }

    /// The latest disposition reported (completed, withdrawn, …), if any.
    pub fn disposition(&self) -> Option<&Disposition> {
        self.records.iter().rev().find_map(|r| r.disposition.as_ref())
    }

    /// Visit labels seen, with the date of each (first record that carried the label).
    pub fn visits(&self) -> Vec<(&str, Option<&ClinicalTime>)> {
        let mut seen: Vec<(&str, Option<&ClinicalTime>)> = Vec::new();
        for r in &self.records {
            if let Some(v) = r.visit.as_deref() {
                if !seen.iter().any(|(s, _)| *s == v) {
                    seen.push((v, r.date.as_ref()));
                }
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_of_one_scan_sent_apart_are_merged() {
        let records = [
            r#"{"subject":"A","visit":"W12","date":"2019-05-21","mri":{"t2_new_or_enlarging":2}}"#,
            r#"{"subject":"A","date":"2019-05-21","mri":{"gd_enhancing":1}}"#,
        ];
        let h = SubjectHistory::new(
            SubjectId::parse("A").unwrap(),
            records.iter().map(|j| Record::from_json(j).unwrap()).collect(),
        );
        let scans = h.mri();
        assert_eq!(scans.len(), 1);
        assert_eq!(scans[0].0, Some("W12"));
        assert_eq!((scans[0].1.t2_new_or_enlarging, scans[0].1.gd_enhancing), (Some(2), Some(1)));
    }
}
