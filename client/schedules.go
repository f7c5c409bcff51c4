package client

import (
	"context"
	"net/url"
	"strconv"

	"github.com/wasmq/wasmq/abi"
)

// Schedule is a periodic job as the API shows it (docs/schedules.md):
// its definition (name, cron, timezone, missed_runs, the job template),
// next_runs, last_job and the rest, as decoded JSON.
type Schedule = map[string]any

// Schedules lists all the caller's schedules, reading every page.
func (c *Client) Schedules(ctx context.Context) ([]Schedule, error) {
	var all []Schedule
	cursor := ""
	for {
		page, next, err := c.SchedulePage(ctx, cursor, 0)
		if err != nil {
			return all, err
		}
		all = append(all, page...)
		if next == "" || next == cursor {
			return all, nil
		}
		cursor = next
	}
}

// SchedulePage reads one page of the caller's schedules by name, from
// cursor ("" from the first), of at most limit (0: the server's 100),
// and the cursor of the next page ("" on the last).
func (c *Client) SchedulePage(ctx context.Context, cursor string, limit int) ([]Schedule, string, error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Schedules  []Schedule `json:"schedules"`
		NextCursor string     `json:"next_cursor"`
	}
	path := "/v1/schedules"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	err := c.do(ctx, "GET", path, nil, &out)
	return out.Schedules, out.NextCursor, err
}

// CreateSchedule stores a schedule; def is the body of POST /v1/schedules.
func (c *Client) CreateSchedule(ctx context.Context, def map[string]any) (Schedule, error) {
	var out Schedule
	err := c.do(ctx, "POST", "/v1/schedules", def, &out)
	return out, err
}

// DeleteSchedule removes a schedule; the jobs it created stay.
func (c *Client) DeleteSchedule(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/v1/schedules/"+url.PathEscape(name), nil, nil)
}

// PauseSchedule and ResumeSchedule stop and restart a schedule's firings.
func (c *Client) PauseSchedule(ctx context.Context, name string) (Schedule, error) {
	var out Schedule
	err := c.do(ctx, "POST", "/v1/schedules/"+url.PathEscape(name)+":pause", nil, &out)
	return out, err
}

func (c *Client) ResumeSchedule(ctx context.Context, name string) (Schedule, error) {
	var out Schedule
	err := c.do(ctx, "POST", "/v1/schedules/"+url.PathEscape(name)+":resume", nil, &out)
	return out, err
}

// RunSchedule creates the schedule's job now.
func (c *Client) RunSchedule(ctx context.Context, name string) (abi.Job, error) {
	var out abi.Job
	err := c.do(ctx, "POST", "/v1/schedules/"+url.PathEscape(name)+":run", nil, &out)
	return out, err
}
