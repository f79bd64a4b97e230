//! Sources: the drop folder and the record formats — native JSON/NDJSON, the native CSV
//! variant, FHIR R4 and CDISC SDTM. Every format ends at `Record::from_json`, the one door.

pub mod csv;
pub mod fhir;
mod folder;
pub mod native;
pub mod sdtm;

pub use folder::{DropFolder, FileOutcome};

use std::path::Path;

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
pub fn parse(format: Format, source: &str, text: &str) -> native::Parsed {
    match format {
        Format::Native | Format::Sdtm => native::parse(source, text),
        Format::Csv => csv::parse(source, text),
        Format::Fhir => fhir::parse(source, text),
    }
}
