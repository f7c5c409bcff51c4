-- Identifiers compare byte by byte: uuids, tenants, channels and keys are
-- not words of a language, and the database's collation (often
-- en_US.UTF-8 or C.UTF-8) made every B-tree comparison on them go through
-- strcoll. Only the indexes on these columns are rebuilt.
ALTER TABLE jobs
    ALTER COLUMN uuid TYPE text COLLATE "C",
    ALTER COLUMN tenant TYPE text COLLATE "C",
    ALTER COLUMN channel TYPE text COLLATE "C",
    ALTER COLUMN identity_key TYPE text COLLATE "C",
    ALTER COLUMN graph_uuid TYPE text COLLATE "C",
    ALTER COLUMN worker_id TYPE text COLLATE "C";
ALTER TABLE job_dependencies
    ALTER COLUMN child TYPE text COLLATE "C",
    ALTER COLUMN parent TYPE text COLLATE "C";
ALTER TABLE job_attempts
    ALTER COLUMN job_uuid TYPE text COLLATE "C";
