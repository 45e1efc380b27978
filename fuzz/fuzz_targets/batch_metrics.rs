//! A metrics message off the queue, whatever its bytes: valid ones re-encode unchanged and turn into
//! an analyzer row (any durations, counts or histograms), the rest are refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok((key, metrics)) = proto::validate::batch_metrics(data) {
        let again = proto::validate::batch_metrics(&metrics.encode_to_vec()).expect("valid metrics re-encode valid");
        assert_eq!(again.0, key);
        let _ = analyzer::rows::BatchRow::from_metrics(&metrics);
    }
});
