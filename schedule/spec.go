// Package schedule runs periodic jobs (docs/schedules.md): the meaning of
// a cron expression in a time zone, the checks of a schedule against the
// enqueue path, and the leader's firing loop. The store keeps schedules
// and makes each due time fire once (store.Core.FireSchedule).
package schedule

import (
	"fmt"
	"strings"
	"time"

	// The zone database is embedded: every node reads a schedule's zone
	// the same, whatever its machine has installed (or not).
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
	"github.com/wasmq/wasmq/abi"
)

// Spec is when a schedule is due: a cron expression read in a time zone.
type Spec struct {
	cron  *cron.SpecSchedule // nil for @every
	every time.Duration
	loc   *time.Location
	// fixed: the expression names some hours, not every one: it is a
	// wall-clock time, which the clock changes move (Next).
	fixed bool
}

// parser reads the five standard fields and the descriptors (@hourly,
// @daily, @every 30s...): robfig/cron's standard parser, the one
// Kubernetes' CronJob uses.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func badField(field, format string, a ...any) error {
	return &abi.FieldError{Field: field, Msg: fmt.Sprintf(format, a...), Err: abi.ErrInvalid}
}

// ParseSpec reads a cron expression and an IANA time zone ("" is UTC),
// naming the field at fault.
func ParseSpec(expr, tz string) (Spec, error) {
	loc, err := ParseTimezone(tz)
	if err != nil {
		return Spec{}, err
	}
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return Spec{}, badField("cron", "is required (five fields such as \"0 3 * * *\", or @hourly, @daily, @every 30s)")
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return Spec{}, badField("cron", "name the time zone in the timezone field, not in the expression")
	}
	sched, err := parse(expr)
	if err != nil {
		return Spec{}, badField("cron", "%q is not a cron expression: %v", expr, err)
	}
	switch s := sched.(type) {
	case cron.ConstantDelaySchedule:
		// robfig rounds a delay under a second up to one; say so instead.
		d, _ := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(expr, "@every")))
		if d < time.Second || d%time.Second != 0 {
			return Spec{}, badField("cron", "@every takes a whole number of seconds, at least 1s (%q)", expr)
		}
		return Spec{every: d, loc: loc}, nil
	case *cron.SpecSchedule:
		s.Location = loc
		const everyHour = 1<<24 - 1
		spec := Spec{cron: s, loc: loc, fixed: s.Hour&everyHour != everyHour}
		if spec.Next(time.Now()).IsZero() {
			return Spec{}, badField("cron", "%q names a date that never comes", expr)
		}
		return spec, nil
	}
	return Spec{}, badField("cron", "%q is not a cron expression", expr)
}

// parse guards against a panic of the parser on odd input: a bad
// expression is a client's mistake, never a crash.
func parse(expr string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return parser.Parse(expr)
}

// ParseTimezone reads an IANA zone name; "" is UTC. "Local" is refused:
// it would mean whatever zone each node's machine has.
func ParseTimezone(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	if tz == "Local" || strings.ContainsAny(tz, "\x00\\") || strings.HasPrefix(tz, "/") || strings.Contains(tz, "..") {
		return nil, badField("timezone", "%q is not an IANA time zone (e.g. UTC, Europe/Brussels)", tz)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, badField("timezone", "%q is not an IANA time zone (e.g. UTC, Europe/Brussels)", tz)
	}
	return loc, nil
}

// Next is the first due time strictly after t, in UTC; zero if there is
// none (a date that never comes, such as 30 February).
func (p Spec) Next(t time.Time) time.Time {
	if p.cron == nil {
		// @every counts from the Unix epoch, not from whenever a node
		// started: every node computes the same due times (@every 30s
		// is due at :00 and :30 of each minute).
		step := int64(p.every / time.Second)
		return time.Unix((t.Unix()/step+1)*step, 0).UTC()
	}
	n := p.cron.Next(t.In(p.loc))
	if !p.fixed {
		// Hourly and more often: every real hour, whatever the clocks do.
		return utc(n)
	}
	// The clock changes, as Vixie cron treats a job at a fixed time: one
	// whose wall-clock time is skipped (spring forward) runs at the jump;
	// one whose wall-clock time happens twice (fall back) runs once.
	if g, ok := p.skippedBefore(t, n); ok {
		return g.UTC()
	}
	for !n.IsZero() && p.repeated(n) {
		n = p.cron.Next(n)
	}
	return utc(n)
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// skippedBefore finds a forward jump of the clocks in (t, n) whose
// skipped wall-clock times the expression names: the jump's instant is
// then due.
func (p Spec) skippedBefore(t, n time.Time) (time.Time, bool) {
	x := t.In(p.loc)
	for range 64 { // a zone changes offset a few times a year at most
		_, end := x.ZoneBounds()
		if end.IsZero() || (!n.IsZero() && !end.Before(n)) {
			return time.Time{}, false
		}
		_, before := x.Zone()
		_, after := end.Zone()
		if jump := time.Duration(after-before) * time.Second; jump > 0 && end.After(t) {
			// The wall-clock minutes [end - jump, end) never happened.
			wall := wallClock(end)
			for m := wall.Add(-jump); m.Before(wall); m = m.Add(time.Minute) {
				if p.matches(m) {
					return end, true
				}
			}
		}
		x = end
	}
	return time.Time{}, false
}

// repeated tells whether n's wall-clock time happened already, before the
// clocks went back.
func (p Spec) repeated(n time.Time) bool {
	start, _ := n.In(p.loc).ZoneBounds()
	if start.IsZero() {
		return false
	}
	_, before := start.Add(-time.Nanosecond).Zone()
	_, after := start.Zone()
	back := time.Duration(before-after) * time.Second
	return back > 0 && n.Before(start.Add(back))
}

// wallClock is t's local date and time read as if it were UTC: minutes
// that a jump skipped can be walked there.
func wallClock(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC)
}

// starBit marks a field given as "*" in robfig/cron's masks.
const starBit = 1 << 63

// matches tells whether a wall-clock minute is one the expression names
// (robfig/cron's rule, day of month and day of week OR-ed unless one is *).
func (p Spec) matches(w time.Time) bool {
	s := p.cron
	if 1<<uint(w.Minute())&s.Minute == 0 || 1<<uint(w.Hour())&s.Hour == 0 || 1<<uint(w.Month())&s.Month == 0 {
		return false
	}
	dom := 1<<uint(w.Day())&s.Dom > 0
	dow := 1<<uint(w.Weekday())&s.Dow > 0
	if s.Dom&starBit > 0 || s.Dow&starBit > 0 {
		return dom && dow
	}
	return dom || dow
}

// NextN lists the next n due times after t.
func (p Spec) NextN(t time.Time, n int) []time.Time {
	out := make([]time.Time, 0, n)
	for range n {
		t = p.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

// lookback are the windows Due searches, shortest first: from the anchor
// forward, a schedule due every second and a leader away for a year would
// mean 31 million steps.
var lookback = []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 366 * 24 * time.Hour, 5 * 366 * 24 * time.Hour}

// Due lists the latest k due times in (anchor, now], oldest first.
func (p Spec) Due(anchor, now time.Time, k int) []time.Time {
	if k < 1 || !now.After(anchor) {
		return nil
	}
	if p.cron == nil {
		step := int64(p.every / time.Second)
		var out []time.Time
		for last := now.Unix() / step * step; len(out) < k; last -= step {
			t := time.Unix(last, 0).UTC()
			if !t.After(anchor) {
				break
			}
			out = append(out, t)
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out
	}
	for _, w := range lookback {
		start := now.Add(-w)
		if !start.After(anchor) {
			return p.collect(anchor, now, k)
		}
		if got := p.collect(start, now, k); len(got) >= k {
			return got
		}
	}
	return p.collect(now.Add(-lookback[len(lookback)-1]), now, k)
}

// collect walks the due times in (from, now], keeping the last k.
func (p Spec) collect(from, now time.Time, k int) []time.Time {
	var out []time.Time
	for t := p.Next(from); !t.IsZero() && !t.After(now); t = p.Next(t) {
		out = append(out, t)
		if len(out) > k {
			out = out[1:]
		}
	}
	return out
}
