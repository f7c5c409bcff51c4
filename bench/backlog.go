package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/server"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/postgres"
)

// backlogETA: the backlog's jobs are due a day after they are loaded,
// long after the runs end.
const backlogETA = 24 * time.Hour

// loadBacklog stores o.Backlog future jobs and o.History done ones
// before the node starts. On PostgreSQL it is the bench's own loader
// (postgres.LoadBacklog: INSERT … SELECT generate_series, a million jobs
// in seconds); on SQLite, the ordinary insert path in batches of 1,000
// (future jobs only: SQLite's history would need the job's whole life
// written, and a file with a million jobs is not what SQLite is for).
func loadBacklog(ctx context.Context, n *server.Node, f config.File, o Options, progress func(string, int) *bar) error {
	if o.Backlog <= 0 && o.History <= 0 {
		return nil
	}
	eta := time.Now().Add(backlogETA)
	b := progress("backlog", o.Backlog+o.History)
	defer b.end()
	if f.Store.Driver == "postgres" {
		return postgres.LoadBacklog(ctx, o.DSN, postgres.Backlog{Tenant: "default", Func: o.Func, Channel: abi.RootChannel,
			Future: o.Backlog, ETA: eta, Done: o.History}, func(done, _ int) { b.show(done) })
	}
	if o.History > 0 {
		return fmt.Errorf("bench: --history needs --store postgres")
	}
	for i := 0; i < o.Backlog; i += 1000 {
		batch := make([]store.NewJob, 0, 1000)
		for k := i; k < min(i+1000, o.Backlog); k++ {
			j := job(o.Func)
			j.ETA = &eta
			batch = append(batch, j)
		}
		if _, err := n.Store.Insert(ctx, batch); err != nil {
			return err
		}
		b.show(i + len(batch))
	}
	return nil
}

// bar is a progress bar on a terminal (nothing when w is nil), redrawn
// at most ten times a second.
type bar struct {
	w     io.Writer
	phase string
	total int
	start time.Time
	drawn time.Time
}

func newBar(w io.Writer, phase string, total int) *bar {
	return &bar{w: w, phase: phase, total: max(total, 1), start: time.Now()}
}

func (b *bar) show(done int) {
	if b.w == nil || time.Since(b.drawn) < 100*time.Millisecond {
		return
	}
	b.drawn = time.Now()
	const width = 30
	filled := min(width, done*width/b.total)
	fmt.Fprintf(b.w, "\r%-8s [%s%s] %3d%% %d/%d %v ", b.phase, strings.Repeat("#", filled), strings.Repeat(" ", width-filled),
		done*100/b.total, done, b.total, time.Since(b.start).Round(time.Second))
}

func (b *bar) end() {
	if b.w != nil && !b.drawn.IsZero() {
		fmt.Fprint(b.w, "\r\033[K") // the report follows on a clean line
	}
}
