package abi

import (
	"fmt"
	"strings"
)

// ChannelStatus is the live view of one channel, served by GET /v1/channels
// and the UI's channels page.
type ChannelStatus struct {
	Name       string `json:"name"`
	Capacity   int    `json:"capacity"`
	Sequential bool   `json:"sequential"`
	// Throttle is the minimum seconds between two starts; 0 = none.
	Throttle float64 `json:"throttle"`
	Paused   bool    `json:"paused"`
	// Configured is false for channels that exist only because jobs name
	// them; they are limited by their nearest configured ancestor.
	Configured bool `json:"configured"`
	Running    int  `json:"running"`
	Pending    int  `json:"pending"`
	Failed     int  `json:"failed"`
	// Blocked: a sequential channel holding a failed job runs nothing.
	Blocked bool `json:"blocked"`
	// Override is what an operator set at run time, when anything:
	// Capacity, Throttle and Paused above already include it.
	Override *ChannelOverride `json:"override,omitempty"`
}

// Bounds of a channel name, counted on its full form (with "root.").
const (
	// MaxChannelLen is the longest channel name, in bytes.
	MaxChannelLen = 200
	// MaxChannelDepth is the most dot-separated levels a name may have,
	// root included: "root.a.b" has three.
	MaxChannelDepth = 8
)

// NormalizeChannel returns the full name of a channel: `sub` and
// `root.sub` are one, and "" is the root. It does not check the name;
// ParseChannel does both.
func NormalizeChannel(name string) string {
	if name == "" || name == RootChannel {
		return RootChannel
	}
	if strings.HasPrefix(name, RootChannel+".") {
		return name
	}
	return RootChannel + "." + name
}

// CheckChannel refuses a name that is not dot-separated words of ASCII
// letters, digits, '_' and '-' (which leaves out spaces, NUL, '/' and
// invalid UTF-8), or that is longer than MaxChannelLen bytes or deeper than
// MaxChannelDepth levels. Give it the normalised name. The error is a
// *FieldError on "channel" wrapping ErrInvalid.
func CheckChannel(name string) error {
	bad := func(format string, a ...any) error {
		return &FieldError{Field: "channel", Msg: fmt.Sprintf(format, a...), Err: ErrInvalid}
	}
	if len(name) > MaxChannelLen {
		return bad("a channel name is at most %d bytes (this one has %d)", MaxChannelLen, len(name))
	}
	// One pass, no allocation: every enqueue checks its channel.
	levels, word := 1, 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if word == 0 {
				return bad("%q is not a channel name (dot-separated words)", name)
			}
			levels, word = levels+1, 0
		case c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			word++
		default:
			return bad("%q: channel names use letters, digits, _ and -", name)
		}
	}
	if word == 0 {
		return bad("%q is not a channel name (dot-separated words)", name)
	}
	if levels > MaxChannelDepth {
		return bad("a channel name has at most %d levels, root included (this one has %d)", MaxChannelDepth, levels)
	}
	return nil
}

// ParseChannel normalises a channel name and checks it: the one call
// every edge (enqueue, PATCH, list filters, the channel config) makes.
func ParseChannel(name string) (string, error) {
	full := NormalizeChannel(name)
	if err := CheckChannel(full); err != nil {
		return "", err
	}
	return full, nil
}
