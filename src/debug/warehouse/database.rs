//! What the warehouse needs from a SQL engine: statements, transactions, the
//! engine's own DDL words and catalogue. The warehouse writes every statement
//! once; an engine only says how its SQL differs.

use std::{fmt, path::Path, str::FromStr};

use super::{ColumnType, SqlValue, WarehouseError};

/// The engines a debug warehouse can be written with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WarehouseKind {
    /// SQLite `files/warehouse.sqlite`: always built in.
    #[default]
    Sqlite,
    /// DuckDB `files/warehouse.db`, as Fivetran's own tools write it (cargo feature `duckdb`).
    DuckDb,
}

impl WarehouseKind {
    /// Every kind, in the order help texts list them.
    pub const ALL: [WarehouseKind; 2] = [WarehouseKind::Sqlite, WarehouseKind::DuckDb];

    /// The name `--warehouse` takes.
    pub fn name(self) -> &'static str {
        match self {
            WarehouseKind::Sqlite => "sqlite",
            WarehouseKind::DuckDb => "duckdb",
        }
    }

    /// The warehouse file inside the files folder. DuckDB's is Fivetran's
    /// `warehouse.db`; SQLite's has its own name so it never touches that file.
    pub fn file_name(self) -> &'static str {
        match self {
            WarehouseKind::Sqlite => "warehouse.sqlite",
            WarehouseKind::DuckDb => "warehouse.db",
        }
    }

    /// The command that opens the warehouse at `path`, and where to get the tool.
    pub fn viewer(self, path: &Path) -> String {
        match self {
            WarehouseKind::Sqlite => format!(
                "Open the warehouse with the sqlite3 shell: sqlite3 {} (apt-get install sqlite3)",
                path.display()
            ),
            WarehouseKind::DuckDb => format!(
                "Open the warehouse in DuckDB's browser UI: duckdb -ui {} (tables in schema `tester`; https://duckdb.org/docs/installation)",
                path.display()
            ),
        }
    }

    /// Whether this binary was built with the engine.
    pub fn is_built_in(self) -> bool {
        match self {
            WarehouseKind::Sqlite => true,
            WarehouseKind::DuckDb => cfg!(feature = "duckdb"),
        }
    }
}

impl fmt::Display for WarehouseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--warehouse` value that names no engine.
#[derive(Debug, thiserror::Error)]
#[error("unknown warehouse `{0}`: use sqlite or duckdb")]
pub struct UnknownWarehouse(pub String);

impl FromStr for WarehouseKind {
    type Err = UnknownWarehouse;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownWarehouse(text.to_owned()))
    }
}

/// One column of a table in the engine's catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CatalogColumn {
    /// The table (without schema).
    pub(crate) table: String,
    /// The column.
    pub(crate) column: String,
    /// The engine's name of its type (`BIGINT`, `TIMESTAMP WITH TIME ZONE`...).
    pub(crate) type_name: String,
    /// Its place in the primary key, from 1; `None` outside the key.
    pub(crate) key_position: Option<u32>,
}

/// A SQL engine holding the warehouse. Statements use `?` placeholders and
/// double-quoted identifiers, which both engines read the same way.
pub(crate) trait Database: fmt::Debug + Send {
    /// Which engine this is.
    fn kind(&self) -> WarehouseKind;

    /// `table` as statements name it: quoted, in the engine's data schema if it has one.
    fn table_sql(&self, table: &str) -> String;

    /// The DDL type of a column of `column_type`.
    fn type_sql(&self, column_type: ColumnType) -> String;

    /// The DDL of `_fivetran_synced` and `_fivetran_deleted`.
    fn system_columns_sql(&self) -> String;

    /// The columns of every table in the data schema, in table then column order.
    fn catalog(&self) -> Result<Vec<CatalogColumn>, WarehouseError>;

    /// Runs a statement (cached); returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[&SqlValue]) -> Result<u64, WarehouseError>;

    /// Runs a query (cached); returns each row's first `width` values.
    fn query(
        &self,
        sql: &str,
        params: &[&SqlValue],
        width: usize,
    ) -> Result<Vec<Vec<SqlValue>>, WarehouseError>;

    /// Starts a transaction unless one is open.
    fn begin(&mut self) -> Result<(), WarehouseError>;

    /// Whether a transaction is open.
    fn in_transaction(&self) -> bool;

    /// Commits the open transaction, if any.
    fn commit(&mut self) -> Result<(), WarehouseError>;

    /// Rolls the open transaction back, if any.
    fn rollback(&mut self) -> Result<(), WarehouseError>;
}

/// An SQL identifier, quoted so any name (keywords, parentheses) is safe.
pub(crate) fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}
