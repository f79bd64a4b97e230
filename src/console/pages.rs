//! The console's other pages: a subject's timeline, the DSMB reports, the rules and their
//! health, the silences, and the audit trail.

use super::{ConsoleError, ConsoleState, Viewer};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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
    let mut records: Vec<&crate::model::Record> = history.records.iter().collect();
    records.sort_by_key(|r| r.when().map(|t| t.earliest()));
    let timeline: Vec<minijinja::Value> =
        records.iter().map(|r| super::alert::record_view(r, zone)).collect();
    let arm = crate::notify::render::visible_arm(viewer.blinded, history.arm());
    let ctx = minijinja::context! { subject => id, site => history.site(), arm => arm, timeline => timeline };
    Ok(state.render("subject.html", &viewer, ctx)?.into_response())
}

pub(crate) async fn reports(
    State(state): State<ConsoleState>,
    viewer: Viewer,
) -> Result<Response, ConsoleError> {
    let _ = &state;
    Ok(state.render("reports.html", &viewer, minijinja::context! {})?.into_response())
}

pub(crate) async fn report_file(
    State(_state): State<ConsoleState>,
    _viewer: Viewer,
    Path(_id): Path<i64>,
) -> Result<Response, ConsoleError> {
    Err(ConsoleError(StatusCode::NOT_FOUND, "not yet".into()))
}

pub(crate) async fn release(
    State(_state): State<ConsoleState>,
    _viewer: Viewer,
    Path(_id): Path<i64>,
) -> Result<Response, ConsoleError> {
    Err(ConsoleError(StatusCode::NOT_FOUND, "not yet".into()))
}

pub(crate) async fn rules(
    State(state): State<ConsoleState>,
    viewer: Viewer,
) -> Result<Response, ConsoleError> {
    Ok(state.render("rules.html", &viewer, minijinja::context! {})?.into_response())
}

pub(crate) async fn silences(
    State(state): State<ConsoleState>,
    viewer: Viewer,
) -> Result<Response, ConsoleError> {
    Ok(state.render("silences.html", &viewer, minijinja::context! {})?.into_response())
}

pub(crate) async fn audit(
    State(state): State<ConsoleState>,
    viewer: Viewer,
) -> Result<Response, ConsoleError> {
    Ok(state.render("audit.html", &viewer, minijinja::context! {})?.into_response())
}
