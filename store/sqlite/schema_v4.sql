-- Periodic jobs (docs/schedules.md). One row per schedule; the leader fires
-- a due time by moving `anchor` to it in the transaction that inserts the
-- job, only if the due time is after the anchor: a due time fires once,
-- however often it is tried. Dates are microseconds since the epoch.
CREATE TABLE schedules (
    tenant       TEXT NOT NULL,
    name         TEXT NOT NULL,
    cron         TEXT NOT NULL,
    timezone     TEXT NOT NULL,
    template     TEXT NOT NULL,
    missed_runs  TEXT NOT NULL,
    catch_up_max INTEGER NOT NULL,
    paused       INTEGER NOT NULL,
    source       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    anchor       INTEGER NOT NULL,
    last_job     TEXT NOT NULL DEFAULT '',
    last_fired   INTEGER,
    date_created INTEGER NOT NULL,
    date_updated INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;
