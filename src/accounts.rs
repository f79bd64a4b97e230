//! People and their authority (21 CFR Part 11 §11.10(d),(g), §11.300): accounts with
//! argon2id password hashes, lockout after wrong passwords (the administrators are
//! alerted), API tokens that belong to a person and carry scopes, and electronic
//! signatures bound to what was signed (§11.50, §11.70, §11.200).
//!
//! The actor of every action is an authenticated identity, written as `user:ID` (a person,
//! by password or by one of their tokens), `token:NAME` (a service token from the
//! environment: it ingests and reads, it never decides about an alert) or `local:ACCOUNT@HOST`
//! (the command line on the server, which holds the database's credentials).

use crate::config::{AccountPolicy, Action, Authority, Config};
use crate::store::Store;
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

fn password_matches(stored: &str, password: &str) -> bool {
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

/// Why a person could not be authenticated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("unknown user or wrong password")]
    Refused,
    #[error("the account is locked after too many wrong passwords; an administrator unlocks it (`vigil users unlock`)")]
    Locked,
    #[error("the account is disabled")]
    Disabled,
    #[error("the password has expired; change it with `vigil users passwd`")]
    Expired,
}

/// Where people are checked: the store, the policy, and who hears of a lockout.
#[derive(Clone)]
pub struct Accounts {
    pub store: Store,
    pub policy: AccountPolicy,
    pub authority: Authority,
    /// Told when an account locks: the administrators of undeliverable email.
    admins: Vec<crate::alerts::Recipient>,
    message_domain: String,
}

/// The rule id of the internal alert raised when an account locks.
pub const ACCOUNT_LOCKED: &str = "vigil:account-locked";

impl Accounts {
    pub fn new(store: Store, config: &Config) -> Self {
        Self {
            store,
            policy: config.accounts.clone(),
            authority: config.authority.clone(),
            admins: crate::alerts::Router::new(config).undeliverable_recipients(),
            message_domain: config.email.message_domain().to_string(),
        }
    }

    /// Checks a person's password. A wrong one counts toward lockout (and is audited);
    /// the attempt that locks the account raises a critical alert to the administrators.
    /// `purpose` says what the password was for ("sign-in", "signature").
    pub async fn authenticate(
        &self,
        user_id: &str,
        password: &str,
        purpose: &str,
    ) -> anyhow::Result<Result<User, AuthError>> {
        let found = self.store.user_with_password(user_id).await?;
        let Some((user, stored)) = found else {
            // Hash anyway, so that an unknown id takes as long as a wrong password.
            let _ = password_matches(
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                password,
            );
            self.refused(user_id, purpose, "unknown user").await?;
            return Ok(Err(AuthError::Refused));
        };
        if user.disabled_at.is_some() {
            self.refused(user_id, purpose, "account disabled").await?;
            return Ok(Err(AuthError::Disabled));
        }
        if user.locked_at.is_some() {
            self.refused(user_id, purpose, "account locked").await?;
            return Ok(Err(AuthError::Locked));
        }
        let matches = {
            let (stored, password) = (stored.clone(), password.to_string());
            // argon2 is deliberately slow: off the async threads.
            tokio::task::spawn_blocking(move || password_matches(&stored, &password)).await?
        };
        if !matches {
            let locked = self.store.record_failed_password(user_id, self.policy.lockout_after).await?;
            self.refused(user_id, purpose, "wrong password").await?;
            if locked {
                self.raise_lockout(&user).await?;
                return Ok(Err(AuthError::Locked));
            }
            return Ok(Err(AuthError::Refused));
        }
        if let Some(max) = self.policy.password_max_age {
            if self.store.now() - user.password_changed_at > max.chrono() {
                self.refused(user_id, purpose, "password expired").await?;
                return Ok(Err(AuthError::Expired));
            }
        }
        if user.failed_attempts > 0 {
            self.store.reset_failed_passwords(user_id).await?;
        }
        Ok(Ok(user))
    }

    async fn refused(&self, user_id: &str, purpose: &str, why: &str) -> anyhow::Result<()> {
        let detail = serde_json::json!({ "purpose": purpose, "reason": why });
        self.store
            .audit(&format!("user:{user_id}"), &format!("{purpose} refused"), "user", user_id, &detail)
            .await
    }

    async fn raise_lockout(&self, user: &User) -> anyhow::Result<()> {
        let now = self.store.now();
        let alert = crate::alerts::NewAlert {
            rule_id: ACCOUNT_LOCKED.into(),
            rule_version: "built-in".into(),
            subject: String::new(),
            site: None,
            episode: format!("user:{}:{}", user.id, now.timestamp_millis()),
            level: 1,
            severity: crate::rules::Severity::Critical,
            title: "An account was locked after wrong passwords".into(),
            summary: format!(
                "The account `{}` ({}) was locked after {} wrong passwords in a row. If this was not its \
                 owner, someone is trying to act in their name. Unlock it with `vigil users unlock {}` \
                 once its owner is reached.",
                user.id, user.name, self.policy.lockout_after, user.id
            ),
            evidence: serde_json::json!({ "user": user.id, "attempts": self.policy.lockout_after }),
            recipients: self.admins.clone(),
            clinical_time: None,
            delivery: crate::alerts::FirstNotice {
                notify_at: now,
                group: ACCOUNT_LOCKED.into(),
                escalate_at: None,
            },
        };
        let e = crate::store::Evaluation { subject: "", alerts: vec![alert], ..Default::default() };
        self.store.commit_evaluation(e, &self.message_domain).await?;
        tracing::warn!(user = %user.id, "Account locked after wrong passwords; administrators alerted.");
        Ok(())
    }

    /// A signature by `user` (already authenticated by password for this signing) on
    /// `action` about the thing `entity/entity_id` whose content is `content`.
    #[allow(clippy::too_many_arguments)]
    pub fn signature(
        &self,
        user: &User,
        meaning: Meaning,
        action: Action,
        entity: &str,
        entity_id: &str,
        content: &serde_json::Value,
        comment: Option<&str>,
        zone: chrono_tz::Tz,
    ) -> NewSignature {
        // Whole milliseconds: the time stored is the time hashed.
        let now = self.store.now();
        let signed_at = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        NewSignature {
            user_id: user.id.clone(),
            printed_name: user.name.clone(),
            meaning,
            action,
            entity: entity.into(),
            entity_id: entity_id.into(),
            content_hash: content_hash(
                &user.id, meaning, action, entity, entity_id, content, comment, signed_at,
            ),
            comment: comment.map(str::to_string),
            signed_at,
            zone: zone.name().to_string(),
            local_time: signed_at.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z").to_string(),
        }
    }
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
