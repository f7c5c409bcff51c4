CREATE SEQUENCE job_version;

CREATE TABLE jobs (
    seq            bigserial PRIMARY KEY,
    uuid           text        NOT NULL UNIQUE,
    tenant         text        NOT NULL,
    func           text        NOT NULL,
    -- json, not jsonb: a plugin's input and output keep their bytes.
    args           json        NOT NULL,
    kwargs         json        NOT NULL,
    context        json        NOT NULL,
    user_id        text        NOT NULL DEFAULT '',
    model_name     text        NOT NULL DEFAULT '',
    func_string    text        NOT NULL DEFAULT '',
    description    text        NOT NULL DEFAULT '',
    channel        text        NOT NULL,
    priority       integer     NOT NULL,
    eta            timestamptz,
    expected_at    timestamptz,
    max_retries    integer     NOT NULL,
    retry          integer     NOT NULL DEFAULT 0,
    attempt        integer     NOT NULL DEFAULT 0,
    identity_key   text        NOT NULL DEFAULT '',
    graph_uuid     text        NOT NULL DEFAULT '',
    state          text        NOT NULL,
    result         json,
    exc_name       text        NOT NULL DEFAULT '',
    exc_message    text        NOT NULL DEFAULT '',
    exc_info       text        NOT NULL DEFAULT '',
    date_created   timestamptz NOT NULL,
    date_enqueued  timestamptz,
    date_started   timestamptz,
    date_done      timestamptz,
    date_cancelled timestamptz,
    exec_time      double precision,
    late           boolean     NOT NULL DEFAULT false,
    worker_id      text        NOT NULL DEFAULT '',
    plugin_sha256  text        NOT NULL DEFAULT '',
    lease_until    timestamptz,
    version        bigint      NOT NULL DEFAULT nextval('job_version')
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
    child  text NOT NULL,
    parent text NOT NULL,
    PRIMARY KEY (child, parent)
);
CREATE INDEX job_dependencies_parent ON job_dependencies (parent);

CREATE TABLE job_attempts (
    job_uuid      text        NOT NULL,
    attempt       integer     NOT NULL,
    worker_id     text        NOT NULL,
    plugin_sha256 text        NOT NULL DEFAULT '',
    started       timestamptz NOT NULL,
    ended         timestamptz,
    outcome       text        NOT NULL DEFAULT '',
    exc_name      text        NOT NULL DEFAULT '',
    exc_message   text        NOT NULL DEFAULT '',
    logs          json        NOT NULL DEFAULT '[]',
    PRIMARY KEY (job_uuid, attempt)
);
