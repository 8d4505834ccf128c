-- Where an object's bytes are: the backend storage class they were written with or moved to
-- (S3 spelling; STANDARD on backends without classes). The sweeper's transition pass finds the
-- committed objects of a bucket past their age in a class other than the colder one.
ALTER TABLE objects ADD COLUMN storage_class TEXT NOT NULL DEFAULT 'STANDARD';
CREATE INDEX objects_class_age ON objects (bucket, storage_class, committed_at)
    WHERE status = 'committed';
