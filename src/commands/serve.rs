//! `sensource-connector --port N`: serve Fivetran's protocol until SIGTERM.

use std::process::ExitCode;

use tracing::Level;

use crate::{
    grpc::{
        server::{bind, serve, shutdown_signal},
        service::ConnectorService,
    },
    telemetry,
};

/// Binds the port and serves until Ctrl-C or SIGTERM. Logs go to stdout as
/// Fivetran JSON lines; nothing else is printed there.
///
/// # Errors
/// When the port cannot be bound or the transport fails.
pub async fn run(port: u16) -> anyhow::Result<ExitCode> {
    telemetry::init(std::io::stdout, Level::INFO);
    let listener = bind(port)?;
    serve(listener, ConnectorService::default(), shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
