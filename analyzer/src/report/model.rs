//! The report's content as plain data: every number the Markdown, HTML and JSON renderings show.

use serde::Serialize;

use crate::stats::{ChangePoint, Descriptives, Interval, Kruskal};

use super::config::{Component, Requirement};

/// A measured metric compared across platforms (one of the paper's Tables 2–5).
#[derive(Debug, Clone, Serialize)]
pub struct MetricSection {
    /// Short name used in requirement weights ("upload", "download", "inference", "throughput").
    pub key: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    pub lower_is_better: bool,
    pub platforms: Vec<PlatformMetric>,
    pub kruskal: Option<Kruskal>,
    pub epsilon_squared: Option<f64>,
    pub pairs: Vec<Pair>,
    /// Why a test is missing (one platform, all values equal, ...).
    pub note: Option<String>,
    /// The significant winner at the report's alpha, if any.
    pub winner: Option<String>,
}

/// One platform's values of a metric.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformMetric {
    pub platform: String,
    pub describe: Descriptives,
    /// Bootstrap confidence interval of the median.
    pub median_ci: Option<Interval>,
    /// Regime changes along the batches of a round (in the median over rounds of each batch position).
    pub change_points: Vec<ChangePoint>,
    /// The per-batch series in run order (round, batch), for the figures.
    #[serde(skip)]
    pub series: Vec<f64>,
}

/// Pairwise comparison of two platforms on one metric.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    pub a: String,
    pub b: String,
    pub dunn_z: f64,
    pub dunn_p_holm: f64,
    pub mwu_u: f64,
    pub mwu_p: f64,
    pub cliffs_delta: f64,
    /// Bootstrap interval of median(a) − median(b).
    pub median_difference: Option<Interval>,
}

/// Merged per-request latency of one platform and phase.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRow {
    pub platform: String,
    pub phase: &'static str,
    pub requests: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// One platform's inference latency split into the server's own time (queue and model, as the
/// endpoint reports it) and the rest (network and client), merged over the run.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSplitRow {
    pub platform: String,
    /// Requests whose answer carried the server's time, of all inference requests.
    pub reported: u64,
    pub requests: u64,
    pub server_p50_ms: Option<f64>,
    pub server_p99_ms: Option<f64>,
    pub outside_p50_ms: Option<f64>,
    pub outside_p99_ms: Option<f64>,
}

/// Observed availability against the promised SLA.
#[derive(Debug, Clone, Serialize)]
pub struct AvailabilityRow {
    pub platform: String,
    pub requests: u64,
    pub failed: u64,
    pub availability_percent: f64,
    pub sla_percent: Option<f64>,
    pub meets_sla: Option<bool>,
}

/// Costs of one platform at its measured throughput (the paper's Tables 6 and 7, extended).
#[derive(Debug, Clone, Serialize)]
pub struct CostRow {
    pub platform: String,
    pub provider: String,
    pub components: Vec<Component>,
    pub usd_per_hour: (f64, f64),
    pub usd_per_day: (f64, f64),
    /// Images per second over download + inference time, all batches.
    pub images_per_second: f64,
    pub usd_per_1000_images: (f64, f64),
}

/// One row of the winners table (the paper's Table 8).
#[derive(Debug, Clone, Serialize)]
pub struct WinnerRow {
    pub criterion: String,
    /// The best platform, or `None` when no difference is significant (or no data).
    pub winner: Option<String>,
    pub basis: String,
}

/// One row of the requirements table (the paper's Table 9).
#[derive(Debug, Clone, Serialize)]
pub struct RequirementRow {
    pub requirement: Requirement,
    /// Weighted score per platform, 0 to 1.
    pub scores: Vec<(String, f64)>,
    pub best: Option<String>,
    /// Share of the requirement's weight for which there was data (measured or in the catalog).
    pub coverage: f64,
    pub reasoning: String,
}

/// Per-round medians of one metric and platform, with the trend across rounds.
#[derive(Debug, Clone, Serialize)]
pub struct RoundTrend {
    pub metric: &'static str,
    pub platform: String,
    pub medians: Vec<(u32, f64)>,
    /// Least-squares slope of the round medians, in the metric's unit per round.
    pub slope_per_round: f64,
    /// Regime changes from round to round; `index` is the position in `medians`.
    pub change_points: Vec<ChangePoint>,
}

/// One stage of a scaling experiment (a round) on one platform.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingRow {
    pub platform: String,
    pub round: u32,
    /// Distinct workers that ran the round's batches.
    pub workers: usize,
    pub images: u64,
    /// From the first batch's start to the last batch's end.
    pub wall_seconds: f64,
    pub images_per_second: f64,
    /// Throughput at N workers / (N × throughput per worker at the fewest workers measured).
    pub efficiency: f64,
}

/// What is needed to reproduce the run.
#[derive(Debug, Clone, Serialize)]
pub struct Reproducibility {
    pub run_id: String,
    pub spec: Option<String>,
    pub batches: usize,
    pub images: u64,
    pub bytes: u64,
    pub first_start_unix_ns: i64,
    pub last_end_unix_ns: i64,
    /// Distinct worker identities: id, host, platform, provider, region, instance type.
    pub workers: Vec<[String; 6]>,
    pub git_commits: Vec<String>,
    pub model_hashes: Vec<String>,
    /// Hashes of the dataset manifests the batches came from (one, unless the run is mixed).
    pub manifest_hashes: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run_id: String,
    pub alpha: f64,
    /// True when every platform is VALID (no check failed; warnings allowed).
    pub valid: bool,
    /// Batches left out per platform, first in time order, as warm-up (`--exclude-warmup N`).
    pub excluded_warmup: Option<usize>,
    /// Per platform, the checks that say whether its figures can be trusted.
    pub validity: Vec<PlatformValidity>,
    pub platforms: Vec<String>,
    pub metrics: Vec<MetricSection>,
    pub latency: Vec<LatencyRow>,
    /// Per platform with inference: server time against network and client.
    pub server_split: Vec<ServerSplitRow>,
    pub availability: Vec<AvailabilityRow>,
    pub costs: Vec<CostRow>,
    /// Platforms with no entry in the price catalog.
    pub unpriced: Vec<String>,
    pub winners: Vec<WinnerRow>,
    pub requirements: Vec<RequirementRow>,
    pub rounds: Vec<RoundTrend>,
    /// Present when a platform ran rounds at different worker counts (a scaling run).
    pub scaling: Vec<ScalingRow>,
    /// Per platform, the worker count after which efficiency fell below [`SCALING_FLOOR`].
    pub scaling_stops: Vec<(String, usize)>,
    /// Present for a load sweep (some platform ran at several loads) or when a target was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<super::capacity::Capacity>,
    pub reproducibility: Reproducibility,
}

/// Efficiency below which a platform is said to stop scaling.
pub const SCALING_FLOOR: f64 = 0.75;

/// Whether one platform's figures can be trusted, after MLPerf LoadGen's VALID / INVALID.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformValidity {
    pub platform: String,
    /// INVALID when any check failed; warnings leave a platform VALID.
    pub verdict: Verdict,
    pub checks: Vec<Check>,
}

/// A platform's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Valid,
    Invalid,
}

/// One self-check of a platform's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable name, for scripts and `--strict` messages ("latency_consistency").
    pub id: &'static str,
    /// What the check asks, in a few words.
    pub title: &'static str,
    pub status: Status,
    /// The measured figure the status was decided on, in `unit`; absent when not applicable.
    pub figure: Option<f64>,
    pub unit: &'static str,
    /// The bound that decided the status; absent when not applicable.
    pub threshold: Option<Threshold>,
    /// One sentence a person understands: what was found, and for `not_applicable`, why.
    pub detail: String,
}

/// Outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    NotApplicable,
    Warn,
    Fail,
}

/// The bound a figure must keep, and what it means when it does not.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Threshold {
    pub comparison: Comparison,
    pub value: f64,
    /// The status of a figure outside the bound: `warn` or `fail`.
    pub breach: Status,
}

/// How a figure compares to its threshold to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Comparison {
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = ">=")]
    AtLeast,
}

impl Threshold {
    /// Says whether `figure` keeps the bound (a NaN figure does not).
    pub fn holds(&self, figure: f64) -> bool {
        match self.comparison {
            Comparison::AtMost => figure <= self.value,
            Comparison::Below => figure < self.value,
            Comparison::AtLeast => figure >= self.value,
        }
    }
}
