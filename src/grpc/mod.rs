//! The gRPC layer: the only code that knows protobuf and `tonic::Status`.
//! Generated types live in [`pb`]; [`service`] implements the four RPCs on
//! top of the domain modules; [`server`] binds, serves and shuts down.

pub mod convert;
pub mod server;
pub mod service;
pub mod wire;

/// Generated code for `fivetran_sdk.v2`, quarantined here.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used
)]
pub mod pb {
    tonic::include_proto!("fivetran_sdk.v2");

    // `UpdateResponse` is hand-written (see `grpc::wire`); it lives here too so
    // every protocol type has one path.
    pub use super::wire::{UpdateResponse, update_response};

    /// The encoded descriptor set of our protocol files, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("fivetran_sdk_descriptor");
}
