package faultproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Proxy is a fault-injecting TCP proxy in front of one server. Its methods
// are safe for concurrent use.
type Proxy struct {
	tb    testing.TB
	proxy *toxiproxy.Proxy
	ctl   *control
	addr  string

	mu     sync.Mutex // serialises CutAll and the toxics' names
	toxics int
	closed bool
}

// quietLogs turns off toxiproxy's logging, once: some of its toxics log
// through zerolog's global logger.
var quietLogs sync.Once

// Start starts a proxy on a free port of 127.0.0.1 that forwards to
// upstream (host:port, such as 127.0.0.1:5432), and closes it when the
// test ends.
func Start(tb testing.TB, upstream string) *Proxy {
	tb.Helper()
	quietLogs.Do(func() { zerolog.SetGlobalLevel(zerolog.Disabled) })
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	tp := toxiproxy.NewProxy(server, "stint-"+strings.ReplaceAll(tb.Name(), "/", "-"), "127.0.0.1:0", upstream)
	p := &Proxy{tb: tb, proxy: tp, ctl: newControl()}
	// The watch toxics are in place before the first connection, so that
	// they see every stream from its first byte.
	for _, dir := range []string{"upstream", "downstream"} {
		w, err := tp.Toxics.AddToxicJson(strings.NewReader(fmt.Sprintf(
			`{"name": "watch-%s", "type": %q, "stream": %q, "attributes": {"down": %t}}`, dir, watchType, dir, dir == "downstream")))
		if err != nil {
			tb.Fatalf("faultproxy: %v", err)
		}
		w.Toxic.(*watchToxic).ctl = p.ctl
	}
	if err := tp.Start(); err != nil {
		tb.Fatalf("faultproxy: starting a proxy to %s: %v", upstream, err)
	}
	p.addr = tp.Listen // CutAll listens on it again
	tb.Cleanup(p.Close)
	return p
}

// Close stops the proxy and closes every connection through it, the
// silent ones too. Start arranges it at the test's end.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.proxy.Stop()
	p.ctl.close()
}

// Addr is the proxy's address, 127.0.0.1:PORT.
func (p *Proxy) Addr() string { return p.addr }

// DSN returns dsn (a postgres:// URL) with its host and port replaced by
// the proxy's, and sslmode=disable, so that the proxy can read the
// replies.
func (p *Proxy) DSN(dsn string) string {
	p.tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		p.tb.Fatalf("faultproxy: bad DSN: %v", err)
	}
	u.Host = p.Addr()
	q := u.Query()
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	return u.String()
}

// Connections returns how many connections through the proxy are open.
func (p *Proxy) Connections() int { return p.ctl.open() }

// CutAll closes every connection through the proxy now, both ways (the
// clients and the server see a FIN), and then accepts new ones again. A
// client that connects in between is refused.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.proxy.Stop()
	if err := p.proxy.Start(); err != nil {
		p.tb.Errorf("faultproxy: listening again after a cut: %v", err)
	}
}

// Silence makes every connection through the proxy silent, those opened
// from now on too, until Restore: what either side sends is dropped, and
// nothing is closed. A connection that loses bytes stays silent for good.
func (p *Proxy) Silence() { p.ctl.silent.Store(true) }

// Restore ends a Silence: new connections, and those that sent nothing
// meanwhile, carry data again. It returns how many connections the
// silence killed (they stay open and silent).
func (p *Proxy) Restore() int {
	p.ctl.silent.Store(false)
	return p.ctl.deadCount()
}

// Latency delays the data of every connection by latency ± jitter, each
// way, until undo is called (toxiproxy's latency toxic).
func (p *Proxy) Latency(latency, jitter time.Duration) (undo func()) {
	return p.addToxics("latency", map[string]any{"latency": latency.Milliseconds(), "jitter": jitter.Milliseconds()})
}

// Bandwidth limits every connection to kbPerSecond KB/s each way, until
// undo is called (toxiproxy's bandwidth toxic).
func (p *Proxy) Bandwidth(kbPerSecond int) (undo func()) {
	return p.addToxics("bandwidth", map[string]any{"rate": kbPerSecond})
}

// addToxics adds a toxic of one of toxiproxy's types in both directions.
func (p *Proxy) addToxics(typ string, attributes map[string]any) (undo func()) {
	p.tb.Helper()
	p.mu.Lock()
	p.toxics++
	n := p.toxics
	p.mu.Unlock()
	var names []string
	for _, dir := range []string{"upstream", "downstream"} {
		name := fmt.Sprintf("%s-%s-%d", typ, dir, n)
		body, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": dir, "attributes": attributes})
		if err != nil {
			p.tb.Fatalf("faultproxy: %v", err)
		}
		if _, err := p.proxy.Toxics.AddToxicJson(strings.NewReader(string(body))); err != nil {
			p.tb.Fatalf("faultproxy: adding a %s toxic: %v", typ, err)
		}
		names = append(names, name)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, name := range names {
				if err := p.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
					p.tb.Errorf("faultproxy: removing toxic %s: %v", name, err)
				}
			}
		})
	}
}

// Fault is what a rule did to a connection.
type Fault struct {
	// At is when the proxy saw the end of the matched reply (and, for a
	// cut, closed the connection).
	At time.Time
	// TxStatus is the transaction status of the ReadyForQuery that ended
	// the reply: 'I' when the server committed the statement (or the
	// transaction it ended), 'T' inside a transaction block, 'E' in a
	// failed one.
	TxStatus byte
}

// Committed reports whether the server had committed when the reply was
// lost: no transaction block was open.
func (f Fault) Committed() bool { return f.TxStatus == 'I' }

// CutAfterReply arms a rule that cuts the first connection on which the
// server sends a data row that match accepts: the proxy withholds that
// row and everything after it, and when the server's ReadyForQuery that
// ends the reply comes (the statement's implicit transaction has then
// committed, or the transaction block is still open), it closes the
// connection both ways. The client never sees the reply. The channel
// receives the fault once it happened.
func (p *Proxy) CutAfterReply(match Match) <-chan Fault {
	return p.ctl.arm(match, actionCut)
}

// SilenceAfterReply is CutAfterReply with a silence instead of a cut:
// from the matched row on, the connection carries nothing either way and
// stays open, for good, while the rest of the network works. The
// channel receives the fault at the server's ReadyForQuery.
func (p *Proxy) SilenceAfterReply(match Match) <-chan Fault {
	return p.ctl.arm(match, actionSilence)
}

// control is the state the proxy shares with its watch toxics.
type control struct {
	silent atomic.Bool
	armed  atomic.Int32 // rules armed: without one, replies need not be read
	done   chan struct{}

	mu      sync.Mutex
	rules   []*rule
	pending []*conn            // connections whose downstream link has not started yet
	conns   map[*conn]struct{} // open connections
}

func newControl() *control {
	return &control{done: make(chan struct{}), conns: map[*conn]struct{}{}}
}

func (c *control) close() {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
}

func (c *control) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

func (c *control) deadCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for cn := range c.conns {
		if cn.dead.Load() {
			n++
		}
	}
	return n
}

func (c *control) arm(match Match, a action) <-chan Fault {
	r := &rule{match: match, action: a, fired: make(chan Fault, 1)}
	c.mu.Lock()
	c.rules = append(c.rules, r)
	c.armed.Add(1)
	c.mu.Unlock()
	return r.fired
}

// take returns the first armed rule that accepts row, disarming it.
func (c *control) take(row Row) *rule {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range c.rules {
		if r.match(row) {
			c.rules = append(c.rules[:i], c.rules[i+1:]...)
			c.armed.Add(-1)
			return r
		}
	}
	return nil
}

// newConn records a connection whose upstream link starts; its
// downstream link, started next, takes it with pairDown.
func (c *control) newConn() *conn {
	cn := &conn{}
	c.mu.Lock()
	c.pending = append(c.pending, cn)
	c.conns[cn] = struct{}{}
	c.mu.Unlock()
	return cn
}

// pairDown returns the connection whose upstream link started last:
// toxiproxy starts a connection's upstream link and then its downstream
// link, one connection at a time, from its accept loop.
func (c *control) pairDown() *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		cn := &conn{}
		c.conns[cn] = struct{}{}
		return cn
	}
	cn := c.pending[0]
	c.pending = c.pending[1:]
	return cn
}

// ended forgets a connection once one of its links ended.
func (c *control) ended(cn *conn) {
	c.mu.Lock()
	delete(c.conns, cn)
	c.mu.Unlock()
}

// NetAddr is a convenience for tests: the host:port of a postgres:// URL.
func NetAddr(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
