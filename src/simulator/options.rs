//! [`SimulatorOptions`]: how a simulator is set up (credentials, dataset shape, clock, token
//! lifetime, the faults it starts with), and the defaults tests rely on.

use chrono::{DateTime, Duration, Utc};

use crate::secret::Secret;

use super::faults::Faults;

/// 2025-01-01T00:00:00Z.
const DEFAULT_HISTORY_START_SECS: i64 = 1_735_689_600;
/// 2025-03-15T10:30:00Z.
const DEFAULT_NOW_SECS: i64 = 1_742_034_600;

fn utc(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// How the simulator behaves. Everything but `faults` and `now` is fixed for the server's life.
#[derive(Clone, Debug)]
pub struct SimulatorOptions {
    /// The client id the token endpoint accepts.
    pub client_id: String,
    /// A `Secret`, so that a real secret passed to `simulate` never lands in a log line.
    pub client_secret: Secret,
    /// Number of zones, the entities of the traffic series.
    pub zones: usize,
    /// Number of spaces, the entities of the occupancy series.
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
    /// Seeds the dataset, the minted tokens and the fault RNG: the same seed, the same run.
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
    /// Whether `/api/location` objects carry `timezone` (an IANA name). The field is inferred
    /// from a production pipeline, not recorded, so the connector must work without it.
    pub location_timezones: bool,
    /// The injected failures the server starts with; they can be replaced while it runs.
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
            location_timezones: true,
            faults: Faults::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::simulator::test_support::at;

    use super::*;

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
}
