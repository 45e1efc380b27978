//! `analyzer compare`: did anything change between runs, and is it real? Each run after the first
//! is compared with the first (the baseline), per platform and metric, on the per-batch values: the
//! medians with seeded bootstrap intervals, the relative change of the median with its interval,
//! Mann–Whitney's p Holm-adjusted across every comparison made, and Cliff's δ. A verdict (better or
//! worse) is given only where the change is significant *and* at least `min_change` (pure).

use serde::Serialize;

use crate::report::metrics::{METRICS, MetricDef};
use crate::report::document::Block;
use crate::rows::BatchRow;
use crate::stats::{self, Interval};

/// Settings of a comparison.
#[derive(Debug, Clone)]
pub struct Options {
    pub alpha: f64,
    /// Smallest relative change of the median that gets a verdict (0.05: 5%).
    pub min_change: f64,
    pub resamples: usize,
    pub seed: u64,
    pub level: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self { alpha: 0.05, min_change: 0.05, resamples: 1000, seed: 1, level: 0.95 }
    }
}

/// What a comparison says of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Better,
    Worse,
    /// Not significant, or smaller than the practical threshold.
    NoSignificantChange,
}

/// One platform and metric of one run against the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeRow {
    pub run: String,
    pub platform: String,
    pub metric: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    pub lower_is_better: bool,
    pub baseline_n: usize,
    pub n: usize,
    pub baseline_median: f64,
    pub baseline_ci: Option<Interval>,
    pub median: f64,
    pub median_ci: Option<Interval>,
    /// median / baseline median − 1.
    pub change: f64,
    pub change_ci: Option<Interval>,
    pub mwu_p: f64,
    /// Holm-adjusted across every row of the comparison.
    pub p_holm: f64,
    /// Cliff's δ of this run's values against the baseline's (positive: this run's are larger).
    pub cliffs_delta: f64,
    pub verdict: Verdict,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub baseline: String,
    pub runs: Vec<String>,
    pub alpha: f64,
    pub min_change: f64,
    pub rows: Vec<ChangeRow>,
    /// Platforms in one run and not the other: (run, platform, "only in the baseline"/"new").
    pub unmatched: Vec<(String, String, &'static str)>,
}

impl Comparison {
    /// Rows with a `worse` verdict.
    pub fn regressions(&self) -> impl Iterator<Item = &ChangeRow> {
        self.rows.iter().filter(|r| r.verdict == Verdict::Worse)
    }
}

/// The per-batch metrics compared: the report's, and the inference phase's per-batch p99.
fn metrics() -> Vec<MetricDef> {
    let mut all: Vec<MetricDef> = METRICS.to_vec();
    all.push(MetricDef { key: "inference_p99", title: "Inference p99 latency", unit: "ms", lower_is_better: true, get: |r| r.inference_p99_ms });
    all
}

fn values(rows: &[BatchRow], platform: &str, def: &MetricDef) -> Vec<f64> {
    rows.iter().filter(|r| r.platform == platform).filter_map(|r| (def.get)(r)).filter(|v| v.is_finite()).collect()
}

/// Compares each of `runs` (name, rows) after the first with the first.
pub fn compare(runs: &[(String, Vec<BatchRow>)], options: &Options) -> Result<Comparison, String> {
    let [(baseline, base_rows), rest @ ..] = runs else { return Err("compare needs at least two runs".into()) };
    if rest.is_empty() {
        return Err("compare needs at least two runs".into());
    }
    let platforms = |rows: &[BatchRow]| rows.iter().map(|r| r.platform.clone()).collect::<std::collections::BTreeSet<_>>();
    let base_platforms = platforms(base_rows);
    let mut rows = Vec::new();
    let mut unmatched = Vec::new();
    for (run_index, (run, run_rows)) in rest.iter().enumerate() {
        let mine = platforms(run_rows);
        unmatched.extend(base_platforms.difference(&mine).map(|p| (run.clone(), p.clone(), "only in the baseline")));
        unmatched.extend(mine.difference(&base_platforms).map(|p| (run.clone(), p.clone(), "new")));
        for (p_index, platform) in base_platforms.intersection(&mine).enumerate() {
            for (m_index, def) in metrics().iter().enumerate() {
                let (a, b) = (values(base_rows, platform, def), values(run_rows, platform, def));
                let (Ok(da), Ok(db)) = (stats::describe(&a), stats::describe(&b)) else { continue };
                let Ok(mwu) = stats::mann_whitney(&b, &a) else { continue };
                // Independent, reproducible streams per (run, platform, metric, side).
                let seed = options.seed.wrapping_add(((run_index * 1000 + p_index) * 100 + m_index) as u64 * 2);
                let ra = stats::median_replicates(&a, options.resamples, seed).unwrap_or_default();
                let rb = stats::median_replicates(&b, options.resamples, seed + 1).unwrap_or_default();
                let change = db.median / da.median - 1.0;
                let ratios: Vec<f64> = ra.iter().zip(&rb).map(|(x, y)| y / x - 1.0).filter(|v| v.is_finite()).collect();
                rows.push(ChangeRow {
                    run: run.clone(),
                    platform: platform.clone(),
                    metric: def.key,
                    title: def.title,
                    unit: def.unit,
                    lower_is_better: def.lower_is_better,
                    baseline_n: a.len(),
                    n: b.len(),
                    baseline_median: da.median,
                    baseline_ci: stats::percentile_interval(da.median, ra, options.level).ok(),
                    median: db.median,
                    median_ci: stats::percentile_interval(db.median, rb, options.level).ok(),
                    change,
                    change_ci: stats::percentile_interval(change, ratios, options.level).ok(),
                    mwu_p: mwu.p,
                    p_holm: f64::NAN,
                    cliffs_delta: stats::cliffs_delta(&b, &a).unwrap_or(f64::NAN),
                    verdict: Verdict::NoSignificantChange,
                });
            }
        }
    }
    let adjusted = stats::holm(&rows.iter().map(|r| r.mwu_p).collect::<Vec<_>>());
    for (row, p) in rows.iter_mut().zip(adjusted) {
        row.p_holm = p;
        if p < options.alpha && row.change.abs() >= options.min_change && row.change.is_finite() {
            let larger = row.change > 0.0;
            row.verdict = if larger == row.lower_is_better { Verdict::Worse } else { Verdict::Better };
        }
    }
    Ok(Comparison { baseline: baseline.clone(), runs: rest.iter().map(|(r, _)| r.clone()).collect(), alpha: options.alpha, min_change: options.min_change, rows, unmatched })
}

/// The word for a verdict on a metric: faster/slower for times, higher/lower for throughput.
pub fn verdict_word(row: &ChangeRow) -> &'static str {
    match (row.verdict, row.lower_is_better) {
        (Verdict::NoSignificantChange, _) => "no significant change",
        (Verdict::Better, true) => "faster",
        (Verdict::Worse, true) => "slower",
        (Verdict::Better, false) => "higher",
        (Verdict::Worse, false) => "lower",
    }
}

/// The comparison as document blocks (Markdown or HTML).
pub fn blocks(c: &Comparison) -> Vec<Block> {
    use crate::report::content::{num, pval};
    let ci = |i: &Option<Interval>, f: fn(f64) -> String| i.as_ref().map_or("–".into(), |i| format!("[{}, {}]", f(i.lo), f(i.hi)));
    let pct = |v: f64| if v.is_finite() { format!("{:+.1}%", v * 100.0) } else { "–".into() };
    let mut b = vec![
        Block::Heading(1, format!("cloudbench comparison: {} against {}", c.runs.join(", "), c.baseline)),
        Block::Paragraph(format!(
            "Per platform and metric, the per-batch values of each run against the baseline {}: medians with 95% bootstrap intervals, the relative change of the median with its interval, Mann–Whitney p Holm-adjusted over all {} comparisons, and Cliff's δ (positive: the run's values are larger). A verdict is given only where p < {} and the change is at least {:.0}%.",
            c.baseline,
            c.rows.len(),
            c.alpha,
            c.min_change * 100.0
        )),
    ];
    let changed: Vec<String> = c.rows.iter().filter(|r| r.verdict != Verdict::NoSignificantChange).map(|r| format!("{} {} {} ({})", r.platform, r.title.to_lowercase(), verdict_word(r), pct(r.change))).collect();
    b.push(Block::Paragraph(if changed.is_empty() { "No significant change beyond the threshold.".into() } else { format!("Changed: {}.", changed.join("; ")) }));
    b.push(Block::Table {
        header: ["run", "platform", "metric", "unit", "baseline median", "95% CI", "median", "95% CI", "change", "change 95% CI", "p (Holm)", "Cliff's δ", "verdict"].iter().map(|s| s.to_string()).collect(),
        rows: c
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.run.clone(),
                    r.platform.clone(),
                    r.title.into(),
                    r.unit.into(),
                    num(r.baseline_median),
                    ci(&r.baseline_ci, num),
                    num(r.median),
                    ci(&r.median_ci, num),
                    pct(r.change),
                    ci(&r.change_ci, pct),
                    pval(r.p_holm),
                    format!("{:.3}", r.cliffs_delta),
                    verdict_word(r).into(),
                ]
            })
            .collect(),
    });
    if !c.unmatched.is_empty() {
        let lines: Vec<String> = c.unmatched.iter().map(|(run, p, why)| format!("{p} in {run}: {why}")).collect();
        b.push(Block::Paragraph(format!("Not compared: {}.", lines.join("; "))));
    }
    b
}
