//! Section "Exposure": doses given to the safety population, doses per subject and days
//! from the first dose to the last.

use super::{row, safety_groups, split_table};
use crate::report::cut::Member;
use crate::report::document::{Cell, Section};
use crate::report::DsmbSummary;
use std::collections::{BTreeMap, BTreeSet};

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

pub(crate) fn exposure(dosed: &[Member]) -> Exposure {
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

// --- the section in the report ---------------------------------------------------------

/// Section "Exposure".
pub(crate) fn section(s: &DsmbSummary) -> Section {
    let cols = safety_groups(s);
    let range = |min: Option<i64>, max: Option<i64>| match (min, max) {
        (Some(a), Some(b)) => Cell::Range(a, b),
        _ => Cell::Missing,
    };
    let as_i64 = |v: Option<usize>| v.and_then(|v| i64::try_from(v).ok());
    let mut rows = vec![
        row(&cols, "Dosed subjects (N)", |g| vec![Cell::int(g.exposure.subjects)]).strong(),
        row(&cols, "Doses given", |g| vec![Cell::int(g.exposure.doses)]),
        row(&cols, "Doses per subject, mean", |g| vec![Cell::num(g.exposure.mean_doses, 1)]),
        row(&cols, "Doses per subject, median", |g| vec![Cell::num(g.exposure.median_doses, 1)]),
        row(&cols, "Doses per subject, min–max", move |g| {
            vec![range(as_i64(g.exposure.min_doses), as_i64(g.exposure.max_doses))]
        }),
    ];
    let counts: BTreeSet<usize> =
        cols.iter().flat_map(|g| g.exposure.per_subject.iter().map(|(k, _)| *k)).collect();
    for k in counts {
        let label = if k == 1 { "1 dose".to_string() } else { format!("{k} doses") };
        rows.push(
            row(&cols, label, move |g| {
                let n = g.exposure.per_subject.iter().find(|(c, _)| *c == k).map_or(0, |(_, n)| *n);
                vec![Cell::count(n, g.n())]
            })
            .indent(),
        );
    }
    rows.push(row(&cols, "Days from first to last dose, mean", |g| vec![Cell::num(g.exposure.mean_days, 1)]));
    rows.push(row(&cols, "Days from first to last dose, min–max", move |g| {
        vec![range(g.exposure.min_days, g.exposure.max_days)]
    }));
    Section {
        title: "Exposure".to_string(),
        notes: vec![
            "A dose is one administration record (repeats of the same start and product are one dose). \
             Days run from the first dose to the end (else start) of the last, both included."
                .to_string(),
        ],
        tables: vec![split_table(
            &cols,
            "exposure",
            "Exposure to study treatment",
            &["Measure"],
            &["Value"],
            rows,
        )],
        ..Section::default()
    }
}
