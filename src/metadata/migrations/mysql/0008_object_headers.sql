-- What S3 clients store with an object besides its bytes: user metadata (`x-amz-meta-*`) and the
-- standard headers returned on GET/HEAD (Cache-Control, Content-Disposition, ...), as a JSON
-- array of [name, value] pairs (lowercase names, UTF-8 values). NULL: none given.
ALTER TABLE objects ADD COLUMN headers MEDIUMBLOB;
-- The same, given when a multipart upload is created, for the object it completes into.
ALTER TABLE multipart_uploads ADD COLUMN headers MEDIUMBLOB;
-- The ETag of the object a completed upload became: the row stays (without parts) until the
-- multipart idle window passes, so that a retried CompleteMultipartUpload gets the same answer.
-- NULL: the upload is open.
ALTER TABLE multipart_uploads ADD COLUMN completed_etag BLOB;
-- Object tags (S3 object tagging: at most 10 key/value pairs), a JSON array of [key, value]
-- pairs; NULL: none. On an upload, the tags given when it was created (`x-amz-tagging`).
ALTER TABLE objects ADD COLUMN tags BLOB;
ALTER TABLE multipart_uploads ADD COLUMN tags BLOB;
