package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/wasmq/wasmq/abi"
)

func scheduleRow(name string) string { return fmt.Sprintf(`tr[data-schedule="%s"]`, name) }

// An operator sees a tenant's schedules with their next runs, runs one
// now, follows its last job, and pauses and resumes it; another tenant's
// schedule is not on the page.
func TestOperatorRunsPausesAndResumesASchedule(t *testing.T) {
	s := startServer(t)
	ctx := newBrowser(t)
	call(t, s.URL, s.TokenA, http.MethodPost, "/v1/schedules", map[string]any{"name": "nightly-report", "cron": "0 3 * * *",
		"timezone": "Europe/Brussels", "func": okFunc, "args": okArgs, "description": "nightly report"}, http.StatusCreated, nil)
	call(t, s.URL, s.TokenB, http.MethodPost, "/v1/schedules", map[string]any{"name": "globex-secret", "cron": "@hourly",
		"func": okFunc, "args": okArgs}, http.StatusCreated, nil)

	run(t, ctx, "open the schedules page", chromedp.Navigate(s.URL+"/#/schedules"))
	useToken(t, ctx, s.TokenA)
	run(t, ctx, "the schedule is listed", chromedp.WaitVisible(chromedp.CSS(scheduleRow("nightly-report"))))
	waitJS(t, ctx, "with its next runs, in its zone", fmt.Sprintf(`document.querySelectorAll('%s .next-runs > div').length === 3 &&
		document.querySelector('%s').innerText.includes("Europe/Brussels")`, scheduleRow("nightly-report"), scheduleRow("nightly-report")))
	waitJS(t, ctx, "the other tenant's is not", fmt.Sprintf(`document.querySelector('%s') === null && !document.body.innerText.includes("globex-secret")`,
		scheduleRow("globex-secret")))
	waitJS(t, ctx, "no job yet", fmt.Sprintf(`document.querySelector('%s .last-job').innerText.includes("none yet")`, scheduleRow("nightly-report")))

	run(t, ctx, "run it now", chromedp.Click(chromedp.CSS(scheduleRow("nightly-report")+` button[data-action="run"]`)))
	waitJS(t, ctx, "its last job shows, then finishes", fmt.Sprintf(`document.querySelector('%s .last-job a.job-link') !== null &&
		document.querySelector('%s .last-job .badge.s-done') !== null`, scheduleRow("nightly-report"), scheduleRow("nightly-report")))

	run(t, ctx, "pause it", chromedp.Click(chromedp.CSS(scheduleRow("nightly-report")+` button[data-action="pause"]`)))
	waitJS(t, ctx, "it shows paused, with no next run", fmt.Sprintf(`document.querySelector('%s[data-paused="true"] button[data-action="resume"]') !== null &&
		document.querySelectorAll('%s .next-runs > div').length === 0`, scheduleRow("nightly-report"), scheduleRow("nightly-report")))
	var sc map[string]any
	call(t, s.URL, s.TokenA, http.MethodGet, "/v1/schedules/nightly-report", nil, http.StatusOK, &sc)
	if sc["paused"] != true {
		t.Fatalf("the pause did not reach the server: %v", sc)
	}
	run(t, ctx, "resume it", chromedp.Click(chromedp.CSS(scheduleRow("nightly-report")+` button[data-action="resume"]`)))
	waitJS(t, ctx, "it shows active again", fmt.Sprintf(`document.querySelector('%s[data-paused="false"] button[data-action="pause"]') !== null`,
		scheduleRow("nightly-report")))

	run(t, ctx, "open its last job", chromedp.Click(chromedp.CSS(scheduleRow("nightly-report")+` .last-job a.job-link`)))
	waitJS(t, ctx, "the job page of the run", `document.querySelector('.job-page[data-state="done"]') !== null &&
		document.body.innerText.includes("nightly report")`)
	var jobs struct{ Jobs []abi.Job }
	call(t, s.URL, s.TokenA, http.MethodGet, "/v1/jobs", nil, http.StatusOK, &jobs)
	if len(jobs.Jobs) != 1 {
		t.Fatalf("%d jobs after one run now, want 1", len(jobs.Jobs))
	}
}

// The schedules page shows a page of 100 at a time, by tenant and name,
// as the API serves them: the admin over two tenants' 120 schedules sees
// 100, then the 20 after, and back.
func TestTheSchedulesPageShowsAPageAtATime(t *testing.T) {
	s := startServer(t)
	ctx := newBrowser(t)
	for i := range 60 {
		for _, token := range []string{s.TokenA, s.TokenB} {
			call(t, s.URL, token, http.MethodPost, "/v1/schedules", map[string]any{"name": fmt.Sprintf("s%02d", i), "cron": "0 3 * * *",
				"func": okFunc, "args": okArgs}, http.StatusCreated, nil)
		}
	}
	run(t, ctx, "open the schedules page", chromedp.Navigate(s.URL+"/#/schedules"))
	useToken(t, ctx, s.Admin)
	waitJS(t, ctx, "the first page: 100 rows, a next page", `document.querySelectorAll('tr[data-schedule]').length === 100 &&
		!document.querySelector('.schedules-pager').hidden && !document.querySelector('.schedules-pager button:last-child').disabled &&
		document.querySelector('.schedules-pager button:first-child').disabled`)
	run(t, ctx, "next page", chromedp.Click(chromedp.CSS(`.schedules-pager button:last-child`)))
	waitJS(t, ctx, "the 20 after: the second tenant's last", `document.querySelectorAll('tr[data-schedule]').length === 20 &&
		document.querySelector('tr[data-schedule]').dataset.schedule === 's40' &&
		document.querySelector('.schedules-pager button:last-child').disabled`)
	run(t, ctx, "previous page", chromedp.Click(chromedp.CSS(`.schedules-pager button:first-child`)))
	waitJS(t, ctx, "the first page again", `document.querySelectorAll('tr[data-schedule]').length === 100 &&
		document.querySelector('tr[data-schedule]').dataset.schedule === 's00'`)
}
