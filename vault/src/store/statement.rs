//! A write statement held as data: its SQL text and its arguments.
//!
//! Why: the request state changes run through two drivers. On SQLite the group-commit writer
//! runs them inline through rusqlite on its own thread (`sqlite_writer.rs`); on PostgreSQL
//! through sqlx (`writer.rs`). Keeping each statement as text plus arguments lets both share
//! one definition of the SQL.

use rusqlite::types::{ToSql, ToSqlOutput};
use sqlx::any::{AnyArguments, AnyQueryResult};
use sqlx::query::Query;
use sqlx::Any;

use crate::error::Result;

/// One bound argument, owned so that a statement can outlive the caller that built it.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptBlob(Option<Vec<u8>>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::OptText(v)
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<Option<Vec<u8>>> for Arg {
    fn from(v: Option<Vec<u8>>) -> Self {
        Arg::OptBlob(v)
    }
}

impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Self {
        Arg::OptBlob(Some(v))
    }
}

impl ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Arg::Text(v) => v.to_sql(),
            Arg::OptText(v) => v.to_sql(),
            Arg::Int(v) => v.to_sql(),
            Arg::OptBlob(v) => v.to_sql(),
        }
    }
}

/// SQL with `$1`..`$n` placeholders and the `n` arguments that fill them.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub sql: &'static str,
    pub args: Vec<Arg>,
}

impl Stmt {
    pub fn new(sql: &'static str, args: Vec<Arg>) -> Stmt {
        Stmt { sql, args }
    }

    /// Runs the statement through sqlx on any executor (a pool or a transaction).
    pub async fn execute_on<'e, E>(&self, exec: E) -> Result<AnyQueryResult>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        Ok(bind_all(sqlx::query(self.sql), &self.args)
            .execute(exec)
            .await?)
    }

    /// Runs the statement through rusqlite (prepared once per connection); answers the number
    /// of rows changed. Arguments are bound by name: SQLite numbers `$n` placeholders in order
    /// of appearance, not by `n`.
    pub fn execute_sqlite(&self, conn: &rusqlite::Connection) -> Result<usize> {
        let mut stmt = conn.prepare_cached(self.sql)?;
        for (i, arg) in self.args.iter().enumerate() {
            if let Some(index) = stmt.parameter_index(&format!("${}", i + 1))? {
                stmt.raw_bind_parameter(index, arg)?;
            }
        }
        Ok(stmt.raw_execute()?)
    }
}

/// Binds `args` in order to `query`'s placeholders.
fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments>,
    args: &[Arg],
) -> Query<'q, Any, AnyArguments> {
    for arg in args {
        query = match arg {
            Arg::Text(v) => query.bind(v.clone()),
            Arg::OptText(v) => query.bind(v.clone()),
            Arg::Int(v) => query.bind(*v),
            Arg::OptBlob(v) => query.bind(v.clone()),
        };
    }
    query
}
