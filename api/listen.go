package api

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Defaults of HTTPLimits.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxConnections    = 1024
)

// HTTPLimits bounds what HTTP clients may hold of a server: how long they
// may take to send a request and to read its answer, how long an idle
// keep-alive connection stays open, and how many connections are open at
// once. Zero fields take the defaults above; Serve applies them to a
// listener.
type HTTPLimits struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: a client
	// that dribbles its body is cut off.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing an answer, from the end of the request's
	// headers. Event streams are exempt (each of their writes has a
	// deadline of its own), and so is the inline run of an immediate task.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration
	// MaxConnections is the most connections served at once; a further
	// connection waits, in the kernel's queue, until one closes.
	MaxConnections int
}

// withDefaults returns l with its zero fields set to the defaults.
func (l HTTPLimits) withDefaults() HTTPLimits {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&l.ReadTimeout, DefaultReadTimeout)
	def(&l.WriteTimeout, DefaultWriteTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	return l
}

// Validate reports a limit that is negative.
func (l HTTPLimits) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"read header timeout", l.ReadHeaderTimeout}, {"read timeout", l.ReadTimeout}, {"write timeout", l.WriteTimeout}, {"idle timeout", l.IdleTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("api: %s %s: must be positive", d.name, d.v)
		}
	}
	if l.MaxConnections < 0 {
		return fmt.Errorf("api: max connections %d: must be positive", l.MaxConnections)
	}
	return nil
}

// NewHTTPServer returns an HTTP server of h with the limits' timeouts, its
// own errors logged to log at warning level. Serve it with Serve, or with
// its Serve method on LimitListener's listener.
func NewHTTPServer(h http.Handler, limits HTTPLimits, log *slog.Logger) *http.Server {
	l := limits.withDefaults()
	if log == nil {
		log = slog.Default()
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// LimitListener returns ln serving at most limits.MaxConnections
// connections at once.
func LimitListener(ln net.Listener, limits HTTPLimits) net.Listener {
	return netutil.LimitListener(ln, limits.withDefaults().MaxConnections)
}

// Serve serves srv on ln, at most limits.MaxConnections connections at
// once, until srv is shut down; it returns http.ErrServerClosed then.
func Serve(srv *http.Server, ln net.Listener, limits HTTPLimits) error {
	return srv.Serve(LimitListener(ln, limits))
}

// noWriteDeadline lifts the server's write timeout for the rest of a
// request that legitimately answers late (an event stream, an immediate
// run). It reports whether it could.
func noWriteDeadline(w http.ResponseWriter) bool {
	return http.NewResponseController(w).SetWriteDeadline(time.Time{}) == nil
}
