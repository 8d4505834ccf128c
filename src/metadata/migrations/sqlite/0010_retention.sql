-- Retention: when a file is deleted by the sweeper, and the legal hold that stops it.
-- Milliseconds since the epoch after which the file (every version) is deleted; NULL: kept.
ALTER TABLE files ADD COLUMN expires_at INTEGER;
-- 1: neither its owner nor expiry may delete the file until the hold is released.
ALTER TABLE files ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0;
-- The sweeper finds due files in expiry order.
CREATE INDEX files_expiry ON files (expires_at) WHERE expires_at IS NOT NULL;
-- Seconds a file uploaded through the token is kept (from its upload); NULL: the bucket's rule.
ALTER TABLE upload_tokens ADD COLUMN file_ttl_secs INTEGER;
