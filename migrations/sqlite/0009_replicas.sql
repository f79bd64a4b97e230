-- Several replicas on one database (issue #13).
-- An outbox row is claimed before it is sent: by whom, and until when. A claim whose
-- holder died runs out and the row is taken by another replica; a delivery is recorded
-- only by the row's claimant.
ALTER TABLE notifications ADD COLUMN claimed_by TEXT;
ALTER TABLE notifications ADD COLUMN claimed_until BIGINT;
-- Singleton work (the clock pass) runs under a lease: its holder, a fencing token that
-- grows with each change of holder, and when it runs out unless renewed.
CREATE TABLE leases (
    name       TEXT   PRIMARY KEY,
    holder     TEXT   NOT NULL,
    token      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
-- A scheduled or triggered report is made once per due time: the occurrence it answers
-- (NULL for reports made on demand, which may repeat).
ALTER TABLE reports ADD COLUMN due_at BIGINT;
CREATE UNIQUE INDEX reports_once_per_due ON reports (reason, kind, due_at);
