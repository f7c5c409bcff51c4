package abi

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the document as json.Marshal writes it, byte for
// byte, without its reflection: a created job's answer is encoded once
// per request, and encoding/json took 4 µs of it (BenchmarkJobDocument).
// What is not plain (a string to escape, JSON with spaces to compact, a
// float, progress, usage) goes through encoding/json itself, so the two
// never differ; an error is encoding/json's.
func (d *JobDoc) AppendJSON(b []byte) ([]byte, error) {
	w := docWriter{b: b}
	w.str(`{"uuid":`, d.UUID)
	w.str(`,"tenant":`, d.Tenant)
	w.str(`,"func":`, d.Func)
	w.raw(`,"args":`, d.Args)
	w.raw(`,"kwargs":`, d.Kwargs)
	w.raw(`,"context":`, d.Context)
	w.optStr(`,"user_id":`, d.UserID)
	w.optStr(`,"model_name":`, d.ModelName)
	w.str(`,"func_string":`, d.FuncString)
	w.str(`,"description":`, d.Description)
	w.str(`,"channel":`, d.Channel)
	w.int(`,"priority":`, int64(d.Priority))
	w.optTime(`,"eta":`, d.ETA)
	w.optTime(`,"expected_at":`, d.ExpectedAt)
	w.int(`,"max_retries":`, int64(d.MaxRetries))
	w.int(`,"retry":`, int64(d.Retry))
	w.int(`,"attempt":`, int64(d.Attempt))
	w.optStr(`,"identity_key":`, d.IdentityKey)
	w.optStr(`,"graph_uuid":`, d.GraphUUID)
	w.strs(`,"depends_on":`, d.DependsOn)
	w.str(`,"state":`, string(d.State))
	w.raw(`,"result":`, d.Result)
	w.optStr(`,"exc_name":`, d.ExcName)
	w.optStr(`,"exc_message":`, d.ExcMessage)
	w.optStr(`,"exc_info":`, d.ExcInfo)
	w.time(`,"date_created":`, d.DateCreated)
	w.optTime(`,"date_enqueued":`, d.DateEnqueued)
	w.optTime(`,"date_started":`, d.DateStarted)
	w.optTime(`,"date_done":`, d.DateDone)
	w.optTime(`,"date_cancelled":`, d.DateCancelled)
	if d.ExecTime == nil {
		w.null(`,"exec_time":`)
	} else {
		w.marshal(`,"exec_time":`, *d.ExecTime)
	}
	w.bool(`,"late":`, d.Late)
	w.optStr(`,"worker_id":`, d.WorkerID)
	w.optStr(`,"plugin_sha256":`, d.PluginSHA256)
	w.int(`,"seq":`, d.Seq)
	w.optTime(`,"lease_until":`, d.LeaseUntil)
	if d.Progress == nil {
		w.null(`,"progress":`)
	} else {
		w.marshal(`,"progress":`, d.Progress)
	}
	if d.Usage == nil {
		w.null(`,"usage":`)
	} else {
		w.marshal(`,"usage":`, d.Usage)
	}
	w.b = append(w.b, '}')
	return w.b, w.err
}

// docWriter appends the fields of a document; the first error stays.
type docWriter struct {
	b   []byte
	err error
}

func (w *docWriter) null(key string) { w.b = append(append(w.b, key...), "null"...) }

func (w *docWriter) int(key string, n int64) {
	w.b = strconv.AppendInt(append(w.b, key...), n, 10)
}

func (w *docWriter) bool(key string, v bool) {
	w.b = strconv.AppendBool(append(w.b, key...), v)
}

// marshal appends what encoding/json makes of v.
func (w *docWriter) marshal(key string, v any) {
	w.b = append(w.b, key...)
	out, err := json.Marshal(v)
	if err != nil && w.err == nil {
		w.err = err
	}
	w.b = append(w.b, out...)
}

// plain says s needs no escaping in JSON: printable ASCII other than the
// quote, the backslash and the characters encoding/json escapes for HTML.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func (w *docWriter) str(key, s string) {
	if !plain(s) {
		w.marshal(key, s)
		return
	}
	w.b = append(append(append(append(w.b, key...), '"'), s...), '"')
}

func (w *docWriter) optStr(key string, s *string) {
	if s == nil {
		w.null(key)
		return
	}
	w.str(key, *s)
}

func (w *docWriter) strs(key string, ss []string) {
	if ss == nil {
		w.null(key)
		return
	}
	w.b = append(w.b, key...)
	w.b = append(w.b, '[')
	for i, s := range ss {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.str("", s)
	}
	w.b = append(w.b, ']')
}

// raw appends JSON that is already compact and plain as it is; anything
// else (spaces to drop, characters to escape, invalid JSON) is
// encoding/json's to write or refuse.
func (w *docWriter) raw(key string, m json.RawMessage) {
	if m == nil {
		w.null(key)
		return
	}
	for _, c := range m {
		if c <= ' ' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			w.marshal(key, m)
			return
		}
	}
	if len(m) == 0 || !json.Valid(m) {
		w.marshal(key, m)
		return
	}
	w.b = append(append(w.b, key...), m...)
}

func (w *docWriter) time(key string, t time.Time) {
	// time.Time's MarshalJSON refuses years outside 0-9999 and offsets
	// of 24 hours or more.
	_, off := t.Zone()
	if y := t.Year(); y < 0 || y > 9999 || off <= -24*3600 || off >= 24*3600 {
		w.marshal(key, t)
		return
	}
	// RFC3339Nano alone is AppendFormat's fast path; quoted, it is not.
	w.b = append(t.AppendFormat(append(append(w.b, key...), '"'), time.RFC3339Nano), '"')
}

func (w *docWriter) optTime(key string, t *time.Time) {
	if t == nil {
		w.null(key)
		return
	}
	w.time(key, *t)
}
