//! Compiles `dcwatch/v1/*.proto` with protox (a protobuf compiler in Rust, so no `protoc` is
//! needed on the machine), generates the message types with prost, the Ingest service's client and server
//! with tonic, and their JSON form (proto field names, enums by name) with pbjson.

use std::{env, fs, path::PathBuf};

use anyhow::Context as _;

const PROTO_ROOT: &str = ".";
const PROTO_DIR: &str = "dcwatch/v1";

fn main() -> anyhow::Result<()> {
    let mut files = Vec::new();
    for entry in fs::read_dir(PROTO_DIR).context("reading the .proto folder")? {
        let path = entry?.path();
        if path
            .extension()
            .is_some_and(|extension| extension == "proto")
        {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
    files.sort();
    let descriptors =
        protox::compile(&files, [PROTO_ROOT]).context("compiling the .proto files")?;
    let out_dir = PathBuf::from(env::var("OUT_DIR").context("OUT_DIR")?);
    let descriptor_path = out_dir.join("descriptors.bin");
    fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;

    prost_build::Config::new()
        // pbjson_types: Timestamp with its JSON form (RFC 3339); prost_types has none.
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        // The Ingest service's client and server; callers bring their own channel (no
        // `connect`), so this crate needs tonic's codegen only.
        .service_generator(
            tonic_prost_build::configure()
                .build_transport(false)
                .service_generator(),
        )
        .compile_fds(descriptors)
        .context("generating the Rust types")?;
    pbjson_build::Builder::new()
        .register_descriptors(&fs::read(&descriptor_path)?)?
        .preserve_proto_field_names()
        .build(&[".dcwatch"])
        .context("generating the JSON form")?;
    Ok(())
}
