//! Typed reads of the source's answers that never panic.
//!
//! mysql_async's typed reads (`query::<T>`, `exec_first::<T>`, `Row::get`) panic when a value
//! is NULL or of another type than asked for, and a server answers NULL in ordinary cases
//! (`BINLOG_GTID_POS` of a purged file, say). Invariant: every typed read of a source row in
//! the crate goes through [`Source::query_as`] and its siblings, which fetch plain rows and
//! convert them here; a value that does not convert is [`Error::SourceRow`], naming the query
//! and the row, never a panic. A column that may be NULL is asked for as an `Option`.

use mysql_async::prelude::{FromRow, FromValue, Queryable};
use mysql_async::{Conn, Params, Row};

use super::Source;
use crate::error::{Error, Result};

/// The longest rendering of an unreadable row kept in an error (rows can hold BLOBs).
const MAX_ROW_TEXT: usize = 300;

impl Source {
    /// A text query's rows as `T`.
    pub async fn query_as<T: FromRow>(&self, conn: &mut Conn, sql: &str) -> Result<Vec<T>> {
        let rows: Vec<Row> = self.run(conn.query(sql)).await?;
        rows.into_iter().map(|row| convert(row, sql)).collect()
    }

    /// A text query's first row as `T`.
    pub async fn query_first_as<T: FromRow>(
        &self,
        conn: &mut Conn,
        sql: &str,
    ) -> Result<Option<T>> {
        let row: Option<Row> = self.run(conn.query_first(sql)).await?;
        row.map(|row| convert(row, sql)).transpose()
    }

    /// A prepared statement's rows as `T`.
    pub async fn exec_as<T: FromRow>(
        &self,
        conn: &mut Conn,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> Result<Vec<T>> {
        let rows: Vec<Row> = self.run(conn.exec(sql, params)).await?;
        rows.into_iter().map(|row| convert(row, sql)).collect()
    }

    /// A prepared statement's first row as `T`.
    pub async fn exec_first_as<T: FromRow>(
        &self,
        conn: &mut Conn,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> Result<Option<T>> {
        let row: Option<Row> = self.run(conn.exec_first(sql, params)).await?;
        row.map(|row| convert(row, sql)).transpose()
    }
}

/// `row` as `T`, or an error naming the query and showing the row.
pub(crate) fn convert<T: FromRow>(row: Row, query: &str) -> Result<T> {
    T::from_row_opt(row).map_err(|e| Error::SourceRow {
        query: query.to_owned(),
        detail: format!("cannot read the row {}", render(&e.0)),
    })
}

/// Column `index` of `row` as `T` (`Option<T>` where NULL is expected), or an error naming the
/// query, the column and its value.
pub(crate) fn column<T: FromValue>(row: &Row, index: usize, query: &str) -> Result<T> {
    let name = row
        .columns_ref()
        .get(index)
        .map_or_else(|| format!("#{index}"), |c| c.name_str().into_owned());
    let Some(value) = row.as_ref(index) else {
        return Err(Error::SourceRow {
            query: query.to_owned(),
            detail: format!("the answer has no column {name}"),
        });
    };
    T::from_value_opt(value.clone()).map_err(|_| Error::SourceRow {
        query: query.to_owned(),
        detail: format!(
            "column {name} has the unexpected value {}",
            clip(value.as_sql(false))
        ),
    })
}

fn render(row: &Row) -> String {
    let values: Vec<String> = (0..row.len())
        .map(|i| row.as_ref(i).map_or("?".into(), |v| v.as_sql(false)))
        .collect();
    clip(format!("({})", values.join(", ")))
}

fn clip(mut text: String) -> String {
    if text.len() > MAX_ROW_TEXT {
        let mut end = MAX_ROW_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::consts::ColumnType;
    use mysql_async::{Column, Value};
    use std::sync::Arc;

    fn row(values: Vec<Value>) -> Row {
        let columns: Arc<[Column]> = values
            .iter()
            .enumerate()
            .map(|(i, _)| {
                Column::new(ColumnType::MYSQL_TYPE_VAR_STRING).with_name(format!("c{i}").as_bytes())
            })
            .collect();
        mysql_common::row::new_row(values, columns)
    }

    #[test]
    fn a_null_where_a_value_is_expected_is_an_error_naming_the_query_and_row() {
        let err = convert::<(String,)>(row(vec![Value::NULL]), "SELECT BINLOG_GTID_POS(?, ?)")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("SELECT BINLOG_GTID_POS(?, ?)") && text.contains("(NULL)"),
            "{text}"
        );
        assert!(!err.is_transient());
        // Asked for as an Option, NULL is an answer.
        let read: (Option<String>,) = convert(row(vec![Value::NULL]), "q").expect("option");
        assert_eq!(read, (None,));
    }

    #[test]
    fn a_value_of_another_type_is_an_error_naming_the_column() {
        let r = row(vec![
            Value::Bytes(b"abc".to_vec()),
            Value::Bytes(b"x".to_vec()),
        ]);
        let err = column::<u64>(&r, 0, "SHOW MASTER STATUS").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("column c0") && text.contains("'abc'"),
            "{text}"
        );
        assert!(column::<u64>(&r, 5, "q")
            .unwrap_err()
            .to_string()
            .contains("no column #5"));
        assert_eq!(column::<String>(&r, 1, "q").expect("string"), "x");
    }

    #[test]
    fn long_rows_are_clipped() {
        let r = row(vec![Value::Bytes(vec![b'y'; 10_000])]);
        let err = convert::<(u64,)>(r, "q").unwrap_err().to_string();
        assert!(err.len() < MAX_ROW_TEXT + 200, "{}", err.len());
    }
}
