package chaos

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

var testLimits = Limits{MissingAfter: 3 * time.Second, Slack: 2 * time.Second, InFlight: 100 * time.Millisecond}

// history is a correct chaos run, as built by correctHistory, with its
// tasks by letter for the cases to change.
type history struct {
	History
	ids map[string]uuid.UUID
}

// task returns the task named by letter.
func (h *history) task(letter string) *Task {
	for i := range h.Tasks {
		if h.Tasks[i].ID == h.ids[letter] {
			return &h.Tasks[i]
		}
	}
	panic("no task " + letter)
}

// event returns the event of the first run of the task named by letter.
func (h *history) event(letter, event string) *Event {
	for i := range h.Events {
		if e := &h.Events[i]; e.Task == h.ids[letter] && e.Event == event {
			return e
		}
	}
	panic("no " + event + " of " + letter)
}

// removeEvent deletes the event of the task named by letter.
func (h *history) removeEvent(letter, event string) {
	h.Events = slices.DeleteFunc(h.Events, func(e Event) bool { return e.Task == h.ids[letter] && e.Event == event })
}

// addTask adds a completed task with a run and no resources, not
// acknowledged, and names it by key (the last one added, if several share
// a key).
func (h *history) addTask(key string, start, end int) uuid.UUID {
	id := uuid.New()
	h.Tasks = append(h.Tasks, Task{ID: id, Seq: int64(len(h.Tasks)+1) * 10, Key: key, State: "completed", Attempt: 1,
		Worker: "w1", StartedAt: at(start), FinishedAt: at(end)})
	h.ids[key] = id
	r := uuid.New()
	h.Events = append(h.Events, Event{Task: id, Attempt: 1, Run: r, Event: "enter", At: at(start + 1)},
		Event{Task: id, Attempt: 1, Run: r, Event: "exit", At: at(end - 1)})
	return id
}

// correctHistory: on resource r, A exclusive, then B and C shared together
// (C also holds s), then D exclusive, running on worker wk when it was
// killed and dropped 2.5 s later; E holds nothing.
func correctHistory() *history {
	h := &history{ids: map[string]uuid.UUID{}}
	add := func(letter string, seq int64, excl, shared []string, state, worker string, start, end, enter, exit int) {
		id := uuid.New()
		h.ids[letter] = id
		h.Tasks = append(h.Tasks, Task{ID: id, Seq: seq, Key: letter, State: state, Attempt: 1, Worker: worker,
			Exclusive: excl, Shared: shared, StartedAt: at(start), FinishedAt: at(end)})
		run := uuid.New()
		h.Events = append(h.Events, Event{Task: id, Attempt: 1, Run: run, Event: "enter", At: at(enter)})
		if exit > 0 {
			h.Events = append(h.Events, Event{Task: id, Attempt: 1, Run: run, Event: "exit", At: at(exit)})
		}
		h.Dispatches = append(h.Dispatches, Dispatch{Key: letter, ID: id})
	}
	r, s := []string{"r"}, []string{"s"}
	add("A", 10, r, nil, "completed", "w1", 0, 10, 1, 9)
	add("B", 20, nil, r, "completed", "w2", 11, 20, 12, 19)
	add("C", 30, s, r, "completed", "w1", 12, 25, 13, 24)
	add("D", 40, r, nil, "dropped", "wk", 30, 3500, 31, 0)
	add("E", 50, nil, nil, "completed", "w1", 40, 50, 41, 49)
	h.Losses = []Loss{{Worker: "wk", Kind: Kill, Before: at(1000), After: at(1001)}}
	return h
}

// TestCheckTasksOnly judges a history of tasks alone: the log and the
// dispatch accounting are skipped, the records are still checked.
func TestCheckTasksOnly(t *testing.T) {
	h := correctHistory()
	h.Events, h.Dispatches = nil, nil
	if rep := Check(h.History, testLimits); len(rep.Violations) > 0 || rep.Runs != 0 {
		t.Fatalf("a correct history of tasks alone: %v, %d runs", rep.Violations, rep.Runs)
	}
	h.task("B").StartedAt = at(5)
	rep := Check(h.History, testLimits)
	if rep.Count(Overlap) == 0 || rep.Count(Overtake) == 0 {
		t.Fatalf("an overlap in a history of tasks alone: %v", rep.Violations)
	}
}

func TestCheckCorrectHistory(t *testing.T) {
	h := correctHistory()
	rep := Check(h.History, testLimits)
	if len(rep.Violations) > 0 {
		t.Fatalf("violations in a correct history: %v", rep.Violations)
	}
	want := map[string]int{"completed": 4, "dropped": 1}
	if rep.Tasks != 5 || !maps.Equal(rep.States, want) || rep.Runs != 5 || rep.Kills != 1 ||
		rep.LostTasks != 1 || rep.MaxOverlap != 0 || rep.Compared == 0 {
		t.Fatalf("counts: %+v", rep)
	}
	t.Log(rep.Summary())
	h.Capacities = map[string]int{"r": 3}
	if rep := Check(h.History, testLimits); len(rep.Violations) > 0 || rep.Concurrency[3] != 2 {
		t.Fatalf("with capacity 3 on r: concurrency %v, violations %v", rep.Concurrency, rep.Violations)
	}
}

// TestCheckCatchesViolations breaks a correct history in each of the ways
// DESIGN §12 forbids and expects the checker to name exactly the invariants
// broken: a checker that cannot fail would let the chaos test pass.
func TestCheckCatchesViolations(t *testing.T) {
	cases := []struct {
		name   string
		change func(h *history)
		want   []Kind
	}{
		{"correct", func(*history) {}, nil},
		{"shared holder starts under an exclusive one", func(h *history) {
			b := h.task("B")
			b.StartedAt = at(5)
			h.event("B", "enter").At = at(6)
		}, []Kind{Overlap, Overtake}},
		{"exclusive holder starts under shared ones", func(h *history) {
			d := h.task("D")
			d.StartedAt = at(22)
			h.event("D", "enter").At = at(23)
		}, []Kind{Overlap, Overtake}},
		{"logs overlap though the records do not: the fence failed", func(h *history) {
			h.event("A", "exit").At = at(15)
		}, []Kind{Overlap, Fence}},
		{"overtake without overlap", func(h *history) {
			h.task("A").Seq, h.task("B").Seq = 20, 10
		}, []Kind{Overtake}},
		{"two shared holders together", func(h *history) {
			// B and C already overlap on r, both shared; C's exclusive s is
			// held by nobody else. Make a third shared holder join them.
			id := h.addTask("F", 14, 18)
			h.task("F").Shared = []string{"r"}
			h.Dispatches = append(h.Dispatches, Dispatch{Key: "F", ID: id})
			h.task("F").Seq = 35 // after C, before D
		}, nil},
		{"two shared holders within capacity 2", func(h *history) {
			h.Capacities = map[string]int{"r": 2}
		}, nil},
		{"two shared holders over capacity 1", func(h *history) {
			h.Capacities = map[string]int{"r": 1}
		}, []Kind{OverCapacity, Overtake}},
		{"a third shared holder over capacity 2", func(h *history) {
			h.Capacities = map[string]int{"r": 2}
			id := h.addTask("F", 14, 18)
			h.task("F").Shared = []string{"r"}
			h.Dispatches = append(h.Dispatches, Dispatch{Key: "F", ID: id})
			h.task("F").Seq = 35
		}, []Kind{OverCapacity, Overtake}},
		{"a third shared holder after one left, at capacity 2", func(h *history) {
			h.Capacities = map[string]int{"r": 2}
			id := h.addTask("F", 21, 24)
			h.task("F").Shared = []string{"r"}
			h.Dispatches = append(h.Dispatches, Dispatch{Key: "F", ID: id})
			h.task("F").Seq = 35
		}, nil},
		{"a task not final", func(h *history) {
			e := h.task("E")
			e.State, e.FinishedAt = "running", time.Time{}
			h.removeEvent("E", "exit")
		}, []Kind{NotFinal}},
		{"a task ran past an earlier conflicting one still waiting", func(h *history) {
			id := uuid.New()
			h.Tasks = append(h.Tasks, Task{ID: id, Seq: 5, Key: "W", State: "waiting", Exclusive: []string{"r"}})
			h.Dispatches = append(h.Dispatches, Dispatch{Key: "W", ID: id})
		}, []Kind{NotFinal, Overtake}},
		{"an acknowledged task lost", func(h *history) {
			h.Dispatches = append(h.Dispatches, Dispatch{Key: "Z", ID: uuid.New()})
		}, []Kind{Lost}},
		{"a task nobody dispatched", func(h *history) {
			h.addTask("E", 60, 70)
		}, []Kind{Duplicate}},
		{"a second task explained by a try of unknown outcome", func(h *history) {
			h.addTask("E", 60, 70)
			h.Dispatches[4].Unknown = 1
		}, nil},
		{"ran twice to completion", func(h *history) {
			r := uuid.New()
			id := h.ids["E"]
			h.Events = append(h.Events, Event{Task: id, Attempt: 1, Run: r, Event: "enter", At: at(42)},
				Event{Task: id, Attempt: 1, Run: r, Event: "exit", At: at(48)})
		}, []Kind{RanTwice}},
		{"claimed twice", func(h *history) {
			h.task("E").Attempt = 2
		}, []Kind{RanTwice, Reclaimed}},
		{"claimed twice, the first claim's run logging nothing", func(h *history) {
			h.task("E").Attempt = 2
			h.event("E", "enter").Attempt = 2
			h.event("E", "exit").Attempt = 2
		}, []Kind{Reclaimed}},
		{"a cut worker's task dropped", func(h *history) {
			h.Losses[0].Kind = Cut
		}, nil},
		{"a cut worker's task completed", func(h *history) {
			h.Losses[0].Kind = Cut
			d := h.task("D")
			d.State = "completed"
			h.Events = append(h.Events, Event{Task: d.ID, Attempt: 1, Run: h.event("D", "enter").Run, Event: "exit", At: at(3400)})
		}, nil},
		{"a cut worker's task dropped late", func(h *history) {
			h.Losses[0].Kind = Cut
			h.task("D").FinishedAt = at(7000)
		}, []Kind{LateDrop}},
		{"a silenced worker's task completed", func(h *history) {
			h.Losses[0].Kind, h.Losses[0].Resumed = Silence, at(5000)
			d := h.task("D")
			d.State = "completed"
			h.Events = append(h.Events, Event{Task: d.ID, Attempt: 1, Run: h.event("D", "enter").Run, Event: "exit", At: at(3400)})
		}, []Kind{NotDropped}},
		{"a claim lost in an outage", func(h *history) {
			e := h.task("E")
			e.State, e.ErrorKind, e.FinishedAt = "dropped", ClaimLostKind, at(1500)
			h.removeEvent("E", "exit")
			h.removeEvent("E", "enter")
			h.Outages = []Outage{{From: at(39), To: at(600)}}
		}, nil},
		{"a claim lost without a fault", func(h *history) {
			e := h.task("E")
			e.State, e.ErrorKind, e.FinishedAt = "dropped", ClaimLostKind, at(1500)
			h.removeEvent("E", "exit")
			h.removeEvent("E", "enter")
		}, []Kind{DroppedAlive}},
		{"completed without its run's exit", func(h *history) {
			h.removeEvent("E", "exit")
		}, []Kind{Fence}},
		{"a dropped run wrote after the drop", func(h *history) {
			h.Events = append(h.Events, Event{Task: h.ids["D"], Attempt: 1, Run: h.event("D", "enter").Run, Event: "exit", At: at(4000)})
		}, []Kind{Fence}},
		{"a killed worker's task completed", func(h *history) {
			d := h.task("D")
			d.State = "completed"
			h.Events = append(h.Events, Event{Task: d.ID, Attempt: 1, Run: h.event("D", "enter").Run, Event: "exit", At: at(3400)})
		}, []Kind{NotDropped}},
		{"a killed worker's task dropped at once", func(h *history) {
			h.task("D").FinishedAt = at(1050)
		}, nil},
		{"a killed worker's task completed in flight", func(h *history) {
			d := h.task("D")
			d.State, d.FinishedAt = "completed", at(1060)
			h.Events = append(h.Events, Event{Task: d.ID, Attempt: 1, Run: h.event("D", "enter").Run, Event: "exit", At: at(999)})
		}, nil},
		{"a killed worker's task dropped late", func(h *history) {
			h.task("D").FinishedAt = at(7000)
		}, []Kind{LateDrop}},
		{"a late drop explained by an outage", func(h *history) {
			h.task("D").FinishedAt = at(7000)
			h.Outages = []Outage{{From: at(2000), To: at(3500)}}
		}, nil},
		{"a stopped worker's tasks completed", func(h *history) {
			h.Losses = append(h.Losses, Loss{Worker: "w1", Kind: Stop, Before: at(20), After: at(21), Resumed: at(6000)})
			h.task("E").FinishedAt, h.event("E", "exit").At = at(300), at(299)
		}, []Kind{NotDropped}},
		{"a stopped worker's tasks claimed after it resumed", func(h *history) {
			h.Losses = append(h.Losses, Loss{Worker: "w1", Kind: Stop, Before: at(26), After: at(27), Resumed: at(35)})
		}, nil},
		{"a task of a live worker dropped", func(h *history) {
			e := h.task("E")
			e.State = "dropped"
			h.removeEvent("E", "exit")
		}, []Kind{DroppedAlive}},
		{"a task of a live worker dropped after a long outage", func(h *history) {
			e := h.task("E")
			e.State = "dropped"
			h.removeEvent("E", "exit")
			h.Outages = []Outage{{From: at(45), To: at(3045)}}
		}, nil},
		{"queue entries left", func(h *history) { h.QueueEntries = 1 }, []Kind{Blocked}},
		{"the safety net repaired", func(h *history) { h.Repairs = 2 }, []Kind{Blocked}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := correctHistory()
			tc.change(h)
			rep := Check(h.History, testLimits)
			var got []Kind
			for _, v := range rep.Violations {
				if !slices.Contains(got, v.Kind) {
					got = append(got, v.Kind)
				}
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("violations %v; want kinds %v", rep.Violations, want)
			}
			if slices.Contains(want, Overlap) && rep.MaxOverlap <= 0 {
				t.Errorf("overlaps found but max overlap %v", rep.MaxOverlap)
			}
		})
	}
}

// retriedHistory is correctHistory with retried tasks on resource q: F
// failed its first attempt and completed its second; K ran between F's
// attempts (it queued while F waited for its retry, so that F's second
// attempt queued behind it: F's seq, taken again, is after K's); G, whose
// policy retries dropped runs, ran on wk when it was killed, was dropped
// and completed its second attempt on w2.
func retriedHistory() *history {
	h := correctHistory()
	policy := func() *store.RetryPolicy {
		return &store.RetryPolicy{MaxAttempts: 3, InitialDelay: 20 * time.Millisecond, MaxDelay: 100 * time.Millisecond,
			Multiplier: 2, Dropped: true}
	}
	q := []string{"q"}
	add := func(letter string, seq int64, worker string, start, end int) *Task {
		id := uuid.New()
		h.ids[letter] = id
		h.Tasks = append(h.Tasks, Task{ID: id, Seq: seq, Key: letter, State: "completed", Attempt: 1, Worker: worker,
			Exclusive: q, StartedAt: at(start), FinishedAt: at(end)})
		h.Dispatches = append(h.Dispatches, Dispatch{Key: letter, ID: id})
		return &h.Tasks[len(h.Tasks)-1]
	}
	logRun := func(letter string, attempt, enter int, left string, leave int) {
		r := uuid.New()
		h.Events = append(h.Events, Event{Task: h.ids[letter], Attempt: attempt, Run: r, Event: "enter", At: at(enter)})
		if left != "" {
			h.Events = append(h.Events, Event{Task: h.ids[letter], Attempt: attempt, Run: r, Event: left, At: at(leave)})
		}
	}
	f := add("F", 66, "w2", 135, 150)
	f.Attempt, f.Retry = 2, policy()
	f.Attempts = []Attempt{{Number: 1, State: "failed", Worker: "w1", StartedAt: at(100), FinishedAt: at(110),
		Reason: "attempt 1 failing", ErrorKind: "error"}}
	logRun("F", 1, 101, "fail", 109)
	logRun("F", 2, 136, "exit", 149)
	add("K", 65, "w1", 111, 119)
	logRun("K", 1, 112, "exit", 118)
	g := add("G", 70, "w2", 3420, 3450)
	g.Attempt, g.Retry = 2, policy()
	g.Attempts = []Attempt{{Number: 1, State: "dropped", Worker: "wk", StartedAt: at(900), FinishedAt: at(3400),
		Reason: "worker wk stopped heartbeating", ErrorKind: "worker-lost"}}
	logRun("G", 1, 901, "", 0)
	logRun("G", 2, 3421, "exit", 3449)
	return h
}

// runOf returns the events of the run of the task named by letter under
// attempt.
func (h *history) runOf(letter string, attempt int) []*Event {
	var out []*Event
	for i := range h.Events {
		if e := &h.Events[i]; e.Task == h.ids[letter] && e.Attempt == attempt {
			out = append(out, e)
		}
	}
	return out
}

// eventOf returns the event of the task named by letter under attempt.
func (h *history) eventOf(letter string, attempt int, event string) *Event {
	for _, e := range h.runOf(letter, attempt) {
		if e.Event == event {
			return e
		}
	}
	panic(fmt.Sprintf("no %s of %s attempt %d", event, letter, attempt))
}

func TestCheckRetriedHistory(t *testing.T) {
	h := retriedHistory()
	rep := Check(h.History, testLimits)
	if len(rep.Violations) > 0 {
		t.Fatalf("violations in a correct history with retries: %v", rep.Violations)
	}
	if rep.RetriedTasks != 2 || rep.Retries != 2 || rep.FailedRetries != 1 || rep.DroppedRetries != 1 ||
		rep.LostRetried != 1 || rep.LostTasks != 2 || rep.Runs != 10 || rep.LostCompletions != 0 {
		t.Fatalf("counts: %+v", rep)
	}
	t.Log(rep.Summary())
}

// TestCheckCatchesRetryViolations breaks the history with retries in each
// way a retry must not go: the checks of attempts must be able to fail.
func TestCheckCatchesRetryViolations(t *testing.T) {
	cases := []struct {
		name   string
		change func(h *history)
		want   []Kind
	}{
		{"correct", func(*history) {}, nil},
		{"a task runs during an earlier attempt of a conflicting one", func(h *history) {
			k := h.task("K")
			k.StartedAt, k.FinishedAt = at(104), at(108)
			h.eventOf("K", 1, "enter").At, h.eventOf("K", 1, "exit").At = at(105), at(107)
		}, []Kind{Overlap}},
		{"an earlier attempt overlaps by its record alone", func(h *history) {
			// Its run logged nothing: the attempt's interval still counts.
			h.Events = slices.DeleteFunc(h.Events, func(e Event) bool { return e.Task == h.ids["F"] && e.Attempt == 1 })
			k := h.task("K")
			k.StartedAt = at(105)
		}, []Kind{Overlap}},
		{"a completed attempt retried", func(h *history) {
			h.task("F").Attempts[0].State = "completed"
			h.eventOf("F", 1, "fail").Event = "exit"
		}, []Kind{CompletedTwice}},
		{"a run of a failed attempt ran to its end", func(h *history) {
			h.eventOf("F", 1, "fail").Event = "exit"
		}, []Kind{CompletedTwice}},
		{"a run after the completing one", func(h *history) {
			r := uuid.New()
			h.Events = append(h.Events, Event{Task: h.ids["F"], Attempt: 2, Run: r, Event: "enter", At: at(149)})
			h.eventOf("F", 2, "exit").At = at(148)
		}, []Kind{RanTwice, CompletedTwice}},
		{"a completed attempt that logged fail", func(h *history) {
			h.eventOf("F", 2, "exit").Event = "fail"
		}, []Kind{Fence}},
		{"a lost run that had exited", func(h *history) {
			run := h.eventOf("G", 1, "enter").Run
			h.Events = append(h.Events, Event{Task: h.ids["G"], Attempt: 1, Run: run, Event: "exit", At: at(950)})
		}, nil},
		{"more attempts than the policy allows", func(h *history) {
			h.task("F").Retry.MaxAttempts = 1
		}, []Kind{TooManyAttempts}},
		{"retried without a policy", func(h *history) {
			h.task("F").Retry = nil
		}, []Kind{TooManyAttempts}},
		{"a dropped run retried without RetryDropped", func(h *history) {
			h.task("G").Retry.Dropped = false
		}, []Kind{BadRetry}},
		{"attempts numbered out of order", func(h *history) {
			h.task("F").Attempts[0].Number = 2
		}, []Kind{BadRetry, RanTwice}},
		{"an attempt before its delay", func(h *history) {
			h.task("F").StartedAt = at(120)
			h.eventOf("F", 2, "enter").At = at(121)
		}, []Kind{EarlyRetry}},
		{"an attempt early within the jitter", func(h *history) {
			h.task("F").Retry.Jitter = 0.5 // the least delay is 10 ms
			h.task("F").StartedAt = at(120)
			h.eventOf("F", 2, "enter").At = at(121)
		}, nil},
		{"an attempt before the previous one ended", func(h *history) {
			h.task("G").Retry.InitialDelay = 0
			h.task("G").StartedAt = at(3390)
			h.eventOf("G", 2, "enter").At = at(3391)
		}, []Kind{EarlyRetry}},
		{"a failed task with attempts left", func(h *history) {
			h.task("F").State = "failed"
			h.eventOf("F", 2, "exit").Event = "fail"
		}, []Kind{NotRetried}},
		{"a failed task that refused a retry", func(h *history) {
			f := h.task("F")
			f.State, f.NoRetry = "failed", true
			h.eventOf("F", 2, "exit").Event = "fail"
		}, nil},
		{"a failed task out of attempts", func(h *history) {
			f := h.task("F")
			f.State, f.Retry.MaxAttempts = "failed", 2
			h.eventOf("F", 2, "exit").Event = "fail"
		}, nil},
		{"a RetryDropped task lost and not retried", func(h *history) {
			g := h.task("G")
			g.Attempt, g.Attempts, g.State, g.Worker = 1, nil, "dropped", "wk"
			g.StartedAt, g.FinishedAt, g.ErrorKind = at(900), at(3400), "worker-lost"
			h.Events = slices.DeleteFunc(h.Events, func(e Event) bool { return e.Task == h.ids["G"] && e.Attempt == 2 })
		}, []Kind{NotRetried}},
		{"a RetryDropped task lost on its last attempt", func(h *history) {
			g := h.task("G")
			g.Attempt, g.Attempts, g.State, g.Worker = 1, nil, "dropped", "wk"
			g.StartedAt, g.FinishedAt, g.ErrorKind = at(900), at(3400), "worker-lost"
			g.Retry.MaxAttempts = 1
			h.Events = slices.DeleteFunc(h.Events, func(e Event) bool { return e.Task == h.ids["G"] && e.Attempt == 2 })
		}, nil},
		{"a lost attempt dropped late", func(h *history) {
			g := h.task("G")
			g.Attempts[0].FinishedAt = at(7000)
			g.StartedAt, g.FinishedAt = at(7020), at(7050)
			h.eventOf("G", 2, "enter").At, h.eventOf("G", 2, "exit").At = at(7021), at(7049)
		}, []Kind{LateDrop}},
		{"an attempt of a live worker dropped", func(h *history) {
			h.task("G").Attempts[0].Worker = "w1"
		}, []Kind{DroppedAlive}},
		{"a killed worker's attempt failed after the loss", func(h *history) {
			h.task("G").Attempts[0].State = "failed"
		}, []Kind{NotDropped}},
		{"claimed beyond its attempts", func(h *history) {
			h.task("F").Attempt = 3
		}, []Kind{Reclaimed, RanTwice}},
		{"a failed attempt's run wrote after the attempt ended", func(h *history) {
			h.eventOf("F", 1, "fail").At = at(111)
		}, []Kind{Fence}},
		{"a retried task not final", func(h *history) {
			f := h.task("F")
			f.State, f.StartedAt, f.FinishedAt, f.Worker, f.Attempt = "scheduled", time.Time{}, time.Time{}, "", 1
			h.Events = slices.DeleteFunc(h.Events, func(e Event) bool { return e.Task == h.ids["F"] && e.Attempt == 2 })
		}, []Kind{NotFinal}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := retriedHistory()
			tc.change(h)
			expectKinds(t, Check(h.History, testLimits), tc.want)
		})
	}
}

// expectKinds fails t unless rep's violations are of exactly the kinds
// want.
func expectKinds(t *testing.T, rep Report, want []Kind) {
	t.Helper()
	var got []Kind
	for _, v := range rep.Violations {
		if !slices.Contains(got, v.Kind) {
			got = append(got, v.Kind)
		}
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("violations %v; want kinds %v", rep.Violations, want)
	}
	if slices.Contains(want, Overlap) && rep.MaxOverlap <= 0 {
		t.Errorf("overlaps found but max overlap %v", rep.MaxOverlap)
	}
}
