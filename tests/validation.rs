//! The validation pack as CI and an operator use it: `vigil validation-report` over a
//! captured `cargo test` output, and `vigil selftest` on an installed deployment.

mod common;

use common::{free_port, Deployment, SmtpServer, REPO};
use std::collections::BTreeMap;
use std::process::Command;

fn vigil_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_vigil")).args(args).current_dir(dir).output().expect("run vigil");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The plain output of `cargo test` in which every named test ran: `failed` FAILED,
/// `missing` absent, the others ok. Grouped by target as cargo prints them.
fn cargo_test_output(tests: &[String], failed: &str, missing: &str) -> String {
    let mut by_target: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in tests.iter().filter(|t| t.as_str() != missing) {
        let (target, name) = t.split_once("::").expect("TARGET::name");
        by_target.entry(target).or_default().push(name);
    }
    let mut out = String::from("   Compiling vigil v0.1.0\n    Finished `test` profile\n");
    for (target, names) in by_target {
        let source = match target {
            "lib" => "unittests src/lib.rs".to_string(),
            "bin" => "unittests src/main.rs".to_string(),
            t => format!("tests/{t}.rs"),
        };
        out.push_str(&format!("     Running {source} (target/debug/deps/{target}-0123456789abcdef)\n\n"));
        out.push_str(&format!("running {} tests\n", names.len()));
        for n in names {
            let result = if format!("{target}::{n}") == failed { "FAILED" } else { "ok" };
            out.push_str(&format!("test {n} ... {result}\n"));
        }
        out.push_str("\ntest result: ok. 0 passed; 0 failed\n\n");
    }
    out.push_str("   Doc-tests vigil\n\nrunning 1 test\ntest src/lib.rs - x (line 1) ... FAILED\n");
    out
}

#[test]
fn the_report_marks_a_failed_test_failed_and_a_missing_test_not_tested() {
    let requirements_file = format!("{REPO}/docs/requirements.yaml");
    let requirements =
        vigil::validation::load_requirements(std::path::Path::new(&requirements_file)).expect("requirements");
    assert!(requirements.len() >= 2);
    let failed = requirements[0].tests[0].clone();
    let missing = requirements
        .iter()
        .skip(1)
        .flat_map(|r| r.tests.iter())
        .find(|t| !requirements[0].tests.contains(t))
        .expect("a test of another requirement")
        .clone();
    let all: Vec<String> = requirements.iter().flat_map(|r| r.tests.iter().cloned()).collect();
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    let dir = tempfile::tempdir().expect("temp dir");
    let results = dir.path().join("test-output.txt");
    std::fs::write(&results, cargo_test_output(&unique, &failed, &missing)).expect("write results");
    let out_dir = dir.path().join("out");
    let args = [
        "validation-report",
        "--results",
        results.to_str().expect("utf-8 path"),
        "--requirements",
        &requirements_file,
        "--rules",
        &format!("{REPO}/rules"),
        "--lock",
        &format!("{REPO}/Cargo.lock"),
        "--commit",
        "0123abcd4567",
        "--out",
        out_dir.to_str().expect("utf-8 path"),
    ];
    let (code, stdout, stderr) = vigil_in(dir.path(), &args);
    assert_eq!(code, 0, "the report is the evidence: exit 0 even with failures\n{stdout}{stderr}");
    let html_path = out_dir.join("validation-report.html");
    assert_eq!(stdout.trim(), html_path.display().to_string());
    let html = std::fs::read_to_string(&html_path).expect("the report");

    // Worked out here, independently of the report: a requirement naming the failed test
    // fails; else one naming the missing test is not tested; the others pass.
    for r in &requirements {
        let expected = if r.tests.contains(&failed) {
            "fail"
        } else if r.tests.contains(&missing) {
            "untested"
        } else {
            "pass"
        };
        assert!(
            html.contains(&format!("<div class=\"req {expected}\" id=\"{}\">", r.id)),
            "{} should be {expected}",
            r.id
        );
        assert!(html.contains(&format!("href=\"#{}\"", r.id)), "{} missing from the matrix", r.id);
    }
    let not_passed =
        requirements.iter().filter(|r| r.tests.contains(&failed) || r.tests.contains(&missing)).count();
    assert!(
        stderr.contains(&format!(
            "{} requirements: {} passed",
            requirements.len(),
            requirements.len() - not_passed
        )),
        "{stderr}"
    );
    assert!(html.contains("no such test") && html.contains("NOT TESTED") && html.contains("FAILED"));
    assert!(html.contains("0123abcd4567") && html.contains(env!("CARGO_PKG_VERSION")));
    // The build's evidence: Cargo.lock's hash and each rule file's.
    let lock = std::fs::read(format!("{REPO}/Cargo.lock")).expect("Cargo.lock");
    assert!(html.contains(&sha256_hex(&lock)), "the Cargo.lock hash");
    let pack = std::fs::read(format!("{REPO}/rules/msc-progressive-ms.yaml")).expect("rule pack");
    assert!(html.contains(&sha256_hex(&pack)), "the rule file's hash");
    // Doc-tests are not requirements' tests: their FAILED line did not count.
    assert!(!html.contains("src/lib.rs - x"));

    let strict: Vec<&str> = args.iter().copied().chain(["--strict"]).collect();
    let (code, _, stderr) = vigil_in(dir.path(), &strict);
    assert_eq!(code, 1, "--strict fails on a failed or untested requirement: {stderr}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn a_requirements_file_with_a_yaml_error_is_refused_with_its_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let requirements = dir.path().join("requirements.yaml");
    std::fs::write(
        &requirements,
        "requirements:\n  - id: REQ-A-001\n    text: \"unclosed\n    source: s\n    tests: [lib::x]\n",
    )
    .expect("write");
    let results = dir.path().join("out.txt");
    std::fs::write(&results, "").expect("write");
    let (code, stdout, stderr) = vigil_in(
        dir.path(),
        &[
            "validation-report",
            "--results",
            results.to_str().expect("utf-8"),
            "--requirements",
            requirements.to_str().expect("utf-8"),
            "--rules",
            &format!("{REPO}/rules"),
            "--lock",
            &format!("{REPO}/Cargo.lock"),
            "--out",
            dir.path().join("out").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    let prefix = format!("{}:", requirements.display());
    let place = stderr.strip_prefix(&prefix).unwrap_or_else(|| panic!("names the file: {stderr}"));
    let mut parts = place.splitn(3, ':');
    let line: usize = parts.next().and_then(|l| l.parse().ok()).unwrap_or_else(|| panic!("a line: {stderr}"));
    let col: usize =
        parts.next().and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("a column: {stderr}"));
    assert!(line >= 3 && col >= 1, "{stderr}");
    assert!(!dir.path().join("out/validation-report.html").exists(), "no report from a broken file");
}

/// The check lines of a selftest's output: name → PASS/FAIL.
fn checks(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| {
            let (verdict, rest) = l.split_once("  ")?;
            matches!(verdict, "PASS" | "FAIL")
                .then(|| (rest.split_whitespace().next().unwrap_or("").to_string(), verdict.to_string()))
        })
        .collect()
}

#[test]
fn selftest_passes_on_a_working_installation_and_fails_on_a_closed_smtp_port() {
    let smtp = SmtpServer::start();
    let d = Deployment::new(Some(&smtp.url()));
    let config = d.config.to_str().expect("utf-8 path");
    let migrate = d.vigil(&["migrate", "--config", config]);
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));

    let out = d.vigil(&["selftest", "--config", config]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let found = checks(&stdout);
    for name in ["config", "rules", "rule-tests", "database", "smtp"] {
        assert_eq!(found.get(name).map(String::as_str), Some("PASS"), "{name}:\n{stdout}");
    }
    assert!(found.values().all(|v| v == "PASS"), "{stdout}");
    // Fileable: what ran, where, on which configuration, when.
    let config_hash = sha256_hex(&std::fs::read(&d.config).expect("config"));
    assert!(stdout.contains(&config_hash), "the config's hash:\n{stdout}");
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")) && stdout.contains("host:"), "{stdout}");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(stdout.contains(&today), "dated:\n{stdout}");
    assert!(stdout.contains("result: PASS"), "{stdout}");

    // Nothing listens on this port: the mail check fails, and with it the selftest.
    let closed = format!("smtp://127.0.0.1:{}", free_port());
    let d = Deployment::new(Some(&closed));
    let config = d.config.to_str().expect("utf-8 path");
    assert!(d.vigil(&["migrate", "--config", config]).status.success());
    let out = d.vigil(&["selftest", "--config", config]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let found = checks(&stdout);
    assert_eq!(found.get("smtp").map(String::as_str), Some("FAIL"), "{stdout}");
    assert_eq!(found.get("database").map(String::as_str), Some("PASS"), "{stdout}");
    assert!(stdout.contains("result: FAIL (1 of"), "{stdout}");

    // Without SMTP, the outbox folder of .eml files must be writable; an unmigrated
    // database fails (selftest never migrates).
    let d = Deployment::new(None);
    let config = d.config.to_str().expect("utf-8 path");
    let out = d.vigil(&["selftest", "--config", config]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let found = checks(&stdout);
    assert_eq!(found.get("outbox").map(String::as_str), Some("PASS"), "{stdout}");
    assert_eq!(found.get("database").map(String::as_str), Some("FAIL"), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "{stdout}");
}
