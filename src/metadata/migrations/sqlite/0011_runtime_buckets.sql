-- Buckets created through the S3 API (CreateBucket) next to the configured ones, the part sizes
-- of objects completed from a multipart upload (GET/HEAD by partNumber), and the checksum type
-- of a multipart upload.
-- 1: created at run time (CreateBucket; DeleteBucket may remove it); 0: recorded from the
-- configuration on start.
ALTER TABLE buckets ADD COLUMN runtime INTEGER NOT NULL DEFAULT 0;
-- The tenant whose access key created the bucket; NULL: an operator key (or the config).
ALTER TABLE buckets ADD COLUMN tenant_id TEXT;
-- A tenant's bucket quota counts its buckets.
CREATE INDEX buckets_tenant ON buckets (tenant_id);
-- Sizes of the parts an object was completed from, in part order, comma-separated decimal;
-- NULL: a single-part object.
ALTER TABLE objects ADD COLUMN part_sizes TEXT;
-- How a multipart upload's checksum covers the object it completes into
-- (x-amz-checksum-type): COMPOSITE or FULL_OBJECT; NULL: no checksum algorithm was asked for.
ALTER TABLE multipart_uploads ADD COLUMN checksum_type TEXT;
