//! A Fivetran source connector for SenSource's Vea API (people counting).
//!
//! Fivetran calls a gRPC server (`fivetran_sdk.v2.SourceConnector`); the
//! connector logs in to SenSource, refreshes the reference tables, fetches
//! hourly traffic and occupancy in date chunks, and streams upserts with a
//! checkpoint after each chunk. See `ARCHITECTURE.md` for the map.
//!
//! Layout:
//! - [`grpc`]: the only code that knows protobuf and `tonic::Status`.
//! - [`api`]: the only code that knows HTTP; login, retries, body limits.
//! - [`sync`]: the Update pipeline over domain types.
//! - [`config`], [`state`], [`chunk`], [`selection`], [`record`], [`schema`],
//!   [`naming`]: pure domain logic, no IO.
//! - [`simulator`]: a SenSource API look-alike for tests and local runs.
//! - [`debug`]: the local debug sync into a SQLite warehouse (`debug` command).
//! - [`telemetry`], [`clock`], [`secret`]: cross-cutting helpers.
//! - `fuzzing` (tests and the `fuzzing` feature only): differential checks
//!   of the hand-written parsers, for the property tests and `fuzz/`.

pub mod api;
pub mod chunk;
pub mod clock;
pub mod config;
pub mod debug;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod naming;
pub mod record;
pub mod schema;
pub mod secret;
pub mod selection;
pub mod simulator;
pub mod state;
pub mod sync;
pub mod telemetry;
