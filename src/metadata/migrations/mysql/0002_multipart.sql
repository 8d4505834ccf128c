-- Open multipart uploads. An upload is invisible until completed; its parts are hidden blobs.
CREATE TABLE multipart_uploads (
    upload_id           VARBINARY(255) NOT NULL PRIMARY KEY,
    bucket              VARBINARY(255) NOT NULL,
    `key`               VARBINARY(1024) NOT NULL,
    owner               VARBINARY(255) NOT NULL,
    content_type        BLOB,
    checksum_algorithm  BLOB,
    created_at          BIGINT NOT NULL,
    last_activity       BIGINT NOT NULL
) ENGINE = InnoDB;
CREATE INDEX multipart_uploads_list ON multipart_uploads (bucket, `key`, upload_id);
CREATE INDEX multipart_uploads_idle ON multipart_uploads (last_activity);

-- One row per stored part; re-uploading a part number replaces the row (and its blob).
CREATE TABLE multipart_parts (
    upload_id       VARBINARY(255) NOT NULL,
    part_number     BIGINT NOT NULL,
    blob_id         VARBINARY(255) NOT NULL,
    size            BIGINT NOT NULL,
    etag            BLOB NOT NULL,
    sha256          BLOB NOT NULL,
    checksum_algorithm  BLOB,
    checksum_value  BLOB,
    detected_type   BLOB,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number),
    FOREIGN KEY (upload_id) REFERENCES multipart_uploads (upload_id) ON DELETE CASCADE
) ENGINE = InnoDB;

-- Blobs that no committed row points to: parts being written (swept only if their writer died
-- before recording them) and replaced or abandoned parts (swept at once). A row is written
-- before the blob exists and removed in the transaction that makes a part row point to it.
CREATE TABLE loose_blobs (
    blob_id      VARBINARY(255) NOT NULL PRIMARY KEY,
    bucket       VARBINARY(255) NOT NULL,
    sweep_after  BIGINT NOT NULL
) ENGINE = InnoDB;
CREATE INDEX loose_blobs_due ON loose_blobs (sweep_after);
