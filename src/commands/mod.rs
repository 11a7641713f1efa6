//! Command implementations behind the CLI. These are the only library code
//! that uses `anyhow`: they report errors to a human and exit.

pub mod debug;
pub mod reset;
pub mod serve;
pub mod simulate;
