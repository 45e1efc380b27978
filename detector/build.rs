//! Compiles the ONNX subset the weights loader reads, with protox (pure Rust, no `protoc`).

fn main() {
    let proto = "proto/onnx.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["."]).unwrap_or_else(|e| panic!("{e}"));
    prost_build::Config::new()
        .compile_fds(descriptors)
        .unwrap_or_else(|e| panic!("generating code for {proto}: {e}"));
}
