package client

import (
	"context"
	"net/url"

	"github.com/wasmq/wasmq/abi"
)

// Schedule is a periodic job as the API shows it (docs/schedules.md):
// its definition (name, cron, timezone, missed_runs, the job template),
// next_runs, last_job and the rest, as decoded JSON.
type Schedule = map[string]any

// Schedules lists the caller's schedules.
func (c *Client) Schedules(ctx context.Context) ([]Schedule, error) {
	var out struct {
		Schedules []Schedule `json:"schedules"`
	}
	err := c.do(ctx, "GET", "/v1/schedules", nil, &out)
	return out.Schedules, err
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
