//! PostgreSQL goes away during ingestion and comes back: vigil answers 503 with
//! Retry-After meanwhile (never 202 for what it could not store), the drop folder keeps its
//! files, and once the database is back everything arrives exactly once — without
//! restarting the daemon.

mod common;

use common::{drop_database, fresh_database, wait_for, Deployment};
use std::time::Duration;

const TOKEN: &str = "outage-token-0123456789abcdef";

/// Cuts the database off (no new connections, the open ones ended), or lets it back.
async fn block(name: &str, blocked: bool) {
    let admin = std::env::var("VIGIL_TEST_POSTGRES_URL").unwrap_or_else(|_| common::ADMIN_URL.to_string());
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    let allow = if blocked { "false" } else { "true" };
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}")))
        .execute(&pool)
        .await
        .unwrap();
    if blocked {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

fn visit(i: usize) -> String {
    format!(
        "{{\"subject\":\"PG-{:03}\",\"site\":\"KS\",\"date\":\"2026-03-02\",\"record_id\":\"v{i}\",\
         \"adverse_events\":[{{\"id\":\"AE-{i}\",\"term\":\"Headache\",\"grade\":3,\"onset\":\"2026-03-01\"}}]}}\n",
        i % 40
    )
}

#[tokio::test]
async fn a_database_outage_during_ingestion_loses_nothing_and_doubles_nothing() {
    let (url, name) = fresh_database().await;
    let port = common::free_port();
    let d = Deployment::with(None, &format!("http:\n  addr: \"127.0.0.1:{port}\"\n"));
    let cfg = std::fs::read_to_string(&d.config).unwrap().replace(&d.db_url(), &url);
    std::fs::write(&d.config, cfg).unwrap();
    let daemon = {
        // Tokens from the environment of the daemon.
        std::env::set_var("VIGIL_API_TOKENS", format!("site:{TOKEN}"));
        d.start()
    };
    wait_for("the HTTP server", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let client = reqwest::Client::new();
    let post = |body: String| {
        let client = client.clone();
        async move {
            client
                .post(format!("http://127.0.0.1:{port}/v1/records"))
                .bearer_auth(TOKEN)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };

    // 200 records in 20 requests; the database goes away after the 5th and comes back
    // a few seconds later. A refused request is sent again, as a site's client would.
    let mut refused = 0;
    for batch in 0..20 {
        if batch == 5 {
            block(&name, true).await;
            // Files dropped during the outage wait in the inbox.
            d.drop_file("during.ndjson", &(200..210).map(visit).collect::<String>());
        }
        if batch == 8 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            block(&name, false).await;
        }
        let body: String = (batch * 10..batch * 10 + 10).map(visit).collect();
        loop {
            let r = post(body.clone()).await;
            match r.status().as_u16() {
                202 => break,
                503 => {
                    assert_eq!(r.headers()["retry-after"], "5");
                    refused += 1;
                    assert!(refused < 200, "the daemon never recovered:\n{}", daemon.log_text());
                    if (5..8).contains(&batch) {
                        // Still cut off: move on to the next batch's time, then retry.
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                other => panic!("answered {other}: {}\n{}", r.text().await.unwrap(), daemon.log_text()),
            }
        }
    }
    assert!(refused > 0, "the outage was seen");
    // The batches refused during the outage are sent again now.
    for batch in 5..8 {
        let body: String = (batch * 10..batch * 10 + 10).map(visit).collect();
        wait_for_accepted(&post, body).await;
    }

    wait_for("the inbox file", Duration::from_secs(30), || d.processed("during.ndjson").then_some(()));
    let store = vigil::store::Store::connect(&url).await.unwrap();
    let start = std::time::Instant::now();
    loop {
        let pending = store.pending_subjects().await.unwrap();
        if pending.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "evaluation never caught up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(store.record_count().await.unwrap(), 210, "every record once:\n{}", daemon.log_text());
    // One alert per grade 3 AE and rule, never two for the same episode and level (a
    // stopping rule crossing a higher level is news, and raises again).
    let alerts = store.alerts().await.unwrap();
    let mut keys: Vec<(String, String, String, i64)> =
        alerts.iter().map(|a| (a.rule_id.clone(), a.subject.clone(), a.episode.clone(), a.level)).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "an episode alerted twice at one level");
    assert!(n >= 210, "every grade 3 AE alerted ({n})");
    let ready = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready again without a restart");
    assert!(
        daemon.log_text().contains("vigil started")
            && daemon.log_text().matches("vigil started").count() == 1
    );
    store.close().await;
    drop(daemon);
    drop_database(&name).await;
}

async fn wait_for_accepted<F, Fut>(post: &F, body: String)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    for _ in 0..100 {
        if post(body.clone()).await.status() == 202 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("never accepted after the outage");
}
