//! Dunn's pairwise test of mean ranks after Kruskal–Wallis (Dunn, "Multiple comparisons using rank
//! sums", *Technometrics* 6(3), 1964) with the tie correction of Glantz (*Primer of Biostatistics*,
//! 2012), two-sided, and Holm's step-down adjustment (Holm, "A simple sequentially rejective multiple
//! test procedure", *Scandinavian Journal of Statistics* 6(2), 1979), as
//! `scikit_posthocs.posthoc_dunn(..., p_adjust="holm")` (which adjusts with statsmodels'
//! `multipletests`).

use serde::Serialize;

use super::ranks::GroupRanks;
use super::{StatsError, check_groups, two_sided_normal_p};

/// Dunn's test for one pair of groups.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DunnPair {
    /// Index of the first group; always less than `b`.
    pub a: usize,
    /// Index of the second group.
    pub b: usize,
    /// (mean rank of a − mean rank of b) / standard error: positive when a ranks higher.
    pub z: f64,
    /// Unadjusted two-sided p-value.
    pub p: f64,
    /// Holm-adjusted p-value over all pairs.
    pub p_holm: f64,
}

/// Compares every pair of k ≥ 2 groups with Dunn's test; pairs come in the order (0, 1), (0, 2), …,
/// (1, 2), …, and their p-values are Holm-adjusted together.
///
/// Groups of one value are allowed. Fails when a group is empty, a value is not finite, or all values
/// are equal (the standard error is 0 there).
pub fn dunn_holm(groups: &[&[f64]]) -> Result<Vec<DunnPair>, StatsError> {
    check_groups(groups, 2)?;
    let r = GroupRanks::new(groups);
    if r.all_equal() {
        return Err(StatsError::AllEqual);
    }
    let n = r.n as f64;
    let variance = n * (n + 1.0) / 12.0 - r.tie_sum / (12.0 * (n - 1.0));
    let mut pairs = Vec::new();
    for a in 0..groups.len() {
        for b in a + 1..groups.len() {
            let se = (variance * (1.0 / r.sizes[a] as f64 + 1.0 / r.sizes[b] as f64)).sqrt();
            let z = (r.mean_rank(a) - r.mean_rank(b)) / se;
            let p = two_sided_normal_p(z);
            pairs.push(DunnPair { a, b, z, p, p_holm: p });
        }
    }
    let ps: Vec<f64> = pairs.iter().map(|pair| pair.p).collect();
    for (pair, adjusted) in pairs.iter_mut().zip(holm(&ps)) {
        pair.p_holm = adjusted;
    }
    Ok(pairs)
}

/// Returns Holm's step-down adjustment of m p-values, in their given order: the i-th smallest p
/// becomes max over j ≤ i of (m − j + 1)·p₍ⱼ₎, capped at 1 (statsmodels' `multipletests(method="holm")`).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max((m - rank) as f64 * p[i]);
        adjusted[i] = running.min(1.0);
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_multiplies_by_the_remaining_count_and_stays_monotone() {
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.5]);
        let expected = [0.04, 0.09, 0.09, 0.5];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!((a - e).abs() < 1e-15, "{adjusted:?}");
        }
        assert_eq!(holm(&[0.6, 0.3]), [0.6, 0.6]);
        assert!(holm(&[]).is_empty());
    }

    #[test]
    fn holm_preserves_the_order_of_raw_p_values_and_never_lowers_them() {
        let raw = [0.2, 0.001, 0.049, 0.03, 0.7, 0.0101, 0.01];
        let adjusted = holm(&raw);
        for i in 0..raw.len() {
            assert!(adjusted[i] >= raw[i] && adjusted[i] <= 1.0);
            for j in 0..raw.len() {
                if raw[i] < raw[j] {
                    assert!(adjusted[i] <= adjusted[j], "{raw:?} -> {adjusted:?}");
                }
            }
        }
    }

    #[test]
    fn matches_scikit_posthocs_with_a_group_of_one() {
        // scikit_posthocs.posthoc_dunn([[1, 2, 3], [4], [5, 5, 6]], p_adjust="holm"):
        // (0,1) 0.836984, (0,2) 0.066358, (1,2) 0.836984
        let pairs = dunn_holm(&[&[1.0, 2.0, 3.0], &[4.0], &[5.0, 5.0, 6.0]]).unwrap();
        let got: Vec<(usize, usize, f64)> = pairs.iter().map(|p| (p.a, p.b, p.p_holm)).collect();
        for ((a, b, p), (ea, eb, ep)) in got.into_iter().zip([(0, 1, 0.836984), (0, 2, 0.066358), (1, 2, 0.836984)]) {
            assert_eq!((a, b), (ea, eb));
            assert!((p - ep).abs() < 1e-6, "{pairs:?}");
        }
        assert!(pairs[1].z < 0.0, "group 0 ranks lower than group 2");
    }

    #[test]
    fn rejects_all_equal_values_and_single_groups() {
        assert_eq!(dunn_holm(&[&[1.0, 1.0], &[1.0]]), Err(StatsError::AllEqual));
        assert_eq!(dunn_holm(&[&[1.0, 2.0]]), Err(StatsError::TooFewGroups { got: 1 }));
        assert_eq!(dunn_holm(&[&[1.0], &[f64::NAN]]), Err(StatsError::NonFinite { group: 1, index: 0 }));
    }
}
