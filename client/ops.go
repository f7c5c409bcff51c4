package client

import (
	"context"
	"net/url"

	"github.com/wasmq/wasmq/abi"
)

// BulkResult is what a bulk action did.
type BulkResult struct {
	Matched int `json:"matched"`
	Changed int `json:"changed"`
	Skipped int `json:"skipped"`
}

// Bulk applies a manual action ("requeue", "cancel" or "done") to every
// job matching the filter (Limit and Cursor are ignored).
func (c *Client) Bulk(ctx context.Context, action string, o ListOptions) (BulkResult, error) {
	o.Cursor = ""
	var out BulkResult
	return out, c.do(ctx, "POST", "/v1/jobs:"+url.PathEscape(action)+"?"+o.query().Encode(), nil, &out)
}

// PauseChannel and ResumeChannel stop and restart the starts of a
// channel's jobs, on every node, until changed again (admin).
func (c *Client) PauseChannel(ctx context.Context, name string) (abi.ChannelStatus, error) {
	var out abi.ChannelStatus
	return out, c.do(ctx, "POST", "/v1/channels/"+url.PathEscape(name)+":pause", nil, &out)
}

func (c *Client) ResumeChannel(ctx context.Context, name string) (abi.ChannelStatus, error) {
	var out abi.ChannelStatus
	return out, c.do(ctx, "POST", "/v1/channels/"+url.PathEscape(name)+":resume", nil, &out)
}

// SetChannel overrides a channel's settings: keys capacity, throttle and
// paused; a nil value returns that setting to the configuration (admin).
func (c *Client) SetChannel(ctx context.Context, name string, patch map[string]any) (abi.ChannelStatus, error) {
	var out abi.ChannelStatus
	return out, c.do(ctx, "PATCH", "/v1/channels/"+url.PathEscape(name), patch, &out)
}
