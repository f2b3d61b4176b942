package postgres

import (
	"context"

	"github.com/stint-dev/stint/store"
)

// MigrateTo applies the migrations up to version last, for tests that
// upgrade a database of an older version.
func (s *Store) MigrateTo(ctx context.Context, last int) error { return s.migrateTo(ctx, last) }

// CompactCounts folds the counter rows of gone backends, as the reads of
// the counts do now and then.
func (s *Store) CompactCounts(ctx context.Context) (int, error) { return s.compactCounts(ctx) }

// ListQuery returns the page query of ListTasks for f, and its arguments.
func ListQuery(f store.TaskFilter) (string, []any, error) {
	q, args, _, err := listQuery(f)
	return q, args, err
}
