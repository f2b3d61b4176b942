package sqlite

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/stint-dev/stint/internal/changefeed"
	"github.com/stint-dev/stint/store"
)

// hub hands wake-ups and task changes, published by the write transactions
// of this process after they commit, to the subscribers of Wakeups and
// Changes. Publishing never blocks on a subscriber.
type hub struct {
	done   chan struct{} // closed when the store closes
	mu     sync.Mutex
	closed bool
	wakers map[chan struct{}]struct{}
	// cancelers are signaled when a change makes a task canceling.
	cancelers map[chan struct{}]struct{}
	// duers are signaled when a transaction scheduled a task.
	duers   map[chan struct{}]struct{}
	subs    map[*changefeed.Backlog]struct{}
	dropped *atomic.Uint64
}

func newHub(dropped *atomic.Uint64) *hub {
	return &hub{done: make(chan struct{}), wakers: map[chan struct{}]struct{}{},
		cancelers: map[chan struct{}]struct{}{}, duers: map[chan struct{}]struct{}{}, subs: map[*changefeed.Backlog]struct{}{}, dropped: dropped}
}

// publish hands changes to every subscriber, if wake, a wake-up to every
// waker and, if due, a due signal to every subscriber of DueSignals. The writer calls it in commit order, under the write lock,
// so each subscriber sees the changes of a task in the order they were
// made.
func (h *hub) publish(changes []store.TaskChange, wake, due bool) {
	if len(changes) == 0 && !wake && !due {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if wake {
		signalAll(h.wakers)
	}
	if due {
		signalAll(h.duers)
	}
	for _, c := range changes {
		if c.State == store.StateCanceling {
			signalAll(h.cancelers)
			break
		}
	}
	if len(changes) > 0 {
		for sub := range h.subs {
			sub.Add(changes)
		}
	}
}

// close ends every subscription: their channels close.
func (h *hub) close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
	h.mu.Unlock()
}

// signalAll sends a coalesced signal on each channel, never blocking.
func signalAll(chans map[chan struct{}]struct{}) {
	for ch := range chans {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// wakeups subscribes to wake-ups until ctx ends.
func (h *hub) wakeups(ctx context.Context) (<-chan struct{}, error) {
	return h.signals(ctx, h.wakers)
}

// cancels subscribes to signals of cancels of running tasks until ctx
// ends.
func (h *hub) cancels(ctx context.Context) (<-chan struct{}, error) {
	return h.signals(ctx, h.cancelers)
}

// dueSignals subscribes to the signals of scheduled tasks until ctx ends.
func (h *hub) dueSignals(ctx context.Context) (<-chan struct{}, error) {
	return h.signals(ctx, h.duers)
}

// signals adds a channel to set, one of the hub's sets of signal channels,
// until ctx ends or the hub closes; then it closes the channel.
func (h *hub) signals(ctx context.Context, set map[chan struct{}]struct{}) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errClosed
	}
	set[ch] = struct{}{}
	h.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-h.done:
		}
		h.mu.Lock()
		delete(set, ch)
		h.mu.Unlock()
		close(ch) // publish sends under h.mu only to registered channels
	}()
	return ch, nil
}

// changes subscribes to task changes until ctx ends.
func (h *hub) changes(ctx context.Context) (<-chan []store.TaskChange, error) {
	sub := changefeed.NewBacklog(h.dropped)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errClosed
	}
	h.subs[sub] = struct{}{}
	h.mu.Unlock()
	out := make(chan []store.TaskChange, changefeed.Buffer)
	go func() {
		defer close(out)
		defer func() {
			h.mu.Lock()
			delete(h.subs, sub)
			h.mu.Unlock()
		}()
		sub.Pump(ctx, h.done, out)
	}()
	return out, nil
}
