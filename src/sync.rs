//! The Update pipeline, free of protobuf: refresh the reference tables, then
//! for each time-series table fetch planned chunks (a bounded number ahead,
//! each response parsed as it streams in), send their records in small
//! batches and checkpoint after each chunk.

use std::{collections::VecDeque, fmt, sync::Arc, time::Instant};

use chrono::NaiveDate;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use crate::{
    api::{ApiClient, ApiError, rows::RowConsumer},
    chunk::{DateRange, PlanSettings, PlannedChunk, plan_table},
    config::Config,
    record::{BucketWindow, RowError, RowFate, RowMapper, RowSink},
    schema::{ColumnSpec, Table},
    selection::{ColumnFilter, Selection},
    state::State,
};

/// Most records in one `Records` message (Fivetran enforces 100).
pub const MAX_BATCH_RECORDS: usize = 100;
/// Approximate upper bound of one `Records` message.
pub const MAX_BATCH_BYTES: usize = 100 * 1024;

/// Turns mapped rows into the batches the stream carries. The gRPC layer's
/// implementation encodes protobuf directly; the sync never sees the format.
pub trait BatchSink: RowSink + Default + Send + 'static {
    /// A finished batch.
    type Batch: Send + fmt::Debug + 'static;
    /// Appends a TRUNCATE of `table`.
    fn truncate(&mut self, table: Table);
    /// Records in the pending batch.
    fn records(&self) -> usize;
    /// Approximate size of the pending batch in bytes.
    fn bytes(&self) -> usize;
    /// Hands over the pending batch and starts a new one.
    fn take(&mut self) -> Self::Batch;
}

/// What the sync tells Fivetran, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncEvent<B> {
    /// A batch of at most [`MAX_BATCH_RECORDS`] records, about
    /// [`MAX_BATCH_BYTES`] at most.
    Records(B),
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
pub type EventSender<B> = mpsc::Sender<Result<SyncEvent<B>, SyncError>>;

/// Runs one sync, sending events into `events`. Sending waits while the
/// channel is full: that wait is the backpressure that keeps memory bounded.
///
/// # Errors
/// A [`SyncError`] when the API fails for good; the caller forwards it as the
/// stream's last item.
pub async fn run<S: BatchSink>(
    request: SyncRequest,
    api: Arc<ApiClient>,
    events: EventSender<S::Batch>,
) -> Result<SyncOutcome, SyncError> {
    let started = Instant::now();
    let mut emitter = Emitter::new(events);
    match run_inner::<S>(&request, api, &mut emitter).await {
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
        // Pending records are not flushed: Fivetran discards everything after
        // the last checkpoint of a failed sync anyway.
        Err(error) => Err(error),
    }
}

async fn run_inner<S: BatchSink>(
    request: &SyncRequest,
    api: Arc<ApiClient>,
    emitter: &mut Emitter<S::Batch>,
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
    let jobs = plan_jobs(request, &state);
    let total_chunks = jobs
        .iter()
        .filter(|(job, _)| matches!(job, Job::Chunk { .. }))
        .count();
    let references = jobs.len() - total_chunks;
    let shared_config = Arc::new(config.clone());

    // Up to `max_in_flight_requests` jobs run ahead in their own tasks, each
    // sending mapped records through a small channel; the loop below drains
    // them strictly in plan order, so records and checkpoints keep that order.
    let mut pending_jobs = jobs.into_iter();
    let mut running: VecDeque<RunningJob<S::Batch>> = VecDeque::new();
    let mut chunk_number = 0;
    let mut references_done = 0;
    loop {
        while running.len() < config.max_in_flight_requests as usize {
            let Some((job, filter)) = pending_jobs.next() else {
                break;
            };
            running.push_back(RunningJob::start::<S>(&api, &shared_config, job, filter));
        }
        let Some(mut current) = running.pop_front() else {
            break;
        };
        let started = Instant::now();
        let mut sent = 0usize;
        let summary = loop {
            match current.messages.recv().await {
                Some(JobMessage::Records(batch, records)) => {
                    sent += records;
                    emit!(emitter.records(batch, records));
                }
                Some(JobMessage::Finished(summary)) => break summary,
                Some(JobMessage::Failed(error)) => return Err(error),
                None => {
                    return Err(SyncError::Internal(format!(
                        "the fetch task for {} ended without finishing",
                        current.job
                    )));
                }
            }
        };
        if let Some(warning) = summary.warning(&current.job) {
            emit!(emitter.event(SyncEvent::Warning(warning)));
        }
        let table = current.job.table();
        match current.job {
            Job::Reference(_) => {
                // Truncate and upserts were sent; the refresh is committed with
                // the next checkpoint, after the last reference table.
                references_done += 1;
                info!(
                    table = %table,
                    rows = sent - usize::from(summary.truncated),
                    skipped = summary.skipped,
                    fetch_ms = summary.fetch_ms,
                    "Refreshed reference table."
                );
                if references_done == references {
                    emit!(emitter.event(SyncEvent::Checkpoint(state.to_json())));
                }
            }
            Job::Chunk { chunk, .. } => {
                chunk_number += 1;
                state.record_chunk(&chunk);
                emit!(emitter.event(SyncEvent::Checkpoint(state.to_json())));
                info!(
                    table = %table,
                    window = %chunk.range,
                    chunk = chunk_number,
                    chunks = total_chunks,
                    rows = sent - usize::from(summary.truncated),
                    skipped = summary.skipped,
                    outside_window = summary.outside_window,
                    bytes = summary.bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64 + summary.fetch_ms,
                    "Synced chunk."
                );
            }
        }
    }
    if references == 0 && total_chunks == 0 {
        // Nothing selected: still confirm the state so Fivetran records a checkpoint.
        emit!(emitter.event(SyncEvent::Checkpoint(state.to_json())));
    }
    Ok(SyncOutcome::Completed)
}

/// One API request and what follows it in the stream.
#[derive(Clone, Copy, Debug)]
enum Job {
    /// A full refresh of a reference table: TRUNCATE, then every entity.
    Reference(Table),
    /// One time-series chunk, followed by a checkpoint. The first chunk of a
    /// table with no coverage (initial sync, re-sync, table switched on)
    /// starts with a TRUNCATE, so rows from before a re-sync are soft-deleted.
    Chunk {
        /// The window.
        chunk: PlannedChunk,
        /// Whether a TRUNCATE precedes the chunk's upserts.
        truncate_first: bool,
    },
}

impl Job {
    fn table(&self) -> Table {
        match self {
            Job::Reference(table) => *table,
            Job::Chunk { chunk, .. } => chunk.table,
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Job::Reference(table) => write!(f, "{table}"),
            Job::Chunk { chunk, .. } => write!(f, "{} for {}", chunk.table, chunk.range),
        }
    }
}

/// Every request of this sync, in stream order: the selected reference
/// tables, then each selected time-series table's chunks. A table's chunks
/// share one column filter.
fn plan_jobs(request: &SyncRequest, state: &State) -> Vec<(Job, Arc<ColumnFilter>)> {
    let config = &request.config;
    let mut jobs = Vec::new();
    for &table in &config.reference_tables {
        if let Some(filter) = request.selection.table(table) {
            jobs.push((Job::Reference(table), Arc::new(filter)));
        }
    }
    let settings = PlanSettings {
        start_date: config.start_date,
        today: request.today,
        lookback_days: config.lookback_days,
        chunk_days: config.chunk_days,
    };
    for table in config.time_series_tables() {
        if let Some(filter) = request.selection.table(table) {
            let filter = Arc::new(filter);
            let coverage = state.coverage(table);
            let chunks = plan_table(table, coverage, settings);
            jobs.extend(chunks.into_iter().enumerate().map(|(index, chunk)| {
                let truncate_first = index == 0 && coverage.is_none();
                (
                    Job::Chunk {
                        chunk,
                        truncate_first,
                    },
                    Arc::clone(&filter),
                )
            }));
        }
    }
    jobs
}

/// Batches buffered per running job: with the in-flight limit, this bounds
/// the records held in memory however large a response is.
const JOB_CHANNEL_CAPACITY: usize = 4;

/// What a job's task tells the sync loop.
enum JobMessage<B> {
    /// A finished batch and how many records it holds.
    Records(B, usize),
    Finished(JobSummary),
    Failed(SyncError),
}

/// How a job went.
#[derive(Debug, Default)]
struct JobSummary {
    skipped: usize,
    /// Rows the API sent for buckets outside the requested window: not
    /// delivered by this job (the job whose window covers them does).
    outside_window: usize,
    first_problem: Option<RowError>,
    fetch_ms: u64,
    bytes: u64,
    truncated: bool,
}

impl JobSummary {
    fn warning(&self, job: &Job) -> Option<String> {
        let problem = self.first_problem.as_ref()?;
        Some(format!(
            "Skipped {} unusable row(s) of {job}; first problem: {problem}.",
            self.skipped
        ))
    }
}

/// A job running in its own task, aborted when dropped.
struct RunningJob<B> {
    job: Job,
    messages: mpsc::Receiver<JobMessage<B>>,
    _task: AbortOnDrop,
}

impl<B: Send + 'static> RunningJob<B> {
    fn start<S: BatchSink<Batch = B>>(
        api: &Arc<ApiClient>,
        config: &Arc<Config>,
        job: Job,
        filter: Arc<ColumnFilter>,
    ) -> Self {
        let (sender, messages) = mpsc::channel(JOB_CHANNEL_CAPACITY);
        let api = Arc::clone(api);
        let config = Arc::clone(config);
        let task = tokio::spawn(async move {
            let message = match run_job::<S>(&api, &config, job, &filter, &sender).await {
                Ok(Some(summary)) => JobMessage::Finished(summary),
                Ok(None) => return,
                Err(error) => JobMessage::Failed(error),
            };
            let _ = sender.send(message).await;
        });
        Self {
            job,
            messages,
            _task: AbortOnDrop(task),
        }
    }
}

/// Requests one job's rows and sends them, mapped, in batches. A body cut off
/// mid-stream is requested again (its rows are re-sent, which upserts make
/// harmless) within the retry budget. `Ok(None)` means the receiver is gone.
async fn run_job<S: BatchSink>(
    api: &ApiClient,
    config: &Config,
    job: Job,
    filter: &ColumnFilter,
    sender: &mpsc::Sender<JobMessage<S::Batch>>,
) -> Result<Option<JobSummary>, SyncError> {
    let table = job.table();
    let declared: Vec<&'static ColumnSpec> = table.columns(config.metrics_for(table)).collect();
    let started = Instant::now();
    let mut attempt = 1;
    'request: loop {
        let mut stream = match job {
            Job::Reference(table) => api.open_reference(table).await?,
            Job::Chunk { chunk, .. } => {
                api.open_series(chunk.table, chunk.range, config.metrics_for(chunk.table))
                    .await?
            }
        };
        let window = match job {
            Job::Reference(_) => None,
            Job::Chunk { chunk, .. } => Some(bucket_window(chunk.range)),
        };
        let mut batcher = RowBatcher::<S>::new(table, &declared, filter, window);
        let truncate = match job {
            Job::Reference(_) => true,
            Job::Chunk { truncate_first, .. } => truncate_first,
        };
        if truncate {
            // Only once the request succeeded: a failed fetch never truncates.
            batcher.truncate();
        }
        loop {
            let more = match stream.next_rows(&mut batcher).await {
                Ok(more) => more,
                Err(error) => {
                    let Some(delay) = api.rerequest_delay(&error, attempt, started) else {
                        return Err(error.into());
                    };
                    warn!(job = %job, attempt, delay_ms = delay.as_millis() as u64, "Response broke off; requesting it again.");
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    continue 'request;
                }
            };
            if !more {
                batcher.finish();
            }
            // One network read holds a bounded number of rows, so the
            // batches set aside while mapping it are few.
            for (batch, records) in batcher.full_batches() {
                if sender
                    .send(JobMessage::Records(batch, records))
                    .await
                    .is_err()
                {
                    return Ok(None);
                }
            }
            if !more {
                break;
            }
        }
        let mut summary = batcher.summary;
        summary.bytes = stream.bytes_read();
        summary.fetch_ms = started.elapsed().as_millis() as u64;
        return Ok(Some(summary));
    }
}

/// The instants a chunk's request asks for: `[start 00:00Z, end 00:00Z)`.
fn bucket_window(range: DateRange) -> BucketWindow {
    BucketWindow {
        start: range.start_instant().timestamp(),
        end: range.end_instant().timestamp(),
    }
}

/// Maps the rows of one response into batches as the splitter finds them,
/// setting each batch aside as soon as it is full: the per-row path of a
/// sync, from body bytes to finished batches.
pub struct RowBatcher<'f, S: BatchSink> {
    mapper: RowMapper<'f>,
    sink: S,
    full: Vec<(S::Batch, usize)>,
    summary: JobSummary,
}

impl<'f, S: BatchSink> RowBatcher<'f, S> {
    /// A batcher for rows of `table` into the `declared` columns, honouring
    /// `filter`, keeping only rows inside `window` when there is one.
    pub fn new(
        table: Table,
        declared: &[&'static ColumnSpec],
        filter: &'f ColumnFilter,
        window: Option<BucketWindow>,
    ) -> Self {
        let mapper = RowMapper::new(table, declared, filter);
        Self {
            mapper: match window {
                Some(window) => mapper.within(window),
                None => mapper,
            },
            sink: S::default(),
            full: Vec::new(),
            summary: JobSummary::default(),
        }
    }

    /// Starts the batch with a TRUNCATE of the table.
    fn truncate(&mut self) {
        self.summary.truncated = true;
        self.sink.truncate(self.mapper.table());
    }

    /// Sets the last, partly filled batch aside too: the response is complete.
    pub fn finish(&mut self) {
        let records = self.sink.records();
        if records > 0 {
            self.full.push((self.sink.take(), records));
        }
    }

    /// The batches set aside, with their record counts, in order.
    pub fn full_batches(&mut self) -> std::vec::Drain<'_, (S::Batch, usize)> {
        self.full.drain(..)
    }

    fn count(&mut self, fate: RowFate) {
        if fate == RowFate::OutsideWindow {
            self.summary.outside_window += 1;
        }
    }

    fn after_row(&mut self) {
        if self.sink.records() >= MAX_BATCH_RECORDS || self.sink.bytes() >= MAX_BATCH_BYTES {
            let records = self.sink.records();
            self.full.push((self.sink.take(), records));
        }
    }
}

impl<S: BatchSink> RowConsumer for RowBatcher<'_, S> {
    fn take_row_prefix(&mut self, text: &str) -> Option<usize> {
        let (length, fate) = self.mapper.map_prefix_into(text, &mut self.sink)?;
        self.count(fate);
        self.after_row();
        Some(length)
    }

    fn take_row(&mut self, row: &[u8]) {
        match self.mapper.map_into(row, &mut self.sink) {
            Ok(fate) => self.count(fate),
            Err(problem) => {
                self.summary.skipped += 1;
                self.summary.first_problem.get_or_insert(problem);
            }
        }
        self.after_row();
    }
}

/// The receiver hung up.
struct Cancelled;

/// Sends events in order and counts what was sent. Batches come whole from
/// the jobs, each finished before its job's checkpoint, so the stream order
/// is the order of events.
struct Emitter<B> {
    events: EventSender<B>,
    records_sent: u64,
    checkpoints_sent: u64,
}

impl<B> Emitter<B> {
    fn new(events: EventSender<B>) -> Self {
        Self {
            events,
            records_sent: 0,
            checkpoints_sent: 0,
        }
    }

    async fn records(&mut self, batch: B, records: usize) -> Result<(), Cancelled> {
        self.records_sent += records as u64;
        self.send(SyncEvent::Records(batch)).await
    }

    async fn event(&mut self, event: SyncEvent<B>) -> Result<(), Cancelled> {
        if matches!(event, SyncEvent::Checkpoint(_)) {
            self.checkpoints_sent += 1;
        }
        self.send(event).await
    }

    async fn send(&mut self, event: SyncEvent<B>) -> Result<(), Cancelled> {
        self.events.send(Ok(event)).await.map_err(|_| Cancelled)
    }
}

/// A spawned task that is aborted when dropped, so abandoning the sync
/// (client gone, error) stops its in-flight requests too.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
