//! The commands behind the command line, on the binary side: the library
//! knows nothing of them. Together with `main` they are the only code that
//! uses `anyhow`: they report errors to a human and exit.

pub(crate) mod configuration;
pub(crate) mod debug;
pub(crate) mod reset;
pub(crate) mod serve;
pub(crate) mod simulate;

use tracing::info;

/// Completes on Ctrl-C or SIGTERM (how Fivetran stops a connector).
/// Shared by `serve` and `simulate`.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    info!("Shutdown signal received.");
}
