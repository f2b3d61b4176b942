package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/enginetest"
)

// TestImmediateSlotsBoundInlineRuns: more concurrent immediate requests
// than the server has slots never run more than that many tasks inline at
// once. Beyond the slots, a deferred task waits for a worker; one with
// deferred: false is a 429 and creates no task.
func TestImmediateSlotsBoundInlineRuns(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		const slots, requests = 2, 8
		e := newEnv(t, eng, api.Config{AllowOpen: true, ImmediateSlots: slots})
		var running, most atomic.Int32
		release := make(chan struct{})
		stint.Register(e.reg, "test.block", func(ctx context.Context, _ *stint.Run, _ struct{}) (struct{}, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			select {
			case <-release:
			case <-time.After(20 * time.Second):
			}
			return struct{}{}, nil
		})
		for _, deferred := range []bool{true, false} {
			most.Store(0)
			release = make(chan struct{})
			before := e.countTasks()
			answers := make(chan answer, requests)
			var wg sync.WaitGroup
			for range requests {
				wg.Add(1)
				go func() {
					defer wg.Done()
					answers <- e.do("POST", "/api/v1/tasks", apiv1.DispatchTask{Name: "test.block", Immediate: true, Deferred: &deferred})
				}()
			}
			// The requests beyond the slots are answered while the inline
			// runs still block.
			var early []answer
			for len(early) < requests-slots {
				select {
				case a := <-answers:
					early = append(early, a)
				case <-time.After(15 * time.Second):
					t.Fatalf("deferred %v: %d answers while %d tasks run inline (at most %d at once)", deferred, len(early), running.Load(), most.Load())
				}
			}
			for _, a := range early {
				want := http.StatusAccepted
				if !deferred {
					want = http.StatusTooManyRequests
				}
				if a.status != want {
					t.Fatalf("deferred %v: a request beyond the slots: %d %s, want %d", deferred, a.status, a.body, want)
				}
				if deferred {
					var ref apiv1.TaskRef
					json.Unmarshal(a.body, &ref) //nolint:errcheck
					var task apiv1.Task
					e.must("GET", ref.Task, nil, http.StatusOK, &task)
					if task.State != "waiting" {
						t.Fatalf("a deferred task beyond the slots is %s, want waiting", task.State)
					}
				}
			}
			close(release)
			wg.Wait()
			close(answers)
			for a := range answers {
				if a.status != http.StatusAccepted {
					t.Fatalf("deferred %v: an inline run answered %d %s", deferred, a.status, a.body)
				}
			}
			if m := most.Load(); m > slots {
				t.Fatalf("deferred %v: %d tasks ran inline at once, the slots are %d", deferred, m, slots)
			}
			if created := e.countTasks() - before; !deferred && created != slots {
				t.Fatalf("deferred false: %d tasks created, want %d (the refused ones create none)", created, slots)
			}
		}
	})
}
