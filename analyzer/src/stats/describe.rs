//! Descriptive statistics of one sample: the mean, the sample standard deviation (divisor n − 1) and
//! quantiles by linear interpolation between closest ranks, type 7 of Hyndman & Fan, "Sample
//! quantiles in statistical packages", *The American Statistician* 50(4), 1996 — the default of R's
//! `quantile` and NumPy's `percentile`, which the reference tests compare against.

use serde::Serialize;

use super::{StatsError, check_sample, sorted};

/// Quantile `q` of sorted, finite `values` by linear interpolation between closest ranks (type 7 of
/// Hyndman & Fan 1996, the default of R and NumPy). `None` for no values.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    Some(lerp(sorted[lo], sorted[hi], h - lo as f64))
}

/// `a + t × (b − a)` for finite `a ≤ b`, without overflowing when the values are near the largest
/// f64 (where `b − a` or `a + b` would be infinite and the result NaN).
pub fn lerp(a: f64, b: f64, t: f64) -> f64 {
    if a == b {
        return a;
    }
    let span = b - a;
    if span.is_finite() { a + t * span } else { a * (1.0 - t) + b * t }
}

/// Summarises a sample's location and spread.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Descriptives {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divisor n − 1); 0 for a single value, which has no spread to estimate.
    pub sd: f64,
    /// Median (50th percentile).
    pub median: f64,
    /// First quartile (25th percentile).
    pub q1: f64,
    /// Third quartile (75th percentile).
    pub q3: f64,
    /// Interquartile range, q3 − q1.
    pub iqr: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// 5th percentile.
    pub p5: f64,
    /// 95th percentile.
    pub p95: f64,
}

/// Describes a non-empty sample of finite values; quantiles are type 7 (NumPy's default).
pub fn describe(values: &[f64]) -> Result<Descriptives, StatsError> {
    check_sample(values, 0)?;
    let s = sorted(values);
    let n = s.len();
    let mean = s.iter().sum::<f64>() / n as f64;
    let sd = if n > 1 { (s.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    // The sample is non-empty, so every quantile exists.
    let q = |p: f64| quantile(&s, p).unwrap_or(f64::NAN);
    let (q1, q3) = (q(0.25), q(0.75));
    Ok(Descriptives {
        n,
        mean,
        sd,
        median: q(0.5),
        q1,
        q3,
        iqr: q3 - q1,
        min: s[0],
        max: s[n - 1],
        p5: q(0.05),
        p95: q(0.95),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpys_default() {
        // numpy.quantile([1, 2, 3, 4], [0.25, 0.5, 0.9]) == [1.75, 2.5, 3.7]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.25), Some(1.75));
        assert_eq!(quantile(&v, 0.5), Some(2.5));
        assert!((quantile(&v, 0.9).unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(quantile(&[5.0], 0.99), Some(5.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn describes_a_small_sample_by_hand() {
        // numpy: mean 2.5, std(ddof=1) sqrt(5/3), percentile(5) 1.15, percentile(95) 3.85
        let d = describe(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((d.n, d.mean, d.median, d.q1, d.q3, d.iqr, d.min, d.max), (4, 2.5, 2.5, 1.75, 3.25, 1.5, 1.0, 4.0));
        assert!((d.sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert!((d.p5 - 1.15).abs() < 1e-12 && (d.p95 - 3.85).abs() < 1e-12);
    }

    #[test]
    fn a_single_value_has_zero_spread_and_negatives_are_plain_numbers() {
        let d = describe(&[-0.5]).unwrap();
        assert_eq!((d.n, d.mean, d.sd, d.median, d.p5, d.p95, d.iqr), (1, -0.5, 0.0, -0.5, -0.5, -0.5, 0.0));
    }

    #[test]
    fn empty_and_non_finite_samples_are_rejected() {
        assert_eq!(describe(&[]), Err(StatsError::EmptyGroup { group: 0 }));
        assert_eq!(describe(&[1.0, f64::NAN]), Err(StatsError::NonFinite { group: 0, index: 1 }));
        assert_eq!(describe(&[f64::INFINITY]), Err(StatsError::NonFinite { group: 0, index: 0 }));
    }
}
