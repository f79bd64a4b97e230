//! Adverse events by MedDRA system organ class and preferred term (FDA ST&F "AEs by SOC
//! and PT"), falling back to the reported term where an event is not coded.
//!
//! Counting convention (docs/clinical-reference.md §5.2): a subject is counted once per term and once per
//! SOC, at their worst grade for it; events are counted separately. Names are grouped
//! case-insensitively (sites type "Headache" and "HEADACHE"), and shown in one stable
//! spelling, so the table does not depend on the order records arrived in.

use crate::model::AdverseEvent;
use std::collections::BTreeMap;

/// SOC of events that carry a preferred term but no SOC.
const SOC_MISSING: &str = "SOC not coded";
/// SOC of events with no MedDRA coding at all: listed by reported term.
const NOT_CODED: &str = "Not coded (reported term)";

/// Subjects and events for one term (or SOC), with each subject at their worst grade.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TermTally {
    pub events: usize,
    pub subjects: usize,
    /// Subjects by their worst grade: grades 1 to 5 at index 0 to 4, not graded at 5
    /// (only when none of the subject's events for the term has a grade).
    pub worst: [usize; 6],
}

impl TermTally {
    /// Subjects whose worst grade for the term is 3 or higher.
    pub fn grade3_plus(&self) -> usize {
        self.worst[2..5].iter().sum()
    }

    fn add_subject(&mut self, events: &[&AdverseEvent]) {
        self.events += events.len();
        self.subjects += 1;
        let worst = events.iter().filter_map(|a| a.grade).max();
        self.worst[worst.map_or(5, |g| usize::from(g.value()).clamp(1, 5) - 1)] += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermRow {
    /// Lowercase grouping key; rows of different groups are matched on it.
    pub key: String,
    pub term: String,
    pub tally: TermTally,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocRow {
    pub key: String,
    pub soc: String,
    /// False for the "not coded" block, whose terms are reported terms.
    pub coded: bool,
    pub tally: TermTally,
    /// By subjects (descending), then events (descending), then name.
    pub terms: Vec<TermRow>,
}

impl SocRow {
    pub fn term(&self, key: &str) -> Option<&TermRow> {
        self.terms.iter().find(|t| t.key == key)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermTable {
    /// Any adverse event.
    pub any: TermTally,
    /// By subjects (descending), then events (descending), then name; the not-coded
    /// block last.
    pub socs: Vec<SocRow>,
}

impl TermTable {
    pub fn soc(&self, key: &str) -> Option<&SocRow> {
        self.socs.iter().find(|s| s.key == key)
    }

    /// A term by its name (case-insensitive) in any SOC.
    pub fn find_term(&self, term: &str) -> Option<&TermRow> {
        let key = term.trim().to_lowercase();
        self.socs.iter().find_map(|s| s.term(&key))
    }
}

/// The SOC and term an event is counted under: (SOC, term, coded).
fn classify(a: &AdverseEvent) -> (&str, &str, bool) {
    match (&a.meddra_soc, &a.meddra_pt) {
        (soc, Some(pt)) => (soc.as_deref().unwrap_or(SOC_MISSING), pt.as_str(), true),
        (Some(soc), None) => (soc.as_str(), a.term.as_str(), true),
        (None, None) => (NOT_CODED, a.term.as_str(), false),
    }
}

/// Names seen for one key; the smallest spelling is shown, whatever the input order.
#[derive(Default)]
struct Names<'a> {
    spelling: Option<&'a str>,
}

impl<'a> Names<'a> {
    fn see(&mut self, name: &'a str) {
        let name = name.trim();
        if self.spelling.is_none_or(|s| name < s) {
            self.spelling = Some(name);
        }
    }
    fn get(&self) -> String {
        self.spelling.unwrap_or_default().to_string()
    }
}

#[derive(Default)]
struct SocAcc<'a> {
    names: Names<'a>,
    coded: bool,
    tally: TermTally,
    terms: BTreeMap<String, (Names<'a>, TermTally)>,
}

/// The table for one group: `events` holds each subject's adverse events.
pub(super) fn term_table(events: &[Vec<&AdverseEvent>]) -> TermTable {
    let mut any = TermTally::default();
    let mut socs: BTreeMap<String, SocAcc> = BTreeMap::new();
    for subject in events.iter().filter(|e| !e.is_empty()) {
        any.add_subject(subject);
        // This subject's events by SOC, then by term.
        let mut mine: BTreeMap<String, BTreeMap<String, Vec<&AdverseEvent>>> = BTreeMap::new();
        for a in subject {
            let (soc, term, coded) = classify(a);
            let soc_key = soc.trim().to_lowercase();
            let term_key = term.trim().to_lowercase();
            let acc = socs.entry(soc_key.clone()).or_default();
            acc.names.see(soc);
            acc.coded |= coded;
            acc.terms.entry(term_key.clone()).or_default().0.see(term);
            mine.entry(soc_key).or_default().entry(term_key).or_default().push(a);
        }
        for (soc_key, terms) in mine {
            let Some(acc) = socs.get_mut(&soc_key) else { continue };
            let all: Vec<&AdverseEvent> = terms.values().flatten().copied().collect();
            acc.tally.add_subject(&all);
            for (term_key, evs) in terms {
                if let Some((_, t)) = acc.terms.get_mut(&term_key) {
                    t.add_subject(&evs);
                }
            }
        }
    }
    let order = |t: &TermTally| (std::cmp::Reverse(t.subjects), std::cmp::Reverse(t.events));
    let mut rows: Vec<SocRow> = socs
        .into_iter()
        .map(|(key, acc)| {
            let mut terms: Vec<TermRow> = acc
                .terms
                .into_iter()
                .map(|(key, (names, tally))| TermRow { key, term: names.get(), tally })
                .collect();
            terms.sort_by(|a, b| (order(&a.tally), &a.term).cmp(&(order(&b.tally), &b.term)));
            SocRow { key, soc: acc.names.get(), coded: acc.coded, tally: acc.tally, terms }
        })
        .collect();
    rows.sort_by(|a, b| (!a.coded, order(&a.tally), &a.soc).cmp(&(!b.coded, order(&b.tally), &b.soc)));
    TermTable { any, socs: rows }
}
