// Package pgtest gives tests and benchmarks a fresh PostgreSQL database of
// their own, created with a unique name and dropped afterwards.
//
// The server is the one named by STINT_TEST_DATABASE_URL, or the local
// server at 127.0.0.1:5432 as user postgres when it is unset.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the server used when STINT_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL returns the URL of the administrative database to create test
// databases from.
func ServerURL() string {
	if u := os.Getenv("STINT_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// CreateDatabase creates a database with a unique name on the server at
// serverURL (prefix names it) and returns its URL and a function that drops
// it, closing any connection still open to it.
func CreateDatabase(ctx context.Context, serverURL, prefix string) (dsn string, drop func() error, err error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("pgtest: bad server URL: %w", err)
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("%s_%s_%s", prefix, time.Now().UTC().Format("20060102"), hex.EncodeToString(suffix[:]))
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("pgtest: connect to %s: %w (start PostgreSQL or set STINT_TEST_DATABASE_URL)", u.Redacted(), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("pgtest: create database: %w", err)
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

// Database creates a fresh database for one test and drops it when the test
// ends.
func Database(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, drop, err := CreateDatabase(ctx, ServerURL(), "stint_test")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := drop(); err != nil {
			tb.Errorf("pgtest: drop database: %v", err)
		}
	})
	return dsn
}
