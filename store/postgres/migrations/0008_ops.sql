-- Operating a live queue (docs/channels.md, docs/api.md).

-- Channel overrides: what an operator changed at run time (pause,
-- capacity, throttle), over the configuration, on every node and across
-- restarts. A NULL column keeps the configured value.
CREATE TABLE channel_overrides (
    channel  text PRIMARY KEY,
    paused   boolean,
    capacity integer,
    throttle double precision,
    updated  timestamptz NOT NULL DEFAULT now()
);

-- The job list's filters on columns that never change after insert (so
-- the hot path's updates stay HOT): by user or model, newest first, and
-- by a value inside args or kwargs (jsonb containment). Without them a
-- filter matching few jobs read every job of the tenant.
CREATE INDEX jobs_user ON jobs (tenant, user_id, date_created DESC, seq DESC) WHERE user_id <> '';
CREATE INDEX jobs_model ON jobs (tenant, model_name, date_created DESC, seq DESC) WHERE model_name <> '';
CREATE INDEX jobs_args ON jobs USING gin ((args::jsonb) jsonb_path_ops);
CREATE INDEX jobs_kwargs ON jobs USING gin ((kwargs::jsonb) jsonb_path_ops);

-- A running job's latest progress (wasmq_progress_v1), at most one write
-- per job per second, kept beside the job so the job row's hot updates
-- stay as they were; deleted with its job.
CREATE TABLE job_progress (
    job_uuid text PRIMARY KEY REFERENCES jobs (uuid) ON DELETE CASCADE,
    percent  smallint NOT NULL,
    message  text NOT NULL,
    updated  timestamptz NOT NULL
);
