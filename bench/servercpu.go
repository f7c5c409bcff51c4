package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// userHZ is the unit of the times in /proc/<pid>/stat: Linux reports
// them in clock ticks of 1/100 s whatever the kernel's own tick (USER_HZ
// is part of its user-space interface).
const userHZ = 100

// postgresCPU is the CPU time, user and system, that the PostgreSQL
// processes of this machine have used, the exited ones included: a
// server's backends are children of its postmaster, which collects their
// times when they exit (cutime and cstime), so a connection closed during
// a run still counts. ok is false when no such process is visible (the
// server runs elsewhere, or /proc is not Linux's).
//
// It is the database's share of a run when the database runs here. The
// rate of a run moves with whatever else the machine does; the CPU a job
// costs moves much less (docs/benchmarks.md), and a run on PostgreSQL
// is two programs: the node and the server.
func postgresCPU() (d time.Duration, ok bool) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, false
	}
	var ticks int64
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited since the listing
		}
		comm, t, err := procTimes(b)
		if err != nil || comm != "postgres" {
			continue
		}
		ticks += t
		ok = true
	}
	return time.Duration(ticks) * time.Second / userHZ, ok
}

// procTimes reads a /proc/<pid>/stat line: the command name and the sum
// of utime, stime, cutime and cstime (fields 14 to 17), in ticks. The
// name is between the first '(' and the last ')': it may hold spaces and
// parentheses of its own.
func procTimes(stat []byte) (comm string, ticks int64, err error) {
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return "", 0, fmt.Errorf("bench: /proc stat %.40q: no command name", stat)
	}
	// After the name: state (field 3), ppid, pgrp, session, tty_nr,
	// tpgid, flags, minflt, cminflt, majflt, cmajflt, then the times.
	fields := bytes.Fields(stat[end+1:])
	if len(fields) < 15 {
		return "", 0, fmt.Errorf("bench: /proc stat %.40q: %d fields after the name", stat, len(fields))
	}
	for _, f := range fields[11:15] {
		n, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil || n < 0 {
			return "", 0, fmt.Errorf("bench: /proc stat %.40q: time %q", stat, f)
		}
		ticks += n
	}
	return string(stat[open+1 : end]), ticks, nil
}

// dbCPU measures the database's CPU over a run, when it can be seen.
type dbCPU struct {
	start time.Duration
	ok    bool
}

func startDBCPU(driver string) dbCPU {
	if driver != "postgres" {
		return dbCPU{}
	}
	d, ok := postgresCPU()
	return dbCPU{start: d, ok: ok}
}

// perJob is the database's CPU since start, per job; 0 when unseen.
func (c dbCPU) perJob(jobs int) time.Duration {
	if !c.ok || jobs <= 0 {
		return 0
	}
	d, ok := postgresCPU()
	if !ok || d < c.start {
		return 0
	}
	return (d - c.start) / time.Duration(jobs)
}
