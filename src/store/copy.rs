//! `vigil store copy`: moves a trial from one database to another (the embedded SQLite it
//! outgrew to PostgreSQL, say), every table row for row with its ids, and proves the copy:
//! the same row count and the same content hash for every table on both sides.

use super::{connect_pool, migrator_of, missing_migrations, rows_sql, Backend};
use anyhow::Context;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// Tables in an order that inserts every row after the rows it refers to; tables not
/// listed (added by later migrations) follow in name order.
const ORDER: &[&str] = &[
    "users",
    "api_tokens",
    "signatures",
    "records",
    "adverse_event_versions",
    "quarantine",
    "pending_evaluation",
    "silences",
    "alerts",
    "alert_events",
    "reports",
    "notifications",
    "cohort_contributions",
    "cohort_totals",
    "config_loads",
    "audit_log",
];

/// Rows per INSERT statement (well under either backend's bind limit).
const ROWS_PER_INSERT: usize = 200;

/// One table, copied and checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopiedTable {
    pub table: String,
    pub rows: usize,
    /// SHA-256 of the table's rows, rendered canonically and sorted: equal on both sides.
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Real,
    Text,
}

/// A value as read from either backend.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

/// Copies every table of `from` into `to`, which must be empty (it is migrated first), and
/// checks each table's count and content hash on both sides. The source must have every
/// migration applied (run `vigil migrate` on it first).
pub async fn copy(from: &str, to: &str) -> anyhow::Result<Vec<CopiedTable>> {
    let (source, source_backend) = connect_pool(from).await.context("the source")?;
    let missing = missing_migrations(&source, migrator_of(source_backend)).await?;
    if let Some(first) = missing.first() {
        anyhow::bail!("the source lacks migration {first}: run `vigil migrate` on it first");
    }
    let (target, target_backend) = connect_pool(to).await.context("the target")?;
    migrator_of(target_backend).run(&target).await.context("cannot migrate the target")?;
    let tables = tables(&target, target_backend).await?;
    for t in &tables {
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM {t}")))
            .fetch_one(&target)
            .await?
            .try_get("n")?;
        anyhow::ensure!(n == 0, "the target is not empty: table {t} has {n} rows; copy into a new database");
    }
    // The copied rows are not new changes: the target's audit triggers stand still while
    // the source's trail (with its hash chain) is copied as it is; the copy itself is then
    // the target's next audit entry.
    sqlx::query("INSERT INTO audit_paused (reason) VALUES ('store copy')").execute(&target).await?;
    let mut out = Vec::new();
    for t in &tables {
        let columns = columns(&target, target_backend, t).await?;
        let rows = read(&source, t, &columns).await.with_context(|| format!("cannot read table {t}"))?;
        write(&target, target_backend, t, &columns, &rows)
            .await
            .with_context(|| format!("cannot write table {t}"))?;
        if target_backend == Backend::Postgres {
            // Later inserts must not collide with the copied ids (`id`, `seq`, …).
            for (c, _) in columns.iter().filter(|(_, k)| *k == Kind::Integer) {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT setval(s, COALESCE((SELECT MAX({c}) FROM {t}), 0) + 1, false) \
                     FROM (SELECT pg_get_serial_sequence('{t}', '{c}') AS s) q WHERE s IS NOT NULL"
                )))
                .execute(&target)
                .await?;
            }
        }
        let copied = read(&target, t, &columns).await?;
        let (a, b) = (digest(&rows), digest(&copied));
        anyhow::ensure!(
            rows.len() == copied.len() && a == b,
            "table {t} differs after the copy: {} rows ({a}) in the source, {} ({b}) in the target",
            rows.len(),
            copied.len()
        );
        out.push(CopiedTable { table: t.clone(), rows: rows.len(), sha256: a });
    }
    sqlx::query("DELETE FROM audit_paused").execute(&target).await?;
    let detail = serde_json::json!({
        "from": crate::config::redact(from),
        "tables": out.iter().map(|t| serde_json::json!({"table": t.table, "rows": t.rows, "sha256": t.sha256})).collect::<Vec<_>>(),
    });
    super::audit::append_to(
        &target,
        &super::audit::local_operator(),
        "database copied in",
        "database",
        "",
        &detail,
    )
    .await?;
    source.close().await;
    target.close().await;
    Ok(out)
}

/// The tables of the schema (not the migrator's own), in insertion order.
async fn tables(pool: &AnyPool, backend: Backend) -> anyhow::Result<Vec<String>> {
    let sql = match backend {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        Backend::Postgres => "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    };
    let mut names: Vec<String> = sqlx::query(sql)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.try_get("name"))
        .collect::<Result<_, _>>()?;
    names.retain(|n| n != "_sqlx_migrations" && n != "audit_paused");
    names.sort_by_key(|n| (ORDER.iter().position(|o| o == n).unwrap_or(ORDER.len()), n.clone()));
    Ok(names)
}

/// A table's columns and how their values are carried, from the target's schema.
async fn columns(pool: &AnyPool, backend: Backend, table: &str) -> anyhow::Result<Vec<(String, Kind)>> {
    let kind = |ty: &str| {
        let ty = ty.to_ascii_lowercase();
        if ty.contains("int") {
            Kind::Integer
        } else if ty.contains("real")
            || ty.contains("double")
            || ty.contains("float")
            || ty.contains("numeric")
        {
            Kind::Real
        } else {
            Kind::Text
        }
    };
    let rows = match backend {
        Backend::Sqlite => {
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT name, type FROM pragma_table_info('{table}') ORDER BY cid")))
                .fetch_all(pool)
                .await?
        }
        Backend::Postgres => {
            sqlx::query(
                "SELECT CAST(column_name AS TEXT) AS name, CAST(data_type AS TEXT) AS type FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter()
        .map(|r| {
            let name: String = r.try_get("name")?;
            let ty: String = r.try_get("type")?;
            Ok((name, kind(&ty)))
        })
        .collect()
}

async fn read(pool: &AnyPool, table: &str, columns: &[(String, Kind)]) -> anyhow::Result<Vec<Vec<Value>>> {
    let list: Vec<String> = columns
        .iter()
        .map(|(c, k)| match k {
            // Read as text whatever the source's affinity (a SQLite column may hold either).
            Kind::Text => format!("CAST({c} AS TEXT) AS {c}"),
            _ => c.clone(),
        })
        .collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {} FROM {table}", list.join(", "))))
        .fetch_all(pool)
        .await?;
    rows.iter().map(|r| values(r, columns)).collect()
}

fn values(row: &AnyRow, columns: &[(String, Kind)]) -> anyhow::Result<Vec<Value>> {
    columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                Kind::Integer => row.try_get::<Option<i64>, _>(i)?.map_or(Value::Null, Value::Integer),
                Kind::Real => row.try_get::<Option<f64>, _>(i)?.map_or(Value::Null, Value::Real),
                Kind::Text => row.try_get::<Option<String>, _>(i)?.map_or(Value::Null, Value::Text),
            })
        })
        .collect()
}

async fn write(
    pool: &AnyPool,
    backend: Backend,
    table: &str,
    columns: &[(String, Kind)],
    rows: &[Vec<Value>],
) -> anyhow::Result<()> {
    let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
    let mut tx = pool.begin().await?;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {}",
            names.join(", "),
            rows_sql(backend, chunk.len(), columns.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            for (v, (_, kind)) in row.iter().zip(columns) {
                q = match v {
                    // A NULL is bound with its column's type (PostgreSQL checks it).
                    Value::Null => match kind {
                        Kind::Integer => q.bind(None::<i64>),
                        Kind::Real => q.bind(None::<f64>),
                        Kind::Text => q.bind(None::<String>),
                    },
                    Value::Integer(n) => q.bind(*n),
                    Value::Real(x) => q.bind(*x),
                    Value::Text(s) => q.bind(s.clone()),
                };
            }
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// SHA-256 over the rows rendered one per line (fields separated by a unit separator,
/// NULL distinct from every text), sorted: the same content gives the same hash whatever
/// the backend's row order.
fn digest(rows: &[Vec<Value>]) -> String {
    let mut lines: Vec<String> = rows
        .iter()
        .map(|row| {
            let fields: Vec<String> = row
                .iter()
                .map(|v| match v {
                    Value::Null => "\u{0}NULL".to_string(),
                    Value::Integer(n) => n.to_string(),
                    Value::Real(x) => format!("{x:?}"),
                    Value::Text(s) => s.clone(),
                })
                .collect();
            fields.join("\u{1f}")
        })
        .collect();
    lines.sort_unstable();
    let mut h = Sha256::new();
    for l in &lines {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}
