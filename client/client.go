// Package client is the Go client of the wasmq HTTP API v1.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// Client talks to one wasmq server.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8765
	Token   string // bearer token; "" for a server without tenants
	HTTP    *http.Client
}

// New returns a client for baseURL with token.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: http.DefaultClient}
}

// Error is an API error: the HTTP status and the body's code, message and
// field, and for 429 and 503 how long the server asks to wait.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
	// RetryAfter is the answer's Retry-After (0 without one).
	RetryAfter time.Duration
	// UUIDs: with InDoubt, the jobs of the request, stored or not.
	UUIDs []string
}

// Temporary: the same request may succeed later (a tenant quota, 429;
// the store unavailable, 503). Nothing of the request was stored; send it
// again after RetryAfter (an identity key makes sure a job is made once
// whatever happens). An answer in doubt is not temporary: see InDoubt.
func (e *Error) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable && !e.InDoubt()
}

// InDoubt: the store lost its connection while the request's jobs were
// being committed and could not tell in time whether they were. Each job
// of UUIDs is stored or not, all alike: look one up (Client.Get) before
// sending the request again, or the jobs may be made twice.
func (e *Error) InDoubt() bool { return e.Code == "in_doubt" }

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s (%d %s, field %s)", e.Message, e.Status, e.Code, e.Field)
	}
	if len(e.UUIDs) > 0 { // in doubt: the jobs to look up, where a CLI user sees them
		ids := strings.Join(e.UUIDs, ", ")
		if len(e.UUIDs) > 3 {
			ids = fmt.Sprintf("%s… (%d jobs)", strings.Join(e.UUIDs[:3], ", "), len(e.UUIDs))
		}
		return fmt.Sprintf("%s (%d %s: %s)", e.Message, e.Status, e.Code, ids)
	}
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code)
}

// Job is a job as the API returns it. Its JSON form is the job document
// (every field, null when empty) and "deduplicated".
type Job struct {
	abi.Job
	Deduplicated bool `json:"deduplicated,omitempty"`
}

// MarshalJSON writes the job document and "deduplicated" (abi.Job's own
// MarshalJSON, promoted, would drop it).
func (j Job) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		*abi.JobDoc
		Deduplicated bool `json:"deduplicated"`
	}{j.Job.Doc(), j.Deduplicated})
}

// JobRequest is the body of Enqueue; only Func is required. ETA and
// ExpectedAt take an RFC 3339 string or a number of seconds from now.
type JobRequest struct {
	Ref         string         `json:"ref,omitempty"`
	Func        string         `json:"func"`
	Args        []any          `json:"args,omitempty"`
	Kwargs      map[string]any `json:"kwargs,omitempty"`
	Context     map[string]any `json:"context,omitempty"`
	Priority    *int           `json:"priority,omitempty"`
	ETA         any            `json:"eta,omitempty"`
	ExpectedAt  any            `json:"expected_at,omitempty"`
	MaxRetries  *int           `json:"max_retries,omitempty"`
	Description string         `json:"description,omitempty"`
	Channel     string         `json:"channel,omitempty"`
	IdentityKey string         `json:"identity_key,omitempty"`
	DependsOn   []string       `json:"depends_on,omitempty"`
	BatchSize   *int           `json:"batch_size,omitempty"`
}

// ListOptions filter List.
type ListOptions struct {
	State, Channel, Func, GraphUUID, IdentityKey, Query, Cursor, Tenant string
	Limit                                                               int
	// UserID and ModelName match exactly; the dates are RFC 3339 (or a
	// day, 2026-11-30); Args is a JSON scalar one of the args equals,
	// Kwargs a JSON object of the scalars kwargs must hold.
	UserID, ModelName                                    string
	CreatedAfter, CreatedBefore, EndedAfter, EndedBefore string
	Args, Kwargs                                         string
}

// Page is one page of jobs.
type Page struct {
	Jobs       []abi.Job `json:"jobs"`
	NextCursor string    `json:"next_cursor"`
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		if b, ok := body.([]byte); ok {
			r = bytes.NewReader(b)
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				return err
			}
			r = bytes.NewReader(b)
		}
	}
	contentType := ""
	if body != nil {
		contentType = "application/json"
	}
	return c.send(ctx, method, path, contentType, r, out)
}

// send is do with a body of any content type.
func (c *Client) send(ctx context.Context, method, path, contentType string, r io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, r)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode >= 400 {
		var e struct {
			Error struct {
				Code, Message, Field string
				UUIDs                []string
			} `json:"error"`
		}
		var wait time.Duration
		if n, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && n > 0 {
			wait = time.Duration(n) * time.Second
		}
		if json.Unmarshal(data, &e) != nil || e.Error.Message == "" {
			return &Error{Status: res.StatusCode, Code: "http", Message: strings.TrimSpace(string(data)), RetryAfter: wait}
		}
		return &Error{Status: res.StatusCode, Code: e.Error.Code, Message: e.Error.Message, Field: e.Error.Field, RetryAfter: wait, UUIDs: e.Error.UUIDs}
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Enqueue creates a job (or returns the one its identity key matches).
func (c *Client) Enqueue(ctx context.Context, r JobRequest) (Job, error) {
	var j Job
	return j, c.do(ctx, "POST", "/v1/jobs", r, &j)
}

// EnqueueBatch creates jobs atomically; DependsOn may name Refs.
func (c *Client) EnqueueBatch(ctx context.Context, rs []JobRequest) ([]Job, error) {
	var out struct {
		Jobs []Job `json:"jobs"`
	}
	return out.Jobs, c.do(ctx, "POST", "/v1/jobs:batch", map[string]any{"jobs": rs}, &out)
}

// Get returns one job.
func (c *Client) Get(ctx context.Context, uuid string) (abi.Job, error) {
	var j abi.Job
	return j, c.do(ctx, "GET", "/v1/jobs/"+url.PathEscape(uuid), nil, &j)
}

// List returns a page of jobs, newest first.
func (c *Client) List(ctx context.Context, o ListOptions) (Page, error) {
	q := o.query()
	if o.Limit > 0 {
		q.Set("limit", fmt.Sprint(o.Limit))
	}
	var p Page
	return p, c.do(ctx, "GET", "/v1/jobs?"+q.Encode(), nil, &p)
}

// query is the filter as query parameters (the page's cursor included).
func (o ListOptions) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"state": o.State, "channel": o.Channel, "func": o.Func, "graph_uuid": o.GraphUUID,
		"identity_key": o.IdentityKey, "q": o.Query, "cursor": o.Cursor, "tenant": o.Tenant, "user_id": o.UserID,
		"model_name": o.ModelName, "created_after": o.CreatedAfter, "created_before": o.CreatedBefore,
		"ended_after": o.EndedAfter, "ended_before": o.EndedBefore, "args": o.Args, "kwargs": o.Kwargs} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func (c *Client) action(ctx context.Context, uuid, verb string) (abi.Job, error) {
	var j abi.Job
	return j, c.do(ctx, "POST", "/v1/jobs/"+url.PathEscape(uuid)+"/"+verb, nil, &j)
}

// Requeue, Cancel and SetDone are the manual actions.
func (c *Client) Requeue(ctx context.Context, uuid string) (abi.Job, error) {
	return c.action(ctx, uuid, "requeue")
}
func (c *Client) Cancel(ctx context.Context, uuid string) (abi.Job, error) {
	return c.action(ctx, uuid, "cancel")
}
func (c *Client) SetDone(ctx context.Context, uuid string) (abi.Job, error) {
	return c.action(ctx, uuid, "done")
}

// Update patches a job not yet started; keys as in PATCH /v1/jobs/{uuid}.
func (c *Client) Update(ctx context.Context, uuid string, patch map[string]any) (abi.Job, error) {
	var j abi.Job
	return j, c.do(ctx, "PATCH", "/v1/jobs/"+url.PathEscape(uuid), patch, &j)
}

// Attempts returns a job's attempts with their plugin log lines.
func (c *Client) Attempts(ctx context.Context, uuid string) ([]abi.Attempt, error) {
	var out struct {
		Attempts []abi.Attempt `json:"attempts"`
	}
	return out.Attempts, c.do(ctx, "GET", "/v1/jobs/"+url.PathEscape(uuid)+"/attempts", nil, &out)
}

// Record returns the record of a job's attempt, for replay
// (docs/replay.md).
func (c *Client) Record(ctx context.Context, uuid string, attempt int) (abi.Record, error) {
	var r abi.Record
	return r, c.do(ctx, "GET", fmt.Sprintf("/v1/jobs/%s/attempts/%d/record", url.PathEscape(uuid), attempt), nil, &r)
}

// RecordModule returns the wasm bytes of the module a record refers to.
func (c *Client) RecordModule(ctx context.Context, uuid string, attempt int) ([]byte, error) {
	var b []byte
	return b, c.do(ctx, "GET", fmt.Sprintf("/v1/jobs/%s/attempts/%d/record/module", url.PathEscape(uuid), attempt), nil, &b)
}

// Usage returns what attempts used per tenant and function over the
// whole minutes in [from, to): the caller's own, or for the admin
// tenant's ("" = every tenant).
func (c *Client) Usage(ctx context.Context, from, to time.Time, tenant string) ([]abi.UsageRow, error) {
	q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	var out struct {
		Usage []abi.UsageRow `json:"usage"`
	}
	return out.Usage, c.do(ctx, "GET", "/v1/usage?"+q.Encode(), nil, &out)
}

// Channels returns the channels with live counts.
func (c *Client) Channels(ctx context.Context) ([]abi.ChannelStatus, error) {
	var out struct {
		Channels []abi.ChannelStatus `json:"channels"`
	}
	return out.Channels, c.do(ctx, "GET", "/v1/channels", nil, &out)
}

// Plugins returns the plugins visible to the caller as raw JSON objects.
func (c *Client) Plugins(ctx context.Context) ([]map[string]any, error) {
	var out struct {
		Plugins []map[string]any `json:"plugins"`
	}
	return out.Plugins, c.do(ctx, "GET", "/v1/plugins", nil, &out)
}

// UploadPlugin installs a tenant plugin from its .wasm bytes.
func (c *Client) UploadPlugin(ctx context.Context, name string, wasm []byte) (map[string]any, error) {
	var out map[string]any
	return out, c.send(ctx, "PUT", "/v1/plugins/"+url.PathEscape(name), "application/wasm", bytes.NewReader(wasm), &out)
}

// UploadPluginWithConfig installs a tenant plugin and its sidecar (the
// text of NAME.toml: function config, input = "raw", config_get values)
// in one request; both are validated before either is kept.
func (c *Client) UploadPluginWithConfig(ctx context.Context, name string, wasm, config []byte) (map[string]any, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range []struct {
		name string
		data []byte
	}{{"wasm", wasm}, {"config", config}} {
		w, err := mw.CreateFormFile(p.name, name+map[string]string{"wasm": ".wasm", "config": ".toml"}[p.name])
		if err != nil {
			return nil, err
		}
		w.Write(p.data)
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	var out map[string]any
	return out, c.send(ctx, "PUT", "/v1/plugins/"+url.PathEscape(name), mw.FormDataContentType(), &buf, &out)
}

// SetPluginConfig replaces the sidecar of one of the tenant's plugins.
func (c *Client) SetPluginConfig(ctx context.Context, name string, config []byte) (map[string]any, error) {
	var out map[string]any
	return out, c.send(ctx, "PUT", "/v1/plugins/"+url.PathEscape(name)+"/config", "application/toml", bytes.NewReader(config), &out)
}

// EnqueueRaw creates a job from a JSON body as POST /v1/jobs takes it.
func (c *Client) EnqueueRaw(ctx context.Context, body []byte) (Job, error) {
	var j Job
	return j, c.do(ctx, "POST", "/v1/jobs", body, &j)
}
