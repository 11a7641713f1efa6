//! Entry point: parse the command line, run it, turn errors into an exit code.
//! The command line (`cli`) and the commands behind it live on this binary
//! side; the library (`fivetran_source`) does not know them.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match cli::run(cli::Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
