package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/node"
)

// serve runs a node (an open API and a worker of 4 slots) on a fresh
// store of eng for the test, and returns its client.
func serve(t *testing.T, eng enginetest.Engine) *client.Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	st := eng.Open(t) // closed after the node stopped: cleanups run last first
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- node.Run(ctx, node.Config{Store: st, Name: "wait-test",
			API: &node.API{Listener: ln, Server: api.Config{AllowOpen: true}}, Worker: &stint.WorkerConfig{Concurrency: 4}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node: %v", err)
		}
	})
	return c
}

func sleepTask(seconds float64, fail bool) apiv1.DispatchTask {
	args, err := json.Marshal(stint.SleepArgs{Seconds: seconds, Fail: fail})
	if err != nil {
		panic(err)
	}
	return apiv1.DispatchTask{Name: "stint.sleep", Args: args}
}

// TestWaitForTasksOnAServer: the waits follow real tasks on both engines,
// through their events, to their final states, and tell each change.
func TestWaitForTasksOnAServer(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		c := serve(t, eng)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var ids []uuid.UUID
		for _, task := range []apiv1.DispatchTask{sleepTask(0.2, false), sleepTask(0.1, true), {Name: "stint.noop"}} {
			id, err := c.Dispatch(ctx, task)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		var mu sync.Mutex
		changes := map[uuid.UUID][]string{}
		tasks, err := c.WaitForTasks(ctx, ids, client.WaitOptions{OnChange: func(wt *client.WaitedTask, stateChanged bool) {
			mu.Lock()
			defer mu.Unlock()
			if stateChanged {
				changes[wt.ID] = append(changes[wt.ID], wt.State)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"completed", "failed", "completed"}
		for i, wt := range tasks {
			if wt.ID != ids[i] || wt.State != want[i] || !wt.Final() {
				t.Errorf("task %d: %+v; want %s %s", i, wt, ids[i], want[i])
			}
			if got := changes[wt.ID]; len(got) == 0 || got[len(got)-1] != want[i] {
				t.Errorf("task %d: changes told %v; want them to end %s", i, got, want[i])
			}
		}

		// A wait that ctx ends returns the tasks as they stand, with the
		// cause.
		long, err := c.Dispatch(ctx, sleepTask(30, false))
		if err != nil {
			t.Fatal(err)
		}
		stop := errors.New("enough")
		short, cancelShort := context.WithTimeoutCause(ctx, 500*time.Millisecond, stop)
		defer cancelShort()
		tasks, err = c.WaitForTasks(short, []uuid.UUID{long}, client.WaitOptions{})
		if !errors.Is(err, stop) || len(tasks) != 1 || tasks[0].Final() || tasks[0].State == "" {
			t.Fatalf("a wait cut short: %v, %+v", err, tasks)
		}
		if _, err := c.CancelTask(ctx, long); err != nil {
			t.Fatal(err)
		}

		// An unknown task is an error, not a wait forever.
		if _, err := c.WaitForTasks(ctx, []uuid.UUID{uuid.Must(uuid.NewV7())}, client.WaitOptions{}); !client.IsStatus(err, 404) {
			t.Fatalf("an unknown task: %v", err)
		}
	})
}

// TestWaitForTaskGroupOnAServer: a group wait tells that the group is not
// sealed, follows the tasks dispatched into it, and ends once it is sealed
// and they are final.
func TestWaitForTaskGroupOnAServer(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		c := serve(t, eng)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, id, err := c.CreateTaskGroup(ctx, apiv1.CreateTaskGroup{Description: "wait"})
		if err != nil {
			t.Fatal(err)
		}
		unsealed := make(chan struct{})
		type result struct {
			tasks  []*client.WaitedTask
			sealed bool
			err    error
		}
		done := make(chan result, 1)
		go func() {
			tasks, sealed, err := c.WaitForTaskGroup(ctx, id, client.WaitOptions{OnUnsealed: func() { close(unsealed) }})
			done <- result{tasks, sealed, err}
		}()
		select {
		case <-unsealed:
		case <-ctx.Done():
			t.Fatal("OnUnsealed was not called")
		}
		group := apiv1.TaskGroupHref(id)
		for range 2 {
			task := sleepTask(0.1, false)
			task.TaskGroup = group
			if _, err := c.Dispatch(ctx, task); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case r := <-done:
			t.Fatalf("the wait ended before the group was sealed: %+v", r)
		case <-time.After(500 * time.Millisecond):
		}
		if _, err := c.SealTaskGroup(ctx, id); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil || !r.sealed || len(r.tasks) != 2 || r.tasks[0].State != "completed" || r.tasks[1].State != "completed" {
			t.Fatalf("group wait: %v, sealed %v, %d tasks", r.err, r.sealed, len(r.tasks))
		}
	})
}
