package postgres_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/store"
)

// TestFinishPlanIgnoresStatistics checks the plan of stint_finish's update,
// as auto_explain reports it, in a table ANALYZE found empty and in one it
// found full of scheduled tasks with none running: in both, the outcomes
// are merge-joined to the rows the primary key finds. (A plan through
// stint_tasks_incomplete read every running task for each outcome; one made
// while the table was small scanned the whole primary key.)
func TestFinishPlanIgnoresStatistics(t *testing.T) {
	for _, scheduled := range []int{0, 5000} {
		t.Run(map[int]string{0: "empty", 5000: "scheduled"}[scheduled], func(t *testing.T) {
			ctx := context.Background()
			dsn := pgtest.Database(t)
			st := openAt(t, dsn)
			at := time.Now().Add(time.Hour)
			var ahead []store.NewTask
			for range scheduled {
				ahead = append(ahead, store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.plan", Args: json.RawMessage(`{}`), ScheduledAt: &at})
			}
			if len(ahead) > 0 {
				if _, err := st.Dispatch(ctx, ahead); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := st.Pool().Exec(ctx, "ANALYZE stint_tasks"); err != nil {
				t.Fatal(err)
			}
			var batch []store.NewTask
			for range 20 {
				batch = append(batch, store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.plan", Args: json.RawMessage(`{}`)})
			}
			if _, err := st.Dispatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
			if err := st.RegisterWorker(ctx, store.WorkerInfo{Name: "w", Concurrency: 20, StartedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			claimed, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.plan"}, Limit: 20})
			if err != nil || len(claimed) != 20 {
				t.Fatalf("claimed %d tasks, %v; want 20", len(claimed), err)
			}

			plans := explainedFinish(t, dsn, claimed)
			if !strings.Contains(plans, "Merge Join") || !strings.Contains(plans, "stint_tasks_pkey") ||
				strings.Contains(plans, "stint_tasks_incomplete") {
				t.Fatalf("the finish's update is not a merge join on the primary key:\n%s", plans)
			}
		})
	}
}

// explainedFinish finishes tasks through stint_finish on a connection of
// its own, where auto_explain reports the plans of the statements inside
// as notices, and returns the plan of the update.
func explainedFinish(t *testing.T, dsn string, tasks []*store.Task) string {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var notices []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		defer mu.Unlock()
		notices = append(notices, n.Message)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		"LOAD 'auto_explain'",
		"SET auto_explain.log_min_duration = 0",
		"SET auto_explain.log_nested_statements = on",
		"SET auto_explain.log_level = notice",
		"SET auto_explain.log_format = json",
		"SET client_min_messages = notice",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s (the test needs a role allowed to load auto_explain): %v", q, err)
		}
	}
	var ids []uuid.UUID
	var attempts []int
	var states, results []string
	for _, task := range tasks {
		ids = append(ids, task.ID)
		attempts = append(attempts, task.Attempt)
		states = append(states, string(store.StateCompleted))
		results = append(results, "{}")
	}
	errs := make([]*string, len(tasks))
	noRetry := make([]bool, len(tasks))
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM stint_finish($1, $2, $3, $4, $5, $6)",
		ids, attempts, states, results, errs, noRetry).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(tasks) {
		t.Fatalf("stint_finish ended %d tasks, want %d", n, len(tasks))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range notices {
		// "duration: ... plan:\n{"Query Text": ..., "Plan": {...}}": the
		// plan alone, without the statement's text and its comments.
		var explained struct {
			Plan json.RawMessage
		}
		if i := strings.Index(m, "{"); i < 0 || json.Unmarshal([]byte(m[i:]), &explained) != nil {
			continue
		}
		if plan := string(explained.Plan); strings.Contains(plan, `"Operation": "Update"`) &&
			strings.Contains(plan, `"Relation Name": "stint_tasks"`) {
			return plan
		}
	}
	t.Fatalf("no plan of the finish's update among %d notices:\n%s", len(notices), strings.Join(notices, "\n"))
	return ""
}
