package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stint-dev/stint/store"
)

// TestGroupPlans checks the plans of the statements of task groups,
// deletion and purge, as TestPlans does for the scheduler's: purge walks
// the finished tasks of one state from the oldest, the reads of a group's
// tasks probe the index of groups (in dispatch order, without sorting), and
// the group list walks its index from the newest.
func TestGroupPlans(t *testing.T) {
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "plans.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	yes, no := true, false
	list := func(f store.TaskGroupFilter) string {
		return groupPageQuery(groupConditions(f).where(), true)
	}
	cases := []struct {
		q    string
		want []string // substrings of the plan, in any order
	}{
		{sqlPurgeCandidates, []string{"SEARCH stint_tasks USING COVERING INDEX stint_tasks_finished (state=? AND finished_at<?)"}},
		{sqlPurge, []string{"SEARCH stint_tasks USING INTEGER PRIMARY KEY (rowid=?)"}},
		{sqlDeleteTask, []string{"SEARCH stint_tasks USING INTEGER PRIMARY KEY (rowid=?)"}},
		{sqlLookup, []string{"SEARCH stint_tasks USING INDEX sqlite_autoindex_stint_tasks_1 (id=?)"}},
		{sqlCreateGroup, nil},
		{sqlSealGroup, []string{"SEARCH stint_task_groups USING PRIMARY KEY (id=?)"}},
		{sqlGroup, []string{"SEARCH stint_task_groups USING PRIMARY KEY (id=?)"}},
		{sqlGroupTasks, []string{"SEARCH stint_tasks USING INDEX stint_tasks_group (task_group=?)"}},
		{sqlGroupIncomplete, []string{"SEARCH stint_tasks USING INDEX stint_tasks_group (task_group=?)"}},
		{sqlGroupCounts, []string{"SEARCH stint_tasks USING INDEX stint_tasks_group (task_group=?)"}},
		{list(store.TaskGroupFilter{}), []string{"SCAN stint_task_groups USING INDEX stint_task_groups_created"}},
		{list(store.TaskGroupFilter{AllTasksDispatched: &no}), []string{"SCAN stint_task_groups USING INDEX stint_task_groups_created"}},
		{list(store.TaskGroupFilter{Owner: "alice"}), []string{"SEARCH stint_task_groups USING INDEX stint_task_groups_owner (owner=?)"}},
		{list(store.TaskGroupFilter{Owner: "alice", AllTasksDispatched: &yes}), []string{"SEARCH stint_task_groups USING INDEX stint_task_groups_owner (owner=?)"}},
	}
	// The only scans allowed: the arguments' JSON lists, and the group list
	// walking its index up to its limit.
	allowed := []string{"SCAN json_each", "SCAN stint_task_groups USING INDEX stint_task_groups_created"}
	for _, tc := range cases {
		plan := explain(t, st, tc.q)
		text := strings.Join(plan, "\n")
		for _, line := range plan {
			ok := !strings.HasPrefix(line, "SCAN ")
			for _, a := range allowed {
				ok = ok || strings.HasPrefix(line, a)
			}
			if !ok {
				t.Errorf("%s\nscans: %s\nplan:\n%s", tc.q, line, text)
			}
			// Lists in dispatch or creation order come from the index.
			if strings.Contains(line, "TEMP B-TREE FOR ORDER BY") {
				t.Errorf("%s\nsorts; plan:\n%s", tc.q, text)
			}
		}
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s\ndoes not use %s; plan:\n%s", tc.q, w, text)
			}
		}
	}
}
