//! [`SimulatorState`]: what every request shares. The fixed configuration and dataset, the one
//! lock over what changes while serving (clock, live tokens, removed ids, fault counters),
//! token minting and bearer authorization, and the [`Stats`] tests and the `debug` command
//! read.

use std::{
    collections::{HashMap, HashSet},
    fmt::{self, Write as _},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration as StdDuration, Instant},
};

use axum::{
    body::Bytes,
    http::{HeaderMap, header},
    response::Response,
};
use chrono::{DateTime, Utc};

use crate::secret::Secret;

use super::{
    data::{self, Dataset},
    faults::{BodyFaults, EndpointKind, FaultState, Faults},
    options::SimulatorOptions,
};

/// One served request, as recorded in [`Stats`]. Headers and bodies are not kept (they hold
/// credentials and tokens).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLogEntry {
    /// The request path, without the query.
    pub path: String,
    /// The raw query string, empty when there is none.
    pub query: String,
    /// The response status code.
    pub status: u16,
}

/// Counters shared with tests and the `debug` command; readable while the server runs.
#[derive(Default)]
pub struct Stats {
    token_mints: AtomicU64,
    api_requests: AtomicU64,
    data_requests: AtomicU64,
    log: Mutex<Vec<RequestLogEntry>>,
    /// Every access and refresh token minted, kept so tests can check none of them leaks.
    issued: Mutex<Vec<String>>,
}

// Hand-written so the issued tokens never land in a log line through `{:?}`.
impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stats")
            .field("token_mints", &self.token_mints())
            .field("api_requests", &self.api_requests())
            .field("data_requests", &self.data_requests())
            .field("logged_requests", &lock(&self.log).len())
            .field("issued_tokens", &lock(&self.issued).len())
            .finish()
    }
}

impl Stats {
    /// Successfully minted tokens.
    pub fn token_mints(&self) -> u64 {
        self.token_mints.load(Ordering::Relaxed)
    }

    /// All requests except those to the token endpoint, whatever their outcome.
    pub fn api_requests(&self) -> u64 {
        self.api_requests.load(Ordering::Relaxed)
    }

    /// Requests under `/api/data/`, whatever their outcome.
    pub fn data_requests(&self) -> u64 {
        self.data_requests.load(Ordering::Relaxed)
    }

    /// Every request so far (token requests included), in completion order.
    pub fn requests_log(&self) -> Vec<RequestLogEntry> {
        lock(&self.log).clone()
    }

    /// Every access and refresh token ever minted, in minting order (access before refresh):
    /// canaries for tests that check no token leaks into logs or messages.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.issued).clone()
    }

    /// Counts a request to the API (not to the token endpoint); `data` when it is one under
    /// `/api/data/`.
    pub(super) fn count_api_request(&self, data: bool) {
        self.api_requests.fetch_add(1, Ordering::Relaxed);
        if data {
            self.data_requests.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Appends a completed request to the log.
    pub(super) fn log_request(&self, entry: RequestLogEntry) {
        lock(&self.log).push(entry);
    }
}

/// Poisoning only means another request panicked mid-update; the simulator's state stays
/// usable, so recover the guard instead of propagating the panic.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything that changes while serving. One std mutex guards it all: every critical section
/// is a few field updates, and no guard is ever held across an `.await`.
#[derive(Debug)]
struct Mutable {
    faults: FaultState,
    now: DateTime<Utc>,
    /// Live access tokens and when they were minted.
    tokens: HashMap<String, Instant>,
    mints: u64,
    /// Ids removed with [`SimulatorState::remove_entity`].
    removed: HashSet<String>,
}

/// Shared server state: immutable configuration and dataset plus the mutable part.
pub struct SimulatorState {
    pub(super) client_id: String,
    pub(super) client_secret: Secret,
    api_token: Option<Secret>,
    pub(super) token_lifetime: StdDuration,
    seed: u64,
    pub(super) dataset: Arc<Dataset>,
    pub(super) stats: Arc<Stats>,
    inner: Mutex<Mutable>,
    /// Rendered data bodies by request, when `prepared_bodies` is on. A
    /// separate lock: rendering a large body must not hold up other requests.
    pub(super) prepared: Option<Mutex<HashMap<String, Bytes>>>,
}

impl SimulatorState {
    /// Builds the dataset and the initial state (no tokens, nothing removed) from `options`.
    pub fn new(options: SimulatorOptions) -> SimulatorState {
        let dataset = Dataset::new(
            options.seed,
            options.zones,
            options.spaces,
            options.history_start,
            options.outage,
        )
        .with_settle_lag_secs(options.settle_lag_secs)
        .with_outage_backfilled_at(options.outage_backfilled_at)
        .with_location_timezones(options.location_timezones);
        SimulatorState {
            client_id: options.client_id,
            client_secret: options.client_secret,
            api_token: options.api_token,
            token_lifetime: StdDuration::from_secs(options.token_lifetime_secs),
            seed: options.seed,
            dataset: Arc::new(dataset),
            stats: Arc::new(Stats::default()),
            prepared: options.prepared_bodies.then(Mutex::default),
            inner: Mutex::new(Mutable {
                faults: FaultState::new(options.faults, options.seed),
                now: options.now,
                tokens: HashMap::new(),
                mints: 0,
                removed: HashSet::new(),
            }),
        }
    }

    /// Replaces the faults and restarts their counters and RNG.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.inner).faults = FaultState::new(faults, self.seed);
    }

    /// Moves the simulated clock.
    pub fn set_now(&self, now: DateTime<Utc>) {
        lock(&self.inner).now = now;
    }

    /// The simulated clock.
    pub fn now(&self) -> DateTime<Utc> {
        lock(&self.inner).now
    }

    /// From now on, reference endpoints omit every object whose own id field (`locationId`,
    /// `siteId`, `zoneId`, `spaceId`, `sensorId`) equals `id`, and data endpoints serve no rows
    /// for a zone or space with that id. Nothing cascades: removing a location leaves its
    /// sites, spaces and sensors in place, as a deletion on the real account might.
    pub fn remove_entity(&self, id: &str) {
        lock(&self.inner).removed.insert(id.to_owned());
    }

    /// Snapshot of the removed ids (usually empty, so cloning is cheap).
    pub(super) fn removed(&self) -> HashSet<String> {
        lock(&self.inner).removed.clone()
    }

    /// The `latency_ms` fault.
    pub(super) fn latency(&self) -> StdDuration {
        lock(&self.inner).faults.latency()
    }

    /// The simulated clock and the `max_range_days` fault, read under one lock so a data
    /// request sees them as one consistent pair.
    /// Whether series buckets at a window's edges carry their whole value.
    pub(super) fn whole_edge_buckets(&self) -> bool {
        lock(&self.inner).faults.whole_edge_buckets()
    }

    pub(super) fn now_and_max_range_days(&self) -> (DateTime<Utc>, Option<u32>) {
        let mutable = lock(&self.inner);
        (mutable.now, mutable.faults.max_range_days())
    }

    /// Mints an (access, refresh) pair. Tokens derive from seed and mint counter only, so
    /// runs are reproducible and the secret never influences anything observable.
    pub(super) fn mint(&self) -> (String, String) {
        let mut mutable = lock(&self.inner);
        mutable.mints += 1;
        let n = mutable.mints;
        let access = hex_token(self.seed, 1, n);
        let refresh = hex_token(self.seed, 2, n);
        if mutable.faults.one_live_token() {
            mutable.tokens.clear();
        }
        let lifetime = self.token_lifetime;
        // Dropping expired tokens keeps the map small during long benchmark runs.
        mutable
            .tokens
            .retain(|_, minted| minted.elapsed() < lifetime);
        mutable.tokens.insert(access.clone(), Instant::now());
        drop(mutable);
        self.stats.token_mints.fetch_add(1, Ordering::Relaxed);
        lock(&self.stats.issued).extend([access.clone(), refresh.clone()]);
        (access, refresh)
    }

    /// The `token_rate_limit_next` fault: `Some(429)` while it counts down.
    pub(super) fn token_rate_limited(&self) -> Option<Response> {
        lock(&self.inner).faults.token_rate_limited()
    }

    /// Whether the request carries a bearer token that is the configured API token or a
    /// minted one still alive.
    pub(super) fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
        else {
            return false;
        };
        if self
            .api_token
            .as_ref()
            .is_some_and(|api_token| api_token.expose() == token)
        {
            return true;
        }
        lock(&self.inner)
            .tokens
            .get(token)
            .is_some_and(|minted| minted.elapsed() < self.token_lifetime)
    }

    /// Request-level faults, in the documented order. `None` means serve normally.
    pub(super) fn injected_failure(&self, kind: EndpointKind) -> Option<Response> {
        lock(&self.inner).faults.injected_failure(kind)
    }

    /// Records a successful data response; returns how its body should be mangled.
    pub(super) fn data_succeeded(&self) -> BodyFaults {
        lock(&self.inner).faults.data_succeeded()
    }
}

/// 64 lowercase hex characters, like the real tokens.
fn hex_token(seed: u64, kind: u64, n: u64) -> String {
    let mut x = data::splitmix64(seed ^ kind.rotate_left(32) ^ n.rotate_left(7));
    let mut out = String::with_capacity(64);
    for _ in 0..4 {
        x = data::splitmix64(x);
        let _ = write!(out, "{x:016x}");
    }
    out
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::simulator::test_support::InProcessSimulator;

    use super::*;

    #[tokio::test]
    async fn expired_token_is_rejected() {
        let options = SimulatorOptions {
            token_lifetime_secs: 0,
            ..SimulatorOptions::default()
        };
        let sim = InProcessSimulator::new(options);
        let token = sim.mint().await;
        let (status, _, _) = sim.get("/api/location", Some(&token)).await;
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn issued_tokens_lists_every_minted_token() {
        let sim = InProcessSimulator::new(SimulatorOptions::default());
        let mut minted = Vec::new();
        for _ in 0..2 {
            let (_, _, body) = sim
                .post_token(
                    "application/json",
                    json!({
                        "grant_type": "client_credentials",
                        "client_id": "sim-client",
                        "client_secret": "sim-secret",
                    })
                    .to_string(),
                )
                .await;
            let body: Value = serde_json::from_str(&body).unwrap();
            minted.push(body["access_token"].as_str().unwrap().to_owned());
            minted.push(body["refresh_token"].as_str().unwrap().to_owned());
        }
        let issued = sim.stats.issued_tokens();
        assert_eq!(issued, minted);
        // The stats' Debug output is no leak path either.
        let debug = format!("{:?}", sim.stats);
        assert!(
            issued.iter().all(|token| !debug.contains(token.as_str())),
            "{debug}"
        );
    }
}
