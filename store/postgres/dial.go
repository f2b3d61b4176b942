package postgres

import (
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// How the store's connections find out that the database went away
// without a word (a machine that vanished, a network partition, a
// connection dropped by a middlebox): without these, a connection that
// died silently is noticed only after the kernel's defaults, minutes to
// hours. Every store call is also bounded by its caller's context (the
// worker's CallTimeout), which is what unblocks a call in flight.
const (
	// keepAliveIdle, keepAliveInterval and keepAliveCount: an idle
	// connection is probed after 10 s of silence, every 5 s, and given up
	// after 3 probes without an answer (25 s in all).
	keepAliveIdle     = 10 * time.Second
	keepAliveInterval = 5 * time.Second
	keepAliveCount    = 3
	// tcpUserTimeout bounds how long data sent on a connection may stay
	// unacknowledged before the kernel gives the connection up (Linux
	// only: TCP_USER_TIMEOUT).
	tcpUserTimeout = 20 * time.Second
	// defaultConnectTimeout applies when the DSN sets no connect_timeout.
	defaultConnectTimeout = 10 * time.Second
)

// configureDialer makes cfg dial with TCP keepalives and, on Linux, a TCP
// user timeout. connect_timeout in the DSN is kept.
func configureDialer(cfg *pgconn.Config) {
	timeout := cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	d := &net.Dialer{
		Timeout: timeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount,
		},
		Control: setUserTimeout,
	}
	cfg.DialFunc = d.DialContext
}
