//! The alert inbox: open, acknowledged, silenced, resolved; filtered; the oldest open
//! critical alert first; one page of 50 at a time.

use super::{day_ms, given, page_link, ConsoleError, ConsoleState, Viewer};
use crate::store::AlertFilter;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

const PAGE: i64 = 50;

#[derive(Deserialize, Default, Debug)]
pub(crate) struct InboxQuery {
    status: Option<String>,
    severity: Option<String>,
    rule: Option<String>,
    site: Option<String>,
    subject: Option<String>,
    /// Raised from / to (dates, YYYY-MM-DD, whole days in the study's zone).
    from: Option<String>,
    to: Option<String>,
    page: Option<i64>,
    /// Only the table (for the script that refreshes it in place).
    fragment: Option<String>,
}

pub(crate) async fn inbox(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Query(q): Query<InboxQuery>,
) -> Result<Response, ConsoleError> {
    let zone = state.config.study.zones.study;
    let filter = AlertFilter {
        status: given(&q.status),
        severity: given(&q.severity),
        rule_id: given(&q.rule),
        site: given(&q.site),
        subject: given(&q.subject),
        from_ms: day_ms(&q.from, zone, false)?,
        to_ms: day_ms(&q.to, zone, true)?,
    };
    let page = q.page.unwrap_or(1).max(1);
    let started = std::time::Instant::now();
    let (alerts, total) = state.store.alert_page(&filter, (page - 1) * PAGE, PAGE).await?;
    let counts = state.store.alert_counts(&filter).await?;
    let count = |s: &str| counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    let rows: Vec<minijinja::Value> = alerts
        .iter()
        .map(|a| {
            // The one door the emails use: no arm for a blinded person.
            let c = crate::notify::render::alert_context(a, viewer.blinded, None);
            minijinja::context! {
                id => c.id, title => c.title, severity => c.severity, status => c.status,
                subject => if c.subject.is_empty() { "cohort".to_string() } else { c.subject },
                site => c.site, rule_id => c.rule_id,
                raised => a.raised_at.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string(),
                age_hours => (state.store.now() - a.raised_at).num_hours(),
            }
        })
        .collect();
    let pages = (total + PAGE - 1) / PAGE;
    let fields = [
        ("status", &q.status),
        ("severity", &q.severity),
        ("rule", &q.rule),
        ("site", &q.site),
        ("subject", &q.subject),
        ("from", &q.from),
        ("to", &q.to),
    ];
    let query = |p: i64| page_link(&fields, p);
    let ctx = minijinja::context! {
        alerts => rows,
        total => total,
        page => page,
        pages => pages,
        prev => (page > 1).then(|| query(page - 1)),
        next => (page < pages).then(|| query(page + 1)),
        refresh => format!("{}&fragment=1", query(page)),
        counts => minijinja::context! {
            open => count("open"), acknowledged => count("acknowledged"),
            silenced => count("silenced"), resolved => count("resolved"),
        },
        f => minijinja::context! {
            status => given(&q.status), severity => given(&q.severity), rule => given(&q.rule),
            site => given(&q.site), subject => given(&q.subject), from => given(&q.from), to => given(&q.to),
        },
        server_ms => started.elapsed().as_millis() as u64,
    };
    if q.fragment.is_some() {
        let html = state
            .templates
            .get_template("inbox_table.html")
            .and_then(|t| t.render(ctx))
            .map_err(|e| ConsoleError::from(anyhow::Error::new(e)))?;
        return Ok(Html(html).into_response());
    }
    Ok(state.render("inbox.html", &viewer, ctx)?.into_response())
}
