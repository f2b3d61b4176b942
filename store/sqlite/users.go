package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/stint-dev/stint/store"
)

// usersDB is what the users statements need of a database: write
// transactions and single-statement reads. A Store and a UserStore each
// provide it their own way.
type usersDB interface {
	// usersWrite runs fn in a write transaction and commits it.
	usersWrite(ctx context.Context, fn func(tx *sql.Tx) error) error
	// usersQuery runs one read statement. One statement reads one
	// snapshot: the last commit, of any process, when it starts.
	usersQuery(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// users implements store.Users on a usersDB: the one copy of the users
// statements, shared by Store and UserStore. Nothing is cached: every call
// reads the file, so a token revoked by `stint user ...` beside the server
// is refused at the server's next request.
type users struct{ db usersDB }

// The users statements. Names are ordered by their bytes (BINARY), as the
// PostgreSQL engine orders them (COLLATE "C").
const (
	sqlCreateUser = `INSERT INTO stint_users (name, role, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`
	sqlUsers = `SELECT u.name, u.role, u.created_at, t.id, t.created_at
		FROM stint_users u LEFT JOIN stint_tokens t ON t.user_name = u.name
		ORDER BY u.name, t.created_at, t.rowid`
	sqlDeleteTokens = `DELETE FROM stint_tokens WHERE user_name = ?`
	sqlDeleteUser   = `DELETE FROM stint_users WHERE name = ?`
	// sqlAddToken inserts nothing when the user does not exist; the write
	// transaction makes the check and the insert one step.
	sqlAddToken = `INSERT INTO stint_tokens (id, user_name, hash, created_at)
		SELECT ?1, name, ?2, ?3 FROM stint_users WHERE name = ?4`
	sqlRevokeToken = `DELETE FROM stint_tokens WHERE id = ?`
	sqlToken       = `SELECT t.hash, u.name, u.role, u.created_at
		FROM stint_tokens t JOIN stint_users u ON u.name = t.user_name
		WHERE t.id = ?`
	sqlHasUsers = `SELECT EXISTS (SELECT 1 FROM stint_users)`
)

// execOne runs a write statement in a transaction of its own and returns
// how many rows it changed.
func (u users) execOne(ctx context.Context, q string, args ...any) (int64, error) {
	var n int64
	err := u.db.usersWrite(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// CreateUser implements store.Users. Writes are serialised (the write
// lock), so of several creations of one name exactly one inserts it.
func (u users) CreateUser(ctx context.Context, name string, role store.Role) error {
	if !role.Valid() {
		return fmt.Errorf("sqlite: create user %q: unknown role %q", name, role)
	}
	n, err := u.execOne(ctx, sqlCreateUser, name, string(role), nowMicros())
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrExists
	}
	return nil
}

// Users implements store.Users: one statement, so one snapshot.
func (u users) Users(ctx context.Context) ([]store.User, error) {
	rows, err := u.db.usersQuery(ctx, sqlUsers)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		var (
			name, role string
			created    int64
			tokenID    sql.NullString
			tokenAt    sql.NullInt64
		)
		if err := rows.Scan(&name, &role, &created, &tokenID, &tokenAt); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].Name != name {
			out = append(out, store.User{Name: name, Role: store.Role(role), CreatedAt: timeOf(created)})
		}
		if tokenID.Valid {
			last := &out[len(out)-1]
			last.Tokens = append(last.Tokens, store.TokenInfo{ID: tokenID.String, User: name, CreatedAt: timeOf(tokenAt.Int64)})
		}
	}
	return out, rows.Err()
}

// DeleteUser implements store.Users. The connections do not enforce
// foreign keys: the user's tokens are deleted here, in the same
// transaction. Tasks keep their owner, a plain name.
func (u users) DeleteUser(ctx context.Context, name string) error {
	return u.db.usersWrite(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, sqlDeleteTokens, name); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, sqlDeleteUser, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound // and the transaction rolls back
		}
		return nil
	})
}

// AddToken implements store.Users. A token id already taken (ids are
// random: a collision) is an error wrapping store.ErrExists: the caller
// makes a new token.
func (u users) AddToken(ctx context.Context, t store.NewToken) error {
	if len(t.Hash) == 0 {
		return fmt.Errorf("sqlite: token %s: no hash", t.ID)
	}
	n, err := u.execOne(ctx, sqlAddToken, t.ID, t.Hash, nowMicros(), t.User)
	var se *msqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		return fmt.Errorf("sqlite: token id %s: %w", t.ID, store.ErrExists)
	}
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// RevokeToken implements store.Users.
func (u users) RevokeToken(ctx context.Context, id string) error {
	n, err := u.execOne(ctx, sqlRevokeToken, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// Token implements store.Users.
func (u users) Token(ctx context.Context, id string) ([]byte, *store.User, error) {
	rows, err := u.db.usersQuery(ctx, sqlToken, id)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
		return nil, nil, store.ErrNotFound
	}
	var (
		hash       []byte
		name, role string
		created    int64
	)
	if err := rows.Scan(&hash, &name, &role, &created); err != nil {
		return nil, nil, err
	}
	return hash, &store.User{Name: name, Role: store.Role(role), CreatedAt: timeOf(created)}, rows.Close()
}

// HasUsers implements store.Users.
func (u users) HasUsers(ctx context.Context) (bool, error) {
	rows, err := u.db.usersQuery(ctx, sqlHasUsers)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	var ok bool
	if rows.Next() {
		if err := rows.Scan(&ok); err != nil {
			return false, err
		}
	}
	return ok, rows.Err()
}

// usersWrite implements usersDB for the Store: the users statements run in
// the store's write transactions, in turn with its other writes, and
// publish nothing.
func (s *Store) usersWrite(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.write(ctx, func(w *wtx) error { return fn(w.tx) })
}

// usersQuery implements usersDB for the Store, on the read pool.
func (s *Store) usersQuery(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.readStmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// UserStore manages the users and tokens of a database file, beside the
// server that holds it or without one. See OpenUsers.
type UserStore struct {
	users // store.Users

	path string
	db   *sql.DB
}

var _ store.Users = (*UserStore)(nil)

// schemaPoll is how often OpenUsers looks again at a file whose holder has
// not finished migrating it.
const schemaPoll = 50 * time.Millisecond

// OpenUsers opens the database at path for user and token management
// only, without the one-process lock, so that `stint user ...` works
// while `stint serve` runs on the file. If no process holds the lock, it
// takes it and migrates like Open; otherwise it requires the schema to be
// current (the running server migrated it) and writes through SQLite's own
// locking (busy_timeout). It never schedules, recovers or publishes.
//
// It holds the lock only while it migrates: a server may start on the file
// while the UserStore is open. If the process holding the lock has not
// finished migrating the file (a server starting at the same moment),
// OpenUsers waits for it, up to busy_timeout. A file whose schema is newer
// than this Stint knows is refused, as by Open.
//
// Only the users tables are written, in short BEGIN IMMEDIATE
// transactions: the server's single-writer state (the queues, the order of
// dispatch) is untouched, and its write connection waits (busy_timeout)
// while a UserStore write holds SQLite's write lock.
func OpenUsers(ctx context.Context, path string) (*UserStore, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	known, err := newestMigration()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(busyTimeout)
	for {
		u, done, err := tryOpenUsers(ctx, abs, known, time.Now().After(deadline))
		if done || err != nil {
			return u, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(schemaPoll):
		}
	}
}

// tryOpenUsers makes one attempt of OpenUsers. It reports done=false when
// another process holds the lock and the file is not ready yet (not in WAL
// mode, or its schema older than known), unless last.
func tryOpenUsers(ctx context.Context, abs string, known int, last bool) (*UserStore, bool, error) {
	lf, err := acquireLock(lockPath(abs))
	if err != nil && !errors.Is(err, errLocked) {
		return nil, true, fmt.Errorf("sqlite: lock %s: %w", abs, err)
	}
	if lf != nil {
		// Nobody runs on the file: migrate it as Open does, then let go
		// of the lock.
		defer releaseLock(lf) //nolint:errcheck
		db, err := openWriter(ctx, abs, 2048)
		if err != nil {
			return nil, true, err
		}
		if err := migrateDB(ctx, db, abs); err != nil {
			db.Close()
			return nil, true, err
		}
		return newUserStore(abs, db), true, nil
	}
	// A process holds the file. Its write connection made the file WAL
	// before it migrated, so until it has, this connection may not be the
	// one that switches the journal mode: do not ask for WAL, check it.
	if _, err := os.Stat(abs); err != nil {
		if os.IsNotExist(err) && !last {
			return nil, false, nil
		}
		return nil, true, fmt.Errorf("sqlite: %s: %w", abs, err)
	}
	db, err := sql.Open("sqlite", fileURI(abs)+"?"+busyPragma+
		"&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(0)&_txlock=immediate")
	if err != nil {
		return nil, true, fmt.Errorf("sqlite: %s: %w", abs, err)
	}
	ready, err := usersReady(ctx, db, abs, known)
	if err != nil || !ready {
		db.Close()
		if err == nil && last {
			err = fmt.Errorf("sqlite: %s: the process that holds the file has not migrated it to schema version %d; start `stint serve` on it, or stop the process", abs, known)
		}
		return nil, err != nil || last, err
	}
	return newUserStore(abs, db), true, nil
}

// usersReady reports whether the file is in WAL mode at schema version
// known; it fails for a newer schema.
func usersReady(ctx context.Context, db *sql.DB, abs string, known int) (bool, error) {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return false, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return false, nil
	}
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'stint_schema')`).Scan(&exists); err != nil {
		return false, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	if !exists {
		return false, nil
	}
	var v int
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM stint_schema`).Scan(&v); err != nil {
		return false, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	if v > known {
		return false, fmt.Errorf("sqlite: %s has schema version %d, newer than this Stint knows (%d): use a newer Stint", abs, v, known)
	}
	return v == known, nil
}

func newUserStore(abs string, db *sql.DB) *UserStore {
	// One connection is plenty for a command: its writes and reads take
	// turns, and it adds one writer at most to the server's.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	u := &UserStore{path: abs, db: db}
	u.users = users{u}
	return u
}

// Path returns the absolute path of the database file.
func (u *UserStore) Path() string { return u.path }

// Close releases the UserStore's connection. Calling it again does
// nothing.
func (u *UserStore) Close() { u.db.Close() }

// usersWrite implements usersDB: a BEGIN IMMEDIATE transaction, which
// waits (busy_timeout) for the write lock that the server's writes hold.
func (u *UserStore) usersWrite(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// usersQuery implements usersDB.
func (u *UserStore) usersQuery(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return u.db.QueryContext(ctx, q, args...)
}
