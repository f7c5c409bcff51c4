-- What attempts used (abi.Usage), as JSON: the last attempt's on the job
-- row, each recorded attempt's on its row.
ALTER TABLE jobs ADD COLUMN usage TEXT;
ALTER TABLE job_attempts ADD COLUMN usage TEXT;

-- The usage aggregate per tenant, function and minute (Unix seconds of
-- the minute's start), which job vacuum does not touch.
CREATE TABLE usage_minutes (
    tenant         TEXT    NOT NULL,
    minute         INTEGER NOT NULL,
    func           TEXT    NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    fuel           INTEGER NOT NULL DEFAULT 0,
    wall_ms        INTEGER NOT NULL DEFAULT 0,
    peak_memory    INTEGER NOT NULL DEFAULT 0,
    host_calls     INTEGER NOT NULL DEFAULT 0,
    http_requests  INTEGER NOT NULL DEFAULT 0,
    http_bytes_out INTEGER NOT NULL DEFAULT 0,
    http_bytes_in  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, minute, func)
) WITHOUT ROWID;
CREATE INDEX usage_minutes_minute ON usage_minutes (minute);
