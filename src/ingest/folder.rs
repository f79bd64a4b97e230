//! The drop folder: files — or SDTM folders (a folder holding `dm.csv`, `ae.csv`, …,
//! renamed into the inbox once complete) — arrive in the inbox, are stored batch by batch
//! through [`super::Reader`], then moved to `processed/`; lines that cannot be read go to
//! `quarantine/` with their reasons.
//!
//! Order matters for crash safety: records are committed before the file moves, so a
//! crash in between only means the file is read again, which changes nothing.

pub use super::source::{Between, Nothing};
use super::{sdtm, Reader};
use crate::store::{Rejected, Store};
use anyhow::Context;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone)]
pub struct DropFolder {
    pub inbox: PathBuf,
    pub processed: PathBuf,
    pub quarantine: PathBuf,
}

/// What happened to one file.
#[derive(Debug, Default)]
pub struct FileOutcome {
    pub stored: usize,
    pub duplicates: usize,
    pub quarantined: usize,
    pub subjects: Vec<String>,
}

pub use crate::config::Settle;

/// What the inbox scans have seen of files written in place: (size, mtime) and since
/// when (this process's clock, so a network share's skewed mtimes do not matter).
#[derive(Debug, Default)]
pub struct Settling {
    seen: std::collections::HashMap<PathBuf, (u64, Option<SystemTime>, Instant)>,
}

impl Settling {
    /// How long `path` has stood still with this size and mtime, as far as we have watched.
    fn still_for(&mut self, path: &Path, len: u64, modified: Option<SystemTime>, now: Instant) -> Duration {
        let entry = self.seen.entry(path.to_path_buf()).or_insert((len, modified, now));
        if (entry.0, entry.1) != (len, modified) {
            *entry = (len, modified, now);
        }
        now.duration_since(entry.2)
    }

    /// Forgets files no longer in the inbox.
    fn keep_only(&mut self, present: &HashSet<PathBuf>) {
        self.seen.retain(|p, _| present.contains(p));
    }
}

/// Files up to this size are taken between the batches of a bulk file (one batch's worth
/// of records is well over this), so a bulk import does not hold up a critical record.
pub const SMALL_FILE: u64 = 256 * 1024;

impl DropFolder {
    pub fn new(inbox: &Path, processed: &Path, quarantine: &Path) -> anyhow::Result<Self> {
        for d in [inbox, processed, quarantine] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create folder {}", d.display()))?;
        }
        Ok(Self {
            inbox: inbox.to_path_buf(),
            processed: processed.to_path_buf(),
            quarantine: quarantine.to_path_buf(),
        })
    }

    /// Files (and SDTM folders) ready to read, oldest first, and whether some were not
    /// ready yet (look again soon). `renamed_in` names entries seen arriving by rename:
    /// complete, so they need not settle; the others must stand still (see [`Settle`]).
    pub fn ready_files(
        &self,
        renamed_in: &HashSet<OsString>,
        settling: &mut Settling,
        settle: Settle,
    ) -> anyhow::Result<(Vec<PathBuf>, bool)> {
        let mut ready = Vec::new();
        let mut waiting = false;
        let now = Instant::now();
        let mut present = HashSet::new();
        let mut writers: Option<HashSet<(u64, u64)>> = None;
        for entry in std::fs::read_dir(&self.inbox)
            .with_context(|| format!("cannot read inbox {}", self.inbox.display()))?
        {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = match entry.metadata() {
                Ok(m) if m.is_file() || m.is_dir() => m,
                _ => continue,
            };
            if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") {
                continue;
            }
            // `processed/` and `quarantine/` may live inside the inbox: they are not input.
            if meta.is_dir() && self.is_own_folder(&path) {
                continue;
            }
            let modified = meta.modified().ok();
            present.insert(path.clone());
            if !renamed_in.contains(&entry.file_name()) {
                let still = settling.still_for(&path, meta.len(), modified, now);
                let needed = if meta.is_file() && unterminated_line_file(&path, meta.len()) {
                    settle.unterminated.max(settle.quiet)
                } else {
                    settle.quiet
                };
                let open = meta.is_file() && {
                    use std::os::unix::fs::MetadataExt;
                    writers
                        .get_or_insert_with(|| open_for_writing(&self.inbox))
                        .contains(&(meta.dev(), meta.ino()))
                };
                if still < needed || open {
                    waiting = true;
                    continue;
                }
            }
            ready.push((modified.unwrap_or(SystemTime::UNIX_EPOCH), path));
        }
        settling.keep_only(&present);
        ready.sort();
        Ok((ready.into_iter().map(|(_, p)| p).collect(), waiting))
    }

    /// Takes `path` for this replica by renaming it into `.claims/<holder>/` inside the
    /// inbox (one atomic rename: of replicas sharing an inbox, exactly one wins; the others
    /// find the file gone). Returns the claimed path, or None if another replica took it.
    pub fn claim(&self, path: &Path, holder: &str) -> anyhow::Result<Option<PathBuf>> {
        let dir = self.claims().join(holder);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let Some(name) = path.file_name() else { return Ok(None) };
        let claimed = dir.join(name);
        match std::fs::rename(path, &claimed) {
            Ok(()) => Ok(Some(claimed)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot claim {}", path.display())),
        }
    }

    /// Puts a claimed entry back into the inbox (its ingestion failed and will be retried,
    /// by this replica or another). Returns where it is now.
    pub fn unclaim(&self, claimed: &Path) -> anyhow::Result<PathBuf> {
        let Some(name) = claimed.file_name() else { anyhow::bail!("no file name: {}", claimed.display()) };
        let back = self.inbox.join(name);
        std::fs::rename(claimed, &back).with_context(|| format!("cannot put {} back", claimed.display()))?;
        Ok(back)
    }

    /// Marks `holder` alive (its claim folder's mtime) and returns to the inbox what other
    /// holders claimed and left: claims of a holder silent for `stale`, and this holder's
    /// own claims from before a restart (`own_restart`). Entries returned are ready again.
    pub fn recover_claims(&self, holder: &str, stale: Duration, own_restart: bool) -> anyhow::Result<usize> {
        let root = self.claims();
        let mine = root.join(holder);
        std::fs::create_dir_all(&mine).with_context(|| format!("cannot create {}", mine.display()))?;
        let now = SystemTime::now();
        std::fs::File::open(&mine).and_then(|d| d.set_modified(now)).ok();
        let mut returned = 0;
        for entry in std::fs::read_dir(&root)?.flatten() {
            let dir = entry.path();
            let is_mine = entry.file_name() == std::ffi::OsStr::new(holder);
            let silent = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > stale);
            if (is_mine && !own_restart) || (!is_mine && !silent) {
                continue;
            }
            for claimed in std::fs::read_dir(&dir)?.flatten() {
                // Another live replica may race us to it: the rename decides.
                if self.unclaim(&claimed.path()).is_ok() {
                    returned += 1;
                    tracing::warn!(file = %claimed.file_name().to_string_lossy(), holder = %entry.file_name().to_string_lossy(), "A claimed inbox file was left by its holder; it is back in the inbox.");
                }
            }
            if !is_mine {
                let _ = std::fs::remove_dir(&dir);
            }
        }
        Ok(returned)
    }

    fn claims(&self) -> PathBuf {
        self.inbox.join(".claims")
    }

    /// Whether `path` is a plain file small enough to take between a bulk file's batches.
    pub fn is_small(path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= SMALL_FILE)
    }

    /// Whether `dir` is the processed or the quarantine folder.
    fn is_own_folder(&self, dir: &Path) -> bool {
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let dir = canonical(dir);
        dir == canonical(&self.processed) || dir == canonical(&self.quarantine)
    }

    /// Reads, stores and files away one inbox file or SDTM folder. Each batch is committed
    /// as it is read; the input leaves the inbox only once all of it is.
    pub async fn ingest_file(&self, store: &Store, path: &Path) -> anyhow::Result<FileOutcome> {
        self.ingest_file_between(store, path, &mut super::source::Nothing).await
    }

    /// [`Self::ingest_file`], running `between` after each committed batch but the last.
    pub async fn ingest_file_between(
        &self,
        store: &Store,
        path: &Path,
        between: &mut impl Between,
    ) -> anyhow::Result<FileOutcome> {
        let name =
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "unnamed".into());
        let mut rejected: Vec<Rejected> = Vec::new();
        let ingested = match Reader::open(path, &name, None) {
            Ok(mut reader) => {
                let ingested = super::source::store_all_between(
                    store,
                    &mut reader,
                    |batch, outcome| {
                        rejected.extend(batch.rejected.iter().chain(outcome.conflicts.iter()).cloned());
                    },
                    between,
                )
                .await
                .with_context(|| format!("cannot store the records of {name}"))?;
                if let Some(summary) = reader.sdtm_summary() {
                    tracing::info!(folder = %name, summary = %summary, "SDTM folder read.");
                }
                ingested
            }
            // A folder without any domain file will never read better: quarantine it.
            Err(e) if e.downcast_ref::<sdtm::NoDomainFile>().is_some() => {
                rejected.push(Rejected {
                    source: name.clone(),
                    line: 1,
                    field: "folder".into(),
                    reason: e.to_string(),
                    raw: String::new(),
                });
                super::Ingested { quarantined: 1, ..super::Ingested::default() }
            }
            Err(e) => return Err(e),
        };
        if !rejected.is_empty() {
            let refs: Vec<&Rejected> = rejected.iter().collect();
            self.write_quarantine(&name, path, &refs)?;
        }
        self.move_to_processed(path, &name)?;
        for r in &rejected {
            tracing::warn!(file = %r.source, line = r.line, field = %r.field, reason = %r.reason, "Line quarantined.");
        }
        tracing::info!(
            file = %name,
            stored = ingested.stored,
            duplicates = ingested.duplicates,
            quarantined = ingested.quarantined,
            "File ingested."
        );
        Ok(FileOutcome {
            stored: ingested.stored,
            duplicates: ingested.duplicates,
            quarantined: ingested.quarantined,
            subjects: ingested.subjects,
        })
    }

    /// One NDJSON file per source file: each bad line with its reason. Named by the
    /// source's content hash, so reading the same file again rewrites the same file.
    fn write_quarantine(&self, name: &str, path: &Path, rejected: &[&Rejected]) -> anyhow::Result<()> {
        let hash = content_hash(path);
        let mut text = String::new();
        for r in rejected {
            let entry = json!({
                "reason": format!("{}:{}: {}: {}", r.source, r.line, r.field, r.reason),
                "file": r.source, "line": r.line, "field": r.field, "raw": without_arms(&r.raw),
            });
            text.push_str(&entry.to_string());
            text.push('\n');
        }
        let target = self.quarantine.join(fit_name(name, &format!(".{hash}.quarantine.ndjson")));
        write_durably(&target, text.as_bytes())
    }

    /// Moves an inbox entry that keeps failing into the quarantine folder as
    /// `NAME.rejected`, beside `NAME.rejected.reason.txt` saying why. Returns where it went.
    pub fn set_aside(&self, path: &Path, reason: &str) -> anyhow::Result<PathBuf> {
        let name =
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "unnamed".into());
        let target = self.quarantine.join(fit_name(&name, ".rejected"));
        write_durably(
            &self.quarantine.join(fit_name(&name, ".rejected.reason.txt")),
            format!("{reason}\n").as_bytes(),
        )?;
        std::fs::rename(path, &target)
            .with_context(|| format!("cannot move {} to {}", path.display(), target.display()))?;
        sync_dir(&self.quarantine);
        sync_dir(&self.inbox);
        Ok(target)
    }

    fn move_to_processed(&self, path: &Path, name: &str) -> anyhow::Result<()> {
        let mut target = self.processed.join(name);
        if target.exists() {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
            target = self.processed.join(fit_name(name, &format!(".{stamp}")));
        }
        std::fs::rename(path, &target)
            .with_context(|| format!("cannot move {} to {}", path.display(), target.display()))?;
        sync_dir(&self.processed);
        sync_dir(&self.inbox);
        Ok(())
    }
}

/// The first 4 bytes of the SHA-256 of a file's content, read in pieces (a bulk file is
/// not held whole); of a folder, of its files' names and contents in name order.
fn content_hash(path: &Path) -> String {
    fn feed(hasher: &mut Sha256, path: &Path) {
        use std::io::Read;
        let Ok(mut f) = std::fs::File::open(path) else { return };
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    let mut hasher = Sha256::new();
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect())
            .unwrap_or_default();
        files.sort();
        for f in files {
            hasher.update(f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            feed(&mut hasher, &f);
        }
    } else {
        feed(&mut hasher, path);
    }
    hex::encode(&hasher.finalize()[..4])
}

/// `name` + `suffix`, within the 255 bytes a file name may have: a long name is cut (at a
/// character boundary) and marked with a hash of the whole, so that a long input name
/// never makes its derived names impossible (the file would be retried forever).
fn fit_name(name: &str, suffix: &str) -> String {
    const MAX: usize = 255;
    if name.len() + suffix.len() <= MAX {
        return format!("{name}{suffix}");
    }
    let mark = format!("~{}", &hex::encode(Sha256::digest(name.as_bytes()))[..8]);
    let mut keep = MAX.saturating_sub(suffix.len() + mark.len());
    while keep > 0 && !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{mark}{suffix}", &name[..keep])
}

/// A quarantined line without its treatment arms: whoever reads the quarantine (an
/// operator, a data manager) may be blinded. A line that is not a JSON object is kept.
fn without_arms(raw: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(mut m)) if m.contains_key("arm") || m.contains_key("actual_arm") => {
            for key in ["arm", "actual_arm"] {
                if m.contains_key(key) {
                    m.insert(key.into(), json!("(withheld: blinded information)"));
                }
            }
            serde_json::Value::Object(m).to_string()
        }
        _ => raw.to_string(),
    }
}

/// Writes to a temporary name (readable by its owner only), fsyncs, renames over the target.
fn write_durably(target: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = target.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, target)?;
    if let Some(dir) = target.parent() {
        sync_dir(dir);
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Whether a line-format file (NDJSON, CSV) ends inside a line: its writer may not be done.
fn unterminated_line_file(path: &Path, len: u64) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let line_format = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["ndjson", "jsonl", "csv", "txt"].contains(&e.to_ascii_lowercase().as_str()));
    if !line_format || len == 0 {
        return false;
    }
    let mut last = [0u8; 1];
    std::fs::File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::End(-1))?;
            f.read_exact(&mut last)
        })
        .is_ok_and(|()| last[0] != b'\n')
}

/// The files under `dir` that some process on this machine has open for writing, as
/// (device, inode): a writer that pauses longer than the settle time still holds its file
/// open, and the file must not be filed away under it. Read from /proc; where that is not
/// readable (another OS, another user's processes hidden) the settle time alone decides.
fn open_for_writing(dir: &Path) -> HashSet<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = HashSet::new();
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for p in procs.flatten() {
        let pid = p.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            if !target.starts_with(&dir) {
                continue;
            }
            let info = p.path().join("fdinfo").join(fd.file_name());
            let writable = std::fs::read_to_string(info).ok().and_then(|text| {
                let flags = text.lines().find_map(|l| l.strip_prefix("flags:"))?;
                u32::from_str_radix(flags.trim(), 8).ok()
            });
            // O_WRONLY = 1, O_RDWR = 2.
            if writable.is_some_and(|f| f & 0b11 != 0) {
                if let Ok(m) = std::fs::metadata(fd.path()) {
                    out.insert((m.dev(), m.ino()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn setup() -> (tempfile::TempDir, DropFolder, Store) {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::new(
            &dir.path().join("inbox"),
            &dir.path().join("processed"),
            &dir.path().join("quarantine"),
        )
        .unwrap();
        let store =
            Store::connect(&format!("sqlite://{}", dir.path().join("vigil.db").display())).await.unwrap();
        (dir, folder, store)
    }

    #[tokio::test]
    async fn a_long_file_name_is_filed_away_with_its_quarantine_and_no_arm_leaks() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, folder, store) = setup().await;
        // 247 characters: its quarantine name would pass the 255-byte limit of a file name.
        let name = format!("{}.ndjson", "x".repeat(240));
        let path = folder.inbox.join(&name);
        let bad = r#"{"subject":"KS-1","arm":"MSC-HIGH","actual_arm":"MSC-LOW","scores":[{"name":"EDSS","value":10.5}]}"#;
        std::fs::write(&path, format!("{{\"subject\":\"KS-2\"}}\n{bad}\n")).unwrap();
        folder.ingest_file(&store, &path).await.expect("filed away, not retried forever");
        assert_eq!(names(&folder.processed), vec![name.clone()]);
        let quarantined = names(&folder.quarantine);
        assert_eq!(quarantined.len(), 1);
        assert!(
            quarantined[0].len() <= 255 && quarantined[0].ends_with(".quarantine.ndjson"),
            "{quarantined:?}"
        );
        let q = folder.quarantine.join(&quarantined[0]);
        let text = std::fs::read_to_string(&q).unwrap();
        assert!(text.contains("scores[0].value") && !text.contains("MSC-"), "{text}");
        assert_eq!(std::fs::metadata(&q).unwrap().permissions().mode() & 0o777, 0o600);
        // The same name again: processed/ gets a stamped name, still within the limit.
        std::fs::write(&path, "{\"subject\":\"KS-3\"}\n").unwrap();
        folder.ingest_file(&store, &path).await.expect("a second file of the same long name");
        assert!(names(&folder.processed).iter().all(|n| n.len() <= 255));
        assert_eq!(names(&folder.processed).len(), 2);
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[tokio::test]
    async fn an_sdtm_folder_renamed_into_the_inbox_is_stored_and_filed_whole() {
        let (dir, folder, store) = setup().await;
        let export = dir.path().join("export");
        std::fs::create_dir(&export).unwrap();
        std::fs::write(export.join("dm.csv"), "USUBJID,SITEID,ARM\nX-1,701,Placebo\nX-2,701,Placebo\n")
            .unwrap();
        std::fs::write(export.join("ae.csv"), "USUBJID,AESEQ,AETERM\nX-1,1,Rash\n,2,Itch\n").unwrap();
        std::fs::rename(&export, folder.inbox.join("export")).unwrap();

        let outcome = folder.ingest_file(&store, &folder.inbox.join("export")).await.unwrap();
        assert_eq!((outcome.stored, outcome.quarantined), (3, 1));
        assert_eq!(store.record_count().await.unwrap(), 3);
        assert!(names(&folder.inbox).is_empty());
        assert_eq!(names(&folder.processed), ["export"]);
        let quarantine = names(&folder.quarantine);
        assert_eq!(quarantine.len(), 1);
        let text = std::fs::read_to_string(folder.quarantine.join(&quarantine[0])).unwrap();
        assert!(text.contains("ae.csv:3: USUBJID: missing"), "{text}");
    }

    #[test]
    fn the_processed_and_quarantine_folders_inside_the_inbox_are_not_input() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        let folder = DropFolder::new(&inbox, &inbox.join("processed"), &inbox.join("quarantine")).unwrap();
        std::fs::create_dir(inbox.join("export")).unwrap();
        std::fs::write(inbox.join("visits.ndjson"), "{}").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for p in ["export", "visits.ndjson", "processed", "quarantine"] {
            std::fs::File::open(inbox.join(p)).unwrap().set_modified(old).unwrap();
        }
        let at_once = Settle { quiet: Duration::ZERO, unterminated: Duration::ZERO };
        let (ready, waiting) =
            folder.ready_files(&HashSet::new(), &mut Settling::default(), at_once).unwrap();
        let ready: Vec<String> =
            ready.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!((ready.len(), waiting), (2, false), "{ready:?}");
        assert!(ready.contains(&"export".to_string()) && ready.contains(&"visits.ndjson".to_string()));
    }

    #[test]
    fn a_file_renamed_in_is_ready_at_once_while_a_file_written_in_place_settles() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        let folder =
            DropFolder::new(&inbox, &dir.path().join("processed"), &dir.path().join("quarantine")).unwrap();
        std::fs::write(inbox.join("critical.ndjson.tmp"), "{}").unwrap();
        std::fs::rename(inbox.join("critical.ndjson.tmp"), inbox.join("critical.ndjson")).unwrap();
        std::fs::write(inbox.join("copied.ndjson"), "{}\n").unwrap();
        let renamed_in: HashSet<OsString> = [OsString::from("critical.ndjson")].into();

        let mut settling = Settling::default();
        let settle = Settle { quiet: Duration::from_millis(300), unterminated: Duration::from_secs(60) };
        let (ready, waiting) = folder.ready_files(&renamed_in, &mut settling, settle).unwrap();
        assert_eq!(ready, [inbox.join("critical.ndjson")]);
        assert!(waiting, "the copy is still settling");
        // Without the rename seen, both are too fresh.
        assert_eq!(
            folder.ready_files(&HashSet::new(), &mut Settling::default(), settle).unwrap(),
            (vec![], true)
        );
        // Once it has stood still for the settle time, the copy is taken.
        std::thread::sleep(Duration::from_millis(350));
        let (ready, waiting) = folder.ready_files(&renamed_in, &mut settling, settle).unwrap();
        assert_eq!((ready.len(), waiting), (2, false));
    }

    /// A writer that pauses longer than the settle time still has its file open: the file
    /// is not taken (it would be filed away under the writer, who goes on appending
    /// there), nor is a line cut in half once the writer has gone.
    #[test]
    fn a_file_open_for_writing_or_ending_inside_a_line_is_not_taken() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        let folder =
            DropFolder::new(&inbox, &dir.path().join("processed"), &dir.path().join("quarantine")).unwrap();
        let settle = Settle { quiet: Duration::ZERO, unterminated: Duration::from_millis(400) };
        let mut settling = Settling::default();
        let mut ready = || folder.ready_files(&HashSet::new(), &mut settling, settle).unwrap();

        let mut writer = std::fs::File::create(inbox.join("slow.ndjson")).unwrap();
        writer.write_all(b"{\"subject\":\"KS-101\"}\n").unwrap();
        writer.flush().unwrap();
        assert_eq!(ready(), (vec![], true), "open for writing");
        drop(writer);
        assert_eq!(ready().0, [inbox.join("slow.ndjson")], "closed and ending with a newline");

        std::fs::write(inbox.join("half.ndjson"), "{\"subject\":\"KS-101\"}\n{\"subj").unwrap();
        std::fs::remove_file(inbox.join("slow.ndjson")).unwrap();
        assert_eq!(ready(), (vec![], true), "the last line is not finished");
        std::thread::sleep(Duration::from_millis(450));
        assert_eq!(ready().0, [inbox.join("half.ndjson")], "still unfinished after the longer wait: taken");
    }

    #[tokio::test]
    async fn between_the_batches_of_a_bulk_file_other_work_runs_on_committed_records() {
        let (_dir, folder, store) = setup().await;
        let n = super::super::BATCH * 2 + 5;
        let text: String = (0..n)
            .map(|i| format!("{{\"subject\":\"S-{i}\",\"date\":\"2019-02-26\",\"record_id\":\"r{i}\"}}\n"))
            .collect();
        let path = folder.inbox.join("bulk.ndjson");
        std::fs::write(&path, text).unwrap();
        struct Count<'a>(&'a Store, Vec<i64>);
        impl Between for Count<'_> {
            async fn run(&mut self) -> anyhow::Result<()> {
                self.1.push(self.0.record_count().await?);
                Ok(())
            }
        }
        let mut seen = Count(&store, Vec::new());
        folder.ingest_file_between(&store, &path, &mut seen).await.unwrap();
        let batch = super::super::BATCH as i64;
        assert_eq!(seen.1, [batch, 2 * batch]);
    }

    #[tokio::test]
    async fn a_folder_without_domain_files_is_quarantined_not_retried() {
        let (_dir, folder, store) = setup().await;
        std::fs::create_dir(folder.inbox.join("photos")).unwrap();
        let outcome = folder.ingest_file(&store, &folder.inbox.join("photos")).await.unwrap();
        assert_eq!((outcome.stored, outcome.quarantined), (0, 1));
        assert_eq!(names(&folder.processed), ["photos"]);
    }

    #[tokio::test]
    async fn a_large_ndjson_file_is_stored_in_batches_before_it_leaves_the_inbox() {
        let (_dir, folder, store) = setup().await;
        let n = super::super::BATCH * 2 + 5;
        let text: String = (0..n)
            .map(|i| {
                format!("{{\"subject\":\"S-{}\",\"date\":\"2019-02-26\",\"record_id\":\"r{i}\"}}\n", i % 7)
            })
            .collect();
        let path = folder.inbox.join("bulk.ndjson");
        std::fs::write(&path, text).unwrap();
        let outcome = folder.ingest_file(&store, &path).await.unwrap();
        assert_eq!((outcome.stored, outcome.quarantined, outcome.subjects.len()), (n, 0, 7));
        assert_eq!(store.record_count().await.unwrap(), n as i64);
        assert_eq!(names(&folder.processed), ["bulk.ndjson"]);
    }
}
