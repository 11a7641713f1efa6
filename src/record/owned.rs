//! Owned records in domain terms, built from mapped rows by [`RecordBuilder`]:
//! the oracle that unit tests compare the encoder and the mapper against.
//! The sync itself never builds them (rows go straight into protobuf bytes);
//! besides the tests, only the fuzz targets (feature `fuzzing`) do.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};

#[cfg(test)]
use super::{RowError, RowMapper};
use super::{RowSink, UnixTime, ValueRef};
use crate::schema::Table;
#[cfg(test)]
use crate::{schema::ColumnSpec, selection::ColumnFilter};

/// A typed cell value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// SQL NULL.
    Null,
    /// `BOOLEAN`.
    Bool(bool),
    /// `LONG`.
    Long(i64),
    /// `DOUBLE`.
    Double(f64),
    /// `STRING`.
    String(String),
    /// `UTC_DATETIME`.
    UtcDatetime(DateTime<Utc>),
    /// `NAIVE_DATE`.
    NaiveDate(NaiveDate),
    /// `JSON` text.
    Json(String),
}

/// What a record does at the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Replace the row with this primary key (every column present).
    Upsert,
    /// Soft-delete every row of the table synced before this record.
    Truncate,
}

/// One record for one table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Record {
    /// The table it belongs to.
    pub(crate) table: Table,
    /// What it does.
    pub(crate) operation: Operation,
    /// Column name (normalized) and value; empty for a truncate.
    pub(crate) values: Vec<(Cow<'static, str>, Value)>,
}

impl Value {
    #[cfg(test)]
    /// A borrowed view, for sinks.
    pub(crate) fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Bool(flag) => ValueRef::Bool(*flag),
            Value::Long(number) => ValueRef::Long(*number),
            Value::Double(number) => ValueRef::Double(*number),
            Value::String(text) => ValueRef::String(Cow::Borrowed(text)),
            Value::UtcDatetime(time) => ValueRef::UtcDatetime((*time).into()),
            Value::NaiveDate(date) => {
                ValueRef::NaiveDate(date.and_time(chrono::NaiveTime::MIN).and_utc().into())
            }
            Value::Json(text) => ValueRef::Json(Cow::Borrowed(text)),
        }
    }
}

impl Record {
    /// A truncate of `table`.
    pub(crate) fn truncate(table: Table) -> Self {
        Self {
            table,
            operation: Operation::Truncate,
            values: Vec::new(),
        }
    }

    #[cfg(test)]
    /// The value of a column, if present.
    pub(crate) fn get(&self, column: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, value)| value)
    }
}

impl UnixTime {
    /// The calendar date-time, if chrono can represent it (it can for
    /// every instant the row mapper produces).
    pub(crate) fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.seconds, self.nanos)
    }
}

impl ValueRef<'_> {
    /// The owned value.
    pub(crate) fn into_value(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(flag) => Value::Bool(flag),
            ValueRef::Long(number) => Value::Long(number),
            ValueRef::Double(number) => Value::Double(number),
            ValueRef::String(text) => Value::String(text.into_owned()),
            ValueRef::UtcDatetime(time) => {
                time.to_datetime().map_or(Value::Null, Value::UtcDatetime)
            }
            ValueRef::NaiveDate(midnight) => midnight
                .to_datetime()
                .map_or(Value::Null, |time| Value::NaiveDate(time.date_naive())),
            ValueRef::Json(text) => Value::Json(text.into_owned()),
        }
    }
}

/// A [`RowSink`] that collects domain [`Record`]s.
#[derive(Debug, Default)]
pub(crate) struct RecordBuilder {
    /// Completed records.
    pub(crate) records: Vec<Record>,
    pub(crate) current: Option<Record>,
}

impl RowSink for RecordBuilder {
    fn begin(&mut self, table: Table) {
        self.current = Some(Record {
            table,
            operation: Operation::Upsert,
            values: Vec::new(),
        });
    }

    fn column(&mut self, name: &str, value: ValueRef<'_>) {
        if let Some(record) = &mut self.current {
            record
                .values
                .push((Cow::Owned(name.to_owned()), value.into_value()));
        }
    }

    fn commit(&mut self) {
        self.records.extend(self.current.take());
    }

    fn abandon(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
/// Maps one API row (the bytes of one JSON object) to a domain upsert for
/// `table`. See [`RowMapper::map_into`].
///
/// # Errors
/// [`RowError`] when the row is unusable.
pub(crate) fn map_row(
    table: Table,
    declared: &[&'static ColumnSpec],
    row: &[u8],
    filter: &ColumnFilter,
) -> Result<Record, RowError> {
    let mut builder = RecordBuilder::default();
    RowMapper::new(table, declared, filter).map_into(row, &mut builder)?;
    // No window: every row that can be read is delivered.
    builder.records.pop().ok_or(RowError::NotAnObject)
}
