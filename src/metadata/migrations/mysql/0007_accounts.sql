-- Accounts and sessions: users of a tenant, their login sessions (refresh-token families),
-- the refresh tokens (hashed), failed-login counters, and upgate's own signing keys.

-- A person who signs in. E-mail addresses are stored normalised (trimmed, lower case) and are
-- unique per tenant; only the argon2id PHC string of the password is kept.
CREATE TABLE users (
    id             VARBINARY(255) NOT NULL PRIMARY KEY,
    tenant_id      VARBINARY(255) NOT NULL,
    email          VARBINARY(1024) NOT NULL,
    name           BLOB NOT NULL,
    role           VARBINARY(16) NOT NULL CHECK (role IN ('admin', 'member')),
    password_hash  BLOB NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    disabled_at    BIGINT,
    UNIQUE (tenant_id, email),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE = InnoDB;

-- One login: the family of refresh tokens that rotate from it. Revoking it (logout, or a
-- rotated refresh token presented again) ends every token of the family, access tokens
-- included (they carry the session id and are checked against this row).
CREATE TABLE sessions (
    id          VARBINARY(255) NOT NULL PRIMARY KEY,
    user_id     VARBINARY(255) NOT NULL,
    tenant_id   BLOB NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB;

-- Refresh tokens, opaque 256-bit secrets of which only the SHA-256 is kept. `used_at` is set
-- when the token is rotated; presenting a used token again revokes its session.
CREATE TABLE refresh_tokens (
    id           VARBINARY(255) NOT NULL PRIMARY KEY,
    session_id   VARBINARY(255) NOT NULL,
    secret_hash  BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT,
    FOREIGN KEY (session_id) REFERENCES sessions (id)
) ENGINE = InnoDB;

-- Failed sign-ins per key (`account:<tenant>:<email>` or `address:<ip>`), for backoff and lockout.
-- The window restarts after a success or when it has passed.
CREATE TABLE login_failures (
    `key`         VARBINARY(1536) NOT NULL PRIMARY KEY,
    failures      BIGINT NOT NULL,
    first_at      BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL
) ENGINE = InnoDB;

-- Keys that sign access tokens and upload receipts (Ed25519). The private key (PKCS#8) is
-- sealed with a master key (AES-256-GCM, `storage.encryption`); the public JWK is published at
-- /.well-known/jwks.json. The newest live key signs; a retired key verifies until
-- `verify_until` (its last tokens' expiry), then is dropped from the JWKS.
CREATE TABLE signing_keys (
    id            VARBINARY(255) NOT NULL PRIMARY KEY,
    alg           BLOB NOT NULL,
    private_key   BLOB NOT NULL,
    public_jwk    BLOB NOT NULL,
    created_at    BIGINT NOT NULL,
    retired_at    BIGINT,
    verify_until  BIGINT
) ENGINE = InnoDB;
