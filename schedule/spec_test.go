package schedule

import (
	"errors"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func mustSpec(t *testing.T, expr, tz string) Spec {
	t.Helper()
	s, err := ParseSpec(expr, tz)
	if err != nil {
		t.Fatalf("ParseSpec(%q, %q): %v", expr, tz, err)
	}
	return s
}

func TestEveryIsAlignedToTheEpochSoEveryNodeAgrees(t *testing.T) {
	s := mustSpec(t, "@every 30s", "")
	if got := s.Next(at("2026-11-30T10:00:07Z")); !got.Equal(at("2026-11-30T10:00:30Z")) {
		t.Fatalf("next after 10:00:07: %v, want 10:00:30", got)
	}
	if got := s.Next(at("2026-11-30T10:00:30Z")); !got.Equal(at("2026-11-30T10:01:00Z")) {
		t.Fatalf("next after 10:00:30 (a due time): %v, want 10:01:00", got)
	}
}

func TestCronIsReadInItsTimeZone(t *testing.T) {
	s := mustSpec(t, "0 3 * * *", "Europe/Brussels")
	if got := s.Next(at("2026-11-30T12:00:00Z")); !got.Equal(at("2026-12-01T02:00:00Z")) {
		t.Fatalf("03:00 in Brussels in winter: %v, want 02:00 UTC", got)
	}
	if got := s.Next(at("2026-06-30T12:00:00Z")); !got.Equal(at("2026-07-01T01:00:00Z")) {
		t.Fatalf("03:00 in Brussels in summer: %v, want 01:00 UTC", got)
	}
	if got := mustSpec(t, "@daily", "").Next(at("2026-11-30T12:00:00Z")); !got.Equal(at("2026-12-01T00:00:00Z")) {
		t.Fatalf("@daily in UTC: %v", got)
	}
}

// The DST rules docs/schedules.md describes (Vixie cron's): a fixed time
// the spring-forward jump skips runs at the jump; a fixed time the fall
// back repeats runs once; a schedule of every hour runs every real hour.
func TestDaylightSavingTime(t *testing.T) {
	s := mustSpec(t, "30 2 * * *", "Europe/Brussels")
	spring := s.NextN(at("2026-03-28T12:00:00Z"), 2)
	if !spring[0].Equal(at("2026-03-29T01:00:00Z")) || !spring[1].Equal(at("2026-03-30T00:30:00Z")) {
		t.Fatalf("02:30 does not exist on 29 March: want it at the jump (03:00 CEST), then 02:30 the day after; got %v", spring)
	}
	autumn := s.NextN(at("2026-10-24T12:00:00Z"), 2)
	if !autumn[0].Equal(at("2026-10-25T00:30:00Z")) || !autumn[1].Equal(at("2026-10-26T01:30:00Z")) {
		t.Fatalf("02:30 happens twice on 25 October: want it once (CEST), then the day after; got %v", autumn)
	}
	// A time outside the changed hour is not moved.
	if got := mustSpec(t, "0 4 * * *", "Europe/Brussels").NextN(at("2026-03-28T12:00:00Z"), 2); !got[0].Equal(at("2026-03-29T02:00:00Z")) || !got[1].Equal(at("2026-03-30T02:00:00Z")) {
		t.Fatalf("04:00 around the spring jump: %v", got)
	}
	// A skipped time of another day is not fired on the jump's day.
	if got := mustSpec(t, "30 2 * * 1", "Europe/Brussels").Next(at("2026-03-28T12:00:00Z")); !got.Equal(at("2026-03-30T00:30:00Z")) {
		t.Fatalf("Mondays at 02:30, the jump on a Sunday: %v", got)
	}
	for _, c := range []struct{ expr, from string }{{"@hourly", "2026-10-24T23:30:00Z"}, {"@hourly", "2026-03-28T23:30:00Z"}, {"*/30 * * * *", "2026-10-24T23:50:00Z"}} {
		h := mustSpec(t, c.expr, "Europe/Brussels").NextN(at(c.from), 6)
		for i := 1; i < len(h); i++ {
			if step := h[i].Sub(h[i-1]); step != h[1].Sub(h[0]) {
				t.Fatalf("%s across a clock change: uneven steps %v", c.expr, h)
			}
		}
	}
	// Due agrees with Next: the jump's due time is fired once.
	due := s.Due(at("2026-03-28T12:00:00Z"), at("2026-03-31T12:00:00Z"), 10)
	if len(due) != 3 || !due[0].Equal(at("2026-03-29T01:00:00Z")) {
		t.Fatalf("due times over the spring change: %v", due)
	}
}

func TestDueListsTheLatestMissedTimes(t *testing.T) {
	s := mustSpec(t, "@every 1s", "")
	anchor, now := at("2026-11-30T10:00:00Z"), at("2026-11-30T10:00:10Z").Add(500*time.Millisecond)
	if got := s.Due(anchor, now, 1); len(got) != 1 || !got[0].Equal(at("2026-11-30T10:00:10Z")) {
		t.Fatalf("skip: %v, want only 10:00:10", got)
	}
	got := s.Due(anchor, now, 3)
	if len(got) != 3 || !got[0].Equal(at("2026-11-30T10:00:08Z")) || !got[2].Equal(at("2026-11-30T10:00:10Z")) {
		t.Fatalf("catch_up 3: %v, want 08, 09, 10 in order", got)
	}
	if got := s.Due(anchor, now, 100); len(got) != 10 {
		t.Fatalf("catch_up 100 over 10 missed: %d due times, want 10 (the anchor itself was fired)", len(got))
	}
	if got := s.Due(now, now, 5); len(got) != 0 {
		t.Fatalf("nothing due at the anchor: %v", got)
	}
	// A daily schedule whose leader was away for three years: found
	// without walking three years of minutes.
	d := mustSpec(t, "0 3 * * *", "UTC")
	got = d.Due(at("2023-01-01T00:00:00Z"), at("2026-11-30T12:00:00Z"), 2)
	if len(got) != 2 || !got[1].Equal(at("2026-11-30T03:00:00Z")) || !got[0].Equal(at("2026-11-29T03:00:00Z")) {
		t.Fatalf("two latest of a daily schedule: %v", got)
	}
	cron := mustSpec(t, "*/5 * * * *", "UTC")
	got = cron.Due(at("2026-11-30T10:00:00Z"), at("2026-11-30T10:17:00Z"), 10)
	if len(got) != 3 || !got[0].Equal(at("2026-11-30T10:05:00Z")) {
		t.Fatalf("every 5 min over 17 min: %v", got)
	}
}

func TestBadExpressionsAndZonesNameTheirField(t *testing.T) {
	for _, c := range []struct{ expr, tz, field string }{
		{"", "", "cron"},
		{"* * * *", "", "cron"},
		{"61 * * * *", "", "cron"},
		{"* * * * * *", "", "cron"},
		{"@every 500ms", "", "cron"},
		{"@every 1.5s", "", "cron"},
		{"@every -1s", "", "cron"},
		{"@sometimes", "", "cron"},
		{"0 0 30 2 *", "", "cron"},
		{"TZ=UTC", "", "cron"},
		{"CRON_TZ=Europe/Brussels 0 3 * * *", "", "cron"},
		{"0 3 * * *", "Mars/Olympus", "timezone"},
		{"0 3 * * *", "Local", "timezone"},
		{"0 3 * * *", "../../etc/passwd", "timezone"},
		{"0 3 * * *", "Europe/\x00", "timezone"},
	} {
		_, err := ParseSpec(c.expr, c.tz)
		var fe *abi.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("ParseSpec(%q, %q) = %v, want an invalid %s", c.expr, c.tz, err, c.field)
		}
	}
}
