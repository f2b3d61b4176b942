package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// ClaimLostKind is the Kind of the error of a task that its worker gave up
// because no run of it knew of the task: the claim committed in the
// database, but its answer did not reach the worker (the connection failed
// on the way back), so the task never ran; or an immediate run's outcome
// could not be recorded.
const ClaimLostKind = "claim-lost"

// Holdings are the tasks that one worker name holds in this process: the
// runs of a Worker, from its claim until its outcome is recorded, and the
// runs of immediate dispatches (stint.Client.DispatchImmediate) under the
// same name. The Presence of that name heartbeats with them and compares
// them with what the store says the name holds: a task the store
// attributes to the name that no run here knows of was claimed by a call
// whose answer was lost, and the Presence gives it up (see giveUp).
//
// Every call that can make the store attribute a task to the name (a
// claim) runs between BeginClaim and EndClaim, and records the tasks it got
// (Add) before EndClaim: so a give-up, which waits for the claims in
// flight, never mistakes a task whose claim is still on its way back for a
// lost one.
//
// Holdings are shared by every part of the process that uses the same
// worker name, whatever store it uses (so that two stores opened on one
// database never take each other's runs for lost ones): get them with
// AcquireHoldings.
type Holdings struct {
	name string
	refs int // guarded by registry.mu

	// gate is held shared by each claim in flight and exclusively by a
	// give-up.
	gate sync.RWMutex
	// gateWait is since when a give-up waits for the gate (Unix
	// nanoseconds), 0 when none does.
	gateWait atomic.Int64

	mu    sync.Mutex
	tasks map[uuid.UUID]struct{}
}

var registry struct {
	mu sync.Mutex
	m  map[string]*Holdings
}

// AcquireHoldings returns the holdings of worker name in this process,
// shared with every other caller that acquired them and has not released
// them. Call Release when done.
func AcquireHoldings(name string) *Holdings {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	h := registry.m[name]
	if h == nil {
		if registry.m == nil {
			registry.m = make(map[string]*Holdings)
		}
		h = &Holdings{name: name, tasks: make(map[uuid.UUID]struct{})}
		registry.m[name] = h
	}
	h.refs++
	return h
}

// Release gives back holdings acquired with AcquireHoldings.
func (h *Holdings) Release() {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	h.refs--
	if h.refs == 0 {
		delete(registry.m, h.name)
	}
}

// BeginClaim marks a claim in flight: call it before a store call that
// may attribute tasks to the worker, and EndClaim after the tasks it
// returned were added. It waits while a give-up runs.
func (h *Holdings) BeginClaim() { h.gate.RLock() }

// EndClaim ends what BeginClaim began.
func (h *Holdings) EndClaim() { h.gate.RUnlock() }

// Add records that a run of this process holds task id.
func (h *Holdings) Add(id uuid.UUID) {
	h.mu.Lock()
	h.tasks[id] = struct{}{}
	h.mu.Unlock()
}

// Remove records that no run of this process holds task id any more: its
// outcome was recorded.
func (h *Holdings) Remove(id uuid.UUID) {
	h.mu.Lock()
	delete(h.tasks, id)
	h.mu.Unlock()
}

// IDs returns the tasks held.
func (h *Holdings) IDs() []uuid.UUID {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]uuid.UUID, 0, len(h.tasks))
	for id := range h.tasks {
		ids = append(ids, id)
	}
	return ids
}

// stuck reports a give-up that has waited more than limit for the claims
// in flight to end: each is bounded by its call timeout, so one of them
// hangs below it (in this process: a worker's claim loop or an immediate
// dispatch), and the tasks that the give-up would end stay running
// under the name meanwhile.
func (h *Holdings) stuck(limit time.Duration) error {
	since := h.gateWait.Load()
	if since == 0 {
		return nil
	}
	if d := time.Since(time.Unix(0, since)); d > limit {
		return fmt.Errorf("giving up tasks unknown to this process has waited %v for the claims in flight (at most %v)",
			d.Round(time.Millisecond), limit)
	}
	return nil
}

func (h *Holdings) has(id uuid.UUID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.tasks[id]
	return ok
}

// giveUp ends the tasks that the store attributes to worker but that no
// run of this process knows of (a heartbeat's HeartbeatReply.Unknown): it
// waits for the claims in flight, so that every task whose claim answer
// is still on its way is added first, and holds new claims back while it
// ends the tasks still unknown then. A running task ends dropped, a
// canceling one canceled, each with an error of kind ClaimLostKind;
// Finish is fenced by the attempt of the lost claim, so a task claimed
// again meanwhile is left alone. It returns the tasks it ended.
func (h *Holdings) giveUp(ctx context.Context, st store.Store, worker string, unknown []store.HeldTask, log *slog.Logger) ([]uuid.UUID, error) {
	h.gateWait.Store(time.Now().UnixNano())
	h.gate.Lock()
	h.gateWait.Store(0)
	defer h.gate.Unlock()
	var outcomes []store.Outcome
	for _, u := range unknown {
		if h.has(u.ID) {
			continue // its claim's answer arrived meanwhile
		}
		state := store.StateDropped
		if u.State == store.StateCanceling {
			state = store.StateCanceled
		}
		outcomes = append(outcomes, store.Outcome{ID: u.ID, Attempt: u.Attempt, State: state,
			Error: &store.TaskError{Kind: ClaimLostKind, Description: fmt.Sprintf(
				"the task was running under worker %s, which has no run of it: the answer of the claim "+
					"was lost (a database connection failed on its way back), so the task did not run, "+
					"or its outcome could not be recorded; the worker gave it up", worker)}})
	}
	if len(outcomes) == 0 {
		return nil, nil
	}
	ended, err := st.Finish(ctx, outcomes)
	if err != nil {
		return nil, err
	}
	if len(ended) > 0 {
		log.Warn("tasks held under this worker's name were unknown to it (a claim's answer was lost); gave them up",
			"tasks", ended)
	}
	return ended, nil
}
