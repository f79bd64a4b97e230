//! Several vigil replicas on one PostgreSQL database (issue #13): work is claimed, the
//! clock pass runs under a lease, and every state change a second runner could repeat is
//! guarded, so that no email goes out twice and no running total counts twice.
//!
//! Each test makes its own database on the server at 127.0.0.1:5432 (override with
//! VIGIL_TEST_POSTGRES_URL) and connects to it more than once: each Store is a replica.

mod common;

use sqlx::Connection;
use std::time::Duration;
use vigil::store::{CohortContribution, Evaluation, NewAlert, Recipient, Store};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh database, dropped when the guard goes.
struct Database {
    url: String,
    name: String,
}

impl Database {
    async fn fresh() -> Database {
        let admin = admin_url();
        let name = format!(
            "vigil_rep_{}_{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        let mut conn =
            sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL at 127.0.0.1:5432 (see .ci/run)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        Database { url: format!("{base}/{name}"), name }
    }

    /// One replica's connection pool (migrations run by the first).
    async fn replica(&self) -> Store {
        Store::connect(&self.url).await.unwrap()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (admin, name) = (admin_url(), self.name.clone());
        // Drop runs outside the test's runtime: a thread of its own does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            })
        })
        .join();
    }
}

fn admin_url() -> String {
    std::env::var("VIGIL_TEST_POSTGRES_URL").unwrap_or_else(|_| ADMIN_URL.to_string())
}

fn to(address: &str) -> Recipient {
    Recipient { role: "safety-officer".into(), address: address.into(), blinded: true }
}

/// An alert on `subject` due at once, in a group of its own (one email each).
fn alert(subject: &str, to: &Recipient) -> NewAlert {
    let mut a = common::ae_alert(3, to);
    a.subject = subject.into();
    a.delivery.group = format!("rule:ae-grade:{subject}");
    a.delivery.escalate_at = None;
    a
}

/// Queues one alert email each for `n` subjects.
async fn queue_alerts(store: &Store, n: usize) {
    let so = to("so@trial.test");
    for i in 0..n {
        let subject = format!("KS-{i:03}");
        let e = Evaluation { subject: &subject, alerts: vec![alert(&subject, &so)], ..Default::default() };
        store.commit_evaluation(e, "trial.test").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_outboxes_on_one_database_send_each_email_once() {
    let db = Database::fresh().await;
    let smtp = common::SmtpServer::start();
    let d = common::Deployment::new(Some(&smtp.url()));
    let config = vigil::config::Config::load(&d.config).unwrap();
    let (a, b) = (db.replica().await, db.replica().await);
    queue_alerts(&a, 40).await;

    let (one, two) = (
        vigil::notify::Outbox::new(a.clone(), &config).unwrap(),
        vigil::notify::Outbox::new(b.clone(), &config).unwrap(),
    );
    let (p1, p2) = tokio::join!(one.deliver_due(), two.deliver_due());
    let (p1, p2) = (p1.unwrap(), p2.unwrap());
    assert_eq!(p1.sent + p2.sent, 40, "each email sent by one replica: {p1:?} {p2:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = smtp.messages();
    let mut ids: Vec<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((mails.len(), ids.len()), (40, 40), "40 distinct emails, none twice");
    let notes = a.notifications().await.unwrap();
    assert!(notes.iter().all(|n| n.status == "sent" && n.attempts == 1), "{notes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_claim_disjoint_outbox_rows_and_take_over_a_dead_ones_claim() {
    let db = Database::fresh().await;
    let (a, b) = (db.replica().await, db.replica().await);
    assert_ne!(a.instance(), b.instance());
    queue_alerts(&a, 30).await;
    let minute = Duration::from_secs(60);

    let (one, two) = tokio::join!(
        a.claim_due_notifications(None, 10, minute),
        b.claim_due_notifications(None, 10, minute)
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!((one.len(), two.len()), (10, 10));
    let mut ids: Vec<i64> = one.iter().chain(&two).map(|n| n.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20, "no row claimed twice");
    // The rest is left for whoever asks next; then nothing is due until a claim runs out.
    assert_eq!(b.claim_due_notifications(None, 100, Duration::from_millis(300)).await.unwrap().len(), 10);
    assert!(a.claim_due_notifications(None, 100, minute).await.unwrap().is_empty());

    // b dies holding 10 claims of 300 ms: a takes them over once they run out.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = a.claim_due_notifications(None, 100, minute).await.unwrap();
    assert_eq!(taken.len(), 10, "the dead replica's rows are taken over");
    // b comes back late: its outcome is refused, a's stands.
    assert!(!b.record_delivery(taken[0].id, &vigil::store::Delivery::Sent).await.unwrap());
    assert!(a.record_delivery(taken[0].id, &vigil::store::Delivery::Sent).await.unwrap());
    assert!(b.record_delivery(two[0].id, &vigil::store::Delivery::Sent).await.unwrap());
    let sent = a.notifications().await.unwrap().iter().filter(|n| n.status == "sent").count();
    assert_eq!(sent, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_silence_expiry_reopens_each_alert_once_for_one_replica_to_notify() {
    let db = Database::fresh().await;
    // The replicas share one manual clock: the silences run out when the test says.
    let clock = vigil::clock::Clock::manual(chrono::Utc::now());
    let mut replicas = Vec::new();
    for _ in 0..4 {
        replicas.push(Store::connect_with_clock(&db.url, clock.clone()).await.unwrap());
    }
    let so = to("so@trial.test");
    let expires = clock.now() + chrono::Duration::hours(1);
    let mut subjects = Vec::new();
    for i in 0..20 {
        let subject = format!("KS-{i:03}");
        replicas[0].create_silence(None, Some(&subject), None, expires, "dr.who", "known").await.unwrap();
        let e = Evaluation { subject: &subject, alerts: vec![alert(&subject, &so)], ..Default::default() };
        replicas[0].commit_evaluation(e, "trial.test").await.unwrap();
        subjects.push(subject);
    }
    assert!(replicas[0].alerts().await.unwrap().iter().all(|a| a.status == "silenced"));
    assert!(replicas[0].notifications().await.unwrap().is_empty(), "silenced: nobody told yet");
    clock.advance(chrono::Duration::hours(2));

    let runs = replicas.iter().map(|r| r.expire_silences());
    let reopened: Vec<i64> =
        futures_flatten(futures_join_all(runs).await).into_iter().map(|a| a.id).collect();
    let mut unique = reopened.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!((reopened.len(), unique.len()), (20, 20), "each alert re-opened by one replica: {reopened:?}");
    for a in replicas[0].alerts().await.unwrap() {
        assert_eq!(a.status, "open");
        let events = replicas[0].alert_events(a.id).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.action == "unsilenced").count(), 1, "{events:?}");
    }
    assert!(replicas[0].silences().await.unwrap().iter().all(|s| s.ended));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_of_one_subject_count_it_once_in_the_cohort_totals() {
    let db = Database::fresh().await;
    let replicas = [db.replica().await, db.replica().await, db.replica().await, db.replica().await];
    let part = |matching: bool| CohortContribution {
        rule_id: "stopping".into(),
        evaluable: true,
        matching,
        events: i64::from(matching),
    };
    let subjects: Vec<String> = (0..25).map(|i| format!("KS-{i:03}")).collect();
    // Every replica evaluates every subject at once, as if each had been woken for it.
    for round in [true, false, true] {
        let mut runs = Vec::new();
        for r in &replicas {
            for s in &subjects {
                let e = Evaluation { subject: s, contributions: vec![part(round)], ..Default::default() };
                runs.push(r.commit_evaluation(e, "trial.test"));
            }
        }
        for outcome in futures_join_all(runs).await {
            outcome.unwrap();
        }
        let t = replicas[1].cohort_totals("stopping").await.unwrap();
        let matching = if round { 25 } else { 0 };
        assert_eq!((t.evaluable, t.matching, t.events), (25, matching, matching), "round {round}");
    }
}

#[tokio::test]
async fn a_lease_is_held_by_one_replica_and_taken_over_when_it_runs_out() {
    let db = Database::fresh().await;
    let (a, b) = (db.replica().await, db.replica().await);
    let ttl = Duration::from_millis(600);
    let token = a.try_lease("clock", "a", ttl).await.unwrap().expect("a free lease is granted");
    assert_eq!(b.try_lease("clock", "b", ttl).await.unwrap(), None, "held by a");
    assert_eq!(a.try_lease("clock", "a", ttl).await.unwrap(), Some(token), "renewed, same token");
    assert!(a.holds_lease("clock", "a", token).await.unwrap());
    // a dies: no renewal. b gets it once it has run out, with a higher fencing token.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!a.holds_lease("clock", "a", token).await.unwrap());
    let taken = b.try_lease("clock", "b", ttl).await.unwrap().expect("taken over after expiry");
    assert!(taken > token);
    assert_eq!(a.try_lease("clock", "a", ttl).await.unwrap(), None, "a, back, does not take it back");
    // A clean stop hands it on at once.
    b.release_lease("clock", "b").await.unwrap();
    assert!(a.try_lease("clock", "a", ttl).await.unwrap().is_some_and(|t| t > taken));
}

#[tokio::test]
async fn on_sqlite_the_lease_is_always_granted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("v.db").display())).await.unwrap();
    let ttl = Duration::from_secs(60);
    assert!(store.try_lease("clock", "a", ttl).await.unwrap().is_some());
    // A restarted daemon (a new holder) does not wait for its predecessor's lease.
    assert!(store.try_lease("clock", "b", ttl).await.unwrap().is_some());
}

/// Runs futures concurrently (no extra dependency): each on its own task would need
/// 'static borrows, so they are polled together by one join.
async fn futures_join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut futures: Vec<Option<_>> = futures.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

fn futures_flatten<T>(results: Vec<anyhow::Result<Vec<T>>>) -> Vec<T> {
    results.into_iter().flat_map(|r| r.unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_report_is_made_and_queued_once_when_replicas_run_it_together() {
    let db = Database::fresh().await;
    let d = common::Deployment::with(
        None,
        "report:\n  out_dir: reports\n  recipients: [dsmb-chair]\n  closed: false\n  schedule: [\"* * * * *\"]\n",
    );
    let config = vigil::config::Config::load(&d.config).unwrap();
    let rules = vigil::daemon::load_rules(&config).unwrap();
    let replicas = [db.replica().await, db.replica().await, db.replica().await];
    let now = chrono::Utc::now();
    let started = now - chrono::Duration::minutes(2);
    let publishers: Vec<_> =
        replicas.iter().map(|s| vigil::publish::Publisher::new(s, &rules, &config)).collect();

    let made: Vec<usize> = futures_join_all(publishers.iter().map(|p| p.run_due(started, now)))
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(made.iter().sum::<usize>(), 1, "one replica made it: {made:?}");
    assert_eq!(replicas[0].reports().await.unwrap().len(), 1);
    assert_eq!(replicas[0].report_deliveries().await.unwrap().len(), 1, "queued for the chair once");
    // The same occurrence again (a lease overlap, a late replica): nothing more.
    for p in &publishers {
        assert_eq!(p.run_due(started, now).await.unwrap(), 0);
    }
    assert_eq!(replicas[0].reports().await.unwrap().len(), 1);
}
