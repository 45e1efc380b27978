//! A run spec (TOML), whatever its text: a spec or a one-line error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = coordinator::spec::RunSpec::parse(text, std::path::Path::new(".")) {
            assert!(!e.contains('\n') || e.len() < 4096, "errors stay short");
        }
    }
});
