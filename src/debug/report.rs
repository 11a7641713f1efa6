//! The summary of a debug sync: what was received, how it ended and why a
//! sync failed, printed like `fivetran debug` prints it.

use std::{collections::BTreeMap, fmt, io, path::PathBuf, time::Duration};

use super::warehouse::{WarehouseError, WarehouseKind};

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
    /// Tables declared by Schema and by SchemaChange messages.
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
#[derive(Debug)]
pub enum Outcome {
    /// The stream ended normally; everything is committed.
    Succeeded,
    /// The sync failed; everything after the last checkpoint was rolled back.
    Failed(SyncFailure),
}

/// A gRPC status as the debug sync saw it: the code's name and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusText {
    /// The code's name, e.g. `Unauthenticated`.
    pub code: String,
    /// The status message.
    pub message: String,
}

impl fmt::Display for StatusText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Why a debug sync failed, as `SYNC FAILED` says it.
#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    /// The Schema call returned an error status.
    #[error("Schema failed: {0}")]
    Schema(StatusText),
    /// The Update call was refused before its stream began.
    #[error("Update failed: {0}")]
    Update(StatusText),
    /// The stream ended with an error status.
    #[error("the connector failed: {0}")]
    Stream(StatusText),
    /// The connector sent a Task: the user must act.
    #[error("the connector needs user action: {0}")]
    Task(String),
    /// The connector declared no schema; the warehouse needs declared tables.
    #[error("the connector declares no schema; the debug warehouse needs one")]
    NoSchema,
    /// An `UpdateResponse` carried no operation.
    #[error("the connector sent an empty UpdateResponse")]
    EmptyResponse,
    /// A batch of records could not be decoded.
    #[error("the connector sent an undecodable batch: {0}")]
    UndecodableBatch(String),
    /// A record had a type this tester does not know.
    #[error("record for `{table}` has unknown type {record_type}")]
    UnknownRecordType {
        /// The table.
        table: String,
        /// The type number.
        record_type: i32,
    },
    /// A value could not be stored (an invalid timestamp).
    #[error("`{table}`.`{column}`: invalid timestamp {seconds}s {nanos}ns")]
    InvalidTimestamp {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The timestamp's seconds.
        seconds: i64,
        /// The timestamp's nanoseconds.
        nanos: i32,
    },
    /// The warehouse refused a write or a commit.
    #[error("warehouse: {0}")]
    Warehouse(#[from] WarehouseError),
    /// The state file could not be replaced.
    #[error("cannot write the state file {}: {source}", path.display())]
    StateFile {
        /// The state file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The sync was interrupted (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
    /// Rolling back after a failure failed too.
    #[error("{failure} (rolling back failed too: {rollback})")]
    RollbackFailed {
        /// The original failure.
        failure: Box<SyncFailure>,
        /// Why the rollback failed.
        rollback: WarehouseError,
    },
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
#[derive(Debug)]
pub struct DebugReport {
    /// Success or the reason of the failure.
    pub outcome: Outcome,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Operations received.
    pub counts: OperationCounts,
    /// Live (not soft-deleted) rows per warehouse table after the run.
    pub rows: BTreeMap<String, u64>,
    /// The first [`SHOWN_WARNINGS`](super::SHOWN_WARNINGS) warnings.
    pub warnings: Vec<String>,
    /// The state in the state file after the run (the last committed checkpoint,
    /// or the state read at start when there was none).
    pub state_json: Option<String>,
    /// The warehouse's engine.
    pub warehouse_kind: WarehouseKind,
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
        matches!(self.outcome, Outcome::Succeeded)
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(number: u64) -> String {
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
        // Series table names are long: the column fits the longest.
        let width = self.rows.keys().map(String::len).max().unwrap_or(0).max(16);
        for (table, count) in &self.rows {
            writeln!(f, "  {table:<width$}{:>12}", thousands(*count))?;
        }
        writeln!(f, "State: {}", self.state_path.display())?;
        write!(f, "{}", self.warehouse_kind.viewer(&self.warehouse_path))?;
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
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
