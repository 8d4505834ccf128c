-- Accounts and sessions: users of a tenant, their login sessions (refresh-token families),
-- the refresh tokens (hashed), failed-login counters, and upgate's own signing keys.
-- (0006 is reserved for another change.)

-- A person who signs in. E-mail addresses are stored normalised (trimmed, lower case) and are
-- unique per tenant; only the argon2id PHC string of the password is kept.
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    email          TEXT NOT NULL,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    password_hash  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    disabled_at    INTEGER,
    UNIQUE (tenant_id, email)
);

-- One login: the family of refresh tokens that rotate from it. Revoking it (logout, or a
-- rotated refresh token presented again) ends every token of the family, access tokens
-- included (they carry the session id and are checked against this row).
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    tenant_id   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Refresh tokens, opaque 256-bit secrets of which only the SHA-256 is kept. `used_at` is set
-- when the token is rotated; presenting a used token again revokes its session.
CREATE TABLE refresh_tokens (
    id           TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES sessions (id),
    secret_hash  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Failed sign-ins per key (`account:<tenant>:<email>` or `address:<ip>`), for backoff and lockout.
-- The window restarts after a success or when it has passed.
CREATE TABLE login_failures (
    key           TEXT PRIMARY KEY,
    failures      INTEGER NOT NULL,
    first_at      INTEGER NOT NULL,
    locked_until  INTEGER NOT NULL
);

-- Keys that sign access tokens and upload receipts (Ed25519). The private key (PKCS#8) is
-- sealed with a master key (AES-256-GCM, `storage.encryption`); the public JWK is published at
-- /.well-known/jwks.json. The newest live key signs; a retired key verifies until
-- `verify_until` (its last tokens' expiry), then is dropped from the JWKS.
CREATE TABLE signing_keys (
    id            TEXT PRIMARY KEY,
    alg           TEXT NOT NULL,
    private_key   TEXT NOT NULL,
    public_jwk    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    retired_at    INTEGER,
    verify_until  INTEGER
);
