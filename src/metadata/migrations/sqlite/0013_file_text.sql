-- SQLite twin of migrations/postgres/0013_file_text.sql: the text in a plain table (found by
-- file id through its unique index) and an FTS5 index over it (external content, kept in step
-- by the triggers; unicode61 tokens with diacritics folded).
CREATE TABLE file_text (
    id       INTEGER PRIMARY KEY,
    file_id  TEXT NOT NULL UNIQUE,
    body     TEXT NOT NULL
);
CREATE VIRTUAL TABLE file_text_index USING fts5(
    body, content = 'file_text', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER file_text_added AFTER INSERT ON file_text BEGIN
    INSERT INTO file_text_index (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER file_text_removed AFTER DELETE ON file_text BEGIN
    INSERT INTO file_text_index (file_text_index, rowid, body) VALUES ('delete', old.id, old.body);
END;
