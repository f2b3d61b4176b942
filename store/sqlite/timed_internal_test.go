package sqlite

import (
	"database/sql"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// schemaOf is what the schema says of stint_tasks: its columns (PRAGMA
// table_info) and the SQL of its indexes and triggers, by name.
type schemaOf struct {
	columns []string
	objects map[string]string
}

func readSchema(t *testing.T, db *sql.DB) schemaOf {
	t.Helper()
	ctx := testCtx(t)
	var s schemaOf
	rows, err := db.QueryContext(ctx, `SELECT cid, name, type, "notnull", coalesce(dflt_value, 'NULL'), pk FROM pragma_table_info('stint_tasks')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var (
			cid, notNull, pk int
			name, typ, dflt  string
		)
		if err := rows.Scan(&cid, &name, &typ, &notNull, &dflt, &pk); err != nil {
			t.Fatal(err)
		}
		s.columns = append(s.columns, fmt.Sprintf("%d %s %s notnull=%d default=%s pk=%d", cid, name, typ, notNull, dflt, pk))
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	s.objects = map[string]string{}
	rows, err = db.QueryContext(ctx, `SELECT type, name, coalesce(sql, '') FROM sqlite_master
		WHERE tbl_name = 'stint_tasks' AND type IN ('index', 'trigger')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ, name, text string
		if err := rows.Scan(&typ, &name, &text); err != nil {
			t.Fatal(err)
		}
		s.objects[typ+" "+name] = text
	}
	return s
}

// TestMigrateToTasksInTime opens a file of schema version 4 with tasks:
// version 5 rebuilds stint_tasks with every column, index and trigger it
// had, exactly, and the new ones; keeps the tasks, their counts and the
// sequence (past the newest task, which was deleted); and accepts the new
// state.
func TestMigrateToTasksInTime(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "stint.db")
	db, err := openWriter(ctx, path, 2048)
	if err != nil {
		t.Fatal(err)
	}
	migrations, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE stint_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`); err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations[:4] {
		if _, err := db.ExecContext(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO stint_schema VALUES (?, ?, 0)`, m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
	ids := make([]uuid.UUID, 5)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	// seq 1: completed; 2: waiting on r, ready; 3: waiting behind it; 4:
	// failed, with an error; 5: completed, then deleted (the sequence is
	// past the newest task).
	for _, q := range []string{
		`INSERT INTO stint_tasks (seq, id, name, state, created_at, updated_at, finished_at, result)
			VALUES (1, '` + ids[0].String() + `', 'test.old', 'completed', 10, 11, 11, '"ok"')`,
		`INSERT INTO stint_tasks (seq, id, name, state, created_at, updated_at, unblocked_at, exclusive_resources)
			VALUES (2, '` + ids[1].String() + `', 'test.old', 'waiting', 20, 20, 20, '["r"]')`,
		`INSERT INTO stint_tasks (seq, id, name, state, created_at, updated_at, exclusive_resources, blocked_count)
			VALUES (3, '` + ids[2].String() + `', 'test.old', 'waiting', 30, 30, '["r"]', 1)`,
		`INSERT INTO stint_task_resources (resource, seq, exclusive, ready) VALUES ('r', 2, 1, 1), ('r', 3, 1, 0)`,
		`INSERT INTO stint_tasks (seq, id, name, state, owner, created_at, updated_at, finished_at, error)
			VALUES (4, '` + ids[3].String() + `', 'test.old', 'failed', 'alice', 40, 41, 41, '{"kind": "x", "description": "y"}')`,
		`INSERT INTO stint_tasks (seq, id, name, state, created_at, updated_at, finished_at)
			VALUES (5, '` + ids[4].String() + `', 'test.old', 'completed', 50, 51, 51)`,
		`DELETE FROM stint_tasks WHERE seq = 5`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	before := readSchema(t, db)
	db.Close()

	st, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, err := st.SchemaVersion(ctx); err != nil || v != 6 {
		t.Fatalf("SchemaVersion: %d %v", v, err)
	}
	after := readSchema(t, st.rdb)
	added := []string{"scheduled_at INTEGER notnull=0 default=NULL pk=0", "retry TEXT notnull=0 default=NULL pk=0",
		"attempts TEXT notnull=1 default='[]' pk=0", "unique_key TEXT notnull=0 default=NULL pk=0", "retry_of TEXT notnull=0 default=NULL pk=0"}
	want := slices.Clone(before.columns)
	for i, c := range added {
		want = append(want, fmt.Sprintf("%d %s", len(before.columns)+i, c))
	}
	if !slices.Equal(after.columns, want) {
		t.Errorf("columns after the migration:\n%v\nwant\n%v", after.columns, want)
	}
	for name, text := range before.objects {
		if got, ok := after.objects[name]; !ok || got != text {
			t.Errorf("%s after the migration: %q (present %v), want %q", name, got, ok, text)
		}
	}
	newObjects := map[string]bool{"index stint_tasks_due": true, "index stint_tasks_unique_key": true}
	for name := range after.objects {
		if _, ok := before.objects[name]; !ok && !newObjects[name] {
			t.Errorf("%s: made by the migration, not expected", name)
		}
	}
	for name := range newObjects {
		if _, ok := after.objects[name]; !ok {
			t.Errorf("%s: missing", name)
		}
	}
	var seqs []string
	rows, err := st.rdb.QueryContext(ctx, `SELECT name || ' ' || seq FROM sqlite_sequence ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s)
	}
	rows.Close()
	if !slices.Equal(seqs, []string{"stint_tasks 5"}) {
		t.Errorf("sqlite_sequence after the migration: %v, want [stint_tasks 5]", seqs)
	}
	var check string
	if err := st.rdb.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check: %q %v", check, err)
	}

	// The tasks, as they were, with the new fields empty.
	for i, state := range []store.State{store.StateCompleted, store.StateWaiting, store.StateWaiting, store.StateFailed} {
		task, err := st.Task(ctx, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if task.State != state || task.Seq != int64(i+1) || task.ScheduledAt != nil || task.Retry != nil ||
			task.Attempts == nil || len(task.Attempts) != 0 || task.UniqueKey != "" || task.RetryOf != nil {
			t.Errorf("task %d after the migration: %+v", i+1, task)
		}
	}
	if task, _ := st.Task(ctx, ids[3]); task.Owner != "alice" || task.Error == nil || task.Error.Kind != "x" {
		t.Errorf("failed task after the migration: %+v", task)
	}
	counts, err := st.CountByState(ctx)
	if err != nil || !maps.Equal(counts, map[store.State]int{store.StateCompleted: 1, store.StateWaiting: 2, store.StateFailed: 1}) {
		t.Errorf("counts after the migration: %v %v", counts, err)
	}
	var rowsOfCounts []string
	rows, err = st.rdb.QueryContext(ctx, `SELECT state FROM stint_task_counts ORDER BY state`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		rowsOfCounts = append(rowsOfCounts, s)
	}
	rows.Close()
	var states []string
	for _, s := range store.States {
		states = append(states, string(s))
	}
	slices.Sort(states)
	if !slices.Equal(rowsOfCounts, states) {
		t.Errorf("rows of stint_task_counts %v, want one per state %v", rowsOfCounts, states)
	}

	// The queues work as before, new tasks take seqs past the sequence, and
	// the new state is accepted and counted.
	run, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.old"}, Limit: 10})
	if err != nil || len(run) != 1 || run[0].ID != ids[1] {
		t.Fatalf("claim after the migration: %v %v", run, err)
	}
	if _, err := st.Finish(ctx, []store.Outcome{{ID: ids[1], Attempt: run[0].Attempt, State: store.StateCompleted}}); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	nt := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.new", ScheduledAt: &later}
	got, err := st.Dispatch(ctx, []store.NewTask{nt})
	if err != nil || got[0].State != store.StateScheduled || got[0].Seq != 6 {
		t.Fatalf("scheduled dispatch after the migration: %+v %v", got, err)
	}
	counts, err = st.CountByState(ctx)
	if err != nil || !maps.Equal(counts, map[store.State]int{store.StateCompleted: 2, store.StateWaiting: 1, store.StateFailed: 1, store.StateScheduled: 1}) {
		t.Errorf("counts after the new dispatch: %v %v", counts, err)
	}
	next, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.old"}, Limit: 10})
	if err != nil || len(next) != 1 || next[0].ID != ids[2] {
		t.Fatalf("the task behind the finished one: %v %v", next, err)
	}
	if res, err := st.Sweep(ctx); err != nil || res.Total() != 0 {
		t.Fatalf("sweep after the migration: %+v %v", res, err)
	}
}

// TestDueSeqsAreNeverReused: the seq a task takes when it becomes due is
// past every seq given, and stays so after that task is deleted and the
// file opened again.
func TestDueSeqsAreNeverReused(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "stint.db")
	st, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(50 * time.Millisecond)
	a := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.due", ScheduledAt: &soon}
	b := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.due"}
	got, err := st.Dispatch(ctx, []store.NewTask{a, b})
	if err != nil || got[0].Seq != 1 || got[1].Seq != 2 {
		t.Fatalf("dispatch: %+v %v", got, err)
	}
	time.Sleep(time.Until(soon) + 10*time.Millisecond)
	if res, err := st.EnqueueDue(ctx, 10); err != nil || res.Enqueued != 1 {
		t.Fatalf("EnqueueDue: %+v %v", res, err)
	}
	due, err := st.Task(ctx, a.ID)
	if err != nil || due.Seq != 3 || due.State != store.StateWaiting || due.UnblockedAt == nil {
		t.Fatalf("the due task: %+v %v", due, err)
	}
	runs, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.due"}, Limit: 10})
	if err != nil || len(runs) != 2 || runs[0].ID != b.ID || runs[1].ID != a.ID {
		t.Fatalf("claim: %v %v", runs, err)
	}
	for _, r := range runs {
		if _, err := st.Finish(ctx, []store.Outcome{{ID: r.ID, Attempt: r.Attempt, State: store.StateCompleted}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteTask(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EnqueueDue(ctx, 0); err == nil {
		t.Error("EnqueueDue with limit 0 succeeded")
	}
	st.Close()
	st, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.due"}
	if got, err := st.Dispatch(ctx, []store.NewTask{c}); err != nil || got[0].Seq != 4 {
		t.Fatalf("dispatch after reopening: %+v %v, want seq 4", got, err)
	}
}

// TestRecoveryRetriesDroppedRuns: at open, a task found running whose
// policy retries dropped runs, with attempts left, is scheduled for its
// next attempt, its run recorded dropped; the others end as before.
func TestRecoveryRetriesDroppedRuns(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "stint.db")
	st, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	retrying := &store.RetryPolicy{MaxAttempts: 2, InitialDelay: time.Hour, MaxDelay: time.Hour, Multiplier: 1, Dropped: true}
	lastAttempt := &store.RetryPolicy{MaxAttempts: 1, Dropped: true}
	failedOnly := &store.RetryPolicy{MaxAttempts: 3, InitialDelay: time.Hour, MaxDelay: time.Hour, Multiplier: 1}
	tasks := []store.NewTask{
		{ID: uuid.Must(uuid.NewV7()), Name: "test.recover", Retry: retrying, ExclusiveResources: []string{"r"}},
		{ID: uuid.Must(uuid.NewV7()), Name: "test.recover", Retry: lastAttempt},
		{ID: uuid.Must(uuid.NewV7()), Name: "test.recover", Retry: failedOnly},
		{ID: uuid.Must(uuid.NewV7()), Name: "test.recover", Retry: retrying},
		{ID: uuid.Must(uuid.NewV7()), Name: "test.behind", ExclusiveResources: []string{"r"}},
	}
	if _, err := st.Dispatch(ctx, tasks); err != nil {
		t.Fatal(err)
	}
	runs, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.recover"}, Limit: 10})
	if err != nil || len(runs) != 4 {
		t.Fatalf("claim: %d %v", len(runs), err)
	}
	if _, err := st.Cancel(ctx, tasks[3].ID); err != nil { // canceling: never retried
		t.Fatal(err)
	}
	st.Close()

	st, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, want := st.Recovered(), (RecoveryResult{Dropped: 2, Canceled: 1, Retried: 1}); got != want {
		t.Fatalf("Recovered() = %+v, want %+v", got, want)
	}
	task, err := st.Task(ctx, tasks[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if task.State != store.StateScheduled || task.Worker != "" || task.StartedAt != nil || len(task.Attempts) != 1 ||
		task.Error == nil || task.Error.Kind != store.StoppedWhileRunningKind || task.ScheduledAt == nil ||
		task.ScheduledAt.Sub(task.Attempts[0].FinishedAt) != time.Hour {
		t.Fatalf("the retried task: %+v", task)
	}
	if a := task.Attempts[0]; a.Number != 1 || a.State != store.StateDropped || a.Worker != "w" ||
		!a.StartedAt.Equal(*runs[0].StartedAt) || a.Error == nil || *a.Error != *task.Error {
		t.Fatalf("its attempt: %+v", a)
	}
	for i, state := range map[int]store.State{1: store.StateDropped, 2: store.StateDropped, 3: store.StateCanceled} {
		if task, err := st.Task(ctx, tasks[i].ID); err != nil || task.State != state || len(task.Attempts) != 0 {
			t.Fatalf("task %d after recovery: %+v %v, want %s", i, task, err, state)
		}
	}
	// The retried task left its queue.
	next, err := st.Claim(ctx, store.ClaimParams{Worker: "w2", Names: []string{"test.recover", "test.behind"}, Limit: 10})
	if err != nil || len(next) != 1 || next[0].ID != tasks[4].ID {
		t.Fatalf("claim after recovery: %v %v", next, err)
	}
	if res, err := st.Sweep(ctx); err != nil || res.Total() != 0 {
		t.Fatalf("sweep after recovery: %+v %v", res, err)
	}
}
