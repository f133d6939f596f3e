//! Reading a row's columns by name, whichever way the row was read.
//!
//! Why: on SQLite the hottest reads run inline through rusqlite (`sqlite_reads.rs`), every
//! other read through sqlx; the row types decode through this one trait so their column
//! mapping is written once for both.

use sqlx::any::AnyRow;
use sqlx::Row as _;

use crate::error::Result;

/// A Rust type both access paths can decode a column into.
pub(crate) trait ColumnType:
    for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

impl<T> ColumnType for T where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

/// A row whose columns can be read by name.
pub(crate) trait Columns {
    fn col<T: ColumnType>(&self, name: &str) -> Result<T>;
}

impl Columns for AnyRow {
    fn col<T: ColumnType>(&self, name: &str) -> Result<T> {
        Ok(self.try_get(name)?)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn col<T: ColumnType>(&self, name: &str) -> Result<T> {
        Ok(self.get(name)?)
    }
}
