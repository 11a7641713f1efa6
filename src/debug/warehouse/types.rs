//! The warehouse's values, column and table declarations, and the row hash that keys
//! tables without a declared key.

use std::collections::BTreeMap;

use rusqlite::{
    ToSql,
    types::{ToSqlOutput, ValueRef},
};

/// A cell value as SQLite stores it.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// A 64-bit integer (also booleans as 0/1).
    Integer(i64),
    /// A double.
    Real(f64),
    /// Text (also timestamps in ISO 8601, decimals, JSON).
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl SqlValue {
    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, SqlValue::Null)
    }

    /// The column type a new column holding this value gets.
    pub fn sql_type(&self) -> SqlType {
        match self {
            SqlValue::Integer(_) => SqlType::Integer,
            SqlValue::Real(_) => SqlType::Real,
            SqlValue::Null | SqlValue::Text(_) => SqlType::Text,
            SqlValue::Blob(_) => SqlType::Blob,
        }
    }
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Integer(number) => ValueRef::Integer(*number),
            SqlValue::Real(number) => ValueRef::Real(*number),
            SqlValue::Text(text) => ValueRef::Text(text.as_bytes()),
            SqlValue::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

impl From<ValueRef<'_>> for SqlValue {
    fn from(value: ValueRef<'_>) -> Self {
        match value {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(number) => SqlValue::Integer(number),
            ValueRef::Real(number) => SqlValue::Real(number),
            ValueRef::Text(text) => SqlValue::Text(String::from_utf8_lossy(text).into_owned()),
            ValueRef::Blob(bytes) => SqlValue::Blob(bytes.to_vec()),
        }
    }
}

/// A declared SQLite column type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlType {
    /// `INTEGER`.
    Integer,
    /// `REAL`.
    Real,
    /// `TEXT`.
    Text,
    /// `BLOB`.
    Blob,
}

impl SqlType {
    /// The type name in DDL.
    pub fn as_sql(self) -> &'static str {
        match self {
            SqlType::Integer => "INTEGER",
            SqlType::Real => "REAL",
            SqlType::Text => "TEXT",
            SqlType::Blob => "BLOB",
        }
    }
}

/// One declared column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDef {
    /// The column name, as it appears in the warehouse.
    pub name: String,
    /// Its declared type.
    pub sql_type: SqlType,
    /// Whether it belongs to the primary key.
    pub primary_key: bool,
}

/// One declared table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDef {
    /// The table name, as it appears in the warehouse.
    pub name: String,
    /// Its columns, in declaration order.
    pub columns: Vec<ColumnDef>,
}

/// What [`Warehouse::ensure_table`](super::Warehouse::ensure_table) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableChange {
    /// The table did not exist and was created.
    Created,
    /// The table existed; these columns were added.
    ColumnsAdded(Vec<String>),
    /// The table existed with every declared column.
    Unchanged,
}

/// A row: column name to value.
pub type Row = BTreeMap<String, SqlValue>;

/// The key column of a table that has no declared key (or was never
/// declared): a hash of the row, as Fivetran's engine keys such tables.
pub const ID_COLUMN: &str = "_fivetran_id";

/// A keyless row's `_fivetran_id`: base64 of the SHA-1 of its `name=value`
/// pairs in name order, joined by U+001F — Fivetran's construction, with
/// values written as this warehouse stores them.
pub fn row_id(row: &Row) -> String {
    use base64::Engine as _;
    let text = row
        .iter()
        .filter(|(column, _)| column.as_str() != ID_COLUMN)
        .map(|(column, value)| {
            let value = match value {
                SqlValue::Null => "None".to_owned(),
                SqlValue::Integer(number) => number.to_string(),
                SqlValue::Real(number) => number.to_string(),
                SqlValue::Text(text) => text.clone(),
                SqlValue::Blob(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes),
            };
            format!("{column}={value}")
        })
        .collect::<Vec<_>>()
        .join("\u{1f}");
    base64::engine::general_purpose::STANDARD.encode(sha1_smol::Sha1::from(text).digest().bytes())
}
