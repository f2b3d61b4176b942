package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/internal/syncbuf"
	"github.com/stint-dev/stint/store"
)

// refusingFinishes is a real store that refuses, as a database that
// answers can (a constraint, a limit, a function that raises), every
// Finish of a batch holding an outcome that refuse matches.
type refusingFinishes struct {
	store.Store
	refuse func(store.Outcome) bool
	err    error // what a refused Finish returns; errRefused if nil

	mu    sync.Mutex
	tries int
}

var errRefused = errors.New("ERROR: the database refuses this outcome (SQLSTATE 54000)")

func (s *refusingFinishes) Finish(ctx context.Context, batch []store.Outcome) ([]uuid.UUID, error) {
	s.mu.Lock()
	s.tries++
	s.mu.Unlock()
	if slices.ContainsFunc(batch, s.refuse) {
		if s.err != nil {
			return nil, s.err
		}
		return nil, errRefused
	}
	return s.Store.Finish(ctx, batch)
}

func completedOnly(o store.Outcome) bool { return o.State == store.StateCompleted }

func allOutcomes(store.Outcome) bool { return true }

// butTheGiveUp is every outcome but a give-up's.
func butTheGiveUp(o store.Outcome) bool { return o.Error == nil || o.Error.Kind != ClaimLostKind }

// A batch that the database refuses while it answers is recorded outcome
// by outcome: the acceptable ones as they are, a refused one as a failure
// of kind UnrecordableKind, and one refused even as a failure is given up
// in a *RefusedError; an outage, where the database does not answer, is
// retried rather than taken for a refusal.
func TestRecordRefusedOutcomes(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		base := eng.Open(t)
		claim := func(n int) []*store.Task {
			t.Helper()
			nts := make([]store.NewTask, n)
			for i := range nts {
				nts[i] = store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.refused"}
			}
			if _, err := base.Dispatch(ctx, nts); err != nil {
				t.Fatal(err)
			}
			got, err := base.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.refused"}, Limit: n})
			if err != nil || len(got) != n {
				t.Fatalf("claimed %d of %d: %v", len(got), n, err)
			}
			return got
		}
		state := func(id uuid.UUID) *store.Task {
			t.Helper()
			task, err := base.Task(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return task
		}
		quiet := slog.New(slog.DiscardHandler)

		tests := []struct {
			name    string
			refuse  func(store.Outcome) bool
			given   bool        // record returns a *RefusedError naming the refused task
			refused store.State // the refused task's state after
			kind    string      // and its error's kind
		}{
			{name: "the outcome is refused, its failure recorded", refuse: completedOnly,
				refused: store.StateFailed, kind: UnrecordableKind},
			{name: "even the failure is refused", refuse: allOutcomes, given: true,
				refused: store.StateRunning},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tasks := claim(2)
				bad, good := tasks[0], tasks[1]
				refuse := func(o store.Outcome) bool { return o.ID == bad.ID && tt.refuse(o) }
				st := &refusingFinishes{Store: base, refuse: refuse}
				batch := []store.Outcome{
					{ID: bad.ID, Attempt: bad.Attempt, State: store.StateCompleted, Result: json.RawMessage(`"x"`)},
					{ID: good.ID, Attempt: good.Attempt, State: store.StateCompleted, Result: json.RawMessage(`"y"`)},
				}
				err := record(ctx, st, batch, quiet, time.Second)
				var refused *RefusedError
				switch {
				case tt.given && (!errors.As(err, &refused) || !slices.Equal(refused.IDs, []uuid.UUID{bad.ID}) || !errors.Is(err, errRefused)):
					t.Fatalf("record: %v, want a *RefusedError naming %s", err, bad.ID)
				case !tt.given && err != nil:
					t.Fatalf("record: %v", err)
				}
				if got := state(good.ID); got.State != store.StateCompleted || string(got.Result) != `"y"` {
					t.Errorf("the acceptable outcome: %s %s", got.State, got.Result)
				}
				got := state(bad.ID)
				if got.State != tt.refused || (tt.kind != "" && (got.Error == nil || got.Error.Kind != tt.kind ||
					!strings.Contains(got.Error.Description, errRefused.Error()))) {
					t.Errorf("the refused outcome's task: %s %+v", got.State, got.Error)
				}
			})
		}

		// A Finish that times out or whose connection breaks, again and
		// again while reads succeed (held up behind a lock; a proxy that
		// cuts the connections that write), is not refused either.
		for _, failure := range []error{
			fmt.Errorf("finishing: %w", context.DeadlineExceeded),
			&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET},
			fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF),
		} {
			t.Run("retried: "+failure.Error(), func(t *testing.T) {
				task := claim(1)[0]
				st := &refusingFinishes{Store: base, refuse: allOutcomes, err: failure}
				rctx, stop := context.WithTimeout(ctx, 2*time.Second)
				defer stop()
				err := record(rctx, st, []store.Outcome{{ID: task.ID, Attempt: task.Attempt, State: store.StateCompleted}}, quiet, 100*time.Millisecond)
				if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, failure) {
					t.Fatalf("record: %v, want it to retry until its context ends", err)
				}
				if got := state(task.ID); got.State != store.StateRunning || st.tries <= refuseAfter {
					t.Errorf("the task: %s %+v after %d tries", got.State, got.Error, st.tries)
				}
			})
		}

		t.Run("an outage is retried, not refused", func(t *testing.T) {
			task := claim(1)[0]
			down := &downStore{Store: base}
			down.down.Store(true)
			st := &refusingFinishes{Store: down, refuse: allOutcomes}
			rctx, stop := context.WithTimeout(ctx, 3*time.Second)
			defer stop()
			err := record(rctx, st, []store.Outcome{{ID: task.ID, Attempt: task.Attempt, State: store.StateCompleted}}, quiet, 100*time.Millisecond)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("record: %v, want it to retry until its context ends", err)
			}
			if st.tries <= refuseAfter {
				t.Errorf("%d tries in 3 s", st.tries)
			}
			if got := state(task.ID); got.State != store.StateRunning {
				t.Errorf("the task: %s %+v", got.State, got.Error)
			}
		})
	})
}

// downStore is a real store whose reads fail, once armed, as they do
// while the database is unreachable.
type downStore struct {
	store.Store
	down atomic.Bool
}

func (s *downStore) Task(ctx context.Context, id uuid.UUID) (*store.Task, error) {
	if s.down.Load() {
		return nil, errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	return s.Store.Task(ctx, id)
}

// A worker whose outcome the database refuses while it answers does not
// leave the task running for good under its live name: it records a
// failure in its place; and when even that is refused, it lets go of the
// task, and its next heartbeat gives it up (dropped, claim-lost), so that
// the task behind it on its resource runs.
func TestWorkerDoesNotHoldARefusedOutcomeForever(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		for _, tt := range []struct {
			name  string
			state store.State
			kind  string
		}{
			{name: "failure recorded", state: store.StateFailed, kind: UnrecordableKind},
			{name: "given up", state: store.StateDropped, kind: ClaimLostKind},
		} {
			t.Run(tt.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				base := eng.Open(t)
				refused := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.a", ExclusiveResources: []string{"r"}}
				behind := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.a", ExclusiveResources: []string{"r"}}
				refuse := func(o store.Outcome) bool { return o.ID == refused.ID && completedOnly(o) }
				if tt.state == store.StateDropped {
					refuse = func(o store.Outcome) bool { return o.ID == refused.ID && butTheGiveUp(o) }
				}
				st := &refusingFinishes{Store: base, refuse: refuse}
				if _, err := st.Dispatch(ctx, []store.NewTask{refused, behind}); err != nil {
					t.Fatal(err)
				}
				const heartbeat = 50 * time.Millisecond
				var logs syncbuf.Buffer
				w, err := New(st, Config{Name: "1@w", Names: []string{"test.a"}, Concurrency: 2, HeartbeatInterval: heartbeat,
					MissingAfter: time.Second, LostCheckInterval: heartbeat, PollInterval: 20 * time.Millisecond, SweepInterval: -1,
					CallTimeout: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
					Handler: func(context.Context, *store.Task, *Recorder) (json.RawMessage, *store.TaskError) {
						return json.RawMessage(`"ok"`), nil
					}})
				if err != nil {
					t.Fatal(err)
				}
				began := time.Now()
				defer runWorker(t, ctx, w)()
				a, b := waitBothFinal(t, ctx, base, refused.ID, behind.ID, 15*time.Second, &logs)
				if a.State != tt.state || a.Error == nil || a.Error.Kind != tt.kind {
					t.Fatalf("the refused task: %s %+v", a.State, a.Error)
				}
				if b.State != store.StateCompleted {
					t.Fatalf("the task behind it: %s %+v", b.State, b.Error)
				}
				t.Logf("%s %v after the worker started", a.State, time.Since(began).Round(time.Millisecond))
				if workers, err := st.Workers(ctx); err != nil || len(workers) != 1 {
					t.Errorf("the worker should still be listed: %v %v", workers, err)
				}
			})
		}
	})
}
