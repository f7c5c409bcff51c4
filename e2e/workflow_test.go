package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/wasmq/wasmq/abi"
)

// waitJS polls a JavaScript predicate in the page until it is truthy.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool]("!!("+expr+")", chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(19*time.Second))); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// useToken types a token into the header field, as an operator would.
func useToken(t *testing.T, ctx context.Context, token string) {
	t.Helper()
	run(t, ctx, "save the token",
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SetValue(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS("#token-form button")))
}

func row(uuid string) string { return fmt.Sprintf(`tr[data-uuid="%s"]`, uuid) }

func TestOperatorRequeuesAFailedJobAndWatchesItFinish(t *testing.T) {
	s := startServer(t)
	ctx := newBrowser(t)
	failing := createJob(t, s.URL, s.TokenA, failFirstJob("nightly import"))
	waitState(t, s.URL, s.TokenA, failing.UUID, abi.StateFailed, 15*time.Second)

	run(t, ctx, "open the jobs list", chromedp.Navigate(s.URL+"/"))
	useToken(t, ctx, s.TokenA)
	run(t, ctx, "filter to failed jobs",
		chromedp.WaitVisible(chromedp.CSS(`button.count[data-state="failed"]`)),
		chromedp.Click(chromedp.CSS(`button.count[data-state="failed"]`)))
	waitJS(t, ctx, "only failed jobs listed", fmt.Sprintf(`location.hash.includes("state=failed") &&
		document.querySelector('%s') !== null &&
		[...document.querySelectorAll('tr[data-uuid]')].every(r => r.dataset.state === "failed")`, row(failing.UUID)))

	run(t, ctx, "open the failed job", chromedp.Click(chromedp.CSS(row(failing.UUID)+" a.job-link")))
	waitJS(t, ctx, "job page shows the failure", `document.querySelector('.job-page[data-state="failed"] .failure') !== null`)
	run(t, ctx, "requeue it", chromedp.Click(chromedp.CSS(`button[data-action="requeue"]`)))
	waitJS(t, ctx, "the job page shows it done", `document.querySelector('.job-page[data-state="done"]') !== null`)
	waitJS(t, ctx, "attempts of both runs listed", `document.querySelectorAll('.attempts > li').length >= 2`)
	waitJS(t, ctx, "each attempt shows the fuel it used", `[...document.querySelectorAll('.attempts > li')].every(li =>
		Number((li.querySelector('.usage [data-k="fuel"] strong') || {}).textContent.replace(/\D/g, '')) > 0)`)
	waitState(t, s.URL, s.TokenA, failing.UUID, abi.StateDone, time.Second)
}

func TestOperatorCancelsAPendingJobFromTheList(t *testing.T) {
	s := startServer(t)
	ctx := newBrowser(t)
	later := createJob(t, s.URL, s.TokenA, map[string]any{"func": okFunc, "args": okArgs, "eta": 3600, "description": "send tomorrow"})

	run(t, ctx, "open the pending jobs", chromedp.Navigate(s.URL+"/#/jobs?state=pending"))
	useToken(t, ctx, s.TokenA)
	run(t, ctx, "select the pending job",
		chromedp.WaitVisible(chromedp.CSS(row(later.UUID))),
		chromedp.Click(chromedp.CSS(row(later.UUID)+" input[type=checkbox]")),
		chromedp.WaitEnabled(chromedp.CSS(`button[data-action="cancel"]`)))
	// Cancel cascades to dependents, so the button asks for a second click.
	run(t, ctx, "cancel it",
		chromedp.Click(chromedp.CSS(`button[data-action="cancel"]`)),
		chromedp.Click(chromedp.CSS(`button[data-action="cancel"]`)))
	waitJS(t, ctx, "the job leaves the pending list", fmt.Sprintf(`document.querySelector('%s') === null &&
		document.querySelector('table.jobs-table tbody') !== null`, row(later.UUID)))
	waitState(t, s.URL, s.TokenA, later.UUID, abi.StateCancelled, time.Second)
}

func TestJobPageDrawsTheDependencyGraphOfABatchChain(t *testing.T) {
	s := startServer(t)
	ctx := newBrowser(t)
	var batch struct{ Jobs []abi.Job }
	call(t, s.URL, s.TokenA, http.MethodPost, "/v1/jobs:batch", map[string]any{"jobs": []map[string]any{
		{"ref": "fetch", "func": okFunc, "args": okArgs, "description": "fetch"},
		{"ref": "parse", "func": okFunc, "args": okArgs, "description": "parse", "depends_on": []string{"fetch"}},
		{"ref": "load", "func": okFunc, "args": okArgs, "description": "load", "depends_on": []string{"parse"}},
	}}, http.StatusCreated, &batch)
	if len(batch.Jobs) != 3 {
		t.Fatalf("batch created %d jobs, want 3", len(batch.Jobs))
	}
	last := batch.Jobs[2]

	run(t, ctx, "open the last job of the chain", chromedp.Navigate(s.URL+"/#/jobs/"+last.UUID))
	useToken(t, ctx, s.TokenA)
	waitJS(t, ctx, "three nodes and two edges drawn", `document.querySelectorAll('svg.graph a.node').length === 3 &&
		document.querySelectorAll('svg.graph path.edge').length === 2`)
	waitJS(t, ctx, "the current job is outlined", fmt.Sprintf(`document.querySelector('svg.graph a.node.current[data-uuid="%s"]') !== null`, last.UUID))
	waitJS(t, ctx, "nodes follow the jobs' states", `[...document.querySelectorAll('svg.graph a.node')].every(n => n.dataset.state === "done")`)
}

func TestTenantTokenSeesOnlyItsOwnJobs(t *testing.T) {
	s := startServer(t)
	ctx := newBrowser(t)
	secret := createJob(t, s.URL, s.TokenA, map[string]any{"func": okFunc, "args": okArgs, "eta": 3600, "description": "tenant A only"})
	mine := createJob(t, s.URL, s.TokenB, map[string]any{"func": okFunc, "args": okArgs, "eta": 3600, "description": "tenant B job"})

	run(t, ctx, "open the list", chromedp.Navigate(s.URL+"/"))
	useToken(t, ctx, s.TokenB)
	run(t, ctx, "tenant B's job is listed", chromedp.WaitVisible(chromedp.CSS(row(mine.UUID))))
	waitJS(t, ctx, "tenant A's job is not", fmt.Sprintf(`document.querySelector('%s') === null`, row(secret.UUID)))

	run(t, ctx, "open tenant A's job by URL", chromedp.Navigate(s.URL+"/jobs/"+secret.UUID))
	waitJS(t, ctx, "it is not found", `document.querySelector('.notfound') !== null && document.body.innerText.includes("Job not found")`)
	var leaked bool
	leaked, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.body.innerText.includes("tenant A only")`))
	if err != nil || leaked {
		t.Fatalf("tenant A's description shown to tenant B (err %v)", err)
	}
}
