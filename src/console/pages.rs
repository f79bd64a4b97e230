//! The console's other pages: a subject's timeline, the DSMB reports, the rules and their
//! health, the silences, and the audit trail.
//!
//! What a person sees of the arm goes through [`crate::notify::render::visible_arm`] only;
//! a closed (by-arm) report is listed and served to unblinded people only, and a blinded
//! person asking for one is refused and audited.

use super::rule_pack::{self, RulePack};
use super::{day_ms, given, page_link, ConsoleError, ConsoleState, Viewer};
use crate::config::Action;
use crate::store::console_queries::{AeVersion, AuditQuery};
use crate::store::{ReportKind, ReportRow};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::sync::Arc;

fn at(t: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    t.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z").to_string()
}

async fn pack(state: &ConsoleState) -> Result<Arc<RulePack>, ConsoleError> {
    let config = state.config.clone();
    tokio::task::spawn_blocking(move || rule_pack::current(&config))
        .await
        .map_err(|e| ConsoleError::from(anyhow::Error::new(e)))?
        .map_err(|e| {
            ConsoleError(StatusCode::INTERNAL_SERVER_ERROR, format!("The rules cannot be loaded: {e:#}"))
        })
}

// --- subject -----------------------------------------------------------------------------

/// A reference range as read: "3.0–40.0", "≤ 40.0", "≥ 3.0", or nothing.
pub(crate) fn range_text(low: Option<f64>, high: Option<f64>) -> Option<String> {
    match (low, high) {
        (Some(l), Some(h)) => Some(format!("{l}–{h}")),
        (None, Some(h)) => Some(format!("≤ {h}")),
        (Some(l), None) => Some(format!("≥ {l}")),
        (None, None) => None,
    }
}

/// What each stored version of one adverse event changed: "version 1: grade 2, not
/// serious", then "version 2: grade 2 → 3; serious no → yes".
pub(crate) fn version_notes(versions: &[AeVersion]) -> Vec<String> {
    let grade = |g: Option<i64>| g.map_or("not graded".to_string(), |g| format!("grade {g}"));
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut out = Vec::with_capacity(versions.len());
    let mut previous: Option<&AeVersion> = None;
    for v in versions {
        let what = match previous {
            None => format!("{}, {}", grade(v.grade), if v.serious { "serious" } else { "not serious" }),
            Some(p) => {
                let mut changes = Vec::new();
                if p.grade != v.grade {
                    changes.push(format!("{} → {}", grade(p.grade), grade(v.grade)));
                }
                if p.serious != v.serious {
                    changes.push(format!("serious {} → {}", yes(p.serious), yes(v.serious)));
                }
                if changes.is_empty() {
                    "grade and seriousness unchanged".to_string()
                } else {
                    changes.join("; ")
                }
            }
        };
        out.push(format!("version {}: {what}", v.version));
        previous = Some(v);
    }
    out
}

pub(crate) async fn subject(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let history = state.store.history(&id).await?;
    if history.records.is_empty() {
        return Err(ConsoleError(StatusCode::NOT_FOUND, format!("There is no subject {id}.")));
    }
    let zone = state.config.study.zones.study;
    let when = |t: Option<&crate::model::ClinicalTime>| {
        t.map(|t| t.earliest().with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string())
    };
    let mut records: Vec<&crate::model::Record> = history.records.iter().collect();
    records.sort_by_key(|r| r.when().map(|t| t.earliest()));
    let timeline: Vec<minijinja::Value> =
        records.iter().map(|r| super::alert::record_view(r, zone)).collect();
    // The one door the emails use: the arm only for an unblinded person.
    let arm = crate::notify::render::visible_arm(viewer.blinded, history.arm());

    let doses: Vec<minijinja::Value> = history
        .doses()
        .iter()
        .map(|d| {
            minijinja::context! {
                start => when(Some(&d.start)), end => when(d.end.as_ref()), product => d.product.clone(),
                amount => d.amount.map(|a| format!("{a} {}", d.unit.as_deref().unwrap_or_default()).trim().to_string()),
            }
        })
        .collect();
    let versions = state.store.ae_versions_of(&id).await?;
    let aes: Vec<minijinja::Value> = history
        .adverse_events()
        .iter()
        .map(|ae| {
            let mine: Vec<AeVersion> =
                versions.iter().filter(|v| Some(v.ae_id.as_str()) == ae.id.as_deref()).cloned().collect();
            minijinja::context! {
                id => ae.id.clone(), term => ae.term.clone(), onset => when(ae.onset.as_ref()),
                grade => ae.grade.map(|g| g.to_string()), serious => ae.serious,
                related => ae.related.map(|r| r.label()), outcome => ae.outcome.clone(),
                versions => version_notes(&mine),
            }
        })
        .collect();
    let labs: Vec<minijinja::Value> = history
        .labs()
        .iter()
        .map(|(t, visit, l)| {
            let ratio = l.high.filter(|h| *h > 0.0).map(|h| l.value / h);
            minijinja::context! {
                when => when(*t), visit => visit.map(str::to_string), test => l.test.clone(), value => l.value,
                unit => l.unit.clone(), range => range_text(l.low, l.high),
                uln => ratio.map(|r| format!("{r:.1}×")), above => ratio.is_some_and(|r| r > 1.0),
            }
        })
        .collect();
    let vitals: Vec<minijinja::Value> = history
        .vitals()
        .iter()
        .map(|(t, visit, v)| {
            minijinja::context! {
                when => when(*t), visit => visit.map(str::to_string),
                bp => match (v.systolic_bp, v.diastolic_bp) { (Some(s), Some(d)) => Some(format!("{s}/{d}")), _ => None },
                hr => v.heart_rate, temp => v.temperature_c, spo2 => v.spo2, rr => v.respiratory_rate,
            }
        })
        .collect();
    let mri: Vec<minijinja::Value> = history
        .mri()
        .iter()
        .map(|(visit, m)| {
            minijinja::context! {
                when => m.date.day().to_string(), visit => visit.map(str::to_string),
                t2 => m.t2_new_or_enlarging, gd => m.gd_enhancing, total => m.t2_total,
            }
        })
        .collect();
    let edss = history.edss();
    let relapses: Vec<chrono::NaiveDate> = history.relapses().iter().map(|t| t.day()).collect();
    let rule = pack(&state).await?.rules.edss_rule();
    let threshold = super::edss_chart::threshold(&edss, &relapses, &rule.params);
    let chart = super::edss_chart::svg(&edss, threshold.as_ref(), &format!("EDSS of subject {id} over time"));
    let edss_rows: Vec<minijinja::Value> = edss
        .iter()
        .map(|v| {
            minijinja::context! {
                date => v.date.to_string(), visit => v.visit.clone(), score => format!("{:.1}", v.score.value()),
                baseline => threshold.as_ref().is_some_and(|t| t.baseline.date == v.date),
                worse => threshold.as_ref().is_some_and(|t| v.date > t.baseline.date && v.score.value() >= t.worse_at),
            }
        })
        .collect();
    let alerts: Vec<minijinja::Value> = state
        .store
        .alerts_of(&id)
        .await?
        .iter()
        .map(|a| {
            let c = crate::notify::render::alert_context(a, viewer.blinded, None);
            minijinja::context! {
                id => c.id, title => c.title, severity => c.severity, status => c.status, rule_id => c.rule_id,
                raised => at(a.raised_at, zone),
            }
        })
        .collect();
    let ctx = minijinja::context! {
        subject => id, site => history.site(), arm => arm,
        disposition => history.disposition().map(|d| format!("{d:?}")),
        timeline => timeline, doses => doses, aes => aes, labs => labs, vitals => vitals, mri => mri,
        edss => edss_rows, chart => minijinja::Value::from_safe_string(chart),
        threshold => threshold.as_ref().map(|t| minijinja::context! {
            baseline => format!("{:.1}", t.baseline.score.value()), date => t.baseline.date.to_string(),
            required => format!("{:.1}", t.required), worse_at => format!("{:.1}", t.worse_at),
        }),
        edss_rule => rule.id, roving => rule.params.baseline == crate::rules::progression::Baseline::Roving,
        alerts => alerts,
    };
    Ok(state.render("subject.html", &viewer, ctx)?.into_response())
}

// --- reports -----------------------------------------------------------------------------

/// Whether this person may see (be listed, download) this report at all.
fn may_see(viewer: &Viewer, report: &ReportRow) -> bool {
    report.kind == ReportKind::Open || !viewer.blinded
}

/// The report's PDF, beside its HTML (built with `--features pdf`).
fn pdf_path(report: &ReportRow) -> std::path::PathBuf {
    std::path::Path::new(&report.path).with_extension("pdf")
}

/// The folder of the report's tables as CSV.
fn csv_dir(report: &ReportRow) -> std::path::PathBuf {
    let p = std::path::Path::new(&report.path);
    let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    p.with_file_name(format!("{stem}-csv"))
}

fn csv_files(report: &ReportRow) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(csv_dir(report))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".csv"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[derive(Deserialize, Default)]
pub(crate) struct Done {
    done: Option<String>,
}

pub(crate) async fn reports(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Result<Response, ConsoleError> {
    render_reports(&state, &viewer, done.done.as_deref(), None, StatusCode::OK).await
}

async fn render_reports(
    state: &ConsoleState,
    viewer: &Viewer,
    done: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let zone = state.config.study.zones.study;
    let authority = &state.config.authority;
    let may_release = authority.permits(&viewer.user.roles, Action::ReleaseReport);
    let mut rows = Vec::new();
    let mut hidden = 0;
    for r in state.store.reports().await?.iter().rev() {
        if !may_see(viewer, r) {
            hidden += 1;
            continue;
        }
        let signature = match r.signature_id {
            Some(sid) => state.store.signature(sid).await?,
            None => None,
        };
        rows.push(minijinja::context! {
            id => r.id, kind => r.kind.as_str(), as_of => at(r.as_of, zone), generated => at(r.generated_at, zone),
            reason => r.reason.clone(), sha256 => r.sha256.clone(),
            file => std::path::Path::new(&r.path).file_name().map(|n| n.to_string_lossy().into_owned()),
            released_at => r.released_at.map(|t| at(t, zone)), released_by => r.released_by.clone(),
            signature => signature.as_ref().map(|s| s.line()),
            holds => signature.as_ref().map(|s| s.holds_for(&r.signed_content())),
            pdf => pdf_path(r).is_file(),
            csv => csv_files(r).iter().map(|n| minijinja::context! { name => n.clone(), q => super::url_encode(n) }).collect::<Vec<_>>(),
            can_release => may_release && r.released_at.is_none(),
        });
    }
    let ctx = minijinja::context! {
        reports => rows, hidden => hidden, blinded => viewer.blinded,
        required => authority.requires_signature(Action::ReleaseReport),
        done => done, error => error,
    };
    let html = state.render("reports.html", viewer, ctx)?;
    Ok((status, html).into_response())
}

#[derive(Deserialize, Default)]
pub(crate) struct FileQuery {
    format: Option<String>,
    /// For `format=csv`: which table.
    name: Option<String>,
}

pub(crate) async fn report_file(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Query(q): Query<FileQuery>,
) -> Result<Response, ConsoleError> {
    let report = state
        .store
        .report(id)
        .await?
        .ok_or_else(|| ConsoleError(StatusCode::NOT_FOUND, format!("There is no report #{id}.")))?;
    if !may_see(&viewer, &report) {
        // Even a typed URL: the attempt is in the trail.
        state
            .refused(
                &viewer,
                "report download",
                "report",
                &id.to_string(),
                "a closed report, asked for by a blinded person",
            )
            .await;
        return Err(ConsoleError(
            StatusCode::FORBIDDEN,
            "This is a closed report (results by arm): only unblinded people may open it.".into(),
        ));
    }
    // The archive vouches for the file: a changed file is not served as the report.
    crate::publish::check_unchanged(&report)
        .map_err(|e| ConsoleError(StatusCode::CONFLICT, e.to_string()))?;
    let (path, content_type, attachment) = match q.format.as_deref().unwrap_or("html") {
        "html" => (std::path::PathBuf::from(&report.path), "text/html; charset=utf-8", false),
        "pdf" => (pdf_path(&report), "application/pdf", true),
        "csv" => {
            let name = q.name.unwrap_or_default();
            // Only a table the folder lists: no path from the URL reaches the disk.
            if !csv_files(&report).contains(&name) {
                return Err(ConsoleError(
                    StatusCode::NOT_FOUND,
                    format!("Report #{id} has no table `{name}`."),
                ));
            }
            (csv_dir(&report).join(name), "text/csv; charset=utf-8", true)
        }
        other => {
            return Err(ConsoleError(
                StatusCode::BAD_REQUEST,
                format!("There is no format `{other}` (html, pdf or csv)."),
            ))
        }
    };
    let bytes = std::fs::read(&path).map_err(|e| {
        ConsoleError(
            StatusCode::NOT_FOUND,
            format!("Report #{id}'s file {} cannot be read: {e}.", path.display()),
        )
    })?;
    let name =
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| format!("report-{id}"));
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let disposition = if attachment { "attachment" } else { "inline" };
    let safe: String = name.chars().filter(|c| c.is_ascii_graphic() && *c != '"').collect();
    if let Ok(v) = HeaderValue::from_str(&format!("{disposition}; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // The report's own page has inline styles: its own policy, still no script. (The console's
    // header layer currently replaces it with the console's; see the merge notes.)
    if !attachment {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
            ),
        );
    }
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct Release {
    #[serde(default)]
    csrf: String,
    meaning: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

pub(crate) async fn release(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<Release>,
) -> Result<Response, ConsoleError> {
    state.check_csrf(&viewer, &form.csrf).await?;
    let fail = |why: String, status: StatusCode| {
        let state = state.clone();
        let viewer = viewer.clone();
        async move { render_reports(&state, &viewer, None, Some(&why), status).await }
    };
    let authority = &state.config.authority;
    if !authority.permits(&viewer.user.roles, Action::ReleaseReport) {
        let why = format!(
            "You may not release reports: it needs one of the roles {}.",
            authority.roles_for(Action::ReleaseReport).join(", ")
        );
        state.refused(&viewer, Action::ReleaseReport.as_str(), "report", &id.to_string(), &why).await;
        return fail(why, StatusCode::FORBIDDEN).await;
    }
    let report = state
        .store
        .report(id)
        .await?
        .ok_or_else(|| ConsoleError(StatusCode::NOT_FOUND, format!("There is no report #{id}.")))?;
    if !may_see(&viewer, &report) {
        // Authority may be configured wider than blinding: nobody releases what they may not read.
        let why = "a closed report, released by a blinded person";
        state.refused(&viewer, Action::ReleaseReport.as_str(), "report", &id.to_string(), why).await;
        return fail(
            "This is a closed report (results by arm): only unblinded people may release it.".into(),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    if report.released_at.is_some() {
        return fail(crate::publish::ReleaseError::Released(id).to_string(), StatusCode::CONFLICT).await;
    }
    if let Err(e) = crate::publish::check_unchanged(&report) {
        return fail(e.to_string(), StatusCode::CONFLICT).await;
    }
    let meaning = form.meaning.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let signature = match (meaning, authority.requires_signature(Action::ReleaseReport)) {
        (None, false) => None,
        (None, true) => {
            let why = "This study requires an electronic signature to release a report: choose its meaning and enter your password.";
            return fail(why.into(), StatusCode::UNPROCESSABLE_ENTITY).await;
        }
        (Some(m), _) => {
            let meaning = match crate::accounts::Meaning::parse(m) {
                Ok(m) => m,
                Err(e) => return fail(e, StatusCode::UNPROCESSABLE_ENTITY).await,
            };
            // The first signing of a session: id and password; later ones: the password.
            if !viewer.signed {
                let typed = form.user.as_deref().map(str::trim).unwrap_or_default();
                if typed != viewer.user.id {
                    state
                        .refused(
                            &viewer,
                            "signature",
                            "report",
                            &id.to_string(),
                            "user id missing or not the signed-in person's",
                        )
                        .await;
                    let why = "Nothing was signed: the first signature of a session needs your user id and password.";
                    return fail(why.into(), StatusCode::FORBIDDEN).await;
                }
            }
            let password = form.password.as_deref().unwrap_or_default();
            match state.accounts.authenticate(&viewer.user.id, password, "signature").await? {
                Ok(signer) => Some(state.accounts.signature(
                    &signer,
                    meaning,
                    Action::ReleaseReport,
                    "report",
                    &id.to_string(),
                    &report.signed_content(),
                    None,
                    state.config.study.zones.study,
                )),
                Err(e) => return fail(format!("Nothing was signed: {e}."), StatusCode::FORBIDDEN).await,
            }
        }
    };
    let by = viewer.user.actor();
    if !state.store.release_report(id, &by, signature.as_ref()).await? {
        return fail(crate::publish::ReleaseError::Released(id).to_string(), StatusCode::CONFLICT).await;
    }
    if signature.is_some() {
        state.store.mark_session_signed(&viewer.session).await?;
    }
    // The release page witnesses the trail's head, so seal what this release wrote first.
    state.store.seal_audit().await?;
    let released = state
        .store
        .report(id)
        .await?
        .ok_or(crate::publish::ReleaseError::NoSuchReport(id))
        .map_err(anyhow::Error::new)?;
    let recorded = match released.signature_id {
        Some(sid) => state.store.signature(sid).await?,
        None => None,
    };
    let head = match state.store.audit_head().await? {
        Some((pos, hash)) => format!("entry {pos}, SHA-256 {hash}"),
        None => "empty".into(),
    };
    crate::publish::write_release_page(&released, &by, recorded.as_ref(), &head)?;
    Ok(Redirect::to("/console/reports?done=released").into_response())
}

// --- rules -------------------------------------------------------------------------------

/// The middle value (the mean of the two middle ones for an even count).
pub(crate) fn median(mut values: Vec<i64>) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) { (values[mid - 1] + values[mid]) / 2 } else { values[mid] })
}

/// A rule that fires on more than half the subjects with records says little about any
/// one of them: the signal to tune its threshold.
pub(crate) fn fires_on_most(subjects: i64, with_records: i64) -> bool {
    with_records > 0 && subjects * 2 > with_records
}

/// "45 s", "12 min", "3 h 5 min", "2 d 4 h".
pub(crate) fn span_text(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

pub(crate) async fn rules(
    State(state): State<ConsoleState>,
    viewer: Viewer,
) -> Result<Response, ConsoleError> {
    let zone = state.config.study.zones.study;
    let pack = pack(&state).await?;
    let activity = state.store.rule_activity().await?;
    let delays = state.store.acknowledgement_delays().await?;
    let with_records = state.store.subject_count().await?;
    let mut rows = Vec::new();
    let mut never = Vec::new();
    let mut most = Vec::new();
    for r in &pack.rules.rules {
        let act = activity.iter().find(|a| a.rule_id == r.id);
        let (alerts, subjects) = act.map_or((0, 0), |a| (a.alerts, a.subjects));
        let mine: Vec<i64> = delays.iter().filter(|(id, _)| *id == r.id).map(|(_, ms)| *ms).collect();
        let acknowledged = mine.len();
        let flag = fires_on_most(subjects, with_records);
        if alerts == 0 {
            never.push(r.id.clone());
        }
        if flag {
            most.push(r.id.clone());
        }
        rows.push(minijinja::context! {
            id => r.id.clone(), query => super::url_encode(&r.id), title => r.title.clone(), kind => r.kind.name(), severity => r.severity.as_str(),
            version => r.version.clone(), file => r.file.display().to_string(),
            file_name => r.file.file_name().map(|n| n.to_string_lossy().into_owned()), line => r.line,
            last => act.and_then(|a| a.last_raised).map(|t| at(t, zone)),
            alerts => alerts, subjects => subjects,
            share => (with_records > 0 && subjects > 0).then(|| format!("{:.0} %", subjects as f64 * 100.0 / with_records as f64)),
            median_ack => median(mine).map(span_text), acknowledged => acknowledged,
            most => flag, notify => r.notify.clone(),
            definition => rule_pack::definition(&r.file, r.line),
        });
    }
    let tests = {
        let pack = pack.clone();
        tokio::task::spawn_blocking(move || pack.tests().to_vec())
            .await
            .map_err(|e| ConsoleError::from(anyhow::Error::new(e)))?
    };
    let tests: Vec<minijinja::Value> = tests
        .iter()
        .map(|t| {
            minijinja::context! {
                file => t.file.clone(), passed => t.passed, failed => t.failed, failures => t.failures.clone(),
            }
        })
        .collect();
    let ctx = minijinja::context! {
        rules => rows, never => never, most => most, with_records => with_records, tests => tests,
    };
    Ok(state.render("rules.html", &viewer, ctx)?.into_response())
}

// --- silences ----------------------------------------------------------------------------

pub(crate) async fn silences(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    axum::extract::Query(done): axum::extract::Query<super::alert::Done>,
) -> Result<Response, ConsoleError> {
    let zone = state.config.study.zones.study;
    let now = state.store.now();
    let (mut active, mut ended) = (Vec::new(), Vec::new());
    for s in state.store.silence_entries().await? {
        let is_active = s.ended_at.is_none() && s.expires_at > now;
        let row = minijinja::context! {
            id => s.id, rule_id => s.rule_id.clone(), subject => s.subject.clone(), site => s.site.clone(),
            why => s.comment.clone(), by => s.created_by.clone(), created => at(s.created_at, zone),
            until => at(s.expires_at, zone), ended_at => s.ended_at.map(|t| at(t, zone)), ended_by => s.ended_by.clone(),
            left => is_active.then(|| span_text((s.expires_at - now).num_milliseconds())),
        };
        if is_active {
            active.push(row);
        } else {
            ended.push(row);
        }
    }
    let ctx = minijinja::context! { active => active, ended => ended, done => done.done };
    Ok(state.render("silences.html", &viewer, ctx)?.into_response())
}

#[derive(Deserialize)]
pub(crate) struct CloseSilence {
    #[serde(default)]
    csrf: String,
    meaning: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

/// Ends a silence now (its alerts open again at the next clock pass), signed where given
/// or required.
pub(crate) async fn close_silence(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<CloseSilence>,
) -> Result<Response, ConsoleError> {
    use crate::config::Action;
    state.check_csrf(&viewer, &form.csrf).await?;
    if !state.config.authority.permits(&viewer.user.roles, Action::CloseSilence) {
        let why = "You may not end silences.";
        state.refused(&viewer, Action::CloseSilence.as_str(), "silence", &id.to_string(), why).await;
        return Err(ConsoleError(StatusCode::FORBIDDEN, why.into()));
    }
    let silence = state.store.silences().await?.into_iter().find(|s| s.id == id && !s.ended);
    let silence = silence
        .ok_or_else(|| ConsoleError(StatusCode::NOT_FOUND, format!("There is no active silence #{id}.")))?;
    let signing = super::alert::Signing {
        meaning: form.meaning.as_deref(),
        user: form.user.as_deref(),
        password: form.password.as_deref(),
    };
    let content = silence.signed_content();
    let signature = super::alert::signed(
        &state,
        &viewer,
        signing,
        Action::CloseSilence,
        "silence",
        &id.to_string(),
        &content,
        None,
    )
    .await?
    .map_err(|(status, why)| ConsoleError(status, why))?;
    if !state.store.close_silence(id, &viewer.user.actor(), signature.as_ref()).await? {
        return Err(ConsoleError(StatusCode::CONFLICT, format!("Silence #{id} has ended already.")));
    }
    if signature.is_some() {
        state.store.mark_session_signed(&viewer.session).await?;
    }
    Ok(axum::response::Redirect::to("/console/silences?done=ended").into_response())
}

// --- audit trail -------------------------------------------------------------------------

const AUDIT_PAGE: i64 = 100;

#[derive(Deserialize, Default, Debug)]
pub(crate) struct AuditParams {
    subject: Option<String>,
    user: Option<String>,
    action: Option<String>,
    /// Dates (YYYY-MM-DD, whole days in the study's zone).
    from: Option<String>,
    to: Option<String>,
    page: Option<i64>,
    /// Walk the whole chain (O(n): only when asked).
    verify: Option<String>,
}

/// An entry's detail as shown: a record's content hash is hidden from a blinded person
/// (a hash of a record holding the arm would let one confirm a guessed arm).
pub(crate) fn shown_detail(entity: &str, detail: &str, blinded: bool) -> String {
    if !blinded || !matches!(entity, "record" | "adverse_event") {
        return detail.to_string();
    }
    match serde_json::from_str::<serde_json::Value>(detail) {
        Ok(serde_json::Value::Object(mut m)) => {
            if m.contains_key("content_hash") {
                m.insert("content_hash".into(), serde_json::Value::String("—".into()));
            }
            serde_json::Value::Object(m).to_string()
        }
        // Not an object: nothing here can be told apart from a hash, so show nothing.
        _ => "—".to_string(),
    }
}

pub(crate) async fn audit(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Query(q): Query<AuditParams>,
) -> Result<Response, ConsoleError> {
    let zone = state.config.study.zones.study;
    let query = AuditQuery {
        subject: given(&q.subject),
        actor: given(&q.user),
        action: given(&q.action),
        from_ms: day_ms(&q.from, zone, false)?,
        to_ms: day_ms(&q.to, zone, true)?,
    };
    let page = q.page.unwrap_or(1).max(1);
    let (entries, total) = state.store.audit_search(&query, (page - 1) * AUDIT_PAGE, AUDIT_PAGE).await?;
    let rows: Vec<minijinja::Value> = entries
        .iter()
        .map(|e| {
            minijinja::context! {
                seq => e.seq, pos => e.pos, at => e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                actor => e.actor.clone(), action => e.action.clone(), entity => e.entity.clone(),
                entity_id => e.entity_id.clone(), detail => shown_detail(&e.entity, &e.detail, viewer.blinded),
                refused => e.action.ends_with("refused"),
            }
        })
        .collect();
    let head = state.store.audit_head().await?;
    let verification = if q.verify.as_deref() == Some("1") {
        let v = state.store.verify_audit().await?;
        Some(minijinja::context! {
            entries => v.entries, unsealed => v.unsealed,
            head => v.head.map(|(p, h)| format!("entry {p}, SHA-256 {h}")),
            broken => v.first_break.map(|b| b.to_string()),
        })
    } else {
        None
    };
    let pages = (total + AUDIT_PAGE - 1) / AUDIT_PAGE;
    let fields =
        [("subject", &q.subject), ("user", &q.user), ("action", &q.action), ("from", &q.from), ("to", &q.to)];
    let link = |p: i64| page_link(&fields, p);
    let ctx = minijinja::context! {
        entries => rows, total => total, page => page, pages => pages,
        prev => (page > 1).then(|| link(page - 1)), next => (page < pages).then(|| link(page + 1)),
        f => minijinja::context! {
            subject => given(&q.subject), user => given(&q.user), action => given(&q.action),
            from => given(&q.from), to => given(&q.to),
        },
        head => head.map(|(p, h)| minijinja::context! { pos => p, hash => h }),
        verification => verification,
        verify_link => format!("{}&verify=1", link(page)),
        blinded => viewer.blinded,
    };
    Ok(state.render("audit.html", &viewer, ctx)?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: i64, grade: Option<i64>, serious: bool) -> AeVersion {
        AeVersion { ae_id: "AE-1".into(), version, grade, serious, received_at: Utc::now() }
    }

    #[test]
    fn each_version_says_what_it_changed() {
        let notes = version_notes(&[
            v(1, Some(2), false),
            v(2, Some(3), false),
            v(3, Some(3), true),
            v(4, Some(3), true),
        ]);
        assert_eq!(
            notes,
            [
                "version 1: grade 2, not serious",
                "version 2: grade 2 → grade 3",
                "version 3: serious no → yes",
                "version 4: grade and seriousness unchanged",
            ]
        );
        assert_eq!(version_notes(&[v(1, None, true)]), ["version 1: not graded, serious"]);
    }

    #[test]
    fn a_range_with_one_end_is_not_read_as_a_negative_number() {
        assert_eq!(range_text(None, Some(40.0)).as_deref(), Some("≤ 40"));
        assert_eq!(range_text(Some(3.5), Some(40.0)).as_deref(), Some("3.5–40"));
        assert_eq!(range_text(Some(3.5), None).as_deref(), Some("≥ 3.5"));
        assert_eq!(range_text(None, None), None);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![30, 10, 20]), Some(20));
        assert_eq!(median(vec![40, 10, 20, 30]), Some(25));
        assert_eq!(median(vec![7]), Some(7));
    }

    #[test]
    fn most_subjects_means_more_than_half_of_those_with_records() {
        assert!(fires_on_most(6, 10));
        assert!(!fires_on_most(5, 10), "exactly half is not most");
        assert!(!fires_on_most(0, 0));
        assert!(fires_on_most(1, 1));
    }

    #[test]
    fn spans_read_in_the_largest_useful_unit() {
        assert_eq!(span_text(45_000), "45 s");
        assert_eq!(span_text(12 * 60_000), "12 min");
        assert_eq!(span_text((3 * 3600 + 5 * 60) * 1000), "3 h 5 min");
        assert_eq!(span_text((2 * 86_400 + 4 * 3600) * 1000), "2 d 4 h");
        assert_eq!(span_text(-5), "0 s");
    }

    #[test]
    fn a_blinded_person_sees_no_record_content_hash() {
        let d = r#"{"seq":3,"subject":"KS-1","content_hash":"abc123"}"#;
        let shown = shown_detail("record", d, true);
        assert!(
            !shown.contains("abc123") && shown.contains("\"content_hash\":\"—\"") && shown.contains("KS-1"),
            "{shown}"
        );
        assert_eq!(shown_detail("record", d, false), d);
        assert_eq!(shown_detail("alert", r#"{"content_hash":"x"}"#, true), r#"{"content_hash":"x"}"#);
        assert_eq!(shown_detail("record", "not json", true), "—");
    }
}
