//! DSMB reports: the package a Data Safety Monitoring Board reads, from a frozen data cut.
//!
//! Three pure steps, none of which reads the clock, the store or the file system:
//!
//! 1. [`summarize`] turns subject histories (cut at `as_of`) into numbers ([`DsmbSummary`]).
//! 2. A document model (`tables.rs`) turns the numbers into sections of typed tables and
//!    SVG charts (`charts.rs`, plotters). Every output is rendered from that one model,
//!    so the HTML, the CSV files and the PDF cannot disagree.
//! 3. [`render_html`] (one self-contained page), [`render_csv`] (one file per table, for
//!    the statistician) and, with the `pdf` cargo feature, `render_pdf`.
//!
//! Same input, same bytes: collections are ordered (subjects by id, visits by protocol
//! order, terms by frequency then name), numbers are formatted with fixed precision and
//! charts are drawn without fonts or randomness.
//!
//! # Blinding
//!
//! The open report pools every arm and never reads `SubjectHistory::arm()`: the arm is
//! read in exactly one place (`summary::arm_label`), and only when [`DsmbInput::closed`]
//! is set. The closed report splits every table by arm and adds the arm to every listing;
//! it is marked "CLOSED REPORT — DSMB ONLY" and must only go to unblinded recipients
//! (the caller's routing decides who gets which file).
//!
//! # Why typst for the PDF
//!
//! The PDF must be made without a browser (the engine runs as a daemon on a server with no
//! Chromium, and a headless browser is a large, moving runtime dependency). typst is a
//! typesetting library in pure Rust: it lays out tables across pages, embeds the plotters
//! SVG charts as vector images, and ships its own fonts (typst-assets), so the PDF looks
//! the same on every machine and needs no system fonts. The cost is the build: about
//! 200 more crates, +3.5 min debug / +8 min release on two cores, a binary of ~76 MB, and
//! `cargo audit` findings in typst's bibliography dependencies (crates.md §1, §3). That is
//! why it sits behind the `pdf` cargo feature and the default build never compiles it.

mod charts;
mod csv;
mod html;
#[cfg(feature = "pdf")]
mod pdf;
mod summary;
mod tables;
mod terms;

#[cfg(test)]
mod cdisc_tests;
#[cfg(test)]
mod tests;

pub use csv::render_csv;
pub use html::{render_html, try_render_html, ReportError};
#[cfg(feature = "pdf")]
pub use pdf::render_pdf;
pub use summary::{
    summarize, AdverseEventSummary, AeLine, AlertLine, AlertSummary, ChartData, DataQuality, DeathLine,
    DeathSource, Discontinuation, Disposition, DoseTiming, EdishPoint, EdishQuadrants, EdssAtVisit,
    EdssSummary, EdssTrajectory, Exposure, GradeTable, GroupSummary, InfusionReaction, InfusionSummary,
    LabSummary, MriAtVisit, Quadrant, SeverityRow, Tally, VisitCompletion, ICH_CRITERIA, NO_ARM,
};
pub use terms::{SocRow, TermRow, TermTable, TermTally};

use crate::model::{MinimumChange, SubjectHistory};
use crate::store::AlertRow;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Everything a DSMB report is made from. The caller reads the store; the report only
/// computes and renders.
#[derive(Debug, Clone, Copy)]
pub struct DsmbInput<'a> {
    pub study_title: &'a str,
    /// Data cut-off: records dated after it are left out (records with no time at all
    /// are kept), and alerts raised after it too. Printed on the title page.
    pub as_of: DateTime<Utc>,
    pub subjects: &'a [SubjectHistory],
    /// Thresholds of the trial's EDSS rule (worse / better than baseline).
    pub edss_change: &'a MinimumChange,
    /// Protocol visit labels in order (e.g. BL, H2, D7, W4, W12, W24, W48). Visits not
    /// listed follow, in order of their first date.
    pub visit_order: &'a [String],
    /// AE terms (case-insensitive exact match) that count as infusion reactions.
    pub infusion_reaction_terms: &'a [String],
    pub quarantined_records: u64,
    /// Alerts raised in the reporting period, with their current status.
    pub alerts: &'a [AlertRow],
    /// The trial's stopping rules and where each stands at the cut-off.
    pub stopping_rules: &'a [StoppingRuleStatus],
    /// SHA-256 (hex) of the data snapshot, computed by the caller; printed so that a
    /// reader can tell two reports of the same cut from two different cuts.
    pub snapshot_hash: &'a str,
    /// Closed report (DSMB only): every table split by arm. Open report when false.
    pub closed: bool,
    /// Scheduled visits overdue at the cut-off (data quality).
    pub overdue_visits: &'a [OverdueVisit],
}

/// Where one stopping rule stands; the caller evaluates the rule, the report restates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoppingRuleStatus {
    pub rule_id: String,
    pub title: String,
    /// The boundary in words, e.g. "stop if Pr(p > 0.20 | data) ≥ 0.80".
    pub threshold: String,
    /// The current value in words, e.g. "2 of 6 subjects; Pr = 0.41".
    pub current: String,
    pub fired: bool,
}

/// A scheduled visit not recorded by the end of its window (plus grace) at the cut-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverdueVisit {
    pub subject: String,
    pub visit: String,
    /// Whole days past the end of the window at the cut-off.
    pub days_overdue: i64,
}

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
