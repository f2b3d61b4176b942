// Package pgtest gives each test a fresh PostgreSQL database of its own,
// created with a unique name (internal/scratchdb) and dropped when the test
// ends. Code that ships in the binary uses scratchdb directly: this package
// imports testing.
//
// The server is the one named by STINT_TEST_DATABASE_URL, or the local
// server at 127.0.0.1:5432 as user postgres when it is unset.
package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/scratchdb"
)

// DefaultURL is the server used when STINT_TEST_DATABASE_URL is unset.
const DefaultURL = scratchdb.LocalServer

// ServerURL returns the URL of the administrative database to create test
// databases from.
func ServerURL() string {
	if u := os.Getenv("STINT_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Database creates a fresh database for one test and drops it when the test
// ends.
func Database(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, drop, err := scratchdb.Create(ctx, ServerURL(), "stint_test")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := drop(); err != nil {
			tb.Errorf("pgtest: drop database: %v", err)
		}
	})
	return dsn
}
