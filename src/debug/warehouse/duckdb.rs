//! The DuckDB engine (cargo feature `duckdb`): `files/warehouse.db` as
//! Fivetran's own tools write it, tables in schema `tester`, each Fivetran
//! type as the type Fivetran's engine gives it.

use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, TimeDelta};
use duckdb::{
    Config, Connection, ToSql, params_from_iter,
    types::{ToSqlOutput, ValueRef},
};

use super::{
    ColumnType, DELETED_COLUMN, SYNCED_COLUMN, SqlValue, WarehouseError,
    database::{CatalogColumn, Database, WarehouseKind, quote},
};

/// The schema Fivetran's tools write a connection's tables to.
pub(crate) const SCHEMA: &str = "tester";

/// A DuckDB warehouse connection.
#[derive(Debug)]
pub(crate) struct DuckDb {
    connection: Connection,
    /// DuckDB's C API has no autocommit flag, so the transaction is tracked here.
    in_transaction: bool,
}

impl DuckDb {
    /// Opens (or creates) the file; a file another process holds open is
    /// [`WarehouseError::Locked`].
    pub(crate) fn open(path: &Path) -> Result<Self, WarehouseError> {
        let connection = Connection::open_with_flags(path, config()?).map_err(|error| {
            // DuckDB allows one writing process per file: `duckdb -ui` or
            // Fivetran's own tool holding it is the usual reason.
            if error.to_string().contains("Could not set lock on file") {
                WarehouseError::Locked {
                    path: path.to_owned(),
                }
            } else {
                WarehouseError::DuckDb(error)
            }
        })?;
        Self::new(connection)
    }

    /// An in-memory database (tests).
    pub(crate) fn open_in_memory() -> Result<Self, WarehouseError> {
        Self::new(Connection::open_in_memory_with_flags(config()?)?)
    }

    fn new(connection: Connection) -> Result<Self, WarehouseError> {
        connection.execute_batch(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(SCHEMA)))?;
        Ok(Self {
            connection,
            in_transaction: false,
        })
    }
}

/// Never fetch extensions over the network: everything the warehouse uses
/// (JSON included) is compiled in, and a debug run must work offline.
fn config() -> Result<Config, WarehouseError> {
    Ok(Config::default()
        .enable_autoload_extension(false)?
        .with("autoinstall_known_extensions", "false")?)
}

impl Database for DuckDb {
    fn kind(&self) -> WarehouseKind {
        WarehouseKind::DuckDb
    }

    fn table_sql(&self, table: &str) -> String {
        format!("{}.{}", quote(SCHEMA), quote(table))
    }

    fn type_sql(&self, column_type: ColumnType) -> String {
        match column_type {
            ColumnType::Boolean => "BOOLEAN".to_owned(),
            ColumnType::Short => "SMALLINT".to_owned(),
            ColumnType::Int => "INTEGER".to_owned(),
            ColumnType::Long => "BIGINT".to_owned(),
            ColumnType::Float => "FLOAT".to_owned(),
            ColumnType::Double => "DOUBLE".to_owned(),
            ColumnType::Decimal { precision, scale } => format!("DECIMAL({precision}, {scale})"),
            ColumnType::NaiveDate => "DATE".to_owned(),
            ColumnType::NaiveDateTime => "TIMESTAMP".to_owned(),
            ColumnType::UtcDateTime => "TIMESTAMP WITH TIME ZONE".to_owned(),
            ColumnType::Binary => "BLOB".to_owned(),
            ColumnType::String => "VARCHAR".to_owned(),
            ColumnType::Json => "JSON".to_owned(),
        }
    }

    fn system_columns_sql(&self) -> String {
        format!(
            "{} TIMESTAMP WITH TIME ZONE NOT NULL, {} BOOLEAN NOT NULL DEFAULT FALSE",
            quote(SYNCED_COLUMN),
            quote(DELETED_COLUMN)
        )
    }

    fn catalog(&self) -> Result<Vec<CatalogColumn>, WarehouseError> {
        // The key's order is the order of `constraint_column_names`.
        let sql = "\
            WITH keys AS ( \
                SELECT table_name, \
                       unnest(constraint_column_names) AS column_name, \
                       generate_subscripts(constraint_column_names, 1) AS position \
                FROM duckdb_constraints() \
                WHERE schema_name = ? AND constraint_type = 'PRIMARY KEY' \
            ) \
            SELECT c.table_name, c.column_name, c.data_type, CAST(k.position AS BIGINT) \
            FROM duckdb_columns() AS c \
            LEFT JOIN keys AS k ON k.table_name = c.table_name AND k.column_name = c.column_name \
            WHERE c.schema_name = ? \
            ORDER BY c.table_name, c.column_index";
        let schema = SqlValue::Text(SCHEMA.to_owned());
        self.query(sql, &[&schema, &schema], 4)?
            .into_iter()
            .map(|row| match <[SqlValue; 4]>::try_from(row) {
                Ok(
                    [
                        SqlValue::Text(table),
                        SqlValue::Text(column),
                        SqlValue::Text(type_name),
                        position,
                    ],
                ) => Ok(CatalogColumn {
                    table,
                    column,
                    type_name,
                    key_position: match position {
                        SqlValue::Integer(at) => u32::try_from(at).ok(),
                        _ => None,
                    },
                }),
                other => Err(WarehouseError::Catalog(format!(
                    "unexpected catalogue row {other:?}"
                ))),
            })
            .collect()
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
                .map(|index| row.get_ref(index).map(value))
                .collect::<Result<_, _>>()?;
            result.push(values);
        }
        Ok(result)
    }

    fn begin(&mut self) -> Result<(), WarehouseError> {
        if !self.in_transaction {
            self.connection.execute_batch("BEGIN TRANSACTION")?;
            self.in_transaction = true;
        }
        Ok(())
    }

    fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    fn commit(&mut self) -> Result<(), WarehouseError> {
        if self.in_transaction {
            // Whether or not COMMIT succeeds, the transaction is over (DuckDB
            // rolls back a transaction it cannot commit).
            self.in_transaction = false;
            self.connection.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), WarehouseError> {
        if self.in_transaction {
            self.in_transaction = false;
            self.connection.execute_batch("ROLLBACK")?;
        }
        Ok(())
    }
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        // Text goes in as VARCHAR: DuckDB casts it to the column's type (an
        // ISO 8601 instant to TIMESTAMPTZ, a decimal's digits to DECIMAL).
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Bool(flag) => ValueRef::Boolean(*flag),
            SqlValue::Integer(number) => ValueRef::BigInt(*number),
            SqlValue::Real(number) => ValueRef::Double(*number),
            SqlValue::Text(text) => ValueRef::Text(text.as_bytes()),
            SqlValue::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

/// A DuckDB value as the warehouse's value: instants, dates and decimals as
/// the text the connector's values are written as, so both engines read back alike.
fn value(value: ValueRef<'_>) -> SqlValue {
    match value {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Boolean(flag) => SqlValue::Bool(flag),
        ValueRef::TinyInt(number) => SqlValue::Integer(number.into()),
        ValueRef::SmallInt(number) => SqlValue::Integer(number.into()),
        ValueRef::Int(number) => SqlValue::Integer(number.into()),
        ValueRef::BigInt(number) => SqlValue::Integer(number),
        ValueRef::UTinyInt(number) => SqlValue::Integer(number.into()),
        ValueRef::USmallInt(number) => SqlValue::Integer(number.into()),
        ValueRef::UInt(number) => SqlValue::Integer(number.into()),
        ValueRef::UBigInt(number) => i64::try_from(number)
            .map_or_else(|_| SqlValue::Text(number.to_string()), SqlValue::Integer),
        ValueRef::HugeInt(number) => i64::try_from(number)
            .map_or_else(|_| SqlValue::Text(number.to_string()), SqlValue::Integer),
        ValueRef::UHugeInt(number) => i64::try_from(number)
            .map_or_else(|_| SqlValue::Text(number.to_string()), SqlValue::Integer),
        ValueRef::Float(number) => SqlValue::Real(number.into()),
        ValueRef::Double(number) => SqlValue::Real(number),
        ValueRef::Decimal(number) => SqlValue::Text(number.to_string()),
        ValueRef::Timestamp(unit, amount) => {
            DateTime::from_timestamp_micros(unit.to_micros(amount)).map_or_else(
                || SqlValue::Text(format!("{amount} {unit:?}")),
                |instant| SqlValue::Text(instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            )
        }
        ValueRef::Date32(days) => NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|epoch| epoch.checked_add_signed(TimeDelta::days(days.into())))
            .map_or_else(
                || SqlValue::Text(format!("{days} days")),
                |date| SqlValue::Text(date.format("%Y-%m-%d").to_string()),
            ),
        ValueRef::Time64(unit, amount) => {
            let micros = unit.to_micros(amount);
            let time = u32::try_from(micros.div_euclid(1_000_000))
                .ok()
                .zip(u32::try_from(micros.rem_euclid(1_000_000) * 1_000).ok())
                .and_then(|(seconds, nanos)| {
                    NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos)
                });
            SqlValue::Text(time.map_or_else(
                || format!("{micros} µs"),
                |time| time.format("%H:%M:%S%.f").to_string(),
            ))
        }
        ValueRef::Text(text) => SqlValue::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(bytes) => SqlValue::Blob(bytes.to_vec()),
        // No Fivetran type becomes one of these; show them rather than fail.
        other => SqlValue::Text(format!("{other:?}")),
    }
}
