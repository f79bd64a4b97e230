//! What an evaluation's findings mean for the alerts already stored: which findings
//! raise a new alert (dedup), which open alerts resolve themselves (auto-resolve), and
//! how a subject's changed part moves a cohort rule's running totals.

/// A finding raises a new alert when its (rule, subject, episode) has none yet, or when
/// its level is higher than every earlier alert of that episode (a grade 3 after a
/// grade 2 is news; the same grade again is not).
pub fn raises_alert(level: i64, highest_before: Option<i64>) -> bool {
    highest_before.is_none_or(|h| level > h)
}

/// The alerts (id, episode) of a rule that resolve themselves: those whose episode the
/// rule no longer finds. Only alerts still in force are passed in.
pub fn gone<'a>(in_force: &'a [(i64, String)], still_found: &'a [String]) -> impl Iterator<Item = i64> + 'a {
    in_force.iter().filter(move |(_, episode)| !still_found.contains(episode)).map(|(id, _)| *id)
}

/// A subject's part in one cohort rule: evaluable, matching, and its event count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Part {
    pub evaluable: bool,
    pub matching: bool,
    pub events: i64,
}

/// What one subject's change adds to a cohort rule's running totals (evaluable,
/// matching, events), or None when the part did not change and nothing is written.
pub fn totals_delta(before: Option<Part>, now: Part) -> Option<(i64, i64, i64)> {
    if before == Some(now) {
        return None;
    }
    let b = before.unwrap_or_default();
    Some((
        i64::from(now.evaluable) - i64::from(b.evaluable),
        i64::from(now.matching) - i64::from(b.matching),
        now.events - b.events,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_is_news_when_its_episode_is_new_or_worse() {
        assert!(raises_alert(2, None));
        assert!(raises_alert(3, Some(2)));
        assert!(!raises_alert(2, Some(2)));
        assert!(!raises_alert(1, Some(2)));
    }

    #[test]
    fn alerts_whose_episode_is_no_longer_found_resolve() {
        let in_force = vec![(1, "AE-1".to_string()), (2, "AE-2".to_string())];
        assert_eq!(gone(&in_force, &["AE-2".to_string()]).collect::<Vec<_>>(), [1]);
        assert_eq!(gone(&in_force, &[]).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn the_totals_move_by_a_subjects_change_only() {
        let p = |evaluable, matching, events| Part { evaluable, matching, events };
        assert_eq!(totals_delta(None, p(true, true, 2)), Some((1, 1, 2)));
        assert_eq!(totals_delta(Some(p(true, true, 2)), p(true, true, 2)), None);
        assert_eq!(totals_delta(Some(p(true, true, 2)), p(true, false, 0)), Some((0, -1, -2)));
        // A first part that contributes nothing is still recorded (it is news to the store).
        assert_eq!(totals_delta(None, p(false, false, 0)), Some((0, 0, 0)));
    }
}
