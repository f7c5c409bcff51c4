-- The NOTIFY channel of this deployment: a name drawn at random, that
-- only wasmq's own role can read. PostgreSQL lets any role connected to
-- the database LISTEN on any channel, with no privilege to check, and the
-- events name jobs, channels and tenants: under a name derived from the
-- schema, a tenant's SQL role (docs/sql.md) could listen to every
-- tenant's. The name is in no function's source (the SQL enqueue reads
-- it here, as its owner) and in no statement another role can see.
CREATE TABLE event_channel (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    name text NOT NULL
);
-- gen_random_uuid draws from the server's strong random source.
INSERT INTO event_channel (name) SELECT 'wasmq_' || replace(gen_random_uuid()::text, '-', '');
