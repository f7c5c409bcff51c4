-- A backlog of jobs scheduled for later (an eta hours or days ahead)
-- must cost the scheduler nothing until they come due. It keeps in
-- memory only the jobs due within its horizon and reads the next ones by
-- eta as time moves on (PendingByETA); this index answers that read, and
-- the start-up read of what is due, with the rows returned only. Jobs
-- without an eta sit together in it (NULLs), by version.
CREATE INDEX pending_log_eta ON pending_log (eta, version);
