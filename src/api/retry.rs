//! Retry policy, as pure functions: what to do with each answer
//! ([`decide`], the one table of it), and how long to wait before another
//! try (capped exponential backoff with full jitter, or the server's
//! `Retry-After`).

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    time::{Duration, SystemTime},
};

use crate::config::HttpSettings;

/// What to do with an HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx: read the body.
    Success,
    /// 401: the token is refused; refresh it once, then give up.
    Unauthorized,
    /// 403: permission missing; the user must act.
    Forbidden,
    /// 408, 429 and 5xx: transient, try again after a delay.
    Transient,
    /// Any other 4xx (400, 404, ...): the request itself is wrong; do not retry.
    Rejected,
}

/// Classifies an HTTP status code.
pub fn classify_status(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Success,
        401 => StatusClass::Unauthorized,
        403 => StatusClass::Forbidden,
        408 | 429 | 500..=599 => StatusClass::Transient,
        _ => StatusClass::Rejected,
    }
}

/// How a request is authorized, as far as the decision cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// The token request itself: its refusals are about the client credentials.
    TokenRequest,
    /// A bearer token minted from the API client: it can be minted again.
    MintedToken,
    /// The configured long-lived API token: nothing to refresh.
    StaticToken,
}

/// What one try came back with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP answer, with its `Retry-After` if it had a usable one.
    Status {
        /// The HTTP status code.
        status: u16,
        /// The parsed `Retry-After` header.
        retry_after: Option<Duration>,
    },
    /// No answer: the connection failed or timed out.
    TransportFailure,
}

/// Why a request failed for good, for the caller to turn into an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The token endpoint refused the client credentials.
    InvalidCredentials,
    /// The configured API token was refused.
    TokenRefused,
    /// A freshly minted token was refused too.
    Unauthorized,
    /// The API client may not use the endpoint.
    Forbidden,
    /// The request itself is wrong (400, 404, ...).
    Rejected,
}

/// What to do after one try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Success: hand the response back.
    Return,
    /// Forget the token, mint another and send again right away. Not counted
    /// as an attempt: the request itself did not fail.
    RefreshToken,
    /// A transient failure: try again after `after` (the server's
    /// `Retry-After`) or, without one, after the backoff, if the attempt
    /// budget and deadline allow.
    Retry {
        /// The server's `Retry-After`.
        after: Option<Duration>,
    },
    /// Give up.
    Fail(Failure),
}

/// The one retry decision for every request. `refreshed` says whether this
/// request already had its token refreshed: a valid token is occasionally
/// refused, so a 401 earns exactly one fresh token, never a loop of mints.
pub fn decide(answer: Answer, auth: Auth, refreshed: bool) -> Decision {
    let (status, retry_after) = match answer {
        Answer::TransportFailure => return Decision::Retry { after: None },
        Answer::Status {
            status,
            retry_after,
        } => (status, retry_after),
    };
    match (classify_status(status), auth) {
        (StatusClass::Success, _) => Decision::Return,
        (StatusClass::Transient, _) => Decision::Retry { after: retry_after },
        // SenSource's answer to bad credentials is undocumented; OAuth servers
        // commonly say 400 (`invalid_client`), 401 or 403.
        (StatusClass::Unauthorized | StatusClass::Forbidden, Auth::TokenRequest) => {
            Decision::Fail(Failure::InvalidCredentials)
        }
        (StatusClass::Rejected, Auth::TokenRequest) if status == 400 => {
            Decision::Fail(Failure::InvalidCredentials)
        }
        (StatusClass::Rejected, _) => Decision::Fail(Failure::Rejected),
        (StatusClass::Forbidden, _) => Decision::Fail(Failure::Forbidden),
        (StatusClass::Unauthorized, Auth::StaticToken) => Decision::Fail(Failure::TokenRefused),
        (StatusClass::Unauthorized, Auth::MintedToken) if refreshed => {
            Decision::Fail(Failure::Unauthorized)
        }
        (StatusClass::Unauthorized, Auth::MintedToken) => Decision::RefreshToken,
    }
}

/// The delay before attempt `attempt + 1` after `attempt` failed tries
/// (`attempt >= 1`): a uniformly random duration up to
/// `min(max_delay, base_delay * 2^(attempt-1))` ("full jitter", which spreads
/// out clients that failed together). `random` is a value in `[0, 1)`.
pub fn backoff_delay(settings: &HttpSettings, attempt: u32, random: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let ceiling = settings
        .retry_base_delay
        .saturating_mul(1u32 << exponent)
        .min(settings.retry_max_delay);
    ceiling.mul_f64(random.clamp(0.0, 1.0))
}

/// Parses a `Retry-After` header: delay-seconds or an HTTP-date in any of
/// the three formats RFC 9110 requires recipients to accept (IMF-fixdate,
/// RFC 850, asctime). A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A random number in `[0, 1)` for jitter. Jitter needs no reproducibility,
/// so the standard library's randomly keyed hasher is enough.
pub fn jitter_random() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_by_what_the_caller_should_do() {
        assert_eq!(classify_status(200), StatusClass::Success);
        assert_eq!(classify_status(401), StatusClass::Unauthorized);
        assert_eq!(classify_status(403), StatusClass::Forbidden);
        for transient in [408, 429, 500, 502, 503, 504] {
            assert_eq!(
                classify_status(transient),
                StatusClass::Transient,
                "{transient}"
            );
        }
        for rejected in [400, 404, 405, 422] {
            assert_eq!(
                classify_status(rejected),
                StatusClass::Rejected,
                "{rejected}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_below_it() {
        let settings = HttpSettings {
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_millis(1000),
            ..HttpSettings::default()
        };
        let top = |attempt| backoff_delay(&settings, attempt, 0.999_999);
        assert!(top(1) <= Duration::from_millis(100) && top(1) > Duration::from_millis(99));
        assert!(top(2) > Duration::from_millis(199) && top(2) <= Duration::from_millis(200));
        assert!(top(4) > Duration::from_millis(799));
        assert_eq!(
            backoff_delay(&settings, 10, 1.0),
            Duration::from_millis(1000)
        );
        assert_eq!(backoff_delay(&settings, 3, 0.0), Duration::ZERO);
        assert_eq!(
            backoff_delay(&settings, 200, 0.5),
            Duration::from_millis(500)
        );
    }

    /// 1994-11-06T08:49:07Z, thirty seconds before the date RFC 9110 uses
    /// in its examples.
    fn half_a_minute_before_the_example() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 - 30)
    }

    /// Every form RFC 9110 requires a recipient to accept is understood.
    #[test]
    fn retry_after_accepts_seconds_and_all_three_http_date_formats() {
        let now = half_a_minute_before_the_example();
        let cases = [
            ("120", Some(Duration::from_secs(120))),
            ("0", Some(Duration::ZERO)),
            (" 7 ", Some(Duration::from_secs(7))),
            // IMF-fixdate, the preferred format.
            (
                "Sun, 06 Nov 1994 08:49:37 GMT",
                Some(Duration::from_secs(30)),
            ),
            // Obsolete RFC 850 format, two-digit year.
            (
                "Sunday, 06-Nov-94 08:49:37 GMT",
                Some(Duration::from_secs(30)),
            ),
            // ANSI C's asctime() format, day padded with a space.
            ("Sun Nov  6 08:49:37 1994", Some(Duration::from_secs(30))),
            // A date already past means: try now.
            ("Sun, 06 Nov 1994 08:49:00 GMT", Some(Duration::ZERO)),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
        }
    }

    /// Anything else is ignored, and the backoff applies instead.
    #[test]
    fn retry_after_ignores_garbage() {
        let now = half_a_minute_before_the_example();
        for garbage in [
            "",
            "soon",
            "-5",
            "1.5",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "2015-10-21T07:28:00Z",
        ] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
    }

    /// The whole decision table: every class of answer, for every kind of
    /// authorization, before and after the one token refresh.
    #[test]
    fn decide_covers_every_answer_for_every_authorization() {
        use Decision::{Fail, RefreshToken, Retry, Return};
        let wait = Some(Duration::from_secs(3));
        let status = |status| Answer::Status {
            status,
            retry_after: wait,
        };
        let transport = Answer::TransportFailure;
        // (answer, token request, minted, minted after its refresh, static)
        let table = [
            (status(200), [Return, Return, Return, Return]),
            (status(204), [Return, Return, Return, Return]),
            (
                status(400),
                [
                    Fail(Failure::InvalidCredentials),
                    Fail(Failure::Rejected),
                    Fail(Failure::Rejected),
                    Fail(Failure::Rejected),
                ],
            ),
            (
                status(401),
                [
                    Fail(Failure::InvalidCredentials),
                    RefreshToken,
                    Fail(Failure::Unauthorized),
                    Fail(Failure::TokenRefused),
                ],
            ),
            (
                status(403),
                [
                    Fail(Failure::InvalidCredentials),
                    Fail(Failure::Forbidden),
                    Fail(Failure::Forbidden),
                    Fail(Failure::Forbidden),
                ],
            ),
            (status(404), [Fail(Failure::Rejected); 4]),
            (status(422), [Fail(Failure::Rejected); 4]),
            (status(408), [Retry { after: wait }; 4]),
            (status(429), [Retry { after: wait }; 4]),
            (status(500), [Retry { after: wait }; 4]),
            (status(503), [Retry { after: wait }; 4]),
            (transport, [Retry { after: None }; 4]),
        ];
        for (answer, expected) in table {
            let actual = [
                decide(answer, Auth::TokenRequest, false),
                decide(answer, Auth::MintedToken, false),
                decide(answer, Auth::MintedToken, true),
                decide(answer, Auth::StaticToken, false),
            ];
            assert_eq!(actual, expected, "{answer:?}");
        }
    }

    /// Only a minted token is ever refreshed, and never twice for one request.
    #[test]
    fn a_refused_token_is_refreshed_at_most_once() {
        let refused = Answer::Status {
            status: 401,
            retry_after: None,
        };
        for auth in [Auth::TokenRequest, Auth::MintedToken, Auth::StaticToken] {
            assert_ne!(decide(refused, auth, true), Decision::RefreshToken);
        }
        assert_eq!(
            decide(refused, Auth::StaticToken, false),
            Decision::Fail(Failure::TokenRefused)
        );
    }

    /// A transient answer without `Retry-After` leaves the delay to the backoff.
    #[test]
    fn retries_without_retry_after_use_the_backoff() {
        let answer = Answer::Status {
            status: 503,
            retry_after: None,
        };
        assert_eq!(
            decide(answer, Auth::MintedToken, false),
            Decision::Retry { after: None }
        );
    }

    #[test]
    fn jitter_is_in_the_unit_interval() {
        for _ in 0..100 {
            let random = jitter_random();
            assert!((0.0..1.0).contains(&random));
        }
    }
}
