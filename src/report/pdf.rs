//! The DSMB report as a PDF, typeset by typst (cargo feature `pdf`; see the module comment
//! of `report` for why typst and what it costs).
//!
//! The typst template (`dsmb.typ`) reads the same document view as the HTML page, as JSON
//! in `sys.inputs`, so no data text is ever parsed as typst markup. Fonts are the ones
//! embedded in typst-assets (Libertinus Serif, DejaVu Sans Mono): no system fonts, the
//! same glyphs on every machine. The charts are the same SVG documents, embedded as
//! vector images.
//!
//! Reproducibility: the document date is the data cut-off (set in the template) and the
//! PDF identifier is derived from the snapshot hash, the cut-off and the marking, so the
//! same input gives the same bytes; no creation timestamp is written.

use super::sections::document;
use super::{DsmbInput, DsmbSummary, ReportError};
use typst::diag::SourceDiagnostic;
use typst::foundations::{Bytes, Dict, Smart, Value};
use typst_as_lib::TypstEngine;
use typst_pdf::PdfOptions;

const TEMPLATE: &str = include_str!("dsmb.typ");

/// Typeset the report (open or closed, as the input says) as PDF bytes.
pub fn render_pdf(input: &DsmbInput, summary: &DsmbSummary) -> Result<Vec<u8>, ReportError> {
    let doc = document(input, summary);
    let view = doc.view(str::to_string);
    let json = serde_json::to_vec(&view).map_err(|e| ReportError::Pdf(format!("document view: {e}")))?;
    let mut inputs = Dict::new();
    inputs.insert("doc".into(), Value::Bytes(Bytes::new(json)));
    let engine = TypstEngine::builder().main_file(TEMPLATE).fonts(typst_assets::fonts()).build();
    let paged = engine.compile_with_input(inputs).output.map_err(|e| match e {
        typst_as_lib::TypstAsLibError::TypstSource(d) => ReportError::Pdf(describe(&d)),
        other => ReportError::Pdf(other.to_string()),
    })?;
    let options = PdfOptions {
        ident: Smart::Custom(format!("vigil-dsmb/{}/{}/{}", doc.marking, doc.cutoff, doc.snapshot_hash)),
        creator: Smart::Custom(Some("vigil".to_string())),
        timestamp: None,
        ..PdfOptions::default()
    };
    typst_pdf::pdf(&paged, &options).map_err(|diagnostics| ReportError::Pdf(describe(&diagnostics)))
}

/// The messages of typst's diagnostics, one per line.
fn describe(diagnostics: &[SourceDiagnostic]) -> String {
    diagnostics.iter().map(|d| d.message.to_string()).collect::<Vec<_>>().join("; ")
}
