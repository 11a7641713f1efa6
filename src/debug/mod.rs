//! The local debug sync (`sensource-connector debug`), like `fivetran debug`:
//! Schema then Update through the same [`ConnectorService`] the gRPC server
//! runs, applied to a SQLite or DuckDB warehouse committed at each checkpoint, with the
//! state file rewritten atomically after each commit. A failed sync rolls
//! back to the last checkpoint, so warehouse and state always agree.
//!
//! - `load`: the configuration file and the simulator it may be pointed at.
//! - `session`: the sync itself, applied event by event.
//! - `tester`: Fivetran's side of the protocol; the only code here that
//!   knows protobuf and `tonic`.
//! - [`warehouse`]: the warehouse (Fivetran's rules once, SQLite or DuckDB
//!   underneath) and the state file.
//! - [`report`]: counts, outcome and the summary; [`Console`]: progress lines.

/// Runs each named `fn(WarehouseKind)` of the invoking test module as a test
/// on SQLite, and on DuckDB when it is built in, so every warehouse rule is
/// checked on every engine.
#[cfg(test)]
macro_rules! on_every_engine {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $test() {
                super::$test($crate::debug::warehouse::WarehouseKind::Sqlite);
            })*
        }
        #[cfg(feature = "duckdb")]
        mod duckdb {
            $(#[test]
            fn $test() {
                super::$test($crate::debug::warehouse::WarehouseKind::DuckDb);
            })*
        }
    };
}

mod check;
mod console;
mod load;
pub mod report;
mod session;
mod tester;
pub mod warehouse;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt, fs, io,
    path::PathBuf,
    pin::Pin,
    sync::Arc,
    time::Instant,
};

pub use check::{ConfigurationCheck, check_configuration};
pub use console::Console;
pub use load::{ConfigurationFileError, load_configuration, parse_configuration};
pub use report::{DebugReport, OperationCounts, Outcome, SimulatorSummary, SyncFailure};
use session::Session;
use tester::Names;
pub use tester::{FormField, Naming};
use warehouse::{Warehouse, WarehouseError, WarehouseKind};

use crate::{
    clock::{Clock, SystemClock},
    grpc::service::ConnectorService,
    simulator::SimulatorOptions,
};

/// Where the SQLite warehouse lived before it got its own name; Fivetran's
/// tools own this name (for DuckDB).
const LEGACY_SQLITE_FILE: &str = "warehouse.db";
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
    /// Folder of the warehouse (and of `state.json` by default); created if needed.
    pub files_dir: PathBuf,
    /// The engine, and so the file: `warehouse.sqlite` or DuckDB's `warehouse.db`.
    pub warehouse: WarehouseKind,
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
            .field("warehouse", &self.warehouse)
            .field("state_path", &self.state_path)
            .field("simulate", &self.simulate)
            .field("naming", &self.naming)
            .field("clock", &self.clock)
            .field("console", &self.console)
            .finish_non_exhaustive()
    }
}

impl DebugOptions {
    /// Defaults: empty configuration, SQLite, `files_dir/state.json`, the real
    /// API, Fivetran naming, the system clock, no output, no interrupt.
    pub fn new(files_dir: impl Into<PathBuf>) -> Self {
        Self {
            configuration: HashMap::new(),
            files_dir: files_dir.into(),
            warehouse: WarehouseKind::Sqlite,
            state_path: None,
            simulate: None,
            naming: Naming::Fivetran,
            clock: Arc::new(SystemClock),
            console: Console::silent(),
            interrupt: None,
        }
    }
}

/// A JSON text on one line (as it is when the connector wrote it); text that is not JSON
/// is shown as it is.
pub(crate) fn compact(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .map_or_else(|_| json.trim().to_owned(), |value| value.to_string())
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
    #[error("{}: {source}", path.display())]
    InvalidConfiguration {
        /// The configuration path.
        path: PathBuf,
        /// What is wrong (never a value).
        source: ConfigurationFileError,
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
        warehouse: warehouse_kind,
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
    let moved = move_legacy_sqlite(&files_dir)?;
    let warehouse_path = files_dir.join(warehouse_kind.file_name());
    let warehouse_error = |source| DebugError::Warehouse {
        path: warehouse_path.clone(),
        source,
    };
    let mut warehouse =
        Warehouse::open(warehouse_kind, &warehouse_path).map_err(warehouse_error)?;
    warehouse
        .remember_naming(naming.name())
        .map_err(warehouse_error)?;
    let resumes_elsewhere = initial_state.is_some() && warehouse.table_names().is_empty();

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
        declared: Vec::new(),
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
    if let Some(legacy) = moved {
        session.console.line(&format!(
            "Moved {} (the SQLite warehouse of an earlier version) to {}",
            legacy.display(),
            files_dir.join(WarehouseKind::Sqlite.file_name()).display()
        ));
    }
    if resumes_elsewhere {
        // Typically: the other engine's warehouse, or one deleted by hand.
        session.console.line(&format!(
            "WARNING: {} resumes an earlier sync but {} has no tables: what that sync wrote is not in it. Run `sensource-connector reset` for a full sync into this warehouse.",
            state_path.display(),
            warehouse_path.display()
        ));
    }
    // Like `fivetran debug`, say where the sync starts from.
    if let Some(state) = &initial_state {
        session
            .console
            .line(&format!("Previous state: {}", compact(state)));
    }

    let simulator = match simulate {
        Some(options) => {
            let handle = load::start_simulator(options, &mut configuration, clock.now()).await?;
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
        Err(failure) => match session.warehouse.rollback() {
            Ok(()) => Outcome::Failed(failure),
            Err(rollback) => Outcome::Failed(SyncFailure::RollbackFailed {
                failure: Box::new(failure),
                rollback,
            }),
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
        warehouse_kind,
        warehouse_path,
        state_path,
        simulator,
    })
}

/// Moves a SQLite warehouse that an earlier version wrote to `warehouse.db`
/// to `warehouse.sqlite`, so DuckDB (and Fivetran's tools) can have the name.
/// Only a file that starts with SQLite's header moves: a DuckDB
/// `warehouse.db` is never touched. Returns the path moved, if any.
fn move_legacy_sqlite(files_dir: &std::path::Path) -> Result<Option<PathBuf>, DebugError> {
    const SQLITE_HEADER: &[u8] = b"SQLite format 3\0";
    let legacy = files_dir.join(LEGACY_SQLITE_FILE);
    let target = files_dir.join(WarehouseKind::Sqlite.file_name());
    if target.exists() {
        return Ok(None);
    }
    let mut header = [0_u8; SQLITE_HEADER.len()];
    let is_sqlite = fs::File::open(&legacy)
        .and_then(|mut file| io::Read::read_exact(&mut file, &mut header))
        .is_ok_and(|()| header == SQLITE_HEADER);
    if !is_sqlite {
        return Ok(None);
    }
    fs::rename(&legacy, &target).map_err(|source| DebugError::Io {
        action: "move",
        path: legacy.clone(),
        source,
    })?;
    Ok(Some(legacy))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn simulated(files: &Path, kind: WarehouseKind) -> DebugOptions {
        let mut options = DebugOptions::new(files);
        options.warehouse = kind;
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

    /// The tests of a whole sync run on a runtime of their own, once per engine.
    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn open_warehouse(folder: &Path, kind: WarehouseKind) -> Warehouse {
        Warehouse::open(kind, &folder.join(kind.file_name())).unwrap()
    }

    on_every_engine!(
        simulated_sync_commits_and_resumes,
        failed_sync_keeps_only_checkpointed_rows,
        a_sync_failing_before_its_first_checkpoint_leaves_no_tables,
    );

    fn simulated_sync_commits_and_resumes(kind: WarehouseKind) {
        block_on(simulated_sync_commits_and_resumes_on(kind));
    }

    async fn simulated_sync_commits_and_resumes_on(kind: WarehouseKind) {
        let folder = tempfile::tempdir().unwrap();
        let first = run_debug(simulated(folder.path(), kind)).await.unwrap();
        assert!(first.succeeded(), "{first}");
        assert!(first.counts.checkpoints > 1);
        assert!(first.rows["traffic"] > 0);
        let state = std::fs::read_to_string(folder.path().join(STATE_FILE)).unwrap();
        assert_eq!(Some(state), first.state_json);

        let second = run_debug(simulated(folder.path(), kind)).await.unwrap();
        assert!(second.succeeded(), "{second}");
        assert_eq!(second.rows, first.rows, "a resumed sync adds no rows");
        assert!(second.counts.upserts < first.counts.upserts);
    }

    fn failed_sync_keeps_only_checkpointed_rows(kind: WarehouseKind) {
        block_on(failed_sync_keeps_only_checkpointed_rows_on(kind));
    }

    async fn failed_sync_keeps_only_checkpointed_rows_on(kind: WarehouseKind) {
        let folder = tempfile::tempdir().unwrap();
        let mut options = simulated(folder.path(), kind);
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
        let warehouse = open_warehouse(folder.path(), kind);
        let stored = warehouse.live_row_count("traffic").unwrap();
        assert_eq!(Some(&stored), report.rows.get("traffic"));
        assert_eq!(
            report.state_json,
            warehouse::read_state(&folder.path().join(STATE_FILE)).unwrap()
        );
    }

    /// Tables are created at the first checkpoint, as Fivetran's engine does: a sync that
    /// fails before it leaves no table behind.
    fn a_sync_failing_before_its_first_checkpoint_leaves_no_tables(kind: WarehouseKind) {
        block_on(a_sync_failing_before_its_first_checkpoint_leaves_no_tables_on(kind));
    }

    async fn a_sync_failing_before_its_first_checkpoint_leaves_no_tables_on(kind: WarehouseKind) {
        let folder = tempfile::tempdir().unwrap();
        let mut options = simulated(folder.path(), kind);
        if let Some(simulator) = options.simulate.as_mut() {
            simulator.faults.fail_next_requests = 1_000;
        }
        options
            .configuration
            .insert("max_attempts".to_owned(), "1".to_owned());
        let report = run_debug(options).await.unwrap();
        assert!(!report.succeeded(), "{report}");
        assert_eq!(report.counts.checkpoints, 0);
        assert!(report.rows.is_empty(), "{report}");
        let warehouse = open_warehouse(folder.path(), kind);
        assert!(warehouse.table_names().is_empty());
    }

    #[tokio::test]
    async fn task_or_bad_configuration_fails_the_sync() {
        let folder = tempfile::tempdir().unwrap();
        let mut options = DebugOptions::new(folder.path());
        options.configuration = HashMap::from([("start_date".to_owned(), "not a date".to_owned())]);
        let report = run_debug(options).await.unwrap();
        assert!(
            matches!(&report.outcome, Outcome::Failed(failure) if failure.to_string().contains("start_date"))
        );
        assert!(report.to_string().starts_with("SYNC FAILED"));
    }
}

#[cfg(test)]
mod file_tests {
    use std::fs;

    use super::*;

    /// An earlier version's SQLite `warehouse.db` moves to `warehouse.sqlite`;
    /// any other `warehouse.db` (Fivetran's DuckDB file) is never touched.
    #[test]
    fn only_a_sqlite_warehouse_db_is_moved() {
        let folder = tempfile::tempdir().unwrap();
        let legacy = folder.path().join(LEGACY_SQLITE_FILE);
        let sqlite = folder.path().join(WarehouseKind::Sqlite.file_name());

        // Not SQLite (DuckDB files start otherwise): left alone.
        let foreign = b"\0\0\0\0\0\0\0\0DUCK a warehouse written by Fivetran's tools";
        fs::write(&legacy, foreign).unwrap();
        assert_eq!(move_legacy_sqlite(folder.path()).unwrap(), None);
        assert_eq!(fs::read(&legacy).unwrap(), foreign);
        assert!(!sqlite.exists());

        // An earlier version's warehouse: moved, with its rows.
        fs::remove_file(&legacy).unwrap();
        {
            let mut old = Warehouse::open(WarehouseKind::Sqlite, &legacy).unwrap();
            old.remember_naming("fivetran").unwrap();
        }
        assert_eq!(
            move_legacy_sqlite(folder.path()).unwrap(),
            Some(legacy.clone())
        );
        assert!(!legacy.exists() && sqlite.exists());

        // Once `warehouse.sqlite` exists, `warehouse.db` is never looked at again.
        fs::copy(&sqlite, &legacy).unwrap();
        assert_eq!(move_legacy_sqlite(folder.path()).unwrap(), None);
        assert!(legacy.exists());
    }
}
