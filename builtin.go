package stint

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/stint-dev/stint/store"
)

// SleepArgs are the args of the built-in task stint.sleep.
type SleepArgs struct {
	// Seconds to count up to; fractions are allowed.
	Seconds float64 `json:"seconds"`
	// Fail makes the task fail once it has counted.
	Fail bool `json:"fail"`
	// IgnoreCancel makes the task keep counting after its context is
	// canceled, as a task stuck in a call would (it reports no progress
	// then): for testing that such a run is abandoned, or killed
	// (stint.process.sleep).
	IgnoreCancel bool `json:"ignore_cancel"`
}

// MaxSleepSeconds is the longest stint.sleep accepts.
const MaxSleepSeconds = 24 * 60 * 60

// Validate implements ArgsValidator.
func (a SleepArgs) Validate() error {
	if a.Seconds < 0 || a.Seconds > MaxSleepSeconds || math.IsNaN(a.Seconds) {
		return fmt.Errorf("seconds must be between 0 and %d", MaxSleepSeconds)
	}
	return nil
}

// SleepResult is the result of stint.sleep.
type SleepResult struct {
	Slept float64 `json:"slept"`
}

// sleepTick is how often stint.sleep reports progress and checks for
// cancellation.
const sleepTick = 100 * time.Millisecond

// Sleep is the built-in task stint.sleep (and stint.process.sleep, in a
// child process): it counts up to args.Seconds, reporting progress and
// checking for cancellation every 100 ms (unless args.IgnoreCancel), and
// fails at the end if args.Fail. It is the test and demonstration task.
func Sleep(ctx context.Context, run *Run, args SleepArgs) (SleepResult, error) {
	total := time.Duration(args.Seconds * float64(time.Second))
	ticks := int64(math.Ceil(float64(total) / float64(sleepTick)))
	report := func(done int64, state string) {
		if args.IgnoreCancel && ctx.Err() != nil {
			return // the run is being abandoned or killed: its outputs no longer count
		}
		run.Progress(ProgressReport{Code: "stint.sleep", Message: "Sleeping", State: state, Total: &ticks, Done: done})
	}
	canceled := ctx.Done()
	if args.IgnoreCancel {
		canceled = nil // never ready
	}
	start := time.Now()
	report(0, "running")
	for done := int64(0); done < ticks; {
		wait := min(sleepTick, total-time.Since(start))
		if wait <= 0 {
			break
		}
		select {
		case <-canceled:
			report(done, "canceled")
			return SleepResult{}, ctx.Err()
		case <-time.After(wait):
		}
		done++
		report(done, "running")
	}
	if args.Fail {
		report(ticks, "failed")
		return SleepResult{}, errors.New("failed as asked (fail: true)")
	}
	report(ticks, "completed")
	return SleepResult{Slept: time.Since(start).Seconds()}, nil
}

// NoopArgs are the args of stint.noop: none.
type NoopArgs struct{}

// Noop is the built-in task stint.noop (and stint.process.noop, in a child
// process): it does nothing and succeeds. The benchmarks run it.
func Noop(context.Context, *Run, NoopArgs) (struct{}, error) { return struct{}{}, nil }

// PurgeArgs are the args of the built-in task stint.purge.
type PurgeArgs struct {
	// FinishedBefore: tasks that finished at or after it are kept.
	FinishedBefore time.Time `json:"finished_before"`
	// States are the final states to delete, such as "completed".
	States []store.State `json:"states"`
}

// Validate implements ArgsValidator.
func (a PurgeArgs) Validate() error {
	if a.FinishedBefore.IsZero() {
		return errors.New("finished_before is required")
	}
	if len(a.States) == 0 {
		return errors.New("states: name at least one final state")
	}
	for _, s := range a.States {
		if !s.Valid() || !s.Final() {
			return fmt.Errorf("states: %q is not a final state", s)
		}
	}
	return nil
}

// PurgeResult is the result of stint.purge.
type PurgeResult struct {
	Deleted int `json:"deleted"`
}

// PurgeBatch is how many tasks stint.purge deletes in one transaction.
const PurgeBatch = 1000

// PurgeResource is the resource every stint.purge task holds exclusively,
// however it was dispatched, so that two purges never run at once.
const PurgeResource = "stint:purge"

// Purge is the built-in task stint.purge: it deletes the final tasks in
// args.States that finished before args.FinishedBefore, PurgeBatch at a
// time, each batch in its own short transaction, reporting progress, until
// none is left or it is canceled.
func Purge(ctx context.Context, run *Run, args PurgeArgs) (PurgeResult, error) {
	if run.client == nil {
		return PurgeResult{}, errors.New("stint.purge: this run has no store")
	}
	var res PurgeResult
	report := func(state string) {
		run.Progress(ProgressReport{Code: "stint.purge", Message: "Deleting finished tasks", State: state, Done: int64(res.Deleted)})
	}
	report("running")
	for {
		if err := ctx.Err(); err != nil {
			report("canceled")
			return res, err
		}
		n, err := run.client.store.Purge(ctx, store.PurgeParams{FinishedBefore: args.FinishedBefore, States: args.States, Limit: PurgeBatch})
		if err != nil {
			report("failed")
			return res, err
		}
		res.Deleted += n
		if n < PurgeBatch {
			report("completed")
			return res, nil
		}
		report("running")
	}
}

// registerBuiltins registers the built-in task types: stint.noop,
// stint.sleep and stint.purge run in the worker's process (stint.purge,
// which deletes every user's tasks, is for admins only and holds
// PurgeResource);
// stint.process.noop and stint.process.sleep are the same as stint.noop and
// stint.sleep in a child process each (InChildProcess), for tests and
// benchmarks of process isolation.
func registerBuiltins(reg *Registry) {
	Register(reg, "stint.noop", Noop)
	Register(reg, "stint.sleep", Sleep)
	Register(reg, "stint.purge", Purge, AdminOnly(), WithExclusiveResources(PurgeResource))
	Register(reg, "stint.process.noop", Noop, InChildProcess())
	Register(reg, "stint.process.sleep", Sleep, InChildProcess())
}
