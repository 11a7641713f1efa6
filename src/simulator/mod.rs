//! Built-in SenSource "Vea" API simulator: options, shared state, the axum router, serve/spawn
//! and request statistics. The dataset itself lives in [`data`].

pub mod data;

use std::collections::HashMap;
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
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use data::{Dataset, OccupancyValues};

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

fn utc(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// How the simulator behaves. Everything but `faults` and `now` is fixed for the server's life.
#[derive(Clone)]
pub struct SimulatorOptions {
    pub client_id: String,
    pub client_secret: String,
    pub zones: usize,
    pub spaces: usize,
    /// The earliest entity's first hour with data.
    pub history_start: DateTime<Utc>,
    /// Simulated clock: no rows at/after it; the hour containing it is partial.
    pub now: DateTime<Utc>,
    /// `expires_in`; expiry is measured in real elapsed time since minting.
    pub token_lifetime_secs: u64,
    pub seed: u64,
    /// `[start, end)` of a site outage: no rows for entities of site 0 (location 0).
    pub outage: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub faults: Faults,
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        let history_start = utc(DEFAULT_HISTORY_START_SECS);
        let outage_day = history_start + Duration::days(20);
        SimulatorOptions {
            client_id: "sim-client".to_owned(),
            client_secret: "sim-secret".to_owned(),
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
            faults: Faults::default(),
        }
    }
}

// Hand-written so a real secret passed to `simulate` never lands in a log line.
impl std::fmt::Debug for SimulatorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorOptions")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("zones", &self.zones)
            .field("spaces", &self.spaces)
            .field("history_start", &self.history_start)
            .field("now", &self.now)
            .field("token_lifetime_secs", &self.token_lifetime_secs)
            .field("seed", &self.seed)
            .field("outage", &self.outage)
            .field("faults", &self.faults)
            .finish()
    }
}

/// Injected failures. Counters (`fail_next_requests`, `rate_limit_every`, `fail_data_after`)
/// and the error RNG restart whenever faults are set, so a test's fault pattern does not depend
/// on how many requests came before.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Added to every API (not token) response.
    pub latency_ms: u64,
    /// Fraction of data/reference requests answered 500 (seeded RNG, deterministic sequence).
    pub server_error_rate: f64,
    /// The next N data/reference requests answer 503, then normal service resumes.
    pub fail_next_requests: u32,
    /// Every Nth data request answers 429 with `Retry-After: 1` (0 = never).
    pub rate_limit_every: u32,
    /// Minting a token invalidates all previous ones.
    pub one_live_token: bool,
    /// Fraction of data responses whose JSON body is cut in half (status stays 200).
    pub malformed_body_rate: f64,
    /// Data requests spanning more than this many days answer 400.
    pub max_range_days: Option<u32>,
    /// After this many successful data requests, every data request answers 500.
    pub fail_data_after: Option<u32>,
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
#[derive(Debug, Default)]
pub struct Stats {
    token_mints: AtomicU64,
    api_requests: AtomicU64,
    data_requests: AtomicU64,
    log: Mutex<Vec<RequestLogEntry>>,
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
}

/// Shared server state: immutable configuration and dataset plus the mutable part.
pub struct SimulatorState {
    client_id: String,
    client_secret: String,
    token_lifetime: StdDuration,
    seed: u64,
    dataset: Arc<Dataset>,
    stats: Arc<Stats>,
    inner: Mutex<Mutable>,
}

impl SimulatorState {
    pub fn new(options: SimulatorOptions) -> SimulatorState {
        let dataset = Dataset::new(
            options.seed,
            options.zones,
            options.spaces,
            options.history_start,
            options.outage,
        );
        SimulatorState {
            client_id: options.client_id,
            client_secret: options.client_secret,
            token_lifetime: StdDuration::from_secs(options.token_lifetime_secs),
            seed: options.seed,
            dataset: Arc::new(dataset),
            stats: Arc::new(Stats::default()),
            inner: Mutex::new(Mutable {
                faults: options.faults,
                now: options.now,
                tokens: HashMap::new(),
                mints: 0,
                rng: fault_rng_seed(options.seed),
                data_successes: 0,
                rate_limit_counter: 0,
            }),
        }
    }

    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Replaces the faults and restarts their counters and RNG.
    pub fn set_faults(&self, faults: Faults) {
        let mut m = lock(&self.inner);
        m.faults = faults;
        m.rng = fault_rng_seed(self.seed);
        m.data_successes = 0;
        m.rate_limit_counter = 0;
    }

    /// Current faults (`fail_next_requests` counts down as it fires).
    pub fn faults(&self) -> Faults {
        lock(&self.inner).faults.clone()
    }

    pub fn set_now(&self, now: DateTime<Utc>) {
        lock(&self.inner).now = now;
    }

    pub fn now(&self) -> DateTime<Utc> {
        lock(&self.inner).now
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
        (access, refresh)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
        else {
            return false;
        };
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
        if kind == EndpointKind::Data
            && let Some(limit) = m.faults.fail_data_after
            && m.data_successes >= limit
        {
            return Some(message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            ));
        }
        // Draw only when the fault is on, so enabling other faults does not shift the sequence.
        let rate = m.faults.server_error_rate;
        if rate > 0.0 && next_unit(&mut m.rng) < rate {
            return Some(message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            ));
        }
        let every = m.faults.rate_limit_every;
        if kind == EndpointKind::Data && every > 0 {
            m.rate_limit_counter += 1;
            if m.rate_limit_counter % every == 0 {
                let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                return Some(response);
            }
        }
        None
    }

    /// Records a successful data response; returns whether its body should be mangled.
    fn data_succeeded(&self) -> bool {
        let mut m = lock(&self.inner);
        m.data_successes = m.data_successes.saturating_add(1);
        let rate = m.faults.malformed_body_rate;
        rate > 0.0 && next_unit(&mut m.rng) < rate
    }
}

fn fault_rng_seed(seed: u64) -> u64 {
    data::splitmix64(seed ^ 0x6661_756c_7473)
}

/// Next value in [0, 1) of the fault RNG (a SplitMix64 stream).
fn next_unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let x = data::splitmix64(*state);
    (x >> 11) as f64 / (1u64 << 53) as f64
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

/// The router. Every request passes through [`observe`] (stats, request log, latency).
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
        || request.client_secret.as_deref() != Some(state.client_secret.as_str())
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

/// Auth, faults, then the body built from the dataset.
fn reference(
    state: &SimulatorState,
    headers: &HeaderMap,
    build: impl FnOnce(&Dataset) -> Option<Value>,
) -> Response {
    if !state.authorized(headers) {
        return unauthorized();
    }
    if let Some(failure) = state.injected_failure(EndpointKind::Reference) {
        return failure;
    }
    match build(&state.dataset) {
        Some(value) => json_value(StatusCode::OK, &value),
        None => message(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `/location` and `/zone` answer bare arrays (confirmed); the others are wrapped in
/// `{"results": ...}` so that clients are exercised on both shapes.
fn wrapped(items: Vec<Value>) -> Option<Value> {
    Some(json!({ "results": items }))
}

async fn locations(State(state): State<Arc<SimulatorState>>, headers: HeaderMap) -> Response {
    reference(&state, &headers, |d| Some(Value::Array(d.locations())))
}

async fn location_by_id(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    reference(&state, &headers, |d| {
        d.locations()
            .into_iter()
            .find(|l| l.get("locationId").and_then(Value::as_str) == Some(id.as_str()))
    })
}

async fn zones(State(state): State<Arc<SimulatorState>>, headers: HeaderMap) -> Response {
    reference(&state, &headers, |d| Some(Value::Array(d.zones())))
}

async fn sites(State(state): State<Arc<SimulatorState>>, headers: HeaderMap) -> Response {
    reference(&state, &headers, |d| wrapped(d.sites()))
}

async fn spaces(State(state): State<Arc<SimulatorState>>, headers: HeaderMap) -> Response {
    reference(&state, &headers, |d| wrapped(d.spaces()))
}

async fn sensors(State(state): State<Arc<SimulatorState>>, headers: HeaderMap) -> Response {
    reference(&state, &headers, |d| wrapped(d.sensors()))
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

/// `YYYY-MM-DD` is local midnight (fixed UTC-05:00, as observed on a US Eastern account);
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
            Rejection::ServerError => {
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
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
    let local_today =
        data::local_midnight((now + Duration::hours(data::LOCAL_OFFSET_HOURS)).date_naive());
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
        Some("today") => (local_today, local_today + Duration::days(1)),
        Some("yesterday") => (local_today - Duration::days(1), local_today),
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
    let mut body = render_rows(&state.dataset, series, &request, now).into_bytes();
    if state.data_succeeded() {
        body.truncate(body.len() / 2);
    }
    json_response(StatusCode::OK, body)
}

/// Serializes the data envelope straight into one pre-sized buffer: rows are written as text,
/// never built as `serde_json::Value`s, because benchmarks pull millions of them.
fn render_rows(
    dataset: &Dataset,
    series: Series,
    request: &DataRequest,
    now: DateTime<Utc>,
) -> String {
    // Buckets whose start lies in [start, end), clipped to the data that can exist.
    let floor = data::hour_floor(request.start);
    let first_bucket = if floor < request.start {
        floor + Duration::hours(1)
    } else {
        floor
    };
    let first = first_bucket.max(dataset.history_start());
    let end = request.end.min(now);
    let hours = if first < end {
        usize::try_from(((end - first).num_seconds() + 3599) / 3600).unwrap_or(0)
    } else {
        0
    };

    let (order, id_key, row_bytes) = match series {
        Series::Traffic => (dataset.zone_order(), "zoneId", TRAFFIC_ROW_BYTES),
        Series::Occupancy => (dataset.space_order(), "spaceId", OCCUPANCY_ROW_BYTES),
    };
    // `"zoneId":"<id>","name":"<escaped name>"` per entity, built once per response.
    let entity_fields: Vec<(usize, String)> = order
        .iter()
        .map(|&index| {
            let (id, name) = match series {
                Series::Traffic => (dataset.zone_id(index), dataset.zone_name(index)),
                Series::Occupancy => (dataset.space_id(index), dataset.space_name(index)),
            };
            let name = serde_json::to_string(name.unwrap_or_default()).unwrap_or_default();
            let fields = format!(
                "\"{id_key}\":\"{}\",\"name\":{name}",
                id.unwrap_or_default()
            );
            (index, fields)
        })
        .collect();

    let capacity = hours
        .saturating_mul(order.len())
        .saturating_mul(row_bytes)
        .saturating_add(64)
        .min(MAX_PRESIZE_BYTES);
    let mut body = String::with_capacity(capacity);
    body.push_str("{\"messages\":[],\"results\":[");
    let metrics = request.metrics;
    let mut first_row = true;
    let mut hour = first;
    while hour < end {
        let hour_prefix = format!(
            "{{\"recordDate_hour_1\":\"{}\",",
            data::format_timestamp(hour)
        );
        for (index, fields) in &entity_fields {
            let (counts, occupancy) = match series {
                Series::Traffic => (dataset.traffic(*index, hour, now), None),
                Series::Occupancy => {
                    let Some(values) = dataset.occupancy(*index, hour, now) else {
                        continue;
                    };
                    let counts = if metrics.ins || metrics.outs {
                        dataset.space_traffic(*index, hour, now)
                    } else {
                        None
                    };
                    (counts, Some(values))
                }
            };
            if series == Series::Traffic && counts.is_none() {
                continue;
            }
            if !first_row {
                body.push(',');
            }
            first_row = false;
            body.push_str(&hour_prefix);
            body.push_str(fields);
            write_metrics(&mut body, metrics, counts, occupancy);
            body.push('}');
        }
        hour += Duration::hours(1);
    }
    body.push_str("]}");
    body
}

fn write_metrics(
    body: &mut String,
    metrics: Metrics,
    counts: Option<(i64, i64)>,
    occupancy: Option<OccupancyValues>,
) {
    // Writing into a String cannot fail, so the fmt::Results are ignored.
    if let Some(o) = occupancy {
        if metrics.max {
            let _ = write!(body, ",\"maxoccupancy\":{}", o.max);
        }
        if metrics.min {
            let _ = write!(body, ",\"minoccupancy\":{}", o.min);
        }
        if metrics.avg {
            // A decimal string, as the real API sends it.
            let _ = write!(body, ",\"avgoccupancy\":\"{:.1}\"", o.avg);
        }
    }
    let (ins, outs) = counts.unwrap_or_default();
    if metrics.ins {
        let _ = write!(body, ",\"sumins\":{ins}");
    }
    if metrics.outs {
        let _ = write!(body, ",\"sumouts\":{outs}");
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

    pub fn faults(&self) -> Faults {
        self.state.faults()
    }

    /// Moves the simulated clock (e.g. forward between two syncs).
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.state.set_now(now);
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.state.now()
    }

    pub fn state(&self) -> &Arc<SimulatorState> {
        &self.state
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
    async fn occupancy_rows_carry_requested_metrics_and_a_string_average() {
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
            assert!(row.get("sumins").is_none() && row["spaceId"].is_string());
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
        // Local day 2025-03-15 starts 05:00Z; the clock is 10:30Z.
        assert_eq!(rows.len(), 6 * 6);
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
}
