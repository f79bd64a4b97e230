//! Throughput of `vigil ingest` against the storage it runs on, measured side by side in
//! one run (this machine is shared and noisy: the ratio is the number to watch).
//!
//! For each cohort size it writes a synthetic NDJSON file (8 visits per subject: a dose at
//! the first, adverse events, vitals, labs, EDSS, MRI), then
//! - **bare insert**: the same record bodies into an empty SQLite database of the same kind
//!   (WAL), 2,000 rows per transaction in multi-row INSERTs — what the disk and sqlx allow;
//! - **vigil**: the path of `vigil ingest` — read the file in batches, store each batch,
//!   evaluate every touched subject against the shipped rule pack, queue the alerts.
//!
//! Peak memory is the process's after vigil's run (sizes in increasing order: each row's
//! peak covers the smaller runs too, so a flat column means memory flat in records).
//!
//! `cargo bench --bench ingest` (sizes 100, 1000, 10000 subjects);
//! `cargo bench --bench ingest -- 100 100000` for other sizes.

use std::io::Write;
use std::time::Instant;
use vigil::evaluate::Evaluator;
use vigil::ingest::Reader;
use vigil::store::Store;

const VISITS: usize = 8;
/// Rows per transaction in the bare insert: the batch size of vigil's reader.
const BARE_BATCH: usize = 2_000;

/// One synthetic visit record; visit 0 carries the dose.
fn record(subject: usize, visit: usize) -> String {
    let day = visit as i64 * 28;
    let date = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default() + chrono::Duration::days(day);
    let dose = if visit == 0 {
        format!(r#""doses":[{{"start":"{date}T09:00:00Z","end":"{date}T09:40:00Z","product":"MSC"}}],"#)
    } else {
        String::new()
    };
    // A few subjects have events worth an alert, most have background noise.
    let grade = if subject % 50 == 7 && visit == 3 { 3 } else { 1 + (subject + visit) % 2 };
    let edss = 3.0 + ((subject + visit) % 4) as f64 * 0.5;
    let alt = 20 + ((subject * 7 + visit * 13) % 60);
    let temp = 36.5 + ((subject + visit * 3) % 10) as f64 * 0.1;
    format!(
        concat!(
            r#"{{"subject":"S-{s:06}","site":"B{site}","arm":"{arm}","visit":"V{v}","date":"{date}","#,
            r#""record_id":"S-{s}-{v}",{dose}"#,
            r#""adverse_events":[{{"id":"AE-{s}-{v}","term":"Headache","meddra_pt":"Headache","grade":{grade},"#,
            r#""serious":false,"related":"unlikely","onset":"{date}"}}],"#,
            r#""vitals":[{{"time":"{date}T10:00:00Z","systolic_bp":{sbp},"diastolic_bp":80,"heart_rate":72,"#,
            r#""temperature_c":{temp:.1},"spo2":98}}],"#,
            r#""labs":[{{"test":"ALT","value":{alt},"unit":"U/L","high":40,"time":"{date}T08:00:00Z"}},"#,
            r#"{{"test":"BILI","value":0.8,"unit":"mg/dL","high":1.2,"time":"{date}T08:00:00Z"}}],"#,
            r#""scores":[{{"name":"EDSS","value":{edss:.1}}}],"#,
            r#""mri":{{"date":"{date}","t2_new_or_enlarging":{t2},"gd_enhancing":0}}}}"#
        ),
        s = subject,
        site = subject % 5,
        arm = if subject.is_multiple_of(2) { "MSC" } else { "placebo" },
        v = visit,
        date = date,
        dose = dose,
        grade = grade,
        sbp = 110 + (subject + visit) % 30,
        temp = temp,
        alt = alt,
        edss = edss,
        t2 = usize::from(subject % 40 == 3 && visit == 4),
    )
}

fn write_cohort(path: &std::path::Path, subjects: usize) -> anyhow::Result<usize> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    // Visit by visit, as an EDC export over time would deliver them.
    for v in 0..VISITS {
        for s in 0..subjects {
            writeln!(out, "{}", record(s, v))?;
        }
    }
    out.flush()?;
    Ok(subjects * VISITS)
}

/// The reference: the same bodies, inserted as plainly as sqlx and SQLite allow.
async fn bare_insert(dir: &std::path::Path, file: &std::path::Path) -> anyhow::Result<f64> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    let options = SqliteConnectOptions::new()
        .filename(dir.join("bare.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
    sqlx::query(
        "CREATE TABLE records (seq INTEGER PRIMARY KEY, record_key TEXT NOT NULL UNIQUE, \
         subject TEXT NOT NULL, body TEXT NOT NULL)",
    )
    .execute(&pool)
    .await?;
    let started = Instant::now();
    let text = std::fs::read_to_string(file)?;
    let lines: Vec<&str> = text.lines().collect();
    for chunk in lines.chunks(BARE_BATCH) {
        let mut tx = pool.begin().await?;
        // 3 binds per row; SQLite allows 32,766 binds per statement.
        for rows in chunk.chunks(1_000) {
            let mut q =
                sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO records (record_key, subject, body) ");
            q.push_values(rows, |mut b, line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                b.push_bind(v["record_id"].as_str().unwrap_or_default().to_string())
                    .push_bind(v["subject"].as_str().unwrap_or_default().to_string())
                    .push_bind(line.to_string());
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    let rate = lines.len() as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    Ok(rate)
}

/// What `vigil ingest` does: store in batches, then evaluate every touched subject.
async fn vigil_ingest(dir: &std::path::Path, file: &std::path::Path) -> anyhow::Result<(f64, f64, usize)> {
    let store = Store::connect(&format!("sqlite://{}/vigil.db", dir.display())).await?;
    let rules = vigil::rules::load_rules(&[concat!(env!("CARGO_MANIFEST_DIR"), "/rules").into()])
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let evaluator = Evaluator::unrouted(store.clone(), rules, vigil::clock::Clock::System);
    let started = Instant::now();
    let mut reader = Reader::open(file, "cohort.ndjson", None)?;
    let ingested = vigil::ingest::store_all(&store, &mut reader, |_, _| {}).await?;
    let stored = started.elapsed().as_secs_f64();
    let raised = evaluator.evaluate_pending().await?;
    let total = started.elapsed().as_secs_f64();
    store.close().await;
    anyhow::ensure!(ingested.stored > 0, "nothing stored");
    Ok((ingested.records as f64 / total, ingested.records as f64 / stored, raised.len()))
}

/// The process's peak resident memory so far (Linux), in MiB; "?" elsewhere.
fn peak_memory_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or_else(|| "?".into(), |kb| (kb / 1024).to_string())
}

fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![100, 1_000, 10_000] } else { sizes };
    let rt = tokio::runtime::Runtime::new()?;
    println!("ingest: {VISITS} visits per subject, shipped rule pack; records/s (higher is better)");
    println!(
        "{:>9} {:>9} {:>12} {:>12} {:>14} {:>7} {:>8} {:>9}",
        "subjects", "records", "bare insert", "vigil", "vigil (store)", "ratio", "alerts", "peak MiB"
    );
    for subjects in sizes {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("cohort.ndjson");
        let records = write_cohort(&file, subjects)?;
        // vigil first, so that the peak memory read after it is vigil's own.
        let (vigil, store_only, alerts) = rt.block_on(vigil_ingest(dir.path(), &file))?;
        let peak = peak_memory_mib();
        let bare = rt.block_on(bare_insert(dir.path(), &file))?;
        println!(
            "{subjects:>9} {records:>9} {bare:>12.0} {vigil:>12.0} {store_only:>14.0} {:>6.1}× {alerts:>8} {peak:>9}",
            bare / vigil
        );
    }
    Ok(())
}
