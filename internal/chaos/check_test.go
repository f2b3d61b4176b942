package chaos

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
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
