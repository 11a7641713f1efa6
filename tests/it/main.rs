//! The single integration-test binary: the real gRPC server and the built-in
//! SenSource simulator on `127.0.0.1:0`, talking over real sockets.

// Helpers are `pub` so every test module can use them, and failing fast with
// `unwrap` is what a test binary should do.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

mod support;

/// Per-table cursors, late counts, removed entities, re-syncs, DST.
mod data_over_time;
/// The built binary: `debug`, `reset`, `--help`.
mod debug_command;
/// The README's grpcurl commands, run with the real grpcurl against the binary.
mod grpcurl;
/// Faults, bad data, crash injection, convergence, load, disconnects.
mod reliability;
/// Bodies recorded from the real API, replayed value for value.
mod replay;
/// Series tables: every grouping and entity level, local days, edge behaviours.
mod series;
/// Health and reflection services next to the connector.
mod serving;
/// ConfigurationForm, Test and Schema RPCs.
mod setup_rpcs;
/// Update: full sync, resumption, state, selection, errors.
mod update;
