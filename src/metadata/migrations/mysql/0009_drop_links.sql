-- MySQL / MariaDB twin of migrations/postgres/0009_drop_links.sql. Text defaults are
-- expressions (MySQL 8.0.13+, MariaDB 10.2+); indexes on BLOB columns take a prefix, and MariaDB
-- has no partial indexes (rows without a token_id are simply indexed too).
-- Most bytes one upload through the token may have; NULL: the bucket's limit.
ALTER TABLE upload_tokens ADD COLUMN max_file_bytes BIGINT;
-- A note from the issuer, shown on the drop page (plain text, at most 500 characters).
ALTER TABLE upload_tokens ADD COLUMN note BLOB NOT NULL DEFAULT ('');
-- Who asks for the files, as the drop page names them (plain text, at most 100 characters).
ALTER TABLE upload_tokens ADD COLUMN requester BLOB NOT NULL DEFAULT ('');
-- The address notified about uploads through the token; NULL: none.
ALTER TABLE upload_tokens ADD COLUMN notify_email BLOB;
-- An issuer lists its drop links, newest first.
CREATE INDEX upload_tokens_by_owner ON upload_tokens (tenant_id, owner(255), created_at);
-- A token's page lists the uploads made through it.
CREATE INDEX uploads_by_token ON uploads (token_id(64), created_at);
