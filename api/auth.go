package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/auth"
	"github.com/stint-dev/stint/store"
)

// CancelPolicy says who may cancel a task (DESIGN §8).
type CancelPolicy string

// The cancel policies.
const (
	// CancelOwner: a user cancels its own tasks, an admin any task.
	CancelOwner CancelPolicy = "owner"
	// CancelAdminOnly: only admins cancel; a user gets 403.
	CancelAdminOnly CancelPolicy = "admin-only"
)

// authRecheckInterval is how often an open event stream checks again that
// its caller may still use the API: a revoked token, a removed user, or the
// first user ending open mode end the stream within this time.
var authRecheckInterval = 5 * time.Second

// principal is the caller of a request, resolved once by authenticate and
// kept in the request's context.
type principal struct {
	// user is the caller's name, the owner of what it dispatches; "" for
	// the anonymous admin of open mode.
	user  string
	admin bool
}

// mayCancel reports whether the principal may cancel tasks at all under
// the server's policy; which tasks is mayAccess's answer.
func (p principal) mayCancel(policy CancelPolicy) bool {
	return p.admin || policy == CancelOwner
}

// mayDispatch answers 403 when the principal may not dispatch a task of
// the named type, one registered with stint.AdminOnly (stint.purge), and
// reports whether to go on; field names the body's field in the detail.
func (s *Server) mayDispatch(w http.ResponseWriter, r *http.Request, field, name string) bool {
	if caller(r).admin || !s.cfg.Registry.RequiresAdmin(name) {
		return true
	}
	writeError(w, http.StatusForbidden, "%s: task %s is for admins only: it acts on every user's tasks", field, name)
	return false
}

// mayAccess reports whether the principal may see (and, by the cancel
// policy, cancel) a task. A task it may not access does not exist for it:
// 404, never 403, so that ids do not leak.
func (p principal) mayAccess(owner string) bool {
	return p.admin || owner == p.user
}

type principalKey struct{}

// caller returns the principal of a request that went through
// authenticate. A handler wired without it is a bug: the panic becomes a
// 500 and the request is refused.
func caller(r *http.Request) principal {
	p, ok := r.Context().Value(principalKey{}).(principal)
	if !ok {
		panic("api: " + r.URL.Path + " is served without authentication")
	}
	return p
}

// authenticate lets a request through to next with its principal in the
// context, or answers 401 (or 503 when the store cannot answer).
func (s *Server) authenticate(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, refusal, err := s.identify(r.Context(), r.Header)
		switch {
		case err != nil:
			s.internalError(w, r, err)
		case refusal != nil:
			s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
				"reason", refusal.detail, "token_id", refusal.tokenID)
			h := `Bearer realm="stint"`
			if refusal.tokenSent {
				h += `, error="invalid_token"`
			}
			w.Header().Set("WWW-Authenticate", h)
			writeError(w, http.StatusUnauthorized, "%s", refusal.detail)
		default:
			next(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
		}
	})
}

// refusal is why a request is not authenticated. Its detail never quotes
// what the client sent; tokenID is the public part of a token, for the
// log only.
type refusal struct {
	detail    string
	tokenSent bool
	tokenID   string
}

// Details of 401 answers. None of them quotes the Authorization header.
const (
	detailNoToken = "authentication required: send a token as Authorization: Bearer <token>"
	detailNoUsers = "this server has no users and is not open on this address: create one with " +
		"`stint user add NAME --role admin` and send its token as Authorization: Bearer <token>"
	detailScheme    = "Authorization: expected Bearer <token>"
	detailMalformed = "Authorization: the token is malformed; a Stint token reads stint_<id>_<secret>"
	detailInvalid   = "Authorization: the token is not valid: it is unknown or revoked, or its user was removed"
)

// identify resolves the caller from the Authorization header: a user by
// its token, or, while no user exists and the server allows it, the
// anonymous admin of open mode. A token that checked out is trusted for
// Config.TokenCacheTTL without reading the store again (see tokenCache);
// one that did not is read every time, and so is the absence of users, so
// that the first user ends open mode at once. err is a store error,
// refusal a 401.
func (s *Server) identify(ctx context.Context, h http.Header) (principal, *refusal, error) {
	values := h.Values("Authorization")
	if len(values) == 0 {
		hasUsers, err := s.hasUsers(ctx)
		switch {
		case err != nil:
			return principal{}, nil, fmt.Errorf("checking for users: %w", err)
		case hasUsers:
			return principal{}, &refusal{detail: detailNoToken}, nil
		case !s.cfg.AllowOpen:
			return principal{}, &refusal{detail: detailNoUsers}, nil
		}
		return principal{admin: true}, nil, nil
	}
	if len(values) > 1 {
		return principal{}, &refusal{detail: "Authorization: give the header once", tokenSent: true}, nil
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return principal{}, &refusal{detail: detailScheme, tokenSent: true}, nil
	}
	id, secret, err := auth.Parse(strings.TrimSpace(token))
	if err != nil {
		return principal{}, &refusal{detail: detailMalformed, tokenSent: true}, nil
	}
	invalid := &refusal{detail: detailInvalid, tokenSent: true, tokenID: id}
	if cached, ok := s.tokens.token(id); ok && auth.Matches(secret, cached.hash) {
		return cached.who, nil, nil
	}
	hash, user, err := s.cfg.Store.Token(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return principal{}, invalid, nil
	case err != nil:
		return principal{}, nil, fmt.Errorf("reading token %s: %w", id, err)
	case !auth.Matches(secret, hash) || user == nil || user.Name == "":
		return principal{}, invalid, nil
	}
	who := principal{user: user.Name, admin: user.Role == store.RoleAdmin}
	s.tokens.putToken(id, hash, who)
	return who, nil, nil
}

// me is GET /me: the caller, its role and the server's cancel policy.
func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	p := caller(r)
	role := store.RoleUser
	if p.admin {
		role = store.RoleAdmin
	}
	writeJSON(w, http.StatusOK, apiv1.Me{User: p.user, Role: string(role), Open: p.admin && p.user == "", CancelPolicy: string(s.cfg.CancelPolicy)})
}
