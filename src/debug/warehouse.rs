//! The debug warehouse: a SQLite file standing in for Fivetran's destination
//! (one table per Fivetran table, plus the system columns), the operations
//! applied the way Fivetran applies them, and the atomic `state.json` writer.
//! It knows nothing of protobuf: the `tester` module translates into it.
//!
//! SQLite has no schemas, so Fivetran's `tester` schema is not reproduced:
//! tables carry their plain names.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashSet},
    path::Path,
};

use chrono::{DateTime, SubsecRound as _, TimeDelta, Utc};
use rusqlite::{Connection, OptionalExtension as _, params_from_iter};

/// When the row was last written (UTC, microseconds, strictly increasing).
pub const SYNCED_COLUMN: &str = "_fivetran_synced";
/// 1 once the row was deleted or truncated at the source (soft delete).
pub const DELETED_COLUMN: &str = "_fivetran_deleted";

/// Fixed width, so text order is time order and SQL `<` compares instants.
const SYNCED_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// Statements are cached per column set; a handful of tables and operations
/// need a few dozen at most.
const STATEMENT_CACHE_CAPACITY: usize = 128;

/// What one operation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Rows written or soft-deleted (0: an UPDATE or DELETE of an absent row).
    pub rows: u64,
    /// Columns added to the table because the record carried them.
    pub added_columns: Vec<String>,
}

/// Why an operation failed; any of these fails the sync.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// SQLite itself failed.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A record for a table the schema never declared.
    #[error("table `{0}` was not declared in the schema")]
    UnknownTable(String),
    /// A declared table without a primary key (the operations need one).
    #[error("table `{0}` declares no primary key column")]
    NoPrimaryKey(String),
    /// Fivetran fails the sync on a NULL or missing key.
    #[error("{operation} into `{table}`: primary key column `{column}` is NULL or missing")]
    NullPrimaryKey {
        /// UPSERT, UPDATE or DELETE.
        operation: &'static str,
        /// The table.
        table: String,
        /// The key column.
        column: String,
    },
    /// The declared primary key differs from the one the table was created with.
    #[error(
        "the primary key of `{table}` changed from ({was}) to ({now}) since the table was created: run `sensource-connector reset` and sync again"
    )]
    PrimaryKeyChanged {
        /// The table.
        table: String,
        /// The key the table has.
        was: String,
        /// The key declared now.
        now: String,
    },
    /// The warehouse was created with another naming mode.
    #[error(
        "this warehouse was created with --naming {was}; a warehouse keeps its first naming mode (run `sensource-connector reset` to start over with --naming {now})"
    )]
    NamingChanged {
        /// The mode recorded on the first run.
        was: String,
        /// The mode asked for now.
        now: String,
    },
    /// A connector may not write Fivetran's own columns.
    #[error("table `{table}`: column `{column}` is reserved for Fivetran")]
    ReservedColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
}

/// What the warehouse remembers about a table.
#[derive(Clone, Debug)]
struct TableInfo {
    /// Data columns (system columns excluded), in table order.
    columns: HashSet<String>,
    /// Primary-key columns, in key order.
    primary_key: Vec<String>,
}

/// The SQLite warehouse. Writes happen inside one open transaction that
/// [`Warehouse::commit`] ends (at each checkpoint) and
/// [`Warehouse::rollback`] discards; dropping the warehouse without
/// committing discards too, as a crash would.
#[derive(Debug)]
pub struct Warehouse {
    connection: Connection,
    tables: BTreeMap<String, TableInfo>,
    /// The last `_fivetran_synced` handed out: later ones are strictly greater.
    last_synced: Option<DateTime<Utc>>,
}

impl Warehouse {
    /// Opens (or creates) the warehouse file.
    ///
    /// # Errors
    /// When SQLite cannot open or read it.
    pub fn open(path: &Path) -> Result<Self, WarehouseError> {
        Self::from_connection(Connection::open(path)?)
    }

    /// An in-memory warehouse (tests).
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn open_in_memory() -> Result<Self, WarehouseError> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(connection: Connection) -> Result<Self, WarehouseError> {
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        let mut warehouse = Self {
            connection,
            tables: BTreeMap::new(),
            last_synced: None,
        };
        warehouse.load_tables()?;
        // Continue after the newest row of a previous run, so a TRUNCATE now
        // is later than every row already there even if the wall clock moved back.
        for table in warehouse.tables.keys() {
            let newest: Option<String> = warehouse.connection.query_row(
                &format!("SELECT MAX({}) FROM {}", quote(SYNCED_COLUMN), quote(table)),
                [],
                |row| row.get(0),
            )?;
            let newest = newest
                .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
                .map(|time| time.with_timezone(&Utc));
            if newest > warehouse.last_synced {
                warehouse.last_synced = newest;
            }
        }
        Ok(warehouse)
    }

    /// Reads the tables this warehouse manages (those with both system columns).
    fn load_tables(&mut self) -> Result<(), WarehouseError> {
        let names: Vec<String> = self
            .connection
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        self.tables.clear();
        for name in names {
            let mut columns = HashSet::new();
            let mut keys = Vec::new();
            let mut system = 0;
            let mut statement = self
                .connection
                .prepare(&format!("PRAGMA table_info({})", quote(&name)))?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let column: String = row.get("name")?;
                let key_position: i64 = row.get("pk")?;
                if column == SYNCED_COLUMN || column == DELETED_COLUMN {
                    system += 1;
                    continue;
                }
                if key_position > 0 {
                    keys.push((key_position, column.clone()));
                }
                columns.insert(column);
            }
            if system == 2 && !keys.is_empty() {
                keys.sort();
                let primary_key = keys.into_iter().map(|(_, column)| column).collect();
                self.tables.insert(
                    name,
                    TableInfo {
                        columns,
                        primary_key,
                    },
                );
            }
        }
        Ok(())
    }

    /// Records the naming mode on the first run and refuses another one
    /// later, as Fivetran keeps a connection's first naming strategy (in a
    /// `_fivetran_metadata` table beside the data, as its engine does).
    ///
    /// # Errors
    /// [`WarehouseError::NamingChanged`], or SQLite failing.
    pub fn remember_naming(&mut self, naming: &str) -> Result<(), WarehouseError> {
        self.connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS _fivetran_metadata (key TEXT PRIMARY KEY, value TEXT)",
        )?;
        let recorded: Option<String> = self
            .connection
            .query_row(
                "SELECT value FROM _fivetran_metadata WHERE key = 'naming_strategy'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        match recorded {
            Some(was) if was != naming => Err(WarehouseError::NamingChanged {
                was,
                now: naming.to_owned(),
            }),
            Some(_) => Ok(()),
            None => {
                self.connection.execute(
                    "INSERT INTO _fivetran_metadata (key, value) VALUES ('naming_strategy', ?1)",
                    [naming],
                )?;
                Ok(())
            }
        }
    }

    /// Whether the warehouse has `table`.
    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// Whether `table` is keyed by [`ID_COLUMN`] (it had no declared key).
    pub fn is_keyless(&self, table: &str) -> bool {
        self.tables
            .get(table)
            .is_some_and(|info| info.primary_key == [ID_COLUMN])
    }

    /// Creates a table without a declared key from its first row: the row's
    /// columns typed by their values (NULL-only ones left out), keyed by
    /// [`ID_COLUMN`].
    ///
    /// # Errors
    /// A reserved column name, or SQLite failing.
    pub fn create_keyless(
        &mut self,
        table: &str,
        row: &Row,
    ) -> Result<TableChange, WarehouseError> {
        let columns = std::iter::once(ColumnDef {
            name: ID_COLUMN.to_owned(),
            sql_type: SqlType::Text,
            primary_key: true,
        })
        .chain(
            row.iter()
                .filter(|(column, value)| column.as_str() != ID_COLUMN && !value.is_null())
                .map(|(column, value)| ColumnDef {
                    name: column.clone(),
                    sql_type: value.sql_type(),
                    primary_key: false,
                }),
        )
        .collect();
        self.ensure_table(&TableDef {
            name: table.to_owned(),
            columns,
        })
    }

    /// The managed tables, sorted by name.
    pub fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    /// Whether changes are waiting for [`Warehouse::commit`].
    pub fn has_pending_changes(&self) -> bool {
        !self.connection.is_autocommit()
    }

    fn begin(&mut self) -> Result<(), WarehouseError> {
        if self.connection.is_autocommit() {
            self.connection.execute_batch("BEGIN")?;
        }
        Ok(())
    }

    /// Makes every change since the last commit durable, in one transaction.
    ///
    /// # Errors
    /// When SQLite cannot commit (the changes are then lost).
    pub fn commit(&mut self) -> Result<(), WarehouseError> {
        if !self.connection.is_autocommit() {
            self.connection.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    /// Discards every change since the last commit, tables and columns included.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn rollback(&mut self) -> Result<(), WarehouseError> {
        // SQLite may already have rolled back by itself after some errors.
        if !self.connection.is_autocommit() {
            self.connection.execute_batch("ROLLBACK")?;
        }
        // Columns or tables created since the last commit are gone again.
        self.load_tables()
    }

    /// Creates the table, or adds the declared columns it lacks. Existing
    /// columns and the primary key are left as they are.
    ///
    /// # Errors
    /// A table without a primary key, a reserved column name, or SQLite failing.
    pub fn ensure_table(&mut self, table: &TableDef) -> Result<TableChange, WarehouseError> {
        if let Some(column) = table
            .columns
            .iter()
            .find(|column| is_system_column(&column.name))
        {
            return Err(WarehouseError::ReservedColumn {
                table: table.name.clone(),
                column: column.name.clone(),
            });
        }
        self.begin()?;
        if let Some(info) = self.tables.get(&table.name) {
            let declared_key: Vec<&String> = table
                .columns
                .iter()
                .filter(|column| column.primary_key)
                .map(|column| &column.name)
                .collect();
            if !declared_key.is_empty() && declared_key.iter().copied().ne(info.primary_key.iter())
            {
                return Err(WarehouseError::PrimaryKeyChanged {
                    table: table.name.clone(),
                    was: info.primary_key.join(", "),
                    now: declared_key
                        .iter()
                        .map(|name| name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            let missing: Vec<(String, SqlType)> = table
                .columns
                .iter()
                .filter(|column| !info.columns.contains(&column.name))
                .map(|column| (column.name.clone(), column.sql_type))
                .collect();
            if missing.is_empty() {
                return Ok(TableChange::Unchanged);
            }
            return Ok(TableChange::ColumnsAdded(
                self.add_columns(&table.name, missing)?,
            ));
        }

        let primary_key: Vec<String> = table
            .columns
            .iter()
            .filter(|column| column.primary_key)
            .map(|column| column.name.clone())
            .collect();
        if primary_key.is_empty() {
            return Err(WarehouseError::NoPrimaryKey(table.name.clone()));
        }
        let mut ddl = format!("CREATE TABLE {} (", quote(&table.name));
        for column in &table.columns {
            ddl.push_str(&quote(&column.name));
            ddl.push(' ');
            ddl.push_str(column.sql_type.as_sql());
            // SQLite lets key columns of ordinary tables hold NULL; Fivetran does not.
            if column.primary_key {
                ddl.push_str(" NOT NULL");
            }
            ddl.push_str(", ");
        }
        ddl.push_str(&format!(
            "{} TEXT NOT NULL, {} INTEGER NOT NULL DEFAULT 0, PRIMARY KEY ({}))",
            quote(SYNCED_COLUMN),
            quote(DELETED_COLUMN),
            quoted_list(&primary_key)
        ));
        self.connection.execute_batch(&ddl)?;
        self.tables.insert(
            table.name.clone(),
            TableInfo {
                columns: table
                    .columns
                    .iter()
                    .map(|column| column.name.clone())
                    .collect(),
                primary_key,
            },
        );
        Ok(TableChange::Created)
    }

    fn add_column(
        &mut self,
        table: &str,
        column: &str,
        sql_type: SqlType,
    ) -> Result<(), WarehouseError> {
        self.connection.execute_batch(&format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            quote(table),
            quote(column),
            sql_type.as_sql()
        ))?;
        if let Some(info) = self.tables.get_mut(table) {
            info.columns.insert(column.to_owned());
        }
        Ok(())
    }

    /// `row` without the NULL values of columns the table does not have: as
    /// at Fivetran, a column that only ever carried NULL is not created (and
    /// writing NULL to an absent column changes nothing).
    fn without_unknown_nulls<'r>(
        &self,
        table: &str,
        row: &'r Row,
    ) -> Result<Cow<'r, Row>, WarehouseError> {
        let info = self.info(table)?;
        let kept = |(column, value): &(&String, &SqlValue)| {
            !value.is_null() || info.columns.contains(*column)
        };
        if row.iter().all(|entry| kept(&entry)) {
            return Ok(Cow::Borrowed(row));
        }
        Ok(Cow::Owned(
            row.iter()
                .filter(|entry| kept(entry))
                .map(|(column, value)| (column.clone(), value.clone()))
                .collect(),
        ))
    }

    /// Adds the columns of `row` the table lacks (the connector passes unknown
    /// source fields through), typed from their values.
    fn add_missing_columns(
        &mut self,
        table: &str,
        row: &Row,
    ) -> Result<Vec<String>, WarehouseError> {
        let info = self.info(table)?;
        let mut missing = Vec::new();
        for (column, value) in row {
            if is_system_column(column) {
                return Err(WarehouseError::ReservedColumn {
                    table: table.to_owned(),
                    column: column.clone(),
                });
            }
            if !info.columns.contains(column) {
                missing.push((column.clone(), value.sql_type()));
            }
        }
        self.add_columns(table, missing)
    }

    /// Adds `missing` columns to `table`; returns their names.
    fn add_columns(
        &mut self,
        table: &str,
        missing: Vec<(String, SqlType)>,
    ) -> Result<Vec<String>, WarehouseError> {
        let mut added = Vec::with_capacity(missing.len());
        for (column, sql_type) in missing {
            self.add_column(table, &column, sql_type)?;
            added.push(column);
        }
        Ok(added)
    }

    /// Runs one (cached) write statement.
    fn execute(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        added_columns: Vec<String>,
    ) -> Result<Applied, WarehouseError> {
        let rows = self.connection.prepare_cached(sql)?.execute(params)?;
        Ok(Applied {
            rows: rows as u64,
            added_columns,
        })
    }

    fn info(&self, table: &str) -> Result<&TableInfo, WarehouseError> {
        self.tables
            .get(table)
            .ok_or_else(|| WarehouseError::UnknownTable(table.to_owned()))
    }

    /// The key columns of `table`, failing on a NULL or missing one.
    fn key_of(
        &self,
        operation: &'static str,
        table: &str,
        row: &Row,
    ) -> Result<Vec<String>, WarehouseError> {
        self.check_key(operation, table, row)?;
        Ok(self.info(table)?.primary_key.clone())
    }

    /// Fails on a NULL or missing key column of `table` in `row`.
    fn check_key(
        &self,
        operation: &'static str,
        table: &str,
        row: &Row,
    ) -> Result<(), WarehouseError> {
        let info = self.info(table)?;
        for column in &info.primary_key {
            if row.get(column).is_none_or(SqlValue::is_null) {
                return Err(WarehouseError::NullPrimaryKey {
                    operation,
                    table: table.to_owned(),
                    column: column.clone(),
                });
            }
        }
        Ok(())
    }

    /// The next `_fivetran_synced`: the wall clock, but always strictly
    /// later than the previous one, so two operations never share a value.
    fn next_synced(&mut self) -> SqlValue {
        let now = Utc::now().trunc_subsecs(6);
        let next = match self.last_synced {
            Some(last) if now <= last => last + TimeDelta::microseconds(1),
            _ => now,
        };
        self.last_synced = Some(next);
        SqlValue::Text(next.format(SYNCED_FORMAT).to_string())
    }

    /// UPSERT: replaces the whole row with this key; columns not in `row`
    /// become NULL and the row is live again.
    ///
    /// # Errors
    /// An undeclared table, a NULL or missing key, or SQLite failing.
    pub fn upsert(&mut self, table: &str, row: &Row) -> Result<Applied, WarehouseError> {
        self.check_key("UPSERT", table, row)?;
        let row = &self.without_unknown_nulls(table, row)?;
        self.begin()?;
        let added_columns = self.add_missing_columns(table, row)?;
        let synced = self.next_synced();
        let mut sql = format!("INSERT OR REPLACE INTO {} (", quote(table));
        for column in row.keys() {
            sql.push_str(&quote(column));
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "{}, {}) VALUES (",
            quote(SYNCED_COLUMN),
            quote(DELETED_COLUMN)
        ));
        for _ in 0..=row.len() {
            sql.push_str("?, ");
        }
        sql.push_str("0)");
        self.execute(
            &sql,
            params_from_iter(row.values().chain([&synced])),
            added_columns,
        )
    }

    /// UPDATE: sets only the given columns of the row with this key, and
    /// revives it if it was soft-deleted; does nothing when that row is absent.
    ///
    /// # Errors
    /// An undeclared table, a NULL or missing key, or SQLite failing.
    pub fn update(&mut self, table: &str, row: &Row) -> Result<Applied, WarehouseError> {
        let key = self.key_of("UPDATE", table, row)?;
        let row = &self.without_unknown_nulls(table, row)?;
        self.begin()?;
        let added_columns = self.add_missing_columns(table, row)?;
        let synced = self.next_synced();
        // As Fivetran does, an update also revives a soft-deleted row.
        let mut sql = format!(
            "UPDATE {} SET {} = 0, ",
            quote(table),
            quote(DELETED_COLUMN)
        );
        let mut values: Vec<&SqlValue> = Vec::with_capacity(row.len() + 1);
        for (column, value) in row.iter().filter(|(column, _)| !key.contains(column)) {
            sql.push_str(&format!("{} = ?, ", quote(column)));
            values.push(value);
        }
        sql.push_str(&format!("{} = ?", quote(SYNCED_COLUMN)));
        values.push(&synced);
        sql.push_str(&key_condition(&key));
        values.extend(key.iter().filter_map(|column| row.get(column)));
        self.execute(&sql, params_from_iter(values), added_columns)
    }

    /// DELETE: soft-deletes the row with this key (other columns of `row`
    /// are ignored); does nothing when it is absent.
    ///
    /// # Errors
    /// An undeclared table, a NULL or missing key, or SQLite failing.
    pub fn delete(&mut self, table: &str, row: &Row) -> Result<Applied, WarehouseError> {
        let key = self.key_of("DELETE", table, row)?;
        self.begin()?;
        let synced = self.next_synced();
        let sql = format!(
            "UPDATE {} SET {} = 1, {} = ?{}",
            quote(table),
            quote(DELETED_COLUMN),
            quote(SYNCED_COLUMN),
            key_condition(&key)
        );
        let values = [&synced]
            .into_iter()
            .chain(key.iter().filter_map(|column| row.get(column)));
        self.execute(&sql, params_from_iter(values), Vec::new())
    }

    /// TRUNCATE: soft-deletes every live row synced before now (that is,
    /// before this operation). Rows upserted after it stay live.
    ///
    /// # Errors
    /// An undeclared table or SQLite failing.
    pub fn truncate(&mut self, table: &str) -> Result<Applied, WarehouseError> {
        self.info(table)?;
        self.begin()?;
        let synced = self.next_synced();
        let sql = format!(
            "UPDATE {table} SET {deleted} = 1 WHERE {synced} < ? AND {deleted} = 0",
            table = quote(table),
            deleted = quote(DELETED_COLUMN),
            synced = quote(SYNCED_COLUMN),
        );
        self.execute(&sql, [&synced], Vec::new())
    }

    /// Rows not soft-deleted, ordered by primary key, system columns included.
    ///
    /// # Errors
    /// An unknown table or SQLite failing.
    pub fn live_rows(&self, table: &str) -> Result<Vec<Row>, WarehouseError> {
        self.select_rows(table, true)
    }

    /// Every row, soft-deleted ones included, ordered by primary key.
    ///
    /// # Errors
    /// An unknown table or SQLite failing.
    pub fn all_rows(&self, table: &str) -> Result<Vec<Row>, WarehouseError> {
        self.select_rows(table, false)
    }

    fn select_rows(&self, table: &str, live_only: bool) -> Result<Vec<Row>, WarehouseError> {
        let info = self.info(table)?;
        let filter = if live_only {
            format!(" WHERE {} = 0", quote(DELETED_COLUMN))
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT * FROM {}{filter} ORDER BY {}",
            quote(table),
            quoted_list(&info.primary_key)
        );
        let mut statement = self.connection.prepare(&sql)?;
        let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
        let mut rows = statement.query([])?;
        let mut result = Vec::new();
        while let Some(row) = rows.next()? {
            let mut map = Row::new();
            for (index, name) in names.iter().enumerate() {
                map.insert(name.clone(), SqlValue::from(row.get_ref(index)?));
            }
            result.push(map);
        }
        Ok(result)
    }

    /// How many rows of `table` are not soft-deleted.
    ///
    /// # Errors
    /// An unknown table or SQLite failing.
    pub fn live_row_count(&self, table: &str) -> Result<u64, WarehouseError> {
        self.info(table)?;
        let count: i64 = self.connection.query_row(
            &format!(
                "SELECT COUNT(*) FROM {} WHERE {} = 0",
                quote(table),
                quote(DELETED_COLUMN)
            ),
            [],
            |row| row.get(0),
        )?;
        Ok(count.max(0) as u64)
    }
}

fn is_system_column(name: &str) -> bool {
    name == SYNCED_COLUMN || name == DELETED_COLUMN
}

/// An SQL identifier, quoted so any name (keywords, parentheses) is safe.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn quoted_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|column| quote(column))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` WHERE "k1" = ? AND "k2" = ?`.
fn key_condition(key: &[String]) -> String {
    let conditions: Vec<String> = key
        .iter()
        .map(|column| format!("{} = ?", quote(column)))
        .collect();
    format!(" WHERE {}", conditions.join(" AND "))
}

mod state_file;
#[cfg(test)]
mod tests;
mod types;

pub use state_file::{read_state, write_state_atomically};
pub use types::{ColumnDef, ID_COLUMN, Row, SqlType, SqlValue, TableChange, TableDef, row_id};
