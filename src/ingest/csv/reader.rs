//! The one CSV reader: a small streaming RFC 4180 reader used by the native CSV variant
//! and by SDTM, and by tests that read reference CSVs ([`rows`]).
//!
//! Fields are separated by commas and optionally quoted; inside quotes, `""` is a quote and
//! commas and line breaks are data. CRLF and LF line ends are both accepted (a line end
//! inside quotes is kept as written); blank lines between records are skipped; a leading
//! BOM is dropped. Every record knows the line it starts on and its original text, so a
//! refusal can name both. Broken quoting is reported, never silently repaired: a quoted
//! field never closed, or text after a closing quote. A quote inside an unquoted field is
//! an error with [`Quotes::Strict`] and kept as a character with [`Quotes::Lenient`] (SDTM
//! exports write `5" tall`).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

/// What a quote inside an unquoted field means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quotes {
    /// An error: the field should have been quoted and the quote doubled.
    Strict,
    /// A character, as written.
    Lenient,
}

/// A CSV record, with the line it starts on and its original text. The fields live in one
/// buffer (the raw text itself when nothing was quoted): 59,580 lab rows of 23 fields
/// should not cost 1.4 million small allocations.
#[derive(Debug)]
pub struct CsvRow {
    pub line: usize,
    pub raw: String,
    /// Unquoted field text, when the row had quotes; else the fields are slices of `raw`.
    data: Option<String>,
    /// Byte range of each field in `data` (or `raw`).
    bounds: Vec<(usize, usize)>,
}

impl CsvRow {
    pub fn len(&self) -> usize {
        self.bounds.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }
    pub fn field(&self, i: usize) -> &str {
        let text = self.data.as_deref().unwrap_or(&self.raw);
        self.bounds.get(i).and_then(|&(a, b)| text.get(a..b)).unwrap_or_default()
    }
    pub fn fields(&self) -> Vec<&str> {
        (0..self.len()).map(|i| self.field(i)).collect()
    }
}

/// A record that cannot be split into fields: its line, why, and its text.
#[derive(Debug)]
pub struct BadRow {
    pub line: usize,
    pub reason: String,
    pub raw: String,
}

/// Reads records one at a time from any buffered input (a file, or text in memory).
pub struct CsvReader<R> {
    input: R,
    quotes: Quotes,
    /// Physical lines consumed so far.
    line: usize,
    buf: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// Just read a quote inside a quoted field: either `""` or the closing quote.
    QuoteInQuoted,
}

/// One physical line: its text without the line end, whether it was UTF-8, and the line
/// end itself (kept when the line break is data inside quotes).
struct Line {
    text: String,
    utf8: bool,
    end: &'static str,
}

impl<R: BufRead> CsvReader<R> {
    pub fn new(input: R, quotes: Quotes) -> Self {
        CsvReader { input, quotes, line: 0, buf: Vec::new() }
    }

    /// The next physical line, or `None` at the end of the input. Text that is not UTF-8
    /// is kept (lossily) and reported.
    fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        self.buf.clear();
        if self.input.read_until(b'\n', &mut self.buf)? == 0 {
            return Ok(None);
        }
        self.line += 1;
        let mut bytes: &[u8] = &self.buf;
        let mut end = "";
        if let Some(b) = bytes.strip_suffix(b"\n") {
            (bytes, end) = match b.strip_suffix(b"\r") {
                Some(b) => (b, "\r\n"),
                None => (b, "\n"),
            };
        }
        if self.line == 1 {
            bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        }
        Ok(Some(match std::str::from_utf8(bytes) {
            Ok(t) => Line { text: t.to_string(), utf8: true, end },
            Err(_) => Line { text: String::from_utf8_lossy(bytes).into_owned(), utf8: false, end },
        }))
    }

    /// The next record; `None` at the end. Blank lines between records are skipped.
    pub fn next_row(&mut self) -> std::io::Result<Option<Result<CsvRow, BadRow>>> {
        let first = loop {
            match self.next_line()? {
                None => return Ok(None),
                Some(line) if line.text.trim().is_empty() => continue,
                Some(line) => break line,
            }
        };
        let start = self.line;
        let mut problem = (!first.utf8).then(|| format!("line {start} is not UTF-8 text"));
        if !first.text.contains('"') {
            // The common case: nothing quoted, the fields are slices of the line.
            let mut bounds = Vec::new();
            let mut from = 0;
            for (i, _) in first.text.match_indices(',') {
                bounds.push((from, i));
                from = i + 1;
            }
            bounds.push((from, first.text.len()));
            return Ok(Some(match problem {
                Some(reason) => Err(BadRow { line: start, reason, raw: first.text }),
                None => Ok(CsvRow { line: start, raw: first.text, data: None, bounds }),
            }));
        }

        let mut data = String::with_capacity(first.text.len());
        let mut bounds = Vec::new();
        let mut from = 0;
        let mut state = State::FieldStart;
        let mut raw = first.text;
        let mut end = first.end;
        let mut scanned = 0;
        loop {
            for c in raw[scanned..].chars() {
                state = match (state, c) {
                    (State::FieldStart, '"') => State::Quoted,
                    (State::FieldStart | State::Unquoted | State::QuoteInQuoted, ',') => {
                        bounds.push((from, data.len()));
                        from = data.len();
                        State::FieldStart
                    }
                    (State::Unquoted, '"') if self.quotes == Quotes::Strict => {
                        problem.get_or_insert_with(|| {
                            "a quote inside an unquoted field: enclose the whole field in quotes and \
                             double the quote"
                                .to_string()
                        });
                        data.push('"');
                        State::Unquoted
                    }
                    (State::FieldStart | State::Unquoted, c) => {
                        data.push(c);
                        State::Unquoted
                    }
                    (State::Quoted, '"') => State::QuoteInQuoted,
                    (State::Quoted, c) => {
                        data.push(c);
                        State::Quoted
                    }
                    (State::QuoteInQuoted, '"') => {
                        data.push('"');
                        State::Quoted
                    }
                    (State::QuoteInQuoted, c) => {
                        problem.get_or_insert_with(|| {
                            format!(
                                "`{c}` after a closing quote on line {}: a quote inside a quoted field \
                                 is doubled (\"\")",
                                self.line
                            )
                        });
                        data.push(c);
                        State::Unquoted
                    }
                };
            }
            if state != State::Quoted {
                bounds.push((from, data.len()));
                return Ok(Some(match problem {
                    Some(reason) => Err(BadRow { line: start, reason, raw }),
                    None => Ok(CsvRow { line: start, raw, data: Some(data), bounds }),
                }));
            }
            // A line break inside quotes is data: the record goes on on the next line.
            let Some(next) = self.next_line()? else {
                return Ok(Some(Err(BadRow {
                    line: start,
                    reason: format!(
                        "a quoted field opened on line {start} is never closed (the rest of the file \
                         is part of it)"
                    ),
                    raw,
                })));
            };
            if !next.utf8 {
                problem.get_or_insert_with(|| format!("line {} is not UTF-8 text", self.line));
            }
            data.push_str(end);
            raw.push_str(end);
            scanned = raw.len();
            raw.push_str(&next.text);
            end = next.end;
        }
    }
}

/// The rows of a CSV file with a header, as column → value maps (values as written). For
/// tests and tools reading reference data; an error names the file and line.
pub fn rows(path: &Path) -> anyhow::Result<Vec<BTreeMap<String, String>>> {
    let file =
        std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut csv = CsvReader::new(std::io::BufReader::new(file), Quotes::Lenient);
    let mut next = || -> anyhow::Result<Option<CsvRow>> {
        match csv.next_row().map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))? {
            None => Ok(None),
            Some(Ok(row)) => Ok(Some(row)),
            Some(Err(bad)) => anyhow::bail!("{}:{}: {}", path.display(), bad.line, bad.reason),
        }
    };
    let Some(header) = next()? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    while let Some(row) = next()? {
        if row.len() != header.len() {
            anyhow::bail!(
                "{}:{}: {} fields, but the header has {}",
                path.display(),
                row.line,
                row.len(),
                header.len()
            );
        }
        out.push(
            (0..header.len()).map(|i| (header.field(i).to_string(), row.field(i).to_string())).collect(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, quotes: Quotes) -> Vec<Result<CsvRow, BadRow>> {
        let mut r = CsvReader::new(text.as_bytes(), quotes);
        let mut out = Vec::new();
        while let Some(row) = r.next_row().unwrap() {
            out.push(row);
        }
        out
    }

    #[test]
    fn quotes_commas_and_line_breaks() {
        let text =
            "\u{feff}A,B,C\r\n1,\"x, y\",\"say \"\"hi\"\"\"\r\n\n2,\"two\nlines\",\r\n3,5\" tall,\"\"\n";
        let got = read(text, Quotes::Lenient);
        let ok: Vec<&CsvRow> = got.iter().map(|r| r.as_ref().unwrap()).collect();
        assert_eq!(ok[0].fields(), ["A", "B", "C"]);
        assert_eq!(ok[1].fields(), ["1", "x, y", "say \"hi\""]);
        assert_eq!((ok[2].line, ok[2].fields()), (4, vec!["2", "two\nlines", ""]));
        assert_eq!(ok[2].raw, "2,\"two\nlines\",");
        assert_eq!((ok[3].line, ok[3].fields()), (6, vec!["3", "5\" tall", ""]));
    }

    #[test]
    fn a_crlf_inside_quotes_is_kept_and_later_lines_stay_right() {
        let got = read("a,b\r\nc,\"d\"\r\n\"e\r\nf\",\r\ng,h\n", Quotes::Strict);
        let ok: Vec<(usize, Vec<&str>)> =
            got.iter().map(|r| r.as_ref().unwrap()).map(|r| (r.line, r.fields())).collect();
        assert_eq!(
            ok,
            [(1, vec!["a", "b"]), (2, vec!["c", "d"]), (3, vec!["e\r\nf", ""]), (5, vec!["g", "h"])]
        );
    }

    #[test]
    fn broken_quoting_is_reported_with_its_line() {
        let got = read("A,B\n\"x\"y,1\n2,3\n\"open,4\n5,6\n", Quotes::Lenient);
        assert_eq!(got[0].as_ref().unwrap().fields(), ["A", "B"]);
        assert!(got[1].as_ref().unwrap_err().reason.contains("after a closing quote"));
        assert_eq!(got[2].as_ref().unwrap().fields(), ["2", "3"]);
        let open = got[3].as_ref().unwrap_err();
        assert_eq!(open.line, 4);
        assert!(open.reason.contains("never closed"), "{}", open.reason);
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_an_error_only_when_strict() {
        let strict = read("a,4\"5\nb,6\n", Quotes::Strict);
        assert!(strict[0].as_ref().unwrap_err().reason.contains("quote inside an unquoted field"));
        assert_eq!(strict[1].as_ref().unwrap().fields(), ["b", "6"]);
        assert_eq!(read("a,4\"5\n", Quotes::Lenient)[0].as_ref().unwrap().fields(), ["a", "4\"5"]);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_a_bad_row() {
        let mut r = CsvReader::new(&b"A,B\n\xff,1\n2,3\n"[..], Quotes::Lenient);
        assert!(r.next_row().unwrap().unwrap().is_ok());
        let bad = r.next_row().unwrap().unwrap().unwrap_err();
        assert_eq!(bad.line, 2);
        assert!(bad.reason.contains("not UTF-8"));
        assert!(r.next_row().unwrap().unwrap().is_ok());
    }

    #[test]
    fn rows_are_maps_by_header_and_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("dm.csv");
        std::fs::write(&good, "USUBJID,ARM\nX-1,\"Placebo, oral\"\n").unwrap();
        let got = rows(&good).unwrap();
        assert_eq!(got[0]["ARM"], "Placebo, oral");
        let bad = dir.path().join("ae.csv");
        std::fs::write(&bad, "A,B\n1\n").unwrap();
        let e = rows(&bad).unwrap_err().to_string();
        assert!(e.ends_with("ae.csv:2: 1 fields, but the header has 2"), "{e}");
    }
}
