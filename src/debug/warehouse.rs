//! The debug warehouse: Fivetran's destination written locally (one table
//! per Fivetran table, plus the system columns), the operations applied the
//! way Fivetran's engine applies them, and the atomic `state.json` writer.
//! It knows nothing of protobuf: the `tester` module translates into it.
//!
//! The rules live here once; the SQL engine underneath is SQLite
//! (`files/warehouse.sqlite`, always built in) or DuckDB (`files/warehouse.db`
//! in schema `tester`, as Fivetran's tools write it; cargo feature `duckdb`).

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use chrono::{DateTime, SubsecRound as _, TimeDelta, Utc};

use database::{CatalogColumn, Database, quote};

/// When the row was last written (UTC, microseconds, strictly increasing).
pub const SYNCED_COLUMN: &str = "_fivetran_synced";
/// True once the row was deleted or truncated at the source (soft delete).
pub const DELETED_COLUMN: &str = "_fivetran_deleted";

/// Fixed width, so text order is time order and SQL `<` compares instants.
const SYNCED_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// Where a warehouse keeps the naming mode of its first run, as Fivetran's engine does.
const METADATA_TABLE: &str = "_fivetran_metadata";

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
    /// DuckDB itself failed.
    #[cfg(feature = "duckdb")]
    #[error("DuckDB: {0}")]
    DuckDb(#[from] ::duckdb::Error),
    /// Another process has the DuckDB file open (DuckDB allows one).
    #[error(
        "a connection to {} is already open (a `duckdb -ui` session or Fivetran's own tool?): close it and run again",
        path.display()
    )]
    Locked {
        /// The warehouse file.
        path: PathBuf,
    },
    /// This binary was built without the engine asked for.
    #[error(
        "this sensource-connector was built without {0}: build it with `cargo build --release --features duckdb` to use --warehouse duckdb"
    )]
    NotBuilt(WarehouseKind),
    /// The engine's catalogue said something the warehouse cannot read.
    #[error("reading the warehouse's tables: {0}")]
    Catalog(String),
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
    /// Data columns (system columns excluded), sorted: statements list them
    /// in this fixed order, so each is prepared once and reused.
    columns: BTreeSet<String>,
    /// Primary-key columns, in key order.
    primary_key: Vec<String>,
}

/// The warehouse. Writes happen inside one open transaction that
/// [`Warehouse::commit`] ends (at each checkpoint) and
/// [`Warehouse::rollback`] discards; dropping the warehouse without
/// committing discards too, as a crash would.
#[derive(Debug)]
pub struct Warehouse {
    database: Box<dyn Database>,
    tables: BTreeMap<String, TableInfo>,
    /// The last `_fivetran_synced` handed out: later ones are strictly greater.
    last_synced: Option<DateTime<Utc>>,
}

impl Warehouse {
    /// Opens (or creates) a warehouse file of `kind`.
    ///
    /// # Errors
    /// When the engine cannot open or read it, DuckDB's file is held by
    /// another process, or this binary lacks the engine.
    pub fn open(kind: WarehouseKind, path: &Path) -> Result<Self, WarehouseError> {
        Self::from_database(engine(kind, Some(path))?)
    }

    /// An in-memory warehouse of `kind` (tests).
    ///
    /// # Errors
    /// When the engine fails, or this binary lacks it.
    pub fn open_in_memory(kind: WarehouseKind) -> Result<Self, WarehouseError> {
        Self::from_database(engine(kind, None)?)
    }

    fn from_database(database: Box<dyn Database>) -> Result<Self, WarehouseError> {
        let mut warehouse = Self {
            database,
            tables: BTreeMap::new(),
            last_synced: None,
        };
        warehouse.load_tables()?;
        // Continue after the newest row of a previous run, so a TRUNCATE now
        // is later than every row already there even if the wall clock moved back.
        for table in warehouse.tables.keys() {
            let sql = format!(
                "SELECT MAX({}) FROM {}",
                quote(SYNCED_COLUMN),
                warehouse.database.table_sql(table)
            );
            let newest = warehouse
                .database
                .query(&sql, &[], 1)?
                .into_iter()
                .flatten()
                .find_map(|value| match value {
                    SqlValue::Text(text) => DateTime::parse_from_rfc3339(&text).ok(),
                    _ => None,
                })
                .map(|time| time.with_timezone(&Utc));
            if newest > warehouse.last_synced {
                warehouse.last_synced = newest;
            }
        }
        Ok(warehouse)
    }

    /// Which engine holds the warehouse.
    pub fn kind(&self) -> WarehouseKind {
        self.database.kind()
    }

    /// Reads the tables this warehouse manages (those with both system
    /// columns and a primary key).
    fn load_tables(&mut self) -> Result<(), WarehouseError> {
        self.tables.clear();
        let mut by_table: BTreeMap<String, Vec<CatalogColumn>> = BTreeMap::new();
        for column in self.database.catalog()? {
            by_table
                .entry(column.table.clone())
                .or_default()
                .push(column);
        }
        for (name, catalog) in by_table {
            let system = catalog
                .iter()
                .filter(|column| is_system_column(&column.column))
                .count();
            let mut keys: Vec<(u32, String)> = catalog
                .iter()
                .filter_map(|column| Some((column.key_position?, column.column.clone())))
                .collect();
            if system != 2 || keys.is_empty() {
                continue;
            }
            keys.sort();
            self.tables.insert(
                name,
                TableInfo {
                    columns: catalog
                        .into_iter()
                        .map(|column| column.column)
                        .filter(|column| !is_system_column(column))
                        .collect(),
                    primary_key: keys.into_iter().map(|(_, column)| column).collect(),
                },
            );
        }
        Ok(())
    }

    /// Each column of `table` with the engine's name of its type, in table order.
    ///
    /// # Errors
    /// When the engine fails.
    pub fn column_types(&self, table: &str) -> Result<Vec<(String, String)>, WarehouseError> {
        Ok(self
            .database
            .catalog()?
            .into_iter()
            .filter(|column| column.table == table)
            .map(|column| (column.column, column.type_name))
            .collect())
    }

    /// Records the naming mode on the first run and refuses another one
    /// later, as Fivetran keeps a connection's first naming strategy (in a
    /// `_fivetran_metadata` table beside the data, as its engine does).
    ///
    /// # Errors
    /// [`WarehouseError::NamingChanged`], or SQLite failing.
    pub fn remember_naming(&mut self, naming: &str) -> Result<(), WarehouseError> {
        let metadata = quote(METADATA_TABLE);
        self.database.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {metadata} (\"key\" VARCHAR PRIMARY KEY, \"value\" VARCHAR)"
            ),
            &[],
        )?;
        let recorded = self
            .database
            .query(
                &format!("SELECT \"value\" FROM {metadata} WHERE \"key\" = 'naming_strategy'"),
                &[],
                1,
            )?
            .into_iter()
            .flatten()
            .find_map(|value| match value {
                SqlValue::Text(text) => Some(text),
                _ => None,
            });
        match recorded {
            // Fivetran's tools write the mode in capitals.
            Some(was) if !was.eq_ignore_ascii_case(naming) => Err(WarehouseError::NamingChanged {
                was: was.to_ascii_lowercase(),
                now: naming.to_owned(),
            }),
            Some(_) => Ok(()),
            None => {
                self.database.execute(
                    &format!(
                        "INSERT INTO {metadata} (\"key\", \"value\") VALUES ('naming_strategy', ?)"
                    ),
                    &[&SqlValue::Text(naming.to_owned())],
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
    /// A reserved column name, or the engine failing.
    pub fn create_keyless(
        &mut self,
        table: &str,
        row: &Row,
    ) -> Result<TableChange, WarehouseError> {
        let columns = std::iter::once(ColumnDef {
            name: ID_COLUMN.to_owned(),
            column_type: ColumnType::String,
            primary_key: true,
        })
        .chain(
            row.iter()
                .filter(|(column, value)| column.as_str() != ID_COLUMN && !value.is_null())
                .map(|(column, value)| ColumnDef {
                    name: column.clone(),
                    column_type: value.column_type(),
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
        self.database.in_transaction()
    }

    /// Makes every change since the last commit durable, in one transaction.
    ///
    /// # Errors
    /// When the engine cannot commit (the changes are then lost).
    pub fn commit(&mut self) -> Result<(), WarehouseError> {
        let committed = self.database.commit();
        if committed.is_err() {
            // What was not committed is gone: forget its tables and columns too.
            self.load_tables()?;
        }
        committed
    }

    /// Discards every change since the last commit, tables and columns included.
    ///
    /// # Errors
    /// When the engine fails.
    pub fn rollback(&mut self) -> Result<(), WarehouseError> {
        self.database.rollback()?;
        // Columns or tables created since the last commit are gone again.
        self.load_tables()
    }

    /// Creates the table, or adds the declared columns it lacks. Existing
    /// columns and the primary key are left as they are.
    ///
    /// # Errors
    /// A table without a primary key, a changed primary key, a reserved
    /// column name, or the engine failing.
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
        let declared_key: Vec<String> = table
            .columns
            .iter()
            .filter(|column| column.primary_key)
            .map(|column| column.name.clone())
            .collect();
        self.database.begin()?;
        if let Some(info) = self.tables.get(&table.name) {
            if !declared_key.is_empty() && declared_key != info.primary_key {
                return Err(WarehouseError::PrimaryKeyChanged {
                    table: table.name.clone(),
                    was: info.primary_key.join(", "),
                    now: declared_key.join(", "),
                });
            }
            let missing: Vec<(String, ColumnType)> = table
                .columns
                .iter()
                .filter(|column| !info.columns.contains(&column.name))
                .map(|column| (column.name.clone(), column.column_type))
                .collect();
            if missing.is_empty() {
                return Ok(TableChange::Unchanged);
            }
            return Ok(TableChange::ColumnsAdded(
                self.add_columns(&table.name, missing)?,
            ));
        }

        if declared_key.is_empty() {
            return Err(WarehouseError::NoPrimaryKey(table.name.clone()));
        }
        let mut ddl = format!("CREATE TABLE {} (", self.database.table_sql(&table.name));
        for column in &table.columns {
            ddl.push_str(&quote(&column.name));
            ddl.push(' ');
            ddl.push_str(&self.database.type_sql(column.column_type));
            // SQLite lets key columns of ordinary tables hold NULL; Fivetran does not.
            if column.primary_key {
                ddl.push_str(" NOT NULL");
            }
            ddl.push_str(", ");
        }
        ddl.push_str(&format!(
            "{}, PRIMARY KEY ({}))",
            self.database.system_columns_sql(),
            quoted_list(&declared_key)
        ));
        self.database.execute(&ddl, &[])?;
        self.tables.insert(
            table.name.clone(),
            TableInfo {
                columns: table
                    .columns
                    .iter()
                    .map(|column| column.name.clone())
                    .collect(),
                primary_key: declared_key,
            },
        );
        Ok(TableChange::Created)
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
                missing.push((column.clone(), value.column_type()));
            }
        }
        self.add_columns(table, missing)
    }

    /// Adds `missing` columns to `table`; returns their names.
    fn add_columns(
        &mut self,
        table: &str,
        missing: Vec<(String, ColumnType)>,
    ) -> Result<Vec<String>, WarehouseError> {
        let mut added = Vec::with_capacity(missing.len());
        for (column, column_type) in missing {
            let sql = format!(
                "ALTER TABLE {} ADD COLUMN {} {}",
                self.database.table_sql(table),
                quote(&column),
                self.database.type_sql(column_type)
            );
            self.database.execute(&sql, &[])?;
            if let Some(info) = self.tables.get_mut(table) {
                info.columns.insert(column.clone());
            }
            added.push(column);
        }
        Ok(added)
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

    /// Runs one write statement in the open transaction.
    fn write(
        &mut self,
        sql: &str,
        params: &[&SqlValue],
        added_columns: Vec<String>,
    ) -> Result<Applied, WarehouseError> {
        Ok(Applied {
            rows: self.database.execute(sql, params)?,
            added_columns,
        })
    }

    /// UPSERT: replaces the whole row with this key; columns not in `row`
    /// become NULL and the row is live again.
    ///
    /// # Errors
    /// An undeclared table, a NULL or missing key, or the engine failing.
    pub fn upsert(&mut self, table: &str, row: &Row) -> Result<Applied, WarehouseError> {
        self.check_key("UPSERT", table, row)?;
        let row = &self.without_unknown_nulls(table, row)?;
        self.database.begin()?;
        let added_columns = self.add_missing_columns(table, row)?;
        let synced = self.next_synced();
        let info = self.info(table)?;
        // `INSERT … ON CONFLICT DO UPDATE` of every column, as Fivetran's engine writes an upsert.
        let mut sql = format!("INSERT INTO {} (", self.database.table_sql(table));
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
        sql.push_str(&format!(
            "FALSE) ON CONFLICT ({}) DO UPDATE SET ",
            quoted_list(&info.primary_key)
        ));
        let others = info
            .columns
            .iter()
            .filter(|column| !info.primary_key.contains(column));
        for name in others {
            let column = quote(name);
            if row.contains_key(name) {
                sql.push_str(&format!("{column} = excluded.{column}, "));
            } else {
                sql.push_str(&format!("{column} = NULL, "));
            }
        }
        sql.push_str(&format!(
            "{synced} = excluded.{synced}, {deleted} = FALSE",
            synced = quote(SYNCED_COLUMN),
            deleted = quote(DELETED_COLUMN),
        ));
        let params: Vec<&SqlValue> = row.values().chain([&synced]).collect();
        self.write(&sql, &params, added_columns)
    }

    /// UPDATE: sets only the given columns of the row with this key, and
    /// revives it if it was soft-deleted; does nothing when that row is absent.
    ///
    /// # Errors
    /// An undeclared table, a NULL or missing key, or the engine failing.
    pub fn update(&mut self, table: &str, row: &Row) -> Result<Applied, WarehouseError> {
        let key = self.key_of("UPDATE", table, row)?;
        let row = &self.without_unknown_nulls(table, row)?;
        self.database.begin()?;
        let added_columns = self.add_missing_columns(table, row)?;
        let synced = self.next_synced();
        // As Fivetran does, an update also revives a soft-deleted row.
        let mut sql = format!(
            "UPDATE {} SET {} = FALSE, ",
            self.database.table_sql(table),
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
        self.write(&sql, &values, added_columns)
    }

    /// DELETE: soft-deletes the row with this key (other columns of `row`
    /// are ignored); does nothing when it is absent.
    ///
    /// # Errors
    /// An undeclared table, a NULL or missing key, or the engine failing.
    pub fn delete(&mut self, table: &str, row: &Row) -> Result<Applied, WarehouseError> {
        let key = self.key_of("DELETE", table, row)?;
        self.database.begin()?;
        let synced = self.next_synced();
        let sql = format!(
            "UPDATE {} SET {} = TRUE, {} = ?{}",
            self.database.table_sql(table),
            quote(DELETED_COLUMN),
            quote(SYNCED_COLUMN),
            key_condition(&key)
        );
        let values: Vec<&SqlValue> = [&synced]
            .into_iter()
            .chain(key.iter().filter_map(|column| row.get(column)))
            .collect();
        self.write(&sql, &values, Vec::new())
    }

    /// TRUNCATE: soft-deletes every live row synced before now (that is,
    /// before this operation). Rows upserted after it stay live.
    ///
    /// # Errors
    /// An undeclared table or the engine failing.
    pub fn truncate(&mut self, table: &str) -> Result<Applied, WarehouseError> {
        self.info(table)?;
        self.database.begin()?;
        let synced = self.next_synced();
        let sql = format!(
            "UPDATE {table} SET {deleted} = TRUE WHERE {synced} < ? AND {deleted} = FALSE",
            table = self.database.table_sql(table),
            deleted = quote(DELETED_COLUMN),
            synced = quote(SYNCED_COLUMN),
        );
        self.write(&sql, &[&synced], Vec::new())
    }

    /// Rows not soft-deleted, ordered by primary key, system columns included.
    ///
    /// # Errors
    /// An unknown table or the engine failing.
    pub fn live_rows(&self, table: &str) -> Result<Vec<Row>, WarehouseError> {
        self.select_rows(table, true)
    }

    /// Every row, soft-deleted ones included, ordered by primary key.
    ///
    /// # Errors
    /// An unknown table or the engine failing.
    pub fn all_rows(&self, table: &str) -> Result<Vec<Row>, WarehouseError> {
        self.select_rows(table, false)
    }

    fn select_rows(&self, table: &str, live_only: bool) -> Result<Vec<Row>, WarehouseError> {
        let info = self.info(table)?;
        let mut names: Vec<String> = info.columns.iter().cloned().collect();
        names.extend([SYNCED_COLUMN.to_owned(), DELETED_COLUMN.to_owned()]);
        let filter = if live_only {
            format!(" WHERE {} = FALSE", quote(DELETED_COLUMN))
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {} FROM {}{filter} ORDER BY {}",
            quoted_list(&names),
            self.database.table_sql(table),
            quoted_list(&info.primary_key)
        );
        Ok(self
            .database
            .query(&sql, &[], names.len())?
            .into_iter()
            .map(|values| names.iter().cloned().zip(values).collect())
            .collect())
    }

    /// How many rows of `table` are not soft-deleted.
    ///
    /// # Errors
    /// An unknown table or the engine failing.
    pub fn live_row_count(&self, table: &str) -> Result<u64, WarehouseError> {
        self.info(table)?;
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {} = FALSE",
            self.database.table_sql(table),
            quote(DELETED_COLUMN)
        );
        let count = self
            .database
            .query(&sql, &[], 1)?
            .into_iter()
            .flatten()
            .next();
        Ok(match count {
            Some(SqlValue::Integer(count)) => u64::try_from(count).unwrap_or(0),
            _ => 0,
        })
    }
}

/// The engine of `kind` on the file at `path`, or in memory without one.
fn engine(kind: WarehouseKind, path: Option<&Path>) -> Result<Box<dyn Database>, WarehouseError> {
    Ok(match (kind, path) {
        (WarehouseKind::Sqlite, Some(path)) => Box::new(sqlite::Sqlite::open(path)?),
        (WarehouseKind::Sqlite, None) => Box::new(sqlite::Sqlite::open_in_memory()?),
        #[cfg(feature = "duckdb")]
        (WarehouseKind::DuckDb, Some(path)) => Box::new(duckdb::DuckDb::open(path)?),
        #[cfg(feature = "duckdb")]
        (WarehouseKind::DuckDb, None) => Box::new(duckdb::DuckDb::open_in_memory()?),
        #[cfg(not(feature = "duckdb"))]
        (WarehouseKind::DuckDb, _) => return Err(WarehouseError::NotBuilt(kind)),
    })
}

fn is_system_column(name: &str) -> bool {
    name == SYNCED_COLUMN || name == DELETED_COLUMN
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

mod database;
#[cfg(feature = "duckdb")]
mod duckdb;
mod sqlite;
mod state_file;
#[cfg(test)]
mod tests;
mod types;

pub use database::{UnknownWarehouse, WarehouseKind};
pub use state_file::{read_state, write_state_atomically};
pub use types::{ColumnDef, ColumnType, ID_COLUMN, Row, SqlValue, TableChange, TableDef, row_id};
