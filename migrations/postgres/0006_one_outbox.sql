-- One outbox: a report email is a notification of kind 'report' that references the
-- archived report (its attachment), so one worker sends alert and report emails alike
-- with the same retries. alert_id becomes optional; exactly one of alert_id, report_id
-- is set.
ALTER TABLE notifications ALTER COLUMN alert_id DROP NOT NULL;
ALTER TABLE notifications ADD COLUMN report_id BIGINT REFERENCES reports (id);
ALTER TABLE notifications ADD CONSTRAINT notifications_about_one
    CHECK ((alert_id IS NULL) <> (report_id IS NULL));
-- Report deliveries did not record blinding: only unblinded roles ever got a closed
-- report, and an open report shows no arm, so an open one is kept as blinded.
INSERT INTO notifications (report_id, role, recipient, blinded, message_id, status, attempts,
                           next_attempt_at, last_error, sent_at, created_at, kind)
    SELECT d.report_id, d.role, d.recipient, CASE WHEN r.kind = 'closed' THEN 0 ELSE 1 END,
           d.message_id, d.status, d.attempts, d.next_attempt_at, d.last_error, d.sent_at,
           r.generated_at, 'report'
    FROM report_deliveries d JOIN reports r ON r.id = d.report_id
    ORDER BY d.id;
DROP TABLE report_deliveries;
CREATE INDEX notifications_by_report ON notifications (report_id);
