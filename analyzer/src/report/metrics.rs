//! Per-metric statistics: each compared metric's descriptives, bootstrap intervals, change points,
//! Kruskal–Wallis and pairwise tests per platform, and the significant winner (the paper's Tables 2–5).

use std::collections::BTreeMap;

use super::build::Options;
use super::model::*;
use crate::rows::BatchRow;
use crate::stats;

/// A metric the report compares: key, title, unit, direction, and how to read it from a row.
#[derive(Clone)]
pub(crate) struct MetricDef {
    pub(crate) key: &'static str,
    pub(crate) title: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) lower_is_better: bool,
    pub(crate) get: fn(&BatchRow) -> Option<f64>,
}

pub(crate) const METRICS: &[MetricDef] = &[
    MetricDef { key: "upload", title: "Upload time", unit: "s/MiB", lower_is_better: true, get: |r| Some(r.upload_s_per_mib) },
    MetricDef { key: "download", title: "Download time", unit: "s/MiB", lower_is_better: true, get: |r| Some(r.download_s_per_mib) },
    MetricDef { key: "inference", title: "Inference time", unit: "s/MiB", lower_is_better: true, get: |r| r.inference_s_per_mib },
    MetricDef { key: "throughput", title: "Throughput", unit: "MiB/s", lower_is_better: false, get: |r| Some(r.throughput_mib_s) },
];

fn better(lower_is_better: bool, a: f64, b: f64) -> bool {
    if lower_is_better { a < b } else { a > b }
}

pub(super) fn metric_section(def: &MetricDef, platforms: &[String], rows: &[BatchRow], options: &Options) -> Option<MetricSection> {
    let mut per_platform = Vec::new();
    // Bootstrap medians per platform, drawn once: each platform's interval and every pair's
    // difference interval come from them (independent streams: the seed is offset per platform).
    let mut replicates: Vec<Vec<f64>> = Vec::new();
    for (offset, platform) in platforms.iter().enumerate() {
        let measured: Vec<(u32, f64)> =
            rows.iter().filter(|r| &r.platform == platform).filter_map(|r| Some((r.batch_index, (def.get)(r)?))).filter(|(_, v)| v.is_finite()).collect();
        let series: Vec<f64> = measured.iter().map(|(_, v)| *v).collect();
        let Ok(describe) = stats::describe(&series) else { continue };
        let draws = stats::median_replicates(&series, options.resamples, options.seed.wrapping_add(offset as u64)).unwrap_or_default();
        per_platform.push(PlatformMetric {
            platform: platform.clone(),
            median_ci: stats::percentile_interval(describe.median, draws.clone(), options.level).ok(),
            describe,
            change_points: stats::change_points(&batch_profile(&measured), options.min_segment).unwrap_or_default(),
            series,
        });
        replicates.push(draws);
    }
    if per_platform.is_empty() {
        return None;
    }
    let groups: Vec<&[f64]> = per_platform.iter().map(|p| p.series.as_slice()).collect();
    let n: usize = groups.iter().map(|g| g.len()).sum();
    let (kruskal, note) = match stats::kruskal(&groups) {
        Ok(k) => (Some(k), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let mut pairs = Vec::new();
    if let (Some(_), Ok(dunn)) = (&kruskal, stats::dunn_holm(&groups)) {
        for d in dunn {
            let (a, b) = (&per_platform[d.a], &per_platform[d.b]);
            let Ok(mwu) = stats::mann_whitney(&a.series, &b.series) else { continue };
            pairs.push(Pair {
                a: a.platform.clone(),
                b: b.platform.clone(),
                dunn_z: d.z,
                dunn_p_holm: d.p_holm,
                mwu_u: mwu.u,
                mwu_p: mwu.p,
                cliffs_delta: stats::cliffs_delta(&a.series, &b.series).unwrap_or(f64::NAN),
                median_difference: {
                    let differences = replicates[d.a].iter().zip(&replicates[d.b]).map(|(x, y)| x - y).collect();
                    stats::percentile_interval(a.describe.median - b.describe.median, differences, options.level).ok()
                },
            });
        }
    }
    let winner = significant_winner(def.lower_is_better, &per_platform, kruskal.as_ref(), &pairs, options.alpha);
    Some(MetricSection {
        key: def.key,
        title: def.title,
        unit: def.unit,
        lower_is_better: def.lower_is_better,
        epsilon_squared: kruskal.as_ref().map(|k| stats::epsilon_squared(k.h, n)),
        kruskal,
        pairs,
        note,
        winner,
        platforms: per_platform,
    })
}

/// The per-batch profile of a metric: for each batch position, the median over rounds (the series
/// itself for a single round). Regime changes within a round, like the paper's after batches 30 and
/// 80, show in it; changes from one round to the next show in the round trends.
fn batch_profile(measured: &[(u32, f64)]) -> Vec<f64> {
    let mut by_batch: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for (index, v) in measured {
        by_batch.entry(*index).or_default().push(*v);
    }
    by_batch.into_values().filter_map(|v| stats::describe(&v).ok().map(|d| d.median)).collect()
}

/// The platform with the best median, if the omnibus test is significant and, with more than two
/// platforms, its difference to every other platform is significant after Holm's adjustment.
fn significant_winner(lower: bool, platforms: &[PlatformMetric], kruskal: Option<&stats::Kruskal>, pairs: &[Pair], alpha: f64) -> Option<String> {
    let k = kruskal?;
    if k.p >= alpha || platforms.len() < 2 {
        return None;
    }
    let best = platforms.iter().reduce(|a, b| if better(lower, b.describe.median, a.describe.median) { b } else { a })?;
    let beats_all = platforms.len() == 2
        || pairs.iter().filter(|p| p.a == best.platform || p.b == best.platform).all(|p| p.dunn_p_holm < alpha);
    beats_all.then(|| best.platform.clone())
}
