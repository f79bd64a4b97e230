//! The alert lifecycle: open → acknowledged → resolved, or silenced and back. Every
//! change of status is a `Transition`; `Transition::apply` is the one place that says
//! which transition a status allows and where it leads. The store records the outcome.

use serde::Serialize;

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// Raised and not yet taken by anyone; escalates while it stays so.
    Open,
    /// Someone has taken it; escalation stops.
    Acknowledged,
    /// Closed by a person or because its condition is gone.
    Resolved,
    /// Kept quiet by a silence until the silence ends.
    Silenced,
}

/// A status text in the database that is none of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` in the database")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 4] = [Self::Open, Self::Acknowledged, Self::Resolved, Self::Silenced];

    /// The text stored in the `alerts.status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
            Self::Silenced => "silenced",
        }
    }
}

impl std::str::FromStr for AlertStatus {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownValue { what: "alert status", value: s.to_string() })
    }
}

impl std::fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for AlertStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A severity as stored in the `alerts.severity` column.
pub fn parse_severity(s: &str) -> Result<crate::rules::Severity, UnknownValue> {
    use crate::rules::Severity;
    [Severity::Info, Severity::Warning, Severity::Critical]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| UnknownValue { what: "severity", value: s.to_string() })
}

/// Everything that changes an alert's status (or, for escalation, its step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A person takes the alert: escalation stops.
    Acknowledge,
    /// A person closes the alert.
    Resolve,
    /// The rule no longer finds the alert's episode.
    AutoResolve,
    /// A silence created now matches the open alert.
    Silence,
    /// Nobody acknowledged in time: the next role of the chain hears of it.
    Escalate,
    /// The silence that kept the alert quiet expired.
    Reopen,
    /// A resolved alert's condition is found again (or was still there when a person
    /// resolved it): resolved means "no longer present", so it opens again.
    Recur,
}

/// A refused transition (e.g. acknowledging a resolved alert).
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error("no alert #{0}")]
    NotFound(i64),
    #[error("alert #{id} is {status}; it cannot be {action}")]
    NotAllowed { id: i64, status: AlertStatus, action: &'static str },
    #[error("alert #{0} is critical: resolving it needs a reason (a comment)")]
    ReasonRequired(i64),
}

impl Transition {
    /// The status this transition leads to from `from`, or None if `from` does not allow it.
    pub fn apply(self, from: AlertStatus) -> Option<AlertStatus> {
        use AlertStatus::*;
        match (self, from) {
            (Self::Acknowledge, Open | Silenced) => Some(Acknowledged),
            (Self::Resolve, Open | Acknowledged | Silenced) => Some(Resolved),
            (Self::AutoResolve, Open | Acknowledged | Silenced) => Some(Resolved),
            (Self::Silence, Open) => Some(Silenced),
            (Self::Escalate, Open) => Some(Open),
            (Self::Reopen, Silenced) => Some(Open),
            (Self::Recur, Resolved) => Some(Open),
            _ => None,
        }
    }

    /// `apply` for alert `id`, as the error a person sees when it is refused.
    pub fn check(self, id: i64, from: AlertStatus) -> Result<AlertStatus, TransitionError> {
        self.apply(from).ok_or(TransitionError::NotAllowed { id, status: from, action: self.action() })
    }

    /// The action recorded in the alert's history.
    pub fn action(self) -> &'static str {
        match self {
            Self::Acknowledge => "acknowledged",
            Self::Resolve | Self::AutoResolve => "resolved",
            Self::Silence => "silenced",
            Self::Escalate => "escalated",
            Self::Reopen => "unsilenced",
            Self::Recur => "re-opened",
        }
    }

    /// The statuses this transition starts from, as an SQL list (`'open', 'silenced'`): the
    /// store selects only rows the transition can apply to, and `apply` stays the guard.
    pub fn from_statuses_sql(self) -> String {
        let words: Vec<String> = AlertStatus::ALL
            .into_iter()
            .filter(|s| self.apply(*s).is_some())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        words.join(", ")
    }
}

/// The status of a newly raised alert: silenced if a silence matches it.
pub fn raised(silenced: bool) -> AlertStatus {
    if silenced {
        AlertStatus::Silenced
    } else {
        AlertStatus::Open
    }
}

/// A re-opened alert is notified now only if no notice of it ever went out (its first
/// notice was suppressed by the silence); otherwise its recipients already know.
pub fn notify_on_reopen(notices_sent: i64) -> bool {
    notices_sent == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertStatus::*;

    #[test]
    fn the_sql_list_of_from_statuses_follows_apply() {
        assert_eq!(Transition::Escalate.from_statuses_sql(), "'open'");
        assert_eq!(Transition::Reopen.from_statuses_sql(), "'silenced'");
        let auto = Transition::AutoResolve.from_statuses_sql();
        assert!(auto.contains("'open'") && !auto.contains("'resolved'"), "{auto}");
    }

    #[test]
    fn statuses_round_trip_through_their_text_and_unknown_text_is_an_error() {
        for s in AlertStatus::ALL {
            assert_eq!(s.as_str().parse::<AlertStatus>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        let e = "closed".parse::<AlertStatus>().unwrap_err();
        assert_eq!(e.to_string(), "unknown alert status `closed` in the database");
        assert_eq!(serde_json::to_value(Acknowledged).ok(), Some(serde_json::json!("acknowledged")));
    }

    #[test]
    fn severities_parse_from_their_text_only() {
        assert_eq!(parse_severity("critical"), Ok(crate::rules::Severity::Critical));
        assert_eq!(parse_severity("info"), Ok(crate::rules::Severity::Info));
        assert!(parse_severity("Critical").is_err());
        assert!(parse_severity("").is_err());
    }

    #[test]
    fn people_acknowledge_open_or_silenced_alerts_and_resolve_any_unresolved_one() {
        assert_eq!(Transition::Acknowledge.apply(Open), Some(Acknowledged));
        assert_eq!(Transition::Acknowledge.apply(Silenced), Some(Acknowledged));
        assert_eq!(Transition::Acknowledge.apply(Acknowledged), None);
        assert_eq!(Transition::Acknowledge.apply(Resolved), None);
        for s in [Open, Acknowledged, Silenced] {
            assert_eq!(Transition::Resolve.apply(s), Some(Resolved));
            assert_eq!(Transition::AutoResolve.apply(s), Some(Resolved));
        }
        assert_eq!(Transition::Resolve.apply(Resolved), None);
        let e = Transition::Acknowledge.check(7, Resolved).unwrap_err();
        assert_eq!(e.to_string(), "alert #7 is resolved; it cannot be acknowledged");
    }

    #[test]
    fn only_open_alerts_escalate_or_fall_silent_and_only_silenced_ones_reopen() {
        assert_eq!(Transition::Escalate.apply(Open), Some(Open));
        assert_eq!(Transition::Silence.apply(Open), Some(Silenced));
        assert_eq!(Transition::Reopen.apply(Silenced), Some(Open));
        for s in [Acknowledged, Resolved, Silenced] {
            assert_eq!(Transition::Escalate.apply(s), None);
            assert_eq!(Transition::Silence.apply(s), None);
        }
        assert_eq!(Transition::Reopen.apply(Open), None);
        assert_eq!(raised(true), Silenced);
        assert_eq!(raised(false), Open);
        assert!(notify_on_reopen(0) && !notify_on_reopen(2));
        assert_eq!(Transition::Recur.apply(Resolved), Some(Open));
        assert_eq!(Transition::Recur.from_statuses_sql(), "'resolved'");
    }
}
