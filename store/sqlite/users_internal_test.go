package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestServerWaitsForUserStoreWrite holds SQLite's write lock in a
// UserStore transaction: the server's next write waits for it
// (busy_timeout) rather than fail.
func TestServerWaitsForUserStoreWrite(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "stint.db")
	st, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := OpenUsers(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	const hold = 300 * time.Millisecond
	locked := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- u.usersWrite(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, sqlCreateUser, "slow", "user", nowMicros()); err != nil {
				return err
			}
			close(locked)
			time.Sleep(hold)
			return nil
		})
	}()
	<-locked
	start := time.Now()
	nt := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.a", Args: json.RawMessage(`{}`)}
	if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
		t.Fatalf("Dispatch while a UserStore writes: %v", err)
	}
	if waited := time.Since(start); waited < hold/2 {
		t.Errorf("Dispatch took %v: it did not wait for the UserStore's write lock", waited)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, usr, err := st.Token(ctx, "none"); err != store.ErrNotFound || usr != nil {
		t.Fatal(err)
	}
	if has, err := st.HasUsers(ctx); err != nil || !has {
		t.Fatalf("HasUsers: %v %v", has, err)
	}
}

// holdUnmigrated takes the lock of a new file and makes it WAL without
// migrating it, as a server does at the start of Open.
func holdUnmigrated(t *testing.T, ctx context.Context) (path string, db *sql.DB) {
	path = filepath.Join(t.TempDir(), "stint.db")
	lf, err := acquireLock(lockPath(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = releaseLock(lf) })
	db, err = openWriter(ctx, path, 2048)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return path, db
}

// TestOpenUsersWaitsForTheHolderToMigrate opens a UserStore on a file whose
// holder is still migrating it: OpenUsers waits until it has.
func TestOpenUsersWaitsForTheHolderToMigrate(t *testing.T) {
	ctx := testCtx(t)
	path, db := holdUnmigrated(t, ctx)
	var migrated atomic.Bool
	opened := make(chan error, 1)
	go func() {
		u, err := OpenUsers(ctx, path)
		if err == nil {
			if !migrated.Load() {
				t.Error("OpenUsers returned before the holder migrated the file")
			}
			err = u.CreateUser(ctx, "u", store.RoleUser)
			u.Close()
		}
		opened <- err
	}()
	time.Sleep(4 * schemaPoll)
	migrated.Store(true)
	if err := migrateDB(ctx, db, path); err != nil {
		t.Fatal(err)
	}
	if err := <-opened; err != nil {
		t.Fatalf("OpenUsers: %v", err)
	}
}

// TestOpenUsersRefusesANewerSchema: a file some newer Stint migrated
// further is refused, held or not.
func TestOpenUsersRefusesANewerSchema(t *testing.T) {
	ctx := testCtx(t)
	path, db := holdUnmigrated(t, ctx)
	if err := migrateDB(ctx, db, path); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO stint_schema (version, name, applied_at) VALUES (99, '0099_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	if u, err := OpenUsers(ctx, path); err == nil || !strings.Contains(err.Error(), "newer than this Stint knows") {
		if err == nil {
			u.Close()
		}
		t.Fatalf("OpenUsers of a held file with a newer schema: %v", err)
	}
	db.Close()
	if u, err := OpenUsers(ctx, path+"-other"); err != nil {
		t.Fatal(err)
	} else {
		u.Close()
	}
}

// TestMigrateFromVersion1 opens a file of schema version 1, with a task:
// Open brings it to version 2 and keeps the task.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "stint.db")
	db, err := openWriter(ctx, path, 2048)
	if err != nil {
		t.Fatal(err)
	}
	migrations, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.Must(uuid.NewV7())
	for _, q := range []string{
		`CREATE TABLE stint_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`,
		migrations[0].SQL,
		`INSERT INTO stint_schema VALUES (1, '0001_init.sql', 0)`,
		`INSERT INTO stint_tasks (id, name, state, created_at, updated_at) VALUES ('` + id.String() + `', 'test.old', 'completed', 0, 0)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	st, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, err := st.SchemaVersion(ctx); err != nil || v != 6 {
		t.Fatalf("SchemaVersion: %d %v", v, err)
	}
	if task, err := st.Task(ctx, id); err != nil || task.Name != "test.old" {
		t.Fatalf("task of version 1: %+v %v", task, err)
	}
	if has, err := st.HasUsers(ctx); err != nil || has {
		t.Fatalf("HasUsers: %v %v", has, err)
	}
}
