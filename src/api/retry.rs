//! Retry policy, as pure functions: which answers are worth another try, and
//! how long to wait before it (capped exponential backoff with full jitter,
//! or the server's `Retry-After`).

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

    #[test]
    fn jitter_is_in_the_unit_interval() {
        for _ in 0..100 {
            let random = jitter_random();
            assert!((0.0..1.0).contains(&random));
        }
    }
}
