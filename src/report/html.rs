//! The open DSMB report as one self-contained HTML page: inline CSS, no script, no
//! external resource, printable.
//!
//! Every piece of data text goes through minijinja's HTML auto-escaping (the template
//! name ends in `.html`); the Rust side only prepares plain strings and numbers.

use super::summary::{DoseTiming, GradeTable, InfusionReaction, Tally, ICH_CRITERIA};
use super::{DsmbInput, DsmbSummary};
use crate::model::MinimumChange;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Value;
use minijinja::{context, Environment, UndefinedBehavior};

/// The template name; its `.html` suffix switches on HTML auto-escaping.
const TEMPLATE_NAME: &str = "dsmb_open.html";
const TEMPLATE: &str = include_str!("dsmb_open.html");

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the DSMB report template failed: {0}")]
    Template(#[from] minijinja::Error),
}

/// Render the open DSMB report. Same input, same string.
///
/// The template is built in and covered by tests, so it does not fail in practice; if
/// it ever does, the page returned says so in place of the report (use
/// [`try_render_html`] to get the error instead).
pub fn render_html(input: &DsmbInput, summary: &DsmbSummary) -> String {
    try_render_html(input, summary).unwrap_or_else(|e| {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>DSMB report failed</title></head><body><h1>OPEN REPORT</h1>\
             <p>The DSMB report could not be rendered: {}</p></body></html>\n",
            escape(&e.to_string())
        )
    })
}

/// Render the open DSMB report, or say why the template failed.
pub fn try_render_html(input: &DsmbInput, summary: &DsmbSummary) -> Result<String, ReportError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).keep_trailing_newline(true).build()?,
    );
    env.add_template(TEMPLATE_NAME, TEMPLATE)?;
    let page = env.get_template(TEMPLATE_NAME)?.render(page_context(input, summary))?;
    Ok(page)
}

/// Minimal escaping for the failure page (the report itself is escaped by minijinja).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page_context(input: &DsmbInput, s: &DsmbSummary) -> Value {
    let ae = &s.adverse_events;
    let mut serious = vec![tally_row("Serious (any criterion)", ae.serious)];
    serious.extend(ICH_CRITERIA.iter().map(|&c| tally_row(&capitalise(c.label()), ae.criterion(c))));
    if ae.serious_without_criterion.events > 0 {
        serious.push(tally_row("Serious, criterion not recorded", ae.serious_without_criterion));
    }
    let dq = &s.data_quality;
    let mut quality = vec![dq.sentence()];
    let notes = [
        ("Records dated after the data cut-off (still counted above)", dq.records_after_cutoff),
        ("Adverse events without an onset date", dq.ae_onset_missing),
        ("Adverse events with a partial onset date (earliest plausible date used)", dq.ae_onset_partial),
        (
            "Post-baseline EDSS assessments without a visit label (not in the EDSS table)",
            dq.edss_without_visit,
        ),
        ("MRI scans without a visit label (not in the MRI table)", dq.mri_without_visit),
    ];
    quality.extend(notes.iter().filter(|(_, n)| *n > 0).map(|(what, n)| format!("{what}: {n}.")));

    context! {
        title => input.study_title,
        cutoff => input.as_of.format("%Y-%m-%d %H:%M UTC").to_string(),
        enrolled => s.disposition.enrolled,
        disposition_sentence => s.disposition.sentence(),
        visits => s.disposition.visits.iter().map(|v| context! {
            visit => v.visit.as_str(),
            subjects => v.subjects,
        }).collect::<Vec<_>>(),
        ae_grades => grade_rows(&ae.grades),
        serious => serious,
        irr_terms => s.infusion_reactions.terms.clone(),
        irr_grades => grade_rows(&s.infusion_reactions.grades),
        irr_listing => s.infusion_reactions.listing.iter().map(irr_row).collect::<Vec<_>>(),
        edss_rule => describe_rule(input.edss_change),
        edss_baseline_subjects => s.edss.baseline_subjects,
        edss_baseline_mean => s.edss.baseline_mean.map(|m| format!("{m:.2}")),
        edss_rows => s.edss.by_visit.iter().map(|e| context! {
            visit => e.visit.as_str(),
            assessed => e.assessed,
            mean_change => format!("{:+.2}", e.mean_change),
            worse => e.worse,
            stable => e.stable,
            better => e.better,
            sentence => e.sentence(),
        }).collect::<Vec<_>>(),
        mri_rows => s.mri.iter().map(|m| context! {
            visit => m.visit.as_str(),
            scans => m.scans,
            scans_without_count => m.scans_without_count,
            subjects_scanned => m.subjects_scanned,
            total_new_t2 => m.total_new_t2,
            subjects_with_new_t2 => m.subjects_with_new_t2,
            reference => reference(m.against_previous, m.against_baseline),
            sentence => m.sentence(),
        }).collect::<Vec<_>>(),
        quality => quality,
    }
}

fn tally_row(label: &str, t: Tally) -> Value {
    context! { label => label, events => t.events, subjects => t.subjects }
}

fn grade_rows(g: &GradeTable) -> Vec<Value> {
    const LABELS: [&str; 5] = [
        "Grade 1 (mild)",
        "Grade 2 (moderate)",
        "Grade 3 (severe)",
        "Grade 4 (life-threatening)",
        "Grade 5 (death)",
    ];
    let mut rows: Vec<Value> = LABELS.iter().zip(g.by_grade).map(|(label, t)| tally_row(label, t)).collect();
    rows.push(tally_row("Not graded", g.not_graded));
    rows.push(tally_row("Any grade", g.any));
    rows
}

fn irr_row(r: &InfusionReaction) -> Value {
    let day = match (r.onset_study_day, r.onset_partial) {
        (Some(d), false) => d.to_string(),
        (Some(d), true) => format!("{d} (partial date)"),
        (None, _) => "—".to_string(),
    };
    context! {
        subject => r.subject.as_str(),
        ae_id => r.ae_id.as_deref().unwrap_or("—"),
        term => r.term.as_str(),
        grade => r.grade.map_or_else(|| "not graded".to_string(), |g| g.to_string()),
        serious => if r.serious { "yes" } else { "no" },
        study_day => day,
        timing => describe_timing(r.timing),
        related => r.related.map_or("—", |x| x.label()),
    }
}

fn describe_timing(t: DoseTiming) -> String {
    match t {
        DoseTiming::AfterDose { dose, minutes: Some(m) } => {
            format!("{} after the start of dose {dose}", duration(m))
        }
        DoseTiming::AfterDose { dose, minutes: None } => {
            format!("after dose {dose} (dose start time not recorded)")
        }
        DoseTiming::NoPrecedingDose => "before the first dose".to_string(),
        DoseTiming::OnsetTimeUnknown => "onset time not recorded".to_string(),
    }
}

/// `25 min`, `3 h 10 min`, `2 h`, then `3 d 4 h` from 48 hours on.
fn duration(minutes: i64) -> String {
    let (h, m) = (minutes / 60, minutes % 60);
    match (h, m) {
        (0, m) => format!("{m} min"),
        (h, 0) if h < 48 => format!("{h} h"),
        (h, m) if h < 48 => format!("{h} h {m} min"),
        (h, _) => format!("{} d {} h", h / 24, h % 24),
    }
}

fn reference(previous: usize, baseline: usize) -> String {
    match (previous, baseline) {
        (_, 0) => "previous scan".to_string(),
        (0, _) => "baseline scan".to_string(),
        (p, b) => format!("mixed: {p} previous, {b} baseline"),
    }
}

/// "baseline ≤ 0.0: +1.5; baseline ≤ 5.0: +1.0; higher baseline: +0.5"
fn describe_rule(rule: &MinimumChange) -> String {
    rule.steps()
        .iter()
        .map(|s| match s.baseline_up_to {
            Some(up) => format!("baseline ≤ {up:.1}: {:+.1}", s.by),
            None => format!("higher baseline: {:+.1}", s.by),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_minutes_hours_days() {
        assert_eq!(duration(0), "0 min");
        assert_eq!(duration(55), "55 min");
        assert_eq!(duration(120), "2 h");
        assert_eq!(duration(190), "3 h 10 min");
        assert_eq!(duration(48 * 60 + 61), "2 d 1 h");
    }

    #[test]
    fn the_rule_is_described_from_its_steps() {
        assert_eq!(
            describe_rule(&MinimumChange::variant_a()),
            "baseline ≤ 0.0: +1.5; baseline ≤ 5.0: +1.0; higher baseline: +0.5"
        );
    }

    #[test]
    fn the_failure_page_escapes_too() {
        assert_eq!(escape("<a href='x'>&\""), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;");
    }
}
