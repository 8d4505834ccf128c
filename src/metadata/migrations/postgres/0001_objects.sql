-- PostgreSQL twin of migrations/sqlite/0001_objects.sql: same tables, columns, statuses and
-- indexes. Names and keys use the "C" collation so that equality, ordering and range scans
-- compare bytes (UTF-8 byte order, as S3 and SQLite do) whatever the database's default
-- collation is. Times are milliseconds since the Unix epoch; sizes are bytes.

-- Buckets known to this gateway (configured buckets are recorded on start).
CREATE TABLE buckets (
    name        TEXT COLLATE "C" PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

-- One row per object version. Status: pending (being written, invisible), committed (the current
-- version at its key), garbage (replaced or deleted; bytes still to be removed).
CREATE TABLE objects (
    id                  TEXT PRIMARY KEY,
    bucket              TEXT COLLATE "C" NOT NULL,
    key                 TEXT COLLATE "C" NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'committed', 'garbage')),
    owner               TEXT NOT NULL,
    size                BIGINT,
    sha256              TEXT,
    etag                TEXT,
    content_type        TEXT,
    checksum_algorithm  TEXT,
    checksum_value      TEXT,
    created_at          BIGINT NOT NULL,
    committed_at        BIGINT,
    lease_until         BIGINT
);

-- At most one committed version per key; also the index for GET and for ordered listing. A
-- concurrent commit to the same key trips this index, and the loser retries (see postgres.rs).
CREATE UNIQUE INDEX objects_current ON objects (bucket, key) WHERE status = 'committed';
-- The sweeper's scan.
CREATE INDEX objects_sweep ON objects (status, lease_until) WHERE status <> 'committed';
-- Owner searches.
CREATE INDEX objects_owner ON objects (owner, created_at);
