-- Each subject's part in each cohort rule: the cohort total is a SUM, so evaluating one
-- subject's new record never re-reads the other subjects' histories.
CREATE TABLE cohort_contributions (
    rule_id   TEXT   NOT NULL,
    subject   TEXT   NOT NULL,
    evaluable BIGINT NOT NULL,
    matching  BIGINT NOT NULL,
    events    BIGINT NOT NULL,
    PRIMARY KEY (rule_id, subject)
);
