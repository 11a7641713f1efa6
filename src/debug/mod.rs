//! The local debug sync (`sensource-connector debug`), like `fivetran debug`:
//! Schema then Update through the same [`ConnectorService`] the gRPC server
//! runs, applied to a SQLite warehouse committed at each checkpoint, with the
//! state file rewritten atomically after each commit. A failed sync rolls
//! back to the last checkpoint, so warehouse and state always agree.
//!
//! - [`warehouse`]: the SQLite warehouse and the state file (no protobuf).
//! - `tester`: protobuf records and schema into warehouse operations.
//! - [`Console`]: progress lines.

mod console;
mod tester;
pub mod warehouse;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt, fs, io,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use futures_util::StreamExt as _;
use tonic::{Request, Status};

pub use console::Console;
pub use tester::Naming;
use tester::{Names, Operation};
use warehouse::{Applied, TableChange, TableDef, Warehouse, WarehouseError};

use crate::{
    clock::{Clock, SystemClock},
    config::DEFAULT_START_DATE,
    grpc::{
        pb::{self, source_connector_server::SourceConnector as _},
        service::ConnectorService,
    },
    simulator::{self, SimulatorHandle, SimulatorOptions},
};

/// The warehouse file inside the files folder.
pub const WAREHOUSE_FILE: &str = "warehouse.db";
/// The default state file inside the files folder.
pub const STATE_FILE: &str = "state.json";
/// Warnings printed in full (Fivetran's dashboard also shows the first ten).
pub const SHOWN_WARNINGS: usize = 10;

/// A future that, when it completes, stops the sync (Ctrl-C in the command).
pub type Interrupt = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What to sync and where.
pub struct DebugOptions {
    /// The connector configuration (Fivetran's map of strings).
    pub configuration: HashMap<String, String>,
    /// Folder of `warehouse.db` (and of `state.json` by default); created if needed.
    pub files_dir: PathBuf,
    /// State file read at start and rewritten at each checkpoint
    /// (default: `files_dir/state.json`).
    pub state_path: Option<PathBuf>,
    /// Start the built-in simulator and point the configuration at it. Its
    /// `history_start` becomes the configuration's `start_date` and its `now`
    /// the clock's; the credentials and URLs in the configuration are replaced.
    pub simulate: Option<SimulatorOptions>,
    /// How names appear in the warehouse.
    pub naming: Naming,
    /// The service's clock ("today" of the sync). `_fivetran_synced` always
    /// uses the wall clock, so it keeps increasing across runs.
    pub clock: Arc<dyn Clock>,
    /// Progress output.
    pub console: Console,
    /// Completing this stops the sync as a failure (rolled back).
    pub interrupt: Option<Interrupt>,
}

impl fmt::Debug for DebugOptions {
    // Hand-written: the configuration holds the client secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.configuration.keys().collect();
        keys.sort();
        f.debug_struct("DebugOptions")
            .field("configuration_keys", &keys)
            .field("files_dir", &self.files_dir)
            .field("state_path", &self.state_path)
            .field("simulate", &self.simulate)
            .field("naming", &self.naming)
            .field("clock", &self.clock)
            .field("console", &self.console)
            .finish_non_exhaustive()
    }
}

impl DebugOptions {
    /// Defaults: empty configuration, `files_dir/state.json`, the real API,
    /// Fivetran naming, the system clock, no output, no interrupt.
    pub fn new(files_dir: impl Into<PathBuf>) -> Self {
        Self {
            configuration: HashMap::new(),
            files_dir: files_dir.into(),
            state_path: None,
            simulate: None,
            naming: Naming::Fivetran,
            clock: Arc::new(SystemClock),
            console: Console::silent(),
            interrupt: None,
        }
    }
}

/// Operations received from the connector (rolled-back ones included).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperationCounts {
    /// UPSERT records.
    pub upserts: u64,
    /// UPDATE records.
    pub updates: u64,
    /// DELETE records.
    pub deletes: u64,
    /// TRUNCATE records.
    pub truncates: u64,
    /// SchemaChange messages.
    pub schema_changes: u64,
    /// Checkpoints (each one committed).
    pub checkpoints: u64,
    /// Warnings.
    pub warnings: u64,
}

impl OperationCounts {
    /// Records that carry a row (upserts, updates and deletes).
    pub fn rows(&self) -> u64 {
        self.upserts + self.updates + self.deletes
    }
}

/// How the sync ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The stream ended normally; everything is committed.
    Succeeded,
    /// The sync failed (an error status, a Task, a bad record, an interrupt);
    /// everything after the last checkpoint was rolled back.
    Failed(String),
}

/// What the simulator served, when one was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatorSummary {
    /// Its `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Requests except token requests.
    pub api_requests: u64,
    /// Requests for hourly data.
    pub data_requests: u64,
    /// Tokens minted.
    pub token_mints: u64,
}

/// The result of one debug sync.
#[derive(Clone, Debug)]
pub struct DebugReport {
    /// Success or the reason of the failure.
    pub outcome: Outcome,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Operations received.
    pub counts: OperationCounts,
    /// Live (not soft-deleted) rows per warehouse table after the run.
    pub rows: BTreeMap<String, u64>,
    /// The first [`SHOWN_WARNINGS`] warnings.
    pub warnings: Vec<String>,
    /// The state in the state file after the run (the last committed checkpoint,
    /// or the state read at start when there was none).
    pub state_json: Option<String>,
    /// The warehouse file.
    pub warehouse_path: PathBuf,
    /// The state file.
    pub state_path: PathBuf,
    /// What the simulator served (`--simulate` only).
    pub simulator: Option<SimulatorSummary>,
}

impl DebugReport {
    /// Whether the sync succeeded.
    pub fn succeeded(&self) -> bool {
        self.outcome == Outcome::Succeeded
    }
}

/// Why a debug sync could not even start (a failed sync is a [`DebugReport`]).
#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    /// No configuration file and no simulator.
    #[error(
        "{} not found: copy configuration.json.example to {} and fill in your SenSource API credentials, or run with --simulate",
        path.display(),
        path.display()
    )]
    ConfigurationMissing {
        /// The configuration path.
        path: PathBuf,
    },
    /// The configuration file is not an object of strings.
    #[error("{}: {reason}", path.display())]
    InvalidConfiguration {
        /// The configuration path.
        path: PathBuf,
        /// What is wrong (never a value).
        reason: String,
    },
    /// A file or folder could not be read or created.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The warehouse could not be opened or read.
    #[error("warehouse {}: {source}", path.display())]
    Warehouse {
        /// The warehouse path.
        path: PathBuf,
        /// The cause.
        source: WarehouseError,
    },
    /// The simulator could not start.
    #[error("cannot start the simulator: {0}")]
    Simulator(io::Error),
}

/// Parses `configuration.json`: a JSON object whose values are strings;
/// numbers and booleans are accepted as their text.
///
/// # Errors
/// Invalid JSON, not an object, or a value of another kind (naming its key).
pub fn parse_configuration(text: &str) -> Result<HashMap<String, String>, String> {
    use serde_json::Value;
    // serde_json's messages give a position, never the offending text.
    let parsed: Value =
        serde_json::from_str(text).map_err(|error| format!("not valid JSON: {error}"))?;
    let Value::Object(entries) = parsed else {
        return Err("must be a JSON object of strings".to_owned());
    };
    entries
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key, text)),
            Value::Number(number) => Ok((key, number.to_string())),
            Value::Bool(flag) => Ok((key, flag.to_string())),
            Value::Null | Value::Array(_) | Value::Object(_) => Err(format!(
                "`{key}` must be a string (numbers and booleans are accepted too)"
            )),
        })
        .collect()
}

/// Reads the configuration file. A missing file is an empty configuration
/// when `missing_ok` (the simulator supplies credentials), an error otherwise.
///
/// # Errors
/// A missing (unless allowed), unreadable or invalid file.
pub fn load_configuration(
    path: &Path,
    missing_ok: bool,
) -> Result<HashMap<String, String>, DebugError> {
    match fs::read_to_string(path) {
        Ok(text) => parse_configuration(&text).map_err(|reason| DebugError::InvalidConfiguration {
            path: path.to_owned(),
            reason,
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if missing_ok {
                Ok(HashMap::new())
            } else {
                Err(DebugError::ConfigurationMissing {
                    path: path.to_owned(),
                })
            }
        }
        Err(source) => Err(DebugError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Runs one debug sync.
///
/// # Errors
/// Only when the sync cannot start (files folder, state file, warehouse,
/// simulator); a failed sync is reported in [`DebugReport::outcome`].
pub async fn run_debug(options: DebugOptions) -> Result<DebugReport, DebugError> {
    let started = Instant::now();
    let DebugOptions {
        mut configuration,
        files_dir,
        state_path,
        simulate,
        naming,
        clock,
        console,
        interrupt,
    } = options;

    fs::create_dir_all(&files_dir).map_err(|source| DebugError::Io {
        action: "create",
        path: files_dir.clone(),
        source,
    })?;
    let state_path = state_path.unwrap_or_else(|| files_dir.join(STATE_FILE));
    let initial_state = warehouse::read_state(&state_path).map_err(|source| DebugError::Io {
        action: "read",
        path: state_path.clone(),
        source,
    })?;
    let warehouse_path = files_dir.join(WAREHOUSE_FILE);
    let warehouse = Warehouse::open(&warehouse_path).map_err(|source| DebugError::Warehouse {
        path: warehouse_path.clone(),
        source,
    })?;

    let mut session = Session {
        warehouse,
        console,
        names: Names::new(naming),
        state_path: state_path.clone(),
        counts: OperationCounts::default(),
        warnings: Vec::new(),
        state_json: initial_state.clone(),
        rows_by_table: BTreeMap::new(),
        tables_since_checkpoint: BTreeSet::new(),
        started,
    };
    session.console.line(&format!(
        "Warehouse {}; state {} ({})",
        warehouse_path.display(),
        state_path.display(),
        if initial_state.is_some() {
            "resuming"
        } else {
            "fresh start"
        }
    ));

    let simulator = match simulate {
        Some(options) => {
            let handle = start_simulator(options, &mut configuration, clock.now()).await?;
            session.console.line(&format!(
                "Simulator on {} (the configuration's credentials and URLs are replaced)",
                handle.base_url
            ));
            Some(handle)
        }
        None => None,
    };

    let service = ConnectorService::new(clock);
    let synced = session
        .sync(&service, configuration, initial_state, interrupt)
        .await;
    let outcome = match synced {
        Ok(()) => Outcome::Succeeded,
        Err(reason) => match session.warehouse.rollback() {
            Ok(()) => Outcome::Failed(reason),
            Err(error) => Outcome::Failed(format!("{reason} (rolling back failed too: {error})")),
        },
    };
    session.console.close_status();
    if session.counts.warnings > SHOWN_WARNINGS as u64 {
        session.console.line(&format!(
            "... and {} more warnings",
            session.counts.warnings - SHOWN_WARNINGS as u64
        ));
    }

    let mut rows = BTreeMap::new();
    for table in session.warehouse.table_names() {
        let count =
            session
                .warehouse
                .live_row_count(&table)
                .map_err(|source| DebugError::Warehouse {
                    path: warehouse_path.clone(),
                    source,
                })?;
        rows.insert(table, count);
    }

    let simulator = match simulator {
        Some(handle) => {
            let summary = SimulatorSummary {
                base_url: handle.base_url.clone(),
                api_requests: handle.stats.api_requests(),
                data_requests: handle.stats.data_requests(),
                token_mints: handle.stats.token_mints(),
            };
            // In-flight requests were cancelled with the stream; a failing
            // shutdown changes nothing for the report.
            let _ = handle.shutdown().await;
            Some(summary)
        }
        None => None,
    };

    Ok(DebugReport {
        outcome,
        elapsed: started.elapsed(),
        counts: session.counts,
        rows,
        warnings: session.warnings,
        state_json: session.state_json,
        warehouse_path,
        state_path,
        simulator,
    })
}

/// Starts the simulator with history from the configured `start_date` up to
/// `now`, and points the configuration at it.
async fn start_simulator(
    mut options: SimulatorOptions,
    configuration: &mut HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<SimulatorHandle, DebugError> {
    let start_date = configuration
        .get("start_date")
        .map(String::as_str)
        .filter(|text| !text.trim().is_empty())
        .unwrap_or(DEFAULT_START_DATE);
    // An invalid date is reported by the connector itself; the simulator just needs a start.
    let start_date = NaiveDate::parse_from_str(start_date.trim(), "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(DEFAULT_START_DATE, "%Y-%m-%d"))
        .unwrap_or_default();
    options.history_start = start_date.and_time(NaiveTime::MIN).and_utc();
    options.now = now;
    let handle = simulator::spawn(options.clone())
        .await
        .map_err(DebugError::Simulator)?;
    configuration.insert("api_base_url".to_owned(), handle.base_url.clone());
    configuration.insert("auth_url".to_owned(), handle.auth_url.clone());
    // The simulator signs in with its API client; a real API token in the
    // file would be refused alongside it.
    configuration.remove("api_token");
    configuration.insert("client_id".to_owned(), options.client_id);
    configuration.insert(
        "client_secret".to_owned(),
        options.client_secret.expose().to_owned(),
    );
    Ok(handle)
}

/// One sync in progress: the warehouse, what was received, and the output.
struct Session {
    warehouse: Warehouse,
    console: Console,
    names: Names,
    state_path: PathBuf,
    counts: OperationCounts,
    warnings: Vec<String>,
    /// The state last written to the state file.
    state_json: Option<String>,
    /// Row-carrying records received per table (running counts).
    rows_by_table: BTreeMap<String, u64>,
    /// Tables with records since the last checkpoint.
    tables_since_checkpoint: BTreeSet<String>,
    started: Instant,
}

/// Why the sync failed, for `SYNC FAILED`.
type Failure = String;

impl Session {
    /// Schema, then Update to the end of its stream. Any error is the reason
    /// the sync failed; the caller rolls back.
    async fn sync(
        &mut self,
        service: &ConnectorService,
        configuration: HashMap<String, String>,
        state_json: Option<String>,
        interrupt: Option<Interrupt>,
    ) -> Result<(), Failure> {
        let schema = service
            .schema(Request::new(pb::SchemaRequest {
                configuration: configuration.clone(),
            }))
            .await
            .map_err(|status| format!("Schema failed: {}", describe(&status)))?
            .into_inner();
        for table in tester::schema_tables(&schema, &mut self.names)? {
            self.ensure_table(&table)?;
        }
        // Tables exist from the Schema call on, as at Fivetran, whatever the sync does.
        self.warehouse.commit().map_err(warehouse_failure)?;

        let mut stream = service
            .update(Request::new(pb::UpdateRequest {
                configuration,
                selection: None,
                state_json,
            }))
            .await
            .map_err(|status| format!("Update failed: {}", describe(&status)))?
            .into_inner();
        let mut interrupt = interrupt.unwrap_or_else(|| Box::pin(std::future::pending()));
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                () = &mut interrupt => return Err("interrupted".to_owned()),
            };
            match item {
                None => break,
                Some(Ok(response)) => self.apply(response)?,
                Some(Err(status)) => {
                    return Err(format!("the connector failed: {}", describe(&status)));
                }
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
        self.warehouse.commit().map_err(warehouse_failure)
    }

    fn ensure_table(&mut self, table: &TableDef) -> Result<(), Failure> {
        match self
            .warehouse
            .ensure_table(table)
            .map_err(warehouse_failure)?
        {
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

    fn apply_batch(&mut self, batch: pb::Records) -> Result<(), Failure> {
        batch
            .records
            .into_iter()
            .try_for_each(|record| self.apply_record(record))
    }

    fn apply(&mut self, response: pb::UpdateResponse) -> Result<(), Failure> {
        use pb::update_response::Operation as Op;
        match response.operation {
            Some(Op::Record(record)) => self.apply_record(record),
            Some(Op::Records(batch)) => self.apply_batch(batch),
            // In process, batches arrive as the bytes the server would send:
            // decode them as Fivetran would.
            Some(Op::EncodedRecords(encoded)) => self.apply_batch(
                encoded
                    .decode()
                    .map_err(|error| format!("the connector sent an undecodable batch: {error}"))?,
            ),
            Some(Op::SchemaChange(change)) => {
                self.counts.schema_changes += 1;
                let tables = tester::changed_tables(&change, &mut self.names);
                self.console
                    .line(&format!("Schema change: {} table(s)", tables.len()));
                tables.iter().try_for_each(|table| self.ensure_table(table))
            }
            Some(Op::Checkpoint(checkpoint)) => self.checkpoint(checkpoint.state_json),
            Some(Op::Warning(warning)) => {
                self.counts.warnings += 1;
                if self.warnings.len() < SHOWN_WARNINGS {
                    self.console.line(&format!("Warning: {}", warning.message));
                    self.warnings.push(warning.message);
                }
                Ok(())
            }
            Some(Op::Task(task)) => {
                self.console
                    .line(&format!("Task (user action needed): {}", task.message));
                Err(format!("the connector needs user action: {}", task.message))
            }
            None => Err("the connector sent an empty UpdateResponse".to_owned()),
        }
    }

    fn apply_record(&mut self, record: pb::Record) -> Result<(), Failure> {
        let operation = tester::operation(record, &mut self.names)?;
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
                let Applied { rows, .. } =
                    self.warehouse.truncate(&table).map_err(warehouse_failure)?;
                self.console.line(&format!(
                    "Truncated {table}: soft-deleted {} earlier row(s)",
                    thousands(rows)
                ));
                return Ok(());
            }
        };
        let applied = applied.map_err(warehouse_failure)?;
        self.columns_added(&table, &applied.added_columns);
        if !self.tables_since_checkpoint.contains(&table) {
            self.tables_since_checkpoint.insert(table.clone());
        }
        *self.rows_by_table.entry(table).or_default() += 1;
        Ok(())
    }

    /// Commits everything received so far, then records the state: a crash
    /// between the two only replays rows (upserts make that harmless).
    fn checkpoint(&mut self, state_json: String) -> Result<(), Failure> {
        self.warehouse.commit().map_err(warehouse_failure)?;
        warehouse::write_state_atomically(&self.state_path, &state_json).map_err(|error| {
            format!(
                "cannot write the state file {}: {error}",
                self.state_path.display()
            )
        })?;
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
                "Checkpoint {}: {} rows so far{}",
                self.counts.checkpoints,
                thousands(rows),
                if per_table.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", per_table.join(", "))
                }
            ),
        );
        Ok(())
    }
}

fn warehouse_failure(error: WarehouseError) -> Failure {
    format!("warehouse: {error}")
}

/// A status as `Code: message` (the code's name, e.g. `Unauthenticated`).
fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// `1234567` as `1,234,567`.
fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

impl fmt::Display for DebugReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let elapsed = self.elapsed.as_secs_f64();
        match &self.outcome {
            Outcome::Succeeded => writeln!(f, "SYNC SUCCEEDED in {elapsed:.1}s")?,
            Outcome::Failed(reason) => {
                writeln!(f, "SYNC FAILED after {elapsed:.1}s: {reason}")?;
                writeln!(
                    f,
                    "  (everything after the last checkpoint was rolled back)"
                )?;
            }
        }
        let counts = &self.counts;
        let lines = [
            ("Upserts", counts.upserts),
            ("Updates", counts.updates),
            ("Deletes", counts.deletes),
            ("Truncates", counts.truncates),
            ("Schema changes", counts.schema_changes),
            ("Checkpoints", counts.checkpoints),
            ("Warnings", counts.warnings),
        ];
        writeln!(f, "Operations received:")?;
        for (label, count) in lines {
            writeln!(f, "  {label:<16}{:>12}", thousands(count))?;
        }
        writeln!(
            f,
            "Live rows per table in {}:",
            self.warehouse_path.display()
        )?;
        if self.rows.is_empty() {
            writeln!(f, "  (no tables)")?;
        }
        for (table, count) in &self.rows {
            writeln!(f, "  {table:<16}{:>12}", thousands(*count))?;
        }
        write!(f, "State: {}", self.state_path.display())?;
        if let Some(simulator) = &self.simulator {
            write!(
                f,
                "\nSimulator: {} API requests ({} for data), {} token(s)",
                thousands(simulator.api_requests),
                thousands(simulator.data_requests),
                thousands(simulator.token_mints)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_accepts_strings_numbers_and_booleans() {
        let parsed =
            parse_configuration(r#"{"client_id":"a","chunk_days":7,"flag":true}"#).unwrap();
        assert_eq!(parsed["client_id"], "a");
        assert_eq!(parsed["chunk_days"], "7");
        assert_eq!(parsed["flag"], "true");
        let error =
            parse_configuration(r#"{"client_secret":"s","lookback_days":null}"#).unwrap_err();
        assert!(error.contains("`lookback_days`"), "{error}");
        assert!(parse_configuration("[1]").is_err());
        assert!(parse_configuration("{").is_err());
    }

    #[test]
    fn missing_configuration_depends_on_simulation() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("configuration.json");
        assert!(load_configuration(&path, true).unwrap().is_empty());
        let error = load_configuration(&path, false).unwrap_err().to_string();
        assert!(error.contains("configuration.json.example"), "{error}");
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    fn simulated(files: &Path) -> DebugOptions {
        let mut options = DebugOptions::new(files);
        options.configuration = HashMap::from([
            ("start_date".to_owned(), "2025-03-01".to_owned()),
            ("chunk_days".to_owned(), "3".to_owned()),
        ]);
        options.simulate = Some(SimulatorOptions::default());
        options.clock = Arc::new(crate::clock::FixedClock(
            "2025-03-10T10:30:00Z".parse().unwrap(),
        ));
        options
    }

    #[tokio::test]
    async fn simulated_sync_commits_and_resumes() {
        let folder = tempfile::tempdir().unwrap();
        let first = run_debug(simulated(folder.path())).await.unwrap();
        assert!(first.succeeded(), "{first}");
        assert!(first.counts.checkpoints > 1);
        assert!(first.rows["traffic"] > 0);
        let state = std::fs::read_to_string(folder.path().join(STATE_FILE)).unwrap();
        assert_eq!(Some(state), first.state_json);

        let second = run_debug(simulated(folder.path())).await.unwrap();
        assert!(second.succeeded(), "{second}");
        assert_eq!(second.rows, first.rows, "a resumed sync adds no rows");
        assert!(second.counts.upserts < first.counts.upserts);
    }

    #[tokio::test]
    async fn failed_sync_keeps_only_checkpointed_rows() {
        let folder = tempfile::tempdir().unwrap();
        let mut options = simulated(folder.path());
        if let Some(simulator) = options.simulate.as_mut() {
            simulator.faults.fail_data_after = Some(1);
        }
        for (key, value) in [("max_attempts", "1"), ("max_in_flight_requests", "1")] {
            options
                .configuration
                .insert(key.to_owned(), value.to_owned());
        }
        let report = run_debug(options).await.unwrap();
        assert!(!report.succeeded(), "{report}");
        assert!(report.counts.checkpoints >= 2, "{report}");
        assert!(report.rows["traffic"] > 0, "{report}");
        let warehouse = Warehouse::open(&folder.path().join(WAREHOUSE_FILE)).unwrap();
        let stored = warehouse.live_row_count("traffic").unwrap();
        assert_eq!(Some(&stored), report.rows.get("traffic"));
        assert_eq!(
            report.state_json,
            warehouse::read_state(&folder.path().join(STATE_FILE)).unwrap()
        );
    }

    #[tokio::test]
    async fn task_or_bad_configuration_fails_the_sync() {
        let folder = tempfile::tempdir().unwrap();
        let mut options = DebugOptions::new(folder.path());
        options.configuration = HashMap::from([("start_date".to_owned(), "not a date".to_owned())]);
        let report = run_debug(options).await.unwrap();
        assert!(
            matches!(&report.outcome, Outcome::Failed(reason) if reason.contains("start_date"))
        );
        assert!(report.to_string().starts_with("SYNC FAILED"));
    }
}
