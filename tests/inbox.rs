//! The drop folder keeps a critical record from waiting behind a bulk file: small files
//! ready meanwhile are stored (and evaluated) between the bulk file's batches.

mod common;

use common::{Deployment, InProcess};
use sqlx::Row;
use std::time::{Duration, SystemTime};

#[tokio::test]
async fn a_small_file_is_stored_between_the_batches_of_a_bulk_file_dropped_before_it() {
    let d = Deployment::new(None);
    let vigil = InProcess::build(&d).await;
    let n = vigil::ingest::BATCH * 3;
    let bulk: String = (0..n)
        .map(|i| format!("{{\"subject\":\"B-{i}\",\"date\":\"2024-01-02\",\"record_id\":\"b{i}\"}}\n"))
        .collect();
    d.drop_file("bulk.ndjson", &bulk);
    d.drop_file("critical.ndjson", "{\"subject\":\"C-1\",\"date\":\"2024-01-02\",\"record_id\":\"c1\"}\n");
    // Both have settled; the bulk file is the older, so it is read first.
    let now = SystemTime::now();
    for (name, age) in [("bulk.ndjson", 60), ("critical.ndjson", 30)] {
        let file = std::fs::File::open(d.path("inbox").join(name)).unwrap();
        file.set_modified(now - Duration::from_secs(age)).unwrap();
    }

    vigil.app.process_inbox().await.unwrap();

    assert!(d.processed("bulk.ndjson") && d.processed("critical.ndjson"));
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&d.db_url()).await.unwrap();
    let seq = |subject_like: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query("SELECT MIN(seq) AS first, MAX(seq) AS last FROM records WHERE subject LIKE $1")
                .bind(subject_like)
                .fetch_one(&db)
                .await
                .map(|r| (r.get::<i64, _>("first"), r.get::<i64, _>("last")))
                .unwrap()
        }
    };
    let (bulk_first, bulk_last) = seq("B-%").await;
    let (critical, _) = seq("C-%").await;
    assert!(
        bulk_first < critical && critical < bulk_last,
        "bulk {bulk_first}..{bulk_last}, critical {critical}"
    );
}

/// A file that keeps failing while the database answers is set aside with its reason after
/// a few attempts, instead of being retried every few seconds forever.
#[tokio::test]
async fn an_entry_that_keeps_failing_is_set_aside_with_its_reason() {
    let d = Deployment::new(None);
    let vigil = InProcess::build(&d).await;
    // Where processed files go is not a folder any more: filing away fails every time.
    let processed = d.path("inbox/processed");
    std::fs::remove_dir_all(&processed).unwrap();
    std::fs::write(&processed, "not a folder").unwrap();
    let file = d.path("inbox").join("visit.ndjson");
    std::fs::write(&file, "{\"subject\":\"S-1\",\"date\":\"2024-01-02\",\"record_id\":\"v1\"}\n").unwrap();
    let old = SystemTime::now() - Duration::from_secs(60);
    for f in [&file, &processed] {
        std::fs::File::open(f).unwrap().set_modified(old).unwrap();
    }
    for attempt in 1..=5 {
        assert!(file.exists(), "still in the inbox before attempt {attempt}");
        vigil.app.process_inbox().await.unwrap();
    }
    assert!(!file.exists(), "set aside after 5 failures");
    assert!(d.path("inbox/quarantine/visit.ndjson.rejected").is_file());
    let reason =
        std::fs::read_to_string(d.path("inbox/quarantine/visit.ndjson.rejected.reason.txt")).unwrap();
    assert!(reason.starts_with("failed 5 times: ") && reason.contains("cannot move"), "{reason}");
}

/// A writer that does not use the `.tmp`-and-rename convention and pauses longer than the
/// settle time between its records: the daemon does not take the file under it (it would be
/// filed away while the writer goes on appending there), and every record arrives once.
#[tokio::test]
async fn a_file_written_slowly_in_place_is_taken_whole_once_its_writer_is_done() {
    use std::io::Write;
    let d = Deployment::with(None, "inbox_settle: 1s\n");
    let daemon = d.start();
    let path = d.path("inbox").join("slow.ndjson");
    let mut writer = std::fs::File::create(&path).unwrap();
    let mut line = |n: usize| {
        writeln!(writer, "{{\"subject\":\"KS-{n:03}\",\"date\":\"2026-03-02\",\"record_id\":\"r{n}\"}}")
            .unwrap();
    };
    (0..5).for_each(&mut line);
    // A pause well over the settle time between whole lines (the writer holds the file open)…
    std::thread::sleep(Duration::from_millis(2500));
    (5..10).for_each(&mut line);
    // … and one in the middle of a line.
    write!(writer, "{{\"subject\":").unwrap();
    writer.flush().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    writeln!(writer, "\"KS-100\",\"date\":\"2026-03-02\",\"record_id\":\"h\"}}").unwrap();
    drop(writer);
    common::wait_for("slow.ndjson filed", Duration::from_secs(20), || {
        d.processed("slow.ndjson").then_some(())
    });
    let store = d.store().await;
    assert_eq!(store.record_count().await.unwrap(), 11, "{}", daemon.log_text());
    assert!(d.quarantine_files().is_empty(), "nothing quarantined: {:?}", d.quarantine_files());
    store.close().await;
}

/// A file name (or any text from outside) with terminal control characters reaches the
/// log escaped: it cannot clear an operator's screen or forge a log line.
#[tokio::test]
async fn control_characters_from_outside_never_reach_the_log_raw() {
    let d = Deployment::new(None);
    let daemon = d.start();
    let name = "evil\u{1b}[2J\rforged.ndjson";
    d.drop_file(name, "{\"subject\":\"KS-1\",\"date\":\"not a date\u{1b}[31m\"}\n");
    let log = common::wait_for("the quarantine logged", Duration::from_secs(20), || {
        let log = daemon.log_text();
        log.contains("Line quarantined").then_some(log)
    });
    assert!(!log.contains('\u{1b}') && !log.contains('\r'), "raw control characters in the log:\n{log:?}");
    assert!(log.contains("evil\\x1b[2J\\x0dforged.ndjson"), "{log}");
}
