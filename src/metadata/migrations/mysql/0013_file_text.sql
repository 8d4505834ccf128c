-- MySQL / MariaDB twin of migrations/postgres/0013_file_text.sql: an InnoDB FULLTEXT index over
-- the text (a character column, unlike the binary ones elsewhere, so that it can be indexed).
CREATE TABLE file_text (
    file_id  VARBINARY(255) NOT NULL PRIMARY KEY,
    body     MEDIUMTEXT CHARACTER SET utf8mb4 NOT NULL,
    FULLTEXT INDEX file_text_search (body)
) ENGINE = InnoDB;
