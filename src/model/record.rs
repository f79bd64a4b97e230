//! The native visit record: the raw shape read from JSON, and the checked domain type.
//!
//! `RawRecord` exists only at the edge; `Record::from_raw` is the single door in, and it
//! names the field of every refusal (`adverse_events[0].grade: …`).

use super::scales::{CtcaeGrade, Edss, Relatedness, Seriousness, SubjectId};
use super::time::{ClinicalTime, Zones};
use serde::{Deserialize, Serialize};

/// A refusal, with the path of the field that caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    pub subject: Option<String>,
    pub site: Option<String>,
    pub arm: Option<String>,
    pub actual_arm: Option<String>,
    pub visit: Option<String>,
    pub date: Option<String>,
    pub record_id: Option<String>,
    #[serde(default)]
    pub doses: Vec<RawDose>,
    #[serde(default)]
    pub adverse_events: Vec<RawAdverseEvent>,
    #[serde(default)]
    pub vitals: Vec<RawVital>,
    #[serde(default)]
    pub labs: Vec<RawLab>,
    #[serde(default)]
    pub scores: Vec<RawScore>,
    pub relapse: Option<RawRelapse>,
    pub mri: Option<RawMri>,
    #[serde(default)]
    pub submissions: Vec<RawSubmission>,
    pub disposition: Option<RawDisposition>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDose {
    pub start: Option<String>,
    pub end: Option<String>,
    pub product: Option<String>,
    pub amount: Option<f64>,
    pub unit: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdverseEvent {
    pub id: Option<String>,
    pub term: Option<String>,
    pub onset: Option<String>,
    pub end: Option<String>,
    pub grade: Option<f64>,
    /// Where the grade came from: `ctcae` (default) or `severity` (mapped from mild /
    /// moderate / severe, which is not a CTCAE grade).
    pub grade_source: Option<String>,
    pub serious: Option<bool>,
    #[serde(default)]
    pub seriousness: Vec<String>,
    pub related: Option<String>,
    /// The causality category as the source wrote it, when `related` is our reading of it
    /// (FHIR "Conditional" read as possible).
    pub causality_reported: Option<String>,
    pub outcome: Option<String>,
    /// When the sponsor/site became aware of the event (drives SAE clocks).
    pub awareness: Option<String>,
    /// MedDRA coding, when coded (names and codes come from the user's own MedDRA).
    pub meddra_pt: Option<String>,
    pub meddra_soc: Option<String>,
    pub meddra_pt_code: Option<String>,
    pub meddra_soc_code: Option<String>,
    /// Expected per the reference safety information (false + serious + related = SUSAR).
    pub expected: Option<bool>,
    /// The event led to permanent discontinuation of study treatment.
    pub discontinued: Option<bool>,
}

/// A safety report submitted for an adverse event (closes an SAE clock).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubmission {
    pub ae_id: Option<String>,
    /// `sponsor` (investigator → sponsor, 24 h), `expedited` (7/15-day report), `follow_up`.
    pub report: Option<String>,
    pub submitted: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDisposition {
    /// completed, withdrawn, screen_failure, lost_to_follow_up, death
    pub status: Option<String>,
    pub reason: Option<String>,
    pub date: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVital {
    pub time: Option<String>,
    pub systolic_bp: Option<f64>,
    pub diastolic_bp: Option<f64>,
    pub heart_rate: Option<f64>,
    pub temperature_c: Option<f64>,
    pub spo2: Option<f64>,
    pub respiratory_rate: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLab {
    pub test: Option<String>,
    pub value: Option<f64>,
    pub unit: Option<String>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScore {
    pub name: Option<String>,
    pub value: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRelapse {
    Flag(bool),
    Onset { onset: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMri {
    pub date: Option<String>,
    pub t2_new_or_enlarging: Option<f64>,
    pub gd_enhancing: Option<f64>,
    /// Combined unique active lesions (a lesion both new T2 and enhancing counted once).
    pub combined_active: Option<f64>,
    pub t2_total: Option<f64>,
    /// The scan that "new" is counted against: `previous` (default) or `baseline`.
    pub reference: Option<String>,
}

/// One visit record as vigil understands it.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub subject: SubjectId,
    pub site: Option<String>,
    /// Treatment arm: blinded information. Stored; never rendered for a blinded reader.
    #[serde(skip)]
    pub arm: Option<String>,
    /// The treatment actually received (SDTM ACTARM), when it differs from or adds to the
    /// planned `arm`: blinded information, like the arm.
    #[serde(skip)]
    pub actual_arm: Option<String>,
    pub visit: Option<String>,
    pub date: Option<ClinicalTime>,
    pub record_id: Option<String>,
    pub doses: Vec<Dose>,
    pub adverse_events: Vec<AdverseEvent>,
    pub vitals: Vec<Vital>,
    pub labs: Vec<Lab>,
    pub scores: Vec<Score>,
    /// Onset of a relapse reported at this visit.
    pub relapse: Option<ClinicalTime>,
    pub mri: Option<Mri>,
    pub submissions: Vec<Submission>,
    pub disposition: Option<Disposition>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dose {
    pub start: ClinicalTime,
    pub end: Option<ClinicalTime>,
    pub product: Option<String>,
    pub amount: Option<f64>,
    pub unit: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdverseEvent {
    /// The CRF's id for the event; a later record with the same id is a new version.
    pub id: Option<String>,
    pub term: String,
    pub onset: Option<ClinicalTime>,
    pub end: Option<ClinicalTime>,
    pub grade: Option<CtcaeGrade>,
    pub grade_source: GradeSource,
    pub serious: bool,
    pub seriousness: Vec<Seriousness>,
    pub related: Option<Relatedness>,
    pub causality_reported: Option<String>,
    pub outcome: Option<String>,
    pub awareness: Option<ClinicalTime>,
    pub meddra_pt: Option<String>,
    pub meddra_soc: Option<String>,
    pub meddra_pt_code: Option<String>,
    pub meddra_soc_code: Option<String>,
    pub expected: Option<bool>,
    pub discontinued: bool,
}

/// Where an event's grade came from. A grade mapped from severity (mild / moderate /
/// severe: SDTM AESEV, FHIR severity) is not a CTCAE grade and is labelled so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GradeSource {
    #[default]
    Ctcae,
    Severity,
}

impl AdverseEvent {
    /// Fatal: the death criterion, a fatal outcome or grade 5.
    pub fn is_fatal(&self) -> bool {
        self.seriousness.contains(&Seriousness::Death)
            || self.outcome.as_deref().is_some_and(|o| o.eq_ignore_ascii_case("fatal"))
            || self.grade.is_some_and(|g| g.value() == 5)
    }

    /// Not serious, yet an ICH E2A criterion is given or the event was fatal: the
    /// reporter's judgement and its criteria disagree, a query for the site.
    pub fn seriousness_inconsistent(&self) -> bool {
        !self.serious && (!self.seriousness.is_empty() || self.is_fatal())
    }

    /// `CTCAE grade 3`, or `severity grade 3 (mapped)` when mapped from mild/moderate/severe.
    pub fn grade_text(&self) -> Option<String> {
        self.grade.map(|g| match self.grade_source {
            GradeSource::Ctcae => format!("CTCAE grade {g}"),
            GradeSource::Severity => format!("grade {g} (mapped from severity)"),
        })
    }
}

/// Which safety report a submission was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Investigator to sponsor (24 h).
    Sponsor,
    /// Expedited report to the authority (7 or 15 days).
    Expedited,
    /// Follow-up report (8 more days after a 7-day report).
    FollowUp,
}

#[derive(Debug, Clone, Serialize)]
pub struct Submission {
    pub ae_id: String,
    pub report: ReportKind,
    pub submitted: ClinicalTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DispositionStatus {
    Completed,
    Withdrawn,
    ScreenFailure,
    LostToFollowUp,
    Death,
}

#[derive(Debug, Clone, Serialize)]
pub struct Disposition {
    pub status: DispositionStatus,
    pub reason: Option<String>,
    pub date: Option<ClinicalTime>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Vital {
    pub time: Option<ClinicalTime>,
    pub systolic_bp: Option<f64>,
    pub diastolic_bp: Option<f64>,
    pub heart_rate: Option<f64>,
    pub temperature_c: Option<f64>,
    pub spo2: Option<f64>,
    pub respiratory_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lab {
    pub test: String,
    pub value: f64,
    pub unit: Option<String>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub time: Option<ClinicalTime>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub name: String,
    pub value: f64,
    /// Set when `name` is EDSS: the value checked against the scale.
    #[serde(skip)]
    pub edss: Option<Edss>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mri {
    pub date: ClinicalTime,
    pub t2_new_or_enlarging: Option<u32>,
    pub gd_enhancing: Option<u32>,
    /// Combined unique active lesions, when the reader reported it.
    pub combined_active: Option<u32>,
    pub t2_total: Option<u32>,
    pub reference: MriReference,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MriReference {
    Previous,
    Baseline,
}

fn time(field: &str, v: &Option<String>) -> Result<Option<ClinicalTime>, FieldError> {
    v.as_deref().map(|s| ClinicalTime::parse(s).map_err(|e| refuse(field, e.to_string()))).transpose()
}

/// Longest text any field may hold: a term, an id or a reason, not a narrative.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Why a text cannot be stored or shown as it is, if it cannot.
fn unfit(text: &str) -> Option<String> {
    if text.contains('\0') {
        return Some("holds a NUL character (\\u0000), which no field may contain".into());
    }
    if let Some(c) = text.chars().find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Some(format!(
            "holds the control character U+{:04X}, which no field may contain (it could rewrite a log line or a terminal)",
            u32::from(c)
        ));
    }
    let n = text.chars().count();
    (n > MAX_TEXT_CHARS).then(|| format!("is {n} characters long; at most {MAX_TEXT_CHARS}"))
}

/// Turns every line break in a string value into one space; true if any changed.
fn flatten_line_breaks(v: &mut serde_json::Value) -> bool {
    let mut changed = false;
    match v {
        serde_json::Value::String(s) if s.contains(['\n', '\r']) => {
            *s = s.replace("\r\n", " ").replace(['\n', '\r'], " ");
            changed = true;
        }
        serde_json::Value::Array(items) => {
            for item in items {
                changed |= flatten_line_breaks(item);
            }
        }
        serde_json::Value::Object(m) => {
            for item in m.values_mut() {
                changed |= flatten_line_breaks(item);
            }
        }
        _ => {}
    }
    changed
}

/// The path (`adverse_events[0].term`) of the first key or string that is unfit, and why.
fn unfit_at(v: &serde_json::Value) -> Option<(String, String)> {
    fn walk(v: &serde_json::Value) -> Option<(String, String)> {
        match v {
            serde_json::Value::String(s) => unfit(s).map(|why| (String::new(), why)),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk(item).map(|(p, why)| (format!("[{i}]{p}"), why))),
            serde_json::Value::Object(m) => m.iter().find_map(|(k, item)| {
                if let Some(why) = unfit(k) {
                    let shown: String = k.chars().filter(|c| !c.is_control()).take(40).collect();
                    return Some((format!(".{shown}"), format!("(a key) {why}")));
                }
                walk(item).map(|(p, why)| (format!(".{k}{p}"), why))
            }),
            _ => None,
        }
    }
    walk(v).map(|(p, why)| (p.trim_start_matches('.').to_string(), why))
}

fn text(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

fn in_range(field: &str, v: Option<f64>, lo: f64, hi: f64, unit: &str) -> Result<Option<f64>, FieldError> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) || !x.is_finite() => {
            Err(refuse(field, format!("{x} {unit} is not physiologically possible (expected {lo}–{hi})")))
        }
        other => Ok(other),
    }
}

fn count(field: &str, v: Option<f64>) -> Result<Option<u32>, FieldError> {
    match v {
        None => Ok(None),
        Some(x) if x >= 0.0 && x.fract() == 0.0 && x < 1e6 => Ok(Some(x as u32)),
        Some(x) => Err(refuse(field, format!("{x} is not a lesion count"))),
    }
}

impl Record {
    pub fn from_raw(raw: RawRecord) -> Result<Self, FieldError> {
        let subject = raw
            .subject
            .as_deref()
            .ok_or_else(|| refuse("subject", "missing: every record needs a subject"))
            .and_then(|s| SubjectId::parse(s).map_err(|e| refuse("subject", e)))?;
        let date = time("date", &raw.date)?;

        let doses = raw
            .doses
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let f = |n: &str| format!("doses[{i}].{n}");
                let start = time(&f("start"), &d.start)?.ok_or_else(|| refuse(f("start"), "missing"))?;
                let end = time(&f("end"), &d.end)?;
                if let Some(e) = &end {
                    if e.latest() < start.earliest() {
                        return Err(refuse(f("end"), "dose ends before it starts"));
                    }
                }
                if matches!(d.amount, Some(a) if !(a >= 0.0 && a.is_finite())) {
                    return Err(refuse(f("amount"), "a dose amount cannot be negative"));
                }
                Ok(Dose { start, end, product: text(&d.product), amount: d.amount, unit: text(&d.unit) })
            })
            .collect::<Result<_, _>>()?;

        let adverse_events = raw
            .adverse_events
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let f = |n: &str| format!("adverse_events[{i}].{n}");
                let term = text(&a.term).ok_or_else(|| refuse(f("term"), "missing"))?;
                let grade =
                    a.grade.map(|g| CtcaeGrade::parse(g).map_err(|e| refuse(f("grade"), e))).transpose()?;
                let seriousness = a
                    .seriousness
                    .iter()
                    .enumerate()
                    .map(|(j, s)| {
                        Seriousness::parse(s)
                            .map_err(|e| refuse(format!("adverse_events[{i}].seriousness[{j}]"), e))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let onset = time(&f("onset"), &a.onset)?;
                let end = time(&f("end"), &a.end)?;
                if let (Some(o), Some(e)) = (&onset, &end) {
                    if e.latest() < o.earliest() {
                        return Err(refuse(f("end"), "adverse event ends before its onset"));
                    }
                }
                let grade_source = match a.grade_source.as_deref().map(str::trim) {
                    None | Some("ctcae") => GradeSource::Ctcae,
                    Some("severity") => GradeSource::Severity,
                    Some(other) => {
                        return Err(refuse(f("grade_source"), format!("`{other}`: use ctcae or severity")))
                    }
                };
                Ok(AdverseEvent {
                    id: text(&a.id),
                    term,
                    onset,
                    end,
                    grade,
                    grade_source,
                    // `serious` is the reporter's judgement, kept as given even when the
                    // criteria contradict it (a data-quality finding, see
                    // `seriousness_inconsistent`); left out, a criterion or grade 5 implies it.
                    serious: a
                        .serious
                        .unwrap_or(!seriousness.is_empty() || grade.is_some_and(|g| g.value() == 5)),
                    seriousness,
                    related: a
                        .related
                        .as_deref()
                        .map(|r| Relatedness::parse(r).map_err(|e| refuse(f("related"), e)))
                        .transpose()?,
                    causality_reported: text(&a.causality_reported),
                    outcome: text(&a.outcome),
                    awareness: time(&f("awareness"), &a.awareness)?,
                    meddra_pt: text(&a.meddra_pt),
                    meddra_soc: text(&a.meddra_soc),
                    meddra_pt_code: text(&a.meddra_pt_code),
                    meddra_soc_code: text(&a.meddra_soc_code),
                    expected: a.expected,
                    discontinued: a.discontinued.unwrap_or(false),
                })
            })
            .collect::<Result<_, _>>()?;

        let vitals = raw
            .vitals
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let f = |n: &str| format!("vitals[{i}].{n}");
                Ok(Vital {
                    time: time(&f("time"), &v.time)?,
                    systolic_bp: in_range(&f("systolic_bp"), v.systolic_bp, 30.0, 300.0, "mmHg")?,
                    diastolic_bp: in_range(&f("diastolic_bp"), v.diastolic_bp, 10.0, 200.0, "mmHg")?,
                    heart_rate: in_range(&f("heart_rate"), v.heart_rate, 10.0, 300.0, "/min")?,
                    temperature_c: in_range(&f("temperature_c"), v.temperature_c, 25.0, 45.0, "°C")?,
                    spo2: in_range(&f("spo2"), v.spo2, 30.0, 100.0, "%")?,
                    respiratory_rate: in_range(
                        &f("respiratory_rate"),
                        v.respiratory_rate,
                        1.0,
                        80.0,
                        "/min",
                    )?,
                })
            })
            .collect::<Result<_, _>>()?;

        let labs = raw
            .labs
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let f = |n: &str| format!("labs[{i}].{n}");
                let test = text(&l.test).ok_or_else(|| refuse(f("test"), "missing"))?;
                let value = l.value.ok_or_else(|| refuse(f("value"), "missing"))?;
                if !value.is_finite() {
                    return Err(refuse(f("value"), "not a number"));
                }
                if let (Some(lo), Some(hi)) = (l.low, l.high) {
                    if lo > hi {
                        return Err(refuse(f("low"), format!("lower limit {lo} is above upper limit {hi}")));
                    }
                }
                Ok(Lab {
                    test,
                    value,
                    unit: text(&l.unit),
                    low: l.low,
                    high: l.high,
                    time: time(&f("time"), &l.time)?,
                })
            })
            .collect::<Result<_, _>>()?;

        let scores: Vec<Score> = raw
            .scores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let f = |n: &str| format!("scores[{i}].{n}");
                let name = text(&s.name).ok_or_else(|| refuse(f("name"), "missing"))?;
                let value = s.value.ok_or_else(|| refuse(f("value"), "missing"))?;
                let edss = if name.eq_ignore_ascii_case("EDSS") {
                    Some(Edss::parse(value).map_err(|e| refuse(f("value"), e))?)
                } else {
                    None
                };
                Ok(Score { name, value, edss })
            })
            .collect::<Result<_, _>>()?;
        if !scores.is_empty() && date.is_none() {
            return Err(refuse("date", "missing: scores need the date of the visit"));
        }

        let relapse = match &raw.relapse {
            None | Some(RawRelapse::Flag(false)) => None,
            Some(RawRelapse::Flag(true)) => Some(
                date.clone()
                    .ok_or_else(|| refuse("date", "missing: `relapse: true` needs the visit date"))?,
            ),
            Some(RawRelapse::Onset { onset }) => time("relapse.onset", &Some(onset.clone()))?,
        };

        let mri = raw
            .mri
            .as_ref()
            .map(|m| {
                let date = time("mri.date", &m.date)?
                    .or_else(|| date.clone())
                    .ok_or_else(|| refuse("mri.date", "missing (and the record has no date)"))?;
                let reference = match m.reference.as_deref().map(str::trim) {
                    None | Some("previous") => MriReference::Previous,
                    Some("baseline") => MriReference::Baseline,
                    Some(other) => {
                        return Err(refuse("mri.reference", format!("`{other}`: use previous or baseline")))
                    }
                };
                let scan = Mri {
                    date,
                    t2_new_or_enlarging: count("mri.t2_new_or_enlarging", m.t2_new_or_enlarging)?,
                    gd_enhancing: count("mri.gd_enhancing", m.gd_enhancing)?,
                    combined_active: count("mri.combined_active", m.combined_active)?,
                    t2_total: count("mri.t2_total", m.t2_total)?,
                    reference,
                };
                // Unique lesions: at least the larger count, at most both together.
                if let (Some(c), Some(t2), Some(gd)) =
                    (scan.combined_active, scan.t2_new_or_enlarging, scan.gd_enhancing)
                {
                    if c < t2.max(gd) || c > t2 + gd {
                        return Err(refuse(
                            "mri.combined_active",
                            format!(
                                "{c} is impossible with {t2} new T2 and {gd} Gd+ lesions (between {} and {})",
                                t2.max(gd),
                                t2 + gd
                            ),
                        ));
                    }
                }
                Ok(scan)
            })
            .transpose()?;

        let submissions = raw
            .submissions
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let f = |n: &str| format!("submissions[{i}].{n}");
                let ae_id = text(&s.ae_id).ok_or_else(|| refuse(f("ae_id"), "missing"))?;
                let report = match s.report.as_deref().map(str::trim) {
                    Some("sponsor") => ReportKind::Sponsor,
                    Some("expedited") => ReportKind::Expedited,
                    Some("follow_up") => ReportKind::FollowUp,
                    Some(other) => {
                        return Err(refuse(
                            f("report"),
                            format!("`{other}`: use sponsor, expedited or follow_up"),
                        ))
                    }
                    None => return Err(refuse(f("report"), "missing")),
                };
                let submitted =
                    time(&f("submitted"), &s.submitted)?.ok_or_else(|| refuse(f("submitted"), "missing"))?;
                Ok(Submission { ae_id, report, submitted })
            })
            .collect::<Result<_, _>>()?;

        let disposition = raw
            .disposition
            .as_ref()
            .map(|d| {
                let status = match d.status.as_deref().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
                    Some("completed") => DispositionStatus::Completed,
                    Some("withdrawn") => DispositionStatus::Withdrawn,
                    Some("screen_failure") => DispositionStatus::ScreenFailure,
                    Some("lost_to_follow_up") => DispositionStatus::LostToFollowUp,
                    Some("death") => DispositionStatus::Death,
                    Some(other) => {
                        return Err(refuse(
                            "disposition.status",
                            format!(
                            "`{other}`: use completed, withdrawn, screen_failure, lost_to_follow_up or death"
                        ),
                        ))
                    }
                    None => return Err(refuse("disposition.status", "missing")),
                };
                Ok(Disposition { status, reason: text(&d.reason), date: time("disposition.date", &d.date)? })
            })
            .transpose()?;

        Ok(Record {
            subject,
            site: text(&raw.site),
            arm: text(&raw.arm),
            actual_arm: text(&raw.actual_arm),
            visit: text(&raw.visit),
            date,
            record_id: text(&raw.record_id),
            doses,
            adverse_events,
            vitals,
            labs,
            scores,
            relapse,
            mri,
            submissions,
            disposition,
        })
    }

    /// Parse one JSON object, naming the field of any type error.
    pub fn from_json(text: &str) -> Result<Self, FieldError> {
        // Text that JSON allows but nothing downstream should take: a NUL character (no
        // database text holds it: refused here, for this record alone, rather than failing
        // a whole batch in the store), control characters (a log line or a terminal would
        // run them), and unbounded length. Escapes and C1 characters send the record to the
        // careful check; plain text costs one scan.
        let suspicious = text.len() > MAX_TEXT_CHARS
            || ["\\u", "\\n", "\\r", "\\b", "\\f"].iter().any(|e| text.contains(e))
            || text.contains(|c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r'));
        let mut flattened = None;
        if suspicious {
            if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text) {
                if let Some((path, why)) = unfit_at(&v) {
                    return Err(refuse(path, why));
                }
                // A line break inside a value (a quoted CSV cell, an EDC text box) is a
                // space: no field holds lines, and a log line must stay one line.
                if flatten_line_breaks(&mut v) {
                    flattened = Some(v.to_string());
                }
            }
        }
        let text = flattened.as_deref().unwrap_or(text);
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawRecord = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let msg = inner.to_string();
            // serde_json appends " at line L column C"; the caller names the line itself.
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            refuse(if path == "." { "record".to_string() } else { path }, msg)
        })?;
        Self::from_raw(raw)
    }

    /// The time this record stands for: its date, else the earliest time inside it.
    pub fn when(&self) -> Option<&ClinicalTime> {
        self.date.as_ref().or_else(|| {
            self.doses
                .iter()
                .map(|d| &d.start)
                .chain(self.adverse_events.iter().filter_map(|a| a.onset.as_ref()))
                .chain(self.vitals.iter().filter_map(|v| v.time.as_ref()))
                .chain(self.labs.iter().filter_map(|l| l.time.as_ref()))
                .chain(self.mri.iter().map(|m| &m.date))
                .min_by_key(|t| t.earliest())
        })
    }

    /// The record placed at its site (`site`, else the subject's): times without an offset
    /// are read in the site's zone (`ClinicalTime::placed`).
    pub fn placed(mut self, zones: &Zones, subject_site: Option<&str>) -> Self {
        let site = self.site.clone();
        let site = site.as_deref().or(subject_site);
        let place = |t: &mut ClinicalTime| *t = t.placed(zones, site);
        self.date.iter_mut().chain(self.relapse.iter_mut()).for_each(place);
        for d in &mut self.doses {
            std::iter::once(&mut d.start).chain(d.end.iter_mut()).for_each(place);
        }
        for a in &mut self.adverse_events {
            a.onset.iter_mut().chain(a.end.iter_mut()).chain(a.awareness.iter_mut()).for_each(place);
        }
        self.vitals.iter_mut().filter_map(|v| v.time.as_mut()).for_each(place);
        self.labs.iter_mut().filter_map(|l| l.time.as_mut()).for_each(place);
        self.mri.iter_mut().map(|m| &mut m.date).for_each(place);
        self.submissions.iter_mut().map(|s| &mut s.submitted).for_each(place);
        self.disposition.iter_mut().filter_map(|d| d.date.as_mut()).for_each(place);
        self
    }

    pub fn edss(&self) -> Option<Edss> {
        self.scores.iter().find_map(|s| s.edss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESIGN_EXAMPLE: &str = r#"{
      "subject": "MSC-03", "site": "KS", "arm": "MSC", "visit": "W12", "date": "2019-05-21",
      "record_id": "edc-export-2019-05-21-0042",
      "doses": [{"start": "2019-02-26T09:10:00+01:00", "end": "2019-02-26T09:40:00+01:00",
                 "product": "autologous BM-MSC", "amount": 1.6e6, "unit": "cells/kg"}],
      "adverse_events": [{"id": "AE-17", "term": "Infusion related reaction",
                          "onset": "2019-02-26T10:05:00+01:00", "end": "2019-02-26T14:00:00+01:00",
                          "grade": 2, "serious": false, "seriousness": [],
                          "related": "probable", "outcome": "recovered"}],
      "vitals": [{"time": "2019-02-26T11:10:00+01:00", "systolic_bp": 128, "diastolic_bp": 82,
                  "heart_rate": 96, "temperature_c": 38.2, "spo2": 97}],
      "labs": [{"test": "ALT", "value": 52, "unit": "U/L", "low": 0, "high": 45}],
      "scores": [{"name": "EDSS", "value": 4.5}],
      "relapse": false,
      "mri": {"date": "2019-05-20", "t2_new_or_enlarging": 1, "gd_enhancing": 0, "t2_total": 38}
    }"#;

    #[test]
    fn a_nul_character_refuses_the_record_naming_its_field() {
        let e =
            Record::from_json(r#"{"subject":"KS-1","adverse_events":[{"term":"Rash\u0000x"}]}"#).unwrap_err();
        assert_eq!(e.field, "adverse_events[0].term");
        assert!(e.message.contains("NUL"), "{}", e.message);
        // An escaped backslash followed by u0000 is text, not a NUL.
        assert!(Record::from_json(r#"{"subject":"KS-1","site":"a\\u0000b"}"#).is_ok());
    }

    #[test]
    fn control_characters_and_unbounded_text_are_refused_naming_the_field() {
        let refused = |json: &str| Record::from_json(json).unwrap_err();
        // An escape sequence that would clear a terminal, a line break that forges a log line.
        let e = refused(r#"{"subject":"KS-1","adverse_events":[{"term":"Rash\u001b[2J"}]}"#);
        assert_eq!(e.field, "adverse_events[0].term");
        assert!(e.message.contains("U+001B"), "{}", e.message);
        // A line break is a space: a log line stays one line, and no record is lost for it.
        let r = Record::from_json(r#"{"subject":"KS-1","site":"KS\nINFO forged"}"#).unwrap();
        assert_eq!(r.site.as_deref(), Some("KS INFO forged"));
        // A C1 control character, raw (valid JSON).
        assert!(refused("{\"subject\":\"KS-1\",\"site\":\"K\u{9b}S\"}").message.contains("U+009B"));
        let long = format!(r#"{{"subject":"KS-1","site":"{}"}}"#, "x".repeat(MAX_TEXT_CHARS + 1));
        assert!(refused(&long).message.contains("at most 4096"));
        // Accents, escaped or not, and tabs are text.
        let ok = Record::from_json(
            r#"{"subject":"KS-1","site":"Malm\u00f6\tSk\u00e5ne","adverse_events":[{"term":"Éruption"}]}"#,
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn the_design_example_parses() {
        let r = Record::from_json(DESIGN_EXAMPLE).unwrap();
        assert_eq!(r.subject.as_str(), "MSC-03");
        assert_eq!(r.adverse_events[0].grade.unwrap().value(), 2);
        assert_eq!(r.edss().unwrap().value(), 4.5);
        assert_eq!(r.mri.as_ref().unwrap().t2_new_or_enlarging, Some(1));
        assert_eq!(r.arm.as_deref(), Some("MSC"));
        // The arm never leaves through serialization.
        assert!(!serde_json::to_string(&r).unwrap().contains("\"arm\""));
    }

    fn err(json: &str) -> FieldError {
        Record::from_json(json).unwrap_err()
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(err(r#"{"site":"KS"}"#).field, "subject");
        assert_eq!(
            err(r#"{"subject":"A","adverse_events":[{"term":"x","grade":7}]}"#).field,
            "adverse_events[0].grade"
        );
        assert_eq!(
            err(r#"{"subject":"A","date":"2019-01-01","scores":[{"name":"EDSS","value":0.5}]}"#).field,
            "scores[0].value"
        );
        assert_eq!(err(r#"{"subject":"A","date":"2019-02-30"}"#).field, "date");
        assert_eq!(
            err(r#"{"subject":"A","adverse_events":[{"term":"x","grade":"three"}]}"#).field,
            "adverse_events[0].grade"
        );
        assert_eq!(
            err(r#"{"subject":"A","vitals":[{"temperature_c":52}]}"#).field,
            "vitals[0].temperature_c"
        );
        assert_eq!(err(r#"{"subject":"A","colour":"red"}"#).field, "colour");
        assert_eq!(err(r#"{"subject":"A","scores":[{"name":"EDSS","value":3}]}"#).field, "date");
    }

    #[test]
    fn partial_dates_are_accepted_and_flagged() {
        let r = Record::from_json(
            r#"{"subject":"A","adverse_events":[{"term":"Headache","onset":"2019-05","grade":1}]}"#,
        )
        .unwrap();
        assert!(r.adverse_events[0].onset.as_ref().unwrap().is_partial());
    }
}
