//go:build !linux

package stint

import (
	"errors"
	"os"
	"syscall"
)

// childProcessesSupported: task child processes need Linux, for the
// parent-death signal that kills a child when its worker dies. Elsewhere a
// task of a type registered with InChildProcess fails with kind "process".
const childProcessesSupported = false

var errNoChildProcesses = errors.New("child processes for tasks need Linux")

func selfExecutable() (string, error) { return "", errNoChildProcesses }

func childSysProcAttr() *syscall.SysProcAttr { return nil }

func killProcessGroup(*os.Process) error { return errNoChildProcesses }

func closeOnExec(int) {}
