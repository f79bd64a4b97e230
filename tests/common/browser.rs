//! A small W3C WebDriver client for the console's browser tests: Debian's chromedriver
//! driving headless Chromium (apt-get install chromium chromium-driver).
//!
//! It is a test harness: a failed step panics with what was asked and on which page,
//! which is the test's failure message.

use base64::Engine;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The key under which W3C WebDriver names an element in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum WebDriverError {
    #[error("HTTP to chromedriver: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{error}: {message}")]
    Driver { error: String, message: String },
}

impl WebDriverError {
    fn is(&self, error: &str) -> bool {
        matches!(self, WebDriverError::Driver { error: e, .. } if e == error)
    }
}

/// One session's endpoint (`http://127.0.0.1:PORT/session/ID`); cheap to clone.
#[derive(Clone)]
struct Session {
    http: reqwest::Client,
    url: String,
}

impl Session {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let ok = response.status().is_success();
        let value = response.json::<Value>().await?.get_mut("value").map(Value::take).unwrap_or(Value::Null);
        if ok {
            return Ok(value);
        }
        // chromedriver appends session info and a stack trace: the first line says it.
        let message = value["message"].as_str().unwrap_or("").lines().next().unwrap_or("").to_string();
        Err(WebDriverError::Driver {
            error: value["error"].as_str().unwrap_or("unknown error").to_string(),
            message,
        })
    }

    async fn get(&self, path: &str) -> Result<Value, WebDriverError> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, WebDriverError> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

/// chromedriver's process: killed when dropped, even if the session never started.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cookie as the browser holds it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub path: Option<String>,
    pub domain: Option<String>,
    #[serde(default)]
    pub secure: bool,
    #[serde(default)]
    pub http_only: bool,
    pub expiry: Option<u64>,
    /// "Strict", "Lax" or "None".
    pub same_site: Option<String>,
}

/// A headless Chromium session. Dropping it ends the session and chromedriver.
pub struct Browser {
    session: Session,
    session_id: String,
    /// How long [`Browser::start`] took (chromedriver up, Chromium launched).
    pub startup: Duration,
    // Dropped in this order: chromedriver, then the profile folder.
    driver: Driver,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session with a fresh profile.
    pub async fn start() -> Browser {
        let started = Instant::now();
        for (path, what) in [(CHROMEDRIVER, "chromedriver"), (CHROMIUM, "chromium")] {
            assert!(
                Path::new(path).exists(),
                "{what} is not at {path}: install Debian's packages (apt-get install chromium chromium-driver)"
            );
        }
        let profile = tempfile::tempdir().expect("a temp dir for the browser profile");
        let port = super::free_port();
        let log = profile.path().join("chromedriver.log");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {CHROMEDRIVER} (apt-get install chromium-driver): {e}"));
        let driver = Driver { child, port, log };
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("an HTTP client");
        let base = format!("http://127.0.0.1:{port}");

        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == json!(true)),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver not ready after 20 s:\n{}", driver.log_tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let user_data = profile.path().join("chromium");
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", user_data.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let root = Session { http: http.clone(), url: base.clone() };
        let created = match root.post("/session", capabilities).await {
            Ok(v) => v,
            Err(e) => panic!("chromedriver could not start Chromium: {e}\n{}", driver.log_tail()),
        };
        let Some(session_id) = created["sessionId"].as_str().map(str::to_string) else {
            panic!("chromedriver answered a new session without an id: {created}");
        };
        let session = Session { http, url: format!("{base}/session/{session_id}") };
        let mut browser = Browser { session, session_id, startup: Duration::ZERO, driver, profile };
        // A page that never loads fails the step instead of hanging the test (default 300 s).
        browser.step("set timeouts", "/timeouts", json!({"pageLoad": 30_000, "script": 30_000})).await;
        browser.startup = started.elapsed();
        browser
    }

    /// A POST that must succeed; panics naming `what` and the page.
    async fn step(&self, what: &str, path: &str, body: Value) -> Value {
        match self.session.post(path, body).await {
            Ok(v) => v,
            Err(e) => panic!("{what} failed on {}: {e}", self.url().await),
        }
    }

    /// A GET that must succeed.
    async fn read(&self, what: &str, path: &str) -> Value {
        match self.session.get(path).await {
            Ok(v) => v,
            Err(e) => panic!("reading the {what} failed: {e}"),
        }
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.session.post("/url", json!({"url": url})).await {
            panic!("navigating to {url} failed: {e}");
        }
    }

    /// The current page's URL.
    pub async fn url(&self) -> String {
        // Also used inside panic messages, so it must not panic itself.
        match self.session.get("/url").await {
            Ok(v) => v.as_str().unwrap_or("").to_string(),
            Err(e) => format!("<url unknown: {e}>"),
        }
    }

    /// The current page's `<title>`.
    pub async fn title(&self) -> String {
        self.read("title", "/title").await.as_str().unwrap_or("").to_string()
    }

    /// The current page's HTML (as the DOM now stands).
    pub async fn source(&self) -> String {
        self.read("page source", "/source").await.as_str().unwrap_or("").to_string()
    }

    /// The page's visible text (`document.body.innerText`).
    pub async fn body_text(&self) -> String {
        let v = self.execute("return document.body ? document.body.innerText : ''", vec![]).await;
        v.as_str().unwrap_or("").to_string()
    }

    /// The first element matching `css`, or None.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        let body = json!({"using": "css selector", "value": css});
        match self.session.post("/element", body).await {
            Ok(v) => Some(self.element(&v, css)),
            Err(e) if e.is("no such element") => None,
            Err(e) => panic!("finding `{css}` failed on {}: {e}", self.url().await),
        }
    }

    /// The first element matching `css`; panics naming the selector and the page.
    pub async fn find(&self, css: &str) -> Element {
        match self.try_find(css).await {
            Some(e) => e,
            None => panic!("no element matches `{css}` on {}", self.url().await),
        }
    }

    /// Every element matching `css`, in document order.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .step(
                &format!("finding all `{css}`"),
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_array().map(|a| a.iter().map(|e| self.element(e, css)).collect()).unwrap_or_default()
    }

    /// Whether an element matches `css` now.
    pub async fn exists(&self, css: &str) -> bool {
        self.try_find(css).await.is_some()
    }

    /// Polls until an element matches `css`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            if Instant::now() >= deadline {
                panic!("no element matched `{css}` within {timeout:?} on {}", self.url().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until the page's visible text contains `text`.
    pub async fn wait_for_text(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let body = self.body_text().await;
            if body.contains(text) {
                return;
            }
            if Instant::now() >= deadline {
                let shown: String = body.chars().take(600).collect();
                panic!(
                    "{text:?} did not appear within {timeout:?} on {}; the page shows:\n{shown}",
                    self.url().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Submits the form matching `css` as its submit button would (validation and submit
    /// events included). Returns at once: wait for what the next page shows.
    pub async fn submit_form(&self, css: &str) {
        let form = self.find(css).await;
        self.execute("arguments[0].requestSubmit()", vec![form.as_arg()]).await;
    }

    /// Back in history.
    pub async fn back(&self) {
        self.step("going back", "/back", json!({})).await;
    }

    /// Reloads the page.
    pub async fn refresh(&self) {
        self.step("reloading", "/refresh", json!({})).await;
    }

    /// Resizes the window (e.g. 390×844 for a phone).
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.step("resizing the window", "/window/rect", json!({"width": width, "height": height})).await;
    }

    /// Writes the viewport as `screenshots/NAME.png` under `$VIGIL_ARTIFACTS`, or under the
    /// crate's `target/` when that is unset; returns the file's path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.read("screenshot", "/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .unwrap_or_else(|e| panic!("the screenshot is not base64: {e}"));
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let file: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
            .collect();
        let path = dir.join(format!("{file}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// The cookies the browser holds for the current page.
    pub async fn cookies(&self) -> Vec<Cookie> {
        let v = self.read("cookies", "/cookie").await;
        serde_json::from_value(v).unwrap_or_else(|e| panic!("cookies in an unexpected shape: {e}"))
    }

    /// Forgets every cookie of the current domain (a signed-out browser).
    pub async fn delete_all_cookies(&self) {
        if let Err(e) = self.session.call(reqwest::Method::DELETE, "/cookie", None).await {
            panic!("deleting cookies failed: {e}");
        }
    }

    /// Runs `script` as a function body in the page (`arguments[i]` are `args`; pass an
    /// element with [`Element::as_arg`]) and returns what it returns.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.step("a script", "/execute/sync", json!({"script": script, "args": args})).await
    }

    /// chromedriver's process id (to check that nothing outlives the browser).
    pub fn driver_pid(&self) -> u32 {
        self.driver.child.id()
    }

    /// The folder holding this browser's profile (Chromium's processes name it).
    pub fn profile_dir(&self) -> PathBuf {
        self.profile.path().to_path_buf()
    }

    fn element(&self, v: &Value, css: &str) -> Element {
        let Some(id) = v[ELEMENT].as_str() else {
            panic!("chromedriver answered `{css}` without an element id: {v}");
        };
        Element { session: self.session.clone(), id: id.to_string(), selector: css.to_string() }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Drop cannot await: a plain blocking DELETE, answered once Chromium has quit.
        let _ = delete_session(self.driver.port, &self.session_id);
        // Whatever did not quit goes down with the driver; then nothing may hold the profile.
        let profile = self.profile.path().to_path_buf();
        for pid in processes_using(&profile) {
            // SAFETY: kill(2) with a pid read from /proc; at worst the process is already gone.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn delete_session(port: u16, id: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(
        stream,
        "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    // chromedriver may keep the connection open: read one response, not to end of stream.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                return Ok(());
            }
        }
    }
}

/// Processes whose command line names `dir` (Chromium's are started with --user-data-dir).
pub fn processes_using(dir: &Path) -> Vec<i32> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle.as_str()))
        })
        .collect()
}

/// Where screenshots go: `$VIGIL_ARTIFACTS/screenshots`, else `target/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    match std::env::var_os("VIGIL_ARTIFACTS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("screenshots"),
        _ => Path::new(super::REPO).join("target/screenshots"),
    }
}

/// An element of the page it was found on.
#[derive(Clone)]
pub struct Element {
    session: Session,
    id: String,
    selector: String,
}

impl Element {
    async fn act(&self, what: &str, path: &str, body: Value) -> Value {
        match self.session.post(&format!("/element/{}{path}", self.id), body).await {
            Ok(v) => v,
            Err(e) => panic!("{what} `{}` failed: {e}", self.selector),
        }
    }

    async fn read(&self, what: &str, path: &str) -> Value {
        match self.session.get(&format!("/element/{}{path}", self.id)).await {
            Ok(v) => v,
            Err(e) => panic!("reading the {what} of `{}` failed: {e}", self.selector),
        }
    }

    /// Clicks it (scrolled into view; fails if something covers it).
    pub async fn click(&self) {
        self.act("clicking", "/click", json!({})).await;
    }

    /// Types `text` into it.
    pub async fn send_keys(&self, text: &str) {
        self.act("typing into", "/value", json!({"text": text})).await;
    }

    /// Empties an input or textarea.
    pub async fn clear(&self) {
        self.act("clearing", "/clear", json!({})).await;
    }

    /// Its visible text.
    pub async fn text(&self) -> String {
        self.read("text", "/text").await.as_str().unwrap_or("").to_string()
    }

    /// An HTML attribute as written in the page, or None when absent.
    pub async fn attr(&self, name: &str) -> Option<String> {
        self.read(&format!("attribute {name}"), &format!("/attribute/{name}"))
            .await
            .as_str()
            .map(str::to_string)
    }

    /// A DOM property as it stands now (e.g. an input's current `value`, `checked`).
    pub async fn property(&self, name: &str) -> Value {
        self.read(&format!("property {name}"), &format!("/property/{name}")).await
    }

    /// Whether it is displayed.
    pub async fn displayed(&self) -> bool {
        self.read("visibility", "/displayed").await.as_bool().unwrap_or(false)
    }

    /// The element as an argument of [`Browser::execute`].
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT: self.id })
    }
}
