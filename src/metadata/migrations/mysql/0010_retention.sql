-- MySQL / MariaDB twin of migrations/postgres/0010_retention.sql (no partial index: every row
-- is indexed, NULLs first).
ALTER TABLE files ADD COLUMN expires_at BIGINT;
ALTER TABLE files ADD COLUMN legal_hold BIGINT NOT NULL DEFAULT 0;
CREATE INDEX files_expiry ON files (expires_at);
ALTER TABLE upload_tokens ADD COLUMN file_ttl_secs BIGINT;
