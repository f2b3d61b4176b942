package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlans checks the query plans of the scheduler's statements and of the
// reads that must stay cheap: no statement walks a whole table or a whole
// queue, and the queue statements use the partial indexes meant. SQLite's
// planner has no statistics here (Stint never runs ANALYZE), so the plans
// checked are the plans run.
func TestPlans(t *testing.T) {
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "plans.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The only scans allowed: the claimable tasks in order (the claim walks
	// them up to its limit), the arguments' JSON lists, and subqueries.
	// And the first due task (sqlNextDue reads one entry of its index), and
	// sqlite_sequence, one row per table with AUTOINCREMENT, and the row
	// of a SELECT without FROM.
	allowed := []string{"SCAN c USING INDEX stint_tasks_claimable", "SCAN json_each", "SCAN h",
		"SCAN stint_tasks USING COVERING INDEX stint_tasks_due", "SCAN sqlite_sequence", "SCAN CONSTANT ROW"}
	statements := append([]string{}, writeStatements...)
	statements = append(statements,
		`SELECT `+taskColumns+` FROM stint_tasks WHERE id = ?`,
		`SELECT worker, id FROM stint_tasks WHERE worker = ? AND state IN ('running', 'canceling') ORDER BY seq`,
		`SELECT parent_task, id FROM stint_tasks
		WHERE parent_task IN (SELECT value FROM json_each(?)) AND parent_task IS NOT NULL ORDER BY seq`,
		sqlLostRuns,
	)
	// The default pages of the task list walk the index of creation
	// times, in either direction, without sorting the tasks.
	for _, order := range []string{orderBy[""], orderBy["-created_at"]} {
		q := `SELECT ` + taskColumns + ` FROM stint_tasks ORDER BY ` + order + ` LIMIT 100 OFFSET 0`
		if plan := strings.Join(explain(t, st, q), "\n"); plan != "SCAN stint_tasks USING INDEX stint_tasks_created" {
			t.Errorf("task list by %s:\n%s", order, plan)
		}
	}
	want := map[string][]string{
		sqlEnqueue: {"USING INDEX stint_task_resources_exclusive"},
		sqlPromote: {"USING INDEX stint_task_resources_waiting", "USING INDEX stint_task_resources_exclusive"},
		// Counted resources: the capacity by its key, the holders and the
		// bound through the queue's keys and the waiting entries.
		sqlCapacityRoom: {"SEARCH c USING PRIMARY KEY (name=?)", "USING INDEX stint_task_resources_waiting"},
		sqlPromoteBound: {"SEARCH w USING INDEX stint_task_resources_waiting (resource=?)"},
		sqlFinish:       {"SEARCH t USING INDEX sqlite_autoindex_stint_tasks_1 (id=?)"},
		sqlClaim:        {"USING INDEX stint_tasks_claimable", "USING INDEX stint_task_resources_task", "USING INDEX stint_task_resources_exclusive"},
		// Tasks in time.
		sqlUniqueTask:      {"SEARCH stint_tasks USING INDEX stint_tasks_unique_key (owner=? AND name=? AND unique_key=?)"},
		sqlDue:             {"SEARCH stint_tasks USING INDEX stint_tasks_due (scheduled_at<?)"},
		sqlNextDue:         {"SCAN stint_tasks USING COVERING INDEX stint_tasks_due"},
		sqlMakeDue:         {"SEARCH stint_tasks USING INTEGER PRIMARY KEY (rowid=?)"},
		sqlRetry:           {"SEARCH stint_tasks USING INTEGER PRIMARY KEY (rowid=?)"},
		sqlCancelWaiting:   {"SEARCH stint_tasks USING INTEGER PRIMARY KEY (rowid=?)"},
		sqlRetryCandidates: {"SEARCH t USING INDEX sqlite_autoindex_stint_tasks_1 (id=?)"},
		sqlLostRuns:        {"SEARCH t USING INDEX stint_tasks_active (worker=?)"},
	}
	// sqlNextDue reads the first entry of the index only: it stops there
	// (LIMIT 1, the index's order), without sorting.
	if plan := strings.Join(explain(t, st, sqlNextDue), "\n"); strings.Contains(plan, "TEMP B-TREE") {
		t.Errorf("%s sorts:\n%s", sqlNextDue, plan)
	}
	if plan := strings.Join(explain(t, st, sqlDue), "\n"); strings.Contains(plan, "TEMP B-TREE") {
		t.Errorf("%s sorts:\n%s", sqlDue, plan)
	}
	for _, q := range statements {
		plan := explain(t, st, q)
		for _, line := range plan {
			if strings.HasPrefix(line, "SCAN ") {
				ok := false
				for _, a := range allowed {
					ok = ok || strings.HasPrefix(line, a)
				}
				if !ok {
					t.Errorf("%s\nscans: %s\nplan:\n%s", q, line, strings.Join(plan, "\n"))
				}
			}
		}
		for _, w := range want[q] {
			if !strings.Contains(strings.Join(plan, "\n"), w) {
				t.Errorf("%s\ndoes not use %s; plan:\n%s", q, w, strings.Join(plan, "\n"))
			}
		}
	}
}

func explain(t *testing.T, st *Store, q string) []string {
	t.Helper()
	rows, err := st.rdb.Query("EXPLAIN QUERY PLAN "+q, make([]any, countParams(q))...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// countParams counts the parameters of q: its "?"s, or the highest "?N".
func countParams(q string) int {
	plain, numbered := 0, 0
	for i := 0; i < len(q); i++ {
		if q[i] != '?' {
			continue
		}
		j := i + 1
		n := 0
		for j < len(q) && q[j] >= '0' && q[j] <= '9' {
			n = n*10 + int(q[j]-'0')
			j++
		}
		if j == i+1 {
			plain++
		}
		numbered = max(numbered, n)
	}
	return max(plain, numbered)
}
