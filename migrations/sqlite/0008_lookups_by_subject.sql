-- An evaluation commits many subjects at once and reads what it needs by subject:
-- their alerts and their cohort contributions. The unique keys start with the rule id,
-- so without these each such read scans the whole table.
CREATE INDEX alerts_by_subject ON alerts (subject);
CREATE INDEX cohort_contributions_by_subject ON cohort_contributions (subject);
