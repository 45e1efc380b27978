//! Per-request latency histograms in microseconds, serialised as HdrHistogram V2 so that the
//! histograms of many batches and workers add up to exactly the histogram of all their requests.
//!
//! Every value from 1 µs to [`MAX_MICROS`] is recorded as measured, within [`SIGFIG`] significant
//! digits; only a value above the limit is recorded at the limit, and [`record`] says so, so that
//! the caller counts it (`PhaseTiming.clamped`) and a report can say how many there were.

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

/// Records one latency; returns `true` when it was above [`MAX_MICROS`] and was recorded as
/// [`MAX_MICROS`] (a value of 0 is recorded as 1 µs, the resolution, and is not a clamp).
///
/// Not `saturating_record`: in hdrhistogram 7 that clamps to the histogram's *current* top (2 ms
/// for a new histogram) before it would grow it, which once turned every request above ~2 ms into
/// 2 ms. A plain `record` on an auto-resizing histogram grows it.
pub fn record(histogram: &mut Histogram<u64>, micros: u64) -> bool {
    let clamped = micros > MAX_MICROS;
    histogram
        .record(micros.clamp(1, MAX_MICROS))
        .expect("an auto-resizing histogram grows to hold any value up to MAX_MICROS");
    clamped
}

/// Serialises a histogram (V2, uncompressed).
pub fn encode(histogram: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    V2Serializer::new()
        .serialize(histogram, &mut out)
        .expect("serialising into memory cannot fail");
    out
}

/// Decodes a histogram written by [`encode`]; an empty slice is an empty histogram. The result
/// grows like a new one, so that histograms of any ranges merge into it.
pub fn decode(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    if bytes.is_empty() {
        return Ok(new_histogram());
    }
    let mut h: Histogram<u64> =
        Deserializer::new().deserialize(&mut &bytes[..]).map_err(|e| format!("invalid latency histogram: {e:?}"))?;
    h.auto(true);
    Ok(h)
}

/// Merges encoded histograms (an empty slice is an empty histogram; one that does not decode is
/// left out) into one; `None` when nothing was recorded in any of them.
pub fn merge<'a>(encoded: impl IntoIterator<Item = &'a [u8]>) -> Option<Histogram<u64>> {
    let mut merged = new_histogram();
    for h in encoded.into_iter().filter_map(|bytes| decode(bytes).ok()) {
        // Both grow on their own (`auto`), so adding cannot fail for want of range.
        let _ = merged.add(h);
    }
    (!merged.is_empty()).then_some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value HdrHistogram reports for `v` is within its relative precision of `v`.
    fn close(reported: u64, v: u64) -> bool {
        (reported as f64 - v as f64).abs() <= v as f64 * 1e-3 + 1.0
    }

    #[test]
    fn known_values_read_back_through_encode_decode_and_merge() {
        // 1 µs, 90 ms, 1 s, 1 h and above 1 h, each in a histogram of its own and in either order.
        let values = [1u64, 90_000, 1_000_000, MAX_MICROS, 2 * MAX_MICROS];
        for order in [values.to_vec(), values.iter().rev().copied().collect()] {
            let mut merged = decode(&[]).unwrap();
            let mut clamped = 0;
            for v in &order {
                let mut h = new_histogram();
                clamped += u64::from(record(&mut h, *v));
                merged.add(decode(&encode(&h)).unwrap()).unwrap();
            }
            assert_eq!(clamped, 1, "only the value above one hour is clamped");
            assert_eq!(merged.len(), 5);
            // Nearest-rank quantiles of the sorted values: 1, 90 ms, 1 s, 1 h, 1 h (clamped).
            let expect = [(0.2, 1), (0.4, 90_000), (0.6, 1_000_000), (0.8, MAX_MICROS), (1.0, MAX_MICROS)];
            for (q, v) in expect {
                let got = merged.value_at_quantile(q);
                assert!(close(got, v), "quantile {q}: {got} µs, expected {v} µs (order {order:?})");
            }
            assert!(close(merged.min(), 1) && close(merged.max(), MAX_MICROS));
        }
    }

    #[test]
    fn a_histogram_holds_every_magnitude_recorded_in_one_batch() {
        // A batch whose requests span 5 µs to 11 minutes (5 µs × 2^27), recorded small-first and large-first.
        let values: Vec<u64> = (0..200).map(|i| 5 * 2u64.pow(i % 28)).collect();
        for reversed in [false, true] {
            let mut h = new_histogram();
            let mut order = values.clone();
            if reversed {
                order.reverse();
            }
            for v in &order {
                assert!(!record(&mut h, *v));
            }
            let back = decode(&encode(&h)).unwrap();
            let mut sorted = values.clone();
            sorted.sort_unstable();
            for (i, v) in sorted.iter().enumerate() {
                // Halfway into rank i + 1, so that rounding cannot tip it into the next rank.
                let q = (i as f64 + 0.5) / sorted.len() as f64;
                let got = back.value_at_quantile(q);
                assert!(close(got, *v), "rank {i}: {got} µs, expected {v} µs");
            }
        }
    }

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
        assert!(close(merged.max(), 1_000_000), "the largest value read back: {}", merged.max());
        assert!(decode(b"garbage").is_err());
        assert_eq!(decode(&[]).unwrap().len(), 0);
    }
}
