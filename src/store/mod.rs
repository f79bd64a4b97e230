//! The store: every SQL statement vigil runs lives here.
//!
//! One code path serves SQLite (embedded default) and PostgreSQL through sqlx's `Any`
//! driver. Queries use `$N` placeholders, which both accept; times are epoch
//! milliseconds (BIGINT) so ordering and arithmetic are identical on both. The time
//! written is the store's `Clock`'s, never the machine's directly, so tests can move it.

mod accounts;
mod alerts;
pub(crate) mod audit;
pub(crate) mod console_queries;
pub mod copy;
mod leases;
mod loads;
mod outbox;
mod records;
mod reports;
mod sessions;
mod vitals;

pub use accounts::{AccountError, TokenRow};
pub use alerts::{AlertEvent, AlertFilter, AlertRow, CohortContribution, CohortTotals, Evaluation};
// The alert types the store records; they live with the policy in `crate::alerts`.
pub use crate::alerts::{FirstNotice, NewAlert, Recipient, Silence, StillFiring, TransitionError};
pub use loads::ConfigLoad;
pub use outbox::{
    BadNotification, Delivery, DeliveryEntry, Notice, NotificationKind, NotificationRow, NotificationStatus,
    UnknownWord,
};
pub use records::{BatchOutcome, NewRecord, Rejected};
pub use reports::{ReportClaim, ReportKind, ReportRow, UnknownReportKind};
pub use sessions::SessionRow;
pub use vitals::Vitals;

use crate::clock::Clock;
use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    clock: Clock,
    /// The study's and sites' time zones: stored records are placed in them when read.
    zones: crate::model::Zones,
    /// Who this pool is among the replicas on one database: the claimant of the outbox
    /// rows it takes (each `connect` is a new one).
    instance: std::sync::Arc<str>,
}

/// Whether `e` comes from a database that cannot be reached now (down, restarting, out of
/// connections), as opposed to a fault in the request or the data: the caller should wait
/// and retry, and nothing was stored.
pub fn is_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<sqlx::Error>(),
            Some(
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            )
        ) || cause.downcast_ref::<std::io::Error>().is_some()
            || cause.downcast_ref::<sqlx::Error>().and_then(|e| e.as_database_error()).is_some_and(|d| {
                // PostgreSQL shutting down or starting up (57P01–57P03), connection
                // exceptions (08…), too many connections (53300), or a database closed to
                // connections by its administrator (55000, "not currently accepting").
                let code = d.code().unwrap_or_default();
                code.starts_with("57P")
                    || code.starts_with("08")
                    || code == "53300"
                    || (code == "55000" && d.message().contains("accepting connections"))
            })
    })
}

/// The pool for `url` (creating the SQLite file and its folder if needed, owner-only).
async fn connect_pool(url: &str) -> anyhow::Result<(AnyPool, Backend)> {
    sqlx::any::install_default_drivers();
    let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
    let url = match backend {
        Backend::Sqlite => {
            if let Some(path) = url.strip_prefix("sqlite://").map(|p| p.split('?').next().unwrap_or(p)) {
                if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create database folder {}", dir.display()))?;
                }
                owner_only(std::path::Path::new(path))?;
            }
            if url.contains('?') {
                url.to_string()
            } else {
                format!("{url}?mode=rwc")
            }
        }
        Backend::Postgres => url.to_string(),
    };
    let options = AnyPoolOptions::new()
        .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
        // A database that is down answers "unavailable" soon, not after 30 s.
        .acquire_timeout(std::time::Duration::from_secs(5))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL for concurrent readers; FULL so a commit survives power loss:
                    // a record is acknowledged (file moved, HTTP 202) only after it.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                }
                Ok(())
            })
        });
    let pool = options
        .connect(&url)
        .await
        .with_context(|| format!("cannot open database {}", crate::config::redact(&url)))?;
    Ok((pool, backend))
}

fn migrator_of(backend: Backend) -> &'static sqlx::migrate::Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    }
}

/// What opening the store does about the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// Apply what is missing (the default; `migrate_at_start: true`).
    Apply,
    /// Refuse to run on a database that lacks one.
    Check,
}

/// The migrations `migrator` has that the database has not applied, as "0009 description".
async fn missing_migrations(
    pool: &AnyPool,
    migrator: &sqlx::migrate::Migrator,
) -> anyhow::Result<Vec<String>> {
    let applied: Vec<i64> =
        match sqlx::query("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(pool).await {
            Ok(rows) => rows.iter().map(|r| r.try_get::<i64, _>("version")).collect::<Result<_, _>>()?,
            // A new database: no migration table yet.
            Err(_) => Vec::new(),
        };
    Ok(migrator
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{:04} {}", m.version, m.description))
        .collect())
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Connects on the system clock (see `connect_with_clock`).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with_clock(url, Clock::System).await
    }

    /// Connects, creates the SQLite file if needed, and applies the migrations. Every
    /// time the store writes comes from `clock`.
    pub async fn connect_with_clock(url: &str, clock: Clock) -> anyhow::Result<Self> {
        Self::open(url, clock, Migrations::Apply).await
    }

    /// Connects; applies the migrations, or only checks that they have been applied
    /// (`migrate_at_start: false`, where `vigil migrate` is a deployment step). On
    /// PostgreSQL the migrator holds an advisory lock, so replicas starting together
    /// apply each migration once.
    pub async fn open(url: &str, clock: Clock, migrations: Migrations) -> anyhow::Result<Self> {
        let (pool, backend) = connect_pool(url).await?;
        let migrator = migrator_of(backend);
        match migrations {
            Migrations::Apply => migrator.run(&pool).await.context("cannot apply database migrations")?,
            Migrations::Check => {
                let missing = missing_migrations(&pool, migrator).await?;
                if let Some(first) = missing.first() {
                    anyhow::bail!(
                        "the database lacks {} migration(s), from {first}: run `vigil migrate` \
                         (or set migrate_at_start: true)",
                        missing.len()
                    );
                }
            }
        }
        Ok(Self { pool, backend, clock, zones: Default::default(), instance: instance_id().into() })
    }

    /// Applies the migrations the database lacks; returns those applied ("0009 …").
    pub async fn migrate(url: &str) -> anyhow::Result<Vec<String>> {
        let (pool, backend) = connect_pool(url).await?;
        let migrator = migrator_of(backend);
        let missing = missing_migrations(&pool, migrator).await?;
        migrator.run(&pool).await.context("cannot apply database migrations")?;
        pool.close().await;
        Ok(missing)
    }

    /// A write transaction. On SQLite it takes the write lock at once (BEGIN IMMEDIATE):
    /// a deferred transaction that reads, then writes after another connection committed,
    /// fails at once with "database is locked" instead of waiting its turn.
    pub(crate) async fn begin_write(&self) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Any>> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        };
        tx.context("cannot start a transaction")
    }

    /// Serializes the writes about one subject (PostgreSQL): a transaction-scoped advisory
    /// lock per subject ("" is the cohort). Two evaluations of a subject — the HTTP
    /// wake-up and the inbox loop, or two replicas — cannot both count its change into the
    /// running totals or both raise its alert; and a subject's records are stored one batch
    /// at a time, so their seqs grow in commit order and a pending mark never goes back. Keys are taken in one
    /// global order, so two commits over overlapping subjects cannot deadlock. SQLite
    /// needs none: a write transaction holds the database's one write lock.
    pub(crate) async fn lock_subjects(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        subjects: &[&str],
    ) -> anyhow::Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let mut keys: Vec<i64> = subjects.iter().map(|s| advisory_key(&format!("subject:{s}"))).collect();
        keys.sort_unstable();
        keys.dedup();
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            // A VALUES list is scanned in its order: the locks are taken in key order.
            let values: Vec<String> = (1..=chunk.len()).map(|i| format!("(${i}::BIGINT)")).collect();
            let sql = format!(
                "SELECT COUNT(pg_advisory_xact_lock(k)) AS n FROM (VALUES {}) AS v(k)",
                values.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for k in chunk {
                q = q.bind(*k);
            }
            q.fetch_one(&mut **tx).await.context("cannot lock the subjects being committed")?;
        }
        Ok(())
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Reads local times of stored records in these zones (config `study.timezone`, `study.sites`).
    pub fn with_zones(mut self, zones: crate::model::Zones) -> Self {
        self.zones = zones;
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Now in epoch milliseconds, the unit of every time column.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// This replica's name among those sharing the database (`host:pid:random`).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A name no other replica has: the host and process for the logs, and random bits
/// because two pools in one process (or a reused pid) must differ too.
fn instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let mut bits = [0u8; 4];
    // Without randomness the clock's nanoseconds still tell two pools apart.
    if getrandom::getrandom(&mut bits).is_err() {
        bits = Utc::now().timestamp_subsec_nanos().to_le_bytes();
    }
    format!("{}:{}:{}", if host.is_empty() { "vigil" } else { &host }, std::process::id(), hex::encode(bits))
}

/// A PostgreSQL advisory-lock key for `what` (a subject, a report's due time): the first
/// 8 bytes of a SHA-256 under vigil's prefix, the same in every replica and release.
pub(crate) fn advisory_key(what: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(b"vigil:").chain_update(what.as_bytes()).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

pub(crate) fn to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub(crate) fn opt_text(row: &AnyRow, col: &str) -> Option<String> {
    row.try_get::<Option<String>, _>(col).ok().flatten()
}

/// The SQLite database holds the arms and every subject's data: it is created, and kept,
/// readable by its owner only (SQLite gives its -wal and -shm files the same mode).
fn owner_only(path: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if path.as_os_str().is_empty() || path.to_str().is_some_and(|p| p.starts_with(':')) {
            return Ok(()); // in memory
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create database {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict database {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Keys per `IN (…)` lookup: well under SQLite's 32,766 and PostgreSQL's 65,535 bound
/// parameters. Multi-row statements bind at most this many values too.
pub(crate) const KEYS_PER_QUERY: usize = 1_000;

/// `{head} IN ($1, …) {tail}` with one bind per key: how the store reads the rows of many
/// subjects (or keys) at once. At most [`KEYS_PER_QUERY`] keys.
pub(crate) fn select_in(
    backend: Backend,
    head: &str,
    keys: &[impl AsRef<str>],
    tail: &str,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let sql = format!("{head} IN ({}) {tail}", list_sql(backend, keys.len()));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for k in keys {
        q = q.bind(k.as_ref().to_string());
    }
    q
}

/// `$1, $2, …, $n` (PostgreSQL) or `?, ?, …` (SQLite): a list of `n` placeholders for
/// `IN (…)`. SQLite looks a `$N` name up by a linear scan for every bind, quadratic in a
/// multi-row statement, so it gets anonymous `?`. (sqlx's `QueryBuilder` writes `?` for the
/// `Any` driver whatever the backend, which PostgreSQL refuses.)
pub(crate) fn list_sql(backend: Backend, n: usize) -> String {
    rows_sql(backend, 1, n).trim_start_matches('(').trim_end_matches(')').to_string()
}

/// `($1, $2), ($3, $4), …`: the VALUES rows of a multi-row INSERT of `rows` × `columns`.
pub(crate) fn rows_sql(backend: Backend, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 1..=columns {
            if c > 1 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${}", r * columns + c)),
            }
        }
        sql.push(')');
    }
    sql
}

/// Unit tests' databases: SQLite in the test's folder, or — with
/// `VIGIL_TEST_BACKEND=postgres`, as `.ci/run` runs the store's tests a second time — a new
/// database on the PostgreSQL server (`VIGIL_TEST_POSTGRES_URL`), dropped with the guard.
#[cfg(test)]
pub(crate) mod testing {
    use std::process::Command;

    pub struct TestDb {
        pub url: String,
        postgres: Option<String>,
        _dir: tempfile::TempDir,
    }

    fn admin() -> String {
        std::env::var("VIGIL_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
    }

    fn psql(sql: &str) {
        let out = Command::new("psql").arg(admin()).args(["-qAtc", sql]).output().expect("psql");
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    }

    impl TestDb {
        pub fn new() -> TestDb {
            let dir = tempfile::tempdir().expect("temp dir");
            if std::env::var("VIGIL_TEST_BACKEND").as_deref() != Ok("postgres") {
                let url = format!("sqlite://{}", dir.path().join("t.db").display());
                return TestDb { url, postgres: None, _dir: dir };
            }
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let name = format!("vigil_u{}_{n}_{}", std::process::id(), chrono::Utc::now().timestamp_micros());
            psql(&format!("CREATE DATABASE {name}"));
            let base = admin().rsplit_once('/').map(|(b, _)| b.to_string()).expect("a database in the URL");
            TestDb { url: format!("{base}/{name}"), postgres: Some(name), _dir: dir }
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            if let Some(name) = &self.postgres {
                psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_database_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let store = super::Store::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        store.close().await;
        // An existing database made by an older vigil is narrowed too.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::Store::connect(&format!("sqlite://{}", path.display())).await.unwrap().close().await;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn placeholders_number_every_bind_once() {
        use super::Backend::{Postgres, Sqlite};
        assert_eq!(super::list_sql(Postgres, 3), "$1, $2, $3");
        assert_eq!(super::rows_sql(Postgres, 2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::rows_sql(Sqlite, 2, 2), "(?, ?), (?, ?)");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(crate::config::redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(crate::config::redact("sqlite:///x.db"), "sqlite:///x.db");
    }
}
