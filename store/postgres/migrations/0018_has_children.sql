-- A parent's mark that jobs depend on it, written when a child is stored
-- (LockParents) under the parent's row lock. An outcome that waited for
-- that lock reads the mark from the row it updates; the EXISTS over
-- job_dependencies it reads too comes from a snapshot taken before the
-- child's commit, and alone it left the child waiting for a parent
-- already done.
ALTER TABLE jobs ADD COLUMN has_children boolean NOT NULL DEFAULT false;
UPDATE jobs SET has_children = true WHERE uuid IN (SELECT parent FROM job_dependencies);
