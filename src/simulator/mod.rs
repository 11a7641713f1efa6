//! Built-in SenSource "Vea" API simulator: options, shared state, the axum router, serve/spawn
//! and request statistics. The dataset itself lives in [`data`].

pub mod data;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration as StdDuration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures_util::stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use data::{Dataset, OccupancyValues};

use crate::secret::Secret;

/// Path of the token endpoint (the real one lives on a separate host; here it shares the server).
pub const TOKEN_PATH: &str = "/oauth/token";

/// 2025-01-01T00:00:00Z.
const DEFAULT_HISTORY_START_SECS: i64 = 1_735_689_600;
/// 2025-03-15T10:30:00Z.
const DEFAULT_NOW_SECS: i64 = 1_742_034_600;

/// Guessed average serialized row sizes, used only to pre-size response buffers.
const TRAFFIC_ROW_BYTES: usize = 140;
const OCCUPANCY_ROW_BYTES: usize = 200;
/// Upper bound on the up-front reservation, so an absurd range cannot reserve gigabytes before
/// a single row exists; the buffer still grows if really needed.
const MAX_PRESIZE_BYTES: usize = 256 << 20;
/// Size an endless body's chunks aim for: big enough to stream fast, small enough that the
/// server holds only a few kilobytes per connection however long the client keeps reading.
const ENDLESS_CHUNK_BYTES: usize = 16 << 10;
/// The fixed body of the `wrong_shape` fault: an object where the list of rows belongs.
const WRONG_SHAPE_BODY: &str = r#"{"messages":[],"results":{"error":"x"}}"#;
/// The data envelope up to the first row.
const ROWS_PREFIX: &str = r#"{"messages":[],"results":["#;

fn utc(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// How the simulator behaves. Everything but `faults` and `now` is fixed for the server's life.
#[derive(Clone, Debug)]
pub struct SimulatorOptions {
    pub client_id: String,
    /// A `Secret`, so that a real secret passed to `simulate` never lands in a log line.
    pub client_secret: Secret,
    pub zones: usize,
    pub spaces: usize,
    /// The earliest entity's first hour with data.
    pub history_start: DateTime<Utc>,
    /// Simulated clock: no rows at/after it; the hour containing it is partial.
    pub now: DateTime<Utc>,
    /// A long-lived API token the data and reference endpoints accept as it
    /// is, without the OAuth exchange (some accounts use one).
    pub api_token: Option<Secret>,
    /// `expires_in`; expiry is measured in real elapsed time since minting.
    pub token_lifetime_secs: u64,
    pub seed: u64,
    /// `[start, end)` of a site outage: no rows for entities of site 0 (location 0).
    pub outage: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The outage is uploaded late: from this simulated instant on, its hours have rows.
    /// `None` = never.
    pub outage_backfilled_at: Option<DateTime<Utc>>,
    /// Counts of an hour reach their final value only this many seconds after the hour ends;
    /// until then they are scaled by `elapsed since hour start / (3600 + lag)`. 0 = final as
    /// soon as the hour is over.
    pub settle_lag_secs: u64,
    /// Keep every data body once rendered and serve it again from memory, so
    /// benchmarks measure the connector rather than the simulator's rendering.
    pub prepared_bodies: bool,
    pub faults: Faults,
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        let history_start = utc(DEFAULT_HISTORY_START_SECS);
        let outage_day = history_start + Duration::days(20);
        SimulatorOptions {
            client_id: "sim-client".to_owned(),
            client_secret: Secret::new("sim-secret"),
            api_token: None,
            zones: 6,
            spaces: 3,
            history_start,
            now: utc(DEFAULT_NOW_SECS),
            token_lifetime_secs: 3600,
            seed: 7,
            outage: Some((
                outage_day + Duration::hours(8),
                outage_day + Duration::hours(14),
            )),
            outage_backfilled_at: None,
            settle_lag_secs: 0,
            prepared_bodies: false,
            faults: Faults::default(),
        }
    }
}

/// Injected failures. Counters (`fail_next_requests`, `rate_limit_every`, `fail_data_after`,
/// `drop_connection_next`, `token_rate_limit_next`) and the error RNG restart whenever faults
/// are set, so a test's fault pattern does not depend on how many requests came before.
///
/// A data request meets them in this order: `fail_next_requests`, `fail_data_after`,
/// `server_error_rate`, `rate_limit_every` (each answers instead of the data); then the body
/// of a 200: `endless_body` (overrides all below), `wrong_shape` or rows with `bad_rows_every`,
/// then `malformed_body_rate`, then `drop_connection_next` / `drop_connection_rate`.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Added to every API (not token) response.
    pub latency_ms: u64,
    /// Fraction of data/reference requests answered 500 (seeded RNG, deterministic sequence).
    pub server_error_rate: f64,
    /// The next N data/reference requests answer 503, then normal service resumes.
    pub fail_next_requests: u32,
    /// Every Nth data request answers 429 with `Retry-After` (0 = never).
    pub rate_limit_every: u32,
    /// Minting a token invalidates all previous ones.
    pub one_live_token: bool,
    /// Fraction of data responses whose JSON body is cut in half (status stays 200).
    pub malformed_body_rate: f64,
    /// Data requests spanning more than this many days answer 400.
    pub max_range_days: Option<u32>,
    /// After this many successful data requests, every data request answers 500.
    pub fail_data_after: Option<u32>,
    /// Every data request answers 403, as for an API client without access to the data.
    pub forbid_data: bool,
    /// Fraction of data responses (seeded RNG) whose connection is aborted half-way through the
    /// body: status 200 and headers arrive, then the chunked body breaks off without its end.
    pub drop_connection_rate: f64,
    /// The next N data responses are aborted half-way like `drop_connection_rate`'s.
    pub drop_connection_next: u32,
    /// Data responses are a valid envelope prefix followed by valid rows that never end.
    pub endless_body: bool,
    /// The next N token requests answer 429 (with `Retry-After`) instead of minting.
    pub token_rate_limit_next: u32,
    /// `Retry-After` of every 429, data and token, in seconds.
    pub retry_after_secs: u64,
    /// Send `Retry-After` as an IMF-fixdate HTTP-date (real wall clock + `retry_after_secs`)
    /// instead of a number of seconds.
    pub retry_after_http_date: bool,
    /// Every Nth row of a data response (1-based, counted per response; 0 = never) is unusable:
    /// its entity id is `null` and its first metric is the string `"n/a"`.
    pub bad_rows_every: u32,
    /// Data responses are `{"messages":[],"results":{"error":"x"}}` with status 200.
    pub wrong_shape: bool,
}

// Hand-written because `retry_after_secs` defaults to 1, the `Retry-After` the simulator always
// sent before it became configurable.
impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            server_error_rate: 0.0,
            fail_next_requests: 0,
            rate_limit_every: 0,
            one_live_token: false,
            malformed_body_rate: 0.0,
            max_range_days: None,
            fail_data_after: None,
            forbid_data: false,
            drop_connection_rate: 0.0,
            drop_connection_next: 0,
            endless_body: false,
            token_rate_limit_next: 0,
            retry_after_secs: 1,
            retry_after_http_date: false,
            bad_rows_every: 0,
            wrong_shape: false,
        }
    }
}

/// One served request, as recorded in [`Stats`]. Headers and bodies are not kept (they hold
/// credentials and tokens).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLogEntry {
    pub path: String,
    pub query: String,
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
impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
}

/// Poisoning only means another request panicked mid-update; the simulator's state stays
/// usable, so recover the guard instead of propagating the panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything that changes while serving. One std mutex guards it all: every critical section
/// is a few field updates, and no guard is ever held across an `.await`.
#[derive(Debug)]
struct Mutable {
    faults: Faults,
    now: DateTime<Utc>,
    /// Live access tokens and when they were minted.
    tokens: HashMap<String, Instant>,
    mints: u64,
    rng: u64,
    data_successes: u32,
    rate_limit_counter: u32,
    /// Ids removed with [`SimulatorState::remove_entity`].
    removed: HashSet<String>,
}

/// How the body of one successful data response is to be shaped, decided under the lock.
#[derive(Clone, Copy, Debug, Default)]
struct BodyFaults {
    endless: bool,
    wrong_shape: bool,
    bad_rows_every: u32,
    truncate: bool,
    drop_connection: bool,
}

/// Shared server state: immutable configuration and dataset plus the mutable part.
pub struct SimulatorState {
    client_id: String,
    client_secret: Secret,
    api_token: Option<Secret>,
    token_lifetime: StdDuration,
    seed: u64,
    dataset: Arc<Dataset>,
    stats: Arc<Stats>,
    inner: Mutex<Mutable>,
    /// Rendered data bodies by request, when `prepared_bodies` is on. A
    /// separate lock: rendering a large body must not hold up other requests.
    prepared: Option<Mutex<HashMap<String, Bytes>>>,
}

impl SimulatorState {
    pub fn new(options: SimulatorOptions) -> SimulatorState {
        let dataset = Dataset::new(
            options.seed,
            options.zones,
            options.spaces,
            options.history_start,
            options.outage,
        )
        .with_settle_lag_secs(options.settle_lag_secs)
        .with_outage_backfilled_at(options.outage_backfilled_at);
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
                faults: options.faults,
                now: options.now,
                tokens: HashMap::new(),
                mints: 0,
                rng: fault_rng_seed(options.seed),
                data_successes: 0,
                rate_limit_counter: 0,
                removed: HashSet::new(),
            }),
        }
    }

    /// Replaces the faults and restarts their counters and RNG.
    pub fn set_faults(&self, faults: Faults) {
        let mut m = lock(&self.inner);
        m.faults = faults;
        m.rng = fault_rng_seed(self.seed);
        m.data_successes = 0;
        m.rate_limit_counter = 0;
    }

    pub fn set_now(&self, now: DateTime<Utc>) {
        lock(&self.inner).now = now;
    }

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
    fn removed(&self) -> HashSet<String> {
        lock(&self.inner).removed.clone()
    }

    fn latency(&self) -> StdDuration {
        StdDuration::from_millis(lock(&self.inner).faults.latency_ms)
    }

    /// Mints an (access, refresh) pair. Tokens derive from seed and mint counter only, so
    /// runs are reproducible and the secret never influences anything observable.
    fn mint(&self) -> (String, String) {
        let mut m = lock(&self.inner);
        m.mints += 1;
        let n = m.mints;
        let access = hex_token(self.seed, 1, n);
        let refresh = hex_token(self.seed, 2, n);
        if m.faults.one_live_token {
            m.tokens.clear();
        }
        let lifetime = self.token_lifetime;
        // Dropping expired tokens keeps the map small during long benchmark runs.
        m.tokens.retain(|_, minted| minted.elapsed() < lifetime);
        m.tokens.insert(access.clone(), Instant::now());
        drop(m);
        self.stats.token_mints.fetch_add(1, Ordering::Relaxed);
        lock(&self.stats.issued).extend([access.clone(), refresh.clone()]);
        (access, refresh)
    }

    /// The `token_rate_limit_next` fault: `Some(429)` while it counts down.
    fn token_rate_limited(&self) -> Option<Response> {
        let mut m = lock(&self.inner);
        if m.faults.token_rate_limit_next == 0 {
            return None;
        }
        m.faults.token_rate_limit_next -= 1;
        Some(too_many_requests(&m.faults))
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
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
    fn injected_failure(&self, kind: EndpointKind) -> Option<Response> {
        let mut m = lock(&self.inner);
        if m.faults.fail_next_requests > 0 {
            m.faults.fail_next_requests -= 1;
            return Some(message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
            ));
        }
        if kind == EndpointKind::Data && m.faults.forbid_data {
            return Some(message(StatusCode::FORBIDDEN, "Forbidden"));
        }
        if kind == EndpointKind::Data
            && let Some(limit) = m.faults.fail_data_after
            && m.data_successes >= limit
        {
            return Some(internal_error());
        }
        // Draw only when the fault is on, so enabling other faults does not shift the sequence.
        let rate = m.faults.server_error_rate;
        if rate > 0.0 && next_unit(&mut m.rng) < rate {
            return Some(internal_error());
        }
        let every = m.faults.rate_limit_every;
        if kind == EndpointKind::Data && every > 0 {
            m.rate_limit_counter += 1;
            if m.rate_limit_counter % every == 0 {
                return Some(too_many_requests(&m.faults));
            }
        }
        None
    }

    /// Records a successful data response; returns how its body should be mangled.
    fn data_succeeded(&self) -> BodyFaults {
        let mut m = lock(&self.inner);
        m.data_successes = m.data_successes.saturating_add(1);
        if m.faults.endless_body {
            // Nothing else applies to a body that never ends, so consume no draws or counters.
            return BodyFaults {
                endless: true,
                ..BodyFaults::default()
            };
        }
        // Draw only when a fault is on, so enabling other faults does not shift the sequence.
        let rate = m.faults.malformed_body_rate;
        let truncate = rate > 0.0 && next_unit(&mut m.rng) < rate;
        let drop_connection = if m.faults.drop_connection_next > 0 {
            m.faults.drop_connection_next -= 1;
            true
        } else {
            let rate = m.faults.drop_connection_rate;
            rate > 0.0 && next_unit(&mut m.rng) < rate
        };
        BodyFaults {
            endless: false,
            wrong_shape: m.faults.wrong_shape,
            bad_rows_every: m.faults.bad_rows_every,
            truncate,
            drop_connection,
        }
    }
}

fn fault_rng_seed(seed: u64) -> u64 {
    data::splitmix64(seed ^ 0x6661_756c_7473)
}

/// Next value in [0, 1) of the fault RNG (a SplitMix64 stream).
fn next_unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    data::unit(data::splitmix64(*state))
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndpointKind {
    Reference,
    Data,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Series {
    Traffic,
    Occupancy,
}

fn json_response(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn json_value(status: StatusCode, value: &Value) -> Response {
    json_response(status, value.to_string())
}

/// The `{"message": ...}` shape the API uses for auth and infrastructure errors.
fn message(status: StatusCode, text: &str) -> Response {
    json_value(status, &json!({ "message": text }))
}

/// The `{"messages": [...]}` shape used for rejected data requests.
fn bad_request(text: &str) -> Response {
    json_value(StatusCode::BAD_REQUEST, &json!({ "messages": [text] }))
}

fn unauthorized() -> Response {
    message(StatusCode::UNAUTHORIZED, "Unauthorized")
}

fn internal_error() -> Response {
    message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// A 429 with the configured `Retry-After`.
fn too_many_requests(faults: &Faults) -> Response {
    let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, retry_after(faults, Utc::now()));
    response
}

/// `Retry-After` as delay-seconds, or as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`)
/// `wall_clock + retry_after_secs`. The date uses the real clock, not the simulated one,
/// because clients compare it with their own wall clock.
fn retry_after(faults: &Faults, wall_clock: DateTime<Utc>) -> header::HeaderValue {
    let seconds = header::HeaderValue::from(faults.retry_after_secs);
    if !faults.retry_after_http_date {
        return seconds;
    }
    let delay = i64::try_from(faults.retry_after_secs)
        .ok()
        .and_then(Duration::try_seconds)
        .and_then(|delay| wall_clock.checked_add_signed(delay));
    // A delay beyond chrono's range cannot be a date; the seconds form still says "later".
    let Some(when) = delay else {
        return seconds;
    };
    let text = when.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    header::HeaderValue::from_str(&text).unwrap_or(seconds)
}

/// The router. Every request passes through `observe` (stats, request log, latency).
pub fn app(state: Arc<SimulatorState>) -> Router {
    Router::new()
        .route(TOKEN_PATH, post(token))
        .route("/api/location", get(locations))
        .route("/api/location/{id}", get(location_by_id))
        .route("/api/site", get(sites))
        .route("/api/zone", get(zones))
        .route("/api/space", get(spaces))
        .route("/api/sensor", get(sensors))
        .route("/api/data/traffic", get(traffic))
        .route("/api/data/occupancy", get(occupancy))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn observe(
    State(state): State<Arc<SimulatorState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    if path != TOKEN_PATH {
        state.stats.api_requests.fetch_add(1, Ordering::Relaxed);
        if path.starts_with("/api/data/") {
            state.stats.data_requests.fetch_add(1, Ordering::Relaxed);
        }
        // Read under the lock, sleep after it is released.
        let latency = state.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
    let response = next.run(request).await;
    let status = response.status().as_u16();
    lock(&state.stats.log).push(RequestLogEntry {
        path,
        query,
        status,
    });
    response
}

async fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not Found")
}

#[derive(Debug, Default, Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Parses a token request body as JSON or form-urlencoded, like the real endpoint accepts.
/// Without a telling content type, a body starting with `{` is taken as JSON.
fn parse_token_request(headers: &HeaderMap, body: &[u8]) -> Option<TokenRequest> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let looks_json = body.trim_ascii_start().starts_with(b"{");
    if content_type.contains("json")
        || (!content_type.contains("x-www-form-urlencoded") && looks_json)
    {
        return serde_json::from_slice(body).ok();
    }
    let mut request = TokenRequest::default();
    for (key, value) in url::form_urlencoded::parse(body) {
        let slot = match key.as_ref() {
            "grant_type" => &mut request.grant_type,
            "client_id" => &mut request.client_id,
            "client_secret" => &mut request.client_secret,
            _ => continue,
        };
        *slot = Some(value.into_owned());
    }
    Some(request)
}

async fn token(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Rate limiting happens before the request is even read, as at an API gateway, so every
    // token request counts, well-formed or not.
    if let Some(limited) = state.token_rate_limited() {
        return limited;
    }
    let Some(request) = parse_token_request(&headers, &body) else {
        return json_value(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_request", "error_description": "Malformed request body"}),
        );
    };
    if request.grant_type.as_deref() != Some("client_credentials") {
        return json_value(
            StatusCode::BAD_REQUEST,
            &json!({"error": "unsupported_grant_type", "error_description": "Unsupported grant type"}),
        );
    }
    if request.client_id.as_deref() != Some(state.client_id.as_str())
        || request.client_secret.as_deref() != Some(state.client_secret.expose())
    {
        return json_value(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "access_denied", "error_description": "Unauthorized"}),
        );
    }
    let (access_token, refresh_token) = state.mint();
    json_value(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "refresh_token": refresh_token,
            "expires_in": state.token_lifetime.as_secs(),
            "token_type": "Bearer",
        }),
    )
}

/// Auth, faults, then the body built from the dataset's objects minus the removed ones.
/// `id_key` is the objects' own id field, the one [`SimulatorState::remove_entity`] matches.
fn reference(
    state: &SimulatorState,
    headers: &HeaderMap,
    id_key: &str,
    list: impl FnOnce(&Dataset) -> Vec<Value>,
    build: impl FnOnce(Vec<Value>) -> Option<Value>,
) -> Response {
    if !state.authorized(headers) {
        return unauthorized();
    }
    if let Some(failure) = state.injected_failure(EndpointKind::Reference) {
        return failure;
    }
    let mut items = list(&state.dataset);
    let removed = state.removed();
    if !removed.is_empty() {
        items.retain(|item| {
            item.get(id_key)
                .and_then(Value::as_str)
                .is_none_or(|id| !removed.contains(id))
        });
    }
    match build(items) {
        Some(value) => json_value(StatusCode::OK, &value),
        None => message(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `/location` and `/zone` answer bare arrays (confirmed).
fn bare(items: Vec<Value>) -> Option<Value> {
    Some(Value::Array(items))
}

/// The others are wrapped in `{"results": ...}` so that clients are exercised on both shapes.
fn wrapped(items: Vec<Value>) -> Option<Value> {
    Some(json!({ "results": items }))
}

async fn locations(State(state): State<Arc<SimulatorState>>, headers: HeaderMap) -> Response {
    reference(&state, &headers, "locationId", Dataset::locations, bare)
}

async fn location_by_id(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    reference(
        &state,
        &headers,
        "locationId",
        Dataset::locations,
        |items| {
            items
                .into_iter()
                .find(|l| l.get("locationId").and_then(Value::as_str) == Some(id.as_str()))
        },
    )
}

async fn zones(State(state): State<Arc<SimulatorState>>, headers: HeaderMap) -> Response {
    reference(&state, &headers, "zoneId", Dataset::zones, bare)
}

async fn sites(State(state): State<Arc<SimulatorState>>, headers: HeaderMap) -> Response {
    reference(&state, &headers, "siteId", Dataset::sites, wrapped)
}

async fn spaces(State(state): State<Arc<SimulatorState>>, headers: HeaderMap) -> Response {
    reference(&state, &headers, "spaceId", Dataset::spaces, wrapped)
}

async fn sensors(State(state): State<Arc<SimulatorState>>, headers: HeaderMap) -> Response {
    reference(&state, &headers, "sensorId", Dataset::sensors, wrapped)
}

async fn traffic(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    data_endpoint(&state, &headers, query.as_deref(), Series::Traffic)
}

async fn occupancy(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    data_endpoint(&state, &headers, query.as_deref(), Series::Occupancy)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Metrics {
    ins: bool,
    outs: bool,
    max: bool,
    min: bool,
    avg: bool,
}

#[derive(Debug)]
struct DataRequest {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    metrics: Metrics,
}

/// `YYYY-MM-DD` is local midnight (US Eastern with DST, as observed on a real account);
/// RFC 3339 timestamps are honoured exactly.
fn parse_bound(text: &str) -> Option<DateTime<Utc>> {
    if text.len() == 10 {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(data::local_midnight)
    } else {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// Local midnight of the day after the local day starting at `midnight`. Noon of the next day
/// is always 35-37 hours later and well inside it, whatever the DST change.
fn next_local_midnight(midnight: DateTime<Utc>) -> DateTime<Utc> {
    data::local_midnight(data::local_date(midnight + Duration::hours(36)))
}

/// Local midnight of the day before the local day starting at `midnight`.
fn previous_local_midnight(midnight: DateTime<Utc>) -> DateTime<Utc> {
    data::local_midnight(data::local_date(midnight - Duration::hours(12)))
}

fn parse_metrics(text: &str, series: Series) -> Result<Metrics, String> {
    let mut metrics = Metrics::default();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let flag = match (name, series) {
            ("ins", _) => &mut metrics.ins,
            ("outs", _) => &mut metrics.outs,
            ("occupancy(max)", Series::Occupancy) => &mut metrics.max,
            ("occupancy(min)", Series::Occupancy) => &mut metrics.min,
            ("occupancy(avg)", Series::Occupancy) => &mut metrics.avg,
            _ => return Err(format!("unknown metric: {name}")),
        };
        *flag = true;
    }
    if metrics == Metrics::default() {
        return Err("metrics is required".to_owned());
    }
    Ok(metrics)
}

/// Why a data request's parameters were refused.
#[derive(Debug)]
enum Rejection {
    /// 400 with a `messages` body.
    BadRequest(String),
    /// The 500 reported for explicit dates without `relativeDate=custom`.
    ServerError,
}

impl Rejection {
    fn bad(text: &str) -> Rejection {
        Rejection::BadRequest(text.to_owned())
    }

    fn into_response(self) -> Response {
        match self {
            Rejection::BadRequest(text) => bad_request(&text),
            Rejection::ServerError => internal_error(),
        }
    }
}

/// Validates the query string.
fn parse_data_request(
    query: &str,
    series: Series,
    now: DateTime<Utc>,
) -> Result<DataRequest, Rejection> {
    // Last occurrence wins for repeated keys.
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |key: &str| params.get(key).map(String::as_str);
    let has_dates = param("startDate").is_some() || param("endDate").is_some();
    let local_today = data::local_midnight(data::local_date(now));
    let (start, end) = match param("relativeDate") {
        Some("custom") => {
            let (Some(start), Some(end)) = (param("startDate"), param("endDate")) else {
                return Err(Rejection::bad("startDate and endDate are required"));
            };
            let (Some(start), Some(end)) = (parse_bound(start), parse_bound(end)) else {
                return Err(Rejection::bad("invalid date"));
            };
            (start, end)
        }
        // Reported for the real API: explicit dates without `custom` crash the server.
        _ if has_dates => {
            return Err(Rejection::ServerError);
        }
        // Local days, so a DST change day has 23 or 25 hours.
        Some("today") => (local_today, next_local_midnight(local_today)),
        Some("yesterday") => (previous_local_midnight(local_today), local_today),
        Some("thishour") => {
            let hour = data::hour_floor(now);
            (hour, hour + Duration::hours(1))
        }
        Some(_) => return Err(Rejection::bad("invalid relativeDate")),
        None => return Err(Rejection::bad("relativeDate is required")),
    };
    if param("dateGroupings") != Some("hour") {
        return Err(Rejection::bad("unsupported dateGroupings (only hour)"));
    }
    let entity_type = match series {
        Series::Traffic => "zone",
        Series::Occupancy => "space",
    };
    if param("entityType") != Some(entity_type) {
        return Err(Rejection::bad("unsupported entityType"));
    }
    let metrics = parse_metrics(param("metrics").unwrap_or_default(), series)
        .map_err(Rejection::BadRequest)?;
    Ok(DataRequest {
        start,
        end,
        metrics,
    })
}

fn data_endpoint(
    state: &SimulatorState,
    headers: &HeaderMap,
    query: Option<&str>,
    series: Series,
) -> Response {
    if !state.authorized(headers) {
        return unauthorized();
    }
    if let Some(failure) = state.injected_failure(EndpointKind::Data) {
        return failure;
    }
    let (now, max_range_days) = {
        let m = lock(&state.inner);
        (m.now, m.faults.max_range_days)
    };
    let request = match parse_data_request(query.unwrap_or_default(), series, now) {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    if let Some(days) = max_range_days
        && request.end - request.start > Duration::days(i64::from(days))
    {
        return bad_request("range too long");
    }
    let faults = state.data_succeeded();
    // Built only where rows are rendered: a prepared body needs none.
    let writer = || {
        RowWriter::new(
            &state.dataset,
            series,
            request.metrics,
            &state.removed(),
            faults.bad_rows_every,
        )
    };
    if faults.endless {
        return endless_response(state.dataset.clone(), writer(), request.start);
    }
    let clean = !(faults.wrong_shape
        || faults.truncate
        || faults.drop_connection
        || faults.bad_rows_every > 0);
    if let (Some(prepared), true) = (&state.prepared, clean) {
        let key = format!("{series:?}?{}", query.unwrap_or_default());
        let cached = lock(prepared).get(&key).cloned();
        let body = match cached {
            Some(body) => body,
            None => {
                let body =
                    Bytes::from(render_rows(&state.dataset, writer(), &request, now).into_bytes());
                lock(prepared).insert(key, body.clone());
                body
            }
        };
        return json_response(StatusCode::OK, body);
    }
    let mut body = if faults.wrong_shape {
        WRONG_SHAPE_BODY.as_bytes().to_vec()
    } else {
        render_rows(&state.dataset, writer(), &request, now).into_bytes()
    };
    if faults.truncate {
        body.truncate(body.len() / 2);
    }
    if faults.drop_connection {
        return cut_off_response(body);
    }
    json_response(StatusCode::OK, body)
}

/// One entity's `"zoneId":"<id>","name":"<escaped name>"`, and the same with a `null` id for
/// the `bad_rows_every` fault, built once per response.
struct EntityFields {
    index: usize,
    fields: String,
    bad_fields: String,
}

/// Writes data rows as text, never as `serde_json::Value`s, because benchmarks pull millions
/// of them. Owns everything it needs, so an endless body can carry it into a stream.
struct RowWriter {
    series: Series,
    metrics: Metrics,
    entities: Vec<EntityFields>,
    bad_rows_every: u32,
    /// Rows written so far in this response (for commas and `bad_rows_every`).
    rows: u64,
}

impl RowWriter {
    fn new(
        dataset: &Dataset,
        series: Series,
        metrics: Metrics,
        removed: &HashSet<String>,
        bad_rows_every: u32,
    ) -> RowWriter {
        let (order, id_key) = match series {
            Series::Traffic => (dataset.zone_order(), "zoneId"),
            Series::Occupancy => (dataset.space_order(), "spaceId"),
        };
        let entities = order
            .iter()
            .filter_map(|&index| {
                let (id, name) = match series {
                    Series::Traffic => (dataset.zone_id(index), dataset.zone_name(index)),
                    Series::Occupancy => (dataset.space_id(index), dataset.space_name(index)),
                };
                let id = id.unwrap_or_default();
                if removed.contains(id) {
                    return None;
                }
                let name = serde_json::to_string(name.unwrap_or_default()).unwrap_or_default();
                Some(EntityFields {
                    index,
                    fields: format!("\"{id_key}\":\"{id}\",\"name\":{name}"),
                    bad_fields: format!("\"{id_key}\":null,\"name\":{name}"),
                })
            })
            .collect();
        RowWriter {
            series,
            metrics,
            entities,
            bad_rows_every,
            rows: 0,
        }
    }

    fn row_bytes(&self) -> usize {
        match self.series {
            Series::Traffic => TRAFFIC_ROW_BYTES,
            Series::Occupancy => OCCUPANCY_ROW_BYTES,
        }
    }

    /// Appends the rows of the bucket starting at `hour`, as the dataset has them at `now`.
    /// With `fill`, entities without a row get one of zeros (the endless body wants rows, not
    /// gaps).
    fn write_hour(
        &mut self,
        body: &mut String,
        dataset: &Dataset,
        hour: DateTime<Utc>,
        now: DateTime<Utc>,
        fill: bool,
    ) {
        let hour_prefix = format!(
            "{{\"recordDate_hour_1\":\"{}\",",
            data::format_timestamp(hour)
        );
        let metrics = self.metrics;
        for entity in &self.entities {
            let index = entity.index;
            let (counts, occupancy) = match self.series {
                Series::Traffic => {
                    let counts = dataset.traffic(index, hour, now);
                    if counts.is_none() && !fill {
                        continue;
                    }
                    (counts, None)
                }
                Series::Occupancy => {
                    let values = match dataset.occupancy(index, hour, now) {
                        Some(values) => values,
                        None if fill => OccupancyValues {
                            max: 0,
                            min: 0,
                            avg: 0.0,
                        },
                        None => continue,
                    };
                    (dataset.space_traffic(index, hour, now), Some(values))
                }
            };
            if self.rows > 0 {
                body.push(',');
            }
            self.rows += 1;
            let bad = self.bad_rows_every > 0 && self.rows % u64::from(self.bad_rows_every) == 0;
            body.push_str(&hour_prefix);
            body.push_str(if bad {
                &entity.bad_fields
            } else {
                &entity.fields
            });
            write_metrics(body, metrics, counts, occupancy, bad);
            body.push('}');
        }
    }
}

/// Serializes the data envelope straight into one pre-sized buffer.
fn render_rows(
    dataset: &Dataset,
    mut writer: RowWriter,
    request: &DataRequest,
    now: DateTime<Utc>,
) -> String {
    // Buckets whose start lies in [start, end), clipped to the data that can exist.
    let first = first_bucket(request.start).max(dataset.history_start());
    let end = request.end.min(now);
    let hours = if first < end {
        usize::try_from(((end - first).num_seconds() + 3599) / 3600).unwrap_or(0)
    } else {
        0
    };
    let capacity = hours
        .saturating_mul(writer.entities.len())
        .saturating_mul(writer.row_bytes())
        .saturating_add(64)
        .min(MAX_PRESIZE_BYTES);
    let mut body = String::with_capacity(capacity);
    body.push_str(ROWS_PREFIX);
    let mut hour = first;
    while hour < end {
        writer.write_hour(&mut body, dataset, hour, now, false);
        hour += Duration::hours(1);
    }
    body.push_str("]}");
    body
}

/// The first bucket start at or after `start`.
fn first_bucket(start: DateTime<Utc>) -> DateTime<Utc> {
    let floor = data::hour_floor(start);
    if floor < start {
        floor + Duration::hours(1)
    } else {
        floor
    }
}

/// Status 200 and headers, the first half of `body`, then a body error: hyper aborts the
/// connection, so the chunked body never gets its terminating chunk and the client sees a
/// broken body rather than a clean end.
fn cut_off_response(body: Vec<u8>) -> Response {
    let mut rest = Bytes::from(body);
    let first_half = rest.split_to(rest.len() / 2);
    let chunks = stream::unfold(Some(first_half), |pending| async move {
        match pending {
            Some(first_half) => Some((Ok(first_half), None)),
            None => {
                // Give the connection a turn to flush the first half before the abort, so
                // clients really receive a partial body.
                tokio::task::yield_now().await;
                let error = std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "simulated connection drop",
                );
                Some((Err(error), None))
            }
        }
    });
    // Hyper stops polling a body after its first error, so the stream never needs to end.
    json_response(StatusCode::OK, axum::body::Body::from_stream(chunks))
}

/// A valid envelope prefix, then rows generated lazily chunk by chunk, hour after hour from
/// `start`, forever: the server holds one chunk at a time, however long the client reads.
fn endless_response(
    dataset: Arc<Dataset>,
    mut writer: RowWriter,
    start: DateTime<Utc>,
) -> Response {
    if writer.entities.is_empty() {
        // Every entity removed (or none configured): stream a stand-in so chunks still grow.
        writer.entities.push(EntityFields {
            index: usize::MAX,
            fields: "\"zoneId\":\"00000000-0000-4000-8000-000000000000\",\"name\":\"Endless\""
                .to_owned(),
            bad_fields: "\"zoneId\":null,\"name\":\"Endless\"".to_owned(),
        });
    }
    let first = data::hour_floor(start);
    let chunks = stream::unfold(
        (dataset, writer, first, true),
        move |(dataset, mut writer, mut hour, prefix)| async move {
            let mut chunk = String::with_capacity(ENDLESS_CHUNK_BYTES + 1024);
            if prefix {
                chunk.push_str(ROWS_PREFIX);
            }
            while chunk.len() < ENDLESS_CHUNK_BYTES {
                // Rows of complete hours, as the dataset has them once the hour is over.
                let over = hour.checked_add_signed(Duration::hours(1));
                writer.write_hour(&mut chunk, &dataset, hour, over.unwrap_or(hour), true);
                // At chrono's end of time, start over: the rows stay valid, just repeat.
                hour = over.unwrap_or(first);
            }
            let chunk = Ok::<_, std::io::Error>(Bytes::from(chunk));
            Some((chunk, (dataset, writer, hour, false)))
        },
    );
    json_response(StatusCode::OK, axum::body::Body::from_stream(chunks))
}

/// Appends the requested metrics (and, on occupancy rows, always both counts); with `bad`, the
/// first of them is the string `"n/a"`.
fn write_metrics(
    body: &mut String,
    metrics: Metrics,
    counts: Option<(i64, i64)>,
    occupancy: Option<OccupancyValues>,
    bad: bool,
) {
    let mut spoil = bad;
    // Writing into a String cannot fail, so the fmt::Results are ignored.
    let mut field = |name: &str, value: &dyn std::fmt::Display| {
        if std::mem::take(&mut spoil) {
            let _ = write!(body, ",\"{name}\":\"n/a\"");
        } else {
            let _ = write!(body, ",\"{name}\":{value}");
        }
    };
    if let Some(o) = occupancy {
        if metrics.max {
            field("maxoccupancy", &o.max);
        }
        if metrics.min {
            field("minoccupancy", &o.min);
        }
        if metrics.avg {
            // A decimal string, as the real API sends it.
            field("avgoccupancy", &format_args!("\"{:.1}\"", o.avg));
        }
    }
    // Occupancy rows carry both counts whatever `metrics` asks for, as the
    // real API's do; traffic rows carry the requested ones.
    let every_count = occupancy.is_some();
    let (ins, outs) = counts.unwrap_or_default();
    if metrics.ins || every_count {
        field("sumins", &ins);
    }
    if metrics.outs || every_count {
        field("sumouts", &outs);
    }
}

/// Serves the simulator on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    options: SimulatorOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_state(listener, Arc::new(SimulatorState::new(options)), shutdown).await
}

async fn serve_state(
    listener: TcpListener,
    state: Arc<SimulatorState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A running simulator. Dropping it stops the server.
pub struct SimulatorHandle {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// `base_url` + `/oauth/token`
    pub auth_url: String,
    pub stats: Arc<Stats>,
    pub dataset: Arc<Dataset>,
    state: Arc<SimulatorState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl SimulatorHandle {
    pub fn set_faults(&self, faults: Faults) {
        self.state.set_faults(faults);
    }

    /// Moves the simulated clock (e.g. forward between two syncs).
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.state.set_now(now);
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.state.now()
    }

    /// See [`SimulatorState::remove_entity`].
    pub fn remove_entity(&self, id: &str) {
        self.state.remove_entity(id);
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            // The server may already be gone; nothing to do then.
            let _ = sender.send(());
        }
    }
}

/// Binds 127.0.0.1 on a free port and serves in a background task. The listener is bound
/// before this returns, so clients can connect immediately.
pub async fn spawn(options: SimulatorOptions) -> std::io::Result<SimulatorHandle> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = listener.local_addr()?;
    let state = Arc::new(SimulatorState::new(options));
    let (sender, receiver) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_state(listener, state.clone(), async move {
        // A dropped sender also means "stop".
        let _ = receiver.await;
    }));
    let base_url = format!("http://{address}");
    Ok(SimulatorHandle {
        auth_url: format!("{base_url}{TOKEN_PATH}"),
        base_url,
        stats: state.stats.clone(),
        dataset: state.dataset.clone(),
        state,
        shutdown: Some(sender),
        task: Some(task),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().build().unwrap()
    }

    async fn mint(client: &reqwest::Client, sim: &SimulatorHandle) -> String {
        let response = client
            .post(&sim.auth_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "sim-client"),
                ("client_secret", "sim-secret"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get(
        client: &reqwest::Client,
        sim: &SimulatorHandle,
        path: &str,
        token: Option<&str>,
    ) -> (u16, HeaderMap, String) {
        let mut request = client.get(format!("{}{path}", sim.base_url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    fn traffic_path(start: &str, end: &str) -> String {
        format!(
            "/api/data/traffic?relativeDate=custom&startDate={start}&endDate={end}\
             &dateGroupings=hour&entityType=zone&metrics=ins,outs"
        )
    }

    async fn send(
        client: &reqwest::Client,
        sim: &SimulatorHandle,
        path: &str,
        token: &str,
    ) -> reqwest::Response {
        client
            .get(format!("{}{path}", sim.base_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Reads a body chunk by chunk; the error, if the body broke off.
    async fn read_body(mut response: reqwest::Response) -> (Vec<u8>, Option<reqwest::Error>) {
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => return (bytes, None),
                Err(error) => return (bytes, Some(error)),
            }
        }
    }

    fn results(body: &str) -> Vec<Value> {
        let value: Value = serde_json::from_str(body).unwrap();
        assert_eq!(value["messages"], json!([]));
        value["results"].as_array().unwrap().clone()
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let options = SimulatorOptions::default();
        assert_eq!(options.history_start, at("2025-01-01T00:00:00Z"));
        assert_eq!(options.now, at("2025-03-15T10:30:00Z"));
        assert_eq!(
            options.outage,
            Some((at("2025-01-21T08:00:00Z"), at("2025-01-21T14:00:00Z")))
        );
        assert!(!format!("{options:?}").contains("sim-secret"));
        assert_eq!(
            (options.settle_lag_secs, options.outage_backfilled_at),
            (0, None)
        );
        let faults = Faults::default();
        assert_eq!(faults.retry_after_secs, 1);
        assert!(!faults.retry_after_http_date && !faults.endless_body && !faults.wrong_shape);
        assert_eq!(
            (
                faults.drop_connection_rate,
                faults.drop_connection_next,
                faults.token_rate_limit_next,
                faults.bad_rows_every
            ),
            (0.0, 0, 0, 0)
        );
    }

    #[tokio::test]
    async fn token_endpoint_accepts_json_and_form_and_rejects_bad_input() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let response = client
            .post(&sim.auth_url)
            .header("content-type", "application/json")
            .body(r#"{"grant_type":"client_credentials","client_id":"sim-client","client_secret":"sim-secret"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        for key in ["access_token", "refresh_token"] {
            let token = body[key].as_str().unwrap();
            assert_eq!(token.len(), 64);
            assert!(
                token
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["token_type"], "Bearer");

        let form_token = mint(&client, &sim).await;
        assert_ne!(form_token, body["access_token"].as_str().unwrap());

        let bad = [
            (
                "grant_type=client_credentials&client_id=sim-client&client_secret=nope",
                "application/x-www-form-urlencoded",
                401,
            ),
            (
                "grant_type=password&client_id=sim-client&client_secret=sim-secret",
                "application/x-www-form-urlencoded",
                400,
            ),
            (
                "client_id=sim-client&client_secret=sim-secret",
                "application/x-www-form-urlencoded",
                400,
            ),
            ("{not json", "application/json", 400),
        ];
        for (body, content_type, status) in bad {
            let response = client
                .post(&sim.auth_url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{body}");
            if status == 401 {
                let error: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
                assert_eq!(
                    error,
                    json!({"error": "access_denied", "error_description": "Unauthorized"})
                );
            }
        }
        assert_eq!(sim.stats.token_mints(), 2);
        assert_eq!(sim.stats.api_requests(), 0);
        assert_eq!(sim.stats.requests_log().len(), 6);
    }

    #[tokio::test]
    async fn api_requires_a_live_token() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let (status, _, body) = get(&client, &sim, "/api/zone", None).await;
        assert_eq!(status, 401);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"message": "Unauthorized"})
        );
        let (status, _, _) = get(&client, &sim, "/api/zone", Some("deadbeef")).await;
        assert_eq!(status, 401);
        let token = mint(&client, &sim).await;
        let (status, _, _) = get(&client, &sim, "/api/zone", Some(&token)).await;
        assert_eq!(status, 200);
        assert_eq!(sim.stats.api_requests(), 3);
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn expired_token_is_rejected() {
        let options = SimulatorOptions {
            token_lifetime_secs: 0,
            ..SimulatorOptions::default()
        };
        let sim = spawn(options).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        let (status, _, _) = get(&client, &sim, "/api/location", Some(&token)).await;
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn one_live_token_invalidates_older_tokens() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let first = mint(&client, &sim).await;
        let second = mint(&client, &sim).await;
        assert_eq!(get(&client, &sim, "/api/zone", Some(&first)).await.0, 200);
        sim.set_faults(Faults {
            one_live_token: true,
            ..Faults::default()
        });
        let third = mint(&client, &sim).await;
        assert_eq!(get(&client, &sim, "/api/zone", Some(&first)).await.0, 401);
        assert_eq!(get(&client, &sim, "/api/zone", Some(&second)).await.0, 401);
        assert_eq!(get(&client, &sim, "/api/zone", Some(&third)).await.0, 200);
    }

    #[tokio::test]
    async fn reference_endpoints_use_both_list_shapes() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        let mut location_id = String::new();
        for (path, bare, len) in [
            ("/api/location", true, 2),
            ("/api/zone", true, 6),
            ("/api/site", false, 2),
            ("/api/space", false, 3),
            ("/api/sensor", false, 6),
        ] {
            let (status, _, body) = get(&client, &sim, path, Some(&token)).await;
            assert_eq!(status, 200);
            let value: Value = serde_json::from_str(&body).unwrap();
            let items = if bare { &value } else { &value["results"] };
            assert_eq!(items.as_array().unwrap().len(), len, "{path}");
            if path == "/api/location" {
                location_id = items[0]["locationId"].as_str().unwrap().to_owned();
            }
        }
        let (status, _, body) = get(
            &client,
            &sim,
            &format!("/api/location/{location_id}"),
            Some(&token),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["locationId"],
            location_id
        );
        assert_eq!(
            get(&client, &sim, "/api/location/nope", Some(&token))
                .await
                .0,
            404
        );
        assert_eq!(
            get(&client, &sim, "/api/nothing", Some(&token)).await.0,
            404
        );
    }

    #[tokio::test]
    async fn one_day_of_traffic_has_a_row_per_active_zone_and_hour_in_order() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        let day = at("2025-01-08T00:00:00Z");
        let active = (0..6)
            .filter(|i| sim.dataset.zone_first_hour(*i).unwrap() <= day)
            .count();
        assert!(active < 6, "some zone must start later");
        let path = traffic_path("2025-01-08T00:00:00Z", "2025-01-09T00:00:00.000Z");
        let (status, _, body) = get(&client, &sim, &path, Some(&token)).await;
        assert_eq!(status, 200);
        let rows = results(&body);
        assert_eq!(rows.len(), 24 * active);
        let keys: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
                assert_eq!(keys.len(), 5);
                assert!(r["sumins"].is_i64() && r["sumouts"].is_i64() && r["name"].is_string());
                (
                    r["recordDate_hour_1"].as_str().unwrap().to_owned(),
                    r["zoneId"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(keys[0].0, "2025-01-08T00:00:00.000Z");
        assert_eq!(sim.stats.data_requests(), 1);
    }

    #[tokio::test]
    async fn end_date_is_exclusive_and_date_only_bounds_are_local() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-08T00:00:00Z");
        let rows = results(&get(&client, &sim, &path, Some(&token)).await.2);
        assert_eq!(rows.len(), 168 * 6);
        let zone = sim.dataset.zone_id(3).unwrap();
        assert_eq!(rows.iter().filter(|r| r["zoneId"] == zone).count(), 168);

        let path = traffic_path("2025-02-01", "2025-02-02");
        let rows = results(&get(&client, &sim, &path, Some(&token)).await.2);
        assert_eq!(rows.len(), 24 * 6);
        assert_eq!(rows[0]["recordDate_hour_1"], "2025-02-01T05:00:00.000Z");
        assert_eq!(
            rows[rows.len() - 1]["recordDate_hour_1"],
            "2025-02-02T04:00:00.000Z"
        );

        let path = traffic_path("2025-02-02T00:00:00Z", "2025-02-01T00:00:00Z");
        assert!(results(&get(&client, &sim, &path, Some(&token)).await.2).is_empty());
    }

    #[tokio::test]
    async fn rows_stop_at_the_simulated_clock() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        let path = traffic_path("2025-03-15T00:00:00Z", "2025-03-16T00:00:00Z");
        let rows = results(&get(&client, &sim, &path, Some(&token)).await.2);
        assert_eq!(rows.len(), 11 * 6);
        assert_eq!(
            rows[rows.len() - 1]["recordDate_hour_1"],
            "2025-03-15T10:00:00.000Z"
        );
        sim.set_now(at("2025-03-15T12:00:00Z"));
        let rows = results(&get(&client, &sim, &path, Some(&token)).await.2);
        assert_eq!(rows.len(), 12 * 6);
    }

    #[tokio::test]
    async fn occupancy_rows_carry_requested_metrics_both_counts_and_a_string_average() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        let path = "/api/data/occupancy?relativeDate=custom&startDate=2025-02-03T00:00:00Z\
                    &endDate=2025-02-04T00:00:00Z&dateGroupings=hour&entityType=space\
                    &metrics=occupancy(max),occupancy(min),occupancy(avg)";
        let (status, _, body) = get(&client, &sim, path, Some(&token)).await;
        assert_eq!(status, 200);
        let rows = results(&body);
        assert_eq!(rows.len(), 24 * 3);
        for row in &rows {
            let avg: f64 = row["avgoccupancy"].as_str().unwrap().parse().unwrap();
            let (min, max) = (
                row["minoccupancy"].as_i64().unwrap(),
                row["maxoccupancy"].as_i64().unwrap(),
            );
            assert!(min as f64 <= avg && avg <= max as f64);
            // Both counts whatever `metrics` asks for, as the real API sends them.
            assert!(
                row["sumins"].is_i64() && row["sumouts"].is_i64() && row["spaceId"].is_string()
            );
        }
        let path = path.replace("occupancy(min),occupancy(avg)", "ins,outs");
        let rows = results(&get(&client, &sim, &path, Some(&token)).await.2);
        assert!(rows[0]["sumins"].is_i64() && rows[0].get("avgoccupancy").is_none());
    }

    #[tokio::test]
    async fn invalid_data_requests_are_rejected() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        let good = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");
        let cases = [
            (good.replace("relativeDate=custom&", ""), 500),
            (
                good.replace("relativeDate=custom", "relativeDate=today"),
                500,
            ),
            (good.replace("dateGroupings=hour", "dateGroupings=day"), 400),
            (good.replace("entityType=zone", "entityType=space"), 400),
            (
                good.replace("metrics=ins,outs", "metrics=ins,occupancy(max)"),
                400,
            ),
            (good.replace("2025-02-01T00:00:00Z", "yesterday-ish"), 400),
            (good.replace("/traffic", "/occupancy"), 400),
        ];
        for (path, status) in cases {
            assert_eq!(
                get(&client, &sim, &path, Some(&token)).await.0,
                status,
                "{path}"
            );
        }
        let today =
            "/api/data/traffic?relativeDate=today&dateGroupings=hour&entityType=zone&metrics=ins";
        let rows = results(&get(&client, &sim, today, Some(&token)).await.2);
        // Local day 2025-03-15 (daylight time since March 9) starts 04:00Z; the clock is 10:30Z.
        assert_eq!(rows.len(), 7 * 6);
    }

    #[tokio::test]
    async fn faults_fire_in_sequence() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");

        sim.set_faults(Faults {
            fail_next_requests: 2,
            ..Faults::default()
        });
        assert_eq!(get(&client, &sim, "/api/zone", Some(&token)).await.0, 503);
        assert_eq!(get(&client, &sim, &path, Some(&token)).await.0, 503);
        assert_eq!(get(&client, &sim, &path, Some(&token)).await.0, 200);

        sim.set_faults(Faults {
            rate_limit_every: 2,
            ..Faults::default()
        });
        assert_eq!(get(&client, &sim, &path, Some(&token)).await.0, 200);
        let (status, headers, _) = get(&client, &sim, &path, Some(&token)).await;
        assert_eq!(status, 429);
        assert_eq!(headers.get("retry-after").unwrap(), "1");
        assert_eq!(get(&client, &sim, &path, Some(&token)).await.0, 200);

        sim.set_faults(Faults {
            max_range_days: Some(30),
            ..Faults::default()
        });
        let long = traffic_path("2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z");
        let (status, _, body) = get(&client, &sim, &long, Some(&token)).await;
        assert_eq!(
            (status, body.as_str()),
            (400, r#"{"messages":["range too long"]}"#)
        );
        let ok = traffic_path("2025-01-01T00:00:00Z", "2025-01-31T00:00:00Z");
        assert_eq!(get(&client, &sim, &ok, Some(&token)).await.0, 200);

        sim.set_faults(Faults {
            malformed_body_rate: 1.0,
            ..Faults::default()
        });
        let (status, _, body) = get(&client, &sim, &path, Some(&token)).await;
        assert_eq!(status, 200);
        assert!(serde_json::from_str::<Value>(&body).is_err());

        sim.set_faults(Faults {
            fail_data_after: Some(1),
            ..Faults::default()
        });
        assert_eq!(get(&client, &sim, &path, Some(&token)).await.0, 200);
        assert_eq!(get(&client, &sim, &path, Some(&token)).await.0, 500);
        assert_eq!(get(&client, &sim, "/api/zone", Some(&token)).await.0, 200);

        sim.set_faults(Faults {
            server_error_rate: 1.0,
            ..Faults::default()
        });
        assert_eq!(get(&client, &sim, "/api/site", Some(&token)).await.0, 500);

        let log = sim.stats.requests_log();
        assert_eq!(log.last().unwrap().status, 500);
        assert_eq!(log.last().unwrap().path, "/api/site");
        assert!(
            log.iter()
                .any(|e| e.status == 429 && e.query.contains("entityType=zone"))
        );
    }

    #[tokio::test]
    async fn server_error_rate_is_deterministic() {
        async fn pattern() -> Vec<u16> {
            let sim = spawn(SimulatorOptions::default()).await.unwrap();
            let client = client();
            let token = mint(&client, &sim).await;
            sim.set_faults(Faults {
                server_error_rate: 0.5,
                ..Faults::default()
            });
            let mut statuses = Vec::new();
            for _ in 0..20 {
                statuses.push(get(&client, &sim, "/api/zone", Some(&token)).await.0);
            }
            statuses
        }
        let first = pattern().await;
        assert_eq!(first, pattern().await);
        assert!(first.contains(&500) && first.contains(&200));
    }

    #[tokio::test]
    async fn settling_hours_grow_as_the_clock_advances() {
        let options = SimulatorOptions {
            settle_lag_secs: 1800,
            now: at("2025-03-14T18:00:00Z"),
            ..SimulatorOptions::default()
        };
        let sim = spawn(options).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        let hour = at("2025-03-14T17:00:00Z");
        let path = traffic_path("2025-03-14T17:00:00Z", "2025-03-14T18:00:00Z");
        let occupancy_path = "/api/data/occupancy?relativeDate=custom\
            &startDate=2025-03-14T17:00:00Z&endDate=2025-03-14T18:00:00Z&dateGroupings=hour\
            &entityType=space&metrics=occupancy(max),ins";
        let final_values = Dataset::new(
            7,
            6,
            3,
            at("2025-01-01T00:00:00Z"),
            SimulatorOptions::default().outage,
        );
        let later = at("2025-03-20T00:00:00Z");
        let full: i64 = (0..6)
            .map(|z| final_values.traffic(z, hour, later).unwrap().0)
            .sum();
        assert!(full > 100, "a busy hour is needed, got {full}");

        let mut sums = Vec::new();
        let mut occupancy_sums = Vec::new();
        for now in [
            "2025-03-14T18:00:00Z",
            "2025-03-14T18:15:00Z",
            "2025-03-14T18:30:00Z",
        ] {
            sim.set_now(at(now));
            let rows = results(&get(&client, &sim, &path, Some(&token)).await.2);
            assert_eq!(rows.len(), 6);
            for row in &rows {
                let zone = (0..6)
                    .find(|z| Some(row["zoneId"].as_str().unwrap()) == sim.dataset.zone_id(*z))
                    .unwrap();
                let (ins, outs) = sim.dataset.traffic(zone, hour, at(now)).unwrap();
                assert_eq!(
                    (row["sumins"].as_i64(), row["sumouts"].as_i64()),
                    (Some(ins), Some(outs))
                );
            }
            sums.push(
                rows.iter()
                    .map(|r| r["sumins"].as_i64().unwrap())
                    .sum::<i64>(),
            );
            let rows = results(&get(&client, &sim, occupancy_path, Some(&token)).await.2);
            occupancy_sums.push(
                rows.iter()
                    .map(|r| r["maxoccupancy"].as_i64().unwrap() + r["sumins"].as_i64().unwrap())
                    .sum::<i64>(),
            );
        }
        // 3600/5400 of the hour is in when it ends, 4500/5400 a quarter later, all after the lag.
        assert!(sums[0] < sums[1] && sums[1] < sums[2], "{sums:?}");
        assert_eq!(sums[2], full);
        assert!(
            sums[0] * 3 <= full * 2 && sums[0] * 3 > full * 2 - 3 * 6,
            "{sums:?}"
        );
        assert!(
            occupancy_sums[0] < occupancy_sums[1] && occupancy_sums[1] < occupancy_sums[2],
            "{occupancy_sums:?}"
        );
    }

    #[tokio::test]
    async fn outage_is_backfilled_at_the_configured_instant() {
        let options = SimulatorOptions {
            now: at("2025-02-15T00:00:00Z"),
            outage_backfilled_at: Some(at("2025-03-01T00:00:00Z")),
            ..SimulatorOptions::default()
        };
        let sim = spawn(options).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        let path = traffic_path("2025-01-21T00:00:00Z", "2025-01-22T00:00:00Z");
        // Zones 0, 2 and 4 belong to the outage site and miss its six hours.
        let rows = results(&get(&client, &sim, &path, Some(&token)).await.2);
        assert_eq!(rows.len(), 24 * 6 - 3 * 6);
        sim.set_now(at("2025-02-28T23:59:59Z"));
        let rows = results(&get(&client, &sim, &path, Some(&token)).await.2);
        assert_eq!(rows.len(), 24 * 6 - 3 * 6);
        sim.set_now(at("2025-03-01T00:00:00Z"));
        let rows = results(&get(&client, &sim, &path, Some(&token)).await.2);
        assert_eq!(rows.len(), 24 * 6);
        let outage_zone = sim.dataset.zone_id(0).unwrap();
        let backfilled = rows
            .iter()
            .filter(|r| {
                r["zoneId"] == outage_zone && r["recordDate_hour_1"] == "2025-01-21T10:00:00.000Z"
            })
            .count();
        assert_eq!(backfilled, 1);
    }

    #[tokio::test]
    async fn removed_entities_disappear_from_reference_and_data() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        let list = |body: &str, bare: bool| -> Vec<Value> {
            let value: Value = serde_json::from_str(body).unwrap();
            let items = if bare {
                value
            } else {
                value["results"].clone()
            };
            items.as_array().unwrap().clone()
        };
        let mut removed = Vec::new();
        for (path, key, bare) in [
            ("/api/location", "locationId", true),
            ("/api/site", "siteId", false),
            ("/api/zone", "zoneId", true),
            ("/api/space", "spaceId", false),
            ("/api/sensor", "sensorId", false),
        ] {
            let items = list(&get(&client, &sim, path, Some(&token)).await.2, bare);
            let id = items[1][key].as_str().unwrap().to_owned();
            sim.remove_entity(&id);
            let after = list(&get(&client, &sim, path, Some(&token)).await.2, bare);
            assert_eq!(after.len(), items.len() - 1, "{path}");
            assert!(after.iter().all(|item| item[key] != id.as_str()), "{path}");
            removed.push(id);
        }
        assert_eq!(
            get(
                &client,
                &sim,
                &format!("/api/location/{}", removed[0]),
                Some(&token)
            )
            .await
            .0,
            404
        );
        let (zone_id, space_id) = (&removed[2], &removed[3]);
        let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");
        let rows = results(&get(&client, &sim, &path, Some(&token)).await.2);
        assert_eq!(rows.len(), 24 * 5);
        assert!(rows.iter().all(|r| r["zoneId"] != zone_id.as_str()));
        let occupancy = "/api/data/occupancy?relativeDate=custom&startDate=2025-02-03T00:00:00Z\
                         &endDate=2025-02-04T00:00:00Z&dateGroupings=hour&entityType=space\
                         &metrics=occupancy(max)";
        let rows = results(&get(&client, &sim, occupancy, Some(&token)).await.2);
        assert_eq!(rows.len(), 24 * 2);
        assert!(rows.iter().all(|r| r["spaceId"] != space_id.as_str()));
    }

    #[tokio::test]
    async fn date_only_bounds_follow_eastern_daylight_time() {
        let options = SimulatorOptions {
            now: at("2025-12-01T00:00:00Z"),
            ..SimulatorOptions::default()
        };
        let sim = spawn(options).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        for (start, end, hours, first, last) in [
            (
                "2025-03-09",
                "2025-03-10",
                23,
                "2025-03-09T05:00:00.000Z",
                "2025-03-10T03:00:00.000Z",
            ),
            (
                "2025-07-01",
                "2025-07-02",
                24,
                "2025-07-01T04:00:00.000Z",
                "2025-07-02T03:00:00.000Z",
            ),
            // 25 hours long, but the repeated 01:00 is one bucket: 24 buckets.
            (
                "2025-11-02",
                "2025-11-03",
                24,
                "2025-11-02T04:00:00.000Z",
                "2025-11-03T04:00:00.000Z",
            ),
        ] {
            let rows = results(
                &get(&client, &sim, &traffic_path(start, end), Some(&token))
                    .await
                    .2,
            );
            assert_eq!(rows.len(), hours * 6, "{start}");
            assert_eq!(rows[0]["recordDate_hour_1"], first, "{start}");
            assert_eq!(rows[rows.len() - 1]["recordDate_hour_1"], last, "{start}");
        }
        // Explicit UTC bounds stay exact across a change; the UTC day has no 05:00Z bucket,
        // as a recorded real account has no bucket where its local hour repeats.
        let path = traffic_path("2025-11-02T00:00:00Z", "2025-11-03T00:00:00Z");
        let rows = results(&get(&client, &sim, &path, Some(&token)).await.2);
        assert_eq!(rows.len(), 23 * 6);
        assert!(
            rows.iter()
                .all(|row| row["recordDate_hour_1"] != "2025-11-02T05:00:00.000Z")
        );
        // Relative local days are DST-aware too: the autumn change day has 25 hours in 24
        // buckets.
        sim.set_now(at("2025-11-03T12:00:00Z"));
        let yesterday = "/api/data/traffic?relativeDate=yesterday&dateGroupings=hour&entityType=zone&metrics=ins";
        let rows = results(&get(&client, &sim, yesterday, Some(&token)).await.2);
        assert_eq!(rows.len(), 24 * 6);
        assert_eq!(rows[0]["recordDate_hour_1"], "2025-11-02T04:00:00.000Z");
    }

    #[tokio::test]
    async fn dropped_connections_break_the_body_after_the_headers() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-03T00:00:00Z");
        let full = get(&client, &sim, &path, Some(&token)).await.2;

        sim.set_faults(Faults {
            drop_connection_next: 2,
            ..Faults::default()
        });
        for _ in 0..2 {
            let response = send(&client, &sim, &path, &token).await;
            assert_eq!(response.status(), 200);
            let (partial, error) = read_body(response).await;
            assert!(error.is_some(), "the body must break, not end cleanly");
            // The first half arrives, then the connection is gone.
            assert!(!partial.is_empty() && partial.len() < full.len());
            assert!(full.as_bytes().starts_with(&partial));
        }
        let (status, _, body) = get(&client, &sim, &path, Some(&token)).await;
        assert_eq!((status, body.len()), (200, full.len()));

        sim.set_faults(Faults {
            drop_connection_rate: 1.0,
            ..Faults::default()
        });
        let (_, error) = read_body(send(&client, &sim, &path, &token).await).await;
        assert!(error.is_some());
        // Reference endpoints are never cut off.
        assert_eq!(get(&client, &sim, "/api/zone", Some(&token)).await.0, 200);
        let log = sim.stats.requests_log();
        assert!(
            log.iter()
                .filter(|e| e.path == "/api/data/traffic")
                .all(|e| e.status == 200)
        );
    }

    #[tokio::test]
    async fn drop_connection_rate_is_deterministic() {
        async fn pattern() -> Vec<bool> {
            let sim = spawn(SimulatorOptions::default()).await.unwrap();
            let client = client();
            let token = mint(&client, &sim).await;
            sim.set_faults(Faults {
                drop_connection_rate: 0.5,
                ..Faults::default()
            });
            let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-01T06:00:00Z");
            let mut broken = Vec::new();
            for _ in 0..16 {
                let response = send(&client, &sim, &path, &token).await;
                broken.push(read_body(response).await.1.is_some());
            }
            broken
        }
        let first = pattern().await;
        assert_eq!(first, pattern().await);
        assert!(first.contains(&true) && first.contains(&false));
    }

    #[tokio::test]
    async fn endless_body_streams_valid_rows_without_end() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        sim.set_faults(Faults {
            endless_body: true,
            ..Faults::default()
        });
        let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");
        let mut response = send(&client, &sim, &path, &token).await;
        assert_eq!(response.status(), 200);
        let mut received = Vec::new();
        // Far more than the one day asked for (about 20 KB): the body goes on.
        while received.len() < 1 << 20 {
            let chunk = response
                .chunk()
                .await
                .unwrap()
                .expect("the body never ends");
            received.extend_from_slice(&chunk);
        }
        drop(response);
        let text = String::from_utf8(received).unwrap();
        assert!(text.starts_with(
            r#"{"messages":[],"results":[{"recordDate_hour_1":"2025-02-01T00:00:00.000Z","#
        ));
        // Names hold no braces, so the last `}` closes a row: what came so far is valid rows.
        let complete = &text[..=text.rfind('}').unwrap()];
        let rows = results(&format!("{complete}]}}"));
        assert!(rows.len() > 5_000);
        assert!(
            rows.iter()
                .all(|r| r["zoneId"].is_string() && r["sumins"].is_i64())
        );
        let hours: Vec<&str> = rows
            .iter()
            .map(|r| r["recordDate_hour_1"].as_str().unwrap())
            .collect();
        assert!(hours.windows(2).all(|w| w[0] <= w[1]));

        // Other requests are served meanwhile.
        sim.set_faults(Faults::default());
        assert_eq!(get(&client, &sim, &path, Some(&token)).await.0, 200);
    }

    #[tokio::test]
    async fn token_rate_limit_and_retry_after_forms() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        sim.set_faults(Faults {
            token_rate_limit_next: 2,
            retry_after_secs: 7,
            ..Faults::default()
        });
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client"),
            ("client_secret", "sim-secret"),
        ];
        for _ in 0..2 {
            let response = client.post(&sim.auth_url).form(&form).send().await.unwrap();
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers().get("retry-after").unwrap(), "7");
        }
        assert_eq!(sim.stats.token_mints(), 0);
        let token = mint(&client, &sim).await;
        assert_eq!(sim.stats.token_mints(), 1);

        sim.set_faults(Faults {
            rate_limit_every: 1,
            retry_after_secs: 30,
            retry_after_http_date: true,
            ..Faults::default()
        });
        let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");
        let before = Utc::now();
        let (status, headers, _) = get(&client, &sim, &path, Some(&token)).await;
        let after = Utc::now();
        assert_eq!(status, 429);
        let text = headers.get("retry-after").unwrap().to_str().unwrap();
        assert!(text.ends_with(" GMT") && text.len() == 29, "{text}");
        let when = DateTime::parse_from_rfc2822(text)
            .unwrap()
            .with_timezone(&Utc);
        assert!(when >= before + Duration::seconds(29) && when <= after + Duration::seconds(30));

        let faults = Faults {
            retry_after_secs: 7,
            retry_after_http_date: true,
            ..Faults::default()
        };
        assert_eq!(
            retry_after(&faults, at("1994-11-06T08:49:30Z")),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        let faults = Faults {
            retry_after_secs: u64::MAX,
            ..faults
        };
        assert_eq!(
            retry_after(&faults, Utc::now()),
            u64::MAX.to_string().as_str()
        );
    }

    #[tokio::test]
    async fn bad_rows_every_spoils_every_nth_row() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        sim.set_faults(Faults {
            bad_rows_every: 4,
            ..Faults::default()
        });
        let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");
        let rows = results(&get(&client, &sim, &path, Some(&token)).await.2);
        assert_eq!(rows.len(), 24 * 6);
        for (i, row) in rows.iter().enumerate() {
            if (i + 1) % 4 == 0 {
                assert!(row["zoneId"].is_null(), "{row}");
                assert_eq!(row["sumins"], "n/a");
                assert!(row["sumouts"].is_i64() && row["name"].is_string());
            } else {
                assert!(row["zoneId"].is_string() && row["sumins"].is_i64(), "{row}");
            }
        }
        // Counting restarts with each response, and the first metric is the first one written.
        sim.set_faults(Faults {
            bad_rows_every: 1,
            ..Faults::default()
        });
        let occupancy = "/api/data/occupancy?relativeDate=custom&startDate=2025-02-03T00:00:00Z\
                         &endDate=2025-02-03T02:00:00Z&dateGroupings=hour&entityType=space\
                         &metrics=occupancy(avg),occupancy(min),ins";
        let rows = results(&get(&client, &sim, occupancy, Some(&token)).await.2);
        assert_eq!(rows.len(), 2 * 3);
        for row in &rows {
            assert!(row["spaceId"].is_null());
            assert_eq!(row["minoccupancy"], "n/a");
            assert!(
                row["avgoccupancy"].is_string() && row["sumins"].is_i64(),
                "{row}"
            );
        }
    }

    #[tokio::test]
    async fn wrong_shape_puts_an_object_where_rows_belong() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let token = mint(&client, &sim).await;
        sim.set_faults(Faults {
            wrong_shape: true,
            ..Faults::default()
        });
        let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");
        let (status, headers, body) = get(&client, &sim, &path, Some(&token)).await;
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"messages":[],"results":{"error":"x"}}"#)
        );
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert_eq!(get(&client, &sim, "/api/zone", Some(&token)).await.0, 200);
    }

    #[tokio::test]
    async fn issued_tokens_lists_every_minted_token() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let mut minted = Vec::new();
        for _ in 0..2 {
            let response = client
                .post(&sim.auth_url)
                .header("content-type", "application/json")
                .body(
                    json!({
                        "grant_type": "client_credentials",
                        "client_id": "sim-client",
                        "client_secret": "sim-secret",
                    })
                    .to_string(),
                )
                .send()
                .await
                .unwrap();
            let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
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
