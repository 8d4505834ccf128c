-- SQLite twin of migrations/postgres/0012_reconcile.sql.
-- The reconciler (bytes in the backend against the records) asks, for each listed blob, whether a
-- part refers to it: index the parts by blob.
CREATE INDEX multipart_parts_blob ON multipart_parts (blob_id);

-- Periodic maintenance jobs that one replica at a time runs (claimed by a conditional update
-- of `started_at`): name, when the current or last run started, and by whom.
CREATE TABLE maintenance (
    name        TEXT PRIMARY KEY,
    started_at  BIGINT NOT NULL,
    holder      TEXT NOT NULL
);
INSERT INTO maintenance (name, started_at, holder) VALUES ('reconcile', 0, '');
