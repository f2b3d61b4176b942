package sqlite

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

const (
	// changesBuffer is how many batches the channel of Changes holds.
	changesBuffer = 64
	// maxBacklog is how many tasks the backlog of a slow reader of Changes
	// holds before changes of further tasks are dropped.
	maxBacklog = 100_000
)

// hub hands wake-ups and task changes, published by the write transactions
// of this process after they commit, to the subscribers of Wakeups and
// Changes. Publishing never blocks on a subscriber.
type hub struct {
	done    chan struct{} // closed when the store closes
	mu      sync.Mutex
	closed  bool
	wakers  map[chan struct{}]struct{}
	subs    map[*changeSub]struct{}
	dropped *atomic.Uint64
}

func newHub(dropped *atomic.Uint64) *hub {
	return &hub{done: make(chan struct{}), wakers: map[chan struct{}]struct{}{}, subs: map[*changeSub]struct{}{}, dropped: dropped}
}

// publish hands changes to every subscriber and, if wake, a wake-up to
// every waker. The writer calls it in commit order, under the write lock,
// so each subscriber sees the changes of a task in the order they were
// made.
func (h *hub) publish(changes []store.TaskChange, wake bool) {
	if len(changes) == 0 && !wake {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if wake {
		for ch := range h.wakers {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	if len(changes) > 0 {
		for sub := range h.subs {
			sub.add(changes)
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

// wakeups subscribes to wake-ups until ctx ends.
func (h *hub) wakeups(ctx context.Context) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errClosed
	}
	h.wakers[ch] = struct{}{}
	h.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-h.done:
		}
		h.mu.Lock()
		delete(h.wakers, ch)
		h.mu.Unlock()
		close(ch) // publish sends under h.mu only to registered channels
	}()
	return ch, nil
}

// changes subscribes to task changes until ctx ends.
func (h *hub) changes(ctx context.Context) (<-chan []store.TaskChange, error) {
	sub := &changeSub{
		index:   map[uuid.UUID]int{},
		ready:   make(chan struct{}, 1),
		dropped: h.dropped,
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errClosed
	}
	h.subs[sub] = struct{}{}
	h.mu.Unlock()
	out := make(chan []store.TaskChange, changesBuffer)
	go func() {
		defer close(out)
		defer func() {
			h.mu.Lock()
			delete(h.subs, sub)
			h.mu.Unlock()
		}()
		send := func(batch []store.TaskChange) bool {
			select {
			case out <- batch:
				return true
			case <-ctx.Done():
				return false
			case <-h.done:
				return false
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-h.done:
				return
			case <-sub.ready:
			}
			batch, lost := sub.take()
			if len(batch) > 0 && !send(batch) {
				return
			}
			if lost && !send([]store.TaskChange{}) {
				return
			}
		}
	}()
	return out, nil
}

// changeSub is one subscriber of Changes: the changes published and not
// yet sent to it, coalesced by task. A slow reader receives fewer, larger
// batches and may miss intermediate states, never a task's latest one,
// until its backlog holds maxBacklog tasks: changes of further tasks are
// then dropped, and an empty batch tells the reader so.
type changeSub struct {
	mu      sync.Mutex
	pending []store.TaskChange
	index   map[uuid.UUID]int // position of each task in pending
	lost    bool              // changes were dropped since the last take
	ready   chan struct{}     // signaled when there is something to take
	dropped *atomic.Uint64
}

func (b *changeSub) add(changes []store.TaskChange) {
	b.mu.Lock()
	for _, c := range changes {
		if i, ok := b.index[c.ID]; ok {
			b.pending[i].State = c.State
			continue
		}
		if len(b.pending) >= maxBacklog {
			b.dropped.Add(1)
			b.lost = true
			continue
		}
		b.index[c.ID] = len(b.pending)
		b.pending = append(b.pending, c)
	}
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// take empties the backlog and returns what it held.
func (b *changeSub) take() (batch []store.TaskChange, lost bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	batch, lost = b.pending, b.lost
	b.pending, b.lost = nil, false
	if len(b.index) > 4096 {
		b.index = map[uuid.UUID]int{} // let a large backlog's table go
	} else {
		clear(b.index)
	}
	return batch, lost
}
