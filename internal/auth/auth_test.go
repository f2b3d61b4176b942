package auth_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stint-dev/stint/internal/auth"
)

func TestNewTokensParseAndMatch(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := auth.New()
		if err != nil {
			t.Fatal(err)
		}
		if seen[tok.ID] || seen[tok.Secret] {
			t.Fatalf("a token repeats: %s", tok.Secret)
		}
		seen[tok.ID], seen[tok.Secret] = true, true
		id, secret, err := auth.Parse(tok.Secret)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tok.Secret, err)
		}
		if id != tok.ID || !strings.HasSuffix(tok.Secret, "_"+secret) {
			t.Fatalf("Parse(%q) = %q, %q", tok.Secret, id, secret)
		}
		if !auth.Matches(secret, tok.Hash) {
			t.Fatalf("the secret of %q does not match its hash", tok.Secret)
		}
		if bytes.Contains(tok.Hash, []byte(secret)) || auth.Matches(tok.Secret, tok.Hash) {
			t.Fatalf("the hash of %q is not a hash of its secret part alone", tok.Secret)
		}
	}
}

func TestMatchesRefusesOtherSecrets(t *testing.T) {
	a, _ := auth.New()
	b, _ := auth.New()
	_, secretB, _ := auth.Parse(b.Secret)
	for _, c := range []struct {
		name   string
		secret string
		stored []byte
	}{
		{"another token's secret", secretB, a.Hash},
		{"an empty secret", "", a.Hash},
		{"a truncated hash", secretB, b.Hash[:16]},
		{"no hash", secretB, nil},
	} {
		if auth.Matches(c.secret, c.stored) {
			t.Errorf("%s matches", c.name)
		}
	}
}

func TestParseRefusesWhatIsNotAToken(t *testing.T) {
	good, _ := auth.New()
	id, secret, _ := auth.Parse(good.Secret)
	for _, s := range []string{
		"",
		"stint_",
		secret,
		"stint_" + id,
		"stint_" + id + "_",
		"STINT_" + id + "_" + secret,
		// Upper-case hex: the id may be all digits, so force a letter.
		"stint_A" + strings.ToUpper(id[1:]) + "_" + secret,
		"stint_" + id[:11] + "_" + secret,
		"stint_" + id + "0_" + secret,
		"stint_zzzzzzzzzzzz_" + secret,
		"stint_" + id + "_" + secret[:42],
		"stint_" + id + "_" + secret + "A",
		"stint_" + id + "_" + secret[:42] + "=",
		"stint_" + id + "_" + secret[:42] + "+",
		" " + good.Secret,
	} {
		if _, _, err := auth.Parse(s); !errors.Is(err, auth.ErrMalformed) {
			t.Errorf("Parse(%q): %v, want ErrMalformed", s, err)
		}
	}
}
