-- Counts by (tenant, channel, state) answer the channel page, the metrics,
-- the vacuum's choice of channels and each enqueue under a max_pending
-- quota. A GROUP BY over jobs took 300 ms at a million rows, and no index
-- may cover the state (0005). So every statement that adds, moves or
-- deletes jobs also appends what it changed to job_count_deltas: a few
-- rows per statement whatever its size, and no row shared between
-- writers, so none waits on another. The leader folds the deltas into
-- job_counts every few seconds; Counts reads both.
--
-- Statement-level triggers with transition tables would keep the counts
-- by construction, but copying every updated row twice cost about 5 % of
-- the runner's throughput; the store's own statements write their deltas
-- instead, and the tests compare Counts with the jobs after every
-- conformance case.
CREATE TABLE job_counts (
    tenant  text COLLATE "C" NOT NULL,
    channel text COLLATE "C" NOT NULL,
    state   text NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (tenant, channel, state)
);

CREATE TABLE job_count_deltas (
    tenant  text COLLATE "C" NOT NULL,
    channel text COLLATE "C" NOT NULL,
    state   text NOT NULL,
    n       bigint NOT NULL
);

-- No write between the count and the commit of this migration.
LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO job_counts SELECT tenant, channel, state, COUNT(*) FROM jobs GROUP BY 1, 2, 3;
