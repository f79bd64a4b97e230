//! An alert's page: what fired and why, the subject's timeline around it, who was emailed,
//! its history with signatures; and the decisions on it (acknowledge, resolve, silence),
//! each with a comment and, where given or required, an electronic signature.

use super::{ConsoleError, ConsoleState, Viewer};
use crate::config::Action;
use crate::model::Record;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

/// One record of a timeline, as lines a person reads (never the arm: `Record` does not
/// serialize it, and nothing here reads it).
pub(crate) fn record_view(r: &Record, zone: chrono_tz::Tz) -> minijinja::Value {
    let when = r.when().map(|t| t.earliest().with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string());
    let mut items: Vec<String> = Vec::new();
    for d in &r.doses {
        let amount =
            d.amount.map(|a| format!(" {a}{}", d.unit.as_deref().unwrap_or_default())).unwrap_or_default();
        items.push(format!(
            "Dose{} {}{amount}",
            d.product.as_deref().map(|p| format!(" of {p}")).unwrap_or_default(),
            d.start
        ));
    }
    for ae in &r.adverse_events {
        let grade = ae.grade.map(|g| format!(", grade {g}")).unwrap_or_default();
        let serious = if ae.serious { ", serious" } else { "" };
        let id = ae.id.as_deref().map(|i| format!(" [{i}]")).unwrap_or_default();
        items.push(format!("Adverse event{id}: {}{grade}{serious}", ae.term));
    }
    for v in &r.vitals {
        let mut parts = Vec::new();
        if let (Some(s), Some(d)) = (v.systolic_bp, v.diastolic_bp) {
            parts.push(format!("BP {s}/{d}"));
        }
        if let Some(h) = v.heart_rate {
            parts.push(format!("HR {h}"));
        }
        if let Some(t) = v.temperature_c {
            parts.push(format!("T {t} °C"));
        }
        if let Some(s) = v.spo2 {
            parts.push(format!("SpO2 {s}%"));
        }
        if !parts.is_empty() {
            items.push(format!("Vitals: {}", parts.join(", ")));
        }
    }
    for l in &r.labs {
        let uln =
            l.high.filter(|h| *h > 0.0).map(|h| format!(" ({:.1}× ULN)", l.value / h)).unwrap_or_default();
        items.push(format!("Lab {}: {} {}{uln}", l.test, l.value, l.unit.as_deref().unwrap_or_default()));
    }
    for s in &r.scores {
        items.push(format!("{}: {}", s.name, s.value));
    }
    if let Some(m) = &r.mri {
        let n = |v: Option<u32>| v.map_or("–".to_string(), |v| v.to_string());
        items.push(format!("MRI: {} new/enlarging T2, {} Gd+", n(m.t2_new_or_enlarging), n(m.gd_enhancing)));
    }
    if let Some(onset) = &r.relapse {
        items.push(format!("Relapse, onset {onset}"));
    }
    minijinja::context! { when => when, visit => r.visit.clone(), items => items }
}

#[derive(Deserialize, Default)]
pub(crate) struct Done {
    pub done: Option<String>,
}

pub(crate) async fn page(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Query(done): Query<Done>,
) -> Result<Response, ConsoleError> {
    render(&state, &viewer, id, done.done.as_deref(), None, StatusCode::OK).await
}

async fn render(
    state: &ConsoleState,
    viewer: &Viewer,
    id: i64,
    done: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let zone = state.config.study.zones.study;
    let alert = state
        .store
        .alert(id)
        .await?
        .ok_or_else(|| ConsoleError(StatusCode::NOT_FOUND, format!("There is no alert #{id}.")))?;
    let history =
        if alert.subject.is_empty() { None } else { Some(state.store.history(&alert.subject).await?) };
    // The one door the emails use: the arm only for an unblinded person.
    let c =
        crate::notify::render::alert_context(&alert, viewer.blinded, history.as_ref().and_then(|h| h.arm()));
    let events = state.store.alert_events(id).await?;
    let content = alert.signed_content();
    let events: Vec<minijinja::Value> = events
        .iter()
        .map(|e| {
            minijinja::context! {
                at => e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(), actor => e.actor.clone(),
                action => e.action.clone(), comment => e.comment.clone(),
                signature => e.signature.as_ref().map(|s| s.line()),
                holds => e.signature.as_ref().map(|s| s.holds_for(&content)),
            }
        })
        .collect();
    let emails: Vec<minijinja::Value> = state
        .store
        .deliveries_of_alert(id)
        .await?
        .iter()
        .map(|m| {
            minijinja::context! {
                kind => m.kind.clone(), recipient => m.recipient.clone(), role => m.role.clone(),
                status => m.status.clone(), attempts => m.attempts, error => m.last_error.clone(),
            }
        })
        .collect();
    // The subject's records within 30 days of the finding, in clinical order.
    let finding = alert.clinical_time.unwrap_or(alert.raised_at);
    let window = chrono::Duration::days(30);
    let mut near: Vec<&Record> = history
        .as_ref()
        .map(|h| {
            h.records
                .iter()
                .filter(|r| r.when().is_none_or(|t| (t.earliest() - finding).abs() <= window))
                .collect()
        })
        .unwrap_or_default();
    near.sort_by_key(|r| r.when().map(|t| t.earliest()));
    let timeline: Vec<minijinja::Value> = near.iter().map(|r| record_view(r, zone)).collect();
    let authority = &state.config.authority;
    let may = |a: Action| authority.permits(&viewer.user.roles, a);
    let status_now = alert.status.as_str();
    let rule = alert.evidence.get("rule").cloned().unwrap_or_default();
    let ctx = minijinja::context! {
        a => minijinja::Value::from(minijinja::value::Serde(&c)),
        episode => alert.episode.clone(), level => alert.level,
        raised => alert.raised_at.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z").to_string(),
        finding => finding.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z").to_string(),
        rule_file => rule.get("file").and_then(|f| f.as_str()).map(str::to_string),
        rule_line => rule.get("line").and_then(|l| l.as_i64()),
        rule_kind => rule.get("kind").and_then(|k| k.as_str()).map(str::to_string),
        details => serde_json::to_string_pretty(&alert.evidence.get("details").cloned().unwrap_or_default()).unwrap_or_default(),
        escalation_step => alert.escalation_step,
        next_escalation => alert.next_escalation_at.map(|t| t.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z").to_string()),
        events => events,
        emails => emails,
        timeline => timeline,
        can => minijinja::context! {
            acknowledge => may(Action::Acknowledge) && matches!(status_now, "open" | "silenced"),
            resolve => may(Action::Resolve) && status_now != "resolved",
            silence => may(Action::Silence) && !alert.subject.is_empty() && status_now != "resolved",
        },
        required => minijinja::context! {
            acknowledge => authority.requires_signature(Action::Acknowledge),
            resolve => authority.requires_signature(Action::Resolve),
        },
        done => done, error => error,
    };
    let html = state.render("alert.html", viewer, ctx)?;
    Ok((status, html).into_response())
}

/// The signature fields of a console form.
pub(crate) struct Signing<'a> {
    /// Empty or absent: not signed.
    pub meaning: Option<&'a str>,
    /// The signer's id: asked at the first signing of a session only.
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
}

/// The signature a console form asks for on `action` over `content`: None where none is
/// given and none is required; Err with the status and the reason to show where it is
/// refused (nothing is signed then; a wrong password counts toward lockout).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn signed(
    state: &ConsoleState,
    viewer: &Viewer,
    form: Signing<'_>,
    action: Action,
    entity: &str,
    id: &str,
    content: &serde_json::Value,
    comment: Option<&str>,
) -> Result<Result<Option<crate::accounts::NewSignature>, (StatusCode, String)>, ConsoleError> {
    let meaning = form.meaning.map(str::trim).filter(|m| !m.is_empty());
    let Some(meaning) = meaning else {
        if state.config.authority.requires_signature(action) {
            let why = format!(
                "This study requires an electronic signature to {}: choose its meaning and enter your password.",
                action.as_str()
            );
            return Ok(Err((StatusCode::UNPROCESSABLE_ENTITY, why)));
        }
        return Ok(Ok(None));
    };
    let meaning = match crate::accounts::Meaning::parse(meaning) {
        Ok(m) => m,
        Err(e) => return Ok(Err((StatusCode::UNPROCESSABLE_ENTITY, e))),
    };
    // The first signing of a session: id and password; later ones: the password.
    if !viewer.signed && form.user.map(str::trim).unwrap_or_default() != viewer.user.id {
        state.refused(viewer, "signature", entity, id, "user id missing or not the signed-in person's").await;
        let why = "Nothing was signed: the first signature of a session needs your user id and password.";
        return Ok(Err((StatusCode::FORBIDDEN, why.to_string())));
    }
    match state.accounts.authenticate(&viewer.user.id, form.password.unwrap_or_default(), "signature").await?
    {
        Ok(signer) => Ok(Ok(Some(state.accounts.signature(
            &signer,
            meaning,
            action,
            entity,
            id,
            content,
            comment,
            state.config.study.zones.study,
        )))),
        Err(e) => Ok(Err((StatusCode::FORBIDDEN, format!("Nothing was signed: {e}.")))),
    }
}

#[derive(Deserialize)]
pub(crate) struct Decision {
    #[serde(default)]
    csrf: String,
    comment: Option<String>,
    /// Empty: not signed.
    meaning: Option<String>,
    /// The signer's id: asked at the first signing of a session only.
    user: Option<String>,
    password: Option<String>,
    /// Silence: how long.
    r#for: Option<String>,
}

pub(crate) async fn act(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<Decision>,
) -> Result<Response, ConsoleError> {
    state.check_csrf(&viewer, &form.csrf).await?;
    let (authority_action, transition) = match action.as_str() {
        "acknowledge" => (Action::Acknowledge, Some(crate::alerts::Transition::Acknowledge)),
        "resolve" => (Action::Resolve, Some(crate::alerts::Transition::Resolve)),
        "silence" => (Action::Silence, None),
        _ => return Err(ConsoleError(StatusCode::NOT_FOUND, format!("There is no action `{action}`."))),
    };
    let fail = |why: String, status: StatusCode| {
        let state = state.clone();
        let viewer = viewer.clone();
        async move { render(&state, &viewer, id, None, Some(&why), status).await }
    };
    if !state.config.authority.permits(&viewer.user.roles, authority_action) {
        let why = format!(
            "You may not {} alerts: it needs one of the roles {}.",
            authority_action.as_str(),
            state.config.authority.roles_for(authority_action).join(", ")
        );
        state.refused(&viewer, authority_action.as_str(), "alert", &id.to_string(), &why).await;
        return fail(why, StatusCode::FORBIDDEN).await;
    }
    let alert = state
        .store
        .alert(id)
        .await?
        .ok_or_else(|| ConsoleError(StatusCode::NOT_FOUND, format!("There is no alert #{id}.")))?;
    let comment = form.comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let Some(transition) = transition else {
        // A silence of this rule for this subject.
        let span = match crate::rules::Span::parse(form.r#for.as_deref().unwrap_or("").trim()) {
            Ok(s) => s,
            Err(e) => return fail(format!("How long: {e}"), StatusCode::UNPROCESSABLE_ENTITY).await,
        };
        let why = comment.unwrap_or_default();
        if let Err(e) = crate::alerts::silence::check_request(span, state.config.alerting.max_silence, why) {
            return fail(e, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
        let expires = state.store.now() + span.chrono();
        state
            .store
            .create_silence(
                Some(&alert.rule_id),
                Some(&alert.subject),
                None,
                expires,
                &viewer.user.actor(),
                why,
            )
            .await?;
        return Ok(Redirect::to(&format!("/console/alerts/{id}?done=silenced")).into_response());
    };
    let signature = match signed(
        &state,
        &viewer,
        Signing {
            meaning: form.meaning.as_deref(),
            user: form.user.as_deref(),
            password: form.password.as_deref(),
        },
        authority_action,
        "alert",
        &id.to_string(),
        &alert.signed_content(),
        comment,
    )
    .await?
    {
        Ok(s) => s,
        Err((status, why)) => return fail(why, status).await,
    };
    let result = state
        .store
        .transition_signed(
            id,
            transition,
            &viewer.user.actor(),
            comment,
            state.config.alerting.second_person_resolves_critical,
            signature.as_ref(),
        )
        .await;
    match result {
        Ok(a) => {
            if signature.is_some() {
                state.store.mark_session_signed(&viewer.session).await?;
            }
            let done = if transition == crate::alerts::Transition::Resolve && a.status.as_str() != "resolved"
            {
                "resolution-requested"
            } else {
                transition.action()
            };
            Ok(Redirect::to(&format!("/console/alerts/{id}?done={}", super::url_encode(done)))
                .into_response())
        }
        Err(e) => match e.downcast_ref::<crate::store::TransitionError>() {
            Some(t) => fail(t.to_string(), StatusCode::CONFLICT).await,
            None => Err(e.into()),
        },
    }
}
