//! Builds the report's content from a run's metrics (pure: data in, data out).

use std::collections::{BTreeMap, BTreeSet};

use proto::v1::{BatchMetrics, PhaseTiming};

use super::config::{Catalog, Requirements};
use super::model::*;
use super::validity;
use crate::rows::BatchRow;
use crate::stats;

/// Settings of a report.
#[derive(Debug, Clone)]
pub struct Options {
    /// Significance level of every test.
    pub alpha: f64,
    /// Bootstrap resamples and seed: the same seed gives the same intervals. 1,000 resamples is the
    /// least Efron & Tibshirani (*An Introduction to the Bootstrap*, 1993, §13.3) advise for
    /// percentile intervals.
    pub resamples: usize,
    pub seed: u64,
    /// Confidence level of the bootstrap intervals.
    pub level: f64,
    /// Shortest regime the change-point search reports, in batches.
    pub min_segment: usize,
    /// The run spec, shown in the reproducibility block.
    pub spec: Option<String>,
    /// Leaves out the first N batches of each platform, in time order, before anything is computed:
    /// warm-up batches (cold caches, connection set-up, model loading) measure the start, not the
    /// platform.
    pub exclude_warmup: Option<usize>,
    /// The latency target and error budget the Capacity section judges stages on; without it, the
    /// one in the spec's `[load_sweep]`, if any.
    pub target: Option<control::sweep::Target>,
    /// Requests per second the Capacity section sizes instance counts for.
    pub target_load: Option<f64>,
}

/// The target of the spec's `[load_sweep]`, if it has one (a spec that does not parse has none).
pub fn spec_target(spec: &str) -> Option<control::sweep::Target> {
    #[derive(serde::Deserialize)]
    struct Spec {
        load_sweep: Option<control::sweep::RawSweep>,
    }
    let raw = toml::from_str::<Spec>(spec).ok()?.load_sweep?;
    control::sweep::LoadSweep::new(raw).ok()?.target
}

impl Default for Options {
    fn default() -> Self {
        Self { alpha: 0.05, resamples: 1000, seed: 1, level: 0.95, min_segment: 5, spec: None, exclude_warmup: None, target: None, target_load: None }
    }
}

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

/// Builds the report of one run from its metrics.
pub fn build(run_id: &str, metrics: &[BatchMetrics], catalog: &Catalog, requirements: &Requirements, options: &Options) -> Report {
    build_with_progress(run_id, metrics, catalog, requirements, options, &mut |_, _, _| {})
}

/// Steps [`build_with_progress`] reports: one per metric, then costs, scores and the rest.
pub fn build_steps() -> usize {
    METRICS.len() + 1
}

/// [`build`], calling `step(done, of, what)` as each of its [`build_steps`] steps begins (the
/// bootstrap intervals and tests of each metric are the long part over a long run).
pub fn build_with_progress(
    run_id: &str,
    metrics: &[BatchMetrics],
    catalog: &Catalog,
    requirements: &Requirements,
    options: &Options,
    step: &mut dyn FnMut(usize, usize, &str),
) -> Report {
    let steps = build_steps();
    // Platforms whose every batch was excluded still get a verdict (too few batches).
    let all_platforms: Vec<String> = metrics.iter().map(|m| m.platform.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut ordered = without_warmup(metrics, options.exclude_warmup.unwrap_or(0));
    ordered.sort_by(|a, b| (&a.platform, a.round, a.batch_index).cmp(&(&b.platform, b.round, b.batch_index)));
    let rows: Vec<BatchRow> = ordered.iter().map(|m| BatchRow::from_metrics(m)).collect();
    let platforms: Vec<String> = rows.iter().map(|r| r.platform.clone()).collect::<BTreeSet<_>>().into_iter().collect();

    let sections: Vec<MetricSection> = METRICS
        .iter()
        .enumerate()
        .filter_map(|(i, def)| {
            step(i, steps, def.key);
            metric_section(def, &platforms, &rows, options)
        })
        .collect();
    step(METRICS.len(), steps, "costs, scores, rounds, scaling");
    let costs = costs(&platforms, &ordered, catalog);
    let unpriced = platforms.iter().filter(|p| !catalog.platform.contains_key(*p)).cloned().collect();
    let availability = availability(&platforms, &ordered, catalog);
    let scores = criterion_scores(&sections, &costs, &platforms, catalog);
    let winners = winners(&sections, &costs, &platforms, &scores);
    let requirement_rows = requirement_rows(requirements, &platforms, &scores);
    let scaling_rows = scaling(&ordered);
    let batches: Vec<validity::Batch<'_>> = ordered.iter().copied().zip(&rows).collect();
    let validity = validity::evaluate(&batches, &all_platforms, &sections, &scaling_rows);
    let target = options.target.or_else(|| options.spec.as_deref().and_then(spec_target));
    let capacity = (target.is_some() || super::capacity::swept(&ordered)).then(|| super::capacity::capacity(&ordered, catalog, target, options.target_load));
    let mut report = Report {
        run_id: run_id.to_owned(),
        alpha: options.alpha,
        valid: validity.iter().all(|v| v.verdict == Verdict::Valid),
        excluded_warmup: options.exclude_warmup,
        validity,
        latency: latency(&platforms, &ordered),
        server_split: server_split(&platforms, &ordered),
        rounds: rounds(&rows, &platforms, options.min_segment),
        scaling: scaling_rows,
        scaling_stops: Vec::new(),
        capacity,
        reproducibility: reproducibility(run_id, &ordered, options),
        platforms,
        metrics: sections,
        availability,
        costs,
        unpriced,
        winners,
        requirements: requirement_rows,
    };
    report.scaling_stops = scaling_stops(&report.scaling);
    report
}

/// All batches but the first `n` of each platform in time order (start, then round and batch).
fn without_warmup(metrics: &[BatchMetrics], n: usize) -> Vec<&BatchMetrics> {
    if n == 0 {
        return metrics.iter().collect();
    }
    let mut by_time: Vec<&BatchMetrics> = metrics.iter().collect();
    by_time.sort_by(|a, b| (&a.platform, a.started_unix_ns, a.round, a.batch_index).cmp(&(&b.platform, b.started_unix_ns, b.round, b.batch_index)));
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    by_time
        .into_iter()
        .filter(|m| {
            let count = seen.entry(m.platform.as_str()).or_default();
            *count += 1;
            *count > n
        })
        .collect()
}

/// Throughput per (platform, round) and its efficiency against the round with the fewest workers;
/// empty unless some platform's rounds ran at different worker counts.
pub fn scaling(metrics: &[&BatchMetrics]) -> Vec<ScalingRow> {
    let mut groups: BTreeMap<(String, u32), Vec<&BatchMetrics>> = BTreeMap::new();
    for m in metrics {
        groups.entry((m.platform.clone(), m.round)).or_default().push(m);
    }
    let mut rows: Vec<ScalingRow> = groups
        .into_iter()
        .map(|((platform, round), batches)| {
            let workers = batches.iter().filter_map(|m| m.worker.as_ref().map(|w| w.worker_id.as_str())).collect::<BTreeSet<_>>().len();
            let images: u64 = batches.iter().map(|m| u64::from(m.images)).sum();
            let start = batches.iter().map(|m| m.started_unix_ns).min().unwrap_or(0);
            let end = batches.iter().map(|m| m.finished_unix_ns).max().unwrap_or(0);
            let wall_seconds = (end - start).max(0) as f64 / 1e9;
            let images_per_second = if wall_seconds > 0.0 { images as f64 / wall_seconds } else { f64::NAN };
            ScalingRow { platform, round, workers, images, wall_seconds, images_per_second, efficiency: f64::NAN }
        })
        .collect();
    let platforms: BTreeSet<String> = rows.iter().map(|r| r.platform.clone()).collect();
    let mut varied = false;
    for platform in &platforms {
        let mine: Vec<&ScalingRow> = rows.iter().filter(|r| &r.platform == platform).collect();
        varied |= mine.iter().map(|r| r.workers).collect::<BTreeSet<_>>().len() > 1;
        let Some(base) = mine.iter().filter(|r| r.workers > 0 && r.images_per_second.is_finite()).min_by_key(|r| r.workers) else { continue };
        let per_worker = base.images_per_second / base.workers as f64;
        for row in rows.iter_mut().filter(|r| &r.platform == platform) {
            row.efficiency = row.images_per_second / (row.workers as f64 * per_worker);
        }
    }
    if varied { rows } else { Vec::new() }
}

/// Per platform, the most workers reached before efficiency fell below the floor (none when it never
/// did).
fn scaling_stops(rows: &[ScalingRow]) -> Vec<(String, usize)> {
    let platforms: BTreeSet<&str> = rows.iter().map(|r| r.platform.as_str()).collect();
    platforms
        .into_iter()
        .filter_map(|p| {
            let mut mine: Vec<&ScalingRow> = rows.iter().filter(|r| r.platform == p).collect();
            mine.sort_by_key(|r| r.workers);
            let first_bad = mine.iter().position(|r| r.efficiency < SCALING_FLOOR)?;
            let last_good = if first_bad == 0 { mine[0].workers } else { mine[first_bad - 1].workers };
            Some((p.to_owned(), last_good))
        })
        .collect()
}

fn metric_section(def: &MetricDef, platforms: &[String], rows: &[BatchRow], options: &Options) -> Option<MetricSection> {
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

/// The timed phases of a batch, by name: what the latency, availability and validity tables count.
pub(super) fn phases(m: &BatchMetrics) -> [(&'static str, &Option<PhaseTiming>); 3] {
    [("upload", &m.upload), ("download", &m.download), ("inference", &m.inference)]
}

fn latency(platforms: &[String], metrics: &[&BatchMetrics]) -> Vec<LatencyRow> {
    let mut out = Vec::new();
    for platform in platforms {
        for phase in ["upload", "download", "inference"] {
            let timings = metrics.iter().filter(|m| &m.platform == platform).filter_map(|m| {
                phases(m).into_iter().find(|(name, _)| *name == phase).and_then(|(_, t)| t.as_ref()).map(|t| t.latency_histogram.as_slice())
            });
            let Some(merged) = proto::latency::merge(timings) else { continue };
            let ms = |q: f64| merged.value_at_quantile(q) as f64 / 1000.0;
            out.push(LatencyRow { platform: platform.clone(), phase, requests: merged.len(), p50_ms: ms(0.5), p90_ms: ms(0.9), p99_ms: ms(0.99), p999_ms: ms(0.999) });
        }
    }
    out
}

fn server_split(platforms: &[String], metrics: &[&BatchMetrics]) -> Vec<ServerSplitRow> {
    let mut out = Vec::new();
    for platform in platforms {
        let phases: Vec<&PhaseTiming> = metrics.iter().filter(|m| &m.platform == platform).filter_map(|m| m.inference.as_ref()).collect();
        if phases.is_empty() {
            continue;
        }
        let merge = |get: fn(&PhaseTiming) -> &[u8]| proto::latency::merge(phases.iter().map(|p| get(p)));
        let (server, outside) = (merge(|p| &p.server_histogram), merge(|p| &p.outside_histogram));
        let q = |h: &Option<hdrhistogram::Histogram<u64>>, q: f64| h.as_ref().map(|h| h.value_at_quantile(q) as f64 / 1000.0);
        out.push(ServerSplitRow {
            platform: platform.clone(),
            reported: server.as_ref().map_or(0, |h| h.len()),
            requests: phases.iter().map(|p| p.requests).sum(),
            server_p50_ms: q(&server, 0.5),
            server_p99_ms: q(&server, 0.99),
            outside_p50_ms: q(&outside, 0.5),
            outside_p99_ms: q(&outside, 0.99),
        });
    }
    out
}

fn availability(platforms: &[String], metrics: &[&BatchMetrics], catalog: &Catalog) -> Vec<AvailabilityRow> {
    platforms
        .iter()
        .map(|platform| {
            let (mut requests, mut failed) = (0, 0);
            for m in metrics.iter().filter(|m| &m.platform == platform) {
                for (_, t) in phases(m) {
                    if let Some(t) = t {
                        requests += t.requests;
                        failed += t.failed;
                    }
                }
            }
            let availability_percent = if requests == 0 { 100.0 } else { 100.0 * (requests - failed) as f64 / requests as f64 };
            let sla_percent = catalog.platform.get(platform).and_then(|e| e.sla_percent);
            AvailabilityRow { platform: platform.clone(), requests, failed, availability_percent, sla_percent, meets_sla: sla_percent.map(|s| availability_percent >= s) }
        })
        .collect()
}

fn costs(platforms: &[String], metrics: &[&BatchMetrics], catalog: &Catalog) -> Vec<CostRow> {
    let mut out = Vec::new();
    for platform in platforms {
        let Some(entry) = catalog.platform.get(platform) else { continue };
        let (images, seconds) = metrics.iter().filter(|m| &m.platform == platform).fold((0u64, 0f64), |(i, s), m| {
            let secs = |t: &Option<PhaseTiming>| t.as_ref().map_or(0.0, |t| t.duration_ns as f64 / 1e9);
            (i + u64::from(m.images), s + secs(&m.download) + secs(&m.inference))
        });
        let images_per_second = if seconds > 0.0 { images as f64 / seconds } else { f64::NAN };
        let (lo, hi) = entry.usd_per_hour();
        let per_1000 = |usd_h: f64| usd_h / (images_per_second * 3600.0) * 1000.0;
        out.push(CostRow {
            platform: platform.clone(),
            provider: entry.provider.clone(),
            components: entry.components.clone(),
            usd_per_hour: (lo, hi),
            usd_per_day: (lo * 24.0, hi * 24.0),
            images_per_second,
            usd_per_1000_images: (per_1000(lo), per_1000(hi)),
        });
    }
    out
}

fn midpoint(range: (f64, f64)) -> f64 {
    (range.0 + range.1) / 2.0
}

/// Scores of every criterion per platform, 0 to 1: a significant winner scores 1 and the others 0;
/// without a significant difference every platform scores 0.5; catalog values are used as given.
fn criterion_scores(sections: &[MetricSection], costs: &[CostRow], platforms: &[String], catalog: &Catalog) -> Scores {
    let mut scores = Scores::new();
    for s in sections {
        for p in platforms {
            let v = match &s.winner {
                Some(w) if w == p => 1.0,
                Some(_) => 0.0,
                None => 0.5,
            };
            scores.entry(s.key.to_owned()).or_default().insert(p.clone(), v);
        }
    }
    if costs.len() == platforms.len() && !costs.is_empty() {
        let cheapest = costs.iter().map(|c| midpoint(c.usd_per_1000_images)).fold(f64::INFINITY, f64::min);
        for c in costs {
            scores.entry("cost".into()).or_default().insert(c.platform.clone(), if midpoint(c.usd_per_1000_images) <= cheapest { 1.0 } else { 0.0 });
        }
    }
    let slas: Vec<(String, f64)> = platforms.iter().filter_map(|p| Some((p.clone(), catalog.platform.get(p)?.sla_percent?))).collect();
    if slas.len() == platforms.len() && !slas.is_empty() {
        let top = slas.iter().map(|(_, s)| *s).fold(f64::MIN, f64::max);
        for (p, s) in slas {
            scores.entry("sla".into()).or_default().insert(p, if s >= top { 1.0 } else { 0.0 });
        }
    }
    for p in platforms {
        for (quality, v) in catalog.platform.get(p).map(|e| e.qualities.clone()).unwrap_or_default() {
            scores.entry(quality).or_default().insert(p.clone(), v);
        }
    }
    scores
}

/// Criterion scores by criterion, then platform.
type Scores = BTreeMap<String, BTreeMap<String, f64>>;

/// The platforms with the top score.
fn leaders(by_platform: &BTreeMap<String, f64>) -> Vec<&String> {
    let top = by_platform.values().cloned().fold(f64::MIN, f64::max);
    by_platform.iter().filter(|(_, v)| **v >= top).map(|(p, _)| p).collect()
}

fn winners(sections: &[MetricSection], costs: &[CostRow], platforms: &[String], scores: &Scores) -> Vec<WinnerRow> {
    let mut rows: Vec<WinnerRow> = sections
        .iter()
        .map(|s| WinnerRow {
            criterion: format!("{} ({})", s.title, s.unit),
            winner: s.winner.clone(),
            basis: match (&s.kruskal, &s.winner) {
                (Some(k), Some(_)) => format!("Kruskal–Wallis p = {:.3e}, best median", k.p),
                (Some(k), None) => format!("no significant difference (p = {:.3e})", k.p),
                (None, _) => s.note.clone().unwrap_or_else(|| "no test".into()),
            },
        })
        .collect();
    if !costs.is_empty() {
        let best = costs.iter().min_by(|a, b| midpoint(a.usd_per_1000_images).total_cmp(&midpoint(b.usd_per_1000_images)));
        rows.push(WinnerRow {
            criterion: "Cost per 1,000 images (USD)".into(),
            winner: best.filter(|_| costs.len() == platforms.len()).map(|c| c.platform.clone()),
            basis: "catalog prices at the measured throughput (range midpoint)".into(),
        });
    }
    for (criterion, title) in [("sla", "Service-level agreement"), ("ml_catalog", "ML service catalog"), ("ease_of_deployment", "Ease of deployment")] {
        let Some(by_platform) = scores.get(criterion).filter(|m| m.len() == platforms.len()) else { continue };
        let leaders = leaders(by_platform);
        rows.push(WinnerRow {
            criterion: title.into(),
            winner: (leaders.len() == 1).then(|| leaders[0].clone()),
            basis: "price and service catalog".into(),
        });
    }
    rows
}

fn requirement_rows(requirements: &Requirements, platforms: &[String], scores: &Scores) -> Vec<RequirementRow> {
    requirements
        .requirements
        .iter()
        .map(|r| {
            let mut reasons = Vec::new();
            let mut totals: Vec<(String, f64)> = platforms.iter().map(|p| (p.clone(), 0.0)).collect();
            let mut weight_sum = 0.0;
            let total_weight: f64 = r.weights.values().sum();
            for (criterion, weight) in &r.weights {
                let Some(by_platform) = scores.get(criterion) else {
                    reasons.push(format!("{criterion}: no data"));
                    continue;
                };
                weight_sum += weight;
                for (p, total) in totals.iter_mut() {
                    *total += weight * by_platform.get(p).copied().unwrap_or(0.0);
                }
                let leaders: Vec<&str> = leaders(by_platform).into_iter().map(String::as_str).collect();
                let lead = if leaders.len() == by_platform.len() { "tie".to_owned() } else { leaders.join(", ") };
                reasons.push(format!("{criterion} ×{weight}: {lead}"));
            }
            if weight_sum > 0.0 {
                for (_, t) in totals.iter_mut() {
                    *t /= weight_sum;
                }
            }
            let top = totals.iter().map(|(_, t)| *t).fold(f64::MIN, f64::max);
            let leaders: Vec<&String> = totals.iter().filter(|(_, t)| (*t - top).abs() < 1e-12).map(|(p, _)| p).collect();
            RequirementRow {
                requirement: r.clone(),
                best: (weight_sum > 0.0 && leaders.len() == 1).then(|| leaders[0].clone()),
                coverage: if total_weight > 0.0 { weight_sum / total_weight } else { 0.0 },
                scores: totals,
                reasoning: reasons.join("; "),
            }
        })
        .collect()
}

/// Least-squares slope of the round medians (round, median).
fn slope(points: &[(u32, f64)]) -> f64 {
    stats::least_squares_slope(&points.iter().map(|(x, y)| (f64::from(*x), *y)).collect::<Vec<_>>())
}

fn rounds(rows: &[BatchRow], platforms: &[String], min_segment: usize) -> Vec<RoundTrend> {
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

fn reproducibility(run_id: &str, metrics: &[&BatchMetrics], options: &Options) -> Reproducibility {
    let mut workers = BTreeSet::new();
    let (mut commits, mut models, mut manifests) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for m in metrics {
        if !m.manifest_sha256.is_empty() {
            manifests.insert(m.manifest_sha256.clone());
        }
        if let Some(w) = &m.worker {
            workers.insert([w.worker_id.clone(), w.host.clone(), w.platform.clone(), w.provider.clone(), w.region.clone(), w.instance_type.clone()]);
        }
        if let Some(v) = &m.versions {
            commits.insert(v.git_commit.clone());
            if !v.model_hash.is_empty() {
                models.insert(v.model_hash.clone());
            }
        }
    }
    Reproducibility {
        run_id: run_id.to_owned(),
        spec: options.spec.clone(),
        batches: metrics.len(),
        images: metrics.iter().map(|m| u64::from(m.images)).sum(),
        bytes: metrics.iter().map(|m| m.bytes).sum(),
        first_start_unix_ns: metrics.iter().map(|m| m.started_unix_ns).min().unwrap_or(0),
        last_end_unix_ns: metrics.iter().map(|m| m.finished_unix_ns).max().unwrap_or(0),
        workers: workers.into_iter().collect(),
        git_commits: commits.into_iter().collect(),
        model_hashes: models.into_iter().collect(),
        manifest_hashes: manifests.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_efficiency_is_against_the_fewest_workers_and_says_where_it_stops() {
        // (round, worker, start s, end s, images): 1 worker 100 images in 10 s; 2 workers in 6 s; 4 in 5 s.
        let batches = [
            (0, "w1", 0, 5, 50), (0, "w1", 5, 10, 50),
            (1, "w1", 20, 26, 50), (1, "w2", 20, 25, 50),
            (2, "w1", 30, 35, 25), (2, "w2", 30, 34, 25), (2, "w3", 30, 35, 25), (2, "w4", 31, 35, 25),
        ];
        let metrics: Vec<BatchMetrics> = batches
            .iter()
            .map(|&(round, worker, start, end, images)| BatchMetrics {
                platform: "aws".into(),
                round,
                images,
                started_unix_ns: start * 1_000_000_000,
                finished_unix_ns: end * 1_000_000_000,
                worker: Some(proto::v1::WorkerIdentity { worker_id: worker.into(), ..Default::default() }),
                ..Default::default()
            })
            .collect();
        let refs: Vec<&BatchMetrics> = metrics.iter().collect();
        let rows = scaling(&refs);
        let got: Vec<(usize, f64)> = rows.iter().map(|r| (r.workers, (r.efficiency * 1000.0).round() / 1000.0)).collect();
        assert_eq!(got, [(1, 1.0), (2, 0.833), (4, 0.5)]);
        assert_eq!(rows[0].images_per_second, 10.0);
        assert_eq!(scaling_stops(&rows), [("aws".to_owned(), 2)]);
        // Rounds at one worker count are not a scaling run.
        assert!(scaling(&refs[..2]).is_empty());
    }

    #[test]
    fn slopes_are_least_squares() {
        assert_eq!(slope(&[(0, 1.0), (1, 2.0), (2, 3.0)]), 1.0);
        assert_eq!(slope(&[(0, 1.0)]), 0.0);
        assert_eq!(slope(&[(3, 1.0), (3, 2.0)]), 0.0);
    }
}
