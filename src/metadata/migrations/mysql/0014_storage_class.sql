-- MySQL / MariaDB twin of migrations/postgres/0014_storage_class.sql (no partial index: every
-- row is indexed).
ALTER TABLE objects ADD COLUMN storage_class VARBINARY(32) NOT NULL DEFAULT 'STANDARD';
CREATE INDEX objects_class_age ON objects (bucket, storage_class, committed_at);
