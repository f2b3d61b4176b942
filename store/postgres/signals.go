package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// signalListener LISTENs on a few notification channels on one dedicated
// connection, opened at the first subscription, and turns each notification
// into a coalesced signal to the subscribers of its channel. One connection
// for all: PostgreSQL wakes every listening session of a database at each
// notification on any channel, so every listener costs the server work at
// each dispatch and finish, whatever it listens to.
//
// The connection is destroyed rather than returned to the pool, and
// re-established after errors; every subscriber is signaled after a
// reconnection, since notifications may have been missed meanwhile.
type signalListener struct {
	pool     *pgxpool.Pool
	channels []string

	ctx    context.Context // ends when the store closes
	cancel context.CancelFunc

	mu      sync.Mutex
	started bool
	done    chan struct{} // closed when the listening goroutine ends
	subs    map[string]map[chan struct{}]struct{}
}

func newSignalListener(pool *pgxpool.Pool, channels ...string) *signalListener {
	ctx, cancel := context.WithCancel(context.Background())
	subs := make(map[string]map[chan struct{}]struct{}, len(channels))
	for _, c := range channels {
		subs[c] = make(map[chan struct{}]struct{})
	}
	return &signalListener{pool: pool, channels: channels, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), subs: subs}
}

// subscribe returns a channel of signals of notifications on channel
// (one of the listener's) until ctx ends or the store closes; then the
// channel is closed. The first subscription opens the connection.
func (l *signalListener) subscribe(ctx context.Context, channel string) (<-chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		return nil, l.ctx.Err()
	}
	if !l.started {
		conn, err := l.listen(ctx)
		if err != nil {
			return nil, err
		}
		l.started = true
		go l.run(conn)
	}
	ch := make(chan struct{}, 1)
	l.subs[channel][ch] = struct{}{}
	go func() {
		select {
		case <-ctx.Done():
		case <-l.ctx.Done():
		}
		l.mu.Lock()
		delete(l.subs[channel], ch)
		l.mu.Unlock()
		close(ch) // signals are sent under l.mu to subscribed channels only
	}()
	return ch, nil
}

// listen acquires a connection and LISTENs on every channel.
func (l *signalListener) listen(ctx context.Context) (*pgxpool.Conn, error) {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range l.channels {
		if _, err := conn.Exec(ctx, "LISTEN "+c); err != nil {
			conn.Release()
			return nil, err
		}
	}
	return conn, nil
}

// signal sends a coalesced signal to the subscribers of channel, or of
// every channel when channel is "".
func (l *signalListener) signal(channel string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c, subs := range l.subs {
		if channel != "" && c != channel {
			continue
		}
		for ch := range subs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// run waits for notifications until the store closes.
func (l *signalListener) run(conn *pgxpool.Conn) {
	defer close(l.done)
	for {
		n, err := conn.Conn().WaitForNotification(l.ctx)
		if err == nil {
			l.signal(n.Channel)
			continue
		}
		conn.Conn().Close(context.Background()) //nolint:errcheck // destroyed, not reused
		conn.Release()
		for {
			if l.ctx.Err() != nil {
				return
			}
			if conn, err = l.listen(l.ctx); err == nil {
				l.signal("")
				break
			}
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// close stops listening and ends every subscription.
func (l *signalListener) close() {
	l.cancel()
	l.mu.Lock()
	started := l.started
	l.mu.Unlock()
	if started {
		<-l.done
	}
}
