-- When each throttled channel last handed a job over, kept by the
-- leader: the next leader (after a failover, a restart, a deploy) spaces
-- its first hand-over from there, not from the moment it took the lead
-- (Store.MarkChannelStarts).
CREATE TABLE channel_starts (
    channel    text PRIMARY KEY,
    last_start timestamptz NOT NULL
);
