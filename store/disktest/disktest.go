// Package disktest gives tests a small disk of their own, to fill up.
package disktest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Disk is a tmpfs mounted for one test.
type Disk struct {
	t   testing.TB
	Dir string
}

// Mount mounts a tmpfs of size ("2m") on a directory of the test,
// unmounted when it ends. Mounting needs root: elsewhere the test is
// skipped, except under CI=true (which runs as root) where it fails.
func Mount(t testing.TB, size string) *Disk {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	// Cleanups run last first: this one runs before TempDir's removal
	// and after those the test registers later (closing its files).
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return &Disk{t: t, Dir: dir}
}

// Resize gives the disk a new size: an operator making room.
func (d *Disk) Resize(size string) {
	d.t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, d.Dir).CombinedOutput(); err != nil {
		d.t.Fatalf("remount %s: %v: %s", d.Dir, err, out)
	}
}

// Fill takes every free block of the disk with a file of its own, so
// that the next write that needs a new block fails with ENOSPC; writes
// into blocks a file already has still succeed.
func (d *Disk) Fill() {
	d.t.Helper()
	f, err := os.Create(filepath.Join(d.Dir, "filler"))
	if err != nil {
		d.t.Fatalf("fill %s: %v", d.Dir, err)
	}
	defer f.Close()
	for _, chunk := range []int{64 << 10, 4 << 10, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					d.t.Fatalf("fill %s: %v", d.Dir, err)
				}
				break
			}
		}
	}
}
