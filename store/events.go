package store

// Events collects what one write transaction tells subscribers, one Event
// per kind, to publish once it has committed.
type Events []Event

// Add notes a change of kind in these channels.
func (es *Events) Add(kind EventKind, channels ...string) {
	for i := range *es {
		if (*es)[i].Kind == kind {
			(*es)[i].Channels = append((*es)[i].Channels, channels...)
			return
		}
	}
	*es = append(*es, Event{Kind: kind, Channels: channels})
}

// Fuel notes fuel a tenant's ended attempt used, on the EventFinished
// event of the transaction; by is the worker that ran it (a transaction
// completes one worker's attempts).
func (es *Events) Fuel(tenant, by string, fuel int64) {
	if fuel <= 0 {
		return
	}
	es.Add(EventFinished)
	for i := range *es {
		if (*es)[i].Kind == EventFinished {
			if (*es)[i].Fuel == nil {
				(*es)[i].Fuel = map[string]int64{}
			}
			(*es)[i].Fuel[tenant] += fuel
			(*es)[i].FuelBy = by
		}
	}
}

// Finished notes that a job left enqueued or started, naming the
// hand-over that ended by a version the job had during it (Event.Versions).
func (es *Events) Finished(uuid, channel string, version int64) {
	es.Add(EventFinished, channel)
	for i := range *es {
		if e := &(*es)[i]; e.Kind == EventFinished {
			if len(e.Versions) == len(e.UUIDs) {
				e.Versions = append(e.Versions, version)
			}
			e.UUIDs = append(e.UUIDs, uuid)
		}
	}
}

// Job notes a change of kind that subscribers follow job by job
// (EventPending, EventFinished): the event names the job.
func (es *Events) Job(kind EventKind, uuid, channel string) {
	es.Add(kind, channel)
	for i := range *es {
		if (*es)[i].Kind == kind {
			(*es)[i].UUIDs = append((*es)[i].UUIDs, uuid)
		}
	}
}
