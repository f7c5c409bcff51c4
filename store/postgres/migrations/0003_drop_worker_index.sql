-- Renewing leases, twice a lease, was the only user of this index; every
-- start paid for an entry in it. The jobs_leased index serves the renewal.
DROP INDEX IF EXISTS jobs_worker;
