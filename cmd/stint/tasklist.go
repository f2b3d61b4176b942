package main

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/apiv1"
)

// states are the task states, in the order of DESIGN §2.
var states = []string{"scheduled", "waiting", "running", "canceling", "completed", "failed", "canceled", "skipped", "dropped"}

// orderings are the values of the ordering filter.
var orderings = []string{"created_at", "-created_at", "started_at", "-started_at", "finished_at", "-finished_at",
	"scheduled_at", "-scheduled_at"}

// listFlags are the filters of task list.
type listFlags struct {
	states                                       []string
	name, nameContains, worker, owner            string
	parent, group                                string
	exclusive, shared, reserved, createdResource string
	times                                        [6]string // created, started, finished: after, before
	ordering                                     string
	limit, offset                                int
}

// timeFilters name the time flags, their query parameters and their help,
// in the order of listFlags.times.
var timeFilters = [6][3]string{
	{"created-after", "created_at__gte", "only tasks created at or after this time"},
	{"created-before", "created_at__lte", "only tasks created at or before this time"},
	{"started-after", "started_at__gte", "only tasks started at or after this time"},
	{"started-before", "started_at__lte", "only tasks started at or before this time"},
	{"finished-after", "finished_at__gte", "only tasks finished at or after this time"},
	{"finished-before", "finished_at__lte", "only tasks finished at or before this time"},
}

func newTaskListCommand() *cobra.Command {
	var (
		lf listFlags
		cf *clientFlags
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tasks",
		Long: `List tasks, oldest first unless --ordering says otherwise: a table, or with
-o json the page of the API ({"count", "next", "previous", "results"}).
Times are RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02, local
midnight), or a duration meaning that long ago (90m).`,
		Example: `  stint task list --state waiting --state running
  stint task list --name-contains sync --created-after 24h -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := lf.query(time.Now())
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			page, err := c.ListTasks(cmd.Context(), q)
			if err != nil {
				return err
			}
			if cf.jsonOut() {
				return writeJSON(cmd.OutOrStdout(), page)
			}
			tw := newTable(cmd.OutOrStdout(), "ID", "NAME", "STATE", "WORKER", "CREATED", "FINISHED")
			for i := range page.Results {
				t := &page.Results[i]
				row(tw, t.ID.String(), t.Name, t.State, workerName(t), timeText(&t.CreatedAt), timeText(t.FinishedAt))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if page.Next != nil {
				shown := lf.offset + len(page.Results)
				fmt.Fprintf(cmd.ErrOrStderr(), "(%d-%d of %s tasks; --offset %d for more)\n", lf.offset+1, shown, totalText(page.Count), shown)
			}
			return nil
		},
	}
	cf = addClientFlags(cmd)
	f := cmd.Flags()
	f.StringSliceVar(&lf.states, "state", nil, "only tasks in this state; repeatable or comma-separated ("+strings.Join(states, ", ")+")")
	f.StringVar(&lf.name, "name", "", "only tasks of this task type")
	f.StringVar(&lf.nameContains, "name-contains", "", "only tasks whose type contains this")
	f.StringVar(&lf.worker, "worker", "", "only tasks of this worker")
	f.StringVar(&lf.owner, "owner", "", "only tasks of this owner")
	f.StringVar(&lf.parent, "parent", "", "only children of this task (id or href)")
	f.StringVar(&lf.group, "group", "", "only tasks of this task group (id or href)")
	f.StringVar(&lf.exclusive, "exclusive", "", "only tasks holding this resource exclusively")
	f.StringVar(&lf.shared, "shared", "", "only tasks holding this resource shared")
	f.StringVar(&lf.reserved, "reserved", "", "only tasks holding this resource either way")
	f.StringVar(&lf.createdResource, "created-resource", "", "only tasks that recorded this created resource")
	for i, tf := range timeFilters {
		f.StringVar(&lf.times[i], tf[0], "", tf[2])
	}
	f.StringVar(&lf.ordering, "ordering", "", "sort by one of "+strings.Join(orderings, ", ")+" (default created_at)")
	f.IntVar(&lf.limit, "limit", apiv1.DefaultLimit, fmt.Sprintf("tasks per page, 1 to %d", apiv1.MaxLimit))
	f.IntVar(&lf.offset, "offset", 0, "tasks to skip")
	return cmd
}

// query checks the filters and turns them into the API's query.
func (lf *listFlags) query(now time.Time) (url.Values, error) {
	q := url.Values{}
	var sts []string
	for _, s := range lf.states {
		if s = strings.TrimSpace(s); !slices.Contains(states, s) {
			return nil, fmt.Errorf("--state %q: not a state; states are %s", s, strings.Join(states, ", "))
		}
		sts = append(sts, s)
	}
	switch len(sts) {
	case 0:
	case 1:
		q.Set("state", sts[0])
	default:
		q.Set("state__in", strings.Join(sts, ","))
	}
	for _, p := range []struct{ key, value string }{
		{"name", lf.name}, {"name__contains", lf.nameContains}, {"worker", lf.worker}, {"owner", lf.owner},
		{"exclusive_resources", lf.exclusive}, {"shared_resources", lf.shared},
		{"reserved_resources", lf.reserved}, {"created_resources", lf.createdResource},
	} {
		if p.value != "" {
			q.Set(p.key, p.value)
		}
	}
	if lf.parent != "" {
		id, err := apiv1.ParseTaskRef(lf.parent)
		if err != nil {
			return nil, fmt.Errorf("--parent: %w", err)
		}
		q.Set("parent_task", id.String())
	}
	if lf.group != "" {
		id, err := apiv1.ParseTaskGroupRef(lf.group)
		if err != nil {
			return nil, fmt.Errorf("--group: %w", err)
		}
		q.Set("task_group", id.String())
	}
	for i, v := range lf.times {
		if v == "" {
			continue
		}
		t, err := parseTimeFlag(v, now)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", timeFilters[i][0], err)
		}
		q.Set(timeFilters[i][1], t.UTC().Format(apiv1.TimeLayout))
	}
	if lf.ordering != "" {
		if !slices.Contains(orderings, lf.ordering) {
			return nil, fmt.Errorf("--ordering %q: use one of %s", lf.ordering, strings.Join(orderings, ", "))
		}
		q.Set("ordering", lf.ordering)
	}
	if lf.limit < 1 || lf.limit > apiv1.MaxLimit {
		return nil, fmt.Errorf("--limit %d: must be from 1 to %d", lf.limit, apiv1.MaxLimit)
	}
	q.Set("limit", strconv.Itoa(lf.limit))
	if lf.offset < 0 {
		return nil, fmt.Errorf("--offset %d: must not be negative", lf.offset)
	}
	if lf.offset > 0 {
		q.Set("offset", strconv.Itoa(lf.offset))
	}
	return q, nil
}

// parseTimeFlag reads a time flag: RFC 3339, a date (local midnight), or a
// duration before now.
func parseTimeFlag(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, v, time.Local); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration ago (90m)", v)
}

// totalText is a list's total for people: "many" when the API did not
// count it (more than it counts cheaply).
func totalText(count *int) string {
	if count == nil {
		return "many"
	}
	return strconv.Itoa(*count)
}
