package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/store"
)

// sessionLockClass is the first key of the workers' session locks,
// pg_advisory_lock(sessionLockClass, key): "Stin" in ASCII (migration
// 0007).
const sessionLockClass = 1400140142

// session is the database session of a worker registered by this process:
// a connection of its own, outside the pool, that holds the worker's
// session lock for as long as the worker runs. Its heartbeats go through
// it, so that a session that broke is noticed and replaced.
type session struct {
	mu   sync.Mutex // one statement at a time on conn
	conn *pgx.Conn
	key  int32
}

// sessions are the sessions of the workers registered by this process, by
// name.
type sessions struct {
	mu     sync.Mutex
	byName map[string]*session
}

func (ss *sessions) get(name string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.byName[name]
}

// put records the session of a worker and returns the one it replaces.
func (ss *sessions) put(name string, s *session) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.byName == nil {
		ss.byName = make(map[string]*session)
	}
	old := ss.byName[name]
	ss.byName[name] = s
	return old
}

// take removes and returns the session of a worker.
func (ss *sessions) take(name string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byName[name]
	delete(ss.byName, name)
	return s
}

// all removes and returns every session.
func (ss *sessions) all() []*session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := make([]*session, 0, len(ss.byName))
	for _, s := range ss.byName {
		out = append(out, s)
	}
	ss.byName = nil
	return out
}

// close ends the session: PostgreSQL releases its lock.
func (s *session) close(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn.Close(ctx) //nolint:errcheck // the session ends either way
}

// openSession connects outside the pool and takes a new session lock.
func (s *Store) openSession(ctx context.Context) (*session, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	var key int32
	err = conn.QueryRow(ctx, `SELECT nextval('stint_worker_session_seq')::integer`).Scan(&key)
	if err == nil {
		_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1::integer, $2::integer)`, int32(sessionLockClass), key)
	}
	if err != nil {
		conn.Close(ctx) //nolint:errcheck
		return nil, err
	}
	return &session{conn: conn, key: key}, nil
}

// RegisterWorker implements store.Store. The worker gets a database
// session of its own, holding a lock whose key its row records (migration
// 0007): when the process dies, the session ends, and DropLostWorkers
// finds the worker at once. The lock is taken before the row is written,
// so no check ever sees the row without it. A session the worker had
// before (it registers again) is closed. A name that a live worker of
// another session holds is refused with store.ErrExists: names are unique
// among online workers.
func (s *Store) RegisterWorker(ctx context.Context, w store.WorkerInfo) error {
	versions, err := json.Marshal(w.Versions)
	if err != nil {
		return err
	}
	sess, err := s.openSession(ctx)
	if err != nil {
		return err
	}
	// The session this process had for the worker, if it registers again.
	var ownKey *int32
	if old := s.sessions.get(w.Name); old != nil {
		ownKey = &old.key
	}
	sess.mu.Lock()
	tag, err := sess.conn.Exec(ctx, `INSERT INTO stint_workers (name, hostname, pid, versions, concurrency,
			session_key, session_server_start)
		VALUES ($1, $2, $3, $4, $5, $6, pg_postmaster_start_time())
		ON CONFLICT (name) DO UPDATE SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,
			versions = EXCLUDED.versions, concurrency = EXCLUDED.concurrency, session_key = EXCLUDED.session_key,
			session_server_start = EXCLUDED.session_server_start,
			started_at = now(), last_heartbeat = now(), missing = false
		-- Not over a live worker of another session: names are unique
		-- among online workers.
		WHERE stint_workers.session_key IS NULL OR stint_workers.session_key = $7
		   OR stint_workers.session_server_start IS DISTINCT FROM pg_postmaster_start_time()
		   OR NOT EXISTS (SELECT 1 FROM pg_locks l
		       WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
		         AND l.classid = $8::bigint::oid AND l.objid = stint_workers.session_key::bigint::oid
		         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))`,
		w.Name, w.Hostname, w.PID, versions, w.Concurrency, sess.key, ownKey, int64(sessionLockClass))
	sess.mu.Unlock()
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("postgres: worker name %q is in use by a running worker: %w", w.Name, store.ErrExists)
	}
	if err != nil {
		sess.close(context.WithoutCancel(ctx))
		return err
	}
	if old := s.sessions.put(w.Name, sess); old != nil {
		old.close(context.WithoutCancel(ctx))
	}
	return nil
}

// Heartbeat implements store.Store, through the worker's session when this
// process registered it. A session that broke (the database restarted, the
// connection dropped) is replaced by a new one with a new lock: if another
// node found the worker lost meanwhile, its row is gone and the heartbeat
// fails with store.ErrNotFound, as for any removed worker.
func (s *Store) Heartbeat(ctx context.Context, worker string, running []uuid.UUID) (store.HeartbeatReply, error) {
	sess := s.sessions.get(worker)
	if sess == nil {
		return heartbeat(ctx, s.pool, worker, running)
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.conn.IsClosed() {
		if err := s.reopen(ctx, worker, sess); err != nil {
			return store.HeartbeatReply{}, err
		}
	}
	return heartbeat(ctx, sess.conn, worker, running)
}

// reopen replaces the broken connection of a session (locked by the
// caller) with a new one, holding a new lock that the worker's row then
// names.
func (s *Store) reopen(ctx context.Context, worker string, sess *session) error {
	fresh, err := s.openSession(ctx)
	if err != nil {
		return fmt.Errorf("postgres: reopening the session of worker %s: %w", worker, err)
	}
	tag, err := fresh.conn.Exec(ctx, `UPDATE stint_workers
		SET session_key = $2, session_server_start = pg_postmaster_start_time() WHERE name = $1`, worker, fresh.key)
	if err != nil {
		fresh.close(context.WithoutCancel(ctx))
		return err
	}
	sess.conn, sess.key = fresh.conn, fresh.key
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// querier is what heartbeat needs of a pool or a connection.
type querier interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// heartbeat refreshes a worker's heartbeat, reads the states of the tasks
// it named and finds the tasks held under its name that it did not name,
// in one round trip. The last query reads the partial index of active
// tasks by worker (its predicate is restated for the planner).
func heartbeat(ctx context.Context, q querier, worker string, running []uuid.UUID) (store.HeartbeatReply, error) {
	var reply store.HeartbeatReply
	batch := &pgx.Batch{}
	batch.Queue(`UPDATE stint_workers SET last_heartbeat = now(), missing = false WHERE name = $1`, worker)
	batch.Queue(`SELECT id, state FROM stint_tasks WHERE id = ANY ($1)`, nonNil(running))
	batch.Queue(`SELECT id, attempt, state FROM stint_tasks
		WHERE worker = $1 AND started_at IS NOT NULL AND finished_at IS NULL
		  AND state IN ('running', 'canceling') AND NOT id = ANY ($2)
		ORDER BY seq`, worker, nonNil(running))
	br := q.SendBatch(ctx, batch)
	defer br.Close()
	tag, err := br.Exec()
	if err != nil {
		return reply, err
	}
	if tag.RowsAffected() == 0 {
		return reply, store.ErrNotFound
	}
	rows, err := br.Query()
	if err != nil {
		return reply, err
	}
	reply.States = make(map[uuid.UUID]store.State, len(running))
	for rows.Next() {
		var id uuid.UUID
		var st string
		if err := rows.Scan(&id, &st); err != nil {
			rows.Close()
			return reply, err
		}
		reply.States[id] = store.State(st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return reply, err
	}
	rows, err = br.Query()
	if err != nil {
		return reply, err
	}
	defer rows.Close()
	for rows.Next() {
		var h store.HeldTask
		var st string
		if err := rows.Scan(&h.ID, &h.Attempt, &st); err != nil {
			return reply, err
		}
		h.State = store.State(st)
		reply.Unknown = append(reply.Unknown, h)
	}
	return reply, rows.Err()
}

// RemoveWorker implements store.Store: the row goes, then the session.
func (s *Store) RemoveWorker(ctx context.Context, name string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM stint_workers WHERE name = $1`, name)
	if sess := s.sessions.take(name); sess != nil {
		sess.close(context.WithoutCancel(ctx))
	}
	return err
}

// closeSessions ends the sessions of the workers this process registered.
func (s *Store) closeSessions() {
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	for _, sess := range s.sessions.all() {
		sess.close(ctx)
	}
}
