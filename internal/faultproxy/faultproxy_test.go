package faultproxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/internal/faultproxy"
	"github.com/stint-dev/stint/internal/pgtest"
)

// setup returns a fresh database with a table, a direct connection to it,
// and a proxy in front of its server.
func setup(t *testing.T) (ctx context.Context, dsn string, direct *pgx.Conn, p *faultproxy.Proxy) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	dsn = pgtest.Database(t)
	direct, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Close(context.Background()) })
	if _, err := direct.Exec(ctx, `CREATE TABLE marks (mark text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	addr, err := faultproxy.NetAddr(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, dsn, direct, faultproxy.Start(t, addr)
}

func connect(ctx context.Context, t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func count(ctx context.Context, t *testing.T, direct *pgx.Conn, mark string) int {
	t.Helper()
	var n int
	if err := direct.QueryRow(ctx, `SELECT count(*) FROM marks WHERE mark = $1`, mark).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFault(t *testing.T, faults <-chan faultproxy.Fault) faultproxy.Fault {
	t.Helper()
	select {
	case f := <-faults:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("the rule did not fire")
	}
	return faultproxy.Fault{}
}

// An autocommit statement whose reply is cut: the server committed, the
// client got an error, and the next connection works.
func TestCutAfterReplyLosesACommittedReply(t *testing.T) {
	ctx, dsn, direct, p := setup(t)
	conn := connect(ctx, t, p.DSN(dsn))
	// Rows before the armed one pass.
	if _, err := conn.Exec(ctx, `INSERT INTO marks VALUES ('before')`); err != nil {
		t.Fatal(err)
	}
	faults := p.CutAfterReply(func(r faultproxy.Row) bool { return r.Has([]byte("cut-me")) })
	var got string
	err := conn.QueryRow(ctx, `INSERT INTO marks VALUES ('cut-me') RETURNING mark`).Scan(&got)
	if err == nil {
		t.Fatalf("the client got the reply %q", got)
	}
	f := waitFault(t, faults)
	if !f.Committed() {
		t.Fatalf("transaction status %q at the cut, want I", f.TxStatus)
	}
	if n := count(ctx, t, direct, "cut-me"); n != 1 {
		t.Fatalf("the statement whose reply was cut left %d rows, want 1 (committed)", n)
	}
	again := connect(ctx, t, p.DSN(dsn))
	if _, err := again.Exec(ctx, `INSERT INTO marks VALUES ('after')`); err != nil {
		t.Fatalf("a new connection after the cut: %v", err)
	}
	t.Logf("client's error: %v", err)
}

// A cut inside a transaction block: the server rolls it back.
func TestCutAfterReplyInATransaction(t *testing.T) {
	ctx, dsn, direct, p := setup(t)
	conn := connect(ctx, t, p.DSN(dsn))
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	faults := p.CutAfterReply(func(r faultproxy.Row) bool { return r.Has([]byte("in-tx")) })
	var got string
	if err := tx.QueryRow(ctx, `INSERT INTO marks VALUES ('in-tx') RETURNING mark`).Scan(&got); err == nil {
		t.Fatalf("the client got the reply %q", got)
	}
	if f := waitFault(t, faults); f.TxStatus != 'T' {
		t.Fatalf("transaction status %q at the cut, want T", f.TxStatus)
	}
	// The server ends the session when it reads the end of the stream,
	// and the transaction with it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var open int
		if err := direct.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still open 10 s after the cut", open)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := count(ctx, t, direct, "in-tx"); n != 0 {
		t.Fatalf("the cut transaction left %d rows", n)
	}
}

// A reply silenced: the statement committed, the client hears nothing
// until its own deadline, and the connection is never closed by the
// proxy; other connections work.
func TestSilenceAfterReply(t *testing.T) {
	ctx, dsn, direct, p := setup(t)
	conn := connect(ctx, t, p.DSN(dsn))
	faults := p.SilenceAfterReply(func(r faultproxy.Row) bool { return r.Has([]byte("hush")) })
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	began := time.Now()
	var got string
	err := conn.QueryRow(qctx, `INSERT INTO marks VALUES ('hush') RETURNING mark`).Scan(&got)
	if err == nil {
		t.Fatalf("the client got the reply %q", got)
	}
	if waited := time.Since(began); waited < 900*time.Millisecond {
		t.Fatalf("the client gave up after %v with %v: the connection was not silent", waited, err)
	}
	if f := waitFault(t, faults); !f.Committed() {
		t.Fatalf("transaction status %q, want I", f.TxStatus)
	}
	if n := count(ctx, t, direct, "hush"); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
	other := connect(ctx, t, p.DSN(dsn))
	if _, err := other.Exec(ctx, `SELECT 1`); err != nil {
		t.Fatalf("another connection: %v", err)
	}
}

// Silence, then Restore: a connection that sent into the silence stays
// dead, an idle one and new ones work.
func TestSilenceAndRestore(t *testing.T) {
	ctx, dsn, _, p := setup(t)
	busy := connect(ctx, t, p.DSN(dsn))
	idle := connect(ctx, t, p.DSN(dsn))
	p.Silence()
	qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := busy.Exec(qctx, `SELECT 1`); !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(errString(err), "timeout") {
		t.Fatalf("a statement in the silence: %v, want a timeout", err)
	}
	cctx, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel2()
	if c, err := pgx.Connect(cctx, p.DSN(dsn)); err == nil {
		c.Close(ctx)
		t.Fatal("a connection opened in the silence")
	}
	dead := p.Restore()
	if dead < 1 {
		t.Fatalf("Restore says %d connections died", dead)
	}
	if _, err := idle.Exec(ctx, `SELECT 1`); err != nil {
		t.Fatalf("the idle connection after the silence: %v", err)
	}
	if _, err := connect(ctx, t, p.DSN(dsn)).Exec(ctx, `SELECT 1`); err != nil {
		t.Fatalf("a new connection after the silence: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// CutAll ends every session (the server sees it) and new ones work.
func TestCutAll(t *testing.T) {
	ctx, dsn, direct, p := setup(t)
	conn := connect(ctx, t, p.DSN(dsn))
	var pid int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	p.CutAll()
	if _, err := conn.Exec(ctx, `SELECT 1`); err == nil {
		t.Fatal("a cut connection still works")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var alive bool
		if err := direct.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)`, pid).Scan(&alive); err != nil {
			t.Fatal(err)
		}
		if !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server's session outlived the cut by 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := connect(ctx, t, p.DSN(dsn)).Exec(ctx, `SELECT 1`); err != nil {
		t.Fatalf("a new connection after the cut: %v", err)
	}
}

// Latency and Bandwidth slow a connection down, and undo restores it.
func TestLatencyAndBandwidth(t *testing.T) {
	ctx, dsn, _, p := setup(t)
	conn := connect(ctx, t, p.DSN(dsn))
	roundTrip := func() time.Duration {
		began := time.Now()
		if _, err := conn.Exec(ctx, `SELECT 1`); err != nil {
			t.Fatal(err)
		}
		return time.Since(began)
	}
	undo := p.Latency(50*time.Millisecond, 0)
	if d := roundTrip(); d < 100*time.Millisecond {
		t.Errorf("a round trip with 50 ms each way took %v", d)
	}
	undo()
	if d := roundTrip(); d > 90*time.Millisecond {
		t.Errorf("a round trip after the latency's undo took %v", d)
	}
	undo = p.Bandwidth(64)
	defer undo()
	began := time.Now()
	var s string
	if err := conn.QueryRow(ctx, `SELECT repeat('x', 128 * 1024)`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d < time.Second {
		t.Errorf("128 KB at 64 KB/s took %v", d)
	}
}
