-- MySQL / MariaDB twin of migrations/postgres/0001_objects.sql: same tables, columns, statuses
-- and indexes (see mysql.rs for what differs). Every string is a binary string (VARBINARY,
-- BLOB) holding UTF-8: equality, ordering and range scans compare bytes (as the "C" collation
-- and SQLite do: case-sensitive, trailing spaces significant), whatever the server's default
-- collation, and the same on MySQL and MariaDB. Object keys are VARBINARY(1024) (S3 keys are at
-- most 1024 bytes; an index must fit in 3072 bytes). Times are milliseconds since the Unix
-- epoch; sizes are bytes.

-- Buckets known to this gateway (configured buckets are recorded on start).
CREATE TABLE buckets (
    name        VARBINARY(255) NOT NULL PRIMARY KEY,
    created_at  BIGINT NOT NULL
) ENGINE = InnoDB;

-- One row per object version. Status: pending (being written, invisible), committed (the current
-- version at its key), garbage (replaced or deleted; bytes still to be removed).
CREATE TABLE objects (
    id                  VARBINARY(255) NOT NULL PRIMARY KEY,
    bucket              VARBINARY(255) NOT NULL,
    `key`               VARBINARY(1024) NOT NULL,
    status              VARBINARY(16) NOT NULL CHECK (status IN ('pending', 'committed', 'garbage')),
    owner               VARBINARY(255) NOT NULL,
    size                BIGINT,
    sha256              BLOB,
    etag                BLOB,
    content_type        BLOB,
    checksum_algorithm  BLOB,
    checksum_value      BLOB,
    created_at          BIGINT NOT NULL,
    committed_at        BIGINT,
    lease_until         BIGINT,
    -- The key while the row is committed, else NULL: the partial index of the other databases.
    current_key         VARBINARY(1024) AS (CASE WHEN status = 'committed' THEN `key` END) STORED
) ENGINE = InnoDB;

-- At most one committed version per key. A concurrent commit to the same key trips this index,
-- and the loser retries (see objects.rs).
CREATE UNIQUE INDEX objects_current ON objects (bucket, current_key);
-- GET and ordered listing; also the order in which a commit locks the rows of its key (bucket,
-- key, then id: nothing in it changes while the rows exist, so every commit locks in the same
-- order).
CREATE INDEX objects_key ON objects (bucket, `key`);
-- The sweeper's scan.
CREATE INDEX objects_sweep ON objects (status, lease_until);
-- Owner searches.
CREATE INDEX objects_owner ON objects (owner, created_at);
