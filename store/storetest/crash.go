package storetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// CrashChildEnv is the variable that makes an engine's test binary, started
// by CheckCrashMidDispatch, run DispatchUntilKilled instead of its tests;
// its value is the engine's address of the store (a URL or a path).
const CrashChildEnv = "STINT_DISPATCH_CRASH_CHILD"

// DispatchUntilKilled is the child process of CheckCrashMidDispatch: from
// 32 goroutines at once, it dispatches one or two tasks per call through
// st, and prints "ack ID" for each task of each call that returned
// successfully, until the process is killed. Calls that fail are printed
// "error: ..." and end the process.
func DispatchUntilKilled(st store.Store, out io.Writer) {
	ctx := context.Background()
	var mu sync.Mutex
	w := bufio.NewWriter(out)
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				tasks := []store.NewTask{newTask("test.crash", nil, nil)}
				if (g+i)%3 == 0 {
					tasks = append(tasks, newTask("test.crash", ex(fmt.Sprintf("crash:%d", g%4)), sh("crash:shared")))
				}
				got, err := st.Dispatch(ctx, tasks)
				mu.Lock()
				if err != nil {
					fmt.Fprintf(w, "error: %v\n", err)
					w.Flush()
					os.Exit(1)
				}
				for _, t := range got {
					fmt.Fprintf(w, "ack %s\n", t.ID)
				}
				w.Flush() // an acknowledgement reaches the parent before the next call
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// CheckCrashMidDispatch starts child (an engine's test binary in the mode
// of DispatchUntilKilled), lets it dispatch until it has acknowledged at
// least 2,000 tasks, kills it with SIGKILL, which lands in the middle of
// batches in flight, and then checks, through reopen, that every task the
// child acknowledged exists: a task is acknowledged only after the
// transaction of its batch committed.
func CheckCrashMidDispatch(t *testing.T, child *exec.Cmd, reopen func(t *testing.T) store.Store) {
	t.Helper()
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked []uuid.UUID
		fail  string
	)
	enough := make(chan struct{})
	read := make(chan struct{})
	go func() {
		defer close(read)
		lines := bufio.NewScanner(out)
		signalled := false
		for lines.Scan() {
			line := lines.Text()
			mu.Lock()
			switch {
			case strings.HasPrefix(line, "ack "):
				if id, err := uuid.Parse(strings.TrimPrefix(line, "ack ")); err == nil {
					acked = append(acked, id)
				}
			case strings.HasPrefix(line, "error: "):
				fail = line
			}
			n := len(acked)
			mu.Unlock()
			if !signalled && (n >= 2000 || fail != "") {
				signalled = true
				close(enough)
			}
		}
		if !signalled {
			close(enough)
		}
	}()
	select {
	case <-enough:
	case <-time.After(2 * time.Minute):
		t.Error("the child acknowledged too few tasks in 2 minutes")
	}
	if err := child.Process.Kill(); err != nil { // SIGKILL: batches in flight end mid-way
		t.Fatal(err)
	}
	<-read // every acknowledgement the child wrote before it died
	_ = child.Wait()
	if fail != "" {
		t.Fatalf("child: %s", fail)
	}
	if len(acked) < 2000 {
		t.Fatalf("child acknowledged only %d tasks", len(acked))
	}
	st := reopen(t)
	defer st.Close()
	ctx := ctxFor(t)
	lost := 0
	for _, id := range acked {
		if _, err := st.Task(ctx, id); err != nil {
			if lost++; lost <= 10 {
				t.Errorf("acknowledged task %s: %v", id, err)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged tasks lost", lost, len(acked))
	}
	t.Logf("%d acknowledged tasks, all there after the crash", len(acked))
}
