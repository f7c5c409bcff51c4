//go:build !linux

package host

import "syscall"

// childAttr: no parent-death signal off Linux; the child's own deadline
// (CompileChild) ends it.
func childAttr() *syscall.SysProcAttr { return nil }
