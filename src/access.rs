//! Who is acting, checked (21 CFR Part 11 §11.10(d), §11.300): a person's password against
//! their account, with lockout after wrong ones (the administrators are alerted), and the
//! electronic signature a checked person makes. The types are in [`crate::accounts`].

use crate::accounts::{content_hash, password_matches, Meaning, NewSignature, User};
use crate::config::{AccountPolicy, Action, Authority, Config};
use crate::store::Store;
use chrono::DateTime;

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
