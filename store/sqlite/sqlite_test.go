package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/sqlite"
	"github.com/stint-dev/stint/store/storetest"
)

// openFresh opens a new database file in the test's temporary directory.
func openFresh(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "stint.db"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	storetest.Run(t, openFresh)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(ctxFor(t), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func newTask(name string, exclusive, shared []string) store.NewTask {
	return store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: name, Args: json.RawMessage(`{}`),
		ExclusiveResources: exclusive, SharedResources: shared}
}

func TestOneProcessPerFile(t *testing.T) {
	ctx := ctxFor(t)
	path := filepath.Join(t.TempDir(), "stint.db")
	first, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if first.Path() != path {
		t.Errorf("Path() = %q, want %q", first.Path(), path)
	}
	second, err := sqlite.Open(ctx, path)
	if err == nil {
		second.Close()
		t.Fatal("a second Open of a file in use succeeded")
	}
	if !errors.Is(err, sqlite.ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}
	want := "sqlite: " + path + " is in use by another Stint process (one process per SQLite file; use PostgreSQL for several)"
	if err.Error() != want {
		t.Errorf("error message:\n%s\nwant\n%s", err, want)
	}
	// Another name of the same file takes the same lock.
	link := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(path, link); err == nil {
		if _, err := sqlite.Open(ctx, link); !errors.Is(err, sqlite.ErrInUse) {
			t.Errorf("Open through a symbolic link: %v, want ErrInUse", err)
		}
	}
	first.Close()
	first.Close() // a second Close does nothing
	again, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	again.Close()
}

func TestMethodsAfterClose(t *testing.T) {
	ctx := ctxFor(t)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "stint.db"))
	if err != nil {
		t.Fatal(err)
	}
	wake, err := st.Wakeups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := st.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	// Subscriptions end with the store.
	for _, ch := range []func() bool{
		func() bool { _, ok := <-wake; return ok },
		func() bool { _, ok := <-changes; return ok },
	} {
		done := make(chan bool)
		go func() { done <- ch() }()
		select {
		case ok := <-done:
			if ok {
				t.Error("a subscription received a value after Close")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a subscription's channel did not close with the store")
		}
	}
	if _, err := st.Dispatch(ctx, []store.NewTask{newTask("test.a", nil, nil)}); err == nil {
		t.Error("Dispatch after Close succeeded")
	}
	if _, err := st.Task(ctx, uuid.Must(uuid.NewV7())); err == nil {
		t.Error("Task after Close succeeded")
	}
}

func TestRecoveryAtOpen(t *testing.T) {
	ctx := ctxFor(t)
	path := filepath.Join(t.TempDir(), "stint.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Recovered(); got != (sqlite.RecoveryResult{}) {
		t.Fatalf("a new file recovered %+v", got)
	}
	if err := st.RegisterWorker(ctx, store.WorkerInfo{Name: "1@host", Hostname: "host", PID: 1, Concurrency: 2}); err != nil {
		t.Fatal(err)
	}
	a, b := newTask("test.a", []string{"r"}, nil), newTask("test.a", []string{"r"}, nil)
	c := newTask("test.a", nil, []string{"s"})
	if _, err := st.Dispatch(ctx, []store.NewTask{a, b, c}); err != nil {
		t.Fatal(err)
	}
	claimed, err := st.Claim(ctx, store.ClaimParams{Worker: "1@host", Names: []string{"test.a"}, Limit: 10})
	if err != nil || len(claimed) != 2 || claimed[0].ID != a.ID || claimed[1].ID != c.ID {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if got, err := st.Cancel(ctx, c.ID); err != nil || got.State != store.StateCanceling {
		t.Fatalf("cancel: %v %v", got, err)
	}
	st.Close() // as if the process stopped: nothing finished

	st = open(t, path)
	if got, want := st.Recovered(), (sqlite.RecoveryResult{Dropped: 1, Canceled: 1, Workers: 1}); got != want {
		t.Fatalf("Recovered() = %+v, want %+v", got, want)
	}
	ga, err := st.Task(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ga.State != store.StateDropped || ga.Error == nil || ga.Error.Kind != "dropped" ||
		!strings.Contains(ga.Error.Description, "stopped") || ga.FinishedAt == nil {
		t.Fatalf("a after recovery: %+v error %+v", ga, ga.Error)
	}
	gc, err := st.Task(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if gc.State != store.StateCanceled || gc.Error == nil || gc.FinishedAt == nil {
		t.Fatalf("c after recovery: %+v", gc)
	}
	gb, err := st.Task(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if gb.State != store.StateWaiting || gb.UnblockedAt == nil {
		t.Fatalf("b after recovery: %+v", gb)
	}
	if blockers, err := st.BlockedBy(ctx, b.ID); err != nil || len(blockers) != 0 {
		t.Fatalf("b blocked by %v %v", blockers, err)
	}
	if workers, err := st.Workers(ctx); err != nil || len(workers) != 0 {
		t.Fatalf("workers after recovery: %v %v", workers, err)
	}
	next, err := st.Claim(ctx, store.ClaimParams{Worker: "2@host", Names: []string{"test.a"}, Limit: 10})
	if err != nil || len(next) != 1 || next[0].ID != b.ID {
		t.Fatalf("claim after recovery: %v %v", next, err)
	}
	if res, err := st.Sweep(ctx); err != nil || res.Total() != 0 {
		t.Fatalf("sweep after recovery: %+v %v", res, err)
	}
	// A store opened after a clean stop recovers nothing.
	if _, err := st.Finish(ctx, []store.Outcome{{ID: b.ID, Attempt: next[0].Attempt, State: store.StateCompleted}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = open(t, path)
	if got := st.Recovered(); got != (sqlite.RecoveryResult{}) {
		t.Fatalf("recovered %+v after a clean stop", got)
	}
}

func TestWALAndSchema(t *testing.T) {
	ctx := ctxFor(t)
	path := filepath.Join(t.TempDir(), "stint.db")
	st := open(t, path)
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	if v, err := st.SchemaVersion(ctx); err != nil || v != 6 {
		t.Fatalf("SchemaVersion: %d %v", v, err)
	}
	// The file itself is in WAL mode, as any other reader sees it.
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q %v, want wal", mode, err)
	}
}

// TestPathNeedsNoEscaping opens a database whose path has the characters
// of a URI's syntax.
func TestPathNeedsNoEscaping(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir with spaces, ?, # and %20")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "stint?.db")
	st := open(t, path)
	if _, err := st.Dispatch(ctxFor(t), []store.NewTask{newTask("test.a", nil, nil)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not where it was asked: %v", err)
	}
}

// TestJSONRoundTrip stores args and a result with unicode, escapes and
// numbers beyond float64, and reads them back as PostgreSQL's jsonb
// returns them.
func TestJSONRoundTrip(t *testing.T) {
	ctx := ctxFor(t)
	st := open(t, filepath.Join(t.TempDir(), "stint.db"))
	nt := newTask("test.json", nil, nil)
	nt.Args = json.RawMessage(`{"text":"héllo ✓ 日本 \u00e9\ud83d\ude00 \"q\" \\ /\n","big":123456789012345678901234567890,` +
		`"small":-0.000000000000000000001,"exp":1.5e3,"scale":1.50,"b":[true,false,null],"b":{"z":1,"aa":2,"a":3}}`)
	wantArgs := `{"b": {"a": 3, "z": 1, "aa": 2}, "big": 123456789012345678901234567890, "exp": 1500, ` +
		`"text": "héllo ✓ 日本 é😀 \"q\" \\ /\n", "scale": 1.50, "small": -0.000000000000000000001}`
	got, err := st.Dispatch(ctx, []store.NewTask{nt})
	if err != nil {
		t.Fatal(err)
	}
	if string(got[0].Args) != wantArgs {
		t.Errorf("dispatched args:\n%s\nwant\n%s", got[0].Args, wantArgs)
	}
	runs, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.json"}, Limit: 1})
	if err != nil || len(runs) != 1 {
		t.Fatal(runs, err)
	}
	if string(runs[0].Args) != wantArgs {
		t.Errorf("claimed args:\n%s\nwant\n%s", runs[0].Args, wantArgs)
	}
	result := json.RawMessage(`[18446744073709551616, 0.1, "ü\u0001", {}, []]`)
	wantResult := `[18446744073709551616, 0.1, "ü\u0001", {}, []]`
	if _, err := st.Finish(ctx, []store.Outcome{{ID: nt.ID, Attempt: runs[0].Attempt, State: store.StateCompleted, Result: result}}); err != nil {
		t.Fatal(err)
	}
	task, err := st.Task(ctx, nt.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(task.Result) != wantResult {
		t.Errorf("result:\n%s\nwant\n%s", task.Result, wantResult)
	}
	if string(task.Args) != wantArgs {
		t.Errorf("args:\n%s\nwant\n%s", task.Args, wantArgs)
	}
}

// TestUnstorable checks that what PostgreSQL refuses is refused here too,
// with store.ErrUnstorable, and that a refused batch changes nothing.
func TestUnstorable(t *testing.T) {
	ctx := ctxFor(t)
	st := open(t, filepath.Join(t.TempDir(), "stint.db"))
	for _, args := range []string{`{"a": "\u0000"}`, `{"a": "\ud800"}`, `{"a": 1`, "{\"a\": \"\xff\"}", `{"a": 1e-20000}`} {
		nt := newTask("test.bad", nil, nil)
		nt.Args = json.RawMessage(args)
		if _, err := st.Dispatch(ctx, []store.NewTask{nt}); !errors.Is(err, store.ErrUnstorable) {
			t.Errorf("args %q: %v, want ErrUnstorable", args, err)
		}
	}
	bad := newTask("test.bad", []string{"r\x00"}, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{bad}); !errors.Is(err, store.ErrUnstorable) {
		t.Errorf("a resource with a NUL byte: %v, want ErrUnstorable", err)
	}
	good := newTask("test.bad", nil, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{good}); err != nil {
		t.Fatal(err)
	}
	runs, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.bad"}, Limit: 1})
	if err != nil || len(runs) != 1 {
		t.Fatal(runs, err)
	}
	_, err = st.Finish(ctx, []store.Outcome{{ID: good.ID, Attempt: runs[0].Attempt, State: store.StateCompleted,
		Result: json.RawMessage(`"\u0000"`)}})
	if !errors.Is(err, store.ErrUnstorable) {
		t.Fatalf("a result with \\u0000: %v, want ErrUnstorable", err)
	}
	_, err = st.Finish(ctx, []store.Outcome{{ID: good.ID, Attempt: runs[0].Attempt, State: store.StateFailed,
		Error: &store.TaskError{Kind: "x", Description: "nul \x00"}}})
	if !errors.Is(err, store.ErrUnstorable) {
		t.Fatalf("an error with a NUL: %v, want ErrUnstorable", err)
	}
	if task, err := st.Task(ctx, good.ID); err != nil || task.State != store.StateRunning {
		t.Fatalf("task after refused outcomes: %+v %v", task, err)
	}
}

// TestNothingPublishedForARollback dispatches a batch that fails halfway
// (a duplicate id): no task of it exists, and no change is published.
func TestNothingPublishedForARollback(t *testing.T) {
	ctx := ctxFor(t)
	st := open(t, filepath.Join(t.TempDir(), "stint.db"))
	changes, err := st.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wake, err := st.Wakeups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := newTask("test.a", []string{"r"}, nil)
	dup := first
	dup.ExclusiveResources = []string{"other"}
	if _, err := st.Dispatch(ctx, []store.NewTask{first, newTask("test.a", []string{"r"}, nil), dup}); err == nil {
		t.Fatal("a batch with a duplicate id was dispatched")
	}
	select {
	case batch := <-changes:
		t.Fatalf("changes published for a rolled-back dispatch: %v", batch)
	case <-wake:
		t.Fatal("wake-up for a rolled-back dispatch")
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := st.Task(ctx, first.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("task of a rolled-back batch: %v", err)
	}
	// The queues kept nothing of it: a new task on r is runnable at once,
	// and the sweep finds nothing.
	next := newTask("test.a", []string{"r"}, nil)
	got, err := st.Dispatch(ctx, []store.NewTask{next})
	if err != nil || got[0].UnblockedAt == nil {
		t.Fatalf("dispatch after the rollback: %+v %v", got, err)
	}
	if res, err := st.Sweep(ctx); err != nil || res.Total() != 0 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	select {
	case batch := <-changes:
		if len(batch) != 1 || batch[0].ID != next.ID {
			t.Fatalf("changes %v", batch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no change for the dispatch after the rollback")
	}
}
