//! Silences: a person keeps alerts of a rule, a subject and/or a site quiet until a
//! given time. Which silence matches an alert, and which silences have run out, is
//! decided here; the store only loads and records them.

use crate::rules::Span;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A silence asked for: it needs a reason, and may not outlast `longest`.
pub fn check_request(duration: Span, longest: Span, comment: &str) -> Result<(), String> {
    if comment.trim().is_empty() {
        return Err("a silence needs a reason (a comment)".into());
    }
    if duration > longest {
        return Err(format!("a silence lasts at most {longest} (alerting.max_silence); {duration} asked"));
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Silence {
    pub id: i64,
    pub rule_id: Option<String>,
    pub subject: Option<String>,
    pub site: Option<String>,
    pub comment: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended: bool,
}

impl Silence {
    /// What a signature on closing this silence signs.
    pub fn signed_content(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id, "rule_id": self.rule_id, "subject": self.subject, "site": self.site,
            "comment": self.comment, "created_by": self.created_by,
            "created_at": self.created_at.timestamp_millis(), "expires_at": self.expires_at.timestamp_millis(),
        })
    }
}

/// What a silence is matched against: an alert's rule, subject and site.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub rule_id: &'a str,
    /// Empty for cohort-level alerts.
    pub subject: &'a str,
    pub site: Option<&'a str>,
}

impl Silence {
    /// Still in force at `now`: not ended and not past its expiry.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        !self.ended && self.expires_at > now
    }

    /// Ran out by `now` but not yet ended.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        !self.ended && self.expires_at <= now
    }

    /// Every field the silence names equals the alert's; an unnamed field matches all.
    pub fn matches(&self, t: Target<'_>) -> bool {
        self.rule_id.as_deref().is_none_or(|r| r == t.rule_id)
            && self.subject.as_deref().is_none_or(|s| s == t.subject)
            && self.site.as_deref().is_none_or(|s| Some(s) == t.site)
    }
}

/// The oldest silence in force at `now` that matches the alert, if any.
pub fn matching<'s>(silences: &'s [Silence], t: Target<'_>, now: DateTime<Utc>) -> Option<&'s Silence> {
    silences.iter().filter(|s| s.active(now) && s.matches(t)).min_by_key(|s| s.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_550_000_000 + secs, 0).single().unwrap_or_default()
    }

    fn silence(id: i64, rule: Option<&str>, site: Option<&str>, expires: i64) -> Silence {
        Silence {
            id,
            rule_id: rule.map(str::to_string),
            subject: None,
            site: site.map(str::to_string),
            comment: String::new(),
            created_by: "dr.mri".into(),
            created_at: at(0),
            expires_at: at(expires),
            ended: false,
        }
    }

    #[test]
    fn the_oldest_active_silence_naming_the_alerts_fields_matches() {
        let alert = Target { rule_id: "mri-new-t2", subject: "KS-201", site: Some("KS") };
        let s = [
            silence(1, Some("other-rule"), None, 100),
            silence(2, Some("mri-new-t2"), Some("BE"), 100),
            silence(3, Some("mri-new-t2"), Some("KS"), 100),
            silence(4, None, None, 100),
        ];
        assert_eq!(matching(&s, alert, at(10)).map(|s| s.id), Some(3));
        // After expiry nothing matches.
        assert_eq!(matching(&s, alert, at(100)).map(|s| s.id), None);
        // A silence naming a site does not match a cohort alert, which has none.
        let cohort = Target { rule_id: "mri-new-t2", subject: "", site: None };
        assert_eq!(matching(&s[..3], cohort, at(10)).map(|s| s.id), None);
    }

    #[test]
    fn a_silence_expires_at_its_time_and_an_ended_one_never_again() {
        let mut s = silence(1, None, None, 4);
        assert!(s.active(at(3)) && !s.expired(at(3)));
        assert!(!s.active(at(4)) && s.expired(at(4)));
        s.ended = true;
        assert!(!s.active(at(3)) && !s.expired(at(5)));
    }
}
