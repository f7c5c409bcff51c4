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
