-- A job that comes back to pending (retry, dead worker, requeue) while a
-- newer job holds its identity key must not fail on the unique index: it
-- re-enters without holding the key (key_holder = false). Dedup on insert
-- still sees it through jobs_identity_active.
ALTER TABLE jobs ADD COLUMN key_holder boolean NOT NULL DEFAULT true;
DROP INDEX jobs_identity;
CREATE UNIQUE INDEX jobs_identity ON jobs (tenant, identity_key)
    WHERE identity_key <> '' AND key_holder AND state IN ('wait_dependencies', 'pending', 'enqueued');
CREATE INDEX jobs_identity_active ON jobs (tenant, identity_key)
    WHERE identity_key <> '' AND state IN ('wait_dependencies', 'pending', 'enqueued');
