package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stint-dev/stint/internal/changefeed"
	"github.com/stint-dev/stint/store"
)

// changesChannel is the LISTEN/NOTIFY channel on which every change of a
// task's state or progress is published, in the transaction that makes it:
// one line "<id> <state>" per task, at most 100 lines per notification (see
// migration 0002).
const changesChannel = "stint_changes"

// Changes implements store.Store with LISTEN on a dedicated connection,
// which is destroyed rather than returned to the pool, and re-established
// after errors.
//
// A slow reader never blocks the listener: each notification goes into a
// changefeed.Backlog, which coalesces what the reader has not taken yet
// and drops (and counts, see DroppedChanges) beyond its limit.
//
// An empty batch says that changes may have been lost: it follows each
// reconnection of the listener and each drop, and a reader then re-reads
// the tasks it follows.
func (s *Store) Changes(ctx context.Context) (<-chan []store.TaskChange, error) {
	listen := func() (*pgxpool.Conn, error) {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := conn.Exec(ctx, "LISTEN "+changesChannel); err != nil {
			conn.Release()
			return nil, err
		}
		return conn, nil
	}
	conn, err := listen()
	if err != nil {
		return nil, err
	}
	b := changefeed.NewBacklog(&s.droppedChanges)
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		for {
			n, err := conn.Conn().WaitForNotification(ctx)
			if err == nil {
				b.Add(parseChanges(n.Payload))
				continue
			}
			// Destroy the connection rather than return it to the pool
			// still listening.
			conn.Conn().Close(context.WithoutCancel(ctx)) //nolint:errcheck
			conn.Release()
			for {
				if ctx.Err() != nil {
					return
				}
				if conn, err = listen(); err == nil {
					b.Lose()
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}
	}()
	out := make(chan []store.TaskChange, changefeed.Buffer)
	go func() {
		b.Pump(ctx, nil, out)
		<-listening // close the channel once the listening connection is gone
		close(out)
	}()
	return out, nil
}

// DroppedChanges counts the task changes that readers of Changes lost
// because they fell too far behind, since the store was opened. Above zero,
// a reader is too slow for the rate of changes.
func (s *Store) DroppedChanges() uint64 { return s.droppedChanges.Load() }

// parseChanges reads a notification of changesChannel, skipping malformed
// lines.
func parseChanges(payload string) []store.TaskChange {
	var out []store.TaskChange
	for line := range strings.SplitSeq(payload, "\n") {
		idText, stateText, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		id, err := uuid.Parse(idText)
		state := store.State(stateText)
		if err != nil || !state.Valid() {
			continue
		}
		out = append(out, store.TaskChange{ID: id, State: state})
	}
	return out
}
