package stint

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/versions"
	"github.com/stint-dev/stint/store"
)

// Task is a task as stored: its state, timings, resources and outputs.
type Task = store.Task

// Blocker is an earlier task that a waiting task waits for on a resource.
type Blocker = store.Blocker

// TaskError is the error of a failed task (Task.Error) or a non-fatal
// error it recorded: a kind (see the list of kinds), a description and,
// for a panic, the stack.
type TaskError = store.TaskError

// TaskGroup is a task group as stored: its counts per state, whether it is
// sealed, and, when read alone, its tasks' ids.
type TaskGroup = store.TaskGroup

// Limits on what a dispatch may ask for.
const (
	MaxResourceLength   = 1024 // bytes in one resource name
	MaxResourcesPerTask = 1000 // exclusive and shared together
	MaxArgsBytes        = 1 << 20
)

// DispatchRequest describes a task to dispatch.
type DispatchRequest struct {
	// Name is a registered task name.
	Name string
	// Args are encoded as JSON; a json.RawMessage or []byte is taken as
	// is. They must decode into the task type's args type.
	Args any
	// ExclusiveResources are held by this task alone; SharedResources
	// together with other shared holders. A resource in both lists is
	// exclusive.
	ExclusiveResources []string
	SharedResources    []string
	// Owner is recorded on the task (the API sets it to the caller).
	Owner string
	// Versions are minimum versions of components a worker must provide,
	// such as {"myplugin": "1.4.0"}: one to four dot-separated numbers
	// each (see WorkerConfig.Versions).
	Versions map[string]string
	// TaskGroup puts the task in a group.
	TaskGroup *uuid.UUID
	// ScheduledAt, when set and later than now by the database's clock,
	// makes the task scheduled until then: it holds no place in any
	// resource queue and blocks nothing, and enters its queues when it is
	// due (see In). The zero time, or a time passed, dispatches it now.
	ScheduledAt time.Time
	// Retry overrides the task type's retry policy (see Retry); a
	// MaxAttempts of 1 turns retries off.
	Retry *RetryPolicy
	// UniqueKey, when set: while an incomplete task (scheduled, waiting,
	// running or canceling) of the same Owner and Name has this key, the
	// dispatch creates no task and returns that one, with Deduplicated set.
	// The same limits as a resource name.
	UniqueKey string

	parent  *uuid.UUID
	retryOf *uuid.UUID
}

// ValidationError is a dispatch the client refused. Field names the request
// field at fault, as the HTTP API spells it.
type ValidationError struct {
	Index   int // position in a DispatchMany batch; -1 for a single dispatch
	Field   string
	Message string
}

func (e *ValidationError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("tasks[%d].%s: %s", e.Index, e.Field, e.Message)
	}
	return e.Field + ": " + e.Message
}

// Client dispatches tasks and reads them. It is safe for concurrent use.
type Client struct {
	store store.Store
	reg   *Registry
}

// NewClient returns a client that dispatches the task types of reg into st.
func NewClient(st store.Store, reg *Registry) *Client {
	return &Client{store: st, reg: reg}
}

// Dispatch validates and dispatches one task. A *ValidationError says what
// is wrong with the request. It checks no role: a task type registered
// AdminOnly is refused to users by the HTTP API, but what the application
// dispatches itself, with any Owner, is its own business.
func (c *Client) Dispatch(ctx context.Context, req DispatchRequest) (*Task, error) {
	nt, err := c.prepare(req, -1)
	if err != nil {
		return nil, err
	}
	tasks, err := c.store.Dispatch(ctx, []store.NewTask{nt})
	if err != nil {
		return nil, err
	}
	return tasks[0], nil
}

// DispatchMany validates and dispatches tasks in one transaction, in order:
// all or none. A *ValidationError names the index of the first bad request.
func (c *Client) DispatchMany(ctx context.Context, reqs []DispatchRequest) ([]*Task, error) {
	nts, err := c.Prepare(reqs)
	if err != nil {
		return nil, err
	}
	return c.store.Dispatch(ctx, nts)
}

// Prepare validates requests and turns them into the store's form, with
// new ids, without dispatching them. Use it to dispatch inside your own
// transaction (postgres.DispatchTx).
func (c *Client) Prepare(reqs []DispatchRequest) ([]store.NewTask, error) {
	nts := make([]store.NewTask, len(reqs))
	for i, r := range reqs {
		nt, err := c.prepare(r, i)
		if err != nil {
			return nil, err
		}
		nts[i] = nt
	}
	return nts, nil
}

// Task returns one task, or an error wrapping store.ErrNotFound.
func (c *Client) Task(ctx context.Context, id uuid.UUID) (*Task, error) {
	return c.store.Task(ctx, id)
}

// CancelTask cancels a task (DESIGN §5): a waiting one ends canceled at
// once; a running one becomes canceling and its worker, told at once,
// stops it and records it canceled. It returns the task as it is now;
// store.ErrNotFound, or store.ErrFinal for a task that already ended. (The
// HTTP client's call of the same name does the same over the API.)
func (c *Client) CancelTask(ctx context.Context, id uuid.UUID) (*Task, error) {
	return c.store.Cancel(ctx, id)
}

// RetryTask dispatches a task again (a manual re-run): a new task with
// the failed, dropped or canceled task's name, args, resources, versions,
// group, unique key and owner, linked to it (Task.RetryOf), and the task
// type's retry policy as it is now. It returns the new task;
// store.ErrNotFound, store.ErrNotFinal for a task still incomplete, or a
// *ValidationError for a task that completed or was skipped (there is
// nothing to run again) or whose type is no longer registered.
func (c *Client) RetryTask(ctx context.Context, id uuid.UUID) (*Task, error) {
	t, err := c.store.Task(ctx, id)
	if err != nil {
		return nil, err
	}
	switch t.State {
	case store.StateFailed, store.StateDropped, store.StateCanceled:
	case store.StateCompleted, store.StateSkipped:
		return nil, &ValidationError{Index: -1, Field: "state", Message: fmt.Sprintf("the task is %s: only a failed, dropped or canceled task is retried", t.State)}
	default:
		return nil, fmt.Errorf("task %s is %s: %w", id, t.State, store.ErrNotFinal)
	}
	orig := t.ID
	return c.Dispatch(ctx, DispatchRequest{
		Name: t.Name, Args: t.Args, Owner: t.Owner,
		ExclusiveResources: t.ExclusiveResources, SharedResources: t.SharedResources,
		Versions: t.Versions, TaskGroup: t.TaskGroup, UniqueKey: t.UniqueKey, retryOf: &orig,
	})
}

// Cancel is CancelTask.
//
// Deprecated: use CancelTask, the name the HTTP client (package client)
// gives the same call.
func (c *Client) Cancel(ctx context.Context, id uuid.UUID) (*Task, error) {
	return c.CancelTask(ctx, id)
}

// BlockedBy lists what a waiting task waits for.
func (c *Client) BlockedBy(ctx context.Context, id uuid.UUID) ([]Blocker, error) {
	return c.store.BlockedBy(ctx, id)
}

func (c *Client) prepare(r DispatchRequest, index int) (store.NewTask, error) {
	bad := func(field, format string, a ...any) error {
		return &ValidationError{Index: index, Field: field, Message: fmt.Sprintf(format, a...)}
	}
	var nt store.NewTask
	if r.Name == "" {
		return nt, bad("name", "is required")
	}
	tt, ok := c.reg.lookup(r.Name)
	if !ok {
		return nt, bad("name", "unknown task name %q", r.Name)
	}
	args, err := encodeArgs(r.Args)
	if err != nil {
		return nt, bad("args", "%v", err)
	}
	if err := tt.decode(args); err != nil {
		return nt, bad("args", "do not fit task %s: %v", r.Name, err)
	}
	// The type's own resources come after the request's, so that an error
	// names the request's resources by their index in its list.
	exclusive, shared, rerr := normalizeResources(append(slices.Clip(r.ExclusiveResources), tt.opts.exclusive...), r.SharedResources)
	if rerr != nil {
		return nt, bad(rerr.field, "%s", rerr.msg)
	}
	// The rule of versions.Validate, component by component in name order,
	// so that the error names the component at fault, and is the same for
	// the same request every time.
	for _, comp := range slices.Sorted(maps.Keys(r.Versions)) {
		if strings.TrimSpace(comp) == "" {
			return nt, bad("versions", "a component name is empty")
		}
		if msg := invisibleProblem(comp); msg != "" {
			return nt, bad("versions", "the component name %q %s", comp, msg)
		}
		if _, err := versions.Parse(r.Versions[comp]); err != nil {
			return nt, bad("versions."+comp, "%v", err)
		}
	}
	retry, ferr := tt.retryPolicy(r.Retry)
	if ferr != nil {
		return nt, bad("retry."+ferr.field, "%s", ferr.msg)
	}
	if r.UniqueKey != "" {
		if msg := resourceProblem(r.UniqueKey); msg != "" {
			return nt, bad("unique_key", "%s", strings.Replace(msg, "resource", "key", 1))
		}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nt, err
	}
	nt = store.NewTask{
		ID: id, Name: r.Name, Args: args, Owner: r.Owner,
		ExclusiveResources: exclusive, SharedResources: shared,
		Versions: r.Versions, ParentTask: r.parent, TaskGroup: r.TaskGroup,
		Retry: retry, UniqueKey: r.UniqueKey, RetryOf: r.retryOf,
	}
	if !r.ScheduledAt.IsZero() {
		at := r.ScheduledAt.UTC()
		nt.ScheduledAt = &at
	}
	return nt, nil
}

func encodeArgs(a any) (json.RawMessage, error) {
	var raw []byte
	switch v := a.(type) {
	case nil:
		return json.RawMessage("{}"), nil
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		b, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return json.RawMessage("{}"), nil
	}
	if len(raw) > MaxArgsBytes {
		return nil, fmt.Errorf("are %d bytes, more than %d", len(raw), MaxArgsBytes)
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("are not valid JSON")
	}
	if hasNULEscape(raw) {
		return nil, fmt.Errorf(`contain the escape \u0000, which cannot be stored`)
	}
	return json.RawMessage(raw), nil
}

// hasNULEscape reports whether valid JSON text holds the escape \u0000
// (a backslash that is not itself escaped, then u0000). PostgreSQL's jsonb
// refuses it.
func hasNULEscape(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if bytes.HasPrefix(raw[i+1:], []byte("u0000")) {
			return true
		}
		i++ // skip the escaped character, which may be a backslash
	}
	return false
}

type resourceError struct{ field, msg string }

// normalizeResources checks resource names and returns both lists sorted,
// without duplicates, and with a resource in both lists kept as exclusive.
func normalizeResources(exclusive, shared []string) (ex, sh []string, rerr *resourceError) {
	if len(exclusive)+len(shared) > MaxResourcesPerTask {
		return nil, nil, &resourceError{"exclusive_resources", fmt.Sprintf("more than %d resources", MaxResourcesPerTask)}
	}
	check := func(field string, list []string) *resourceError {
		for i, r := range list {
			if msg := resourceProblem(r); msg != "" {
				return &resourceError{fmt.Sprintf("%s[%d]", field, i), msg}
			}
		}
		return nil
	}
	if e := check("exclusive_resources", exclusive); e != nil {
		return nil, nil, e
	}
	if e := check("shared_resources", shared); e != nil {
		return nil, nil, e
	}
	ex = uniqueSorted(exclusive)
	inEx := make(map[string]bool, len(ex))
	for _, r := range ex {
		inEx[r] = true
	}
	for _, r := range uniqueSorted(shared) {
		if !inEx[r] {
			sh = append(sh, r)
		}
	}
	return ex, sh, nil
}

func resourceProblem(r string) string {
	switch {
	case r == "":
		return "resource is empty"
	case len(r) > MaxResourceLength:
		return fmt.Sprintf("resource is %d bytes, more than %d", len(r), MaxResourceLength)
	case !utf8.ValidString(r):
		return "resource is not valid UTF-8"
	}
	if msg := invisibleProblem(r); msg != "" {
		return "resource " + msg
	}
	return ""
}

// invisibleProblem says which character of s would change how a table or a
// page shows it, or "" if none does: a control character (category Cc, line
// breaks and tabs included), a format character (Cf: bidi overrides and
// isolates, zero-width spaces and joiners, the byte order mark) or a line
// or paragraph separator (U+2028, U+2029). Names, resources and
// descriptions are shown as one line of text in CLI tables and in the web
// UI; with these they could show as something else (U+202E turns
// "repo:1‮gnp.exe" into "repo:1exe.png").
func invisibleProblem(s string) string {
	i := strings.IndexFunc(s, func(c rune) bool {
		return unicode.In(c, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
	})
	if i < 0 {
		return ""
	}
	c, _ := utf8.DecodeRuneInString(s[i:])
	kind := "a format character"
	switch {
	case unicode.Is(unicode.Cc, c):
		kind = "a control character"
	case unicode.In(c, unicode.Zl, unicode.Zp):
		kind = "a line or paragraph separator"
	}
	return fmt.Sprintf("contains %s (%U at byte %d), which would change how it is shown", kind, c, i)
}

func uniqueSorted(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := append([]string(nil), in...)
	sort.Strings(out)
	n := 1
	for _, s := range out[1:] {
		if s != out[n-1] {
			out[n] = s
			n++
		}
	}
	return out[:n]
}
