//! The SenSource API client: the only module that knows HTTP. It logs in with
//! OAuth2 client credentials (token cached, refreshed before expiry and once on
//! a 401) or sends a configured long-lived API token, retries transient failures with backoff, caps response sizes, and
//! hands back rows as JSON values.

pub mod retry;
pub mod rows;

use std::{
    collections::HashMap,
    fmt,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use reqwest::{RequestBuilder, Response, header};
use serde_json::Value as Json;
use tracing::{info, warn};
use url::Url;

use crate::{
    chunk::DateRange,
    config::{Config, Credentials, HttpSettings},
    schema::Table,
    secret::Secret,
};
use retry::{Answer, Auth, Decision, Failure, backoff_delay, jitter_random, parse_retry_after};
use rows::{RowConsumer, RowSplitter};

/// A token reply is tiny; anything larger is not one.
const TOKEN_REPLY_CAP_BYTES: usize = 64 * 1024;

/// The most of an error body read for its explanation: enough for any
/// message, and an endless body is cut off instead of read until the timeout.
const ERROR_BODY_CAP_BYTES: usize = 64 * 1024;

/// The most of an explanation quoted in an error message.
const DETAIL_MAX_CHARS: usize = 200;

/// What went wrong talking to SenSource, grouped by what the caller does.
/// Messages name the endpoint and date window, never a token, secret or payload.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The token endpoint refused the client credentials. User must act.
    #[error(
        "SenSource refused the API client credentials (HTTP {status} from the token endpoint): check `client_id` and `client_secret` in the connector setup"
    )]
    InvalidCredentials {
        /// The HTTP status.
        status: u16,
    },
    /// The API refused access to an endpoint. User must act.
    #[error(
        "SenSource denied access to {endpoint} (HTTP 403): ask your SenSource administrator to give this API client access, or remove the table from the connector"
    )]
    Forbidden {
        /// The endpoint path.
        endpoint: String,
    },
    /// The configured long-lived API token was refused. User must act.
    #[error(
        "SenSource refused the API token (HTTP 401 for {endpoint}): check `api_token` in the connector setup, or use an API client (`client_id` and `client_secret`) instead"
    )]
    TokenRefused {
        /// The endpoint path.
        endpoint: String,
    },
    /// A freshly minted token was refused too. User must act.
    #[error(
        "SenSource refused a fresh access token for {endpoint} (HTTP 401 twice): check that the API client is active"
    )]
    Unauthorized {
        /// The endpoint path.
        endpoint: String,
    },
    /// A request was rejected as malformed (400, 404, ...): a bug or an API change.
    #[error("SenSource rejected {endpoint}{window} with HTTP {status}: {detail}")]
    Rejected {
        /// The endpoint path.
        endpoint: String,
        /// ` for <range>` or empty.
        window: String,
        /// The HTTP status.
        status: u16,
        /// A short, sanitized explanation from the body.
        detail: String,
    },
    /// Transient failures persisted past the attempt budget or deadline.
    #[error(
        "SenSource is unavailable: {endpoint}{window} failed {attempts} time(s) in {elapsed_secs}s; last problem: {last}"
    )]
    Unavailable {
        /// The endpoint path.
        endpoint: String,
        /// ` for <range>` or empty.
        window: String,
        /// Attempts made.
        attempts: u32,
        /// Seconds spent.
        elapsed_secs: u64,
        /// The last failure, e.g. `HTTP 503` or `timed out`.
        last: String,
    },
    /// The body could not be used: invalid JSON, wrong shape, too large.
    #[error("SenSource sent an unusable response for {endpoint}{window}: {reason}")]
    InvalidResponse {
        /// The endpoint path.
        endpoint: String,
        /// ` for <range>` or empty.
        window: String,
        /// What is wrong with it (never the payload).
        reason: String,
    },
    /// The connection broke while the body streamed in; the caller may
    /// request the whole window again.
    #[error("the connection to SenSource broke while reading {endpoint}{window}")]
    BodyInterrupted {
        /// The endpoint path.
        endpoint: String,
        /// ` for <range>` or empty.
        window: String,
    },
    /// The HTTP client could not be built (TLS initialisation).
    #[error("could not initialise the HTTP client: {0}")]
    Client(String),
}

impl ApiError {
    /// Whether the user must change something (credentials, permissions):
    /// Fivetran shows these as a Task.
    pub fn needs_user_action(&self) -> bool {
        matches!(
            self,
            ApiError::InvalidCredentials { .. }
                | ApiError::Forbidden { .. }
                | ApiError::Unauthorized { .. }
                | ApiError::TokenRefused { .. }
        )
    }
}

/// Access tokens shared across RPCs, one slot per set of credentials, so a
/// Test followed by an Update does not mint twice (SenSource may rate-limit
/// minting and may keep only one live token per client).
#[derive(Debug, Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<u64, Arc<TokenSlot>>>,
}

impl TokenCache {
    fn slot(&self, auth_url: &Url, client_id: &str, client_secret: &Secret) -> Arc<TokenSlot> {
        // The key is a hash that never leaves this process; the secret is part
        // of it so a changed secret gets a fresh token.
        let mut hasher = DefaultHasher::new();
        auth_url.as_str().hash(&mut hasher);
        client_id.hash(&mut hasher);
        client_secret.expose().hash(&mut hasher);
        let key = hasher.finish();
        let mut slots = match self.slots.lock() {
            Ok(slots) => slots,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots.entry(key).or_default().clone()
    }
}

/// One cached token. The async mutex makes concurrent requests wait for a
/// single mint instead of each minting (and invalidating the others).
#[derive(Debug, Default)]
struct TokenSlot {
    current: tokio::sync::Mutex<Option<CachedToken>>,
}

#[derive(Debug, Clone)]
struct CachedToken {
    access_token: Secret,
    /// When to mint a new one: a margin before the server's expiry.
    refresh_at: Instant,
    /// Distinguishes tokens, so a 401 invalidates only the token it was for.
    generation: u64,
}

/// A client for one connector configuration.
pub struct ApiClient {
    http: reqwest::Client,
    api_base_url: Url,
    settings: HttpSettings,
    access: Access,
}

/// Where the Bearer token of a request comes from.
enum Access {
    /// Minted from an API client's credentials and cached.
    Minted {
        auth_url: Url,
        client_id: String,
        client_secret: Secret,
        token: Arc<TokenSlot>,
    },
    /// The configured long-lived API token, used as it is.
    Static(Secret),
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ApiClient");
        debug.field("api_base_url", &self.api_base_url.as_str());
        match &self.access {
            Access::Minted { auth_url, .. } => debug.field("auth_url", &auth_url.as_str()),
            Access::Static(_) => debug.field("api_token", &"set"),
        };
        debug.finish_non_exhaustive()
    }
}

impl ApiClient {
    /// Builds a client with the configuration's URLs, timeouts and retry policy.
    ///
    /// # Errors
    /// [`ApiError::Client`] if TLS cannot be initialised.
    pub fn new(config: &Config, tokens: &TokenCache) -> Result<Self, ApiError> {
        #[allow(clippy::disallowed_methods)] // This is the one place that builds the HTTP client.
        let http = reqwest::Client::builder()
            .connect_timeout(config.http.connect_timeout)
            .timeout(config.http.request_timeout)
            .user_agent(concat!(
                "fivetran-sensource-connector/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|error| ApiError::Client(error.to_string()))?;
        let access = match &config.credentials {
            Credentials::Client {
                client_id,
                client_secret,
            } => Access::Minted {
                auth_url: config.auth_url.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                token: tokens.slot(&config.auth_url, client_id, client_secret),
            },
            Credentials::Token(token) => Access::Static(token.clone()),
        };
        Ok(Self {
            http,
            api_base_url: config.api_base_url.clone(),
            settings: config.http.clone(),
            access,
        })
    }

    /// Opens a whole reference table for streaming. Accepts a bare JSON
    /// array or `{"results": [...]}`.
    ///
    /// # Errors
    /// Any [`ApiError`] before the body starts.
    pub async fn open_reference(&self, table: Table) -> Result<RowStream, ApiError> {
        let endpoint = format!("/api/{}", table.name());
        let response = self.get(&endpoint, &[], None).await?;
        Ok(self.row_stream(response, endpoint, None))
    }

    /// Opens the hourly rows of a time-series table for whole UTC days
    /// `[range.start, range.end)`, requested with explicit UTC bounds.
    ///
    /// # Errors
    /// Any [`ApiError`] before the body starts.
    pub async fn open_series(
        &self,
        table: Table,
        range: DateRange,
        metrics: &[String],
    ) -> Result<RowStream, ApiError> {
        let (endpoint, entity_type) = match table {
            Table::Occupancy => ("/api/data/occupancy", "space"),
            _ => ("/api/data/traffic", "zone"),
        };
        let query = [
            ("relativeDate", "custom".to_owned()),
            ("startDate", range.start_utc()),
            ("endDate", range.end_utc()),
            ("dateGroupings", "hour".to_owned()),
            ("entityType", entity_type.to_owned()),
            ("metrics", metrics.join(",")),
        ];
        let response = self.get(endpoint, &query, Some(range)).await?;
        Ok(self.row_stream(response, endpoint.to_owned(), Some(range)))
    }

    /// How long to wait before trying again after `attempts` failed tries
    /// that began at `started`, or `None` once the attempt budget or the
    /// deadline is spent. The one retry policy: requests use it here, and
    /// callers use it to re-request a window whose body broke off.
    pub fn retry_delay(
        &self,
        attempts: u32,
        started: Instant,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let delay =
            retry_after.unwrap_or_else(|| backoff_delay(&self.settings, attempts, jitter_random()));
        let out_of_time = started.elapsed() + delay > self.settings.retry_deadline;
        (attempts < self.settings.max_attempts && !out_of_time).then_some(delay)
    }

    fn row_stream(
        &self,
        response: Response,
        endpoint: String,
        range: Option<DateRange>,
    ) -> RowStream {
        RowStream {
            response,
            splitter: RowSplitter::new(),
            endpoint,
            window: window_text(range),
            limit: self.settings.max_response_bytes,
            read: 0,
            pending: Bytes::new(),
            finished: false,
        }
    }

    async fn get(
        &self,
        endpoint: &str,
        query: &[(&str, String)],
        range: Option<DateRange>,
    ) -> Result<Response, ApiError> {
        let mut url = self.api_base_url.clone();
        url.set_path(&format!(
            "{}{endpoint}",
            self.api_base_url.path().trim_end_matches('/')
        ));
        let auth = match self.access {
            Access::Minted { .. } => Auth::MintedToken,
            Access::Static(_) => Auth::StaticToken,
        };
        self.execute(endpoint, range, auth, || {
            self.http.get(url.clone()).query(query)
        })
        .await
    }

    /// Returns a valid access token, minting one if there is none or it is
    /// about to expire. Holding the slot's lock while minting is deliberate:
    /// other requests wait for this token instead of minting their own.
    async fn access_token(&self) -> Result<CachedToken, ApiError> {
        let slot = match &self.access {
            Access::Minted { token, .. } => token,
            Access::Static(token) => {
                return Ok(CachedToken {
                    access_token: token.clone(),
                    refresh_at: Instant::now(),
                    generation: 0,
                });
            }
        };
        let mut current = slot.current.lock().await;
        if let Some(token) = current.as_ref().filter(|t| t.refresh_at > Instant::now()) {
            return Ok(token.clone());
        }
        let generation = current.as_ref().map_or(1, |t| t.generation + 1);
        // Boxed: minting goes through `execute`, which calls this function for
        // bearer requests, so the future types would otherwise be recursive.
        let token = Box::pin(self.mint(generation)).await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// Forgets the token a request was refused with, unless it was already replaced.
    async fn invalidate(&self, generation: u64) {
        let Access::Minted { token, .. } = &self.access else {
            return;
        };
        let mut current = token.current.lock().await;
        if current.as_ref().is_some_and(|t| t.generation == generation) {
            *current = None;
        }
    }

    async fn mint(&self, generation: u64) -> Result<CachedToken, ApiError> {
        let Access::Minted {
            auth_url,
            client_id,
            client_secret,
            ..
        } = &self.access
        else {
            return Err(ApiError::Client(
                "no API client to mint an access token with".into(),
            ));
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", client_id)
            .append_pair("client_secret", client_secret.expose())
            .finish();
        let started = Instant::now();
        let response = self
            .execute("token endpoint", None, Auth::TokenRequest, || {
                self.http
                    .post(auth_url.clone())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body.clone())
            })
            .await?;
        let invalid = |reason: &str| ApiError::InvalidResponse {
            endpoint: "token endpoint".into(),
            window: String::new(),
            reason: reason.into(),
        };
        // A token reply is tiny; anything large is not one.
        let bytes = read_capped(response, TOKEN_REPLY_CAP_BYTES)
            .await
            .map_err(|_| invalid("the reply is not a readable token response"))?;
        let reply: Json = serde_json::from_slice(&bytes).map_err(|_| invalid("not valid JSON"))?;
        let access_token = reply
            .get("access_token")
            .and_then(Json::as_str)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| invalid("no `access_token` in the reply"))?;
        let lifetime = Duration::from_secs(
            reply
                .get("expires_in")
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .unwrap_or(3600),
        );
        // Refresh a little early so a token never expires in flight.
        let margin = (lifetime / 10).min(Duration::from_secs(60));
        info!(
            lifetime_secs = lifetime.as_secs(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Obtained a SenSource access token."
        );
        Ok(CachedToken {
            access_token: Secret::new(access_token),
            refresh_at: started + lifetime.saturating_sub(margin),
            generation,
        })
    }

    /// Sends a request with the retry policy: transient failures (network
    /// errors, timeouts, 408, 429, 5xx) are retried with backoff within the
    /// attempt budget and deadline; a 401 refreshes the token exactly once.
    /// What to do with each answer is [`retry::decide`]'s.
    async fn execute(
        &self,
        endpoint: &str,
        range: Option<DateRange>,
        auth: Auth,
        make_request: impl Fn() -> RequestBuilder,
    ) -> Result<Response, ApiError> {
        let started = Instant::now();
        let mut attempts = 0;
        let mut refreshed = false;
        loop {
            let mut request = make_request();
            let mut generation = 0;
            if auth != Auth::TokenRequest {
                let token = self.access_token().await?;
                generation = token.generation;
                request = request.bearer_auth(token.access_token.expose());
            }
            let (answer, problem, response) = match request.send().await {
                Err(error) => (
                    Answer::TransportFailure,
                    describe_transport_error(&error),
                    None,
                ),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| parse_retry_after(value, SystemTime::now()));
                    let answer = Answer::Status {
                        status,
                        retry_after,
                    };
                    (answer, format!("HTTP {status}"), Some(response))
                }
            };
            let retry_after = match (retry::decide(answer, auth, refreshed), response) {
                (Decision::Return, Some(response)) => {
                    let limit = self.settings.max_response_bytes;
                    if response
                        .content_length()
                        .is_some_and(|length| length > limit)
                    {
                        return Err(too_large(endpoint, &window_text(range), limit));
                    }
                    return Ok(response);
                }
                (Decision::Fail(failure), Some(response)) => {
                    let status = response.status().as_u16();
                    let endpoint = endpoint.to_owned();
                    return Err(match failure {
                        Failure::InvalidCredentials => ApiError::InvalidCredentials { status },
                        Failure::TokenRefused => ApiError::TokenRefused { endpoint },
                        Failure::Unauthorized => ApiError::Unauthorized { endpoint },
                        Failure::Forbidden => ApiError::Forbidden { endpoint },
                        Failure::Rejected => ApiError::Rejected {
                            endpoint,
                            window: window_text(range),
                            status,
                            detail: error_detail(response).await,
                        },
                    });
                }
                (Decision::RefreshToken, _) => {
                    // A valid token is occasionally refused: mint once more, right away.
                    refreshed = true;
                    self.invalidate(generation).await;
                    warn!(
                        endpoint,
                        "SenSource refused the access token; refreshing it once."
                    );
                    continue;
                }
                (Decision::Retry { after }, _) => after,
                // `decide` retries every transport failure, so this is not
                // reached; without an answer there is nothing to return.
                (Decision::Return | Decision::Fail(_), None) => None,
            };
            attempts += 1;

            let Some(delay) = self.retry_delay(attempts, started, retry_after) else {
                return Err(ApiError::Unavailable {
                    endpoint: endpoint.to_owned(),
                    window: window_text(range),
                    attempts,
                    elapsed_secs: started.elapsed().as_secs(),
                    last: problem,
                });
            };
            warn!(
                endpoint,
                window = %window_text(range).trim_start_matches(" for "),
                attempt = attempts,
                delay_ms = delay.as_millis() as u64,
                problem = %problem,
                "SenSource request failed; retrying."
            );
            tokio::time::sleep(delay).await;
        }
    }
}

/// The rows of one response, read as the body streams in.
#[derive(Debug)]
pub struct RowStream {
    response: Response,
    splitter: RowSplitter,
    endpoint: String,
    window: String,
    limit: u64,
    read: u64,
    /// The rest of the last network read, not yet split.
    pending: Bytes,
    finished: bool,
}

/// The most body handed to the splitter at once. A network read can be
/// hundreds of KiB; feeding it in pieces bounds the batches a consumer sets
/// aside per call (and so the memory between sends) to those of 32 KiB of
/// rows: a few.
const FEED_PIECE_BYTES: usize = 32 * 1024;

impl RowStream {
    /// Reads the next piece of the body (at most 32 KiB) and
    /// hands the rows that start or complete in it to `consumer`. Returns `false` once the body is
    /// complete and well formed.
    ///
    /// # Errors
    /// [`ApiError::InvalidResponse`] for a body that is not a list of rows or
    /// is too large; [`ApiError::BodyInterrupted`] when the connection breaks.
    pub async fn next_rows(&mut self, consumer: &mut impl RowConsumer) -> Result<bool, ApiError> {
        if self.pending.is_empty() {
            if self.finished {
                return Ok(false);
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => {
                    self.read += chunk.len() as u64;
                    if self.read > self.limit {
                        return Err(too_large(&self.endpoint, &self.window, self.limit));
                    }
                    self.pending = chunk;
                }
                Ok(None) => {
                    self.finished = true;
                    self.splitter
                        .finish()
                        .map_err(|error| self.invalid(error.to_string()))?;
                    return Ok(false);
                }
                Err(_) => {
                    return Err(ApiError::BodyInterrupted {
                        endpoint: self.endpoint.clone(),
                        window: self.window.clone(),
                    });
                }
            }
        }
        let piece = self
            .pending
            .split_to(self.pending.len().min(FEED_PIECE_BYTES));
        self.splitter
            .feed(&piece, consumer)
            .map_err(|error| self.invalid(error.to_string()))?;
        Ok(true)
    }

    /// Reads the rest of the body, checking its structure, and counts the rows.
    ///
    /// # Errors
    /// As [`RowStream::next_rows`].
    pub async fn count_to_end(mut self) -> Result<usize, ApiError> {
        struct Count(usize);
        impl RowConsumer for Count {
            fn take_row(&mut self, _: &[u8]) {
                self.0 += 1;
            }
        }
        let mut count = Count(0);
        while self.next_rows(&mut count).await? {}
        Ok(count.0)
    }

    /// Bytes of body read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    fn invalid(&self, reason: String) -> ApiError {
        ApiError::InvalidResponse {
            endpoint: self.endpoint.clone(),
            window: self.window.clone(),
            reason,
        }
    }
}

fn too_large(endpoint: &str, window: &str, limit: u64) -> ApiError {
    ApiError::InvalidResponse {
        endpoint: endpoint.to_owned(),
        window: window.to_owned(),
        reason: format!(
            "the body is larger than the {} MB limit (lower `chunk_days` or raise `max_response_mb`)",
            limit / (1024 * 1024)
        ),
    }
}

/// Why a small body could not be read whole.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The body is (or says it is) longer than the cap.
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The connection broke or the body could not be decoded.
    #[error("the body could not be read")]
    Broken(#[source] reqwest::Error),
}

/// Reads a whole small body, refusing more than `limit` bytes. A body that
/// declares a larger length is refused before any of it is read; one that
/// does not is read only up to the cap, so an endless body costs no more.
async fn read_capped(mut response: Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    let too_large = || ReadError::TooLarge { limit };
    // `usize` is at most 64 bits wide, so the cast is exact.
    if response
        .content_length()
        .is_some_and(|declared| declared > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Broken)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn window_text(range: Option<DateRange>) -> String {
    range
        .map(|range| format!(" for {range}"))
        .unwrap_or_default()
}

/// A short description of a network failure, without URLs (which could carry
/// query data) or anything from the server.
fn describe_transport_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "could not connect".into()
    } else if error.is_body() || error.is_decode() {
        "connection broke while reading the body".into()
    } else {
        "network error".into()
    }
}

/// Pulls a short human explanation out of an error body, reading at most
/// [`ERROR_BODY_CAP_BYTES`] of it.
async fn error_detail(response: Response) -> String {
    match read_capped(response, ERROR_BODY_CAP_BYTES).await {
        Ok(body) => explain(&body),
        Err(ReadError::TooLarge { .. }) => "no explanation (the error body is too large)".into(),
        Err(ReadError::Broken(_)) => NO_EXPLANATION.into(),
    }
}

/// What a rejection says when its body explains nothing.
const NO_EXPLANATION: &str = "no explanation";

/// The explanation in a JSON error body (`message`, `messages`,
/// `error_description` or `error`), without control characters and at most
/// [`DETAIL_MAX_CHARS`] long. Anything else in the body is never quoted: it
/// could be payload.
fn explain(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Json>(body).ok().and_then(|json| {
        ["message", "messages", "error_description", "error"]
            .iter()
            .find_map(|key| match json.get(key)? {
                Json::String(text) => Some(text.clone()),
                Json::Array(items) => Some(
                    items
                        .iter()
                        .filter_map(Json::as_str)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                _ => None,
            })
    });
    let text: String = from_json
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(DETAIL_MAX_CHARS)
        .collect();
    if text.trim().is_empty() {
        NO_EXPLANATION.into()
    } else {
        text
    }
}
