//! One input read as a stream of bounded batches, and stored batch by batch.
//!
//! A [`Reader`] hides how an input is read: an SDTM folder file by file, NDJSON line by
//! line (a bulk export is never held whole), the other formats parsed at once and handed
//! out in slices. [`store_all`] stores each batch in its own transaction, so by the time it
//! returns every record read is committed — the caller may then move the file away or
//! answer the request.

use super::{native, sdtm, Batch, Format};
use crate::store::{BatchOutcome, NewRecord, Rejected, Store};
use anyhow::Context;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Records and refusals per batch: one store transaction each, and the memory bound of a
/// streamed input.
pub const BATCH: usize = 2_000;

/// An input being read.
pub struct Reader {
    format: Format,
    inner: Inner,
}

enum Inner {
    Sdtm(Box<sdtm::SdtmReader>),
    /// NDJSON, one object per line.
    Lines {
        source: String,
        input: BufReader<File>,
        line: usize,
        buf: Vec<u8>,
    },
    /// Parsed whole: the records in slices, then the refusals.
    Parsed {
        records: std::vec::IntoIter<NewRecord>,
        rejected: Vec<Rejected>,
    },
}

impl Reader {
    /// Opens a file, or a folder of SDTM domains. `source` names the input in records and
    /// refusals; without a `format` it is guessed (see [`Format::detect`]) from the path and
    /// the first 4 KiB — a bulk file is not read whole just to look at it.
    ///
    /// Errors are the environment's (a file that cannot be opened, a folder without any SDTM
    /// domain file); what is wrong inside the input comes back as refusals in the batches.
    pub fn open(path: &Path, source: &str, format: Option<Format>) -> anyhow::Result<Self> {
        let cannot_read = || format!("cannot read {}", path.display());
        let format = match format {
            Some(f) => f,
            None if path.is_dir() => Format::Sdtm,
            None => {
                let mut head = Vec::with_capacity(4096);
                open_regular(path)
                    .and_then(|f| f.take(4096).read_to_end(&mut head))
                    .with_context(cannot_read)?;
                Format::detect(path, &String::from_utf8_lossy(&head))
            }
        };
        let inner = match format {
            Format::Sdtm => Inner::Sdtm(Box::new(sdtm::SdtmReader::open(path)?)),
            Format::Native if is_ndjson(path).with_context(cannot_read)? => Inner::Lines {
                source: source.to_string(),
                input: BufReader::new(open_regular(path).with_context(cannot_read)?),
                line: 0,
                buf: Vec::new(),
            },
            _ => {
                let file = open_regular(path).with_context(cannot_read)?;
                let size = file.metadata().with_context(cannot_read)?.len();
                if size > MAX_WHOLE_FILE {
                    // Parsed whole, a file takes many times its size in memory: refused
                    // with the reason (and filed away), never a daemon that dies on it.
                    return Ok(Self {
                        format,
                        inner: parsed(Batch {
                            records: Vec::new(),
                            rejected: vec![Rejected {
                                source: source.to_string(),
                                line: 0,
                                field: "file".into(),
                                reason: format!(
                                    "{} MiB of {format:?} is read whole; at most {} MiB: split it, or send NDJSON (streamed)",
                                    size / (1 << 20),
                                    MAX_WHOLE_FILE >> 20
                                ),
                                raw: String::new(),
                            }],
                        }),
                    });
                }
                let mut bytes = Vec::new();
                file.take(MAX_WHOLE_FILE + 1).read_to_end(&mut bytes).with_context(cannot_read)?;
                match String::from_utf8(bytes) {
                    Ok(text) => parsed(super::parse(format, source, &text)),
                    Err(e) => parsed(Batch {
                        records: Vec::new(),
                        rejected: vec![Rejected {
                            source: source.to_string(),
                            line: 1,
                            field: "file".into(),
                            reason: format!("not UTF-8 text ({})", e.utf8_error()),
                            raw: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                        }],
                    }),
                }
            }
        };
        Ok(Self { format, inner })
    }

    /// The format read (given or guessed).
    pub fn format(&self) -> Format {
        self.format
    }

    /// For an SDTM folder: counts per domain, skips and notes so far (complete once
    /// [`Reader::next_batch`] has returned `None`).
    pub fn sdtm_summary(&self) -> Option<&sdtm::ImportSummary> {
        match &self.inner {
            Inner::Sdtm(r) => Some(r.summary()),
            _ => None,
        }
    }

    /// The next batch of at most [`BATCH`] records and refusals (the refusals of an input
    /// parsed whole come in one last batch); `None` at the end.
    pub fn next_batch(&mut self) -> anyhow::Result<Option<Batch>> {
        match &mut self.inner {
            Inner::Sdtm(r) => r.next_batch(BATCH),
            Inner::Lines { source, input, line, buf } => {
                let mut batch = Batch::default();
                while batch.len() < BATCH {
                    buf.clear();
                    if input.read_until(b'\n', buf).with_context(|| format!("cannot read {source}"))? == 0 {
                        break;
                    }
                    *line += 1;
                    let text = without_line_end(buf, *line == 1);
                    match std::str::from_utf8(text) {
                        Ok(text) => native::parse_line(&mut batch, source, *line, text),
                        Err(e) => batch.rejected.push(Rejected {
                            source: source.clone(),
                            line: *line,
                            field: "record".into(),
                            reason: format!("not UTF-8 text ({e})"),
                            raw: String::from_utf8_lossy(text).into_owned(),
                        }),
                    }
                }
                Ok((!batch.is_empty()).then_some(batch))
            }
            Inner::Parsed { records, rejected } => {
                let records: Vec<NewRecord> = records.take(BATCH).collect();
                let batch = if records.is_empty() {
                    Batch { records, rejected: std::mem::take(rejected) }
                } else {
                    Batch { records, rejected: Vec::new() }
                };
                Ok((!batch.is_empty()).then_some(batch))
            }
        }
    }
}

fn parsed(batch: Batch) -> Inner {
    Inner::Parsed { records: batch.records.into_iter(), rejected: batch.rejected }
}

/// The line without `\n` / `\r\n`, and without a byte order mark on the first line.
fn without_line_end(bytes: &[u8], first: bool) -> &[u8] {
    let mut b = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    b = b.strip_suffix(b"\r").unwrap_or(b);
    if first {
        b = b.strip_prefix("\u{feff}".as_bytes()).unwrap_or(b);
    }
    b
}

/// NDJSON: the first non-empty line is a complete JSON object on its own.
/// The largest input parsed whole (a JSON array, a FHIR Bundle or NDJSON, a CSV): it takes
/// many times its size in memory. Native NDJSON and SDTM folders stream and have no limit.
pub const MAX_WHOLE_FILE: u64 = 32 << 20;

/// Opens an input file without following a symbolic link, and checks that what was opened
/// is a regular file: a link swapped in after the inbox was scanned is refused, not read.
fn open_regular(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

fn is_ndjson(path: &Path) -> std::io::Result<bool> {
    let mut input = BufReader::new(open_regular(path)?);
    let mut buf = Vec::new();
    let mut first = true;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(false);
        }
        let line = String::from_utf8_lossy(without_line_end(&buf, first)).into_owned();
        first = false;
        if line.trim().is_empty() {
            continue;
        }
        return Ok(
            line.trim_start().starts_with('{') && serde_json::from_str::<serde_json::Value>(&line).is_ok()
        );
    }
}

/// What storing one input did.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Records read (stored, already stored, or refused by the store as conflicts).
    pub records: usize,
    pub stored: usize,
    pub duplicates: usize,
    /// Lines that could not be read, and records refused by the store (a `record_id`
    /// already stored with other content).
    pub quarantined: usize,
    /// The subjects with newly stored records.
    pub subjects: Vec<String>,
}

/// Reads `reader` to the end, storing each batch in its own transaction, and calls `each`
/// with every batch and what the store did with it (the refusals are the batch's `rejected`
/// followed by the outcome's `conflicts`). Returns once everything read is committed.
pub async fn store_all(
    store: &Store,
    reader: &mut Reader,
    each: impl FnMut(&Batch, &BatchOutcome),
) -> anyhow::Result<Ingested> {
    store_all_between(store, reader, each, &mut Nothing).await
}

/// Work to run between the batches of a file (see [`store_all_between`]).
pub trait Between {
    fn run(&mut self) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

/// Nothing between batches.
pub struct Nothing;

impl Between for Nothing {
    async fn run(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// [`store_all`], running `between` after each committed batch but the last: the drop
/// folder takes small files there, so a bulk file does not hold up a critical record.
pub async fn store_all_between(
    store: &Store,
    reader: &mut Reader,
    mut each: impl FnMut(&Batch, &BatchOutcome),
    between: &mut impl Between,
) -> anyhow::Result<Ingested> {
    let mut total = Ingested::default();
    let mut subjects = BTreeSet::new();
    let mut first = true;
    while let Some(batch) = reader.next_batch()? {
        if !first {
            between.run().await?;
        }
        first = false;
        let outcome = store.store_batch(&batch.records, &batch.rejected).await?;
        total.records += batch.records.len();
        total.stored += outcome.stored;
        total.duplicates += outcome.duplicates;
        total.quarantined += batch.rejected.len() + outcome.conflicts.len();
        subjects.extend(outcome.subjects.iter().cloned());
        each(&batch, &outcome);
    }
    total.subjects = subjects.into_iter().collect();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(mut r: Reader) -> Vec<Batch> {
        let mut out = Vec::new();
        while let Some(b) = r.next_batch().unwrap() {
            out.push(b);
        }
        out
    }

    #[test]
    fn a_file_too_large_to_parse_whole_is_refused_with_its_reason_and_ndjson_streams() {
        let dir = tempfile::tempdir().unwrap();
        // A JSON array just over the limit: refused at once, without being read.
        let big = dir.path().join("big.json");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_WHOLE_FILE + 1).unwrap();
        let batches = drain(Reader::open(&big, "big.json", Some(Format::Native)).unwrap());
        let refused = &batches[0].rejected[0];
        assert_eq!(refused.field, "file");
        assert!(refused.reason.contains("at most 32 MiB"), "{}", refused.reason);
    }

    #[test]
    fn a_symbolic_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret.ndjson");
        std::fs::write(&secret, "{\"subject\":\"S-1\",\"arm\":\"MSC\"}\n").unwrap();
        let link = dir.path().join("swapped.ndjson");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let e = Reader::open(&link, "swapped.ndjson", None).err().expect("a link is refused");
        assert!(format!("{e:#}").contains("cannot read"), "{e:#}");
        assert!(Reader::open(&link, "swapped.ndjson", Some(Format::Native)).is_err());
        assert!(Reader::open(&secret, "secret.ndjson", None).is_ok());
    }

    #[test]
    fn ndjson_streams_in_bounded_batches_with_file_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bulk.ndjson");
        let mut text = String::from("\u{feff}");
        for i in 0..(BATCH + 10) {
            if i == BATCH + 3 {
                text.push_str("{\"subject\":\"\"}\r\n");
            } else {
                text.push_str(&format!("{{\"subject\":\"S-{i}\",\"date\":\"2019-02-26\"}}\n"));
            }
        }
        std::fs::write(&path, text).unwrap();
        let reader = Reader::open(&path, "bulk.ndjson", None).unwrap();
        assert_eq!(reader.format(), Format::Native);
        let batches = drain(reader);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].len(), BATCH);
        assert_eq!((batches[1].records.len(), batches[1].rejected.len()), (9, 1));
        let bad = &batches[1].rejected[0];
        assert_eq!(
            (bad.source.as_str(), bad.line, bad.field.as_str()),
            ("bulk.ndjson", BATCH + 4, "subject")
        );
        assert_eq!(batches[1].records[0].line, BATCH + 1);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_refused_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.ndjson");
        std::fs::write(&path, b"{\"subject\":\"A\"}\n{\"subject\":\"\xff\"}\n{\"subject\":\"B\"}\n").unwrap();
        let batches = drain(Reader::open(&path, "v.ndjson", None).unwrap());
        assert_eq!(batches[0].records.len(), 2);
        assert_eq!((batches[0].rejected[0].line, batches[0].rejected[0].field.as_str()), (2, "record"));
    }

    #[test]
    fn a_parsed_input_gives_its_records_in_slices_then_its_refusals() {
        let mut text = String::from("[\n");
        for i in 0..(BATCH + 1) {
            text.push_str(&format!("{{\"subject\":\"S-{i}\"}},\n"));
        }
        text.push_str("{\"subject\":\"\"}\n]");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("array.json");
        std::fs::write(&path, &text).unwrap();
        let batches = drain(Reader::open(&path, "array.json", Some(Format::Native)).unwrap());
        assert_eq!(
            batches.iter().map(|b| (b.records.len(), b.rejected.len())).collect::<Vec<_>>(),
            [(BATCH, 0), (1, 0), (0, 1)]
        );
        assert_eq!(batches[2].rejected[0].line, BATCH + 3);
    }

    #[test]
    fn a_file_that_is_not_utf8_is_one_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        std::fs::write(&path, b"[\xff]").unwrap();
        let batches = drain(Reader::open(&path, "v.json", None).unwrap());
        assert_eq!(batches[0].rejected[0].field, "file");
    }

    #[test]
    fn a_folder_is_read_as_sdtm() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dm.csv"), "USUBJID,SITEID\nX-1,701\n").unwrap();
        let mut reader = Reader::open(dir.path(), "export", None).unwrap();
        assert_eq!(reader.format(), Format::Sdtm);
        let batch = reader.next_batch().unwrap().unwrap();
        assert_eq!((batch.records.len(), batch.records[0].source.as_str()), (1, "dm.csv"));
        assert!(reader.next_batch().unwrap().is_none());
        assert_eq!(reader.sdtm_summary().unwrap().records(), 1);
    }
}
