package host

import (
	"os"
	"path/filepath"
	"strings"
)

// Why the host keeps the compilation cache's books: wazero writes a file
// for every module it compiles (named by a key it derives from the
// instrumented bytes and the CPU) and removes none. A tenant replacing a
// module in a loop left one file a version, so the cache grew until the
// node's disk was full. Compiles run one at a time (compileMu), so the
// files a compile adds are the module's: the host lists them in
// <cache_dir>/modules/<sha256> and removes them, with that listing and
// the module's compile mark, when no loaded module uses the code any more
// and, at a node's start (SweepCache), for modules no longer in
// plugins_dir. Files written before the listings existed are left where
// they are.

const cacheListings = "modules"

// cacheEntries is every file wazero's cache folders hold, relative to
// cache_dir; nil without a cache.
func (h *Host) cacheEntries() map[string]bool {
	if h.cfg.CacheDir == "" {
		return nil
	}
	dirs, _ := filepath.Glob(filepath.Join(h.cfg.CacheDir, "wazero-*"))
	out := map[string]bool{}
	for _, d := range dirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.Type().IsRegular() {
				out[filepath.Join(filepath.Base(d), e.Name())] = true
			}
		}
	}
	return out
}

// noteCacheFiles lists, for the module digest, the cache files added
// since before (and those listed already, when its compile found them in
// the cache), and returns them.
func (h *Host) noteCacheFiles(digest string, before map[string]bool) []string {
	if before == nil {
		return nil
	}
	listing := filepath.Join(h.cfg.CacheDir, cacheListings, digest)
	files := map[string]bool{}
	if b, err := os.ReadFile(listing); err == nil {
		for _, f := range strings.Fields(string(b)) {
			files[f] = true
		}
	}
	known := len(files)
	for f := range h.cacheEntries() {
		if !before[f] && !strings.HasSuffix(f, ".tmp") {
			files[f] = true
		}
	}
	out := make([]string, 0, len(files))
	for f := range files {
		out = append(out, f)
	}
	if len(files) > known && os.MkdirAll(filepath.Dir(listing), 0o755) == nil {
		// Best effort: a file not listed outlives its module, as every
		// file did before.
		os.WriteFile(listing, []byte(strings.Join(out, "\n")+"\n"), 0o644)
	}
	return out
}

// dropCacheFiles removes what the cache keeps of the module digest: its
// files, their listing and its compile mark.
func (h *Host) dropCacheFiles(digest string, files []string) {
	if h.cfg.CacheDir == "" {
		return
	}
	for _, f := range files {
		// A listing names files under cache_dir only: it is the host's
		// own, but a path leaving the folder is never followed.
		if filepath.IsLocal(f) {
			os.Remove(filepath.Join(h.cfg.CacheDir, f))
		}
	}
	os.Remove(filepath.Join(h.cfg.CacheDir, cacheListings, digest))
	os.Remove(filepath.Join(h.cfg.CacheDir, "bounded", digest))
}

// sweepCache removes, once the first scan has loaded plugins_dir, what
// the cache keeps of modules that are no longer loaded (removed or
// replaced while the node was down), and the temporary files of writes a
// crash cut short. Nothing compiles meanwhile: it runs before the reload
// loop starts and before the host serves.
func (h *Host) sweepCache() {
	if h.cfg.CacheDir == "" || !h.cfg.SweepCache {
		return
	}
	h.mu.Lock()
	loaded := make(map[string]bool, len(h.codes))
	for d := range h.codes {
		loaded[d] = true
	}
	h.mu.Unlock()
	for _, kind := range []string{cacheListings, "bounded"} {
		ents, _ := os.ReadDir(filepath.Join(h.cfg.CacheDir, kind))
		for _, e := range ents {
			digest := e.Name()
			if loaded[digest] || !e.Type().IsRegular() {
				continue
			}
			var files []string
			if b, err := os.ReadFile(filepath.Join(h.cfg.CacheDir, cacheListings, digest)); err == nil {
				files = strings.Fields(string(b))
			}
			h.dropCacheFiles(digest, files)
		}
	}
	for f := range h.cacheEntries() {
		if strings.HasSuffix(f, ".tmp") {
			os.Remove(filepath.Join(h.cfg.CacheDir, f))
		}
	}
}
