//! Self-checks of a report, after MLPerf LoadGen's VALID / INVALID: per platform, whether the client
//! kept its schedule and had CPU to spare, whether the latencies add up to the phase times (Little's
//! law), and whether clocks, warm-up, sample size, models, errors and clamped latencies leave the
//! figures meaningful. A platform is INVALID when a check fails; a warning says what to look at.
//!
//! Pure: batches in, checks out. Every bound is a named constant with the reason for its value.

use std::collections::{BTreeMap, BTreeSet};

use super::service::phases;
use super::content::short;
use super::model::{Check, Comparison, MetricSection, PlatformValidity, ScalingRow, Status, Threshold, Verdict};
use crate::batch::{Batch, Latencies};
use crate::rows::BatchRow;
use crate::stats;

/// One batch as the checks read it: its metrics (for the histograms) and its derived row.
pub type Checked<'a> = (&'a Batch, &'a BatchRow);

/// p99 start lag an open-loop client may fall behind its schedule, in ms: remote endpoints answer in
/// tens of milliseconds at best, so a lag under 10 ms moves their latencies by less than their own
/// spread, while a larger one means the client's scheduling, not the endpoint, shaped the tail.
pub const START_LAG_MS: f64 = 10.0;
/// ... or this share of the interval between requests, when larger: at a low rate, requests lie far
/// apart, and a lag of a tenth of the gap still offers the arrival process that was asked for.
pub const START_LAG_INTERVAL_SHARE: f64 = 0.1;
/// Share of the target rate an open-loop phase must achieve: 10% less load is another point on the
/// latency–load curve than the one reported; a tighter bound would flag sound short batches, whose
/// phase also waits for the last answers after the schedule ends.
pub const RATE_SHARE: f64 = 0.9;
/// Busy share of the worker's CPUs from which the client, not the platform, is measured: at
/// utilisation ρ a queue's wait grows as ρ / (1 − ρ), already 5.7 service times at 0.85.
pub const CPU_SHARE: f64 = 0.85;
/// Least mean requests in flight of a phase made of nothing but requests, and the least share of a
/// closed loop's concurrency: the gaps between requests (reading the next file, ramp-up and the
/// last stragglers) cost some, but not half; a histogram off by 10× or more is far below.
pub const IN_FLIGHT_FLOOR: f64 = 0.5;
/// Slack over a closed loop's concurrency c, as c × this + [`IN_FLIGHT_SLACK`]: no more than c
/// requests can be in flight; the slack covers the histogram's 0.1% precision and timer granularity.
pub const IN_FLIGHT_MARGIN: f64 = 1.05;
/// See [`IN_FLIGHT_MARGIN`].
pub const IN_FLIGHT_SLACK: f64 = 0.05;
/// Share and milliseconds by which a request may outlast its phase: the histogram reports values up
/// to 0.1% high, and the phase and request clocks are read at different instants.
pub const OUTLAST_SHARE: f64 = 0.01;
/// See [`OUTLAST_SHARE`].
pub const OUTLAST_MS: f64 = 1.0;
/// Spread of worker clock offsets below which no warning is worth giving, in ms: NTP on a cloud VM
/// keeps clocks within a few milliseconds, and no wall time this benchmark compares is that short.
pub const SKEW_MS: f64 = 5.0;
/// ... or this share of the shortest time compared across workers (a scaling stage, else a batch),
/// when larger: a skew under 1% of it moves a throughput by under 1%.
pub const SKEW_SHARE: f64 = 0.01;
/// Batches at the start of a platform tested for warm-up: cold caches, connection set-up and model
/// loading fall in the first one or two.
pub const WARM_UP_BATCHES: usize = 3;
/// Robust z-score above which an early batch is an outlier: 3 scaled MADs, the "very conservative"
/// choice of Leys et al., "Detecting outliers", *J. Exp. Soc. Psychol.* 49(4), 2013.
pub const WARM_UP_Z: f64 = 3.0;
/// Makes the MAD a consistent estimator of the standard deviation of normal data (1 / Φ⁻¹(3/4)).
pub const MAD_SCALE: f64 = 1.4826;
/// Least scale of the robust z-score, as a share of the median: steady batches can tie (MAD 0),
/// and then any difference at all would be an "outlier".
pub const MAD_FLOOR_SHARE: f64 = 0.01;
/// Batches below which a comparison means little: the bootstrap interval of a median rests on a
/// handful of distinct values, and rank tests have few attainable p-values.
pub const FEW_BATCHES: usize = 10;
/// Batches below which a median and a spread say nothing.
pub const TOO_FEW_BATCHES: usize = 3;
/// Failed-request share (%) above which latencies describe a degraded service: more than any cloud
/// SLA's allowance (99% or better).
pub const ERROR_WARN_PERCENT: f64 = 1.0;
/// Failed-request share (%) above which the requests that succeeded are a biased sample.
pub const ERROR_FAIL_PERCENT: f64 = 10.0;

const fn bound(comparison: Comparison, value: f64, breach: Status) -> Threshold {
    Threshold { comparison, value, breach }
}

/// The first of `bounds` (strictest breach first) that `figure` breaks, or pass against the last.
fn decide(figure: f64, bounds: &[Threshold]) -> (Status, Threshold) {
    bounds.iter().find(|t| !t.holds(figure)).map_or((Status::Pass, bounds[bounds.len() - 1]), |t| (t.breach, *t))
}

fn check(id: &'static str, title: &'static str, status: Status, figure: f64, unit: &'static str, threshold: Threshold, detail: String) -> Check {
    Check { id, title, status, figure: Some(figure), unit, threshold: Some(threshold), detail }
}

fn not_applicable(id: &'static str, title: &'static str, unit: &'static str, reason: impl Into<String>) -> Check {
    Check { id, title, status: Status::NotApplicable, figure: None, unit, threshold: None, detail: reason.into() }
}

/// Runs every check on each of `platforms` over `batches` (any order). `sections` give the change
/// points the warm-up check reads; `scaling`, the stages the clock-skew bound is measured against.
pub fn evaluate(batches: &[Checked<'_>], platforms: &[String], sections: &[MetricSection], scaling: &[ScalingRow]) -> Vec<PlatformValidity> {
    let skew = clock_skew(batches, scaling);
    let mut hashes: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (m, r) in batches.iter().filter(|(m, _)| m.inference.is_some()) {
        let set = hashes.entry(m.platform.as_str()).or_default();
        if !r.model_hash.is_empty() {
            set.insert(r.model_hash.as_str());
        }
    }
    platforms
        .iter()
        .map(|platform| {
            let mut mine: Vec<Checked<'_>> = batches.iter().filter(|(m, _)| &m.platform == platform).copied().collect();
            mine.sort_by_key(|(m, _)| (m.started_unix_ns, m.round, m.batch_index));
            let early_changes: BTreeSet<usize> = sections
                .iter()
                .flat_map(|s| s.platforms.iter().filter(|p| &p.platform == platform))
                .flat_map(|p| p.change_points.iter().map(|c| c.index))
                .filter(|i| *i < WARM_UP_BATCHES)
                .collect();
            let mut checks: Vec<Check> = open_loop(&mine).into();
            checks.push(client_cpu(&mine));
            checks.push(latency_consistency(&mine));
            checks.push(skew.clone());
            checks.push(warm_up(&mine, &early_changes));
            checks.push(sample_size(mine.len()));
            checks.push(model_hash(platform, &hashes));
            checks.push(error_share(&mine));
            checks.push(clamped(&mine));
            let verdict = if checks.iter().any(|c| c.status == Status::Fail) { Verdict::Invalid } else { Verdict::Valid };
            PlatformValidity { platform: platform.clone(), verdict, checks }
        })
        .collect()
}

/// The failed checks as (platform, check id), platforms in order.
pub fn failures(validity: &[PlatformValidity]) -> Vec<(&str, &'static str)> {
    validity.iter().flat_map(|p| p.checks.iter().filter(|c| c.status == Status::Fail).map(|c| (p.platform.as_str(), c.id))).collect()
}

/// The line `analyzer report` prints when a check failed: `report: run RUN is INVALID: aws clamped, ...`.
pub fn invalid_line(run_id: &str, validity: &[PlatformValidity]) -> Option<String> {
    let failed = failures(validity);
    (!failed.is_empty()).then(|| {
        let list: Vec<String> = failed.iter().map(|(p, id)| format!("{p} {id}")).collect();
        format!("report: run {run_id} is INVALID: {}", list.join(", "))
    })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    stats::quantile(&sorted, 0.5).unwrap_or(f64::NAN)
}

fn wall_seconds(m: &Batch) -> f64 {
    (m.finished_unix_ns - m.started_unix_ns) as f64 / 1e9
}

const SCHEDULE: (&str, &str) = ("open_loop_schedule", "Open-loop requests start on schedule");
const RATE: (&str, &str) = ("open_loop_rate", "Open-loop rate achieved");

/// The schedule and rate of the platform's open-loop inference phases.
fn open_loop(mine: &[Checked<'_>]) -> [Check; 2] {
    let open: Vec<&Checked<'_>> = mine.iter().filter(|(m, r)| r.inference_mode == "open" && m.inference.is_some()).collect();
    if open.is_empty() {
        let why = "No open-loop batches: a closed loop starts a request when one ends, so it has no schedule to keep.";
        return [not_applicable(SCHEDULE.0, SCHEDULE.1, "ms", why), not_applicable(RATE.0, RATE.1, "req/s", why)];
    }
    let lags = Latencies::merge(open.iter().filter_map(|(m, _)| m.inference.as_ref()?.start_lag.as_ref()));
    let (mut requests, mut seconds, mut planned) = (0u64, 0.0, 0.0);
    for (m, r) in &open {
        let phase = m.inference.as_ref().expect("open-loop batches have an inference phase");
        let s = phase.duration_ns as f64 / 1e9;
        requests += phase.requests;
        seconds += s;
        planned += r.inference_load.unwrap_or(0.0) * s;
    }
    // Several rates (load stages) are held to the shortest interval, the strictest bound.
    let top_rate = open.iter().filter_map(|(_, r)| r.inference_load).filter(|r| *r > 0.0).fold(0.0, f64::max);
    let schedule = if let Some(lags) = lags {
        let p99 = lags.value_at_quantile(0.99) as f64 / 1000.0;
        let interval = if top_rate > 0.0 { 1000.0 / top_rate } else { 0.0 };
        let (status, t) = decide(p99, &[bound(Comparison::AtMost, START_LAG_MS.max(START_LAG_INTERVAL_SHARE * interval), Status::Fail)]);
        let verdict = if status == Status::Fail { "; the client could not keep its schedule, so the latencies measure the client" } else { "" };
        let detail = format!(
            "99% of {} open-loop requests started within {} ms of their intended time (bound: the larger of {START_LAG_MS} ms and 10% of the {} ms between requests at {} req/s){verdict}.",
            lags.len(),
            short(p99),
            short(interval),
            short(top_rate)
        );
        check(SCHEDULE.0, SCHEDULE.1, status, p99, "ms", t, detail)
    } else {
        not_applicable(SCHEDULE.0, SCHEDULE.1, "ms", "The open-loop batches recorded no start lags.")
    };
    let rate = if seconds > 0.0 && planned > 0.0 {
        let (achieved, target) = (requests as f64 / seconds, planned / seconds);
        let (status, t) = decide(achieved, &[bound(Comparison::AtLeast, RATE_SHARE * target, Status::Warn)]);
        let verdict = if status == Status::Warn { "; the load offered was lower than the load reported" } else { "" };
        let detail = format!("{} requests per second achieved against {} planned ({}%){verdict}.", short(achieved), short(target), short(100.0 * achieved / target));
        check(RATE.0, RATE.1, status, achieved, "req/s", t, detail)
    } else {
        not_applicable(RATE.0, RATE.1, "req/s", "The open-loop batches recorded no rate or no phase time.")
    };
    [schedule, rate]
}

fn client_cpu(mine: &[Checked<'_>]) -> Check {
    const ID: (&str, &str) = ("client_cpu", "Client CPU below saturation");
    let Some((share, m, r)) = mine.iter().filter_map(|(m, r)| Some((r.client_cpu_share?, m, r))).max_by(|a, b| a.0.total_cmp(&b.0)) else {
        return not_applicable(ID.0, ID.1, "%", "No batch reported the worker's CPU time.");
    };
    let (status, t) = decide(100.0 * share, &[bound(Comparison::Below, 100.0 * CPU_SHARE, Status::Warn)]);
    let verdict = if status == Status::Warn { ": the client, not the platform, may have been measured" } else { "" };
    let detail = format!("The busiest phase, in batch {}, kept {}% of its worker's {} CPUs busy{verdict}.", m.job_key, short(100.0 * share), r.cpus);
    check(ID.0, ID.1, status, 100.0 * share, "%", t, detail)
}

/// A bound of one batch phase on its mean requests in flight or its longest request.
struct Finding {
    /// Figure over bound (or bound over figure): above 1, the bound is broken; the worst is shown.
    severity: f64,
    figure: f64,
    unit: &'static str,
    threshold: Threshold,
    /// What was measured, and why breaking the bound is impossible.
    what: String,
    why: String,
}

/// Every bound of one batch's timed phases, by Little's law (L = λW: mean requests in flight is
/// the sum of latencies over the phase's wall time) and by the phase's length.
fn findings(m: &Batch, r: &BatchRow) -> Vec<(Finding, &'static str)> {
    let mut out = Vec::new();
    for (name, phase) in phases(m) {
        let Some(p) = phase.filter(|p| p.requests > 0 && p.duration_ns > 0 && !p.latency.is_empty()) else { continue };
        let h = p.latency.histogram();
        let wall = p.duration_ns as f64 / 1e9;
        let longest = h.max() as f64 / 1e6;
        let limit = wall * (1.0 + OUTLAST_SHARE) + OUTLAST_MS / 1000.0;
        let what = format!("its longest request took {} s in a phase of {} s", short(longest), short(wall));
        let t = bound(Comparison::AtMost, limit, Status::Fail);
        out.push((Finding { severity: longest / limit, figure: longest, unit: "s", threshold: t, what, why: "longer than the phase itself".into() }, name));
        let in_flight = h.mean() / 1e6 * p.requests as f64 / wall;
        let what = format!("{} requests in flight on average ({} ms mean latency × {} requests / {} s)", short(in_flight), short(h.mean() / 1e3), p.requests, short(wall));
        let c = r.inference_load.unwrap_or(0.0);
        let (lo, hi, why) = match name {
            "upload" | "download" => (IN_FLIGHT_FLOOR, None, "a phase that is nothing but requests".to_owned()),
            _ if r.inference_mode == "closed" && c > 0.0 => {
                (IN_FLIGHT_FLOOR * c.min(p.requests as f64), Some(IN_FLIGHT_MARGIN * c + IN_FLIGHT_SLACK), format!("a closed loop of {c} requests in flight"))
            }
            // An open loop's requests in flight depend on the endpoint; only the phase length bounds it.
            _ => continue,
        };
        let t = bound(Comparison::AtLeast, lo, Status::Fail);
        out.push((Finding { severity: lo / in_flight, figure: in_flight, unit: "requests in flight", threshold: t, what: what.clone(), why: format!("too few for {why}") }, name));
        if let Some(hi) = hi {
            let t = bound(Comparison::AtMost, hi, Status::Fail);
            out.push((Finding { severity: in_flight / hi, figure: in_flight, unit: "requests in flight", threshold: t, what, why: format!("more than {why} allows") }, name));
        }
    }
    out
}

fn latency_consistency(mine: &[Checked<'_>]) -> Check {
    const ID: (&str, &str) = ("latency_consistency", "Latencies add up to the phase times (Little's law)");
    let worst = mine
        .iter()
        .flat_map(|(m, r)| findings(m, r).into_iter().map(move |(f, phase)| (f, phase, m.job_key.as_str())))
        .max_by(|a, b| a.0.severity.total_cmp(&b.0.severity));
    let Some((f, phase, key)) = worst else {
        return not_applicable(ID.0, ID.1, "requests in flight", "No timed phase recorded request latencies.");
    };
    let (status, t) = decide(f.figure, &[f.threshold]);
    let detail = if status == Status::Pass {
        format!("Every phase's latencies fit its wall time; closest to a bound: batch {key} {phase}, {}.", f.what)
    } else {
        format!("Batch {key} {phase}: {}, {}; the latency histogram or the phase clock is wrong.", f.what, f.why)
    };
    check(ID.0, ID.1, status, f.figure, f.unit, t, detail)
}

/// One figure over all platforms: clock offsets are a property of the run's workers.
fn clock_skew(batches: &[Checked<'_>], scaling: &[ScalingRow]) -> Check {
    const ID: (&str, &str) = ("clock_skew", "Worker clocks agree");
    let offsets: Vec<f64> = batches.iter().filter_map(|(_, r)| r.clock_offset_ms).filter(|o| o.is_finite()).collect();
    if offsets.is_empty() {
        return not_applicable(ID.0, ID.1, "ms", "No worker reported its clock offset against the run store.");
    }
    let (lo, hi) = offsets.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), o| (lo.min(*o), hi.max(*o)));
    let stage = scaling.iter().map(|s| s.wall_seconds).filter(|s| s.is_finite() && *s > 0.0).reduce(f64::min);
    let (basis, seconds) = match stage {
        Some(s) => ("the shortest scaling stage", s),
        None => ("the median batch", median(&batches.iter().map(|(m, _)| wall_seconds(m)).collect::<Vec<_>>())),
    };
    let limit = SKEW_MS.max(SKEW_SHARE * seconds * 1000.0);
    let (status, t) = decide(hi - lo, &[bound(Comparison::AtMost, limit, Status::Warn)]);
    let verdict = if status == Status::Warn { "; times compared across workers are uncertain by that much" } else { "" };
    let detail = format!(
        "Worker clocks differ from the run store's by {} to {} ms, a spread of {} ms (bound: the larger of {SKEW_MS} ms and 1% of {basis}'s {} s){verdict}.",
        short(lo),
        short(hi),
        short(hi - lo),
        short(seconds)
    );
    check(ID.0, ID.1, status, hi - lo, "ms", t, detail)
}

/// The first batches' wall times against the rest (median ± 3 scaled MADs), and early change points.
fn warm_up(mine: &[Checked<'_>], early_changes: &BTreeSet<usize>) -> Check {
    const ID: (&str, &str) = ("warm_up", "No warm-up in the first batches");
    let walls: Vec<f64> = mine.iter().map(|(m, _)| wall_seconds(m)).collect();
    if walls.len() < 2 * WARM_UP_BATCHES {
        let reason = format!("{} batches: it takes {WARM_UP_BATCHES} to test and {WARM_UP_BATCHES} more to compare them with.", walls.len());
        return not_applicable(ID.0, ID.1, "robust z", reason);
    }
    let (head, rest) = walls.split_at(WARM_UP_BATCHES);
    let centre = median(rest);
    let mad = median(&rest.iter().map(|w| (w - centre).abs()).collect::<Vec<_>>());
    let scale = (MAD_SCALE * mad).max(MAD_FLOOR_SHARE * centre.abs());
    let z = |w: f64| if w == centre { 0.0 } else { (w - centre).abs() / scale };
    let (worst, worst_z) = head.iter().enumerate().map(|(i, w)| (i, z(*w))).fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
    let (status, t) = decide(worst_z, &[bound(Comparison::AtMost, WARM_UP_Z, Status::Warn)]);
    // Batches to leave out: past the last outlier among the first ones, and past an early change point.
    let last_outlier = head.iter().rposition(|w| z(*w) > WARM_UP_Z).map_or(0, |i| i + 1);
    let exclude = last_outlier.max(early_changes.iter().max().copied().unwrap_or(0));
    let changes = if early_changes.is_empty() {
        String::new()
    } else {
        format!("; the metrics change regime at batch {}", early_changes.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))
    };
    let status = if early_changes.is_empty() { status } else { Status::Warn };
    let detail = if status == Status::Pass {
        let firsts: Vec<String> = head.iter().map(|w| short(*w)).collect();
        format!("The first {WARM_UP_BATCHES} batches took {} s against a median of {} s for the other {}.", firsts.join(", "), short(centre), rest.len())
    } else {
        format!(
            "Batch {} in time order ({}) took {} s against a median of {} s for the rest{changes}; leave warm-up out with --exclude-warmup {exclude}.",
            worst + 1,
            mine[worst].0.job_key,
            short(head[worst]),
            short(centre)
        )
    };
    check(ID.0, ID.1, status, worst_z, "robust z", t, detail)
}

fn sample_size(n: usize) -> Check {
    const ID: (&str, &str) = ("sample_size", "Enough batches");
    let bounds = [bound(Comparison::AtLeast, TOO_FEW_BATCHES as f64, Status::Fail), bound(Comparison::AtLeast, FEW_BATCHES as f64, Status::Warn)];
    let (status, t) = decide(n as f64, &bounds);
    let detail = match status {
        Status::Fail => format!("{n} batches: a median and a spread of fewer than {TOO_FEW_BATCHES} say nothing."),
        Status::Warn => format!("{n} batches: a test on fewer than {FEW_BATCHES} batches means little."),
        _ => format!("{n} batches."),
    };
    check(ID.0, ID.1, status, n as f64, "batches", t, detail)
}

/// Mixed models within a platform fail it; different models across platforms warn every one.
fn model_hash(platform: &str, hashes: &BTreeMap<&str, BTreeSet<&str>>) -> Check {
    const ID: (&str, &str) = ("model_hash", "One model served");
    let Some(mine) = hashes.get(platform) else {
        return not_applicable(ID.0, ID.1, "", "Storage only: no model was served.");
    };
    if mine.is_empty() {
        return not_applicable(ID.0, ID.1, "", "The workers recorded no model hash.");
    }
    let list = |set: &BTreeSet<&str>| set.iter().copied().collect::<Vec<_>>().join(", ");
    if mine.len() > 1 {
        let detail = format!("The platform answered with {} models ({}): its batches measured different models.", mine.len(), list(mine));
        return check(ID.0, ID.1, Status::Fail, mine.len() as f64, "", bound(Comparison::AtMost, 1.0, Status::Fail), detail);
    }
    let all: BTreeSet<&str> = hashes.values().flatten().copied().collect();
    let (status, t) = decide(all.len() as f64, &[bound(Comparison::AtMost, 1.0, Status::Warn)]);
    let detail = if status == Status::Pass {
        format!("Every inference batch ran model {}.", list(mine))
    } else {
        let each: Vec<String> = hashes.iter().filter(|(_, s)| !s.is_empty()).map(|(p, s)| format!("{p}: {}", list(s))).collect();
        format!("The platforms served different models ({}).", each.join("; "))
    };
    check(ID.0, ID.1, status, all.len() as f64, "", t, detail)
}

/// Over the platform's phases (upload, download, inference), as in the availability table.
fn error_share(mine: &[Checked<'_>]) -> Check {
    const ID: (&str, &str) = ("error_share", "Few failed requests");
    let (requests, failed) = mine.iter().flat_map(|(m, _)| phases(m)).filter_map(|(_, p)| p).fold((0, 0), |(n, f), p| (n + p.requests, f + p.failed));
    if requests == 0 {
        return not_applicable(ID.0, ID.1, "%", "No requests were recorded.");
    }
    let percent = 100.0 * failed as f64 / requests as f64;
    let bounds = [bound(Comparison::AtMost, ERROR_FAIL_PERCENT, Status::Fail), bound(Comparison::AtMost, ERROR_WARN_PERCENT, Status::Warn)];
    let (status, t) = decide(percent, &bounds);
    let verdict = match status {
        Status::Fail => ": the requests that succeeded are a biased sample",
        Status::Warn => ": the latencies describe a degraded service",
        _ => "",
    };
    check(ID.0, ID.1, status, percent, "%", t, format!("{failed} of {requests} requests failed{verdict}."))
}

fn clamped(mine: &[Checked<'_>]) -> Check {
    const ID: (&str, &str) = ("clamped", "No latency above the histograms' limit");
    let n: u64 = mine.iter().map(|(_, r)| r.latency_clamped).sum();
    let (status, t) = decide(n as f64, &[bound(Comparison::AtMost, 0.0, Status::Fail)]);
    let detail = match n {
        0 => "No latency exceeded the histograms' one-hour limit.".to_owned(),
        1 => "1 latency above one hour was recorded at one hour.".to_owned(),
        _ => format!("{n} latencies above one hour were recorded at one hour."),
    };
    check(ID.0, ID.1, status, n as f64, "", t, detail)
}

#[cfg(test)]
#[path = "validity_tests.rs"]
mod tests;
