//! `sensource-connector debug`: a full local sync into `files/warehouse.sqlite`
//! (or DuckDB's `files/warehouse.db`), like `fivetran debug`. A thin shell over [`fivetran_source::debug::run_debug`].

use std::process::ExitCode;

use anyhow::Context as _;
use tracing::Level;

use fivetran_source::{
    debug::{self, Console, DebugOptions},
    simulator::SimulatorOptions,
    telemetry,
};

use crate::cli::DebugArgs;

/// Runs the sync, prints the summary to stdout and exits 0 on success, 1 on
/// a failed sync (a Task included).
///
/// # Errors
/// When the sync cannot start: configuration, files folder, state, warehouse.
pub(crate) async fn run(args: DebugArgs) -> anyhow::Result<ExitCode> {
    // The connector's own JSON lines would drown the progress: warnings only,
    // unless asked. Never stdout, which carries the summary.
    let level = if args.verbose {
        Level::INFO
    } else {
        Level::WARN
    };
    telemetry::init(std::io::stderr, level, env!("CARGO_CRATE_NAME"));

    if let Some(state) = &args.state
        && !state.is_file()
    {
        anyhow::bail!(
            "the state file {} does not exist: name an existing file, or leave --state out to use {}",
            state.display(),
            args.files.join(debug::STATE_FILE).display()
        );
    }
    let configuration = debug::load_configuration(&args.configuration, args.simulate)
        .context("cannot load the configuration")?;
    let mut options = DebugOptions::new(&args.files);
    options.configuration = configuration;
    options.state_path = args.state;
    options.warehouse = args.warehouse;
    options.simulate = args.simulate.then(SimulatorOptions::default);
    options.naming = args.naming.into();
    options.console = Console::stderr();
    options.interrupt = Some(Box::pin(async {
        // Without a signal handler, never interrupt (rather than at once).
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }));

    let report = debug::run_debug(options)
        .await
        .with_context(|| format!("cannot start the debug sync in {}", args.files.display()))?;
    println!("{report}");
    Ok(if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
