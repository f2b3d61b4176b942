package stinttest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/stinttest"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

type noArgs struct{}

// TestRunRecordsOutputs: what a task function records through its run
// handle is what the Run returns, progress as the task's latest reports.
func TestRunRecordsOutputs(t *testing.T) {
	ctx := context.Background()
	r := stinttest.NewRun(stinttest.Config{Name: "t.outputs"})
	run := r.Run
	total := int64(2)
	run.Progress(stint.ProgressReport{Code: "b", Message: "second code", State: "running", Total: &total})
	run.Progress(stint.ProgressReport{Code: "a", Message: "first of a", State: "running"})
	run.Progress(stint.ProgressReport{Code: "b", Message: "second code", State: "completed", Total: &total, Done: 2})
	if err := run.NonFatalError(ctx, &stint.Error{Kind: "flaky", Description: "retried a fetch"}); err != nil {
		t.Fatal(err)
	}
	if err := run.NonFatalError(ctx, errors.New("plain")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"file:x", "file:y"} {
		if err := run.CreatedResource(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := run.CreatedResource(ctx, ""); err == nil {
		t.Error("an empty created resource was accepted")
	}

	progress := r.Progress()
	if len(progress) != 2 || progress[0].Code != "b" || progress[0].State != "completed" || progress[0].Done != 2 ||
		progress[1].Code != "a" || progress[1].Message != "first of a" {
		t.Errorf("progress %+v; want b completed 2/2, then a", progress)
	}
	nonFatal := r.NonFatalErrors()
	if len(nonFatal) != 2 || nonFatal[0].Kind != "flaky" || nonFatal[0].Description != "retried a fetch" ||
		nonFatal[1].Kind != "error" || nonFatal[1].Description != "plain" {
		t.Errorf("non-fatal errors %+v", nonFatal)
	}
	if got := r.CreatedResources(); !slices.Equal(got, []string{"file:x", "file:y"}) {
		t.Errorf("created resources %v", got)
	}
	if run.Attempt() != 1 || run.Name() != "t.outputs" || run.ID() == uuid.Nil || run.ID() != r.Task().ID {
		t.Errorf("run: attempt %d, name %q, id %s (task %s)", run.Attempt(), run.Name(), run.ID(), r.Task().ID)
	}
	if _, err := run.WorkDir(); err == nil {
		t.Error("WorkDir without a WorkRoot succeeded")
	}
}

// TestRunChildren: children get the task's owner and group, unless the
// request names a group; the Registry refuses what a dispatch would; and
// Dispatch sends them on.
func TestRunChildren(t *testing.T) {
	ctx := context.Background()
	reg := stint.NewRegistry()
	stint.Register(reg, "t.child", func(ctx context.Context, run *stint.Run, args struct {
		N int `json:"n"`
	}) (struct{}, error) {
		return struct{}{}, nil
	})
	group, other := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	r := stinttest.NewRun(stinttest.Config{Name: "t.parent", Owner: "alice", TaskGroup: &group, Registry: reg})

	child, err := r.Run.Dispatch(ctx, stint.DispatchRequest{Name: "t.child", Args: map[string]int{"n": 1}, ExclusiveResources: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	if child.State != store.StateWaiting || child.ParentTask == nil || *child.ParentTask != r.Task().ID ||
		child.Owner != "alice" || child.TaskGroup == nil || *child.TaskGroup != group || string(child.Args) != `{"n":1}` ||
		!slices.Equal(child.ExclusiveResources, []string{"r"}) {
		t.Errorf("child %+v", child)
	}
	if _, err := r.Run.Dispatch(ctx, stint.DispatchRequest{Name: "t.child", Args: map[string]int{"n": 2}, TaskGroup: &other}); err != nil {
		t.Fatal(err)
	}
	var ve *stint.ValidationError
	if _, err := r.Run.Dispatch(ctx, stint.DispatchRequest{Name: "t.unknown"}); !errors.As(err, &ve) || ve.Field != "name" {
		t.Errorf("a child of an unknown type: %v; want a validation error on name", err)
	}
	if _, err := r.Run.Dispatch(ctx, stint.DispatchRequest{Name: "t.child", Args: map[string]int{"m": 1}}); !errors.As(err, &ve) || ve.Field != "args" {
		t.Errorf("a child with bad args: %v; want a validation error on args", err)
	}
	children := r.Children()
	if len(children) != 2 || children[0].Owner != "alice" || *children[0].TaskGroup != group || *children[1].TaskGroup != other {
		t.Errorf("children %+v", children)
	}

	var sent []string
	forward := stinttest.NewRun(stinttest.Config{Name: "t.parent", Dispatch: func(ctx context.Context, req stint.DispatchRequest) (*stint.Task, error) {
		sent = append(sent, req.Name)
		return nil, errors.New("the database is down")
	}})
	if _, err := forward.Run.Dispatch(ctx, stint.DispatchRequest{Name: "t.anything"}); err == nil || err.Error() != "the database is down" {
		t.Errorf("Dispatch's error: %v", err)
	}
	if !slices.Equal(sent, []string{"t.anything"}) || len(forward.Children()) != 1 {
		t.Errorf("sent %v, recorded %d", sent, len(forward.Children()))
	}
}

// TestWork: Work runs the registered function as a worker does and
// reports each ending as the worker would record it.
func TestWork(t *testing.T) {
	reg := stint.NewRegistry()
	stint.Register(reg, "t.echo", func(ctx context.Context, run *stint.Run, args struct {
		Word string `json:"word"`
	}) (map[string]string, error) {
		return map[string]string{"word": args.Word, "attempt": fmt.Sprint(run.Attempt())}, nil
	})
	stint.Register(reg, "t.panic", func(ctx context.Context, run *stint.Run, args noArgs) (struct{}, error) {
		panic("boom")
	})
	stint.Register(reg, "t.slow", func(ctx context.Context, run *stint.Run, args noArgs) (struct{}, error) {
		<-ctx.Done()
		return struct{}{}, ctx.Err()
	}, stint.WithTimeout(50*time.Millisecond))
	var dir string
	stint.Register(reg, "t.workdir", func(ctx context.Context, run *stint.Run, args noArgs) (string, error) {
		d, err := run.WorkDir()
		if err != nil {
			return "", err
		}
		dir = d
		return d, os.WriteFile(d+"/f", []byte("x"), 0o600)
	})

	ctx := context.Background()
	res, err := stinttest.Work[map[string]string](ctx, stinttest.NewRun(stinttest.Config{Name: "t.echo", Attempt: 3}), reg, map[string]string{"word": "hi"})
	if err != nil || res["word"] != "hi" || res["attempt"] != "3" {
		t.Errorf("echo: %v, %v", res, err)
	}
	raw, err := stinttest.Work[json.RawMessage](ctx, stinttest.NewRun(stinttest.Config{Name: "t.echo"}), reg, json.RawMessage(`{"word":"raw"}`))
	if err != nil || !strings.Contains(string(raw), `"word":"raw"`) {
		t.Errorf("echo raw: %s, %v", raw, err)
	}

	kindOf := func(err error) string {
		var f *stinttest.Failure
		if errors.As(err, &f) {
			return f.Kind
		}
		return fmt.Sprintf("not a failure: %v", err)
	}
	if _, err := stinttest.Work[struct{}](ctx, stinttest.NewRun(stinttest.Config{Name: "t.panic"}), reg, nil); kindOf(err) != "panic" {
		t.Errorf("panic: %v", err)
	}
	if _, err := stinttest.Work[struct{}](ctx, stinttest.NewRun(stinttest.Config{Name: "t.slow"}), reg, nil); kindOf(err) != stint.TimeoutKind {
		t.Errorf("timeout: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := stinttest.Work[struct{}](canceled, stinttest.NewRun(stinttest.Config{Name: "t.slow"}), reg, nil); kindOf(err) != "canceled" {
		t.Errorf("canceled: %v", err)
	}

	// Mistakes of the test are errors, not failures of the task.
	for name, call := range map[string]func() error{
		"unknown field": func() error {
			_, err := stinttest.Work[map[string]string](ctx, stinttest.NewRun(stinttest.Config{Name: "t.echo"}), reg, map[string]string{"wrod": "hi"})
			return err
		},
		"unknown task": func() error {
			_, err := stinttest.Work[struct{}](ctx, stinttest.NewRun(stinttest.Config{Name: "t.nothing"}), reg, nil)
			return err
		},
		"result type": func() error {
			_, err := stinttest.Work[int](ctx, stinttest.NewRun(stinttest.Config{Name: "t.echo"}), reg, map[string]string{"word": "hi"})
			return err
		},
	} {
		err := call()
		var f *stinttest.Failure
		if err == nil || errors.As(err, &f) {
			t.Errorf("%s: %v; want an error that is not a task failure", name, err)
		}
	}

	root := t.TempDir()
	got, err := stinttest.Work[string](ctx, stinttest.NewRun(stinttest.Config{Name: "t.workdir", WorkRoot: root}), reg, nil)
	if err != nil || got != dir || !strings.HasPrefix(dir, root) {
		t.Fatalf("workdir: %q, %v (root %s)", got, err, root)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the working directory %s outlived the run: %v", dir, err)
	}
}

// fatalTB records the failure of an assertion instead of ending the test.
type fatalTB struct {
	testing.TB
	failed string
}

func (f *fatalTB) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }

// TestRequireDispatchedTx, on PostgreSQL: the assertions see what the
// caller's transaction dispatched before it commits, and fail when it did
// not.
func TestRequireDispatchedTx(t *testing.T) {
	ctx := context.Background()
	st := enginetest.PostgreSQL.Open(t).(*postgres.Store)
	reg := stint.NewRegistry()
	client := stint.NewClient(st, reg)
	nts, err := client.Prepare([]stint.DispatchRequest{{Name: "stint.noop", Owner: "alice"}})
	if err != nil {
		t.Fatal(err)
	}

	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := postgres.DispatchTx(ctx, tx, nts); err != nil {
		t.Fatal(err)
	}
	task := stinttest.RequireDispatchedTx(ctx, t, tx, "stint.noop")
	if task.ID != nts[0].ID || task.Owner != "alice" || task.State != store.StateWaiting {
		t.Errorf("found %+v; want the task dispatched, %s", task, nts[0].ID)
	}
	stinttest.RequireNotDispatchedTx(ctx, t, tx, "stint.sleep")

	// Outside the transaction nothing is there yet.
	tb := &fatalTB{TB: t}
	if got := stinttest.RequireDispatchedTx(ctx, tb, st.Pool(), "stint.noop"); got != nil || tb.failed == "" {
		t.Errorf("RequireDispatchedTx outside the transaction: %v, failure %q", got, tb.failed)
	}
	tb = &fatalTB{TB: t}
	stinttest.RequireNotDispatchedTx(ctx, tb, tx, "stint.noop")
	if !strings.Contains(tb.failed, nts[0].ID.String()) {
		t.Errorf("RequireNotDispatchedTx of a dispatched task: failure %q", tb.failed)
	}
}
