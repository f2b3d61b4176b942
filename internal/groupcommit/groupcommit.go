package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrClosed is returned by Do once Close has been called.
var ErrClosed = errors.New("groupcommit: closed")

// Func runs one batch: the items of one or more calls, in the order the
// calls arrived. It returns one result per item, in the same order, or an
// error for the whole batch; it must be all-or-nothing (one transaction).
type Func[T, R any] func(ctx context.Context, items []T) ([]R, error)

// Config configures a Committer. The zero value of each field selects its
// default.
type Config struct {
	// MaxRunning bounds the batches in flight at once (default 2). One
	// lets nothing overlap; more lets a lone call start while a batch is
	// committing, at the price of smaller batches.
	MaxRunning int
	// MaxBatch bounds the items of one batch (default 1,000). A call is
	// never split: a call of more items than that runs in a batch of its
	// own.
	MaxBatch int
}

// A Committer gathers concurrent calls into batches for its function. It is
// safe for concurrent use.
type Committer[T, R any] struct {
	fn         Func[T, R]
	maxRunning int
	maxBatch   int

	mu      sync.Mutex
	queue   []*call[T, R] // arrived, not yet taken by a runner
	running int           // runners at work
	closed  bool
	idle    *sync.Cond // signalled when running drops to zero
}

// call is one caller's part of a batch.
type call[T, R any] struct {
	ctx     context.Context
	items   []T
	done    chan struct{} // closed when results or err is set
	results []R
	err     error
}

// New returns a Committer that runs fn.
func New[T, R any](fn Func[T, R], cfg Config) *Committer[T, R] {
	if cfg.MaxRunning <= 0 {
		cfg.MaxRunning = 2
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	c := &Committer[T, R]{fn: fn, maxRunning: cfg.MaxRunning, maxBatch: cfg.MaxBatch}
	c.idle = sync.NewCond(&c.mu)
	return c
}

// Do runs items in the next batch and returns their results, in order. It
// returns when the batch has returned, or at once with ctx's error when ctx
// ends first (see the package documentation for what that means for the
// items).
func (c *Committer[T, R]) Do(ctx context.Context, items []T) ([]R, error) {
	if len(items) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cl := &call[T, R]{ctx: ctx, items: items, done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.queue = append(c.queue, cl)
	lead := c.running < c.maxRunning
	if lead {
		c.running++
	}
	c.mu.Unlock()
	if lead {
		if batch := c.take(); len(batch) == 1 && batch[0] == cl {
			// Alone: run in the caller's goroutine, under its context,
			// and hand the runner's place on to whoever came meanwhile.
			c.runBatch(batch)
			c.handOff()
			return cl.results, cl.err
		} else if batch != nil {
			go func() {
				c.runBatch(batch)
				c.run()
			}()
		}
	}

	select {
	case <-cl.done:
		return cl.results, cl.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	for i, q := range c.queue {
		if q == cl {
			// Not taken yet: it will never run.
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	select {
	case <-cl.done: // answered meanwhile: the outcome is known
		return cl.results, cl.err
	default:
		return nil, ctx.Err()
	}
}

// Queued returns the number of calls waiting for a runner.
func (c *Committer[T, R]) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// Close waits for the batches in flight and makes further calls fail with
// ErrClosed. Calls still queued are run first.
func (c *Committer[T, R]) Close() {
	c.mu.Lock()
	c.closed = true
	for c.running > 0 {
		c.idle.Wait()
	}
	c.mu.Unlock()
}

// run takes batches from the queue until it is empty.
func (c *Committer[T, R]) run() {
	for {
		batch := c.take()
		if batch == nil {
			return
		}
		c.runBatch(batch)
	}
}

// handOff gives up the place of a runner that ran one batch: to a new
// runner goroutine when calls are queued, else by retiring it.
func (c *Committer[T, R]) handOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) > 0 {
		go c.run()
		return
	}
	c.retire()
}

// retire counts a runner out; the caller holds mu.
func (c *Committer[T, R]) retire() {
	c.running--
	if c.running == 0 {
		c.idle.Broadcast()
	}
}

// take removes the next batch from the queue, or, when the queue is empty,
// retires the runner and returns nil.
func (c *Committer[T, R]) take() []*call[T, R] {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, items := 0, 0
	for n < len(c.queue) && (n == 0 || items+len(c.queue[n].items) <= c.maxBatch) {
		items += len(c.queue[n].items)
		n++
	}
	if n == 0 {
		c.retire()
		return nil
	}
	batch := make([]*call[T, R], n)
	copy(batch, c.queue)
	c.queue = append(c.queue[:0], c.queue[n:]...)
	return batch
}

// runBatch runs the live calls of batch as one call of fn, or each alone
// when that fails, and answers them.
func (c *Committer[T, R]) runBatch(batch []*call[T, R]) {
	live := batch[:0]
	for _, cl := range batch {
		if err := cl.ctx.Err(); err != nil {
			cl.answer(nil, err) // its caller has left or is leaving
			continue
		}
		live = append(live, cl)
	}
	if len(live) == 0 {
		return
	}
	if len(live) == 1 {
		cl := live[0]
		cl.answer(c.call(cl.ctx, cl.items, 1))
		return
	}
	ctx, stop := batchContext(live)
	defer stop()
	var items []T
	for _, cl := range live {
		items = append(items, cl.items...)
	}
	results, err := c.call(ctx, items, len(live))
	if err == nil {
		for _, cl := range live {
			n := len(cl.items)
			cl.answer(results[:n:n], nil)
			results = results[n:]
		}
		return
	}
	// Which call's items failed the batch is not known: run each alone,
	// so that only its own caller sees the error.
	for _, cl := range live {
		if err := cl.ctx.Err(); err != nil {
			cl.answer(nil, err)
			continue
		}
		cl.answer(c.call(cl.ctx, cl.items, 1))
	}
}

// call runs fn and checks that it kept its promise of one result per item.
func (c *Committer[T, R]) call(ctx context.Context, items []T, calls int) ([]R, error) {
	results, err := c.fn(ctx, items)
	if err == nil && len(results) != len(items) {
		return nil, fmt.Errorf("groupcommit: %d results for %d items in %d calls", len(results), len(items), calls)
	}
	return results, err
}

func (cl *call[T, R]) answer(results []R, err error) {
	cl.results, cl.err = results, err
	close(cl.done)
}

// batchContext returns the context a batch runs under: one that keeps the
// values of the first call's context but none of its deadline, canceled
// when every call's context has ended (no one is left to answer).
func batchContext[T, R any](calls []*call[T, R]) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(calls[0].ctx))
	var mu sync.Mutex
	left := len(calls)
	stops := make([]func() bool, len(calls))
	for i, cl := range calls {
		stops[i] = context.AfterFunc(cl.ctx, func() {
			mu.Lock()
			left--
			if left == 0 {
				cancel()
			}
			mu.Unlock()
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}
