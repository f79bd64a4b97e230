//! `vigil validation-report`: the HTML validation report of issue #14 from a captured
//! `cargo test` output and `docs/requirements.yaml` (see `vigil::validation`).

use super::Findings;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil::validation::{self, Build, RequirementStatus, ValidationError};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The captured output of `cargo test` (stdout and stderr, plain text).
    #[arg(long)]
    results: PathBuf,
    #[arg(long, default_value = "docs/requirements.yaml")]
    requirements: PathBuf,
    /// The rule pack folder whose files are hashed.
    #[arg(long, default_value = "rules")]
    rules: PathBuf,
    #[arg(long, default_value = "Cargo.lock")]
    lock: PathBuf,
    /// The commit tested (default: `git rev-parse HEAD`, else "unknown").
    #[arg(long)]
    commit: Option<String>,
    /// Where validation-report.html is written.
    #[arg(long)]
    out: PathBuf,
    /// Exit 1 when a requirement failed or is not tested (the report is written anyway).
    #[arg(long)]
    strict: bool,
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let requirements = validation::load_requirements(&args.requirements).map_err(|e| match e {
        // A broken requirements file is the input's fault: exit 1, like a broken rule file.
        ValidationError::Requirements { .. } => anyhow::Error::from(Findings(e.to_string())),
        other => other.into(),
    })?;
    let output = std::fs::read(&args.results)
        .with_context(|| format!("cannot read test results {}", args.results.display()))?;
    let run = validation::parse_test_output(&String::from_utf8_lossy(&output));
    if run.results.is_empty() {
        // Still written (every requirement NOT TESTED), but probably the wrong file.
        eprintln!(
            "warning: no test results in {} (the plain output of `cargo test`?)",
            args.results.display()
        );
    }
    let (rule_files, rule_pack_sha256) = validation::hash_rule_pack(&args.rules)?;
    let build = Build {
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit: args.commit.or_else(validation::current_commit).unwrap_or_else(|| "unknown".into()),
        generated: chrono::Utc::now(),
        results_file: args.results,
        requirements_file: args.requirements,
        cargo_lock_sha256: validation::sha256_file(&args.lock)?,
        cargo_lock: args.lock,
        rules_dir: args.rules,
        rule_files,
        rule_pack_sha256,
    };
    let traced = validation::trace(&requirements, &run);
    let html = validation::render_html(&build, &traced, &run)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create output folder {}", args.out.display()))?;
    let path = args.out.join("validation-report.html");
    std::fs::write(&path, html).with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}", path.display());
    let s = validation::summarize(&traced, &run);
    eprintln!(
        "{} requirements: {} passed, {} failed, {} not tested ({} tests run, {} not linked to a requirement)",
        s.requirements, s.passed, s.failed, s.not_tested, s.tests_run, s.tests_unlinked
    );
    for t in traced.iter().filter(|t| t.status != RequirementStatus::Passed) {
        eprintln!("{} {}", t.status.label(), t.requirement.id);
    }
    if args.strict && s.passed < s.requirements {
        return Err(Findings(format!(
            "--strict: {} requirements failed and {} are not tested",
            s.failed, s.not_tested
        ))
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
