-- Periodic jobs (docs/schedules.md). One row per schedule; the leader fires
-- a due time by moving `anchor` to it in the transaction that inserts the
-- job, under the row's lock, only if the due time is after the anchor: a
-- due time fires once whichever node, however often it is tried.
CREATE TABLE schedules (
    tenant       text COLLATE "C" NOT NULL,
    name         text COLLATE "C" NOT NULL,
    cron         text NOT NULL,
    timezone     text NOT NULL,
    -- json, not jsonb: the template keeps its bytes, as a job's args do.
    template     json NOT NULL,
    missed_runs  text NOT NULL,
    catch_up_max integer NOT NULL,
    paused       boolean NOT NULL,
    source       text NOT NULL,
    version      bigint NOT NULL,
    anchor       timestamptz NOT NULL,
    last_job     text NOT NULL DEFAULT '',
    last_fired   timestamptz,
    date_created timestamptz NOT NULL,
    date_updated timestamptz NOT NULL,
    PRIMARY KEY (tenant, name)
);
