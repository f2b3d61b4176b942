package api_test

import (
	"context"
	"database/sql"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store/postgres"
	"github.com/stint-dev/stint/store/sqlite"
)

// execRaw runs statements on the env's database beside the store: on the
// store's own pool (PostgreSQL) or on a connection of its own to the file
// (SQLite).
func execRaw(t *testing.T, e *env, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	switch st := e.store.(type) {
	case *postgres.Store:
		for _, q := range stmts {
			if _, err := st.Pool().Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	case *sqlite.Store:
		db, err := sql.Open("sqlite", st.Path())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, q := range stmts {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	default:
		t.Fatalf("unknown store %T", st)
	}
}

// TestStoreBugAnswers500WithErrorID: a store error that trying again will
// not cure (here a table that is gone) is a 500 whose detail names an error
// id that the log line carries too, not a 503 "try again".
func TestStoreBugAnswers500WithErrorID(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		execRaw(t, e, "ALTER TABLE stint_tasks RENAME TO stint_tasks_gone")
		a := e.do("GET", "/api/v1/tasks", nil)
		if a.status != http.StatusInternalServerError {
			t.Fatalf("status %d, want 500: %s", a.status, a.body)
		}
		id := regexp.MustCompile(`internal error ([0-9a-f]{12})`).FindStringSubmatch(a.detail())
		if id == nil {
			t.Fatalf("detail %q names no error id", a.detail())
		}
		if log := e.log.String(); !strings.Contains(log, "error_id="+id[1]) {
			t.Fatalf("the log does not carry error id %s:\n%s", id[1], log)
		}
	})
}

// TestStoreUnavailableAnswers503: a store that cannot answer for now (a
// lock held past the database's lock_timeout, SQLSTATE 55P03) is a 503
// with Retry-After, which the client may try again.
func TestStoreUnavailableAnswers503(t *testing.T) {
	e := newEnv(t, enginetest.PostgreSQL, api.Config{AllowOpen: true})
	ctx := context.Background()
	pool := e.store.(*postgres.Store).Pool()
	var db string
	if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	execRaw(t, e, `ALTER DATABASE "`+db+`" SET lock_timeout = '200ms'`)
	pool.Reset() // new connections take the setting
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, "LOCK TABLE stint_tasks IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	a := e.do("GET", "/api/v1/tasks", nil)
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Fatalf("status %d (Retry-After %q), want 503: %s", a.status, a.header.Get("Retry-After"), a.body)
	}
}
