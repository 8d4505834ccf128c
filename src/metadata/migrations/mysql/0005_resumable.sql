-- Resumable uploads (tus and the IETF draft). The bytes are the parts of a multipart upload
-- with the same id (owner `resumable:<id>`, so no S3 principal can address it); this row holds
-- what the resumable protocols add: the declared length, the metadata, the creator, the link
-- it completes through, concatenation, and a lease that serialises appends across replicas.
CREATE TABLE resumable_uploads (
    id              VARBINARY(255) NOT NULL PRIMARY KEY,
    tenant_id       BLOB NOT NULL,
    creator         VARBINARY(255) NOT NULL,
    owner           BLOB NOT NULL,
    bucket          VARBINARY(255) NOT NULL,
    `key`           VARBINARY(1024) NOT NULL,
    link_id         BLOB,
    token_id        BLOB,
    length          BIGINT,
    declared_type   BLOB,
    filename        BLOB NOT NULL,
    metadata        BLOB NOT NULL,
    sha256          BLOB,
    concat          BLOB NOT NULL,
    concat_parts    MEDIUMBLOB NOT NULL,
    status          VARBINARY(32) NOT NULL,
    locked_until    BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
) ENGINE = InnoDB;
CREATE INDEX resumable_uploads_age ON resumable_uploads (created_at);
CREATE INDEX resumable_uploads_creator ON resumable_uploads (creator, status);
