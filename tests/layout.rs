//! The layout keeps the pipeline one-way: no top-level module of the library reaches,
//! directly or through others, back to itself (`crate::x` references outside tests).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules its non-test code names as `crate::x`.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap_or(&file).to_string_lossy().to_string();
        let top = rel.split('/').next().unwrap_or_default().trim_end_matches(".rs").to_string();
        // The binary's command line sits above every stage; test-only files may reach anywhere.
        if ["main", "lib", "cli"].contains(&top.as_str()) || rel.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let entry = deps.entry(top.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String =
                code[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() && name != top {
                entry.insert(name);
            }
        }
    }
    deps
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A path a → … → a, if there is one.
fn cycle(deps: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        u: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == u) {
            let mut c = path[i..].to_vec();
            c.push(u.to_string());
            return Some(c);
        }
        if done.contains(u) {
            return None;
        }
        path.push(u.to_string());
        for v in deps.get(u).into_iter().flatten() {
            if let Some(c) = visit(v, deps, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(u.to_string());
        None
    }
    let mut done = BTreeSet::new();
    deps.keys().find_map(|u| visit(u, deps, &mut done, &mut Vec::new()))
}

#[test]
fn no_module_reaches_back_up_the_pipeline() {
    let deps = dependencies();
    assert!(deps.len() >= 10, "the scan found the modules: {deps:?}");
    assert!(deps["daemon"].contains("evaluate"), "the scan sees references: {deps:?}");
    assert_eq!(cycle(&deps), None, "import circle among top-level modules: {deps:#?}");
}

#[test]
fn the_cycle_finder_finds_a_circle() {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    deps.entry("store".into()).or_default().insert("rules".into());
    deps.entry("rules".into()).or_default().insert("report".into());
    assert_eq!(cycle(&deps), None);
    deps.entry("report".into()).or_default().insert("store".into());
    assert_eq!(cycle(&deps).map(|c| c.len()), Some(4));
}
