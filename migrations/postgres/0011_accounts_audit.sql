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
    id         BIGSERIAL PRIMARY KEY,
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
    id           BIGSERIAL PRIMARY KEY,
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
    seq       BIGSERIAL PRIMARY KEY,
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

CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END $$;

CREATE FUNCTION audit_seal_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.hash IS NOT NULL OR NEW.hash IS NULL OR NEW.pos IS NULL
       OR NEW.seq IS DISTINCT FROM OLD.seq OR NEW.at IS DISTINCT FROM OLD.at
       OR NEW.actor IS DISTINCT FROM OLD.actor OR NEW.action IS DISTINCT FROM OLD.action
       OR NEW.entity IS DISTINCT FROM OLD.entity OR NEW.entity_id IS DISTINCT FROM OLD.entity_id
       OR NEW.detail IS DISTINCT FROM OLD.detail THEN
        RAISE EXCEPTION 'the audit trail is append-only: an entry is sealed once and never changed';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_refuse('the audit trail is append-only: no entry is ever deleted');
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse('the audit trail is append-only: no entry is ever deleted');
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_seal_only();

CREATE TRIGGER records_no_update BEFORE UPDATE ON records
FOR EACH ROW EXECUTE FUNCTION audit_refuse('records are kept as written: a correction is a new version');
CREATE TRIGGER records_no_delete BEFORE DELETE ON records
FOR EACH ROW EXECUTE FUNCTION audit_refuse('records are never deleted');

CREATE TRIGGER adverse_event_versions_no_update BEFORE UPDATE ON adverse_event_versions
FOR EACH ROW EXECUTE FUNCTION audit_refuse('adverse_event_versions are kept as written: a correction is a new version');
CREATE TRIGGER adverse_event_versions_no_delete BEFORE DELETE ON adverse_event_versions
FOR EACH ROW EXECUTE FUNCTION audit_refuse('adverse_event_versions are never deleted');

CREATE TRIGGER alert_events_no_update BEFORE UPDATE ON alert_events
FOR EACH ROW EXECUTE FUNCTION audit_refuse('alert_events are kept as written: a correction is a new version');
CREATE TRIGGER alert_events_no_delete BEFORE DELETE ON alert_events
FOR EACH ROW EXECUTE FUNCTION audit_refuse('alert_events are never deleted');

CREATE TRIGGER signatures_no_update BEFORE UPDATE ON signatures
FOR EACH ROW EXECUTE FUNCTION audit_refuse('signatures are kept as written: a correction is a new version');
CREATE TRIGGER signatures_no_delete BEFORE DELETE ON signatures
FOR EACH ROW EXECUTE FUNCTION audit_refuse('signatures are never deleted');

CREATE TRIGGER config_loads_no_update BEFORE UPDATE ON config_loads
FOR EACH ROW EXECUTE FUNCTION audit_refuse('config_loads are kept as written: a correction is a new version');
CREATE TRIGGER config_loads_no_delete BEFORE DELETE ON config_loads
FOR EACH ROW EXECUTE FUNCTION audit_refuse('config_loads are never deleted');

CREATE FUNCTION audit_records_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF TRUE THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE(NEW.source, 'unknown'), 'record stored', 'record', NEW.record_key,
                jsonb_build_object('seq', NEW.seq, 'subject', NEW.subject, 'content_hash', NEW.content_hash, 'received_at', NEW.received_at)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_records_insert AFTER INSERT ON records FOR EACH ROW EXECUTE FUNCTION audit_records_insert();

CREATE FUNCTION audit_adverse_event_versions_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF TRUE THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE((SELECT source FROM records WHERE seq = NEW.record_seq), 'unknown'), 'adverse event version', 'adverse_event', NEW.subject || '/' || NEW.ae_id,
                jsonb_build_object('version', NEW.version, 'grade', NEW.grade, 'serious', NEW.serious, 'record_seq', NEW.record_seq, 'content_hash', NEW.content_hash)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_adverse_event_versions_insert AFTER INSERT ON adverse_event_versions FOR EACH ROW EXECUTE FUNCTION audit_adverse_event_versions_insert();

CREATE FUNCTION audit_quarantine_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF TRUE THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE(NEW.source, 'unknown'), 'record quarantined', 'quarantine', NEW.entry_key,
                jsonb_build_object('line', NEW.line, 'field', NEW.field, 'reason', NEW.reason)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_quarantine_insert AFTER INSERT ON quarantine FOR EACH ROW EXECUTE FUNCTION audit_quarantine_insert();

CREATE FUNCTION audit_alerts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF TRUE THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE('vigil', 'unknown'), 'alert raised', 'alert', NEW.id::TEXT,
                jsonb_build_object('rule_id', NEW.rule_id, 'rule_version', NEW.rule_version, 'subject', NEW.subject, 'episode', NEW.episode, 'level', NEW.level, 'severity', NEW.severity, 'status', NEW.status)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_alerts_insert AFTER INSERT ON alerts FOR EACH ROW EXECUTE FUNCTION audit_alerts_insert();

CREATE FUNCTION audit_alerts_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF (OLD.status IS DISTINCT FROM NEW.status OR OLD.escalation_step IS DISTINCT FROM NEW.escalation_step OR OLD.silence_id IS DISTINCT FROM NEW.silence_id) THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE('vigil', 'unknown'), 'alert changed', 'alert', NEW.id::TEXT,
                jsonb_build_object('from', OLD.status, 'to', NEW.status, 'escalation_step', NEW.escalation_step, 'silence_id', NEW.silence_id)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_alerts_update AFTER UPDATE ON alerts FOR EACH ROW EXECUTE FUNCTION audit_alerts_update();

CREATE FUNCTION audit_alert_events_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF TRUE THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE(NEW.actor, 'unknown'), NEW.action, 'alert', NEW.alert_id::TEXT,
                jsonb_build_object('event_id', NEW.id, 'comment', NEW.comment, 'signature_id', NEW.signature_id)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_alert_events_insert AFTER INSERT ON alert_events FOR EACH ROW EXECUTE FUNCTION audit_alert_events_insert();

CREATE FUNCTION audit_notifications_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF TRUE THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE('vigil', 'unknown'), 'notification queued', 'notification', NEW.id::TEXT,
                jsonb_build_object('kind', NEW.kind, 'alert_id', NEW.alert_id, 'report_id', NEW.report_id, 'role', NEW.role, 'recipient', NEW.recipient, 'message_id', NEW.message_id, 'status', NEW.status)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_notifications_insert AFTER INSERT ON notifications FOR EACH ROW EXECUTE FUNCTION audit_notifications_insert();

CREATE FUNCTION audit_notifications_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF (OLD.status IS DISTINCT FROM NEW.status) THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE('vigil', 'unknown'), 'notification ' || NEW.status, 'notification', NEW.id::TEXT,
                jsonb_build_object('from', OLD.status, 'attempts', NEW.attempts, 'last_error', NEW.last_error, 'message_id', NEW.message_id)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_notifications_update AFTER UPDATE ON notifications FOR EACH ROW EXECUTE FUNCTION audit_notifications_update();

CREATE FUNCTION audit_silences_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF TRUE THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE(NEW.created_by, 'unknown'), 'silence created', 'silence', NEW.id::TEXT,
                jsonb_build_object('rule_id', NEW.rule_id, 'subject', NEW.subject, 'site', NEW.site, 'expires_at', NEW.expires_at, 'comment', NEW.comment)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_silences_insert AFTER INSERT ON silences FOR EACH ROW EXECUTE FUNCTION audit_silences_insert();

CREATE FUNCTION audit_silences_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF (OLD.ended_at IS DISTINCT FROM NEW.ended_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at) THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE(COALESCE(NEW.ended_by, 'vigil'), 'unknown'), 'silence ended', 'silence', NEW.id::TEXT,
                jsonb_build_object('ended_at', NEW.ended_at, 'expires_at', NEW.expires_at, 'signature_id', NEW.signature_id)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_silences_update AFTER UPDATE ON silences FOR EACH ROW EXECUTE FUNCTION audit_silences_update();

CREATE FUNCTION audit_reports_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF TRUE THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE('vigil', 'unknown'), 'report generated', 'report', NEW.id::TEXT,
                jsonb_build_object('kind', NEW.kind, 'as_of', NEW.as_of, 'reason', NEW.reason, 'path', NEW.path, 'sha256', NEW.sha256)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_reports_insert AFTER INSERT ON reports FOR EACH ROW EXECUTE FUNCTION audit_reports_insert();

CREATE FUNCTION audit_reports_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF (OLD.released_at IS DISTINCT FROM NEW.released_at) THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE(COALESCE(NEW.released_by, 'vigil'), 'unknown'), 'report released', 'report', NEW.id::TEXT,
                jsonb_build_object('released_at', NEW.released_at, 'signature_id', NEW.signature_id, 'sha256', NEW.sha256)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_reports_update AFTER UPDATE ON reports FOR EACH ROW EXECUTE FUNCTION audit_reports_update();

CREATE FUNCTION audit_config_loads_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF TRUE THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE(NEW.actor, 'unknown'), 'configuration ' || NEW.outcome, 'configuration', NEW.id::TEXT,
                jsonb_build_object('detail', (NEW.detail)::jsonb)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_config_loads_insert AFTER INSERT ON config_loads FOR EACH ROW EXECUTE FUNCTION audit_config_loads_insert();

CREATE FUNCTION audit_users_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF TRUE THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE(NEW.created_by, 'unknown'), 'user created', 'user', NEW.id,
                jsonb_build_object('name', NEW.name, 'email', NEW.email, 'roles', (NEW.roles)::jsonb)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_users_insert AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION audit_users_insert();

CREATE FUNCTION audit_users_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF (OLD.name IS DISTINCT FROM NEW.name OR OLD.email IS DISTINCT FROM NEW.email OR OLD.roles IS DISTINCT FROM NEW.roles OR OLD.password_hash IS DISTINCT FROM NEW.password_hash OR OLD.disabled_at IS DISTINCT FROM NEW.disabled_at OR OLD.locked_at IS DISTINCT FROM NEW.locked_at) THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE(COALESCE(NEW.updated_by, 'vigil'), 'unknown'), 'user changed', 'user', NEW.id,
                jsonb_build_object('name', NEW.name, 'email', NEW.email, 'roles', (NEW.roles)::jsonb, 'password_changed', CASE WHEN OLD.password_hash IS DISTINCT FROM NEW.password_hash THEN 1 ELSE 0 END, 'disabled_at', NEW.disabled_at, 'locked_at', NEW.locked_at)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_users_update AFTER UPDATE ON users FOR EACH ROW EXECUTE FUNCTION audit_users_update();

CREATE FUNCTION audit_api_tokens_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF TRUE THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE(NEW.created_by, 'unknown'), 'token created', 'token', NEW.id::TEXT,
                jsonb_build_object('user_id', NEW.user_id, 'name', NEW.name, 'scopes', NEW.scopes)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_api_tokens_insert AFTER INSERT ON api_tokens FOR EACH ROW EXECUTE FUNCTION audit_api_tokens_insert();

CREATE FUNCTION audit_api_tokens_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at) THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE(COALESCE(NEW.revoked_by, 'vigil'), 'unknown'), 'token revoked', 'token', NEW.id::TEXT,
                jsonb_build_object('user_id', NEW.user_id, 'name', NEW.name)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_api_tokens_update AFTER UPDATE ON api_tokens FOR EACH ROW EXECUTE FUNCTION audit_api_tokens_update();

CREATE FUNCTION audit_signatures_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_paused) THEN RETURN NULL; END IF;
    IF TRUE THEN
        INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)
        VALUES ((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT, COALESCE('user:' || NEW.user_id, 'unknown'), 'signed', 'signature', NEW.id::TEXT,
                jsonb_build_object('printed_name', NEW.printed_name, 'meaning', NEW.meaning, 'action', NEW.action, 'entity', NEW.entity, 'entity_id', NEW.entity_id, 'content_hash', NEW.content_hash, 'signed_at', NEW.signed_at)::TEXT);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_signatures_insert AFTER INSERT ON signatures FOR EACH ROW EXECUTE FUNCTION audit_signatures_insert();
