-- The leader's index of the schedules (store.Schedule.NextDue): never
-- later than a schedule's next due time, so that each pass reads the
-- schedules whose time may have come, not every schedule. The epoch is a
-- bound that holds for every existing row: the first pass reads each once
-- and moves it to its cron's next due time.
ALTER TABLE schedules ADD COLUMN next_due timestamptz NOT NULL DEFAULT 'epoch';
CREATE INDEX schedules_next_due ON schedules (next_due) WHERE NOT paused;

-- A node of an earlier version, still running during an upgrade, changes
-- a schedule without knowing next_due: a new version whose next_due did
-- not move is such a change, and is read at the next pass as the core
-- would have it (store.Core.UpdateSchedule). This node's changes set
-- next_due to the anchor themselves, which this leaves as it is.
CREATE FUNCTION schedules_changed_by_an_earlier_node() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version <> OLD.version AND NEW.next_due = OLD.next_due THEN
        NEW.next_due := NEW.anchor;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER schedules_changed_by_an_earlier_node BEFORE UPDATE ON schedules
    FOR EACH ROW EXECUTE FUNCTION schedules_changed_by_an_earlier_node();
