package abi

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// FunctionConfig is the per-function configuration of docs/semantics.md §9, read
// from a plugin's sidecar `<module>.toml` as `[functions.<export>]`.
// Zero values mean "use the host default".
type FunctionConfig struct {
	Channel       string       `toml:"channel" json:"channel,omitempty"`
	RetryPattern  RetryPattern `toml:"retry_pattern" json:"retry_pattern,omitempty"`
	MaxRetries    *int         `toml:"max_retries" json:"max_retries,omitempty"`
	Timeout       Duration     `toml:"timeout" json:"timeout,omitempty"`
	MemoryLimit   string       `toml:"memory_limit" json:"memory_limit,omitempty"`
	Description   string       `toml:"description" json:"description,omitempty"`
	RelatedAction string       `toml:"related_action" json:"related_action,omitempty"`
	AllowedHosts  []string     `toml:"allowed_hosts" json:"allowed_hosts,omitempty"`
	// RetryOn lists sandbox exc_names treated as retryable instead of
	// failed, e.g. ["wasmq.Timeout"].
	RetryOn []string `toml:"retry_on" json:"retry_on,omitempty"`
	// Input is what the plugin reads as its input: InputEnvelope (the
	// default, "" too) or InputRaw, for plugins written for any Extism
	// host (docs/abi.md).
	Input string `toml:"input" json:"input,omitempty"`
	// Config is served to the plugin by Extism's config_get, over the
	// module's own [config] table.
	Config map[string]string `toml:"config" json:"config,omitempty"`
	// Record is which attempts keep a record for replay: RecordOff,
	// RecordFailures or RecordAll; "" leaves it to the tenant's policy,
	// then the host's (docs/replay.md).
	Record string `toml:"record" json:"record,omitempty"`
	// MaxFuel ends an attempt that used this much fuel (Usage.Fuel) with
	// ExcFuelExhausted; 0 is no limit.
	MaxFuel int64 `toml:"max_fuel" json:"max_fuel,omitempty"`
}

// What a function reads as its input (FunctionConfig.Input).
const (
	// InputEnvelope is the JSON document {"args", "kwargs", "context"}.
	InputEnvelope = "envelope"
	// InputRaw is the job's first argument alone: a string's bytes, a
	// {"base64": "..."} object's bytes, any other JSON value as its text;
	// the output is the result as it is (JSON when it parses, else text),
	// never a control document.
	InputRaw = "raw"
)

// CheckPluginName refuses a module or tenant name that is not a plain
// file or folder name (plugins/<tenant>/<module>.wasm): letters, digits,
// '_', '-' and '.', at most 128 bytes, no '.' first or last, so that no
// name climbs out of the plugins folder or hides a file. what names it
// in the error ("module", "tenant").
func CheckPluginName(what, s string) error {
	ok := len(s) > 0 && len(s) <= 128 && s[0] != '.' && s[0] != '-' && s[len(s)-1] != '.'
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
	}
	if !ok {
		return fmt.Errorf("%w: %s %q must be letters, digits, '_', '-' or '.' (not first or last)", ErrInvalid, what, s)
	}
	return nil
}

// SplitFunc splits "module.function" into its two parts.
func SplitFunc(f string) (module, function string, err error) {
	i := strings.LastIndexByte(f, '.')
	if i <= 0 || i == len(f)-1 {
		return "", "", fmt.Errorf("func %q must be of the form module.function", f)
	}
	return f[:i], f[i+1:], nil
}

// RetryStep is one value of a retry pattern: a fixed delay (Min == Max) or
// a range from which a random whole number of seconds is drawn.
type RetryStep struct {
	Min, Max int // seconds
}

// RetryPattern maps a retry count to the delay before the next attempt:
// the step of the largest key <= retry applies (docs/semantics.md §3).
type RetryPattern map[int]RetryStep

// Delay returns the postponement after `retry` counted attempts, and false
// when the pattern has no key <= retry (the caller then uses its default).
func (p RetryPattern) Delay(retry int) (time.Duration, bool) {
	best := -1
	for k := range p {
		if k <= retry && k > best {
			best = k
		}
	}
	if best < 0 {
		return 0, false
	}
	s := p[best]
	secs := s.Min
	if s.Max > s.Min {
		secs = s.Min + rand.IntN(s.Max-s.Min+1)
	}
	return time.Duration(secs) * time.Second, true
}

// Keys returns the pattern's keys in order, for display.
func (p RetryPattern) Keys() []int {
	ks := make([]int, 0, len(p))
	for k := range p {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}

// MaxRetryDelay bounds a retry pattern's delay, in seconds: 100 years,
// the bound of an eta given in seconds. Past it, the delay as a
// time.Duration would wrap around to a date in the past, and the job
// would burn its retries at once.
const MaxRetryDelay = 100 * 365 * 24 * 3600

// Validate refuses negative keys and delays, inverted ranges, and delays
// past MaxRetryDelay.
func (p RetryPattern) Validate() error {
	for _, k := range p.Keys() {
		s := p[k]
		if k < 0 {
			return fmt.Errorf("retry_pattern key %d must be >= 0", k)
		}
		if s.Min < 0 || s.Max < s.Min {
			return fmt.Errorf("retry_pattern[%d] must be seconds >= 0 or [min, max] with 0 <= min <= max", k)
		}
		if s.Max > MaxRetryDelay {
			return fmt.Errorf("retry_pattern[%d]: at most %d seconds (100 years), got %d", k, MaxRetryDelay, s.Max)
		}
	}
	return nil
}

// UnmarshalTOML reads `{ 1 = 10, 5 = [60, 120] }` (keys are strings in
// TOML tables).
func (p *RetryPattern) UnmarshalTOML(v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("retry_pattern must be a table like { 1 = 10, 5 = [60, 120] }")
	}
	out := RetryPattern{}
	for ks, val := range m {
		var k int
		if _, err := fmt.Sscanf(ks, "%d", &k); err != nil || fmt.Sprint(k) != ks {
			return fmt.Errorf("retry_pattern key %q must be a whole number of retries", ks)
		}
		step, err := retryStep(val)
		if err != nil {
			return fmt.Errorf("retry_pattern[%s]: %w", ks, err)
		}
		out[k] = step
	}
	*p = out
	return out.Validate()
}

func retryStep(v any) (RetryStep, error) {
	switch x := v.(type) {
	case int64:
		return RetryStep{int(x), int(x)}, nil
	case []any:
		if len(x) == 2 {
			a, ok1 := x[0].(int64)
			b, ok2 := x[1].(int64)
			if ok1 && ok2 {
				return RetryStep{int(a), int(b)}, nil
			}
		}
	}
	return RetryStep{}, fmt.Errorf("value must be seconds or [min, max], got %v", v)
}

// MarshalJSON writes the pattern as {"1": 10, "5": [60, 120]}.
func (p RetryPattern) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range p.Keys() {
		if i > 0 {
			b.WriteByte(',')
		}
		s := p[k]
		if s.Min == s.Max {
			fmt.Fprintf(&b, `"%d":%d`, k, s.Min)
		} else {
			fmt.Fprintf(&b, `"%d":[%d,%d]`, k, s.Min, s.Max)
		}
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// Duration is a time.Duration read from TOML/JSON as "30s", "5m" or a
// number of seconds.
type Duration time.Duration

func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if v, err := time.ParseDuration(s); err == nil {
		*d = Duration(v)
		return nil
	}
	var secs float64
	if _, err := fmt.Sscanf(s, "%g", &secs); err == nil && fmt.Sprint(secs) == s {
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	return fmt.Errorf("%q is not a duration (use e.g. \"30s\", \"5m\")", s)
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
