package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"
)

// State is the lifecycle state of a task. See the package documentation
// of stint for the transitions between states.
type State string

// The states of a task.
const (
	// StateScheduled: the task's time (ScheduledAt) has not come, or it
	// waits for its next attempt. It holds no place in any resource queue
	// and blocks nothing; when it is due it becomes waiting and enters its
	// queues at the back, in the order tasks became due.
	StateScheduled State = "scheduled"
	StateWaiting   State = "waiting"
	StateRunning   State = "running"
	StateCanceling State = "canceling"
	StateCompleted State = "completed"
	StateFailed    State = "failed"
	StateCanceled  State = "canceled"
	StateSkipped   State = "skipped"
	StateDropped   State = "dropped"
)

// States lists every state in lifecycle order.
var States = []State{StateScheduled, StateWaiting, StateRunning, StateCanceling, StateCompleted, StateFailed, StateCanceled, StateSkipped, StateDropped}

// Final reports whether nothing can change the state any more.
func (s State) Final() bool {
	switch s {
	case StateCompleted, StateFailed, StateCanceled, StateSkipped, StateDropped:
		return true
	}
	return false
}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	for _, k := range States {
		if s == k {
			return true
		}
	}
	return false
}

// ErrNotFound is returned when a task or worker does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when a user of that name already exists.
var ErrExists = errors.New("already exists")

// ErrNotFinal is returned when an operation needs a final task (DeleteTask)
// and the task is still waiting, running or canceling.
var ErrNotFinal = errors.New("task is not final")

// ErrFinal is returned when an operation needs an incomplete task and the
// task is final.
var ErrFinal = errors.New("task is final")

// ErrSealed is returned when a dispatch names a task group whose
// AllTasksDispatched is set: no more tasks may join it, except children of
// its own incomplete tasks. Engines check it in the dispatch's own
// transaction, so no task joins a group after the seal committed.
var ErrSealed = errors.New("task group is sealed")

// ErrUnstorable is wrapped by errors about data the engine cannot store,
// such as a result with a JSON \u0000 escape on PostgreSQL. Retrying the
// same data fails again.
var ErrUnstorable = errors.New("data cannot be stored")

// TaskError is the fatal error of a failed task.
type TaskError struct {
	Kind        string `json:"kind"`
	Description string `json:"description"`
	Traceback   string `json:"traceback,omitempty"`
	// NoRetry: the run asked not to be retried (stint.NoRetry). The
	// worker's outcome carries it to Finish (Outcome.NoRetry).
	NoRetry bool `json:"no_retry,omitempty"`
}

// ProgressReport is one progress bar of a running task. Reports are keyed by
// Code: a report with the code of an earlier one replaces it.
type ProgressReport struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	State   string `json:"state"`
	Total   *int64 `json:"total"`
	Done    int64  `json:"done"`
	Suffix  string `json:"suffix,omitempty"`
}

// Outputs are what a task records while it runs, apart from its result.
type Outputs struct {
	NonFatalErrors   []TaskError      `json:"non_fatal_errors"`
	ProgressReports  []ProgressReport `json:"progress_reports"`
	CreatedResources []string         `json:"created_resources"`
}

// RetryPolicy says how often a failed task runs again and after how long.
// The zero value (or MaxAttempts 1) means no retries. The delay before
// attempt n+1, after n attempts ended, is InitialDelay × Multiplier^(n-1),
// at most MaxDelay, less a random part of up to Jitter of it (Delay).
type RetryPolicy struct {
	// MaxAttempts are the attempts in all, the first run included (1 to
	// MaxRetryAttempts).
	MaxAttempts  int           `json:"max_attempts"`
	InitialDelay time.Duration `json:"initial_delay_ns"` // before the second attempt
	MaxDelay     time.Duration `json:"max_delay_ns"`     // the cap of every delay
	Multiplier   float64       `json:"multiplier"`       // ≥ 1: each delay is this many times the last one
	Jitter       float64       `json:"jitter"`           // 0 to 1: the part of each delay that is random
	// Dropped: a run lost with its worker (dropped) is retried like a
	// failed one. For idempotent tasks only: the lost run may have done
	// some of its work, or all of it.
	Dropped bool `json:"dropped,omitempty"`
}

// The JSON form above (durations in nanoseconds) is how both engines store
// a policy; the HTTP API has its own, with Go duration strings.

// MaxRetryAttempts bounds RetryPolicy.MaxAttempts.
const MaxRetryAttempts = 100

// Delay is the delay before the next attempt after n attempts ended
// (n ≥ 1), with r in [0, 1) the random draw of the jitter. The PostgreSQL
// engine computes the same in SQL (stint_retry_delay).
func (p RetryPolicy) Delay(n int, r float64) time.Duration {
	d := float64(p.InitialDelay)
	for i := 1; i < n && d < float64(p.MaxDelay); i++ {
		d *= p.Multiplier
	}
	d = min(d, float64(p.MaxDelay))
	return time.Duration(d * (1 - p.Jitter*r))
}

// RetriedBy reports whether outcome o of a run of t (as claimed: running)
// schedules t again rather than ending it: the rule of Finish, which the
// engines apply in their own statements, for callers that must know (a
// worker's metrics).
func (t *Task) RetriedBy(o Outcome) bool {
	p := t.Retry
	return p != nil && t.State == StateRunning && !o.NoRetry &&
		(o.State == StateFailed || (o.State == StateDropped && p.Dropped)) &&
		len(t.Attempts)+1 < p.MaxAttempts
}

// Attempt is one earlier run of a task that was retried: how it ended and
// why. The current (or last) run is the task's own StartedAt, FinishedAt,
// Worker, State and Error.
type Attempt struct {
	Number     int        `json:"number"` // 1 for the first run
	State      State      `json:"state"`  // StateFailed or StateDropped
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt time.Time  `json:"finished_at"`
	Worker     string     `json:"worker"`
	Error      *TaskError `json:"error"`
}

// Task is a task as the store keeps it.
type Task struct {
	ID uuid.UUID
	// Seq is the task's place in the order of its queues: taken at
	// dispatch, and again when a scheduled task becomes due (so that it
	// queues behind every task dispatched before that).
	Seq                int64
	Name               string
	State              State
	Args               json.RawMessage
	Owner              string
	CreatedAt          time.Time
	UpdatedAt          time.Time
	UnblockedAt        *time.Time
	StartedAt          *time.Time
	FinishedAt         *time.Time
	ExclusiveResources []string
	SharedResources    []string
	Versions           map[string]string
	Worker             string
	Attempt            int
	ParentTask         *uuid.UUID
	TaskGroup          *uuid.UUID
	Result             json.RawMessage
	Error              *TaskError
	// ScheduledAt is when the task was asked to run (nil: at once) or,
	// while it waits for its next attempt, when that attempt is due.
	ScheduledAt *time.Time
	// Retry is the task's policy; nil: no retries.
	Retry *RetryPolicy
	// Attempts are the earlier runs of a retried task, oldest first; the
	// current one is not among them.
	Attempts []Attempt
	// UniqueKey: while the task is incomplete no other task of the same
	// owner and name with this key is created (see NewTask.UniqueKey).
	UniqueKey string
	// RetryOf is the task this one re-runs (a manual retry).
	RetryOf *uuid.UUID
	// Deduplicated is set on a task that Dispatch returned instead of
	// creating the one asked for, which had the same unique key. It is not
	// stored.
	Deduplicated bool
	Outputs
	// ChildTasks are the ids of the task's children, in dispatch order.
	// Only Store.Task, Store.ListTasks and Store.Cancel read them (in the
	// statement that reads the task); tasks returned by other calls have
	// none.
	ChildTasks []uuid.UUID
}

// NewTask is what Dispatch inserts. The caller validates and normalizes it:
// the ID is a UUIDv7, resources are sorted, unique, and a resource is in at
// most one of the two lists.
type NewTask struct {
	ID                 uuid.UUID
	Name               string
	Args               json.RawMessage
	Owner              string
	ExclusiveResources []string
	SharedResources    []string
	Versions           map[string]string
	ParentTask         *uuid.UUID
	TaskGroup          *uuid.UUID
	// ScheduledAt: the task is scheduled until then, by the store's
	// clock, if that is later than the dispatch; nil or a time passed:
	// at once.
	ScheduledAt *time.Time
	// Retry is the task's retry policy, nil for none.
	Retry *RetryPolicy
	// UniqueKey, when set: if an incomplete task (scheduled, waiting,
	// running or canceling) of the same Owner and Name has this key, the
	// dispatch creates nothing and returns that task, with Deduplicated
	// set. The engines enforce it with a unique index, in the dispatch's
	// own transaction, whatever the number of dispatchers.
	UniqueKey string
	// RetryOf links a manual re-run to the task it runs again.
	RetryOf *uuid.UUID
}

// ClaimParams selects what a worker claims.
type ClaimParams struct {
	Worker string   // the claiming worker's name
	Names  []string // the task names the worker can run
	Limit  int      // at most this many tasks
	// Versions are the components the worker provides and their versions.
	// A task whose Versions it does not satisfy (see internal/versions) is
	// not claimed, and does not hold up the tasks behind it in the claim
	// order.
	Versions map[string]string
}

// ImmediateParams asks DispatchImmediate to run a task inline.
type ImmediateParams struct {
	// Worker is the name the run is claimed under: a worker registered by
	// the process that runs it inline.
	Worker string
	// Deferred: when the task's resources are busy, leave it waiting for a
	// worker (true) or end it skipped (false).
	Deferred bool
}

// TaskGroup is a set of tasks a client follows as one (DESIGN §1).
type TaskGroup struct {
	ID          uuid.UUID
	Description string
	Owner       string
	CreatedAt   time.Time
	// AllTasksDispatched: no more tasks will be dispatched into the group
	// by clients. A group is done when it is sealed so and every task in it
	// is final.
	AllTasksDispatched bool
	// Counts are the group's tasks per state; states with none are absent.
	Counts map[State]int
	// Tasks are the ids of the group's tasks in dispatch order. Filled by
	// TaskGroup only; nil in lists.
	Tasks []uuid.UUID
}

// Done reports whether the group is sealed and all its tasks are final.
func (g *TaskGroup) Done() bool {
	if !g.AllTasksDispatched {
		return false
	}
	for state, n := range g.Counts {
		if n > 0 && !state.Final() {
			return false
		}
	}
	return true
}

// NewTaskGroup is what CreateTaskGroup inserts.
type NewTaskGroup struct {
	ID                 uuid.UUID // a UUIDv7
	Description        string
	Owner              string
	AllTasksDispatched bool
}

// TaskGroupFilter selects task groups for ListTaskGroups, newest first.
// Zero fields do not filter.
type TaskGroupFilter struct {
	Owner              string
	AllTasksDispatched *bool
	Limit              int // at most this many; 0 means no limit
	Offset             int
}

// PurgeParams selects the final tasks Purge deletes.
type PurgeParams struct {
	FinishedBefore time.Time // finished strictly before this time
	States         []State   // final states only; empty means none
	Limit          int       // at most this many in one call, > 0
}

// Outcome is how one run of a task ended. Attempt is the fencing token the
// claim returned: an outcome whose attempt is stale changes nothing.
type Outcome struct {
	ID      uuid.UUID
	Attempt int
	State   State // StateCompleted, StateFailed, StateCanceled or StateDropped
	Result  json.RawMessage
	Error   *TaskError
	// NoRetry: a failed run ends the task failed even when its policy has
	// attempts left.
	NoRetry bool
}

// DueTasks is what EnqueueDue did and what it found next.
type DueTasks struct {
	Enqueued int // scheduled tasks that were due, now waiting
	// NextIn is how long, by the store's clock, until the next scheduled
	// task is due; negative when no task is scheduled.
	NextIn time.Duration
}

// Blocker is an earlier incomplete task that a waiting task waits for on
// one resource.
type Blocker struct {
	Task     uuid.UUID
	Resource string
	// Capacity and Holders are set when the task waits for room on a
	// counted resource: the resource is full, Holders of Capacity.
	Capacity, Holders int
}

// WorkerInfo describes a registered worker.
type WorkerInfo struct {
	Name          string
	Hostname      string
	PID           int
	Versions      map[string]string
	Concurrency   int
	StartedAt     time.Time
	LastHeartbeat time.Time
	Missing       bool
	// CurrentTasks are the ids of the tasks the worker runs (running or
	// canceling), oldest first (in dispatch order). Filled by Workers and
	// Worker; ignored by RegisterWorker.
	CurrentTasks []uuid.UUID
}

// Ordering names the order of ListTasks: a column and a direction.
type Ordering string

// The orderings ListTasks knows. Ties are broken by dispatch order.
const (
	OrderCreated      Ordering = "created_at"
	OrderCreatedDesc  Ordering = "-created_at"
	OrderStarted      Ordering = "started_at"
	OrderStartedDesc  Ordering = "-started_at"
	OrderFinished     Ordering = "finished_at"
	OrderFinishedDesc Ordering = "-finished_at"
	// Tasks that are not scheduled come after the scheduled ones
	// (nulls last), in both directions.
	OrderScheduled     Ordering = "scheduled_at"
	OrderScheduledDesc Ordering = "-scheduled_at"
)

// Orderings lists every Ordering.
var Orderings = []Ordering{OrderCreated, OrderCreatedDesc, OrderStarted, OrderStartedDesc, OrderFinished, OrderFinishedDesc,
	OrderScheduled, OrderScheduledDesc}

// TaskFilter selects and orders tasks for ListTasks. Zero fields do not
// filter; all set fields must match.
type TaskFilter struct {
	IDs                        []uuid.UUID // any of these
	States                     []State     // any of these
	Name                       string      // equal
	NameContains               string      // substring, case-sensitive
	Worker                     string
	Owner                      string
	ParentTask                 *uuid.UUID
	TaskGroup                  *uuid.UUID
	ExclusiveResource          string // held exclusively
	SharedResource             string // held shared
	ReservedResource           string // held either way
	CreatedResource            string // among created_resources
	CreatedGTE, CreatedLTE     *time.Time
	StartedGTE, StartedLTE     *time.Time
	FinishedGTE, FinishedLTE   *time.Time
	ScheduledGTE, ScheduledLTE *time.Time

	Ordering Ordering // default OrderCreated
	Limit    int      // at most this many; 0 means no limit
	Offset   int
}

// CountBound is how far ListTasks and ListTaskGroups count the rows their
// filter selects when the count is not known otherwise: they stop at
// CountBound+1 rows, and report no total when they reach it, so that a
// list's cost does not grow with the table.
const CountBound = 10_000

// TaskChange says that a task's state or progress changed. Changes are
// published by every process that changes tasks and received by every
// process that listens, on any node.
type TaskChange struct {
	ID    uuid.UUID
	State State // the state the change left it in
}

// HeartbeatReply is what Heartbeat returns.
type HeartbeatReply struct {
	// States are the states of the tasks the heartbeat named; a task that
	// no longer exists is absent.
	States map[uuid.UUID]State
	// Unknown are the tasks running or canceling under the worker's name
	// that the heartbeat did not name, oldest first (in dispatch order).
	Unknown []HeldTask
}

// HeldTask is a task the store attributes to a worker: running or
// canceling under its name, with the attempt of the claim that gave it
// to the worker.
type HeldTask struct {
	ID      uuid.UUID
	Attempt int
	State   State // StateRunning or StateCanceling
}

// SweepResult counts what a sweep repaired. Every count above zero is a bug
// signal: the scheduler should have done it on its own.
type SweepResult struct {
	Unblocked   int // queue entries promoted that should already have been
	StaleQueues int // tasks whose queue entries remained after they ended, removed
	Recounted   int // queues whose counts were wrong, recounted (engines that count their queues)
}

// Total is the number of repairs.
func (r SweepResult) Total() int { return r.Unblocked + r.StaleQueues + r.Recounted }

// LostWorkers is what DropLostWorkers did: the workers it declared lost, by
// name, and the tasks it ended, in id order.
type LostWorkers struct {
	Workers []string
	Tasks   []uuid.UUID
}

// WorkerLostKind is the Kind of the error of a task that DropLostWorkers
// ended.
const WorkerLostKind = "worker-lost"

// Kinds of the errors of the tasks an embedded engine found running or
// canceling when it opened its file: the process that ran them stopped.
// They are the states the tasks end in.
const (
	StoppedWhileRunningKind   = "dropped"
	StoppedWhileCancelingKind = "canceled"
)

// Role is what a user may do: see DESIGN §8 and docs/security.md.
type Role string

// The roles of users.
const (
	RoleUser  Role = "user"  // dispatches, sees and cancels its own tasks
	RoleAdmin Role = "admin" // sees and cancels everything, sees workers, purges
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleUser || r == RoleAdmin }

// User is an account that API tokens act for.
type User struct {
	Name      string
	Role      Role
	CreatedAt time.Time
	// Tokens are the user's API tokens, oldest first, without their
	// secrets. Filled by Users; ignored elsewhere.
	Tokens []TokenInfo
}

// TokenInfo describes an API token; the store never holds its secret.
type TokenInfo struct {
	ID        string // public part of the token, unique
	User      string
	CreatedAt time.Time
}

// NewToken is what AddToken stores: the token's public id and the hash of
// its secret (see internal/auth), never the secret.
type NewToken struct {
	ID   string
	User string
	Hash []byte
}

// Users keeps the users and their API tokens. Every method reads and
// writes the database directly (no cache), so a revoked token or a removed
// user is refused by every node at once.
type Users interface {
	// CreateUser adds a user; ErrExists if the name is taken.
	CreateUser(ctx context.Context, name string, role Role) error
	// Users lists the users by name, each with its tokens.
	Users(ctx context.Context) ([]User, error)
	// DeleteUser removes a user and its tokens; ErrNotFound if unknown.
	// Its tasks keep their owner.
	DeleteUser(ctx context.Context, name string) error
	// AddToken stores a token of an existing user; ErrNotFound if the user
	// does not exist.
	AddToken(ctx context.Context, t NewToken) error
	// RevokeToken deletes a token; ErrNotFound if unknown.
	RevokeToken(ctx context.Context, id string) error
	// Token returns the hash stored for a token id and the token's user, or
	// ErrNotFound. The caller compares hashes in constant time.
	Token(ctx context.Context, id string) (hash []byte, user *User, err error)
	// HasUsers reports whether at least one user exists.
	HasUsers(ctx context.Context) (bool, error)
}

// Store is the persistence and scheduling engine behind Stint. Every method
// is safe for concurrent use, from many processes at once where the engine
// allows several.
type Store interface {
	Users

	// Migrate brings the schema to the newest version. It is idempotent and
	// safe to call from several processes at once.
	Migrate(ctx context.Context) error

	// Dispatch inserts tasks in order, each queued behind every earlier
	// incomplete task on its resources. Tasks that are runnable at once have
	// UnblockedAt set. Order on each resource agrees with commit order.
	// A task naming a sealed group (AllTasksDispatched) fails the whole
	// call with ErrSealed, unless its ParentTask is an incomplete task of
	// that group; a group nobody created is not checked. The seal is read
	// in the dispatch's own transaction: a task is either in the group
	// SealTaskGroup returns, or refused. DispatchImmediate and
	// CreateTaskGroup follow the same rule.
	Dispatch(ctx context.Context, tasks []NewTask) ([]*Task, error)

	// DispatchImmediate dispatches one task and, in the same transaction,
	// claims it for p.Worker when it is runnable at once: it returns the
	// task running, with its Attempt, for the caller to run inline and
	// Finish. When the task is not runnable at once it stays waiting, for a
	// worker, if p.Deferred; otherwise it ends skipped, leaving its queues
	// as a canceled task does.
	DispatchImmediate(ctx context.Context, t NewTask, p ImmediateParams) (*Task, error)

	// EnqueueDue makes waiting every scheduled task whose time has come
	// by the store's clock (at most limit of them, > 0), oldest due first,
	// each entering its resource queues at the back as a dispatch does,
	// and says how long until the next one is due. Workers call it when
	// DueSignals or their timer says so, and at every poll.
	EnqueueDue(ctx context.Context, limit int) (DueTasks, error)

	// DueSignals returns a channel that receives a value whenever a task
	// was scheduled (dispatched with a ScheduledAt to come, or waiting for
	// its next attempt), from this process or any other: a scheduled task
	// may now be due before the time a worker waits for, and the worker
	// calls EnqueueDue to learn it. It is closed when ctx ends. Signals may
	// be coalesced or lost; workers also poll.
	DueSignals(ctx context.Context) (<-chan struct{}, error)

	// Claim moves up to p.Limit runnable tasks to running, oldest first, and
	// returns them with a new Attempt each.
	Claim(ctx context.Context, p ClaimParams) ([]*Task, error)

	// Finish records outcomes, frees the tasks' resources and unblocks the
	// tasks waiting behind them. It returns the ids it recorded; an outcome
	// with a stale attempt, or for a task no longer running, is ignored.
	// A failed outcome (or a dropped one, with RetryPolicy.Dropped) of a
	// running task whose policy has attempts left, and without NoRetry,
	// does not end the task: the run is appended to its Attempts, and the
	// task becomes scheduled at the store's now + RetryPolicy.Delay, its
	// queue entries released as a final task's are.
	Finish(ctx context.Context, outcomes []Outcome) ([]uuid.UUID, error)

	// Cancel cancels a task: a scheduled or waiting one becomes canceled
	// at once and leaves its queues; a running one becomes canceling, and its worker is
	// told to stop it. A canceling task is returned as it is. It returns the
	// task as it is now, ErrNotFound, or ErrFinal.
	Cancel(ctx context.Context, id uuid.UUID) (*Task, error)

	// SaveOutputs records a running task's outputs, fenced by attempt. It
	// reports false when the run no longer owns the task.
	SaveOutputs(ctx context.Context, id uuid.UUID, attempt int, out Outputs) (bool, error)

	// Task returns one task, or ErrNotFound.
	Task(ctx context.Context, id uuid.UUID) (*Task, error)

	// DeleteTask removes a final task; ErrNotFound, or ErrNotFinal.
	DeleteTask(ctx context.Context, id uuid.UUID) error
	// Purge deletes up to p.Limit final tasks in p.States that finished
	// before p.FinishedBefore, oldest first, in one short transaction, and
	// returns how many it deleted. Callers loop until it returns less than
	// p.Limit, so that no lock is held for long.
	Purge(ctx context.Context, p PurgeParams) (int, error)

	// CreateTaskGroup creates a group and dispatches tasks into it, all in
	// one transaction: either the group and every task exist, or nothing
	// does. The tasks' TaskGroup must be g.ID. It returns the group as
	// TaskGroup does, and the tasks as Dispatch does.
	CreateTaskGroup(ctx context.Context, g NewTaskGroup, tasks []NewTask) (*TaskGroup, []*Task, error)
	// TaskGroup returns a group with its counts and task ids, or
	// ErrNotFound.
	TaskGroup(ctx context.Context, id uuid.UUID) (*TaskGroup, error)
	// ListTaskGroups returns a page of groups, newest first, with their
	// counts, and how many groups f selects in all (ignoring Limit and
	// Offset) when that is cheap to know, as ListTasks does: nil when more
	// than CountBound groups match and the page does not end the set.
	ListTaskGroups(ctx context.Context, f TaskGroupFilter) ([]*TaskGroup, *int, error)
	// SealTaskGroup sets AllTasksDispatched (idempotent) and returns the
	// group as TaskGroup does; ErrNotFound.
	SealTaskGroup(ctx context.Context, id uuid.UUID) (*TaskGroup, error)
	// CancelTaskGroup seals a group and cancels each of its incomplete
	// tasks as Cancel does, and returns the group as TaskGroup does;
	// ErrNotFound.
	CancelTaskGroup(ctx context.Context, id uuid.UUID) (*TaskGroup, error)

	// ListTasks returns a page of the tasks f selects, in f's order, and how
	// many tasks f selects in all (ignoring Limit and Offset) when that is
	// cheap to know, nil otherwise. The total is exact when the page ends
	// the set (it is shorter than Limit, and not past the end), when f
	// selects by state alone (OnlyStates: from the maintained counts of
	// CountByState), and when at most CountBound tasks match (a count that
	// stops after CountBound+1 rows); it is nil when more match. Callers
	// that page learn whether a next page exists by asking for one task
	// more than they show, not from the total. The page and the total may
	// be read in two statements: on PostgreSQL the total may then be off
	// by the tasks dispatched or changed between them.
	ListTasks(ctx context.Context, f TaskFilter) ([]*Task, *int, error)

	// CountByState counts tasks per state; states with none are absent.
	// The engines maintain the counts as tasks are written (triggers in
	// the schema), so that it reads a few rows whatever the number of
	// tasks; the counts are exact, as of one snapshot.
	CountByState(ctx context.Context) (map[State]int, error)

	// BlockedBy lists, for a waiting task, the earlier conflicting tasks on
	// each resource it waits for (at most a few per resource, oldest first).
	// On a resource with a capacity that the task waits for shared behind
	// no exclusive entry, they are the earlier tasks on it (its holders
	// first), with Capacity and Holders set: the resource is full.
	BlockedBy(ctx context.Context, id uuid.UUID) ([]Blocker, error)

	// SetCapacity sets the capacity of a resource (nil: no bound), and
	// starts at once the waiting tasks that a raised capacity lets run; a
	// lowered one lets the holders finish and starts no other until they
	// are fewer than it. A capacity is at least 1.
	SetCapacity(ctx context.Context, name string, capacity *int) error
	// Resources returns a page of the resources f selects (those with
	// holders, waiting tasks or a capacity), with their first holders.
	Resources(ctx context.Context, f ResourceFilter) (ResourcePage, error)
	// Resource returns one resource with its first holders and waiting
	// tasks; a resource nothing holds, waits for or bounds is returned
	// with zero counts.
	Resource(ctx context.Context, name string) (*Resource, error)
	// CollectResources deletes what the engine keeps of up to limit
	// resources that have no holder, no waiting task and no capacity, and
	// returns how many it deleted; callers loop until it returns less
	// than limit.
	CollectResources(ctx context.Context, limit int) (int, error)

	// RegisterWorker adds or replaces a worker and sets its heartbeat. On
	// PostgreSQL, a name that a live worker of another process holds (its
	// database session is open) is refused with ErrExists: names are unique
	// among online workers.
	RegisterWorker(ctx context.Context, w WorkerInfo) error
	// Heartbeat refreshes a worker's heartbeat and returns the states of the
	// given tasks (the ones the worker knows it holds), so the worker
	// notices cancels it was not told about, and the tasks the store
	// attributes to the worker (running or canceling under its name) that
	// are not among them: a claim whose reply was lost, say, which the
	// worker then adopts or gives up. It returns ErrNotFound for a worker
	// that is not in the list (removed, or declared lost by
	// DropLostWorkers): the worker registers again.
	Heartbeat(ctx context.Context, worker string, running []uuid.UUID) (HeartbeatReply, error)
	// RemoveWorker deletes a worker that stops cleanly.
	RemoveWorker(ctx context.Context, name string) error
	// DropLostWorkers declares lost every worker whose last heartbeat is
	// older than missingAfter (> 0) by the database's clock (on SQLite, the
	// clock of the one process that writes the file). For each of them, in
	// one transaction: its running tasks end dropped and its canceling ones
	// canceled, with finished_at set and an error of kind WorkerLostKind
	// ("worker W stopped heartbeating (last heartbeat at T); the task was
	// dropped", or "...was canceled" for a canceling one); their resources
	// are freed and the tasks behind them unblocked exactly as Finish does;
	// the changes are published; and the worker leaves the worker list, as
	// RemoveWorker does. A running task whose policy retries dropped runs
	// (RetryPolicy.Dropped) and has attempts left is retried as Finish
	// retries a failed one, its attempt recorded dropped. It returns what it did, empty when no worker is
	// lost; a worker without tasks is still listed.
	//
	// On PostgreSQL a worker is also lost, at once, when the database
	// session it registered with (RegisterWorker) has ended: its process
	// died. The error then says so instead of naming the last heartbeat.
	//
	// Running tasks whose worker is not in the list at all (it was found
	// lost while one of its claims was in flight, then died) are orphans:
	// they end as a lost worker's do ("worker W is not in the worker
	// list...") once they have run longer than missingAfter, and W is
	// reported among the lost workers.
	//
	// It is safe to call from many processes at once: each task is ended,
	// and each listed worker reported, by exactly one call.
	//
	// A lost worker that comes back (it was paused, not dead) finds its
	// tasks final: its Finish and SaveOutputs are fenced off like any stale
	// run's, and Heartbeat fails with ErrNotFound, as for a removed worker,
	// instead of silently putting it back in the list. The worker then
	// registers again (RegisterWorker) and, seeing its tasks' states in the
	// next heartbeat, stops the runs it no longer owns.
	DropLostWorkers(ctx context.Context, missingAfter time.Duration) (LostWorkers, error)
	// Workers lists the registered workers, by name.
	Workers(ctx context.Context) ([]WorkerInfo, error)
	// Worker returns one registered worker, or ErrNotFound.
	Worker(ctx context.Context, name string) (*WorkerInfo, error)

	// Sweep is the safety net of the scheduler: it promotes queue entries
	// that should be runnable and removes entries of final tasks.
	Sweep(ctx context.Context) (SweepResult, error)

	// Wakeups returns a channel that receives a value whenever tasks may have
	// become runnable, from this process or any other. It is closed when ctx
	// ends. Wake-ups may be coalesced or lost; callers also poll.
	Wakeups(ctx context.Context) (<-chan struct{}, error)

	// Cancels returns a channel that receives a value whenever the cancel
	// of a running task was asked (it became canceling), from this process
	// or any other: the fast path by which a worker learns of it, then
	// reads the states of its tasks (Heartbeat). It is closed when ctx
	// ends. Signals may be coalesced or lost; workers also check at every
	// heartbeat. Unlike Changes, it costs nothing while no task is
	// canceled.
	Cancels(ctx context.Context) (<-chan struct{}, error)

	// Changes returns a channel of task changes (dispatch, claim, progress,
	// cancel, finish), from this process or any other, in batches. It is
	// closed when ctx ends. A change may be reported more than once, and
	// changes are lost while the listener reconnects: readers that must not
	// miss an end re-read the tasks they follow when they start listening.
	// An empty batch says that changes may have been lost since the last
	// batch (the listener reconnected, or the reader fell too far behind):
	// the reader then re-reads the tasks it follows.
	Changes(ctx context.Context) (<-chan []TaskChange, error)

	// Close releases the store's connections.
	Close()
}
