//! Loading rule files: every error with `file:line:col`, unknown keys with a suggestion.

use super::kind::ParamsReader;
use super::yamlpos::Positions;
use super::{Rule, RuleKind, Severity, KIND_NAMES as KINDS};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.message)
    }
}

impl std::error::Error for RuleError {}

const COMMON_KEYS: &[&str] = &[
    "id",
    "title",
    "kind",
    "severity",
    "notify",
    "labels",
    "version",
    "description",
    "escalate_after",
    "send_resolved",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rules: Vec<serde_yaml::Mapping>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    id: String,
    title: Option<String>,
    #[allow(dead_code)] // dispatched on from the mapping before this struct is built
    kind: String,
    severity: Severity,
    #[serde(default)]
    notify: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    version: Option<String>,
    #[allow(dead_code)]
    description: Option<String>,
    escalate_after: Option<super::Span>,
    #[serde(default)]
    send_resolved: bool,
}

/// The largest rules file read (the shipped pack is about 20 KiB): a file far beyond
/// it is a mistake or an attack on the parser, refused before it is read.
pub const MAX_RULE_FILE_BYTES: u64 = 1 << 20;

/// A text file of at most `max` bytes, or an error that says how large it is.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(max + 1).read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the file is larger than {} KiB, the most vigil reads", max / 1024),
        ));
    }
    Ok(text)
}

/// Loads every `.yaml`/`.yml` file under the given files or folders (test files, named
/// `*.test.yaml`, are skipped). Returns every error found, not just the first.
pub fn load_rules(paths: &[PathBuf]) -> Result<super::RuleSet, Vec<RuleError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.is_dir() {
            match rule_files_in(p) {
                Ok(mut found) => files.append(&mut found),
                Err(e) => errors.push(at(p, 1, 1, format!("cannot read folder: {e}"))),
            }
        } else {
            files.push(p.clone());
        }
    }
    let mut rules: Vec<Rule> = Vec::new();
    for f in files {
        match read_bounded(&f, MAX_RULE_FILE_BYTES) {
            Ok(text) => match parse_rules(&f, &text) {
                Ok(mut found) => rules.append(&mut found),
                Err(mut e) => errors.append(&mut e),
            },
            Err(e) => errors.push(at(&f, 1, 1, format!("cannot read file: {e}"))),
        }
    }
    let mut seen: BTreeMap<String, (PathBuf, usize)> = BTreeMap::new();
    for r in &rules {
        if let Some((file, line)) = seen.get(&r.id) {
            errors.push(at(
                &r.file,
                r.line,
                1,
                format!("rule id `{}` is already used at {}:{line}", r.id, file.display()),
            ));
        } else {
            seen.insert(r.id.clone(), (r.file.clone(), r.line));
        }
    }
    for (i, message) in super::mri::resolve_worsening(&mut rules) {
        errors.push(at(&rules[i].file, rules[i].line, 1, message));
    }
    if errors.is_empty() {
        Ok(super::RuleSet { rules })
    } else {
        Err(errors)
    }
}

fn rule_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if p.is_dir() {
            if name != "tests" {
                out.append(&mut rule_files_in(&p)?);
            }
        } else if (name.ends_with(".yaml") || name.ends_with(".yml")) && !name.contains(".test.") {
            out.push(p);
        }
    }
    Ok(out)
}

fn at(file: &Path, line: usize, col: usize, message: String) -> RuleError {
    RuleError { file: file.to_path_buf(), line, col, message }
}

/// Parses one file's text. Public for tests and `vigil check` of a single file.
pub fn parse_rules(file: &Path, text: &str) -> Result<Vec<Rule>, Vec<RuleError>> {
    let doc: RuleFile = serde_yaml::from_str(text).map_err(|e| {
        let (msg, last) = split_locations(&e.to_string());
        // "…, while scanning a quoted scalar at line 3 column 12": the start is more useful.
        let (line, col) = last
            .filter(|_| msg.contains("while scanning"))
            .or_else(|| e.location().map(|l| (l.line(), l.column())))
            .unwrap_or((1, 1));
        let msg = if msg.contains("unknown field") { with_suggestion(&msg) } else { msg };
        vec![at(file, line, col, msg)]
    })?;
    let pos = Positions::index(text);
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (i, mapping) in doc.rules.into_iter().enumerate() {
        match parse_rule(file, &pos, i, mapping) {
            Ok(r) => rules.push(r),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

fn parse_rule(
    file: &Path,
    pos: &Positions,
    i: usize,
    mapping: serde_yaml::Mapping,
) -> Result<Rule, RuleError> {
    let prefix = format!("rules[{i}]");
    let line = pos.value(&prefix).map_or(1, |p| p.0);
    let version_hash = {
        let canonical = serde_json::to_string(&mapping).unwrap_or_default();
        hex::encode(&Sha256::digest(canonical.as_bytes())[..4])
    };
    let error_at = |path: &str, message: String| {
        let full = if path.is_empty() { prefix.clone() } else { format!("{prefix}.{path}") };
        let (l, c) = pos.value(&full).unwrap_or((line, 1));
        at(file, l, c, message)
    };
    let (mut common, mut params) = (serde_yaml::Mapping::new(), serde_yaml::Mapping::new());
    for (k, v) in mapping {
        if k.as_str().is_some_and(|k| COMMON_KEYS.contains(&k)) {
            common.insert(k, v);
        } else {
            params.insert(k, v);
        }
    }
    // The kind's own keys first: a misspelt common key (`severty`) lands among them and
    // is reported as unknown with a suggestion, rather than as a missing `severity`.
    let prepare = match common.get("kind") {
        None => return Err(error_at("", format!("missing field `kind` (one of: {})", KINDS.join(", ")))),
        Some(serde_yaml::Value::String(k)) => {
            match RuleKind::read(k, Params { file, pos, prefix: &prefix, mapping: params }) {
                Some(read) => read?,
                None => {
                    let hint =
                        nearest(k, KINDS, 2).map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default();
                    return Err(error_at(
                        "kind",
                        format!("unknown rule kind `{k}`{hint}; kinds: {}", KINDS.join(", ")),
                    ));
                }
            }
        }
        Some(_) => return Err(error_at("kind", format!("`kind` must be one of: {}", KINDS.join(", ")))),
    };
    let common: Common = typed(file, pos, &prefix, common)?;
    if common.id.trim().is_empty() || common.id.contains(char::is_whitespace) {
        return Err(error_at(
            "id",
            format!("rule id `{}` must be one word, e.g. infusion-reaction-severe", common.id),
        ));
    }
    let kind = prepare().map_err(|(path, message)| error_at(&path, message))?;
    Ok(Rule {
        title: common.title.unwrap_or_else(|| common.id.clone()),
        id: common.id,
        severity: common.severity,
        notify: common.notify,
        labels: common.labels,
        version: common.version.unwrap_or(version_hash),
        escalate_after: common.escalate_after,
        send_resolved: common.send_resolved,
        file: file.to_path_buf(),
        line,
        kind,
    })
}

/// A kind's own keys of one rule, read with their positions in the file.
struct Params<'a> {
    file: &'a Path,
    pos: &'a Positions,
    prefix: &'a str,
    mapping: serde_yaml::Mapping,
}

impl ParamsReader for Params<'_> {
    type Error = RuleError;
    fn read<T: DeserializeOwned>(self) -> Result<T, RuleError> {
        typed(self.file, self.pos, self.prefix, self.mapping)
    }
}

/// Removes every " at line L column C" from a YAML error, returning the last location.
fn split_locations(msg: &str) -> (String, Option<(usize, usize)>) {
    let mut out = String::new();
    let mut last = None;
    let mut rest = msg;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let line_end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
        let line = after[..line_end].parse().ok();
        let tail = after[line_end..].strip_prefix(" column ").unwrap_or(&after[line_end..]);
        let col_end = tail.find(|c: char| !c.is_ascii_digit()).unwrap_or(tail.len());
        if let (Some(l), Ok(c)) = (line, tail[..col_end].parse()) {
            last = Some((l, c));
        }
        rest = &tail[col_end..];
    }
    out.push_str(rest);
    (out, last)
}

/// Deserializes part of a rule, turning serde's error into `file:line:col`.
fn typed<T: DeserializeOwned>(
    file: &Path,
    pos: &Positions,
    prefix: &str,
    m: serde_yaml::Mapping,
) -> Result<T, RuleError> {
    serde_path_to_error::deserialize(serde_yaml::Value::Mapping(m)).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        let full = if path == "." { prefix.to_string() } else { format!("{prefix}.{path}") };
        if let Some(field) = unknown_field(&msg) {
            let parent = if path == "." || path == "?" {
                prefix.to_string()
            } else {
                full.rsplit_once('.').map_or(full.clone(), |(p, _)| p.to_string())
            };
            let (l, c) =
                pos.key(&format!("{parent}.{field}")).or_else(|| pos.value(&parent)).unwrap_or((1, 1));
            return at(file, l, c, with_suggestion(&msg));
        }
        let (l, c) = if msg.starts_with("missing field") { pos.value(prefix) } else { pos.value(&full) }
            .unwrap_or((1, 1));
        at(
            file,
            l,
            c,
            format!("`{}`: {msg}", full.trim_start_matches(prefix).trim_start_matches('.'))
                .replace("``: ", ""),
        )
    })
}

fn unknown_field(msg: &str) -> Option<&str> {
    msg.strip_prefix("unknown field `")?.split('`').next()
}

/// Adds "did you mean" to serde's "unknown field `x`, expected one of `a`, `b`".
fn with_suggestion(msg: &str) -> String {
    let Some(field) = unknown_field(msg) else {
        return msg.to_string();
    };
    let expected: Vec<&str> =
        msg.split("expected ").nth(1).unwrap_or("").split('`').skip(1).step_by(2).collect();
    let mut all: Vec<&str> = expected.clone();
    all.extend(COMMON_KEYS);
    match nearest(field, &all, 2) {
        Some(s) => format!("{msg} (did you mean `{s}`?)"),
        None => msg.to_string(),
    }
}

/// The closest candidate by edit distance, if it is close enough to be a typo: at most a
/// third of the longer name's length, and never less than `floor` edits.
pub(super) fn nearest<'a>(word: &str, candidates: &[&'a str], floor: usize) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(floor))
        .min()
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rules file (or a config, read the same way) far beyond any real pack is refused
    /// with its size, before the YAML parser sees a byte of it.
    #[test]
    fn an_oversized_rules_file_is_refused_before_it_is_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        let comment = format!("# {}\n", "x".repeat(1000));
        std::fs::write(&big, format!("rules: []\n{}", comment.repeat(1100))).unwrap();
        let e = load_rules(std::slice::from_ref(&big)).err().unwrap();
        assert!(e[0].to_string().contains("larger than 1024 KiB"), "{}", e[0]);
        let config = crate::config::Config::load(&big).unwrap_err();
        assert!(format!("{config:#}").contains("larger than 1024 KiB"), "{config:#}");
    }

    fn errors(text: &str) -> Vec<String> {
        parse_rules(Path::new("r.yaml"), text)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const GOOD: &str = "rules:
  - id: irr-severe
    title: Severe infusion reaction
    kind: adverse_event
    match:
      terms: [Infusion related reaction]
      grade: {at_least: 3}
      onset_within: {after: dose, hours: 24}
    severity: critical
";

    #[test]
    fn a_good_file_loads() {
        let rules = parse_rules(Path::new("r.yaml"), GOOD).unwrap();
        assert_eq!(rules[0].id, "irr-severe");
        assert_eq!(rules[0].line, 2);
        assert_eq!(rules[0].version.len(), 8);
    }

    #[test]
    fn unknown_keys_point_at_the_key_and_suggest() {
        let e = errors(&GOOD.replace("      grade:", "      grde:"));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("r.yaml:7:7: unknown field `grde`"), "{e:?}");
        assert!(e[0].contains("did you mean `grade`?"), "{e:?}");
        let e = errors(&GOOD.replace("    severity:", "    severty:"));
        assert!(e[0].starts_with("r.yaml:9:5:") && e[0].contains("`severity`"), "{e:?}");
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let e = errors(&GOOD.replace("at_least: 3", "at_least: 7"));
        assert!(e[0].starts_with("r.yaml:7:25:"), "{e:?}");
        let e = errors(&GOOD.replace("severity: critical", "severity: high"));
        assert!(e[0].starts_with("r.yaml:9:15:"), "{e:?}");
        let e = errors(&GOOD.replace("kind: adverse_event", "kind: adverse_events"));
        assert!(e[0].starts_with("r.yaml:4:11:") && e[0].contains("did you mean `adverse_event`"), "{e:?}");
    }

    #[test]
    fn missing_fields_and_syntax_errors_have_locations() {
        let e = errors("rules:\n  - id: x\n    kind: mri_activity\n    measure: t2_new_or_enlarging\n");
        assert!(e[0].starts_with("r.yaml:2:") && e[0].contains("severity"), "{e:?}");
        let e = errors("rules:\n  - id: x\n    title: \"unclosed\n");
        assert!(e[0].starts_with("r.yaml:3:"), "{e:?}");
    }

    #[test]
    fn edit_distance() {
        assert_eq!(levenshtein("grde", "grade"), 1);
        assert_eq!(nearest("sevrity", &["severity", "site"], 2), Some("severity"));
        assert_eq!(nearest("zzzzzz", &["grade"], 2), None);
    }
}
