-- Resumable uploads (tus and the IETF draft). The bytes are the parts of a multipart upload
-- with the same id (owner `resumable:<id>`, so no S3 principal can address it); this row holds
-- what the resumable protocols add: the declared length, the metadata, the creator, the link
-- it completes through, concatenation, and a lease that serialises appends across replicas.
CREATE TABLE resumable_uploads (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    creator         TEXT NOT NULL,
    owner           TEXT NOT NULL,
    bucket          TEXT COLLATE "C" NOT NULL,
    key             TEXT COLLATE "C" NOT NULL,
    link_id         TEXT,
    token_id        TEXT,
    length          BIGINT,
    declared_type   TEXT,
    filename        TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    sha256          TEXT,
    concat          TEXT NOT NULL,
    concat_parts    TEXT NOT NULL,
    status          TEXT NOT NULL,
    locked_until    BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX resumable_uploads_age ON resumable_uploads (created_at);
CREATE INDEX resumable_uploads_creator ON resumable_uploads (creator, status);
