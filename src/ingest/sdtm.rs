//! SDTM import: a folder of SDTM domain CSVs (`dm.csv`, `ae.csv`, …) read into native records.
//!
//! Every SDTM row becomes one native record object, built as JSON and parsed with
//! `Record::from_json`, the same single door as every other source, so an SDTM row is
//! checked exactly like a record sent by an EDC. A row the door refuses is quarantined with
//! the SDTM variable that caused it; rows that have no native meaning (weight, text lab
//! results, protocol milestones) are skipped and counted, never silently lost.
//!
//! Each record gets a stable `record_id` built from the SDTM keys (`sdtm:AE:<USUBJID>:<AESEQ>`),
//! so importing the same export again changes nothing in the store.
//!
//! Dates are passed through as the original ISO 8601 text, partial or not (`2013-03`,
//! `2013`). The model keeps a partial date as the interval it stands for and flags it as
//! partial; rules then decide on the conservative end (for safety, the earliest plausible
//! onset). That is the "impute conservatively, keep the flag" of docs/clinical-reference.md §8.2, without
//! inventing a day here.

use super::csv::{BadRow, CsvReader, CsvRow, Quotes};
use crate::model::Record;
use crate::store::{NewRecord, Rejected};
use anyhow::Context;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// What a folder of SDTM CSVs gave.
#[derive(Debug, Default)]
pub struct Import {
    pub records: Vec<NewRecord>,
    pub rejected: Vec<Rejected>,
    pub summary: ImportSummary,
}

/// Counts per domain, what was skipped and why, and rows worth a data manager's look.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ImportSummary {
    /// One entry per domain file read, in the order read.
    pub domains: Vec<DomainSummary>,
    /// CSV files in the folder that this importer does not map (SUPPAE, trial design, ADaM…).
    pub not_read: Vec<String>,
    /// Rows imported, but inconsistent in the source (e.g. AESER = N with AESDTH = Y).
    pub notes: Vec<Note>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct DomainSummary {
    /// The SDTM domain code (`AE`).
    pub domain: String,
    /// The file name (`ae.csv`).
    pub source: String,
    /// Data rows read (the header not counted).
    pub rows: usize,
    pub records: usize,
    pub rejected: usize,
    /// Rows with no native meaning, by reason.
    pub skipped: BTreeMap<String, usize>,
    /// Records holding at least one partial date (kept as an interval and flagged).
    pub partial_dates: usize,
}

/// A row imported as it stands, with something in it that contradicts itself.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub source: String,
    pub line: usize,
    pub subject: String,
    pub variable: String,
    pub message: String,
}

impl ImportSummary {
    pub fn records(&self) -> usize {
        self.domains.iter().map(|d| d.records).sum()
    }
    pub fn rejected(&self) -> usize {
        self.domains.iter().map(|d| d.rejected).sum()
    }
}

/// A short text for the command line: one line per domain, then skips and notes.
impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.domains {
            writeln!(
                f,
                "{} ({}): {} rows, {} records, {} rejected, {} with partial dates",
                d.source, d.domain, d.rows, d.records, d.rejected, d.partial_dates
            )?;
            for (why, n) in &d.skipped {
                writeln!(f, "  skipped {n}: {why}")?;
            }
        }
        if !self.not_read.is_empty() {
            writeln!(f, "not read: {}", self.not_read.join(", "))?;
        }
        const SHOWN: usize = 20;
        for n in self.notes.iter().take(SHOWN) {
            writeln!(f, "note {}:{} {} {}: {}", n.source, n.line, n.subject, n.variable, n.message)?;
        }
        if self.notes.len() > SHOWN {
            writeln!(f, "… and {} more notes", self.notes.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// One SDTM domain this importer maps.
struct Domain {
    code: &'static str,
    /// Columns without which no row can be mapped: missing ones refuse the whole file.
    required: &'static [&'static str],
    map: fn(&Row) -> Result<Mapped, Refusal>,
}

/// The order matters: the store keeps arrival order, and `SubjectHistory::visits` dates a
/// visit label by the first record carrying it, so SV (the visit dates) comes before the
/// findings that repeat the label.
static DOMAINS: &[Domain] = &[
    Domain { code: "DM", required: &["USUBJID"], map: dm },
    Domain { code: "SV", required: &["USUBJID", "VISIT"], map: sv },
    Domain { code: "EX", required: &["USUBJID", "EXSEQ", "EXSTDTC"], map: ex },
    Domain { code: "AE", required: &["USUBJID", "AESEQ", "AETERM"], map: ae },
    Domain { code: "DS", required: &["USUBJID", "DSSEQ", "DSCAT", "DSDECOD"], map: ds },
    Domain { code: "VS", required: &["USUBJID", "VSSEQ", "VSTESTCD", "VSSTRESN"], map: vs },
    Domain { code: "LB", required: &["USUBJID", "LBSEQ", "LBTESTCD", "LBSTRESN"], map: lb },
    Domain { code: "QS", required: &["USUBJID", "QSSEQ", "QSTESTCD", "QSSTRESN"], map: qs },
    Domain { code: "RS", required: &["USUBJID", "RSSEQ", "RSTESTCD", "RSSTRESN"], map: rs },
];

/// Reads every known SDTM domain file in `dir`, all at once.
///
/// I/O failures are errors; bad rows and bad files are `rejected` and the rest goes on.
/// Everything read is held in memory (the CDISC pilot, 92,000 records, takes about 300 MB);
/// to store a large export as it is read, use [`SdtmReader`].
pub fn read_dir(dir: &Path) -> anyhow::Result<Import> {
    let mut reader = SdtmReader::open(dir)?;
    let mut out = Import::default();
    while let Some(batch) = reader.next_batch(usize::MAX)? {
        out.records.extend(batch.records);
        out.rejected.extend(batch.rejected);
    }
    out.summary = reader.into_summary();
    Ok(out)
}

/// Records and refusals read in one step of an [`SdtmReader`].
pub use super::Batch;

/// A folder without any domain file this importer maps: almost certainly the wrong folder.
#[derive(Debug, thiserror::Error)]
#[error("no SDTM domain file in {folder} (expected some of: {expected})")]
pub struct NoDomainFile {
    pub folder: String,
    pub expected: String,
}

/// Reads an SDTM folder in batches, one streamed pass per file, so a large export can be
/// stored batch by batch (`store_batch` is one transaction per call) in bounded memory.
pub struct SdtmReader {
    files: std::vec::IntoIter<(&'static Domain, PathBuf)>,
    open: Option<OpenFile>,
    summary: ImportSummary,
}

struct OpenFile {
    domain: &'static Domain,
    path: PathBuf,
    csv: CsvReader<BufReader<File>>,
    columns: Columns,
    summary: DomainSummary,
}

impl SdtmReader {
    /// Finds the domain files (`ae.csv`, any letter case); a folder with none is an error,
    /// as it is almost certainly the wrong folder.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot read folder {}", dir.display()))?
        {
            let path = entry?.path();
            let Some(name) = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()) else {
                continue;
            };
            if name.ends_with(".csv") && path.is_file() {
                found.insert(name, path);
            }
        }
        let files: Vec<(&'static Domain, PathBuf)> = DOMAINS
            .iter()
            .filter_map(|d| found.remove(&format!("{}.csv", d.code.to_ascii_lowercase())).map(|p| (d, p)))
            .collect();
        if files.is_empty() {
            let expected: Vec<String> =
                DOMAINS.iter().map(|d| format!("{}.csv", d.code.to_ascii_lowercase())).collect();
            return Err(
                NoDomainFile { folder: dir.display().to_string(), expected: expected.join(", ") }.into()
            );
        }
        let not_read = found.values().map(|p| file_name(p)).collect();
        Ok(Self {
            files: files.into_iter(),
            open: None,
            summary: ImportSummary { not_read, ..ImportSummary::default() },
        })
    }

    /// The next records, at most `max` records and refusals together; `None` when every
    /// file has been read.
    pub fn next_batch(&mut self, max: usize) -> anyhow::Result<Option<Batch>> {
        let mut batch = Batch::default();
        while batch.records.len() + batch.rejected.len() < max.max(1) {
            if self.open.is_none() {
                let Some((domain, path)) = self.files.next() else { break };
                self.open = self.open_file(domain, path, &mut batch)?;
                continue;
            }
            let Some(file) = self.open.as_mut() else { break };
            let next = file.csv.next_row().with_context(|| format!("cannot read {}", file.path.display()))?;
            match next {
                Some(row) => file.read_row(row, &mut batch, &mut self.summary.notes),
                None => {
                    if let Some(done) = self.open.take() {
                        self.summary.domains.push(done.summary);
                    }
                }
            }
        }
        Ok((!batch.records.is_empty() || !batch.rejected.is_empty()).then_some(batch))
    }

    /// The summary so far (complete once `next_batch` has returned `None`).
    pub fn summary(&self) -> &ImportSummary {
        &self.summary
    }

    pub fn into_summary(self) -> ImportSummary {
        self.summary
    }

    /// Opens a file and checks its header; a file that cannot be read as this domain is
    /// refused whole (one rejection) and reading goes on with the next.
    fn open_file(
        &mut self,
        domain: &'static Domain,
        path: PathBuf,
        batch: &mut Batch,
    ) -> anyhow::Result<Option<OpenFile>> {
        let source = file_name(&path);
        let handle = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut csv = CsvReader::new(BufReader::new(handle), Quotes::Lenient);
        let mut summary = DomainSummary {
            domain: domain.code.to_string(),
            source: source.clone(),
            ..DomainSummary::default()
        };
        let header = csv.next_row().with_context(|| format!("cannot read {}", path.display()))?;
        let refusal = match header {
            Some(Ok(header)) => {
                let columns = Columns::new(&header);
                match domain.required.iter().find(|v| !columns.has(v)) {
                    None => return Ok(Some(OpenFile { domain, path, csv, columns, summary })),
                    Some(missing) => Rejected {
                        source,
                        line: header.line,
                        field: missing.to_string(),
                        reason: format!("column {missing} is missing: {} cannot be read", domain.code),
                        raw: header.raw,
                    },
                }
            }
            Some(Err(bad)) => {
                Rejected { source, line: bad.line, field: "header".into(), reason: bad.reason, raw: bad.raw }
            }
            None => Rejected {
                source,
                line: 1,
                field: "header".into(),
                reason: "empty file: no header row".into(),
                raw: String::new(),
            },
        };
        batch.rejected.push(refusal);
        summary.rejected += 1;
        self.summary.domains.push(summary);
        Ok(None)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

impl OpenFile {
    /// Maps one row and sends it through the model's door; the outcome lands in `batch`.
    fn read_row(&mut self, row: Result<CsvRow, BadRow>, batch: &mut Batch, notes: &mut Vec<Note>) {
        let source = &self.summary.source;
        let reject = |line: usize, field: &str, reason: String, raw: String| Rejected {
            source: source.clone(),
            line,
            field: field.to_string(),
            reason,
            raw,
        };
        self.summary.rows += 1;
        let arms: Vec<usize> =
            ARM_VARIABLES.iter().filter_map(|v| self.columns.index.get(*v).copied()).collect();
        let row = match row {
            Ok(row) if row.len() == self.columns.len() => row,
            Ok(row) => {
                self.summary.rejected += 1;
                let reason = format!("{} fields, but the header has {}", row.len(), self.columns.len());
                // Which field is the arm is unknown when the row does not fit the header.
                let raw = if arms.is_empty() { row.raw } else { WITHHELD_ROW.to_string() };
                batch.rejected.push(reject(row.line, "row", reason, raw));
                return;
            }
            Err(bad) => {
                self.summary.rejected += 1;
                let raw = if arms.is_empty() { bad.raw } else { WITHHELD_ROW.to_string() };
                batch.rejected.push(reject(bad.line, "row", bad.reason, raw));
                return;
            }
        };
        // What a quarantined row shows: never the arm (quarantine is read by blinded staff).
        let shown = |row: &CsvRow| {
            if arms.is_empty() {
                return row.raw.clone();
            }
            let fields: Vec<String> = (0..row.len())
                .map(|i| {
                    if arms.contains(&i) {
                        "(withheld: blinded information)".to_string()
                    } else {
                        quote(row.field(i))
                    }
                })
                .collect();
            fields.join(",")
        };
        let mapped = match (self.domain.map)(&Row { columns: &self.columns, row: &row }) {
            Ok(Mapped::Record(m)) => m,
            Ok(Mapped::Skip(why)) => {
                *self.summary.skipped.entry(why).or_default() += 1;
                return;
            }
            Err(r) => {
                self.summary.rejected += 1;
                batch.rejected.push(reject(row.line, &r.variable, r.reason, shown(&row)));
                return;
            }
        };
        let body = Value::Object(mapped.body);
        match Record::from_json(&body.to_string()) {
            Ok(record) => {
                self.summary.records += 1;
                if has_partial_date(&record) {
                    self.summary.partial_dates += 1;
                }
                notes.extend(mapped.notes.into_iter().map(|(variable, message)| Note {
                    source: source.clone(),
                    line: row.line,
                    subject: record.subject.as_str().to_string(),
                    variable: variable.to_string(),
                    message,
                }));
                batch.records.push(NewRecord { source: source.clone(), line: row.line, body, record });
            }
            Err(e) => {
                self.summary.rejected += 1;
                let variable = mapped.vars.variable_of(&e.field).unwrap_or(&e.field).to_string();
                let reason = format!("{}: {}", e.field, e.message);
                batch.rejected.push(reject(row.line, &variable, reason, shown(&row)));
            }
        }
    }
}

/// The variables that carry the treatment arm (DM): withheld from quarantined rows.
const ARM_VARIABLES: [&str; 4] = ["ARM", "ARMCD", "ACTARM", "ACTARMCD"];

/// A row of a file with an arm column that cannot be split by its header.
const WITHHELD_ROW: &str = "(withheld: a row of a file with the treatment arm that does not fit its header)";

/// A CSV field as written back: quoted when it holds a comma, a quote or a line break.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

fn has_partial_date(r: &Record) -> bool {
    let partial = |t: &Option<crate::model::ClinicalTime>| t.as_ref().is_some_and(|t| t.is_partial());
    partial(&r.date)
        || r.doses.iter().any(|d| d.start.is_partial() || partial(&d.end))
        || r.adverse_events.iter().any(|a| partial(&a.onset) || partial(&a.end))
        || r.vitals.iter().any(|v| partial(&v.time))
        || r.labs.iter().any(|l| partial(&l.time))
        || r.disposition.as_ref().is_some_and(|d| partial(&d.date))
}

// ---------------------------------------------------------------------------------------
// Row mapping

/// A row the mapping itself refuses (a number that is not one, a missing key).
#[derive(Debug)]
struct Refusal {
    variable: String,
    reason: String,
}

fn refuse(variable: &str, reason: impl Into<String>) -> Refusal {
    Refusal { variable: variable.to_string(), reason: reason.into() }
}

enum Mapped {
    Record(Built),
    /// No native meaning; counted under this reason.
    Skip(String),
}

/// A native record under construction, with where each field came from, so a refusal by
/// the model can name the SDTM variable instead of the native path.
struct Built {
    body: Map<String, Value>,
    vars: Vars,
    notes: Vec<(&'static str, String)>,
}

/// Native field path (or path prefix) → SDTM variable.
#[derive(Default)]
struct Vars(Vec<(&'static str, &'static str)>);

impl Vars {
    fn variable_of(&self, path: &str) -> Option<&'static str> {
        self.0
            .iter()
            .filter(|(p, _)| {
                path == *p
                    || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            .max_by_key(|(p, _)| p.len())
            .map(|(_, v)| *v)
    }
}

impl Built {
    /// Starts a record for the row's subject, with its stable id.
    fn new(row: &Row, domain: &str, key: &[&'static str]) -> Result<Self, Refusal> {
        let subject = row.required("USUBJID")?;
        let mut id = format!("sdtm:{domain}:{subject}");
        for k in key {
            id.push(':');
            id.push_str(&whole(row.required(k)?));
        }
        let mut b = Built { body: Map::new(), vars: Vars::default(), notes: Vec::new() };
        b.set("subject", subject, "USUBJID");
        b.set("record_id", id, key.first().copied().unwrap_or("USUBJID"));
        Ok(b)
    }

    fn set(&mut self, field: &'static str, value: impl Into<Value>, variable: &'static str) {
        self.body.insert(field.to_string(), value.into());
        self.vars.0.push((field, variable));
    }

    fn set_text(&mut self, field: &'static str, row: &Row, variable: &'static str) {
        if let Some(v) = row.text(variable) {
            self.set(field, v, variable);
        }
    }

    /// Sets the record's date to the day of a date-time: the record stands for the visit
    /// day, the exact time stays on the observation. (It also halves the date-time
    /// parsing, the bulk of the import's cost.)
    fn set_day(&mut self, row: &Row, variable: &'static str) {
        if let Some(v) = row.text(variable) {
            self.set("date", v.split('T').next().unwrap_or(v), variable);
        }
    }

    /// Adds one object as the single element of a section (`adverse_events: [{…}]`).
    fn section(&mut self, name: &str, item: Item) {
        self.body.insert(name.to_string(), Value::Array(vec![Value::Object(item.body)]));
        self.vars.0.extend(item.vars.0);
    }
}

/// One element of a section, with the full native path of each of its fields.
struct Item {
    body: Map<String, Value>,
    vars: Vars,
}

impl Item {
    fn new() -> Self {
        Item { body: Map::new(), vars: Vars::default() }
    }
    /// `path` is the full native path (`labs[0].value`); the key is its last segment.
    fn set(&mut self, path: &'static str, value: impl Into<Value>, variable: &'static str) {
        let key = path.rsplit('.').next().unwrap_or(path);
        self.body.insert(key.to_string(), value.into());
        self.vars.0.push((path, variable));
    }
    fn set_text(&mut self, path: &'static str, row: &Row, variable: &'static str) {
        if let Some(v) = row.text(variable) {
            self.set(path, v, variable);
        }
    }
    fn set_number(&mut self, path: &'static str, row: &Row, variable: &'static str) -> Result<(), Refusal> {
        if let Some(v) = row.number(variable)? {
            self.set(path, v, variable);
        }
        Ok(())
    }
}

/// `1` and `1.0` are the same sequence number; ids must not depend on how it was written.
fn whole(text: &str) -> String {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        _ => text.to_string(),
    }
}

/// DM: the subject, the site and the (blinded) arm, dated at the first exposure.
/// Screen failures have no exposure date: their record has no date and no dose.
fn dm(row: &Row) -> Result<Mapped, Refusal> {
    let mut b = Built::new(row, "DM", &[])?;
    b.set_text("site", row, "SITEID");
    b.set_text("arm", row, "ARM");
    b.set_text("actual_arm", row, "ACTARM");
    if let Some(d) = row.text("RFXSTDTC") {
        b.set("date", d, "RFXSTDTC");
    } else if let Some(d) = row.text("RFSTDTC") {
        b.set("date", d, "RFSTDTC");
    }
    Ok(Mapped::Record(b))
}

/// SV: one record per visit actually held. VISITNUM and the start date together are the key,
/// because the same unscheduled visit number can occur twice for one subject.
fn sv(row: &Row) -> Result<Mapped, Refusal> {
    let visit_key = if row.text("VISITNUM").is_some() { "VISITNUM" } else { "VISIT" };
    let mut b = if row.text("SVSTDTC").is_some() {
        Built::new(row, "SV", &[visit_key, "SVSTDTC"])?
    } else {
        Built::new(row, "SV", &[visit_key])?
    };
    b.set_text("visit", row, "VISIT");
    b.set_text("date", row, "SVSTDTC");
    Ok(Mapped::Record(b))
}

/// EX: one dose per exposure row.
fn ex(row: &Row) -> Result<Mapped, Refusal> {
    let mut b = Built::new(row, "EX", &["EXSEQ"])?;
    b.set_text("visit", row, "VISIT");
    let mut d = Item::new();
    d.set_text("doses[0].start", row, "EXSTDTC");
    d.set_text("doses[0].end", row, "EXENDTC");
    d.set_text("doses[0].product", row, "EXTRT");
    d.set_number("doses[0].amount", row, "EXDOSE")?;
    d.set_text("doses[0].unit", row, "EXDOSU");
    b.section("doses", d);
    Ok(Mapped::Record(b))
}

/// ICH E2A seriousness criteria and their SDTM flags (docs/clinical-reference.md §4.1).
pub(crate) const CRITERIA: &[(&str, &str)] = &[
    ("AESDTH", "death"),
    ("AESLIFE", "life_threatening"),
    ("AESHOSP", "hospitalization"),
    ("AESDISAB", "disability"),
    ("AESCONG", "congenital_anomaly"),
    ("AESMIE", "important_medical_event"),
];

/// AE: one adverse event per row, its id the AESEQ (unique per subject, so a corrected
/// export updates the same event). The record's date is AEDTC, the day it was recorded.
///
/// - `grade`: AETOXGR when present; else from AESEV by the CTCAE general definitions,
///   MILD → 1, MODERATE → 2, SEVERE → 3, except that an event with AEOUT = FATAL is grade
///   5 whatever its AESEV: CTCAE defines grade 5 as death related to the event, and a
///   fatal event read as grade 3 would pass under every "grade ≥ 4" rule. SEVERE is never
///   read as life-threatening (4), which the seriousness criteria carry instead.
///   Such a grade carries `grade_source: severity`, so reports say "severity (mapped)".
/// - `serious`: AESER, the investigator's summary judgement (team decision, issue 10); the
///   criterion flags are kept on the event as they are. AESER = N with a criterion = Y (or a
///   fatal outcome) stays non-serious and is a data-quality finding
///   (`AdverseEvent::seriousness_inconsistent`: a "verify seriousness" alert and a report
///   row), so it starts no SAE clock by itself. Without AESER, a criterion implies serious.
/// - AESCAN / AESOD (cancer, overdose: pre-ICH criteria of older SDTM) have no native
///   place; a Y is reported as a note.
/// - `related`: AEREL NONE → not_related, REMOTE → unlikely, POSSIBLE, PROBABLE; blank →
///   none. `discontinued`: AEACN = DRUG WITHDRAWN.
fn ae(row: &Row) -> Result<Mapped, Refusal> {
    let mut b = Built::new(row, "AE", &["AESEQ"])?;
    b.set_day(row, "AEDTC");
    let mut a = Item::new();
    a.set("adverse_events[0].id", whole(row.required("AESEQ")?), "AESEQ");
    match row.text("AETERM") {
        Some(t) => a.set("adverse_events[0].term", t, "AETERM"),
        None => a.set_text("adverse_events[0].term", row, "AEDECOD"),
    }
    a.set_text("adverse_events[0].onset", row, "AESTDTC");
    a.set_text("adverse_events[0].end", row, "AEENDTC");
    if let Some(g) = row.number("AETOXGR")? {
        a.set("adverse_events[0].grade", g, "AETOXGR");
    } else if let Some(sev) = row.text("AESEV") {
        let grade = match sev.to_ascii_uppercase().as_str() {
            "MILD" => 1,
            "MODERATE" => 2,
            "SEVERE" => 3,
            _ => return Err(refuse("AESEV", format!("`{sev}`: expected MILD, MODERATE or SEVERE"))),
        };
        let fatal = row.text("AEOUT").is_some_and(|o| o.eq_ignore_ascii_case("FATAL"));
        a.set("adverse_events[0].grade", if fatal { 5 } else { grade }, "AESEV");
        a.set("adverse_events[0].grade_source", "severity", "AESEV");
    }

    let criteria: Vec<(&str, &str)> = CRITERIA.iter().copied().filter(|(v, _)| row.flag(v)).collect();
    let aeser = row.text("AESER").map(str::to_ascii_uppercase);
    if let Some(other) = aeser.as_deref().filter(|v| !matches!(*v, "Y" | "N")) {
        return Err(refuse("AESER", format!("`{other}`: expected Y or N")));
    }
    if let Some(v) = aeser.as_deref() {
        a.set("adverse_events[0].serious", v == "Y", "AESER");
    }
    if !criteria.is_empty() {
        let names: Vec<Value> = criteria.iter().map(|(_, n)| Value::from(*n)).collect();
        a.set("adverse_events[0].seriousness", names, "AESER");
    }
    if aeser.as_deref() == Some("N") && !criteria.is_empty() {
        let flags: Vec<String> = criteria.iter().map(|(v, _)| format!("{v} = Y")).collect();
        b.notes.push((
            "AESER",
            format!(
                "AESER = N, but {}: imported as non-serious, seriousness to verify with the site",
                flags.join(", ")
            ),
        ));
    }
    if aeser.as_deref() == Some("Y") && criteria.is_empty() {
        b.notes.push(("AESER", "AESER = Y, but no seriousness criterion flag is Y".into()));
    }
    for (v, what) in [("AESCAN", "cancer"), ("AESOD", "overdose")] {
        if row.flag(v) {
            b.notes.push((v, format!("{v} = Y ({what}) is not an ICH E2A criterion: not carried")));
        }
    }

    if let Some(rel) = row.text("AEREL") {
        // SDTM sponsor terms; anything else goes to the model, which knows more synonyms
        // and refuses what it cannot read (then named AEREL).
        let related = match rel.to_ascii_uppercase().as_str() {
            "NONE" | "NOT RELATED" => "not_related".to_string(),
            "REMOTE" | "UNLIKELY" | "UNLIKELY RELATED" => "unlikely".to_string(),
            "POSSIBLE" => "possible".to_string(),
            "PROBABLE" => "probable".to_string(),
            "DEFINITE" => "definite".to_string(),
            _ => rel.to_string(),
        };
        a.set("adverse_events[0].related", related, "AEREL");
    }
    if let Some(out) = row.text("AEOUT") {
        a.set("adverse_events[0].outcome", outcome(out), "AEOUT");
    }
    a.set_text("adverse_events[0].meddra_pt", row, "AEDECOD");
    a.set_text("adverse_events[0].meddra_soc", row, "AEBODSYS");
    a.set_text("adverse_events[0].meddra_pt_code", row, "AEPTCD");
    a.set_text("adverse_events[0].meddra_soc_code", row, "AEBDSYCD");
    if row.text("AEACN").is_some_and(|v| v.eq_ignore_ascii_case("DRUG WITHDRAWN")) {
        a.set("adverse_events[0].discontinued", true, "AEACN");
    }
    b.section("adverse_events", a);
    Ok(Mapped::Record(b))
}

/// AEOUT controlled terms in the native vocabulary (`recovered`, `fatal`, as in design.md),
/// so one rule reads every source; other text is kept as it is.
fn outcome(text: &str) -> String {
    match text.to_ascii_uppercase().as_str() {
        "RECOVERED/RESOLVED" => "recovered",
        "RECOVERING/RESOLVING" => "recovering",
        "NOT RECOVERED/NOT RESOLVED" => "not_recovered",
        "RECOVERED/RESOLVED WITH SEQUELAE" => "recovered_with_sequelae",
        "FATAL" => "fatal",
        "UNKNOWN" => "unknown",
        _ => return text.to_string(),
    }
    .to_string()
}

/// DS: only disposition events end a subject's course; milestones and other events are
/// skipped. Every reason that is not one of the four named statuses is a withdrawal, with
/// DSDECOD as its reason (ADVERSE EVENT, WITHDRAWAL BY SUBJECT, …).
fn ds(row: &Row) -> Result<Mapped, Refusal> {
    let cat = row.text("DSCAT").unwrap_or_default();
    if !cat.eq_ignore_ascii_case("DISPOSITION EVENT") {
        return Ok(Mapped::Skip(format!("DSCAT = {}: not a disposition event", blank(cat))));
    }
    let decod = row.required("DSDECOD")?;
    let (status, reason) = match decod.to_ascii_uppercase().as_str() {
        "COMPLETED" => ("completed", None),
        "DEATH" => ("death", None),
        "SCREEN FAILURE" => ("screen_failure", None),
        "LOST TO FOLLOW-UP" => ("lost_to_follow_up", None),
        _ => ("withdrawn", Some(decod)),
    };
    let mut b = Built::new(row, "DS", &["DSSEQ"])?;
    b.set_text("visit", row, "VISIT");
    b.set_text("date", row, "DSSTDTC");
    let mut d = Map::new();
    d.insert("status".into(), status.into());
    if let Some(r) = reason {
        d.insert("reason".into(), r.into());
    }
    if let Some(t) = row.text("DSSTDTC") {
        d.insert("date".into(), t.into());
    }
    b.body.insert("disposition".into(), Value::Object(d));
    b.vars.0.extend([("disposition.status", "DSDECOD"), ("disposition.date", "DSSTDTC")]);
    Ok(Mapped::Record(b))
}

fn blank(s: &str) -> &str {
    if s.is_empty() {
        "(blank)"
    } else {
        s
    }
}

/// VS: one vital sign per row, in the native field for its test code. The position
/// (VSPOS) and time point are not carried: the native vital has no place for them.
fn vs(row: &Row) -> Result<Mapped, Refusal> {
    if row.text("VSSTAT").is_some_and(|s| s.eq_ignore_ascii_case("NOT DONE")) {
        return Ok(Mapped::Skip("VSSTAT = NOT DONE".into()));
    }
    let code = row.required("VSTESTCD")?.to_ascii_uppercase();
    let field: &'static str = match code.as_str() {
        "SYSBP" => "vitals[0].systolic_bp",
        "DIABP" => "vitals[0].diastolic_bp",
        "PULSE" | "HR" => "vitals[0].heart_rate",
        "TEMP" => "vitals[0].temperature_c",
        "OXYSAT" | "SPO2" => "vitals[0].spo2",
        "RESP" => "vitals[0].respiratory_rate",
        _ => return Ok(Mapped::Skip(format!("VSTESTCD = {code}: no native vital"))),
    };
    let Some(mut value) = row.number("VSSTRESN")? else {
        return Ok(Mapped::Skip("VSSTRESN blank".into()));
    };
    if code == "TEMP" {
        let unit = row.text("VSSTRESU").unwrap_or("C").to_ascii_uppercase();
        match unit.trim_start_matches('°').trim_matches(['[', ']']) {
            "C" | "DEGC" | "CELSIUS" => {}
            "F" | "DEGF" | "FAHRENHEIT" => value = (value - 32.0) * 5.0 / 9.0,
            _ => return Err(refuse("VSSTRESU", format!("temperature unit `{unit}`: expected C or F"))),
        }
    }
    let mut b = Built::new(row, "VS", &["VSSEQ"])?;
    b.set_text("visit", row, "VISIT");
    b.set_day(row, "VSDTC");
    let mut v = Item::new();
    v.set_text("vitals[0].time", row, "VSDTC");
    v.set(field, value, "VSSTRESN");
    b.section("vitals", v);
    Ok(Mapped::Record(b))
}

/// LB: one numeric result per row, in standard units, with its normal range (LBSTNRHI is
/// the ULN the × ULN rules read). Text results (urinalysis, `<0.2`) have no LBSTRESN and
/// are skipped: the native lab value is a number.
fn lb(row: &Row) -> Result<Mapped, Refusal> {
    let Some(value) = row.number("LBSTRESN")? else {
        return Ok(Mapped::Skip("LBSTRESN blank (text result)".into()));
    };
    let mut b = Built::new(row, "LB", &["LBSEQ"])?;
    b.set_text("visit", row, "VISIT");
    b.set_day(row, "LBDTC");
    let mut l = Item::new();
    l.set_text("labs[0].test", row, "LBTESTCD");
    l.set("labs[0].value", value, "LBSTRESN");
    l.set_text("labs[0].unit", row, "LBSTRESU");
    l.set_number("labs[0].low", row, "LBSTNRLO")?;
    l.set_number("labs[0].high", row, "LBSTNRHI")?;
    l.set_text("labs[0].time", row, "LBDTC");
    b.section("labs", l);
    Ok(Mapped::Record(b))
}

fn qs(row: &Row) -> Result<Mapped, Refusal> {
    edss(row, "QS", ["QSSEQ", "QSTESTCD", "QSCAT", "QSTEST", "QSSTRESN", "QSSTAT", "QSDTC"])
}

fn rs(row: &Row) -> Result<Mapped, Refusal> {
    edss(row, "RS", ["RSSEQ", "RSTESTCD", "RSCAT", "RSTEST", "RSSTRESN", "RSSTAT", "RSDTC"])
}

/// QS (QRS supplement v1.0) or RS (v2.0 draft): only the EDSS score is read, as a score
/// named EDSS. A row is EDSS when its test code is EDSS, or its category is EDSS and its
/// test names the EDSS (the controlled test code is not pinned down here). The model checks
/// the value against the twenty EDSS steps.
fn edss(row: &Row, domain: &str, v: [&'static str; 7]) -> Result<Mapped, Refusal> {
    let [seq, testcd, cat, test, stresn, stat, dtc] = v;
    let is_edss = row.text(testcd).is_some_and(|c| c.eq_ignore_ascii_case("EDSS"))
        || (row.text(cat).is_some_and(|c| c.eq_ignore_ascii_case("EDSS"))
            && row.text(test).is_some_and(|t| t.to_ascii_uppercase().contains("EDSS")));
    if !is_edss {
        return Ok(Mapped::Skip(format!("{testcd} not EDSS")));
    }
    if row.text(stat).is_some_and(|s| s.eq_ignore_ascii_case("NOT DONE")) {
        return Ok(Mapped::Skip(format!("{stat} = NOT DONE")));
    }
    let Some(value) = row.number(stresn)? else {
        return Ok(Mapped::Skip(format!("{stresn} blank")));
    };
    let mut b = Built::new(row, domain, &[seq])?;
    b.set_text("visit", row, "VISIT");
    b.set_text("date", row, dtc);
    // Scores need a date: a refusal for its absence names the date variable.
    b.vars.0.push(("date", dtc));
    let mut s = Item::new();
    s.set("scores[0].name", "EDSS", testcd);
    s.set("scores[0].value", value, stresn);
    b.section("scores", s);
    Ok(Mapped::Record(b))
}

// ---------------------------------------------------------------------------------------
// CSV

/// Column names (upper case) to their index; the first of duplicated names wins.
struct Columns {
    index: HashMap<String, usize>,
    len: usize,
}

impl Columns {
    fn new(header: &CsvRow) -> Self {
        let mut index = HashMap::new();
        for i in 0..header.len() {
            index.entry(header.field(i).trim().to_ascii_uppercase()).or_insert(i);
        }
        Columns { index, len: header.len() }
    }
    fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// One data row seen through its header. Values are trimmed; blank means absent (SDTM
/// writes missing values as empty fields).
struct Row<'a> {
    columns: &'a Columns,
    row: &'a CsvRow,
}

impl Row<'_> {
    fn text(&self, variable: &str) -> Option<&str> {
        let i = *self.columns.index.get(variable)?;
        Some(self.row.field(i).trim()).filter(|s| !s.is_empty())
    }
    fn required(&self, variable: &str) -> Result<&str, Refusal> {
        self.text(variable).ok_or_else(|| refuse(variable, "missing"))
    }
    fn number(&self, variable: &str) -> Result<Option<f64>, Refusal> {
        match self.text(variable) {
            None => Ok(None),
            Some(t) => match t.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Some(v)),
                _ => Err(refuse(variable, format!("`{t}` is not a number"))),
            },
        }
    }
    fn flag(&self, variable: &str) -> bool {
        self.text(variable).is_some_and(|v| v.eq_ignore_ascii_case("Y"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DispositionStatus, Relatedness, Seriousness, SubjectHistory, SubjectId};
    use std::collections::{BTreeSet, HashSet};
    use std::sync::OnceLock;

    fn import(files: &[(&str, &str)]) -> Import {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        read_dir(dir.path()).unwrap()
    }

    const AE_HEADER: &str = "STUDYID,USUBJID,AESEQ,AETERM,AEDECOD,AEBODSYS,AESEV,AESER,AEREL,AEOUT,\
                             AESDTH,AESLIFE,AESHOSP,AESCAN,AESTDTC,AEENDTC\n";

    #[test]
    fn adverse_events_map_and_refusals_name_the_sdtm_variable() {
        let ae = format!(
            "{AE_HEADER}\
             S,X-1,1,Fainting,SYNCOPE,NERVOUS SYSTEM DISORDERS,MODERATE,Y,REMOTE,RECOVERED/RESOLVED,N,Y,N,N,2013-03-07,2013-03-08\n\
             S,X-1,2,Sudden death,SUDDEN DEATH,CARDIAC DISORDERS,SEVERE,N,,FATAL,Y,N,N,N,2013-04,\n\
             S,X-2,1,Rash,RASH,SKIN,MILD,N,POSSIBLE,,N,N,N,Y,2013-02-30,\n\
             S,X-2,2,Rash,RASH,SKIN,EXTREME,N,POSSIBLE,,N,N,N,N,2013-02-03,\n\
             S,X-2,3,Itch,PRURITUS,SKIN,MILD,N,SOMEWHAT,,N,N,N,N,2013-02-03,2013-02-04\n"
        );
        let imp = import(&[("ae.csv", &ae)]);
        assert_eq!(imp.records.len(), 2);
        let a = &imp.records[0].record.adverse_events[0];
        assert_eq!(
            (a.id.as_deref(), a.term.as_str(), a.meddra_pt.as_deref()),
            (Some("1"), "Fainting", Some("SYNCOPE"))
        );
        assert_eq!(a.grade.map(|g| g.value()), Some(2));
        assert!(a.serious);
        assert_eq!(a.seriousness, [Seriousness::LifeThreatening]);
        assert_eq!(a.related, Some(Relatedness::Unlikely));
        assert_eq!(a.outcome.as_deref(), Some("recovered"));
        assert_eq!(imp.records[0].record.record_id.as_deref(), Some("sdtm:AE:X-1:1"));
        assert_eq!(imp.records[0].line, 2);

        assert_eq!(a.grade_source, crate::model::GradeSource::Severity, "AESEV is not a CTCAE grade");
        assert!(!a.seriousness_inconsistent());

        // AESER = N with AESDTH = Y: AESER decides (non-serious), the criterion is kept, and
        // the contradiction is a data-quality finding and a note.
        let death = &imp.records[1].record.adverse_events[0];
        assert!(!death.serious && death.seriousness == [Seriousness::Death]);
        assert!(death.seriousness_inconsistent());
        assert!(death.onset.as_ref().unwrap().is_partial());
        assert_eq!(death.related, None);
        assert_eq!(death.outcome.as_deref(), Some("fatal"));
        assert_eq!(death.grade.map(|g| g.value()), Some(5), "AESEV SEVERE with a fatal outcome is grade 5");
        assert_eq!(imp.summary.domains[0].partial_dates, 1);
        let notes: Vec<(usize, &str)> =
            imp.summary.notes.iter().map(|n| (n.line, n.variable.as_str())).collect();
        assert_eq!(notes, [(3, "AESER")]);

        let rejected: Vec<(usize, &str)> = imp.rejected.iter().map(|r| (r.line, r.field.as_str())).collect();
        assert_eq!(rejected, [(4, "AESTDTC"), (5, "AESEV"), (6, "AEREL")]);
        assert!(imp.rejected[0].raw.starts_with("S,X-2,1,Rash"));
        assert_eq!(imp.summary.domains[0].rejected, 3);
    }

    #[test]
    fn findings_skip_what_has_no_native_meaning() {
        let vs = "USUBJID,VSSEQ,VSTESTCD,VSSTRESN,VSSTRESU,VSSTAT,VISIT,VSDTC\n\
                  X-1,1,TEMP,100.4,F,,WEEK 2,2014-01-02\n\
                  X-1,2,WEIGHT,70,kg,,WEEK 2,2014-01-02\n\
                  X-1,3,SYSBP,,,NOT DONE,WEEK 2,2014-01-02\n\
                  X-1,4,PULSE,abc,,,WEEK 2,2014-01-02\n";
        let lb = "USUBJID,LBSEQ,LBTESTCD,LBSTRESN,LBSTRESU,LBSTNRLO,LBSTNRHI,VISIT,LBDTC\n\
                  X-1,1,ALT,104,U/L,0,32,WEEK 2,2014-01-23T09:16\n\
                  X-1,2,UGLUC,,,,,WEEK 2,2014-01-23T09:16\n\
                  X-1,3,AST,20,U/L,40,30,WEEK 2,2014-01-23T09:16\n";
        let ds = "USUBJID,DSSEQ,DSTERM,DSDECOD,DSCAT,VISIT,DSSTDTC\n\
                  X-1,1,\"PT FINDS PATCHES\"\"INCONVENIENT\"\"\",WITHDRAWAL BY SUBJECT,DISPOSITION EVENT,WEEK 4,2014-02-01\n\
                  X-1,2,FINAL LAB VISIT,FINAL LAB VISIT,OTHER EVENT,WEEK 4,2014-02-01\n";
        let imp = import(&[("vs.csv", vs), ("lb.csv", lb), ("ds.csv", ds), ("ta.csv", "A\n1\n")]);
        let by = |d: &str| imp.summary.domains.iter().find(|s| s.domain == d).unwrap();
        assert_eq!(by("VS").skipped.get("VSTESTCD = WEIGHT: no native vital"), Some(&1));
        assert_eq!(by("VS").skipped.get("VSSTAT = NOT DONE"), Some(&1));
        assert_eq!(by("LB").skipped.get("LBSTRESN blank (text result)"), Some(&1));
        assert_eq!(by("DS").skipped.get("DSCAT = OTHER EVENT: not a disposition event"), Some(&1));
        assert_eq!(imp.summary.not_read, ["ta.csv"]);

        let temp = imp.records.iter().find_map(|r| r.record.vitals.first()?.temperature_c).unwrap();
        assert!((temp - 38.0).abs() < 1e-9);
        let rejected: Vec<(&str, usize, &str)> =
            imp.rejected.iter().map(|r| (r.source.as_str(), r.line, r.field.as_str())).collect();
        assert!(rejected.contains(&("vs.csv", 5, "VSSTRESN")));
        assert!(rejected.contains(&("lb.csv", 4, "LBSTNRLO")));
        let d = imp.records.iter().find_map(|r| r.record.disposition.as_ref()).unwrap();
        assert_eq!(
            (d.status, d.reason.as_deref()),
            (DispositionStatus::Withdrawn, Some("WITHDRAWAL BY SUBJECT"))
        );
        // The only record that parsed from lb.csv says where it came from.
        let alt = imp.records.iter().find(|r| r.source == "lb.csv").unwrap();
        assert_eq!((alt.line, alt.record.visit.as_deref()), (2, Some("WEEK 2")));
        assert_eq!(alt.record.labs[0].high, Some(32.0));
    }

    #[test]
    fn a_file_without_a_key_column_is_refused_whole_and_an_empty_folder_is_an_error() {
        let imp = import(&[
            ("lb.csv", "USUBJID,LBTESTCD,LBSTRESN\nX-1,ALT,3\n"),
            ("dm.csv", "USUBJID,ARM\nX-1,A\n"),
        ]);
        assert_eq!(imp.records.len(), 1);
        assert_eq!((imp.rejected[0].source.as_str(), imp.rejected[0].field.as_str()), ("lb.csv", "LBSEQ"));
        let dir = tempfile::tempdir().unwrap();
        assert!(read_dir(dir.path()).is_err());
    }

    /// Quarantine is read by blinded staff: a refused DM row shows every field but the arm.
    #[test]
    fn a_refused_demographics_row_is_quarantined_without_its_arm() {
        let dm = "USUBJID,SITEID,ARM,ACTARM,RFXSTDTC\n\
                  X-1,701,Xanomeline High Dose,Xanomeline High Dose,not-a-date\n\
                  X-2,701,\"Placebo, oral\",Placebo,2014-01-02,one too many\n";
        let imp = import(&[("dm.csv", dm)]);
        assert_eq!(imp.rejected.len(), 2, "{:?}", imp.rejected);
        for r in &imp.rejected {
            assert!(!r.raw.contains("Xanomeline") && !r.raw.contains("Placebo"), "{}", r.raw);
        }
        assert!(imp.rejected[0].raw.starts_with("X-1,701,(withheld"), "{}", imp.rejected[0].raw);
        assert!(imp.rejected[0].raw.ends_with(",not-a-date"), "the rest stays for the data manager");
    }

    // --- The CDISC pilot study (README facts) ----------------------------------------------

    const PILOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cdiscpilot01");

    struct Pilot {
        summary: ImportSummary,
        rejected: Vec<Rejected>,
        records: usize,
        record_ids: HashSet<String>,
        histories: BTreeMap<String, SubjectHistory>,
    }

    /// Imports some of the pilot's files, in batches, the records moved into one history
    /// per subject. The pilot is read as three sets so that the tests on labs (59,580 rows,
    /// the bulk of the time), on vitals and on the rest run side by side.
    fn load(files: &[&str]) -> Pilot {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::copy(Path::new(PILOT).join(f), dir.path().join(f)).unwrap();
        }
        let mut reader = SdtmReader::open(dir.path()).unwrap();
        let mut by_subject: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        let (mut rejected, mut records, mut record_ids) = (Vec::new(), 0, HashSet::new());
        while let Some(batch) = reader.next_batch(10_000).unwrap() {
            assert!(batch.records.len() + batch.rejected.len() <= 10_000);
            rejected.extend(batch.rejected);
            for r in batch.records {
                records += 1;
                record_ids.insert(r.record.record_id.clone().unwrap());
                by_subject.entry(r.record.subject.as_str().to_string()).or_default().push(r.record);
            }
        }
        let histories = by_subject
            .into_iter()
            .map(|(s, recs)| (s.clone(), SubjectHistory::new(SubjectId::parse(&s).unwrap(), recs)))
            .collect();
        Pilot { summary: reader.into_summary(), rejected, records, record_ids, histories }
    }

    /// Subjects, visits, exposure, adverse events, disposition.
    fn core() -> &'static Pilot {
        static CORE: OnceLock<Pilot> = OnceLock::new();
        CORE.get_or_init(|| load(&["dm.csv", "sv.csv", "ex.csv", "ae.csv", "ds.csv", "suppae.csv", "ta.csv"]))
    }

    fn labs() -> &'static Pilot {
        static LABS: OnceLock<Pilot> = OnceLock::new();
        LABS.get_or_init(|| load(&["lb.csv"]))
    }

    fn vitals() -> &'static Pilot {
        static VITALS: OnceLock<Pilot> = OnceLock::new();
        VITALS.get_or_init(|| load(&["vs.csv"]))
    }

    fn domain<'p>(p: &'p Pilot, code: &str) -> &'p DomainSummary {
        p.summary.domains.iter().find(|s| s.domain == code).unwrap()
    }

    fn clean(p: &Pilot) {
        assert!(p.rejected.is_empty(), "{:?}", p.rejected.first());
        assert_eq!(p.record_ids.len(), p.records);
        assert_eq!(p.summary.records(), p.records);
    }

    #[test]
    fn pilot_core_imports_without_rejections() {
        let p = core();
        clean(p);
        let rows: Vec<usize> = ["DM", "SV", "EX", "AE", "DS"].iter().map(|d| domain(p, d).rows).collect();
        assert_eq!(rows, [306, 3559, 591, 1191, 596]);
        assert_eq!(domain(p, "DS").records, 306);
        assert_eq!(domain(p, "AE").partial_dates, 26);
        assert_eq!(p.summary.not_read, ["suppae.csv", "ta.csv"]);
        println!("{}", p.summary);
    }

    #[test]
    fn pilot_findings_import_without_rejections_and_count_their_skips() {
        let (lb, vs) = (labs(), vitals());
        clean(lb);
        clean(vs);
        assert_eq!((domain(lb, "LB").rows, domain(vs, "VS").rows), (59_580, 29_643));
        assert_eq!(domain(lb, "LB").skipped.values().sum::<usize>(), 880);
        let skipped = &domain(vs, "VS").skipped;
        assert_eq!(skipped.get("VSSTAT = NOT DONE"), Some(&8));
        assert_eq!(skipped.get("VSTESTCD = WEIGHT: no native vital"), Some(&2050));
        assert_eq!(skipped.get("VSTESTCD = HEIGHT: no native vital"), Some(&254));
    }

    /// Importing the same files again gives the same bodies under the same ids, whatever
    /// the batch size: what makes a re-import change nothing in the store.
    #[test]
    fn reimport_is_identical_in_any_batch_size() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["dm.csv", "ae.csv", "ds.csv"] {
            std::fs::copy(Path::new(PILOT).join(f), dir.path().join(f)).unwrap();
        }
        let all = read_dir(dir.path()).unwrap();
        let mut reader = SdtmReader::open(dir.path()).unwrap();
        let mut batched = Vec::new();
        while let Some(b) = reader.next_batch(7).unwrap() {
            assert!(b.records.len() <= 7);
            batched.extend(b.records);
        }
        assert_eq!(all.records.len(), 306 + 1191 + 306);
        assert_eq!(batched.len(), all.records.len());
        for (a, b) in all.records.iter().zip(&batched) {
            assert_eq!((&a.body, a.line, &a.source), (&b.body, b.line, &b.source));
        }
        assert_eq!(reader.summary().notes.len(), all.summary.notes.len());
    }

    #[test]
    fn pilot_subjects_by_arm_and_exposure() {
        let p = core();
        let mut arms: BTreeMap<&str, usize> = BTreeMap::new();
        for h in p.histories.values() {
            *arms.entry(h.arm().unwrap_or("none")).or_default() += 1;
        }
        let expected = [
            ("Placebo", 86),
            ("Screen Failure", 52),
            ("Xanomeline High Dose", 84),
            ("Xanomeline Low Dose", 84),
        ];
        assert_eq!(arms.into_iter().collect::<Vec<_>>(), expected);
        let sites: BTreeSet<&str> = p.histories.values().filter_map(|h| h.site()).collect();
        assert_eq!(sites.len(), 17);
        // Screen failures are subjects, never dosed; every randomised subject is.
        for h in p.histories.values() {
            assert_eq!(h.first_dose().is_none(), h.arm() == Some("Screen Failure"), "{}", h.subject);
        }
        let doses = |amount: f64| {
            p.histories
                .values()
                .filter(|h| {
                    h.doses().iter().any(|d| d.amount == Some(amount) && d.unit.as_deref() == Some("mg"))
                })
                .count()
        };
        assert_eq!((doses(0.0), doses(54.0), doses(81.0)), (86, 168, 72));
    }

    #[test]
    fn pilot_adverse_events() {
        let p = core();
        let events: Vec<(&SubjectHistory, &crate::model::AdverseEvent)> =
            p.histories.values().flat_map(|h| h.adverse_events().into_iter().map(move |a| (h, a))).collect();
        assert_eq!(events.len(), 1191);
        assert_eq!(events.iter().map(|(h, _)| &h.subject).collect::<HashSet<_>>().len(), 225);

        let mut by_arm: BTreeMap<&str, (usize, HashSet<&str>)> = BTreeMap::new();
        for (h, _) in &events {
            let e = by_arm.entry(h.arm().unwrap_or("none")).or_default();
            e.0 += 1;
            e.1.insert(h.subject.as_str());
        }
        let by_arm: Vec<(&str, usize, usize)> = by_arm.iter().map(|(a, (n, s))| (*a, *n, s.len())).collect();
        assert_eq!(
            by_arm,
            [("Placebo", 301, 69), ("Xanomeline High Dose", 455, 79), ("Xanomeline Low Dose", 435, 77)]
        );

        let mut grades = [0usize; 6];
        for (_, a) in &events {
            grades[a.grade.map_or(0, |g| usize::from(g.value()))] += 1;
        }
        // AESEV MILD 770, MODERATE 378, SEVERE 43, of which 3 fatal (AEOUT = FATAL): grade 5.
        assert_eq!(grades, [0, 770, 378, 40, 0, 3]);

        // Serious = AESER = Y: three events. AESER = N with an ICH criterion flag = Y: 33
        // events (20 subjects), 3 of them the deaths; no AESER = Y event lacks a flag, so
        // counting both directions gives the same 33. Each is inconsistent, and a note.
        let serious: Vec<_> = events.iter().filter(|(_, a)| a.serious).collect();
        assert_eq!(serious.len(), 3);
        let inconsistent: Vec<_> = events.iter().filter(|(_, a)| a.seriousness_inconsistent()).collect();
        assert_eq!(inconsistent.len(), 33);
        assert_eq!(inconsistent.iter().filter(|(_, a)| a.is_fatal()).count(), 3);
        assert_eq!(inconsistent.iter().map(|(h, _)| &h.subject).collect::<HashSet<_>>().len(), 20);
        let deaths: Vec<&str> = events
            .iter()
            .filter(|(_, a)| a.seriousness.contains(&Seriousness::Death))
            .map(|(h, _)| h.subject.as_str())
            .collect();
        assert_eq!(deaths, ["01-701-1211", "01-704-1445", "01-710-1083"]);
        let contradictions = p.summary.notes.iter().filter(|n| n.variable == "AESER").count();
        assert_eq!(contradictions, 33);
        assert!(deaths.iter().all(|d| p.summary.notes.iter().any(|n| n.subject == *d)));

        let partial: Vec<_> =
            events.iter().filter_map(|(_, a)| a.onset.as_ref()).filter(|t| t.is_partial()).collect();
        let year_month = partial.iter().filter(|t| t.precision() == crate::model::Precision::Month).count();
        let year = partial.iter().filter(|t| t.precision() == crate::model::Precision::Year).count();
        assert_eq!((year_month, year, partial.len()), (15, 11, 26));

        let related = |r: Option<Relatedness>| events.iter().filter(|(_, a)| a.related == r).count();
        assert_eq!(
            [Relatedness::Probable, Relatedness::Possible, Relatedness::NotRelated, Relatedness::Unlikely]
                .map(|r| related(Some(r))),
            [361, 343, 322, 161]
        );
        assert_eq!(related(None), 4);
        assert_eq!(events.iter().filter(|(_, a)| a.end.is_none()).count(), 473);
    }

    /// SUPPAE AETRTEM, the sponsor's treatment-emergent flag, against the conservative rule
    /// of docs/clinical-reference.md §8.2 (latest plausible onset on or after the first dose).
    #[test]
    fn pilot_treatment_emergence_agrees_with_aetrtem() {
        let p = core();
        let file = File::open(Path::new(PILOT).join("suppae.csv")).unwrap();
        let mut csv = CsvReader::new(BufReader::new(file), Quotes::Lenient);
        let cols = Columns::new(&csv.next_row().unwrap().unwrap().unwrap());
        let mut flags: HashMap<(String, String), bool> = HashMap::new();
        while let Some(row) = csv.next_row().unwrap() {
            let row = row.unwrap();
            let r = Row { columns: &cols, row: &row };
            if r.text("QNAM") == Some("AETRTEM") {
                let key = (r.text("USUBJID").unwrap().to_string(), r.text("IDVARVAL").unwrap().to_string());
                flags.insert(key, r.flag("QVAL"));
            }
        }
        let mut agree = 0;
        for h in p.histories.values() {
            let Some(first) = h.first_dose() else { continue };
            for a in h.adverse_events() {
                let emergent = a.onset.as_ref().unwrap().latest() >= first.start.earliest();
                let flag = flags[&(h.subject.as_str().to_string(), a.id.clone().unwrap())];
                assert_eq!(emergent, flag, "{} AE {}", h.subject, a.id.as_deref().unwrap_or(""));
                agree += 1;
            }
        }
        assert_eq!(agree, 1191);
        assert_eq!(flags.values().filter(|f| **f).count(), 1126);
    }

    #[test]
    fn pilot_liver_labs() {
        let p = labs();
        let over = |test: &str, times: f64| -> BTreeSet<&str> {
            p.histories
                .values()
                .filter(|h| {
                    h.labs()
                        .iter()
                        .any(|(_, _, l)| l.test == test && l.high.is_some_and(|u| l.value > times * u))
                })
                .map(|h| h.subject.as_str())
                .collect()
        };
        let alt3 = over("ALT", 3.0);
        assert_eq!(alt3.iter().copied().collect::<Vec<_>>(), ["01-705-1186", "01-705-1310", "01-708-1286"]);
        assert!(over("ALT", 5.0).is_empty());
        assert_eq!(over("ALT", 2.0).len(), 7);
        assert_eq!(over("AST", 3.0).len(), 4);
        let hy: Vec<&str> = over("BILI", 2.0).intersection(&(&alt3 | &over("AST", 3.0))).copied().collect();
        assert_eq!(hy, ["01-705-1186"]);
        let alt_records = p.histories["01-705-1186"]
            .labs()
            .into_iter()
            .filter(|(_, _, l)| l.test == "ALT" && l.value > 3.0 * l.high.unwrap_or(f64::MAX))
            .map(|(_, v, l)| (v.unwrap_or(""), l.value, l.high))
            .collect::<Vec<_>>();
        assert_eq!(alt_records, [("WEEK 2", 104.0, Some(32.0)), ("WEEK 4", 107.0, Some(32.0))]);
    }

    #[test]
    fn pilot_vitals() {
        let p = vitals();
        let vital_subjects = |f: &dyn Fn(&crate::model::Vital) -> bool| -> (usize, usize) {
            let mut subjects = 0;
            let mut records = 0;
            for h in p.histories.values() {
                let n = h.vitals().iter().filter(|(_, _, v)| f(v)).count();
                records += n;
                subjects += usize::from(n > 0);
            }
            (subjects, records)
        };
        assert_eq!(vital_subjects(&|v| v.systolic_bp.is_some_and(|x| x >= 180.0)), (26, 116));
        assert_eq!(vital_subjects(&|v| v.diastolic_bp.is_some_and(|x| x >= 110.0)), (4, 8));
        assert_eq!(vital_subjects(&|v| v.heart_rate.is_some_and(|x| x < 50.0)), (9, 12));
        assert_eq!(vital_subjects(&|v| v.temperature_c.is_some_and(|x| x >= 38.0)), (2, 2));
    }

    #[test]
    fn pilot_disposition_and_visits() {
        let p = core();

        let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
        for h in p.histories.values() {
            let d = h.disposition().unwrap();
            *statuses.entry(format!("{:?}", d.status)).or_default() += 1;
        }
        let statuses: Vec<(&str, usize)> = statuses.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            statuses,
            [
                ("Completed", 110),
                ("Death", 3),
                ("LostToFollowUp", 2),
                ("ScreenFailure", 52),
                ("Withdrawn", 139)
            ]
        );

        let reached = |visit: &str| {
            p.histories
                .values()
                .filter(|h| h.visits().iter().any(|(v, d)| *v == visit && d.is_some()))
                .count()
        };
        assert_eq!((reached("SCREENING 1"), reached("BASELINE"), reached("WEEK 26")), (306, 254, 111));
    }
}
