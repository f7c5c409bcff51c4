package host

import "syscall"

// childAttr has the kernel kill a compile child when its node dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
