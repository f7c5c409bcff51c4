-- A job row is written when it starts and when it ends. While an index of
-- jobs mentioned its state (the partial indexes on pending, enqueued,
-- leased, failed and identity-keyed jobs), each of those writes was a
-- non-HOT update: a new row version on another page and an entry in every
-- index of the table. Now no index of jobs covers a column that a start or
-- a successful outcome changes, so those updates stay on their page (HOT)
-- and write no index entry. What the partial indexes answered comes from
-- elsewhere:
-- * pending jobs by version: pending_log, a row with the scheduler's
--   columns each time a job becomes pending (or changes while pending),
--   deleted when it starts, is handed out or changes (a row missed is
--   harmless: the scheduler's start of it does not apply; the reaper
--   trims those);
-- * started jobs and their leases: job_runs, one row per batch a node
--   starts, holding the batch's uuids and the lease it renews;
-- * jobs handed to any node (enqueued) and failed jobs: flags that change
--   only on those rarer paths, each with its partial index;
-- * identity-key dedup: an index on the key (which never changes) and a
--   transaction-scoped advisory lock per key while inserting.
CREATE TABLE pending_log (
    version      bigint PRIMARY KEY,
    uuid         text COLLATE "C" NOT NULL,
    tenant       text COLLATE "C" NOT NULL,
    channel      text COLLATE "C" NOT NULL,
    priority     integer     NOT NULL,
    eta          timestamptz,
    expected_at  timestamptz,
    date_created timestamptz NOT NULL,
    seq          bigint      NOT NULL
);
INSERT INTO pending_log (version, uuid, tenant, channel, priority, eta, expected_at, date_created, seq)
SELECT version, uuid, tenant, channel, priority, eta, expected_at, date_created, seq FROM jobs WHERE state = 'pending';

CREATE TABLE job_runs (
    id          bigserial PRIMARY KEY,
    worker_id   text COLLATE "C" NOT NULL,
    lease_until timestamptz NOT NULL,
    -- started jobs of the batch not yet ended; the row goes at zero
    remaining   integer NOT NULL,
    uuids       text[] COLLATE "C" NOT NULL
);

ALTER TABLE jobs
    ADD COLUMN run_id bigint,
    ADD COLUMN handed boolean NOT NULL DEFAULT false,
    ADD COLUMN failed boolean NOT NULL DEFAULT false;

INSERT INTO job_runs (worker_id, lease_until, remaining, uuids)
SELECT worker_id, COALESCE(MAX(lease_until), now()), COUNT(*), array_agg(uuid)
FROM jobs WHERE state = 'started' GROUP BY worker_id;
UPDATE jobs j SET run_id = r.id FROM job_runs r WHERE j.state = 'started' AND j.worker_id = r.worker_id;
UPDATE jobs SET handed = true WHERE state = 'enqueued';
UPDATE jobs SET failed = true WHERE state = 'failed';

DROP INDEX jobs_identity;
DROP INDEX jobs_identity_active;
DROP INDEX jobs_pending_version;
DROP INDEX jobs_enqueued_order;
DROP INDEX jobs_leased;
DROP INDEX jobs_failed;
ALTER TABLE jobs DROP COLUMN key_holder;

CREATE INDEX jobs_identity ON jobs (tenant, identity_key) WHERE identity_key <> '';
CREATE INDEX jobs_handed ON jobs (priority, expected_at, date_created, seq) WHERE handed;
CREATE INDEX jobs_failed ON jobs (channel) WHERE failed;
-- Room on each page for the start's and the outcome's row versions.
ALTER TABLE jobs SET (fillfactor = 50);
