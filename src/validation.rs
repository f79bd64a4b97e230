//! The validation pack (issue #14): the user requirements of `docs/requirements.yaml`, the
//! results of a `cargo test` run read from its plain output, the mapping of one onto the
//! other, and the HTML validation report that files them as evidence.
//!
//! A requirement is PASSED only when it names at least one test and every test it names
//! ran and passed; FAILED when any of them failed; NOT TESTED otherwise (no test named, or
//! a named test that did not run: "no such test", or ignored). The report never decides
//! more than the test run says.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Requirements files are small; a larger one is a mistake, refused before parsing.
const MAX_REQUIREMENTS_BYTES: u64 = 4 * 1024 * 1024;

const TEMPLATE_NAME: &str = "validation.html";
const TEMPLATE: &str = include_str!("validation.html");

#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    /// A problem of the requirements file, where it is.
    #[error("{file}:{line}:{col}: {message}")]
    Requirements { file: String, line: usize, col: usize, message: String },
    #[error("the validation report template failed: {0}")]
    Template(#[from] minijinja::Error),
}

/// One user requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    pub id: String,
    pub text: String,
    pub source: String,
    /// `TARGET::path::to::test` (the integration test file's stem, `lib` or `bin`).
    pub tests: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequirementsFile {
    requirements: Vec<RawRequirement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    id: String,
    text: String,
    source: String,
    #[serde(default)]
    tests: Vec<String>,
}

/// Reads and checks a requirements file (see [`parse_requirements`]).
pub fn load_requirements(path: &Path) -> Result<Vec<Requirement>, ValidationError> {
    let text = crate::rules::read_bounded(path, MAX_REQUIREMENTS_BYTES)
        .map_err(|e| ValidationError::Read { path: path.display().to_string(), message: format!("{e:#}") })?;
    parse_requirements(&text, &path.display().to_string())
}

/// Parses a requirements file; every problem names `file:line:col`. Ids must look like
/// `REQ-AREA-NNN` and be unique; tests must be `TARGET::…::name`.
pub fn parse_requirements(text: &str, file: &str) -> Result<Vec<Requirement>, ValidationError> {
    let positions = crate::rules::yamlpos::Positions::index(text);
    let at = |path: &str, message: String| {
        let (line, col) = positions.value(path).unwrap_or((1, 1));
        ValidationError::Requirements { file: file.to_string(), line, col, message }
    };
    let de = serde_yaml::Deserializer::from_str(text);
    let raw: RequirementsFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let (line, col) = inner
            .location()
            .map(|l| (l.line(), l.column()))
            .or_else(|| positions.value(&key))
            .unwrap_or((1, 1));
        let message = serde_message(&key, &inner.to_string());
        ValidationError::Requirements { file: file.to_string(), line, col, message }
    })?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.requirements.len());
    for (i, r) in raw.requirements.into_iter().enumerate() {
        let id_path = format!("requirements[{i}].id");
        if !is_requirement_id(&r.id) {
            return Err(at(&id_path, format!("`{}` is not a requirement id such as REQ-ALERT-003", r.id)));
        }
        if !seen.insert(r.id.clone()) {
            return Err(at(&id_path, format!("requirement `{}` is listed twice", r.id)));
        }
        for (j, t) in r.tests.iter().enumerate() {
            if !t.contains("::") || t.split("::").any(|part| part.trim().is_empty() || part != part.trim()) {
                let message = format!(
                    "`{t}` is not a test name such as pipeline::a_test or lib::module::tests::a_test"
                );
                return Err(at(&format!("requirements[{i}].tests[{j}]"), message));
            }
        }
        if r.text.trim().is_empty() {
            return Err(at(
                &format!("requirements[{i}].text"),
                format!("requirement `{}` has no text", r.id),
            ));
        }
        out.push(Requirement { id: r.id, text: r.text, source: r.source, tests: r.tests });
    }
    Ok(out)
}

/// serde_yaml's message without the positions it embeds (the error leads with its own)
/// and with the key in front once.
fn serde_message(key: &str, msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let n = digits(after);
        match after[n..].strip_prefix(" column ") {
            Some(col) if n > 0 => rest = &col[digits(col)..],
            _ => {
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    let bare = out.strip_prefix(key).and_then(|m| m.strip_prefix(": ")).unwrap_or(&out);
    if key.is_empty() || key == "." {
        bare.to_string()
    } else {
        format!("{key}: {bare}")
    }
}

/// `REQ-` then upper-case words and a number: REQ-ALERT-003.
fn is_requirement_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() >= 3
        && parts[0] == "REQ"
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_uppercase()))
        && parts.last().is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// What libtest said of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    Passed,
    Failed,
    Ignored,
}

/// The results of one `cargo test` run, keyed `TARGET::path::name`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TestRun {
    pub results: BTreeMap<String, Outcome>,
    /// The test targets that started, in order (`lib`, `bin`, `pipeline`, …).
    pub targets: Vec<String>,
}

/// The target a cargo `Running` line starts: `Running tests/foo.rs (…)` is `foo`,
/// `Running unittests src/lib.rs (…)` is `lib`, `src/main.rs` is `bin`, `src/bin/x.rs` is `x`.
fn target_of_running(line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix("Running ")?;
    let rest = rest.strip_prefix("unittests ").unwrap_or(rest);
    let source = rest.split(" (").next()?.trim();
    match source {
        "src/lib.rs" => Some("lib".into()),
        "src/main.rs" => Some("bin".into()),
        _ => {
            let stem = Path::new(source).file_stem()?.to_str()?;
            Some(stem.to_string())
        }
    }
}

fn outcome_of(word: &str) -> Option<Outcome> {
    match word.trim() {
        "ok" => Some(Outcome::Passed),
        "FAILED" => Some(Outcome::Failed),
        w if w == "ignored" || w.starts_with("ignored,") => Some(Outcome::Ignored),
        _ => None,
    }
}

/// Removes ANSI colour escapes (`CARGO_TERM_COLOR=always` output).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter).
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads the plain output of `cargo test` (stable libtest, the default pretty format):
/// `Running …` lines name the target, `test NAME ... ok|FAILED|ignored` lines its tests.
/// Doc-tests sections are skipped. A test whose result was printed on a later line (its
/// own output came between, as with `--nocapture`) is still counted.
pub fn parse_test_output(text: &str) -> TestRun {
    let mut run = TestRun::default();
    let mut target: Option<String> = None;
    let mut waiting: Option<String> = None;
    for raw in text.lines() {
        let line = strip_ansi(raw);
        let trimmed = line.trim();
        if trimmed.starts_with("Running ") {
            target = target_of_running(trimmed);
            if let Some(t) = &target {
                run.targets.push(t.clone());
            }
            waiting = None;
            continue;
        }
        if trimmed.starts_with("Doc-tests ") {
            target = None;
            waiting = None;
            continue;
        }
        let Some(t) = &target else { continue };
        if let Some(rest) = line.strip_prefix("test ") {
            if rest.starts_with("result:") {
                waiting = None;
                continue;
            }
            let Some((name, result)) = rest.split_once(" ... ") else { continue };
            let key = format!("{t}::{}", name.trim());
            match outcome_of(result) {
                Some(o) => {
                    run.results.insert(key, o);
                    waiting = None;
                }
                None if result.trim().is_empty() => waiting = Some(key),
                // `bench:` lines and the like are not results.
                None => {}
            }
        } else if let Some(key) = &waiting {
            // `--nocapture`: the test's own output, then its result on a line of its own
            // (or at the end of the test's last line).
            let last = trimmed.rsplit(' ').next().unwrap_or("");
            if let Some(o) = outcome_of(trimmed).or_else(|| outcome_of(last).filter(|_| trimmed != last)) {
                run.results.insert(key.clone(), o);
                waiting = None;
            }
        }
    }
    run
}

/// What became of one listed test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TestStatus {
    Passed,
    Failed,
    Ignored,
    /// Named by a requirement but absent from the run.
    NoSuchTest,
}

impl TestStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "FAILED",
            Self::Ignored => "ignored",
            Self::NoSuchTest => "no such test",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RequirementStatus {
    Passed,
    Failed,
    NotTested,
}

impl RequirementStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Passed => "PASSED",
            Self::Failed => "FAILED",
            Self::NotTested => "NOT TESTED",
        }
    }
}

/// A requirement with the result of each of its tests.
#[derive(Debug, Clone, Serialize)]
pub struct Traced {
    pub requirement: Requirement,
    pub tests: Vec<(String, TestStatus)>,
    pub status: RequirementStatus,
}

/// Maps a test run onto the requirements.
pub fn trace(requirements: &[Requirement], run: &TestRun) -> Vec<Traced> {
    requirements
        .iter()
        .map(|r| {
            let tests: Vec<(String, TestStatus)> = r
                .tests
                .iter()
                .map(|t| {
                    let status = match run.results.get(t) {
                        Some(Outcome::Passed) => TestStatus::Passed,
                        Some(Outcome::Failed) => TestStatus::Failed,
                        Some(Outcome::Ignored) => TestStatus::Ignored,
                        None => TestStatus::NoSuchTest,
                    };
                    (t.clone(), status)
                })
                .collect();
            let status = if tests.iter().any(|(_, s)| *s == TestStatus::Failed) {
                RequirementStatus::Failed
            } else if !tests.is_empty() && tests.iter().all(|(_, s)| *s == TestStatus::Passed) {
                RequirementStatus::Passed
            } else {
                RequirementStatus::NotTested
            };
            Traced { requirement: r.clone(), tests, status }
        })
        .collect()
}

/// The SHA-256 of one file of the rule pack.
#[derive(Debug, Clone, Serialize)]
pub struct FileHash {
    /// Relative to the rule folder, `/`-separated.
    pub path: String,
    pub sha256: String,
}

/// Every file under `dir` (sorted by path) with its SHA-256, and one combined hash: the
/// SHA-256 of the `sha256sum`-style listing (`HASH  PATH\n` per file, paths relative to
/// `dir`), which anyone can recompute from the listing the report prints.
pub fn hash_rule_pack(dir: &Path) -> Result<(Vec<FileHash>, String), ValidationError> {
    let read_err = |p: &Path, e: std::io::Error| ValidationError::Read {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| read_err(&d, e))? {
            let path = entry.map_err(|e| read_err(&d, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut hashes: Vec<FileHash> = Vec::with_capacity(files.len());
    for f in files {
        let bytes = std::fs::read(&f).map_err(|e| read_err(&f, e))?;
        let rel = f.strip_prefix(dir).unwrap_or(&f);
        let path = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        hashes.push(FileHash { path, sha256: hex::encode(Sha256::digest(&bytes)) });
    }
    hashes.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((hashes.clone(), hex::encode(Sha256::digest(listing(&hashes).as_bytes()))))
}

/// The `sha256sum`-style listing the combined rule pack hash is taken over.
pub fn listing(hashes: &[FileHash]) -> String {
    hashes.iter().map(|h| format!("{}  {}\n", h.sha256, h.path)).collect()
}

/// The SHA-256 of a file (Cargo.lock).
pub fn sha256_file(path: &Path) -> Result<String, ValidationError> {
    std::fs::read(path)
        .map(|b| hex::encode(Sha256::digest(&b)))
        .map_err(|e| ValidationError::Read { path: path.display().to_string(), message: e.to_string() })
}

/// `git rev-parse HEAD` in the current folder, when git and a repository are there.
pub fn current_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    let sha = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !sha.is_empty()).then_some(sha)
}

/// What the report is about, besides the requirements and the run.
#[derive(Debug, Clone)]
pub struct Build {
    pub version: String,
    pub commit: String,
    pub generated: chrono::DateTime<chrono::Utc>,
    pub results_file: PathBuf,
    pub requirements_file: PathBuf,
    pub cargo_lock: PathBuf,
    pub cargo_lock_sha256: String,
    pub rules_dir: PathBuf,
    pub rule_files: Vec<FileHash>,
    pub rule_pack_sha256: String,
}

/// The counts of the summary.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub requirements: usize,
    pub passed: usize,
    pub failed: usize,
    pub not_tested: usize,
    pub tests_run: usize,
    pub tests_passed: usize,
    pub tests_failed: usize,
    pub tests_ignored: usize,
    /// Tests named by requirements.
    pub tests_linked: usize,
    /// Tests that ran but no requirement names.
    pub tests_unlinked: usize,
}

pub fn summarize(traced: &[Traced], run: &TestRun) -> Summary {
    let count = |s: RequirementStatus| traced.iter().filter(|t| t.status == s).count();
    let outcomes = |o: Outcome| run.results.values().filter(|v| **v == o).count();
    let linked: BTreeSet<&str> =
        traced.iter().flat_map(|t| t.requirement.tests.iter().map(String::as_str)).collect();
    Summary {
        requirements: traced.len(),
        passed: count(RequirementStatus::Passed),
        failed: count(RequirementStatus::Failed),
        not_tested: count(RequirementStatus::NotTested),
        tests_run: run.results.len(),
        tests_passed: outcomes(Outcome::Passed),
        tests_failed: outcomes(Outcome::Failed),
        tests_ignored: outcomes(Outcome::Ignored),
        tests_linked: linked.len(),
        tests_unlinked: run.results.keys().filter(|k| !linked.contains(k.as_str())).count(),
    }
}

/// The template's view: plain strings and numbers, so the template decides nothing.
#[derive(Serialize)]
struct View<'a> {
    title: &'a str,
    version: &'a str,
    commit: &'a str,
    generated: String,
    results_file: String,
    requirements_file: String,
    cargo_lock: String,
    cargo_lock_sha256: &'a str,
    rules_dir: String,
    rule_files: &'a [FileHash],
    rule_pack_sha256: &'a str,
    summary: Summary,
    overall: &'static str,
    overall_class: &'static str,
    targets_run: Vec<String>,
    requirements: Vec<ReqView>,
    matrix_targets: Vec<String>,
    matrix: Vec<MatrixRow>,
    reverse: Vec<ReverseRow>,
    unlinked: Vec<(String, Vec<String>)>,
}

#[derive(Serialize)]
struct ReqView {
    id: String,
    text: String,
    source: String,
    status: &'static str,
    class: &'static str,
    tests: Vec<TestView>,
}

#[derive(Serialize)]
struct TestView {
    name: String,
    status: &'static str,
    class: &'static str,
}

#[derive(Serialize)]
struct MatrixRow {
    id: String,
    class: &'static str,
    status: &'static str,
    /// One cell per target: "passed/listed", empty when the target is not named.
    cells: Vec<MatrixCell>,
}

#[derive(Serialize)]
struct MatrixCell {
    text: String,
    class: &'static str,
}

#[derive(Serialize)]
struct ReverseRow {
    test: String,
    status: &'static str,
    class: &'static str,
    requirements: Vec<String>,
}

fn req_class(s: RequirementStatus) -> &'static str {
    match s {
        RequirementStatus::Passed => "pass",
        RequirementStatus::Failed => "fail",
        RequirementStatus::NotTested => "untested",
    }
}

fn test_class(s: TestStatus) -> &'static str {
    match s {
        TestStatus::Passed => "pass",
        TestStatus::Failed => "fail",
        TestStatus::Ignored | TestStatus::NoSuchTest => "untested",
    }
}

fn target_of(test: &str) -> &str {
    test.split("::").next().unwrap_or(test)
}

/// Renders the HTML validation report. Same inputs, same page.
pub fn render_html(build: &Build, traced: &[Traced], run: &TestRun) -> Result<String, ValidationError> {
    let summary = summarize(traced, run);
    let (overall, overall_class) = if summary.failed > 0 {
        ("FAILED", "fail")
    } else if summary.not_tested > 0 {
        ("NOT ALL TESTED", "untested")
    } else {
        ("PASSED", "pass")
    };
    let requirements = traced
        .iter()
        .map(|t| ReqView {
            id: t.requirement.id.clone(),
            text: t.requirement.text.clone(),
            source: t.requirement.source.clone(),
            status: t.status.label(),
            class: req_class(t.status),
            tests: t
                .tests
                .iter()
                .map(|(name, s)| TestView { name: name.clone(), status: s.label(), class: test_class(*s) })
                .collect(),
        })
        .collect();
    // Columns of the matrix: every target a requirement names, in the run's order, then
    // the ones that did not run.
    let named: BTreeSet<&str> =
        traced.iter().flat_map(|t| t.tests.iter().map(|(n, _)| target_of(n))).collect();
    let mut matrix_targets: Vec<String> = Vec::new();
    for t in run.targets.iter().map(String::as_str).chain(named.iter().copied()) {
        if named.contains(t) && !matrix_targets.iter().any(|m| m == t) {
            matrix_targets.push(t.to_string());
        }
    }
    let matrix = traced
        .iter()
        .map(|t| MatrixRow {
            id: t.requirement.id.clone(),
            class: req_class(t.status),
            status: t.status.label(),
            cells: matrix_targets
                .iter()
                .map(|target| {
                    let mine: Vec<TestStatus> =
                        t.tests.iter().filter(|(n, _)| target_of(n) == target).map(|(_, s)| *s).collect();
                    let passed = mine.iter().filter(|s| **s == TestStatus::Passed).count();
                    let class = if mine.is_empty() {
                        ""
                    } else if mine.contains(&TestStatus::Failed) {
                        "fail"
                    } else if passed == mine.len() {
                        "pass"
                    } else {
                        "untested"
                    };
                    let text =
                        if mine.is_empty() { String::new() } else { format!("{passed}/{}", mine.len()) };
                    MatrixCell { text, class }
                })
                .collect(),
        })
        .collect();
    let mut by_test: BTreeMap<&str, (TestStatus, Vec<String>)> = BTreeMap::new();
    for t in traced {
        for (name, s) in &t.tests {
            by_test.entry(name.as_str()).or_insert((*s, Vec::new())).1.push(t.requirement.id.clone());
        }
    }
    let reverse = by_test
        .into_iter()
        .map(|(test, (s, requirements))| ReverseRow {
            test: test.to_string(),
            status: s.label(),
            class: test_class(s),
            requirements,
        })
        .collect();
    let linked: BTreeSet<&str> =
        traced.iter().flat_map(|t| t.tests.iter().map(|(n, _)| n.as_str())).collect();
    let mut unlinked: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in run.results.keys().filter(|k| !linked.contains(k.as_str())) {
        let target = target_of(name).to_string();
        let rest = name.strip_prefix(&format!("{target}::")).unwrap_or(name).to_string();
        unlinked.entry(target).or_default().push(rest);
    }
    let view = View {
        title: "vigil validation report",
        version: &build.version,
        commit: &build.commit,
        generated: build.generated.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        results_file: build.results_file.display().to_string(),
        requirements_file: build.requirements_file.display().to_string(),
        cargo_lock: build.cargo_lock.display().to_string(),
        cargo_lock_sha256: &build.cargo_lock_sha256,
        rules_dir: build.rules_dir.display().to_string(),
        rule_files: &build.rule_files,
        rule_pack_sha256: &build.rule_pack_sha256,
        summary,
        overall,
        overall_class,
        targets_run: run.targets.clone(),
        requirements,
        matrix_targets,
        matrix,
        reverse,
        unlinked: unlinked.into_iter().collect(),
    };
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).keep_trailing_newline(true).build()?,
    );
    env.add_template(TEMPLATE_NAME, TEMPLATE)?;
    Ok(env.get_template(TEMPLATE_NAME)?.render(Value::from(Serde(&view)))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
   Compiling vigil v0.1.0 (/work/vigil)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 1m 02s
     Running unittests src/lib.rs (target/debug/deps/vigil-30e6e44b70b0ba4a)

running 3 tests
test model::scales::tests::ctcae_grades_are_one_to_five ... ok
test rules::lab::tests::cdisc_pilot_hys_law ... FAILED
test store::tests::slow ... ignored, needs PostgreSQL

failures:

---- rules::lab::tests::cdisc_pilot_hys_law stdout ----
test rules::lab::tests::fake_line_inside_a_panic_message is not a result
thread 'rules::lab::tests::cdisc_pilot_hys_law' panicked at src/rules/lab/mod.rs:1:1

test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s

     Running unittests src/main.rs (target/debug/deps/vigil-e6de99edc8c53863)

running 1 test
test cli::logging::tests::control_characters_are_written_as_escapes ... ok

     Running tests/pipeline.rs (target/debug/deps/pipeline-0acc35a5c5fd9211)

running 2 tests
test a_severe_infusion_reaction_is_emailed_once_and_never_again ... ok
test mail_waits_while_the_smtp_server_is_down_then_goes_exactly_once ... 
some output of the test
ok
   Doc-tests vigil

running 1 test
test src/lib.rs - rules (line 10) ... ok
";

    #[test]
    fn libtest_output_is_keyed_by_target_and_path() {
        let run = parse_test_output(OUTPUT);
        let expect = [
            ("lib::model::scales::tests::ctcae_grades_are_one_to_five", Outcome::Passed),
            ("lib::rules::lab::tests::cdisc_pilot_hys_law", Outcome::Failed),
            ("lib::store::tests::slow", Outcome::Ignored),
            ("bin::cli::logging::tests::control_characters_are_written_as_escapes", Outcome::Passed),
            ("pipeline::a_severe_infusion_reaction_is_emailed_once_and_never_again", Outcome::Passed),
            ("pipeline::mail_waits_while_the_smtp_server_is_down_then_goes_exactly_once", Outcome::Passed),
        ];
        assert_eq!(run.results, expect.iter().map(|(k, o)| (k.to_string(), *o)).collect());
        assert_eq!(run.targets, ["lib", "bin", "pipeline"]);
    }

    #[test]
    fn doc_tests_and_summary_lines_are_not_results() {
        let run = parse_test_output(OUTPUT);
        assert!(!run.results.keys().any(|k| k.contains("src/lib.rs") || k.contains("result")), "{run:?}");
    }

    #[test]
    fn colour_escapes_and_other_targets_are_read() {
        let text =
            "     \u{1b}[1m\u{1b}[92mRunning\u{1b}[0m tests/http_api.rs (target/debug/deps/http_api-1)\n\
                    test x ... \u{1b}[32mok\u{1b}[0m\n\
                    \u{1b}[1mRunning\u{1b}[0m unittests src/bin/tool.rs (target/debug/deps/tool-2)\n\
                    test y::z ... FAILED\n";
        let run = parse_test_output(text);
        assert_eq!(run.results.get("http_api::x"), Some(&Outcome::Passed), "{run:?}");
        assert_eq!(run.results.get("tool::y::z"), Some(&Outcome::Failed), "{run:?}");
    }

    #[test]
    fn lines_before_any_target_are_not_results() {
        let run = parse_test_output("test lonely ... ok\n");
        assert!(run.results.is_empty());
    }

    fn req(id: &str, tests: &[&str]) -> Requirement {
        Requirement {
            id: id.into(),
            text: "t".into(),
            source: "s".into(),
            tests: tests.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn a_requirement_passes_only_when_every_listed_test_passed() {
        let run = parse_test_output(OUTPUT);
        let reqs = [
            req("REQ-A-001", &["lib::model::scales::tests::ctcae_grades_are_one_to_five"]),
            req(
                "REQ-A-002",
                &[
                    "lib::model::scales::tests::ctcae_grades_are_one_to_five",
                    "lib::rules::lab::tests::cdisc_pilot_hys_law",
                ],
            ),
            req(
                "REQ-A-003",
                &["lib::model::scales::tests::ctcae_grades_are_one_to_five", "audit::does_not_exist"],
            ),
            req("REQ-A-004", &[]),
            req("REQ-A-005", &["lib::store::tests::slow"]),
            req("REQ-A-006", &["audit::does_not_exist", "lib::rules::lab::tests::cdisc_pilot_hys_law"]),
        ];
        let statuses: Vec<RequirementStatus> = trace(&reqs, &run).iter().map(|t| t.status).collect();
        use RequirementStatus::*;
        assert_eq!(statuses, [Passed, Failed, NotTested, NotTested, NotTested, Failed]);
        let traced = trace(&reqs, &run);
        assert_eq!(traced[2].tests[1].1, TestStatus::NoSuchTest);
        let s = summarize(&traced, &run);
        assert_eq!((s.passed, s.failed, s.not_tested, s.tests_run, s.tests_unlinked), (1, 2, 3, 6, 3));
    }

    #[test]
    fn requirements_errors_name_file_line_and_column() {
        let bad_yaml = "requirements:\n  - id: REQ-A-001\n    text: [unclosed\n";
        let e = parse_requirements(bad_yaml, "r.yaml").unwrap_err().to_string();
        assert!(e.starts_with("r.yaml:"), "{e}");
        let unknown = "requirements:\n  - id: REQ-A-001\n    text: t\n    source: s\n    test: [lib::x]\n";
        let e = parse_requirements(unknown, "r.yaml").unwrap_err().to_string();
        assert!(e.starts_with("r.yaml:5:5:") && e.contains("unknown field `test`"), "{e}");
        let twice = "requirements:\n  - {id: REQ-A-001, text: t, source: s}\n  - id: REQ-A-001\n    text: t\n    source: s\n";
        let e = parse_requirements(twice, "r.yaml").unwrap_err().to_string();
        assert_eq!(e, "r.yaml:3:9: requirement `REQ-A-001` is listed twice");
        let bad_test =
            "requirements:\n  - id: REQ-A-001\n    text: t\n    source: s\n    tests: [just_a_name]\n";
        let e = parse_requirements(bad_test, "r.yaml").unwrap_err().to_string();
        assert!(e.starts_with("r.yaml:5:13: `just_a_name`"), "{e}");
        let not_a_list = "requirements:\n  - id: REQ-A-001\n    text: t\n    source: s\n    tests: lib::x\n";
        let e = parse_requirements(not_a_list, "r.yaml").unwrap_err().to_string();
        assert_eq!(
            e,
            "r.yaml:5:12: requirements[0].tests: invalid type: string \"lib::x\", expected a sequence"
        );
        let bad_id = "requirements:\n  - {id: ALERT-1, text: t, source: s}\n";
        assert!(parse_requirements(bad_id, "r.yaml").unwrap_err().to_string().contains("ALERT-1"));
    }

    #[test]
    fn the_shipped_requirements_parse_and_name_only_well_formed_tests() {
        let reqs =
            load_requirements(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/requirements.yaml")))
                .expect("docs/requirements.yaml parses");
        assert!(reqs.len() >= 40, "{} requirements", reqs.len());
        assert!(reqs.iter().all(|r| !r.tests.is_empty()), "every requirement names a test");
    }

    #[test]
    fn the_report_escapes_text_and_marks_each_status() {
        let run = parse_test_output(OUTPUT);
        let mut reqs = vec![req("REQ-A-001", &["lib::model::scales::tests::ctcae_grades_are_one_to_five"])];
        reqs.push(req("REQ-A-002", &["lib::rules::lab::tests::cdisc_pilot_hys_law"]));
        reqs.push(req("REQ-A-003", &["audit::does_not_exist"]));
        reqs[0].text = "<script>alert(1)</script>".into();
        let build = Build {
            version: "9.9.9".into(),
            commit: "abc123".into(),
            generated: chrono::DateTime::from_timestamp(0, 0).unwrap_or_default(),
            results_file: "out.txt".into(),
            requirements_file: "req.yaml".into(),
            cargo_lock: "Cargo.lock".into(),
            cargo_lock_sha256: "00ff".into(),
            rules_dir: "rules".into(),
            rule_files: vec![FileHash { path: "a.yaml".into(), sha256: "11".into() }],
            rule_pack_sha256: "22".into(),
        };
        let traced = trace(&reqs, &run);
        let html = render_html(&build, &traced, &run).expect("renders");
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
        for s in
            ["PASSED", "FAILED", "NOT TESTED", "no such test", "9.9.9", "abc123", "1970-01-01 00:00:00 UTC"]
        {
            assert!(html.contains(s), "{s} missing");
        }
    }

    #[test]
    fn the_rule_pack_hash_is_over_the_sorted_listing() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("tests")).expect("mkdir");
        std::fs::write(dir.path().join("b.yaml"), "b").expect("write");
        std::fs::write(dir.path().join("tests/a.test.yaml"), "a").expect("write");
        let (files, combined) = hash_rule_pack(dir.path()).expect("hash");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["b.yaml", "tests/a.test.yaml"]);
        // sha256("b")
        assert_eq!(files[0].sha256, "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d");
        assert_eq!(combined, hex::encode(Sha256::digest(listing(&files).as_bytes())));
        std::fs::write(dir.path().join("b.yaml"), "c").expect("write");
        assert_ne!(hash_rule_pack(dir.path()).expect("hash").1, combined);
    }
}
