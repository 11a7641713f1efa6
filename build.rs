//! Compiles the Fivetran SDK protocol files with a vendored `protoc`, so a fresh
//! machine needs nothing but cargo, and writes the descriptor set that gRPC
//! reflection serves.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut prost_config = tonic_prost_build::Config::new();
    prost_config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let well_known_includes = protoc_bin_vendored::include_path()?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Records are small maps built once and encoded once: a BTreeMap
        // skips hashing and iterates faster when prost sizes the message.
        .btree_map(".fivetran_sdk.v2.Record.data")
        // Written by hand in `grpc::wire`, so record batches skip the
        // generated message types entirely.
        .extern_path(
            ".fivetran_sdk.v2.UpdateResponse",
            "crate::grpc::wire::UpdateResponse",
        )
        .file_descriptor_set_path(out_dir.join("fivetran_sdk_descriptor.bin"))
        .compile_with_config(
            prost_config,
            &[
                PathBuf::from("proto/common.proto"),
                PathBuf::from("proto/connector_sdk.proto"),
            ],
            &[PathBuf::from("proto"), well_known_includes],
        )?;
    Ok(())
}
