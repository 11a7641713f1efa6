//! Running one debug sync: the connector's events applied to the warehouse
//! as Fivetran's engine applies them, committed at each checkpoint with the
//! state file replaced after each commit, and progress on the console.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    time::Instant,
};

use super::{
    Console, Interrupt, SHOWN_WARNINGS,
    report::{OperationCounts, SyncFailure, thousands},
    tester::{self, Event, Names, Operation},
    warehouse::{self, Applied, ID_COLUMN, SqlValue, TableChange, TableDef, Warehouse, row_id},
};
use crate::grpc::service::ConnectorService;

/// One sync in progress: the warehouse, what was received, and the output.
pub(crate) struct Session {
    pub(crate) warehouse: Warehouse,
    pub(crate) console: Console,
    pub(crate) names: Names,
    pub(crate) state_path: PathBuf,
    pub(crate) counts: OperationCounts,
    pub(crate) warnings: Vec<String>,
    /// The state last written to the state file.
    pub(crate) state_json: Option<String>,
    /// Row-carrying records received per table (running counts).
    pub(crate) rows_by_table: BTreeMap<String, u64>,
    /// Tables with records since the last checkpoint.
    pub(crate) tables_since_checkpoint: BTreeSet<String>,
    /// Declared tables not created yet: as at Fivetran, a declared table is
    /// created by its first row or at the first flush (checkpoint), never at
    /// Schema time, so a sync that fails before its first checkpoint leaves
    /// nothing behind.
    pub(crate) declared: Vec<TableDef>,
    pub(crate) started: Instant,
}

impl Session {
    /// Schema, then Update to the end of its stream. Any error is the reason
    /// the sync failed; the caller rolls back.
    pub(crate) async fn sync(
        &mut self,
        service: &ConnectorService,
        configuration: HashMap<String, String>,
        state_json: Option<String>,
        interrupt: Option<Interrupt>,
    ) -> Result<(), SyncFailure> {
        self.declared = tester::schema(service, configuration.clone(), &mut self.names).await?;
        // Like `fivetran debug`, "Schema changes" counts the tables Schema declared.
        self.counts.schema_changes += self.declared.len() as u64;

        let mut updates = tester::update(service, configuration, state_json).await?;
        let mut interrupt = interrupt.unwrap_or_else(|| Box::pin(std::future::pending()));
        loop {
            let event = tokio::select! {
                event = updates.next(&mut self.names) => event,
                () = &mut interrupt => return Err(SyncFailure::Interrupted),
            };
            match event {
                None => break,
                Some(event) => self.apply(event?)?,
            }
        }
        if self.counts.checkpoints == 0 {
            self.console.close_status();
            self.console.line(
                "WARNING: the connector sent no checkpoint; Fivetran would restart the next sync from the same state.",
            );
        }
        // A sync that ended normally keeps the records after its last checkpoint
        // (the state stays at that checkpoint, so they are re-read next time).
        self.flush()
    }

    fn ensure_table(&mut self, table: &TableDef) -> Result<(), SyncFailure> {
        match self.warehouse.ensure_table(table)? {
            TableChange::Created => {
                let keys: Vec<&str> = table
                    .columns
                    .iter()
                    .filter(|column| column.primary_key)
                    .map(|column| column.name.as_str())
                    .collect();
                self.console.line(&format!(
                    "Created table {} ({} columns, primary key {})",
                    table.name,
                    table.columns.len(),
                    keys.join(", ")
                ));
            }
            TableChange::ColumnsAdded(columns) => self.columns_added(&table.name, &columns),
            TableChange::Unchanged => {}
        }
        Ok(())
    }

    fn columns_added(&mut self, table: &str, columns: &[String]) {
        if !columns.is_empty() {
            self.console.line(&format!(
                "Added column(s) {} to table {table}",
                columns.join(", ")
            ));
        }
    }

    fn apply(&mut self, event: Event) -> Result<(), SyncFailure> {
        match event {
            Event::Operations(operations) => operations
                .into_iter()
                .try_for_each(|operation| self.apply_operation(operation)),
            Event::SchemaChange(tables) => {
                self.counts.schema_changes += tables.len() as u64;
                self.console
                    .line(&format!("Schema change: {} table(s)", tables.len()));
                self.declared.extend(tables);
                Ok(())
            }
            Event::Checkpoint(state_json) => self.checkpoint(state_json),
            Event::Warning(message) => {
                self.counts.warnings += 1;
                if self.warnings.len() < SHOWN_WARNINGS {
                    self.console.line(&format!("Warning: {message}"));
                    self.warnings.push(message);
                }
                Ok(())
            }
            Event::Task(message) => {
                self.console
                    .line(&format!("Task (user action needed): {message}"));
                Err(SyncFailure::Task(message))
            }
        }
    }

    /// Creates the declared table `name` if it is still waiting. A declared
    /// table without a key is created by its first row instead.
    fn create_declared(&mut self, name: &str) -> Result<(), SyncFailure> {
        if let Some(position) = self.declared.iter().position(|table| table.name == name) {
            let table = self.declared.swap_remove(position);
            if has_key(&table) {
                self.ensure_table(&table)?;
            }
        }
        Ok(())
    }

    /// Creates every declared table still waiting (but keyless ones), then commits.
    fn flush(&mut self) -> Result<(), SyncFailure> {
        for table in std::mem::take(&mut self.declared) {
            if has_key(&table) {
                self.ensure_table(&table)?;
            } else {
                self.declared.push(table);
            }
        }
        Ok(self.warehouse.commit()?)
    }

    /// As Fivetran does, a table with no declared key (or one Schema never
    /// declared) is keyed by `_fivetran_id`, a hash of the row: an UPSERT
    /// creates it from its row; other operations on a table that does not
    /// exist do nothing.
    fn key_keyless(&mut self, mut operation: Operation) -> Result<Option<Operation>, SyncFailure> {
        // Runs for every record: no allocation unless a table is created.
        if !self.warehouse.has_table(operation_table(&operation)) {
            let Operation::Upsert { table, row } = &operation else {
                return Ok(None);
            };
            if self.warehouse.create_keyless(table, row)? == TableChange::Created {
                self.console
                    .line(&format!("Created table {table} (keyed by {ID_COLUMN})"));
            }
        }
        if self.warehouse.is_keyless(operation_table(&operation))
            && let Operation::Upsert { row, .. }
            | Operation::Update { row, .. }
            | Operation::Delete { row, .. } = &mut operation
        {
            let id = row_id(row);
            row.insert(ID_COLUMN.to_owned(), SqlValue::Text(id));
        }
        Ok(Some(operation))
    }

    fn apply_operation(&mut self, operation: Operation) -> Result<(), SyncFailure> {
        self.create_declared(operation_table(&operation))?;
        let Some(operation) = self.key_keyless(operation)? else {
            return Ok(());
        };
        let (table, applied) = match operation {
            Operation::Upsert { table, row } => {
                self.counts.upserts += 1;
                let applied = self.warehouse.upsert(&table, &row);
                (table, applied)
            }
            Operation::Update { table, row } => {
                self.counts.updates += 1;
                let applied = self.warehouse.update(&table, &row);
                (table, applied)
            }
            Operation::Delete { table, row } => {
                self.counts.deletes += 1;
                let applied = self.warehouse.delete(&table, &row);
                (table, applied)
            }
            Operation::Truncate { table } => {
                self.counts.truncates += 1;
                let Applied { rows, .. } = self.warehouse.truncate(&table)?;
                self.console.line(&format!(
                    "Truncated {table}: soft-deleted {} earlier row(s)",
                    thousands(rows)
                ));
                return Ok(());
            }
        };
        let applied = applied?;
        self.columns_added(&table, &applied.added_columns);
        if !self.tables_since_checkpoint.contains(&table) {
            self.tables_since_checkpoint.insert(table.clone());
        }
        *self.rows_by_table.entry(table).or_default() += 1;
        Ok(())
    }

    /// Commits everything received so far, then records the state: a crash
    /// between the two only replays rows (upserts make that harmless).
    fn checkpoint(&mut self, state_json: String) -> Result<(), SyncFailure> {
        self.flush()?;
        warehouse::write_state_atomically(&self.state_path, &state_json).map_err(|source| {
            SyncFailure::StateFile {
                path: self.state_path.clone(),
                source,
            }
        })?;
        let state_json_shown = state_json.clone();
        self.state_json = Some(state_json);
        self.counts.checkpoints += 1;

        let rows = self.counts.rows();
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            (rows as f64 / seconds) as u64
        } else {
            0
        };
        // Only the tables this checkpoint covers: seven columns on every line is noise.
        let per_table: Vec<String> = std::mem::take(&mut self.tables_since_checkpoint)
            .into_iter()
            .map(|table| {
                let count = self.rows_by_table.get(&table).copied().unwrap_or(0);
                format!("{table} {}", thousands(count))
            })
            .collect();
        self.console.status(
            &format!(
                "Checkpoints {} | rows {} | {} rows/s",
                self.counts.checkpoints,
                thousands(rows),
                thousands(rate)
            ),
            &format!(
                "checkpoint recorded: {} ({} rows so far{})",
                super::compact(&state_json_shown),
                thousands(rows),
                if per_table.is_empty() {
                    String::new()
                } else {
                    format!(": {}", per_table.join(", "))
                }
            ),
        );
        Ok(())
    }
}

fn has_key(table: &TableDef) -> bool {
    table.columns.iter().any(|column| column.primary_key)
}

fn operation_table(operation: &Operation) -> &str {
    match operation {
        Operation::Upsert { table, .. }
        | Operation::Update { table, .. }
        | Operation::Delete { table, .. }
        | Operation::Truncate { table } => table,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::debug::{
        tester::Naming,
        warehouse::{ColumnDef, ColumnType, Row},
    };

    fn session() -> Session {
        Session {
            warehouse: Warehouse::open_in_memory(warehouse::WarehouseKind::Sqlite).unwrap(),
            console: Console::silent(),
            names: Names::new(Naming::Fivetran),
            state_path: std::env::temp_dir().join("unused-state.json"),
            counts: OperationCounts::default(),
            warnings: Vec::new(),
            state_json: None,
            rows_by_table: BTreeMap::new(),
            tables_since_checkpoint: BTreeSet::new(),
            declared: Vec::new(),
            started: Instant::now(),
        }
    }

    fn row(pairs: &[(&str, &str)]) -> Row {
        pairs
            .iter()
            .map(|(column, value)| ((*column).to_owned(), SqlValue::Text((*value).to_owned())))
            .collect()
    }

    /// Records for a table Schema did not declare, or declared without a key, go to a
    /// table keyed by `_fivetran_id`, a hash of the row; other operations on a table that
    /// does not exist do nothing.
    #[test]
    fn keyless_and_undeclared_tables_are_keyed_by_a_row_hash() {
        let mut session = session();
        session.declared = vec![TableDef {
            name: "declared_without_key".into(),
            columns: vec![ColumnDef {
                name: "a".into(),
                column_type: ColumnType::String,
                primary_key: false,
            }],
        }];
        let upsert = |table: &str, values: &[(&str, &str)]| Operation::Upsert {
            table: table.into(),
            row: row(values),
        };
        session
            .apply(Event::Operations(vec![
                upsert("undeclared", &[("a", "1"), ("b", "x")]),
                upsert("undeclared", &[("a", "1"), ("b", "x")]),
                upsert("undeclared", &[("a", "2"), ("b", "x")]),
                upsert("declared_without_key", &[("a", "1")]),
                Operation::Update {
                    table: "absent".into(),
                    row: row(&[("a", "1")]),
                },
                Operation::Truncate {
                    table: "also_absent".into(),
                },
            ]))
            .unwrap();
        session.flush().unwrap();
        let warehouse = &session.warehouse;
        assert_eq!(
            warehouse.table_names(),
            ["declared_without_key", "undeclared"]
        );
        assert!(warehouse.is_keyless("undeclared"));
        let rows = warehouse.live_rows("undeclared").unwrap();
        assert_eq!(rows.len(), 2, "the same row twice is one row");
        let first = row(&[("a", "1"), ("b", "x")]);
        assert!(
            rows.iter()
                .any(|stored| stored[ID_COLUMN] == SqlValue::Text(row_id(&first)))
        );
        assert_eq!(
            warehouse.live_rows("declared_without_key").unwrap().len(),
            1
        );
    }
}
