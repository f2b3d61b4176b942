package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/store"
)

// The counts per state live in stint_task_counts (schema 11), which
// triggers on stint_tasks maintain: one row per state and backend that
// wrote, summed on read, so that concurrent transactions never update the
// same row. Rows of backends that have gone are folded into one row per
// state by stint_compact_task_counts, which the reads below call now and
// then.

const (
	// compactAbove is how many counter rows a read may find before it
	// folds the rows of gone backends: a few per backend that writes.
	compactAbove = 64
	// compactEvery bounds how often a store folds them.
	compactEvery = 10 * time.Second
)

// countsQuery reads the maintained counts: per state, the sum and the
// number of counter rows summed.
const countsQuery = `SELECT state, sum(n)::bigint, count(*) FROM stint_task_counts GROUP BY state`

// CountByState implements store.Store: it sums the maintained counts, a
// few rows whatever the number of tasks.
func (s *Store) CountByState(ctx context.Context) (map[store.State]int, error) {
	rows, err := s.pool.Query(ctx, countsQuery)
	if err != nil {
		return nil, err
	}
	return s.scanCounts(ctx, rows)
}

// scanCounts reads the rows of countsQuery, and folds the counter rows of
// gone backends (see maybeCompactCounts) when it found many.
func (s *Store) scanCounts(ctx context.Context, rows pgx.Rows) (map[store.State]int, error) {
	defer rows.Close()
	counts := map[store.State]int{}
	read := 0
	for rows.Next() {
		var st string
		var n, k int
		if err := rows.Scan(&st, &n, &k); err != nil {
			return nil, err
		}
		if n != 0 {
			counts[store.State(st)] = n
		}
		read += k
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if read > compactAbove {
		s.maybeCompactCounts(ctx)
	}
	return counts, nil
}

// maybeCompactCounts folds the counter rows of gone backends, at most once
// per compactEvery in this store. It waits for no lock; a failure is
// left to the next call, since the counts read are right either way.
func (s *Store) maybeCompactCounts(ctx context.Context) {
	now := time.Now().UnixNano()
	last := s.lastCompaction.Load()
	if now-last < int64(compactEvery) || !s.lastCompaction.CompareAndSwap(last, now) {
		return
	}
	_, _ = s.compactCounts(ctx)
}

// compactCounts folds the counter rows of gone backends and returns how
// many it folded.
func (s *Store) compactCounts(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT stint_compact_task_counts()`).Scan(&n)
	return n, err
}

// countOfStates is how many tasks are in the given states (all states
// when none is given), from the maintained counts.
func countOfStates(counts map[store.State]int, states []store.State) int {
	total := 0
	if len(states) == 0 {
		for _, n := range counts {
			total += n
		}
		return total
	}
	seen := map[store.State]bool{}
	for _, st := range states {
		if !seen[st] {
			seen[st] = true
			total += counts[st]
		}
	}
	return total
}
