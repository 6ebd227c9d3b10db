//! SQLite's rows read as [`Columns`], for the mappings both backends share.

use rusqlite::types::Type;

use crate::journal::rows::{Column, Columns};

impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;

    fn get<T: Column>(&self, column: usize) -> rusqlite::Result<T> {
        rusqlite::Row::get(self, column)
    }

    fn blob<R>(&self, column: usize, read: impl FnOnce(&[u8]) -> R) -> rusqlite::Result<R> {
        Ok(read(self.get_ref(column)?.as_blob()?))
    }

    fn invalid(&self, column: usize, message: String) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(column, Type::Text, message.into())
    }
}
