package abi

// ModuleInfo describes one plugin module as the host's registry sees it:
// what GET /v1/plugins lists and `wasmq plugins check` reports.
type ModuleInfo struct {
	Name string `json:"name"`
	// Tenant owns a private module; "" is a shared one.
	Tenant string `json:"tenant,omitempty"`
	// SHA256 and Size are those of the version that runs (the last good
	// one), empty when none ever loaded.
	SHA256    string                    `json:"sha256,omitempty"`
	Size      int64                     `json:"size"`
	Exports   []string                  `json:"exports"`
	Functions map[string]FunctionConfig `json:"functions"`
	// LoadError says why the file on disk was refused; a previously
	// loaded good version, if any, keeps running.
	LoadError string `json:"load_error,omitempty"`
	Path      string `json:"path"`
}

// RunnerStats are one node's runner counters since it started, for
// /metrics.
type RunnerStats struct {
	Enqueued, Started, Done, Failed, Retried, Interrupted, Late int64
	Leader                                                      bool
}

// HostStats is what the host tells of its modules and instances now, for
// /metrics.
type HostStats struct {
	Modules, IdleInstances, Running, PoolSize int
	// IdleBytes is the memory and tables the idle instances hold.
	IdleBytes uint64
	// MemoryBytes is what every instance holds, idle or running: linear
	// memories and kernel arenas as far as grown (at most host.max_memory).
	MemoryBytes uint64
	// RecordsDropped counts the records not kept for their tenant's
	// host.record_rate, since the host started.
	RecordsDropped uint64
}
