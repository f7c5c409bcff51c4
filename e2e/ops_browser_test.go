package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/wasmq/wasmq/abi"
)

// The admin pauses a channel, sets its capacity and takes it back to its
// configuration from the Channels page; each change is the server's.
func TestOperatorControlsAChannelFromTheChannelsPage(t *testing.T) {
	s := startServer(t)
	ctx := newBrowser(t)
	rowOf := func(ch string) string { return fmt.Sprintf(`tr[data-channel="%s"]`, ch) }
	channel := func(name string) abi.ChannelStatus {
		var out struct{ Channels []abi.ChannelStatus }
		call(t, s.URL, s.Admin, http.MethodGet, "/v1/channels", nil, http.StatusOK, &out)
		for _, c := range out.Channels {
			if c.Name == name {
				return c
			}
		}
		t.Fatalf("no channel %s", name)
		return abi.ChannelStatus{}
	}
	run(t, ctx, "open the channels page", chromedp.Navigate(s.URL+"/#/channels"))
	useToken(t, ctx, s.Admin)
	run(t, ctx, "pause root",
		chromedp.WaitVisible(chromedp.CSS(rowOf("root")+` button[data-channel-action="pause"]`)),
		chromedp.Click(chromedp.CSS(rowOf("root")+` button[data-channel-action="pause"]`)))
	waitJS(t, ctx, "root shows paused, set at run time", fmt.Sprintf(`document.querySelector('%s button[data-channel-action="resume"]') !== null &&
		document.querySelector('%s .flag.override') !== null`, rowOf("root"), rowOf("root")))
	if c := channel("root"); !c.Paused || c.Override == nil {
		t.Fatalf("the server's root after the pause: %+v", c)
	}
	// A job waits while root is paused.
	j := createJob(t, s.URL, s.TokenA, map[string]any{"func": okFunc, "args": okArgs})
	time.Sleep(300 * time.Millisecond)
	waitState(t, s.URL, s.TokenA, j.UUID, abi.StatePending, time.Second)

	run(t, ctx, "set root's capacity to 7",
		chromedp.Click(chromedp.CSS(rowOf("root")+` details.ch-edit summary`)),
		chromedp.WaitVisible(chromedp.CSS(rowOf("root")+` input[name="capacity"]`)),
		chromedp.SetValue(chromedp.CSS(rowOf("root")+` input[name="capacity"]`), "7"),
		chromedp.Click(chromedp.CSS(rowOf("root")+` form.ch-form button[type="submit"]`)))
	waitJS(t, ctx, "root shows capacity 7", fmt.Sprintf(`document.querySelector('%s td.num').textContent === "7"`, rowOf("root")))
	if c := channel("root"); c.Capacity != 7 || !c.Paused {
		t.Fatalf("the server's root after the edit: %+v", c)
	}
	run(t, ctx, "resume root", chromedp.Click(chromedp.CSS(rowOf("root")+` button[data-channel-action="resume"]`)))
	waitState(t, s.URL, s.TokenA, j.UUID, abi.StateDone, 10*time.Second)

	run(t, ctx, "back to the configuration",
		chromedp.WaitVisible(chromedp.CSS(rowOf("root")+` button[data-channel-action="pause"]`)),
		chromedp.Click(chromedp.CSS(rowOf("root")+` details.ch-edit summary`)),
		chromedp.WaitVisible(chromedp.CSS(rowOf("root")+` button[data-reset]`)),
		chromedp.Click(chromedp.CSS(rowOf("root")+` button[data-reset]`)))
	waitJS(t, ctx, "root shows its configured capacity, no override", fmt.Sprintf(`document.querySelector('%s .flag.override') === null &&
		document.querySelector('%s td.num').textContent === "4"`, rowOf("root"), rowOf("root")))
	if c := channel("root"); c.Override != nil || c.Capacity != 4 {
		t.Fatalf("the server's root after the reset: %+v", c)
	}

	// A tenant's token is refused, and says so.
	useToken(t, ctx, s.TokenA)
	run(t, ctx, "a tenant tries to pause root",
		chromedp.Navigate(s.URL+"/#/channels"),
		chromedp.WaitVisible(chromedp.CSS(rowOf("root")+` button[data-channel-action="pause"]`)),
		chromedp.Click(chromedp.CSS(rowOf("root")+` button[data-channel-action="pause"]`)))
	waitJS(t, ctx, "the refusal is shown", `document.getElementById('toast').textContent.includes("refused")`)
	if c := channel("root"); c.Paused {
		t.Fatal("a tenant paused root")
	}
}

// With a whole page selected, the list offers every matching job; the
// action, confirmed, moves them all (another tenant's untouched).
func TestOperatorCancelsAllMatchingJobsAcrossPages(t *testing.T) {
	s := startServer(t)
	ctx := newBrowser(t)
	var jobs []map[string]any
	for i := range 60 {
		jobs = append(jobs, map[string]any{"func": okFunc, "args": okArgs, "eta": 3600, "description": fmt.Sprintf("later %d", i)})
	}
	call(t, s.URL, s.TokenA, http.MethodPost, "/v1/jobs:batch", map[string]any{"jobs": jobs}, http.StatusCreated, nil)
	theirs := createJob(t, s.URL, s.TokenB, map[string]any{"func": okFunc, "args": okArgs, "eta": 3600})

	run(t, ctx, "open the pending jobs", chromedp.Navigate(s.URL+"/#/jobs?state=pending"))
	useToken(t, ctx, s.TokenA)
	run(t, ctx, "select the whole page",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-uuid]`)),
		chromedp.Click(chromedp.CSS(`th.c-sel input[type=checkbox]`)))
	waitJS(t, ctx, "every match is offered, counted", `(() => { const b = document.querySelector('button.all-matching');
		return b && !b.hidden && b.textContent === "Select all 60 matching"; })()`)
	run(t, ctx, "select every match, then cancel, confirmed",
		chromedp.Click(chromedp.CSS(`button.all-matching`)),
		chromedp.Click(chromedp.CSS(`button[data-action="cancel"]`)))
	waitJS(t, ctx, "the confirmation names the count", `document.querySelector('button[data-action="cancel"]').textContent === "Confirm cancel of all 60 matching"`)
	run(t, ctx, "confirm", chromedp.Click(chromedp.CSS(`button[data-action="cancel"]`)))
	waitJS(t, ctx, "the toast tells what changed", `document.getElementById('toast').textContent.includes("60 of 60")`)
	var page struct{ Jobs []abi.Job }
	call(t, s.URL, s.TokenA, http.MethodGet, "/v1/jobs?state=pending", nil, http.StatusOK, &page)
	if len(page.Jobs) != 0 {
		t.Fatalf("%d jobs still pending", len(page.Jobs))
	}
	waitState(t, s.URL, s.TokenB, theirs.UUID, abi.StatePending, time.Second)
}

// More filters: set from the address, shown open, applied.
func TestJobsListFiltersByUserAndKwargs(t *testing.T) {
	s := startServer(t)
	ctx := newBrowser(t)
	alice := createJob(t, s.URL, s.TokenA, map[string]any{"func": okFunc, "args": okArgs, "eta": 3600,
		"kwargs": map[string]any{"partner_id": 7}, "context": map[string]any{"user": "alice"}})
	bob := createJob(t, s.URL, s.TokenA, map[string]any{"func": okFunc, "args": okArgs, "eta": 3600,
		"kwargs": map[string]any{"partner_id": 8}, "context": map[string]any{"user": "bob"}})
	run(t, ctx, "open the list filtered by user", chromedp.Navigate(s.URL+"/#/jobs?user_id=alice"))
	useToken(t, ctx, s.TokenA)
	waitJS(t, ctx, "only alice's job, the filter shown", fmt.Sprintf(`document.querySelector('%s') !== null &&
		document.querySelector('%s') === null && document.querySelector('details.more-filters').open &&
		document.getElementById('f-user_id').value === "alice"`, row(alice.UUID), row(bob.UUID)))
	filterBy := func(what, js string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js+`; document.querySelector('form.filters').requestSubmit(); true`)); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	filterBy("filter by a kwarg instead", `document.getElementById('f-user_id').value = '';
		document.getElementById('f-kwargs').value = '{"partner_id": 8}'`)
	waitJS(t, ctx, "only bob's job", fmt.Sprintf(`document.querySelector('%s') !== null && document.querySelector('%s') === null`,
		row(bob.UUID), row(alice.UUID)))
	filterBy("a bad filter", `document.getElementById('f-kwargs').value = '{"partner_id":'`)
	waitJS(t, ctx, "the error names the parameter", `document.querySelector('.msg .error-box') !== null &&
		document.querySelector('.msg .error-box').textContent.includes("kwargs")`)
}

// A running job's progress shows as a bar on its page, updated live.
func TestJobPageShowsLiveProgress(t *testing.T) {
	s := startServer(t)
	ctx := newBrowser(t)
	// The job waits until its page is open: a browser slow to start on a
	// busy machine must not miss a run that lasts four seconds.
	j := createJob(t, s.URL, s.TokenA, map[string]any{"func": "testkit.progress", "kwargs": map[string]any{"steps": 40, "ms": 100}, "eta": 3600})
	run(t, ctx, "open the job", chromedp.Navigate(s.URL+"/#/jobs/"+j.UUID))
	useToken(t, ctx, s.TokenA)
	waitJS(t, ctx, "the page shows it pending", `document.querySelector('.job-page[data-state="pending"]') !== null`)
	call(t, s.URL, s.TokenA, http.MethodPatch, "/v1/jobs/"+j.UUID, map[string]any{"eta": 0}, http.StatusOK, nil)
	waitJS(t, ctx, "a progress bar while it runs", `(() => { const b = document.querySelector('.job-page[data-state="started"] .job-progress [role=progressbar]');
		return b && Number(b.getAttribute('aria-valuenow')) > 0 && Number(b.getAttribute('aria-valuenow')) < 100; })()`)
	first, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.job-progress [role=progressbar]').getAttribute('aria-valuenow')`))
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the bar moves", fmt.Sprintf(`Number(document.querySelector('.job-progress [role=progressbar]').getAttribute('aria-valuenow')) > %s`, first))
	waitJS(t, ctx, "done at 100 with the last message", `document.querySelector('.job-page[data-state="done"] .job-progress') !== null &&
		document.querySelector('.job-progress [role=progressbar]').getAttribute('aria-valuenow') === "100" &&
		document.querySelector('.job-progress').textContent.includes("step 40/40")`)
}
