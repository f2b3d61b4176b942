package stinttest

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/runhook"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// Config describes the task that a Run is the run of. Every field may be
// left zero.
type Config struct {
	// Name is the task's name: the registered task type that Work calls.
	Name string
	// ID is the task's id; zero means a new UUIDv7.
	ID uuid.UUID
	// Owner is the user the task was dispatched for; its children get it.
	Owner string
	// TaskGroup is the task's group; its children join it unless their
	// request names another.
	TaskGroup *uuid.UUID
	// Attempt is the run's fencing token, what stint.Run.Attempt returns;
	// zero means 1, a first run.
	Attempt int
	// Registry, when set, validates the children the task dispatches as a
	// real dispatch would (task name known, args decode into its args
	// type): a bad request returns its *stint.ValidationError to the task
	// function.
	Registry *stint.Registry
	// Dispatch, when set, dispatches the children for real (say, through
	// a stint.Client on a test database) after they are recorded;
	// otherwise each is answered with a waiting task that exists nowhere.
	Dispatch func(ctx context.Context, req stint.DispatchRequest) (*stint.Task, error)
	// WorkRoot is a directory (a test's t.TempDir(), say) in which
	// stint.Run.WorkDir makes the task's working directory, under a
	// private (mode 0700) directory "stint" that it creates as a worker
	// creates its own; Work removes the task's directory when the run
	// ends, as a worker does. Empty: WorkDir fails, as in a run that has
	// none.
	WorkRoot string
}

// Failure is the error of a run that failed: what the worker would record
// as the task's error.
type Failure struct {
	stint.TaskError
}

func (f *Failure) Error() string { return "task failed: " + f.Kind + ": " + f.Description }

// Run is the run of one task in a test, and what the task recorded. Its
// methods are safe for concurrent use, as stint.Run's are.
type Run struct {
	// Run is the handle to give the task function.
	Run *stint.Run

	task     *store.Task
	cfg      Config
	mu       sync.Mutex
	progress []stint.ProgressReport
	nonFatal []stint.TaskError
	created  []string
	children []stint.DispatchRequest
}

// NewRun returns the run of a task described by cfg.
func NewRun(cfg Config) *Run {
	id := cfg.ID
	if id == uuid.Nil {
		id = uuid.Must(uuid.NewV7())
	}
	attempt := cfg.Attempt
	if attempt == 0 {
		attempt = 1
	}
	now := time.Now()
	task := &store.Task{ID: id, Name: cfg.Name, State: store.StateRunning, Owner: cfg.Owner,
		TaskGroup: cfg.TaskGroup, Attempt: attempt, CreatedAt: now, UpdatedAt: now, StartedAt: &now,
		Args: json.RawMessage(`{}`)}
	r := &Run{task: task, cfg: cfg}
	var workRoot string
	if cfg.WorkRoot != "" {
		workRoot = filepath.Join(cfg.WorkRoot, "stint")
	}
	r.Run = runhook.NewRun(task, (*sink)(r), r.dispatch, workRoot).(*stint.Run)
	return r
}

// Work calls the task function that reg registers under the run's name
// with args, as a worker runs a task in-process: args go through JSON and
// are checked as a dispatch checks them (unknown fields refused, the args
// type's Validate), the task type's timeout bounds the run, and the result
// is decoded into R. The error of a run that failed is a *Failure with the
// kind the worker would record: a stint.Error's, "canceled", "timeout",
// "panic" or "error". Args that a dispatch would refuse, an unknown task
// name and a result that does not decode into R are other errors.
func Work[R any](ctx context.Context, r *Run, reg *stint.Registry, args any) (R, error) {
	var res R
	nts, err := stint.NewClient(nil, reg).Prepare([]stint.DispatchRequest{{Name: r.task.Name, Args: args}})
	if err != nil {
		return res, fmt.Errorf("stinttest: a dispatch of %s with these args would be refused: %w", r.task.Name, err)
	}
	r.task.Args = nts[0].Args
	raw, taskErr, ok := runhook.Work(ctx, reg, r.Run)
	if !ok {
		return res, fmt.Errorf("stinttest: no task type %q in the registry", r.task.Name)
	}
	if taskErr != nil {
		return res, &Failure{*taskErr}
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return res, fmt.Errorf("stinttest: the result of %s, %s, does not decode into %T: %w", r.task.Name, raw, res, err)
	}
	return res, nil
}

// Task returns the task as the run sees it: its id, name, owner, group,
// attempt, and the args Work last gave it.
func (r *Run) Task() *stint.Task {
	t := *r.task
	return &t
}

// Progress returns the progress reports the task made, the latest of each
// Code in the order the codes first appeared: what the task's
// progress_reports would show.
func (r *Run) Progress() []stint.ProgressReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.progress)
}

// NonFatalErrors returns the non-fatal errors the task recorded, in order.
func (r *Run) NonFatalErrors() []stint.TaskError {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.nonFatal)
}

// CreatedResources returns the resources the task recorded as created, in
// order.
func (r *Run) CreatedResources() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.created)
}

// Children returns the child tasks the task dispatched, in order, as the
// run sent them: Owner and TaskGroup filled in from the task, as a real
// run does (their parent is the task). A child that Config.Registry
// refused is not among them.
func (r *Run) Children() []stint.DispatchRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.children)
}

// dispatch is where the run's children go.
func (r *Run) dispatch(ctx context.Context, anyReq any) (*store.Task, error) {
	req := anyReq.(stint.DispatchRequest)
	var nt store.NewTask
	if r.cfg.Registry != nil {
		nts, err := stint.NewClient(nil, r.cfg.Registry).Prepare([]stint.DispatchRequest{req})
		if err != nil {
			if ve, ok := err.(*stint.ValidationError); ok {
				ve.Index = -1 // one dispatch, as the run made it
			}
			return nil, err
		}
		nt = nts[0]
	} else {
		args, err := runhook.EncodeArgs(req.Args)
		if err != nil {
			return nil, err
		}
		nt = store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: req.Name, Args: args, Owner: req.Owner,
			ExclusiveResources: req.ExclusiveResources, SharedResources: req.SharedResources,
			Versions: req.Versions, TaskGroup: req.TaskGroup}
	}
	r.mu.Lock()
	r.children = append(r.children, req)
	r.mu.Unlock()
	if r.cfg.Dispatch != nil {
		return r.cfg.Dispatch(ctx, req)
	}
	parent := r.task.ID
	now := time.Now()
	return &store.Task{ID: nt.ID, Name: nt.Name, State: store.StateWaiting, Args: nt.Args, Owner: nt.Owner,
		CreatedAt: now, UpdatedAt: now, ExclusiveResources: nt.ExclusiveResources, SharedResources: nt.SharedResources,
		Versions: nt.Versions, ParentTask: &parent, TaskGroup: nt.TaskGroup}, nil
}

// sink is the Run as the recipient of the task's outputs.
type sink Run

func (s *sink) Progress(p store.ProgressReport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.progress {
		if s.progress[i].Code == p.Code {
			s.progress[i] = p
			return
		}
	}
	s.progress = append(s.progress, p)
}

func (s *sink) NonFatalError(_ context.Context, e store.TaskError) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nonFatal = append(s.nonFatal, e)
	return nil
}

func (s *sink) CreatedResource(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created = append(s.created, name)
	return nil
}

// RequireDispatchedTx returns the newest task named name that q sees (q
// may be the transaction the code under test dispatched in, through
// postgres.DispatchTx, before it commits), and fails the test when there
// is none.
func RequireDispatchedTx(ctx context.Context, tb testing.TB, q postgres.Querier, name string) *stint.Task {
	tb.Helper()
	tasks, err := postgres.ListTasksTx(ctx, q, store.TaskFilter{Name: name, Ordering: store.OrderCreatedDesc, Limit: 1})
	if err != nil {
		tb.Fatalf("stinttest: reading the tasks named %s: %v", name, err)
		return nil
	}
	if len(tasks) == 0 {
		tb.Fatalf("stinttest: no task named %s was dispatched", name)
		return nil
	}
	return tasks[0]
}

// RequireNotDispatchedTx fails the test when q sees a task named name.
func RequireNotDispatchedTx(ctx context.Context, tb testing.TB, q postgres.Querier, name string) {
	tb.Helper()
	tasks, err := postgres.ListTasksTx(ctx, q, store.TaskFilter{Name: name, Limit: 1})
	if err != nil {
		tb.Fatalf("stinttest: reading the tasks named %s: %v", name, err)
		return
	}
	if len(tasks) > 0 {
		tb.Fatalf("stinttest: a task named %s was dispatched (%s, %s)", name, tasks[0].ID, tasks[0].State)
	}
}
