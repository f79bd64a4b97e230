//! Replicas on one PostgreSQL database may share one inbox (a network folder): each file is
//! claimed by one replica with an atomic rename and read once; a file claimed by a replica
//! that died is taken back into the inbox and read by another.

mod common;

use common::{drop_database, fresh_database, wait_for, Deployment};
use std::time::{Duration, SystemTime};

fn on(url: &str, inbox: &std::path::Path) -> Deployment {
    let d = Deployment::new(None);
    let cfg = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace(&d.db_url(), url)
        .replace("inbox: inbox", &format!("inbox: \"{}\"", inbox.display()));
    std::fs::write(&d.config, cfg).unwrap();
    d
}

#[tokio::test]
async fn two_replicas_share_an_inbox_and_read_each_file_once() {
    let (url, name) = fresh_database().await;
    let shared = tempfile::tempdir().unwrap();
    let inbox = shared.path().join("inbox");
    // A file claimed by a replica that died long ago.
    let dead = inbox.join(".claims").join("deadhost-0badc0de");
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(
        dead.join("orphan.ndjson"),
        "{\"subject\":\"KS-900\",\"date\":\"2026-03-02\",\"record_id\":\"orphan\"}\n",
    )
    .unwrap();
    std::fs::File::open(&dead).unwrap().set_modified(SystemTime::now() - Duration::from_secs(600)).unwrap();

    let (a, b) = (on(&url, &inbox), on(&url, &inbox));
    let (da, db) = (a.start(), b.start());
    // Files big enough that one is still being read when the other replica looks.
    let (files, per_file) = (16, 2000);
    for i in 0..files {
        let tmp = inbox.join(format!("f{i:03}.ndjson.tmp"));
        let body: String = (0..per_file)
            .map(|j| {
                format!(
                    "{{\"subject\":\"KS-{:03}\",\"date\":\"2026-03-02\",\"record_id\":\"r{i}-{j}\"}}\n",
                    j % 50
                )
            })
            .collect();
        std::fs::write(&tmp, body).unwrap();
        std::fs::rename(&tmp, inbox.join(format!("f{i:03}.ndjson"))).unwrap();
    }
    let processed = inbox.join("processed");
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&processed)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    wait_for("every file filed", Duration::from_secs(120), || (names().len() == files + 1).then_some(()));
    let mut expected: Vec<String> = (0..files).map(|i| format!("f{i:03}.ndjson")).collect();
    expected.push("orphan.ndjson".into());
    expected.sort();
    assert_eq!(names(), expected, "each file filed once, under its own name");

    let store = vigil::store::Store::connect(&url).await.unwrap();
    assert_eq!(store.record_count().await.unwrap(), (files * per_file) as i64 + 1);
    store.close().await;
    let logs = format!("{}\n{}", da.log_text(), db.log_text());
    for bad in ["Cannot ingest", "cannot move", "Cannot claim", "Cannot put", "ERROR"] {
        assert!(!logs.contains(bad), "{bad}:\n{logs}");
    }
    assert!(logs.contains("left by its holder"), "the orphan was taken back:\n{logs}");
    drop((da, db));
    drop_database(&name).await;
}
