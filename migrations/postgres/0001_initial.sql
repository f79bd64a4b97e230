-- Every record as received (canonical JSON), keyed for idempotent delivery.
CREATE TABLE records (
    seq          BIGSERIAL PRIMARY KEY,
    record_key   TEXT    NOT NULL UNIQUE,
    content_hash TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    received_at  BIGINT  NOT NULL,
    body         TEXT    NOT NULL
);
CREATE INDEX records_by_subject ON records (subject, seq);

-- Each distinct version of an adverse event (same CRF id, changed content); nothing overwritten.
CREATE TABLE adverse_event_versions (
    subject      TEXT   NOT NULL,
    ae_id        TEXT   NOT NULL,
    version      BIGINT NOT NULL,
    record_seq   BIGINT NOT NULL REFERENCES records (seq),
    content_hash TEXT   NOT NULL,
    grade        BIGINT,
    serious      BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (subject, ae_id, version)
);

-- Lines that could not be read, with the reason; kept, never dropped.
CREATE TABLE quarantine (
    id          BIGSERIAL PRIMARY KEY,
    entry_key   TEXT   NOT NULL UNIQUE,
    source      TEXT   NOT NULL,
    line        BIGINT NOT NULL,
    field       TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    raw         TEXT   NOT NULL,
    received_at BIGINT NOT NULL
);

-- Subjects whose history changed and must be evaluated (written with the records):
-- up_to_seq is the newest record seq; an evaluation clears the row only up to what it saw.
CREATE TABLE pending_evaluation (
    subject   TEXT   PRIMARY KEY,
    up_to_seq BIGINT NOT NULL
);

CREATE TABLE alerts (
    id           BIGSERIAL PRIMARY KEY,
    rule_id      TEXT   NOT NULL,
    rule_version TEXT   NOT NULL,
    subject      TEXT   NOT NULL,
    site         TEXT,
    episode      TEXT   NOT NULL,
    level        BIGINT NOT NULL,
    severity     TEXT   NOT NULL,
    title        TEXT   NOT NULL,
    summary      TEXT   NOT NULL,
    evidence     TEXT   NOT NULL,
    status       TEXT   NOT NULL,
    raised_at    BIGINT NOT NULL,
    UNIQUE (rule_id, subject, episode, level)
);

-- Who did what to an alert, and when.
CREATE TABLE alert_events (
    id       BIGSERIAL PRIMARY KEY,
    alert_id BIGINT NOT NULL REFERENCES alerts (id),
    at       BIGINT NOT NULL,
    actor    TEXT   NOT NULL,
    action   TEXT   NOT NULL,
    comment  TEXT
);

-- The email outbox: written in the same transaction as the alert.
CREATE TABLE notifications (
    id              BIGSERIAL PRIMARY KEY,
    alert_id        BIGINT NOT NULL REFERENCES alerts (id),
    role            TEXT   NOT NULL,
    recipient       TEXT   NOT NULL,
    blinded         BIGINT NOT NULL,
    message_id      TEXT   NOT NULL UNIQUE,
    status          TEXT   NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    sent_at         BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
