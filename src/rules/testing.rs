//! Rule tests in the spirit of `promtool test rules`: records on a timeline, and the
//! findings expected (and not expected) at given times.
//!
//! ```yaml
//! rule_files: [../msc-progressive-ms.yaml]   # relative to the test file
//! schedule: []                               # optional, for overdue_visit rules
//! tests:
//!   - name: grade 3 infusion reaction
//!     records: [{subject: KS-101, doses: [...], adverse_events: [...]}]
//!     at: 2019-02-27T12:00:00Z               # default: the latest time in the records
//!     expect:
//!       - {rule: infusion-reaction-severe, subject: KS-101, severity: critical, level: 3}
//!     absent: [edss-worsening]               # rules that must not fire
//!     # or several times:  checks: [{at: …, expect: […], absent: […]}]
//! ```
//! A record is visible at a check time when its own time is not later (records without
//! any time are always visible), so one test can follow a subject through a timeline.

use super::eval::{all as evaluate_all, histories_at, Fired};
use super::{RuleSet, ScheduledVisit};
use crate::model::{ClinicalTime, Record};
use chrono::Utc;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    rule_files: Vec<PathBuf>,
    #[serde(default)]
    schedule: Vec<ScheduledVisit>,
    tests: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    records: Vec<serde_yaml::Value>,
    at: Option<String>,
    #[serde(default)]
    expect: Vec<Expected>,
    #[serde(default)]
    absent: Vec<Absent>,
    #[serde(default)]
    checks: Vec<Check>,
}

/// A rule id that must not fire at all, or a finding pattern that must not appear.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Absent {
    Rule(String),
    Finding(Expected),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    at: Option<String>,
    #[serde(default)]
    expect: Vec<Expected>,
    #[serde(default)]
    absent: Vec<Absent>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    rule: String,
    /// Omitted for cohort findings.
    subject: Option<String>,
    severity: Option<String>,
    level: Option<i64>,
    episode: Option<String>,
    /// Text that the summary must contain.
    summary_contains: Option<String>,
}

/// The outcome of running test files.
#[derive(Debug, Default)]
pub struct Outcome {
    pub passed: usize,
    pub failed: usize,
    /// Human-readable lines: one per test, with a diff under each failure.
    pub report: Vec<String>,
}

/// Runs every `*.test.yaml` under the given files or folders.
pub fn run(paths: &[PathBuf]) -> Outcome {
    let mut files = Vec::new();
    for p in paths {
        collect(p, true, &mut files);
    }
    let mut out = Outcome::default();
    if files.is_empty() {
        out.failed += 1;
        out.report.push(format!("no *.test.yaml files under {}", display(paths)));
    }
    for f in files {
        run_file(&f, &mut out);
    }
    out
}

fn display(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Test files under a folder are the `*.test.yaml` ones; a file named explicitly is
/// taken whatever its name.
fn collect(p: &Path, explicit: bool, files: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            collect(&e, false, files);
        }
    } else {
        let name = p.to_string_lossy();
        if explicit || name.ends_with(".test.yaml") || name.ends_with(".test.yml") {
            files.push(p.to_path_buf());
        }
    }
}

fn run_file(path: &Path, out: &mut Outcome) {
    let fail = |out: &mut Outcome, msg: String| {
        out.failed += 1;
        out.report.push(format!("FAIL {}: {msg}", path.display()));
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return fail(out, format!("cannot read: {e}")),
    };
    let file: TestFile = match serde_yaml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
            out.failed += 1;
            out.report.push(format!("FAIL {}{at}: {}", path.display(), e));
            return;
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let rule_paths: Vec<PathBuf> = file.rule_files.iter().map(|r| base.join(r)).collect();
    let rules = match super::load_rules(&rule_paths) {
        Ok(r) => r,
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return fail(out, format!("rule files do not load:\n    {}", lines.join("\n    ")));
        }
    };
    for case in &file.tests {
        match run_case(case, &rules, &file.schedule) {
            Ok(()) => {
                out.passed += 1;
                out.report.push(format!("ok   {}: {}", path.display(), case.name));
            }
            Err(diff) => {
                out.failed += 1;
                out.report.push(format!("FAIL {}: {}\n{diff}", path.display(), case.name));
            }
        }
    }
}

fn run_case(case: &TestCase, rules: &RuleSet, schedule: &[ScheduledVisit]) -> Result<(), String> {
    let mut records = Vec::new();
    for (i, v) in case.records.iter().enumerate() {
        let json = serde_json::to_string(v).map_err(|e| format!("    records[{i}]: {e}"))?;
        let r = Record::from_json(&json).map_err(|e| format!("    records[{i}]: {e}"))?;
        records.push(r);
    }
    let latest =
        records.iter().filter_map(|r| r.when().map(ClinicalTime::latest)).max().unwrap_or_else(Utc::now);
    let single = Check { at: case.at.clone(), expect: case.expect.clone(), absent: case.absent.clone() };
    let checks: Vec<&Check> =
        if case.checks.is_empty() { vec![&single] } else { case.checks.iter().collect() };
    let mut problems = Vec::new();
    for check in checks {
        let at = match &check.at {
            Some(t) => ClinicalTime::parse(t).map_err(|e| format!("    at: {e}"))?.earliest(),
            None => latest,
        };
        let histories = histories_at(&records, at);
        let fired = evaluate_all(rules, &histories, at, schedule);
        let mut lines = Vec::new();
        for e in &check.expect {
            if rules.get(&e.rule).is_none() {
                lines.push(format!("    expected rule `{}` does not exist", e.rule));
            } else if !fired.iter().any(|f| matches(e, f)) {
                lines.push(format!("    missing:    {}", describe(e)));
            }
        }
        for a in &check.absent {
            let rule = match a {
                Absent::Rule(r) => r,
                Absent::Finding(e) => &e.rule,
            };
            if rules.get(rule).is_none() {
                lines.push(format!("    absent rule `{rule}` does not exist"));
            }
            let unwanted = |f: &&Fired| match a {
                Absent::Rule(r) => &f.rule == r,
                Absent::Finding(e) => matches(e, f),
            };
            for f in fired.iter().filter(unwanted) {
                lines.push(format!("    unexpected: {f}"));
            }
        }
        if !lines.is_empty() {
            problems.push(format!("  at {}:", at.to_rfc3339()));
            problems.extend(lines);
            problems.push("    fired:".to_string());
            problems.extend(fired.iter().map(|f| format!("      {f}")));
            if fired.is_empty() {
                problems.push("      (nothing)".to_string());
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn matches(e: &Expected, f: &Fired) -> bool {
    e.rule == f.rule
        && e.subject == f.subject
        && e.severity.as_deref().is_none_or(|s| s == f.finding.severity.as_str())
        && e.level.is_none_or(|l| l == f.finding.level)
        && e.episode.as_deref().is_none_or(|ep| ep == f.finding.episode)
        && e.summary_contains.as_deref().is_none_or(|t| f.finding.summary.contains(t))
}

fn describe(e: &Expected) -> String {
    let mut parts =
        vec![format!("rule: {}", e.rule), format!("subject: {}", e.subject.as_deref().unwrap_or("(cohort)"))];
    if let Some(s) = &e.severity {
        parts.push(format!("severity: {s}"));
    }
    if let Some(l) = e.level {
        parts.push(format!("level: {l}"));
    }
    if let Some(ep) = &e.episode {
        parts.push(format!("episode: {ep}"));
    }
    if let Some(t) = &e.summary_contains {
        parts.push(format!("summary contains: {t:?}"));
    }
    format!("{{{}}}", parts.join(", "))
}
