-- A node's liveness, apart from its leases: each worker (node_id and
-- incarnation) holds a shared advisory lock (class 0x776c76, key
-- lock_key) on a connection of its own for as long as it runs. A process
-- that dies ends its session and so lets go at once; the leader reads
-- pg_locks for the workers listed here and takes their jobs back within
-- seconds, not when their leases lapse. A worker is listed only once it
-- holds (workers of an older binary never are: their leases still cover
-- them), and unlisted by the leader once its jobs are taken back.
CREATE TABLE nodes (
    worker_id  text COLLATE "C" PRIMARY KEY,
    lock_key   integer NOT NULL,
    held_since timestamptz NOT NULL DEFAULT now()
);
