-- The newest-first indexes in ascending order. A list reads them
-- backwards just as fast, but an insert now lands at the right end of
-- each (date_created and seq only grow), where PostgreSQL appends to the
-- last leaf without a descent and splits it leaving full pages; in
-- descending order every insert landed on the first leaf, split it in
-- half and made concurrent inserts wait on that one page. A 1,000-row
-- insert of pending jobs, two clients: 79–89k rows/s before, 92–96k
-- after (docs/benchmarks.md). Rebuilding them locks jobs against writes
-- for the time of the build: on a large table run `wasmq migrate` in a
-- quiet minute.
DROP INDEX jobs_newest;
CREATE INDEX jobs_newest ON jobs (date_created, seq);
DROP INDEX jobs_tenant_newest;
CREATE INDEX jobs_tenant_newest ON jobs (tenant, date_created, seq);
DROP INDEX jobs_user;
CREATE INDEX jobs_user ON jobs (tenant, user_id, date_created, seq) WHERE user_id <> '';
DROP INDEX jobs_model;
CREATE INDEX jobs_model ON jobs (tenant, model_name, date_created, seq) WHERE model_name <> '';
