//! The one SQL source of the stores, spoken in three dialects.
//!
//! Statements are written once, in the dialect SQLite and PostgreSQL share (`$N` placeholders,
//! `ON CONFLICT`, `excluded.`), and run through [`query`], which hands them to sqlx unchanged on
//! PostgreSQL, with `?` placeholders on SQLite ([`sqlite_dialect`]), and translated for MySQL /
//! MariaDB ([`mysql_dialect`]).
//!
//! On SQLite, `?` instead of `$N` is about cost, not meaning: sqlx asks SQLite the name of every
//! parameter of a statement it binds, and SQLite finds a numbered parameter's name by walking
//! the statement's list of names, so binding a statement of n numbered parameters takes n² steps.
//! A group commit's multi-row statements carry hundreds of values (64 rows of 13 for a commit);
//! a statement of `?` only has no list to walk. The values are bound in the order the
//! placeholders appear, as for MySQL.
//!
//! For MySQL:
//!
//! - `$N` becomes `?`. MySQL binds `?` by position, so the values are bound in the order the
//!   placeholders appear in the text, a `$N` that appears twice getting its value twice (the
//!   stores bind in numeric order, as for PostgreSQL).
//! - `key`, a reserved word in MySQL, is quoted as an identifier (`` `key` ``).
//! - `ON CONFLICT (…) DO NOTHING` becomes `INSERT IGNORE`: MySQL's `ON DUPLICATE KEY UPDATE
//!   c = c` reports one affected row whether it inserted or not (sqlx sets `CLIENT_FOUND_ROWS`),
//!   and callers count inserted rows. Unlike `ON CONFLICT`, `IGNORE` also turns other errors of
//!   the row (a foreign key, a value too long) into warnings; the statements that use it insert
//!   values whose lengths the front ends bound.
//! - `ON CONFLICT (…) DO UPDATE SET a = excluded.a` becomes `ON DUPLICATE KEY UPDATE
//!   a = VALUES(a)`. MySQL applies the assignments left to right (a later one sees the new value
//!   of an earlier column); every upsert here assigns each column from values the others do
//!   not change.
//! - `CAST(… AS BIGINT)` becomes `CAST(… AS SIGNED)`.
//!
//! MySQL has no `UPDATE … RETURNING`: a statement that needs it is refused by the translation
//! (so a missed one fails its tests loudly), and the stores branch on [`Dialect::RETURNING`]
//! into an `UPDATE` followed by a `SELECT` in the same transaction, the `UPDATE` holding the
//! row locks.
//!
//! Rows are read through [`Field::field`]: upgate's MySQL schema stores strings as binary
//! strings (so that comparisons are bytewise, as in the other two), which MySQL reports with the
//! `BINARY` flag and sqlx's type check refuses for `String`; on MySQL the column type check is
//! skipped, the decoding (UTF-8 validation, integer width) is not.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use sqlx::database::Database;
use sqlx::error::BoxDynError;
use sqlx::{Arguments, ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

/// What differs between the databases the stores run on.
pub trait Dialect: Database {
    /// Whether `UPDATE … RETURNING` (and `INSERT … RETURNING`) is available.
    const RETURNING: bool;
    /// Whether sqlx's column type check is trusted when decoding (see the module docs).
    const CHECKED_DECODE: bool;
    /// Whether a commit first locks every row of its key. On MySQL, a commit that waits on the
    /// unique index for a concurrent commit of the same key keeps a shared lock on that
    /// commit's index entry even after losing; two such losers then deadlock when each retires
    /// the winner. Queueing on the key's rows first means the index never has to wait.
    const KEY_LOCKS: bool;
    /// The statement in this database's dialect, and for each placeholder of it the (0-based)
    /// index of the value it takes (`None`: the values in the order bound). Fails on a
    /// construct the dialect cannot express.
    fn dialect(sql: &str) -> Result<(&str, Option<&'static [usize]>), sqlx::Error>;
    /// This database's full-text search (migration 0013).
    const FULL_TEXT: FullText;
}

/// The full-text engines behind `GET /v1/files?q=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullText {
    /// SQLite FTS5 (`file_text_index`), ranked by BM25.
    Fts5,
    /// PostgreSQL tsvector in a GIN index, ranked by `ts_rank`.
    TsVector,
    /// InnoDB FULLTEXT, ranked by its relevance.
    InnoDb,
}

impl Dialect for sqlx::Sqlite {
    const FULL_TEXT: FullText = FullText::Fts5;
    const RETURNING: bool = true;
    const CHECKED_DECODE: bool = true;
    const KEY_LOCKS: bool = false;
    fn dialect(sql: &str) -> Result<(&str, Option<&'static [usize]>), sqlx::Error> {
        static CACHE: Translations = OnceLock::new();
        let (text, order) = translated(&CACHE, "SQLite", sqlite_dialect, sql)?;
        Ok((text, Some(order)))
    }
}

impl Dialect for sqlx::Postgres {
    const FULL_TEXT: FullText = FullText::TsVector;
    const RETURNING: bool = true;
    const CHECKED_DECODE: bool = true;
    const KEY_LOCKS: bool = false;
    fn dialect(sql: &str) -> Result<(&str, Option<&'static [usize]>), sqlx::Error> {
        Ok((sql, None))
    }
}

impl Dialect for sqlx::MySql {
    const FULL_TEXT: FullText = FullText::InnoDb;
    const RETURNING: bool = false;
    const CHECKED_DECODE: bool = false;
    const KEY_LOCKS: bool = true;
    fn dialect(sql: &str) -> Result<(&str, Option<&'static [usize]>), sqlx::Error> {
        static CACHE: Translations = OnceLock::new();
        let (text, order) = translated(&CACHE, "MySQL", mysql_dialect, sql)?;
        Ok((text, Some(order)))
    }
}

/// A translation into a dialect: the statement, and for each `?` of it, the (0-based) index of
/// the value it takes; or what the dialect cannot express.
type Translation = Result<(String, Vec<usize>), &'static str>;

/// Translations of statements by source text, one cache per dialect.
type Translations = OnceLock<Mutex<HashMap<String, (&'static str, &'static [usize])>>>;

/// The translation of `sql` by `translate` (into the dialect `name`d), from `cache`. The stores
/// build statements from constants and flags, never from values, so the set is finite (a few
/// hundred) and each is translated once and kept for the life of the process.
fn translated(
    cache: &'static Translations,
    name: &str,
    translate: fn(&str) -> Translation,
    sql: &str,
) -> Result<(&'static str, &'static [usize]), sqlx::Error> {
    let cache = cache.get_or_init(Default::default);
    let mut map = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(&found) = map.get(sql) {
        return Ok(found);
    }
    let (text, order) = translate(sql).map_err(|e| {
        sqlx::Error::Configuration(format!("statement has no {name} form ({e}): {sql}").into())
    })?;
    let text: &'static str = Box::leak(text.into_boxed_str());
    let order: &'static [usize] = Box::leak(order.into_boxed_slice());
    map.insert(sql.to_owned(), (text, order));
    Ok((text, order))
}

/// The SQLite form of a statement written for PostgreSQL and SQLite: each `$N` outside a string
/// literal becomes `?` (see the module docs). With, for each `?`, the (0-based) index of the
/// value it takes.
pub fn sqlite_dialect(sql: &str) -> Translation {
    let mut out = String::with_capacity(sql.len());
    let mut order = Vec::new();
    let mut rest = sql;
    while let Some(at) = rest.find(['\'', '$']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(literal) = tail.strip_prefix('\'') {
            // A string literal, copied verbatim ('' inside it closes and reopens it).
            let end = literal.find('\'').ok_or("unterminated string literal")? + 2;
            out.push_str(&tail[..end]);
            rest = &tail[end..];
            continue;
        }
        let digits = tail[1..].bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            out.push('$');
            rest = &tail[1..];
            continue;
        }
        let n: usize = tail[1..=digits].parse().map_err(|_| "bad placeholder")?;
        if n == 0 {
            return Err("placeholder $0");
        }
        out.push('?');
        order.push(n - 1);
        rest = &tail[1 + digits..];
    }
    out.push_str(rest);
    Ok((out, order))
}

/// The MySQL form of a statement written for PostgreSQL and SQLite (see the module docs), and
/// for each `?` of it, the (0-based) index of the value it takes.
pub fn mysql_dialect(sql: &str) -> Translation {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut order = Vec::new();
    let mut ignore = false;
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    let word_at = |i: usize| -> (String, usize) {
        let mut j = i;
        while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        (chars[i..j].iter().collect(), j)
    };
    let boundary =
        |i: usize| i == 0 || !(chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_');
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // A string literal, copied verbatim ('' inside it toggles twice).
            let end = chars[i + 1..]
                .iter()
                .position(|&c| c == '\'')
                .ok_or("unterminated string literal")?;
            out.extend(&chars[i..=i + 1 + end]);
            i += end + 2;
            continue;
        }
        if c == '$' && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            let (digits, j) = word_at(i + 1);
            let n: usize = digits.parse().map_err(|_| "bad placeholder")?;
            if n == 0 {
                return Err("placeholder $0");
            }
            out.push('?');
            order.push(n - 1);
            i = j;
            continue;
        }
        if (c.is_ascii_alphabetic() || c == '_') && boundary(i) {
            let (word, j) = word_at(i);
            match word.as_str() {
                "key" => out.push_str("`key`"),
                "RETURNING" => return Err("RETURNING"),
                "excluded" if chars.get(j) == Some(&'.') => {
                    let (column, k) = word_at(j + 1);
                    out.push_str("VALUES(");
                    out.push_str(&column);
                    out.push(')');
                    i = k;
                    continue;
                }
                "BIGINT" if out.trim_end().ends_with(" AS") => out.push_str("SIGNED"),
                "ON" if sql[byte(&chars, i)..].starts_with("ON CONFLICT") => {
                    let rest = &sql[byte(&chars, i)..];
                    let clause_end = rest.find(" DO ").ok_or("ON CONFLICT without DO")?;
                    let after = &rest[clause_end + 4..];
                    let skip = if after.starts_with("NOTHING") {
                        ignore = true;
                        clause_end + 4 + "NOTHING".len()
                    } else if after.starts_with("UPDATE SET") {
                        out.push_str("ON DUPLICATE KEY UPDATE");
                        clause_end + 4 + "UPDATE SET".len()
                    } else {
                        return Err("ON CONFLICT DO what");
                    };
                    i += rest[..skip].chars().count();
                    continue;
                }
                _ => out.push_str(&word),
            }
            i = j;
            continue;
        }
        out.push(c);
        i += 1;
    }
    if ignore {
        out = match out.strip_prefix("INSERT INTO") {
            Some(rest) => format!("INSERT IGNORE INTO{rest}"),
            None => return Err("DO NOTHING outside INSERT"),
        };
    }
    Ok((out.trim_end().to_owned(), order))
}

/// Byte offset of char index `i`.
fn byte(chars: &[char], i: usize) -> usize {
    chars[..i].iter().map(|c| c.len_utf8()).sum()
}

type Binder<'q, DB> =
    Box<dyn Fn(&mut <DB as Database>::Arguments<'q>) -> Result<(), BoxDynError> + Send + Sync + 'q>;

/// A statement and its values, bound in `$N` order, run in the dialect of `DB`.
#[must_use = "a query does nothing until it is executed"]
pub struct Query<'q, DB: Dialect> {
    sql: &'q str,
    binds: Vec<Binder<'q, DB>>,
}

/// A statement of the shared SQL source, for database `DB`.
pub fn query<DB: Dialect>(sql: &str) -> Query<'_, DB> {
    Query {
        sql,
        binds: Vec::new(),
    }
}

impl<'q, DB: Dialect> Query<'q, DB>
where
    DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    /// Binds the value of the next `$N`.
    pub fn bind<T>(mut self, value: T) -> Self
    where
        T: 'q + Encode<'q, DB> + Type<DB> + Clone + Send + Sync,
    {
        self.binds
            .push(Box::new(move |args| args.add(value.clone())));
        self
    }

    /// The sqlx statement: translated, with its values in the dialect's order.
    fn prepare(self) -> Result<sqlx::query::Query<'q, DB, DB::Arguments<'q>>, sqlx::Error> {
        let (text, order) = DB::dialect(self.sql)?;
        let mut args = DB::Arguments::<'q>::default();
        let mut add = |n: usize| -> Result<(), sqlx::Error> {
            let bind = self
                .binds
                .get(n)
                .ok_or_else(|| sqlx::Error::Protocol(format!("no value bound for ${}", n + 1)))?;
            bind(&mut args).map_err(sqlx::Error::Encode)
        };
        match order {
            Some(order) => order.iter().try_for_each(|&n| add(n))?,
            None => (0..self.binds.len()).try_for_each(&mut add)?,
        }
        Ok(sqlx::query_with(text, args))
    }

    /// Runs the statement; what it changed.
    pub async fn execute<'e, 'c: 'e, E>(self, executor: E) -> Result<DB::QueryResult, sqlx::Error>
    where
        'q: 'e,
        E: 'e + Executor<'c, Database = DB>,
    {
        self.prepare()?.execute(executor).await
    }

    /// The one row of the result (`RowNotFound` if none).
    pub async fn fetch_one<'e, 'c: 'e, E>(self, executor: E) -> Result<DB::Row, sqlx::Error>
    where
        'q: 'e,
        E: 'e + Executor<'c, Database = DB>,
    {
        self.prepare()?.fetch_one(executor).await
    }

    /// The first row of the result, if any.
    pub async fn fetch_optional<'e, 'c: 'e, E>(
        self,
        executor: E,
    ) -> Result<Option<DB::Row>, sqlx::Error>
    where
        'q: 'e,
        E: 'e + Executor<'c, Database = DB>,
    {
        self.prepare()?.fetch_optional(executor).await
    }

    /// Every row of the result.
    pub async fn fetch_all<'e, 'c: 'e, E>(self, executor: E) -> Result<Vec<DB::Row>, sqlx::Error>
    where
        'q: 'e,
        E: 'e + Executor<'c, Database = DB>,
    {
        self.prepare()?.fetch_all(executor).await
    }

    /// The first column of the one row of the result.
    pub async fn scalar_one<'e, 'c: 'e, E, O>(self, executor: E) -> Result<O, sqlx::Error>
    where
        'q: 'e,
        E: 'e + Executor<'c, Database = DB>,
        O: for<'r> Decode<'r, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
        self.fetch_one(executor).await?.field(0)
    }

    /// The first column of the first row of the result, if any.
    pub async fn scalar_optional<'e, 'c: 'e, E, O>(
        self,
        executor: E,
    ) -> Result<Option<O>, sqlx::Error>
    where
        'q: 'e,
        E: 'e + Executor<'c, Database = DB>,
        O: for<'r> Decode<'r, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
        self.fetch_optional(executor)
            .await?
            .map(|r| r.field(0))
            .transpose()
    }

    /// The first column of every row of the result.
    pub async fn scalar_all<'e, 'c: 'e, E, O>(self, executor: E) -> Result<Vec<O>, sqlx::Error>
    where
        'q: 'e,
        E: 'e + Executor<'c, Database = DB>,
        O: for<'r> Decode<'r, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
        self.fetch_all(executor)
            .await?
            .iter()
            .map(|r| r.field(0))
            .collect()
    }
}

/// Most rows one statement of a batch carries (a multi-row `INSERT`, an `UPDATE … FROM
/// (VALUES …)`, an `IN (…)` list); a longer batch is several statements.
pub const MAX_ROWS_PER_STATEMENT: usize = 64;

/// `items` cut into runs, one statement each: each a power of two long, the longest first, none
/// longer than [`MAX_ROWS_PER_STATEMENT`]. However the batches fall, a statement then has one
/// of seven texts, each prepared once per connection (and, on SQLite and MySQL, translated
/// once per process), and a batch of `n` rows is at most seven statements (one per bit of `n`).
pub fn row_runs<T>(mut items: &[T]) -> Vec<&[T]> {
    let mut runs = Vec::new();
    while !items.is_empty() {
        let n = 1 << items.len().min(MAX_ROWS_PER_STATEMENT).ilog2();
        let (run, rest) = items.split_at(n);
        runs.push(run);
        items = rest;
    }
    runs
}

/// `n` numbered placeholders from `$first` on, separated by commas: `$3, $4, $5` for
/// `(3, 3)`, for an `IN (...)` list or a row of a `VALUES` list.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `VALUES` list of an `INSERT` of `rows` rows of `cols` values each, for values bound row
/// by row: `($1, $2), ($3, $4)` for two rows of two.
pub fn values_list(cols: usize, rows: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(r * cols + 1, cols)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reading a column in the store's dialect (see the module docs).
pub trait Field: Row {
    /// The value of column `index`.
    fn field<'r, T, I>(&'r self, index: I) -> Result<T, sqlx::Error>
    where
        I: ColumnIndex<Self>,
        T: Decode<'r, Self::Database> + Type<Self::Database>;
}

impl<R: Row> Field for R
where
    R::Database: Dialect,
{
    fn field<'r, T, I>(&'r self, index: I) -> Result<T, sqlx::Error>
    where
        I: ColumnIndex<Self>,
        T: Decode<'r, Self::Database> + Type<Self::Database>,
    {
        if <R::Database as Dialect>::CHECKED_DECODE {
            self.try_get(index)
        } else {
            self.try_get_unchecked(index)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn my(sql: &str) -> (String, Vec<usize>) {
        mysql_dialect(sql).unwrap()
    }

    #[test]
    fn row_runs_are_powers_of_two_longest_first() {
        let items: Vec<u32> = (0..200).collect();
        let lens =
            |n: usize| -> Vec<usize> { row_runs(&items[..n]).iter().map(|r| r.len()).collect() };
        assert!(lens(0).is_empty());
        assert_eq!(lens(1), [1]);
        assert_eq!(lens(13), [8, 4, 1]);
        assert_eq!(lens(64), [64]);
        assert_eq!(lens(200), [64, 64, 64, 8]);
        // Every item once, in order.
        let joined: Vec<u32> = row_runs(&items[..127]).concat();
        assert_eq!(joined, items[..127]);
    }

    #[test]
    fn values_lists_number_the_values_row_by_row() {
        assert_eq!(values_list(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(values_list(3, 1), "($1, $2, $3)");
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 0), "");
        // MySQL binds in the order the placeholders appear: row by row, as bound.
        let (text, order) = my(&format!(
            "INSERT INTO t (a, b) VALUES {}",
            values_list(2, 3)
        ));
        assert_eq!(text, "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)");
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn placeholders_become_positional_in_text_order() {
        assert_eq!(
            my("UPDATE t SET a = $1, b = $3 WHERE id = $2 AND c <= $1"),
            (
                "UPDATE t SET a = ?, b = ? WHERE id = ? AND c <= ?".to_owned(),
                vec![0, 2, 1, 0]
            )
        );
    }

    #[test]
    fn key_is_quoted_but_not_inside_words_or_literals() {
        assert_eq!(
            my("SELECT key, keys, monkey, u.key FROM t WHERE x = 'key' AND key > $1").0,
            "SELECT `key`, keys, monkey, u.`key` FROM t WHERE x = 'key' AND `key` > ?"
        );
    }

    #[test]
    fn do_nothing_becomes_insert_ignore() {
        assert_eq!(
            my("INSERT INTO b (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING").0,
            "INSERT IGNORE INTO b (name, created_at) VALUES (?, ?)"
        );
        assert_eq!(
            my("INSERT INTO u (t) VALUES ($1) ON CONFLICT DO NOTHING").0,
            "INSERT IGNORE INTO u (t) VALUES (?)"
        );
        assert!(mysql_dialect("UPDATE x SET a = 1 ON CONFLICT DO NOTHING").is_err());
    }

    #[test]
    fn do_update_becomes_on_duplicate_key() {
        assert_eq!(
            my("INSERT INTO l (blob_id, s) VALUES ($1, $2) \
                ON CONFLICT (blob_id) DO UPDATE SET s = excluded.s, t = l.t + 1")
            .0,
            "INSERT INTO l (blob_id, s) VALUES (?, ?) ON DUPLICATE KEY UPDATE s = VALUES(s), t = l.t + 1"
        );
    }

    #[test]
    fn casts_and_literals() {
        assert_eq!(
            my("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM p WHERE o LIKE $1 ESCAPE '\\'")
                .0,
            "SELECT CAST(COALESCE(SUM(size), 0) AS SIGNED) FROM p WHERE o LIKE ? ESCAPE '\\'"
        );
        assert_eq!(my("SELECT 'it''s $1'").0, "SELECT 'it''s $1'");
    }

    #[test]
    fn sqlite_placeholders_become_positional_outside_literals() {
        let lite = |sql: &str| sqlite_dialect(sql).unwrap();
        assert_eq!(
            lite("UPDATE t SET a = $1, b = $13 WHERE id = $2 AND c <= $1 AND k = 'x$1' AND s = $"),
            (
                "UPDATE t SET a = ?, b = ? WHERE id = ? AND c <= ? AND k = 'x$1' AND s = $"
                    .to_owned(),
                vec![0, 12, 1, 0]
            )
        );
        assert_eq!(lite("SELECT 'it''s $1', $2").0, "SELECT 'it''s $1', ?");
        // Only the placeholders change: the rest of the text is the shared dialect's.
        assert_eq!(
            lite(&format!(
                "INSERT INTO t (key) VALUES {} ON CONFLICT (key) DO NOTHING",
                values_list(1, 2)
            ))
            .0,
            "INSERT INTO t (key) VALUES (?), (?) ON CONFLICT (key) DO NOTHING"
        );
        assert!(sqlite_dialect("SELECT 'open $1").is_err());
        assert!(sqlite_dialect("SELECT $0").is_err());
    }

    /// Through a real SQLite: a value used twice, a `$1` inside a literal, and a multi-row
    /// statement bound in numeric order come back as bound.
    #[tokio::test]
    async fn sqlite_binds_values_where_their_numbers_appear() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let row = query::<sqlx::Sqlite>("SELECT $2 || $1 || $2 AS a, '$1' AS b, $3 AS c")
            .bind("x")
            .bind("y")
            .bind(7i64)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(row.field::<String, _>("a").unwrap(), "yxy");
        assert_eq!(row.field::<String, _>("b").unwrap(), "$1");
        assert_eq!(row.field::<i64, _>("c").unwrap(), 7);
        query::<sqlx::Sqlite>("CREATE TABLE t (a INTEGER, b TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        let rows = 64;
        let sql = format!("INSERT INTO t (a, b) VALUES {}", values_list(2, rows));
        (0..rows)
            .fold(query::<sqlx::Sqlite>(&sql), |q, i| {
                q.bind(i as i64).bind(format!("v{i}"))
            })
            .execute(&pool)
            .await
            .unwrap();
        let got: Vec<(i64, String)> = query::<sqlx::Sqlite>("SELECT a, b FROM t ORDER BY a")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.field("a").unwrap(), r.field("b").unwrap()))
            .collect();
        let want: Vec<(i64, String)> = (0..rows).map(|i| (i as i64, format!("v{i}"))).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn returning_and_broken_statements_are_refused() {
        assert_eq!(
            mysql_dialect("UPDATE t SET a = 1 RETURNING id"),
            Err("RETURNING")
        );
        assert!(mysql_dialect("SELECT 'open").is_err());
        assert!(mysql_dialect("SELECT $0").is_err());
    }
}
