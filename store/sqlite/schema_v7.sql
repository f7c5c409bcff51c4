-- Records for replay (docs/replay.md): what an attempt saw of the world,
-- keyed like its attempt and deleted with its job; the modules they
-- refer to, kept once per digest while a record does.
CREATE TABLE record_modules (
	sha256 TEXT PRIMARY KEY,
	wasm   BLOB NOT NULL
);

CREATE TABLE records (
	job_uuid      TEXT NOT NULL,
	attempt       INTEGER NOT NULL,
	plugin_sha256 TEXT NOT NULL,
	complete      INTEGER NOT NULL,
	size          INTEGER NOT NULL,
	record        BLOB NOT NULL,
	PRIMARY KEY (job_uuid, attempt)
);
CREATE INDEX records_plugin ON records (plugin_sha256);
