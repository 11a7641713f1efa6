//! `sensource-connector --port N`: serve Fivetran's protocol until SIGTERM.

use std::{process::ExitCode, time::Duration};

use tokio::sync::oneshot;
use tracing::{Level, warn};

use fivetran_source::{
    grpc::{
        server::{ResponseCompression, bind, serve},
        service::ConnectorService,
    },
    telemetry,
};

use crate::commands::shutdown_signal;

/// How long a stop signal waits for running calls before the process exits.
/// A sync cut short here resumes from its last checkpoint, so waiting for a
/// multi-hour backfill to finish is never necessary.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Binds the port and serves until Ctrl-C or SIGTERM, compressing responses
/// as `compression` says. Logs go to stdout as
/// Fivetran JSON lines; nothing else is printed there.
///
/// # Errors
/// When the port cannot be bound or the transport fails.
pub(crate) async fn run(port: u16, compression: ResponseCompression) -> anyhow::Result<ExitCode> {
    telemetry::init(std::io::stdout, Level::INFO, env!("CARGO_CRATE_NAME"));
    let listener = bind(port)?;
    let service = ConnectorService::default();
    let (stop, stopped) = oneshot::channel::<()>();
    let mut server = tokio::spawn(serve(listener, service.clone(), compression, async move {
        let _ = stopped.await;
    }));
    tokio::select! {
        finished = &mut server => {
            finished??;
            return Ok(ExitCode::SUCCESS);
        }
        () = shutdown_signal() => {}
    }
    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
        Ok(finished) => finished??,
        Err(_) => warn!(
            syncs = service.running_syncs(),
            "Stopping with calls still running; their syncs resume from the last checkpoint."
        ),
    }
    Ok(ExitCode::SUCCESS)
}
