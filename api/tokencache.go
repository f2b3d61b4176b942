package api

import (
	"context"
	"sync"
	"time"
)

// DefaultTokenCacheTTL is how long a node trusts a token it has checked,
// and the knowledge that users exist, before it reads the store again.
const DefaultTokenCacheTTL = time.Second

// maxCachedTokens bounds the tokens a node remembers; past it, the cache
// starts afresh.
const maxCachedTokens = 10_000

// tokenCache remembers, for a short time, the tokens that authenticated a
// request and that the store has users, so that a node under load does not
// read the store on every request. Only successes are remembered: an
// unknown or revoked token is read from the store every time, and a
// revoked token, a removed user or a changed role takes effect on every
// node within the TTL.
type tokenCache struct {
	ttl time.Duration // zero: nothing is remembered

	mu            sync.Mutex
	tokens        map[string]cachedToken // by token id
	usersExistTil time.Time
}

// cachedToken is a checked token: the hash its secret must match, and whom
// it names.
type cachedToken struct {
	hash    []byte
	who     principal
	expires time.Time
}

func newTokenCache(ttl time.Duration) *tokenCache {
	return &tokenCache{ttl: max(ttl, 0), tokens: map[string]cachedToken{}}
}

// token returns the cached check of the token id, if fresh.
func (c *tokenCache) token(id string) (cachedToken, bool) {
	if c.ttl == 0 {
		return cachedToken{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tokens[id]
	if !ok || time.Now().After(t.expires) {
		return cachedToken{}, false
	}
	return t, true
}

// putToken remembers that the token id, whose secret hashes to hash, named
// who.
func (c *tokenCache) putToken(id string, hash []byte, who principal) {
	if c.ttl == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.tokens) >= maxCachedTokens {
		c.tokens = map[string]cachedToken{}
	}
	c.tokens[id] = cachedToken{hash: hash, who: who, expires: time.Now().Add(c.ttl)}
}

// usersExist reports whether the store had users within the TTL; false
// means "read the store".
func (c *tokenCache) usersExist() bool {
	if c.ttl == 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Before(c.usersExistTil)
}

func (c *tokenCache) sawUsers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.usersExistTil = time.Now().Add(c.ttl)
}

// hasUsers reports whether the store has users: from the cache when it saw
// some within the TTL (users are rarely all removed, and then open mode
// comes back within the TTL), else from the store (open mode ends at once
// when the first user is made).
func (s *Server) hasUsers(ctx context.Context) (bool, error) {
	if s.tokens.usersExist() {
		return true, nil
	}
	has, err := s.cfg.Store.HasUsers(ctx)
	if err == nil && has {
		s.tokens.sawUsers()
	}
	return has, err
}
