package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/store"
)

// jsonCases are inputs and what PostgreSQL 15's jsonb returns for them
// ("" where it refuses them). TestJSONMatchesPostgres checks the table
// against a live server too.
var jsonCases = []struct{ in, want string }{
	{`{}`, `{}`},
	{` { } `, `{}`},
	{`[]`, `[]`},
	{`{"ok":true}`, `{"ok": true}`},
	{`{"b":1,"a":2,"aa":3,"c":{"y":[1,2,{}]}}`, `{"a": 2, "b": 1, "c": {"y": [1, 2, {}]}, "aa": 3}`},
	{`{"a":1,"a":2}`, `{"a": 2}`},
	{`{"é":1,"z":2}`, `{"z": 2, "é": 1}`},
	{`"x\u00e9\n\u001f/\\\/\"\b\f\r\t"`, `"xé\n\u001f/\\/\"\b\f\r\t"`},
	{`"\ud83d\ude00 \u2028"`, "\"😀 \u2028\""},
	{`"` + "\x7f" + `"`, `"` + "\x7f" + `"`},
	{`1.50`, `1.50`},
	{`1e2`, `100`},
	{`1E+2`, `100`},
	{`-0`, `0`},
	{`-0.0`, `0.0`},
	{`100e-2`, `1.00`},
	{`0.0001e2`, `0.01`},
	{`1E-3`, `0.001`},
	{`12.345e1`, `123.45`},
	{`-12.345e-1`, `-1.2345`},
	{`123456789012345678901234567890`, `123456789012345678901234567890`},
	{`1e30`, `1000000000000000000000000000000`},
	{` [1 , 2 ] `, `[1, 2]`},
	{`null`, `null`},
	{`"a"`, `"a"`},
	{`true`, `true`},
	// Refused.
	{``, ``},
	{`{`, ``},
	{`{"a" 1}`, ``},
	{`[1,]`, ``},
	{`{"a":1,}`, ``},
	{`01`, ``},
	{`1.`, ``},
	{`.5`, ``},
	{`+1`, ``},
	{`-`, ``},
	{`1e`, ``},
	{`NaN`, ``},
	{`tru`, ``},
	{`nul`, ``},
	{`"\u0000"`, ``},
	{`"\ud800"`, ``},
	{`"\udc00"`, ``},
	{`"\ud800\u0041"`, ``},
	{`"\x"`, ``},
	{`"\u12"`, ``},
	{"\"a\nb\"", ``},
	{"\"\xff\"", ``},
	{`1 2`, ``},
	{`{"a":1}x`, ``},
	{`1e-20000`, ``},
	{`0.` + strings.Repeat("0", 16383) + `1`, ``},
}

func TestNormalizeJSON(t *testing.T) {
	for _, c := range jsonCases {
		got, err := normalizeJSON([]byte(c.in))
		if c.want == "" {
			if !errors.Is(err, store.ErrUnstorable) {
				t.Errorf("%q: got %q, %v; want ErrUnstorable", c.in, got, err)
			}
			continue
		}
		if err != nil || string(got) != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	deep := strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1)
	if _, err := normalizeJSON([]byte(deep)); !errors.Is(err, store.ErrUnstorable) {
		t.Errorf("nesting deeper than %d: %v", maxJSONDepth, err)
	}
}

// randomJSON builds a random JSON text with the features normalizeJSON
// transforms: whitespace, key order, duplicate keys, escapes, numbers.
func randomJSON(rng *rand.Rand, depth int) string {
	ws := func() string { return []string{"", "", " ", "\n\t", "  \r\n"}[rng.IntN(5)] }
	str := func() string {
		parts := []string{"a", "b", "ab", "é", "日本", `\n`, `\u00e9`, `\ud83d\ude00`, `\"`, `\\`, `\/`, `\u001f`, "~", "\x7f", `\t`, " "}
		var b strings.Builder
		b.WriteByte('"')
		for range rng.IntN(4) {
			b.WriteString(parts[rng.IntN(len(parts))])
		}
		b.WriteByte('"')
		return b.String()
	}
	num := func() string {
		var b strings.Builder
		if rng.IntN(3) == 0 {
			b.WriteByte('-')
		}
		if rng.IntN(4) == 0 {
			b.WriteByte('0')
		} else {
			b.WriteByte(byte('1' + rng.IntN(9)))
			for range rng.IntN(25) {
				b.WriteByte(byte('0' + rng.IntN(10)))
			}
		}
		if rng.IntN(2) == 0 {
			b.WriteByte('.')
			for range 1 + rng.IntN(8) {
				b.WriteByte(byte('0' + rng.IntN(10)))
			}
		}
		if rng.IntN(3) == 0 {
			b.WriteString([]string{"e", "E", "e+", "e-", "E-"}[rng.IntN(5)])
			fmt.Fprint(&b, rng.IntN(40))
		}
		return b.String()
	}
	if depth > 3 {
		switch rng.IntN(3) {
		case 0:
			return str()
		case 1:
			return num()
		default:
			return []string{"true", "false", "null"}[rng.IntN(3)]
		}
	}
	switch rng.IntN(5) {
	case 0:
		var parts []string
		for range rng.IntN(5) {
			parts = append(parts, ws()+randomJSON(rng, depth+1)+ws())
		}
		return "[" + strings.Join(parts, ",") + "]"
	case 1, 2:
		var parts []string
		for range rng.IntN(6) {
			parts = append(parts, ws()+str()+ws()+":"+ws()+randomJSON(rng, depth+1)+ws())
		}
		return "{" + strings.Join(parts, ",") + "}"
	default:
		return randomJSON(rng, 4)
	}
}

// TestJSONMatchesPostgres compares normalizeJSON with a live PostgreSQL's
// jsonb, on the table above and on random values. It is skipped when no
// server is reachable (see package pgtest for which one).
func TestJSONMatchesPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
	conn, err := pgx.Connect(cctx, pgtest.ServerURL())
	ccancel()
	if err != nil {
		t.Skipf("no PostgreSQL to compare with: %v", err)
	}
	defer conn.Close(ctx)
	pgJSONB := func(in string) (string, error) {
		var out string
		err := conn.QueryRow(ctx, `SELECT $1::text::jsonb::text`, in).Scan(&out)
		return out, err
	}
	check := func(in string) {
		t.Helper()
		want, pgErr := pgJSONB(in)
		got, err := normalizeJSON([]byte(in))
		var pe *pgconn.PgError
		switch {
		case pgErr != nil && !(errors.As(pgErr, &pe) && strings.HasPrefix(pe.Code, "22")):
			t.Fatalf("%q: PostgreSQL: %v", in, pgErr)
		case pgErr != nil && err == nil:
			t.Errorf("%q: PostgreSQL refuses it (%v), normalizeJSON gives %q", in, pgErr, got)
		case pgErr == nil && err != nil:
			t.Errorf("%q: PostgreSQL gives %q, normalizeJSON refuses it: %v", in, want, err)
		case pgErr == nil && string(got) != want:
			t.Errorf("%q:\nnormalizeJSON %s\nPostgreSQL    %s", in, got, want)
		}
	}
	for _, c := range jsonCases {
		if c.in == "" {
			continue // PostgreSQL reads an empty text as invalid too, but Dispatch stores "{}"
		}
		check(c.in)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		check(randomJSON(rng, 0))
	}
}
