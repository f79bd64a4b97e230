//! DSMB reports.
//!
//! The open (pooled) DSMB summary is two pure steps: [`summarize`] turns subject
//! histories into numbers ([`DsmbSummary`]), and [`render_html`] turns those numbers
//! into one self-contained, printable HTML page. Neither reads the clock, the store or
//! the treatment arm: the same input always gives the same page.
//!
//! Blinding: this is the OPEN report. It never reads `SubjectHistory::arm()` (nor
//! `Record::arm`) and shows subjects only by their pseudonymous id.

mod html;
mod summary;

#[cfg(test)]
mod tests;

pub use html::{render_html, try_render_html, ReportError};
pub use summary::{
    summarize, AdverseEventSummary, DataQuality, Disposition, DoseTiming, EdssAtVisit, EdssSummary,
    GradeTable, InfusionReaction, InfusionSummary, MriAtVisit, Tally, VisitCompletion, ICH_CRITERIA,
};

use crate::model::{MinimumChange, SubjectHistory};
use chrono::{DateTime, Utc};

/// Everything the open DSMB report is made from.
#[derive(Debug, Clone, Copy)]
pub struct DsmbInput<'a> {
    pub study_title: &'a str,
    /// Data cut-off, printed on the title page. The only time the report shows.
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
}

/// The computed numbers of the open DSMB report.
#[derive(Debug, Clone, PartialEq)]
pub struct DsmbSummary {
    /// Every visit label, in report order: `visit_order` first, then the others by
    /// first date (then by label).
    pub visits: Vec<String>,
    pub disposition: Disposition,
    pub adverse_events: AdverseEventSummary,
    pub infusion_reactions: InfusionSummary,
    pub edss: EdssSummary,
    /// One row per visit that has MRI scans, in visit order.
    pub mri: Vec<MriAtVisit>,
    pub data_quality: DataQuality,
}
