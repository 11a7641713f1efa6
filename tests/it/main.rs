//! The single integration-test binary: the real gRPC server and the built-in
//! SenSource simulator on `127.0.0.1:0`, talking over real sockets.

// Helpers are `pub` so every test module can use them; the crate is a test binary.
#![allow(unreachable_pub)]

mod support;

/// Health and reflection services next to the connector.
mod serving;
/// ConfigurationForm, Test and Schema RPCs.
mod setup_rpcs;
/// Update: full sync, resumption, state, selection, errors.
mod update;
