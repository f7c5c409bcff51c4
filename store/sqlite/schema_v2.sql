-- A job that comes back to pending (retry, dead worker, requeue) while a
-- newer job holds its identity key must not fail on a unique index. Inserts
-- are serialised by the store's write mutex and the file lock, so the
-- check-then-insert in Insert is atomic without one.
DROP INDEX jobs_identity;
CREATE INDEX jobs_identity ON jobs (tenant, identity_key)
    WHERE identity_key <> '' AND state IN ('wait_dependencies', 'pending', 'enqueued');

-- Claim orders by (priority, expected_at NULLS LAST, date_created, seq);
-- SQLite sorts NULLs first, so the order is spelt with `expected_at IS
-- NULL`, and only an index on that same expression saves a sort of every
-- enqueued job on each claim.
DROP INDEX jobs_enqueued_order;
CREATE INDEX jobs_enqueued_order ON jobs (priority, expected_at IS NULL, expected_at, date_created, seq)
    WHERE state = 'enqueued';
