//! Who may do what (`authority`), how accounts are kept (`accounts`), and which actions a
//! study wants signed (`signatures`): 21 CFR Part 11 §11.10(g), §11.300, §11.200.

use super::{Issues, RoleConfig};
use crate::rules::Span;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The role that manages accounts and reloads the configuration by default.
pub const ADMIN_ROLE: &str = "admin";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountsFile {
    lockout_after: Option<u32>,
    password_max_age: Option<Span>,
    password_min_length: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditFile {
    /// When (UTC, HH:MM) the day's email witnessing the audit trail's head goes to the
    /// administrators; `off` for none. Default 06:00.
    daily_head_at_utc: Option<String>,
}

/// The time of the daily audit-head email, or None (`audit.daily_head_at_utc: off`).
pub(super) fn daily_head_at(raw: &AuditFile, issues: &mut Issues) -> Option<chrono::NaiveTime> {
    match raw.daily_head_at_utc.as_deref().map(str::trim) {
        None => chrono::NaiveTime::from_hms_opt(6, 0, 0),
        Some("off") => None,
        Some(t) => match chrono::NaiveTime::parse_from_str(t, "%H:%M") {
            Ok(at) => Some(at),
            Err(_) => {
                issues
                    .add("audit.daily_head_at_utc", format!("`{t}` is not a time such as 06:00 (or `off`)"));
                None
            }
        },
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignaturesFile {
    #[serde(default)]
    required: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthorityFile {
    acknowledge: Option<Vec<String>>,
    resolve: Option<Vec<String>>,
    silence: Option<Vec<String>>,
    release_report: Option<Vec<String>>,
    manage_users: Option<Vec<String>>,
    reload: Option<Vec<String>>,
}

/// How accounts are kept (`accounts`).
#[derive(Debug, Clone)]
pub struct AccountPolicy {
    /// Wrong passwords in a row that lock an account (default 5); the administrators are
    /// alerted (§11.300(d)).
    pub lockout_after: u32,
    /// A password older than this must be changed before it signs or signs in (default
    /// 180 days; `0s` turns ageing off).
    pub password_max_age: Option<Span>,
    /// The shortest password accepted (default 12).
    pub password_min_length: usize,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        Self { lockout_after: 5, password_max_age: Span::parse("180d").ok(), password_min_length: 12 }
    }
}

/// An action that needs authority, and may need a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Acknowledge,
    Resolve,
    Silence,
    CloseSilence,
    ReleaseReport,
    ManageUsers,
    Reload,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Acknowledge,
        Action::Resolve,
        Action::Silence,
        Action::CloseSilence,
        Action::ReleaseReport,
        Action::ManageUsers,
        Action::Reload,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Resolve => "resolve",
            Action::Silence => "silence",
            Action::CloseSilence => "close_silence",
            Action::ReleaseReport => "report_release",
            Action::ManageUsers => "manage_users",
            Action::Reload => "reload",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s || (s == "release_report" && *a == Action::ReleaseReport))
    }
}

/// Which roles may take each action (`authority`), and which actions must be signed.
#[derive(Debug, Clone, Default)]
pub struct Authority {
    roles: BTreeMap<Action, Vec<String>>,
    /// Actions a study wants signed (`signatures.required`).
    pub signatures_required: Vec<Action>,
}

impl Authority {
    /// Whether a person with these roles may take `action`.
    pub fn permits(&self, roles: &[String], action: Action) -> bool {
        self.roles.get(&action).is_some_and(|allowed| roles.iter().any(|r| allowed.contains(r)))
    }

    /// The roles that may take `action`.
    pub fn roles_for(&self, action: Action) -> &[String] {
        self.roles.get(&action).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn requires_signature(&self, action: Action) -> bool {
        self.signatures_required.contains(&action)
    }
}

pub(super) fn policy(raw: &AccountsFile, issues: &mut Issues) -> AccountPolicy {
    let default = AccountPolicy::default();
    let lockout_after = raw.lockout_after.unwrap_or(default.lockout_after);
    if lockout_after == 0 {
        issues.add("accounts.lockout_after", "must be at least 1");
    }
    let password_min_length = raw.password_min_length.unwrap_or(default.password_min_length);
    if password_min_length < 8 {
        issues.add("accounts.password_min_length", "must be at least 8");
    }
    let password_max_age = match raw.password_max_age {
        Some(s) if s.seconds() == 0 => None,
        Some(s) => Some(s),
        None => default.password_max_age,
    };
    AccountPolicy { lockout_after, password_max_age, password_min_length }
}

/// Defaults: any role of `recipients` acknowledges, resolves and silences; unblinded roles
/// release reports; `admin` manages users and reloads.
pub(super) fn authority(
    raw: &AuthorityFile,
    signatures: &SignaturesFile,
    recipients: &BTreeMap<String, RoleConfig>,
    issues: &mut Issues,
) -> Authority {
    let every: Vec<String> = recipients.keys().cloned().collect();
    let unblinded: Vec<String> =
        recipients.iter().filter(|(_, r)| !r.blinded).map(|(k, _)| k.clone()).collect();
    let admin = vec![ADMIN_ROLE.to_string()];
    let mut roles = BTreeMap::new();
    let given = [
        (Action::Acknowledge, &raw.acknowledge, &every),
        (Action::Resolve, &raw.resolve, &every),
        (Action::Silence, &raw.silence, &every),
        (Action::CloseSilence, &raw.silence, &every),
        (Action::ReleaseReport, &raw.release_report, &unblinded),
        (Action::ManageUsers, &raw.manage_users, &admin),
        (Action::Reload, &raw.reload, &admin),
    ];
    for (action, configured, default) in given {
        if let Some(list) = configured {
            let key = match action {
                Action::CloseSilence => "authority.silence".to_string(),
                Action::ReleaseReport => "authority.release_report".to_string(),
                a => format!("authority.{}", a.as_str()),
            };
            for role in list {
                if role != ADMIN_ROLE && !recipients.contains_key(role) {
                    issues.add(
                        &key,
                        format!("role `{role}` is not defined under recipients (nor is it `admin`)"),
                    );
                }
            }
        }
        roles.insert(action, configured.clone().unwrap_or_else(|| default.clone()));
    }
    let mut signatures_required = Vec::new();
    for name in &signatures.required {
        match Action::parse(name) {
            Some(a @ (Action::Acknowledge | Action::Resolve | Action::CloseSilence | Action::ReleaseReport)) => {
                signatures_required.push(a)
            }
            _ => issues.add(
                "signatures.required",
                format!("`{name}` cannot be signed; choose among acknowledge, resolve, close_silence, report_release"),
            ),
        }
    }
    Authority { roles, signatures_required }
}
