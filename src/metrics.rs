//! Process-local timings for `/metrics`: how long evaluations and clock passes take.
//! Counts and ages live in the store ([`crate::store::Vitals`]); these are measured where
//! the work runs, kept in static atomics (no lock, no dependency), and start from zero
//! when the process does, as Prometheus expects of a histogram.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Upper bounds of the buckets, in seconds: from a one-subject chunk to a stalled commit.
const BOUNDS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A Prometheus histogram over [`BOUNDS`].
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    /// Observations per bucket, not cumulative; the last one is above every bound.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            buckets: [const { AtomicU64::new(0) }; BOUNDS.len() + 1],
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = BOUNDS.iter().position(|b| secs <= *b).unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// How many observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    fn render(&self, out: &mut String) {
        let name = self.name;
        out.push_str(&format!("# HELP {name} {}\n# TYPE {name} histogram\n", self.help));
        // Cumulative, and _count is the +Inf bucket: the two agree even while observed.
        let mut total = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            total += bucket.load(Relaxed);
            let le = BOUNDS.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            out.push_str(&format!("{name}_bucket{{le=\"{le}\"}} {total}\n"));
        }
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        out.push_str(&format!("{name}_sum {sum}\n{name}_count {total}\n"));
    }
}

pub static EVALUATION: Histogram = Histogram::new(
    "vigil_evaluation_seconds",
    "Time to evaluate a chunk of subjects and commit the outcome (failed attempts included).",
);
pub static CLOCK_PASS: Histogram = Histogram::new(
    "vigil_clock_pass_seconds",
    "Duration of a clock pass (time-driven rules, escalations, reports).",
);
static EVALUATED_SUBJECTS: AtomicU64 = AtomicU64::new(0);

/// Observes the time from its creation to its drop: one line at the top of the timed
/// function, which then records on every way out.
#[must_use = "the timer records when dropped"]
pub struct Timer {
    started: Instant,
    histogram: &'static Histogram,
    subjects: u64,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed());
        EVALUATED_SUBJECTS.fetch_add(self.subjects, Relaxed);
    }
}

/// Times an evaluation of `subjects` subjects (`vigil_evaluation_seconds`).
pub fn evaluation_timer(subjects: usize) -> Timer {
    Timer { started: Instant::now(), histogram: &EVALUATION, subjects: subjects as u64 }
}

/// Times a clock pass (`vigil_clock_pass_seconds`).
pub fn clock_pass_timer() -> Timer {
    Timer { started: Instant::now(), histogram: &CLOCK_PASS, subjects: 0 }
}

/// The process-local metrics in the Prometheus text format (version 0.0.4).
pub fn prometheus() -> String {
    let mut out = String::new();
    EVALUATION.render(&mut out);
    out.push_str(&format!(
        "# HELP vigil_evaluated_subjects_total Subjects evaluated (with vigil_evaluation_seconds_sum: time per subject).\n\
         # TYPE vigil_evaluated_subjects_total counter\nvigil_evaluated_subjects_total {}\n",
        EVALUATED_SUBJECTS.load(Relaxed)
    ));
    CLOCK_PASS.render(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_count_is_the_inf_bucket() {
        let h = Histogram::new("t_seconds", "test");
        for ms in [0, 3, 3, 700, 40_000] {
            h.observe(Duration::from_millis(ms));
        }
        let mut out = String::new();
        h.render(&mut out);
        assert!(out.contains("t_seconds_bucket{le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("t_seconds_bucket{le=\"0.005\"} 3\n"), "{out}");
        assert!(out.contains("t_seconds_bucket{le=\"1\"} 4\n"), "{out}");
        assert!(out.contains("t_seconds_bucket{le=\"30\"} 4\n"), "{out}");
        assert!(out.contains("t_seconds_bucket{le=\"+Inf\"} 5\n"), "{out}");
        assert!(out.contains("t_seconds_sum 40.706\nt_seconds_count 5\n"), "{out}");
        assert_eq!(h.count(), 5);
    }
}
