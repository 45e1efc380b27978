//! Cliff's delta, the dominance effect size δ = P(X > Y) − P(X < Y) (Cliff, "Dominance statistics:
//! ordinal analyses to answer ordinal questions", *Psychological Bulletin* 114(3), 1993). It is
//! counted in O((n + m) log m) by sorting one sample and locating each value of the other in it by
//! binary search, rather than comparing all n·m pairs.

use super::{StatsError, check_sample, sorted};

/// Returns Cliff's delta of `a` over `b`, in [−1, 1]: 1 when every value of `a` exceeds every value of
/// `b`, −1 in the reverse case, 0 for no dominance. Fails on an empty sample or a non-finite value.
pub fn cliffs_delta(a: &[f64], b: &[f64]) -> Result<f64, StatsError> {
    check_sample(a, 0)?;
    check_sample(b, 1)?;
    let b = sorted(b);
    let m = b.len();
    let (mut greater, mut less) = (0u64, 0u64);
    for &x in a {
        greater += b.partition_point(|&y| y < x) as u64;
        less += (m - b.partition_point(|&y| y <= x)) as u64;
    }
    Ok((greater as f64 - less as f64) / (a.len() as f64 * m as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, all n·m pairs.
    fn by_pairs(a: &[f64], b: &[f64]) -> f64 {
        let s: i64 = a.iter().flat_map(|x| b.iter().map(move |y| (x > y) as i64 - (x < y) as i64)).sum();
        s as f64 / (a.len() * b.len()) as f64
    }

    #[test]
    fn counts_dominance_by_hand() {
        // pairs of [1, 2, 3] vs [2, 2]: 1<2 twice, 2=2 twice, 3>2 twice -> (2 - 2)/6 = 0
        assert_eq!(cliffs_delta(&[1.0, 2.0, 3.0], &[2.0, 2.0]), Ok(0.0));
        // [3, 4] vs [1, 2, 3]: 3 > {1,2}, 3 = 3, 4 > all -> 5 greater, 0 less -> 5/6
        assert_eq!(cliffs_delta(&[3.0, 4.0], &[1.0, 2.0, 3.0]), Ok(5.0 / 6.0));
        assert_eq!(cliffs_delta(&[1.0], &[2.0]), Ok(-1.0));
        assert_eq!(cliffs_delta(&[5.0, 5.0], &[5.0]), Ok(0.0));
    }

    #[test]
    fn agrees_with_the_pairwise_definition_under_heavy_ties() {
        let a = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0];
        let b = [2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0, 8.0, 2.0];
        assert!((cliffs_delta(&a, &b).unwrap() - by_pairs(&a, &b)).abs() < 1e-15);
        assert!((cliffs_delta(&b, &a).unwrap() + by_pairs(&a, &b)).abs() < 1e-15);
    }

    #[test]
    fn rejects_empty_and_non_finite_samples() {
        assert_eq!(cliffs_delta(&[1.0], &[]), Err(StatsError::EmptyGroup { group: 1 }));
        assert_eq!(cliffs_delta(&[f64::NAN], &[1.0]), Err(StatsError::NonFinite { group: 0, index: 0 }));
    }
}
