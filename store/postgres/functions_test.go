package postgres_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/store/postgres"
)

// functionFiles reads sql/functions: the definition of each function, by
// name.
func functionFiles(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob("sql/functions/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no files in sql/functions")
	}
	out := map[string]string{}
	for _, p := range paths {
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".sql")] = string(body)
	}
	return out
}

// newestMigration is the version of the last file of migrations.
func newestMigration(t *testing.T) int {
	t.Helper()
	paths, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(paths) == 0 {
		t.Fatalf("migrations: %v (%d files)", err, len(paths))
	}
	var v int
	if _, err := fmt.Sscanf(filepath.Base(paths[len(paths)-1]), "%04d_", &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// functionDef is pg_get_functiondef of the function name in schema, its
// name unqualified.
func functionDef(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, schema, name string) (string, error) {
	var def string
	err := q.QueryRow(ctx, `SELECT pg_get_functiondef(p.oid) FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = $1 AND p.proname = $2`, schema, name).Scan(&def)
	return strings.Replace(def, "FUNCTION "+schema+".", "FUNCTION ", 1), err
}

// checkFunctions checks that the database's functions are exactly those of
// sql/functions, one per file, each as its file defines it: the file is
// applied in a scratch schema and the two definitions (body, arguments,
// result, settings) compared as PostgreSQL prints them.
func checkFunctions(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	files := functionFiles(t)
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT p.proname FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = $1 AND p.proname LIKE 'stint\_%' ORDER BY 1`, schema)
	if err != nil {
		t.Fatal(err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, 0, len(files))
	for name := range files {
		want = append(want, name)
	}
	slices.Sort(want)
	if !slices.Equal(have, want) {
		t.Fatalf("functions in the database (one line per overload):\n%s\nwant one of each file:\n%s",
			strings.Join(have, "\n"), strings.Join(want, "\n"))
	}
	for _, name := range want {
		err := func() error {
			tx, err := pool.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx) //nolint:errcheck // nothing of the check is kept
			if _, err := tx.Exec(ctx, `CREATE SCHEMA stint_check`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SELECT set_config('search_path', 'stint_check, ' || quote_ident($1), true)`, schema); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SET LOCAL check_function_bodies = off`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, files[name]); err != nil {
				return fmt.Errorf("apply the file: %w", err)
			}
			fromFile, err := functionDef(ctx, tx, "stint_check", name)
			if err != nil {
				return fmt.Errorf("the file defines no function %s: %w", name, err)
			}
			inDatabase, err := functionDef(ctx, tx, schema, name)
			if err != nil {
				return err
			}
			if inDatabase != fromFile {
				return fmt.Errorf("the database's definition:\n%s\nthe file's:\n%s", inDatabase, fromFile)
			}
			return nil
		}()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestMigrateAppliesFunctionsFromEveryVersion upgrades a database made at
// each earlier version (0: an empty one) to the newest: its functions are
// then those of sql/functions, whatever bodies the migrations of its
// version had left (migration 0008 was edited in place in its day, so a
// database made then kept older bodies).
func TestMigrateAppliesFunctionsFromEveryVersion(t *testing.T) {
	ctx := context.Background()
	newest := newestMigration(t)
	for from := 0; from < newest; from++ {
		t.Run(fmt.Sprintf("from-%d", from), func(t *testing.T) {
			st, err := postgres.Open(ctx, pgtest.Database(t))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.MigrateTo(ctx, from); err != nil {
				t.Fatal(err)
			}
			if err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if v, err := st.SchemaVersion(ctx); err != nil || v != newest {
				t.Fatalf("schema version %d, %v; want %d", v, err, newest)
			}
			checkFunctions(t, st.Pool())
		})
	}
}

// TestMigrateReplacesOnlyChangedFunctions: a Migrate with nothing changed
// replaces no function (the rows of pg_proc stay the same versions, so no
// session's cached plans are invalidated); one whose file differs from the
// one last applied replaces that function; and a database at a version
// newer than the binary's keeps its functions, which are a newer
// release's.
func TestMigrateReplacesOnlyChangedFunctions(t *testing.T) {
	ctx := context.Background()
	st, err := postgres.Open(ctx, pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	pool := st.Pool()
	versions := func() map[string]string {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT p.proname, p.xmin::text FROM pg_proc p
			WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'stint\_%'`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		var name, xmin string
		if _, err := pgx.ForEachRow(rows, []any{&name, &xmin}, func() error { out[name] = xmin; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	settings := func(name string) []string {
		t.Helper()
		var config []string
		if err := pool.QueryRow(ctx, `SELECT coalesce(proconfig, '{}') FROM pg_proc
			WHERE pronamespace = current_schema()::regnamespace AND proname = $1`, name).Scan(&config); err != nil {
			t.Fatal(err)
		}
		return config
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}

	before := versions()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if after := versions(); !maps.Equal(before, after) {
		t.Fatalf("a Migrate with nothing to do replaced functions: %v, then %v", before, after)
	}

	// A newer release's stint_granted (told apart by a setting), at a
	// newer schema version, whose digest this binary does not know.
	newest := newestMigration(t)
	exec(`ALTER FUNCTION stint_granted(text[], bigint) SET jit = off`)
	exec(`UPDATE stint_functions SET sha256 = '\x00' WHERE name = 'stint_granted'`)
	exec(`INSERT INTO stint_migrations (version, name) VALUES ($1, 'a newer release')`, newest+1)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := settings("stint_granted"); !slices.Equal(got, []string{"jit=off"}) {
		t.Fatalf("stint_granted's settings %v after a Migrate of an older binary; want the newer release's [jit=off]", got)
	}

	// Back at this binary's version: the function whose digest differs is
	// replaced by its file, and no other.
	exec(`DELETE FROM stint_migrations WHERE version = $1`, newest+1)
	before = versions()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := settings("stint_granted"); len(got) != 0 {
		t.Fatalf("stint_granted's settings %v; want its file's (none)", got)
	}
	after := versions()
	for name, xmin := range after {
		if changed := xmin != before[name]; changed != (name == "stint_granted") {
			t.Errorf("%s replaced: %v; want only stint_granted replaced", name, changed)
		}
	}
	checkFunctions(t, pool)
}
