-- Operating a live queue (docs/channels.md, docs/api.md).

-- Channel overrides: what an operator changed at run time (pause,
-- capacity, throttle), over the configuration, across restarts. A NULL
-- column keeps the configured value.
CREATE TABLE channel_overrides (
    channel  TEXT PRIMARY KEY,
    paused   INTEGER,
    capacity INTEGER,
    throttle REAL,
    updated  INTEGER NOT NULL
) WITHOUT ROWID;

-- The job list's filters by user or model, newest first. (A value inside
-- args or kwargs is matched with json_each, row by row: SQLite has no
-- index for it; the other filters bound the rows read.)
CREATE INDEX jobs_user ON jobs (tenant, user_id, date_created DESC, seq DESC) WHERE user_id <> '';
CREATE INDEX jobs_model ON jobs (tenant, model_name, date_created DESC, seq DESC) WHERE model_name <> '';

-- A running job's latest progress (wasmq_progress_v1), at most one write
-- per job per second; the vacuum deletes it with its job.
CREATE TABLE job_progress (
    job_uuid TEXT PRIMARY KEY,
    percent  INTEGER NOT NULL,
    message  TEXT NOT NULL,
    updated  INTEGER NOT NULL
) WITHOUT ROWID;
