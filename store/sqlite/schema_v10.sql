-- When each throttled channel last handed a job over, kept by the
-- leader: a node started again (a restart, a deploy) spaces its first
-- hand-over from there, not from its own start (Store.MarkChannelStarts).
CREATE TABLE channel_starts (
    channel    TEXT PRIMARY KEY,
    last_start INTEGER NOT NULL
);
