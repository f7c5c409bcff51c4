package abi

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
}
