//! The expression language of rules: CEL (the `cel` crate), compiled once at load time.
//!
//! CEL was chosen because it always terminates and is strict: a type error is an error,
//! never a quiet `false` (crates.md §6). This module adds what the crate does not check:
//!
//! - at compile time, every variable, field and function an expression names must exist
//!   (`ae.grde` is refused with "did you mean `grade`?"), the source is at most
//!   [`MAX_SOURCE_CHARS`] characters and nested at most [`MAX_NESTING`] brackets deep
//!   (deeper input overflows the parser's stack, cel-rust#212), and the expression is
//!   run once on a sample with every field recorded, so a type error such as
//!   `ae.grade > 'x'` or a non-boolean condition is refused when the rule loads;
//! - at run time, [`Expr::eval_bool`] returns an error for any evaluation error or
//!   non-boolean result, so that a broken rule becomes a visible finding.
//!
//! # Variables
//!
//! Which variables an expression may use depends on where it is written (see each rule
//! kind); the fields of each are below ([`AE`], [`SUBJECT`], [`LAB`], [`VITAL`],
//! [`RECORD`] hold the same list, with examples). A field that was not recorded is
//! `null`: compare with `!= null` first (`ae.grade != null && ae.grade >= 3`), because
//! `null >= 3` is an evaluation error. `has(ae.grade)` is always true (every field is
//! always present, perhaps as `null`): use `ae.grade != null`.
//!
//! - `ae` (an adverse event, its latest version): `id` string or null, `term` string,
//!   `onset`/`end` ISO text or null, `onset_partial` bool, `grade` int 1–5 or null,
//!   `serious` bool (the reporter's judgement), `seriousness_inconsistent` bool (not
//!   serious, yet a criterion is given or the event was fatal), `seriousness` list of death, life_threatening, hospitalization,
//!   disability, congenital_anomaly, important_medical_event, `related` one of
//!   not_related, unlikely, possible, probable, definite, or null, `expected` bool or
//!   null, `outcome` string or null, `meddra_pt`, `meddra_soc`, `meddra_pt_code`,
//!   `meddra_soc_code` string or null, `discontinued` bool, `study_day` int or null
//!   (of the onset), `days_since_dose` int or null (whole days from the last dose that
//!   may precede the onset; the smallest plausible value for a partial date).
//! - `subject`: `id`, `site` string or null, `dosed` bool, `dose_count` int,
//!   `disposition` (completed, withdrawn, screen_failure, lost_to_follow_up, death) or
//!   null. The treatment arm is never exposed: rules must work blinded.
//! - `lab`: `test`, `value` double, `unit`, `low`, `high` or null, `x_uln` (value / high)
//!   or null, `time` ISO text or null, `visit`, `study_day`, `days_since_dose`.
//! - `vital`: `systolic_bp`, `diastolic_bp`, `heart_rate`, `temperature_c`, `spo2`,
//!   `respiratory_rate` double or null, `time`, `visit`, `study_day`, `days_since_dose`.
//! - `record` (one visit record): `visit`, `date`, `record_id` or null, `study_day`,
//!   `days_since_dose`, `edss` double or null, `relapse` bool, `mri` null or
//!   `{t2_new_or_enlarging, gd_enhancing, t2_total (int or null), reference}`,
//!   `adverse_event_count`, `dose_count` int, `disposition` or null.
//!
//! Limit: the fields of a variable are checked when written as `ae.field`; an index
//! such as `ae['grde']` is caught only by the sample run.

use super::load::nearest;
use super::{Finding, Severity};
use crate::model::{AdverseEvent, ClinicalTime, Dose, Lab, Record, SubjectHistory, Vital};
use cel::common::ast::{EntryExpr, Expr as Node};
use cel::{Context as CelContext, Env, ExecutionError, IdedExpr, Value};
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;

/// Longest accepted source, in characters: a rule condition is a line, not a program.
pub const MAX_SOURCE_CHARS: usize = 1000;
/// Deepest accepted bracket nesting; the parser recurses per level (cel-rust#212).
pub const MAX_NESTING: usize = 32;
/// Deepest accepted syntax tree. The evaluator recurses per level too: 48 levels fit a
/// 2 MiB thread stack in a debug build (measured), so 40 leaves a margin.
const MAX_TREE_DEPTH: usize = 40;
/// Comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`) nested deeper than this
/// are refused: each level multiplies the work by its list's length, so three levels over
/// list literals can run for minutes and take gigabytes (issue #12). A rule's condition
/// looks at one event; two levels is already generous.
const MAX_COMPREHENSION_NESTING: usize = 2;
/// Longest list literal: with the nesting limit, it bounds the work of a condition.
const MAX_LIST_LITERAL: usize = 100;
/// The parser runs on its own thread with this stack: in a debug build each bracket
/// level takes about 200 KiB of stack, more than a 2 MiB thread has for 32 levels.
const PARSER_STACK_BYTES: usize = 64 << 20;
/// Identifiers that name CEL types (`type(x) == int`), not variables.
const TYPE_NAMES: &[&str] =
    &["bool", "int", "uint", "double", "string", "bytes", "list", "map", "null_type", "type"];

/// A field of an expression variable; `example` is JSON, used for docs and the sample run
/// (an object field's sample is built from its `fields` instead).
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: &'static str,
    pub example: &'static str,
    /// Sub-fields, for a field that is itself an object (`record.mri`).
    pub fields: &'static [Field],
}

/// A variable an expression may use, and its fields.
#[derive(Debug)]
pub struct Var {
    pub name: &'static str,
    pub fields: &'static [Field],
}

const fn f(name: &'static str, ty: &'static str, example: &'static str) -> Field {
    Field { name, ty, example, fields: &[] }
}

const STUDY_DAY: Field = f("study_day", "int or null", "8");
const DAYS_SINCE_DOSE: Field = f("days_since_dose", "int or null", "7");
const TIME: Field = f("time", "ISO text or null", "\"2019-02-26T11:10:00+01:00\"");
const VISIT: Field = f("visit", "string or null", "\"D1\"");

/// `ae`: one adverse event (its latest version).
pub static AE: Var = Var {
    name: "ae",
    fields: &[
        f("id", "string or null", "\"AE-17\""),
        f("term", "string", "\"Infusion related reaction\""),
        f("onset", "ISO text or null", "\"2019-02-26T10:05:00+01:00\""),
        f("onset_partial", "bool", "false"),
        f("end", "ISO text or null", "\"2019-02-26T14:00:00+01:00\""),
        f("grade", "int 1-5 or null", "3"),
        f("serious", "bool", "true"),
        f("seriousness_inconsistent", "bool", "false"),
        f("seriousness", "list of string", "[\"hospitalization\"]"),
        f("related", "not_related|unlikely|possible|probable|definite or null", "\"possible\""),
        f("expected", "bool or null", "false"),
        f("outcome", "string or null", "\"recovered\""),
        f("meddra_pt", "string or null", "\"Infusion related reaction\""),
        f("meddra_soc", "string or null", "\"Injury, poisoning and procedural complications\""),
        f("meddra_pt_code", "string or null", "\"10000001\""),
        f("meddra_soc_code", "string or null", "\"10000002\""),
        f("discontinued", "bool", "false"),
        STUDY_DAY,
        DAYS_SINCE_DOSE,
    ],
};

/// `subject`: the subject the item belongs to. No arm: rules must work blinded.
pub static SUBJECT: Var = Var {
    name: "subject",
    fields: &[
        f("id", "string", "\"KS-101\""),
        f("site", "string or null", "\"KS\""),
        f("dosed", "bool", "true"),
        f("dose_count", "int", "1"),
        f("disposition", "string or null", "\"completed\""),
    ],
};

/// `lab`: one laboratory result.
pub static LAB: Var = Var {
    name: "lab",
    fields: &[
        f("test", "string", "\"ALT\""),
        f("value", "double", "52.0"),
        f("unit", "string or null", "\"U/L\""),
        f("low", "double or null", "0.0"),
        f("high", "double or null", "45.0"),
        f("x_uln", "double or null", "1.16"),
        TIME,
        VISIT,
        STUDY_DAY,
        DAYS_SINCE_DOSE,
    ],
};

/// `vital`: one set of vital signs.
pub static VITAL: Var = Var {
    name: "vital",
    fields: &[
        f("systolic_bp", "double or null", "128.0"),
        f("diastolic_bp", "double or null", "82.0"),
        f("heart_rate", "double or null", "96.0"),
        f("temperature_c", "double or null", "38.2"),
        f("spo2", "double or null", "97.0"),
        f("respiratory_rate", "double or null", "16.0"),
        TIME,
        VISIT,
        STUDY_DAY,
        DAYS_SINCE_DOSE,
    ],
};

/// `record`: one visit record.
pub static RECORD: Var = Var {
    name: "record",
    fields: &[
        VISIT,
        f("date", "ISO text or null", "\"2019-05-21\""),
        f("record_id", "string or null", "\"edc-0042\""),
        STUDY_DAY,
        DAYS_SINCE_DOSE,
        f("edss", "double or null", "4.5"),
        f("relapse", "bool", "false"),
        Field {
            name: "mri",
            ty: "object or null",
            example: "null",
            fields: &[
                f("t2_new_or_enlarging", "int or null", "1"),
                f("gd_enhancing", "int or null", "0"),
                f("t2_total", "int or null", "38"),
                f("reference", "previous|baseline", "\"previous\""),
            ],
        },
        f("adverse_event_count", "int", "1"),
        f("dose_count", "int", "0"),
        f("disposition", "string or null", "\"withdrawn\""),
    ],
};

impl Var {
    /// A value with every field recorded, for the compile-time sample run.
    pub fn sample(&self) -> Json {
        sample(self.fields)
    }
}

fn sample(fields: &[Field]) -> Json {
    let mut m = serde_json::Map::new();
    for fd in fields {
        let v = if fd.fields.is_empty() {
            serde_json::from_str(fd.example).unwrap_or(Json::Null)
        } else {
            sample(fd.fields)
        };
        m.insert(fd.name.to_string(), v);
    }
    Json::Object(m)
}

/// A compiled boolean expression, with its source kept for messages and the CEL
/// environment it runs in (built with it, at load: building one per evaluation would
/// dominate the evaluation).
#[derive(Clone)]
pub struct Expr {
    source: String,
    ast: IdedExpr,
    env: Arc<Env>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expr").field("source", &self.source).finish_non_exhaustive()
    }
}

impl Expr {
    /// Compiles `source` for an expression that may use `vars`, refusing anything that
    /// could not run (see the module documentation). The message names the problem.
    pub fn compile(source: &str, vars: &[&'static Var]) -> Result<Expr, String> {
        let chars = source.chars().count();
        if chars > MAX_SOURCE_CHARS {
            return Err(format!("the expression is {chars} characters long; at most {MAX_SOURCE_CHARS}"));
        }
        if source.trim().is_empty() {
            return Err("the expression is empty".into());
        }
        let depth = bracket_depth(source);
        if depth > MAX_NESTING {
            return Err(format!("brackets are nested {depth} deep; at most {MAX_NESTING}"));
        }
        let env = Arc::new(Env::stdlib());
        let ast = parse(&env, source)?;
        let depth = tree_depth(&ast);
        if depth > MAX_TREE_DEPTH {
            return Err(format!(
                "the expression is nested {depth} operations deep; at most {MAX_TREE_DEPTH} (split it up)"
            ));
        }
        check_cost(&ast)?;
        check_names(&env, &ast, vars, &mut Vec::new())?;
        let expr = Expr { source: source.to_string(), ast, env };
        let samples: Vec<(&str, Json)> = vars.iter().map(|v| (v.name, v.sample())).collect();
        let bound: Vec<(&str, &Json)> = samples.iter().map(|(n, v)| (*n, v)).collect();
        if let Err(e) = expr.eval_bool(&bound) {
            let names: Vec<String> = vars.iter().map(|v| format!("`{}`", v.name)).collect();
            return Err(format!("{e} (on a sample {} with every field recorded)", names.join(" and ")));
        }
        Ok(expr)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates with the given variables. An evaluation error, or a result that is not
    /// a boolean, is an `Err`: never a quiet `false`, which would hide a broken rule.
    pub fn eval_bool(&self, vars: &[(&str, &Json)]) -> Result<bool, String> {
        let mut ctx = CelContext::with_env(Arc::clone(&self.env));
        for (name, v) in vars {
            ctx.add_variable_from_value(*name, to_cel(v));
        }
        match Value::resolve(&self.ast, &ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("`{}` gives {}, not true or false", self.source, other.type_of())),
            Err(e) => Err(format!("`{}` cannot be evaluated: {e}", self.source)),
        }
    }
}

/// The deepest nesting of `(`, `[` and `{` outside string literals.
fn bracket_depth(source: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == '\\' {
                    chars.next();
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' | '[' | '{' => {
                    depth += 1;
                    max = max.max(depth);
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    max
}

/// Parses on a thread with a large stack, so that an accepted nesting cannot overflow
/// the loading thread's stack in a debug build.
fn parse(env: &Env, source: &str) -> Result<IdedExpr, String> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("cel-parse".into())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(s, || {
                env.parser().max_recursion_depth(MAX_TREE_DEPTH as u16).parse(source).map_err(|e| {
                    match e.errors.first() {
                        Some(first) if first.msg.contains("Recursion limit") => {
                            format!("the expression is nested too deeply; at most {MAX_TREE_DEPTH} levels")
                        }
                        Some(first) => {
                            let msg = first.msg.trim_start_matches("Syntax error: ");
                            let (line, col) = first.pos;
                            if source.contains('\n') {
                                format!("syntax error at line {line}, column {col}: {msg}")
                            } else {
                                format!("syntax error at column {col}: {msg}")
                            }
                        }
                        None => "syntax error".to_string(),
                    }
                })
            })
            .map_err(|e| format!("cannot start the expression parser: {e}"))?;
        handle.join().unwrap_or_else(|_| Err("the expression parser failed on this input".into()))
    })
}

fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        Node::Unspecified | Node::Ident(_) | Node::Literal(_) => Vec::new(),
        Node::Call(c) => c.target.iter().map(|t| t.as_ref()).chain(&c.args).collect(),
        Node::Comprehension(c) => {
            vec![&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result]
        }
        Node::List(l) => l.elements.iter().collect(),
        Node::Map(m) => m.entries.iter().flat_map(|e| entry_children(&e.expr)).collect(),
        Node::Struct(s) => s.entries.iter().flat_map(|e| entry_children(&e.expr)).collect(),
        Node::Select(s) => vec![s.operand.as_ref()],
    }
}

fn entry_children(e: &EntryExpr) -> Vec<&IdedExpr> {
    match e {
        EntryExpr::StructField(f) => vec![&f.value],
        EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
    }
}

/// Refuses what could run for minutes: comprehensions nested too deep, list literals too
/// long. Checked before the expression is ever run (the sample run included).
fn check_cost(root: &IdedExpr) -> Result<(), String> {
    let mut stack = vec![(root, 0usize)];
    while let Some((e, comprehensions)) = stack.pop() {
        let nested = match &e.expr {
            Node::Comprehension(_) => comprehensions + 1,
            Node::List(l) if l.elements.len() > MAX_LIST_LITERAL => {
                return Err(format!(
                    "a list of {} items is longer than a condition needs; at most {MAX_LIST_LITERAL}",
                    l.elements.len()
                ))
            }
            _ => comprehensions,
        };
        if nested > MAX_COMPREHENSION_NESTING {
            return Err(format!(
                "`all`/`exists`/`map`/`filter` are nested {nested} deep; at most {MAX_COMPREHENSION_NESTING} \
                 (each level multiplies the work)"
            ));
        }
        stack.extend(children(e).into_iter().map(|c| (c, nested)));
    }
    Ok(())
}

/// Depth of the syntax tree, without recursion (the tree is not yet known to be shallow).
fn tree_depth(root: &IdedExpr) -> usize {
    let mut max = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((e, d)) = stack.pop() {
        max = max.max(d);
        stack.extend(children(e).into_iter().map(|c| (c, d + 1)));
    }
    max
}

/// `a.b.c` as `["a", "b", "c"]` when the expression is a field path on an identifier;
/// the field of a presence test (`has(a.b)`) is included.
fn field_path(e: &IdedExpr) -> Option<Vec<&str>> {
    let mut segments = Vec::new();
    let mut node = e;
    loop {
        match &node.expr {
            Node::Ident(name) => {
                segments.push(name.as_str());
                segments.reverse();
                return Some(segments);
            }
            Node::Select(s) if !s.test || std::ptr::eq(node, e) => {
                segments.push(s.field.as_str());
                node = &s.operand;
            }
            _ => return None,
        }
    }
}

/// Refuses unknown variables, fields and functions. Recursion is bounded: the tree has
/// been checked to be at most `MAX_TREE_DEPTH` deep.
fn check_names(
    env: &Arc<Env>,
    e: &IdedExpr,
    vars: &[&'static Var],
    locals: &mut Vec<String>,
) -> Result<(), String> {
    let declared = |name: &str| vars.iter().find(|v| v.name == name && !locals.iter().any(|l| l == name));
    match &e.expr {
        Node::Ident(name) => {
            if locals.iter().any(|l| l == name)
                || TYPE_NAMES.contains(&name.as_str())
                || declared(name).is_some()
            {
                return Ok(());
            }
            let names: Vec<&str> = vars.iter().map(|v| v.name).collect();
            let hint =
                nearest(name, &names, 1).map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default();
            Err(format!("unknown variable `{name}`{hint}; this expression can use: {}", names.join(", ")))
        }
        Node::Select(s) => {
            if let Some(path) = field_path(e) {
                if let Some(var) = declared(path[0]) {
                    return check_path(var, &path[1..]);
                }
            }
            check_names(env, &s.operand, vars, locals)
        }
        Node::Call(c) => {
            if c.func_name.starts_with(|ch: char| ch.is_ascii_alphabetic())
                && !function_exists(env, &c.func_name, c.target.is_some())
            {
                let how =
                    if c.target.is_some() { format!(".{}()", c.func_name) } else { c.func_name.clone() };
                return Err(format!("unknown function `{how}`"));
            }
            children(e).into_iter().try_for_each(|c| check_names(env, c, vars, locals))
        }
        Node::Comprehension(c) => {
            check_names(env, &c.iter_range, vars, locals)?;
            check_names(env, &c.accu_init, vars, locals)?;
            let before = locals.len();
            locals.push(c.iter_var.clone());
            locals.extend(c.iter_var2.iter().cloned());
            locals.push(c.accu_var.clone());
            let inner = [&c.loop_cond, &c.loop_step, &c.result]
                .into_iter()
                .try_for_each(|x| check_names(env, x, vars, locals));
            locals.truncate(before);
            inner
        }
        Node::Struct(s) => Err(format!("constructing objects (`{}{{…}}`) is not supported", s.type_name)),
        Node::Unspecified | Node::Literal(_) | Node::List(_) | Node::Map(_) => {
            children(e).into_iter().try_for_each(|c| check_names(env, c, vars, locals))
        }
    }
}

fn check_path(var: &Var, path: &[&str]) -> Result<(), String> {
    let mut fields = var.fields;
    let mut at = var.name.to_string();
    for (i, seg) in path.iter().enumerate() {
        let Some(fd) = fields.iter().find(|fd| fd.name == *seg) else {
            let names: Vec<&str> = fields.iter().map(|fd| fd.name).collect();
            let hint = nearest(seg, &names, 1).map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default();
            return Err(format!("`{at}` has no field `{seg}`{hint}; its fields: {}", names.join(", ")));
        };
        at = format!("{at}.{seg}");
        if fd.fields.is_empty() && i + 1 < path.len() {
            return Err(format!("`{at}` is a {}, it has no field `{}`", fd.ty, path[i + 1]));
        }
        fields = fd.fields;
    }
    Ok(())
}

/// Whether CEL knows a function: calling it without arguments gives "no such overload"
/// for a known one and "undeclared reference" for an unknown one.
fn function_exists(env: &Arc<Env>, name: &str, member: bool) -> bool {
    let probe = if member { format!("null.{name}()") } else { format!("{name}()") };
    let Ok(ast) = env.parser().parse(&probe) else {
        return true; // cannot tell; the sample run still catches it
    };
    let ctx = CelContext::with_env(Arc::clone(env));
    !matches!(Value::resolve(&ast, &ctx), Err(ExecutionError::UndeclaredReference(n)) if n.as_str() == name)
}

/// JSON to CEL: integers stay `int` (so `ae.grade >= 3` compares ints), other numbers
/// are `double`.
fn to_cel(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n.as_u64().map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::UInt),
        },
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Json::Object(m) => {
            Value::from(m.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect::<HashMap<String, Value>>())
        }
    }
}

// ---- The variables' values, built from the model ----------------------------------

fn snake<T: serde::Serialize>(v: &T) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

fn raw(t: Option<&ClinicalTime>) -> Json {
    t.map_or(Json::Null, |t| Json::String(t.raw().to_string()))
}

fn study_day(doses: &[&Dose], t: Option<&ClinicalTime>) -> Option<i64> {
    Some(t?.study_day(&doses.first()?.start))
}

/// Whole days since the last dose that may precede `t`; for a partial date, the
/// smallest plausible count (doubt brings an event closer to the dose, not further).
pub fn days_since_dose(doses: &[&Dose], t: Option<&ClinicalTime>) -> Option<i64> {
    let t = t?;
    let last_day = t.last_day();
    let dose = doses.iter().rev().find(|d| d.start.day() <= last_day)?;
    Some(t.days_since(&dose.start).max(0))
}

/// `subject`: deliberately without the treatment arm.
pub fn subject_value(h: &SubjectHistory) -> Json {
    let doses = h.doses();
    json!({
        "id": h.subject.as_str(),
        "site": h.site(),
        "dosed": !doses.is_empty(),
        "dose_count": doses.len(),
        "disposition": h.disposition().map_or(Json::Null, |d| snake(&d.status)),
    })
}

/// An adverse event's identity across versions: its CRF id, else its term and onset.
pub fn ae_episode(ae: &AdverseEvent) -> String {
    match &ae.id {
        Some(id) => format!("ae:{id}"),
        None => format!("ae:{}@{}", ae.term.to_lowercase(), ae.onset.as_ref().map_or("", |o| o.raw())),
    }
}

/// `ae`; `doses` is `h.doses()` (passed in so a loop over events sorts them once).
pub fn ae_value(doses: &[&Dose], ae: &AdverseEvent) -> Json {
    let onset = ae.onset.as_ref();
    json!({
        "id": ae.id,
        "term": ae.term,
        "onset": raw(onset),
        "onset_partial": onset.is_some_and(|o| o.is_partial()),
        "end": raw(ae.end.as_ref()),
        "grade": ae.grade.map(|g| i64::from(g.value())),
        "serious": ae.serious,
        "seriousness_inconsistent": ae.seriousness_inconsistent(),
        "seriousness": snake(&ae.seriousness),
        "related": ae.related.map_or(Json::Null, |r| snake(&r)),
        "expected": ae.expected,
        "outcome": ae.outcome,
        "meddra_pt": ae.meddra_pt,
        "meddra_soc": ae.meddra_soc,
        "meddra_pt_code": ae.meddra_pt_code,
        "meddra_soc_code": ae.meddra_soc_code,
        "discontinued": ae.discontinued,
        "study_day": study_day(doses, onset),
        "days_since_dose": days_since_dose(doses, onset),
    })
}

/// The fields a timed item (`lab`, `vital`) has besides its own: `time`, `visit`,
/// `study_day` and `days_since_dose`.
trait WithTiming {
    fn with_timing(self, doses: &[&Dose], time: Option<&ClinicalTime>, visit: Option<&str>) -> Json;
}

impl WithTiming for Json {
    fn with_timing(mut self, doses: &[&Dose], time: Option<&ClinicalTime>, visit: Option<&str>) -> Json {
        if let Json::Object(fields) = &mut self {
            fields.insert("time".into(), raw(time));
            fields.insert("visit".into(), json!(visit));
            fields.insert("study_day".into(), json!(study_day(doses, time)));
            fields.insert("days_since_dose".into(), json!(days_since_dose(doses, time)));
        }
        self
    }
}

/// `lab`, with the time and visit that `SubjectHistory::labs` pairs it with.
pub fn lab_value(doses: &[&Dose], time: Option<&ClinicalTime>, visit: Option<&str>, lab: &Lab) -> Json {
    json!({
        "test": lab.test,
        "value": lab.value,
        "unit": lab.unit,
        "low": lab.low,
        "high": lab.high,
        "x_uln": lab.high.filter(|h| *h > 0.0).map(|h| lab.value / h),
    })
    .with_timing(doses, time, visit)
}

/// `vital`, with the time and visit that `SubjectHistory::vitals` pairs it with.
pub fn vital_value(doses: &[&Dose], time: Option<&ClinicalTime>, visit: Option<&str>, v: &Vital) -> Json {
    json!({
        "systolic_bp": v.systolic_bp,
        "diastolic_bp": v.diastolic_bp,
        "heart_rate": v.heart_rate,
        "temperature_c": v.temperature_c,
        "spo2": v.spo2,
        "respiratory_rate": v.respiratory_rate,
    })
    .with_timing(doses, time, visit)
}

/// `record`: one visit record, summarised (its lists are reached through the other kinds).
pub fn record_value(doses: &[&Dose], r: &Record) -> Json {
    let when = r.when();
    json!({
        "visit": r.visit,
        "date": raw(r.date.as_ref()),
        "record_id": r.record_id,
        "study_day": study_day(doses, when),
        "days_since_dose": days_since_dose(doses, when),
        "edss": r.edss().map(|e| e.value()),
        "relapse": r.relapse.is_some(),
        "mri": r.mri.as_ref().map_or(Json::Null, |m| json!({
            "t2_new_or_enlarging": m.t2_new_or_enlarging,
            "gd_enhancing": m.gd_enhancing,
            "t2_total": m.t2_total,
            "reference": snake(&m.reference),
        })),
        "adverse_event_count": r.adverse_events.len(),
        "dose_count": r.doses.len(),
        "disposition": r.disposition.as_ref().map_or(Json::Null, |d| snake(&d.status)),
    })
}

/// The finding that makes a rule that could not be evaluated visible instead of quiet:
/// one per subject and rule, its level the number of items that failed (so more
/// failures alert again). `errors` holds (item, message) pairs, at least one.
pub(crate) fn evaluation_error(expression: &str, what: &str, errors: &[(String, String)]) -> Finding {
    let first = errors.first().map_or("", |(_, e)| e.as_str());
    let count = errors.len();
    Finding {
        episode: "evaluation-error".into(),
        clinical_time: None,
        level: i64::try_from(count).unwrap_or(i64::MAX),
        severity: Severity::Warning,
        title: Some("Rule could not be evaluated".into()),
        summary: format!(
            "The rule could not be evaluated for {count} {what}{}; until it is fixed it may miss events.",
            if count == 1 { "" } else { "s" }
        ),
        why: first.to_string(),
        evidence: json!({
            "expression": expression,
            "errors": errors.iter().take(20).map(|(item, e)| json!({"item": item, "error": e})).collect::<Vec<_>>(),
            "error_count": count,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SubjectId;

    fn ae_only(src: &str) -> Result<Expr, String> {
        Expr::compile(src, &[&AE, &SUBJECT])
    }

    fn history(json: &[&str]) -> SubjectHistory {
        SubjectHistory::new(
            SubjectId::parse("KS-101").unwrap(),
            json.iter().map(|j| Record::from_json(j).unwrap()).collect(),
        )
    }

    #[test]
    fn the_design_example_compiles_and_evaluates() {
        let e = ae_only("ae.grade >= 3 && ae.related in ['possible', 'probable', 'definite']").unwrap();
        let yes = json!({"grade": 3, "related": "probable"});
        let no = json!({"grade": 2, "related": "probable"});
        assert!(e.eval_bool(&[("ae", &yes)]).unwrap());
        assert!(!e.eval_bool(&[("ae", &no)]).unwrap());
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = ae_only("ae.grade > > 3").unwrap_err();
        assert!(e.starts_with("syntax error at column 12:"), "{e}");
        let e = ae_only("ae.grade >= 3 &&").unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
        assert!(ae_only("   ").unwrap_err().contains("empty"));
    }

    #[test]
    fn unknown_variables_fields_and_functions_are_refused() {
        let e = ae_only("ae.grde >= 3").unwrap_err();
        assert!(e.contains("`ae` has no field `grde` (did you mean `grade`?)"), "{e}");
        let e = ae_only("sujbect.site == 'KS'").unwrap_err();
        assert!(e.contains("unknown variable `sujbect` (did you mean `subject`?)"), "{e}");
        let e = ae_only("lab.value > 3.0").unwrap_err();
        assert!(e.contains("unknown variable `lab`") && e.contains("can use: ae, subject"), "{e}");
        let e = ae_only("ae.term.size > 3").unwrap_err();
        assert!(e.contains("`ae.term` is a string, it has no field `size`"), "{e}");
        let e = ae_only("has(ae.grdae)").unwrap_err();
        assert!(e.contains("no field `grdae`"), "{e}");
        let e = ae_only("ae.term.lowerAscii() == 'x'").unwrap_err();
        assert!(e.contains("unknown function `.lowerAscii()`"), "{e}");
        let e = ae_only("foo(ae.grade)").unwrap_err();
        assert!(e.contains("unknown function `foo`"), "{e}");
        let e = Expr::compile("record.mri.t2_totl > 0", &[&RECORD]).unwrap_err();
        assert!(e.contains("`record.mri` has no field `t2_totl` (did you mean `t2_total`?)"), "{e}");
    }

    #[test]
    fn the_arm_is_not_a_field() {
        let e = ae_only("subject.arm == 'MSC'").unwrap_err();
        assert!(e.contains("`subject` has no field `arm`"), "{e}");
        let h = history(&[r#"{"subject":"KS-101","arm":"MSC","site":"KS","date":"2019-01-01"}"#]);
        let v = subject_value(&h);
        assert!(v.get("arm").is_none());
        assert!(!v.to_string().contains("MSC"));
    }

    #[test]
    fn seriousness_inconsistent_is_a_field_of_ae() {
        let e = ae_only("ae.seriousness_inconsistent").unwrap();
        let h = history(&[r#"{"subject":"KS-101","adverse_events":[
            {"id":"1","term":"Pneumonia","serious":false,"seriousness":["hospitalization"]},
            {"id":"2","term":"Pneumonia","serious":true,"seriousness":["hospitalization"]}]}"#]);
        let got: Vec<bool> =
            h.adverse_events().iter().map(|a| e.eval_bool(&[("ae", &ae_value(&[], a))]).unwrap()).collect();
        assert_eq!(got, [true, false]);
    }

    #[test]
    fn comprehension_variables_and_standard_functions_are_allowed() {
        ae_only("ae.seriousness.exists(s, s == 'death')").unwrap();
        ae_only("'death' in ae.seriousness && size(ae.seriousness) > 0").unwrap();
        ae_only("ae.meddra_soc != null && ae.meddra_soc.startsWith('Nervous')").unwrap();
        ae_only("ae.term.matches('(?i)infusion')").unwrap();
        ae_only("ae.grade != null && int(ae.grade) >= 3 && type(ae.term) == string").unwrap();
        Expr::compile("lab.x_uln != null && lab.x_uln >= 3.0", &[&LAB, &SUBJECT]).unwrap();
        Expr::compile("record.mri != null && record.mri.t2_new_or_enlarging >= 1", &[&RECORD]).unwrap();
    }

    #[test]
    fn type_errors_and_non_booleans_are_refused_at_compile_time() {
        let e = ae_only("ae.grade > 'x'").unwrap_err();
        assert!(e.contains("no matching overload") && e.contains("sample"), "{e}");
        let e = ae_only("ae.grade").unwrap_err();
        assert!(e.contains("gives int, not true or false"), "{e}");
    }

    #[test]
    fn evaluation_errors_are_errors_not_false() {
        // Compiles (fine on a recorded grade), but an ungraded event cannot be compared.
        let e = ae_only("ae.grade >= 3").unwrap();
        let ungraded = json!({"grade": null});
        let err = e.eval_bool(&[("ae", &ungraded)]).unwrap_err();
        assert!(err.contains("`ae.grade >= 3` cannot be evaluated"), "{err}");
        // A missing variable at run time is an error too.
        assert!(e.eval_bool(&[]).is_err());
        // A non-boolean result at run time (the sample run takes the other branch).
        let e = ae_only("ae.related == null ? ae.grade : true").unwrap();
        let err = e.eval_bool(&[("ae", &json!({"related": null, "grade": 3}))]).unwrap_err();
        assert!(err.contains("gives int, not true or false"), "{err}");
        // Every field is present, perhaps null: `has` cannot tell a missing grade.
        let e = ae_only("has(ae.grade)").unwrap();
        assert!(e.eval_bool(&[("ae", &json!({"grade": null}))]).unwrap());
        // CEL's logical operators absorb an error when the other side decides.
        let e = ae_only("ae.grade >= 3 && ae.related == 'definite'").unwrap();
        assert!(!e.eval_bool(&[("ae", &json!({"grade": null, "related": "unlikely"}))]).unwrap());
        assert!(e.eval_bool(&[("ae", &json!({"grade": null, "related": "definite"}))]).is_err());
    }

    #[test]
    fn too_long_or_too_deep_is_refused_before_parsing() {
        let long = format!("ae.grade >= 1{}", " && ae.grade >= 1".repeat(60));
        assert!(ae_only(&long).unwrap_err().contains("at most 1000"));
        let deep = format!("{}true{}", "(".repeat(33), ")".repeat(33));
        assert!(ae_only(&deep).unwrap_err().contains("nested 33 deep"));
        // Brackets inside strings do not count.
        ae_only(&format!("ae.term != '{}'", "(".repeat(40))).unwrap();
        // A long left-leaning chain is deep without brackets.
        let chain = format!("ae.grade{} > 0", " + 1".repeat(60));
        assert!(ae_only(&chain).unwrap_err().contains("operations deep"));
    }

    #[test]
    fn a_condition_that_could_run_for_minutes_is_refused_before_it_runs() {
        // Three nested comprehensions over 30-item lists: 27,000 steps per element of work,
        // and each level multiplies; refused at load, never run (not even on the sample).
        let list = format!("[{}]", (1..=30).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        let bomb = format!("{list}.all(x, {list}.all(y, {list}.all(z, x + y + z > 0)))");
        let started = std::time::Instant::now();
        let e = ae_only(&bomb).unwrap_err();
        assert!(e.contains("nested 3 deep"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "refused before running");
        let long = format!(
            "[{}].exists(x, x == ae.grade)",
            (1..=101).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        );
        assert!(ae_only(&long).unwrap_err().contains("101 items"));
        // Two levels, and the usual list checks, stay allowed.
        ae_only("ae.seriousness.exists(s, ['death', 'life_threatening'].exists(t, t == s))").unwrap();
        ae_only("ae.related in ['possible', 'probable', 'definite']").unwrap();
    }

    #[test]
    fn the_deepest_accepted_expressions_evaluate_on_a_small_stack() {
        // At the limits, parsing (own thread) and evaluation (here, 2 MiB) must not overflow.
        let cases = [
            format!("{}true{}", "(".repeat(32), ")".repeat(32)),
            format!("{}1{} == [1]", "[".repeat(31), "]".repeat(31)),
            format!("ae.grade{} > 0", " + 1".repeat(36)),
            // Comprehensions nest at most 2 deep (a cost limit, below the stack's).
            format!("{}true{}", "[1].exists(x, ".repeat(2), ")".repeat(2)),
            format!("{}1{} == 1", "int(".repeat(32), ")".repeat(32)),
        ];
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                for src in &cases {
                    let sample = AE.sample();
                    let e = ae_only(src).unwrap_or_else(|e| panic!("{src}: {e}"));
                    assert!(e.eval_bool(&[("ae", &sample)]).is_ok(), "{src}");
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn samples_have_the_shape_of_real_values() {
        let h = history(&[
            r#"{"subject":"KS-101","site":"KS","visit":"D1","date":"2019-02-26","record_id":"r1",
                "doses":[{"start":"2019-02-26T09:10:00+01:00"}],
                "adverse_events":[{"id":"AE-1","term":"Headache","grade":2,"onset":"2019-03-01",
                  "end":"2019-03-02","seriousness":["hospitalization"],"related":"possible","outcome":"recovered",
                  "meddra_pt":"Headache","meddra_soc":"Nervous system disorders","meddra_pt_code":"1",
                  "meddra_soc_code":"2","expected":true}],
                "labs":[{"test":"ALT","value":52,"unit":"U/L","low":0,"high":45,"time":"2019-02-26T08:00:00+01:00"}],
                "vitals":[{"time":"2019-02-26T11:10:00+01:00","systolic_bp":128,"diastolic_bp":82,
                  "heart_rate":96,"temperature_c":38.2,"spo2":97,"respiratory_rate":16}],
                "scores":[{"name":"EDSS","value":4.5}],
                "mri":{"t2_new_or_enlarging":1,"gd_enhancing":0,"t2_total":38},
                "disposition":{"status":"completed"}}"#,
        ]);
        let doses = h.doses();
        let (lt, lv, lab) = h.labs()[0];
        let (vt, vv, vital) = h.vitals()[0];
        let real = [
            (&AE, ae_value(&doses, h.adverse_events()[0])),
            (&SUBJECT, subject_value(&h)),
            (&LAB, lab_value(&doses, lt, lv, lab)),
            (&VITAL, vital_value(&doses, vt, vv, vital)),
            (&RECORD, record_value(&doses, &h.records[0])),
        ];
        fn kind(v: &Json) -> &'static str {
            match v {
                Json::Null => "null",
                Json::Bool(_) => "bool",
                Json::Number(n) if n.is_f64() => "double",
                Json::Number(_) => "int",
                Json::String(_) => "string",
                Json::Array(_) => "list",
                Json::Object(_) => "object",
            }
        }
        for (var, value) in real {
            let sample = var.sample();
            let (s, r) = (sample.as_object().unwrap(), value.as_object().unwrap());
            let mut sk: Vec<&String> = s.keys().collect();
            let mut rk: Vec<&String> = r.keys().collect();
            sk.sort();
            rk.sort();
            assert_eq!(sk, rk, "fields of `{}`", var.name);
            for k in sk {
                assert_eq!(kind(&s[k]), kind(&r[k]), "`{}.{k}`: {} vs {}", var.name, s[k], r[k]);
            }
        }
        let ae = ae_value(&doses, h.adverse_events()[0]);
        assert_eq!(ae["study_day"], 4);
        assert_eq!(ae["days_since_dose"], 3);
        assert_eq!(ae["related"], "possible");
        assert_eq!(ae["seriousness"], json!(["hospitalization"]));
    }

    #[test]
    fn days_since_dose_is_the_smallest_plausible() {
        let h = history(&[
            r#"{"subject":"KS-101","doses":[{"start":"2019-02-26T09:10:00+01:00"},{"start":"2019-04-01T09:00:00+02:00"}]}"#,
        ]);
        let doses = h.doses();
        let t = |s: &str| ClinicalTime::parse(s).unwrap();
        assert_eq!(days_since_dose(&doses, Some(&t("2019-03-05"))), Some(7));
        assert_eq!(days_since_dose(&doses, Some(&t("2019-04-03"))), Some(2));
        assert_eq!(days_since_dose(&doses, Some(&t("2019-02-25"))), None);
        // February 2019 may be the dose day itself.
        assert_eq!(days_since_dose(&doses, Some(&t("2019-02"))), Some(0));
    }

    #[test]
    fn the_error_finding_counts_failures() {
        let f = evaluation_error("ae.grade >= 3", "adverse event", &[("ae:1".into(), "boom".into())]);
        assert_eq!((f.episode.as_str(), f.level, f.severity), ("evaluation-error", 1, Severity::Warning));
        assert_eq!(f.why, "boom");
        assert!(f.summary.contains("1 adverse event;"), "{}", f.summary);
    }
}
