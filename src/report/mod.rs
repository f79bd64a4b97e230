//! DSMB reports: the package a Data Safety Monitoring Board reads, from a frozen data cut.
//!
//! Three pure steps, none of which reads the clock, the store or the file system:
//!
//! 1. [`summarize`] (`summary.rs`) cuts the subject histories at `as_of` (`cut.rs`) and
//!    turns them into numbers ([`DsmbSummary`]).
//! 2. A document model (`document.rs`) holds the numbers as sections of typed tables and
//!    SVG charts (`charts.rs`, plotters). Every output is rendered from that one model,
//!    so the HTML, the CSV files and the PDF cannot disagree.
//! 3. [`render_html`] (one self-contained page), [`render_csv`] (one file per table, for
//!    the statistician) and, with the `pdf` cargo feature, `render_pdf`.
//!
//! The layout follows the report a DSMB reads: `sections/` has one file per report
//! section (overview, enrollment, exposure, adverse events, serious events and deaths,
//! infusion reactions, liver tests, EDSS, MRI, stopping rules, alerts, data quality), each
//! with the numbers it computes and the tables that show them. The SOC/PT counting lives
//! in `terms.rs`; the shared plumbing (cut, document model, charts, HTML/CSV/PDF writers)
//! in the files beside it.
//!
//! Same input, same bytes: collections are ordered (subjects by id, visits by protocol
//! order, terms by frequency then name), numbers are formatted with fixed precision and
//! charts are drawn without fonts or randomness.
//!
//! # Blinding
//!
//! The open report pools every arm and never reads `SubjectHistory::arm()`: the arm is
//! read in exactly one place (`cut::arm_label`), and only when [`DsmbInput::closed`]
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
mod cut;
mod document;
mod html;
#[cfg(feature = "pdf")]
mod pdf;
mod sections;
mod summary;
mod terms;

#[cfg(test)]
mod cdisc_tests;
#[cfg(test)]
mod tests;

pub use csv::render_csv;
pub use cut::NO_ARM;
pub use html::{render_html, try_render_html, ReportError};
#[cfg(feature = "pdf")]
pub use pdf::render_pdf;
pub use sections::adverse_events::{AdverseEventSummary, GradeTable, Tally, ICH_CRITERIA};
pub use sections::alerts::{AlertLine, AlertSummary, SeverityRow};
pub use sections::data_quality::{DataQuality, OverdueVisit};
pub use sections::edss::{EdssAtVisit, EdssSummary};
pub use sections::enrollment::{Discontinuation, Disposition, VisitCompletion};
pub use sections::exposure::Exposure;
pub use sections::infusion::{DoseTiming, InfusionReaction, InfusionSummary};
pub use sections::liver::{EdishPoint, EdishQuadrants, LabSummary, Quadrant};
pub use sections::mri::MriAtVisit;
pub use sections::serious_and_deaths::{AeLine, DeathLine, DeathSource};
pub use sections::stopping_rules::StoppingRuleStatus;
pub use summary::{summarize, ChartData, DsmbSummary, EdssTrajectory, GroupSummary};
pub use terms::{SocRow, TermRow, TermTable, TermTally};

use crate::model::SubjectHistory;
use crate::rules::EdssRule;
use crate::store::AlertRow;
use chrono::{DateTime, Utc};

/// Everything a DSMB report is made from. The caller reads the store; the report only
/// computes and renders.
#[derive(Debug, Clone, Copy)]
pub struct DsmbInput<'a> {
    pub study_title: &'a str,
    /// Data cut-off: records dated after it are left out (records with no time at all
    /// are kept), and alerts raised after it too. Printed on the title page.
    pub as_of: DateTime<Utc>,
    pub subjects: &'a [SubjectHistory],
    /// The trial's EDSS rule, whole: its thresholds decide worse / better than baseline,
    /// and its confirmation, baseline, tolerances and relapse window decide confirmed
    /// worsening.
    pub edss_rule: &'a EdssRule,
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
    /// The study's time zone: the cut-off is printed in it, naming it.
    pub timezone: chrono_tz::Tz,
    /// The audit trail's head when the report was made ("entry N, SHA-256 …"), printed on
    /// the title page: a witness, outside the database, of the trail as it stood.
    pub audit_head: &'a str,
    /// Electronically signed decisions on alerts: (alert id, the signature's line).
    pub signed_decisions: &'a [(i64, String)],
}
