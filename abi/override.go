package abi

// ChannelOverride is what an operator changed on a channel at run time
// (POST /v1/channels/{name}:pause, PATCH /v1/channels/{name}): stored, so
// it holds on every node and across restarts, and it wins over the
// configuration. A nil field keeps the configured value.
type ChannelOverride struct {
	Channel  string `json:"channel"`
	Paused   *bool  `json:"paused,omitempty"`
	Capacity *int   `json:"capacity,omitempty"`
	// Throttle is the minimum seconds between two starts; 0 = none.
	Throttle *float64 `json:"throttle,omitempty"`
}

// Empty reports whether o changes nothing: the configuration holds.
func (o ChannelOverride) Empty() bool {
	return o.Paused == nil && o.Capacity == nil && o.Throttle == nil
}

// Bounds of what an override sets.
const (
	// MaxChannelCapacity bounds a capacity set at run time: far above any
	// real one, and it keeps a typo from meaning "no limit at all".
	MaxChannelCapacity = 100000
	// MaxThrottleSeconds is one day between two starts.
	MaxThrottleSeconds = 86400
)
