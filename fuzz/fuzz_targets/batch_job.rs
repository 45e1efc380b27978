//! A job message off the queue, whatever its bytes: valid ones survive a re-encoding unchanged, the
//! rest are refused with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok((key, job)) = proto::validate::batch_job(data) {
        let again = proto::validate::batch_job(&job.encode_to_vec()).expect("a valid job re-encodes valid");
        assert_eq!(again, (key, job));
    }
});
