//! `analyzer stats` input, whatever its text (any numbers, NaN, infinities, empty groups): a table
//! of tests or a one-line error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = analyzer::stats::cli::run(text, analyzer::stats::cli::Format::Json);
    }
});
