//! Injected failures: the [`Faults`] knobs and the order a request meets them in, the counters
//! and RNG they run on, the decision for each request, and the error responses and broken
//! bodies they produce. A new fault is a field here plus its decision and effect here (and a
//! flag in `cli.rs` and `commands/simulate.rs` to reach it from `simulate`); only faults that
//! change how rows are written also touch `body`.

use std::time::Duration as StdDuration;

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use chrono::{DateTime, Duration, Utc};
use futures_util::stream;

use super::{
    data,
    response::{bad_request, internal_error, json_response, message},
};

/// The fixed body of the `wrong_shape` fault: an object where the list of rows belongs.
const WRONG_SHAPE_BODY: &str = r#"{"messages":[],"results":{"error":"x"}}"#;

/// Injected failures. Counters (`fail_next_requests`, `rate_limit_every`, `fail_data_after`,
/// `drop_connection_next`, `token_rate_limit_next`) and the error RNG restart whenever faults
/// are set, so a test's fault pattern does not depend on how many requests came before.
///
/// A data request meets them in this order: `fail_next_requests`, `forbid_data`,
/// `fail_data_after`, `server_error_rate`, `rate_limit_every` (each answers instead of the
/// data); once its query is valid, `max_range_days`; then the body of a 200: `endless_body`
/// (overrides all below), `wrong_shape` or rows with `bad_rows_every`, then
/// `malformed_body_rate`, then `drop_connection_next` / `drop_connection_rate`.
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
    /// What a series request returns for a bucket that only partly overlaps its window
    /// (undocumented for the real API): its whole value (`true`), or the sum of the part
    /// inside the window (`false`, the default).
    pub whole_edge_buckets: bool,
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
            whole_edge_buckets: false,
        }
    }
}

/// Which kind of endpoint a request-level fault is decided for: some faults hit data only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EndpointKind {
    Reference,
    Data,
}

/// The faults in force with the counters and RNG they run on. It lives in the state's one
/// mutable part, so every decision below is made under that lock.
#[derive(Debug)]
pub(super) struct FaultState {
    /// The knobs; the `*_next` ones and `fail_next_requests` count down in place.
    faults: Faults,
    rng: u64,
    data_successes: u32,
    rate_limit_counter: u32,
}

/// How the body of one successful data response is to be shaped, decided under the lock.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct BodyFaults {
    /// `endless_body`: nothing else applies.
    pub(super) endless: bool,
    wrong_shape: bool,
    /// `bad_rows_every`, applied by the row writer as it writes.
    pub(super) bad_rows_every: u32,
    truncate: bool,
    drop_connection: bool,
}

impl FaultState {
    /// `faults` with fresh counters and RNG, so a fault pattern does not depend on earlier
    /// requests.
    pub(super) fn new(faults: Faults, seed: u64) -> FaultState {
        FaultState {
            faults,
            rng: fault_rng_seed(seed),
            data_successes: 0,
            rate_limit_counter: 0,
        }
    }

    /// `latency_ms`, added to every API response.
    pub(super) fn latency(&self) -> StdDuration {
        StdDuration::from_millis(self.faults.latency_ms)
    }

    /// Whether minting a token invalidates all previous ones.
    pub(super) fn one_live_token(&self) -> bool {
        self.faults.one_live_token
    }

    /// `max_range_days`, checked with [`range_too_long`] once the request is parsed.
    pub(super) fn max_range_days(&self) -> Option<u32> {
        self.faults.max_range_days
    }

    /// The `whole_edge_buckets` knob.
    pub(super) fn whole_edge_buckets(&self) -> bool {
        self.faults.whole_edge_buckets
    }

    /// The `token_rate_limit_next` fault: `Some(429)` while it counts down.
    pub(super) fn token_rate_limited(&mut self) -> Option<Response> {
        if self.faults.token_rate_limit_next == 0 {
            return None;
        }
        self.faults.token_rate_limit_next -= 1;
        Some(too_many_requests(&self.faults))
    }

    /// Request-level faults, in the documented order. `None` means serve normally.
    pub(super) fn injected_failure(&mut self, kind: EndpointKind) -> Option<Response> {
        if self.faults.fail_next_requests > 0 {
            self.faults.fail_next_requests -= 1;
            return Some(message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
            ));
        }
        if kind == EndpointKind::Data && self.faults.forbid_data {
            return Some(message(StatusCode::FORBIDDEN, "Forbidden"));
        }
        if kind == EndpointKind::Data
            && let Some(limit) = self.faults.fail_data_after
            && self.data_successes >= limit
        {
            return Some(internal_error());
        }
        // Draw only when the fault is on, so enabling other faults does not shift the sequence.
        let rate = self.faults.server_error_rate;
        if rate > 0.0 && next_unit(&mut self.rng) < rate {
            return Some(internal_error());
        }
        let every = self.faults.rate_limit_every;
        if kind == EndpointKind::Data && every > 0 {
            self.rate_limit_counter += 1;
            if self.rate_limit_counter % every == 0 {
                return Some(too_many_requests(&self.faults));
            }
        }
        None
    }

    /// Records a successful data response; returns how its body should be mangled.
    pub(super) fn data_succeeded(&mut self) -> BodyFaults {
        self.data_successes = self.data_successes.saturating_add(1);
        if self.faults.endless_body {
            // Nothing else applies to a body that never ends, so consume no draws or counters.
            return BodyFaults {
                endless: true,
                ..BodyFaults::default()
            };
        }
        // Draw only when a fault is on, so enabling other faults does not shift the sequence.
        let rate = self.faults.malformed_body_rate;
        let truncate = rate > 0.0 && next_unit(&mut self.rng) < rate;
        let drop_connection = if self.faults.drop_connection_next > 0 {
            self.faults.drop_connection_next -= 1;
            true
        } else {
            let rate = self.faults.drop_connection_rate;
            rate > 0.0 && next_unit(&mut self.rng) < rate
        };
        BodyFaults {
            endless: false,
            wrong_shape: self.faults.wrong_shape,
            bad_rows_every: self.faults.bad_rows_every,
            truncate,
            drop_connection,
        }
    }
}

impl BodyFaults {
    /// Whether the rows go out exactly as rendered, so a prepared body may stand in for them.
    pub(super) fn leaves_rows_intact(&self) -> bool {
        !(self.wrong_shape || self.truncate || self.drop_connection || self.bad_rows_every > 0)
    }

    /// The 200 for a data request whose rows `render` writes: the `wrong_shape` body instead
    /// of them, then cut in half (`malformed_body_rate`), then broken off mid-body
    /// (`drop_connection_*`), as decided.
    pub(super) fn respond(self, render: impl FnOnce() -> String) -> Response {
        let mut body = if self.wrong_shape {
            WRONG_SHAPE_BODY.as_bytes().to_vec()
        } else {
            render().into_bytes()
        };
        if self.truncate {
            body.truncate(body.len() / 2);
        }
        if self.drop_connection {
            return cut_off_response(body);
        }
        json_response(StatusCode::OK, body)
    }
}

/// The `max_range_days` fault: a 400 for a data request spanning more than that many days.
pub(super) fn range_too_long(
    max_range_days: Option<u32>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Option<Response> {
    let days = max_range_days?;
    (end - start > Duration::days(i64::from(days))).then(|| bad_request("range too long"))
}

fn fault_rng_seed(seed: u64) -> u64 {
    data::splitmix64(seed ^ 0x6661_756c_7473)
}

/// Next value in [0, 1) of the fault RNG (a SplitMix64 stream).
fn next_unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    data::unit(data::splitmix64(*state))
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
fn retry_after(faults: &Faults, wall_clock: DateTime<Utc>) -> HeaderValue {
    let seconds = HeaderValue::from(faults.retry_after_secs);
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
    HeaderValue::from_str(&text).unwrap_or(seconds)
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
    json_response(StatusCode::OK, Body::from_stream(chunks))
}

#[cfg(test)]
mod tests;
