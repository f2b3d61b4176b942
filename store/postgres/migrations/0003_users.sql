-- Stint schema, version 3: users and their API tokens (DESIGN §8).

CREATE TABLE stint_users (
    name       text        PRIMARY KEY,
    role       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stint_users_role_check CHECK (role IN ('user', 'admin'))
);

-- API tokens: the public id and the SHA-256 of the secret (see
-- internal/auth), never the secret. A user's tokens go with the user.
CREATE TABLE stint_tokens (
    id         text        PRIMARY KEY,
    user_name  text        NOT NULL REFERENCES stint_users (name) ON DELETE CASCADE,
    hash       bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- A user's tokens: listing them, and the cascade when the user goes.
CREATE INDEX stint_tokens_user ON stint_tokens (user_name);
