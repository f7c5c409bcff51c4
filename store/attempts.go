package store

import (
	"encoding/json"
	"fmt"

	"github.com/wasmq/wasmq/abi"
)

// WithCurrent completes a job's recorded attempts with the one its row
// holds, if not recorded: the attempt running now, or the last one of a
// done job. A store may leave both unwritten (the hot path writes one row
// per job, not two or three): the row already says worker, attempt, start,
// end and plugin digest, and a silent successful attempt has nothing else.
func WithCurrent(recorded []abi.Attempt, j abi.Job) []abi.Attempt {
	if j.Attempt == 0 || j.DateStarted == nil {
		return recorded
	}
	for _, a := range recorded {
		if a.Attempt == j.Attempt {
			return recorded
		}
	}
	a := abi.Attempt{JobUUID: j.UUID, Attempt: j.Attempt, WorkerID: j.WorkerID, PluginSHA256: j.PluginSHA256,
		Started: j.DateStarted.UTC(), Logs: []abi.LogLine{}}
	switch {
	case j.State == abi.StateStarted:
	case j.State == abi.StateDone && j.DateDone != nil:
		ended := j.DateDone.UTC()
		a.Ended, a.Outcome, a.Usage = &ended, string(abi.StateDone), j.Usage
	default:
		return recorded
	}
	return append(recorded, a)
}

// DecodeLogs reads an attempt's logs as a driver stored them (a JSON
// list); none is an empty list, never null.
func DecodeLogs(raw []byte) ([]abi.LogLine, error) {
	var logs []abi.LogLine
	if err := json.Unmarshal(raw, &logs); err != nil {
		return nil, fmt.Errorf("attempt logs: %w", err)
	}
	if logs == nil {
		logs = []abi.LogLine{}
	}
	return logs, nil
}

// AttachParents fills each job's DependsOn from (child, parent) rows, in
// the order the rows come (the order the parents were given).
func AttachParents(jobs []abi.Job, rows [][2]string) {
	at := make(map[string]int, len(jobs))
	for i := range jobs {
		at[jobs[i].UUID] = i
		jobs[i].DependsOn = []string{}
	}
	for _, r := range rows {
		if i, ok := at[r[0]]; ok {
			jobs[i].DependsOn = append(jobs[i].DependsOn, r[1])
		}
	}
}

// OneJob is the job a lookup by uuid found, or abi.ErrNotFound.
func OneJob(jobs []abi.Job, uuid string) (abi.Job, error) {
	if len(jobs) == 0 {
		return abi.Job{}, fmt.Errorf("job %s: %w", uuid, abi.ErrNotFound)
	}
	return jobs[0], nil
}

// UUIDs are the jobs' uuids, in order.
func UUIDs(jobs []abi.Job) []string {
	out := make([]string, len(jobs))
	for i := range jobs {
		out[i] = jobs[i].UUID
	}
	return out
}

// UsageText is how a driver stores an attempt's usage: JSON without its
// zero counts, or nil (SQL NULL) when there is none. Most counts of most
// attempts are zero (no host call, no HTTP): written out, they were 115
// bytes of every job row, and the row an outcome writes grew past what
// its page had left, so fewer outcomes were HOT updates
// (docs/benchmarks.md). DecodeUsage gives the zeros back.
func UsageText(u *abi.Usage) *string {
	if u == nil {
		return nil
	}
	b, _ := json.Marshal(storedUsage(*u))
	s := string(b)
	return &s
}

// storedUsage is abi.Usage as stored: the same fields, zeros left out.
type storedUsage struct {
	Fuel         int64 `json:"fuel,omitempty"`
	WallMS       int64 `json:"wall_ms,omitempty"`
	PeakMemory   int64 `json:"peak_memory,omitempty"`
	HostCalls    int64 `json:"host_calls,omitempty"`
	HTTPRequests int64 `json:"http_requests,omitempty"`
	HTTPBytesOut int64 `json:"http_bytes_out,omitempty"`
	HTTPBytesIn  int64 `json:"http_bytes_in,omitempty"`
}

// DecodeUsage reads what UsageText stored (nil for NULL).
func DecodeUsage(s *string) (*abi.Usage, error) {
	if s == nil || *s == "" {
		return nil, nil
	}
	var u abi.Usage
	if err := json.Unmarshal([]byte(*s), &u); err != nil {
		return nil, fmt.Errorf("attempt usage: %w", err)
	}
	return &u, nil
}
