//! `ApiError`, what went wrong talking to SenSource, and `Target`, the
//! endpoint and date window a request was for, kept as data so messages and
//! log lines format them each their own way.

use std::fmt;

use crate::{chunk::DateRange, schema::Table};

/// What a request was for: the endpoint and, for a time series, the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The endpoint path (`/api/zone`), or `token endpoint` for a login.
    pub endpoint: String,
    /// The whole UTC days asked for; `None` for reference tables and logins.
    pub window: Option<DateRange>,
}

impl Target {
    /// An endpoint, with the window if the request is for one.
    pub fn new(endpoint: impl Into<String>, window: Option<DateRange>) -> Self {
        Self {
            endpoint: endpoint.into(),
            window,
        }
    }

    /// The token endpoint. Its URL is configuration and may name a tenant, so
    /// messages name it by its role only.
    pub fn token_endpoint() -> Self {
        Self::new("token endpoint", None)
    }
}

/// `/api/data/traffic for 2025-01-01..2025-01-31`, or just the endpoint.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.endpoint)?;
        match self.window {
            Some(window) => write!(f, " for {window}"),
            None => Ok(()),
        }
    }
}

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
    #[error("SenSource rejected {target} with HTTP {status}: {detail}")]
    Rejected {
        /// The endpoint and window.
        target: Target,
        /// The HTTP status.
        status: u16,
        /// A short, sanitized explanation from the body.
        detail: String,
    },
    /// Transient failures persisted past the attempt budget or deadline.
    #[error(
        "SenSource is unavailable: {target} failed {attempts} time(s) in {elapsed_secs}s; last problem: {last}"
    )]
    Unavailable {
        /// The endpoint and window.
        target: Target,
        /// Attempts made.
        attempts: u32,
        /// Seconds spent.
        elapsed_secs: u64,
        /// The last failure, e.g. `HTTP 503` or `timed out`.
        last: String,
    },
    /// The body could not be used: invalid JSON, wrong shape, too large.
    #[error("SenSource sent an unusable response for {target}: {reason}")]
    InvalidResponse {
        /// The endpoint and window.
        target: Target,
        /// What is wrong with it (never the payload).
        reason: String,
    },
    /// The connection broke while the body streamed in; the caller may
    /// request the whole window again.
    #[error("the connection to SenSource broke while reading {target}")]
    BodyInterrupted {
        /// The endpoint and window.
        target: Target,
    },
    /// A time series was asked of a reference table, which has no data
    /// endpoint: a bug in the caller, never sent as a request.
    #[error("internal error: {table} is not a time-series table, so it has no data endpoint")]
    NotTimeSeries {
        /// The table asked for.
        table: Table,
    },
    /// The HTTP client could not be built (TLS initialisation).
    #[error("could not initialise the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
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

    /// A body over the configured size limit, with the two ways out.
    pub(super) fn too_large(target: &Target, limit: u64) -> Self {
        ApiError::InvalidResponse {
            target: target.clone(),
            reason: format!(
                "the body is larger than the {} MB limit (lower `chunk_days` or raise `max_response_mb`)",
                limit / (1024 * 1024)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn january() -> Target {
        let day = |d| NaiveDate::from_ymd_opt(2025, 1, d).unwrap();
        Target::new("/api/data/traffic", DateRange::new(day(1), day(31)))
    }

    /// A target names its window only when it has one.
    #[test]
    fn targets_name_the_window_when_there_is_one() {
        assert_eq!(
            january().to_string(),
            "/api/data/traffic for 2025-01-01..2025-01-31"
        );
        assert_eq!(Target::new("/api/zone", None).to_string(), "/api/zone");
        assert_eq!(Target::token_endpoint().to_string(), "token endpoint");
    }

    /// The messages read as they did when the window was preformatted text,
    /// which the integration tests and users' alerts match on.
    #[test]
    fn messages_name_endpoint_and_window() {
        let rejected = ApiError::Rejected {
            target: january(),
            status: 400,
            detail: "range too long".into(),
        };
        assert_eq!(
            rejected.to_string(),
            "SenSource rejected /api/data/traffic for 2025-01-01..2025-01-31 with HTTP 400: range too long"
        );
        let unavailable = ApiError::Unavailable {
            target: Target::new("/api/zone", None),
            attempts: 4,
            elapsed_secs: 2,
            last: "HTTP 503".into(),
        };
        assert_eq!(
            unavailable.to_string(),
            "SenSource is unavailable: /api/zone failed 4 time(s) in 2s; last problem: HTTP 503"
        );
        let invalid = ApiError::InvalidResponse {
            target: january(),
            reason: "the body is truncated JSON".into(),
        };
        assert_eq!(
            invalid.to_string(),
            "SenSource sent an unusable response for /api/data/traffic for 2025-01-01..2025-01-31: the body is truncated JSON"
        );
        let interrupted = ApiError::BodyInterrupted {
            target: Target::token_endpoint(),
        };
        assert_eq!(
            interrupted.to_string(),
            "the connection to SenSource broke while reading token endpoint"
        );
        assert_eq!(
            ApiError::too_large(&january(), 3 * 1024 * 1024).to_string(),
            "SenSource sent an unusable response for /api/data/traffic for 2025-01-01..2025-01-31: the body is larger than the 3 MB limit (lower `chunk_days` or raise `max_response_mb`)"
        );
    }

    /// Credentials and permissions are the user's to fix; the rest is not.
    #[test]
    fn only_refusals_need_the_user() {
        let endpoint = || "/api/zone".to_owned();
        for error in [
            ApiError::InvalidCredentials { status: 400 },
            ApiError::Forbidden {
                endpoint: endpoint(),
            },
            ApiError::TokenRefused {
                endpoint: endpoint(),
            },
            ApiError::Unauthorized {
                endpoint: endpoint(),
            },
        ] {
            assert!(error.needs_user_action(), "{error}");
        }
        for error in [
            ApiError::Rejected {
                target: january(),
                status: 404,
                detail: "no explanation".into(),
            },
            ApiError::BodyInterrupted { target: january() },
            ApiError::too_large(&january(), 1024),
        ] {
            assert!(!error.needs_user_action(), "{error}");
        }
    }
}
