//! A bounded fuzz pass over every parser of outside input: native JSON/NDJSON, native CSV,
//! FHIR, SDTM (a folder of domain CSVs), rule YAML and the configuration. Each starts from
//! a kept corpus of real inputs (examples/, tests/data/, rules/, config.example.yaml) and
//! runs mutated copies — bytes flipped, cut, duplicated, spliced from other inputs, deeply
//! nested — through the parser. A parser may refuse an input, never panic, and each input
//! must be done in bounded time. The seed is fixed (a failure is reproducible); set
//! VIGIL_FUZZ_ITERATIONS for a longer run than `cargo test`'s.

use std::path::Path;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Slower than this for one input is a hang in the making.
const PER_INPUT: Duration = Duration::from_secs(2);

/// A small deterministic generator (no dependency; the same run every time).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn iterations() -> usize {
    std::env::var("VIGIL_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

/// Bytes and fragments that parsers find interesting.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "\n",
    "\r\n",
    "\\u0000",
    "\\u001b",
    "null",
    "true",
    "-1",
    "1e309",
    "NaN",
    "2019-02-30",
    "2019---15",
    "9999-99-99T99:99",
    "grade",
    "subject",
    "&",
    "*a",
    "!!binary",
    "<<:",
    "\u{feff}",
    "\u{9b}",
    "é",
    "${",
    "'",
    "=HYPERLINK(",
    "0x",
    "18446744073709551616",
];

fn mutate(rng: &mut Rng, seed: &str, corpus: &[String]) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => {
                let end = (at + rng.below(64)).min(bytes.len());
                bytes.drain(at..end);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                bytes.splice(at..at, t.bytes());
            }
            3 => {
                let other = corpus[rng.below(corpus.len())].as_bytes();
                let from = rng.below(other.len());
                let to = (from + rng.below(256)).min(other.len());
                bytes.splice(at..at, other[from..to].iter().copied());
            }
            4 => {
                let end = (at + rng.below(32)).min(bytes.len());
                let chunk = bytes[at..end].to_vec();
                for _ in 0..rng.below(8) {
                    bytes.splice(at..at, chunk.iter().copied());
                }
            }
            _ => {
                // Deep nesting, the classic stack exhaustion.
                let depth = 1 + rng.below(5000);
                let (open, close) = if rng.below(2) == 0 { ("[", "]") } else { ("{\"a\":", "}") };
                let deep = format!("{}1{}", open.repeat(depth), close.repeat(depth));
                bytes.splice(at..at, deep.bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs `parse` on the seeds and their mutations on a thread with a small stack (as the
/// daemon's tasks have), each within `PER_INPUT`.
fn fuzz(name: &str, seeds: Vec<String>, parse: fn(&str)) {
    assert!(!seeds.is_empty(), "{name}: no corpus");
    let mut rng = Rng(0x5eed_0000 + name.len() as u64);
    let mut inputs: Vec<String> = seeds.clone();
    for _ in 0..iterations() {
        let seed = &seeds[rng.below(seeds.len())];
        inputs.push(mutate(&mut rng, seed, &seeds));
    }
    for (i, input) in inputs.into_iter().enumerate() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                parse(&input);
                let _ = done.send(());
            })
            .unwrap();
        // A hang fails here (the stuck thread is left behind) instead of stalling the run.
        match finished.recv_timeout(PER_INPUT) {
            Ok(()) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("{name}: input #{i} ran over {PER_INPUT:?} (VIGIL_FUZZ_ITERATIONS to reproduce)")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!("{name}: input #{i} panicked the parser (VIGIL_FUZZ_ITERATIONS to reproduce)")
            }
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The first lines of a file (the corpus stays small enough to mutate quickly).
fn head(path: &str, lines: usize) -> String {
    read(path).lines().take(lines).collect::<Vec<_>>().join("\n")
}

#[test]
fn native_json_and_ndjson() {
    fuzz("native", vec![read("examples/infusion-reaction.ndjson")], |t| {
        let _ = vigil::ingest::native::parse("fuzz", t);
    });
}

#[test]
fn native_csv() {
    let csv = "subject,site,visit,date,time,kind,name,value,unit,low,high,ae_id,grade,serious,related,term,id,onset\n\
               KS-101,KS,H2,2019-02-26,,adverse_event,,,,,,,3,hospitalization,possible,Infusion related reaction,AE-5,2019-02-26\n\
               KS-101,KS,W4,2019-03-26,,score,EDSS,4.0,,,,,,,,,,\n\
               KS-101,KS,W4,2019-03-26,08:00,lab,ALT,52,U/L,0,45,,,,,,,\n";
    fuzz("csv", vec![csv.to_string()], |t| {
        let _ = vigil::ingest::csv::parse("fuzz.csv", t);
    });
}

#[test]
fn fhir() {
    let seeds =
        ["adverseevent-example.json", "observation-example-bloodpressure.json", "patient-example.json"]
            .iter()
            .map(|f| read(&format!("tests/data/fhir-examples/{f}")))
            .collect();
    fuzz("fhir", seeds, |t| {
        let _ = vigil::ingest::fhir::parse("fuzz.json", t);
    });
}

#[test]
fn sdtm_domains() {
    // A folder per input: the pilot's DM and AE heads, one of them mutated.
    let seeds = vec![head("tests/data/cdiscpilot01/ae.csv", 12), head("tests/data/cdiscpilot01/dm.csv", 12)];
    fuzz("sdtm", seeds, |t| {
        let dir = tempfile::tempdir().unwrap();
        let dm = head("tests/data/cdiscpilot01/dm.csv", 12);
        let ae = head("tests/data/cdiscpilot01/ae.csv", 12);
        // The mutated domain replaces its own file; the other stays intact.
        let (dm, ae) = if t.contains("AETERM") { (dm, t.to_string()) } else { (t.to_string(), ae) };
        std::fs::write(dir.path().join("dm.csv"), dm).unwrap();
        std::fs::write(dir.path().join("ae.csv"), ae).unwrap();
        let _ = vigil::ingest::sdtm::read_dir(dir.path());
    });
}

#[test]
fn rule_yaml() {
    fuzz("rules", vec![read("rules/msc-progressive-ms.yaml")], |t| {
        let _ = vigil::rules::parse_rules(Path::new("fuzz.yaml"), t);
    });
}

#[test]
fn configuration() {
    fuzz("config", vec![read("config.example.yaml")], |t| {
        let _ = vigil::config::Config::from_str(t, Path::new("/etc/vigil/fuzz.yaml"), |_| None);
    });
}
