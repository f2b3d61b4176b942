package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// unavailable reports whether err says that the store could not be reached
// or could not answer for now, so that the same request may succeed if
// tried again: a connection refused, reset or timed out, a PostgreSQL
// connection exception (SQLSTATE class 08), a shutdown or too many
// connections, a statement or lock timeout, a serialization failure or a
// deadlock, or SQLite busy or locked. Anything else (a constraint, a bad
// statement, a schema that does not fit) is a bug or a misconfiguration
// that trying again will not cure.
//
// It recognises drivers' errors by their methods rather than their types,
// so that the API does not depend on either driver: PostgreSQL's errors
// (pgconn.PgError) have SQLState() string and the driver's connection
// errors SafeToRetry() bool; SQLite's (modernc.org/sqlite) have Code() int.
func unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true // a timeout, or the server shutting down
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return unavailableSQLState(pg.SQLState())
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		switch lite.Code() & 0xff { // the primary result code
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return true
		}
		return false
	}
	var retry interface{ SafeToRetry() bool }
	if errors.As(err, &retry) && retry.SafeToRetry() {
		return true // pgconn: the request was not sent, or the connection closed first
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true // a dial, read or write on the network failed or timed out
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, net.ErrClosed, io.ErrUnexpectedEOF} {
		if errors.Is(err, e) {
			return true
		}
	}
	// The pool closed (the server is stopping), or pgconn's connection
	// closed under a request: neither has a type to recognise.
	msg := err.Error()
	return strings.Contains(msg, "closed pool") || strings.Contains(msg, "conn closed")
}

// unavailableSQLState reports whether a PostgreSQL SQLSTATE means that the
// database is unreachable or busy for now.
func unavailableSQLState(code string) bool {
	if strings.HasPrefix(code, "08") { // connection exceptions
		return true
	}
	switch code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"53300", // too_many_connections
		"55P03", // lock_not_available (lock_timeout)
		"57014", // query_canceled (statement_timeout)
		"57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03": // cannot_connect_now (starting up, in recovery)
		return true
	}
	return false
}

// internalError answers a request that failed on err, a store error or a
// bug: 503 when the store is unavailable for now (see unavailable), so
// that the client tries again; otherwise 500, with an error id that the
// log line carries too, so that the client's report finds the cause.
// Nothing is answered when the client went away.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	if unavailable(err) {
		s.log.Warn("request failed: the store is unavailable", "method", r.Method, "path", r.URL.Path, "error", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the task store could not answer; try again")
		return
	}
	id := errorID()
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error_id", id, "error", err)
	writeError(w, http.StatusInternalServerError, "internal error %s: the server logged it under this id", id)
}

// errorID returns a short random id for a logged error.
func errorID() string {
	var b [6]byte
	rand.Read(b[:]) //nolint:errcheck // never fails
	return hex.EncodeToString(b[:])
}
