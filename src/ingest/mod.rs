//! Sources: the one way records come in. An input — a file, an SDTM folder or a request
//! body — in one of the formats (native JSON/NDJSON, the native CSV variant, FHIR R4, CDISC
//! SDTM) is read as a stream of bounded batches ([`Reader`]), and each batch is stored
//! through the store ([`store_all`]). The command line, the drop folder and the HTTP API all
//! come in this way. Every format ends at `Record::from_json`, the one door.

pub mod csv;
pub mod fhir;
mod folder;
pub mod native;
pub mod sdtm;
mod source;

pub use folder::{Between, DropFolder, FileOutcome, Nothing, Settle, Settling};
pub use source::{store_all, Ingested, Reader, BATCH};

use crate::store::{NewRecord, Rejected};
use std::path::Path;

/// Records read in one step, and the lines (rows, elements) that could not be read, each
/// with its file, line and field.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<NewRecord>,
    pub rejected: Vec<Rejected>,
}

impl Batch {
    /// Records and refusals together: what a batch bound counts.
    pub fn len(&self) -> usize {
        self.records.len() + self.rejected.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.rejected.is_empty()
    }
}

/// The format of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Native visit records: one JSON object, an array, or NDJSON.
    Native,
    /// The native CSV variant, one observation per row.
    Csv,
    /// FHIR R4: a Bundle, a single resource, or NDJSON of resources.
    Fhir,
    /// A folder of CDISC SDTM domains as CSV (dm.csv, ae.csv, …).
    Sdtm,
}

impl Format {
    /// Guesses from the path and the start of the content: a folder is SDTM, `.csv` is the
    /// native CSV variant, JSON that names a `resourceType` is FHIR, the rest native.
    pub fn detect(path: &Path, text: &str) -> Self {
        if path.is_dir() {
            return Self::Sdtm;
        }
        let name = path.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".csv") {
            return Self::Csv;
        }
        let head: String = text.chars().take(4096).collect();
        if head.contains("\"resourceType\"") {
            Self::Fhir
        } else {
            Self::Native
        }
    }
}

/// Parses one file's text in the given format (not SDTM, which is a folder).
pub fn parse(format: Format, source: &str, text: &str) -> Batch {
    match format {
        Format::Native | Format::Sdtm => native::parse(source, text),
        Format::Csv => csv::parse(source, text),
        Format::Fhir => fhir::parse(source, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_detection_reads_the_path_then_the_head() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Format::detect(dir.path(), ""), Format::Sdtm);
        assert_eq!(Format::detect(Path::new("labs.CSV"), "{}"), Format::Csv);
        assert_eq!(Format::detect(Path::new("b.json"), r#"{"resourceType":"Bundle"}"#), Format::Fhir);
        assert_eq!(Format::detect(Path::new("v.ndjson"), r#"{"subject":"A"}"#), Format::Native);
    }
}
