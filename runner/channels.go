package runner

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// Channel is one node of the channel tree (docs/semantics.md §6).
type Channel struct {
	Name string
	// Capacity is how many jobs of this channel's subtree may be enqueued
	// or started at once; 0 means no own limit (an intermediate channel
	// created by configuring one of its children).
	Capacity        int
	Sequential      bool
	Throttle        time.Duration
	Paused          bool
	RemovalInterval time.Duration // 0: the runner's default
	Configured      bool
	Parent          *Channel
}

// ChannelTree is the parsed channel configuration.
type ChannelTree struct {
	mu     sync.Mutex // channels named by jobs are added while the API reads
	byName map[string]*Channel
}

// knownKeys lists the keys an entry may carry, for error messages.
// MaxRemovalDays bounds a channel's removal_interval: 100 years, well
// inside what a time.Duration holds.
const MaxRemovalDays = 36500

const knownKeys = "sequential, throttle=<seconds>, paused, removal_interval=<days>"

// ParseChannels reads the grammar `name(:capacity(:key(=value)?)*)?`,
// entries separated by commas or newlines. Every error names the entry.
func ParseChannels(s string) (*ChannelTree, error) {
	t := &ChannelTree{byName: map[string]*Channel{}}
	t.ensure(abi.RootChannel)
	rootConfigured := false
	for _, raw := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		entry := strings.TrimSpace(raw)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, ":")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		if parts[0] == "" {
			return nil, fmt.Errorf("channel entry %q: missing channel name", entry)
		}
		name, err := abi.ParseChannel(parts[0])
		if err != nil {
			msg := err.Error()
			var fe *abi.FieldError
			if errors.As(err, &fe) {
				msg = fe.Msg
			}
			return nil, fmt.Errorf("channel entry %q: %s", entry, msg)
		}
		c := t.ensure(name)
		if c.Configured {
			return nil, fmt.Errorf("channel entry %q: channel %s is configured twice", entry, name)
		}
		c.Configured = true
		c.Capacity = 1
		if name == abi.RootChannel {
			rootConfigured = true
		}
		if len(parts) > 1 {
			n, err := strconv.Atoi(parts[1])
			if err != nil {
				return nil, fmt.Errorf("channel entry %q: capacity %q is not an integer", entry, parts[1])
			}
			if n < 1 || n > abi.MaxChannelCapacity {
				return nil, fmt.Errorf("channel entry %q: capacity must be from 1 to %d (got %d)", entry, abi.MaxChannelCapacity, n)
			}
			c.Capacity = n
		}
		seen := map[string]bool{}
		for _, kv := range parts[min(len(parts), 2):] {
			k, v, hasV := strings.Cut(kv, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if strings.Contains(v, "=") {
				return nil, fmt.Errorf("channel entry %q: %q has more than one '='", entry, kv)
			}
			if seen[k] {
				return nil, fmt.Errorf("channel entry %q: key %q is repeated", entry, k)
			}
			seen[k] = true
			switch k {
			case "sequential":
				if hasV {
					return nil, fmt.Errorf("channel entry %q: sequential takes no value", entry)
				}
				c.Sequential = true
			case "paused":
				if hasV {
					return nil, fmt.Errorf("channel entry %q: paused takes no value", entry)
				}
				c.Paused = true
			case "throttle":
				f, err := strconv.ParseFloat(v, 64)
				if !hasV || err != nil || !(f > 0 && f <= abi.MaxThrottleSeconds) { // NaN fails every comparison
					return nil, fmt.Errorf("channel entry %q: throttle needs a number of seconds > 0 and at most %d (a day), e.g. throttle=2", entry, abi.MaxThrottleSeconds)
				}
				c.Throttle = time.Duration(f * float64(time.Second))
			case "removal_interval":
				f, err := strconv.ParseFloat(v, 64)
				if !hasV || err != nil || !(f > 0 && f <= MaxRemovalDays) {
					return nil, fmt.Errorf("channel entry %q: removal_interval needs a number of days > 0 and at most %d (100 years)", entry, MaxRemovalDays)
				}
				c.RemovalInterval = time.Duration(f * 24 * float64(time.Hour))
			case "":
				return nil, fmt.Errorf("channel entry %q: empty key", entry)
			default:
				return nil, fmt.Errorf("channel entry %q: unknown key %q (known keys: %s)", entry, k, knownKeys)
			}
		}
		if c.Sequential && c.Capacity != 1 {
			return nil, fmt.Errorf("channel entry %q: a sequential channel must have capacity 1", entry)
		}
	}
	if !rootConfigured {
		r := t.byName[abi.RootChannel]
		r.Configured, r.Capacity = true, 1
	}
	return t, nil
}

// ensure returns the named channel, creating it and its ancestors.
func (t *ChannelTree) ensure(name string) *Channel {
	if c, ok := t.byName[name]; ok {
		return c
	}
	c := &Channel{Name: name}
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		c.Parent = t.ensure(name[:i])
	}
	t.byName[name] = c
	return c
}

// Get returns the channel a job of that channel name belongs to; a
// channel nobody configured is created (unconfigured: limited only by its
// ancestors).
func (t *ChannelTree) Get(name string) *Channel {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ensure(abi.NormalizeChannel(name))
}

// Lookup returns a channel only if it exists in the tree.
func (t *ChannelTree) Lookup(name string) (*Channel, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.byName[abi.NormalizeChannel(name)]
	return c, ok
}

// Names lists every channel of the tree in order.
func (t *ChannelTree) Names() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.byName))
	for n := range t.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Root returns the root channel.
func (t *ChannelTree) Root() *Channel { return t.Get(abi.RootChannel) }
