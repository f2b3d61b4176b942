// Package apiv1 defines the JSON documents of Stint's HTTP API, /api/v1:
// what the server (package api) writes and what clients (package client and
// the stint CLI) read. It holds types and hrefs only, no behaviour.
//
// Timestamps are RFC 3339 in UTC with microseconds; hrefs are paths such as
// /api/v1/tasks/{id}. Errors are an Error document with a 4xx status.
package apiv1

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Prefix is the path under which the API is served.
const Prefix = "/api/v1"

// Pagination limits of list endpoints. MaxOffset bounds offset so that
// offset + limit never overflows, on any platform: a larger offset is a 400.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	MaxOffset    = 1_000_000_000
)

// TaskHref returns the href of a task.
func TaskHref(id uuid.UUID) string { return Prefix + "/tasks/" + id.String() }

// TaskGroupHref returns the href of a task group.
func TaskGroupHref(id uuid.UUID) string { return Prefix + "/task-groups/" + id.String() }

// WorkerHref returns the href of a worker.
func WorkerHref(name string) string { return Prefix + "/workers/" + name }

// ParseTaskRef accepts a task's id or href and returns its id.
func ParseTaskRef(ref string) (uuid.UUID, error) {
	return parseRef(ref, Prefix+"/tasks/")
}

// ParseTaskGroupRef accepts a task group's id or href and returns its id.
func ParseTaskGroupRef(ref string) (uuid.UUID, error) {
	return parseRef(ref, Prefix+"/task-groups/")
}

func parseRef(ref, prefix string) (uuid.UUID, error) {
	s := strings.TrimSuffix(strings.TrimPrefix(ref, prefix), "/")
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return uuid.Nil, fmt.Errorf("%q is not an id or an href %s{id}", ref, prefix)
	}
	return id, nil
}

// TimeLayout is the layout of every timestamp: RFC 3339, UTC, microseconds.
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// Time is a timestamp written in TimeLayout.
type Time struct{ time.Time }

// NewTime returns t as a Time, or nil for nil.
func NewTime(t *time.Time) *Time {
	if t == nil {
		return nil
	}
	return &Time{*t}
}

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(TimeLayout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeLayout)
	return append(b, '"'), nil
}

// UnmarshalJSON implements json.Unmarshaler; any RFC 3339 time is taken.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("%q is not an RFC 3339 time such as 2026-12-07T13:00:00Z", s)
	}
	t.Time = v
	return nil
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Detail string `json:"detail"`
}

// DispatchTask is the body of POST /tasks, and of each task of
// POST /task-groups.
type DispatchTask struct {
	Name               string            `json:"name"`
	Args               json.RawMessage   `json:"args,omitempty"`
	ExclusiveResources []string          `json:"exclusive_resources,omitempty"`
	SharedResources    []string          `json:"shared_resources,omitempty"`
	Versions           map[string]string `json:"versions,omitempty"`
	// TaskGroup is the id or href of an existing group, not yet sealed
	// (all_tasks_dispatched false), to dispatch the task into.
	TaskGroup string `json:"task_group,omitempty"`
	// Immediate asks the API process to run the task inline, at once, if
	// its resources are free; the answer then comes when it is final.
	Immediate bool `json:"immediate,omitempty"`
	// Deferred says what an immediate task whose resources are busy does:
	// wait for a worker (true, the default) or end skipped (false). False
	// without Immediate is a 400.
	Deferred *bool `json:"deferred,omitempty"`
	// ScheduledAt: the task is scheduled until then (RFC 3339), holding no
	// resource and blocking nothing; a time passed dispatches it now. Not
	// with Immediate.
	ScheduledAt *Time `json:"scheduled_at,omitempty"`
	// Retry overrides the task type's retry policy.
	Retry *Retry `json:"retry,omitempty"`
	// UniqueKey: while an incomplete task of the caller with this name has
	// the key, no task is created and the answer names that one
	// (TaskRef.Deduplicated).
	UniqueKey *string `json:"unique_key,omitempty"`
}

// Retry is a retry policy: in a dispatch, it overrides the task type's;
// on a task, it is the task's. Durations are Go duration strings ("1s",
// "10m").
type Retry struct {
	// MaxAttempts are the attempts in all, the first run included: 1 to
	// 100.
	MaxAttempts int `json:"max_attempts"`
	// InitialDelay before the second attempt; default "1s".
	InitialDelay string `json:"initial_delay,omitempty"`
	// MaxDelay caps every delay; default "1h".
	MaxDelay string `json:"max_delay,omitempty"`
	// Multiplier: each delay is this many times the last (≥ 1; default 2).
	Multiplier float64 `json:"multiplier,omitempty"`
	// Jitter: the part of each delay that is random (0 to 1; default 0).
	Jitter float64 `json:"jitter,omitempty"`
	// Dropped: runs lost with their worker are retried too (set by the
	// task type, stint.RetryDropped; ignored in a dispatch).
	Dropped bool `json:"dropped,omitempty"`
}

// Attempt is one run of a task: the earlier runs of a retried task, then
// its current (or last) one.
type Attempt struct {
	Number     int        `json:"number"`
	State      string     `json:"state"`
	StartedAt  *Time      `json:"started_at"`
	FinishedAt *Time      `json:"finished_at"`
	Worker     string     `json:"worker"`
	Error      *TaskError `json:"error"`
}

// TaskRef is the answer to a dispatch: 202 with the new task's href, or
// with the href of the incomplete task whose unique key the dispatch had
// (Deduplicated: no task was created).
type TaskRef struct {
	Task         string `json:"task"`
	Deduplicated bool   `json:"deduplicated,omitempty"`
}

// TaskGroupRef is the answer to a dispatch of a group's tasks: 202 with the
// new group's href.
type TaskGroupRef struct {
	TaskGroup string `json:"task_group"`
}

// CreateTaskGroup is the body of POST /task-groups. With Tasks it
// dispatches them all into the new group, all or nothing.
type CreateTaskGroup struct {
	Description string `json:"description,omitempty"`
	// Tasks, when present (even empty), are dispatched into the group.
	Tasks *[]DispatchTask `json:"tasks,omitempty"`
	// AllTasksDispatched seals the group at once. Its default is true when
	// Tasks is present, false otherwise.
	AllTasksDispatched *bool `json:"all_tasks_dispatched,omitempty"`
}

// PatchTaskGroup is the body of PATCH /task-groups/{id}: either
// {"all_tasks_dispatched": true} or {"state": "canceled"}.
type PatchTaskGroup struct {
	AllTasksDispatched *bool  `json:"all_tasks_dispatched,omitempty"`
	State              string `json:"state,omitempty"`
}

// TaskGroup is a task group as the API shows it.
type TaskGroup struct {
	ID                 uuid.UUID `json:"id"`
	Href               string    `json:"href"`
	Description        string    `json:"description"`
	Owner              string    `json:"owner"`
	CreatedAt          Time      `json:"created_at"`
	AllTasksDispatched bool      `json:"all_tasks_dispatched"`
	// Done: sealed, and every task in it is final.
	Done bool `json:"done"`
	// Counts has every state, zero included, and "total".
	Counts map[string]int `json:"counts"`
	// Tasks are the hrefs of its tasks in dispatch order; only in
	// GET /task-groups/{id}, absent from lists.
	Tasks *[]string `json:"tasks,omitempty"`
}

// PurgeTasks is the body of POST /tasks/purge.
type PurgeTasks struct {
	// FinishedBefore: default 30 days ago.
	FinishedBefore *Time `json:"finished_before,omitempty"`
	// States are final states; default ["completed"].
	States []string `json:"states,omitempty"`
}

// PatchTask is the body of PATCH /tasks/{id}: {"state": "canceled"}.
type PatchTask struct {
	State string `json:"state"`
}

// Task is a task as the API shows it.
type Task struct {
	ID                 uuid.UUID         `json:"id"`
	Href               string            `json:"href"`
	Name               string            `json:"name"`
	State              string            `json:"state"`
	Args               json.RawMessage   `json:"args"`
	Owner              string            `json:"owner"`
	CreatedAt          Time              `json:"created_at"`
	UpdatedAt          Time              `json:"updated_at"`
	UnblockedAt        *Time             `json:"unblocked_at"`
	StartedAt          *Time             `json:"started_at"`
	FinishedAt         *Time             `json:"finished_at"`
	ExclusiveResources []string          `json:"exclusive_resources"`
	SharedResources    []string          `json:"shared_resources"`
	Versions           map[string]string `json:"versions"`
	Worker             *TaskWorker       `json:"worker"`
	ParentTask         *string           `json:"parent_task"`
	ChildTasks         []string          `json:"child_tasks"`
	TaskGroup          *string           `json:"task_group"`
	Result             json.RawMessage   `json:"result"`
	Error              *TaskError        `json:"error"`
	NonFatalErrors     []TaskError       `json:"non_fatal_errors"`
	ProgressReports    []ProgressReport  `json:"progress_reports"`
	CreatedResources   []string          `json:"created_resources"`
	// ScheduledAt is the time asked at dispatch or, while a retried task
	// waits (state scheduled), the time of its next attempt.
	ScheduledAt *Time `json:"scheduled_at"`
	// Retry is the task's retry policy, null for none.
	Retry *Retry `json:"retry"`
	// Attempts are the task's runs, oldest first: those of earlier
	// attempts, then the current or last one (absent until it starts).
	Attempts  []Attempt `json:"attempts"`
	UniqueKey *string   `json:"unique_key"`
	// RetryOf is the href of the task this one runs again (a manual
	// retry, POST /tasks/{id}/retry).
	RetryOf *string `json:"retry_of"`
	// BlockedBy is present only while the task is waiting: what it waits
	// for, empty when it waits for a worker only.
	BlockedBy *[]Blocker `json:"blocked_by,omitempty"`
}

// Final reports whether the task's state is final.
func (t *Task) Final() bool { return FinalState(t.State) }

// FinalState reports whether a state is final.
func FinalState(state string) bool {
	switch state {
	case "completed", "failed", "canceled", "skipped", "dropped":
		return true
	}
	return false
}

// TaskWorker is the worker that runs or ran a task.
type TaskWorker struct {
	Name          string `json:"name"`
	Missing       bool   `json:"missing"`
	LastHeartbeat *Time  `json:"last_heartbeat"`
}

// TaskError is a fatal or non-fatal error of a task.
type TaskError struct {
	Kind        string `json:"kind"`
	Description string `json:"description"`
	Traceback   string `json:"traceback,omitempty"`
	// NoRetry: the run refused a retry (stint.NoRetry).
	NoRetry bool `json:"no_retry,omitempty"`
}

// ProgressReport is one progress bar of a task.
type ProgressReport struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	State   string `json:"state"`
	Total   *int64 `json:"total"`
	Done    int64  `json:"done"`
	Suffix  string `json:"suffix,omitempty"`
}

// Blocker is what a waiting task waits for: an earlier task on a resource,
// or (Task and Resource empty) a Reason such as no online worker providing
// the versions it requires.
type Blocker struct {
	Task     string `json:"task,omitempty"`
	Resource string `json:"resource,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Page is one page of a list: the total count, the hrefs of the next and
// previous pages (null at the ends), and the results. Count is null when
// the total is not cheap to know (a filtered list of tasks or groups that
// selects more than 10,000 of them); Next says whether a page follows
// whatever Count is.
type Page[T any] struct {
	Count    *int    `json:"count"`
	Next     *string `json:"next"`
	Previous *string `json:"previous"`
	Results  []T     `json:"results"`
}

// Worker is a registered worker.
type Worker struct {
	Name          string            `json:"name"`
	Href          string            `json:"href"`
	Hostname      string            `json:"hostname"`
	PID           int               `json:"pid"`
	Versions      map[string]string `json:"versions"`
	Concurrency   int               `json:"concurrency"`
	StartedAt     Time              `json:"started_at"`
	LastHeartbeat Time              `json:"last_heartbeat"`
	Missing       bool              `json:"missing"`
	CurrentTasks  []string          `json:"current_tasks"`
}

// Status is the answer of GET /status.
type Status struct {
	Version  string         `json:"version"`
	Engine   string         `json:"engine"`
	Database DatabaseStatus `json:"database"`
	Workers  WorkersStatus  `json:"workers"`
	Tasks    TasksStatus    `json:"tasks"`
}

// DatabaseStatus says whether the server reaches its database.
type DatabaseStatus struct {
	Reachable bool `json:"reachable"`
}

// WorkersStatus counts workers.
type WorkersStatus struct {
	Online  int `json:"online"`
	Missing int `json:"missing"`
}

// TasksStatus counts incomplete tasks.
type TasksStatus struct {
	Scheduled int `json:"scheduled"`
	Waiting   int `json:"waiting"`
	Running   int `json:"running"`
	Canceling int `json:"canceling"`
}

// Me is the answer of GET /me: who the caller is and what it may do, for
// clients such as the web UI that adapt to it.
type Me struct {
	// User is the caller's name; empty for the anonymous admin of open
	// mode.
	User string `json:"user"`
	// Role is "user" or "admin".
	Role string `json:"role"`
	// Open: the server has no users and takes requests without a token.
	Open bool `json:"open"`
	// CancelPolicy is the server's: "owner" (a user cancels its own tasks)
	// or "admin-only".
	CancelPolicy string `json:"cancel_policy"`
}

// EventTask is the name (the SSE "event:" field) of task change events.
const EventTask = "task"

// EventResync is the name of the event that says that changes may have
// been lost since the last event (the server's listener to the database
// reconnected, or the stream fell behind): the client re-reads the tasks
// it follows, then goes on reading the stream. Its data is an empty
// object.
const EventResync = "resync"

// TaskEvent is the data of a task event on GET /events: the task's state,
// group and progress after a change.
type TaskEvent struct {
	Task            string           `json:"task"`
	ID              uuid.UUID        `json:"id"`
	Name            string           `json:"name"`
	State           string           `json:"state"`
	TaskGroup       *string          `json:"task_group"`
	ProgressReports []ProgressReport `json:"progress_reports"`
	UpdatedAt       Time             `json:"updated_at"`
}
