//! The native format: one JSON object, a JSON array of objects, or NDJSON.
//!
//! Reading never stops at a bad line: each line (or array element) is parsed on its own,
//! and each failure becomes a `Rejected` naming the file, line and field.

use crate::model::Record;
use crate::store::{NewRecord, Rejected};
use serde_json::value::RawValue;

/// What a file held: the records that parsed, and the lines that did not.
pub type Parsed = super::Batch;

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// Parses `text`, read from a file called `source`.
pub fn parse(source: &str, text: &str) -> Parsed {
    let mut out = Parsed::default();
    let trimmed = text.trim_start_matches('\u{feff}');
    let first = trimmed.trim_start();
    if first.starts_with('[') {
        match serde_json::from_str::<Vec<&RawValue>>(trimmed) {
            Ok(items) => {
                for item in items {
                    let offset = item.get().as_ptr() as usize - trimmed.as_ptr() as usize;
                    one(&mut out, source, line_of(trimmed, offset), item.get());
                }
            }
            Err(e) => out.rejected.push(Rejected {
                source: source.into(),
                line: e.line(),
                field: "file".into(),
                reason: format!("not a JSON array: {e}"),
                raw: text.to_string(),
            }),
        }
        return out;
    }
    // A single (possibly pretty-printed) object, else NDJSON: one object per line.
    if let Ok(v) = serde_json::from_str::<&RawValue>(trimmed) {
        let offset = trimmed.len() - first.len();
        one(&mut out, source, line_of(trimmed, offset), v.get());
        return out;
    }
    for (i, line) in trimmed.lines().enumerate() {
        if !line.trim().is_empty() {
            one(&mut out, source, i + 1, line);
        }
    }
    out
}

/// Parses one NDJSON line (`line` is its number in the file); blank lines hold nothing.
pub fn parse_line(out: &mut Parsed, source: &str, line: usize, text: &str) {
    if !text.trim().is_empty() {
        one(out, source, line, text);
    }
}

/// Parses one JSON object; the body stored is the canonical re-serialization.
fn one(out: &mut Parsed, source: &str, line: usize, text: &str) {
    let reject = |field: String, reason: String| Rejected {
        source: source.into(),
        line,
        field,
        reason,
        raw: text.trim().to_string(),
    };
    let body: serde_json::Value = match serde_json::from_str(text) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => {
            out.rejected.push(reject("record".into(), "not a JSON object".into()));
            return;
        }
        Err(e) => {
            out.rejected.push(reject("record".into(), format!("not JSON: {e}")));
            return;
        }
    };
    match Record::from_json(text) {
        Ok(record) => out.records.push(NewRecord { source: source.into(), line, body, record }),
        Err(e) => out.rejected.push(reject(e.field, e.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_with_bad_lines_keeps_the_good_ones() {
        let text = concat!(
            "{\"subject\":\"KS-101\",\"date\":\"2019-02-26\"}\n",
            "{\"subject\":\"KS-102\",\"adverse_events\":[{\"term\":\"Rash\",\"grade\":9}]}\n",
            "\n",
            "not json\n",
            "{\"subject\":\"KS-103\",\"date\":\"2019-02-27\"}\n",
        );
        let p = parse("visits.ndjson", text);
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.records[1].line, 5);
        assert_eq!(p.rejected.len(), 2);
        assert_eq!((p.rejected[0].line, p.rejected[0].field.as_str()), (2, "adverse_events[0].grade"));
        assert_eq!((p.rejected[1].line, p.rejected[1].field.as_str()), (4, "record"));
    }

    #[test]
    fn arrays_report_the_line_of_each_element() {
        let text = "[\n  {\"subject\": \"A\"},\n  {\"subject\": \"\"}\n]\n";
        let p = parse("a.json", text);
        assert_eq!(p.records.len(), 1);
        assert_eq!((p.rejected[0].line, p.rejected[0].field.as_str()), (3, "subject"));
    }

    #[test]
    fn a_pretty_printed_object_is_one_record() {
        let p = parse("one.json", "\n{\n  \"subject\": \"A\",\n  \"visit\": \"W4\"\n}\n");
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.records[0].line, 2);
    }

    #[test]
    fn a_broken_array_is_quarantined_whole_with_its_position() {
        let p = parse("b.json", "[\n {\"subject\": \"A\"},\n {\"subject\": \n]");
        assert!(p.records.is_empty());
        assert_eq!(p.rejected[0].field, "file");
        assert_eq!(p.rejected[0].line, 4);
    }
}
