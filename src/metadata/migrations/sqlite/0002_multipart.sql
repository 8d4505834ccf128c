-- Open multipart uploads. An upload is invisible until completed; its parts are hidden blobs.
CREATE TABLE multipart_uploads (
    upload_id           TEXT PRIMARY KEY,
    bucket              TEXT NOT NULL,
    key                 TEXT NOT NULL,
    owner               TEXT NOT NULL,
    content_type        TEXT,
    checksum_algorithm  TEXT,
    created_at          INTEGER NOT NULL,
    last_activity       INTEGER NOT NULL
);
CREATE INDEX multipart_uploads_list ON multipart_uploads (bucket, key, upload_id);
CREATE INDEX multipart_uploads_idle ON multipart_uploads (last_activity);

-- One row per stored part; re-uploading a part number replaces the row (and its blob).
CREATE TABLE multipart_parts (
    upload_id       TEXT NOT NULL REFERENCES multipart_uploads (upload_id) ON DELETE CASCADE,
    part_number     INTEGER NOT NULL,
    blob_id         TEXT NOT NULL,
    size            INTEGER NOT NULL,
    etag            TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    checksum_algorithm  TEXT,
    checksum_value  TEXT,
    detected_type   TEXT,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

-- Blobs that no committed row points to: parts being written (swept only if their writer died
-- before recording them) and replaced or abandoned parts (swept at once). A row is written
-- before the blob exists and removed in the transaction that makes a part row point to it.
CREATE TABLE loose_blobs (
    blob_id      TEXT PRIMARY KEY,
    bucket       TEXT NOT NULL,
    sweep_after  INTEGER NOT NULL
);
CREATE INDEX loose_blobs_due ON loose_blobs (sweep_after);
