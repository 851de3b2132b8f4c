//! Compiles `proto/` with protox (a pure-Rust protobuf compiler, so no system
//! `protoc` is needed), keeps the encoded descriptor set for reflection, and
//! writes one adapter macro per service (see `adapters` in lib.rs).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prost_types::FileDescriptorSet;

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
    std::fs::write(out_dir.join("adapters.rs"), adapters(&descriptors)?)?;

    // Type names let event payloads travel as `google.protobuf.Any`.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    // grpcurl, Any-aware JSON printers and other languages' runtimes expect
    // the conventional prefix.
    config.type_name_domain(["."], "type.googleapis.com");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Smaller per-call buffers; see `Codec` in lib.rs.
        .codec_path("crate::Codec")
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
                if path.file_name().is_some_and(|name| name == "node_modules") {
                    continue;
                }
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

/// tonic's method names: `GetSampleTestReport` -> `get_sample_test_report`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `.onestop.intake.v1.Company` -> `$crate::intake::v1::Company`.
fn rust_type(proto_type: &str) -> Result<String, String> {
    let path = proto_type
        .strip_prefix(".onestop.")
        .ok_or_else(|| format!("RPC type {proto_type} is not a OneStop message"))?;
    Ok(format!("$crate::{}", path.replace('.', "::")))
}

/// For every OneStop service, a macro that implements the generated tonic
/// trait for a handler type by forwarding each RPC to the handler's
/// inherent method of the same name, `(caller, request) -> ApiResult<..>`,
/// through `onestop_platform::rpc`. A new RPC is then one handler method.
fn adapters(descriptors: &FileDescriptorSet) -> Result<String, Box<dyn std::error::Error>> {
    let mut out = String::new();
    for file in &descriptors.file {
        let package = file.package();
        if !package.starts_with("onestop.") {
            continue;
        }
        let module = package.trim_start_matches("onestop.").replace('.', "::");
        for service in &file.service {
            let name = service.name();
            let snake = snake_case(name);
            let macro_name = format!("impl_{snake}");
            writeln!(
                out,
                "/// Implements `{package}.{name}` for a handler type whose inherent\n\
                 /// methods take `(Caller, Request)` and return `ApiResult<Response>`\n\
                 /// (server-streaming methods: `ApiResult<RpcStream<Item>>`).\n\
                 #[macro_export]\n\
                 macro_rules! {macro_name} {{\n    ($api:ty) => {{\n        \
                 #[::tonic::async_trait]\n        \
                 impl $crate::{module}::{snake}_server::{name} for $api {{"
            )?;
            for method in &service.method {
                let rpc = snake_case(method.name());
                let method_name = method.name();
                let input = rust_type(method.input_type())?;
                let output = rust_type(method.output_type())?;
                if method.client_streaming() {
                    return Err(format!(
                        "{name}.{}: client streaming has no adapter",
                        method.name()
                    )
                    .into());
                }
                if method.server_streaming() {
                    let stream = format!("{}Stream", method.name());
                    writeln!(
                        out,
                        "            type {stream} = ::onestop_platform::rpc::RpcStream<{output}>;\n            \
                         async fn {rpc}(&self, request: ::tonic::Request<{input}>)\n                \
                         -> ::std::result::Result<::tonic::Response<Self::{stream}>, ::tonic::Status> {{\n                \
                         ::onestop_platform::rpc::server_streaming(request, \"{package}.{name}/{method_name}\", |caller, request| self.{rpc}(caller, request)).await\n            }}"
                    )?;
                } else {
                    writeln!(
                        out,
                        "            async fn {rpc}(&self, request: ::tonic::Request<{input}>)\n                \
                         -> ::std::result::Result<::tonic::Response<{output}>, ::tonic::Status> {{\n                \
                         ::onestop_platform::rpc::unary(request, \"{package}.{name}/{method_name}\", |caller, request| self.{rpc}(caller, request)).await\n            }}"
                    )?;
                }
            }
            writeln!(out, "        }}\n    }};\n}}\n")?;
        }
    }
    Ok(out)
}
