package chaos

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/scheduling"
)

// Task is a task as the database recorded it at the end of a chaos run
// (a row of stint_tasks).
type Task struct {
	ID      uuid.UUID
	Seq     int64  // dispatch order
	Key     string // the args' key: the logical task the check dispatched
	State   string
	Attempt int // the fencing token of its last claim; 0 if never claimed
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
}

// Event is a row of chaos_log: a run of a task logged that it entered or
// left its critical section, on the database's clock, fenced by its
// attempt.
type Event struct {
	Task    uuid.UUID
	Attempt int
	Run     uuid.UUID // one per call of the task function
	Event   string    // "enter" or "exit"
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
	// RanTwice: a task was claimed more than once, entered by more than
	// one run, or completed by more than one.
	RanTwice Kind = "ran-twice"
	// Fence: a run logged outside the time its attempt held the task, or
	// the log contradicts the outcome (completed without an exit).
	Fence Kind = "fence"
	// NotDropped: a task running on a killed or stopped worker ended in
	// another state than dropped or canceled.
	NotDropped Kind = "not-dropped"
	// LateDrop: a task of a lost worker ended after the missing timeout
	// and the slack.
	LateDrop Kind = "late-drop"
	// DroppedAlive: a task was dropped though its worker was neither
	// killed nor stopped, and no outage as long as the missing timeout
	// explains it.
	DroppedAlive Kind = "dropped-alive"
	// Blocked: queue entries or repairs of the safety net remained: work
	// was blocked with its resources free.
	Blocked Kind = "blocked"
	// Reclaimed: a started task's attempt is not 1, so it was claimed
	// more than once. Nothing in Stint legitimately claims a task twice
	// today: a claim takes only waiting tasks, and no transition leads a
	// task that started back to waiting (retries, running→scheduled, are
	// not built yet; when they are, the claims they explain are to be
	// allowed here). So any other attempt is a claim that should not have
	// happened, even when no run of the earlier claim logged anything (a
	// claim whose answer was lost, say).
	Reclaimed Kind = "reclaimed"
)

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
	LostTasks int // tasks running on a worker when it was killed or stopped
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
	Violations []Violation
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
	return fmt.Sprintf("tasks %d (completed %d, dropped %d, other %d), runs %d, kills %d, stops %d, restarts %d, "+
		"network cuts %d, silences %d, tasks of lost workers %d, claims lost %d, retried dispatches %d (duplicates %d), "+
		"pairs compared %d, max overlap %v, violations %d",
		r.Tasks, r.States["completed"], r.States["dropped"], r.Tasks-r.States["completed"]-r.States["dropped"],
		r.Runs, r.Kills, r.Stops, r.Restarts, r.Cuts, r.Silences, r.LostTasks, r.ClaimsLost, r.Retried, r.Duplicates,
		r.Compared, r.MaxOverlap, len(r.Violations))
}

// finalStates are the states nothing leaves (DESIGN §2).
var finalStates = map[string]bool{
	"completed": true, "failed": true, "canceled": true, "skipped": true, "dropped": true,
}

// never stands for the end of an interval that has not ended.
var never = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// run is one call of the task function, from its log.
type run struct {
	id          uuid.UUID
	task        uuid.UUID
	attempt     int
	enter, exit time.Time // zero if not logged
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
	c := checker{h: h, lim: lim, byID: make(map[uuid.UUID]*Task, len(h.Tasks))}
	c.rep.States = map[string]int{}
	c.rep.Tasks = len(h.Tasks)
	for i := range h.Tasks {
		t := &h.Tasks[i]
		c.byID[t.ID] = t
		c.rep.States[t.State]++
		if !finalStates[t.State] {
			c.fail(NotFinal, "task %s (seq %d) ended the run %s", t.ID, t.Seq, t.State)
		}
		if !t.StartedAt.IsZero() && t.Attempt != 1 {
			c.fail(Reclaimed, "task %s (seq %d, %s on %q) started with attempt %d: it was claimed %d times, and nothing claims a task twice",
				t.ID, t.Seq, t.State, t.Worker, t.Attempt, t.Attempt)
		}
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
	h    History
	lim  Limits
	byID map[uuid.UUID]*Task
	rep  Report
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

// runs gathers the log into runs and checks it against the tasks: each
// run within its task's [started_at, finished_at], under its task's
// attempt; at most one run per task; a completed task exited exactly once.
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
		default:
			c.fail(Fence, "run %s logged an unknown event %q", r.id, e.Event)
		}
	}
	entered := map[uuid.UUID]int{}
	exited := map[uuid.UUID]int{}
	for _, r := range runs {
		t, ok := c.byID[r.task]
		if !ok {
			c.fail(Fence, "run %s logged for task %s, which is not in the database", r.id, r.task)
			continue
		}
		if r.attempt != t.Attempt {
			c.fail(RanTwice, "task %s was claimed more than once: a run logged under attempt %d, the task's attempt is %d", t.ID, r.attempt, t.Attempt)
		}
		if r.enter.IsZero() {
			c.fail(Fence, "run %s of task %s logged exit without enter", r.id, t.ID)
			continue
		}
		entered[t.ID]++
		c.rep.Runs++
		if t.StartedAt.IsZero() || r.enter.Before(t.StartedAt) {
			c.fail(Fence, "run %s of task %s entered at %s, before the task started (%s)", r.id, t.ID, ts(r.enter), ts(t.StartedAt))
		}
		last := r.enter
		if !r.exit.IsZero() {
			exited[t.ID]++
			last = r.exit
			if r.exit.Before(r.enter) {
				c.fail(Fence, "run %s of task %s exited at %s, before it entered at %s", r.id, t.ID, ts(r.exit), ts(r.enter))
			}
		}
		if !t.FinishedAt.IsZero() && last.After(t.FinishedAt) {
			c.fail(Fence, "run %s of task %s logged at %s, after the task ended %s at %s: the fence let a lost run write",
				r.id, t.ID, ts(last), t.State, ts(t.FinishedAt))
		}
	}
	for _, t := range c.h.Tasks {
		if n := entered[t.ID]; n > 1 {
			c.fail(RanTwice, "task %s was entered by %d runs", t.ID, n)
		}
		if n := exited[t.ID]; n > 1 {
			c.fail(RanTwice, "task %s was run to its end %d times", t.ID, n)
		}
		if t.State == "completed" && exited[t.ID] == 0 {
			c.fail(Fence, "task %s completed, but no run of it logged exit", t.ID)
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
// overlap: both the runs' logged [enter, exit] (or [enter, finished_at]
// for a run that did not log exit) and the tasks' [started_at,
// finished_at].
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
			end := r.exit
			if end.IsZero() {
				end = endOf(t)
			}
			logged = append(logged, interval{task: t.ID, seq: t.Seq, exclusive: excl, start: r.enter, end: end})
		}
		for i := range c.h.Tasks {
			t := &c.h.Tasks[i]
			held, excl := holds(t, res)
			if !held || t.StartedAt.IsZero() {
				continue
			}
			recorded = append(recorded, interval{task: t.ID, seq: t.Seq, exclusive: excl, start: t.StartedAt, end: endOf(t)})
		}
		c.sweep(res, "logged enter/exit", logged)
		c.sweep(res, "started_at/finished_at", recorded)
	}
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
			if lastAll == nil || endOf(t).After(endOf(lastAll)) {
				lastAll = t
			}
			if excl && (lastExcl == nil || endOf(t).After(endOf(lastExcl))) {
				lastExcl = t
			}
		}
	}
}

// losses checks that the tasks running on each killed or stopped worker
// ended dropped (or canceled) within MissingAfter + Slack of the signal, a
// deadline pushed back by the outages that overlap it; and that no other
// task was dropped, but for the outages as long as the missing timeout.
func (c *checker) losses() {
	explained := map[uuid.UUID]bool{}
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
			if t.Worker != l.Worker || t.StartedAt.IsZero() {
				continue
			}
			if (l.Kind == Stop || l.Kind == Silence) && !t.StartedAt.Before(l.Resumed) {
				continue // claimed after it was resumed
			}
			if l.Kind == Cut && t.StartedAt.After(l.After.Add(c.lim.InFlight)) {
				continue // claimed after the cut, on a new connection
			}
			if !t.FinishedAt.IsZero() && !t.FinishedAt.After(l.Before) {
				continue // ended before the loss
			}
			lost := t.State == "dropped" || t.State == "canceled"
			if !lost && !t.FinishedAt.IsZero() && !t.FinishedAt.After(cutoff) {
				continue // its outcome was in flight when the worker was lost
			}
			if l.Kind == Cut && !lost {
				continue // the worker lives on: its run may well have completed
			}
			c.rep.LostTasks++
			explained[t.ID] = true
			if t.ErrorKind == ClaimLostKind {
				c.rep.ClaimsLost++
			}
			switch {
			case !lost:
				c.fail(NotDropped, "task %s ran on %s, %s at %s, and ended %s at %s", t.ID, l.Worker, verb(l.Kind), ts(l.Before), t.State, ts(t.FinishedAt))
			case t.FinishedAt.After(deadline):
				c.fail(LateDrop, "task %s ran on %s, %s at %s, and ended %s at %s, %v later; the deadline was %s (%s)",
					t.ID, l.Worker, verb(l.Kind), ts(l.Before), t.State, ts(t.FinishedAt), t.FinishedAt.Sub(l.Before).Round(time.Millisecond), ts(deadline), t.Reason)
			}
		}
	}
	for _, t := range c.h.Tasks {
		if t.State != "dropped" || explained[t.ID] {
			continue
		}
		if c.longOutageBefore(t.FinishedAt) {
			c.rep.OutageDrops++
			continue
		}
		if t.ErrorKind == ClaimLostKind && c.claimLostInOutage(t) {
			c.rep.ClaimsLost++
			continue
		}
		c.fail(DroppedAlive, "task %s was dropped at %s, but its worker %s was neither killed nor stopped (%s)", t.ID, ts(t.FinishedAt), t.Worker, t.Reason)
	}
}

// claimLostInOutage reports whether a task given up because its claim's
// answer was lost was claimed during an outage of PostgreSQL (the claim
// committed just before the server went down, its answer lost with the
// connection) and given up within the call timeout, the missing timeout
// and the slack after the outage.
func (c *checker) claimLostInOutage(t Task) bool {
	for _, o := range c.h.Outages {
		if !t.StartedAt.Before(o.From.Add(-c.lim.InFlight)) && !t.StartedAt.After(o.To) &&
			!t.FinishedAt.After(o.To.Add(c.lim.CallTimeout+c.lim.MissingAfter+c.lim.Slack)) {
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
