//! Round trends: per metric and platform, the median of each round, its least-squares slope across
//! rounds and the change points between rounds.

use std::collections::BTreeSet;

use super::metrics::METRICS;
use super::model::*;
use crate::rows::BatchRow;
use crate::stats;

/// Least-squares slope of the round medians (round, median).
fn slope(points: &[(u32, f64)]) -> f64 {
    stats::least_squares_slope(&points.iter().map(|(x, y)| (f64::from(*x), *y)).collect::<Vec<_>>())
}

pub(super) fn rounds(rows: &[BatchRow], platforms: &[String], min_segment: usize) -> Vec<RoundTrend> {
    let rounds: BTreeSet<u32> = rows.iter().map(|r| r.round).collect();
    if rounds.len() < 2 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for def in METRICS {
        for platform in platforms {
            let medians: Vec<(u32, f64)> = rounds
                .iter()
                .filter_map(|round| {
                    let values: Vec<f64> = rows.iter().filter(|r| &r.platform == platform && r.round == *round).filter_map(|r| (def.get)(r)).collect();
                    stats::describe(&values).ok().map(|d| (*round, d.median))
                })
                .collect();
            if !medians.is_empty() {
                let values: Vec<f64> = medians.iter().map(|(_, m)| *m).collect();
                let change_points = stats::change_points(&values, min_segment).unwrap_or_default();
                out.push(RoundTrend { metric: def.key, platform: platform.clone(), slope_per_round: slope(&medians), medians, change_points });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes_are_least_squares() {
        assert_eq!(slope(&[(0, 1.0), (1, 2.0), (2, 3.0)]), 1.0);
        assert_eq!(slope(&[(0, 1.0)]), 0.0);
        assert_eq!(slope(&[(3, 1.0), (3, 2.0)]), 0.0);
    }
}
