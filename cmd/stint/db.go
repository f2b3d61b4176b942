package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
	"github.com/stint-dev/stint/store/sqlite"
)

// defaultSQLite is the database stint serve uses when neither --db nor
// STINT_DB names one.
const defaultSQLite = "sqlite:stint.db"

// The engines a --db value can name, as the API's status reports them.
const (
	enginePostgreSQL = "postgresql"
	engineSQLite     = "sqlite"
)

// dbFlag adds --db, defaulting to $STINT_DB, or to fallback when that is
// unset too.
func dbFlag(cmd *cobra.Command, target *string, fallback string) {
	def := defaultDBValue(fallback)
	usage := "database: postgres://user@host/dbname or sqlite:PATH (env STINT_DB)"
	if fallback == "" {
		usage = "database URL, postgres://user@host/dbname (env STINT_DB)"
	}
	cmd.Flags().StringVar(target, "db", def, usage)
}

// defaultDBValue is $STINT_DB, or fallback when it is unset.
func defaultDBValue(fallback string) string {
	if v := os.Getenv("STINT_DB"); v != "" {
		return v
	}
	return fallback
}

// dbTarget is what a --db value names.
type dbTarget struct {
	engine string // enginePostgreSQL or engineSQLite
	dsn    string // the PostgreSQL URL or the SQLite file's path
}

// parseDB reads a --db value: postgres://..., postgresql://..., or
// sqlite:PATH (sqlite://PATH is accepted too).
func parseDB(value string) (dbTarget, error) {
	switch {
	case value == "":
		return dbTarget{}, fmt.Errorf("--db is required (or set STINT_DB), e.g. --db postgres://user@host/dbname")
	case strings.HasPrefix(value, "postgres://"), strings.HasPrefix(value, "postgresql://"):
		return dbTarget{engine: enginePostgreSQL, dsn: value}, nil
	case strings.HasPrefix(value, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(value, "sqlite:"), "//")
		if path == "" {
			return dbTarget{}, fmt.Errorf("--db %s: no file; use sqlite:PATH, e.g. sqlite:stint.db", value)
		}
		return dbTarget{engine: engineSQLite, dsn: path}, nil
	default:
		return dbTarget{}, fmt.Errorf("--db %q: not a database URL; use postgres://user@host/dbname or sqlite:PATH", value)
	}
}

// openStore opens the store a --db value names. Commands that run beside
// other processes (worker, api) pass sharedOnly and refuse SQLite, which
// serves one process per file.
func openStore(ctx context.Context, command, value string, sharedOnly bool) (store.Store, dbTarget, error) {
	target, err := parseDB(value)
	if err != nil {
		return nil, target, err
	}
	switch target.engine {
	case engineSQLite:
		if sharedOnly {
			return nil, target, fmt.Errorf("--db %s: stint %s needs PostgreSQL (postgres://...): an SQLite file serves one process, so use stint serve on it", value, command)
		}
		st, err := sqlite.Open(ctx, target.dsn)
		return st, target, err
	default:
		st, err := postgres.Open(ctx, target.dsn)
		return st, target, err
	}
}
