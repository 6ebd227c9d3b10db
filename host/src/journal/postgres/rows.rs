//! PostgreSQL's rows read as [`Columns`], for the mappings both backends share.

use tokio_postgres::Row;

use crate::journal::{
    JournalError,
    rows::{Column, Columns},
};

impl Columns for Row {
    type Error = JournalError;

    fn get<T: Column>(&self, column: usize) -> Result<T, JournalError> {
        self.try_get(column)
            .map_err(|error| unreadable(column, error))
    }

    fn blob<R>(&self, column: usize, read: impl FnOnce(&[u8]) -> R) -> Result<R, JournalError> {
        let bytes: &[u8] = self
            .try_get(column)
            .map_err(|error| unreadable(column, error))?;
        Ok(read(bytes))
    }

    fn invalid(&self, _column: usize, message: String) -> JournalError {
        JournalError::Postgres(message)
    }
}

/// A column of an unexpected type or NULL where none was expected: the schema and this build
/// disagree.
fn unreadable(column: usize, error: tokio_postgres::Error) -> JournalError {
    JournalError::Postgres(format!("column {column}: {error}"))
}
