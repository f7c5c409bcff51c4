-- The leader's index of the schedules (store.Schedule.NextDue): never
-- later than a schedule's next due time, so that each pass reads the
-- schedules whose time may have come, not every schedule. 0 (the epoch)
-- is a bound that holds for every existing row: the first pass reads each
-- once and moves it to its cron's next due time.
ALTER TABLE schedules ADD COLUMN next_due INTEGER NOT NULL DEFAULT 0;
CREATE INDEX schedules_next_due ON schedules (next_due) WHERE paused = 0;
