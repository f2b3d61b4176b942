package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stint-dev/stint/store"
)

// Users and tokens are read from the database at every call, never cached,
// so that every node refuses a revoked token or a removed user at once.
// Names are ordered by their bytes (COLLATE "C"), as in the SQLite engine,
// whatever the database's collation.

// SQLSTATEs the users statements tell apart.
const (
	sqlstateUniqueViolation     = "23505"
	sqlstateForeignKeyViolation = "23503"
)

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// CreateUser implements store.Users. Of several nodes creating one name at
// once, exactly one succeeds: the others wait for its insert to commit and
// then find the name taken.
func (s *Store) CreateUser(ctx context.Context, name string, role store.Role) error {
	if !role.Valid() {
		return fmt.Errorf("postgres: create user %q: unknown role %q", name, role)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO stint_users (name, role) VALUES ($1, $2)
		ON CONFLICT (name) DO NOTHING`, name, string(role))
	if err != nil {
		return classify(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrExists
	}
	return nil
}

// Users implements store.Users: one statement, so one snapshot.
func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT u.name, u.role, u.created_at, t.id, t.created_at
		FROM stint_users u LEFT JOIN stint_tokens t ON t.user_name = u.name
		ORDER BY u.name COLLATE "C", t.created_at, t.id COLLATE "C"`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		var (
			u       store.User
			role    string
			tokenID *string
			tokenAt *time.Time
		)
		if err := rows.Scan(&u.Name, &role, &u.CreatedAt, &tokenID, &tokenAt); err != nil {
			return nil, err
		}
		u.Role = store.Role(role)
		if n := len(out); n == 0 || out[n-1].Name != u.Name {
			out = append(out, u)
		}
		if tokenID != nil {
			last := &out[len(out)-1]
			last.Tokens = append(last.Tokens, store.TokenInfo{ID: *tokenID, User: u.Name, CreatedAt: *tokenAt})
		}
	}
	return out, rows.Err()
}

// DeleteUser implements store.Users. The user's tokens go with it (ON
// DELETE CASCADE); tasks keep their owner, a plain name.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM stint_users WHERE name = $1`, name)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// AddToken implements store.Users. The foreign key decides whether the
// user exists, also against a DeleteUser running at the same time. A token
// id already taken (ids are random: a collision) is an error wrapping
// store.ErrExists: the caller makes a new token.
func (s *Store) AddToken(ctx context.Context, t store.NewToken) error {
	if len(t.Hash) == 0 {
		return fmt.Errorf("postgres: token %s: no hash", t.ID)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO stint_tokens (id, user_name, hash) VALUES ($1, $2, $3)`,
		t.ID, t.User, t.Hash)
	switch pgCode(err) {
	case "":
		return err
	case sqlstateForeignKeyViolation:
		return store.ErrNotFound
	case sqlstateUniqueViolation:
		return fmt.Errorf("postgres: token id %s: %w", t.ID, store.ErrExists)
	}
	return classify(err)
}

// RevokeToken implements store.Users.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM stint_tokens WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// Token implements store.Users.
func (s *Store) Token(ctx context.Context, id string) ([]byte, *store.User, error) {
	var (
		hash []byte
		u    store.User
		role string
	)
	err := s.pool.QueryRow(ctx, `SELECT t.hash, u.name, u.role, u.created_at
		FROM stint_tokens t JOIN stint_users u ON u.name = t.user_name
		WHERE t.id = $1`, id).Scan(&hash, &u.Name, &role, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, store.ErrNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	u.Role = store.Role(role)
	return hash, &u, nil
}

// HasUsers implements store.Users.
func (s *Store) HasUsers(ctx context.Context) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM stint_users)`).Scan(&ok)
	return ok, err
}
