package postgres

import "context"

// MigrateTo applies the migrations up to version last, for tests that
// upgrade a database of an older version.
func (s *Store) MigrateTo(ctx context.Context, last int) error { return s.migrateTo(ctx, last) }
