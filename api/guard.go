package api

import (
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/stint-dev/stint/apiv1"
)

// guard wraps the server's handler with what keeps web pages of other
// sites out (docs/security.md): any page may send a "simple" request (a
// form, text/plain) to any address, 127.0.0.1 included, without the
// browser asking the server first, and a page whose name an attacker
// rebinds to 127.0.0.1 is, to the browser, of the same origin as the
// server. So:
//
//   - a request body must be application/json (415 otherwise), which a
//     page of another origin cannot send without a CORS preflight that
//     the API never grants;
//   - a state-changing request from a browser of another origin is
//     refused (403), by its Origin and Sec-Fetch-Site headers
//     (http.CrossOriginProtection); the web UI, of the same origin, and
//     clients that send no Origin (the CLI, the Go client, curl) pass;
//   - in open mode (no users), a request to the API must be addressed to
//     a loopback name or address (403 otherwise), which a rebound name is
//     not, unless the server is open on purpose to every name
//     (Config.OpenAnyHost).
func (s *Server) guard(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused: a web page of another origin (Origin %q) may not change anything here; "+
			"the API accepts state-changing requests from its own origin, or without an Origin header", r.Header.Get("Origin"))
	}))
	checked := cop.Handler(requireJSON(next))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.openHostAllowed(w, r) {
			return
		}
		checked.ServeHTTP(w, r)
	})
}

// requireJSON answers 415 to a request whose body is not declared
// application/json (parameters such as charset=utf-8 may follow; a
// charset other than UTF-8 is refused, since JSON is UTF-8).
func requireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
		default:
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength == 0 || !strings.HasPrefix(r.URL.Path, apiv1.Prefix+"/") {
			next.ServeHTTP(w, r) // no body: nothing to parse
			return
		}
		ct := r.Header.Get("Content-Type")
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" || (params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8")) {
			if ct == "" {
				ct = "none"
			}
			writeError(w, http.StatusUnsupportedMediaType, "Content-Type: the body must be sent as application/json (got %s)", ct)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// openHostAllowed refuses, with 403, a request that would be let in as the
// anonymous admin of open mode although it is addressed to a name that is
// not a loopback one (DNS rebinding). Public paths answer any Host.
func (s *Server) openHostAllowed(w http.ResponseWriter, r *http.Request) bool {
	if !s.cfg.AllowOpen || s.cfg.OpenAnyHost || loopbackHost(r.Host) || !strings.HasPrefix(r.URL.Path, apiv1.Prefix+"/") {
		return true
	}
	switch strings.TrimRight(r.URL.Path, "/") {
	case apiv1.Prefix + "/status", apiv1.Prefix + "/openapi.json":
		return true
	}
	if len(r.Header.Values("Authorization")) > 0 {
		return true // not let in as the anonymous admin, whatever the Host
	}
	hasUsers, err := s.hasUsers(r.Context())
	if err != nil {
		s.internalError(w, r, err)
		return false
	}
	if hasUsers {
		return true // not open: authenticate answers 401
	}
	s.log.Warn("request to the open API refused: not addressed to a loopback name", "host", r.Host, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	writeError(w, http.StatusForbidden, "this server has no users and answers requests without a token only when they are addressed to a loopback name "+
		"(localhost, 127.0.0.1, [::1]), not %q; create a user (stint user add NAME --role admin) and send its token", r.Host)
	return false
}

// loopbackHost reports whether the Host of a request, with or without a
// port, names this machine only: localhost (or a name under .localhost),
// an address of 127.0.0.0/8, or ::1.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
