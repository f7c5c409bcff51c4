-- Records for replay (docs/replay.md): what an attempt saw of the world,
-- keyed like its attempt and deleted with its job; the modules they
-- refer to, kept once per digest while a record does (several nodes read
-- them, so they live in the database, not on one node's disk).
CREATE TABLE record_modules (
	sha256 text PRIMARY KEY,
	wasm   bytea NOT NULL,
	-- used: the last time a record was written for it; the write locks
	-- the row, so a vacuum removing unreferenced modules skips it.
	used   timestamptz NOT NULL
);

CREATE TABLE records (
	job_uuid      text NOT NULL,
	attempt       integer NOT NULL,
	plugin_sha256 text NOT NULL,
	complete      boolean NOT NULL,
	size          integer NOT NULL,
	record        bytea NOT NULL,
	PRIMARY KEY (job_uuid, attempt)
);
CREATE INDEX records_plugin ON records (plugin_sha256);
