//! The rule set the console shows, and the result of its shipped tests: loaded from the
//! configured rule files the way the evaluate stage loads them, kept until a file changes (the
//! tests evaluate whole timelines, so they run once, at the first request that needs them).

use crate::config::Config;
use crate::rules::RuleSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// One test file's outcome.
#[derive(Debug, Clone)]
pub(crate) struct TestFile {
    pub file: String,
    pub passed: usize,
    pub failed: usize,
    /// The failing tests' lines (with their differences).
    pub failures: Vec<String>,
}

pub(crate) struct RulePack {
    /// Every file under the rule paths and test folders, with its size and time.
    fingerprint: Vec<(PathBuf, u64, Option<SystemTime>)>,
    test_folders: Vec<PathBuf>,
    pub rules: Arc<RuleSet>,
    tests: OnceLock<Vec<TestFile>>,
}

impl RulePack {
    /// The shipped tests' results (run at the first call; blocking).
    pub fn tests(&self) -> &[TestFile] {
        self.tests.get_or_init(|| run_tests(&self.test_folders))
    }
}

static CURRENT: Mutex<Option<Arc<RulePack>>> = Mutex::new(None);

/// The rule pack as the files are now (blocking: reads the files).
pub(crate) fn current(config: &Config) -> anyhow::Result<Arc<RulePack>> {
    let folders = test_folders(&config.rules);
    let mut roots = config.rules.clone();
    roots.extend(folders.iter().cloned());
    let fingerprint = fingerprint(&roots);
    if let Some(p) = CURRENT.lock().ok().and_then(|c| c.clone()) {
        if p.fingerprint == fingerprint {
            return Ok(p);
        }
    }
    let rules = crate::evaluate::load_rules(config)?;
    let pack = Arc::new(RulePack {
        fingerprint,
        test_folders: folders,
        rules: Arc::new(rules),
        tests: OnceLock::new(),
    });
    if let Ok(mut c) = CURRENT.lock() {
        *c = Some(pack.clone());
    }
    Ok(pack)
}

/// Where the shipped tests are, as `vigil selftest` finds them: a rule folder itself, or
/// the `tests` folder beside a rule file.
fn test_folders(rules: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in rules {
        let folder = if p.is_dir() { Some(p.clone()) } else { p.parent().map(|d| d.join("tests")) };
        if let Some(f) = folder.filter(|f| f.is_dir() && !out.contains(f)) {
            out.push(f);
        }
    }
    out
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        if let Ok(d) = std::fs::read_dir(p) {
            for e in d.flatten() {
                walk(&e.path(), out);
            }
        }
    } else {
        out.push(p.to_path_buf());
    }
}

fn fingerprint(roots: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files = Vec::new();
    for r in roots {
        walk(r, &mut files);
    }
    files.sort();
    files.dedup();
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let size = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (f, size, modified)
        })
        .collect()
}

fn run_tests(folders: &[PathBuf]) -> Vec<TestFile> {
    let mut files = Vec::new();
    for f in folders {
        walk(f, &mut files);
    }
    files.retain(|f| {
        f.to_string_lossy().ends_with(".test.yaml") || f.to_string_lossy().ends_with(".test.yml")
    });
    files.sort();
    files
        .iter()
        .map(|f| {
            let outcome = crate::rules::testing::run(std::slice::from_ref(f));
            TestFile {
                file: f.display().to_string(),
                passed: outcome.passed,
                failed: outcome.failed,
                failures: outcome.report.into_iter().filter(|l| l.starts_with("FAIL")).collect(),
            }
        })
        .collect()
}

/// The rule's own text in its file: from its line (the `- id:` item) to the next item at
/// the same indentation or less.
pub(crate) fn definition(file: &Path, line: usize) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    definition_in(&text, line)
}

fn definition_in(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let first = *lines.get(line.checked_sub(1)?)?;
    let indent = first.len() - first.trim_start().len();
    let mut out = vec![first];
    for l in &lines[line..] {
        let here = l.len() - l.trim_start().len();
        if !l.trim().is_empty() && here <= indent {
            break;
        }
        out.push(l);
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    Some(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_definition_ends_at_the_next_rule() {
        let text = "rules:\n  - id: a\n    kind: x\n\n    severity: info\n\n  - id: b\n    kind: y\n";
        assert_eq!(definition_in(text, 2).unwrap(), "  - id: a\n    kind: x\n\n    severity: info");
        assert_eq!(definition_in(text, 7).unwrap(), "  - id: b\n    kind: y");
        assert_eq!(definition_in(text, 0), None);
        assert_eq!(definition_in(text, 99), None);
    }

    #[test]
    fn the_shipped_rule_pack_passes_its_tests_file_by_file() {
        let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
        let folders = test_folders(std::slice::from_ref(&rules));
        assert_eq!(folders, std::slice::from_ref(&rules));
        let results = run_tests(&folders);
        assert!(!results.is_empty());
        assert!(results.iter().all(|t| t.file.ends_with(".test.yaml")), "{results:?}");
        assert!(results.iter().all(|t| t.failed == 0 && t.passed > 0), "{results:?}");
    }
}
