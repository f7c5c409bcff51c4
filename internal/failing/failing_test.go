package failing

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// A write retried five times a second through a two-minute outage is
// logged when it starts failing, then once per ReportEvery with
// the failures since the last line, and once when it succeeds again.
func TestAFailureRetriedForMinutesIsLoggedEveryTenSecondsNotEveryTry(t *testing.T) {
	var out bytes.Buffer
	log := zerolog.New(&out)
	f := Report{What: "scheduler round"}
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	now := start
	for ; now.Sub(start) < 2*time.Minute; now = now.Add(200 * time.Millisecond) {
		f.Fail(&log, errors.New("disk full"), now)
	}
	f.OK(&log, now)
	lines := decodeLines(t, &out)
	if want := 12 + 1; len(lines) != want { // 0 s, 10 s, … 110 s; then the recovery
		t.Fatalf("%d lines for 600 failures and a recovery, want %d:\n%v", len(lines), want, lines)
	}
	if lines[0]["failures"] != 1.0 || lines[0]["message"] != "scheduler round failed; retrying" || lines[0]["error"] != "disk full" {
		t.Errorf("first line %v, want the first failure with its error", lines[0])
	}
	if lines[1]["failures"] != 50.0 || lines[1]["level"] != "warn" {
		t.Errorf("second line %v, want a warning counting the 50 failures of the ten seconds since the first", lines[1])
	}
	last := lines[len(lines)-1]
	if last["level"] != "info" || last["failures"] != 600.0 || last["message"] != "scheduler round succeeded again" {
		t.Errorf("last line %v, want the recovery after 600 failures", last)
	}
}

// A store that fails and recovers at every other try (a flapping disk)
// gets no more lines than one that stays down.
func TestAFlappingFailureIsLoggedNoMoreOftenThanASteadyOne(t *testing.T) {
	var out bytes.Buffer
	log := zerolog.New(&out)
	f := Report{What: "recording outcomes"}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 300; i++ { // a minute
		f.Fail(&log, errors.New("could not extend file"), now)
		now = now.Add(100 * time.Millisecond)
		f.OK(&log, now)
		now = now.Add(100 * time.Millisecond)
	}
	var warns, infos int
	for _, l := range decodeLines(t, &out) {
		switch l["level"] {
		case "warn":
			warns++
		case "info":
			infos++
		}
	}
	if warns != 6 || infos != 6 {
		t.Errorf("a minute of flapping: %d warnings and %d recoveries, want 6 of each (one per ten seconds)", warns, infos)
	}
}

func decodeLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	dec := json.NewDecoder(b)
	for dec.More() {
		var l map[string]any
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	return lines
}
