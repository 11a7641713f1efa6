//! `sensource-connector reset`: delete the debug warehouse and state.

use std::{
    io::{BufRead, IsTerminal, Write},
    path::Path,
    process::ExitCode,
};

use anyhow::Context as _;

/// Removes `files` after the user confirms (or at once with `--yes`).
///
/// # Errors
/// When the folder cannot be removed.
pub(crate) fn run(files: &Path, yes: bool) -> anyhow::Result<ExitCode> {
    if !files.exists() {
        eprintln!("Nothing to reset: {} does not exist.", files.display());
        return Ok(ExitCode::SUCCESS);
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "Refusing to delete {} without confirmation; pass --yes.",
                files.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        eprint!("Delete {} (warehouse and state)? [y/N] ", files.display());
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES") {
            eprintln!("Not deleted.");
            return Ok(ExitCode::FAILURE);
        }
    }
    std::fs::remove_dir_all(files).with_context(|| format!("deleting {}", files.display()))?;
    eprintln!("Deleted {}.", files.display());
    Ok(ExitCode::SUCCESS)
}
