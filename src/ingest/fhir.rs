//! FHIR R4 (4.0.1) input: AdverseEvent, Observation (vital signs and lab results) and
//! MedicationAdministration, from a Bundle, a single resource, or bulk-data NDJSON (one
//! resource a line, as `$export` writes it).
//!
//! Each resource becomes one native record, written as native JSON and read through
//! `Record::from_json`, so FHIR input passes exactly the checks the native format does.
//! The record id is `fhir:<type>:<id>`, with `/_history/<versionId>` appended when the
//! resource carries `meta.versionId`: a re-sent resource is then a duplicate, and an updated
//! one is a new record (for an AdverseEvent, a new version of the same event) instead of a
//! conflict.
//!
//! What is read, and why some things are not:
//!
//! - **Subjects.** The subject id is the logical id of the Patient that `subject.reference`
//!   points to (`Patient/example` → `example`; a `urn:uuid:` reference is resolved through
//!   the Bundle's `fullUrl`s). The server feeding vigil is expected to use the trial's
//!   pseudonymous subject number as the Patient id. `Patient.identifier` is deliberately not
//!   used: in practice it is a medical record number, which is identifying. Nothing else of
//!   a Patient is read — no name, birth date, address, telecom — and no `display` text of a
//!   reference is copied (the HL7 glucose example puts a patient name there). A resource
//!   without a Patient subject is rejected: vigil never guesses whose data it is.
//! - **AdverseEvent** (R4 only: R5 restructured the resource, and an R5-shaped one is
//!   rejected with that reason). FHIR `severity` (mild, moderate, severe) is not a CTCAE
//!   grade; it is mapped to grade 1, 2, 3 because that is what CTCAE's own words for those
//!   grades say, and a grade extension (`…/ae-grade` of the HL7 AE clinical research IGs,
//!   `…/ctcae-grade` of the CTCAE IG) wins when present. `actuality: potential` (a near miss)
//!   is skipped. An outcome `fatal` adds the seriousness criterion death. A grade from
//!   `severity` is marked `grade_source: severity` ("severity (mapped)" in reports).
//!   Causality is the study product's (see `relatedness`): the only suspect, else the one
//!   recognised as the product the input's MedicationAdministrations give, else (none
//!   recognised) the strongest over all. WHO-UMC "conditional" and "unassessable" count as
//!   `possible` (team decision), so an event nobody could assess still counts as related in
//!   stopping rules, and keep their name in `causality_reported`. `recordedDate` is not taken as awareness: the site may have
//!   known earlier, and a late clock start would make an SAE deadline too late.
//! - **Observation**: LOINC-coded vital signs (also the components of a blood-pressure
//!   panel) become vitals; any other numeric result a lab. A result with a comparator
//!   (`<0.1`) is rejected, not rounded into an exact value. Results without a value
//!   (`dataAbsentReason`), non-numeric results, and `entered-in-error`/`cancelled` ones are
//!   skipped and counted. Units are read as their UCUM code when there is one
//!   (`10*9/L`, `mm[Hg]`), which is what the lab rules compare.
//! - **MedicationAdministration** becomes a dose; `not-done` and `entered-in-error` ones are
//!   skipped.
//! - Every other resource type (DiagnosticReport, Organization, …) is skipped. A
//!   DiagnosticReport still lends its effective time to the Observations it lists.
//! - A resource with a `modifierExtension` or `implicitRules` is rejected: FHIR forbids
//!   processing what such a resource means without understanding them.

use super::native::Parsed;
use crate::model::{Record, Relatedness};
use crate::store::{NewRecord, Rejected};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

/// A resource that was read but holds nothing vigil records, and why. Not an error, so not
/// quarantined; kept so that a caller can say how much of a file was passed over.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub line: usize,
    /// `Type/id` of the resource.
    pub resource: String,
    pub reason: String,
}

/// Records, rejected resources, and skipped resources of one FHIR file.
#[derive(Debug, Default)]
pub struct Read {
    pub parsed: Parsed,
    pub skipped: Vec<Skipped>,
}

/// Parses FHIR JSON `text`, read from a file called `source`.
pub fn parse(source: &str, text: &str) -> Parsed {
    read(source, text).parsed
}

/// Like `parse`, and also lists the resources skipped.
pub fn read(source: &str, text: &str) -> Read {
    let mut out = Read::default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut items = Vec::new();
    let reject_file = |line: usize, field: &str, reason: String, raw: &str| Rejected {
        source: source.into(),
        line,
        field: field.into(),
        reason,
        raw: raw.trim().to_string(),
    };
    match serde_json::from_str::<&RawValue>(text) {
        Ok(raw) => collect(source, text, raw, None, 0, &mut items, &mut out),
        Err(e) => {
            let first = text.lines().find(|l| !l.trim().is_empty());
            if first.is_some_and(|l| serde_json::from_str::<&RawValue>(l).is_ok()) {
                // Bulk data: one resource a line.
                for (i, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<&RawValue>(line) {
                        Ok(raw) => collect(source, text, raw, None, 0, &mut items, &mut out),
                        Err(e) => out.parsed.rejected.push(reject_file(
                            i + 1,
                            "resource",
                            format!("not JSON: {}", strip_position(&e)),
                            line,
                        )),
                    }
                }
            } else {
                out.parsed.rejected.push(reject_file(
                    e.line(),
                    "file",
                    format!("not FHIR JSON: {}", strip_position(&e)),
                    text,
                ));
            }
        }
    }
    let ctx = Context::new(&items);
    for (idx, item) in items.iter().enumerate() {
        one(source, &ctx, idx, item, &mut out);
    }
    out
}

fn strip_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    msg.split(" at line ").next().unwrap_or(&msg).to_string()
}

/// One resource found in the file, with where it starts.
struct Item {
    line: usize,
    full_url: Option<String>,
    res: Value,
}

#[derive(Deserialize)]
struct BundleShape<'a> {
    #[serde(borrow, default)]
    entry: Vec<EntryShape<'a>>,
}

#[derive(Deserialize)]
struct EntryShape<'a> {
    #[serde(rename = "fullUrl")]
    full_url: Option<String>,
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
}

fn line_of(text: &str, raw: &RawValue) -> usize {
    let offset = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize).min(text.len());
    text.as_bytes()[..offset].iter().filter(|b| **b == b'\n').count() + 1
}

/// Flattens Bundles (also nested ones) into the list of resources, keeping line numbers.
fn collect<'a>(
    source: &str,
    text: &'a str,
    raw: &'a RawValue,
    full_url: Option<String>,
    depth: usize,
    items: &mut Vec<Item>,
    out: &mut Read,
) {
    let line = line_of(text, raw);
    let reject = |field: &str, reason: String| Rejected {
        source: source.into(),
        line,
        field: field.into(),
        reason,
        raw: raw.get().to_string(),
    };
    let res: Value = match serde_json::from_str(raw.get()) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            out.parsed.rejected.push(reject("resource", "not a JSON object".into()));
            return;
        }
        Err(e) => {
            out.parsed.rejected.push(reject("resource", format!("not JSON: {}", strip_position(&e))));
            return;
        }
    };
    if kind_of(&res) != "Bundle" {
        items.push(Item { line, full_url, res });
        return;
    }
    if depth >= 4 {
        out.parsed.rejected.push(reject("Bundle", "Bundles nested more than 4 deep".into()));
        return;
    }
    match serde_json::from_str::<BundleShape>(raw.get()) {
        Ok(bundle) => {
            for entry in bundle.entry {
                match entry.resource {
                    Some(r) => collect(source, text, r, entry.full_url, depth + 1, items, out),
                    None => out.skipped.push(Skipped {
                        line,
                        resource: entry.full_url.unwrap_or_else(|| "Bundle.entry".into()),
                        reason: "an entry without a resource (a DELETE or a bare response) is not read"
                            .into(),
                    }),
                }
            }
        }
        Err(e) => out.parsed.rejected.push(reject("Bundle.entry", strip_position(&e))),
    }
}

fn kind_of(res: &Value) -> &str {
    res.get("resourceType").and_then(Value::as_str).unwrap_or_default()
}

fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// What the whole file says about each resource: how references resolve, and the time a
/// DiagnosticReport gives the Observations it lists.
struct Context<'a> {
    items: &'a [Item],
    by_url: HashMap<&'a str, usize>,
    by_key: HashMap<(&'a str, &'a str), usize>,
    report_time: HashMap<usize, String>,
}

impl<'a> Context<'a> {
    fn new(items: &'a [Item]) -> Self {
        let mut ctx =
            Self { items, by_url: HashMap::new(), by_key: HashMap::new(), report_time: HashMap::new() };
        for (i, item) in items.iter().enumerate() {
            if let Some(u) = item.full_url.as_deref() {
                ctx.by_url.entry(u).or_insert(i);
            }
            if let Some(id) = str_at(&item.res, "id") {
                ctx.by_key.entry((kind_of(&item.res), id)).or_insert(i);
            }
        }
        for item in items.iter().filter(|it| kind_of(&it.res) == "DiagnosticReport") {
            let Some(time) = effective(&item.res) else { continue };
            for result in array(item.res.get("result")) {
                if let Some(i) = str_at(result, "reference").and_then(|r| ctx.resolve(r)) {
                    ctx.report_time.entry(i).or_insert_with(|| time.clone());
                }
            }
        }
        ctx
    }

    /// The resource in this file a reference points to: by `fullUrl`, else by type and id.
    fn resolve(&self, reference: &str) -> Option<usize> {
        if let Some(i) = self.by_url.get(reference) {
            return Some(*i);
        }
        let (kind, id) = type_and_id(reference)?;
        self.by_key.get(&(kind, id)).copied()
    }

    /// The pseudonymous subject id: the logical id of the Patient the subject refers to.
    fn subject(&self, res: &Value, kind: &str) -> Result<String, Stop> {
        let field = format!("{kind}.subject");
        let subject = res
            .get("subject")
            .ok_or_else(|| reject(&field, "missing: vigil does not guess whose data this is"))?;
        let reference = str_at(subject, "reference").ok_or_else(|| {
            reject(&field, "no reference: an identifier or a display does not name a trial subject")
        })?;
        if reference.starts_with('#') {
            return Err(reject(&field, "a contained Patient is not read: refer to Patient/<id>"));
        }
        if let Some(i) = self.resolve(reference) {
            let target = &self.items[i].res;
            return match (kind_of(target), str_at(target, "id")) {
                ("Patient", Some(id)) => Ok(id.to_string()),
                ("Patient", None) => Err(reject(
                    &field,
                    "the Patient it refers to has no id, and only the Patient id is used as the subject id",
                )),
                (other, _) => Err(reject(&field, format!("`{reference}` is a {other}, not a Patient"))),
            };
        }
        match type_and_id(reference) {
            Some(("Patient", id)) => Ok(id.to_string()),
            Some((other, _)) => Err(reject(&field, format!("`{reference}` is a {other}, not a Patient"))),
            None => Err(reject(&field, format!("`{reference}` is not a Patient reference (Patient/<id>)"))),
        }
    }
}

/// `Type/id` at the end of a relative or absolute reference, without `/_history/…`.
fn type_and_id(reference: &str) -> Option<(&str, &str)> {
    let path = reference.split("/_history/").next().unwrap_or(reference);
    let mut parts = path.rsplit('/');
    let id = parts.next().filter(|s| !s.is_empty())?;
    let kind = parts.next().filter(|s| s.starts_with(|c: char| c.is_ascii_uppercase()))?;
    Some((kind, id))
}

/// Why a resource gives no record.
enum Stop {
    Skip(String),
    Reject { field: String, reason: String },
}

fn reject(field: &str, reason: impl Into<String>) -> Stop {
    Stop::Reject { field: field.to_string(), reason: reason.into() }
}

fn one(source: &str, ctx: &Context, idx: usize, item: &Item, out: &mut Read) {
    let kind = kind_of(&item.res);
    let name =
        format!("{}/{}", if kind.is_empty() { "?" } else { kind }, str_at(&item.res, "id").unwrap_or("?"));
    let rejected = |field: String, reason: String| Rejected {
        source: source.into(),
        line: item.line,
        field,
        reason: format!("{name}: {reason}"),
        raw: scrubbed(&item.res),
    };
    for c in array(item.res.get("contained")) {
        let inner = kind_of(c);
        if matches!(inner, "AdverseEvent" | "Observation" | "MedicationAdministration") {
            out.parsed.rejected.push(rejected(
                format!("{kind}.contained"),
                format!("a contained {inner} is not read; send it as a Bundle entry"),
            ));
        }
    }
    let result = match kind {
        "AdverseEvent" | "Observation" | "MedicationAdministration" => {
            guard(kind, &item.res).and_then(|()| match kind {
                "AdverseEvent" => adverse_event(ctx, &item.res),
                "Observation" => observation(ctx, idx, &item.res),
                _ => medication_administration(ctx, &item.res),
            })
        }
        "Patient" => Err(Stop::Skip("a Patient is used only for its id; none of its data is kept".into())),
        "" => Err(reject("resourceType", "missing: not a FHIR resource")),
        other => Err(Stop::Skip(format!("{other} is not a resource vigil reads"))),
    };
    match result {
        Ok(body) => match Record::from_json(&body.to_string()) {
            Ok(record) => {
                out.parsed.records.push(NewRecord { source: source.into(), line: item.line, body, record })
            }
            Err(e) => out.parsed.rejected.push(rejected(fhir_field(kind, &e.field), e.message)),
        },
        Err(Stop::Skip(reason)) => out.skipped.push(Skipped { line: item.line, resource: name, reason }),
        Err(Stop::Reject { field, reason }) => out.parsed.rejected.push(rejected(field, reason)),
    }
}

/// The resource as quarantined: without its narrative and reference displays, which are
/// where names of people turn up.
fn scrubbed(res: &Value) -> String {
    fn scrub(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.contains_key("reference") {
                    m.remove("display");
                }
                for x in m.values_mut() {
                    scrub(x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(scrub),
            _ => {}
        }
    }
    let mut v = res.clone();
    if let Value::Object(m) = &mut v {
        m.remove("text");
    }
    scrub(&mut v);
    v.to_string()
}

/// Refuses what FHIR says must not be processed without being understood.
fn guard(kind: &str, res: &Value) -> Result<(), Stop> {
    fn has_modifier(v: &Value) -> bool {
        match v {
            Value::Object(m) => {
                m.contains_key("modifierExtension")
                    || m.iter().any(|(k, x)| k != "contained" && has_modifier(x))
            }
            Value::Array(a) => a.iter().any(has_modifier),
            _ => false,
        }
    }
    if has_modifier(res) {
        return Err(reject(
            &format!("{kind}.modifierExtension"),
            "a modifier extension changes what the resource means, and vigil does not know it",
        ));
    }
    if res.get("implicitRules").is_some() {
        return Err(reject(
            &format!("{kind}.implicitRules"),
            "the resource must be read under rules vigil does not know",
        ));
    }
    Ok(())
}

/// The native field of a refusal, named as the FHIR element it came from.
fn fhir_field(kind: &str, native: &str) -> String {
    let leaf = native.rsplit('.').next().unwrap_or(native);
    let leaf = leaf.split('[').next().unwrap_or(leaf);
    let element = match (kind, leaf) {
        (_, "subject") => "subject",
        ("AdverseEvent", "term") => "event",
        ("AdverseEvent", "onset") => "date",
        ("AdverseEvent", "grade") => "severity",
        ("AdverseEvent", "serious" | "seriousness") => "seriousness",
        ("AdverseEvent", "related") => "suspectEntity.causality",
        ("AdverseEvent", "outcome") => "outcome",
        ("AdverseEvent", "id") => "id",
        ("Observation", "time") => "effective[x]",
        ("Observation", "test") => "code",
        ("Observation", "low" | "high") => "referenceRange",
        ("Observation", _) => "value[x]",
        ("MedicationAdministration", "start" | "end") => "effective[x]",
        ("MedicationAdministration", "amount" | "unit") => "dosage.dose",
        ("MedicationAdministration", "product") => "medication[x]",
        _ => "",
    };
    if element.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{element}")
    }
}

/// `fhir:<type>:<id>`, plus the version when there is one (see the module comment).
fn record_id(kind: &str, res: &Value) -> Option<String> {
    let id = str_at(res, "id")?;
    Some(match res.get("meta").and_then(|m| str_at(m, "versionId")) {
        Some(v) => format!("fhir:{kind}:{id}/_history/{v}"),
        None => format!("fhir:{kind}:{id}"),
    })
}

fn base(subject: String, kind: &str, res: &Value) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("subject".into(), Value::String(subject));
    if let Some(id) = record_id(kind, res) {
        body.insert("record_id".into(), Value::String(id));
    }
    body
}

fn put(map: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        map.insert(key.into(), v);
    }
}

/// Text without the invisible characters real exports carry (an HL7 example has a
/// zero-width space inside a LOINC name), with runs of white space made single.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}'))
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn codings(concept: Option<&Value>) -> &[Value] {
    array(concept.and_then(|c| c.get("coding")))
}

/// A CodeableConcept's words: its text, else the first coding display, else (when allowed)
/// the first code.
fn label(concept: Option<&Value>, or_code: bool) -> Option<String> {
    let c = concept?;
    str_at(c, "text")
        .or_else(|| codings(Some(c)).iter().find_map(|x| str_at(x, "display")))
        .or_else(|| if or_code { codings(Some(c)).iter().find_map(|x| str_at(x, "code")) } else { None })
        .map(clean)
        .filter(|s| !s.is_empty())
}

/// Every code and display of a concept, and its text: the words to match against.
fn words(concept: Option<&Value>) -> Vec<&str> {
    let mut w: Vec<&str> =
        codings(concept).iter().flat_map(|c| [str_at(c, "code"), str_at(c, "display")]).flatten().collect();
    if let Some(t) = concept.and_then(|c| str_at(c, "text")) {
        w.push(t);
    }
    w
}

/// effective[x] as one time: dateTime, instant, or the start of a period.
fn effective(res: &Value) -> Option<String> {
    str_at(res, "effectiveDateTime")
        .or_else(|| str_at(res, "effectiveInstant"))
        .or_else(|| res.get("effectivePeriod").and_then(|p| str_at(p, "start")))
        .map(str::to_string)
}

/// The UCUM code when the quantity is coded in UCUM (what rules compare), else its unit.
fn unit_of(q: &Value) -> Option<String> {
    let ucum = str_at(q, "system") == Some(UCUM);
    match (ucum, str_at(q, "code"), str_at(q, "unit")) {
        (true, Some(code), _) => Some(code.to_string()),
        (_, _, Some(unit)) => Some(unit.to_string()),
        (_, code, None) => code.map(str::to_string),
    }
}

fn norm_unit(u: &str) -> String {
    u.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase()
}

// ---------------------------------------------------------------------------------------
// AdverseEvent

/// Elements of AdverseEvent that R5 (and the R6 drafts) have and R4 has not.
const R5_ONLY: &[&str] = &[
    "status",
    "code",
    "occurrenceDateTime",
    "occurrencePeriod",
    "occurrenceTiming",
    "causeDateTime",
    "causePeriod",
    "effectDateTime",
    "effectPeriod",
    "resultingEffect",
    "participant",
    "expectedInResearchStudy",
    "contributingFactor",
    "preventiveAction",
    "mitigatingAction",
    "supportingInfo",
    "note",
];

fn adverse_event(ctx: &Context, res: &Value) -> Result<Value, Stop> {
    let r5 = R5_ONLY
        .iter()
        .copied()
        .find(|k| res.get(*k).is_some())
        .or_else(|| res.get("outcome").filter(|o| o.is_array()).map(|_| "outcome"));
    if let Some(k) = r5 {
        return Err(reject(
            &format!("AdverseEvent.{k}"),
            format!(
                "`{k}` is FHIR R5: vigil reads R4 (4.0.1) AdverseEvent, which R5 restructured \
                 (event → code, date → occurrence[x], no severity); send R4 or the native format"
            ),
        ));
    }
    match str_at(res, "actuality") {
        None | Some("actual") => {}
        Some("potential") => {
            return Err(Stop::Skip("actuality `potential`: a near miss, not an event the subject had".into()))
        }
        Some(other) => {
            return Err(reject("AdverseEvent.actuality", format!("`{other}`: R4 knows actual and potential")))
        }
    }
    let subject = ctx.subject(res, "AdverseEvent")?;
    let term = label(res.get("event"), false)
        .ok_or_else(|| reject("AdverseEvent.event", "missing: no text or coding display names the event"))?;
    let (serious, mut criteria) =
        seriousness(res.get("seriousness")).map_err(|e| reject("AdverseEvent.seriousness", e))?;
    let (grade, grade_source) = match grade_extension(res).map_err(|e| reject("AdverseEvent.extension", e))? {
        Some(g) => (Some(g), None),
        None => {
            let g = severity(res.get("severity")).map_err(|e| reject("AdverseEvent.severity", e))?;
            (g, g.map(|_| "severity"))
        }
    };
    let outcome = outcome(res.get("outcome"));
    if outcome.as_deref() == Some("fatal") {
        // A non-serious judgement stays as given: the event is then seriousness-inconsistent,
        // a query for the site (not refused, which would hide a death).
        if !criteria.contains(&"death") {
            criteria.push("death");
        }
    }
    let (related, causality_reported) =
        relatedness(ctx, res).map_err(|e| reject("AdverseEvent.suspectEntity.causality", e))?;

    let mut ae = Map::new();
    put(&mut ae, "id", str_at(res, "id").map(|s| json!(s)));
    ae.insert("term".into(), json!(term));
    put(&mut ae, "onset", str_at(res, "date").or_else(|| str_at(res, "detected")).map(|s| json!(s)));
    put(&mut ae, "grade", grade.map(|g| json!(g)));
    put(&mut ae, "grade_source", grade_source.map(|g| json!(g)));
    put(&mut ae, "serious", serious.or((!criteria.is_empty()).then_some(true)).map(|s| json!(s)));
    if !criteria.is_empty() {
        ae.insert("seriousness".into(), json!(criteria));
    }
    put(&mut ae, "related", related.map(|r| json!(r.label())));
    put(&mut ae, "causality_reported", causality_reported.map(|c| json!(c)));
    put(&mut ae, "outcome", outcome.map(|o| json!(o)));
    let mut body = base(subject, "AdverseEvent", res);
    body.insert("adverse_events".into(), json!([ae]));
    Ok(Value::Object(body))
}

/// Serious or not, and the ICH E2A criteria, from the R4 seriousness codes.
fn seriousness(concept: Option<&Value>) -> Result<(Option<bool>, Vec<&'static str>), String> {
    let words = words(concept);
    let mut serious = None;
    let mut criteria = Vec::new();
    let mut understood = false;
    for w in &words {
        let k = w.to_ascii_lowercase().replace([' ', '_'], "-");
        let (s, c) = match k.as_str() {
            "non-serious" | "nonserious" => (false, None),
            "serious" => (true, None),
            "seriousresultsindeath" | "results-in-death" => (true, Some("death")),
            "seriousislifethreatening" | "is-life-threatening" => (true, Some("life_threatening")),
            "seriousresultsinhospitalization" => (true, Some("hospitalization")),
            "seriousresultsindisability" => (true, Some("disability")),
            "seriousisbirthdefect" => (true, Some("congenital_anomaly")),
            "seriousrequirespreventimpairment" => (true, Some("important_medical_event")),
            _ => continue,
        };
        understood = true;
        if serious.is_some_and(|x| x != s) {
            return Err("says both serious and non-serious".into());
        }
        serious = Some(s);
        if let Some(c) = c {
            if !criteria.contains(&c) {
                criteria.push(c);
            }
        }
    }
    if !understood && !words.is_empty() {
        return Err(format!(
            "`{}` is not an R4 seriousness code (Serious, Non-serious, SeriousResultsInDeath, …)",
            words[0]
        ));
    }
    Ok((serious, criteria))
}

/// FHIR severity is not CTCAE; mild/moderate/severe are CTCAE's words for grades 1 to 3.
fn severity(concept: Option<&Value>) -> Result<Option<f64>, String> {
    let words = words(concept);
    for w in &words {
        match w.to_ascii_lowercase().as_str() {
            "mild" => return Ok(Some(1.0)),
            "moderate" => return Ok(Some(2.0)),
            "severe" => return Ok(Some(3.0)),
            _ => {}
        }
    }
    match words.first() {
        None => Ok(None),
        Some(w) => Err(format!("`{w}` is not an R4 severity (mild, moderate, severe)")),
    }
}

/// A grade extension on the AdverseEvent or on its severity, when present.
fn grade_extension(res: &Value) -> Result<Option<f64>, String> {
    let exts =
        array(res.get("extension")).iter().chain(array(res.get("severity").and_then(|s| s.get("extension"))));
    let Some(ext) = exts
        .into_iter()
        .find(|e| str_at(e, "url").is_some_and(|u| u.ends_with("/ae-grade") || u.ends_with("/ctcae-grade")))
    else {
        return Ok(None);
    };
    let mut found: Vec<&str> = Vec::new();
    for key in ["valueInteger", "valuePositiveInt", "valueDecimal"] {
        if let Some(n) = ext.get(key).and_then(Value::as_f64) {
            return Ok(Some(n));
        }
    }
    for key in ["valueString", "valueCode"] {
        found.extend(str_at(ext, key));
    }
    if let Some(c) = ext.get("valueCoding") {
        found.extend([str_at(c, "code"), str_at(c, "display")].into_iter().flatten());
    }
    found.extend(words(ext.get("valueCodeableConcept")));
    found.iter().find_map(|w| grade_word(w)).map(Some).ok_or_else(|| {
        format!("the grade extension holds no grade vigil can read ({})", found.first().unwrap_or(&"empty"))
    })
}

/// `3`, `Grade 3`, `Grade 3 Severe Adverse Event`, or an NCI Thesaurus grade code.
fn grade_word(w: &str) -> Option<f64> {
    let w = w.trim();
    if let Ok(n) = w.parse::<f64>() {
        return Some(n);
    }
    match w {
        "C41338" => return Some(1.0),
        "C41339" => return Some(2.0),
        "C41340" => return Some(3.0),
        "C41337" => return Some(4.0),
        _ => {}
    }
    let lower = w.to_ascii_lowercase();
    let rest = lower.strip_prefix("grade")?.trim_start();
    rest.chars().next().and_then(|c| c.to_digit(10)).map(f64::from)
}

/// The R4 outcome in the words native records use.
fn outcome(concept: Option<&Value>) -> Option<String> {
    let words = words(concept);
    for w in &words {
        let o = match w.to_ascii_lowercase().as_str() {
            "resolved" => "recovered",
            "recovering" => "recovering",
            "ongoing" => "not_recovered",
            "resolvedwithsequelae" => "recovered_with_sequelae",
            "fatal" => "fatal",
            "unknown" => "unknown",
            _ => continue,
        };
        return Some(o.to_string());
    }
    label(concept, true)
}

/// Causality to the study product, and the source's own category when it was read as
/// ours (WHO-UMC "Conditional"/"Unassessable" as possible).
///
/// The study product is what vigil records as the study's doses: MedicationAdministration.
/// With one suspect entity, it is that one. With several, it is the suspect whose
/// `instance` is a MedicationAdministration of this input, or the Medication one of them
/// administers (same reference, or same name as a contained or listed Medication or a
/// display); its causality is the strongest of that suspect's assessments. When no suspect
/// is recognised (the doses arrive in another file), the strongest over all suspects is
/// taken: for safety, doubt counts as related.
fn relatedness(ctx: &Context, res: &Value) -> Result<(Option<Relatedness>, Option<String>), String> {
    let suspects = array(res.get("suspectEntity"));
    let study: Vec<&Value> = if suspects.len() == 1 {
        suspects.iter().collect()
    } else {
        let products = study_products(ctx);
        suspects.iter().filter(|e| is_study_product(ctx, res, e, &products)).collect()
    };
    let chosen: Vec<&Value> = if study.is_empty() { suspects.iter().collect() } else { study };
    let mut best: Option<(Relatedness, Option<String>)> = None;
    for entity in chosen {
        for c in array(entity.get("causality")) {
            let mut found = Vec::new();
            if let Some(a) = c.get("assessment") {
                let words = words(Some(a));
                let r = words.iter().find_map(|w| who_umc(w)).ok_or_else(|| {
                    format!("`{}` is not a causality vigil knows", words.first().unwrap_or(&"empty"))
                })?;
                found.push(r);
            }
            if let Some(p) = str_at(c, "productRelatedness") {
                let r = Relatedness::parse(p)
                    .map_err(|_| format!("productRelatedness `{p}` is not a causality vigil knows"))?;
                found.push((r, None));
            }
            for f in found {
                if best.as_ref().is_none_or(|b| f.0 > b.0) {
                    best = Some(f);
                }
            }
        }
    }
    Ok(best.map_or((None, None), |(r, orig)| (Some(r), orig)))
}

/// The study product as this input names it: the medication references and names of its
/// MedicationAdministrations.
struct StudyProducts {
    references: Vec<String>,
    names: Vec<String>,
}

fn study_products(ctx: &Context) -> StudyProducts {
    let mut p = StudyProducts { references: Vec::new(), names: Vec::new() };
    for item in ctx.items.iter().filter(|it| kind_of(&it.res) == "MedicationAdministration") {
        let res = &item.res;
        if let Some(name) = label(res.get("medicationCodeableConcept"), true) {
            p.names.push(crate::model::name_key(&name));
        }
        if let Some(m) = res.get("medicationReference") {
            if let Some(r) = str_at(m, "reference") {
                if !r.starts_with('#') {
                    p.references.push(r.to_string());
                }
                if let Some(name) = medication(ctx, res, r) {
                    p.names.push(crate::model::name_key(&name));
                }
            }
            if let Some(d) = str_at(m, "display") {
                p.names.push(crate::model::name_key(d));
            }
        }
    }
    p.names.retain(|n| !n.is_empty());
    p
}

fn is_study_product(ctx: &Context, res: &Value, entity: &Value, p: &StudyProducts) -> bool {
    let Some(instance) = entity.get("instance") else { return false };
    let reference = str_at(instance, "reference");
    if let Some(r) = reference {
        if ctx.resolve(r).is_some_and(|i| kind_of(&ctx.items[i].res) == "MedicationAdministration")
            || p.references.iter().any(|x| x == r)
        {
            return true;
        }
    }
    let name =
        reference.and_then(|r| medication(ctx, res, r)).or_else(|| str_at(instance, "display").map(clean));
    name.is_some_and(|n| p.names.contains(&crate::model::name_key(&n)))
}

/// WHO-UMC categories (the R4 example value set); ones nobody could assess count as
/// possible (team decision), and keep their own name.
fn who_umc(w: &str) -> Option<(Relatedness, Option<String>)> {
    let k = w.to_ascii_lowercase().replace([' ', '/', '_'], "-");
    Some(match k.as_str() {
        "certain" => (Relatedness::Definite, None),
        "probably-likely" | "probable-likely" => (Relatedness::Probable, None),
        "conditional-classified"
        | "conditional-unclassified"
        | "unassessable-unclassifiable"
        | "conditional"
        | "unassessable" => (Relatedness::Possible, Some(w.to_string())),
        _ => return Relatedness::parse(w).ok().map(|r| (r, None)),
    })
}

// ---------------------------------------------------------------------------------------
// Observation

/// LOINC codes of the vital signs vigil stores, and the native field of each.
fn vital_field(concept: Option<&Value>) -> Option<&'static str> {
    codings(concept).iter().filter(|c| str_at(c, "system") == Some(LOINC)).find_map(|c| {
        Some(match str_at(c, "code")? {
            "8480-6" => "systolic_bp",
            "8462-4" => "diastolic_bp",
            "8867-4" => "heart_rate",
            "8310-5" => "temperature_c",
            "59408-5" | "2708-6" => "spo2",
            "9279-1" => "respiratory_rate",
            _ => return None,
        })
    })
}

fn observation(ctx: &Context, idx: usize, res: &Value) -> Result<Value, Stop> {
    if let Some(s @ ("entered-in-error" | "cancelled")) = str_at(res, "status") {
        return Err(Stop::Skip(format!("status `{s}`: not a result")));
    }
    let subject = ctx.subject(res, "Observation")?;
    let time = effective(res)
        .or_else(|| ctx.report_time.get(&idx).cloned())
        .or_else(|| str_at(res, "issued").map(str::to_string));
    let absent = |part: &Value| {
        part.get("dataAbsentReason").map(|r| label(Some(r), true).unwrap_or_else(|| "no reason given".into()))
    };

    // Vital signs: the Observation itself, and the components of a panel.
    let mut vital = Map::new();
    let mut vital_absent = None;
    for part in std::iter::once(res).chain(array(res.get("component"))) {
        let Some(field) = vital_field(part.get("code")) else { continue };
        match part.get("valueQuantity") {
            Some(q) => {
                vital.insert(field.into(), json!(vital_value(field, q)?));
            }
            None => vital_absent = Some(absent(part).unwrap_or_else(|| "no numeric value".into())),
        }
    }
    if !vital.is_empty() {
        put(&mut vital, "time", time.map(Value::String));
        let mut body = base(subject, "Observation", res);
        body.insert("vitals".into(), json!([vital]));
        return Ok(Value::Object(body));
    }
    if let Some(why) = vital_absent {
        return Err(Stop::Skip(format!("vital sign without a value ({why})")));
    }

    // Anything else with a number is a lab result.
    let Some(q) = res.get("valueQuantity") else {
        if let Some(why) = absent(res) {
            return Err(Stop::Skip(format!("no value: dataAbsentReason `{why}`")));
        }
        let value_kind = res
            .as_object()
            .and_then(|m| m.keys().find(|k| k.starts_with("value")))
            .map_or("no value".to_string(), |k| format!("{k}, not a number"));
        return Err(Stop::Skip(format!("only numeric results are read ({value_kind})")));
    };
    let value = number(q, "Observation.valueQuantity")?;
    let test = label(res.get("code"), true).ok_or_else(|| reject("Observation.code", "missing"))?;
    let unit = unit_of(q);
    let (low, high) = reference_range(res, unit.as_deref())?;
    let mut lab = Map::new();
    lab.insert("test".into(), json!(test));
    lab.insert("value".into(), json!(value));
    put(&mut lab, "unit", unit.map(Value::String));
    put(&mut lab, "low", low.map(|x| json!(x)));
    put(&mut lab, "high", high.map(|x| json!(x)));
    put(&mut lab, "time", time.map(Value::String));
    let mut body = base(subject, "Observation", res);
    body.insert("labs".into(), json!([lab]));
    Ok(Value::Object(body))
}

/// A Quantity's exact value; `<`, `>` and friends are refused, not rounded to a number.
fn number(q: &Value, field: &str) -> Result<f64, Stop> {
    if let Some(c) = str_at(q, "comparator") {
        return Err(reject(field, format!("`{c}` value: not an exact result")));
    }
    q.get("value").and_then(Value::as_f64).ok_or_else(|| reject(field, "no numeric value"))
}

/// A vital sign in vigil's unit. Fahrenheit is converted; any other foreign unit refused.
fn vital_value(field: &str, q: &Value) -> Result<f64, Stop> {
    let v = number(q, "Observation.valueQuantity")?;
    let units: Vec<String> =
        [str_at(q, "code"), str_at(q, "unit")].into_iter().flatten().map(norm_unit).collect();
    if units.is_empty() {
        return Ok(v);
    }
    let is = |set: &[&str]| units.iter().any(|u| set.contains(&u.as_str()));
    let ok = match field {
        "systolic_bp" | "diastolic_bp" => is(&["mm[hg]", "mmhg"]),
        "heart_rate" | "respiratory_rate" => {
            is(&["/min", "1/min", "{beats}/min", "{breaths}/min", "beats/min", "breaths/min", "bpm"])
        }
        "spo2" => is(&["%"]),
        "temperature_c" => {
            if is(&["[degf]", "degf", "°f", "f"]) {
                return Ok(((v - 32.0) * 5.0 / 9.0 * 100.0).round() / 100.0);
            }
            is(&["cel", "°c", "degc", "c"])
        }
        _ => false,
    };
    if ok {
        Ok(v)
    } else {
        Err(reject("Observation.valueQuantity", format!("`{}` is not a unit of {field}", units[0])))
    }
}

/// The normal range: the one range given, or the one without `appliesTo`/`age` among
/// several. Ambiguous or differently-united ranges are refused rather than guessed.
fn reference_range(res: &Value, unit: Option<&str>) -> Result<(Option<f64>, Option<f64>), Stop> {
    let field = "Observation.referenceRange";
    let normal: Vec<&Value> = array(res.get("referenceRange"))
        .iter()
        .filter(|r| {
            let words = words(r.get("type"));
            words.is_empty() || words.iter().any(|w| w.eq_ignore_ascii_case("normal"))
        })
        .collect();
    let range = match normal.as_slice() {
        [] => return Ok((None, None)),
        [one] => *one,
        many => {
            let plain: Vec<&&Value> =
                many.iter().filter(|r| r.get("appliesTo").is_none() && r.get("age").is_none()).collect();
            match plain.as_slice() {
                [one] => **one,
                _ => return Err(reject(field, "several normal ranges; vigil cannot tell which applies")),
            }
        }
    };
    let bound = |key: &str| -> Result<Option<f64>, Stop> {
        let Some(q) = range.get(key) else { return Ok(None) };
        if let (Some(u), Some(b)) = (unit, unit_of(q)) {
            if norm_unit(u) != norm_unit(&b) {
                return Err(reject(field, format!("the {key} limit is in `{b}`, the value in `{u}`")));
            }
        }
        q.get("value")
            .and_then(Value::as_f64)
            .map(Some)
            .ok_or_else(|| reject(field, format!("{key} has no value")))
    };
    Ok((bound("low")?, bound("high")?))
}

// ---------------------------------------------------------------------------------------
// MedicationAdministration

fn medication_administration(ctx: &Context, res: &Value) -> Result<Value, Stop> {
    if let Some(s @ ("not-done" | "entered-in-error")) = str_at(res, "status") {
        return Err(Stop::Skip(format!("status `{s}`: no dose was given")));
    }
    let subject = ctx.subject(res, "MedicationAdministration")?;
    let (start, end) = match (str_at(res, "effectiveDateTime"), res.get("effectivePeriod")) {
        (Some(t), _) => (Some(t), None),
        (None, Some(p)) => (str_at(p, "start"), str_at(p, "end")),
        (None, None) => (None, None),
    };
    let start = start.ok_or_else(|| {
        reject(
            "MedicationAdministration.effective[x]",
            "missing: a dose needs its start (R5's occurence[x] is not read)",
        )
    })?;
    let product = label(res.get("medicationCodeableConcept"), false).or_else(|| {
        let reference = res.get("medicationReference")?;
        let target = str_at(reference, "reference").and_then(|r| medication(ctx, res, r));
        target.or_else(|| str_at(reference, "display").map(clean))
    });
    let dose = res.get("dosage").and_then(|d| d.get("dose"));
    let mut d = Map::new();
    d.insert("start".into(), json!(start));
    put(&mut d, "end", end.map(|e| json!(e)));
    put(&mut d, "product", product.map(Value::String));
    if let Some(q) = dose {
        d.insert("amount".into(), json!(number(q, "MedicationAdministration.dosage.dose")?));
        put(&mut d, "unit", unit_of(q).map(Value::String));
    }
    let mut body = base(subject, "MedicationAdministration", res);
    body.insert("doses".into(), json!([d]));
    Ok(Value::Object(body))
}

/// The name of a Medication that a reference points to: contained (`#id`) or in the file.
fn medication(ctx: &Context, res: &Value, reference: &str) -> Option<String> {
    let target = match reference.strip_prefix('#') {
        Some(id) => array(res.get("contained")).iter().find(|c| str_at(c, "id") == Some(id))?,
        None => &ctx.items[ctx.resolve(reference)?].res,
    };
    (kind_of(target) == "Medication").then(|| label(target.get("code"), false)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> String {
        let path = format!("{}/tests/data/fhir-examples/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn ok(read: &Read) {
        let why: Vec<String> =
            read.parsed.rejected.iter().map(|r| format!("{}: {}: {}", r.line, r.field, r.reason)).collect();
        assert!(why.is_empty(), "{why:?}");
    }

    /// Every byte vigil keeps: the stored bodies and the checked records.
    fn kept(read: &Read) -> String {
        read.parsed
            .records
            .iter()
            .map(|r| format!("{}\n{}", r.body, serde_json::to_string(&r.record).unwrap_or_default()))
            .collect()
    }

    fn out_of_range(read: &Read) -> usize {
        let labs = read.parsed.records.iter().flat_map(|r| &r.record.labs);
        labs.filter(|l| l.low.is_some_and(|lo| l.value < lo) || l.high.is_some_and(|hi| l.value > hi)).count()
    }

    #[test]
    fn the_adverse_event_example_imports() {
        let read = super::read("ae.json", &example("adverseevent-example.json"));
        ok(&read);
        assert_eq!(read.parsed.records.len(), 1);
        let r = &read.parsed.records[0];
        assert_eq!(r.record.subject.as_str(), "example");
        assert_eq!(r.record.record_id.as_deref(), Some("fhir:AdverseEvent:example"));
        let ae = &r.record.adverse_events[0];
        assert!(!ae.serious);
        assert!(ae.seriousness.is_empty());
        assert_eq!(ae.grade.map(|g| g.value()), Some(1));
        assert_eq!(ae.onset.as_ref().map(|t| t.raw()), Some("2017-01-29T12:34:56+00:00"));
        assert!(ae.term.to_lowercase().contains("rash"), "{}", ae.term);
        assert_eq!(ae.id.as_deref(), Some("example"));
        // The suspect entity carries no causality assessment: none is invented.
        assert_eq!(ae.related, None);
    }

    #[test]
    fn the_blood_pressure_panel_gives_both_pressures() {
        let read = super::read("bp.json", &example("observation-example-bloodpressure.json"));
        ok(&read);
        let r = &read.parsed.records[0];
        assert_eq!(r.record.subject.as_str(), "example");
        let v = &r.record.vitals[0];
        assert_eq!((v.systolic_bp, v.diastolic_bp), (Some(107.0), Some(60.0)));
        assert_eq!(v.time.as_ref().map(|t| t.raw()), Some("2012-09-17"));
    }

    #[test]
    fn the_glucose_example_is_a_high_lab_timed_by_its_period() {
        let read = super::read("glucose.json", &example("observation-example-f001-glucose.json"));
        ok(&read);
        let r = &read.parsed.records[0];
        assert_eq!(r.record.subject.as_str(), "f001");
        let lab = &r.record.labs[0];
        assert_eq!((lab.value, lab.unit.as_deref()), (6.3, Some("mmol/L")));
        assert_eq!((lab.low, lab.high), (Some(3.1), Some(6.2)));
        assert_eq!(lab.time.as_ref().map(|t| t.raw()), Some("2013-04-02T09:30:10+01:00"));
        assert_eq!(out_of_range(&read), 1);
        // The subject reference's display is a person's name; it is not kept.
        assert!(!kept(&read).contains("Heuvel"));
    }

    #[test]
    fn the_lipid_bundle_gives_four_labs_three_out_of_range() {
        let read = super::read("lipids.json", &example("diagnosticreport-example-lipids.json"));
        ok(&read);
        let recs = &read.parsed.records;
        assert_eq!(recs.len(), 4);
        assert!(recs.iter().all(|r| r.record.subject.as_str() == "pat2"));
        assert_eq!(out_of_range(&read), 3);
        // No time of their own: the DiagnosticReport's.
        assert!(recs
            .iter()
            .all(|r| r.record.labs[0].time.as_ref().map(|t| t.raw()) == Some("2011-03-04T08:30:00+11:00")));
        assert!(!kept(&read).contains('\u{200b}'));
        assert_eq!(read.skipped.len(), 1);
        assert!(read.skipped[0].resource.starts_with("DiagnosticReport/"));
    }

    #[test]
    fn the_blood_count_bundle_gives_seventeen_labs_seven_out_of_range() {
        let read = super::read("cbc.json", &example("diagnosticreport-example.json"));
        ok(&read);
        assert_eq!(read.parsed.records.len(), 17);
        // r17 (basophils above 0.21) has no interpretation code, but its range says so.
        assert_eq!(out_of_range(&read), 7);
        let r17 = read
            .parsed
            .records
            .iter()
            .find(|r| r.record.record_id.as_deref() == Some("fhir:Observation:r17"));
        let lab = r17.map(|r| &r.record.labs[0]);
        assert_eq!(
            lab.map(|l| (l.value, l.high, l.unit.as_deref())),
            Some((0.92, Some(0.21), Some("10*9/L")))
        );
        let without_range = read.parsed.records.iter().filter(|r| r.record.labs[0].high.is_none()).count();
        assert_eq!(without_range, 5);
    }

    #[test]
    fn a_bundle_of_patient_and_adverse_event_leaks_no_personal_data() {
        let patient: Value = serde_json::from_str(&example("patient-example.json")).unwrap_or_default();
        let ae: Value = serde_json::from_str(&example("adverseevent-example.json")).unwrap_or_default();
        let bundle = json!({
            "resourceType": "Bundle", "type": "collection",
            "entry": [
                {"fullUrl": "http://example.org/fhir/Patient/example", "resource": patient},
                {"fullUrl": "http://example.org/fhir/AdverseEvent/example", "resource": ae},
            ]
        });
        let text = serde_json::to_string_pretty(&bundle).unwrap_or_default();
        assert!(text.contains("Chalmers") && text.contains("1974-12-25"));
        let read = super::read("bundle.json", &text);
        ok(&read);
        assert_eq!(read.parsed.records.len(), 1);
        assert_eq!(read.parsed.records[0].record.subject.as_str(), "example");
        // Pretty-printed: the AdverseEvent starts on its own line, well below the Patient.
        assert!(read.parsed.records[0].line > 100, "{}", read.parsed.records[0].line);
        let kept = kept(&read);
        for personal in ["Chalmers", "1974-12-25", "Peter", "Windsor", "Erewhon", "5555", "12345", "male"] {
            assert!(!kept.contains(personal), "{personal} leaked: {kept}");
        }
        assert_eq!(
            read.skipped.iter().map(|s| s.resource.as_str()).collect::<Vec<_>>(),
            vec!["Patient/example"]
        );
    }

    fn ae_with(extra: Value) -> String {
        let mut ae: Value = serde_json::from_str(&example("adverseevent-example.json")).unwrap_or_default();
        if let (Value::Object(m), Value::Object(x)) = (&mut ae, extra) {
            for (k, v) in x {
                if v.is_null() {
                    m.remove(&k);
                } else {
                    m.insert(k, v);
                }
            }
        }
        ae.to_string()
    }

    #[test]
    fn an_r5_adverse_event_is_refused_with_its_reason() {
        let text = ae_with(json!({
            "status": "completed", "event": null, "date": null, "severity": null,
            "code": {"text": "Rash"}, "occurrenceDateTime": "2023-01-01",
        }));
        let read = super::read("r5.json", &text);
        assert!(read.parsed.records.is_empty());
        let r = &read.parsed.rejected[0];
        assert_eq!(r.field, "AdverseEvent.status");
        assert!(r.reason.contains("R5") && r.reason.contains("R4"), "{}", r.reason);
    }

    #[test]
    fn grade_extension_seriousness_causality_and_outcome() {
        let text = ae_with(json!({
            "extension": [{"url": "http://hl7.org/fhir/uv/ae-research-backport-ig/StructureDefinition/ae-grade",
                           "valueCodeableConcept": {"coding": [{"code": "C41337", "display": "Grade 4 Life Threatening Adverse Event"}]}}],
            "seriousness": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
                                        "code": "SeriousResultsInHospitalization"}]},
            "suspectEntity": [
                {"instance": {"reference": "Medication/example"},
                 "causality": [{"assessment": {"coding": [{"code": "Unlikely"}]}}]},
                {"instance": {"reference": "Procedure/infusion"},
                 "causality": [{"assessment": {"coding": [{"code": "Probably-Likely"}]}}]},
            ],
            "outcome": {"coding": [{"code": "fatal"}]},
        }));
        let read = super::read("ae.json", &text);
        ok(&read);
        let ae = &read.parsed.records[0].record.adverse_events[0];
        // The extension's grade 4 wins over severity `mild`.
        assert_eq!(ae.grade.map(|g| g.value()), Some(4));
        assert!(ae.serious);
        let criteria: Vec<&str> = ae.seriousness.iter().map(|s| s.label()).collect();
        assert_eq!(criteria, vec!["hospitalization", "death"]);
        assert_eq!(ae.related.map(|r| r.label()), Some("probable"));
        assert_eq!(ae.outcome.as_deref(), Some("fatal"));
    }

    /// A Bundle with the study product's administration and an AE with two suspects.
    fn bundle_with_suspects(suspects: Value) -> String {
        let mut ae: Value = serde_json::from_str(&ae_with(json!({"suspectEntity": suspects}))).unwrap();
        ae["subject"] = json!({"reference": "Patient/KS-101"});
        json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Medication", "id": "msc", "code": {"text": "Autologous MSC"}}},
            {"resource": {"resourceType": "MedicationAdministration", "id": "dose-1", "status": "completed",
                          "subject": {"reference": "Patient/KS-101"}, "effectiveDateTime": "2019-02-26T09:10:00+01:00",
                          "medicationReference": {"reference": "Medication/msc"}}},
            {"resource": ae},
        ]})
        .to_string()
    }

    #[test]
    fn causality_is_the_study_products_not_the_strongest_suspects() {
        let unlikely = json!([{"assessment": {"coding": [{"code": "Unlikely"}]}}]);
        let probable = json!([{"assessment": {"coding": [{"code": "Probably-Likely"}]}}]);
        let related = |suspects: Value| {
            let read = super::read("b.json", &bundle_with_suspects(suspects));
            ok(&read);
            let ae =
                read.parsed.records.iter().flat_map(|r| &r.record.adverse_events).next().cloned().unwrap();
            (ae.related.map(|r| r.label()), ae.causality_reported)
        };
        // By the Medication the administration gives, by the administration itself, by name.
        for study in [
            json!({"reference": "Medication/msc"}),
            json!({"reference": "MedicationAdministration/dose-1"}),
            json!({"display": "autologous  MSC"}),
        ] {
            let suspects = json!([
                {"instance": study, "causality": unlikely},
                {"instance": {"reference": "Medication/paracetamol"}, "causality": probable},
            ]);
            assert_eq!(related(suspects), (Some("unlikely"), None));
        }
        // None recognised: the strongest over all (doubt counts as related).
        let suspects = json!([
            {"instance": {"reference": "Medication/other"}, "causality": unlikely},
            {"instance": {"reference": "Medication/paracetamol"}, "causality": probable},
        ]);
        assert_eq!(related(suspects), (Some("probable"), None));
        // Conditional counts as possible and keeps its category.
        let suspects = json!([{"instance": {"reference": "Medication/msc"},
                               "causality": [{"assessment": {"coding": [{"code": "Conditional-Classified"}]}}]}]);
        assert_eq!(related(suspects), (Some("possible"), Some("Conditional-Classified".to_string())));
    }

    #[test]
    fn a_grade_from_severity_says_so() {
        let read = super::read("a.json", &ae_with(json!({})));
        let ae = &read.parsed.records[0].record.adverse_events[0];
        assert_eq!(ae.grade_source, crate::model::GradeSource::Severity);
        let read = super::read(
            "b.json",
            &ae_with(json!({
            "extension": [{"url": "http://hl7.org/fhir/uv/ae-research-backport-ig/StructureDefinition/ae-grade",
                           "valueCodeableConcept": {"coding": [{"code": "3"}]}}]})),
        );
        let ae = &read.parsed.records[0].record.adverse_events[0];
        assert_eq!(ae.grade_source, crate::model::GradeSource::Ctcae);
    }

    #[test]
    fn unknown_codes_and_near_misses() {
        let read =
            super::read("a.json", &ae_with(json!({"severity": {"coding": [{"code": "catastrophic"}]}})));
        assert_eq!(read.parsed.rejected[0].field, "AdverseEvent.severity");
        let read = super::read("b.json", &ae_with(json!({"seriousness": {"coding": [{"code": "Grave"}]}})));
        assert_eq!(read.parsed.rejected[0].field, "AdverseEvent.seriousness");
        // Non-serious with a fatal outcome: kept as judged, and seriousness-inconsistent.
        let read = super::read("c.json", &ae_with(json!({"outcome": {"coding": [{"code": "fatal"}]}})));
        let ae = &read.parsed.records[0].record.adverse_events[0];
        assert!(!ae.serious && ae.seriousness_inconsistent());
        let read = super::read("d.json", &ae_with(json!({"actuality": "potential"})));
        assert!(read.parsed.records.is_empty() && read.parsed.rejected.is_empty());
        assert!(read.skipped[0].reason.contains("potential"));
        let read = super::read("e.json", &ae_with(json!({"subject": {"reference": "Group/cohort-a"}})));
        assert_eq!(read.parsed.rejected[0].field, "AdverseEvent.subject");
        let read = super::read(
            "f.json",
            &ae_with(json!({"modifierExtension": [{"url": "http://x/y", "valueBoolean": true}]})),
        );
        assert_eq!(read.parsed.rejected[0].field, "AdverseEvent.modifierExtension");
    }

    #[test]
    fn observations_without_subject_or_value() {
        let text = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Observation", "id": "a", "status": "final",
                          "code": {"text": "ALT"}, "valueQuantity": {"value": 52, "unit": "U/L"}}},
            {"resource": {"resourceType": "Observation", "id": "b", "status": "final",
                          "subject": {"reference": "Patient/KS-101"}, "code": {"text": "ALT"},
                          "dataAbsentReason": {"coding": [{"code": "error"}]}}},
            {"resource": {"resourceType": "Observation", "id": "c", "status": "entered-in-error",
                          "subject": {"reference": "Patient/KS-101"}, "code": {"text": "ALT"},
                          "valueQuantity": {"value": 5200}}},
            {"resource": {"resourceType": "Observation", "id": "d", "status": "final",
                          "subject": {"reference": "Patient/KS-101"}, "code": {"text": "CRP"},
                          "valueQuantity": {"value": 0.5, "comparator": "<", "unit": "mg/L"}}},
            {"resource": {"resourceType": "Organization", "id": "lab"}},
        ]});
        let read = super::read("o.json", &text.to_string());
        assert!(read.parsed.records.is_empty());
        let rejected: Vec<&str> = read.parsed.rejected.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(rejected, vec!["Observation.subject", "Observation.valueQuantity"]);
        let skipped: Vec<&str> = read.skipped.iter().map(|s| s.resource.as_str()).collect();
        assert_eq!(skipped, vec!["Observation/b", "Observation/c", "Organization/lab"]);
    }

    #[test]
    fn transaction_references_vitals_and_doses() {
        let text = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:7d3c", "resource": {"resourceType": "Patient", "id": "KS-101",
                "name": [{"family": "Svensson"}], "birthDate": "1970-01-01"}},
            {"fullUrl": "urn:uuid:9a1f", "resource": {"resourceType": "Observation", "id": "t1",
                "meta": {"versionId": "2"}, "status": "final", "subject": {"reference": "urn:uuid:7d3c"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
                "effectiveDateTime": "2019-02-26T11:10:00+01:00",
                "valueQuantity": {"value": 101.3, "system": "http://unitsofmeasure.org", "code": "[degF]"}}},
            {"resource": {"resourceType": "MedicationAdministration", "id": "inf1", "status": "completed",
                "contained": [{"resourceType": "Medication", "id": "msc", "code": {"text": "autologous BM-MSC"}}],
                "medicationReference": {"reference": "#msc"}, "subject": {"reference": "urn:uuid:7d3c"},
                "effectivePeriod": {"start": "2019-02-26T09:10:00+01:00", "end": "2019-02-26T09:40:00+01:00"},
                "dosage": {"dose": {"value": 1.6e6, "unit": "cells/kg"}}}},
        ]});
        let read = super::read("t.json", &text.to_string());
        ok(&read);
        let recs = &read.parsed.records;
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].record.subject.as_str(), "KS-101");
        assert_eq!(recs[0].record.record_id.as_deref(), Some("fhir:Observation:t1/_history/2"));
        assert_eq!(recs[0].record.vitals[0].temperature_c, Some(38.5));
        let dose = &recs[1].record.doses[0];
        assert_eq!((dose.product.as_deref(), dose.amount), (Some("autologous BM-MSC"), Some(1.6e6)));
        assert!(dose.end.is_some());
        assert!(!kept(&read).contains("Svensson"));
    }

    #[test]
    fn bulk_ndjson_and_broken_files() {
        let ae = ae_with(json!({}));
        let bp = serde_json::from_str::<Value>(&example("observation-example-bloodpressure.json"))
            .unwrap_or_default()
            .to_string();
        let read = super::read("bulk.ndjson", &format!("{ae}\n\n{bp}\n{{oops\n"));
        assert_eq!(read.parsed.records.iter().map(|r| r.line).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!((read.parsed.rejected[0].line, read.parsed.rejected[0].field.as_str()), (4, "resource"));
        let read = super::read("broken.json", "{\n \"resourceType\": \"Bundle\",\n \"entry\": [\n");
        assert_eq!(read.parsed.rejected[0].field, "file");
        assert!(read.parsed.records.is_empty());
    }
}
