-- Every start and every outcome rewrites the job row and, since its state
-- changes, adds an entry to each index of the table. Three indexes the hot
-- path paid for without using:
-- * jobs_worker served only the lease renewal, twice a lease; jobs_leased
--   serves it as well.
-- * The primary key on seq: jobs are found by uuid, listed by
--   (date_created, seq) through jobs_newest. uuid becomes the key.
-- * jobs_state_channel served the per-channel counts, which read every
--   job anyway, and the failed-channel check, which gets its own partial
--   index (failed jobs are few and rarely change).
DROP INDEX IF EXISTS jobs_worker;
DROP INDEX IF EXISTS jobs_state_channel;
ALTER TABLE jobs DROP CONSTRAINT jobs_pkey;
ALTER TABLE jobs DROP CONSTRAINT jobs_uuid_key, ADD PRIMARY KEY (uuid);
CREATE INDEX jobs_failed ON jobs (channel) WHERE state = 'failed';
