-- Control plane: tenants, their credentials, upload links and tokens, files, audit, events.

CREATE TABLE tenants (
    id          VARBINARY(255) NOT NULL PRIMARY KEY,
    name        VARBINARY(255) NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
) ENGINE = InnoDB;

-- API keys are shown once; only a SHA-256 of their secret part is kept (they are 256-bit
-- random, so a fast hash is enough: nothing to brute-force).
CREATE TABLE api_keys (
    id           VARBINARY(255) NOT NULL PRIMARY KEY,
    tenant_id    VARBINARY(255) NOT NULL,
    secret_hash  BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE = InnoDB;

-- S3 access keys of a tenant. SigV4 needs the secret itself to verify, so it is stored; the
-- secret column holds it sealed with the gateway's key-encryption key when one is configured.
CREATE TABLE access_keys (
    access_key_id  VARBINARY(255) NOT NULL PRIMARY KEY,
    tenant_id      VARBINARY(255) NOT NULL,
    secret         BLOB NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE = InnoDB;
CREATE INDEX access_keys_tenant ON access_keys (tenant_id);

-- One-time upload tokens for anonymous clients; hashed like API keys.
CREATE TABLE upload_tokens (
    id             VARBINARY(255) NOT NULL PRIMARY KEY,
    tenant_id      VARBINARY(255) NOT NULL,
    client_id      BLOB NOT NULL,
    -- The principal that issued the token; uploads made with it belong to that principal.
    owner          BLOB NOT NULL,
    secret_hash    BLOB NOT NULL,
    expires_at     BIGINT NOT NULL,
    max_uploads    BIGINT NOT NULL,
    uploads_used   BIGINT NOT NULL DEFAULT 0,
    max_bytes      BIGINT NOT NULL,
    bytes_used     BIGINT NOT NULL DEFAULT 0,
    allowed_types  BLOB NOT NULL,
    revoked_at     BIGINT,
    created_at     BIGINT NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE = InnoDB;

-- Files: the owner's view of an object and its versions (each version has its own key).
CREATE TABLE files (
    id            VARBINARY(255) NOT NULL PRIMARY KEY,
    tenant_id     VARBINARY(255) NOT NULL,
    owner         VARBINARY(255) NOT NULL,
    bucket        BLOB NOT NULL,
    filename      BLOB NOT NULL,
    metadata      BLOB NOT NULL,
    status        VARBINARY(16) NOT NULL CHECK (status IN ('pending', 'complete', 'deleted')),
    current_key   BLOB,
    content_type  BLOB,
    size          BIGINT,
    sha256        BLOB,
    versions      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
) ENGINE = InnoDB;
-- The owner's listing, newest first, keyset-paginated on (created_at, id).
CREATE INDEX files_owner ON files (tenant_id, owner, created_at DESC, id DESC);

-- Signed upload links. A link is claimed atomically (pending -> uploading) by the first request
-- that passes verification, released on failure, completed by the commit.
CREATE TABLE uploads (
    id            VARBINARY(255) NOT NULL PRIMARY KEY,
    tenant_id     BLOB NOT NULL,
    owner         BLOB NOT NULL,
    file_id       VARBINARY(255) NOT NULL,
    bucket        BLOB NOT NULL,
    `key`         VARBINARY(1024) NOT NULL,
    size          BIGINT NOT NULL,
    content_type  BLOB NOT NULL,
    sha256        BLOB,
    token_id      BLOB,
    status        VARBINARY(16) NOT NULL CHECK (status IN ('pending', 'uploading', 'complete', 'failed', 'expired')),
    expires_at    BIGINT NOT NULL,
    claimed_until BIGINT,
    created_at    BIGINT NOT NULL,
    completed_at  BIGINT,
    FOREIGN KEY (file_id) REFERENCES files (id)
) ENGINE = InnoDB;
CREATE INDEX uploads_file ON uploads (file_id);

-- Who read or was granted what (downloads, grants), for owners and auditors.
CREATE TABLE audit_log (
    id         VARBINARY(255) NOT NULL PRIMARY KEY,
    at         BIGINT NOT NULL,
    tenant_id  BLOB NOT NULL,
    actor      BLOB NOT NULL,
    action     BLOB NOT NULL,
    file_id    VARBINARY(255),
    detail     BLOB NOT NULL
) ENGINE = InnoDB;
CREATE INDEX audit_log_file ON audit_log (file_id, at);

-- Durable outbox of webhook events: written in the same transaction as the change it reports,
-- delivered (with retries) by a background worker, so a restart loses nothing.
CREATE TABLE outbox (
    id               VARBINARY(255) NOT NULL PRIMARY KEY,
    tenant_id        BLOB NOT NULL,
    event            BLOB NOT NULL,
    payload          MEDIUMBLOB NOT NULL,
    created_at       BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    delivered_at     BIGINT,
    last_error       BLOB
) ENGINE = InnoDB;
CREATE INDEX outbox_due ON outbox (delivered_at, next_attempt_at);

-- Keys that sign the upload and download links upgate mints (SigV4, access key id
-- `UGLINK<id>`). Shared by every replica through the database; several are valid at once so they
-- can rotate: new links use the newest, older ones verify until retired.
CREATE TABLE link_keys (
    id          VARBINARY(255) NOT NULL PRIMARY KEY,
    secret      BLOB NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
) ENGINE = InnoDB;
