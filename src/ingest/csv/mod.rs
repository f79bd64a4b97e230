//! The native CSV variant: one observation per row.
//!
//! A spreadsheet or EDC export can be dropped as CSV instead of JSON. Each row holds one
//! observation (a dose, an adverse event, one vital sign, one lab result, a score, one MRI
//! measure or a relapse) and becomes one native record, checked by the same rules as JSON.
//!
//! # Format
//!
//! RFC 4180: comma-separated, a header row first, fields that contain a comma, a quote or a
//! line break are enclosed in double quotes, and a quote inside them is doubled
//! (`"Rash, maculo-papular"`, `"said ""itchy"""`). Lines may end in CRLF or LF; blank lines
//! are ignored; a UTF-8 byte order mark is allowed. Decimals use a point (`38.2`).
//!
//! The header names the columns, in any order; `subject` and `kind` are required, the others
//! may be left out. A column vigil does not know rejects the whole file (a typo such as
//! `grdae` would otherwise drop every grade without a word). Cells may be empty.
//!
//! | column | meaning |
//! | --- | --- |
//! | `subject` | pseudonymous subject id, e.g. `KS-101` (required) |
//! | `site`, `visit` | site code and visit label |
//! | `date` | visit date, ISO 8601 (`2019-05-21`; partial dates such as `2019-05` are allowed) |
//! | `record_id` | the row's id in the sending system; empty = derived from the row's content |
//! | `kind` | `dose`, `adverse_event`, `vital`, `lab`, `score`, `mri` or `relapse` (required) |
//! | `name` | dose: product; vital: which sign; lab: test; score: scale; mri: which count |
//! | `value` | the number: dose amount, vital, lab result, score, lesion count |
//! | `unit` | unit of `value` (dose, vital, lab) |
//! | `low`, `high` | lab reference range (lower and upper limit of normal) |
//! | `time` | dose: start; vital and lab: time of measurement; mri: scan date |
//! | `grade` | adverse event: CTCAE grade 1 to 5 |
//! | `serious` | adverse event: `true`/`false` (also `yes`/`no`, `Y`/`N`), or the seriousness criteria separated by `;` (`hospitalization;life_threatening`), which imply serious |
//! | `related` | adverse event: `not_related`, `unlikely`, `possible`, `probable` or `definite` |
//! | `term` | adverse event: the reported term |
//! | `id` | adverse event: its id; a later row with the same id is a new version of the event |
//! | `onset` | adverse event or relapse: onset date-time |
//! | `end` | adverse event: end (resolution); dose: end of administration |
//! | `outcome` | adverse event: outcome, e.g. `recovered` |
//!
//! Which columns each kind reads (besides `subject`, `site`, `visit`, `date`, `record_id`):
//!
//! | kind | columns |
//! | --- | --- |
//! | `dose` | `name` (product), `value` (amount), `unit`, `time` (start; empty = `date`), `end` |
//! | `adverse_event` | `term` (required), `id`, `onset`, `end`, `grade`, `serious`, `related`, `outcome` |
//! | `vital` | `name` (required), `value` (required), `unit`, `time` |
//! | `lab` | `name` (required), `value` (required), `unit`, `low`, `high`, `time` |
//! | `score` | `name` (required, e.g. `EDSS`), `value` (required); needs `date` |
//! | `mri` | `name` (required), `value` (required), `time` (scan date; empty = `date`) |
//! | `relapse` | `onset` (empty = `date`), `value` (`false`/`no`/`0` = no relapse) |
//!
//! Vital names: `systolic_bp`, `diastolic_bp` (mmHg), `heart_rate`, `respiratory_rate`
//! (/min), `temperature_c` (°C), `spo2` (%). A unit, when given, must be one of these: vigil
//! does not convert vital signs, and a Fahrenheit temperature read as Celsius would be wrong.
//! MRI names: `t2_new_or_enlarging`, `gd_enhancing`, `t2_total`.
//!
//! A filled cell in a column the row's kind does not read is an error, not ignored: a
//! grade on a lab row would otherwise vanish. Each bad row is quarantined with its line
//! (the line the row starts on) and the column at fault; the other rows go on.
//!
//! ```text
//! subject,site,visit,date,record_id,kind,name,value,unit,low,high,time,grade,serious,related,term,id,onset
//! KS-101,KS,W12,2019-05-21,,score,EDSS,4.5,,,,,,,,,,
//! KS-101,KS,H2,2019-02-26,,adverse_event,,,,,,,3,false,probable,Infusion related reaction,AE-1,2019-02-26T09:35:00+01:00
//! KS-101,KS,H2,2019-02-26,,vital,temperature_c,38.2,,,,2019-02-26T11:10:00+01:00,,,,,,
//! KS-101,KS,W12,2019-05-21,,mri,t2_new_or_enlarging,1,,,,2019-05-20,,,,,,
//! ```

mod reader;

pub use reader::{rows, BadRow, CsvReader, CsvRow, Quotes};

use super::native::Parsed;
use crate::model::Record;
use crate::store::{NewRecord, Rejected};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Every column vigil reads, in the order of the documentation.
const COLUMNS: &[&str] = &[
    "subject",
    "site",
    "visit",
    "date",
    "record_id",
    "kind",
    "name",
    "value",
    "unit",
    "low",
    "high",
    "time",
    "grade",
    "serious",
    "related",
    "term",
    "id",
    "onset",
    "end",
    "outcome",
];

/// Columns every kind reads.
const COMMON: &[&str] = &["subject", "site", "visit", "date", "record_id", "kind"];

const VITALS: &[&str] =
    &["systolic_bp", "diastolic_bp", "heart_rate", "respiratory_rate", "temperature_c", "spo2"];
const MRI_MEASURES: &[&str] = &["t2_new_or_enlarging", "gd_enhancing", "t2_total"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dose,
    AdverseEvent,
    Vital,
    Lab,
    Score,
    Mri,
    Relapse,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "dose" => Self::Dose,
            "adverse_event" => Self::AdverseEvent,
            "vital" => Self::Vital,
            "lab" => Self::Lab,
            "score" => Self::Score,
            "mri" => Self::Mri,
            "relapse" => Self::Relapse,
            _ => return None,
        })
    }

    fn label(self) -> &'static str {
        match self {
            Self::Dose => "dose",
            Self::AdverseEvent => "adverse_event",
            Self::Vital => "vital",
            Self::Lab => "lab",
            Self::Score => "score",
            Self::Mri => "mri",
            Self::Relapse => "relapse",
        }
    }

    /// The columns this kind reads, besides `COMMON`.
    fn columns(self) -> &'static [&'static str] {
        match self {
            Self::Dose => &["name", "value", "unit", "time", "end"],
            Self::AdverseEvent => &["term", "id", "onset", "end", "grade", "serious", "related", "outcome"],
            Self::Vital => &["name", "value", "unit", "time"],
            Self::Lab => &["name", "value", "unit", "low", "high", "time"],
            Self::Score => &["name", "value"],
            Self::Mri => &["name", "value", "time"],
            Self::Relapse => &["onset", "value"],
        }
    }
}

/// A refusal of one row: the column at fault and why.
struct Bad {
    column: String,
    reason: String,
}

fn bad(column: &str, reason: impl Into<String>) -> Bad {
    Bad { column: column.to_string(), reason: reason.into() }
}

/// Parses CSV `text`, read from a file called `source`.
pub fn parse(source: &str, text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut reader = CsvReader::new(text.as_bytes(), Quotes::Strict);
    // Text in memory cannot fail to read: the io::Result is always Ok.
    let mut rows = std::iter::from_fn(move || reader.next_row().ok().flatten()).map(|row| match row {
        Ok(row) => {
            let fields: Vec<String> = row.fields().into_iter().map(str::to_string).collect();
            (row.line, row.raw, Ok(fields))
        }
        Err(bad) => (bad.line, bad.raw, Err(bad.reason)),
    });
    let Some((head_line, head_raw, head_fields)) = rows.next() else {
        return out;
    };
    let reject_file = |reason: String| Rejected {
        source: source.into(),
        line: head_line,
        field: "header".into(),
        reason,
        raw: head_raw.clone(),
    };
    let header = match head_fields.and_then(|f| read_header(&f)) {
        Ok(h) => h,
        Err(reason) => {
            out.rejected.push(reject_file(reason));
            return out;
        }
    };
    // record_id → (line, content) of the first row that used it.
    let mut ids: HashMap<String, (usize, String)> = HashMap::new();
    for (line, raw, fields) in rows {
        let reject = |b: Bad| Rejected {
            source: source.into(),
            line,
            field: b.column,
            reason: b.reason,
            raw: raw.clone(),
        };
        let fields = match fields {
            Ok(f) => f,
            Err(reason) => {
                out.rejected.push(reject(bad("row", reason)));
                continue;
            }
        };
        if fields.len() != header.len() {
            out.rejected.push(reject(bad(
                "row",
                format!(
                    "{} fields, but the header has {}: an unquoted comma in a cell? \
                     quote cells that contain commas",
                    fields.len(),
                    header.len()
                ),
            )));
            continue;
        }
        let cells = Cells { header: &header, fields: &fields };
        match row_record(&cells) {
            Ok((body, given_id)) => {
                let id = body.get("record_id").and_then(Value::as_str).unwrap_or_default().to_string();
                let content = body.to_string();
                if given_id {
                    if let Some((first, earlier)) = ids.get(&id) {
                        if *earlier != content {
                            out.rejected.push(reject(bad(
                                "record_id",
                                format!(
                                    "`{id}` is already used by the row on line {first}; each row is \
                                     its own record: give it its own record_id or leave it empty"
                                ),
                            )));
                            continue;
                        }
                    } else {
                        ids.insert(id, (line, content.clone()));
                    }
                }
                match Record::from_json(&content) {
                    Ok(record) => out.records.push(NewRecord { source: source.into(), line, body, record }),
                    Err(e) => {
                        let column = column_of(&cells, &e.field);
                        out.rejected.push(reject(bad(&column, e.message)));
                    }
                }
            }
            Err(b) => out.rejected.push(reject(b)),
        }
    }
    out
}

/// The header's columns, lower-cased; refuses unknown, repeated and missing required ones.
fn read_header(fields: &[String]) -> Result<Vec<String>, String> {
    let cols: Vec<String> = fields.iter().map(|f| f.trim().to_ascii_lowercase()).collect();
    for (i, c) in cols.iter().enumerate() {
        if !COLUMNS.contains(&c.as_str()) {
            return Err(format!(
                "unknown column `{}` (column {}); vigil reads: {}",
                fields[i].trim(),
                i + 1,
                COLUMNS.join(", ")
            ));
        }
        if cols[..i].contains(c) {
            return Err(format!("column `{c}` appears twice"));
        }
    }
    for required in ["subject", "kind"] {
        if !cols.iter().any(|c| c == required) {
            return Err(format!("the header has no `{required}` column"));
        }
    }
    Ok(cols)
}

/// One row's cells, by column name.
struct Cells<'a> {
    header: &'a [String],
    fields: &'a [String],
}

impl Cells<'_> {
    /// The trimmed cell, or None when the column is absent or the cell empty.
    fn get(&self, column: &str) -> Option<&str> {
        let i = self.header.iter().position(|c| c == column)?;
        self.fields.get(i).map(|f| f.trim()).filter(|f| !f.is_empty())
    }

    fn text(&self, column: &str) -> Option<Value> {
        self.get(column).map(|s| Value::String(s.to_string()))
    }

    fn number(&self, column: &str) -> Result<Option<f64>, Bad> {
        self.get(column)
            .map(|s| match s.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x),
                _ => Err(bad(column, format!("`{s}` is not a number (use a decimal point: 38.2)"))),
            })
            .transpose()
    }

    fn required(&self, column: &str, kind: Kind) -> Result<&str, Bad> {
        self.get(column)
            .ok_or_else(|| bad(column, format!("missing: a {} row needs `{column}`", kind.label())))
    }

    fn required_number(&self, column: &str, kind: Kind) -> Result<f64, Bad> {
        self.number(column)?
            .ok_or_else(|| bad(column, format!("missing: a {} row needs `{column}`", kind.label())))
    }
}

/// Builds the native record of one row; the flag says whether its record_id was given.
fn row_record(cells: &Cells) -> Result<(Value, bool), Bad> {
    let kind_text = cells.get("kind").ok_or_else(|| bad("kind", "missing"))?;
    let kind = Kind::parse(kind_text).ok_or_else(|| {
        bad(
            "kind",
            format!(
                "`{kind_text}` is not a kind: use dose, adverse_event, vital, lab, score, mri or relapse"
            ),
        )
    })?;
    for col in cells.header {
        if !COMMON.contains(&col.as_str())
            && !kind.columns().contains(&col.as_str())
            && cells.get(col).is_some()
        {
            return Err(bad(
                col,
                format!("`{col}` does not apply to a {} row; leave it empty", kind.label()),
            ));
        }
    }
    let mut body = Map::new();
    for col in ["subject", "site", "visit", "date"] {
        if let Some(v) = cells.text(col) {
            body.insert(col.into(), v);
        }
    }
    match kind {
        Kind::Dose => {
            let start = cells.text("time").or_else(|| cells.text("date"));
            let mut d = Map::new();
            put(&mut d, "start", start);
            put(&mut d, "end", cells.text("end"));
            put(&mut d, "product", cells.text("name"));
            put(&mut d, "amount", cells.number("value")?.map(Value::from));
            put(&mut d, "unit", cells.text("unit"));
            body.insert("doses".into(), json!([d]));
        }
        Kind::AdverseEvent => {
            cells.required("term", kind)?;
            let mut a = Map::new();
            for col in ["id", "term", "onset", "end", "related", "outcome"] {
                put(&mut a, col, cells.text(col));
            }
            put(&mut a, "grade", cells.number("grade")?.map(Value::from));
            if let Some(s) = cells.get("serious") {
                match flag(s) {
                    Some(b) => {
                        a.insert("serious".into(), Value::Bool(b));
                    }
                    None => {
                        let criteria: Vec<Value> = s
                            .split(';')
                            .map(str::trim)
                            .filter(|c| !c.is_empty())
                            .map(|c| Value::String(c.to_string()))
                            .collect();
                        a.insert("serious".into(), Value::Bool(true));
                        a.insert("seriousness".into(), Value::Array(criteria));
                    }
                }
            }
            body.insert("adverse_events".into(), json!([a]));
        }
        Kind::Vital => {
            let name = cells.required("name", kind)?;
            if !VITALS.contains(&name) {
                return Err(bad("name", format!("`{name}` is not a vital sign: use {}", VITALS.join(", "))));
            }
            let value = cells.required_number("value", kind)?;
            if let Some(unit) = cells.get("unit") {
                check_vital_unit(name, unit)?;
            }
            let mut v = Map::new();
            put(&mut v, "time", cells.text("time"));
            v.insert(name.into(), Value::from(value));
            body.insert("vitals".into(), json!([v]));
        }
        Kind::Lab => {
            let mut l = Map::new();
            l.insert("test".into(), Value::String(cells.required("name", kind)?.to_string()));
            l.insert("value".into(), Value::from(cells.required_number("value", kind)?));
            put(&mut l, "unit", cells.text("unit"));
            put(&mut l, "low", cells.number("low")?.map(Value::from));
            put(&mut l, "high", cells.number("high")?.map(Value::from));
            put(&mut l, "time", cells.text("time"));
            body.insert("labs".into(), json!([l]));
        }
        Kind::Score => {
            let name = cells.required("name", kind)?;
            let value = cells.required_number("value", kind)?;
            body.insert("scores".into(), json!([{ "name": name, "value": value }]));
        }
        Kind::Mri => {
            let name = cells.required("name", kind)?;
            if !MRI_MEASURES.contains(&name) {
                return Err(bad(
                    "name",
                    format!("`{name}` is not an MRI measure: use {}", MRI_MEASURES.join(", ")),
                ));
            }
            let mut m = Map::new();
            put(&mut m, "date", cells.text("time"));
            m.insert(name.into(), Value::from(cells.required_number("value", kind)?));
            body.insert("mri".into(), Value::Object(m));
        }
        Kind::Relapse => {
            let happened = match cells.get("value") {
                None => true,
                Some(v) => flag(v).ok_or_else(|| bad("value", format!("`{v}`: use true or false")))?,
            };
            let relapse = match (happened, cells.text("onset")) {
                (false, _) => Value::Bool(false),
                (true, Some(onset)) => json!({ "onset": onset }),
                (true, None) => Value::Bool(true),
            };
            body.insert("relapse".into(), relapse);
        }
    }
    let given = cells.get("record_id");
    let id = match given {
        Some(id) => id.to_string(),
        // Same row content, same id: sending the file again changes nothing.
        None => {
            format!("csv:{}", &hex::encode(Sha256::digest(Value::Object(body.clone()).to_string()))[..32])
        }
    };
    body.insert("record_id".into(), Value::String(id));
    Ok((Value::Object(body), given.is_some()))
}

fn put(map: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        map.insert(key.into(), v);
    }
}

/// A yes/no cell, in the spellings EDC exports use.
fn flag(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Some(true),
        "false" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Vital signs are stored in one unit each; a different unit is refused, never converted.
fn check_vital_unit(name: &str, unit: &str) -> Result<(), Bad> {
    let u = unit.trim().to_ascii_lowercase().replace(' ', "");
    let ok: &[&str] = match name {
        "systolic_bp" | "diastolic_bp" => &["mmhg", "mm[hg]"],
        "heart_rate" => &["/min", "bpm", "beats/min", "{beats}/min", "1/min"],
        "respiratory_rate" => &["/min", "breaths/min", "{breaths}/min", "1/min"],
        "temperature_c" => &["°c", "c", "cel", "degc"],
        "spo2" => &["%"],
        _ => &[],
    };
    if ok.contains(&u.as_str()) {
        Ok(())
    } else {
        Err(bad("unit", format!("`{unit}` is not the unit of {name} (expected {})", ok.join(" or "))))
    }
}

/// The CSV column that a refusal of the built record points at.
fn column_of(cells: &Cells, field: &str) -> String {
    if field == "mri.date" {
        return if cells.get("time").is_some() { "time" } else { "date" }.into();
    }
    let leaf = field.rsplit('.').next().unwrap_or(field);
    let leaf = leaf.split('[').next().unwrap_or(leaf);
    let column = match leaf {
        "start" => {
            if cells.get("time").is_some() {
                "time"
            } else {
                "date"
            }
        }
        "amount" | "t2_new_or_enlarging" | "gd_enhancing" | "t2_total" => "value",
        "product" | "test" => "name",
        "seriousness" => "serious",
        l if VITALS.contains(&l) => "value",
        "value" if field.starts_with("scores") => "value",
        "name" if field.starts_with("scores") => "name",
        l if COLUMNS.contains(&l) => l,
        _ => "row",
    };
    column.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "subject,site,visit,date,record_id,kind,name,value,unit,low,high,time,grade,serious,related,term,id,onset\n";

    fn csv(rows: &[&str]) -> String {
        let mut s = HEADER.to_string();
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
        s
    }

    #[test]
    fn the_documented_rows_become_records() {
        let text = csv(&[
            "KS-101,KS,W12,2019-05-21,,score,EDSS,4.5,,,,,,,,,,",
            "KS-101,KS,H2,2019-02-26,,adverse_event,,,,,,,3,false,probable,Infusion related reaction,AE-1,2019-02-26T09:35:00+01:00",
            "KS-101,KS,H2,2019-02-26,,vital,temperature_c,38.2,,,,2019-02-26T11:10:00+01:00,,,,,,",
            "KS-101,KS,W12,2019-05-21,,mri,t2_new_or_enlarging,1,,,,2019-05-20,,,,,,",
            "KS-101,KS,W4,2019-03-26,lab-0042,lab,ALT,52,U/L,0,45,,,,,,,",
            "KS-101,KS,D0,2019-02-26,,dose,autologous BM-MSC,1.6e6,cells/kg,,,2019-02-26T09:10:00+01:00,,,,,,",
            "KS-102,KS,W12,2019-05-21,,relapse,,,,,,,,,,,,2019-05-02",
        ]);
        let p = parse("visits.csv", &text);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected.iter().map(|r| &r.reason).collect::<Vec<_>>());
        assert_eq!(p.records.len(), 7);
        let r = &p.records;
        assert_eq!(r[0].record.edss().map(|e| e.value()), Some(4.5));
        let ae = &r[1].record.adverse_events[0];
        assert_eq!(
            (ae.term.as_str(), ae.grade.map(|g| g.value()), ae.serious),
            ("Infusion related reaction", Some(3), false)
        );
        assert_eq!(ae.id.as_deref(), Some("AE-1"));
        assert_eq!(ae.related.map(|x| x.label()), Some("probable"));
        assert_eq!(r[2].record.vitals[0].temperature_c, Some(38.2));
        assert_eq!(r[3].record.mri.as_ref().and_then(|m| m.t2_new_or_enlarging), Some(1));
        let lab = &r[4].record.labs[0];
        assert_eq!((lab.test.as_str(), lab.value, lab.high), ("ALT", 52.0, Some(45.0)));
        assert_eq!(r[4].record.record_id.as_deref(), Some("lab-0042"));
        assert_eq!(r[5].record.doses[0].amount, Some(1.6e6));
        assert!(r[6].record.relapse.is_some());
        // Lines count from the header (line 1).
        assert_eq!(r.iter().map(|x| x.line).collect::<Vec<_>>(), vec![2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn derived_record_ids_follow_the_content() {
        let row = "KS-101,KS,W12,2019-05-21,,score,EDSS,4.5,,,,,,,,,,";
        let a = parse("a.csv", &csv(&[row]));
        let b = parse("b.csv", &csv(&[row]));
        let c = parse("c.csv", &csv(&["KS-101,KS,W12,2019-05-21,,score,EDSS,5.0,,,,,,,,,,"]));
        let id = |p: &Parsed| p.records[0].record.record_id.clone().unwrap_or_default();
        assert!(id(&a).starts_with("csv:"));
        assert_eq!(id(&a), id(&b));
        assert_ne!(id(&a), id(&c));
    }

    #[test]
    fn a_bad_grade_names_its_line_and_column() {
        let text = csv(&[
            "KS-101,KS,H2,2019-02-26,,adverse_event,,,,,,,7,false,,Headache,AE-2,2019-02-26",
            "KS-101,KS,H2,2019-02-26,,adverse_event,,,,,,,three,false,,Headache,AE-3,2019-02-26",
            "KS-101,KS,H2,2019-02-26,,adverse_event,,,,,,,2,false,,Headache,AE-4,2019-02-26",
        ]);
        let p = parse("ae.csv", &text);
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.records[0].line, 4);
        let got: Vec<(usize, &str)> = p.rejected.iter().map(|r| (r.line, r.field.as_str())).collect();
        assert_eq!(got, vec![(2, "grade"), (3, "grade")]);
        assert!(p.rejected[0].reason.contains("grade 7"), "{}", p.rejected[0].reason);
        assert!(p.rejected[0].raw.contains("AE-2"));
    }

    #[test]
    fn a_bad_kind_is_refused() {
        let p = parse("x.csv", &csv(&["KS-101,KS,W12,2019-05-21,,ecg,QTc,450,ms,,,,,,,,,"]));
        assert!(p.records.is_empty());
        assert_eq!((p.rejected[0].line, p.rejected[0].field.as_str()), (2, "kind"));
        assert!(p.rejected[0].reason.contains("`ecg`"));
    }

    #[test]
    fn a_quoted_term_keeps_its_comma_and_quotes() {
        let text = csv(&[
            "KS-101,KS,H2,2019-02-26,,adverse_event,,,,,,,2,no,possible,\"Rash, maculo-papular \"\"itchy\"\"\",AE-5,2019-02-26",
            "KS-101,KS,W4,2019-03-26,,score,EDSS,4.0,,,,,,,,,,",
        ]);
        let p = parse("q.csv", &text);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected.iter().map(|r| &r.reason).collect::<Vec<_>>());
        assert_eq!(p.records[0].record.adverse_events[0].term, "Rash, maculo-papular \"itchy\"");
        assert_eq!(p.records[1].line, 3);
    }

    #[test]
    fn a_quoted_line_break_keeps_later_line_numbers_right() {
        let text = csv(&[
            "KS-101,KS,H2,2019-02-26,,adverse_event,,,,,,,2,,,\"Infusion related\r\nreaction\",AE-6,",
            "KS-101,KS,W4,2019-03-26,,score,EDSS,0.5,,,,,,,,,,",
        ]);
        let p = parse("q.csv", &text);
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.records[0].line, 2);
        // A line break inside a value is a space (a log line stays one line).
        assert_eq!(p.records[0].record.adverse_events[0].term, "Infusion related reaction");
        // The second row starts on line 4, after the two-line first row; EDSS 0.5 does not exist.
        assert_eq!((p.rejected[0].line, p.rejected[0].field.as_str()), (4, "value"));
    }

    #[test]
    fn the_splitter_follows_rfc_4180() {
        let mut reader = CsvReader::new("a,b\r\nc,\"d\"\r\n\"e\r\nf\",\r\n".as_bytes(), Quotes::Strict);
        let mut got: Vec<(usize, Vec<String>)> = Vec::new();
        while let Some(row) = reader.next_row().unwrap() {
            let row = row.unwrap();
            got.push((row.line, row.fields().into_iter().map(str::to_string).collect()));
        }
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(got, vec![(1, s(&["a", "b"])), (2, s(&["c", "d"])), (3, s(&["e\r\nf", ""]))]);
    }

    #[test]
    fn crlf_blank_lines_and_a_bom_are_fine() {
        let text = format!(
            "\u{feff}{}\r\n\r\nKS-101,KS,W12,2019-05-21,,score,EDSS,4.5,,,,,,,,,,\r\n",
            HEADER.trim_end()
        );
        let p = parse("w.csv", &text);
        assert!(p.rejected.is_empty());
        assert_eq!(p.records[0].line, 3);
    }

    #[test]
    fn an_unknown_column_rejects_the_file_at_its_header() {
        let text = "\nsubject,kind,name,value,grdae\nKS-101,score,EDSS,4.5,\n";
        let p = parse("u.csv", text);
        assert!(p.records.is_empty());
        assert_eq!(p.rejected.len(), 1);
        assert_eq!((p.rejected[0].line, p.rejected[0].field.as_str()), (2, "header"));
        assert!(p.rejected[0].reason.contains("`grdae`"));
    }

    #[test]
    fn a_subset_of_columns_in_any_order_is_enough() {
        let p = parse("s.csv", "kind,subject,date,name,value\nscore,KS-101,2019-05-21,EDSS,3.5\n");
        assert!(p.rejected.is_empty());
        assert_eq!(p.records[0].record.subject.as_str(), "KS-101");
    }

    #[test]
    fn malformed_rows_are_refused_one_by_one() {
        let text = csv(&[
            "KS-101,KS,W12,2019-05-21,,score,EDSS,4.5,,,,,,,,,",
            "KS-101,KS,W12,2019-05-21,,score,EDSS,4\"5,,,,,,,,,,",
            "KS-101,KS,W12,2019-05-21,,score,\"EDSS\"x,4.5,,,,,,,,,,",
            "KS-101,KS,W12,2019-05-21,,score,EDSS,4.5,,,,,,,,,,",
            "KS-101,KS,W12,2019-05-21,,score,\"EDSS,4.5,,,,,,,,,,",
        ]);
        let p = parse("m.csv", &text);
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.records[0].line, 5);
        let got: Vec<(usize, &str)> = p.rejected.iter().map(|r| (r.line, r.field.as_str())).collect();
        assert_eq!(got, vec![(2, "row"), (3, "row"), (4, "row"), (6, "row")]);
        assert!(p.rejected[0].reason.contains("17 fields"));
        assert!(p.rejected[3].reason.contains("never closed"));
    }

    #[test]
    fn cells_the_kind_does_not_read_are_refused() {
        let p = parse("g.csv", &csv(&["KS-101,KS,W4,2019-03-26,,lab,ALT,52,U/L,0,45,,3,,,,,"]));
        assert_eq!(p.rejected[0].field, "grade");
    }

    #[test]
    fn vital_units_and_seriousness_criteria() {
        let text = csv(&[
            "KS-101,KS,H2,2019-02-26,,vital,temperature_c,101.2,°F,,,,,,,,,",
            "KS-101,KS,H2,2019-02-26,,vital,systolic_bp,84,mmHg,,,2019-02-26T10:00:00+01:00,,,,,,",
            "KS-101,KS,H2,2019-02-26,,adverse_event,,,,,,,3,hospitalization;life threatening,,Anaphylaxis,AE-7,2019-02-26",
            "KS-101,KS,H2,2019-02-26,,adverse_event,,,,,,,3,sometimes,,Anaphylaxis,AE-8,2019-02-26",
        ]);
        let p = parse("v.csv", &text);
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.records[0].record.vitals[0].systolic_bp, Some(84.0));
        assert!(p.records[1].record.adverse_events[0].serious);
        assert_eq!(p.records[1].record.adverse_events[0].seriousness.len(), 2);
        let got: Vec<(usize, &str)> = p.rejected.iter().map(|r| (r.line, r.field.as_str())).collect();
        assert_eq!(got, vec![(2, "unit"), (5, "serious")]);
    }

    #[test]
    fn a_record_id_reused_for_other_content_is_refused() {
        let text = csv(&[
            "KS-101,KS,W4,2019-03-26,v4,score,EDSS,4.0,,,,,,,,,,",
            "KS-101,KS,W4,2019-03-26,v4,score,EDSS,4.0,,,,,,,,,,",
            "KS-101,KS,W4,2019-03-26,v4,lab,ALT,52,U/L,,,,,,,,,",
        ]);
        let p = parse("r.csv", &text);
        assert_eq!(p.records.len(), 2);
        assert_eq!((p.rejected[0].line, p.rejected[0].field.as_str()), (4, "record_id"));
        assert!(p.rejected[0].reason.contains("line 2"));
    }

    #[test]
    fn model_refusals_map_back_to_columns() {
        let text = csv(&[
            ",KS,W4,2019-03-26,,score,EDSS,4.0,,,,,,,,,,",
            "KS-101,KS,W4,,,score,EDSS,4.0,,,,,,,,,,",
            "KS-101,KS,W4,2019-03-26,,vital,heart_rate,400,,,,,,,,,,",
            "KS-101,KS,W4,2019-03-26,,lab,ALT,52,U/L,50,45,,,,,,,",
            "KS-101,KS,W4,2019-03-26,,dose,MSC,1,,,,2019-02-30,,,,,,",
            "KS-101,KS,W4,2019-03-26,,adverse_event,,,,,,,,,maybe,Headache,,",
        ]);
        let p = parse("f.csv", &text);
        let got: Vec<(usize, &str)> = p.rejected.iter().map(|r| (r.line, r.field.as_str())).collect();
        assert_eq!(
            got,
            vec![(2, "subject"), (3, "date"), (4, "value"), (5, "low"), (6, "time"), (7, "related")]
        );
    }
}
