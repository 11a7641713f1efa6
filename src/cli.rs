//! The command line: `sensource-connector [--port N]` serves Fivetran's
//! protocol; subcommands run the simulator, a local debug sync, or a reset.

use std::{path::PathBuf, process::ExitCode};

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use fivetran_source::{
    debug::{
        self,
        warehouse::{UnknownWarehouse, WarehouseError, WarehouseKind},
    },
    grpc::server::ResponseCompression,
};

use crate::commands;

/// The gRPC port Fivetran's partner SDK uses by default.
const DEFAULT_PORT: u16 = 50051;

/// Fivetran source connector for the SenSource Vea API.
///
/// Without a subcommand, serves `fivetran_sdk.v2.SourceConnector` (plus gRPC
/// health and reflection) on `[::]:PORT`, logging Fivetran JSON lines to stdout.
#[derive(Debug, Parser)]
#[command(name = "sensource-connector", version, about, long_about)]
pub(crate) struct Cli {
    /// How to serve when no subcommand is given.
    #[command(flatten)]
    pub(crate) serve: ServeArgs,

    /// What to run; serving is the default.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve the connector (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Run the built-in SenSource API simulator (for local runs and tests).
    Simulate(SimulateArgs),
    /// Run a full sync into a local SQLite or DuckDB warehouse, like `fivetran debug`.
    Debug(DebugArgs),
    /// Run ConfigurationForm and, with `--test`, the connection test against a configuration
    /// file, like `fivetran configuration --test`.
    Configuration(ConfigurationArgs),
    /// Delete the local warehouse and state (`files/`).
    Reset {
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// The folder to delete.
        #[arg(long, default_value = "files")]
        files: PathBuf,
    },
}

/// Options of serving (the default command and `serve`).
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Port to serve gRPC on (also `--port=N`).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub(crate) port: u16,
    /// Compression of the messages the connector sends: `none` (the default:
    /// Fivetran's worker runs beside the connector, so gzip costs CPU for
    /// nothing) or `gzip` (for a connector behind a slow link, to clients that
    /// accept it). Gzipped requests are accepted either way.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub(crate) compression: ResponseCompression,
}

fn parse_compression(text: &str) -> Result<ResponseCompression, String> {
    text.parse()
}

/// Options of `simulate`.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Port to serve HTTP on (127.0.0.1; 0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
    /// Client ID the token endpoint accepts.
    #[arg(long, default_value = "sim-client")]
    pub(crate) client_id: String,
    /// Client secret the token endpoint accepts.
    #[arg(long, default_value = "sim-secret")]
    pub(crate) client_secret: String,
    /// A long-lived API token the API accepts as it is (no token exchange).
    #[arg(long)]
    pub(crate) api_token: Option<String>,
    /// Number of zones (traffic entities).
    #[arg(long, default_value_t = 6)]
    pub(crate) zones: usize,
    /// Number of spaces (occupancy entities).
    #[arg(long, default_value_t = 3)]
    pub(crate) spaces: usize,
    /// First day with data (UTC).
    #[arg(long, default_value = "2022-01-01")]
    pub(crate) history_start: NaiveDate,
    /// The simulated clock (RFC 3339); defaults to the real current time.
    #[arg(long)]
    pub(crate) now: Option<DateTime<Utc>>,
    /// Seed of the deterministic data and faults.
    #[arg(long, default_value_t = 7)]
    pub(crate) seed: u64,
    /// Token lifetime (`expires_in`) in seconds.
    #[arg(long, default_value_t = 3600)]
    pub(crate) token_lifetime_secs: u64,
    /// Delay added to every API response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub(crate) latency_ms: u64,
    /// Fraction (0..1) of API requests answered with HTTP 500.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) error_rate: f64,
    /// Answer every Nth data request with 429 and `Retry-After` (0 = never).
    #[arg(long, default_value_t = 0)]
    pub(crate) rate_limit_every: u32,
    /// `Retry-After` of every 429 (data and token), in seconds.
    #[arg(long, default_value_t = 1)]
    pub(crate) retry_after_secs: u64,
    /// Send `Retry-After` as an HTTP-date instead of seconds.
    #[arg(long)]
    pub(crate) retry_after_http_date: bool,
    /// Minting a token invalidates the previous ones.
    #[arg(long)]
    pub(crate) one_live_token: bool,
    /// Fraction (0..1) of data responses cut in half (truncated JSON).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) malformed_rate: f64,
    /// Refuse data requests spanning more than this many days (HTTP 400).
    #[arg(long)]
    pub(crate) max_range_days: Option<u32>,
    /// Seconds after an hour ends until its counts are final (late uploads); until then
    /// recent hours grow.
    #[arg(long, default_value_t = 0)]
    pub(crate) settle_lag_secs: u64,
    /// Simulated instant (RFC 3339) from which the outage hours have rows (late upload).
    #[arg(long)]
    pub(crate) outage_backfilled_at: Option<DateTime<Utc>>,
    /// Fraction (0..1) of data responses whose connection drops half-way through the body.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) drop_connection_rate: f64,
    /// Make every Nth data row unusable: null id, "n/a" first metric (0 = never).
    #[arg(long, default_value_t = 0)]
    pub(crate) bad_rows_every: u32,
    /// Data responses never end (valid rows forever), to test a client's body-size cap.
    #[arg(long)]
    pub(crate) endless_body: bool,
    /// Data responses carry an object where the list of rows belongs.
    #[arg(long)]
    pub(crate) wrong_shape: bool,
    /// Series buckets that stick out of a request's window carry their whole value (by
    /// default only the part inside the window).
    #[arg(long)]
    pub(crate) whole_edge_buckets: bool,
    /// Location objects carry no `timezone` field.
    #[arg(long)]
    pub(crate) no_location_timezone: bool,
}

/// Options of `debug`.
#[derive(Debug, Args)]
pub(crate) struct DebugArgs {
    /// Configuration file: a JSON object of strings.
    #[arg(
        long,
        env = "FIVETRAN_CONFIGURATION",
        default_value = "configuration.json"
    )]
    pub(crate) configuration: PathBuf,
    /// State file to resume from and to write (default: `files/state.json`); a file named
    /// here must exist.
    #[arg(long, env = "FIVETRAN_STATE")]
    pub(crate) state: Option<PathBuf>,
    /// Start the built-in simulator and point the configuration at it: no
    /// credentials or configuration file needed.
    #[arg(long)]
    pub(crate) simulate: bool,
    /// How table and column names appear in the warehouse (case-insensitive).
    #[arg(
        long,
        env = "FIVETRAN_NAMING",
        value_enum,
        ignore_case = true,
        default_value_t = Naming::Fivetran
    )]
    pub(crate) naming: Naming,
    /// The warehouse: `sqlite` (`<files>/warehouse.sqlite`, open it with sqlite3) or
    /// `duckdb` (`<files>/warehouse.db`, schema `tester`, as Fivetran's tools write it;
    /// open it with `duckdb -ui`; needs a build with `--features duckdb`).
    #[arg(long, default_value = "sqlite", value_parser = parse_warehouse)]
    pub(crate) warehouse: WarehouseKind,
    /// Folder for the warehouse and `state.json`.
    #[arg(long, default_value = "files")]
    pub(crate) files: PathBuf,
    /// Also print the connector's own log lines (to stderr).
    #[arg(long)]
    pub(crate) verbose: bool,
}

/// Options of `configuration`.
#[derive(Debug, Args)]
pub(crate) struct ConfigurationArgs {
    /// Configuration file: a JSON object of strings.
    #[arg(
        long,
        env = "FIVETRAN_CONFIGURATION",
        default_value = "configuration.json"
    )]
    pub(crate) configuration: PathBuf,
    /// Also run the form's connection test against the configuration.
    #[arg(long)]
    pub(crate) test: bool,
}

/// `--warehouse`: any case; an engine this binary lacks is refused at once,
/// saying how to build it.
fn parse_warehouse(text: &str) -> Result<WarehouseKind, String> {
    let kind: WarehouseKind = text
        .parse()
        .map_err(|error: UnknownWarehouse| error.to_string())?;
    if kind.is_built_in() {
        Ok(kind)
    } else {
        Err(WarehouseError::NotBuilt(kind).to_string())
    }
}

/// Destination naming mode (`debug::Naming`, as a command-line value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Naming {
    /// Fivetran's normalized names (what the connector emits).
    Fivetran,
    /// Names exactly as the connector sends them (identical here: the
    /// connector already emits normalized names).
    Source,
}

impl From<Naming> for debug::Naming {
    fn from(naming: Naming) -> Self {
        match naming {
            Naming::Fivetran => debug::Naming::Fivetran,
            Naming::Source => debug::Naming::Source,
        }
    }
}

/// Runs the parsed command line.
///
/// # Errors
/// Whatever the command reports; `main` prints it and exits non-zero.
pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        None => runtime.block_on(commands::serve::run(cli.serve.port, cli.serve.compression)),
        Some(Command::Serve(args)) => {
            runtime.block_on(commands::serve::run(args.port, args.compression))
        }
        Some(Command::Simulate(args)) => runtime.block_on(commands::simulate::run(args)),
        Some(Command::Debug(args)) => runtime.block_on(commands::debug::run(args)),
        Some(Command::Configuration(args)) => runtime.block_on(commands::configuration::run(args)),
        Some(Command::Reset { yes, files }) => commands::reset::run(&files, yes),
    }
}
