//! Throughput of the pipeline's hot path: store a record, evaluate its subject, raise
//! alerts. Run with `cargo bench --bench pipeline`. It shows that the cost per incoming
//! record follows that subject's history, not the size of the cohort: the rate at
//! 10,000 subjects should be close to the rate at 100.

use std::time::Instant;
use vigil::evaluate::Evaluator;
use vigil::ingest::native;
use vigil::store::Store;

const HISTORY: usize = 8;
const MEASURED: usize = 2_000;

fn record(subject: usize, visit: usize) -> String {
    let day = visit * 28;
    let date =
        chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default() + chrono::Duration::days(day as i64);
    let edss = 3.0 + (visit % 3) as f64 * 0.5;
    let dose =
        if visit == 0 { format!(r#","doses":[{{"start":"{date}T09:00:00Z"}}]"#) } else { String::new() };
    format!(
        r#"{{"subject":"S-{subject:05}","site":"B{}","visit":"V{visit}","date":"{date}","record_id":"S-{subject}-{visit}"{dose},"scores":[{{"name":"EDSS","value":{edss}}}],"mri":{{"t2_new_or_enlarging":{}}},"adverse_events":[{{"id":"AE-{subject}-{visit}","term":"Headache","grade":{},"onset":"{date}"}}],"labs":[{{"test":"ALT","value":{},"high":40}}]}}"#,
        subject % 7,
        visit % 2,
        1 + visit % 3,
        20 + visit * 3,
    )
}

async fn run(subjects: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let store = Store::connect(&format!("sqlite://{}/bench.db", dir.path().display())).await?;
    let rules = vigil::rules::load_rules(&[concat!(env!("CARGO_MANIFEST_DIR"), "/rules").into()])
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let evaluator = Evaluator::unrouted(store.clone(), rules, vigil::clock::Clock::System);
    // The cohort's existing history, stored in large batches (not measured).
    let history: Vec<String> = (0..subjects).flat_map(|s| (0..HISTORY).map(move |v| record(s, v))).collect();
    for chunk in history.chunks(5_000) {
        let parsed = native::parse("history", &chunk.join("\n"));
        store.store_batch(&parsed.records, &parsed.rejected).await?;
    }
    evaluator.evaluate_pending().await?;
    // Measured: one record at a time, as a drop folder or HTTP client delivers them.
    let started = Instant::now();
    for i in 0..MEASURED {
        let line = record((i * 7919) % subjects, HISTORY + i / subjects);
        let parsed = native::parse("new", &line);
        store.store_batch(&parsed.records, &parsed.rejected).await?;
        evaluator.evaluate_pending().await?;
    }
    let rate = MEASURED as f64 / started.elapsed().as_secs_f64();
    store.close().await;
    Ok(rate)
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    println!(
        "pipeline: store + evaluate + alert, one record per transaction, {HISTORY} prior visits per subject"
    );
    for subjects in [100, 10_000] {
        let rate = rt.block_on(run(subjects))?;
        println!("  {subjects:>6} subjects: {rate:>8.0} records/s");
    }
    Ok(())
}
