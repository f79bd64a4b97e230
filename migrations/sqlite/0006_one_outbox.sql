-- One outbox: a report email is a notification of kind 'report' that references the
-- archived report (its attachment), so one worker sends alert and report emails alike
-- with the same retries. alert_id becomes optional; exactly one of alert_id, report_id
-- is set. SQLite cannot drop NOT NULL in place, so the table is rebuilt.
CREATE TABLE notifications_one (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id        BIGINT REFERENCES alerts (id),
    role            TEXT   NOT NULL,
    recipient       TEXT   NOT NULL,
    blinded         BIGINT NOT NULL,
    message_id      TEXT   NOT NULL UNIQUE,
    status          TEXT   NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    sent_at         BIGINT,
    created_at      BIGINT NOT NULL,
    kind            TEXT   NOT NULL DEFAULT 'alert',
    group_key       TEXT,
    report_id       BIGINT REFERENCES reports (id),
    CHECK ((alert_id IS NULL) <> (report_id IS NULL))
);
INSERT INTO notifications_one (id, alert_id, role, recipient, blinded, message_id, status, attempts,
                               next_attempt_at, last_error, sent_at, created_at, kind, group_key)
    SELECT id, alert_id, role, recipient, blinded, message_id, status, attempts,
           next_attempt_at, last_error, sent_at, created_at, kind, group_key
    FROM notifications;
-- Report deliveries did not record blinding: only unblinded roles ever got a closed
-- report, and an open report shows no arm, so an open one is kept as blinded.
INSERT INTO notifications_one (report_id, role, recipient, blinded, message_id, status, attempts,
                               next_attempt_at, last_error, sent_at, created_at, kind)
    SELECT d.report_id, d.role, d.recipient, CASE WHEN r.kind = 'closed' THEN 0 ELSE 1 END,
           d.message_id, d.status, d.attempts, d.next_attempt_at, d.last_error, d.sent_at,
           r.generated_at, 'report'
    FROM report_deliveries d JOIN reports r ON r.id = d.report_id
    ORDER BY d.id;
DROP TABLE notifications;
DROP TABLE report_deliveries;
ALTER TABLE notifications_one RENAME TO notifications;
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_by_alert ON notifications (alert_id);
CREATE INDEX notifications_by_report ON notifications (report_id);
