package api_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// openStream opens GET /events and returns its answer; the stream is
// closed when the test ends, or by calling the cancel returned.
func (e *env) openStream(authz string) (*http.Response, context.CancelFunc) {
	e.tb.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	e.tb.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.http.URL+"/api/v1/events", nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode == http.StatusOK {
		sc := bufio.NewReader(resp.Body)
		if line, err := sc.ReadString('\n'); err != nil || line != ": connected\n" {
			e.tb.Fatalf("events: first line %q, %v", line, err)
		}
	}
	return resp, func() { cancel(); resp.Body.Close() }
}

// TestEventStreamsCapped: beyond the limit per user, and beyond the limit
// in all, a stream is refused with 429 and a detail; closing one makes
// room again.
func TestEventStreamsCapped(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{MaxEventStreams: 3, MaxEventStreamsPerUser: 2})
		alice := "Bearer " + e.addUser("alice", store.RoleUser)
		bob := "Bearer " + e.addUser("bob", store.RoleUser)
		carol := "Bearer " + e.addUser("carol", store.RoleUser)
		_, closeFirst := e.openStream(alice)
		e.openStream(alice)
		if resp, _ := e.openStream(alice); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("alice's third stream: %d, want 429", resp.StatusCode)
		}
		if a := e.as(strings.TrimPrefix(alice, "Bearer ")).do("GET", "/api/v1/events", nil); a.status != http.StatusTooManyRequests ||
			!strings.Contains(a.detail(), "limit per user") || a.header.Get("Retry-After") == "" {
			t.Fatalf("alice's third stream: %d %q", a.status, a.detail())
		}
		e.openStream(bob)
		if a := e.as(strings.TrimPrefix(carol, "Bearer ")).do("GET", "/api/v1/events", nil); a.status != http.StatusTooManyRequests ||
			!strings.Contains(a.detail(), "its limit") {
			t.Fatalf("a fourth stream in all: %d %q", a.status, a.detail())
		}
		closeFirst()
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, _ := e.openStream(carol)
			if resp.StatusCode == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after a stream closed, a new one is still %d", resp.StatusCode)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestIdleEventStreamsCostLittle measures the heap that idle streams hold
// (server and client sides, both in this process): it was about 480 KiB a
// stream, a queue preallocated for 4096 events; it is now a few KiB.
func TestIdleEventStreamsCostLittle(t *testing.T) {
	const streams = 100
	e := newEnv(t, enginetest.SQLite, api.Config{AllowOpen: true, MaxEventStreams: streams, MaxEventStreamsPerUser: streams})
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	e.openStream("") // warm up: the first stream's one-off allocations
	before := heap()
	for range streams - 1 {
		e.openStream("")
	}
	per := (int64(heap()) - int64(before)) / (streams - 1)
	t.Logf("%d idle event streams: %d KiB each (server and client)", streams, per/1024)
	if per > 64<<10 {
		t.Fatalf("an idle event stream holds %d KiB, want under 64", per/1024)
	}
}

// TestEventsResyncWhenChangesLost: when the store says that changes may
// have been lost (here PostgreSQL's listener connection was killed and
// reconnected), every stream gets a resync event, and events go on after
// it. PostgreSQL only: the embedded engine loses changes only beyond a
// backlog of 100,000 tasks.
func TestEventsResyncWhenChangesLost(t *testing.T) {
	e := newEnv(t, enginetest.PostgreSQL, api.Config{AllowOpen: true})
	events := e.openEvents("")
	pool := e.store.(*postgres.Store).Pool()
	var killed int
	if err := pool.QueryRow(e.ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'LISTEN stint_changes%'`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("%d listeners killed, want 1", killed)
	}
	timeout := time.After(20 * time.Second)
	for resynced := false; ; {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			switch {
			case ev.name == apiv1.EventResync:
				resynced = true
				e.dispatch(apiv1.DispatchTask{Name: "stint.noop"})
			case ev.name == apiv1.EventTask && resynced:
				return
			}
		case <-timeout:
			t.Fatal("no resync event, then task event, after the listener was killed")
		}
	}
}

// TestEventsListenOnlyWhileStreamsOpen: the hub listens to the store's task
// changes only while an event stream is open (and a short linger after),
// so that a node nobody watches does not read every change of every task;
// a stream opened after the hub stopped listening still gets every change
// that commits once it is connected. On PostgreSQL the listening
// connection is seen come and go.
func TestEventsListenOnlyWhileStreamsOpen(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		listeners := func() int {
			pg, ok := e.store.(*postgres.Store)
			if !ok {
				return -1 // not observable on the embedded engine
			}
			var n int
			if err := pg.Pool().QueryRow(e.ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND query ILIKE 'LISTEN stint_changes%'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		waitListeners := func(want int) {
			t.Helper()
			if listeners() < 0 {
				return
			}
			deadline := time.Now().Add(10 * time.Second)
			for listeners() != want {
				if time.Now().After(deadline) {
					t.Fatalf("%d connections listen for task changes, want %d", listeners(), want)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		gets := func(events <-chan sseEvent) {
			t.Helper()
			e.dispatchAndAwaitEvent(events)
		}

		e.dispatch(apiv1.DispatchTask{Name: "stint.noop"})
		time.Sleep(2 * api.FeedLinger())
		waitListeners(0)

		first, closeFirst := e.openClosableEvents("")
		waitListeners(1)
		gets(first)
		second, closeSecond := e.openClosableEvents("")
		waitListeners(1) // one listener serves every stream
		gets(second)
		closeFirst()
		gets(second)
		closeSecond()
		waitListeners(0)

		// Many rounds of a stream opened as the hub stops or has stopped
		// listening: each gets its task's event.
		for range 5 {
			events, closeEvents := e.openClosableEvents("")
			gets(events)
			closeEvents()
			time.Sleep(api.FeedLinger() + time.Duration(rand.IntN(20))*time.Millisecond - 10*time.Millisecond)
		}
	})
}

// TestEventsRefusedWhileChangesCannotBeFollowed: when the node cannot
// listen to the database's changes (here the database refuses new
// connections), a new stream is refused with 503, a detail and
// Retry-After, rather than connected and then silent; once the database
// takes connections again, the next stream is connected. PostgreSQL only:
// the embedded engine's changes are in the process.
func TestEventsRefusedWhileChangesCannotBeFollowed(t *testing.T) {
	// The caller's token is checked once and then answered from the
	// cache, so that the request gets as far as the stream.
	e := newEnv(t, enginetest.PostgreSQL, api.Config{TokenCacheTTL: time.Minute})
	e = e.as(e.addUser("alice", store.RoleAdmin))
	e.dispatch(apiv1.DispatchTask{Name: "stint.noop"})
	pool := e.store.(*postgres.Store).Pool()
	db := pool.Config().ConnConfig.Database
	cfg := pool.Config().ConnConfig.Copy()
	cfg.Database = "postgres" // a database may not refuse connections to itself
	admin, err := pgx.ConnectConfig(e.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	allow := func(on bool) {
		t.Helper()
		if _, err := admin.Exec(e.ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", pgx.Identifier{db}.Sanitize(), on)); err != nil {
			t.Fatal(err)
		}
	}
	allow(false)
	t.Cleanup(func() { allow(true) })
	pool.Reset() // the pool's connections are closed: the listener needs a new one

	a := e.do("GET", "/api/v1/events", nil)
	if a.status != http.StatusServiceUnavailable || !strings.Contains(a.detail(), "cannot follow task changes") || a.header.Get("Retry-After") == "" {
		t.Fatalf("a stream while the database refuses connections: %d %q (Retry-After %q)", a.status, a.detail(), a.header.Get("Retry-After"))
	}
	allow(true)
	e.dispatchAndAwaitEvent(e.openEvents(""))
}

// dispatchAndAwaitEvent dispatches a no-op task and waits for its event on
// events.
func (e *env) dispatchAndAwaitEvent(events <-chan sseEvent) {
	e.tb.Helper()
	id := e.dispatch(apiv1.DispatchTask{Name: "stint.noop"})
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				e.tb.Fatal("the stream ended")
			}
			if ev.name == apiv1.EventTask && ev.data.ID == id {
				return
			}
		case <-timeout:
			e.tb.Fatalf("no event of task %s", id)
		}
	}
}
