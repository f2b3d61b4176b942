package stint

import (
	"errors"
	"fmt"
	"time"

	"github.com/stint-dev/stint/store"
)

// RetryPolicy says how often a failed task runs again, and after how
// long: see Retry. The delay before attempt n+1 is InitialDelay ×
// Multiplier^(n-1), at most MaxDelay, less a random part of up to Jitter of
// it (spreading the retries of tasks that failed together).
type RetryPolicy struct {
	// MaxAttempts are the attempts in all, the first run included: 1 (no
	// retries) to 100.
	MaxAttempts int
	// InitialDelay is the delay before the second attempt; default 1 s.
	InitialDelay time.Duration
	// MaxDelay caps every delay; default 1 h (and at least InitialDelay).
	MaxDelay time.Duration
	// Multiplier is how many times longer each delay is than the last:
	// ≥ 1; default 2.
	Multiplier float64
	// Jitter is the part of each delay that is random, 0 (none, the
	// default) to 1.
	Jitter float64
}

// The defaults of a RetryPolicy's zero fields.
const (
	DefaultRetryInitialDelay = time.Second
	DefaultRetryMaxDelay     = time.Hour
	DefaultRetryMultiplier   = 2
)

// normalized returns p with its defaults filled in, or an error naming the
// field at fault (as the HTTP API spells it).
func (p RetryPolicy) normalized(dropped bool) (*store.RetryPolicy, *fieldError) {
	if p.MaxAttempts < 1 || p.MaxAttempts > store.MaxRetryAttempts {
		return nil, &fieldError{"max_attempts", fmt.Sprintf("must be 1 to %d, not %d", store.MaxRetryAttempts, p.MaxAttempts)}
	}
	out := &store.RetryPolicy{MaxAttempts: p.MaxAttempts, InitialDelay: p.InitialDelay, MaxDelay: p.MaxDelay,
		Multiplier: p.Multiplier, Jitter: p.Jitter, Dropped: dropped}
	switch {
	case p.InitialDelay < 0:
		return nil, &fieldError{"initial_delay", "must not be negative"}
	case p.InitialDelay == 0:
		out.InitialDelay = DefaultRetryInitialDelay
	}
	switch {
	case p.MaxDelay < 0:
		return nil, &fieldError{"max_delay", "must not be negative"}
	case p.MaxDelay == 0:
		out.MaxDelay = max(DefaultRetryMaxDelay, out.InitialDelay)
	case p.MaxDelay < out.InitialDelay:
		return nil, &fieldError{"max_delay", fmt.Sprintf("%v is shorter than initial_delay (%v)", p.MaxDelay, out.InitialDelay)}
	}
	switch {
	case p.Multiplier == 0:
		out.Multiplier = DefaultRetryMultiplier
	case p.Multiplier < 1 || p.Multiplier > 100:
		return nil, &fieldError{"multiplier", fmt.Sprintf("must be 1 to 100, not %v", p.Multiplier)}
	}
	if p.Jitter < 0 || p.Jitter > 1 {
		return nil, &fieldError{"jitter", fmt.Sprintf("must be 0 to 1, not %v", p.Jitter)}
	}
	return out, nil
}

type fieldError struct{ field, msg string }

// Retry sets the retry policy of a task type: a run that fails (returns an
// error, panics or times out) does not end its task while attempts are
// left: the task becomes scheduled for its next attempt, and its earlier
// attempts are listed on it (Task.Attempts). A dispatch may override the
// policy (DispatchRequest.Retry). A canceled task is never retried; a
// dropped one only with RetryDropped. Register panics on a bad policy.
func Retry(p RetryPolicy) TaskOption {
	if _, bad := p.normalized(false); bad != nil {
		panic(fmt.Sprintf("stint: Retry: %s %s", bad.field, bad.msg))
	}
	return func(o *taskOptions) { o.retry = &p }
}

// RetryDropped retries the task type's runs lost with their worker (killed,
// cut off from the database, or stopped past its grace period) like failed
// ones, each recorded as a dropped attempt, within its Retry policy's
// attempts (or, without one, up to 3 attempts). For idempotent tasks only:
// the lost run may have done some of its work, or all of it.
func RetryDropped() TaskOption {
	return func(o *taskOptions) { o.retryDropped = true }
}

// retryDroppedAttempts are the attempts of a task type that has
// RetryDropped and no Retry policy.
const retryDroppedAttempts = 3

// NoRetry wraps an error of a task that must not be retried: the run fails
// the task at once, whatever attempts its policy has left (a bad input,
// say, that no retry will fix).
func NoRetry(err error) error {
	if err == nil {
		return nil
	}
	return &noRetryError{err}
}

type noRetryError struct{ err error }

func (e *noRetryError) Error() string { return e.err.Error() }
func (e *noRetryError) Unwrap() error { return e.err }

// isNoRetry reports whether err was wrapped by NoRetry.
func isNoRetry(err error) bool {
	var nr *noRetryError
	return errors.As(err, &nr)
}

// retryPolicy is the store's form of the policy of a task of type tt
// dispatched with override (nil: the type's own).
func (tt *taskType) retryPolicy(override *RetryPolicy) (*store.RetryPolicy, *fieldError) {
	p := tt.opts.retry
	if override != nil {
		p = override
	}
	if p == nil {
		if !tt.opts.retryDropped {
			return nil, nil
		}
		p = &RetryPolicy{MaxAttempts: retryDroppedAttempts}
	}
	if p.MaxAttempts == 1 && !tt.opts.retryDropped {
		return nil, nil
	}
	return p.normalized(tt.opts.retryDropped)
}

// In returns the time d from now, for DispatchRequest.ScheduledAt.
func In(d time.Duration) time.Time { return time.Now().Add(d) }
