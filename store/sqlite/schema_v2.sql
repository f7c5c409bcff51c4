-- A job that comes back to pending (retry, dead worker, requeue) while a
-- newer job holds its identity key must not fail on a unique index. Inserts
-- are serialised by the store's write mutex and the file lock, so the
-- check-then-insert in Insert is atomic without one.
DROP INDEX jobs_identity;
CREATE INDEX jobs_identity ON jobs (tenant, identity_key)
    WHERE identity_key <> '' AND state IN ('wait_dependencies', 'pending', 'enqueued');
