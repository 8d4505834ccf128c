-- Buckets known to this gateway (configured buckets are recorded on start).
CREATE TABLE buckets (
    name        TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

-- One row per object version. Status: pending (being written, invisible), committed (the current
-- version at its key), garbage (replaced or deleted; bytes still to be removed).
CREATE TABLE objects (
    id                  TEXT PRIMARY KEY,
    bucket              TEXT NOT NULL,
    key                 TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'committed', 'garbage')),
    owner               TEXT NOT NULL,
    size                INTEGER,
    sha256              TEXT,
    etag                TEXT,
    content_type        TEXT,
    checksum_algorithm  TEXT,
    checksum_value      TEXT,
    created_at          INTEGER NOT NULL,
    committed_at        INTEGER,
    lease_until         INTEGER
);

-- At most one committed version per key; also the index for GET and for ordered listing.
CREATE UNIQUE INDEX objects_current ON objects (bucket, key) WHERE status = 'committed';
-- The sweeper's scan.
CREATE INDEX objects_sweep ON objects (status, lease_until) WHERE status != 'committed';
-- Owner searches.
CREATE INDEX objects_owner ON objects (owner, created_at);
