package bench

import (
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/procfs"
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
// server runs elsewhere, or there is no /proc).
//
// It is the database's share of a run when the database runs here. The
// rate of a run moves with whatever else the machine does; the CPU a job
// costs moves much less (docs/benchmarks.md), and a run on PostgreSQL
// is two programs: the node and the server.
func postgresCPU() (d time.Duration, ok bool) {
	procs, err := procfs.AllProcs()
	if err != nil {
		return 0, false
	}
	var ticks int64
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil || st.Comm != "postgres" {
			continue // exited since the listing, or another program
		}
		ticks += procTicks(st)
		ok = true
	}
	return time.Duration(ticks) * time.Second / userHZ, ok
}

// procTicks is a process's CPU time with its reaped children's, in ticks.
func procTicks(st procfs.ProcStat) int64 {
	return int64(st.UTime) + int64(st.STime) + int64(st.CUTime) + int64(st.CSTime)
}

// dbCPU measures the database's CPU over a run, when it can be seen.
type dbCPU struct {
	start time.Duration
	ok    bool
}

// startDBCPU starts the measure for a store configured with driver and
// dsn: only a PostgreSQL named by a Unix socket or a loopback address runs
// on this machine, where its processes can be read. A remote server's
// figure would be whatever another PostgreSQL here did: none is given.
func startDBCPU(driver, dsn string) dbCPU {
	if driver != "postgres" || !localServer(dsn) {
		return dbCPU{}
	}
	d, ok := postgresCPU()
	return dbCPU{start: d, ok: ok}
}

// localServer reports whether every host dsn names (fallbacks included)
// is on this machine.
func localServer(dsn string) bool {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return false
	}
	hosts := []string{cfg.Host}
	for _, f := range cfg.Fallbacks {
		hosts = append(hosts, f.Host)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); !strings.HasPrefix(h, "/") && h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return false
		}
	}
	return true
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
