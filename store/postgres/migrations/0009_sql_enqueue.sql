-- Enqueueing from SQL, inside the application's own transaction
-- (docs/sql.md). The functions themselves (enqueue, enqueue_batch,
-- functions) are not in this file: wasmq installs them whenever it
-- migrates, with the limits of the binary that installs them, so the SQL
-- rules cannot drift from the Go ones (store/postgres/sqlenqueue.go).
-- Nothing here touches jobs or the statements of the hot path.

-- The plugin registry each node publishes: one row per node and module,
-- with each export's defaults, so that an unknown module.function is
-- refused at insert time.
CREATE TABLE plugin_registry (
    node      text COLLATE "C" NOT NULL,
    tenant    text COLLATE "C" NOT NULL, -- '' = shared
    module    text COLLATE "C" NOT NULL,
    -- false: the file was refused (its functions are unknown, as over HTTP)
    loaded    boolean NOT NULL,
    -- {"export": {"channel": "...", "max_retries": n, "description": "..."}}
    functions jsonb NOT NULL,
    published timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node, tenant, module)
);
CREATE INDEX plugin_registry_module ON plugin_registry (module, tenant);

-- Which PostgreSQL role enqueues for which tenant ([[tenants]] sql_roles,
-- applied by `wasmq migrate` and at node start).
CREATE TABLE sql_roles (
    role   text COLLATE "C" PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL
);

-- The quotas SQL enqueues obey ([[tenants]] max_pending, max_channels;
-- 0 = none).
CREATE TABLE sql_tenant_limits (
    tenant       text COLLATE "C" PRIMARY KEY,
    max_pending  integer NOT NULL,
    max_channels integer NOT NULL DEFAULT 0
);
