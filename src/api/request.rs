//! Sending one request under the policy: the attempt loop that every request
//! goes through ([`ApiClient::execute`]), the one backoff policy
//! ([`ApiClient::retry_delay`]), and turning a failed answer into an
//! [`ApiError`]. What to do with each answer is [`retry::decide`]'s.

use std::time::{Duration, Instant, SystemTime};

use reqwest::{RequestBuilder, Response, header};
use serde_json::Value as Json;
use tracing::warn;

use super::{
    ApiClient, ApiError, Target,
    body::{ReadError, read_capped},
    retry::{self, Answer, Auth, Decision, Failure, backoff_delay, jitter_random},
};

/// The most of an error body read for its explanation: enough for any
/// message, and an endless body is cut off instead of read until the timeout.
const ERROR_BODY_CAP_BYTES: usize = 64 * 1024;

/// The most of an explanation quoted in an error message.
const DETAIL_MAX_CHARS: usize = 200;

impl ApiClient {
    /// How long to wait before trying again after `attempts` failed tries
    /// that began at `started`, or `None` once the attempt budget or the
    /// deadline is spent. The one retry policy: requests use it here, and
    /// callers use it to re-request a window whose body broke off.
    ///
    /// The server's `retry_after` is honoured as it is, not clamped to
    /// `retry_max_delay`: retrying earlier than a rate limit allows would
    /// only be refused again (and at the token endpoint may cost the live
    /// token). The deadline bounds it instead: a wait that would end past the
    /// deadline fails the request now rather than sleeping first.
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

    /// How long to wait before requesting a window again after reading its
    /// body failed with `error` on the `attempts`-th try begun at `started`,
    /// or `None` when it must not be requested again (the error is not a
    /// broken connection, or the budget is spent). A body that broke off is a
    /// transport failure to [`retry::decide`], like a request that never got
    /// an answer, so the one decision and the one policy apply.
    pub fn rerequest_delay(
        &self,
        error: &ApiError,
        attempts: u32,
        started: Instant,
    ) -> Option<Duration> {
        if !matches!(error, ApiError::BodyInterrupted { .. }) {
            return None;
        }
        // The auth kind and refresh state do not matter for a transport failure.
        match retry::decide(Answer::TransportFailure, Auth::MintedToken, false) {
            Decision::Retry { after } => self.retry_delay(attempts, started, after),
            Decision::Return | Decision::RefreshToken | Decision::Fail(_) => None,
        }
    }

    /// Sends a request with the retry policy: transient failures (network
    /// errors, timeouts, 408, 429, 5xx) are retried with backoff within the
    /// attempt budget and deadline; a 401 refreshes the token exactly once.
    /// `make_request` builds the request afresh for every try.
    pub(super) async fn execute(
        &self,
        target: &Target,
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
                    let answer = Answer::Status {
                        status,
                        retry_after: retry_after(&response),
                    };
                    (answer, format!("HTTP {status}"), Some(response))
                }
            };
            let after = match (retry::decide(answer, auth, refreshed), response) {
                (Decision::Return, Some(response)) => return self.accepted(response, target),
                (Decision::Fail(failure), Some(response)) => {
                    return Err(failed(failure, response, target).await);
                }
                (Decision::RefreshToken, _) => {
                    // A valid token is occasionally refused: mint once more, right away.
                    refreshed = true;
                    self.invalidate(generation).await;
                    warn!(
                        endpoint = %target.endpoint,
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
            let Some(delay) = self.retry_delay(attempts, started, after) else {
                return Err(ApiError::Unavailable {
                    target: target.clone(),
                    attempts,
                    elapsed_secs: started.elapsed().as_secs(),
                    last: problem,
                });
            };
            warn!(
                endpoint = %target.endpoint,
                window = target.window.map(tracing::field::display),
                attempt = attempts,
                delay_ms = delay.as_millis() as u64,
                problem = %problem,
                "SenSource request failed; retrying."
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// A successful response, unless it declares a body over the limit.
    fn accepted(&self, response: Response, target: &Target) -> Result<Response, ApiError> {
        let limit = self.settings.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit)
        {
            return Err(ApiError::too_large(target, limit));
        }
        Ok(response)
    }
}

/// The error for an answer that ends the request.
async fn failed(failure: Failure, response: Response, target: &Target) -> ApiError {
    let endpoint = || target.endpoint.clone();
    match failure {
        Failure::InvalidCredentials => ApiError::InvalidCredentials {
            status: response.status().as_u16(),
        },
        Failure::TokenRefused => ApiError::TokenRefused {
            endpoint: endpoint(),
        },
        Failure::Unauthorized => ApiError::Unauthorized {
            endpoint: endpoint(),
        },
        Failure::Forbidden => ApiError::Forbidden {
            endpoint: endpoint(),
        },
        Failure::Rejected => ApiError::Rejected {
            target: target.clone(),
            status: response.status().as_u16(),
            detail: error_detail(response).await,
        },
    }
}

/// The server's `Retry-After`, if it sent a usable one.
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    retry::parse_retry_after(value, SystemTime::now())
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

#[cfg(test)]
mod tests;
