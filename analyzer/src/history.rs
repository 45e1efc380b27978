//! `analyzer history`: the runs of a store as a series, per platform and metric, of run-level
//! medians in time order, with the changes of level along it (the report's PELT on ranks, every
//! segment at least `min_segment` runs long, so that one odd run cannot be a regime of its own), each
//! dated and tied to what changed with it: git commit, model hash, instance type, region (pure).

use std::collections::{BTreeMap, BTreeSet};

use proto::v1::BatchMetrics;
use serde::Serialize;

use crate::report::metrics::{METRICS, MetricDef};
use crate::civil::iso;
use crate::report::charts;
use crate::report::content::{num, short};
use crate::report::document::Block;
use crate::rows::BatchRow;
use crate::stats;

/// Runs in the history: which ones, and the shortest regime a change may start.
#[derive(Debug, Clone)]
pub struct Options {
    pub platforms: Vec<String>,
    pub model_hash: Option<String>,
    /// Unix seconds: runs that started in [since, until).
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub min_segment: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { platforms: Vec::new(), model_hash: None, since: None, until: None, min_segment: 3 }
    }
}

/// What identifies the setup of one platform in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Setup {
    pub git_commits: Vec<String>,
    pub model_hashes: Vec<String>,
    pub instance_types: Vec<String>,
    pub regions: Vec<String>,
}

/// One run of one platform.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub run: String,
    /// When its first batch started, Unix seconds.
    pub started_unix_s: i64,
    pub batches: usize,
    pub median: f64,
}

/// A change of level in a series.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Position in the series (0: the first run) of the first run of the new regime.
    pub index: usize,
    pub run: String,
    pub started_unix_s: i64,
    pub before_median: f64,
    pub after_median: f64,
    /// What differs between this run's setup and the one before it ("git commit abc → def", ...).
    pub came_with: Vec<String>,
}

/// One platform and metric over the runs.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub platform: String,
    pub metric: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    pub points: Vec<Point>,
    pub changes: Vec<Change>,
}

/// The whole history.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub runs: usize,
    pub min_segment: usize,
    pub series: Vec<Series>,
}

fn setup_of(batches: &[&BatchMetrics]) -> Setup {
    let mut s = [BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new()];
    for m in batches {
        if let Some(v) = &m.versions {
            s[0].insert(v.git_commit.clone());
            s[1].insert(v.model_hash.clone());
        }
        if let Some(w) = &m.worker {
            s[2].insert(w.instance_type.clone());
            s[3].insert(w.region.clone());
        }
    }
    let [a, b, c, d] = s.map(|set| set.into_iter().filter(|v| !v.is_empty()).collect());
    Setup { git_commits: a, model_hashes: b, instance_types: c, regions: d }
}

fn differences(before: &Setup, after: &Setup) -> Vec<String> {
    let pairs = [
        ("git commit", &before.git_commits, &after.git_commits),
        ("model hash", &before.model_hashes, &after.model_hashes),
        ("instance type", &before.instance_types, &after.instance_types),
        ("region", &before.regions, &after.regions),
    ];
    pairs
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(what, a, b)| format!("{what} {} → {}", if a.is_empty() { "–".into() } else { a.join(", ") }, if b.is_empty() { "–".into() } else { b.join(", ") }))
        .collect()
}

/// Builds the history of `runs` (run id, its metrics).
pub fn history(runs: &[(String, Vec<BatchMetrics>)], options: &Options) -> History {
    // Per run and platform: its start, rows and setup, for the runs the filters keep.
    struct RunPlatform<'a> {
        run: &'a str,
        started_unix_s: i64,
        rows: Vec<BatchRow>,
        setup: Setup,
    }
    let mut by_platform: BTreeMap<String, Vec<RunPlatform<'_>>> = BTreeMap::new();
    let mut kept = BTreeSet::new();
    for (run, metrics) in runs {
        let mut platforms: BTreeMap<&str, Vec<&BatchMetrics>> = BTreeMap::new();
        for m in metrics {
            platforms.entry(m.platform.as_str()).or_default().push(m);
        }
        for (platform, batches) in platforms {
            let started = batches.iter().map(|m| m.started_unix_ns).min().unwrap_or(0).div_euclid(1_000_000_000);
            let setup = setup_of(&batches);
            let keep = (options.platforms.is_empty() || options.platforms.iter().any(|p| p == platform))
                && options.model_hash.as_ref().is_none_or(|h| setup.model_hashes.contains(h))
                && options.since.is_none_or(|s| started >= s)
                && options.until.is_none_or(|u| started < u);
            if keep {
                kept.insert(run.as_str());
                by_platform.entry(platform.to_owned()).or_default().push(RunPlatform { run, started_unix_s: started, rows: batches.iter().map(|m| BatchRow::from_metrics(m)).collect(), setup });
            }
        }
    }
    let mut series = Vec::new();
    for (platform, mut runs) in by_platform {
        runs.sort_by(|a, b| (a.started_unix_s, a.run).cmp(&(b.started_unix_s, b.run)));
        for def in METRICS.iter().chain(std::iter::once(&P99)) {
            let points: Vec<(Point, &Setup)> = runs
                .iter()
                .filter_map(|r| {
                    let values: Vec<f64> = r.rows.iter().filter_map(|row| (def.get)(row)).filter(|v| v.is_finite()).collect();
                    let d = stats::describe(&values).ok()?;
                    Some((Point { run: r.run.to_owned(), started_unix_s: r.started_unix_s, batches: values.len(), median: d.median }, &r.setup))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let medians: Vec<f64> = points.iter().map(|(p, _)| p.median).collect();
            let changes = refine(&medians, stats::change_points(&medians, options.min_segment).unwrap_or_default(), options.min_segment)
                .into_iter()
                .map(|c| Change {
                    index: c.index,
                    run: points[c.index].0.run.clone(),
                    started_unix_s: points[c.index].0.started_unix_s,
                    before_median: c.before_median,
                    after_median: c.after_median,
                    came_with: differences(points[c.index - 1].1, points[c.index].1),
                })
                .collect();
            series.push(Series { platform: platform.clone(), metric: def.key, title: def.title, unit: def.unit, points: points.into_iter().map(|(p, _)| p).collect(), changes });
        }
    }
    History { runs: kept.len(), min_segment: options.min_segment, series }
}

/// Places each change found on the ranks where the absolute deviations from the two regimes'
/// medians are least, between its neighbours (each regime still `min_segment` long): ranks find
/// that a series changes and how often, robustly, but their mean-change cost leans a boundary
/// towards balanced segments (a step at run 20 of 30 is found at 18 when runs 18 and 19 happen to
/// be high in the old regime); the values themselves say where.
fn refine(series: &[f64], found: Vec<stats::ChangePoint>, min_segment: usize) -> Vec<stats::ChangePoint> {
    let median = |v: &[f64]| stats::describe(v).map_or(f64::NAN, |d| d.median);
    let l1 = |v: &[f64]| {
        let m = median(v);
        v.iter().map(|x| (x - m).abs()).sum::<f64>()
    };
    let mut bounds: Vec<usize> = found.iter().map(|c| c.index).collect();
    for i in 0..bounds.len() {
        let lo = if i == 0 { 0 } else { bounds[i - 1] };
        let hi = if i + 1 == bounds.len() { series.len() } else { bounds[i + 1] };
        let candidates = (lo + min_segment)..=(hi.saturating_sub(min_segment));
        if let Some(best) = candidates.min_by(|&a, &b| (l1(&series[lo..a]) + l1(&series[a..hi])).total_cmp(&(l1(&series[lo..b]) + l1(&series[b..hi])))) {
            bounds[i] = best;
        }
    }
    let mut edges = vec![0];
    edges.extend(&bounds);
    edges.push(series.len());
    bounds
        .iter()
        .enumerate()
        .map(|(i, &index)| stats::ChangePoint { index, before_median: median(&series[edges[i]..index]), after_median: median(&series[index..edges[i + 2]]) })
        .collect()
}

/// The inference phase's per-batch p99, a metric of the history beside the report's.
const P99: MetricDef = MetricDef { key: "inference_p99", title: "Inference p99 latency", unit: "ms", lower_is_better: true, get: |r| r.inference_p99_ms };

/// The history as document blocks; `figures` adds a chart over time per metric (HTML).
pub fn blocks(h: &History, figures: bool) -> Vec<Block> {
    let mut b = vec![
        Block::Heading(1, format!("cloudbench history: {} runs", h.runs)),
        Block::Paragraph(format!(
            "Per platform and metric, the median of each run's per-batch values, in the order the runs started. Changes of level are found by PELT on the ranks of the series (penalty 3·ln n), every regime at least {} runs long, so a single odd run is not a change, and each is placed where the absolute deviations from the two regimes' medians are least; each is dated by its first run and shown with what changed in the setup between that run and the one before it.",
            h.min_segment
        )),
    ];
    let changes: Vec<Vec<String>> = h
        .series
        .iter()
        .flat_map(|s| {
            s.changes.iter().map(move |c| {
                vec![
                    s.platform.clone(),
                    format!("{} ({})", s.title, s.unit),
                    format!("{} (#{})", c.run, c.index),
                    iso(c.started_unix_s),
                    format!("{} → {}", num(c.before_median), num(c.after_median)),
                    format!("{:+.1}%", (c.after_median / c.before_median - 1.0) * 100.0),
                    if c.came_with.is_empty() { "nothing recorded".into() } else { c.came_with.join("; ") },
                ]
            })
        })
        .collect();
    b.push(Block::Heading(2, "Changes".into()));
    if changes.is_empty() {
        b.push(Block::Paragraph("No change of level in any series.".into()));
    } else {
        b.push(Block::Table { header: ["platform", "metric", "from run", "started (UTC)", "median", "change", "came with"].iter().map(|s| s.to_string()).collect(), rows: changes });
    }
    b.push(Block::Heading(2, "Series".into()));
    let platforms: Vec<&str> = h.series.iter().map(|s| s.platform.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    let first = h.series.iter().flat_map(|s| s.points.first()).map(|p| p.started_unix_s).min().unwrap_or(0);
    let metrics: Vec<&'static str> = h.series.iter().map(|s| s.metric).collect::<BTreeSet<_>>().into_iter().collect();
    for metric in metrics {
        let mine: Vec<&Series> = h.series.iter().filter(|s| s.metric == metric).collect();
        b.push(Block::Heading(3, format!("{} ({})", mine[0].title, mine[0].unit)));
        if figures {
            let lines: Vec<charts::XySeries<'_>> = mine
                .iter()
                .map(|s| charts::XySeries {
                    name: &s.platform,
                    points: s.points.iter().map(|p| ((p.started_unix_s - first) as f64 / 86_400.0, p.median)).collect(),
                    colour: platforms.iter().position(|p| *p == s.platform).unwrap_or(0),
                })
                .collect();
            b.push(Block::Figures(vec![charts::knee(&format!("{} per run", mine[0].title), &format!("days since {}", iso(first)), mine[0].unit, &lines, None)]));
        }
        b.push(Block::Table {
            header: ["platform", "runs", "first median", "last median", "changes (run: before → after)"].iter().map(|s| s.to_string()).collect(),
            rows: mine
                .iter()
                .map(|s| {
                    let changes: Vec<String> = s.changes.iter().map(|c| format!("{}: {} → {}", c.run, short(c.before_median), short(c.after_median))).collect();
                    vec![
                        s.platform.clone(),
                        s.points.len().to_string(),
                        s.points.first().map_or("–".into(), |p| num(p.median)),
                        s.points.last().map_or("–".into(), |p| num(p.median)),
                        if changes.is_empty() { "none".into() } else { changes.join("; ") },
                    ]
                })
                .collect(),
        });
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_placed_where_the_values_step() {
        // Runs 18 and 19 high in the old regime: ranks put the boundary at 18, the values at 20.
        let mut series: Vec<f64> = (0..30).map(|i| if i < 20 { 1.8 + 0.01 * f64::from(i % 5) } else { 2.4 }).collect();
        series[18] = 1.95;
        series[19] = 1.94;
        let found = vec![stats::ChangePoint { index: 18, before_median: 0.0, after_median: 0.0 }];
        let refined = refine(&series, found, 3);
        assert_eq!(refined[0].index, 20);
        assert_eq!((refined[0].after_median, refined[0].before_median), (2.4, 1.82));
    }
}
