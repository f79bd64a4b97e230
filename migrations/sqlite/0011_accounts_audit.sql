-- Part 11: people with accounts, API tokens with scopes, electronic signatures, and an
-- append-only audit trail written by the database itself (triggers), so that no write
-- path of the application, and no hand-made SQL, can change an electronic record
-- without a trace. The chain of SHA-256 hashes over the trail is sealed by vigil
-- (src/audit) in the order of `pos`; `vigil audit verify` walks it.

CREATE TABLE users (
    id                  TEXT   PRIMARY KEY,
    name                TEXT   NOT NULL,
    email               TEXT   NOT NULL,
    -- JSON array of role names (those of `recipients`, and `admin`).
    roles               TEXT   NOT NULL,
    password_hash       TEXT   NOT NULL,
    password_changed_at BIGINT NOT NULL,
    failed_attempts     BIGINT NOT NULL DEFAULT 0,
    locked_at           BIGINT,
    disabled_at         BIGINT,
    created_at          BIGINT NOT NULL,
    created_by          TEXT   NOT NULL,
    updated_by          TEXT,
    updated_at          BIGINT
);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT   NOT NULL REFERENCES users (id),
    name       TEXT   NOT NULL,
    -- SHA-256 of the token; the token itself is shown once, at creation.
    digest     TEXT   NOT NULL UNIQUE,
    -- Comma-separated: ingest, read, operate.
    scopes     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT   NOT NULL,
    revoked_at BIGINT,
    revoked_by TEXT
);

CREATE TABLE signatures (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      TEXT   NOT NULL REFERENCES users (id),
    printed_name TEXT   NOT NULL,
    -- reviewed, approved, responsible
    meaning      TEXT   NOT NULL,
    -- acknowledge, resolve, close_silence, report_release
    action       TEXT   NOT NULL,
    entity       TEXT   NOT NULL,
    entity_id    TEXT   NOT NULL,
    -- SHA-256 of what was signed (the record's content and the action): the signature
    -- cannot be moved to another record.
    content_hash TEXT   NOT NULL,
    -- The comment the signer wrote, part of what was signed.
    comment      TEXT,
    signed_at    BIGINT NOT NULL,
    -- The study's zone and the local time of signing in it, as shown to the signer.
    zone         TEXT   NOT NULL,
    local_time   TEXT   NOT NULL
);

ALTER TABLE alert_events ADD COLUMN signature_id BIGINT REFERENCES signatures (id);
ALTER TABLE silences ADD COLUMN ended_by TEXT;
ALTER TABLE silences ADD COLUMN signature_id BIGINT REFERENCES signatures (id);
ALTER TABLE reports ADD COLUMN released_at BIGINT;
ALTER TABLE reports ADD COLUMN released_by TEXT;
ALTER TABLE reports ADD COLUMN signature_id BIGINT REFERENCES signatures (id);

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Server time (UTC epoch ms) of the change, from the database's clock.
    at        BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    entity    TEXT   NOT NULL,
    entity_id TEXT   NOT NULL,
    detail    TEXT   NOT NULL,
    -- Set once, by the sealer: the place in the chain, the previous entry's hash and this
    -- entry's (SHA-256 over these and every column above).
    pos       BIGINT UNIQUE,
    prev_hash TEXT,
    hash      TEXT
);
CREATE INDEX audit_log_unsealed ON audit_log (seq) WHERE hash IS NULL;
CREATE INDEX audit_log_at ON audit_log (at);

-- While `vigil store copy` fills a new database, the copied rows are not new changes.
CREATE TABLE audit_paused (reason TEXT NOT NULL);

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: no entry is ever deleted'); END;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN OLD.hash IS NOT NULL OR NEW.hash IS NULL OR NEW.pos IS NULL
  OR NEW.seq IS NOT OLD.seq OR NEW.at IS NOT OLD.at OR NEW.actor IS NOT OLD.actor
  OR NEW.action IS NOT OLD.action OR NEW.entity IS NOT OLD.entity
  OR NEW.entity_id IS NOT OLD.entity_id OR NEW.detail IS NOT OLD.detail
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: an entry is sealed once and never changed'); END;

CREATE TRIGGER records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'records are kept as written: a correction is a new version'); END;
CREATE TRIGGER records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'records are never deleted'); END;

CREATE TRIGGER adverse_event_versions_no_update BEFORE UPDATE ON adverse_event_versions
BEGIN SELECT RAISE(ABORT, 'adverse_event_versions are kept as written: a correction is a new version'); END;
CREATE TRIGGER adverse_event_versions_no_delete BEFORE DELETE ON adverse_event_versions
BEGIN SELECT RAISE(ABORT, 'adverse_event_versions are never deleted'); END;

CREATE TRIGGER alert_events_no_update BEFORE UPDATE ON alert_events
BEGIN SELECT RAISE(ABORT, 'alert_events are kept as written: a correction is a new version'); END;
CREATE TRIGGER alert_events_no_delete BEFORE DELETE ON alert_events
BEGIN SELECT RAISE(ABORT, 'alert_events are never deleted'); END;

CREATE TRIGGER signatures_no_update BEFORE UPDATE ON signatures
BEGIN SELECT RAISE(ABORT, 'signatures are kept as written: a correction is a new version'); END;
CREATE TRIGGER signatures_no_delete BEFORE DELETE ON signatures
BEGIN SELECT RAISE(ABORT, 'signatures are never deleted'); END;

CREATE TRIGGER config_loads_no_update BEFORE UPDATE ON config_loads
BEGIN SELECT RAISE(ABORT, 'config_loads are kept as written: a correction is a new version'); END;
CREATE TRIGGER config_loads_no_delete BEFORE DELETE ON config_loads
BEGIN SELECT RAISE(ABORT, 'config_loads are never deleted'); END;

CREATE TRIGGER audit_records_insert AFTER INSERT ON records
WHEN NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE(NEW.source, 'unknown'), 'record stored', 'record', NEW.record_key,
            json_object('seq', NEW.seq, 'subject', NEW.subject, 'content_hash', NEW.content_hash, 'received_at', NEW.received_at));
END;

CREATE TRIGGER audit_adverse_event_versions_insert AFTER INSERT ON adverse_event_versions
WHEN NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE((SELECT source FROM records WHERE seq = NEW.record_seq), 'unknown'), 'adverse event version', 'adverse_event', NEW.subject || '/' || NEW.ae_id,
            json_object('version', NEW.version, 'grade', NEW.grade, 'serious', NEW.serious, 'record_seq', NEW.record_seq, 'content_hash', NEW.content_hash));
END;

CREATE TRIGGER audit_quarantine_insert AFTER INSERT ON quarantine
WHEN NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE(NEW.source, 'unknown'), 'record quarantined', 'quarantine', NEW.entry_key,
            json_object('line', NEW.line, 'field', NEW.field, 'reason', NEW.reason));
END;

CREATE TRIGGER audit_alerts_insert AFTER INSERT ON alerts
WHEN NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE('vigil', 'unknown'), 'alert raised', 'alert', CAST(NEW.id AS TEXT),
            json_object('rule_id', NEW.rule_id, 'rule_version', NEW.rule_version, 'subject', NEW.subject, 'episode', NEW.episode, 'level', NEW.level, 'severity', NEW.severity, 'status', NEW.status));
END;

CREATE TRIGGER audit_alerts_update AFTER UPDATE ON alerts
WHEN (OLD.status IS NOT NEW.status OR OLD.escalation_step IS NOT NEW.escalation_step OR OLD.silence_id IS NOT NEW.silence_id) AND NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE('vigil', 'unknown'), 'alert changed', 'alert', CAST(NEW.id AS TEXT),
            json_object('from', OLD.status, 'to', NEW.status, 'escalation_step', NEW.escalation_step, 'silence_id', NEW.silence_id));
END;

CREATE TRIGGER audit_alert_events_insert AFTER INSERT ON alert_events
WHEN NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE(NEW.actor, 'unknown'), NEW.action, 'alert', CAST(NEW.alert_id AS TEXT),
            json_object('event_id', NEW.id, 'comment', NEW.comment, 'signature_id', NEW.signature_id));
END;

CREATE TRIGGER audit_notifications_insert AFTER INSERT ON notifications
WHEN NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE('vigil', 'unknown'), 'notification queued', 'notification', CAST(NEW.id AS TEXT),
            json_object('kind', NEW.kind, 'alert_id', NEW.alert_id, 'report_id', NEW.report_id, 'role', NEW.role, 'recipient', NEW.recipient, 'message_id', NEW.message_id, 'status', NEW.status));
END;

CREATE TRIGGER audit_notifications_update AFTER UPDATE ON notifications
WHEN (OLD.status IS NOT NEW.status) AND NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE('vigil', 'unknown'), 'notification ' || NEW.status, 'notification', CAST(NEW.id AS TEXT),
            json_object('from', OLD.status, 'attempts', NEW.attempts, 'last_error', NEW.last_error, 'message_id', NEW.message_id));
END;

CREATE TRIGGER audit_silences_insert AFTER INSERT ON silences
WHEN NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE(NEW.created_by, 'unknown'), 'silence created', 'silence', CAST(NEW.id AS TEXT),
            json_object('rule_id', NEW.rule_id, 'subject', NEW.subject, 'site', NEW.site, 'expires_at', NEW.expires_at, 'comment', NEW.comment));
END;

CREATE TRIGGER audit_silences_update AFTER UPDATE ON silences
WHEN (OLD.ended_at IS NOT NEW.ended_at OR OLD.expires_at IS NOT NEW.expires_at) AND NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE(COALESCE(NEW.ended_by, 'vigil'), 'unknown'), 'silence ended', 'silence', CAST(NEW.id AS TEXT),
            json_object('ended_at', NEW.ended_at, 'expires_at', NEW.expires_at, 'signature_id', NEW.signature_id));
END;

CREATE TRIGGER audit_reports_insert AFTER INSERT ON reports
WHEN NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE('vigil', 'unknown'), 'report generated', 'report', CAST(NEW.id AS TEXT),
            json_object('kind', NEW.kind, 'as_of', NEW.as_of, 'reason', NEW.reason, 'path', NEW.path, 'sha256', NEW.sha256));
END;

CREATE TRIGGER audit_reports_update AFTER UPDATE ON reports
WHEN (OLD.released_at IS NOT NEW.released_at) AND NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE(COALESCE(NEW.released_by, 'vigil'), 'unknown'), 'report released', 'report', CAST(NEW.id AS TEXT),
            json_object('released_at', NEW.released_at, 'signature_id', NEW.signature_id, 'sha256', NEW.sha256));
END;

CREATE TRIGGER audit_config_loads_insert AFTER INSERT ON config_loads
WHEN NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE(NEW.actor, 'unknown'), 'configuration ' || NEW.outcome, 'configuration', CAST(NEW.id AS TEXT),
            json_object('detail', json(NEW.detail)));
END;

CREATE TRIGGER audit_users_insert AFTER INSERT ON users
WHEN NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE(NEW.created_by, 'unknown'), 'user created', 'user', NEW.id,
            json_object('name', NEW.name, 'email', NEW.email, 'roles', json(NEW.roles)));
END;

CREATE TRIGGER audit_users_update AFTER UPDATE ON users
WHEN (OLD.name IS NOT NEW.name OR OLD.email IS NOT NEW.email OR OLD.roles IS NOT NEW.roles OR OLD.password_hash IS NOT NEW.password_hash OR OLD.disabled_at IS NOT NEW.disabled_at OR OLD.locked_at IS NOT NEW.locked_at) AND NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE(COALESCE(NEW.updated_by, 'vigil'), 'unknown'), 'user changed', 'user', NEW.id,
            json_object('name', NEW.name, 'email', NEW.email, 'roles', json(NEW.roles), 'password_changed', CASE WHEN OLD.password_hash IS DISTINCT FROM NEW.password_hash THEN 1 ELSE 0 END, 'disabled_at', NEW.disabled_at, 'locked_at', NEW.locked_at));
END;

CREATE TRIGGER audit_api_tokens_insert AFTER INSERT ON api_tokens
WHEN NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE(NEW.created_by, 'unknown'), 'token created', 'token', CAST(NEW.id AS TEXT),
            json_object('user_id', NEW.user_id, 'name', NEW.name, 'scopes', NEW.scopes));
END;

CREATE TRIGGER audit_api_tokens_update AFTER UPDATE ON api_tokens
WHEN (OLD.revoked_at IS NOT NEW.revoked_at) AND NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE(COALESCE(NEW.revoked_by, 'vigil'), 'unknown'), 'token revoked', 'token', CAST(NEW.id AS TEXT),
            json_object('user_id', NEW.user_id, 'name', NEW.name));
END;

CREATE TRIGGER audit_signatures_insert AFTER INSERT ON signatures
WHEN NOT EXISTS (SELECT 1 FROM audit_paused)
BEGIN
    INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), COALESCE('user:' || NEW.user_id, 'unknown'), 'signed', 'signature', CAST(NEW.id AS TEXT),
            json_object('printed_name', NEW.printed_name, 'meaning', NEW.meaning, 'action', NEW.action, 'entity', NEW.entity, 'entity_id', NEW.entity_id, 'content_hash', NEW.content_hash, 'signed_at', NEW.signed_at));
END;
