//! Compiles `proto/` with protox (a pure-Rust protobuf compiler, so no system
//! `protoc` is needed) and keeps the encoded descriptor set for reflection.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: `env!` would bake in the path the build script was
    // compiled at, and cargo reuses that binary for a checkout elsewhere
    // sharing the target directory, which would then compile the wrong tree.
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let files = proto_files(&proto_root)?;
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let descriptors = protox::Compiler::new([&proto_root])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(&files)?
        .file_descriptor_set();

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("onestop_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    // Type names let event payloads travel as `google.protobuf.Any`.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    // grpcurl, Any-aware JSON printers and other languages' runtimes expect
    // the conventional prefix.
    config.type_name_domain(["."], "type.googleapis.com");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(descriptors, config)?;
    Ok(())
}

fn proto_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                println!("cargo:rerun-if-changed={}", path.display());
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "proto") {
                println!("cargo:rerun-if-changed={}", path.display());
                found.push(path.strip_prefix(root).expect("below root").to_path_buf());
            }
        }
    }
    found.sort();
    Ok(found)
}
