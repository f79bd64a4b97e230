-- Console sessions: a browser signed in as a person. Only the SHA-256 of the cookie is
-- kept; a session ends at sign-out or after `console.session_idle` without a request.
-- Sign-in and sign-out are audit entries (written by the console); the rows change on every
-- request (last_seen_at), so they carry no trigger of their own.
CREATE TABLE console_sessions (
    digest       TEXT   PRIMARY KEY,
    user_id      TEXT   NOT NULL REFERENCES users (id),
    -- The token every form of this session carries (CSRF).
    csrf         TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    ended_at     BIGINT,
    -- Set at the first signature of the session: later ones ask for the password only
    -- (21 CFR Part 11 §11.200(a)(1)(i)).
    signed_at    BIGINT
);
CREATE INDEX console_sessions_by_user ON console_sessions (user_id);

-- The console's inbox filters by rule (and orders by time within it).
CREATE INDEX alerts_by_rule ON alerts (rule_id, raised_at);
