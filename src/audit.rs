//! The audit trail (21 CFR Part 11 §11.10(e)): who created, changed or refused what, when.
//!
//! The database writes an entry for every change of an electronic record itself
//! (triggers, migration 0011) and refuses UPDATE and DELETE on the trail; vigil seals the
//! entries into a chain, each carrying the SHA-256 of the one before, so that an entry
//! edited or removed behind the database's back breaks the chain at that entry.
//! `vigil audit verify` walks it. The head of the chain is printed where it leaves the database (the
//! DSMB report's title page, `vigil audit head`), so that even a rewrite of the whole chain
//! is caught by comparing with what was sent. `Store::verify_audit` walks the chain with
//! [`check_link`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The rule id of the daily email witnessing the audit trail's head (an info alert).
pub const HEAD_RULE: &str = "vigil:audit-head";

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry of the trail as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Order of writing (within one database).
    pub seq: i64,
    /// The database server's time of the change (UTC).
    pub at: DateTime<Utc>,
    /// `user:ID`, `token:NAME` (a service token), `local:ACCOUNT@HOST` (the command line on
    /// the server), a record's source, or `vigil` (the engine itself).
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    /// What changed, as JSON.
    pub detail: String,
    /// Place in the chain, once sealed.
    pub pos: Option<i64>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// The SHA-256 (hex) of an entry at `pos` after `prev`: over every field, as a JSON array,
/// so that no two different entries have the same input.
pub fn entry_hash(prev: &str, pos: i64, e: &Entry) -> String {
    let fields = serde_json::json!([
        prev,
        pos,
        e.seq,
        e.at.timestamp_millis(),
        e.actor,
        e.action,
        e.entity,
        e.entity_id,
        e.detail
    ]);
    hex::encode(Sha256::digest(fields.to_string().as_bytes()))
}

/// Where the chain first fails, if it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Break {
    /// The entry's content no longer gives its hash: it was edited.
    Edited { pos: i64, seq: i64 },
    /// The entry does not follow the one before it: entries before it were removed, or the
    /// order was changed.
    Unlinked { pos: i64, seq: i64, expected_pos: i64 },
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Edited { pos, seq } => write!(
                f,
                "entry {pos} (seq {seq}) was edited: its content no longer matches its hash"
            ),
            Break::Unlinked { pos, seq, expected_pos } if pos != expected_pos => write!(
                f,
                "entry {expected_pos} is missing (deleted): the chain goes on at entry {pos} (seq {seq})"
            ),
            Break::Unlinked { pos, seq, .. } => write!(
                f,
                "entry {pos} (seq {seq}) does not follow the entry before it: entries were removed, reordered or replaced"
            ),
        }
    }
}

/// What a walk of the chain found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Sealed entries checked.
    pub entries: i64,
    /// The last entry checked: position and hash.
    pub head: Option<(i64, String)>,
    /// Entries written but not sealed yet (the seal runs every second in the daemon).
    pub unsealed: i64,
    pub first_break: Option<Break>,
}

/// Where `e`, found after `prev` when entry `expected` was due, breaks the chain, if it does.
pub fn check_link(prev: &str, expected: i64, e: &Entry) -> Option<Break> {
    let pos = e.pos.unwrap_or_default();
    if pos != expected || e.prev_hash.as_deref() != Some(prev) {
        return Some(Break::Unlinked { pos, seq: e.seq, expected_pos: expected });
    }
    if Some(entry_hash(prev, pos, e)) != e.hash {
        return Some(Break::Edited { pos, seq: e.seq });
    }
    None
}

/// Who acts from the command line on this machine: `local:ACCOUNT@HOST`. The command line
/// needs the database's credentials, so whoever runs it is the machine's operator.
pub fn local_operator() -> String {
    let account = std::env::var("SUDO_USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(account_of_uid);
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let host = if host.is_empty() { "localhost".to_string() } else { host };
    format!("local:{account}@{host}")
}

/// The account name of this process's real user id (`/proc/self/status`, `/etc/passwd`),
/// or `uidN` when it has none.
fn account_of_uid() -> String {
    let uid = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines().find_map(|l| {
            l.strip_prefix("Uid:").and_then(|v| v.split_whitespace().next().map(str::to_string))
        })
    });
    let Some(uid) = uid else { return "unknown".into() };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid{uid}"))
}

/// The trail as CSV, for an inspector (§11.10(b)): one line per entry, times in UTC.
pub fn to_csv(entries: &[Entry]) -> String {
    let mut out = String::from("pos,seq,at_utc,actor,action,entity,entity_id,detail,prev_hash,hash\n");
    for e in entries {
        let fields = [
            e.pos.map(|p| p.to_string()).unwrap_or_default(),
            e.seq.to_string(),
            e.at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            e.actor.clone(),
            e.action.clone(),
            e.entity.clone(),
            e.entity_id.clone(),
            e.detail.clone(),
            e.prev_hash.clone().unwrap_or_default(),
            e.hash.clone().unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// Quotes a CSV field when it must be, and defuses a spreadsheet formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: i64) -> Entry {
        Entry {
            seq,
            at: DateTime::from_timestamp_millis(1_700_000_000_000 + seq).unwrap_or_default(),
            actor: "user:alice".into(),
            action: "acknowledged".into(),
            entity: "alert".into(),
            entity_id: "7".into(),
            detail: r#"{"comment":"seen"}"#.into(),
            pos: None,
            prev_hash: None,
            hash: None,
        }
    }

    #[test]
    fn every_field_and_the_previous_hash_change_the_hash() {
        let e = sample(1);
        let h = entry_hash(GENESIS, 1, &e);
        assert_eq!(h.len(), 64);
        assert_ne!(h, entry_hash(GENESIS, 2, &e));
        assert_ne!(h, entry_hash(&"1".repeat(64), 1, &e));
        for change in [
            |e: &mut Entry| e.actor = "user:bob".into(),
            |e: &mut Entry| e.action = "resolved".into(),
            |e: &mut Entry| e.entity_id = "8".into(),
            |e: &mut Entry| e.detail = "{}".into(),
            |e: &mut Entry| e.seq = 2,
        ] {
            let mut other = sample(1);
            change(&mut other);
            assert_ne!(h, entry_hash(GENESIS, 1, &other));
        }
        // Field boundaries are kept: moving text from one field to the next changes it.
        let mut a = sample(1);
        a.entity = "aler".into();
        a.entity_id = "t7".into();
        assert_ne!(h, entry_hash(GENESIS, 1, &a));
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut e = sample(3);
        e.detail = "=HYPERLINK(\"x\"), more".into();
        let csv = to_csv(&[e]);
        assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\"), more\""), "{csv}");
    }
}
