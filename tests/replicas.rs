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

const TOKEN: &str = "replica-token-for-tests";

/// One `vigil run` replica: its own config (HTTP port, inbox) on the shared database.
/// A replica, optionally reading a shared inbox (its claims of a dead replica's files are
/// taken back after 3 s of silence).
fn replica_deployment(
    db: &Database,
    smtp: &common::SmtpServer,
    port: u16,
    inbox: Option<&std::path::Path>,
) -> common::Deployment {
    let rules = format!("{}/tests/fixtures/rules/infusion.yaml", common::REPO);
    let d = common::Deployment::with_rules(
        Some(&smtp.url()),
        &format!("http:\n  addr: \"127.0.0.1:{port}\"\n  token_file: tokens.txt\n"),
        &rules,
    );
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()))
    };
    std::fs::write(d.path("tokens.txt"), format!("replica-test {hash}\n")).unwrap();
    let config = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace(&d.db_url(), &db.url)
        // A short SMTP timeout: a dead replica's claims run out in seconds (4 × it + 10 s).
        .replace("  retry_initial_secs: 1\n", "  retry_initial_secs: 1\n  smtp_timeout_secs: 1\n");
    let config = match inbox {
        Some(inbox) => config
            .replace("inbox: inbox", &format!("inbox: \"{}\"\ninbox_claim_timeout: 3s", inbox.display())),
        None => config,
    };
    std::fs::write(&d.config, config).unwrap();
    d
}

/// A grade 3 infusion reaction within 24 h of a dose: one critical alert (safety officer
/// and medical monitor) and one info alert (safety officer).
fn reaction(i: usize) -> String {
    format!(
        "{{\"subject\":\"KS-{}\",\"site\":\"KS\",\"record_id\":\"burst-{i}\",\"doses\":[{{\"start\":\"2019-02-26T09:10:00Z\"}}],\
         \"adverse_events\":[{{\"id\":\"AE-1\",\"term\":\"Infusion related reaction\",\"grade\":3,\"onset\":\"2019-02-26T09:40:00Z\"}}]}}",
        1000 + i
    )
}

/// The (alert id, recipient) pairs one email tells of, from the "Alert #N" lines of its text.
fn told(mail: &common::Email) -> Vec<(i64, String)> {
    mail.body
        .split("Alert #")
        .skip(1)
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .map(|id| (id, mail.rcpt_to.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_daemons_on_one_database_send_every_email_once_though_one_is_killed_mid_burst() {
    let db = Database::fresh().await;
    let smtp = common::SmtpServer::start();
    let ports = [common::free_port(), common::free_port(), common::free_port()];
    // The replicas share one inbox as well (a network folder).
    let shared = tempfile::tempdir().unwrap();
    let inbox = shared.path().join("inbox");
    let deployments: Vec<_> =
        ports.iter().map(|&p| replica_deployment(&db, &smtp, p, Some(&inbox))).collect();
    let mut daemons: Vec<Option<common::Daemon>> = deployments.iter().map(|d| Some(d.start())).collect();
    for &port in &ports {
        common::wait_for("the HTTP server", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }
    // One replica runs the clock pass; it is the one killed below.
    let holder = common::wait_for("a clock lease holder", Duration::from_secs(20), || {
        let holding: Vec<usize> = (0..3)
            .filter(|&i| daemons[i].as_ref().is_some_and(|d| d.log_text().contains("Clock lease taken")))
            .collect();
        (!holding.is_empty()).then_some(holding)
    });
    assert_eq!(holder.len(), 1, "one clock pass runner: {holder:?}");
    let holder = holder[0];
    let client = reqwest::Client::new();
    let post = |port: u16, body: String| {
        let req = client.post(format!("http://127.0.0.1:{port}/v1/records")).bearer_auth(TOKEN).body(body);
        async move { req.send().await.map(|r| r.status().as_u16()) }
    };

    // 200 records in 40 groups of 5, spread over the three replicas' HTTP endpoints and
    // the shared inbox (every fourth group is a file), 3 at a time; the lease holder is
    // SIGKILLed after the 15th group, and its share goes to the others.
    let survivors: Vec<u16> = (0..3).filter(|&i| i != holder).map(|i| ports[i]).collect();
    let mut killed = false;
    for (n, chunk) in (0..200).collect::<Vec<_>>().chunks(15).enumerate() {
        let mut requests = Vec::new();
        for (k, five) in chunk.chunks(5).enumerate() {
            let body: Vec<String> = five.iter().map(|&i| reaction(i)).collect();
            if (n * 3 + k) % 4 == 3 {
                let name = format!("burst-{n}-{k}.ndjson");
                std::fs::write(inbox.join(format!("{name}.tmp")), body.join("\n") + "\n").unwrap();
                std::fs::rename(inbox.join(format!("{name}.tmp")), inbox.join(name)).unwrap();
                continue;
            }
            let port = if killed { survivors[(n + k) % 2] } else { ports[k % 3] };
            requests.push(post(port, body.join("\n")));
        }
        for status in futures_join_all(requests).await {
            assert_eq!(status.unwrap(), 202);
        }
        if n == 4 {
            daemons[holder].take().unwrap().kill();
            killed = true;
        }
    }

    let store = db.replica().await;
    let notes = common::wait_for("every alert raised and every email sent", Duration::from_secs(120), || {
        let rt = tokio::runtime::Handle::current();
        let (alerts, notes) = std::thread::scope(|s| {
            s.spawn(|| {
                rt.block_on(async { (store.alerts().await.unwrap(), store.notifications().await.unwrap()) })
            })
            .join()
            .unwrap()
        });
        (alerts.len() == 400 && notes.len() == 600 && notes.iter().all(|n| n.status == "sent"))
            .then_some(notes)
    });
    // What the database says went out, the SMTP server must have received: once each.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mails = smtp.messages();
    let mut seen: std::collections::HashMap<(i64, String), Vec<String>> = Default::default();
    for m in &mails {
        for pair in told(m) {
            seen.entry(pair).or_default().push(m.message_id.clone());
        }
    }
    for n in &notes {
        let vigil::store::Notice::Alert(id) = n.about else { panic!("only alert emails here") };
        assert!(seen.contains_key(&(id, n.recipient.clone())), "alert {id} never reached {}", n.recipient);
    }
    assert_eq!(seen.len(), 600, "no email about anything else");
    // Every inbox file was read once and filed once, whoever claimed it (a file the killed
    // replica held is taken back by a survivor).
    let filed = std::fs::read_dir(inbox.join("processed")).unwrap().count();
    assert_eq!(filed, 10, "each of the 10 files filed once");
    // At-least-once has one window: a replica killed after the server took a message and
    // before it recorded so. The message is then sent again under its same Message-ID
    // (which mail systems deduplicate), and only the one in flight at the kill.
    let twice: Vec<_> = seen.iter().filter(|(_, ids)| ids.len() > 1).collect();
    let resent: std::collections::HashSet<&String> = twice.iter().flat_map(|(_, ids)| ids.iter()).collect();
    assert!(
        twice.iter().all(|(_, ids)| ids.iter().all(|i| i == &ids[0])) && resent.len() <= 1,
        "sent twice: {twice:?}"
    );
    // The clock pass: a survivor takes the lease over once the dead holder's has run out
    // (30 s), with the next fencing token; only one of them.
    let taker = common::wait_for("the clock lease taken over", Duration::from_secs(60), || {
        let taking: Vec<usize> = (0..3)
            .filter(|&i| daemons[i].as_ref().is_some_and(|d| d.log_text().contains("Clock lease taken")))
            .collect();
        (!taking.is_empty()).then_some(taking)
    });
    assert_eq!(taker.len(), 1, "one new clock pass runner: {taker:?}");
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let token: i64 = sqlx::query_scalar("SELECT token FROM leases WHERE name = 'clock'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(token, 2, "the next fencing token");
    eprintln!("{} emails for 600 notifications ({} pairs resent at the kill)", mails.len(), twice.len());
    drop(daemons);
}

#[tokio::test]
async fn an_evaluation_overtaken_by_a_newer_one_does_not_undo_it_and_the_subject_is_evaluated_again() {
    let db = Database::fresh().await;
    let (a, b) = (db.replica().await, db.replica().await);
    let store = |s: &Store, rid: &str| {
        let text = format!("{{\"subject\":\"KS-101\",\"record_id\":\"{rid}\",\"date\":\"2019-02-01\"}}");
        let (s, parsed) = (s.clone(), vigil::ingest::native::parse("x.ndjson", &text));
        async move { s.store_batch(&parsed.records, &parsed.rejected).await.unwrap() }
    };
    let part = |matching: bool| CohortContribution {
        rule_id: "stopping".into(),
        evaluable: true,
        matching,
        events: i64::from(matching),
    };
    store(&a, "r1").await;
    let [(_, first)] = a.pending_subjects().await.unwrap()[..] else { panic!("one subject pending") };
    // Replica a starts evaluating KS-101 as of r1 and is slow; r2 arrives, and replica b
    // evaluates the newer history and commits first.
    store(&b, "r2").await;
    let [(_, second)] = b.pending_subjects().await.unwrap()[..] else { panic!("one subject pending") };
    assert!(second > first);
    let newer = Evaluation {
        pending: Some(("KS-101", second)),
        subject: "KS-101",
        contributions: vec![part(true)],
        ..Default::default()
    };
    b.commit_evaluation(newer, "trial.test").await.unwrap();
    assert!(b.pending_subjects().await.unwrap().is_empty());
    // a's commit, behind: its view must not replace b's, and the subject is looked at again.
    let older = Evaluation {
        pending: Some(("KS-101", first)),
        subject: "KS-101",
        contributions: vec![part(false)],
        ..Default::default()
    };
    a.commit_evaluation(older, "trial.test").await.unwrap();
    let t = a.cohort_totals("stopping").await.unwrap();
    assert_eq!((t.evaluable, t.matching, t.events), (1, 1, 1), "b's newer contribution stands");
    assert_eq!(a.pending_subjects().await.unwrap(), [("KS-101".to_string(), second)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_escalation_step_due_on_every_replica_is_taken_and_queued_once() {
    let db = Database::fresh().await;
    let replicas = [db.replica().await, db.replica().await, db.replica().await, db.replica().await];
    let so = to("so@trial.test");
    for i in 0..10 {
        let subject = format!("KS-{i:03}");
        let mut a = alert(&subject, &so);
        a.delivery.escalate_at = Some(chrono::DateTime::UNIX_EPOCH);
        let e = Evaluation { subject: &subject, alerts: vec![a], ..Default::default() };
        replicas[0].commit_evaluation(e, "trial.test").await.unwrap();
    }
    let mm = Recipient { role: "medical-monitor".into(), address: "mm@trial.test".into(), blinded: true };
    // Every replica read the same due alerts, then each escalates them all at once.
    let mut runs = Vec::new();
    for r in &replicas {
        let due = r.due_escalations().await.unwrap();
        assert_eq!(due.len(), 10);
        for a in due {
            let (r, mm) = (r.clone(), mm.clone());
            runs.push(
                async move { r.escalate(&a, std::slice::from_ref(&mm), None, "trial.test").await.unwrap() },
            );
        }
    }
    let done = futures_join_all(runs).await;
    assert_eq!(done.iter().filter(|&&d| d).count(), 10, "one replica escalates each alert");
    let escalations = replicas[0].notifications().await.unwrap();
    let escalations: Vec<_> = escalations.iter().filter(|n| n.kind == "escalation").collect();
    assert_eq!(escalations.len(), 10, "one escalation email each");
    assert!(replicas[0].alerts().await.unwrap().iter().all(|a| a.escalation_step == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_at_once_on_an_empty_database_migrate_it_once() {
    let db = Database::fresh().await;
    let starts = (0..4).map(|_| Store::connect(&db.url));
    for store in futures_join_all(starts).await {
        store.expect("every replica starts (the migrations take a lock)");
    }
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let applied: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&mut conn).await.unwrap();
    let shipped = std::fs::read_dir(format!("{}/migrations/postgres", common::REPO)).unwrap().count();
    assert_eq!(applied, shipped as i64);
}
