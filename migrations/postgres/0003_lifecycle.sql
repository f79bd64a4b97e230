-- Alert lifecycle: escalation state, silences, kinds of notification, grouping.
ALTER TABLE alerts ADD COLUMN escalation_step BIGINT NOT NULL DEFAULT 0;
-- When the next escalation is due (epoch ms); NULL = none (acknowledged, resolved, end of chain).
ALTER TABLE alerts ADD COLUMN next_escalation_at BIGINT;
ALTER TABLE alerts ADD COLUMN silence_id BIGINT;
ALTER TABLE alerts ADD COLUMN updated_at BIGINT;

CREATE TABLE silences (
    id         BIGSERIAL PRIMARY KEY,
    rule_id    TEXT,
    subject    TEXT,
    site       TEXT,
    comment    TEXT   NOT NULL,
    created_by TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- Set once the expiry has been processed (silenced alerts re-opened and notified).
    ended_at   BIGINT
);

-- alert (first notice), escalation, resolved
ALTER TABLE notifications ADD COLUMN kind TEXT NOT NULL DEFAULT 'alert';
-- Notifications with the same key that are pending together go out as one email.
ALTER TABLE notifications ADD COLUMN group_key TEXT;
