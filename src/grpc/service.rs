//! `fivetran_sdk.v2.SourceConnector`: the four RPCs. Each validates its
//! request into domain types first, then calls the domain code; Update spawns
//! the sync and streams its events through a bounded channel.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use chrono::{Days, NaiveDate};
use futures_util::{Stream, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{Instrument, info, info_span, warn};

use super::{
    convert,
    pb::{self, source_connector_server::SourceConnector},
    wire::BatchEncoder,
};
use crate::{
    api::{ApiClient, ApiError, TokenCache},
    chunk::DateRange,
    clock::{Clock, SystemClock},
    config::{Config, ConfigError},
    schema::Table,
    state::State,
    sync::{self, SyncOutcome, SyncRequest},
};

/// Events buffered between the sync task and the gRPC stream. Small on
/// purpose: once full, the sync waits for Fivetran to read (backpressure).
pub const UPDATE_CHANNEL_CAPACITY: usize = 16;

/// The connector service. Cheap to clone; holds only what every RPC shares.
#[derive(Clone, Debug)]
pub struct ConnectorService {
    /// Where "today" comes from (fixed in tests and simulations).
    clock: Arc<dyn Clock>,
    /// Access tokens shared across RPCs with the same credentials.
    tokens: Arc<TokenCache>,
    /// Syncs still running, so callers (tests, shutdown) can wait for them.
    running_syncs: Arc<RunningSyncs>,
}

/// Counts running sync tasks and wakes waiters when none is left.
#[derive(Debug, Default)]
struct RunningSyncs {
    count: AtomicUsize,
    idle: Notify,
}

/// Decrements the running count when a sync task ends, however it ends.
struct RunningSyncGuard(Arc<RunningSyncs>);

impl RunningSyncGuard {
    fn new(running: &Arc<RunningSyncs>) -> Self {
        running.count.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(running))
    }
}

impl Drop for RunningSyncGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Default for ConnectorService {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

/// The stream type of Update.
pub type UpdateStream = Pin<Box<dyn Stream<Item = Result<pb::UpdateResponse, Status>> + Send>>;

impl ConnectorService {
    /// A service reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            tokens: Arc::new(TokenCache::default()),
            running_syncs: Arc::default(),
        }
    }

    /// Number of Update syncs still running (a sync keeps running briefly
    /// after its client goes away, until it notices).
    pub fn running_syncs(&self) -> usize {
        self.running_syncs.count.load(Ordering::SeqCst)
    }

    /// Waits until no sync is running.
    pub async fn wait_for_idle(&self) {
        loop {
            let idle = self.running_syncs.idle.notified();
            tokio::pin!(idle);
            // Register before checking, so a wake-up between the two is not lost.
            idle.as_mut().enable();
            if self.running_syncs() == 0 {
                return;
            }
            idle.await;
        }
    }

    fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }

    async fn run_connection_test(&self, config: &Config) -> Result<(), TestFailure> {
        let api = ApiClient::new(config, &self.tokens)?;
        let rows = match config.reference_tables.first() {
            Some(&table) => api.open_reference(table).await?,
            None => {
                let today = self.today();
                let range = today
                    .checked_add_days(Days::new(1))
                    .and_then(|tomorrow| DateRange::new(today, tomorrow))
                    .ok_or(TestFailure::EndOfTime)?;
                api.open_series(Table::Traffic, range, &config.traffic_metrics)
                    .await?
            }
        };
        rows.count_to_end().await?;
        Ok(())
    }
}

/// Why the connection test failed; its message is what the setup form shows.
#[derive(Debug, thiserror::Error)]
enum TestFailure {
    /// The configuration is not valid.
    #[error(transparent)]
    Configuration(#[from] ConfigError),
    /// SenSource could not be reached or refused.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The clock has no tomorrow to request.
    #[error("the clock is at the end of time")]
    EndOfTime,
}

#[tonic::async_trait]
impl SourceConnector for ConnectorService {
    type UpdateStream = UpdateStream;

    async fn configuration_form(
        &self,
        _request: Request<pb::ConfigurationFormRequest>,
    ) -> Result<Response<pb::ConfigurationFormResponse>, Status> {
        Ok(Response::new(convert::configuration_form()))
    }

    async fn test(
        &self,
        request: Request<pb::TestRequest>,
    ) -> Result<Response<pb::TestResponse>, Status> {
        let request = request.into_inner();
        let outcome = match Config::from_map(&request.configuration, self.today()) {
            Err(error) => Err(TestFailure::from(error)),
            Ok(config) => self.run_connection_test(&config).await,
        };
        let response = match outcome {
            Ok(()) => {
                info!(test = %request.name, "Connection test succeeded.");
                pb::test_response::Response::Success(true)
            }
            Err(failure) => {
                warn!(test = %request.name, error = %failure, "Connection test failed.");
                pb::test_response::Response::Failure(failure.to_string())
            }
        };
        Ok(Response::new(pb::TestResponse {
            response: Some(response),
        }))
    }

    async fn schema(
        &self,
        request: Request<pb::SchemaRequest>,
    ) -> Result<Response<pb::SchemaResponse>, Status> {
        let config = Config::for_schema(&request.into_inner().configuration, self.today())
            .map_err(|error| convert::request_error_status(&error.into()))?;
        Ok(Response::new(convert::schema_response(&config)))
    }

    async fn update(
        &self,
        request: Request<pb::UpdateRequest>,
    ) -> Result<Response<Self::UpdateStream>, Status> {
        let request = request.into_inner();
        let today = self.today();
        // Validate everything before a stream exists: bad input is one clear status.
        let config = Config::from_map(&request.configuration, today)
            .map_err(|error| convert::request_error_status(&error.into()))?;
        let parsed = State::parse(request.state_json.as_deref(), config.start_date, today)
            .map_err(|error| convert::request_error_status(&error.into()))?;
        let unknown = Config::unknown_keys(&request.configuration);
        if !unknown.is_empty() {
            warn!(keys = ?unknown, "Ignoring unknown configuration keys.");
        }
        let api = Arc::new(
            ApiClient::new(&config, &self.tokens)
                .map_err(|error| convert::sync_error_status(&error.into()))?,
        );
        let sync_request = SyncRequest {
            config,
            selection: convert::selection(request.selection),
            state: parsed.state,
            warnings: parsed.warnings,
            today,
        };

        let (events, receiver) = mpsc::channel(UPDATE_CHANNEL_CAPACITY);
        let span = info_span!("update");
        // Logged before the stream exists, so it always precedes the sync's
        // own lines. Fivetran names the account and destination group in the
        // connector's environment: they tell whose sync this is.
        span.in_scope(|| {
            info!(
                fivetran_account = fivetran_environment("FIVETRAN_ACCOUNT_NAME").as_deref(),
                fivetran_group = fivetran_environment("FIVETRAN_GROUP_NAME").as_deref(),
                "Sync started."
            );
        });
        let guard = RunningSyncGuard::new(&self.running_syncs);
        tokio::spawn(
            async move {
                let _guard = guard;
                let failure = events.clone();
                match sync::run::<BatchEncoder>(sync_request, api, events).await {
                    Ok(SyncOutcome::Cancelled) => info!("Sync stopped: the client went away."),
                    Ok(_) => {}
                    Err(error) => {
                        tracing::error!(error = %error, "Sync failed.");
                        // The stream's last item; Fivetran resumes from the last checkpoint.
                        let _ = failure.send(Err(error)).await;
                    }
                }
            }
            .instrument(span),
        );

        let stream = ReceiverStream::new(receiver).map(|item| match item {
            Ok(event) => Ok(convert::update_response(event)),
            Err(error) => Err(convert::sync_error_status(&error)),
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A variable Fivetran sets in the connector's environment, when it is set
/// and not empty.
fn fivetran_environment(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}
