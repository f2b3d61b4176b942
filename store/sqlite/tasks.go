package sqlite

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// taskColumns are the columns of a task, in the order scanTask reads them.
const taskColumns = `id, seq, name, state, args, owner, created_at, updated_at, unblocked_at,
	started_at, finished_at, exclusive_resources, shared_resources, versions, coalesce(worker, ''),
	attempt, parent_task, task_group, result, error, non_fatal_errors, progress_reports, created_resources,
	scheduled_at, retry, attempts, coalesce(unique_key, ''), retry_of`

// taskColumnsWithChildren are taskColumns and the ids of the task's
// children in dispatch order (a JSON array, from the index on
// parent_task), in the order scanTaskWithChildren reads them.
const taskColumnsWithChildren = taskColumns + `,
	(SELECT json_group_array(c.id ORDER BY c.seq) FROM stint_tasks c WHERE c.parent_task = stint_tasks.id)`

type scanner interface {
	Scan(dest ...any) error
}

func scanTask(row scanner) (*store.Task, error) { return scanTaskColumns(row, false) }

func scanTaskWithChildren(row scanner) (*store.Task, error) { return scanTaskColumns(row, true) }

// scanTaskColumns scans taskColumns, and the children of
// taskColumnsWithChildren if withChildren.
func scanTaskColumns(row scanner, withChildren bool) (*store.Task, error) {
	var (
		t                                store.Task
		id, state, args                  string
		exclusive, shared, versions      string
		nonFatal, progress, created      string
		unblocked, started, finished     sql.NullInt64
		createdAt, updatedAt             int64
		parent, group, result, taskError sql.NullString
		children                         string
		scheduled                        sql.NullInt64
		retry, retryOf                   sql.NullString
		attempts                         string
	)
	dest := []any{&id, &t.Seq, &t.Name, &state, &args, &t.Owner, &createdAt, &updatedAt,
		&unblocked, &started, &finished, &exclusive, &shared, &versions, &t.Worker,
		&t.Attempt, &parent, &group, &result, &taskError, &nonFatal, &progress, &created,
		&scheduled, &retry, &attempts, &t.UniqueKey, &retryOf}
	if withChildren {
		dest = append(dest, &children)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	var err error
	if t.ID, err = uuid.Parse(id); err != nil {
		return nil, fmt.Errorf("task id %q: %w", id, err)
	}
	t.State = store.State(state)
	t.Args = json.RawMessage(args)
	t.CreatedAt, t.UpdatedAt = timeOf(createdAt), timeOf(updatedAt)
	t.UnblockedAt, t.StartedAt, t.FinishedAt = nullTime(unblocked), nullTime(started), nullTime(finished)
	if t.ParentTask, err = nullUUID(parent); err != nil {
		return nil, fmt.Errorf("task %s: parent_task: %w", t.ID, err)
	}
	if t.TaskGroup, err = nullUUID(group); err != nil {
		return nil, fmt.Errorf("task %s: task_group: %w", t.ID, err)
	}
	if t.RetryOf, err = nullUUID(retryOf); err != nil {
		return nil, fmt.Errorf("task %s: retry_of: %w", t.ID, err)
	}
	t.ScheduledAt = nullTime(scheduled)
	if retry.Valid {
		t.Retry = new(store.RetryPolicy)
		if err := json.Unmarshal([]byte(retry.String), t.Retry); err != nil {
			return nil, fmt.Errorf("task %s: retry: %w", t.ID, err)
		}
	}
	if t.Attempts, err = decodeAttempts(attempts); err != nil {
		return nil, fmt.Errorf("task %s: attempts: %w", t.ID, err)
	}
	if result.Valid {
		t.Result = json.RawMessage(result.String)
	}
	for _, f := range []struct {
		name string
		text string
		into any
	}{
		{"exclusive_resources", exclusive, &t.ExclusiveResources},
		{"shared_resources", shared, &t.SharedResources},
		{"created_resources", created, &t.CreatedResources},
		{"versions", versions, &t.Versions},
		{"non_fatal_errors", nonFatal, &t.NonFatalErrors},
		{"progress_reports", progress, &t.ProgressReports},
	} {
		if err := unmarshalColumn(f.text, f.into); err != nil {
			return nil, fmt.Errorf("task %s: %s: %w", t.ID, f.name, err)
		}
	}
	if withChildren && children != "[]" {
		if err := json.Unmarshal([]byte(children), &t.ChildTasks); err != nil {
			return nil, fmt.Errorf("task %s: children: %w", t.ID, err)
		}
	}
	if taskError.Valid {
		t.Error = new(store.TaskError)
		if err := json.Unmarshal([]byte(taskError.String), t.Error); err != nil {
			return nil, fmt.Errorf("task %s: error: %w", t.ID, err)
		}
	}
	return &t, nil
}

// decodeAttempts decodes the attempts column: never nil.
func decodeAttempts(text string) ([]store.Attempt, error) {
	out := []store.Attempt{}
	if text == "[]" || text == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// unmarshalColumn decodes a JSON column, quickly for the empty values most
// tasks have. Empty lists and objects decode to empty, non-nil values, as
// PostgreSQL's arrays and jsonb do.
func unmarshalColumn(text string, into any) error {
	switch v := into.(type) {
	case *[]string:
		if text == "[]" {
			*v = []string{}
			return nil
		}
	case *map[string]string:
		if text == "{}" {
			*v = map[string]string{}
			return nil
		}
	case *[]store.TaskError:
		if text == "[]" {
			*v = []store.TaskError{}
			return nil
		}
	case *[]store.ProgressReport:
		if text == "[]" {
			*v = []store.ProgressReport{}
			return nil
		}
	}
	return json.Unmarshal([]byte(text), into)
}

func nullUUID(v sql.NullString) (*uuid.UUID, error) {
	if !v.Valid {
		return nil, nil
	}
	id, err := uuid.Parse(v.String)
	if err != nil {
		return nil, err
	}
	return &id, nil
}

// uuidArg is a nullable uuid as a statement argument.
func uuidArg(id *uuid.UUID) any {
	if id == nil {
		return nil
	}
	return id.String()
}

// checkText refuses what PostgreSQL's text refuses: NUL bytes and invalid
// UTF-8.
func checkText(what, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: %s contains a NUL byte", store.ErrUnstorable, what)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", store.ErrUnstorable, what)
	}
	return nil
}

// stringList encodes a list of strings as a JSON array, checking each.
func stringList(what string, list []string) (string, error) {
	if len(list) == 0 {
		return "[]", nil
	}
	for _, s := range list {
		if err := checkText(what, s); err != nil {
			return "", err
		}
	}
	b, err := json.Marshal(list)
	return string(b), err
}

// jsonText marshals v and checks it as jsonb would.
func jsonText(what string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	n, err := normalizeJSON(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return string(n), nil
}

// prepared is a NewTask encoded for its row, checked before the write lock
// is taken.
type prepared struct {
	nt                   store.NewTask
	id                   string
	args                 string
	exclusive, shared    []string
	exclJSON, sharedJSON string
	versions             string
	scheduled            sql.NullInt64 // scheduled_at, in microseconds
	retry                any           // the policy's JSON text, or nil
	uniqueKey            any           // the key, or nil for none
}

func prepareNew(nt store.NewTask) (prepared, error) {
	p := prepared{nt: nt, id: nt.ID.String()}
	p.args = "{}"
	if len(nt.Args) > 0 {
		args, err := normalizeJSON(nt.Args)
		if err != nil {
			return p, fmt.Errorf("task %s: args: %w", nt.ID, err)
		}
		p.args = string(args)
	}
	if err := checkText("name", nt.Name); err != nil {
		return p, err
	}
	if err := checkText("owner", nt.Owner); err != nil {
		return p, err
	}
	p.exclusive, p.shared = sortedClone(nt.ExclusiveResources), sortedClone(nt.SharedResources)
	var err error
	if p.exclJSON, err = stringList("resource", p.exclusive); err != nil {
		return p, err
	}
	if p.sharedJSON, err = stringList("resource", p.shared); err != nil {
		return p, err
	}
	p.versions = "{}"
	if len(nt.Versions) > 0 {
		if p.versions, err = jsonText("versions", nt.Versions); err != nil {
			return p, err
		}
	}
	if nt.ScheduledAt != nil {
		p.scheduled = sql.NullInt64{Int64: nt.ScheduledAt.UnixMicro(), Valid: true}
	}
	if nt.Retry != nil {
		if p.retry, err = jsonText("retry policy", nt.Retry); err != nil {
			return p, err
		}
	}
	if nt.UniqueKey != "" {
		if err := checkText("unique key", nt.UniqueKey); err != nil {
			return p, err
		}
		p.uniqueKey = nt.UniqueKey
	}
	return p, nil
}

func sortedClone(s []string) []string {
	c := slices.Clone(s)
	if c == nil {
		c = []string{}
	}
	slices.Sort(c)
	return c
}

// uuidCompare orders ids as PostgreSQL orders uuids: bytewise.
func uuidCompare(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }
