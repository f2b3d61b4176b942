//go:build linux

package stint

import (
	"os"
	"syscall"
)

// childProcessesSupported: task child processes need Linux, for the
// parent-death signal that kills a child when its worker dies.
const childProcessesSupported = true

// selfExecutable is the binary a worker runs its tasks' child processes
// from: its own, even if the file it was started from was replaced since.
func selfExecutable() (string, error) { return "/proc/self/exe", nil }

// childSysProcAttr puts the child in a process group of its own (so that
// the worker kills it with what it started, and a terminal's signals reach
// the worker only) and has the kernel kill it when the thread that started
// it ends: see startAndWait.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killProcessGroup kills the process group that p leads.
func killProcessGroup(p *os.Process) error {
	return syscall.Kill(-p.Pid, syscall.SIGKILL)
}

// closeOnExec keeps fd from the processes a child process starts.
func closeOnExec(fd int) { syscall.CloseOnExec(fd) }
