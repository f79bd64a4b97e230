//! The HTTP API: records in, alerts out, behind bearer tokens.
//!
//! A person's token (`vigil tokens add`) acts as that person, within its scopes (`ingest`,
//! `read`, `operate`, `reload`) and the person's authority (`authority` in the config);
//! acknowledging, resolving and silencing need such a token, and may be signed with the
//! person's password. Service tokens come from the environment (`VIGIL_API_TOKENS=name:token,…`
//! or `VIGIL_API_TOKEN`) or a file of `name sha256-hex` lines (`http.token_file`), so no
//! secret sits in a committed file; they ingest, read and reload, and never decide about an
//! alert. A refused request is an audit entry. `GET /healthz`, `/readyz`, `/metrics` and
//! `GET /v1/openapi.json` need no token (they carry counts, never a subject or an arm).
//!
//! The API holds a narrow handle ([`ApiState`]): the store, the tokens, the body limit and
//! a wake handle for the evaluator. Records are committed before the answer; evaluating
//! them is the evaluator's job, woken here rather than run inside the request.
//!
//! The server holds at most `http.max_connections` connections (more wait to be accepted)
//! and closes one that waits `http.idle_timeout_secs` on its client; failed
//! authentications are answered 429 past a limit per window, in all and per client address.

use crate::access::Accounts;
use crate::accounts::{Scope, User};
use crate::config::{Action, Config};
use crate::store::Store;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Known API tokens, kept only as SHA-256 digests.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, [u8; 32])>,
}

/// The shortest token vigil accepts: a short one is guessed (`openssl rand -hex 32` gives 64).
const SHORTEST_TOKEN: usize = 16;

fn strong_enough(whose: &str, token: &str) -> anyhow::Result<()> {
    let n = token.trim().chars().count();
    if n < SHORTEST_TOKEN {
        anyhow::bail!("{whose}: a token of {n} characters is too easy to guess; use at least {SHORTEST_TOKEN} (e.g. `openssl rand -hex 32`)");
    }
    Ok(())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

impl Tokens {
    /// From `VIGIL_API_TOKENS` (`name:token,…`), `VIGIL_API_TOKEN` (named `api`) and a
    /// token file of `name sha256-hex` lines.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut t = Tokens::default();
        if let Ok(list) = std::env::var("VIGIL_API_TOKENS") {
            for item in list.split(',').filter(|s| !s.trim().is_empty()) {
                let (name, token) = item.split_once(':').ok_or_else(|| {
                    anyhow::anyhow!("VIGIL_API_TOKENS: expected name:token, got an item without `:`")
                })?;
                strong_enough(&format!("VIGIL_API_TOKENS ({})", name.trim()), token)?;
                t.add(name.trim(), digest(token));
            }
        }
        if let Ok(token) = std::env::var("VIGIL_API_TOKEN") {
            if !token.trim().is_empty() {
                strong_enough("VIGIL_API_TOKEN", &token)?;
                t.add("api", digest(&token));
            }
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read token file {}: {e}", path.display()))?;
            for (i, line) in
                text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
            {
                let bad = || anyhow::anyhow!("{}:{}: expected `name sha256-hex`", path.display(), i + 1);
                let (name, hash) = line.trim().split_once(char::is_whitespace).ok_or_else(bad)?;
                let bytes = hex::decode(hash.trim()).map_err(|_| bad())?;
                let hash: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
                t.add(name, hash);
            }
        }
        Ok(t)
    }

    pub fn add(&mut self, name: &str, hash: [u8; 32]) {
        self.entries.push((name.to_string(), hash));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The name of the token presented, if it is known. Every entry is compared, in
    /// constant time, so timing says nothing about which bytes matched.
    pub fn check(&self, presented: &str) -> Option<&str> {
        let d = digest(presented);
        let mut found = None;
        for (name, hash) in &self.entries {
            let diff = hash.iter().zip(d.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// What the API needs, and nothing more: built once, from the configuration.
#[derive(Clone)]
pub struct ApiState {
    store: Store,
    tokens: Arc<Tokens>,
    /// People, their authority and their signatures.
    accounts: Option<Arc<Accounts>>,
    /// The study's zone: a signature shows its local time in it.
    zone: chrono_tz::Tz,
    max_body_bytes: usize,
    /// Wakes the evaluator when records were stored.
    evaluate: crate::evaluate::Wake,
    /// The longest silence a caller may ask for.
    longest_silence: crate::rules::Span,
    /// Failed authentications in the current window, across callers and per client.
    failed_auth: Arc<std::sync::Mutex<FailedAuth>>,
    /// Connections served at once; more wait in the listen queue.
    max_connections: usize,
    /// A connection that waits this long on its client is closed (see [`IdleIo`]).
    idle_timeout: Duration,
    /// Whether a critical alert's resolution needs a second person to confirm it.
    second_person_resolves_critical: bool,
    /// Where `POST /v1/reload` asks the daemon to reload (None: not offered).
    reload: Option<tokio::sync::mpsc::Sender<ReloadRequest>>,
}

/// A request to reload the configuration and rules, made by `by`; the answer is what the
/// reload did (as JSON) or why it was refused (every problem, file:line:col).
pub struct ReloadRequest {
    pub by: String,
    pub answer: tokio::sync::oneshot::Sender<Result<Value, String>>,
}

/// Failed authentications are counted per window, in all and per client address; past
/// either limit they are answered 429 (a caller with a valid token is never held back by
/// someone else's guessing: only failures are counted and refused).
#[derive(Debug)]
struct FailedAuth {
    window_started: std::time::Instant,
    count: u32,
    /// Failures per client in this window; emptied with it, so bounded by what one window
    /// can bring, and by [`FAILED_AUTH_CLIENTS`] besides.
    by_client: HashMap<IpAddr, u32>,
}

impl Default for FailedAuth {
    fn default() -> Self {
        Self { window_started: std::time::Instant::now(), count: 0, by_client: HashMap::new() }
    }
}

impl FailedAuth {
    /// Counts one failure (from `client`, if known): (failures in all, the client's
    /// failures, whether it is answered 429).
    fn fail(&mut self, client: Option<IpAddr>) -> (u32, u32, bool) {
        if self.window_started.elapsed() > FAILED_AUTH_WINDOW {
            *self = FailedAuth::default();
        }
        self.count += 1;
        let mine = match client {
            Some(ip) if self.by_client.len() < FAILED_AUTH_CLIENTS || self.by_client.contains_key(&ip) => {
                let n = self.by_client.entry(ip).or_insert(0);
                *n += 1;
                *n
            }
            // Too many addresses this window: the limit in all still holds.
            _ => 0,
        };
        (self.count, mine, self.count > FAILED_AUTH_LIMIT || mine > FAILED_AUTH_PER_CLIENT)
    }
}

/// The address failures are counted under: an IPv6 client by its /64, the block one host
/// is usually given (it could otherwise take a new address per guess).
fn client_key(addr: SocketAddr) -> IpAddr {
    match addr.ip().to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

const FAILED_AUTH_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
const FAILED_AUTH_LIMIT: u32 = 20;
/// Below the limit in all, so one guessing client is stopped before it stops the others.
const FAILED_AUTH_PER_CLIENT: u32 = 10;
const FAILED_AUTH_CLIENTS: usize = 10_000;
/// A request (body included) that takes longer is cut off with 408.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl ApiState {
    pub fn new(store: Store, tokens: Tokens, max_body_bytes: usize, evaluate: crate::evaluate::Wake) -> Self {
        Self {
            store,
            tokens: Arc::new(tokens),
            accounts: None,
            zone: chrono_tz::Tz::UTC,
            max_body_bytes,
            evaluate,
            longest_silence: crate::config::DEFAULT_MAX_SILENCE,
            failed_auth: Arc::default(),
            max_connections: 256,
            idle_timeout: Duration::from_secs(60),
            second_person_resolves_critical: false,
            reload: None,
        }
    }

    /// The state of the configured API: its tokens (see [`Tokens::load`]) and body limit.
    pub fn from_config(
        config: &Config,
        store: Store,
        evaluate: crate::evaluate::Wake,
    ) -> anyhow::Result<Self> {
        let tokens = Tokens::load(config.http_token_file.as_deref())?;
        if tokens.is_empty() {
            tracing::info!("No service token configured (VIGIL_API_TOKENS, VIGIL_API_TOKEN or http.token_file): /v1 takes people's tokens only (`vigil tokens add`).");
        }
        let accounts = Arc::new(Accounts::new(store.clone(), config));
        let mut state = Self::new(store, tokens, config.http_max_body_bytes, evaluate);
        state.accounts = Some(accounts);
        state.zone = config.study.zones.study;
        state.longest_silence = config.alerting.max_silence;
        state.second_person_resolves_critical = config.alerting.second_person_resolves_critical;
        state.max_connections = config.http_max_connections;
        state.idle_timeout = Duration::from_secs(config.http_idle_timeout_secs);
        Ok(state)
    }

    /// Offers `POST /v1/reload`, answered by whoever holds the other end.
    pub fn with_reload(mut self, reload: tokio::sync::mpsc::Sender<ReloadRequest>) -> Self {
        self.reload = Some(reload);
        self
    }
}

/// An API error: a status and a message, as JSON.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({"error": self.1}))).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
        }
        response
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        if let Some(t) = e.downcast_ref::<crate::store::TransitionError>() {
            let status = match t {
                crate::store::TransitionError::NotFound(_) => StatusCode::NOT_FOUND,
                crate::store::TransitionError::NotAllowed { .. } => StatusCode::CONFLICT,
                crate::store::TransitionError::ReasonRequired(_) => StatusCode::UNPROCESSABLE_ENTITY,
            };
            return ApiError(status, t.to_string());
        }
        if crate::store::is_unavailable(&e) {
            // Nothing was stored: the caller keeps the data and sends it again later.
            tracing::warn!(error = %format!("{e:#}"), "API request refused: the database is unavailable.");
            return ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable; nothing was stored, retry later".into(),
            );
        }
        tracing::error!(error = %format!("{e:#}"), "API request failed.");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server log".into())
    }
}

/// Who a request acts for: a person through one of their tokens, or a service token.
#[derive(Debug, Clone)]
enum Caller {
    Person { user: Box<User>, token: String, scopes: Vec<Scope> },
    Service { name: String },
}

/// What a service token may do: send records, read, reload. Never a decision about an
/// alert: that is a person's, with their name on it.
const SERVICE_SCOPES: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Reload];

impl Caller {
    /// The actor written in the trail: `user:ID` or `token:NAME`.
    fn actor(&self) -> String {
        match self {
            Caller::Person { user, .. } => user.actor(),
            Caller::Service { name } => format!("token:{name}"),
        }
    }

    /// The source records sent by this caller are filed under.
    fn source(&self) -> String {
        match self {
            Caller::Person { user, token, .. } => format!("http:user:{}/{token}", user.id),
            Caller::Service { name } => format!("http:{name}"),
        }
    }

    fn has(&self, scope: Scope) -> bool {
        match self {
            Caller::Person { scopes, .. } => scopes.contains(&scope),
            Caller::Service { .. } => SERVICE_SCOPES.contains(&scope),
        }
    }
}

impl ApiState {
    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "a bearer token is required".into()))?;
        if let Some(name) = self.tokens.check(presented) {
            return Ok(Caller::Service { name: name.to_string() });
        }
        let digest = crate::accounts::token_digest(presented);
        match self.store.token_owner(&digest).await? {
            Some((token, user)) => {
                Ok(Caller::Person { user: Box::new(user), token: token.name, scopes: token.scopes })
            }
            None => Err(ApiError(StatusCode::UNAUTHORIZED, "unknown token".into())),
        }
    }

    /// Refuses `what` to `caller` with 403, and records the refusal in the audit trail.
    async fn refuse(&self, caller: &Caller, what: &str, entity: &str, id: &str, why: String) -> ApiError {
        let detail = json!({ "reason": why, "via": "http" });
        if let Err(e) =
            self.store.audit(&caller.actor(), &format!("{what} refused"), entity, id, &detail).await
        {
            tracing::error!(error = %format!("{e:#}"), "A refusal could not be written to the audit trail.");
        }
        tracing::warn!(actor = %caller.actor(), %what, reason = %why, "Request refused.");
        ApiError(StatusCode::FORBIDDEN, why)
    }

    /// The caller's token must carry `scope` (403, audited, otherwise).
    async fn need_scope(
        &self,
        caller: &Caller,
        scope: Scope,
        what: &str,
        entity: &str,
        id: &str,
    ) -> Result<(), ApiError> {
        if caller.has(scope) {
            return Ok(());
        }
        let why = match caller {
            Caller::Service { .. } if scope == Scope::Operate => {
                "a service token cannot act on alerts: use a person's token (`vigil tokens add`)".to_string()
            }
            _ => format!("this token lacks the `{}` scope", scope.as_str()),
        };
        Err(self.refuse(caller, what, entity, id, why).await)
    }

    /// A person with a token of scope `operate` whose roles give them authority for `action`.
    async fn person_for(
        &self,
        caller: &Caller,
        action: Action,
        entity: &str,
        id: &str,
    ) -> Result<User, ApiError> {
        self.need_scope(caller, Scope::Operate, action.as_str(), entity, id).await?;
        let (Caller::Person { user, .. }, Some(accounts)) = (caller, &self.accounts) else {
            return Err(self
                .refuse(caller, action.as_str(), entity, id, "a person's token is required".into())
                .await);
        };
        if !accounts.authority.permits(&user.roles, action) {
            let why = format!(
                "{} may not {}: it needs one of the roles {:?}",
                user.id,
                action.as_str(),
                accounts.authority.roles_for(action)
            );
            return Err(self.refuse(caller, action.as_str(), entity, id, why).await);
        }
        Ok(user.as_ref().clone())
    }
}

/// Checks the token before anything reads the body: an unauthenticated upload is refused
/// at its headers, not after it has been held in memory.
async fn require_token(
    State(api): State<ApiState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_string();
    if path == "/v1/openapi.json" {
        return next.run(request).await;
    }
    match api.caller(request.headers()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(unavailable) if unavailable.0 == StatusCode::SERVICE_UNAVAILABLE => unavailable.into_response(),
        Err(refused) => {
            // Absent only when the router is served without connection info.
            let client = request.extensions().get::<ConnectInfo<Client>>().map(|c| c.0.addr);
            let (count, mine, limited) = api
                .failed_auth
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .fail(client.map(client_key));
            // The first failures of a window are logged one by one, then the moment a
            // client is held back, then one line per 100. The token presented never is.
            if count <= FAILED_AUTH_LIMIT || mine == FAILED_AUTH_PER_CLIENT + 1 || count % 100 == 0 {
                let client = client.map_or_else(|| "unknown".to_string(), |a| a.to_string());
                tracing::warn!(%path, %client, failures_in_window = count, client_failures_in_window = mine, "Authentication failed.");
                // Audited as often as logged: a flood is summarised, not written row by row.
                let detail = json!({ "reason": refused.1, "client": client, "path": path });
                let actor = format!("anonymous@{client}");
                if let Err(e) = api.store.audit(&actor, "authentication refused", "api", &path, &detail).await
                {
                    tracing::error!(error = %format!("{e:#}"), "A refusal could not be written to the audit trail.");
                }
            }
            if limited {
                let retry = [(axum::http::header::RETRY_AFTER, FAILED_AUTH_WINDOW.as_secs().to_string())];
                let body = Json(json!({"error": "too many failed authentications; try again later"}));
                return (StatusCode::TOO_MANY_REQUESTS, retry, body).into_response();
            }
            refused.into_response()
        }
    }
}

pub fn router(api: ApiState) -> Router {
    let limit = api.max_body_bytes;
    let v1 = Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/records", post(post_records))
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/alerts/{id}", get(show_alert))
        .route("/v1/alerts/{id}/ack", post(ack))
        .route("/v1/alerts/{id}/resolve", post(resolve))
        .route("/v1/silences", post(silence).get(list_silences))
        .route("/v1/silences/{id}/close", post(close_silence))
        .route("/v1/reload", post(reload))
        .route("/v1/subjects/{id}", get(subject))
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), require_token));
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(v1)
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    let idle = api.idle_timeout;
    idle_aware(routes.with_state(api), idle)
}

/// Serves the API, and `pages` (the console) beside it on the same address.
pub async fn serve(addr: SocketAddr, state: ApiState, pages: Option<Router>) -> anyhow::Result<()> {
    let inner = tokio::net::TcpListener::bind(addr).await?;
    let (max, idle) = (state.max_connections.clamp(1, Semaphore::MAX_PERMITS), state.idle_timeout);
    tracing::info!(addr = %inner.local_addr()?, max_connections = max, idle_timeout_secs = idle.as_secs(), "HTTP server listening.");
    let listener = Limited::new(inner, max, idle);
    let routes = match pages {
        Some(pages) => router(state).merge(pages),
        None => router(state),
    };
    axum::serve(listener, routes.into_make_service_with_connect_info::<Client>()).await?;
    Ok(())
}

/// What the idle timeout needs around the routes: a request body that stalls for the idle
/// timeout fails (the handler reading it answers, and the connection closes), and while a
/// request is being worked on, the connection is not idle (a slow commit is not cut off;
/// the request timeout bounds it).
fn idle_aware(routes: Router, idle: Duration) -> Router {
    routes
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(idle))
        .layer(axum::middleware::from_fn(mark_working))
}

/// Marks the connection busy while the request is inside the router.
async fn mark_working(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let _working = request.extensions().get::<ConnectInfo<Client>>().map(|c| Working::enter(&c.0.conn));
    next.run(request).await
}

/// The peer of a connection and its state, as middleware sees them (`ConnectInfo<Client>`).
#[derive(Debug, Clone)]
struct Client {
    addr: SocketAddr,
    conn: Arc<ConnState>,
}

impl Connected<IncomingStream<'_, Limited>> for Client {
    fn connect_info(stream: IncomingStream<'_, Limited>) -> Self {
        Client { addr: *stream.remote_addr(), conn: Arc::clone(&stream.io().state) }
    }
}

/// Shared by a connection's IO and the requests on it.
#[derive(Debug)]
struct ConnState {
    opened: tokio::time::Instant,
    /// Requests on this connection inside the router.
    working: AtomicUsize,
    /// When the last one left it, in ms after `opened`: the idle time counts from there.
    work_ended_ms: AtomicU64,
}

/// A request at work on a connection, from entering the router to its response.
struct Working(Arc<ConnState>);

impl Working {
    fn enter(conn: &Arc<ConnState>) -> Self {
        conn.working.fetch_add(1, Ordering::AcqRel);
        Working(Arc::clone(conn))
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.work_ended_ms.fetch_max(ms, Ordering::AcqRel);
        self.0.working.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A TCP listener that serves at most `slots` connections at once: a connection is
/// accepted only with a free slot, and the slot goes back when the connection is dropped.
/// Beyond the limit, connections wait in the kernel's listen queue, costing vigil nothing.
struct Limited {
    inner: tokio::net::TcpListener,
    slots: Arc<Semaphore>,
    max: usize,
    idle: Duration,
    /// When the limit was last found reached (logged once per minute at most).
    full_since: Option<std::time::Instant>,
}

impl Limited {
    fn new(inner: tokio::net::TcpListener, max: usize, idle: Duration) -> Self {
        Self { inner, slots: Arc::new(Semaphore::new(max)), max, idle, full_since: None }
    }
}

impl axum::serve::Listener for Limited {
    type Io = IdleIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (IdleIo, SocketAddr) {
        let slot = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                if self.full_since.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(
                        max_connections = self.max,
                        "HTTP connection limit reached: new connections wait until one closes."
                    );
                    self.full_since = Some(std::time::Instant::now());
                }
                // Fails only once the semaphore is closed, which nothing does.
                Arc::clone(&self.slots).acquire_owned().await.ok()
            }
        };
        // axum's own accept: it logs and retries errors (out of file descriptors, …).
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (IdleIo::new(io, slot, self.idle), addr)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection that waits on its client for `idle` is closed: a request's headers must
/// all arrive within `idle` of the connection opening or of the last answer (a byte now
/// and then does not keep a connection: slow loris), and an answer may not stay unread
/// for `idle`. A stalled body is [`idle_aware`]'s; time vigil works on a request does not
/// count. The timer is only looked at while the socket waits: a busy one pays no reset.
struct IdleIo {
    io: tokio::net::TcpStream,
    state: Arc<ConnState>,
    idle: Duration,
    /// When the client last took some of an answer.
    last_write: tokio::time::Instant,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// The connection's slot under the limit, given back on drop.
    _slot: Option<OwnedSemaphorePermit>,
}

impl IdleIo {
    fn new(io: tokio::net::TcpStream, slot: Option<OwnedSemaphorePermit>, idle: Duration) -> Self {
        let now = tokio::time::Instant::now();
        let state = ConnState { opened: now, working: AtomicUsize::new(0), work_ended_ms: AtomicU64::new(0) };
        Self {
            io,
            state: Arc::new(state),
            idle,
            last_write: now,
            deadline: Box::pin(tokio::time::sleep_until(now + idle)),
            _slot: slot,
        }
    }

    /// Called when the socket is not ready: an error once the connection has been idle
    /// too long, else pending (with the timer armed to wake this task).
    fn idle_check<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        // At work: not idle, but look again within `idle`, since nothing else wakes this
        // task once the response is written if the client then goes silent.
        if self.state.working.load(Ordering::Acquire) > 0 {
            let now = tokio::time::Instant::now();
            if self.deadline.deadline() <= now {
                self.deadline.as_mut().reset(now + self.idle);
            }
            // Registers the wake-up; the deadline is in the future, so it is pending.
            let _ = self.deadline.as_mut().poll(cx);
            return Poll::Pending;
        }
        let work_ended =
            self.state.opened + Duration::from_millis(self.state.work_ended_ms.load(Ordering::Acquire));
        loop {
            let due = self.last_write.max(work_ended) + self.idle;
            if tokio::time::Instant::now() >= due {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connection idle for too long",
                )));
            }
            if self.deadline.deadline() != due {
                self.deadline.as_mut().reset(due);
            }
            match self.deadline.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => continue,
            }
        }
    }

    fn wrote(&mut self, ready: std::io::Result<usize>) -> Poll<std::io::Result<usize>> {
        if matches!(ready, Ok(n) if n > 0) {
            self.last_write = tokio::time::Instant::now();
        }
        Poll::Ready(ready)
    }
}

impl AsyncRead for IdleIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.idle_check(cx),
        }
    }
}

impl AsyncWrite for IdleIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, data) {
            Poll::Ready(r) => this.wrote(r),
            Poll::Pending => this.idle_check(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, data) {
            Poll::Ready(r) => this.wrote(r),
            Poll::Pending => this.idle_check(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.idle_check(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Ready: the database answers. The body says what an operator acts on: the evaluation
/// backlog, the oldest undelivered critical email, emails that failed for good.
async fn readyz(State(api): State<ApiState>) -> (StatusCode, Json<Value>) {
    match api.store.vitals().await {
        Ok(v) => {
            let status = if v.failed_notifications > 0 || v.oldest_pending_critical_seconds > 300 {
                "degraded"
            } else {
                "ok"
            };
            (StatusCode::OK, Json(json!({"status": status, "database": "ok", "vitals": v})))
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "Readiness check: the database does not answer.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": "unreachable"})),
            )
        }
    }
}

/// Prometheus metrics: counts and ages from the store, timings from this process (no
/// subject, no arm).
async fn metrics(State(api): State<ApiState>) -> Response {
    match api.store.vitals().await {
        Ok(v) => {
            let text = v.prometheus() + &crate::metrics::prometheus();
            ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "Metrics: the database does not answer.");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

async fn healthz(State(api): State<ApiState>) -> (StatusCode, Json<Value>) {
    match api.store.record_count().await {
        Ok(n) => (StatusCode::OK, Json(json!({"status": "ok", "records": n}))),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "error", "error": e.to_string()}))),
    }
}

async fn openapi() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], include_str!("../openapi.json"))
}

/// Stores the records (JSON object, array or NDJSON), answering only once they are
/// committed: 202 with per-line results, or 422 when no line could be read.
async fn post_records(
    State(api): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: String,
) -> Result<Response, ApiError> {
    api.need_scope(&caller, Scope::Ingest, "ingest", "api", "/v1/records").await?;
    let who = caller.actor();
    if body.trim().is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "the body is empty: send records as JSON or NDJSON".into(),
        ));
    }
    // The body is in memory already, so it is stored in ONE transaction: a request is
    // committed whole or not at all, and its answer describes all of it.
    // The source names the token: a change of data is attributed to whoever sent it.
    let batch = crate::ingest::native::parse(&caller.source(), &body);
    let outcome = api.store.store_batch(&batch.records, &batch.rejected).await?;
    // Refusals in the order of the body, then the store's (a record_id reused).
    let refused: Vec<Value> =
        batch.rejected.iter().chain(outcome.conflicts.iter()).map(line_result).collect();
    tracing::info!(caller = %who, stored = outcome.stored, duplicates = outcome.duplicates, rejected = refused.len(), "Records received over HTTP.");
    // Committed: the evaluator takes them from the pending queue (alerts and their emails
    // go through the outbox).
    if outcome.stored > 0 {
        api.evaluate.wake();
    }
    let status = if batch.records.is_empty() && !refused.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::ACCEPTED
    };
    let body = json!({"stored": outcome.stored, "duplicates": outcome.duplicates, "rejected": refused});
    Ok((status, Json(body)).into_response())
}

fn line_result(r: &crate::store::Rejected) -> Value {
    json!({"line": r.line, "field": r.field, "reason": r.reason})
}

#[derive(Deserialize)]
struct AlertQuery {
    status: Option<String>,
    subject: Option<String>,
}

async fn list_alerts(
    State(api): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Value>, ApiError> {
    api.need_scope(&caller, Scope::Read, "read", "api", "/v1/alerts").await?;
    let alerts: Vec<_> = api
        .store
        .alerts()
        .await?
        .into_iter()
        .filter(|a| q.status.as_deref().is_none_or(|s| a.status == s))
        .filter(|a| q.subject.as_deref().is_none_or(|s| a.subject == s))
        .collect();
    Ok(Json(json!(alerts)))
}

async fn show_alert(
    State(api): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    api.need_scope(&caller, Scope::Read, "read", "alert", &id.to_string()).await?;
    let alert = api
        .store
        .alert(id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no alert #{id}")))?;
    let history = api.store.alert_events(id).await?;
    let emails = api.store.deliveries_of_alert(id).await?;
    // Each signature says whether it still holds for the alert as it is now.
    let content = alert.signed_content();
    let signatures: Vec<Value> = history
        .iter()
        .filter_map(|e| e.signature.as_ref())
        .map(|s| json!({"id": s.id, "line": s.line(), "holds": s.holds_for(&content)}))
        .collect();
    Ok(Json(json!({"alert": alert, "history": history, "emails": emails, "signatures": signatures})))
}

/// The body of acknowledge and resolve: a comment, and a signature where one is given or
/// the study requires it.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    comment: Option<String>,
    signature: Option<SignatureBody>,
}

/// An electronic signature: the signer's password again (the token says who), and what
/// the signature means.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureBody {
    password: String,
    meaning: String,
}

/// The signature of `user` on `action` over `content`, after checking their password
/// (a wrong one counts toward lockout); or None where none was given and none is needed.
#[allow(clippy::too_many_arguments)]
async fn signature_of(
    api: &ApiState,
    caller: &Caller,
    user: &User,
    action: Action,
    entity: &str,
    id: &str,
    content: &Value,
    comment: Option<&str>,
    given: Option<SignatureBody>,
) -> Result<Option<crate::accounts::NewSignature>, ApiError> {
    let Some(accounts) = &api.accounts else { return Ok(None) };
    let Some(given) = given else {
        if accounts.authority.requires_signature(action) {
            let why = format!(
                "this study requires an electronic signature to {}: send signature {{password, meaning}}",
                action.as_str()
            );
            return Err(api.refuse(caller, action.as_str(), entity, id, why).await);
        }
        return Ok(None);
    };
    let meaning = crate::accounts::Meaning::parse(&given.meaning)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("signature.meaning: {e}")))?;
    match accounts.authenticate(&user.id, &given.password, "signature").await? {
        Ok(signer) => {
            Ok(Some(accounts.signature(&signer, meaning, action, entity, id, content, comment, api.zone)))
        }
        Err(e) => Err(ApiError(StatusCode::FORBIDDEN, format!("nothing was signed: {e}"))),
    }
}

async fn transition(
    api: &ApiState,
    caller: &Caller,
    id: i64,
    action: crate::alerts::Transition,
    body: &str,
) -> Result<Json<Value>, ApiError> {
    let c: Decision = if body.trim().is_empty() {
        Decision::default()
    } else {
        serde_json::from_str(body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("body: {e}")))?
    };
    let authority = match action {
        crate::alerts::Transition::Resolve => Action::Resolve,
        _ => Action::Acknowledge,
    };
    let user = api.person_for(caller, authority, "alert", &id.to_string()).await?;
    let alert = api
        .store
        .alert(id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no alert #{id}")))?;
    let content = alert.signed_content();
    let comment = c.comment.as_deref();
    let signature =
        signature_of(api, caller, &user, authority, "alert", &id.to_string(), &content, comment, c.signature)
            .await?;
    let alert = api
        .store
        .transition_signed(
            id,
            action,
            &caller.actor(),
            comment,
            api.second_person_resolves_critical,
            signature.as_ref(),
        )
        .await?;
    if action == crate::alerts::Transition::Resolve && alert.status.as_str() != "resolved" {
        // Recorded as a request: another caller must confirm it.
        return Ok(Json(json!({"alert": alert, "awaiting": "a second person to confirm the resolution"})));
    }
    Ok(Json(json!(alert)))
}

async fn ack(
    State(api): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    transition(&api, &caller, id, crate::alerts::Transition::Acknowledge, &body).await
}

async fn resolve(
    State(api): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    transition(&api, &caller, id, crate::alerts::Transition::Resolve, &body).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    rule: Option<String>,
    subject: Option<String>,
    site: Option<String>,
    /// e.g. "4h"
    r#for: String,
    comment: String,
}

/// Reloads the configuration, rules and templates: 200 with the files now in force, or
/// 422 with every problem while the running set goes on.
async fn reload(
    State(api): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    api.need_scope(&caller, Scope::Reload, "reload", "configuration", "").await?;
    if let (Caller::Person { user, .. }, Some(accounts)) = (&caller, &api.accounts) {
        if !accounts.authority.permits(&user.roles, Action::Reload) {
            let why = format!(
                "{} may not reload: it needs one of the roles {:?}",
                user.id,
                accounts.authority.roles_for(Action::Reload)
            );
            return Err(api.refuse(&caller, "reload", "configuration", "", why).await);
        }
    }
    let who = caller.actor();
    let unavailable = || ApiError(StatusCode::SERVICE_UNAVAILABLE, "this server does not reload".into());
    let sender = api.reload.clone().ok_or_else(unavailable)?;
    let (answer, answered) = tokio::sync::oneshot::channel();
    sender.send(ReloadRequest { by: format!("http:{who}"), answer }).await.map_err(|_| unavailable())?;
    match answered.await.map_err(|_| unavailable())? {
        Ok(done) => Ok(Json(done)),
        Err(problems) => Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, problems)),
    }
}

async fn silence(
    State(api): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: String,
) -> Result<Response, ApiError> {
    api.person_for(&caller, Action::Silence, "silence", "").await?;
    let who = caller.actor();
    let s: NewSilence =
        serde_json::from_str(&body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("body: {e}")))?;
    if s.rule.is_none() && s.subject.is_none() && s.site.is_none() {
        return Err(ApiError(StatusCode::BAD_REQUEST, "a silence needs rule, subject or site".into()));
    }
    let span = crate::rules::Span::parse(&s.r#for)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("for: {e}")))?;
    crate::alerts::silence::check_request(span, api.longest_silence, &s.comment)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    let expires = api.store.now() + span.chrono();
    let id = api
        .store
        .create_silence(s.rule.as_deref(), s.subject.as_deref(), s.site.as_deref(), expires, &who, &s.comment)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id, "expires_at": expires}))).into_response())
}

/// Ends a silence now (its alerts open again at the next clock pass), signed where given or
/// required: `{"signature": {"password", "meaning"}}`.
async fn close_silence(
    State(api): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    let user = api.person_for(&caller, Action::CloseSilence, "silence", &id.to_string()).await?;
    let d: Decision = if body.trim().is_empty() {
        Decision::default()
    } else {
        serde_json::from_str(&body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("body: {e}")))?
    };
    let silence = api.store.silences().await?.into_iter().find(|s| s.id == id && !s.ended);
    let silence =
        silence.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no active silence #{id}")))?;
    let signature = signature_of(
        &api,
        &caller,
        &user,
        Action::CloseSilence,
        "silence",
        &id.to_string(),
        &silence.signed_content(),
        d.comment.as_deref(),
        d.signature,
    )
    .await?;
    if !api.store.close_silence(id, &caller.actor(), signature.as_ref()).await? {
        return Err(ApiError(StatusCode::CONFLICT, format!("silence #{id} has ended already")));
    }
    Ok(Json(json!({"id": id, "ended_by": caller.actor(), "signed": signature.is_some()})))
}

async fn list_silences(
    State(api): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    api.need_scope(&caller, Scope::Read, "read", "api", "/v1/silences").await?;
    Ok(Json(json!(api.store.silences().await?)))
}

/// A subject's timeline: its records (never the arm) and its alerts.
async fn subject(
    State(api): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    api.need_scope(&caller, Scope::Read, "read", "subject", &id).await?;
    crate::model::SubjectId::parse(&id)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("subject: {e}")))?;
    let history = api.store.history(&id).await?;
    if history.records.is_empty() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no subject {id}")));
    }
    let mut records: Vec<&crate::model::Record> = history.records.iter().collect();
    records.sort_by_key(|r| r.when().map(|t| t.earliest()));
    let alerts: Vec<_> = api.store.alerts().await?.into_iter().filter(|a| a.subject == id).collect();
    Ok(Json(json!({"subject": id, "site": history.site(), "records": records, "alerts": alerts})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server with the connection handling of `serve` on a free port, idle after 300 ms.
    async fn serve_test(routes: Router) -> SocketAddr {
        let inner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let listener = Limited::new(inner, 4, Duration::from_millis(300));
        let app = idle_aware(routes, Duration::from_millis(300));
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<Client>()).await
        });
        addr
    }

    #[tokio::test]
    async fn a_request_slower_than_the_idle_timeout_is_answered_and_a_silent_client_is_not() {
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(900)).await;
            "done"
        };
        let addr = serve_test(Router::new().route("/slow", get(slow))).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let asked = std::time::Instant::now();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"), "{answer}");
        // Then idle: closed (read_to_end returned) some 300 ms after the answer.
        let took = asked.elapsed();
        assert!(took >= Duration::from_millis(1100) && took < Duration::from_secs(3), "{took:?}");

        // A body that stalls is not "work": it is closed at the idle timeout.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{").await.unwrap();
        let asked = std::time::Instant::now();
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
        assert!(closed.is_ok(), "a stalled body was never closed");
        assert!(asked.elapsed() < Duration::from_secs(2), "{:?}", asked.elapsed());
    }

    #[test]
    fn failures_are_counted_per_ipv4_address_and_per_ipv6_slash_64() {
        let key = |a: &str| super::client_key(a.parse().unwrap()).to_string();
        assert_eq!(key("10.1.2.3:5000"), "10.1.2.3");
        assert_eq!(key("[::ffff:10.1.2.3]:5000"), "10.1.2.3");
        assert_eq!(key("[2001:db8:1:2:aaaa::1]:5000"), key("[2001:db8:1:2:bbbb::9]:6000"));
        assert_ne!(key("[2001:db8:1:2::1]:5000"), key("[2001:db8:1:3::1]:5000"));
    }

    #[test]
    fn one_client_is_held_back_before_the_others_and_the_window_resets_per_client_too() {
        let mut f = super::FailedAuth::default();
        let (a, b) = (Some("10.0.0.1".parse().unwrap()), Some("10.0.0.2".parse().unwrap()));
        for _ in 0..super::FAILED_AUTH_PER_CLIENT {
            assert!(!f.fail(a).2);
        }
        assert_eq!(f.fail(a), (11, 11, true));
        assert_eq!(f.fail(b), (12, 1, false));
        f.window_started -= super::FAILED_AUTH_WINDOW * 2;
        assert_eq!(f.fail(a), (1, 1, false));
    }

    #[test]
    fn a_short_token_is_refused_with_its_variable() {
        let e = super::strong_enough("VIGIL_API_TOKEN", "x").unwrap_err().to_string();
        assert!(e.contains("VIGIL_API_TOKEN") && e.contains("1 characters"), "{e}");
        assert!(super::strong_enough("VIGIL_API_TOKEN", "0123456789abcdef").is_ok());
    }
}
