-- Running totals per cohort rule, updated by the delta of each subject's contribution, so
-- judging a cohort rule reads one row however large the cohort.
CREATE TABLE cohort_totals (
    rule_id   TEXT   PRIMARY KEY,
    evaluable BIGINT NOT NULL,
    matching  BIGINT NOT NULL,
    events    BIGINT NOT NULL
);
INSERT INTO cohort_totals (rule_id, evaluable, matching, events)
    SELECT rule_id, SUM(evaluable), SUM(matching), SUM(events) FROM cohort_contributions GROUP BY rule_id;
CREATE INDEX cohort_contributions_matching ON cohort_contributions (rule_id, matching);
CREATE INDEX notifications_by_alert ON notifications (alert_id);
CREATE INDEX alert_events_by_alert ON alert_events (alert_id);
