package stint

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// SleepArgs are the args of the built-in task stint.sleep.
type SleepArgs struct {
	// Seconds to count up to; fractions are allowed.
	Seconds float64 `json:"seconds"`
	// Fail makes the task fail once it has counted.
	Fail bool `json:"fail"`
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

// Sleep is the built-in task stint.sleep: it counts up to args.Seconds,
// reporting progress and checking for cancellation every 100 ms, and fails at
// the end if args.Fail. It is the test and demonstration task.
func Sleep(ctx context.Context, run *Run, args SleepArgs) (SleepResult, error) {
	total := time.Duration(args.Seconds * float64(time.Second))
	ticks := int64(math.Ceil(float64(total) / float64(sleepTick)))
	report := func(done int64, state string) {
		run.Progress(ProgressReport{Code: "stint.sleep", Message: "Sleeping", State: state, Total: &ticks, Done: done})
	}
	start := time.Now()
	report(0, "running")
	for done := int64(0); done < ticks; {
		wait := min(sleepTick, total-time.Since(start))
		if wait <= 0 {
			break
		}
		select {
		case <-ctx.Done():
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

// Noop is the built-in task stint.noop: it does nothing and succeeds. The
// benchmarks run it.
func Noop(context.Context, *Run, NoopArgs) (struct{}, error) { return struct{}{}, nil }

func registerBuiltins(reg *Registry) {
	Register(reg, "stint.noop", Noop)
	Register(reg, "stint.sleep", Sleep)
}
