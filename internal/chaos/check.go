package chaos

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/scheduling"
	"github.com/stint-dev/stint/store"
)

// Task is a task as the database recorded it at the end of a chaos run
// (a row of stint_tasks).
type Task struct {
	ID    uuid.UUID
	Seq   int64  // queue order: taken at dispatch, and again when a retry is due
	Key   string // the args' key: the logical task the check dispatched
	State string
	// Attempt is the fencing token of its last claim (0 if never
	// claimed): each claim adds one, so it is the number of the current
	// (or last) attempt, len(Attempts)+1 once it started.
	Attempt int
	Worker  string
	// Exclusive and Shared are the resources it holds; a resource is in
	// one list at most.
	Exclusive, Shared []string
	StartedAt         time.Time // zero if it never started
	FinishedAt        time.Time // zero if it is not final
	// Reason is the description of its error, if any: for a dropped
	// task, why its worker was found lost.
	Reason string
	// ErrorKind is the kind of its error, if any: for a dropped task,
	// worker-lost, shutdown or claim-lost.
	ErrorKind string
	// NoRetry: its error refused a retry (stint.NoRetry).
	NoRetry bool
	// Retry is its retry policy (stint_tasks.retry); nil for none.
	Retry *store.RetryPolicy
	// Attempts are its earlier runs, oldest first, if it was retried
	// (stint_tasks.attempts); its current (or last) run is the task's own
	// Attempt, Worker, StartedAt, FinishedAt, State and error.
	Attempts []Attempt
}

// Attempt is an earlier run of a retried task, as the task's attempts
// list recorded it.
type Attempt struct {
	Number                int    // 1 for the first run: the fencing token its claim took
	State                 string // failed or dropped
	Worker                string
	StartedAt, FinishedAt time.Time
	// Reason and ErrorKind are its error's description and kind.
	Reason, ErrorKind string
}

// Event is a row of chaos_log: a run of a task logged that it entered or
// left its critical section, on the database's clock, fenced by its
// attempt. A run leaves by "exit" when it then returns success, by "fail"
// when it then returns an error.
type Event struct {
	Task    uuid.UUID
	Attempt int
	Run     uuid.UUID // one per call of the task function
	Event   string    // "enter", "exit" or "fail"
	At      time.Time
}

// Dispatch is what the check knows of one logical task it dispatched.
type Dispatch struct {
	Key string
	// ID is the task the API acknowledged (202 Accepted); uuid.Nil if no
	// try was acknowledged.
	ID uuid.UUID
	// Unknown counts the tries whose outcome is unknown (the connection
	// broke, or the API answered 5xx while PostgreSQL restarted): each may
	// have created a task all the same.
	Unknown int
}

// Loss kinds: how the check took a worker away.
const (
	Kill = "kill" // SIGKILL
	Stop = "stop" // SIGSTOP, then SIGCONT after longer than the missing timeout
	// Cut: every connection between the worker and PostgreSQL was cut
	// (closed both ways) at once; the worker lives on and connects again.
	// Its database session ended, so its running tasks may be dropped
	// (found lost by their session) or complete (it reopened its session
	// first): either is right, but a drop must come within the deadline.
	Cut = "cut"
	// Silence: every connection of the worker went silent (black-holed,
	// no FIN) until Resumed, longer than the missing timeout; the ones
	// that lost bytes stay silent for good. As for a Stop, its running
	// tasks must end dropped.
	Silence = "silence"
)

// ClaimLostKind is the error kind of a task that its worker gave up
// because the answer of the claim that took it was lost (the connection
// failed after the claim committed): it never ran.
const ClaimLostKind = stint.ClaimLostKind

// Loss is a worker the check killed or stopped.
type Loss struct {
	Worker string
	Kind   string    // Kill, Stop, Cut or Silence
	Before time.Time // the database's clock just before the signal
	After  time.Time // the database's clock just after it
	// Resumed is the database's clock just before SIGCONT (a Stop) or
	// just before the network came back (a Silence): what the worker
	// claims from then on is not lost.
	Resumed time.Time
}

// Outage is a time PostgreSQL was down (it was restarted), by its clock:
// from just before the shutdown to the first answer after the start.
type Outage struct{ From, To time.Time }

// History is everything the checker judges: what the database recorded,
// what the check sent, and the chaos it caused.
//
// Only Tasks is required. Without Events (nil), the checks of the runs'
// logs are skipped; without Dispatches (nil), the accounting of lost and
// duplicate tasks: a history of tasks alone, such as a stress test without
// logging tasks records, is judged on exclusion, fairness, final states
// and drops.
type History struct {
	Tasks      []Task
	Events     []Event
	Dispatches []Dispatch
	Losses     []Loss
	Outages    []Outage
	// Capacities are the capacities of the counted resources, by name.
	Capacities map[string]int
	// QueueEntries counts the rows left in the per-resource queues
	// (stint_task_resources) at the end; they hold only incomplete tasks.
	QueueEntries int
	// Repairs counts what the scheduler's safety net repaired: the final
	// sweep's finds and the ones the nodes logged. Each is a scheduler bug.
	Repairs int
}

// Limits are the timings the checker allows.
type Limits struct {
	// MissingAfter: a worker silent this long is lost.
	MissingAfter time.Duration
	// Slack is added to MissingAfter for the heartbeat rounds that find a
	// lost worker and for scheduling delays.
	Slack time.Duration
	// InFlight: a statement a worker sent just before it was lost may
	// still commit this long after.
	InFlight time.Duration
	// CallTimeout bounds each store call of a worker (default
	// DefaultCallTimeout): a claim whose answer was lost in a fault is
	// given up at the first heartbeat after it.
	CallTimeout time.Duration
}

// DefaultCallTimeout is the default of Limits.CallTimeout, the workers'
// own default bound on a store call.
const DefaultCallTimeout = 10 * time.Second

// Kind names the invariant a violation breaks.
type Kind string

// The invariants of DESIGN §12, and their kinds of violation.
const (
	// Overlap: two conflicting tasks ran at the same time, by their
	// logs' enter and exit or by their started_at and finished_at.
	Overlap Kind = "overlap"
	// Overtake: a task started while an earlier-dispatched conflicting
	// task was incomplete.
	Overtake Kind = "overtake"
	// NotFinal: a task did not reach a final state.
	NotFinal Kind = "not-final"
	// Lost: a task the API acknowledged is not in the database.
	Lost Kind = "lost"
	// Duplicate: a task in the database that no acknowledged dispatch or
	// unknown-outcome try accounts for.
	Duplicate Kind = "duplicate"
	// RanTwice: a run logged under a claim its task does not record, an
	// attempt was entered by more than one run, or the last attempt was
	// run to its end by more than one.
	RanTwice Kind = "ran-twice"
	// Fence: a run logged outside the time its attempt held the task, or
	// the log contradicts the outcome (completed without an exit).
	Fence Kind = "fence"
	// NotDropped: an attempt of a task running on a killed or stopped
	// worker ended in another state than dropped or canceled.
	NotDropped Kind = "not-dropped"
	// LateDrop: an attempt on a lost worker ended after the missing
	// timeout and the slack.
	LateDrop Kind = "late-drop"
	// DroppedAlive: an attempt (a task's last, or an earlier one that was
	// retried) was dropped though its worker was neither killed nor
	// stopped, and no outage as long as the missing timeout explains it.
	DroppedAlive Kind = "dropped-alive"
	// Blocked: queue entries or repairs of the safety net remained: work
	// was blocked with its resources free.
	Blocked Kind = "blocked"
	// Reclaimed: a task's attempt (its claims) is not the number of runs
	// its record accounts for: its earlier attempts, and its current run
	// if it started. A claim takes only waiting tasks, and the only way
	// back to waiting from running is a retry, which records the run in
	// the attempts list; so any other claim should not have happened,
	// even when no run of it logged anything (a claim whose answer was
	// lost, say).
	Reclaimed Kind = "reclaimed"
	// CompletedTwice: a task completed more than once: an attempt of it
	// that completed was retried, a run of an attempt recorded failed ran
	// to its end (exit) and the task ran again, or a run of it entered
	// after the run that completed it.
	CompletedTwice Kind = "completed-twice"
	// TooManyAttempts: a task ran more attempts than its policy's
	// MaxAttempts, or was retried without a policy.
	TooManyAttempts Kind = "too-many-attempts"
	// BadRetry: a run was retried that must not be (an attempt that was
	// canceled, or dropped under a policy without RetryDropped), or the
	// attempts list is malformed (numbers out of order, times missing or
	// reversed).
	BadRetry Kind = "bad-retry"
	// EarlyRetry: an attempt started before its predecessor ended plus
	// the least delay its policy allows.
	EarlyRetry Kind = "early-retry"
	// NotRetried: a task ended failed (without NoRetry), or dropped under
	// a policy with RetryDropped, while its policy had attempts left.
	NotRetried Kind = "not-retried"
	// OverCapacity: more tasks held a counted resource at once than its
	// capacity, by their logs' enter and exit or by their started_at and
	// finished_at.
	OverCapacity Kind = "over-capacity"
)

// delayTolerance is how much earlier than its policy's least delay the
// checker lets an attempt start: the delay is computed in SQL, in
// microseconds, a few microseconds after the attempt's finished_at.
const delayTolerance = time.Millisecond

// Violation is one broken invariant, with a message naming the tasks and
// times involved.
type Violation struct {
	Kind Kind
	Msg  string
}

func (v Violation) String() string { return string(v.Kind) + ": " + v.Msg }

// Report is the checker's verdict and counts.
type Report struct {
	Tasks     int            // tasks in the database
	States    map[string]int // tasks per state
	Runs      int            // runs that logged enter
	Kills     int
	Stops     int
	Restarts  int
	LostTasks int // runs (attempts) of tasks on a worker when it was lost
	// RetriedTasks counts the tasks with earlier attempts; Retries the
	// earlier attempts (failed and dropped); LostRetried the dropped
	// attempts explained by a loss (run again by RetryDropped).
	RetriedTasks, Retries, FailedRetries, DroppedRetries, LostRetried int
	// LostCompletions counts the runs of dropped attempts that had
	// logged exit: their work was done, but their outcome lost with their
	// worker, so the task ran again (RetryDropped is for idempotent
	// tasks).
	LostCompletions int
	// Retried counts dispatch tries of unknown outcome; Duplicates the
	// tasks they created beside an acknowledged one.
	Retried, Duplicates int
	// Unacknowledged counts the logical tasks no try of which was
	// acknowledged (the check gave up on them).
	Unacknowledged int
	// OutageDrops counts tasks of live workers dropped during or after an
	// outage at least as long as the missing timeout: expected then.
	OutageDrops int
	// Cuts and Silences count the network faults (Loss kinds Cut and
	// Silence); ClaimsLost the tasks given up because the answer of their
	// claim was lost in a fault (ErrorKind claim-lost).
	Cuts, Silences, ClaimsLost int
	// Compared counts the pairs of conflicting intervals compared.
	Compared int
	// MaxOverlap is the longest overlap of conflicting intervals found
	// (0 when the run is correct).
	MaxOverlap time.Duration
	// Concurrency is, for each capacity of the counted resources, the
	// most tasks seen holding one such resource at once (by started_at and
	// finished_at): at most the capacity when the run is correct.
	Concurrency map[int]int
	Violations  []Violation
}

// Count returns the number of violations of kind k.
func (r *Report) Count(k Kind) int {
	n := 0
	for _, v := range r.Violations {
		if v.Kind == k {
			n++
		}
	}
	return n
}

// Summary is a one-line account of the counts.
func (r *Report) Summary() string {
	return fmt.Sprintf("tasks %d (completed %d, dropped %d, failed %d, other %d), runs %d, "+
		"retried tasks %d (earlier attempts %d: failed %d, dropped %d, of which lost with a worker %d; lost runs that had exited %d), "+
		"kills %d, stops %d, restarts %d, network cuts %d, silences %d, runs of lost workers %d, claims lost %d, "+
		"retried dispatches %d (duplicates %d), pairs compared %d, max overlap %v, %s, violations %d",
		r.Tasks, r.States["completed"], r.States["dropped"], r.States["failed"],
		r.Tasks-r.States["completed"]-r.States["dropped"]-r.States["failed"], r.Runs,
		r.RetriedTasks, r.Retries, r.FailedRetries, r.DroppedRetries, r.LostRetried, r.LostCompletions,
		r.Kills, r.Stops, r.Restarts, r.Cuts, r.Silences, r.LostTasks, r.ClaimsLost, r.Retried, r.Duplicates,
		r.Compared, r.MaxOverlap, r.concurrencyText(), len(r.Violations))
}

// concurrencyText says the most holders at once seen per capacity.
func (r *Report) concurrencyText() string {
	if len(r.Concurrency) == 0 {
		return "no counted resources"
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(r.Concurrency)) {
		parts = append(parts, fmt.Sprintf("capacity %d: at most %d at once", n, r.Concurrency[n]))
	}
	return strings.Join(parts, ", ")
}

// finalStates are the states nothing leaves (DESIGN §2).
var finalStates = map[string]bool{
	"completed": true, "failed": true, "canceled": true, "skipped": true, "dropped": true,
}

// never stands for the end of an interval that has not ended.
var never = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// run is one call of the task function, from its log.
type run struct {
	id                uuid.UUID
	task              uuid.UUID
	attempt           int
	enter, exit, fail time.Time // zero if not logged
}

// left is when the run left its critical section by its log (exit or
// fail), zero if it logged neither.
func (r *run) left() time.Time {
	if !r.exit.IsZero() {
		return r.exit
	}
	return r.fail
}

// hold is one attempt of a task by its record: an earlier one from its
// attempts list, or its current (last) one from the task's own columns.
type hold struct {
	t             *Task
	number        int
	state, worker string
	start, end    time.Time // end zero if the attempt did not end
	reason, kind  string
	current       bool
}

// endOr is when the attempt ended, or never.
func (h *hold) endOr() time.Time {
	if h.end.IsZero() {
		return never
	}
	return h.end
}

// holdsOf returns the attempts of t, oldest first: its attempts list, then
// its current run if it started.
func holdsOf(t *Task) []hold {
	out := make([]hold, 0, len(t.Attempts)+1)
	for _, a := range t.Attempts {
		out = append(out, hold{t: t, number: a.Number, state: a.State, worker: a.Worker, start: a.StartedAt,
			end: a.FinishedAt, reason: a.Reason, kind: a.ErrorKind})
	}
	if !t.StartedAt.IsZero() {
		out = append(out, hold{t: t, number: t.Attempt, state: t.State, worker: t.Worker, start: t.StartedAt,
			end: t.FinishedAt, reason: t.Reason, kind: t.ErrorKind, current: true})
	}
	return out
}

// Check judges a chaos run's history against DESIGN §12: conflicting tasks
// never overlapped, no task overtook an earlier conflicting one, every task
// reached a final state, none was lost or ran twice to completion, every
// task of a lost worker ended dropped within the timeout, and nothing
// remained blocked. It is a pure function of h and lim.
func Check(h History, lim Limits) Report {
	if lim.CallTimeout <= 0 {
		lim.CallTimeout = DefaultCallTimeout
	}
	c := checker{h: h, lim: lim, byID: make(map[uuid.UUID]*Task, len(h.Tasks)), holds: make(map[uuid.UUID][]hold, len(h.Tasks))}
	c.rep.States = map[string]int{}
	c.rep.Tasks = len(h.Tasks)
	for i := range h.Tasks {
		t := &h.Tasks[i]
		c.byID[t.ID] = t
		c.rep.States[t.State]++
		c.holds[t.ID] = holdsOf(t)
		if !finalStates[t.State] {
			c.fail(NotFinal, "task %s (seq %d) ended the run %s", t.ID, t.Seq, t.State)
		}
		c.attempts(t)
	}
	for _, l := range h.Losses {
		switch l.Kind {
		case Kill:
			c.rep.Kills++
		case Stop:
			c.rep.Stops++
		case Cut:
			c.rep.Cuts++
		case Silence:
			c.rep.Silences++
		}
	}
	c.rep.Restarts = len(h.Outages)
	if h.Dispatches != nil {
		c.dispatches()
	}
	var runs []*run
	if h.Events != nil {
		runs = c.runs()
	}
	c.overlaps(runs)
	c.overtakes()
	c.losses()
	if h.QueueEntries > 0 {
		c.fail(Blocked, "%d queue entries (stint_task_resources) remained at the end", h.QueueEntries)
	}
	if h.Repairs > 0 {
		c.fail(Blocked, "the scheduler's safety net repaired %d things: work was blocked with its resources free", h.Repairs)
	}
	return c.rep
}

type checker struct {
	h     History
	lim   Limits
	byID  map[uuid.UUID]*Task
	holds map[uuid.UUID][]hold // each task's attempts, by holdsOf
	rep   Report
}

// attempts checks a task's claims and attempts against its retry policy:
// each claim accounted for by an attempt, no more attempts than the
// policy allows, only failed and (with RetryDropped) dropped runs
// retried, each retry after its delay, and no retry left unused by a
// task that failed.
func (c *checker) attempts(t *Task) {
	n := len(t.Attempts)
	started := !t.StartedAt.IsZero()
	claims := n
	if started {
		claims++
	}
	if n > 0 {
		c.rep.RetriedTasks++
		c.rep.Retries += n
	}
	if (started || n > 0) && t.Attempt != claims {
		current := ""
		if started {
			current = " and its last run"
		}
		c.fail(Reclaimed, "task %s (seq %d, %s on %q) has attempt %d, but its record accounts for %d claims (%d earlier attempts%s): "+
			"it was claimed again without a retry", t.ID, t.Seq, t.State, t.Worker, t.Attempt, claims, n, current)
	}
	p := t.Retry
	switch {
	case n > 0 && p == nil:
		c.fail(TooManyAttempts, "task %s (seq %d) has %d earlier attempts, but no retry policy", t.ID, t.Seq, n)
	case p != nil && claims > p.MaxAttempts:
		c.fail(TooManyAttempts, "task %s (seq %d) ran %d attempts; its policy allows %d", t.ID, t.Seq, claims, p.MaxAttempts)
	}
	for i, a := range t.Attempts {
		if a.Number != i+1 {
			c.fail(BadRetry, "task %s: its attempt %d in the list is numbered %d", t.ID, i+1, a.Number)
		}
		switch a.State {
		case "failed":
			c.rep.FailedRetries++
		case "dropped":
			c.rep.DroppedRetries++
			if p != nil && !p.Dropped {
				c.fail(BadRetry, "task %s: attempt %d was dropped (%s) and retried, but its policy does not retry dropped runs", t.ID, a.Number, a.Reason)
			}
		case "completed":
			c.fail(CompletedTwice, "task %s: attempt %d completed at %s, and the task ran again", t.ID, a.Number, ts(a.FinishedAt))
		default:
			c.fail(BadRetry, "task %s: attempt %d ended %s and was retried: only failed and dropped runs are", t.ID, a.Number, a.State)
		}
		if a.StartedAt.IsZero() || a.FinishedAt.IsZero() || a.FinishedAt.Before(a.StartedAt) {
			c.fail(BadRetry, "task %s: attempt %d is recorded from %s to %s", t.ID, a.Number, ts(a.StartedAt), ts(a.FinishedAt))
			continue
		}
		next := t.StartedAt
		if i+1 < n {
			next = t.Attempts[i+1].StartedAt
		}
		if next.IsZero() {
			continue
		}
		var least time.Duration
		if p != nil {
			least = p.Delay(i+1, 1) // the shortest delay the jitter allows
		}
		if next.Before(a.FinishedAt.Add(least - delayTolerance)) {
			c.fail(EarlyRetry, "task %s: attempt %d started at %s, %v after attempt %d ended (%s at %s); the least delay is %v",
				t.ID, i+2, ts(next), next.Sub(a.FinishedAt), a.Number, a.State, ts(a.FinishedAt), least)
		}
	}
	if p != nil && started && claims < p.MaxAttempts && !t.NoRetry &&
		(t.State == "failed" || (t.State == "dropped" && p.Dropped)) {
		c.fail(NotRetried, "task %s (seq %d) ended %s at %s after %d of its %d attempts (%s): it should have run again",
			t.ID, t.Seq, t.State, ts(t.FinishedAt), claims, p.MaxAttempts, t.Reason)
	}
}

// holdOf returns the attempt of t that a run logged under the fencing
// token attempt belongs to.
func (c *checker) holdOf(t *Task, attempt int) (*hold, bool) {
	hs := c.holds[t.ID]
	// The current run first: the list's numbers may be wrong.
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].number == attempt {
			return &hs[i], true
		}
	}
	return nil, false
}

func (c *checker) fail(k Kind, format string, a ...any) {
	c.rep.Violations = append(c.rep.Violations, Violation{Kind: k, Msg: fmt.Sprintf(format, a...)})
}

// dispatches checks that every acknowledged task exists and that every
// other task is explained by a try of unknown outcome.
func (c *checker) dispatches() {
	unknown := map[string]int{} // per key: tries of unknown outcome left to explain tasks
	acked := map[uuid.UUID]bool{}
	for _, d := range c.h.Dispatches {
		unknown[d.Key] += d.Unknown
		c.rep.Retried += d.Unknown
		if d.ID == uuid.Nil {
			c.rep.Unacknowledged++
			continue
		}
		acked[d.ID] = true
		t, ok := c.byID[d.ID]
		switch {
		case !ok:
			c.fail(Lost, "task %s (key %s) was acknowledged but is not in the database", d.ID, d.Key)
		case t.Key != d.Key:
			c.fail(Lost, "task %s was acknowledged for key %s but has key %s", d.ID, d.Key, t.Key)
		}
	}
	for _, t := range c.h.Tasks {
		if acked[t.ID] {
			continue
		}
		if unknown[t.Key] == 0 {
			c.fail(Duplicate, "task %s (key %q, seq %d) was never acknowledged and no try of unknown outcome explains it", t.ID, t.Key, t.Seq)
			continue
		}
		unknown[t.Key]--
		c.rep.Duplicates++
	}
}

// runs gathers the log into runs and checks it against the tasks' attempts:
// each run under a claim its task recorded (an earlier attempt or its
// current one), within that attempt's [started_at, finished_at]; at most
// one run per attempt; a completed task's last attempt exited exactly
// once, and nothing of it ran after; no run of an attempt recorded failed
// ran to its end.
func (c *checker) runs() []*run {
	byRun := map[uuid.UUID]*run{}
	var runs []*run
	for _, e := range c.h.Events {
		r := byRun[e.Run]
		if r == nil {
			r = &run{id: e.Run, task: e.Task, attempt: e.Attempt}
			byRun[e.Run] = r
			runs = append(runs, r)
		}
		if r.task != e.Task || r.attempt != e.Attempt {
			c.fail(Fence, "run %s logged for task %s attempt %d and for task %s attempt %d", r.id, r.task, r.attempt, e.Task, e.Attempt)
			continue
		}
		switch e.Event {
		case "enter":
			r.enter = e.At
		case "exit":
			r.exit = e.At
		case "fail":
			r.fail = e.At
		default:
			c.fail(Fence, "run %s logged an unknown event %q", r.id, e.Event)
		}
	}
	type key struct {
		task    uuid.UUID
		attempt int
	}
	entered := map[key]int{}
	exited := map[uuid.UUID]int{}      // runs of the current attempt that exited
	completing := map[uuid.UUID]*run{} // the run that exited in the current attempt
	byTask := map[uuid.UUID][]*run{}   // runs that entered
	unmapped := map[uuid.UUID]bool{}   // tasks with a run of no recorded claim, reported already
	for _, r := range runs {
		t, ok := c.byID[r.task]
		if !ok {
			c.fail(Fence, "run %s logged for task %s, which is not in the database", r.id, r.task)
			continue
		}
		hd, ok := c.holdOf(t, r.attempt)
		if !ok {
			unmapped[t.ID] = true
			c.fail(RanTwice, "task %s was claimed more than once: a run logged under attempt %d, but the task's attempt is %d, "+
				"with %d earlier attempts recorded", t.ID, r.attempt, t.Attempt, len(t.Attempts))
			continue
		}
		if r.enter.IsZero() {
			c.fail(Fence, "run %s of task %s logged exit without enter", r.id, t.ID)
			continue
		}
		entered[key{t.ID, r.attempt}]++
		byTask[t.ID] = append(byTask[t.ID], r)
		c.rep.Runs++
		if r.enter.Before(hd.start) {
			c.fail(Fence, "run %s of task %s entered at %s, before its attempt %d started (%s)", r.id, t.ID, ts(r.enter), r.attempt, ts(hd.start))
		}
		last := r.enter
		for _, left := range []time.Time{r.exit, r.fail} {
			if left.IsZero() {
				continue
			}
			last = maxTime(last, left)
			if left.Before(r.enter) {
				c.fail(Fence, "run %s of task %s left at %s, before it entered at %s", r.id, t.ID, ts(left), ts(r.enter))
			}
		}
		if !r.exit.IsZero() && !r.fail.IsZero() {
			c.fail(Fence, "run %s of task %s logged both exit and fail", r.id, t.ID)
		}
		if !hd.end.IsZero() && last.After(hd.end) {
			c.fail(Fence, "run %s of task %s logged at %s, after its attempt %d ended %s at %s: the fence let a lost run write",
				r.id, t.ID, ts(last), r.attempt, hd.state, ts(hd.end))
		}
		if !r.fail.IsZero() && hd.state == "completed" {
			c.fail(Fence, "run %s of task %s logged fail, but its attempt %d completed", r.id, t.ID, r.attempt)
		}
		if r.exit.IsZero() {
			continue
		}
		switch {
		case hd.current:
			exited[t.ID]++
			completing[t.ID] = r
		case hd.state == "dropped":
			// Its work was done, its outcome lost with its worker.
			c.rep.LostCompletions++
		default:
			c.fail(CompletedTwice, "run %s of task %s ran to its end (exit at %s) in attempt %d, which is recorded %s, and the task ran again",
				r.id, t.ID, ts(r.exit), r.attempt, hd.state)
		}
	}
	for _, t := range c.h.Tasks {
		for _, hd := range c.holds[t.ID] {
			if n := entered[key{t.ID, hd.number}]; n > 1 {
				c.fail(RanTwice, "task %s was entered by %d runs in attempt %d", t.ID, n, hd.number)
			}
		}
		if n := exited[t.ID]; n > 1 {
			c.fail(RanTwice, "task %s was run to its end %d times", t.ID, n)
		}
		if t.State != "completed" {
			continue
		}
		done := completing[t.ID]
		if done == nil && unmapped[t.ID] {
			continue
		}
		if done == nil {
			c.fail(Fence, "task %s completed, but no run of its last attempt logged exit", t.ID)
			continue
		}
		for _, r := range byTask[t.ID] {
			if r != done && r.enter.After(done.exit) {
				c.fail(CompletedTwice, "task %s: run %s (attempt %d) entered at %s, after run %s (attempt %d) completed the task at %s",
					t.ID, r.id, r.attempt, ts(r.enter), done.id, done.attempt, ts(done.exit))
			}
		}
	}
	return runs
}

// interval is a time a task held a resource.
type interval struct {
	task       uuid.UUID
	seq        int64
	exclusive  bool
	start, end time.Time
}

// holds reports whether t holds res, and whether exclusively.
func holds(t *Task, res string) (held, exclusive bool) {
	return scheduling.Resources{Exclusive: t.Exclusive, Shared: t.Shared}.Holds(res)
}

// endOf is when a task stopped being incomplete: never if it did not.
func endOf(t *Task) time.Time {
	if t.FinishedAt.IsZero() {
		return never
	}
	return t.FinishedAt
}

// resources returns every resource any task holds, sorted.
func (c *checker) resources() []string {
	seen := map[string]bool{}
	for _, t := range c.h.Tasks {
		for _, r := range t.Exclusive {
			seen[r] = true
		}
		for _, r := range t.Shared {
			seen[r] = true
		}
	}
	out := make([]string, 0, len(seen))
	for r := range seen {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// overlaps checks, per resource, that no two conflicting holders' intervals
// overlap: both the runs' logged [enter, exit] (or [enter, fail], or
// [enter, the end of its attempt] for a run that logged neither) and the
// attempts' recorded [started_at, finished_at], every earlier attempt of a
// retried task as well as its current one.
func (c *checker) overlaps(runs []*run) {
	for _, res := range c.resources() {
		var logged, recorded []interval
		for _, r := range runs {
			t, ok := c.byID[r.task]
			if !ok || r.enter.IsZero() {
				continue
			}
			held, excl := holds(t, res)
			if !held {
				continue
			}
			end := r.left()
			if end.IsZero() {
				end = endOf(t)
				if hd, ok := c.holdOf(t, r.attempt); ok {
					end = hd.endOr()
				}
			}
			logged = append(logged, interval{task: t.ID, seq: t.Seq, exclusive: excl, start: r.enter, end: end})
		}
		for i := range c.h.Tasks {
			t := &c.h.Tasks[i]
			held, excl := holds(t, res)
			if !held {
				continue
			}
			for _, hd := range c.holds[t.ID] {
				recorded = append(recorded, interval{task: t.ID, seq: t.Seq, exclusive: excl, start: hd.start, end: hd.endOr()})
			}
		}
		c.sweep(res, "logged enter/exit", logged)
		c.sweep(res, "started_at/finished_at", recorded)
		if n, ok := c.h.Capacities[res]; ok {
			c.within(res, "logged enter/exit", logged, n)
			most := c.within(res, "started_at/finished_at", recorded, n)
			if c.rep.Concurrency == nil {
				c.rep.Concurrency = map[int]int{}
			}
			c.rep.Concurrency[n] = max(c.rep.Concurrency[n], most)
		}
	}
}

// within reports every moment at which more intervals of one resource of
// capacity n were open than n (intervals that only touch are not open
// together), and returns the most open at once.
func (c *checker) within(res, source string, ivs []interval, n int) int {
	slices.SortFunc(ivs, func(a, b interval) int { return a.start.Compare(b.start) })
	var active []interval
	most := 0
	for _, iv := range ivs {
		open := active[:0]
		for _, a := range active {
			if a.end.After(iv.start) && a.task != iv.task {
				open = append(open, a)
			}
		}
		active = append(open, iv)
		exclusive := 0
		for _, a := range active {
			if a.exclusive {
				exclusive++
			}
		}
		most = max(most, len(active))
		if !scheduling.Fits(len(active), exclusive, n) && exclusive == 0 { // exclusive conflicts are Overlaps
			c.fail(OverCapacity, "%s: by %s, %d tasks held it at %s, capacity %d: %s",
				res, source, len(active), ts(iv.start), n, intervalTasks(active))
		}
	}
	return most
}

// intervalTasks names the tasks of intervals.
func intervalTasks(ivs []interval) string {
	names := make([]string, len(ivs))
	for i, iv := range ivs {
		names[i] = fmt.Sprintf("%s (seq %d) [%s, %s]", iv.task, iv.seq, ts(iv.start), ts(iv.end))
	}
	return strings.Join(names, ", ")
}

// sweep reports every pair of conflicting intervals of one resource that
// overlap. Intervals that only touch do not overlap.
func (c *checker) sweep(res, source string, ivs []interval) {
	slices.SortFunc(ivs, func(a, b interval) int { return a.start.Compare(b.start) })
	var active []interval
	for _, iv := range ivs {
		open := active[:0]
		for _, a := range active {
			if a.end.After(iv.start) {
				open = append(open, a)
			}
		}
		active = open
		for _, a := range active {
			if a.task == iv.task || scheduling.Compatible(a.exclusive, iv.exclusive) {
				continue
			}
			c.rep.Compared++
			d := minTime(a.end, iv.end).Sub(iv.start)
			c.rep.MaxOverlap = max(c.rep.MaxOverlap, d)
			c.fail(Overlap, "%s: by %s, %s (seq %d, %s) [%s, %s] and %s (seq %d, %s) [%s, %s] overlap by %v",
				res, source, a.task, a.seq, mode(a.exclusive), ts(a.start), ts(a.end),
				iv.task, iv.seq, mode(iv.exclusive), ts(iv.start), ts(iv.end), d)
		}
		active = append(active, iv)
	}
}

// overtakes checks, per resource in dispatch order, that no task started
// before every earlier conflicting task had ended: an exclusive holder
// waits for all earlier holders, a shared one for the earlier exclusive
// ones.
func (c *checker) overtakes() {
	for _, res := range c.resources() {
		var holders []*Task
		for i := range c.h.Tasks {
			if held, _ := holds(&c.h.Tasks[i], res); held {
				holders = append(holders, &c.h.Tasks[i])
			}
		}
		slices.SortFunc(holders, func(a, b *Task) int { return cmp.Compare(a.Seq, b.Seq) })
		var lastAll, lastExcl *Task // the earlier holder ending last, of all and of the exclusive ones
		capacity, counted := c.h.Capacities[res]
		var earlierEnds []time.Time // of the earlier holders, on a counted resource
		for _, t := range holders {
			_, excl := holds(t, res)
			// The earlier holders it is not compatible with: all of them
			// for an exclusive holder, the exclusive ones for a shared one.
			blocker := lastExcl
			if !scheduling.Compatible(excl, false) {
				blocker = lastAll
			}
			if blocker != nil && !t.StartedAt.IsZero() {
				c.rep.Compared++
				if end := endOf(blocker); t.StartedAt.Before(end) {
					_, bx := holds(blocker, res)
					c.fail(Overtake, "%s: %s (seq %d, %s) started at %s, before earlier %s (seq %d, %s) ended at %s",
						res, t.ID, t.Seq, mode(excl), ts(t.StartedAt), blocker.ID, blocker.Seq, mode(bx), ts(end))
				}
			}
			if counted && !excl && !t.StartedAt.IsZero() {
				// A shared holder of a counted resource waits, too, while
				// capacity earlier holders are incomplete.
				c.rep.Compared++
				incomplete := 0
				for _, end := range earlierEnds {
					if t.StartedAt.Before(end) {
						incomplete++
					}
				}
				if incomplete >= capacity {
					c.fail(Overtake, "%s: %s (seq %d, shared) started at %s while %d earlier holders were incomplete, capacity %d",
						res, t.ID, t.Seq, ts(t.StartedAt), incomplete, capacity)
				}
			}
			if t.State == "scheduled" {
				continue // it holds no place in the queues until it is due
			}
			if counted {
				earlierEnds = append(earlierEnds, endOf(t))
			}
			if lastAll == nil || endOf(t).After(endOf(lastAll)) {
				lastAll = t
			}
			if excl && (lastExcl == nil || endOf(t).After(endOf(lastExcl))) {
				lastExcl = t
			}
		}
	}
}

// losses checks that the attempts running on each killed or stopped worker
// ended dropped (or canceled) within MissingAfter + Slack of the signal, a
// deadline pushed back by the outages that overlap it; and that no other
// attempt was dropped, but for the outages as long as the missing timeout.
// Every attempt is judged so: a retried task's earlier ones (a dropped one
// of a RetryDropped task is in its attempts list) as its current one.
func (c *checker) losses() {
	type key struct {
		task   uuid.UUID
		number int
	}
	explained := map[key]bool{}
	for _, l := range c.h.Losses {
		cutoff := l.After.Add(c.lim.InFlight)
		deadline := l.After.Add(c.lim.MissingAfter + c.lim.Slack)
		for _, o := range c.h.Outages {
			if o.From.Before(deadline) && o.To.After(l.Before) {
				deadline = deadline.Add(o.To.Sub(o.From) + c.lim.Slack)
			}
		}
		for i := range c.h.Tasks {
			t := &c.h.Tasks[i]
			for _, hd := range c.holds[t.ID] {
				if hd.worker != l.Worker || hd.start.IsZero() {
					continue
				}
				if (l.Kind == Stop || l.Kind == Silence) && !hd.start.Before(l.Resumed) {
					continue // claimed after it was resumed
				}
				if l.Kind == Cut && hd.start.After(l.After.Add(c.lim.InFlight)) {
					continue // claimed after the cut, on a new connection
				}
				if !hd.end.IsZero() && !hd.end.After(l.Before) {
					continue // ended before the loss
				}
				lost := hd.state == "dropped" || hd.state == "canceled"
				if !lost && !hd.end.IsZero() && !hd.end.After(cutoff) {
					continue // its outcome was in flight when the worker was lost
				}
				if l.Kind == Cut && !lost {
					continue // the worker lives on: its run may well have completed
				}
				c.rep.LostTasks++
				explained[key{t.ID, hd.number}] = true
				if hd.kind == ClaimLostKind {
					c.rep.ClaimsLost++
				}
				if !hd.current && lost {
					c.rep.LostRetried++
				}
				what := "ended"
				if !hd.current {
					what = fmt.Sprintf("its attempt %d (retried) ended", hd.number)
				}
				switch {
				case !lost:
					c.fail(NotDropped, "task %s ran on %s, %s at %s, and %s %s at %s", t.ID, l.Worker, verb(l.Kind), ts(l.Before), what, hd.state, ts(hd.end))
				case hd.end.After(deadline):
					c.fail(LateDrop, "task %s ran on %s, %s at %s, and %s %s at %s, %v later; the deadline was %s (%s)",
						t.ID, l.Worker, verb(l.Kind), ts(l.Before), what, hd.state, ts(hd.end), hd.end.Sub(l.Before).Round(time.Millisecond), ts(deadline), hd.reason)
				}
			}
		}
	}
	for i := range c.h.Tasks {
		t := &c.h.Tasks[i]
		for _, hd := range c.holds[t.ID] {
			if hd.state != "dropped" || explained[key{t.ID, hd.number}] {
				continue
			}
			if c.longOutageBefore(hd.end) {
				c.rep.OutageDrops++
				continue
			}
			if hd.kind == ClaimLostKind && c.claimLostInOutage(hd.start, hd.end) {
				c.rep.ClaimsLost++
				continue
			}
			what := "was dropped"
			if !hd.current {
				what = fmt.Sprintf("was dropped in attempt %d (and retried)", hd.number)
			}
			c.fail(DroppedAlive, "task %s %s at %s, but its worker %s was neither killed nor stopped (%s)", t.ID, what, ts(hd.end), hd.worker, hd.reason)
		}
	}
}

// claimLostInOutage reports whether an attempt given up because its
// claim's answer was lost was claimed (at started) during an outage of
// PostgreSQL (the claim committed just before the server went down, its
// answer lost with the connection) and given up (at ended) within the call
// timeout, the missing timeout and the slack after the outage.
func (c *checker) claimLostInOutage(started, ended time.Time) bool {
	for _, o := range c.h.Outages {
		if !started.Before(o.From.Add(-c.lim.InFlight)) && !started.After(o.To) &&
			!ended.After(o.To.Add(c.lim.CallTimeout+c.lim.MissingAfter+c.lim.Slack)) {
			return true
		}
	}
	return false
}

// longOutageBefore reports whether an outage at least as long as the
// missing timeout ended shortly before at: a live worker may then have been
// found silent.
func (c *checker) longOutageBefore(at time.Time) bool {
	for _, o := range c.h.Outages {
		if o.To.Sub(o.From) >= c.lim.MissingAfter && !at.Before(o.From) &&
			!at.After(o.To.Add(c.lim.MissingAfter+c.lim.Slack)) {
			return true
		}
	}
	return false
}

func verb(kind string) string {
	switch kind {
	case Stop:
		return "stopped"
	case Cut:
		return "cut off"
	case Silence:
		return "silenced"
	}
	return "killed"
}

func mode(exclusive bool) string {
	if exclusive {
		return "exclusive"
	}
	return "shared"
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// ts formats a database time for messages, with microseconds.
func ts(t time.Time) string {
	switch {
	case t.IsZero():
		return "-"
	case t.Equal(never):
		return "never"
	}
	return t.UTC().Format("15:04:05.000000")
}
