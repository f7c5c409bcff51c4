-- A parent's mark that jobs depend on it, written when a child is stored
-- (LockParents) under the parent's row lock. An outcome that waited for
-- that lock reads the mark from the row it updates; the EXISTS over
-- job_dependencies it read before would come from a snapshot taken
-- before the child's commit, and the child would wait for a parent
-- already done.
ALTER TABLE jobs ADD COLUMN has_children boolean NOT NULL DEFAULT false;
UPDATE jobs SET has_children = true WHERE uuid IN (SELECT parent FROM job_dependencies);
