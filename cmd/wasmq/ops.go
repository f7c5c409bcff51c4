package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/client"
)

// defineFilters adds the job list's filters beyond state, channel, func
// and text.
func defineFilters(fs *flag.FlagSet, o *client.ListOptions) {
	fs.StringVar(&o.UserID, "user", "", "user_id")
	fs.StringVar(&o.ModelName, "model", "", "model_name")
	fs.StringVar(&o.CreatedAfter, "created-after", "", "created at or after (RFC 3339 or 2026-11-30)")
	fs.StringVar(&o.CreatedBefore, "created-before", "", "created before")
	fs.StringVar(&o.EndedAfter, "ended-after", "", "done or cancelled at or after")
	fs.StringVar(&o.EndedBefore, "ended-before", "", "done or cancelled before")
	fs.StringVar(&o.Args, "args", "", "a JSON scalar one of the args equals, e.g. 42")
	fs.StringVar(&o.Kwargs, "kwargs", "", `a JSON object of values kwargs holds, e.g. '{"partner_id":7}'`)
}

// bulkCmd runs `wasmq jobs requeue|cancel|done --all [filters]`.
func bulkCmd(cx context.Context, cl *client.Client, pos []string, o client.ListOptions, asJSON bool, out io.Writer) error {
	if len(pos) != 1 || (pos[0] != "requeue" && pos[0] != "cancel" && pos[0] != "done") {
		return errors.New("usage: wasmq jobs requeue|cancel|done --all [filters] (no uuid: every matching job)")
	}
	stop := startProgress(out, pos[0]+" every matching job")
	res, err := cl.Bulk(cx, pos[0], o)
	stop()
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(out).Encode(res)
	}
	fmt.Fprintf(out, "%d jobs matched, %d changed, %d skipped (the action does not apply to their state)\n", res.Matched, res.Changed, res.Skipped)
	return nil
}

// channelSettings are the flags of `wasmq channels set`: a value, or
// "config" to drop the override.
type channelSettings struct{ capacity, throttle, paused string }

func (c *channelSettings) define(fs *flag.FlagSet) {
	fs.StringVar(&c.capacity, "capacity", "", `jobs at once, or "config"`)
	fs.StringVar(&c.throttle, "throttle", "", `seconds between two starts (0: none), or "config"`)
	fs.StringVar(&c.paused, "paused", "", `true, false, or "config"`)
}

// patch is the PATCH body the flags given make.
func (c channelSettings) patch() (map[string]any, error) {
	p := map[string]any{}
	for _, f := range []struct {
		key, v string
		parse  func(string) (any, error)
	}{
		{"capacity", c.capacity, func(v string) (any, error) { return strconv.Atoi(v) }},
		{"throttle", c.throttle, func(v string) (any, error) { return strconv.ParseFloat(v, 64) }},
		{"paused", c.paused, func(v string) (any, error) { return strconv.ParseBool(v) }},
	} {
		switch f.v {
		case "":
		case "config":
			p[f.key] = nil
		default:
			v, err := f.parse(f.v)
			if err != nil {
				return nil, fmt.Errorf("--%s: %q is not a valid value", f.key, f.v)
			}
			p[f.key] = v
		}
	}
	if len(p) == 0 {
		return nil, errors.New("usage: wasmq channels set NAME --capacity N|config --throttle SECONDS|config --paused true|false|config")
	}
	return p, nil
}

// channelCmd runs `wasmq channels pause|resume|set NAME`.
func channelCmd(cx context.Context, r remote, pos []string, set channelSettings, out io.Writer) error {
	if len(pos) != 2 {
		return errors.New("usage: wasmq channels pause|resume|set NAME")
	}
	cl := r.client()
	var st abi.ChannelStatus
	var err error
	switch pos[0] {
	case "pause":
		st, err = cl.PauseChannel(cx, pos[1])
	case "resume":
		st, err = cl.ResumeChannel(cx, pos[1])
	case "set":
		p, perr := set.patch()
		if perr != nil {
			return perr
		}
		st, err = cl.SetChannel(cx, pos[1], p)
	default:
		return fmt.Errorf("unknown channels command %q (pause, resume, set)", pos[0])
	}
	if err != nil {
		return err
	}
	if r.json {
		return json.NewEncoder(out).Encode(st)
	}
	state := "running"
	if st.Paused {
		state = "paused"
	}
	fmt.Fprintf(out, "%s: %s, capacity %d, throttle %gs", st.Name, state, st.Capacity, st.Throttle)
	if st.Override != nil {
		fmt.Fprint(out, " (set at run time over the configuration)")
	}
	fmt.Fprintln(out)
	return nil
}
