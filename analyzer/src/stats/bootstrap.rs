//! Percentile-bootstrap confidence intervals for a median and for a difference of medians (Efron &
//! Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13): resample with replacement, take the
//! median of each resample, and read the interval off the (1 − level)/2 and (1 + level)/2 type-7
//! quantiles of those medians. The generator is ChaCha8 seeded by the caller, so an interval is
//! reproducible on every platform from its seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{StatsError, check_sample, median_sorted, quantile, sorted};

/// A point estimate with a confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    /// The statistic on the observed data.
    pub estimate: f64,
    /// Lower bound of the interval.
    pub lo: f64,
    /// Upper bound of the interval.
    pub hi: f64,
    /// Confidence level, e.g. 0.95.
    pub level: f64,
}

/// Returns the median of `values` with a percentile-bootstrap interval at `level` from `resamples`
/// resamples drawn by ChaCha8 seeded with `seed`.
pub fn bootstrap_median(values: &[f64], level: f64, resamples: usize, seed: u64) -> Result<Interval, StatsError> {
    check_sample(values, 0)?;
    check_settings(level, resamples)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut resampler = Resampler::new(values);
    let medians = (0..resamples).map(|_| resampler.median(&mut rng)).collect();
    Ok(interval(median_sorted(&resampler.sorted), medians, level))
}

/// Returns median(a) − median(b) with a percentile-bootstrap interval at `level`, resampling `a` and
/// `b` independently `resamples` times from one ChaCha8 generator seeded with `seed`.
pub fn bootstrap_median_difference(
    a: &[f64],
    b: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Result<Interval, StatsError> {
    check_sample(a, 0)?;
    check_sample(b, 1)?;
    check_settings(level, resamples)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut ra, mut rb) = (Resampler::new(a), Resampler::new(b));
    let differences = (0..resamples).map(|_| ra.median(&mut rng) - rb.median(&mut rng)).collect();
    let estimate = median_sorted(&ra.sorted) - median_sorted(&rb.sorted);
    Ok(interval(estimate, differences, level))
}

fn check_settings(level: f64, resamples: usize) -> Result<(), StatsError> {
    if !(level > 0.0 && level < 1.0) {
        return Err(StatsError::InvalidLevel { level });
    }
    if resamples == 0 {
        return Err(StatsError::NoResamples);
    }
    Ok(())
}

/// Fills `buf` with a resample of `values` (same size, with replacement) and returns its median.
/// Draws resamples (n values with replacement) of one sample and returns their medians.
///
/// A resample's median depends only on how many times each order statistic was drawn, so instead of
/// copying and sorting n values per resample, it counts draws per position of the sorted sample and
/// walks the counts to the middle: O(n) per resample, no sort, the same distribution.
struct Resampler {
    sorted: Vec<f64>,
    counts: Vec<u32>,
}

impl Resampler {
    fn new(values: &[f64]) -> Self {
        Self { sorted: sorted(values), counts: vec![0; values.len()] }
    }

    fn median(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        let n = self.sorted.len();
        self.counts.fill(0);
        // Two positions from each 64-bit draw by multiply-shift (Lemire, "Fast random integer
        // generation in an interval", ACM TOMACS 29(1), 2019), without the rejection step: its bias
        // is below n / 2^32 (under 3e-6 for 11,600 values), far below the bootstrap's own noise, and
        // it halves the generator's work, which dominates the resampling.
        let scale = |half: u64| ((half * n as u64) >> 32) as usize;
        for _ in 0..n / 2 {
            let r: u64 = rng.random();
            self.counts[scale(r >> 32)] += 1;
            self.counts[scale(r & 0xffff_ffff)] += 1;
        }
        if n % 2 == 1 {
            self.counts[scale(rng.random::<u64>() >> 32)] += 1;
        }
        // 0-based ranks of the middle: one for odd n, the two to average for even n.
        let (lower, upper) = ((n - 1) / 2, n / 2);
        let (mut seen, mut low_value) = (0usize, None);
        for (value, count) in self.sorted.iter().zip(&self.counts) {
            seen += *count as usize;
            if low_value.is_none() && seen > lower {
                low_value = Some(*value);
            }
            if seen > upper {
                return super::describe::lerp(low_value.expect("lower <= upper"), *value, 0.5);
            }
        }
        unreachable!("n draws reach every rank below n")
    }
}

/// Returns the medians of `resamples` resamples of `values`, drawn by ChaCha8 seeded with `seed`.
///
/// Replicates of independent samples can be combined: the differences of two samples' replicates,
/// position by position, are replicates of the difference of their medians, as drawn by
/// [`bootstrap_median_difference`] (which draws both from one generator instead).
pub fn median_replicates(values: &[f64], resamples: usize, seed: u64) -> Result<Vec<f64>, StatsError> {
    check_sample(values, 0)?;
    check_settings(0.5, resamples)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut resampler = Resampler::new(values);
    Ok((0..resamples).map(|_| resampler.median(&mut rng)).collect())
}

/// Returns the percentile interval at `level` of bootstrap `replicates` around `estimate`.
pub fn percentile_interval(estimate: f64, replicates: Vec<f64>, level: f64) -> Result<Interval, StatsError> {
    check_settings(level, replicates.len())?;
    Ok(interval(estimate, replicates, level))
}

fn interval(estimate: f64, mut replicates: Vec<f64>, level: f64) -> Interval {
    replicates.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| quantile(&replicates, q).unwrap_or(f64::NAN);
    Interval { estimate, lo: at(tail), hi: at(1.0 - tail), level }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: [f64; 12] = [0.91, 1.02, 0.88, 1.10, 0.97, 1.45, 0.93, 1.01, 0.99, 1.20, 0.95, 1.05];

    #[test]
    fn the_same_seed_gives_the_same_interval_and_another_seed_another() {
        // Durations in s/MiB, all distinct, so interpolated interval ends move with the resamples drawn.
        let sample: Vec<f64> = (0..40).map(|i| 0.8 + ((i * 37) % 40) as f64 * 0.0171).collect();
        let first = bootstrap_median(&sample, 0.9, 199, 7).unwrap();
        assert_eq!(first, bootstrap_median(&sample, 0.9, 199, 7).unwrap());
        assert_ne!(first, bootstrap_median(&sample, 0.9, 199, 8).unwrap());
        assert!(first.lo <= first.estimate && first.estimate <= first.hi, "{first:?}");
        assert!((bootstrap_median(&SAMPLE, 0.95, 100, 0).unwrap().estimate - 1.0).abs() < 1e-12);
        let d = bootstrap_median_difference(&SAMPLE, &[0.5, 0.6, 0.55], 0.9, 500, 1).unwrap();
        assert_eq!(d, bootstrap_median_difference(&SAMPLE, &[0.5, 0.6, 0.55], 0.9, 500, 1).unwrap());
        assert_ne!(d, bootstrap_median_difference(&SAMPLE, &[0.5, 0.6, 0.55], 0.9, 500, 2).unwrap());
    }

    #[test]
    fn values_near_the_largest_f64_do_not_overflow_into_nan() {
        // Found by the property tests (analyzer/tests/stats_properties.rs): the midpoint of two
        // medians and the interpolated quantile overflowed to infinity and then NaN.
        let i = bootstrap_median(&[f64::MAX], 0.95, 100, 0).unwrap();
        assert_eq!((i.lo, i.estimate, i.hi), (f64::MAX, f64::MAX, f64::MAX));
        let i = bootstrap_median(&[-f64::MAX, f64::MAX, f64::MAX], 0.95, 100, 0).unwrap();
        assert!(i.lo <= i.estimate && i.estimate <= i.hi && !i.lo.is_nan(), "{i:?}");
        assert_eq!(crate::stats::quantile(&[-f64::MAX, f64::MAX], 0.5), Some(0.0));
    }

    #[test]
    fn the_interval_stays_within_the_data_and_narrows_with_lower_level() {
        let wide = bootstrap_median(&SAMPLE, 0.99, 2000, 3).unwrap();
        let narrow = bootstrap_median(&SAMPLE, 0.5, 2000, 3).unwrap();
        assert!(wide.lo >= 0.88 && wide.hi <= 1.45);
        assert!(narrow.hi - narrow.lo <= wide.hi - wide.lo);
    }

    #[test]
    fn a_difference_of_separated_samples_excludes_zero() {
        let slow: Vec<f64> = SAMPLE.iter().map(|v| v + 1.0).collect();
        let d = bootstrap_median_difference(&slow, &SAMPLE, 0.95, 1000, 11).unwrap();
        assert!((d.estimate - 1.0).abs() < 1e-12 && d.lo > 0.0, "{d:?}");
    }

    #[test]
    fn single_values_and_bad_settings() {
        assert_eq!(
            bootstrap_median(&[2.0], 0.95, 10, 0).unwrap(),
            Interval { estimate: 2.0, lo: 2.0, hi: 2.0, level: 0.95 }
        );
        assert_eq!(bootstrap_median(&[], 0.95, 10, 0), Err(StatsError::EmptyGroup { group: 0 }));
        assert_eq!(bootstrap_median(&[1.0], 1.0, 10, 0), Err(StatsError::InvalidLevel { level: 1.0 }));
        assert!(matches!(bootstrap_median(&[1.0], f64::NAN, 10, 0), Err(StatsError::InvalidLevel { .. })));
        assert_eq!(bootstrap_median(&[1.0], 0.9, 0, 0), Err(StatsError::NoResamples));
        assert_eq!(
            bootstrap_median_difference(&[1.0], &[f64::NAN], 0.9, 5, 0),
            Err(StatsError::NonFinite { group: 1, index: 0 })
        );
    }
}
