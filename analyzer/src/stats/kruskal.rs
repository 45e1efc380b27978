//! The Kruskal–Wallis H test (Kruskal & Wallis, "Use of ranks in one-criterion variance analysis",
//! *JASA* 47, 1952) with the tie correction H / (1 − Σ(t³ − t)/(N³ − N)) and p from the chi-squared
//! distribution with k − 1 degrees of freedom, as `scipy.stats.kruskal`; and its effect size ε²
//! (Tomczak & Tomczak, "The need to report effect size estimates revisited", *Trends in Sport
//! Sciences* 21(1), 2014).

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::ranks::GroupRanks;
use super::{StatsError, check_groups};

/// The result of a Kruskal–Wallis test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kruskal {
    /// Tie-corrected H statistic.
    pub h: f64,
    /// Degrees of freedom, the number of groups minus one.
    pub df: usize,
    /// Upper-tail probability of H under the chi-squared distribution with `df` degrees of freedom.
    pub p: f64,
}

/// Tests whether k ≥ 2 groups come from the same distribution, matching `scipy.stats.kruskal`.
///
/// Groups of one value are allowed. Fails when a group is empty, a value is not finite, or all values
/// are equal (H is 0/0 there; SciPy returns NaN).
pub fn kruskal(groups: &[&[f64]]) -> Result<Kruskal, StatsError> {
    check_groups(groups, 2)?;
    let r = GroupRanks::new(groups);
    if r.all_equal() {
        return Err(StatsError::AllEqual);
    }
    let n = r.n as f64;
    let between: f64 = r.rank_sums.iter().zip(&r.sizes).map(|(s, &size)| s * s / size as f64).sum();
    let h = 12.0 / (n * (n + 1.0)) * between - 3.0 * (n + 1.0);
    let h = h / (1.0 - r.tie_sum / (n * n * n - n));
    let df = groups.len() - 1;
    let chi2 = ChiSquared::new(df as f64).expect("df >= 1 is a valid chi-squared parameter");
    // Rounding can leave H a hair below zero when the groups' mean ranks are equal; the tail is 1 there.
    let p = if h <= 0.0 { 1.0 } else { chi2.sf(h) };
    Ok(Kruskal { h, df, p })
}

/// Returns the effect size ε² = H / ((n² − 1) / (n + 1)) of a Kruskal–Wallis H over n values in all:
/// 0 for no effect, 1 when the groups' ranks do not overlap. NaN for n < 2, where it is undefined.
pub fn epsilon_squared(h: f64, n: usize) -> f64 {
    if n < 2 {
        return f64::NAN;
    }
    let n = n as f64;
    h / ((n * n - 1.0) / (n + 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-300)
    }

    #[test]
    fn matches_scipy_with_ties() {
        // scipy.stats.kruskal([1, 2, 2, 3], [2, 3, 4], [5]) -> H=3.7473628691983065, p=0.15355730876947235
        let k = kruskal(&[&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 4.0], &[5.0]]).unwrap();
        assert_eq!(k.df, 2);
        assert!(close(k.h, 3.7473628691983065), "{k:?}");
        assert!(close(k.p, (-k.h / 2.0).exp()), "chi2(2) sf is exp(-h/2): {k:?}");
    }

    #[test]
    fn separated_groups_give_the_maximal_effect() {
        let k = kruskal(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]]).unwrap();
        // H = 12/(6*7) * (36/3 + 225/3) - 21 = 3.857142857...
        assert!(close(k.h, 27.0 / 7.0));
        assert!(close(epsilon_squared(k.h, 6), 27.0 / 35.0));
        assert!(epsilon_squared(1.0, 1).is_nan());
    }

    #[test]
    fn equal_mean_ranks_give_p_one() {
        let k = kruskal(&[&[1.0, 4.0], &[2.0, 3.0]]).unwrap();
        assert!(k.h.abs() < 1e-12 && k.p == 1.0, "{k:?}");
    }

    #[test]
    fn rejects_what_scipy_cannot_answer() {
        assert_eq!(kruskal(&[&[1.0, 2.0]]), Err(StatsError::TooFewGroups { got: 1 }));
        assert_eq!(kruskal(&[&[1.0], &[]]), Err(StatsError::EmptyGroup { group: 1 }));
        assert_eq!(kruskal(&[&[1.0], &[2.0, f64::NAN]]), Err(StatsError::NonFinite { group: 1, index: 1 }));
        assert_eq!(kruskal(&[&[3.0, 3.0], &[3.0]]), Err(StatsError::AllEqual));
    }

    #[test]
    fn groups_of_one_value_are_allowed() {
        let k = kruskal(&[&[1.0], &[2.0], &[3.0]]).unwrap();
        // H = 12/12 * (1 + 4 + 9) - 12 = 2
        assert!(close(k.h, 2.0) && close(k.p, (-1.0f64).exp()), "{k:?}");
    }
}
