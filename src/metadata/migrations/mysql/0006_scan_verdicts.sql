-- The content verdict of each committed object and file: which checks ran, and what was changed
-- in the stored bytes (a PDF disarmed, image metadata removed), as JSON. NULL: committed before
-- verdicts were recorded.
ALTER TABLE objects ADD COLUMN scan BLOB;
ALTER TABLE files ADD COLUMN scan BLOB;
