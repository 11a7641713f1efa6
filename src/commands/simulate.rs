//! `sensource-connector simulate`: the built-in SenSource API simulator as a
//! standalone HTTP server, for trying the connector without an account.

use std::process::ExitCode;

use chrono::{NaiveTime, Utc};
use tokio::net::TcpListener;

use fivetran_source::{
    secret::Secret,
    simulator::{self, Faults, SimulatorOptions},
};

use crate::{cli::SimulateArgs, commands::shutdown_signal};

/// Serves the simulator on `127.0.0.1:PORT` until Ctrl-C or SIGTERM.
///
/// # Errors
/// When the port cannot be bound.
pub(crate) async fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let history_start = args.history_start.and_time(NaiveTime::MIN).and_utc();
    let options = SimulatorOptions {
        client_id: args.client_id,
        client_secret: Secret::new(args.client_secret),
        api_token: args.api_token.map(Secret::new),
        zones: args.zones,
        spaces: args.spaces,
        history_start,
        now: args.now.unwrap_or_else(Utc::now),
        token_lifetime_secs: args.token_lifetime_secs,
        seed: args.seed,
        settle_lag_secs: args.settle_lag_secs,
        outage_backfilled_at: args.outage_backfilled_at,
        location_timezones: !args.no_location_timezone,
        faults: Faults {
            latency_ms: args.latency_ms,
            server_error_rate: args.error_rate,
            rate_limit_every: args.rate_limit_every,
            one_live_token: args.one_live_token,
            malformed_body_rate: args.malformed_rate,
            max_range_days: args.max_range_days,
            drop_connection_rate: args.drop_connection_rate,
            bad_rows_every: args.bad_rows_every,
            endless_body: args.endless_body,
            wrong_shape: args.wrong_shape,
            whole_edge_buckets: args.whole_edge_buckets,
            retry_after_secs: args.retry_after_secs,
            retry_after_http_date: args.retry_after_http_date,
            ..Faults::default()
        },
        ..SimulatorOptions::default()
    };
    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    let address = listener.local_addr()?;
    eprintln!(
        "SenSource simulator on http://{address} (token URL http://{address}{}), client_id {:?}; Ctrl-C to stop.",
        simulator::TOKEN_PATH,
        options.client_id
    );
    simulator::serve(listener, options, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
