-- Full-text search of document contents (text, CSV, the text layer of PDFs, Office documents):
-- the extracted text of each file's current version, and its tsvector ('simple': words as they
-- are, no language's stemming or stop words, so every language is found alike) in a GIN index.
CREATE TABLE file_text (
    file_id  TEXT PRIMARY KEY,
    body     TEXT NOT NULL,
    tsv      tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED
);
CREATE INDEX file_text_search ON file_text USING GIN (tsv);
