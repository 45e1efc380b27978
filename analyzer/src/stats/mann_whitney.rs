//! The two-sided Mann–Whitney U test (Mann & Whitney, "On a test of whether one of two random
//! variables is stochastically larger than the other", *Annals of Mathematical Statistics* 18, 1947)
//! by the normal approximation with tie and continuity corrections, as
//! `scipy.stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")`.

use serde::Serialize;

use super::ranks::GroupRanks;
use super::{StatsError, check_sample, two_sided_normal_p};

/// The result of a Mann–Whitney U test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MannWhitney {
    /// U of the first sample: the number of pairs (x from a, y from b) with x > y, ties counting ½.
    pub u: f64,
    /// Two-sided p-value from the normal approximation.
    pub p: f64,
}

/// Tests whether `a` and `b` come from the same distribution, matching SciPy's asymptotic method.
///
/// Samples of one value are allowed. Fails when a sample is empty (`group` 0 for `a`, 1 for `b`), a
/// value is not finite, or all values are equal: the variance of U is 0 there, and SciPy's p = 1 is an
/// artefact of the continuity correction rather than evidence.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Result<MannWhitney, StatsError> {
    check_sample(a, 0)?;
    check_sample(b, 1)?;
    let r = GroupRanks::new(&[a, b]);
    if r.all_equal() {
        return Err(StatsError::AllEqual);
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let n = n1 + n2;
    let u1 = r.rank_sums[0] - n1 * (n1 + 1.0) / 2.0;
    let u = u1.max(n1 * n2 - u1);
    let sd = (n1 * n2 / 12.0 * ((n + 1.0) - r.tie_sum / (n * (n - 1.0)))).sqrt();
    let z = (u - n1 * n2 / 2.0 - 0.5) / sd;
    // SciPy's 2·sf(z), clipped to 1: z < 0 only when U sits at its mean, where the continuity
    // correction overshoots.
    let p = if z <= 0.0 { 1.0 } else { two_sided_normal_p(z) };
    Ok(MannWhitney { u: u1, p })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scipy_with_ties() {
        // scipy.stats.mannwhitneyu([1, 2, 2, 5], [2, 3, 4], method="asymptotic") -> U=4, p=0.5820796519295022
        let r = mann_whitney(&[1.0, 2.0, 2.0, 5.0], &[2.0, 3.0, 4.0]).unwrap();
        assert_eq!(r.u, 4.0);
        // two-sided U = max(4, 8); sd² = 12/12 * (8 - 24/42); z = (8 - 6 - 0.5)/sd
        let z: f64 = 1.5 / (8.0f64 - 24.0 / 42.0).sqrt();
        assert!((r.p - two_sided_normal_p(z)).abs() < 1e-15, "{r:?}");
        assert!((r.p - 0.5820796519295022).abs() < 1e-12, "{r:?}");
    }

    #[test]
    fn single_values_and_separated_samples() {
        let r = mann_whitney(&[1.0], &[2.0]).unwrap();
        assert_eq!((r.u, r.p), (0.0, 1.0));
        let r = mann_whitney(&[10.0, 11.0, 12.0], &[1.0, 2.0]).unwrap();
        assert_eq!(r.u, 6.0);
    }

    #[test]
    fn rejects_empty_non_finite_and_all_equal() {
        assert_eq!(mann_whitney(&[], &[1.0]), Err(StatsError::EmptyGroup { group: 0 }));
        assert_eq!(mann_whitney(&[1.0], &[f64::NEG_INFINITY]), Err(StatsError::NonFinite { group: 1, index: 0 }));
        assert_eq!(mann_whitney(&[2.0, 2.0], &[2.0]), Err(StatsError::AllEqual));
    }
}
