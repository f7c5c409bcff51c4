//go:build chaos

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A host that vanishes (powered off, its instance terminated, its network
// cut) ends none of its connections: nothing it sends reaches the
// database any more, not even their end. PostgreSQL keeps such sessions
// until its kernel's keepalive gives up, more than two hours by default,
// and each holds one of max_connections: a few hosts replaced that way
// and no node can connect. The node's sessions ask the server to probe
// after 30 s of silence and to end a session whose probe is not answered
// within 10 s.
//
// The test runs a PostgreSQL of its own in a network namespace, reached
// over a veth pair (the shared cluster listens on 127.0.0.1 only, which
// no other namespace reaches); the node's host is this side. Its end of
// the link is taken down, then the node killed, so the ends of its
// connections are lost on the way, as a power cut loses them.
func TestChaosAVanishedHostsSessionsEnd(t *testing.T) {
	pg := startPostgresBehindALink(t)
	bin := buildWasmq(t)
	n := startNode(t, bin, pg.dsn, "vanishing")
	count := func(where string) int {
		var n int
		if err := pg.admin.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE client_addr = $1::inet`+where, pg.hostAddr).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// A session the server was answering when the host vanished ends once
	// the answer goes unacknowledged for 10 s (tcp_user_timeout); one that
	// was idle is sent nothing, so only the probes can find it gone. The
	// host vanishes once some of its sessions have been idle a while.
	const idle = ` AND state = 'idle' AND state_change < now() - interval '3 seconds'`
	for deadline := time.Now().Add(30 * time.Second); count(idle) == 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("none of the node's sessions was idle 3 s: the test would not see the probes at work")
		}
	}
	had, idled := count(""), count(idle)
	pg.linkDown(t)
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.cmd.Wait()
	gone := time.Now()
	for left := had; left > 0; left = count("") {
		if time.Since(gone) > 75*time.Second {
			t.Fatalf("%d of the vanished host's %d sessions (%d of them idle) still held %v after it vanished",
				left, had, idled, time.Since(gone).Round(time.Second))
		}
		time.Sleep(time.Second)
	}
	t.Logf("the vanished host's %d sessions (%d of them idle) were all ended %v after it vanished",
		had, idled, time.Since(gone).Round(time.Second))
}

// postgresBehindALink is a PostgreSQL cluster of the test's own, in a
// network namespace, reached over a veth pair whose near side the test
// can take down.
type postgresBehindALink struct {
	dsn      string    // over the link
	hostAddr string    // the near side's address: the sessions' client_addr
	admin    *pgx.Conn // over the cluster's Unix socket, which the link does not carry
	near     string    // the near side's interface
}

func (p *postgresBehindALink) linkDown(t *testing.T) {
	t.Helper()
	runCmd(t, "ip", "link", "set", p.near, "down")
}

func startPostgresBehindALink(t *testing.T) *postgresBehindALink {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root: a network namespace, a veth pair and a PostgreSQL run as postgres")
	}
	initdbs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(initdbs) == 0 {
		t.Skip("no PostgreSQL server binaries")
	}
	binDir := filepath.Dir(initdbs[len(initdbs)-1])
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("no postgres user to run a cluster as")
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	sweepLeftBehind(t)
	pid := os.Getpid()
	// Not t.TempDir: its parents are closed to the postgres user.
	dir, err := os.MkdirTemp("", fmt.Sprintf("wasmq-vanish-%d-", pid))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	runCmd(t, "runuser", "-u", "postgres", "--", filepath.Join(binDir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")

	// Names of this process's own, so two runs on one machine do not meet,
	// and a later run knows what a killed one left (sweepLeftBehind).
	ns, near, far := fmt.Sprintf("wqv%d", pid), fmt.Sprintf("wqv%da", pid), fmt.Sprintf("wqv%db", pid)
	subnet := 16 + pid%200
	nearAddr, farAddr := fmt.Sprintf("10.%d.77.2", subnet), fmt.Sprintf("10.%d.77.1", subnet)
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(fmt.Sprintf(
		"local all all trust\nhost all all %s/32 trust\n", nearAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(data, "pg_hba.conf"), uid, gid)
	// A kernel without network namespaces or veth cannot host the test.
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("no network namespace here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "link", "add", near, "type", "veth", "peer", "name", far).CombinedOutput(); err != nil {
		t.Skipf("no veth pair here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", near).Run() })
	runCmd(t, "ip", "link", "set", far, "netns", ns)
	runCmd(t, "ip", "addr", "add", nearAddr+"/30", "dev", near)
	runCmd(t, "ip", "link", "set", near, "up")
	runCmd(t, "ip", "netns", "exec", ns, "ip", "addr", "add", farAddr+"/30", "dev", far)
	runCmd(t, "ip", "netns", "exec", ns, "ip", "link", "set", far, "up")
	runCmd(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

	const port = "5544"
	// ip and setpriv each exec the next: the process started is the
	// postmaster itself, which a signal shuts down.
	server := exec.Command("ip", "netns", "exec", ns, "setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups",
		filepath.Join(binDir, "postgres"), "-D", data, "-p", port,
		"-c", "listen_addresses="+farAddr, "-c", "unix_socket_directories="+dir,
		"-c", "fsync=off", "-c", "max_connections=40", "-c", "shared_buffers=16MB")
	logf, _ := os.Create(filepath.Join(dir, "postgres.log"))
	server.Stdout, server.Stderr = logf, logf
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		server.Process.Signal(syscall.SIGQUIT) // immediate shutdown: its clients are gone or cut off
		server.Wait()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "postgres.log")); err == nil {
				t.Logf("the cluster's log:\n%s", b)
			}
		}
	})
	socket := fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres", dir, port)
	var admin *pgx.Conn
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if admin, err = pgx.Connect(context.Background(), socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster behind the link did not start: %v", err)
		}
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	return &postgresBehindALink{
		dsn:      fmt.Sprintf("postgres://postgres@%s:%s/postgres?sslmode=disable", farAddr, port),
		hostAddr: nearAddr,
		admin:    admin,
		near:     near,
	}
}

// sweepLeftBehind removes what a run killed before its cleanups (go test's
// timeout panics past them) left: its namespace, with the cluster still
// running in it, its link and its folder, all named after its process.
// A leftover address would share a subnet with a later run's now and then.
func sweepLeftBehind(t *testing.T) {
	t.Helper()
	gone := func(pid string) bool {
		_, err := os.Stat("/proc/" + pid)
		return os.IsNotExist(err)
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		ns, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		pid, ok := strings.CutPrefix(ns, "wqv")
		if !ok || pid == "" || strings.Trim(pid, "0123456789") != "" || !gone(pid) {
			continue
		}
		pids, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, p := range strings.Fields(string(pids)) {
			if n, err := strconv.Atoi(p); err == nil {
				syscall.Kill(n, syscall.SIGKILL)
			}
		}
		exec.Command("ip", "link", "del", ns+"a").Run()
		exec.Command("ip", "netns", "del", ns).Run()
		t.Logf("removed namespace %s, left by a run that ended before its cleanups", ns)
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "wasmq-vanish-*"))
	for _, dir := range dirs {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), "wasmq-vanish-"), "-")
		if pid != "" && strings.Trim(pid, "0123456789") == "" && gone(pid) {
			os.RemoveAll(dir)
		}
	}
}

func runCmd(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
