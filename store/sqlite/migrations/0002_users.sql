-- Stint schema for SQLite, version 2: users and their API tokens (DESIGN §8).
--
-- Times are INTEGER microseconds since the Unix epoch (UTC), as in version
-- 1. The connections run with foreign_keys off, so the reference below is
-- not enforced: DeleteUser deletes a user's tokens itself, in the same
-- transaction, and AddToken inserts only for a user that exists.
--
-- These tables are written not only by the process that holds the file
-- (the server) but also by `stint user ...` beside it (OpenUsers), through
-- SQLite's own locking: nothing the server keeps in memory depends on them.

CREATE TABLE stint_users (
    name       TEXT    PRIMARY KEY,
    role       TEXT    NOT NULL CHECK (role IN ('user', 'admin')),
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- API tokens: the public id and the SHA-256 of the secret (see
-- internal/auth), never the secret. The rowid orders tokens added in the
-- same microsecond.
CREATE TABLE stint_tokens (
    id         TEXT    PRIMARY KEY,
    user_name  TEXT    NOT NULL REFERENCES stint_users (name) ON DELETE CASCADE,
    hash       BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
-- A user's tokens: listing them, and deleting them with the user.
CREATE INDEX stint_tokens_user ON stint_tokens (user_name);
