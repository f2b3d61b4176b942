package stint

import (
	"strings"
	"testing"
)

// A program whose main did not call RunChildProcess never executes itself
// for a task: that would start the whole program again.
func TestChildProcessesNeedRunChildProcess(t *testing.T) {
	was := childProcessesReady.Load()
	t.Cleanup(func() { childProcessesReady.Store(was) })
	childProcessesReady.Store(false)
	if !childProcessesSupported {
		t.Skip("child processes need Linux")
	}
	err := childProcessesUsable()
	if err == nil || !strings.Contains(err.Error(), "does not call stint.RunChildProcess") {
		t.Fatalf("without RunChildProcess: %v", err)
	}
	childProcessesReady.Store(true)
	if err := childProcessesUsable(); err != nil {
		t.Fatalf("with RunChildProcess: %v", err)
	}
}
