-- Generated DSMB reports (the archive) and their deliveries (a second outbox: reports are
-- attachments, not alerts).
CREATE TABLE reports (
    id           BIGSERIAL PRIMARY KEY,
    kind         TEXT   NOT NULL,
    as_of        BIGINT NOT NULL,
    generated_at BIGINT NOT NULL,
    -- schedule:<cron>, trigger:<what>, manual
    reason       TEXT   NOT NULL,
    snapshot     TEXT   NOT NULL,
    path         TEXT   NOT NULL,
    sha256       TEXT   NOT NULL
);

CREATE TABLE report_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    report_id       BIGINT NOT NULL REFERENCES reports (id),
    role            TEXT   NOT NULL,
    recipient       TEXT   NOT NULL,
    message_id      TEXT   NOT NULL UNIQUE,
    status          TEXT   NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    sent_at         BIGINT
);
