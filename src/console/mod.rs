//! The safety console: the web pages where the safety officer and the DSMB see what
//! happened, decide, and leave a signed trace. Served by `vigil run` under `/console`,
//! rendered on the server (minijinja), usable without JavaScript; a small script only
//! refreshes the inbox in place.
//!
//! Every page needs a signed-in person (a session cookie: HttpOnly, SameSite=Strict, Secure
//! when `console.base_url` is https, ended after `console.session_idle` without a request).
//! Every form carries the session's CSRF token. What a person sees of the treatment arm is
//! decided in one place, [`crate::notify::render::visible_arm`], the one the emails use.

mod alert;
mod edss_chart;
mod inbox;
mod pages;
mod rule_pack;

use crate::access::Accounts;
use crate::accounts::User;
use crate::config::Config;
use crate::store::Store;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

const SESSION_COOKIE: &str = "vigil_session";
/// The sign-in form's CSRF token, before there is a session (double-submit cookie).
const SIGN_IN_COOKIE: &str = "vigil_sign_in";

/// What the console needs: the store, people and their authority, the configuration and
/// its templates.
#[derive(Clone)]
pub struct ConsoleState {
    store: Store,
    accounts: Arc<Accounts>,
    config: Arc<Config>,
    templates: Arc<minijinja::Environment<'static>>,
    /// Cookies are marked Secure (the console is reached over https).
    secure: bool,
}

impl ConsoleState {
    pub fn new(store: Store, config: &Config) -> anyhow::Result<Self> {
        let mut env = minijinja::Environment::new();
        for (name, text) in TEMPLATES {
            env.add_template(name, text)?;
        }
        env.add_filter("time", |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default()
        });
        Ok(Self {
            accounts: Arc::new(Accounts::new(store.clone(), config)),
            store,
            config: Arc::new(config.clone()),
            templates: Arc::new(env),
            secure: config.console.base_url.as_deref().is_some_and(|u| u.starts_with("https://")),
        })
    }
}

const TEMPLATES: [(&str, &str); 11] = [
    ("base.html", include_str!("templates/base.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("error.html", include_str!("templates/error.html")),
    ("inbox.html", include_str!("templates/inbox.html")),
    ("inbox_table.html", include_str!("templates/inbox_table.html")),
    ("alert.html", include_str!("templates/alert.html")),
    ("subject.html", include_str!("templates/subject.html")),
    ("reports.html", include_str!("templates/reports.html")),
    ("rules.html", include_str!("templates/rules.html")),
    ("silences.html", include_str!("templates/silences.html")),
    ("audit.html", include_str!("templates/audit.html")),
];

pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/alerts") }))
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/alerts", get(inbox::inbox))
        .route("/console/alerts/{id}", get(alert::page))
        .route("/console/alerts/{id}/{action}", post(alert::act))
        .route("/console/subjects/{id}", get(pages::subject))
        .route("/console/reports", get(pages::reports))
        .route("/console/reports/{id}/file", get(pages::report_file))
        .route("/console/reports/{id}/release", post(pages::release))
        .route("/console/rules", get(pages::rules))
        .route("/console/silences", get(pages::silences))
        .route("/console/silences/{id}/close", post(pages::close_silence))
        .route("/console/audit", get(pages::audit))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// No framing, no referrer leaking an alert's URL, no caching of safety data, and only
/// the console's own script and styles.
async fn security_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    // A page may set a stricter policy of its own (a DSMB report with its inline styles).
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    ));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")],
        include_str!("static/console.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")],
        include_str!("static/console.js"),
    )
}

// --- errors ------------------------------------------------------------------------------

/// A page that could not be shown: a status and what to tell the person.
#[derive(Debug)]
pub(crate) struct ConsoleError(StatusCode, String);

impl From<anyhow::Error> for ConsoleError {
    fn from(e: anyhow::Error) -> Self {
        if crate::store::is_unavailable(&e) {
            return ConsoleError(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database cannot be reached; try again in a moment.".into(),
            );
        }
        tracing::error!(error = %format!("{e:#}"), "Console request failed.");
        ConsoleError(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong; see the server log.".into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0} — vigil</title>\
             <link rel=\"stylesheet\" href=\"/console/static/console.css\"></head><body><main class=\"narrow\">\
             <h1>{0}</h1><p role=\"alert\">{1}</p><p><a href=\"/console/alerts\">Back to the alerts</a></p></main></body></html>",
            self.0.canonical_reason().unwrap_or("Error"),
            html_escape(&self.1)
        );
        (self.0, Html(body)).into_response()
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

// --- who is looking ----------------------------------------------------------------------

/// The signed-in person a page is for.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub user: User,
    /// The session cookie's digest.
    pub session: String,
    pub csrf: String,
    /// Whether the person signed once in this session already.
    pub signed: bool,
    pub blinded: bool,
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn random_token() -> Result<String, ConsoleError> {
    let mut bits = [0u8; 32];
    getrandom::getrandom(&mut bits)
        .map_err(|e| ConsoleError(StatusCode::INTERNAL_SERVER_ERROR, format!("no randomness: {e}")))?;
    Ok(hex::encode(bits))
}

impl FromRequestParts<ConsoleState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let to_sign_in = || {
            let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/console/alerts");
            let next: String = url_encode(next);
            Redirect::to(&format!("/console/sign-in?next={next}")).into_response()
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else { return Err(to_sign_in()) };
        let session = digest(token);
        let live = state
            .store
            .live_session(&session, state.config.console.session_idle)
            .await
            .map_err(|e| ConsoleError::from(e).into_response())?;
        let Some(live) = live else { return Err(to_sign_in()) };
        let user =
            state.store.user(&live.user_id).await.map_err(|e| ConsoleError::from(e).into_response())?;
        let Some(user) = user.filter(|u| u.disabled_at.is_none() && u.locked_at.is_none()) else {
            return Err(to_sign_in());
        };
        let blinded = user.blinded(&state.config);
        Ok(Viewer { user, session, csrf: live.csrf, signed: live.signed, blinded })
    }
}

/// A form field as given: trimmed, None when empty.
pub(crate) fn given(s: &Option<String>) -> Option<String> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// A date field (YYYY-MM-DD, a whole day in the study's zone) as epoch ms: the day's start,
/// or just after its end (`end`), for a `[from, to)` range. 400 when it is not a date.
pub(crate) fn day_ms(
    s: &Option<String>,
    zone: chrono_tz::Tz,
    end: bool,
) -> Result<Option<i64>, ConsoleError> {
    let Some(d) = given(s) else { return Ok(None) };
    let t = crate::model::ClinicalTime::parse_in(&d, zone)
        .map_err(|e| ConsoleError(StatusCode::BAD_REQUEST, format!("{d}: {e}")))?;
    Ok(Some(if end { t.latest().timestamp_millis() + 1 } else { t.earliest().timestamp_millis() }))
}

/// `?k=v&…&page=N` with the fields given, for a listing's page links.
pub(crate) fn page_link(fields: &[(&str, &Option<String>)], page: i64) -> String {
    let mut parts: Vec<String> =
        fields.iter().filter_map(|(k, v)| given(v).map(|v| format!("{k}={}", url_encode(&v)))).collect();
    parts.push(format!("page={page}"));
    format!("?{}", parts.join("&"))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl ConsoleState {
    /// Refuses a form whose CSRF token is not the session's (403), and audits it.
    pub(crate) async fn check_csrf(&self, viewer: &Viewer, given: &str) -> Result<(), ConsoleError> {
        let (a, b) = (digest(given), digest(&viewer.csrf));
        if a != b || given.is_empty() {
            self.refused(viewer, "form", "console", "", "the form's CSRF token is missing or wrong").await;
            return Err(ConsoleError(StatusCode::FORBIDDEN, "This form is not valid any more (its security token is missing or wrong). Reload the page and try again.".into()));
        }
        Ok(())
    }

    /// Records a refusal in the audit trail.
    pub(crate) async fn refused(&self, viewer: &Viewer, what: &str, entity: &str, id: &str, why: &str) {
        let detail = serde_json::json!({ "reason": why, "via": "console" });
        if let Err(e) =
            self.store.audit(&viewer.user.actor(), &format!("{what} refused"), entity, id, &detail).await
        {
            tracing::error!(error = %format!("{e:#}"), "A refusal could not be written to the audit trail.");
        }
    }

    /// Renders a page inside the layout, for `viewer`.
    pub(crate) fn render(
        &self,
        name: &str,
        viewer: &Viewer,
        ctx: minijinja::Value,
    ) -> Result<Html<String>, ConsoleError> {
        let base = minijinja::context! {
            study => self.config.study.title.clone(),
            me => minijinja::context! {
                id => viewer.user.id.clone(), name => viewer.user.name.clone(),
                roles => viewer.user.roles.clone(), blinded => viewer.blinded,
            },
            csrf => viewer.csrf.clone(),
            signed_before => viewer.signed,
            zone => (self.config.study.zones.study != chrono_tz::Tz::UTC).then(|| self.config.study.zones.study.name()),
        };
        let ctx = minijinja::context! { ..base, ..ctx };
        self.templates
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map(Html)
            .map_err(|e| ConsoleError::from(anyhow::Error::new(e).context(format!("template {name}"))))
    }
}

// --- sign in and out ---------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct Next {
    next: Option<String>,
}

/// Only a console path: a sign-in link cannot send anyone elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console/") && !n.starts_with("//") && !n.contains("://") => n.to_string(),
        _ => "/console/alerts".to_string(),
    }
}

fn cookie_header(state: &ConsoleState, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = if state.secure { "; Secure" } else { "" };
    let age = max_age.map(|a| format!("; Max-Age={a}")).unwrap_or_default();
    let text = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict{secure}{age}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("vigil_invalid=1"))
}

async fn sign_in_page(
    State(state): State<ConsoleState>,
    Query(q): Query<Next>,
) -> Result<Response, ConsoleError> {
    sign_in_form(&state, q.next.as_deref(), None, StatusCode::OK)
}

fn sign_in_form(
    state: &ConsoleState,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let token = random_token()?;
    let html = state
        .templates
        .get_template("sign_in.html")
        .and_then(|t| {
            t.render(minijinja::context! {
                study => state.config.study.title.clone(), csrf => token.clone(),
                next => safe_next(next), error => error,
            })
        })
        .map_err(|e| ConsoleError::from(anyhow::Error::new(e)))?;
    let mut response = (status, Html(html)).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie_header(state, SIGN_IN_COOKIE, &token, Some(600)));
    Ok(response)
}

#[derive(Deserialize)]
struct SignIn {
    user: String,
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

async fn sign_in(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Result<Response, ConsoleError> {
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || digest(expected) != digest(&form.csrf) {
        let detail = serde_json::json!({ "reason": "the sign-in form's CSRF token is missing or wrong", "via": "console" });
        state
            .store
            .audit(
                &format!("user:{}", form.user.trim()),
                "sign-in refused",
                "user",
                form.user.trim(),
                &detail,
            )
            .await?;
        return sign_in_form(
            &state,
            form.next.as_deref(),
            Some("This form was not valid any more. Please sign in again."),
            StatusCode::FORBIDDEN,
        );
    }
    let user = form.user.trim();
    match state.accounts.authenticate(user, &form.password, "sign-in").await? {
        Ok(person) => {
            let token = random_token()?;
            let csrf = random_token()?;
            state.store.create_session(&digest(&token), &person.id, &csrf).await?;
            let detail = serde_json::json!({ "via": "console" });
            state.store.audit(&person.actor(), "signed in", "user", &person.id, &detail).await?;
            let mut response = Redirect::to(&safe_next(form.next.as_deref())).into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, cookie_header(&state, SESSION_COOKIE, &token, None));
            response
                .headers_mut()
                .append(header::SET_COOKIE, cookie_header(&state, SIGN_IN_COOKIE, "", Some(0)));
            Ok(response)
        }
        Err(e) => {
            let message = match e {
                crate::access::AuthError::Refused => "Unknown user or wrong password.".to_string(),
                other => format!("{other}."),
            };
            sign_in_form(&state, form.next.as_deref(), Some(&message), StatusCode::UNAUTHORIZED)
        }
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, ConsoleError> {
    state.check_csrf(&viewer, &form.csrf).await?;
    state.store.end_session(&viewer.session).await?;
    let detail = serde_json::json!({ "via": "console" });
    state.store.audit(&viewer.user.actor(), "signed out", "user", &viewer.user.id, &detail).await?;
    let mut response = Redirect::to("/console/sign-in").into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie_header(&state, SESSION_COOKIE, "", Some(0)));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_cannot_send_anyone_off_the_console() {
        assert_eq!(safe_next(Some("/console/alerts/3")), "/console/alerts/3");
        for bad in ["https://evil.example/console/", "//evil.example/console/", "/v1/alerts", "/console"] {
            assert_eq!(safe_next(Some(bad)), "/console/alerts", "{bad}");
        }
    }

    #[test]
    fn cookies_are_read_by_name_only() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; vigil_session=abc; x_vigil_session=no"));
        assert_eq!(cookie(&h, "vigil_session"), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
