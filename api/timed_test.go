package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
)

// TestDispatchRefusesBadTimedInput: a bad scheduled_at, retry or
// unique_key is a 400 naming the field, and stores nothing.
func TestDispatchRefusesBadTimedInput(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		long := strings.Repeat("k", 1025)
		cases := []struct{ name, body, detail string }{
			{"scheduled_at not a time", `{"name": "stint.noop", "scheduled_at": "tomorrow"}`, `scheduled_at: "tomorrow" is not an RFC 3339 time`},
			{"scheduled_at a number", `{"name": "stint.noop", "scheduled_at": 5}`, "scheduled_at: "},
			{"scheduled_at with immediate", `{"name": "stint.noop", "immediate": true, "scheduled_at": "2030-01-01T00:00:00Z"}`, "scheduled_at: an immediate task runs now"},
			{"max_attempts zero", `{"name": "stint.noop", "retry": {"max_attempts": 0}}`, "retry.max_attempts: must be 1 to 100, not 0"},
			{"max_attempts too many", `{"name": "stint.noop", "retry": {"max_attempts": 101}}`, "retry.max_attempts: must be 1 to 100, not 101"},
			{"max_attempts missing", `{"name": "stint.noop", "retry": {"initial_delay": "1s"}}`, "retry.max_attempts: must be 1 to 100, not 0"},
			{"delay unparsable", `{"name": "stint.noop", "retry": {"max_attempts": 3, "initial_delay": "soon"}}`, `retry.initial_delay: "soon" is not a duration`},
			{"delay negative", `{"name": "stint.noop", "retry": {"max_attempts": 3, "max_delay": "-1s"}}`, "retry.max_delay: must be positive, not -1s"},
			{"max below initial", `{"name": "stint.noop", "retry": {"max_attempts": 3, "initial_delay": "1m", "max_delay": "1s"}}`, "retry.max_delay: 1s is shorter than initial_delay"},
			{"multiplier below 1", `{"name": "stint.noop", "retry": {"max_attempts": 3, "multiplier": 0.5}}`, "retry.multiplier: must be 1 to 100"},
			{"jitter above 1", `{"name": "stint.noop", "retry": {"max_attempts": 3, "jitter": 2}}`, "retry.jitter: must be 0 to 1"},
			{"retry unknown field", `{"name": "stint.noop", "retry": {"max_attempts": 3, "attempts": 2}}`, "retry.attempts: unknown field"},
			{"unique_key empty", `{"name": "stint.noop", "unique_key": ""}`, "unique_key: is empty"},
			{"unique_key too long", `{"name": "stint.noop", "unique_key": "` + long + `"}`, "unique_key: key is 1025 bytes"},
			{"unique_key control", `{"name": "stint.noop", "unique_key": "a\nb"}`, "unique_key: key contains a control character"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				a := e.do("POST", "/api/v1/tasks", tc.body)
				if a.status != http.StatusBadRequest || !strings.Contains(a.detail(), tc.detail) {
					t.Fatalf("status %d detail %q; want 400 with %q", a.status, a.detail(), tc.detail)
				}
			})
		}
		// In a group, the field is named with the task's index.
		a := e.do("POST", "/api/v1/task-groups", `{"tasks": [{"name": "stint.noop"}, {"name": "stint.noop", "retry": {"max_attempts": 0}}]}`)
		if a.status != http.StatusBadRequest || !strings.Contains(a.detail(), "tasks[1].retry.max_attempts") {
			t.Fatalf("group: status %d detail %q", a.status, a.detail())
		}
		if n := e.countTasks(); n != 0 {
			t.Fatalf("bad input stored %d tasks", n)
		}
	})
}

// TestScheduledTaskOverHTTP: a task scheduled ahead is listed scheduled
// with its time, filtered and ordered by it, and a worker runs it once it
// is due; canceling a scheduled task ends it at once.
func TestScheduledTaskOverHTTP(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		at := time.Now().Add(time.Second).UTC()
		id := e.dispatch(apiv1.DispatchTask{Name: "stint.noop", ScheduledAt: &apiv1.Time{Time: at}, ExclusiveResources: []string{"r"}})
		later := e.dispatch(apiv1.DispatchTask{Name: "stint.noop", ScheduledAt: &apiv1.Time{Time: at.Add(time.Hour)}})
		task := e.task(id)
		if task.State != "scheduled" || task.ScheduledAt == nil || !task.ScheduledAt.Equal(at.Truncate(time.Microsecond)) ||
			len(task.Attempts) != 0 || task.BlockedBy != nil {
			t.Fatalf("scheduled task: %+v", task)
		}
		var page apiv1.Page[apiv1.Task]
		e.must("GET", "/api/v1/tasks?state=scheduled&ordering=-scheduled_at", nil, http.StatusOK, &page)
		if len(page.Results) != 2 || page.Results[0].ID != later || page.Results[1].ID != id {
			t.Fatalf("scheduled list: %+v", page.Results)
		}
		q := "/api/v1/tasks?scheduled_at__gte=" + at.Add(time.Minute).Format(time.RFC3339)
		e.must("GET", q, nil, http.StatusOK, &page)
		if len(page.Results) != 1 || page.Results[0].ID != later {
			t.Fatalf("scheduled_at__gte: %+v", page.Results)
		}
		e.must("PATCH", apiv1.TaskHref(later), apiv1.PatchTask{State: "canceled"}, http.StatusOK, &task)
		if task.State != "canceled" || task.FinishedAt == nil {
			t.Fatalf("canceled scheduled task: %+v", task)
		}
		e.startWorker("w1")
		done := e.waitState(id, "completed")
		if done.StartedAt.Before(at) {
			t.Fatalf("started at %v, before its time %v", done.StartedAt, at)
		}
	})
}

// TestUniqueKeyOverHTTP: a second dispatch of a key answers the first
// task, deduplicated, under concurrent dispatches too; another user's task
// with the key is neither found nor revealed; once the task is final the
// key dispatches a new one.
func TestUniqueKeyOverHTTP(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{})
		alice := e.as(e.addUser("alice", store.RoleUser))
		bob := e.as(e.addUser("bob", store.RoleUser))
		key := "nightly"
		body := apiv1.DispatchTask{Name: "stint.noop", UniqueKey: &key}
		var (
			mu   sync.Mutex
			refs = map[string]int{}
			dups int
			wg   sync.WaitGroup
		)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := alice.do("POST", "/api/v1/tasks", body)
				var ref apiv1.TaskRef
				json.Unmarshal(a.body, &ref) //nolint:errcheck
				mu.Lock()
				defer mu.Unlock()
				if a.status != http.StatusAccepted {
					t.Errorf("dispatch: %d %s", a.status, a.body)
				}
				refs[ref.Task]++
				if ref.Deduplicated {
					dups++
				}
			}()
		}
		wg.Wait()
		if len(refs) != 1 || dups != 19 {
			t.Fatalf("20 dispatches of one key: tasks %v, %d deduplicated", refs, dups)
		}
		var first string
		for href := range refs {
			first = href
		}
		var ref apiv1.TaskRef
		bob.must("POST", "/api/v1/tasks", body, http.StatusAccepted, &ref)
		if ref.Task == first || ref.Deduplicated {
			t.Fatalf("bob's dispatch of alice's key: %+v", ref)
		}
		var task apiv1.Task
		alice.must("GET", first, nil, http.StatusOK, &task)
		if task.UniqueKey == nil || *task.UniqueKey != key {
			t.Fatalf("task: %+v", task)
		}
		e.startWorker("w1")
		alice.waitState(task.ID, "completed")
		alice.must("POST", "/api/v1/tasks", body, http.StatusAccepted, &ref)
		if ref.Task == first || ref.Deduplicated {
			t.Fatalf("the key was not freed by the end of its task: %+v", ref)
		}
	})
}

// TestRetryOverHTTP: a failing task with a retry policy ends failed after
// its attempts, each listed with its error; POST /tasks/{id}/retry runs it
// again as a new task linked to it, for its owner and not for another
// user, and is a 409 on an incomplete task.
func TestRetryOverHTTP(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{})
		stint.Register(e.reg, "test.fail", func(context.Context, *stint.Run, struct{}) (struct{}, error) {
			return struct{}{}, errors.New("mirror down")
		})
		alice := e.as(e.addUser("alice", store.RoleUser))
		bob := e.as(e.addUser("bob", store.RoleUser))
		var ref apiv1.TaskRef
		alice.must("POST", "/api/v1/tasks", apiv1.DispatchTask{Name: "test.fail",
			Retry: &apiv1.Retry{MaxAttempts: 2, InitialDelay: "100ms"}}, http.StatusAccepted, &ref)
		id, _ := apiv1.ParseTaskRef(ref.Task)
		waiting := alice.dispatch(apiv1.DispatchTask{Name: "stint.sleep", Args: json.RawMessage(`{"seconds": 60}`), ScheduledAt: &apiv1.Time{Time: time.Now().Add(time.Hour)}})
		alice.must("POST", apiv1.TaskHref(waiting)+"/retry", nil, http.StatusConflict, nil)
		e.startWorker("w1")
		task := alice.waitState(id, "failed")
		if len(task.Attempts) != 2 || task.Attempts[0].State != "failed" || task.Attempts[0].Error == nil ||
			task.Attempts[0].Error.Description != "mirror down" || task.Attempts[1].Number != 2 ||
			task.Retry == nil || task.Retry.MaxAttempts != 2 || task.Retry.InitialDelay != "100ms" {
			t.Fatalf("failed task: %+v", task)
		}
		if gap := task.Attempts[1].StartedAt.Sub(task.Attempts[0].FinishedAt.Time); gap < 100*time.Millisecond {
			t.Fatalf("second attempt %v after the first ended, before its delay of 100ms", gap)
		}
		bob.must("POST", ref.Task+"/retry", nil, http.StatusNotFound, nil)
		var again apiv1.TaskRef
		alice.must("POST", ref.Task+"/retry", nil, http.StatusAccepted, &again)
		againID, _ := apiv1.ParseTaskRef(again.Task)
		retried := alice.task(againID)
		if retried.RetryOf == nil || *retried.RetryOf != ref.Task || retried.Owner != "alice" || retried.Name != "test.fail" {
			t.Fatalf("retried task: %+v", retried)
		}
	})
}
