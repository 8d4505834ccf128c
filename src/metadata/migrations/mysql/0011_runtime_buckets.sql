-- MySQL / MariaDB twin of migrations/postgres/0011_runtime_buckets.sql.
ALTER TABLE buckets ADD COLUMN runtime BIGINT NOT NULL DEFAULT 0;
ALTER TABLE buckets ADD COLUMN tenant_id VARBINARY(255);
CREATE INDEX buckets_tenant ON buckets (tenant_id);
ALTER TABLE objects ADD COLUMN part_sizes MEDIUMBLOB;
ALTER TABLE multipart_uploads ADD COLUMN checksum_type VARBINARY(16);
