//! Rule commands: `vigil check` (configuration and rule files), `vigil test` (rule tests)
//! and `vigil replay` (stored history under another rule set).

use super::{parse_as_of, print, Findings, Output};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vigil::config::Config;
use vigil::store::Store;

pub fn check(config: Option<&Path>, rules: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = config.map(Config::load).transpose()?;
    let paths = match (rules.is_empty(), &config) {
        (false, _) => rules,
        (true, Some(c)) => c.rules.clone(),
        (true, None) => vec![PathBuf::from("rules")],
    };
    let mut problems: Vec<String> = Vec::new();
    let loaded = match vigil::rules::load_rules(&paths) {
        Ok(set) => Some(set),
        Err(errors) => {
            problems.extend(errors.iter().map(ToString::to_string));
            None
        }
    };
    if let (Some(set), Some(c)) = (&loaded, &config) {
        problems.extend(vigil::alerts::Router::new(c).unknown_roles(set));
        problems.extend(vigil::daemon::unscheduled_visits(c, set));
    }
    if !problems.is_empty() {
        return Err(Findings(problems.join("\n")).into());
    }
    let n = loaded.map_or(0, |s| s.rules.len());
    println!("ok: {n} rules valid{}", if config.is_some() { ", configuration valid" } else { "" });
    Ok(ExitCode::SUCCESS)
}

pub fn test(tests: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let outcome = vigil::rules::testing::run(tests);
    for line in &outcome.report {
        println!("{line}");
    }
    println!("{} passed, {} failed", outcome.passed, outcome.failed);
    if outcome.failed > 0 {
        return Err(Findings(format!("{} rule tests failed", outcome.failed)).into());
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn replay(
    config: &Path,
    from: Option<&str>,
    to: Option<&str>,
    rules: &[PathBuf],
    output: Output,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let to = parse_as_of(to, config.study.zones.study)?;
    let from = from.map(|f| parse_as_of(Some(f), config.study.zones.study)).transpose()?;
    let ruleset = if rules.is_empty() {
        vigil::daemon::load_rules(&config)?
    } else {
        vigil::rules::load_rules(rules).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            Findings(format!("invalid rules:\n{}", lines.join("\n")))
        })?
    };
    let store = Store::connect(&config.database_url).await?.with_zones(config.study.zones.clone());
    let histories = store.all_histories().await?;
    let fired = store.alerts().await?;
    store.close().await;
    let diff =
        vigil::evaluate::replay::compare(&ruleset, &histories, &fired, from, to, &config.study.schedule);
    print(output, &diff, || {
        print!("{diff}");
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
