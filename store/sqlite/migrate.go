package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/stint-dev/stint/internal/sqlmigrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

func loadMigrations() ([]sqlmigrate.Migration, error) {
	return sqlmigrate.Load(migrationFiles, "migrations")
}

// Migrate implements store.Store: it applies the embedded migrations the
// database lacks, each in its own transaction, and records them in the
// table stint_schema. Open already did; running it again changes nothing.
func (s *Store) Migrate(ctx context.Context) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return errClosed
	}
	return s.migrateLocked(ctx)
}

func (s *Store) migrate(ctx context.Context) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.migrateLocked(ctx)
}

func (s *Store) migrateLocked(ctx context.Context) error {
	return migrateDB(ctx, s.wdb, s.path)
}

// newestMigration is the schema version this Stint knows.
func newestMigration() (int, error) {
	migrations, err := loadMigrations()
	if err != nil {
		return 0, err
	}
	return migrations[len(migrations)-1].Version, nil
}

// migrateDB applies the migrations the database at path lacks through db,
// its write connection. The caller holds the one-process lock.
func migrateDB(ctx context.Context, db *sql.DB, path string) error {
	migrations, err := loadMigrations()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS stint_schema (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}
	var newest int
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM stint_schema`).Scan(&newest); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}
	if known := migrations[len(migrations)-1].Version; newest > known {
		return fmt.Errorf("sqlite: %s has schema version %d, newer than this Stint knows (%d): use a newer Stint", path, newest, known)
	}
	for _, m := range migrations {
		if m.Version <= newest {
			continue
		}
		err := func() error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback() //nolint:errcheck
			var done bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM stint_schema WHERE version = ?)`, m.Version).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO stint_schema (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, nowMicros()); err != nil {
				return err
			}
			return tx.Commit()
		}()
		if err != nil {
			return fmt.Errorf("sqlite: migrate %s: %s: %w", path, m.Name, err)
		}
	}
	return nil
}

// SchemaVersion returns the newest applied migration, 0 for none.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.rdb.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM stint_schema`).Scan(&v)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return v, err
}
