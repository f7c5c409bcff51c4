package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// usageCmd prints what attempts used per tenant and function over a range
// (GET /v1/usage): the last 24 hours unless --from/--to say otherwise.
func usageCmd(args []string, out io.Writer) error {
	var r remote
	var from, to, tenant string
	pos, err := flags("usage", args, func(fs *flag.FlagSet) {
		r.define(fs)
		fs.StringVar(&from, "from", "", "start, RFC 3339 or a duration ago like 24h (default 24h)")
		fs.StringVar(&to, "to", "", "end, RFC 3339 or a duration ago (default now)")
		fs.StringVar(&tenant, "tenant", "", "tenant (admin; default every tenant)")
	})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return errors.New("usage: wasmq usage [--from T] [--to T] [--tenant NAME]")
	}
	now := time.Now()
	f, err := pointInTime("--from", from, now.Add(-24*time.Hour), now)
	if err != nil {
		return err
	}
	t, err := pointInTime("--to", to, now, now)
	if err != nil {
		return err
	}
	cx, cancel := ctx()
	defer cancel()
	rows, err := r.client().Usage(cx, f, t, tenant)
	if err != nil {
		return err
	}
	if r.json {
		return json.NewEncoder(out).Encode(rows)
	}
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tFUNC\tATTEMPTS\tFUEL\tWALL\tPEAK MEMORY\tHOST CALLS\tHTTP\tHTTP OUT\tHTTP IN")
	for _, u := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n", u.Tenant, u.Func, u.Attempts, u.Fuel,
			time.Duration(u.WallMS)*time.Millisecond, bytesText(u.PeakMemory), u.HostCalls, u.HTTPRequests,
			bytesText(u.HTTPBytesOut), bytesText(u.HTTPBytesIn))
	}
	return tw.Flush()
}

// pointInTime reads an RFC 3339 time or a duration before now ("" is def).
func pointInTime(flagName, v string, def, now time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time (2026-11-30T00:00:00Z) or a duration ago (24h)", flagName, v)
}

// attemptUsage is an attempt's usage on one line.
func attemptUsage(u *abi.Usage) string {
	s := fmt.Sprintf("fuel %d, wall %s, peak memory %s, host calls %d", u.Fuel, time.Duration(u.WallMS)*time.Millisecond,
		bytesText(u.PeakMemory), u.HostCalls)
	if u.HTTPRequests > 0 {
		s += fmt.Sprintf(", http %d (out %s, in %s)", u.HTTPRequests, bytesText(u.HTTPBytesOut), bytesText(u.HTTPBytesIn))
	}
	return s
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
