//! Compiles the wire contract with protox (pure Rust), so a fresh build needs no `protoc`.

fn main() {
    let proto = "cloudbench/v1/messages.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["."]).unwrap_or_else(|e| panic!("{e}"));
    prost_build::Config::new()
        .compile_fds(descriptors)
        .unwrap_or_else(|e| panic!("generating code for {proto}: {e}"));
}
