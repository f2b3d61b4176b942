-- Stint schema for SQLite, version 6: counted resources. A resource with a
-- capacity N has a row here: at most N tasks hold it shared at once (an
-- exclusive holder still holds it alone). Resources without a capacity
-- have no row, so nothing is kept of a resource once its queue is empty
-- and its capacity removed.
CREATE TABLE stint_resources (
    name     TEXT    PRIMARY KEY,
    capacity INTEGER NOT NULL CHECK (capacity >= 1)
) STRICT, WITHOUT ROWID;
