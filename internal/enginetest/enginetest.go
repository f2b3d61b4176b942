// Package enginetest runs a test once per storage engine, each time on a
// fresh, migrated store: a new PostgreSQL database (see internal/pgtest) or
// a new SQLite file in the test's temporary directory.
//
//	func TestSomething(t *testing.T) {
//		enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
//			st := eng.Open(t)
//			...
//		})
//	}
package enginetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
	"github.com/stint-dev/stint/store/sqlite"
)

// Engine is one storage engine the tests run on.
type Engine struct {
	// Name is the engine's name as the API reports it: "postgresql" or
	// "sqlite".
	Name string
	// URL returns a --db value naming a fresh, empty database (created for
	// this test and removed after it), for tests that start processes.
	URL func(tb testing.TB) string
	// Open opens a fresh, migrated, empty store closed when the test ends.
	Open func(tb testing.TB) store.Store
}

// PostgreSQL is the PostgreSQL engine.
var PostgreSQL = Engine{
	Name: "postgresql",
	URL:  pgtest.Database,
	Open: func(tb testing.TB) store.Store {
		tb.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := postgres.Open(ctx, pgtest.Database(tb))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(st.Close)
		if err := st.Migrate(ctx); err != nil {
			tb.Fatal(err)
		}
		return st
	},
}

// SQLite is the embedded SQLite engine.
var SQLite = Engine{
	Name: "sqlite",
	URL: func(tb testing.TB) string {
		return "sqlite:" + filepath.Join(tb.TempDir(), "stint.db")
	},
	Open: func(tb testing.TB) store.Store {
		tb.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "stint.db"))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(st.Close)
		return st
	},
}

// All lists every engine.
var All = []Engine{PostgreSQL, SQLite}

// Run runs f once per engine, as a subtest named after the engine.
func Run(t *testing.T, f func(t *testing.T, eng Engine)) {
	t.Helper()
	for _, eng := range All {
		t.Run(eng.Name, func(t *testing.T) { f(t, eng) })
	}
}
