-- Control plane: tenants, their credentials, upload links and tokens, files, audit, events.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- API keys are shown once; only a SHA-256 of their secret part is kept (they are 256-bit
-- random, so a fast hash is enough: nothing to brute-force).
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    secret_hash  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

-- S3 access keys of a tenant. SigV4 needs the secret itself to verify, so it is stored; the
-- secret column holds it sealed with the gateway's key-encryption key when one is configured.
CREATE TABLE access_keys (
    access_key_id  TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    secret         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER
);
CREATE INDEX access_keys_tenant ON access_keys (tenant_id);

-- One-time upload tokens for anonymous clients; hashed like API keys.
CREATE TABLE upload_tokens (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    client_id      TEXT NOT NULL,
    -- The principal that issued the token; uploads made with it belong to that principal.
    owner          TEXT NOT NULL,
    secret_hash    TEXT NOT NULL,
    expires_at     INTEGER NOT NULL,
    max_uploads    INTEGER NOT NULL,
    uploads_used   INTEGER NOT NULL DEFAULT 0,
    max_bytes      INTEGER NOT NULL,
    bytes_used     INTEGER NOT NULL DEFAULT 0,
    allowed_types  TEXT NOT NULL,
    revoked_at     INTEGER,
    created_at     INTEGER NOT NULL
);

-- Files: the owner's view of an object and its versions (each version has its own key).
CREATE TABLE files (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    owner         TEXT NOT NULL,
    bucket        TEXT NOT NULL,
    filename      TEXT NOT NULL,
    metadata      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'complete', 'deleted')),
    current_key   TEXT,
    content_type  TEXT,
    size          INTEGER,
    sha256        TEXT,
    versions      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
-- The owner's listing, newest first, keyset-paginated on (created_at, id).
CREATE INDEX files_owner ON files (tenant_id, owner, created_at DESC, id DESC);

-- Signed upload links. A link is claimed atomically (pending -> uploading) by the first request
-- that passes verification, released on failure, completed by the commit.
CREATE TABLE uploads (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    owner         TEXT NOT NULL,
    file_id       TEXT NOT NULL REFERENCES files (id),
    bucket        TEXT NOT NULL,
    key           TEXT NOT NULL,
    size          INTEGER NOT NULL,
    content_type  TEXT NOT NULL,
    sha256        TEXT,
    token_id      TEXT,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'uploading', 'complete', 'failed', 'expired')),
    expires_at    INTEGER NOT NULL,
    claimed_until INTEGER,
    created_at    INTEGER NOT NULL,
    completed_at  INTEGER
);
CREATE INDEX uploads_file ON uploads (file_id);

-- Who read or was granted what (downloads, grants), for owners and auditors.
CREATE TABLE audit_log (
    id         TEXT PRIMARY KEY,
    at         INTEGER NOT NULL,
    tenant_id  TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    file_id    TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX audit_log_file ON audit_log (file_id, at);

-- Durable outbox of webhook events: written in the same transaction as the change it reports,
-- delivered (with retries) by a background worker, so a restart loses nothing.
CREATE TABLE outbox (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    event            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    delivered_at     INTEGER,
    last_error       TEXT
);
CREATE INDEX outbox_due ON outbox (delivered_at, next_attempt_at);

-- Keys that sign the upload and download links upgate mints (SigV4, access key id
-- `UGLINK<id>`). Shared by every replica through the database; several are valid at once so they
-- can rotate: new links use the newest, older ones verify until retired.
CREATE TABLE link_keys (
    id          TEXT PRIMARY KEY,
    secret      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
