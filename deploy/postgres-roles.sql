-- The daemon's PostgreSQL role, without the power to change or remove the audit trail.
--
-- Run once per database as its owner (or a superuser), after `vigil migrate` has created the
-- tables as the owner:
--   psql "postgres://owner@db/trial" -v app=vigil_app -f deploy/postgres-roles.sql
-- then run `vigil run` as :app with `migrate_at_start: false` (migrations stay a deployment
-- step done as the owner). The app role does not own the tables, so it cannot drop or
-- disable their triggers; it may not UPDATE, DELETE or TRUNCATE the audit trail or the
-- records kept as written; it may only seal an audit entry (set pos, prev_hash and hash,
-- which the trigger allows once per entry).
\set ON_ERROR_STOP on
SELECT format('CREATE ROLE %I LOGIN', :'app')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'app') \gexec
GRANT USAGE ON SCHEMA public TO :"app";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO :"app";
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, records, adverse_event_versions, alert_events,
    signatures, config_loads FROM :"app";
GRANT UPDATE (pos, prev_hash, hash) ON audit_log TO :"app";
-- The migrator's own table: the app checks it (migrate_at_start: false) but never writes it.
REVOKE INSERT, UPDATE, DELETE ON _sqlx_migrations FROM :"app";
