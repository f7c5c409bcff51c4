-- The newest-first indexes in ascending order. A list reads them
-- backwards just as fast, but an insert now lands at the right end of
-- each (date_created and seq only grow), where SQLite appends to the last
-- leaf and leaves full pages; in descending order every insert landed on
-- the first leaf and split it in half. 200,000 rows with two such
-- indexes, 1,000 a transaction: 105–110k rows/s and 24,001 pages before,
-- 115–123k rows/s and 20,833 pages after (docs/benchmarks.md).
DROP INDEX jobs_newest;
CREATE INDEX jobs_newest ON jobs (date_created, seq);
DROP INDEX jobs_tenant_newest;
CREATE INDEX jobs_tenant_newest ON jobs (tenant, date_created, seq);
DROP INDEX jobs_user;
CREATE INDEX jobs_user ON jobs (tenant, user_id, date_created, seq) WHERE user_id <> '';
DROP INDEX jobs_model;
CREATE INDEX jobs_model ON jobs (tenant, model_name, date_created, seq) WHERE model_name <> '';
