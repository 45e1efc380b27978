//! Load sweeps: a run whose stages offer increasing inference load, either a list of open-loop rates
//! or closed-loop concurrencies, or a search for the highest open-loop rate that meets a latency
//! target and an error budget (as Triton perf_analyzer's `--latency-threshold --binary-search` and
//! SageMaker Inference Recommender's stopping conditions do).
//!
//! Everything here is pure: the spec's `[load_sweep]` table, what a stage's result says against
//! the target, and which stage comes next. The next stage follows from the results of the ones
//! before it alone, so a restarted coordinator replays the results it finds in the run state and
//! resumes the search where it was; the analyzer judges stages by the same rule.
//!
//! The search, per platform: from `min_rate`, double the rate while the target is met (up to
//! `max_rate`); once a rate misses it, bisect between the highest rate that met it and the lowest
//! that missed it, until they are within `precision` of each other. Each stage is one job, so one
//! worker offers the whole rate.

use proto::v1::{BatchMetrics, LoadMode};
use serde::Deserialize;

/// Requests a stage sends at least, when the spec does not say (LoadGen's minimum query count).
pub const DEFAULT_MIN_REQUESTS: u64 = 200;
/// Seconds a stage lasts at least, when the spec does not say (LoadGen's minimum duration).
pub const DEFAULT_MIN_SECONDS: f64 = 10.0;
/// Share of failed requests a stage may have and still meet the target, when the spec does not say.
pub const DEFAULT_MAX_ERROR_SHARE: f64 = 0.01;
/// Relative width at which a search stops, when the spec does not say.
pub const DEFAULT_PRECISION: f64 = 0.05;

/// A `[load_sweep]` table as written, for a spec's deserializer to embed; [`LoadSweep::new`]
/// validates it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSweep {
    rates: Option<Vec<f64>>,
    concurrencies: Option<Vec<u32>>,
    search: Option<RawSearch>,
    steps: Option<Vec<RawStep>>,
    min_requests: Option<u64>,
    min_seconds: Option<f64>,
    slo_p99_ms: Option<f64>,
    max_error_share: Option<f64>,
    window_seconds: Option<f64>,
    idle_seconds: Option<f64>,
    stability: Option<RawStability>,
}

/// `stability = { tolerance = 0.1, max_seconds = 120 }` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStability {
    tolerance: f64,
    max_seconds: f64,
}

/// One step stage as written: `{ from = 5, to = 50, at_seconds = 10 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    from: f64,
    to: f64,
    at_seconds: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSearch {
    slo_p99_ms: f64,
    max_error_share: Option<f64>,
    min_rate: f64,
    max_rate: f64,
    precision: Option<f64>,
}

/// A run spec's `[load_sweep]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSweep {
    pub stages: Stages,
    /// Each stage lasts at least this many requests and seconds.
    pub min_requests: u64,
    pub min_seconds: f64,
    /// The latency target and error budget a stage is judged against (required for a search).
    pub target: Option<Target>,
    /// Width of the latency windows stages record (step stages: 1 s unless given).
    pub window_seconds: Option<f64>,
    /// Seconds each platform rests between stages, so that each stage's first request meets an
    /// endpoint idle that long (its time to the first success is the cold start).
    pub idle_seconds: f64,
    /// Stages go on past their span until two consecutive windows' p99s agree within `tolerance`
    /// (a share of the larger), for at most `max_seconds`.
    pub stability: Option<(f64, f64)>,
}

/// Window width of a step stage when the spec gives none, seconds.
pub const DEFAULT_STEP_WINDOW_SECONDS: f64 = 1.0;

/// The stages of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub enum Stages {
    /// Open-loop rates, requests per second, one stage each in order.
    Rates(Vec<f64>),
    /// Closed-loop concurrencies, one stage each in order.
    Concurrencies(Vec<u32>),
    /// A search for the highest rate meeting the target.
    Search(Search),
    /// Open-loop steps, one stage each: `from` requests/s, then `to` from `at_seconds` on.
    Steps(Vec<StepLoad>),
}

/// A step stage's rates and when it steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLoad {
    pub from: f64,
    pub to: f64,
    pub at_seconds: f64,
}

/// What a stage must keep: its p99 latency (from each request's intended start) and its share of
/// failed requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub p99_ms: f64,
    pub max_error_share: f64,
}

/// The bounds of a search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    pub min_rate: f64,
    pub max_rate: f64,
    /// The search stops when (lowest missing − highest meeting) ≤ precision × highest meeting.
    pub precision: f64,
}

/// The load of one stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StageLoad {
    Rate(f64),
    Concurrency(u32),
    Step(StepLoad),
}

impl StageLoad {
    /// The job's load field for this stage of `sweep`.
    pub fn to_proto(self, sweep: &LoadSweep) -> proto::v1::Load {
        let (mode, concurrency, rate, step) = match self {
            StageLoad::Rate(r) => (LoadMode::OpenLoop, 0, r, None),
            StageLoad::Concurrency(c) => (LoadMode::ClosedLoop, c, 0.0, None),
            StageLoad::Step(s) => (LoadMode::OpenLoop, 0, s.from, Some(s)),
        };
        let window = sweep.window_seconds.or(step.map(|_| DEFAULT_STEP_WINDOW_SECONDS)).unwrap_or(0.0);
        proto::v1::Load {
            mode: mode as i32,
            concurrency,
            rate_per_second: rate,
            min_requests: sweep.min_requests,
            min_seconds: sweep.min_seconds,
            step_rate_per_second: step.map_or(0.0, |s| s.to),
            step_at_seconds: step.map_or(0.0, |s| s.at_seconds),
            window_seconds: window,
            stable_within: sweep.stability.filter(|_| step.is_none()).map_or(0.0, |s| s.0),
            max_seconds: sweep.stability.filter(|_| step.is_none()).map_or(0.0, |s| s.1),
        }
    }

    /// The load a stage is compared at: its rate (after the step, for a step), or its concurrency.
    pub fn offered(self) -> f64 {
        match self {
            StageLoad::Rate(r) => r,
            StageLoad::Concurrency(c) => f64::from(c),
            StageLoad::Step(s) => s.to,
        }
    }
}

impl std::fmt::Display for StageLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageLoad::Rate(r) => write!(f, "{r:.4} requests/s"),
            StageLoad::Concurrency(c) => write!(f, "{c} in flight"),
            StageLoad::Step(s) => write!(f, "{:.4} requests/s, then {:.4} from {} s", s.from, s.to, s.at_seconds),
        }
    }
}

fn target(p99_ms: f64, max_error_share: Option<f64>) -> Result<Target, String> {
    let max_error_share = max_error_share.unwrap_or(DEFAULT_MAX_ERROR_SHARE);
    if !(p99_ms.is_finite() && p99_ms > 0.0) {
        return Err(format!("load_sweep: slo_p99_ms must be a positive number of milliseconds, got {p99_ms}"));
    }
    if !(0.0..=1.0).contains(&max_error_share) {
        return Err(format!("load_sweep: max_error_share must be between 0 and 1, got {max_error_share}"));
    }
    Ok(Target { p99_ms, max_error_share })
}

impl LoadSweep {
    /// Validates a `[load_sweep]` table.
    pub fn new(raw: RawSweep) -> Result<Self, String> {
        let min_requests = raw.min_requests.unwrap_or(DEFAULT_MIN_REQUESTS);
        let min_seconds = raw.min_seconds.unwrap_or(DEFAULT_MIN_SECONDS);
        if !(min_seconds.is_finite() && (0.0..=86_400.0).contains(&min_seconds)) {
            return Err(format!("load_sweep: min_seconds must be between 0 and 86400, got {min_seconds}"));
        }
        let mut target = match raw.slo_p99_ms {
            Some(p99) => Some(target(p99, raw.max_error_share)?),
            None if raw.max_error_share.is_some() => return Err("load_sweep: max_error_share needs slo_p99_ms".into()),
            None => None,
        };
        let window_seconds = raw.window_seconds;
        if let Some(w) = window_seconds.filter(|w| !(w.is_finite() && (0.001..=3600.0).contains(w))) {
            return Err(format!("load_sweep: window_seconds must be between 0.001 and 3600, got {w}"));
        }
        let idle_seconds = raw.idle_seconds.unwrap_or(0.0);
        if !(idle_seconds.is_finite() && (0.0..=86_400.0).contains(&idle_seconds)) {
            return Err(format!("load_sweep: idle_seconds must be between 0 and 86400, got {idle_seconds}"));
        }
        let stability = match raw.stability {
            None => None,
            Some(st) if !(st.tolerance > 0.0 && st.tolerance < 1.0) => return Err(format!("load_sweep.stability: tolerance must be between 0 and 1 (exclusive), got {}", st.tolerance)),
            Some(st) if !(st.max_seconds.is_finite() && st.max_seconds >= min_seconds && st.max_seconds <= 86_400.0) => {
                return Err(format!("load_sweep.stability: max_seconds must be between min_seconds ({min_seconds}) and 86400, got {}", st.max_seconds));
            }
            Some(st) => Some((st.tolerance, st.max_seconds)),
        };
        let rate_ok = |r: f64| r.is_finite() && r > 0.0 && r <= 100_000.0;
        let stages = match (raw.rates, raw.concurrencies, raw.search, raw.steps) {
            (None, None, None, Some(steps)) => {
                if steps.is_empty() || steps.iter().any(|s| !(rate_ok(s.from) && rate_ok(s.to) && s.at_seconds.is_finite() && s.at_seconds > 0.0 && s.at_seconds <= 86_400.0)) {
                    return Err("load_sweep: steps must list at least one { from, to, at_seconds }, rates in (0, 100000] requests/s and at_seconds in (0, 86400]".into());
                }
                Stages::Steps(steps.into_iter().map(|s| StepLoad { from: s.from, to: s.to, at_seconds: s.at_seconds }).collect())
            }
            (Some(rates), None, None, None) => {
                if rates.is_empty() || rates.iter().any(|r| !(r.is_finite() && *r > 0.0 && *r <= 100_000.0)) {
                    return Err("load_sweep: rates must list at least one stage, each a rate in (0, 100000] requests/s".into());
                }
                Stages::Rates(rates)
            }
            (None, Some(c), None, None) => {
                if c.is_empty() || c.iter().any(|c| !(1..=1024).contains(c)) {
                    return Err("load_sweep: concurrencies must list at least one stage, each between 1 and 1024".into());
                }
                Stages::Concurrencies(c)
            }
            (None, None, Some(s), None) => {
                if target.is_some() {
                    return Err("load_sweep: a search names its target inside search = { slo_p99_ms = .. }".into());
                }
                target = Some(self::target(s.slo_p99_ms, s.max_error_share)?);
                let precision = s.precision.unwrap_or(DEFAULT_PRECISION);
                if !(s.min_rate.is_finite() && s.min_rate > 0.0 && s.max_rate.is_finite() && s.max_rate <= 100_000.0 && s.min_rate < s.max_rate) {
                    return Err(format!("load_sweep.search: need 0 < min_rate < max_rate <= 100000, got {} and {}", s.min_rate, s.max_rate));
                }
                if !(precision > 0.0 && precision < 1.0) {
                    return Err(format!("load_sweep.search: precision must be between 0 and 1 (exclusive), got {precision}"));
                }
                Stages::Search(Search { min_rate: s.min_rate, max_rate: s.max_rate, precision })
            }
            _ => return Err("load_sweep: give exactly one of rates, concurrencies, steps or search".into()),
        };
        if stability.is_some() && matches!(stages, Stages::Steps(_)) {
            return Err("load_sweep: step stages run their set course; stability is for steady stages".into());
        }
        Ok(Self { stages, min_requests, min_seconds, target, window_seconds, idle_seconds, stability })
    }

    /// Stages the sweep runs at most: its list, or the longest a search can take.
    pub fn max_stages(&self) -> u32 {
        match &self.stages {
            Stages::Rates(r) => r.len() as u32,
            Stages::Concurrencies(c) => c.len() as u32,
            Stages::Steps(s) => s.len() as u32,
            Stages::Search(s) => s.max_stages(),
        }
    }

    /// The next stage after the results so far (in stage order), or the end of the sweep.
    pub fn next(&self, history: &[StageResult]) -> Next {
        let done = history.len();
        match &self.stages {
            Stages::Rates(r) => r.get(done).map_or(Next::Done, |r| Next::Run(StageLoad::Rate(*r))),
            Stages::Concurrencies(c) => c.get(done).map_or(Next::Done, |c| Next::Run(StageLoad::Concurrency(*c))),
            Stages::Steps(s) => s.get(done).map_or(Next::Done, |s| Next::Run(StageLoad::Step(*s))),
            Stages::Search(search) => {
                let target = self.target.expect("a search has a target");
                let judged: Vec<(f64, bool)> = history.iter().map(|r| (r.offered, target.met(r))).collect();
                match search.next(&judged) {
                    SearchStep::Run(rate) => Next::Run(StageLoad::Rate(rate)),
                    SearchStep::Done(_) => Next::Done,
                }
            }
        }
    }
}

/// What comes after the stages so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    Run(StageLoad),
    Done,
}

/// What a search knows when it stops: the highest rate that met the target and the lowest that
/// missed it (either may be absent: every stage met it, or the lowest rate already missed it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bracket {
    pub met: Option<f64>,
    pub missed: Option<f64>,
}

/// One step of a search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SearchStep {
    Run(f64),
    Done(Bracket),
}

/// The highest rate that met the target below the lowest that missed it, and that lowest miss.
/// A stage that met the target above a miss (noise) is not counted as meeting it.
pub fn bracket(judged: &[(f64, bool)]) -> Bracket {
    let missed = judged.iter().filter(|(_, met)| !met).map(|(r, _)| *r).reduce(f64::min);
    let met = judged.iter().filter(|(r, met)| *met && missed.is_none_or(|m| *r < m)).map(|(r, _)| *r).reduce(f64::max);
    Bracket { met, missed }
}

impl Search {
    /// The next rate to try after `judged` (rate, met) stages, or the bracket found.
    pub fn next(&self, judged: &[(f64, bool)]) -> SearchStep {
        if judged.is_empty() {
            return SearchStep::Run(self.min_rate);
        }
        let b = bracket(judged);
        match (b.met, b.missed) {
            (Some(met), None) if met >= self.max_rate => SearchStep::Done(b),
            (Some(met), None) => SearchStep::Run((met * 2.0).min(self.max_rate)),
            (None, _) => SearchStep::Done(b),
            (Some(met), Some(missed)) if missed - met <= self.precision * met => SearchStep::Done(b),
            (Some(met), Some(missed)) => SearchStep::Run((met + missed) / 2.0),
        }
    }

    /// The most stages a search can take: the doublings from `min_rate` to `max_rate`, then the
    /// halvings of an interval at most as wide as its lower end down to `precision` of it.
    pub fn max_stages(&self) -> u32 {
        let doublings = (self.max_rate / self.min_rate).log2().ceil().max(0.0) as u32;
        let halvings = (1.0 / self.precision).log2().ceil().max(0.0) as u32;
        doublings + 1 + halvings + 1
    }
}

/// What a finished stage measured, as its target is judged on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageResult {
    /// The load offered: requests per second (open loop) or requests in flight (closed loop).
    pub offered: f64,
    pub requests: u64,
    pub failed: u64,
    /// p99 of the inference latency (from each request's intended start in an open loop), ms.
    pub p99_ms: f64,
    /// When the stage's batch finished, Unix milliseconds (0: unknown).
    pub finished_unix_ms: i64,
}

impl StageResult {
    /// The result of a stage's batch; `None` when it ran no inference.
    pub fn of(metrics: &BatchMetrics) -> Option<Self> {
        let inference = metrics.inference.as_ref()?;
        let setup = metrics.inference_setup.clone().unwrap_or_default();
        let offered = if setup.mode == LoadMode::ClosedLoop as i32 { f64::from(setup.concurrency) } else { setup.rate_per_second };
        let histogram = proto::latency::decode(&inference.latency_histogram).ok()?;
        let p99_ms = if histogram.is_empty() { f64::INFINITY } else { histogram.value_at_quantile(0.99) as f64 / 1000.0 };
        let offered = if setup.step_rate_per_second > 0.0 { setup.step_rate_per_second } else { offered };
        Some(Self { offered, requests: inference.requests, failed: inference.failed, p99_ms, finished_unix_ms: metrics.finished_unix_ns / 1_000_000 })
    }

    /// A stage whose batch failed outright (its platform was unusable): it met nothing.
    pub fn failed(offered: f64) -> Self {
        Self { offered, requests: 0, failed: 0, p99_ms: f64::INFINITY, finished_unix_ms: 0 }
    }

    /// Share of the stage's requests that failed (1 when it made none).
    pub fn error_share(&self) -> f64 {
        if self.requests == 0 { 1.0 } else { self.failed as f64 / self.requests as f64 }
    }
}

impl Target {
    /// True when the stage kept both the latency target and the error budget.
    pub fn met(&self, r: &StageResult) -> bool {
        r.requests > 0 && r.p99_ms <= self.p99_ms && r.error_share() <= self.max_error_share
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<LoadSweep, String> {
        LoadSweep::new(toml::from_str(text).map_err(|e| e.message().to_owned())?)
    }

    #[test]
    fn a_search_doubles_then_bisects_to_within_its_precision() {
        let s = Search { min_rate: 5.0, max_rate: 1000.0, precision: 0.05 };
        // Capacity 50: 5, 10, 20, 40 meet, 80 misses, then 60 (miss), 50 (met), 55 (miss), 52.5 (miss).
        let mut judged = Vec::new();
        let mut tried = Vec::new();
        while let SearchStep::Run(rate) = s.next(&judged) {
            tried.push(rate);
            judged.push((rate, rate <= 50.0));
        }
        assert_eq!(tried, [5.0, 10.0, 20.0, 40.0, 80.0, 60.0, 50.0, 55.0, 52.5]);
        assert_eq!(s.next(&judged), SearchStep::Done(Bracket { met: Some(50.0), missed: Some(52.5) }));
    }

    #[test]
    fn a_search_stops_at_its_bounds() {
        let s = Search { min_rate: 1.0, max_rate: 6.0, precision: 0.1 };
        assert_eq!(s.next(&[(1.0, false)]), SearchStep::Done(Bracket { met: None, missed: Some(1.0) }));
        let all = [(1.0, true), (2.0, true), (4.0, true), (6.0, true)];
        assert_eq!(s.next(&all[..3]), SearchStep::Run(6.0), "the last doubling is capped at max_rate");
        assert_eq!(s.next(&all), SearchStep::Done(Bracket { met: Some(6.0), missed: None }));
    }

    proptest! {
        /// Whatever the capacity, the search ends within max_stages, and its bracket holds the
        /// capacity within the precision.
        #[test]
        fn any_capacity_is_bracketed_within_the_stage_bound(capacity in 0.1f64..2000.0, min in 0.5f64..20.0, span in 2.0f64..500.0, precision in 0.01f64..0.5) {
            let s = Search { min_rate: min, max_rate: min * span, precision };
            let mut judged = Vec::new();
            let bracket = loop {
                match s.next(&judged) {
                    SearchStep::Run(rate) => judged.push((rate, rate <= capacity)),
                    SearchStep::Done(b) => break b,
                }
                prop_assert!(judged.len() as u32 <= s.max_stages(), "{} stages, bound {}", judged.len(), s.max_stages());
            };
            match (bracket.met, bracket.missed) {
                (Some(met), Some(missed)) => prop_assert!(met <= capacity && capacity < missed && missed - met <= precision * met),
                (Some(met), None) => prop_assert!(met == s.max_rate && capacity >= met),
                (None, Some(missed)) => prop_assert!(missed == s.min_rate && capacity < missed),
                (None, None) => prop_assert!(false, "no stage ran"),
            }
        }
    }

    #[test]
    fn a_stage_meets_its_target_on_latency_and_errors_both() {
        let t = Target { p99_ms: 500.0, max_error_share: 0.01 };
        let ok = StageResult { offered: 10.0, requests: 1000, failed: 10, p99_ms: 500.0, finished_unix_ms: 0 };
        assert!(t.met(&ok));
        assert!(!t.met(&StageResult { failed: 11, ..ok }));
        assert!(!t.met(&StageResult { p99_ms: 500.1, ..ok }));
        assert!(!t.met(&StageResult::failed(10.0)));
    }

    #[test]
    fn specs_are_read_and_mistakes_named() {
        let sweep = parse("rates = [5, 10, 20]\nmin_requests = 50\nmin_seconds = 3\nslo_p99_ms = 200").unwrap();
        assert_eq!(sweep.stages, Stages::Rates(vec![5.0, 10.0, 20.0]));
        assert_eq!((sweep.min_requests, sweep.min_seconds, sweep.max_stages()), (50, 3.0, 3));
        assert_eq!(sweep.target, Some(Target { p99_ms: 200.0, max_error_share: DEFAULT_MAX_ERROR_SHARE }));
        assert_eq!(sweep.next(&[]), Next::Run(StageLoad::Rate(5.0)));
        let steps = parse("steps = [{ from = 5, to = 50, at_seconds = 3 }]\nmin_seconds = 8\nidle_seconds = 2").unwrap();
        let step = StepLoad { from: 5.0, to: 50.0, at_seconds: 3.0 };
        assert_eq!((steps.stages.clone(), steps.idle_seconds), (Stages::Steps(vec![step]), 2.0));
        let job = StageLoad::Step(step).to_proto(&steps);
        assert_eq!((job.rate_per_second, job.step_rate_per_second, job.step_at_seconds, job.window_seconds), (5.0, 50.0, 3.0, DEFAULT_STEP_WINDOW_SECONDS));
        let stable = parse("rates = [10]\nmin_seconds = 2\nstability = { tolerance = 0.1, max_seconds = 30 }").unwrap();
        let job = StageLoad::Rate(10.0).to_proto(&stable);
        assert_eq!((job.stable_within, job.max_seconds, job.window_seconds), (0.1, 30.0, 0.0), "the worker's default window");
        let search = parse("search = { slo_p99_ms = 500, min_rate = 1, max_rate = 64 }").unwrap();
        assert_eq!(search.max_stages(), 6 + 1 + 5 + 1);
        assert_eq!(search.target.unwrap().p99_ms, 500.0);
        for (text, expected) in [
            ("rates = [1]\nconcurrencies = [1]", "exactly one"),
            ("", "exactly one"),
            ("rates = []", "at least one stage"),
            ("rates = [0]", "at least one stage"),
            ("concurrencies = [0]", "between 1 and 1024"),
            ("search = { slo_p99_ms = 5, min_rate = 10, max_rate = 5 }", "min_rate < max_rate"),
            ("search = { slo_p99_ms = 5, min_rate = 1, max_rate = 5, precision = 1 }", "precision"),
            ("search = { slo_p99_ms = -1, min_rate = 1, max_rate = 5 }", "slo_p99_ms"),
            ("search = { min_rate = 1, max_rate = 5 }", "slo_p99_ms"),
            ("rates = [1]\nmax_error_share = 0.1", "needs slo_p99_ms"),
            ("rates = [1]\nmin_seconds = -1", "min_seconds"),
            ("rate = [1]", "unknown field"),
            ("steps = [{ from = 5, to = 50, at_seconds = 0 }]", "steps must list"),
            ("steps = [{ from = 5, to = 50 }]", "missing field"),
            ("rates = [1]\nwindow_seconds = 0", "window_seconds"),
            ("rates = [1]\nidle_seconds = -1", "idle_seconds"),
            ("rates = [1]\nstability = { tolerance = 1.5, max_seconds = 60 }", "tolerance"),
            ("rates = [1]\nmin_seconds = 30\nstability = { tolerance = 0.1, max_seconds = 20 }", "max_seconds"),
            ("steps = [{ from = 5, to = 50, at_seconds = 3 }]\nstability = { tolerance = 0.1, max_seconds = 60 }", "steady stages"),
            ("search = { slo_p99_ms = 5, min_rate = 1, max_rate = 5, step = 2 }", "unknown field"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?} gave {err:?}");
        }
    }
}
