package api

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "modernc.org/sqlite" // the driver, for real SQLite errors
)

// sqliteErrors returns real errors of the SQLite driver: a write refused
// while another connection holds the write lock (SQLITE_BUSY), and a
// statement on a table that does not exist.
func sqliteErrors(t *testing.T) (busy, noTable error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.db")
	a, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if _, err := a.ExecContext(ctx, "CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	tx, err := a.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck
	if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	_, busy = b.ExecContext(ctx, "INSERT INTO t VALUES (2)")
	_, noTable = b.ExecContext(ctx, "SELECT * FROM missing")
	if busy == nil || noTable == nil {
		t.Fatalf("expected errors, got %v and %v", busy, noTable)
	}
	return busy, noTable
}

// refusedDial returns the error of a TCP connection to a port nobody
// listens on.
func refusedDial(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		t.Skip("something listens on a port just closed")
	}
	return err
}

func TestUnavailableClassifiesStoreErrors(t *testing.T) {
	busy, noTable := sqliteErrors(t)
	pg := func(code string) error { return &pgconn.PgError{Severity: "ERROR", Code: code, Message: "test"} }
	wrap := func(err error) error { return fmt.Errorf("listing tasks: %w", err) }
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", wrap(refusedDial(t)), true},
		{"deadline", wrap(context.DeadlineExceeded), true},
		{"canceled (shutdown)", context.Canceled, true},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, true},
		{"unexpected EOF", wrap(fmt.Errorf("read: %w", io.ErrUnexpectedEOF)), true},
		{"pg connection failure 08006", wrap(pg("08006")), true},
		{"pg connection does not exist 08003", pg("08003"), true},
		{"pg admin shutdown 57P01", wrap(pg("57P01")), true},
		{"pg cannot connect now 57P03", pg("57P03"), true},
		{"pg serialization failure 40001", wrap(pg("40001")), true},
		{"pg deadlock 40P01", pg("40P01"), true},
		{"pg lock timeout 55P03", pg("55P03"), true},
		{"pg statement timeout 57014", pg("57014"), true},
		{"pg too many connections 53300", pg("53300"), true},
		{"pg unique violation 23505", wrap(pg("23505")), false},
		{"pg undefined table 42P01", pg("42P01"), false},
		{"pg syntax error 42601", pg("42601"), false},
		{"pg check violation 23514", pg("23514"), false},
		{"pg auth failed 28P01", pg("28P01"), false},
		{"sqlite busy", wrap(busy), true},
		{"sqlite no such table", wrap(noTable), false},
		{"closed pool", wrap(errors.New("closed pool")), true},
		{"a bug", errors.New("scanning task: unexpected NULL"), false},
		{"nil", nil, false},
	}
	for _, tc := range cases {
		if got := unavailable(tc.err); got != tc.want {
			t.Errorf("%s: unavailable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
