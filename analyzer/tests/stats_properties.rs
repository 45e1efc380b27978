//! The statistics on arbitrary input, finite or not (proptest): never a panic; a non-finite value is
//! an error naming it; on finite input every p-value is a probability, every effect size in range,
//! every interval holds its estimate, every change point inside the series.

use analyzer::stats::{
    StatsError, bootstrap_median, bootstrap_median_difference, change_points, cliffs_delta, describe, dunn_holm, kruskal, mann_whitney,
};
use proptest::prelude::*;

/// Any f64 at all, special values often.
fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -1e6f64..1e6,
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(0.0), Just(-0.0), Just(f64::MAX), Just(f64::MIN_POSITIVE)],
        1 => any::<f64>(),
    ]
}

/// Mostly small integers, so that ties (and all-equal groups) are common.
fn tied_value() -> impl Strategy<Value = f64> {
    (0u8..4).prop_map(f64::from)
}

fn group(values: impl Strategy<Value = f64>) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(values, 0..40)
}

fn finite(groups: &[Vec<f64>]) -> bool {
    groups.iter().flatten().all(|v| v.is_finite())
}

fn probability(p: f64) -> bool {
    (0.0..=1.0).contains(&p)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn rank_tests_give_probabilities_or_clear_errors(groups in prop::collection::vec(prop_oneof![group(any_value()), group(tied_value())], 0..5)) {
        let slices: Vec<&[f64]> = groups.iter().map(Vec::as_slice).collect();
        match kruskal(&slices) {
            Ok(k) => prop_assert!(finite(&groups) && probability(k.p) && k.h >= -1e-9, "{k:?}"),
            Err(StatsError::NonFinite { group, index }) => prop_assert!(!groups[group][index].is_finite()),
            Err(_) => {}
        }
        if let Ok(pairs) = dunn_holm(&slices) {
            prop_assert!(pairs.iter().all(|d| probability(d.p) && probability(d.p_holm) && d.p_holm >= d.p - 1e-12), "{pairs:?}");
        }
        if slices.len() >= 2 {
            let (a, b) = (slices[0], slices[1]);
            match mann_whitney(a, b) {
                Ok(m) => prop_assert!(probability(m.p) && m.u >= 0.0 && m.u <= (a.len() * b.len()) as f64, "{m:?}"),
                Err(StatsError::NonFinite { .. }) => prop_assert!(!finite(&groups[..2])),
                Err(_) => {}
            }
            if let Ok(d) = cliffs_delta(a, b) {
                prop_assert!((-1.0..=1.0).contains(&d), "{d}");
            }
        }
    }

    #[test]
    fn descriptives_and_intervals_hold_their_estimates(values in prop_oneof![group(any_value()), group(tied_value())], other in group(any_value()), seed in any::<u64>()) {
        match describe(&values) {
            Ok(d) => prop_assert!(values.iter().all(|v| v.is_finite()) && d.n == values.len() && d.median.is_finite(), "{d:?}"),
            Err(e) => prop_assert!(values.is_empty() || values.iter().any(|v| !v.is_finite()), "{e}"),
        }
        if let Ok(i) = bootstrap_median(&values, 0.95, 200, seed) {
            prop_assert!(i.lo <= i.estimate && i.estimate <= i.hi, "{i:?}");
        }
        if let Ok(i) = bootstrap_median_difference(&values, &other, 0.95, 200, seed) {
            prop_assert!(i.lo <= i.estimate && i.estimate <= i.hi, "{i:?}");
        }
        for level in [0.0, 1.0, f64::NAN, -3.0] {
            prop_assert!(bootstrap_median(&values, level, 10, seed).is_err(), "level {level} refused");
        }
    }

    #[test]
    fn change_points_fall_inside_the_series(series in prop_oneof![group(any_value()), group(tied_value())], min_segment in 0usize..8) {
        if let Ok(points) = change_points(&series, min_segment) {
            prop_assert!(series.iter().all(|v| v.is_finite()));
            prop_assert!(points.iter().all(|c| c.index > 0 && c.index < series.len()), "{points:?}");
            prop_assert!(points.windows(2).all(|w| w[0].index < w[1].index), "{points:?}");
        }
    }

    #[test]
    fn the_stats_command_answers_any_text(text in "[ -~\\n\\t]{0,300}") {
        // A table for samples it can read, else one line saying why.
        match analyzer::stats::cli::run(&text, analyzer::stats::cli::Format::Markdown) {
            Ok(out) => prop_assert!(out.contains('|'), "{out}"),
            Err(e) => {
                let line = e.to_string();
                prop_assert!(!line.is_empty() && !line.contains('\n'), "{line:?}");
            }
        }
    }
}
