//! `sensource-connector debug`: placeholder replaced below.
use std::process::ExitCode;
/// tmp
pub async fn run(_args: crate::cli::DebugArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("tmp")
}
