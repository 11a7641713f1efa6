//! The SQLite engine: `files/warehouse.sqlite`, always built in. SQLite has
//! no schemas, so tables carry their plain names; its four storage classes
//! hold every Fivetran type (decimals, dates and instants as ISO 8601 text).

use std::path::Path;

use rusqlite::{
    Connection, ToSql, params_from_iter,
    types::{ToSqlOutput, ValueRef},
};

use super::{
    ColumnType, SqlValue, WarehouseError,
    database::{CatalogColumn, Database, WarehouseKind, quote},
};

/// Statements are cached per column set; a handful of tables and operations
/// need a few dozen at most.
const STATEMENT_CACHE_CAPACITY: usize = 128;

/// A SQLite warehouse connection.
#[derive(Debug)]
pub(crate) struct Sqlite {
    connection: Connection,
}

impl Sqlite {
    /// Opens (or creates) the file.
    pub(crate) fn open(path: &Path) -> Result<Self, WarehouseError> {
        Ok(Self::new(Connection::open(path)?))
    }

    /// An in-memory database (tests).
    pub(crate) fn open_in_memory() -> Result<Self, WarehouseError> {
        Ok(Self::new(Connection::open_in_memory()?))
    }

    fn new(connection: Connection) -> Self {
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        Self { connection }
    }
}

impl Database for Sqlite {
    fn kind(&self) -> WarehouseKind {
        WarehouseKind::Sqlite
    }

    fn table_sql(&self, table: &str) -> String {
        quote(table)
    }

    fn type_sql(&self, column_type: ColumnType) -> String {
        match column_type {
            ColumnType::Boolean | ColumnType::Short | ColumnType::Int | ColumnType::Long => {
                "INTEGER"
            }
            ColumnType::Float | ColumnType::Double => "REAL",
            ColumnType::Binary => "BLOB",
            // Text keeps every digit of a decimal and sorts ISO 8601 in time order.
            ColumnType::Decimal { .. }
            | ColumnType::NaiveDate
            | ColumnType::NaiveDateTime
            | ColumnType::UtcDateTime
            | ColumnType::String
            | ColumnType::Json => "TEXT",
        }
        .to_owned()
    }

    fn system_columns_sql(&self) -> String {
        format!(
            "{} TEXT NOT NULL, {} INTEGER NOT NULL DEFAULT 0",
            quote(super::SYNCED_COLUMN),
            quote(super::DELETED_COLUMN)
        )
    }

    fn catalog(&self) -> Result<Vec<CatalogColumn>, WarehouseError> {
        let mut statement = self.connection.prepare(
            "SELECT m.name, p.name, p.type, p.pk \
             FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
             ORDER BY m.name, p.cid",
        )?;
        let columns = statement
            .query_map([], |row| {
                let key_position: i64 = row.get(3)?;
                Ok(CatalogColumn {
                    table: row.get(0)?,
                    column: row.get(1)?,
                    type_name: row.get(2)?,
                    key_position: u32::try_from(key_position).ok().filter(|&at| at > 0),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(columns)
    }

    fn execute(&mut self, sql: &str, params: &[&SqlValue]) -> Result<u64, WarehouseError> {
        let rows = self
            .connection
            .prepare_cached(sql)?
            .execute(params_from_iter(params))?;
        Ok(rows as u64)
    }

    fn query(
        &self,
        sql: &str,
        params: &[&SqlValue],
        width: usize,
    ) -> Result<Vec<Vec<SqlValue>>, WarehouseError> {
        let mut statement = self.connection.prepare_cached(sql)?;
        let mut rows = statement.query(params_from_iter(params))?;
        let mut result = Vec::new();
        while let Some(row) = rows.next()? {
            let values = (0..width)
                .map(|index| row.get_ref(index).map(SqlValue::from))
                .collect::<Result<_, _>>()?;
            result.push(values);
        }
        Ok(result)
    }

    fn begin(&mut self) -> Result<(), WarehouseError> {
        if self.connection.is_autocommit() {
            self.connection.execute_batch("BEGIN")?;
        }
        Ok(())
    }

    fn in_transaction(&self) -> bool {
        !self.connection.is_autocommit()
    }

    fn commit(&mut self) -> Result<(), WarehouseError> {
        if !self.connection.is_autocommit() {
            self.connection.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), WarehouseError> {
        // SQLite may already have rolled back by itself after some errors.
        if !self.connection.is_autocommit() {
            self.connection.execute_batch("ROLLBACK")?;
        }
        Ok(())
    }
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Bool(flag) => ValueRef::Integer(i64::from(*flag)),
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
