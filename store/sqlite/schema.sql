CREATE TABLE jobs (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid           TEXT    NOT NULL UNIQUE,
    tenant         TEXT    NOT NULL,
    func           TEXT    NOT NULL,
    args           TEXT    NOT NULL,
    kwargs         TEXT    NOT NULL,
    context        TEXT    NOT NULL,
    user_id        TEXT    NOT NULL DEFAULT '',
    model_name     TEXT    NOT NULL DEFAULT '',
    func_string    TEXT    NOT NULL DEFAULT '',
    description    TEXT    NOT NULL DEFAULT '',
    channel        TEXT    NOT NULL,
    priority       INTEGER NOT NULL,
    eta            INTEGER,
    expected_at    INTEGER,
    max_retries    INTEGER NOT NULL,
    retry          INTEGER NOT NULL DEFAULT 0,
    attempt        INTEGER NOT NULL DEFAULT 0,
    identity_key   TEXT    NOT NULL DEFAULT '',
    graph_uuid     TEXT    NOT NULL DEFAULT '',
    state          TEXT    NOT NULL,
    result         TEXT,
    exc_name       TEXT    NOT NULL DEFAULT '',
    exc_message    TEXT    NOT NULL DEFAULT '',
    exc_info       TEXT    NOT NULL DEFAULT '',
    date_created   INTEGER NOT NULL,
    date_enqueued  INTEGER,
    date_started   INTEGER,
    date_done      INTEGER,
    date_cancelled INTEGER,
    exec_time      REAL,
    late           INTEGER NOT NULL DEFAULT 0,
    worker_id      TEXT    NOT NULL DEFAULT '',
    plugin_sha256  TEXT    NOT NULL DEFAULT '',
    lease_until    INTEGER,
    version        INTEGER NOT NULL
);
-- Identity-key dedup is a constraint, not a check-then-insert.
CREATE UNIQUE INDEX jobs_identity ON jobs (tenant, identity_key)
    WHERE identity_key <> '' AND state IN ('wait_dependencies', 'pending', 'enqueued');
CREATE INDEX jobs_pending_version ON jobs (version) WHERE state = 'pending';
CREATE INDEX jobs_enqueued_order ON jobs (priority, expected_at, date_created, seq) WHERE state = 'enqueued';
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state IN ('enqueued', 'started');
CREATE INDEX jobs_worker ON jobs (worker_id) WHERE state = 'started';
CREATE INDEX jobs_newest ON jobs (date_created DESC, seq DESC);
CREATE INDEX jobs_tenant_newest ON jobs (tenant, date_created DESC, seq DESC);
CREATE INDEX jobs_state_channel ON jobs (state, channel);
CREATE INDEX jobs_graph ON jobs (graph_uuid) WHERE graph_uuid <> '';

CREATE TABLE job_dependencies (
    child  TEXT NOT NULL,
    parent TEXT NOT NULL,
    PRIMARY KEY (child, parent)
);
CREATE INDEX job_dependencies_parent ON job_dependencies (parent);

CREATE TABLE job_attempts (
    job_uuid      TEXT    NOT NULL,
    attempt       INTEGER NOT NULL,
    worker_id     TEXT    NOT NULL,
    plugin_sha256 TEXT    NOT NULL DEFAULT '',
    started       INTEGER NOT NULL,
    ended         INTEGER,
    outcome       TEXT    NOT NULL DEFAULT '',
    exc_name      TEXT    NOT NULL DEFAULT '',
    exc_message   TEXT    NOT NULL DEFAULT '',
    logs          TEXT    NOT NULL DEFAULT '[]',
    PRIMARY KEY (job_uuid, attempt)
);
