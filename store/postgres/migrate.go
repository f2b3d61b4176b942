package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"fmt"
	"io/fs"
	"math"
	"path"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/internal/sqlmigrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// functionFiles hold the current definition of every function of the
// schema, one per file named after it: see applyFunctions.
//
//go:embed sql/functions/*.sql
var functionFiles embed.FS

// migrationLockKey is the advisory lock that serialises migrations run by
// several nodes at once.
const migrationLockKey = 0x5717_0001

func loadMigrations() ([]sqlmigrate.Migration, error) {
	return sqlmigrate.Load(migrationFiles, "migrations")
}

// function is one file of sql/functions: a CREATE OR REPLACE FUNCTION of
// the function it is named after.
type function struct {
	name   string
	sql    string
	sha256 []byte
}

func loadFunctions() ([]function, error) {
	entries, err := fs.ReadDir(functionFiles, "sql/functions")
	if err != nil {
		return nil, err
	}
	out := make([]function, 0, len(entries))
	for _, e := range entries {
		body, err := functionFiles.ReadFile(path.Join("sql/functions", e.Name()))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		out = append(out, function{name: strings.TrimSuffix(e.Name(), ".sql"), sql: string(body), sha256: sum[:]})
	}
	return out, nil // in name order, as ReadDir returns them
}

// Migrate applies the embedded migrations that the database lacks, each in
// its own transaction, then the functions whose definitions changed (see
// applyFunctions), under an advisory lock so that several nodes may run it
// at once. Running it again changes nothing.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrateTo(ctx, math.MaxInt)
}

// migrateTo applies the migrations that the database lacks up to version
// last, and the functions when that is the newest: tests build databases
// of older versions with it.
func (s *Store) migrateTo(ctx context.Context, last int) error {
	migrations, err := loadMigrations()
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLockKey) //nolint:errcheck
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS stint_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range migrations {
		if m.Version > last {
			break
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM stint_migrations WHERE version = $1)`, m.Version).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO stint_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: %s: %w", m.Name, err)
		}
	}
	if len(migrations) == 0 || last < migrations[len(migrations)-1].Version {
		return nil
	}
	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		return applyFunctions(ctx, tx, migrations[len(migrations)-1].Version)
	}); err != nil {
		return fmt.Errorf("migrate: functions: %w", err)
	}
	return nil
}

// applyFunctions brings the functions of the schema to the definitions of
// sql/functions, in one transaction, when the database is at version
// newest, the binary's newest migration: a function whose file differs
// from the one last applied (stint_functions keeps their SHA-256) is
// replaced, so a node starting replaces nothing, and an upgrade replaces
// every function that changed whichever version it came from. A database
// at a newer version is left alone: its functions are a newer release's.
func applyFunctions(ctx context.Context, tx pgx.Tx, newest int) error {
	var version int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM stint_migrations`).Scan(&version); err != nil {
		return err
	}
	if version != newest {
		return nil
	}
	functions, err := loadFunctions()
	if err != nil {
		return err
	}
	applied := map[string][]byte{}
	rows, err := tx.Query(ctx, `SELECT name, sha256 FROM stint_functions`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name string
		var sum []byte
		if err := rows.Scan(&name, &sum); err != nil {
			return err
		}
		applied[name] = sum
	}
	if err := rows.Err(); err != nil {
		return err
	}
	// As pg_dump does: a SQL-language function may name one defined by a
	// later file.
	if _, err := tx.Exec(ctx, `SET LOCAL check_function_bodies = off`); err != nil {
		return err
	}
	names := make([]string, len(functions))
	for i, f := range functions {
		names[i] = f.name
	}
	if _, err := tx.Exec(ctx, `DELETE FROM stint_functions WHERE name <> ALL ($1)`, names); err != nil {
		return err
	}
	for _, f := range functions {
		if bytes.Equal(applied[f.name], f.sha256) {
			continue
		}
		if _, err := tx.Exec(ctx, f.sql); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO stint_functions (name, sha256) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, applied_at = now()`, f.name, f.sha256); err != nil {
			return err
		}
	}
	return nil
}

// SchemaVersion returns the newest applied migration, 0 for none.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM stint_migrations`).Scan(&v)
	return v, err
}
