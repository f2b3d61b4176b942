// Package auth makes and checks Stint's API tokens.
//
// A token reads "stint_" + ID + "_" + SECRET: the ID (12 hex digits) is
// public and names the token in lists and in `stint user revoke`; the
// SECRET (32 random bytes from crypto/rand, base64url) is shown once, when
// the token is made. The store keeps only the ID and Hash(SECRET), a
// SHA-256: the secret has 256 bits of entropy, so a slow password hash would
// add nothing. A server looks a token up by its ID and compares hashes with
// Matches, in constant time.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// prefix starts every token, so that secret scanners recognise them.
const prefix = "stint_"

// The lengths of a token's parts: 6 random bytes in hex, 32 in base64url.
var (
	idLen     = hex.EncodedLen(6)
	secretLen = base64.RawURLEncoding.EncodedLen(32)
)

// ErrMalformed is returned by Parse for a string that is not a token.
var ErrMalformed = errors.New("not a Stint token")

// Token is a new API token.
type Token struct {
	ID     string // public: stored, listed, used to revoke
	Secret string // the whole token, shown once and never stored
	Hash   []byte // what the store keeps
}

// New makes a token from crypto/rand.
func New() (Token, error) {
	var id [6]byte      // idLen
	var secret [32]byte // secretLen
	if _, err := rand.Read(id[:]); err != nil {
		return Token{}, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return Token{}, err
	}
	s := base64.RawURLEncoding.EncodeToString(secret[:])
	t := Token{ID: hex.EncodeToString(id[:])}
	t.Secret = prefix + t.ID + "_" + s
	t.Hash = Hash(s)
	return t, nil
}

// Parse splits a token into its ID and secret part.
func Parse(token string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(token, prefix)
	if !ok {
		return "", "", ErrMalformed
	}
	// The id is hex, so the first "_" ends it; the secret may hold more.
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != idLen || id != strings.ToLower(id) || len(secret) != secretLen {
		return "", "", ErrMalformed
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", "", ErrMalformed
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(secret); err != nil {
		return "", "", ErrMalformed
	}
	return id, secret, nil
}

// Hash returns what the store keeps for a token's secret part.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Matches reports, in constant time, whether secret hashes to stored.
func Matches(secret string, stored []byte) bool {
	return subtle.ConstantTimeCompare(Hash(secret), stored) == 1
}
