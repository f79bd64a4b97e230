//! People and their authority (21 CFR Part 11 §11.10(d),(g), §11.300): accounts with
//! argon2id password hashes, lockout after wrong passwords (the administrators are
//! alerted), API tokens that belong to a person and carry scopes, and electronic
//! signatures bound to what was signed (§11.50, §11.70, §11.200).
//!
//! The actor of every action is an authenticated identity, written as `user:ID` (a person,
//! by password or by one of their tokens), `token:NAME` (a service token from the
//! environment: it ingests and reads, it never decides about an alert) or `local:ACCOUNT@HOST`
//! (the command line on the server, which holds the database's credentials).

use crate::config::{AccountPolicy, Action, Config};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A person's account as stored (never with the password hash outside the store).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: String,
    /// The printed name shown with every signature (§11.50).
    pub name: String,
    pub email: String,
    pub roles: Vec<String>,
    pub password_changed_at: DateTime<Utc>,
    pub failed_attempts: i64,
    pub locked_at: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

impl User {
    pub fn actor(&self) -> String {
        format!("user:{}", self.id)
    }

    /// Blinded unless every role of the person is unblinded: a person with one blinded
    /// role never sees the arm, whatever else they are.
    pub fn blinded(&self, config: &Config) -> bool {
        self.roles.is_empty()
            || self.roles.iter().any(|r| config.recipients.get(r).is_none_or(|role| role.blinded))
    }
}

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send records.
    Ingest,
    /// Read alerts, silences, subjects.
    Read,
    /// Acknowledge, resolve, silence (with the person's authority).
    Operate,
    /// Reload the configuration.
    Reload,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Read, Scope::Operate, Scope::Reload];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Operate => "operate",
            Scope::Reload => "reload",
        }
    }

    /// A comma-separated list (`ingest,read`), every item checked.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, String> {
        let mut out = Vec::new();
        for item in s.split([',', '+']).map(str::trim).filter(|i| !i.is_empty()) {
            let scope = Scope::ALL.into_iter().find(|x| x.as_str() == item).ok_or_else(|| {
                format!("unknown scope `{item}`; choose among ingest, read, operate, reload")
            })?;
            if !out.contains(&scope) {
                out.push(scope);
            }
        }
        if out.is_empty() {
            return Err("a token needs at least one scope".into());
        }
        out.sort();
        Ok(out)
    }

    pub fn list(scopes: &[Scope]) -> String {
        scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
    }
}

/// The meaning of a signature (§11.50(a)(3)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Meaning {
    Reviewed,
    Approved,
    Responsible,
}

impl Meaning {
    pub fn parse(s: &str) -> Result<Meaning, String> {
        match s.trim() {
            "reviewed" => Ok(Meaning::Reviewed),
            "approved" => Ok(Meaning::Approved),
            "responsible" => Ok(Meaning::Responsible),
            other => {
                Err(format!("unknown signature meaning `{other}`; choose reviewed, approved or responsible"))
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Meaning::Reviewed => "reviewed",
            Meaning::Approved => "approved",
            Meaning::Responsible => "responsible",
        }
    }
}

/// A signature about to be recorded with the action it signs.
#[derive(Debug, Clone)]
pub struct NewSignature {
    pub user_id: String,
    pub printed_name: String,
    pub meaning: Meaning,
    pub action: Action,
    pub entity: String,
    pub entity_id: String,
    /// SHA-256 of what was signed: see [`content_hash`].
    pub content_hash: String,
    pub comment: Option<String>,
    pub signed_at: DateTime<Utc>,
    pub zone: String,
    pub local_time: String,
}

/// A recorded signature.
#[derive(Debug, Clone, Serialize)]
pub struct Signature {
    pub id: i64,
    pub user_id: String,
    pub printed_name: String,
    pub meaning: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub content_hash: String,
    pub comment: Option<String>,
    pub signed_at: DateTime<Utc>,
    pub zone: String,
    pub local_time: String,
}

impl Signature {
    /// Whether this signature was made on `content` as it is now: false if the record it
    /// signs was changed, or the signature was moved to another record.
    pub fn holds_for(&self, content: &serde_json::Value) -> bool {
        let (Ok(meaning), Some(action)) = (Meaning::parse(&self.meaning), Action::parse(&self.action)) else {
            return false;
        };
        let hash = content_hash(
            &self.user_id,
            meaning,
            action,
            &self.entity,
            &self.entity_id,
            content,
            self.comment.as_deref(),
            self.signed_at,
        );
        hash == self.content_hash
    }

    /// "Signed by Ada Lovelace (ada), reviewed, 2026-11-29 14:03 UTC (15:03 CET)".
    pub fn line(&self) -> String {
        format!(
            "signed by {} ({}), {}, {} UTC ({} {})",
            self.printed_name,
            self.user_id,
            self.meaning,
            self.signed_at.format("%Y-%m-%d %H:%M:%S"),
            self.local_time,
            self.zone
        )
    }
}

/// The SHA-256 binding a signature to what it signs: the signer, the meaning, the action,
/// the thing's identity and content, the comment and the time. Another record (or the same
/// one changed) gives another hash, so a signature cannot be moved (§11.70).
#[allow(clippy::too_many_arguments)] // each is part of what is signed
pub fn content_hash(
    user_id: &str,
    meaning: Meaning,
    action: Action,
    entity: &str,
    entity_id: &str,
    content: &serde_json::Value,
    comment: Option<&str>,
    signed_at: DateTime<Utc>,
) -> String {
    let fields = serde_json::json!([
        user_id,
        meaning.as_str(),
        action.as_str(),
        entity,
        entity_id,
        content,
        comment,
        signed_at.timestamp_millis()
    ]);
    hex::encode(Sha256::digest(fields.to_string().as_bytes()))
}

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, 2 passes) and a random
/// salt, in the PHC string format.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` is the one `stored` (a PHC string) was made from.
pub fn password_matches(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Refuses a password the policy does not accept, saying why.
pub fn check_new_password(policy: &AccountPolicy, user_id: &str, password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < policy.password_min_length {
        return Err(format!(
            "a password needs at least {} characters (this one has {n})",
            policy.password_min_length
        ));
    }
    if password.to_lowercase().contains(&user_id.to_lowercase()) {
        return Err("a password must not contain the user id".into());
    }
    Ok(())
}

/// A new API token: `vgl_` and 64 hex digits. Only its SHA-256 is stored.
pub fn new_token() -> anyhow::Result<String> {
    let mut bits = [0u8; 32];
    getrandom::getrandom(&mut bits).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    Ok(format!("vgl_{}", hex::encode(bits)))
}

pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_verifies_only_its_password_and_is_salted() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(password_matches(&a, "correct horse battery"));
        assert!(!password_matches(&a, "correct horse battery "));
        assert!(!password_matches("not a hash", "x"));
    }

    #[test]
    fn scopes_parse_and_refuse_unknown_ones() {
        assert_eq!(Scope::parse_list("read, ingest,read").unwrap(), vec![Scope::Ingest, Scope::Read]);
        assert!(Scope::parse_list("admin").unwrap_err().contains("unknown scope `admin`"));
        assert!(Scope::parse_list(" ").is_err());
    }

    #[test]
    fn a_signature_hash_changes_with_what_was_signed() {
        let at = DateTime::from_timestamp_millis(1_800_000_000_000).unwrap();
        let content = serde_json::json!({"id": 7, "title": "grade 3 infusion reaction"});
        let h = content_hash("ada", Meaning::Reviewed, Action::Acknowledge, "alert", "7", &content, None, at);
        assert_ne!(
            h,
            content_hash("ada", Meaning::Reviewed, Action::Acknowledge, "alert", "8", &content, None, at)
        );
        assert_ne!(
            h,
            content_hash("ada", Meaning::Approved, Action::Acknowledge, "alert", "7", &content, None, at)
        );
        let other = serde_json::json!({"id": 7, "title": "grade 2 infusion reaction"});
        assert_ne!(
            h,
            content_hash("ada", Meaning::Reviewed, Action::Acknowledge, "alert", "7", &other, None, at)
        );
        assert_ne!(
            h,
            content_hash("bob", Meaning::Reviewed, Action::Acknowledge, "alert", "7", &content, None, at)
        );
    }

    #[test]
    fn a_weak_password_is_refused_with_the_reason() {
        let policy = AccountPolicy::default();
        assert!(check_new_password(&policy, "ada", "short").unwrap_err().contains("at least 12"));
        assert!(check_new_password(&policy, "ada", "my-name-is-ADA-really").unwrap_err().contains("user id"));
        assert!(check_new_password(&policy, "ada", "a long enough passphrase").is_ok());
    }
}
