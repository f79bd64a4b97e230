//! The DSMB report as one self-contained HTML page: inline CSS and SVG, no script, no
//! external resource, printable (A4, tables and figures kept whole, headers repeated).
//!
//! Every piece of data text goes through minijinja's HTML auto-escaping (the template
//! name ends in `.html`); only the charts are inserted raw, and plotters escapes the text
//! inside them.

use super::sections::document;
use super::{DsmbInput, DsmbSummary};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior};

/// The template name; its `.html` suffix switches on HTML auto-escaping.
const TEMPLATE_NAME: &str = "dsmb.html";
const TEMPLATE: &str = include_str!("dsmb.html");

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the DSMB report template failed: {0}")]
    Template(#[from] minijinja::Error),
    /// typst could not lay out or write the PDF (only with the `pdf` feature).
    #[error("the DSMB report PDF failed: {0}")]
    Pdf(String),
}

/// Render the DSMB report (open or closed, as the input says). Same input, same string.
///
/// The template is built in and covered by tests, so it does not fail in practice; if
/// it ever does, the page returned says so in place of the report (use
/// [`try_render_html`] to get the error instead).
pub fn render_html(input: &DsmbInput, summary: &DsmbSummary) -> String {
    try_render_html(input, summary).unwrap_or_else(|e| {
        let marking =
            if input.closed { super::document::CLOSED_MARKING } else { super::document::OPEN_MARKING };
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>DSMB report failed</title></head><body><h1>{marking}</h1>\
             <p>The DSMB report could not be rendered: {}</p></body></html>\n",
            escape(&e.to_string())
        )
    })
}

/// Render the DSMB report, or say why the template failed.
pub fn try_render_html(input: &DsmbInput, summary: &DsmbSummary) -> Result<String, ReportError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).keep_trailing_newline(true).build()?,
    );
    env.add_template(TEMPLATE_NAME, TEMPLATE)?;
    let view = document(input, summary).view(inline_svg);
    let page = env.get_template(TEMPLATE_NAME)?.render(Value::from(Serde(&view)))?;
    Ok(page)
}

/// An SVG document made fit for inlining: HTML gives inline `<svg>` its namespace, so the
/// `xmlns` attribute (the page's only URL) goes.
fn inline_svg(svg: &str) -> String {
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

/// Minimal escaping for the failure page (the report itself is escaped by minijinja).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_page_escapes_too() {
        assert_eq!(escape("<a href='x'>&\""), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;");
    }

    #[test]
    fn inline_svg_loses_only_its_namespace() {
        let svg = r#"<svg width="1" height="1" viewBox="0 0 1 1" xmlns="http://www.w3.org/2000/svg"><text>x</text></svg>"#;
        assert_eq!(inline_svg(svg), r#"<svg width="1" height="1" viewBox="0 0 1 1"><text>x</text></svg>"#);
    }
}
