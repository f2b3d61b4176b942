// Package scratchdb creates PostgreSQL databases with unique names and
// drops them: the scratch databases of tests (through internal/pgtest) and
// of `stint bench`. It does not import package testing, so the shipped
// binary does not link it.
package scratchdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// LocalServer is the local server of a developer's machine and of CI: the
// default of tests (when STINT_TEST_DATABASE_URL is unset) and benchmarks.
const LocalServer = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Create creates a database with a unique name on the server at
// serverURL (prefix names it) and returns its URL and a function that drops
// it, closing any connection still open to it.
func Create(ctx context.Context, serverURL, prefix string) (dsn string, drop func() error, err error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("scratchdb: bad server URL: %w", err)
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("%s_%s_%s", prefix, time.Now().UTC().Format("20060102"), hex.EncodeToString(suffix[:]))
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("scratchdb: connect to %s: %w (start PostgreSQL or set STINT_TEST_DATABASE_URL)", u.Redacted(), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("scratchdb: create database: %w", err)
	}
	u.Path = "/" + name
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			return err
		}
		defer admin.Close(ctx)
		_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		return err
	}
	return u.String(), drop, nil
}
