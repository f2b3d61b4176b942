package worker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// Execute turns each way a handler can end into the outcome to record.
// The handlers record no outputs, so no store is needed.
func TestExecuteOutcomes(t *testing.T) {
	task := &store.Task{ID: uuid.Must(uuid.NewV7()), Name: "test.a", Attempt: 3}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name  string
		ctx   context.Context
		h     Handler
		state store.State
		kind  string
	}{
		{"result", context.Background(), func(context.Context, *store.Task, *Recorder) (json.RawMessage, *store.TaskError) {
			return json.RawMessage(`1`), nil
		}, store.StateCompleted, ""},
		{"error", context.Background(), func(context.Context, *store.Task, *Recorder) (json.RawMessage, *store.TaskError) {
			return json.RawMessage(`1`), &store.TaskError{Kind: "x", Description: "no"}
		}, store.StateFailed, "x"},
		{"error after cancel", canceled, func(ctx context.Context, _ *store.Task, _ *Recorder) (json.RawMessage, *store.TaskError) {
			return nil, &store.TaskError{Kind: "canceled", Description: ctx.Err().Error()}
		}, store.StateCanceled, "canceled"},
		{"panic", context.Background(), func(context.Context, *store.Task, *Recorder) (json.RawMessage, *store.TaskError) {
			panic("boom")
		}, store.StateFailed, "panic"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := Execute(c.ctx, nil, task, c.h, nil)
			if o.ID != task.ID || o.Attempt != 3 || o.State != c.state {
				t.Fatalf("outcome %+v", o)
			}
			if c.kind == "" && (o.Error != nil || string(o.Result) != "1") {
				t.Fatalf("outcome of a result: %+v", o)
			}
			if c.kind != "" && (o.Error == nil || o.Error.Kind != c.kind || o.Result != nil) {
				t.Fatalf("outcome of a failure: %+v", o)
			}
			if c.kind == "panic" && (o.Error.Description != "boom" || !strings.Contains(o.Error.Traceback, "execute_test.go")) {
				t.Fatalf("panic: %+v", o.Error)
			}
		})
	}
}

func TestNewRefusesBadVersions(t *testing.T) {
	h := func(context.Context, *store.Task, *Recorder) (json.RawMessage, *store.TaskError) { return nil, nil }
	_, err := New(nil, Config{Name: "w", Names: []string{"a"}, Handler: h, Versions: map[string]string{"p": "1.x"}})
	if err == nil || !strings.Contains(err.Error(), `p: "1.x" is not a version`) {
		t.Fatalf("New with a bad version: %v", err)
	}
	if _, err := New(nil, Config{Name: "w", Names: []string{"a"}, Handler: h, Versions: map[string]string{"p": "1.4.0"}}); err != nil {
		t.Fatal(err)
	}
}
