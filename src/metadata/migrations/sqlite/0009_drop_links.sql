-- Drop links: what an upload token's page shows its holder, and the per-file limit it enforces.
-- Most bytes one upload through the token may have; NULL: the bucket's limit.
ALTER TABLE upload_tokens ADD COLUMN max_file_bytes INTEGER;
-- A note from the issuer, shown on the drop page (plain text, at most 500 characters).
ALTER TABLE upload_tokens ADD COLUMN note TEXT NOT NULL DEFAULT '';
-- Who asks for the files, as the drop page names them (plain text, at most 100 characters).
ALTER TABLE upload_tokens ADD COLUMN requester TEXT NOT NULL DEFAULT '';
-- The address notified about uploads through the token; NULL: none.
ALTER TABLE upload_tokens ADD COLUMN notify_email TEXT;
-- An issuer lists its drop links, newest first.
CREATE INDEX upload_tokens_by_owner ON upload_tokens (tenant_id, owner, created_at);
-- A token's page lists the uploads made through it.
CREATE INDEX uploads_by_token ON uploads (token_id, created_at) WHERE token_id IS NOT NULL;
