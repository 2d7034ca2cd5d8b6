//! A tiny SQL builder for the `Any` driver: the right placeholders for each backend.
//!
//! sqlx's `QueryBuilder<Any>` writes `?` placeholders, which PostgreSQL refuses, and `$n`
//! placeholders make SQLite look every bound value up by name (quadratic in the number of
//! values: most of the time of a 500-row upsert). So statements are written once, the
//! placeholders' positions recorded, and the text rendered for the connection at hand: `$1,
//! $2, …` on PostgreSQL, `?` on SQLite (values are bound in order, each placeholder once).

use super::Store;
use super::db::{self, Conn, DbError, Row, Value};

/// Statements stay under both backends' limits on bound values (SQLite 32 766, PostgreSQL
/// 65 535) when a multi-row statement binds at most this many.
pub(crate) const MAX_BINDS: usize = 30_000;

/// Splits `items` into chunks of at most `max` items whose lengths are powers of two (full
/// chunks first, then the rest by halves), so that a multi-row statement has one of a few
/// texts: sqlx keeps each connection's prepared statements by text, and PostgreSQL parses and
/// plans every new text again — for a statement of thousands of values that was most of its
/// time.
pub(crate) fn cached_chunks<T>(items: &[T], max: usize) -> Vec<&[T]> {
    let full = if max.is_power_of_two() {
        max
    } else {
        max.next_power_of_two() / 2
    }
    .max(1);
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let size = if rest.len() >= full {
            full
        } else if rest.len().is_power_of_two() {
            rest.len()
        } else {
            rest.len().next_power_of_two() / 2
        };
        let (chunk, tail) = rest.split_at(size);
        out.push(chunk);
        rest = tail;
    }
    out
}

/// SQL text with its bound values.
#[derive(Default)]
pub(crate) struct Sql {
    text: String,
    /// Byte offsets in `text` where a placeholder goes, in binding order.
    holes: Vec<usize>,
    args: Vec<Value>,
}

impl Sql {
    /// Starts a statement with `text`.
    pub(crate) fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            ..Self::default()
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.holes.push(self.text.len());
        self.args.push(value.into());
        self
    }

    /// Appends `(v1, v2, …)` placeholders for a list of values (an `IN` list), padded to a
    /// power of two by repeating the last value (harmless in `IN`): the statement's text then
    /// repeats from batch to batch, so it is prepared once per connection ([`cached_chunks`]).
    pub(crate) fn bind_list<T, I>(&mut self, values: I) -> &mut Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Value> + Clone,
    {
        self.push("(");
        let mut count: usize = 0;
        let mut last = None;
        for value in values {
            if count > 0 {
                self.push(", ");
            }
            self.bind(value.clone());
            last = Some(value);
            count += 1;
        }
        if let Some(last) = last {
            for _ in count..count.next_power_of_two() {
                self.push(", ");
                self.bind(last.clone());
            }
        }
        self.push(")")
    }

    /// Appends one `(v1, v2, …)` row of a multi-row `VALUES`, preceded by a comma unless it
    /// is the first.
    pub(crate) fn row(&mut self, first: bool, values: impl FnOnce(&mut Tuple<'_>)) -> &mut Self {
        if !first {
            self.push(", ");
        }
        self.push("(");
        values(&mut Tuple {
            sql: self,
            first: true,
        });
        self.push(")")
    }

    /// The text with placeholders for PostgreSQL (`postgres`) or SQLite.
    fn render(&self, postgres: bool) -> String {
        let mut out = String::with_capacity(self.text.len() + self.holes.len() * 4);
        let mut from = 0;
        for (i, &at) in self.holes.iter().enumerate() {
            out.push_str(&self.text[from..at]);
            if postgres {
                out.push('$');
                out.push_str(&(i + 1).to_string());
            } else {
                out.push('?');
            }
            from = at;
        }
        out.push_str(&self.text[from..]);
        out
    }

    /// Runs the statement.
    pub(crate) async fn execute(self, conn: &mut Conn<'_>) -> Result<(), DbError> {
        self.run(conn, false).await.map(drop)
    }

    /// Runs the query and returns every row.
    pub(crate) async fn fetch_all(self, conn: &mut Conn<'_>) -> Result<Vec<Row>, DbError> {
        self.run(conn, true).await
    }

    /// Runs the query and returns the first row, if any.
    pub(crate) async fn fetch_optional(self, conn: &mut Conn<'_>) -> Result<Option<Row>, DbError> {
        Ok(self.run(conn, true).await?.into_iter().next())
    }

    async fn run(self, conn: &mut Conn<'_>, rows: bool) -> Result<Vec<Row>, DbError> {
        let text = self.render(conn.is_postgres());
        match conn {
            Conn::Any(conn) => {
                let query = sqlx::query_with(&text, db::any_arguments(self.args));
                if rows {
                    let rows = query.fetch_all(&mut **conn).await?;
                    Ok(rows.into_iter().map(Row::Any).collect())
                } else {
                    query.execute(&mut **conn).await?;
                    Ok(Vec::new())
                }
            }
            Conn::Lite(conn) => db::lite_run(conn, &text, &self.args, rows),
        }
    }

    /// [`fetch_all`](Self::fetch_all) on a connection of the store's read pool.
    pub(crate) async fn read_all(self, store: &Store) -> Result<Vec<Row>, DbError> {
        if let Some(readers) = store.lite_readers() {
            let text = self.render(false);
            return readers
                .read(|conn| db::lite_run(conn, &text, &self.args, true))
                .await;
        }
        let mut conn = store.reader().acquire().await?;
        self.fetch_all(&mut Conn::Any(&mut conn)).await
    }

    /// [`fetch_optional`](Self::fetch_optional) on a connection of the store's read pool.
    pub(crate) async fn read_optional(self, store: &Store) -> Result<Option<Row>, DbError> {
        Ok(self.read_all(store).await?.into_iter().next())
    }
}

/// The values of one row being written by [`Sql::row`].
pub(crate) struct Tuple<'a> {
    sql: &'a mut Sql,
    first: bool,
}

impl Tuple<'_> {
    /// Binds the next value of the row.
    pub(crate) fn v(&mut self, value: impl Into<Value>) -> &mut Self {
        if !self.first {
            self.sql.push(", ");
        }
        self.first = false;
        self.sql.bind(value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut sql = Sql::new("SELECT * FROM t WHERE a = ");
        sql.bind(1_i64)
            .push(" AND b IN ")
            .bind_list(["x", "y"].map(String::from));
        assert_eq!(
            sql.render(true),
            "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(
            sql.render(false),
            "SELECT * FROM t WHERE a = ? AND b IN (?, ?)"
        );
        let mut sql = Sql::new("INSERT INTO t (a, b) VALUES ");
        for (i, (a, b)) in [(1_i64, "x"), (2, "y")].into_iter().enumerate() {
            sql.row(i == 0, |r| {
                r.v(a).v(b.to_owned());
            });
        }
        assert_eq!(
            sql.render(true),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
    }

    #[test]
    fn in_lists_are_padded_to_a_power_of_two() {
        let mut sql = Sql::new("SELECT * FROM t WHERE a IN ");
        sql.bind_list([1_i64, 2, 3]);
        assert_eq!(
            sql.render(true),
            "SELECT * FROM t WHERE a IN ($1, $2, $3, $4)"
        );
        let mut sql = Sql::new("SELECT * FROM t WHERE a IN ");
        sql.bind_list([7_i64]);
        assert_eq!(sql.render(false), "SELECT * FROM t WHERE a IN (?)");
    }

    #[test]
    fn chunks_have_power_of_two_lengths_and_keep_every_item() {
        let items: Vec<u32> = (0..1000).collect();
        let chunks = cached_chunks(&items, 300);
        let lengths: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(lengths, [256, 256, 256, 128, 64, 32, 8]);
        assert_eq!(chunks.concat(), items);
        assert_eq!(
            cached_chunks(&items[..5], 4)
                .iter()
                .map(|c| c.len())
                .sum::<usize>(),
            5
        );
        assert!(cached_chunks::<u32>(&[], 10).is_empty());
    }
}
