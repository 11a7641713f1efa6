//! The Update pipeline, free of protobuf: refresh the reference tables, then
//! for each time-series table fetch planned chunks (a bounded number ahead),
//! send their records in small batches and checkpoint after each chunk.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use chrono::NaiveDate;
use futures_util::{StreamExt, stream};
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use crate::{
    api::{ApiClient, ApiError},
    chunk::{PlanSettings, PlannedChunk, plan_table},
    config::Config,
    record::{Record, RowError, map_row},
    schema::{ColumnSpec, Table},
    selection::{ColumnFilter, Selection},
    state::State,
};

/// Most records in one `Records` message (Fivetran enforces 100).
pub const MAX_BATCH_RECORDS: usize = 100;
/// Approximate upper bound of one `Records` message.
pub const MAX_BATCH_BYTES: usize = 100 * 1024;

/// What the sync tells Fivetran, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncEvent {
    /// At most [`MAX_BATCH_RECORDS`] records.
    Records(Vec<Record>),
    /// New state; every record it covers was sent before it.
    Checkpoint(String),
    /// Something the user should know; the sync goes on.
    Warning(String),
    /// Something the user must fix; the sync ends after it.
    Task(String),
}

/// Why a sync stopped early. Everything before the last checkpoint is safe.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The API failed in a way retries did not cure.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A fetch task died (a bug): reported rather than hidden.
    #[error("internal error: a fetch task failed: {0}")]
    Internal(String),
}

/// Everything one sync needs, already validated.
#[derive(Debug)]
pub struct SyncRequest {
    /// The configuration.
    pub config: Config,
    /// Tables and columns to send.
    pub selection: Selection,
    /// Where the previous sync stopped.
    pub state: State,
    /// Notes from parsing the request, sent as Warnings first.
    pub warnings: Vec<String>,
    /// Today in UTC: the last (partial) day fetched.
    pub today: NaiveDate,
}

/// How a sync ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Everything planned was sent and checkpointed.
    Completed,
    /// A Task was sent; the user must act.
    NeedsUserAction,
    /// The receiver went away (Fivetran hung up); fetching stopped.
    Cancelled,
}

/// The receiving side of a sync: stream items are events or a final error.
pub type EventSender = mpsc::Sender<Result<SyncEvent, SyncError>>;

/// Runs one sync, sending events into `events`. Sending waits while the
/// channel is full: that wait is the backpressure that keeps memory bounded.
///
/// # Errors
/// A [`SyncError`] when the API fails for good; the caller forwards it as the
/// stream's last item.
pub async fn run(
    request: SyncRequest,
    api: Arc<ApiClient>,
    events: EventSender,
) -> Result<SyncOutcome, SyncError> {
    let started = Instant::now();
    let mut emitter = Emitter::new(events);
    match run_inner(&request, api, &mut emitter).await {
        Ok(outcome) => {
            if outcome == SyncOutcome::Completed {
                info!(
                    records = emitter.records_sent,
                    checkpoints = emitter.checkpoints_sent,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "Sync completed."
                );
            }
            Ok(outcome)
        }
        Err(SyncError::Api(error)) if error.needs_user_action() => {
            warn!(error = %error, "Sync needs user action.");
            match emitter.event(SyncEvent::Task(error.to_string())).await {
                Ok(()) => Ok(SyncOutcome::NeedsUserAction),
                Err(Cancelled) => Ok(SyncOutcome::Cancelled),
            }
        }
        Err(error) => {
            // Flush what was mapped so far? No: records after the last
            // checkpoint are discarded by Fivetran anyway; send nothing more.
            Err(error)
        }
    }
}

async fn run_inner(
    request: &SyncRequest,
    api: Arc<ApiClient>,
    emitter: &mut Emitter,
) -> Result<SyncOutcome, SyncError> {
    macro_rules! emit {
        ($call:expr) => {
            if $call.await.is_err() {
                info!("Fivetran closed the stream; stopping the sync.");
                return Ok(SyncOutcome::Cancelled);
            }
        };
    }

    for warning in &request.warnings {
        emit!(emitter.event(SyncEvent::Warning(warning.clone())));
    }

    let config = &request.config;
    let mut state = request.state.clone();

    // Reference tables: full refresh. Fetch first, so a failed fetch never
    // leaves a truncated table; then TRUNCATE (soft-deletes entities removed
    // at the source) and upsert everything.
    let mut refreshed_any = false;
    for &table in &config.reference_tables {
        let Some(filter) = request.selection.table(table) else {
            continue;
        };
        let fetch_started = Instant::now();
        let rows = api.fetch_reference(table).await?;
        let declared: Vec<&'static ColumnSpec> = table.columns(config).collect();
        let mapped = map_rows(table, &declared, rows, &filter);
        let warning = mapped.warning(table, None);
        let (sent, skipped) = (mapped.sent, mapped.skipped);
        emit!(emitter.record(Record::truncate(table)));
        for record in mapped.records {
            emit!(emitter.record(record));
        }
        if let Some(warning) = warning {
            emit!(emitter.event(SyncEvent::Warning(warning)));
        }
        info!(
            table = %table,
            rows = sent,
            skipped,
            elapsed_ms = fetch_started.elapsed().as_millis() as u64,
            "Refreshed reference table."
        );
        refreshed_any = true;
    }
    if refreshed_any {
        emit!(emitter.event(SyncEvent::Checkpoint(state.to_json())));
    }

    // Time series: plan every chunk, fetch up to `max_in_flight_requests`
    // ahead in spawned tasks (so fetching and parsing go on while earlier
    // chunks stream), and emit strictly in plan order.
    let settings = PlanSettings {
        start_date: config.start_date,
        today: request.today,
        lookback_days: config.lookback_days,
        chunk_days: config.chunk_days,
    };
    let mut plan: Vec<(PlannedChunk, ColumnFilter)> = Vec::new();
    for table in [Table::Traffic, Table::Occupancy] {
        if let Some(filter) = request.selection.table(table) {
            let chunks = plan_table(table, state.coverage(table), settings);
            plan.extend(chunks.into_iter().map(|chunk| (chunk, filter.clone())));
        }
    }
    let total_chunks = plan.len();
    let shared_config = Arc::new(config.clone());
    let mut fetched = stream::iter(plan)
        .map(|(chunk, filter)| {
            let api = Arc::clone(&api);
            let config = Arc::clone(&shared_config);
            AbortOnDrop(tokio::spawn(fetch_chunk(api, config, chunk, filter)))
        })
        .buffered(config.max_in_flight_requests as usize);

    let mut chunk_number = 0;
    while let Some(joined) = fetched.next().await {
        let fetched_chunk = joined.map_err(|error| SyncError::Internal(error.to_string()))??;
        chunk_number += 1;
        let FetchedChunk {
            chunk,
            mapped,
            fetch_ms,
        } = fetched_chunk;
        let emit_started = Instant::now();
        let (sent, skipped) = (mapped.sent, mapped.skipped);
        let warning = mapped.warning(chunk.table, Some(&chunk));
        for record in mapped.records {
            emit!(emitter.record(record));
        }
        if let Some(warning) = warning {
            emit!(emitter.event(SyncEvent::Warning(warning)));
        }
        state.record_chunk(&chunk);
        emit!(emitter.event(SyncEvent::Checkpoint(state.to_json())));
        info!(
            table = %chunk.table,
            window = %chunk.range,
            chunk = chunk_number,
            chunks = total_chunks,
            rows = sent,
            skipped,
            fetch_ms,
            send_ms = emit_started.elapsed().as_millis() as u64,
            "Synced chunk."
        );
    }
    if !refreshed_any && total_chunks == 0 {
        // Nothing selected: still confirm the state so Fivetran records a checkpoint.
        emit!(emitter.event(SyncEvent::Checkpoint(state.to_json())));
    }
    emit!(emitter.flush());
    Ok(SyncOutcome::Completed)
}

struct FetchedChunk {
    chunk: PlannedChunk,
    mapped: MappedRows,
    fetch_ms: u64,
}

/// Fetches and maps one chunk; runs in its own task so it overlaps with sending.
async fn fetch_chunk(
    api: Arc<ApiClient>,
    config: Arc<Config>,
    chunk: PlannedChunk,
    filter: ColumnFilter,
) -> Result<FetchedChunk, SyncError> {
    let started = Instant::now();
    let rows = api
        .fetch_series(chunk.table, chunk.range, config.metrics_for(chunk.table))
        .await?;
    let declared: Vec<&'static ColumnSpec> = chunk.table.columns(&config).collect();
    let mapped = map_rows(chunk.table, &declared, rows, &filter);
    Ok(FetchedChunk {
        chunk,
        mapped,
        fetch_ms: started.elapsed().as_millis() as u64,
    })
}

/// Rows of one response mapped to records, with unusable rows counted.
struct MappedRows {
    records: Vec<Record>,
    sent: usize,
    skipped: usize,
    first_problem: Option<RowError>,
}

impl MappedRows {
    fn warning(&self, table: Table, chunk: Option<&PlannedChunk>) -> Option<String> {
        let problem = self.first_problem.as_ref()?;
        let window = chunk
            .map(|c| format!(" for {}", c.range))
            .unwrap_or_default();
        Some(format!(
            "Skipped {} unusable row(s) of {table}{window}; first problem: {problem}.",
            self.skipped
        ))
    }
}

fn map_rows(
    table: Table,
    declared: &[&'static ColumnSpec],
    rows: Vec<serde_json::Value>,
    filter: &ColumnFilter,
) -> MappedRows {
    let mut mapped = MappedRows {
        records: Vec::with_capacity(rows.len()),
        sent: 0,
        skipped: 0,
        first_problem: None,
    };
    for row in rows {
        match map_row(table, declared, row, filter) {
            Ok(record) => mapped.records.push(record),
            Err(problem) => {
                mapped.skipped += 1;
                mapped.first_problem.get_or_insert(problem);
            }
        }
    }
    mapped.sent = mapped.records.len();
    mapped
}

/// The receiver hung up.
struct Cancelled;

/// Batches records and keeps the stream in event order: a pending batch is
/// always flushed before a checkpoint, warning or task.
struct Emitter {
    events: EventSender,
    pending: Vec<Record>,
    pending_bytes: usize,
    records_sent: u64,
    checkpoints_sent: u64,
}

impl Emitter {
    fn new(events: EventSender) -> Self {
        Self {
            events,
            pending: Vec::with_capacity(MAX_BATCH_RECORDS),
            pending_bytes: 0,
            records_sent: 0,
            checkpoints_sent: 0,
        }
    }

    async fn record(&mut self, record: Record) -> Result<(), Cancelled> {
        let size = record.approximate_size();
        if !self.pending.is_empty() && self.pending_bytes + size > MAX_BATCH_BYTES {
            self.flush().await?;
        }
        self.pending.push(record);
        self.pending_bytes += size;
        if self.pending.len() >= MAX_BATCH_RECORDS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Cancelled> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(MAX_BATCH_RECORDS));
        self.records_sent += batch.len() as u64;
        self.pending_bytes = 0;
        self.send(SyncEvent::Records(batch)).await
    }

    async fn event(&mut self, event: SyncEvent) -> Result<(), Cancelled> {
        self.flush().await?;
        if matches!(event, SyncEvent::Checkpoint(_)) {
            self.checkpoints_sent += 1;
        }
        self.send(event).await
    }

    async fn send(&mut self, event: SyncEvent) -> Result<(), Cancelled> {
        self.events.send(Ok(event)).await.map_err(|_| Cancelled)
    }
}

/// A spawned task that is aborted when dropped, so abandoning the sync
/// (client gone, error) stops its in-flight requests too.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
