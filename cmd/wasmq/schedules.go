package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wasmq/wasmq/client"
)

const schedulesUsage = `usage: wasmq schedules list
       wasmq schedules add NAME CRON FUNC [--timezone TZ] [--args JSON] [--kwargs JSON] [--context JSON]
             [--channel C] [--priority N] [--max-retries N] [--identity-key K] [--description D]
             [--missed-runs skip|catch_up] [--catch-up-max N] [--paused]
       wasmq schedules rm|pause|resume|run NAME`

// schedulesCmd is `wasmq schedules`: periodic jobs over the API.
func schedulesCmd(args []string, out io.Writer) error {
	var r remote
	def := map[string]any{}
	var jf jobFlags
	var tz, missed string
	var catchUp int
	var paused bool
	pos, err := flags("schedules", args, func(fs *flag.FlagSet) {
		r.define(fs)
		fs.StringVar(&tz, "timezone", "", "IANA time zone of the cron (default UTC)")
		jf.define(fs, "identity key ({schedule}, {due}, {due_unix})")
		fs.StringVar(&missed, "missed-runs", "", "skip or catch_up")
		fs.IntVar(&catchUp, "catch-up-max", 0, "catch_up: at most this many missed runs")
		fs.BoolVar(&paused, "paused", false, "create it paused")
	})
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errors.New(schedulesUsage)
	}
	cl := r.client()
	cx, cancel := ctx()
	defer cancel()
	show := func(s client.Schedule, err error) error {
		if err != nil {
			return err
		}
		if r.json {
			return json.NewEncoder(out).Encode(s)
		}
		return printSchedules(out, []client.Schedule{s})
	}
	switch {
	case pos[0] == "list" && len(pos) == 1:
		ss, err := cl.Schedules(cx)
		if err != nil {
			return err
		}
		if r.json {
			return json.NewEncoder(out).Encode(ss)
		}
		return printSchedules(out, ss)
	case pos[0] == "add" && len(pos) == 4:
		def["name"], def["cron"], def["func"] = pos[1], pos[2], pos[3]
		if err := jf.fill(def); err != nil {
			return fmt.Errorf("schedules add: %w", err)
		}
		for k, v := range map[string]string{"timezone": tz, "missed_runs": missed} {
			if v != "" {
				def[k] = v
			}
		}
		if catchUp != 0 {
			def["catch_up_max"] = catchUp
		}
		if paused {
			def["paused"] = true
		}
		return show(cl.CreateSchedule(cx, def))
	case len(pos) == 2 && pos[0] == "rm":
		if err := cl.DeleteSchedule(cx, pos[1]); err != nil {
			return err
		}
		if r.json {
			return json.NewEncoder(out).Encode(map[string]string{"deleted": pos[1]})
		}
		fmt.Fprintf(out, "deleted %s\n", pos[1])
		return nil
	case len(pos) == 2 && pos[0] == "pause":
		return show(cl.PauseSchedule(cx, pos[1]))
	case len(pos) == 2 && pos[0] == "resume":
		return show(cl.ResumeSchedule(cx, pos[1]))
	case len(pos) == 2 && pos[0] == "run":
		j, err := cl.RunSchedule(cx, pos[1])
		if err != nil {
			return err
		}
		if r.json {
			return json.NewEncoder(out).Encode(j)
		}
		printJob(out, j)
		return nil
	}
	return errors.New(schedulesUsage)
}

func printSchedules(out io.Writer, ss []client.Schedule) error {
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCRON\tTIMEZONE\tFUNC\tSTATE\tNEXT RUN\tLAST JOB")
	for _, s := range ss {
		state := "active"
		if s["paused"] == true {
			state = "paused"
		}
		next := "-"
		if n, _ := s["next_runs"].([]any); len(n) > 0 {
			if t, err := time.Parse(time.RFC3339, fmt.Sprint(n[0])); err == nil {
				next = t.Local().Format("2006-01-02 15:04:05")
			}
		}
		last := "-"
		if lj, _ := s["last_job"].(map[string]any); lj != nil {
			last = strings.TrimSpace(fmt.Sprintf("%v %v", lj["uuid"], orDash(lj["state"])))
		}
		fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%s\t%s\t%s\n", s["name"], s["cron"], s["timezone"], s["func"], state, next, last)
	}
	return tw.Flush()
}
