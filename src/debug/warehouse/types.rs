//! The warehouse's values, column and table declarations, and the row hash that keys
//! tables without a declared key.

use std::collections::BTreeMap;

/// A cell value, as the connector sent it and as the warehouse gives it back.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// A boolean (SQLite stores it as 0 or 1 and reads it back as an integer).
    Bool(bool),
    /// A 64-bit integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// Text (also timestamps in ISO 8601, dates, decimals, JSON).
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl SqlValue {
    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, SqlValue::Null)
    }

    /// Whether this is true: a boolean, or SQLite's 1.
    pub fn is_true(&self) -> bool {
        matches!(self, SqlValue::Bool(true) | SqlValue::Integer(1))
    }

    /// The type of a column created for this value (a column the schema did not
    /// declare): the type the value arrived with.
    pub fn column_type(&self) -> ColumnType {
        match self {
            SqlValue::Bool(_) => ColumnType::Boolean,
            SqlValue::Integer(_) => ColumnType::Long,
            SqlValue::Real(_) => ColumnType::Double,
            SqlValue::Null | SqlValue::Text(_) => ColumnType::String,
            SqlValue::Blob(_) => ColumnType::Binary,
        }
    }
}

/// A column's type as Fivetran declares it; each engine has its own SQL for it
/// (SQLite only the four storage classes, DuckDB the types Fivetran's tools use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// `BOOLEAN`.
    Boolean,
    /// `SHORT`: 16-bit integer.
    Short,
    /// `INT`: 32-bit integer.
    Int,
    /// `LONG`: 64-bit integer.
    Long,
    /// `FLOAT`: 32-bit float.
    Float,
    /// `DOUBLE`.
    Double,
    /// `DECIMAL(precision, scale)`.
    Decimal {
        /// Digits in all.
        precision: u32,
        /// Digits after the point.
        scale: u32,
    },
    /// `NAIVE_DATE`: a date without a zone.
    NaiveDate,
    /// `NAIVE_DATETIME`: a date-time without a zone.
    NaiveDateTime,
    /// `UTC_DATETIME`: an instant.
    UtcDateTime,
    /// `BINARY`.
    Binary,
    /// `STRING`, `XML`, and the types Fivetran leaves to the values
    /// (`NAIVE_TIME`, `UNSPECIFIED`).
    String,
    /// `JSON`.
    Json,
}

impl ColumnType {
    /// `DECIMAL(p, s)` as Fivetran's engine clamps it: precision 1..=38, scale at most the precision.
    pub fn decimal(precision: u32, scale: u32) -> Self {
        let precision = precision.clamp(1, 38);
        ColumnType::Decimal {
            precision,
            scale: scale.min(precision),
        }
    }
}

/// One declared column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDef {
    /// The column name, as it appears in the warehouse.
    pub name: String,
    /// Its declared type.
    pub column_type: ColumnType,
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
                SqlValue::Bool(flag) => if *flag { "True" } else { "False" }.to_owned(),
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
