package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/stint-dev/stint/internal/groupcommit"
	"github.com/stint-dev/stint/store"
)

// ErrInUse is wrapped by the error of Open when another process, or another
// Open in this process, holds the database file.
var ErrInUse = errors.New("sqlite: database in use by another Stint process")

// errLocked is what acquireLock returns when the lock is held elsewhere.
var errLocked = errors.New("lock held")

// errClosed is returned by the methods of a closed store.
var errClosed = errors.New("sqlite: store is closed")

// inUseError is the error of Open for a held file: one line that says what
// to do, wrapping ErrInUse.
type inUseError struct{ path string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("sqlite: %s is in use by another Stint process (one process per SQLite file; use PostgreSQL for several)", e.path)
}

func (e *inUseError) Unwrap() error { return ErrInUse }

// RecoveryResult counts what Open repaired of what a previous process left.
type RecoveryResult struct {
	Dropped  int // tasks found running, now dropped
	Retried  int // tasks found running whose policy retries dropped runs, now scheduled
	Canceled int // tasks found canceling, now canceled
	Workers  int // registered workers removed
}

// Store is the SQLite implementation of store.Store. One Store, in one
// process, owns its database file from Open to Close.
type Store struct {
	users // store.Users, through the write transactions and the read pool

	path      string
	lock      *os.File
	wdb       *sql.DB // the single write connection
	rdb       *sql.DB // a small pool of read-only connections
	stmts     map[string]*sql.Stmt
	recovered RecoveryResult
	hub       *hub
	closeOnce sync.Once
	// dispatcher gathers concurrent Dispatch calls into one write
	// transaction (group commit; see internal/groupcommit).
	dispatcher *groupcommit.Committer[prepared, *store.Task]

	wmu     sync.Mutex // serialises write transactions and publishing
	closed  bool       // under wmu
	nextSeq int64      // under wmu: the seq of the next task

	rmu        sync.Mutex
	readStmts  map[string]*sql.Stmt
	droppedChg atomic.Uint64
}

var _ store.Store = (*Store)(nil)

// busyTimeout is how long a connection waits for a lock SQLite's own
// locking holds (a checkpoint, a reader outside Stint such as the sqlite3
// shell) before it fails.
const busyTimeout = 10 * time.Second

// Open opens (creating it if absent) the SQLite database at path, takes the
// one-process lock on it, applies the embedded migrations, and recovers what
// a previous process left: tasks found running end dropped, canceling ones
// canceled (with an error saying the process stopped while it ran), their
// resources freed and the tasks behind them unblocked; and it removes all
// registered workers (they belonged to the dead process).
//
// The lock is an exclusive lock on the sidecar file path+".lock", held
// until Close or the end of the process. If another process, or another
// Open in this process, holds it, Open fails at once with an error that
// wraps ErrInUse.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	lf, err := acquireLock(lockPath(abs))
	if errors.Is(err, errLocked) {
		return nil, &inUseError{path: abs}
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: lock %s: %w", abs, err)
	}
	s := &Store{path: abs, lock: lf, stmts: map[string]*sql.Stmt{}, readStmts: map[string]*sql.Stmt{}}
	s.users = users{s}
	s.hub = newHub(&s.droppedChg)
	// One writer: a second batch in flight would only wait for the lock
	// with calls that could have joined the next batch.
	s.dispatcher = groupcommit.New(s.dispatchBatch, groupcommit.Config{MaxRunning: 1})
	if err := s.open(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// createPrivate creates the database file at abs, if absent, readable
// and writable by its owner only: it holds every task's args and results
// and the users' token hashes. SQLite gives the WAL and shared-memory
// files it creates beside it the same mode. A file that exists keeps its
// mode.
func createPrivate(abs string) error {
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", abs, err)
	}
	return f.Close()
}

// lockPath is the sidecar lock file of the database at abs. Symbolic links
// are resolved, so that every name of one database takes one lock.
func lockPath(abs string) string {
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real + ".lock"
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs)) + ".lock"
	}
	return abs + ".lock"
}

// fileURI is the SQLite URI of the file at abs, escaped so that any path
// works.
func fileURI(abs string) string {
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // C:/x on Windows
	}
	return (&url.URL{Scheme: "file", Path: p}).String()
}

// busyPragma makes a connection wait up to busyTimeout for a lock that
// SQLite's own locking holds.
var busyPragma = fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeout.Milliseconds())

// openWriter opens the single write connection to the file at abs, in WAL
// mode, its transactions BEGIN IMMEDIATE. It waits up to busyTimeout for
// SQLite's write lock, which a UserStore beside the server may hold for a
// moment, rather than fail.
func openWriter(ctx context.Context, abs string, cacheKiB int) (*sql.DB, error) {
	if err := createPrivate(abs); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", fileURI(abs)+"?"+busyPragma+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(0)"+
		fmt.Sprintf("&_pragma=cache_size(-%d)", cacheKiB)+
		"&_pragma=temp_store(MEMORY)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", abs, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	if !strings.EqualFold(mode, "wal") {
		db.Close()
		return nil, fmt.Errorf("sqlite: %s: cannot use WAL mode (journal_mode is %s); put the file on a local file system", abs, mode)
	}
	return db, nil
}

func (s *Store) open(ctx context.Context) error {
	var err error
	// Writes: one connection, transactions BEGIN IMMEDIATE.
	if s.wdb, err = openWriter(ctx, s.path, 16384); err != nil {
		return err
	}
	// Reads: a few connections that cannot write, so that API reads never
	// wait for the writer (WAL lets them read the last commit meanwhile).
	s.rdb, err = sql.Open("sqlite", fileURI(s.path)+"?"+busyPragma+"&_pragma=query_only(1)&_pragma=cache_size(-8192)")
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", s.path, err)
	}
	readers := max(4, runtime.NumCPU())
	s.rdb.SetMaxOpenConns(readers)
	s.rdb.SetMaxIdleConns(readers)
	s.rdb.SetConnMaxIdleTime(5 * time.Minute)

	if err := s.migrate(ctx); err != nil {
		return err
	}
	for _, q := range writeStatements {
		st, err := s.wdb.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w\n%s", err, q)
		}
		s.stmts[q] = st
	}
	if err := s.wdb.QueryRowContext(ctx,
		`SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'stint_tasks'), 0),
			coalesce((SELECT max(seq) FROM stint_tasks), 0))`).Scan(&s.nextSeq); err != nil {
		return fmt.Errorf("sqlite: %s: %w", s.path, err)
	}
	s.nextSeq++
	return s.recover(ctx)
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Recovered returns what Open repaired of what a previous process left.
func (s *Store) Recovered() RecoveryResult { return s.recovered }

// DroppedChanges counts the task changes that readers of Changes lost
// because they fell too far behind, since the store was opened. Above zero,
// a reader is too slow for the rate of changes.
func (s *Store) DroppedChanges() uint64 { return s.droppedChg.Load() }

// Close ends the subscriptions of Wakeups and Changes, closes the
// connections and releases the lock. It waits for a write in progress to
// end. Calling it again does nothing.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		s.dispatcher.Close()
		s.wmu.Lock()
		s.closed = true
		s.wmu.Unlock()
		s.hub.close()
		if s.rdb != nil {
			s.rdb.Close()
		}
		if s.wdb != nil {
			for _, st := range s.stmts {
				st.Close()
			}
			s.wdb.Close()
		}
		s.rmu.Lock()
		for _, st := range s.readStmts {
			st.Close()
		}
		s.rmu.Unlock()
		if s.lock != nil {
			_ = releaseLock(s.lock)
		}
	})
}

// Wakeups implements store.Store. Wake-ups come from this process only,
// the only one that may change the file: after a dispatch of tasks that
// are runnable at once, and after a finish, cancel or sweep that unblocked
// tasks. The channel also closes when the store closes.
func (s *Store) Wakeups(ctx context.Context) (<-chan struct{}, error) {
	return s.hub.wakeups(ctx)
}

// Cancels implements store.Store: the writer signals, after the commit,
// each transaction that made a task canceling.
func (s *Store) Cancels(ctx context.Context) (<-chan struct{}, error) {
	return s.hub.cancels(ctx)
}

// DueSignals implements store.Store: the writer signals, after the commit,
// each transaction that scheduled a task (a dispatch with a ScheduledAt to
// come, a retry).
func (s *Store) DueSignals(ctx context.Context) (<-chan struct{}, error) {
	return s.hub.dueSignals(ctx)
}

// Changes implements store.Store. Changes are published once their
// transaction has committed, in commit order; a slow reader gets them
// coalesced per task, and an empty batch when it fell so far behind that
// some were dropped (see DroppedChanges). The channel also closes when the
// store closes.
func (s *Store) Changes(ctx context.Context) (<-chan []store.TaskChange, error) {
	return s.hub.changes(ctx)
}

// nowMicros is the current time, in microseconds since the Unix epoch:
// PostgreSQL's precision.
func nowMicros() int64 { return time.Now().UnixMicro() }

func timeOf(us int64) time.Time { return time.UnixMicro(us).UTC() }

func nullTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := timeOf(v.Int64)
	return &t
}

// wtx is one write transaction.
type wtx struct {
	s       *Store
	ctx     context.Context
	tx      *sql.Tx
	now     int64
	stmts   map[string]*sql.Stmt
	changes []store.TaskChange
	wake    bool
	due     bool // a task was scheduled: send the due signal
}

// write runs fn in a write transaction (BEGIN IMMEDIATE on the write
// connection, under the write lock), commits, and then publishes the
// changes and the wake-up fn recorded. Nothing is published for a
// transaction that does not commit.
func (s *Store) write(ctx context.Context, fn func(w *wtx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return errClosed
	}
	seq := s.nextSeq
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	w := &wtx{s: s, ctx: ctx, tx: tx, now: nowMicros(), stmts: map[string]*sql.Stmt{}}
	if err := fn(w); err != nil {
		_ = tx.Rollback()
		s.nextSeq = seq
		return classify(err)
	}
	if err := tx.Commit(); err != nil {
		s.nextSeq = seq
		return classify(err)
	}
	s.hub.publish(w.changes, w.wake, w.due)
	return nil
}

// stmt returns q prepared for this transaction: from the statements
// prepared at Open when q is one of them.
func (w *wtx) stmt(q string) (*sql.Stmt, error) {
	if st, ok := w.stmts[q]; ok {
		return st, nil
	}
	var st *sql.Stmt
	if ps, ok := w.s.stmts[q]; ok {
		st = w.tx.StmtContext(w.ctx, ps)
	} else {
		var err error
		if st, err = w.tx.PrepareContext(w.ctx, q); err != nil {
			return nil, err
		}
	}
	w.stmts[q] = st
	return st, nil
}

func (w *wtx) exec(q string, args ...any) (sql.Result, error) {
	st, err := w.stmt(q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(w.ctx, args...)
}

func (w *wtx) query(q string, args ...any) (*sql.Rows, error) {
	st, err := w.stmt(q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(w.ctx, args...)
}

func (w *wtx) queryRow(q string, args ...any) *sql.Row {
	st, err := w.stmt(q)
	if err != nil {
		// The statement does not prepare: running it unprepared returns a
		// Row that carries the same error.
		return w.tx.QueryRowContext(w.ctx, q, args...)
	}
	return st.QueryRowContext(w.ctx, args...)
}

// change records that a task changed, to publish after the commit.
func (w *wtx) change(id uuid.UUID, state store.State) {
	w.changes = append(w.changes, store.TaskChange{ID: id, State: state})
}

// readStmt returns q prepared on the read pool.
func (s *Store) readStmt(ctx context.Context, q string) (*sql.Stmt, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if st, ok := s.readStmts[q]; ok {
		return st, nil
	}
	st, err := s.rdb.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	s.readStmts[q] = st
	return st, nil
}

// classify wraps the errors of data SQLite cannot store (a string or blob
// over its size limit) in store.ErrUnstorable.
func classify(err error) error {
	var se *msqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_TOOBIG {
		return fmt.Errorf("%w: %v", store.ErrUnstorable, err)
	}
	return err
}
