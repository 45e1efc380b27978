//! Builds the report's content from a run's metrics (pure: data in, data out): converts the wire
//! metrics once into [`Batch`]es (the only place the report sees them), orders the batches, drops
//! warm-up, and assembles what [`metrics`](super::metrics), [`scaling`](super::scaling),
//! [`service`](super::service), [`scoring`](super::scoring), [`rounds`](super::rounds),
//! [`validity`] and [`capacity`](super::capacity) compute.

use std::collections::{BTreeMap, BTreeSet};

use proto::v1::BatchMetrics;

use super::config::{Catalog, Requirements};
use super::metrics::{METRICS, metric_section};
use super::model::*;
use super::rounds::rounds;
use super::scaling::{scaling, scaling_stops};
use super::scoring::{criterion_scores, requirement_rows, winners};
use super::service::{availability, costs, latency, server_split};
use super::validity;
use crate::batch::Batch;
use crate::rows::BatchRow;

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
    // The wire metrics' one conversion: every section reads the decoded batches.
    let batches: Vec<Batch> = metrics.iter().map(Batch::from).collect();
    // Platforms whose every batch was excluded still get a verdict (too few batches).
    let all_platforms: Vec<String> = batches.iter().map(|m| m.platform.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut ordered = without_warmup(&batches, options.exclude_warmup.unwrap_or(0));
    ordered.sort_by(|a, b| (&a.platform, a.round, a.batch_index).cmp(&(&b.platform, b.round, b.batch_index)));
    let rows: Vec<BatchRow> = ordered.iter().map(|m| BatchRow::from_batch(m)).collect();
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
    let checked: Vec<validity::Checked<'_>> = ordered.iter().copied().zip(&rows).collect();
    let validity = validity::evaluate(&checked, &all_platforms, &sections, &scaling_rows);
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
fn without_warmup(metrics: &[Batch], n: usize) -> Vec<&Batch> {
    if n == 0 {
        return metrics.iter().collect();
    }
    let mut by_time: Vec<&Batch> = metrics.iter().collect();
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

fn reproducibility(run_id: &str, metrics: &[&Batch], options: &Options) -> Reproducibility {
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
