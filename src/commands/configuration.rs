//! `sensource-connector configuration [--test]`: the setup form and, with `--test`, the
//! connection test run against a configuration file, like `fivetran configuration --test`.

use std::process::ExitCode;

use anyhow::Context as _;
use fivetran_source::{debug, telemetry};
use tracing::Level;

use crate::cli::ConfigurationArgs;

/// Prints the form's fields and the test results; exits 1 when a test failed.
///
/// # Errors
/// When the configuration file cannot be read.
pub(crate) async fn run(args: ConfigurationArgs) -> anyhow::Result<ExitCode> {
    telemetry::init(std::io::stderr, Level::WARN, env!("CARGO_CRATE_NAME"));
    let configuration = debug::load_configuration(&args.configuration, false)
        .context("cannot load the configuration")?;
    let check = debug::check_configuration(configuration, args.test).await;
    println!("{check}");
    Ok(if check.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
