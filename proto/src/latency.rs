//! Per-request latency histograms in microseconds, serialised as HdrHistogram V2 so that the
//! histograms of many batches and workers add up to exactly the histogram of all their requests.

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;

/// Highest latency a histogram records: one hour, in microseconds. Larger values are clamped.
pub const MAX_MICROS: u64 = 3_600_000_000;
/// Significant decimal digits kept: 3 gives a relative error under 0.1%.
pub const SIGFIG: u8 = 3;

/// Returns an empty latency histogram with the system-wide precision.
///
/// It grows with the largest value recorded (up to [`MAX_MICROS`]) instead of allocating the whole
/// range up front: a batch's histogram of ~30 ms requests then holds a few thousand counters, not
/// the ~45,000 of a one-hour range, which is what decoding and merging tens of thousands of them
/// for a report costs.
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 2048, SIGFIG).expect("constant bounds are valid");
    h.auto(true);
    h
}

/// Records one latency, clamped to the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, micros: u64) {
    histogram.saturating_record(micros.clamp(1, MAX_MICROS));
}

/// Serialises a histogram (V2, uncompressed).
pub fn encode(histogram: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    V2Serializer::new()
        .serialize(histogram, &mut out)
        .expect("serialising into memory cannot fail");
    out
}

/// Decodes a histogram written by [`encode`]; an empty slice is an empty histogram.
pub fn decode(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    if bytes.is_empty() {
        return Ok(new_histogram());
    }
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("invalid latency histogram: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_decoded_histograms_equal_one_histogram_of_all_values() {
        let (mut a, mut b, mut all) = (new_histogram(), new_histogram(), new_histogram());
        for v in [120, 450, 90_000, 3] {
            record(&mut a, v);
            record(&mut all, v);
        }
        for v in [7, 450, 1_000_000] {
            record(&mut b, v);
            record(&mut all, v);
        }
        let mut merged = decode(&encode(&a)).unwrap();
        merged.add(decode(&encode(&b)).unwrap()).unwrap();
        assert_eq!(merged, all);
        assert_eq!(merged.len(), 7);
        assert!(decode(b"garbage").is_err());
        assert_eq!(decode(&[]).unwrap().len(), 0);
    }
}
