-- Every time the configuration and rules were loaded (at start, on SIGHUP, through the
-- API), by whom, and what came of it: the files with their SHA-256 when applied, every
-- problem when refused. What ran when is part of a safety decision's record.
CREATE TABLE config_loads (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    loaded_at BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    outcome   TEXT   NOT NULL,
    detail    TEXT   NOT NULL
);
