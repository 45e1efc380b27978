//! Statistics for comparing platforms: descriptives, rank tests, effect sizes, bootstrap intervals and
//! change points, each in its own module that cites the method it implements.
//!
//! - [`describe`](describe()): n, mean, sample sd and type-7 quantiles (NumPy's default).
//! - [`kruskal`](kruskal()) and [`epsilon_squared`]: the Kruskal–Wallis H test and its effect size.
//! - [`dunn_holm`]: Dunn's pairwise post-hoc test with Holm's step-down adjustment ([`holm`]).
//! - [`mann_whitney`]: the two-sided Mann–Whitney U test, normal approximation.
//! - [`cliffs_delta`]: Cliff's dominance effect size.
//! - [`bootstrap_median`], [`bootstrap_median_difference`]: seeded percentile-bootstrap intervals.
//! - [`change_points`]: PELT on ranks, for regime changes within a run.
//! - [`least_squares_slope`]: the trend of a series of points.
//! - [`cli`]: the `analyzer stats` command as text in, text out.
//!
//! Every function is pure and validates its input. Values are plain numbers: negative values are
//! accepted (a difference of durations may well be negative), so a caller that holds durations checks
//! their sign itself. NaN and infinities are rejected, as are empty samples, because no rank or
//! moment of them means anything. Where a statistic is undefined for the data (all values equal), the
//! functions return [`StatsError::AllEqual`] rather than a made-up p-value.

mod bootstrap;
mod change_points;
pub mod cli;
mod cliffs;
mod describe;
mod dunn;
mod kruskal;
mod mann_whitney;
mod ranks;
mod trend;

pub use bootstrap::{Interval, bootstrap_median, bootstrap_median_difference, median_replicates, percentile_interval};
pub use change_points::{ChangePoint, change_points};
pub use cliffs::cliffs_delta;
pub use describe::{Descriptives, describe, quantile};
pub use dunn::{DunnPair, dunn_holm, holm};
pub use kruskal::{Kruskal, epsilon_squared, kruskal};
pub use mann_whitney::{MannWhitney, mann_whitney};
pub use trend::least_squares_slope;

/// Says why a statistic cannot be computed from the given input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// A test compares groups but received fewer than two.
    #[error("need at least 2 groups to compare, got {got}")]
    TooFewGroups { got: usize },
    /// A group (or the only sample) has no values.
    #[error("group {group} is empty, expected at least one value")]
    EmptyGroup { group: usize },
    /// A value is NaN or infinite.
    #[error("value {index} of group {group} is not a finite number")]
    NonFinite { group: usize, index: usize },
    /// Every value is equal, so ranks carry no information and the statistic is undefined.
    #[error("all values are equal, so the rank statistic is undefined")]
    AllEqual,
    /// A confidence level outside the open interval (0, 1).
    #[error("confidence level {level} is outside (0, 1)")]
    InvalidLevel { level: f64 },
    /// A bootstrap asked for no resamples.
    #[error("need at least 1 bootstrap resample, got 0")]
    NoResamples,
    /// A change-point search with a minimum segment length of zero.
    #[error("minimum segment length must be at least 1, got 0")]
    ZeroMinSegment,
}

/// Checks that there are at least `min_groups` groups, none empty, all values finite.
fn check_groups(groups: &[&[f64]], min_groups: usize) -> Result<(), StatsError> {
    if groups.len() < min_groups {
        return Err(StatsError::TooFewGroups { got: groups.len() });
    }
    for (group, values) in groups.iter().enumerate() {
        check_sample(values, group)?;
    }
    Ok(())
}

/// Checks that one sample, numbered `group` in error messages, is non-empty and finite.
fn check_sample(values: &[f64], group: usize) -> Result<(), StatsError> {
    if values.is_empty() {
        return Err(StatsError::EmptyGroup { group });
    }
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(StatsError::NonFinite { group, index }),
        None => Ok(()),
    }
}

/// Returns a sorted copy of finite values.
fn sorted(values: &[f64]) -> Vec<f64> {
    let mut out = values.to_vec();
    out.sort_unstable_by(f64::total_cmp);
    out
}

/// Two-sided normal p-value P(|Z| ≥ |z|), computed as the chi-squared(1) tail at z²: the same
/// probability, and statrs' regularised incomplete gamma behind it agrees with SciPy to ~1e-13 where
/// its `erfc` (behind `Normal::sf`) drifts to ~1e-10.
fn two_sided_normal_p(z: f64) -> f64 {
    let chi2 = statrs::distribution::ChiSquared::new(1.0).expect("1 degree of freedom is valid");
    if z == 0.0 { 1.0 } else { statrs::distribution::ContinuousCDF::sf(&chi2, z * z) }
}

/// Median of sorted values (type 7, which for q = 0.5 is the usual midpoint rule); NaN when empty.
fn median_sorted(sorted: &[f64]) -> f64 {
    quantile(sorted, 0.5).unwrap_or(f64::NAN)
}
