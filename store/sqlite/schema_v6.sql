-- A backlog of jobs scheduled for later must cost the scheduler nothing
-- until they come due: it reads the jobs due within its horizon by eta
-- (PendingByETA), the no-eta ones first (NULLs sort first in SQLite).
CREATE INDEX jobs_pending_eta ON jobs (eta, version) WHERE state = 'pending';
