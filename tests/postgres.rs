//! The store on PostgreSQL: the same code path as SQLite, against the server on
//! 127.0.0.1:5432 (override with VIGIL_TEST_POSTGRES_URL). Each test makes its own database.

mod common;

use vigil::ingest::native;
use vigil::store::{Evaluation, NewAlert, Recipient, StillFiring, Store};

use common::{drop_database, fresh_database};
use sqlx::Connection;

#[tokio::test]
async fn records_alerts_and_the_outbox_work_on_postgresql() {
    let (url, name) = fresh_database().await;
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), vigil::store::Backend::Postgres);

    let text = concat!(
        "{\"subject\":\"KS-101\",\"site\":\"KS\",\"record_id\":\"a\",\"adverse_events\":[{\"id\":\"AE-1\",\"term\":\"Rash\",\"grade\":2}]}\n",
        "{\"subject\":\"KS-101\",\"site\":\"KS\",\"record_id\":\"b\",\"adverse_events\":[{\"id\":\"AE-1\",\"term\":\"Rash\",\"grade\":3}]}\n",
        "{\"subject\":\"KS-102\",\"date\":\"2019-02-01\"}\n",
        "{\"subject\":\"KS-103\",\"adverse_events\":[{\"term\":\"Rash\",\"grade\":0}]}\n",
    );
    let parsed = native::parse("pg.ndjson", text);
    let first = store.store_batch(&parsed.records, &parsed.rejected).await.unwrap();
    assert_eq!((first.stored, first.duplicates, first.quarantined), (3, 0, 1));
    let again = store.store_batch(&parsed.records, &parsed.rejected).await.unwrap();
    assert_eq!((again.stored, again.duplicates, again.quarantined), (0, 3, 0));
    assert_eq!(store.record_count().await.unwrap(), 3);
    assert_eq!(store.adverse_event_versions("KS-101", "AE-1").await.unwrap(), 2);

    let history = store.history("KS-101").await.unwrap();
    assert_eq!(history.adverse_events()[0].grade.unwrap().value(), 3);
    let pending = store.pending_subjects().await.unwrap();
    assert_eq!(pending.len(), 2);

    let so = Recipient { role: "safety-officer".into(), address: "so@trial.test".into(), blinded: true };
    let alert = |level: i64| common::ae_alert(level, &so);
    let (subject, seq) = pending.iter().find(|(s, _)| s == "KS-101").cloned().unwrap();
    fn eval(alerts: Vec<NewAlert>, pending: Option<(&str, i64)>) -> Evaluation<'_> {
        Evaluation { pending, subject: "KS-101", alerts, ..Default::default() }
    }
    let raised =
        store.commit_evaluation(eval(vec![alert(3)], Some((&subject, seq))), "trial.test").await.unwrap();
    assert_eq!(raised.len(), 1);
    // Same episode at the same or a lower level: nothing new.
    assert!(store
        .commit_evaluation(eval(vec![alert(3), alert(2)], None), "trial.test")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.commit_evaluation(eval(vec![alert(4)], None), "trial.test").await.unwrap().len(), 1);
    assert_eq!(store.pending_subjects().await.unwrap().len(), 1);

    let due = store.due_notifications(10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(store.pending_group(due[0].group_key.as_deref().unwrap()).await.unwrap().len(), 2);
    store.record_delivery(due[0].id, &vigil::store::Delivery::Sent).await.unwrap();
    store
        .record_delivery(due[1].id, &vigil::store::Delivery::Failed { error: "550 no such user".into() })
        .await
        .unwrap();
    let all = store.notifications().await.unwrap();
    assert_eq!(all.iter().map(|n| n.status.as_str()).collect::<Vec<_>>(), ["sent", "failed"]);
    assert_eq!(all[1].last_error.as_deref(), Some("550 no such user"));
    assert!(store.due_notifications(10).await.unwrap().is_empty());

    // The lifecycle on PostgreSQL: escalation, acknowledgement, silences, resolution.
    let due = store.due_escalations().await.unwrap();
    assert_eq!(due.len(), 2);
    assert!(store.escalate(&due[0], std::slice::from_ref(&so), None, "trial.test").await.unwrap());
    assert!(
        !store.escalate(&due[0], std::slice::from_ref(&so), None, "trial.test").await.unwrap(),
        "a step escalates once"
    );
    let acked = store
        .transition(due[1].id, vigil::alerts::Transition::Acknowledge, "dr.who", Some("on it"))
        .await
        .unwrap();
    assert_eq!(acked.status, "acknowledged");
    assert!(store
        .transition(due[1].id, vigil::alerts::Transition::Acknowledge, "dr.who", None)
        .await
        .is_err());
    assert!(store.due_escalations().await.unwrap().is_empty());
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    let sid =
        store.create_silence(Some("ae-grade"), None, None, past, "dr.who", "known issue").await.unwrap();
    assert_eq!(store.alert(due[0].id).await.unwrap().unwrap().status, "silenced");
    let reopened = store.expire_silences().await.unwrap();
    assert!(reopened.is_empty(), "its notice was sent before the silence");
    assert_eq!(store.alert(due[0].id).await.unwrap().unwrap().status, "open");
    assert!(store.silences().await.unwrap().iter().any(|s| s.id == sid && s.ended));
    let resolve = Evaluation {
        subject: "KS-101",
        still_firing: vec![StillFiring {
            rule_id: "ae-grade".into(),
            episodes: vec![],
            resolved_notice: vec![so],
        }],
        ..Default::default()
    };
    store.commit_evaluation(resolve, "trial.test").await.unwrap();
    assert!(store.alerts().await.unwrap().iter().all(|a| a.status == "resolved"));
    let events = store.alert_events(due[1].id).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["raised", "acknowledged", "resolved"]);
    assert_eq!(events[1].actor, "dr.who");

    store.close().await;
    drop_database(&name).await;
}

/// Tables, columns (type family and nullability) and indexes of a migrated database.
type Schema = std::collections::BTreeMap<String, Vec<String>>;

/// The SQL types of both backends mapped to one family: an id column is INTEGER
/// (AUTOINCREMENT) on SQLite and BIGSERIAL on PostgreSQL, both 64-bit integers.
fn family(sql_type: &str) -> &'static str {
    match sql_type.to_ascii_lowercase().as_str() {
        "integer" | "bigint" | "int8" | "int4" => "integer",
        "text" | "character varying" => "text",
        _ => "other",
    }
}

/// `schema` with each table's indexes added (as "<table> indexes"), every list sorted so
/// that the two backends' schemas compare.
fn with_indexes(mut schema: Schema, indexes: Vec<(String, String)>) -> Schema {
    for (table, index) in indexes {
        schema.entry(format!("{table} indexes")).or_default().push(index);
    }
    schema.values_mut().for_each(|v| v.sort());
    schema
}

async fn sqlite_schema(url: &str) -> Schema {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for (table,) in tables {
        let columns: Vec<(String, String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info('{table}')"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut described: Vec<String> = columns
            .into_iter()
            .map(|(name, ty, notnull, pk)| {
                // A primary key is never NULL, whatever SQLite's flag says.
                let null = if notnull != 0 || pk != 0 { "not null" } else { "null" };
                format!("{name} {} {null}", family(&ty))
            })
            .collect();
        described.sort();
        schema.insert(table, described);
    }
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    with_indexes(schema, indexes)
}

async fn postgres_schema(url: &str) -> Schema {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let columns: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for (table, name, ty, nullable) in columns {
        let null = if nullable == "YES" { "null" } else { "not null" };
        schema.entry(table).or_default().push(format!("{name} {} {null}", family(&ty)));
    }
    // Indexes made by CREATE INDEX: not those behind a primary key or UNIQUE constraint.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.tablename::text, i.indexname::text FROM pg_indexes i WHERE i.schemaname = 'public' \
         AND i.tablename <> '_sqlx_migrations' \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    with_indexes(schema, indexes)
}

/// migrations/sqlite and migrations/postgres are kept by hand: this fails when they
/// drift (a table, a column, its type family or nullability, an index on one side only).
#[tokio::test]
async fn the_sqlite_and_postgresql_migrations_make_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("parity.db").display());
    Store::connect(&sqlite_url).await.unwrap().close().await;
    let (pg_url, name) = fresh_database().await;
    Store::connect(&pg_url).await.unwrap().close().await;

    let sqlite = sqlite_schema(&sqlite_url).await;
    let postgres = postgres_schema(&pg_url).await;
    drop_database(&name).await;
    assert!(sqlite.contains_key("notifications") && !sqlite.contains_key("report_deliveries"));
    for table in sqlite.keys().chain(postgres.keys()).collect::<std::collections::BTreeSet<_>>() {
        assert_eq!(
            sqlite.get(table),
            postgres.get(table),
            "`{table}` differs: SQLite left, PostgreSQL right"
        );
    }
}

/// Migration 0006 moves the report deliveries into the one outbox, on both backends:
/// pending ones stay pending (and are then sent by the one worker), sent ones stay sent.
#[tokio::test]
async fn report_deliveries_move_into_the_one_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}?mode=rwc", dir.path().join("upgrade.db").display());
    let (pg_url, name) = fresh_database().await;
    for (url, migrations) in
        [(sqlite_url.as_str(), "migrations/sqlite"), (pg_url.as_str(), "migrations/postgres")]
    {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(url).await.unwrap();
        let mut before = sqlx::migrate::Migrator::new(std::path::Path::new(migrations)).await.unwrap();
        before.migrations = before.migrations.iter().filter(|m| m.version <= 5).cloned().collect();
        before.run(&pool).await.unwrap();
        for statement in [
            "INSERT INTO reports (kind, as_of, generated_at, reason, snapshot, path, sha256) \
             VALUES ('open', 1, 2, 'manual', 'aa', '/r/open.html', 'bb')",
            "INSERT INTO reports (kind, as_of, generated_at, reason, snapshot, path, sha256) \
             VALUES ('closed', 1, 3, 'manual', 'aa', '/r/closed.html', 'cc')",
            "INSERT INTO report_deliveries (report_id, role, recipient, message_id, status, attempts, next_attempt_at, sent_at) \
             VALUES (1, 'safety-officer', 'so@trial.test', '<vigil.report-1.0@trial.test>', 'sent', 1, 2, 5)",
            "INSERT INTO report_deliveries (report_id, role, recipient, message_id, status, attempts, next_attempt_at, last_error) \
             VALUES (2, 'dsmb-chair', 'chair@trial.test', '<vigil.report-2.0@trial.test>', 'pending', 2, 9, '421 busy')",
        ] {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let store = Store::connect(url).await.unwrap();
        let all = store.notifications().await.unwrap();
        let seen: Vec<_> = all
            .iter()
            .map(|n| {
                (
                    n.about,
                    n.kind,
                    n.status,
                    n.blinded,
                    n.attempts,
                    n.message_id.as_str(),
                    n.last_error.as_deref(),
                )
            })
            .collect();
        use vigil::store::{Notice, NotificationKind as K, NotificationStatus as S};
        assert_eq!(
            seen,
            [
                (Notice::Report(1), K::Report, S::Sent, true, 1, "<vigil.report-1.0@trial.test>", None),
                (
                    Notice::Report(2),
                    K::Report,
                    S::Pending,
                    false,
                    2,
                    "<vigil.report-2.0@trial.test>",
                    Some("421 busy")
                ),
            ],
            "{url}"
        );
        assert_eq!(store.report_deliveries().await.unwrap().len(), 2);
        assert_eq!(store.next_notification_due().await.unwrap(), Some(9));
        store.close().await;
    }
    drop_database(&name).await;
}

/// A NUL character, escaped or raw, refuses its own line with a reason and the rest of
/// the batch is stored — on PostgreSQL, whose text cannot hold it.
#[tokio::test]
async fn a_nul_character_is_quarantined_per_line_on_postgresql() {
    let (url, name) = fresh_database().await;
    let store = Store::connect(&url).await.unwrap();
    let text = "{\"subject\":\"KS-1\",\"date\":\"2019-02-01\"}\n\
                {\"subject\":\"KS-2\",\"site\":\"K\\u0000S\"}\n\
                {\"subject\":\"KS-3\",\"site\":\"K\0S\"}\n\
                {\"subject\":\"KS-4\",\"date\":\"2019-02-01\"}\n";
    let parsed = native::parse("nul.ndjson", text);
    let out = store.store_batch(&parsed.records, &parsed.rejected).await.unwrap();
    assert_eq!((out.stored, out.quarantined), (2, 2));
    let lines: Vec<(usize, &str)> = parsed.rejected.iter().map(|r| (r.line, r.field.as_str())).collect();
    assert_eq!(lines[0], (2, "site"), "{:?}", parsed.rejected);
    assert_eq!(lines[1].0, 3, "{:?}", parsed.rejected);
    store.close().await;
    drop_database(&name).await;
}

/// Replicas starting at once on a new database apply each migration once (PostgreSQL's
/// advisory lock serializes the migrator); with `migrate_at_start: false` vigil refuses a
/// database that lacks a migration until `vigil migrate` has run.
#[tokio::test]
async fn replicas_starting_together_migrate_once_and_a_checked_start_waits_for_vigil_migrate() {
    use vigil::store::Migrations;
    let (url, name) = fresh_database().await;
    let d = common::Deployment::with(None, "migrate_at_start: false\n");
    let cfg = std::fs::read_to_string(&d.config).unwrap().replace(&d.db_url(), &url);
    std::fs::write(&d.config, cfg).unwrap();
    let config = d.config.to_str().unwrap();

    let cli = d.vigil(&["alerts", "list", "--config", config]);
    assert!(cli.status.success(), "the CLI's own commands still migrate");
    // The daemon, told not to migrate, refuses the stale database with the way out.
    let (url2, name2) = fresh_database().await;
    let stale = std::fs::read_to_string(&d.config).unwrap().replace(&url, &url2);
    std::fs::write(&d.config, stale).unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "--config", config])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(err.contains("run `vigil migrate`"), "{err}");
    let migrate = d.vigil(&["migrate", "--config", config]);
    let out = String::from_utf8_lossy(&migrate.stdout);
    assert!(migrate.status.success() && out.contains("applied 0001 initial"), "{out}");
    let again = d.vigil(&["migrate", "--config", config]);
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), "the database is up to date");
    Store::open(&url2, vigil::clock::Clock::System, Migrations::Check).await.unwrap().close().await;

    // Three replicas at once on a third, new database.
    let (url3, name3) = fresh_database().await;
    let (a, b, c) = tokio::join!(Store::connect(&url3), Store::connect(&url3), Store::connect(&url3));
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let pool = sqlx::PgPool::connect(&url3).await.unwrap();
    let applied: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    let files = std::fs::read_dir(format!("{}/migrations/postgres", common::REPO)).unwrap().count();
    assert_eq!(applied as usize, files, "each migration applied once");
    pool.close().await;
    for s in [a, b, c] {
        s.close().await;
    }
    for n in [name, name2, name3] {
        drop_database(&n).await;
    }
}

/// A trial that outgrew SQLite moves to PostgreSQL: every table copied with its ids and
/// checked by count and content hash, and the copy goes on working (new ids follow the
/// copied ones). A target that is not empty is refused.
#[tokio::test]
async fn a_trial_is_copied_from_sqlite_to_postgresql_and_verified() {
    let d = common::Deployment::new(None);
    let config = d.config.to_str().unwrap();
    let input = format!("{}/examples/infusion-reaction.ndjson", common::REPO);
    let ingest = d.vigil(&["ingest", "--config", config, &input]);
    assert!(ingest.status.code().is_some_and(|c| c <= 1), "{}", String::from_utf8_lossy(&ingest.stderr));
    let silence = ["alerts", "silence", "--site", "KS", "--for", "4h", "--comment", "import"];
    assert!(d.vigil(&[&silence[..], &["--config", config]].concat()).status.success());
    let sqlite = d.store().await;
    let (records, alerts) = (sqlite.record_count().await.unwrap(), sqlite.alerts().await.unwrap());
    sqlite.close().await;
    assert!(records > 0 && !alerts.is_empty());

    let (url, name) = fresh_database().await;
    let copy = d.vigil(&["store", "copy", "--from", &d.db_url(), "--to", &url]);
    let out = String::from_utf8_lossy(&copy.stdout);
    assert!(copy.status.success(), "{out}{}", String::from_utf8_lossy(&copy.stderr));
    assert!(out.contains("copied and verified") && out.contains("records"), "{out}");

    let pg = Store::connect(&url).await.unwrap();
    assert_eq!(pg.record_count().await.unwrap(), records);
    let copied = pg.alerts().await.unwrap();
    let ids = |a: &[vigil::store::AlertRow]| {
        a.iter().map(|a| (a.id, a.rule_id.clone(), a.subject.clone())).collect::<Vec<_>>()
    };
    assert_eq!(ids(&copied), ids(&alerts), "the same alerts under the same ids");
    // New rows get ids after the copied ones.
    let more = native::parse("more.ndjson", "{\"subject\":\"KS-999\",\"date\":\"2019-03-01\"}\n");
    assert_eq!(pg.store_batch(&more.records, &more.rejected).await.unwrap().stored, 1);
    pg.close().await;

    let again = d.vigil(&["store", "copy", "--from", &d.db_url(), "--to", &url]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("the target is not empty"));
    drop_database(&name).await;
}
