//! The WebDriver harness (tests/common/browser.rs) against a tiny axum site served by the
//! test itself: headless Chromium from Debian's chromium and chromium-driver packages.

mod common;

use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Form, Router};
use common::browser::{processes_using, Browser};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

const FORM: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Greeting form</title>
<style>body{font:18px sans-serif;margin:2em;background:#f4f7fb} input{font-size:18px}</style></head>
<body><h1>Who are you?</h1>
<form method="post" action="/greet" id="greet">
<label for="name">Name</label> <input id="name" name="name" required>
<button type="submit" id="go">Greet me</button>
</form></body></html>"#;

const LATE: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Late</title></head>
<body><ul><li>one</li><li>two</li><li>three</li></ul>
<input id="box" value="preset">
<script>setTimeout(function () {
  document.body.insertAdjacentHTML('beforeend', '<p id="late">arrived</p>');
}, 1000);</script></body></html>"#;

#[derive(serde::Deserialize)]
struct Greet {
    name: String,
}

async fn greet(Form(form): Form<Greet>) -> Html<String> {
    let name = form.name.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Greeted</title></head>\
         <body style=\"font:18px sans-serif;margin:2em\"><h1 id=\"result\">Hello, {name}</h1></body></html>"
    ))
}

async fn cookie() -> impl IntoResponse {
    (
        [("set-cookie", "vigil_session=abc123; Path=/; HttpOnly; SameSite=Strict")],
        Html("<!doctype html><title>Cookie</title><p>cookie set</p>"),
    )
}

/// Serves the test site on a free port for as long as the test's runtime lives.
async fn serve() -> String {
    let app = Router::new()
        .route("/", get(|| async { Html(FORM) }))
        .route("/greet", post(greet))
        .route("/late", get(|| async { Html(LATE) }))
        .route("/cookie", get(cookie));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the test site");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve the test site") });
    format!("http://{addr}")
}

/// The pixel width and height in a PNG's IHDR chunk, after checking the signature.
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).expect("the screenshot exists");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

#[tokio::test]
async fn fills_a_form_submits_it_and_screenshots_desktop_and_phone() {
    let site = serve().await;
    let b = Browser::start().await;
    eprintln!("browser session started in {:?}", b.startup);

    b.goto(&format!("{site}/")).await;
    assert_eq!(b.title().await, "Greeting form");
    let input = b.find("#name").await;
    assert_eq!(input.attr("name").await.as_deref(), Some("name"));
    assert_eq!(input.attr("placeholder").await, None);
    input.send_keys("Ada <Lovelace>").await;
    assert_eq!(input.property("value").await, json!("Ada <Lovelace>"));
    b.find("#go").await.click().await;

    b.wait_for_text("Hello, Ada <Lovelace>", WAIT).await;
    assert!(b.url().await.ends_with("/greet"), "after the POST the page is {}", b.url().await);
    assert_eq!(b.find("#result").await.text().await, "Hello, Ada <Lovelace>");
    assert!(b.source().await.contains("Hello, Ada &lt;Lovelace&gt;"), "the source is the page's HTML");

    let desktop = b.screenshot("browser-harness-desktop").await;
    let (w, h) = png_size(&desktop);
    let inner = b.execute("return [window.innerWidth, window.innerHeight]", vec![]).await;
    assert_eq!(json!([w, h]), inner, "the screenshot is the viewport");
    assert!(w > 1000, "a desktop-wide viewport, got {w}");

    b.set_window_size(390, 844).await;
    b.back().await;
    b.wait_for("#name", WAIT).await;
    let phone = b.screenshot("browser-harness-phone").await;
    let (w, _) = png_size(&phone);
    assert!(w <= 390, "a phone-wide viewport, got {w}");
    let inner = b.execute("return window.innerWidth", vec![]).await;
    assert_eq!(json!(w), inner);
}

#[tokio::test]
async fn waits_for_late_content_and_runs_scripts() {
    let site = serve().await;
    let b = Browser::start().await;
    b.goto(&format!("{site}/late")).await;

    // The paragraph is added a second after load: not there yet, then waited for.
    assert!(!b.exists("#late").await);
    let late = b.wait_for("#late", WAIT).await;
    assert_eq!(late.text().await, "arrived");
    assert!(late.displayed().await);
    b.wait_for_text("arrived", WAIT).await;

    let items = b.find_all("li").await;
    let mut texts = Vec::new();
    for li in &items {
        texts.push(li.text().await);
    }
    assert_eq!(texts, ["one", "two", "three"]);
    assert!(b.find_all("table").await.is_empty());

    let input = b.find("#box").await;
    assert_eq!(input.property("value").await, json!("preset"));
    input.clear().await;
    input.send_keys("typed").await;
    assert_eq!(input.property("value").await, json!("typed"));
    // The attribute is what the page was served with; the property is what it is now.
    assert_eq!(input.attr("value").await.as_deref(), Some("preset"));

    assert_eq!(b.execute("return arguments[0] * arguments[1]", vec![json!(6), json!(7)]).await, json!(42));
    assert_eq!(b.execute("return arguments[0].id", vec![late.as_arg()]).await, json!("late"));
}

/// The panic message of a task that panicked.
async fn panic_of(task: tokio::task::JoinHandle<()>) -> String {
    let err = task.await.expect_err("the step should have failed");
    let payload = err.into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_missing_element_names_the_selector_and_the_page() {
    let site = serve().await;
    let b = Arc::new(Browser::start().await);
    b.goto(&format!("{site}/")).await;

    let page = format!("{site}/");
    let task = {
        let b = b.clone();
        tokio::spawn(async move {
            b.find("#no-such-thing").await;
        })
    };
    let message = panic_of(task).await;
    assert!(message.contains("#no-such-thing") && message.contains(&page), "{message}");

    let task = {
        let b = b.clone();
        tokio::spawn(async move {
            b.wait_for(".never", Duration::from_millis(300)).await;
        })
    };
    let message = panic_of(task).await;
    assert!(message.contains(".never") && message.contains("300ms"), "{message}");

    let task = {
        let b = b.clone();
        tokio::spawn(async move {
            b.wait_for_text("Goodbye", Duration::from_millis(300)).await;
        })
    };
    let message = panic_of(task).await;
    assert!(message.contains("Goodbye") && message.contains("Who are you?"), "{message}");

    // The browser still works after its steps failed.
    assert_eq!(b.title().await, "Greeting form");
}

#[tokio::test]
async fn reads_and_deletes_cookies_and_leaves_no_process_behind() {
    let site = serve().await;
    let b = Browser::start().await;
    b.goto(&format!("{site}/cookie")).await;
    b.wait_for_text("cookie set", WAIT).await;

    let cookies = b.cookies().await;
    let session = cookies.iter().find(|c| c.name == "vigil_session").expect("the session cookie");
    assert_eq!(session.value, "abc123");
    assert!(session.http_only);
    assert!(!session.secure);
    assert_eq!(session.same_site.as_deref(), Some("Strict"));
    assert_eq!(session.path.as_deref(), Some("/"));

    b.delete_all_cookies().await;
    assert!(b.cookies().await.is_empty());

    let driver = b.driver_pid();
    let profile = b.profile_dir();
    assert!(!processes_using(&profile).is_empty(), "Chromium runs with the profile folder");
    drop(b);
    assert!(!std::path::Path::new(&format!("/proc/{driver}")).exists(), "chromedriver outlived the browser");
    assert_eq!(processes_using(&profile), Vec::<i32>::new(), "Chromium processes outlived the browser");
}
