-- Stint schema, version 13: the functions live apart from the migrations.
-- Each PL/pgSQL or SQL function's current definition is in its own file,
-- sql/functions/NAME.sql, which Migrate applies (CREATE OR REPLACE) after
-- the migrations whenever the database is at the binary's newest version
-- and the file differs from the one last applied; migrations from this one
-- on hold schema changes only. A change of a function's body comes with a
-- migration (a comment that names it is enough), so that a node of an
-- older release, whose newest migration is then older than the database's,
-- leaves the new body alone.

-- The files applied, by function name, with the SHA-256 of each file's
-- text: Migrate replaces a function only when its file changed, so that a
-- node starting does not invalidate every session's cached plans.
CREATE TABLE stint_functions (
    name       text        PRIMARY KEY,
    sha256     bytea       NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- The claim of versions 1 to 4 (no versions argument), called by no node
-- since version 5.
DROP FUNCTION stint_claim(text, text[], integer);
