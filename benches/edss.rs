//! EDSS disability worsening at scale, against the reference implementation in the same
//! run: vigil (store + evaluate a pack holding only the disability rule, msprog's settings)
//! and pymsprog 1.0.7 (`pip install pymsprog==1.0.7`; skipped with a note when missing) on
//! the same synthetic cohort. Prints both times, the ratio, and whether the subjects with
//! a confirmed worsening and its onset date are identical.
//!
//! `cargo bench --bench edss` (10,000 subjects × 8 visits); `-- 2000` for another size.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::Instant;
use vigil::evaluate::Evaluator;
use vigil::ingest::Reader;
use vigil::store::Store;

const VISITS: u64 = 8;

/// (subject, onset date) of each first confirmed worsening.
type Events = BTreeSet<(String, String)>;

/// msprog's defaults for EDSS, as in the pymsprog comparison of `rules/disability.rs`.
const RULE: &str = "rules:\n  - id: edss\n    title: EDSS worsening\n    kind: disability_progression\n    \
    score: EDSS\n    baseline: fixed\n    threshold_variant: A\n    confirm_after: 84d\n    \
    confirm_tolerance_after: 730d\n    unconfirmed_severity: none\n    severity: warning\n";

const PYMSPROG: &str = r#"
import sys, time
import pandas as pd
from pymsprog import MSprog
visits = pd.read_csv(sys.argv[1])
started = time.perf_counter()
_, results = MSprog(visits, subj_col='id', value_col='EDSS', date_col='date', outcome='edss',
                    event='firstCDW', baseline='fixed', include_dates=True, verbose=0)
elapsed = time.perf_counter() - started
results = results[results['nevent'] > 0]
with open(sys.argv[2], 'w') as out:
    for _, r in results.iterrows():
        out.write(f"{r['id']},{pd.to_datetime(r['date']).strftime('%Y-%m-%d')}\n")
print(elapsed)
"#;

/// A deterministic pseudo-random walk (no dependency, same cohort every run).
struct Walk(u64);

impl Walk {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn write_cohort(dir: &Path, subjects: u64) -> anyhow::Result<()> {
    let mut csv = std::io::BufWriter::new(std::fs::File::create(dir.join("visits.csv"))?);
    let mut ndjson = std::io::BufWriter::new(std::fs::File::create(dir.join("visits.ndjson"))?);
    writeln!(csv, "id,date,EDSS")?;
    let mut walk = Walk(42);
    let start = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default();
    for s in 0..subjects {
        let mut edss: i64 = 4 + (walk.next() % 8) as i64; // half points: 2.0 to 5.5
        let mut day = (walk.next() % 60) as i64;
        for v in 0..VISITS {
            let date = start + chrono::Duration::days(day);
            let value = edss as f64 / 2.0;
            writeln!(csv, "S{s:06},{date},{value:.1}")?;
            writeln!(
                ndjson,
                r#"{{"subject":"S{s:06}","visit":"V{v}","date":"{date}","record_id":"S{s}-{v}","scores":[{{"name":"EDSS","value":{value:.1}}}]}}"#
            )?;
            edss = (edss + [-1, 0, 0, 1, 1, 2][(walk.next() % 6) as usize]).clamp(0, 19);
            day += 84 + (walk.next() % 15) as i64 - 7;
        }
    }
    csv.flush()?;
    ndjson.flush()?;
    Ok(())
}

/// vigil: ingest and evaluate; the subjects with a confirmed worsening and its onset.
async fn vigil(dir: &Path) -> anyhow::Result<(f64, Events)> {
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir)?;
    std::fs::write(rules_dir.join("edss.yaml"), RULE)?;
    let store = Store::connect(&format!("sqlite://{}/vigil.db", dir.display())).await?;
    let rules = vigil::rules::load_rules(&[rules_dir]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let evaluator = Evaluator::unrouted(store.clone(), rules, vigil::clock::Clock::System);
    let started = Instant::now();
    let mut reader = Reader::open(&dir.join("visits.ndjson"), "visits.ndjson", None)?;
    vigil::ingest::store_all(&store, &mut reader, |_, _| {}).await?;
    evaluator.evaluate_pending().await?;
    let elapsed = started.elapsed().as_secs_f64();
    let confirmed = store
        .alerts()
        .await?
        .into_iter()
        .filter(|a| a.level == 2)
        .filter_map(|a| a.episode.strip_prefix("edss-worsening:").map(|d| (a.subject.clone(), d.to_string())))
        .collect();
    store.close().await;
    Ok((elapsed, confirmed))
}

/// pymsprog on the same visits, if installed: its own timing of MSprog(), and its events.
fn pymsprog(dir: &Path) -> anyhow::Result<Option<(f64, Events)>> {
    let out = dir.join("pymsprog.csv");
    let run = std::process::Command::new("python3")
        .arg("-c")
        .arg(PYMSPROG)
        .arg(dir.join("visits.csv"))
        .arg(&out)
        .output()?;
    if !run.status.success() {
        eprintln!("pymsprog not run: {}", String::from_utf8_lossy(&run.stderr).lines().last().unwrap_or(""));
        return Ok(None);
    }
    let seconds: f64 = String::from_utf8_lossy(&run.stdout).trim().parse()?;
    let events = std::fs::read_to_string(&out)?
        .lines()
        .filter_map(|l| l.split_once(',').map(|(s, d)| (s.to_string(), d.to_string())))
        .collect();
    Ok(Some((seconds, events)))
}

fn main() -> anyhow::Result<()> {
    let subjects: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    write_cohort(dir.path(), subjects)?;
    let rt = tokio::runtime::Runtime::new()?;
    let (vigil_s, vigil_events) = rt.block_on(vigil(dir.path()))?;
    println!("edss: {subjects} subjects × {VISITS} visits, fixed baseline, first confirmed worsening");
    println!(
        "  vigil (ingest + evaluate): {vigil_s:>8.2} s, {} subjects with a confirmed worsening",
        vigil_events.len()
    );
    if let Some((py_s, py_events)) = pymsprog(dir.path())? {
        println!("  pymsprog 1.0.7 (MSprog):   {py_s:>8.2} s, {} subjects", py_events.len());
        println!("  vigil is {:.1}× faster", py_s / vigil_s);
        let same = vigil_events == py_events;
        println!("  identical subjects and onset dates: {}", if same { "yes" } else { "NO" });
        if !same {
            let only_vigil: Vec<_> = vigil_events.difference(&py_events).take(5).collect();
            let only_py: Vec<_> = py_events.difference(&vigil_events).take(5).collect();
            println!("  only vigil: {only_vigil:?}\n  only pymsprog: {only_py:?}");
            anyhow::bail!("vigil and pymsprog disagree");
        }
    }
    Ok(())
}
