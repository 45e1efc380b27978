//! The Capacity section: per platform and offered load, what was achieved and how fast; the highest
//! load that kept the latency target and the error budget, with the two stages that bracket it;
//! goodput; and what that capacity costs, from the price catalog (pure).
//!
//! A stage is every batch of a platform at one offered load (an open-loop rate or a closed-loop
//! concurrency); stages are judged against the target by the same rule the coordinator's search
//! uses (`control::sweep::Target::met`), on the merged latency of the stage's requests (from each
//! request's intended start in an open loop).

use std::collections::BTreeMap;

use control::sweep::{StageResult, Target};
use serde::Serialize;

use super::config::Catalog;
use crate::batch::{Batch, Latencies, Mode};

/// One platform at one offered load.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityStage {
    pub platform: String,
    /// "open" (requests/s) or "closed" (requests in flight).
    pub mode: &'static str,
    pub offered: f64,
    pub batches: usize,
    pub requests: u64,
    pub failed: u64,
    /// Requests per second over the stage's inference time.
    pub achieved_rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The server's own time (queue and model) and the rest (network and client), when the endpoint
    /// reports its time; `None` otherwise.
    pub server_p50_ms: Option<f64>,
    pub server_p99_ms: Option<f64>,
    pub outside_p50_ms: Option<f64>,
    pub outside_p99_ms: Option<f64>,
    /// Requests answered without error within the target latency, per second.
    pub goodput_rps: Option<f64>,
    /// Whether the stage kept the target; `None` without a target.
    pub met: Option<bool>,
    /// From the phase's start to the first successful answer (its first batch): after an idle gap,
    /// the cold start.
    pub first_success_ms: Option<f64>,
}

/// A step stage: how the latency went through the step, window by window.
#[derive(Debug, Clone, Serialize)]
pub struct StepRow {
    pub platform: String,
    pub round: u32,
    pub from_rps: f64,
    pub to_rps: f64,
    /// When the rate stepped, seconds from the phase's start.
    pub at_seconds: f64,
    pub windows: Vec<WindowRow>,
    /// From the step to the end of the last window that missed the target: the time the platform
    /// took to be back under it for good (0: it never left; `None`: not back by the stage's end, or
    /// no target).
    pub recovery_seconds: Option<f64>,
    pub first_success_ms: Option<f64>,
}

/// One window of a step stage.
#[derive(Debug, Clone, Serialize)]
pub struct WindowRow {
    /// Window start and width, seconds from the phase's start (by each request's intended start).
    pub start_seconds: f64,
    pub width_seconds: f64,
    pub requests: u64,
    pub failed: u64,
    pub p99_ms: f64,
    pub met: Option<bool>,
}

/// One platform's capacity under the target.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityRow {
    pub platform: String,
    pub mode: &'static str,
    /// The highest offered load that met the target below the lowest that missed it, and that miss.
    pub met_load: Option<f64>,
    pub missed_load: Option<f64>,
    /// Requests per second achieved at `met_load`: the highest sustainable rate.
    pub sustainable_rps: Option<f64>,
    pub goodput_rps: Option<f64>,
    /// Catalog price range, per hour, and what 1,000 images cost at the sustainable rate.
    pub usd_per_hour: Option<(f64, f64)>,
    pub usd_per_1000_images: Option<(f64, f64)>,
    /// Sustainable requests per second per USD per hour (price range midpoint).
    pub rps_per_usd_hour: Option<f64>,
    /// Instances needed for `Capacity::target_load` at the sustainable rate (each priced instance
    /// as measured).
    pub instances_for_target_load: Option<u64>,
}

/// The section.
#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    pub target_p99_ms: Option<f64>,
    pub max_error_share: Option<f64>,
    /// Requests per second the instance counts are for (`--target-load`).
    pub target_load: Option<f64>,
    pub stages: Vec<CapacityStage>,
    pub platforms: Vec<CapacityRow>,
    /// Step stages, each with its windows and recovery time.
    pub steps: Vec<StepRow>,
    /// The platform with the most sustainable rate per dollar, when the stages tell them apart.
    pub most_per_dollar: Option<String>,
    /// How `most_per_dollar` was decided, in one sentence.
    pub basis: String,
}

fn mode_of(m: &Batch) -> Option<(&'static str, f64)> {
    let load = m.load.as_ref()?;
    if load.step_rate_per_second > 0.0 {
        return Some(("step", load.step_rate_per_second));
    }
    match load.mode? {
        Mode::Open => Some(("open", load.rate_per_second)),
        Mode::Closed => Some(("closed", f64::from(load.concurrency))),
    }
}

fn ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// True when the metrics hold more than one load on some platform: a sweep, or runs at several loads.
pub fn swept(metrics: &[&Batch]) -> bool {
    let mut loads: BTreeMap<&str, Vec<(&str, f64)>> = BTreeMap::new();
    for m in metrics {
        if let Some(load) = mode_of(m) {
            let seen = loads.entry(m.platform.as_str()).or_default();
            if !seen.contains(&load) {
                seen.push(load);
            }
        }
    }
    loads.values().any(|l| l.len() > 1 || l.iter().any(|(mode, _)| *mode == "step"))
}

/// Builds the section; `target` judges the stages, `target_load` sizes the instance counts.
pub fn capacity(metrics: &[&Batch], catalog: &Catalog, target: Option<Target>, target_load: Option<f64>) -> Capacity {
    let mut groups: BTreeMap<(String, &'static str, u64), Vec<&Batch>> = BTreeMap::new();
    let mut steps = Vec::new();
    for m in metrics.iter().filter(|m| m.inference.is_some()) {
        match mode_of(m) {
            Some(("step", _)) => steps.extend(step_row(m, target)),
            Some((mode, offered)) => groups.entry((m.platform.clone(), mode, offered.to_bits())).or_default().push(m),
            None => {}
        }
    }
    steps.sort_by(|a, b| (&a.platform, a.round).cmp(&(&b.platform, b.round)));
    let mut stages: Vec<CapacityStage> = groups
        .into_iter()
        .filter_map(|((platform, mode, bits), batches)| {
            let phases: Vec<_> = batches.iter().filter_map(|m| m.inference.as_ref()).collect();
            let latency = Latencies::merge(phases.iter().map(|p| &p.latency))?;
            let server = Latencies::merge(phases.iter().map(|p| &p.server));
            let outside = Latencies::merge(phases.iter().map(|p| &p.outside));
            let requests: u64 = phases.iter().map(|p| p.requests).sum();
            let failed: u64 = phases.iter().map(|p| p.failed).sum();
            let seconds: f64 = phases.iter().map(|p| p.duration_ns as f64 / 1e9).sum();
            let offered = f64::from_bits(bits);
            let result = StageResult { offered, requests, failed, p99_ms: ms(&latency, 0.99), finished_unix_ms: 0 };
            let first = batches.iter().min_by_key(|m| m.started_unix_ns).and_then(|m| m.inference.as_ref());
            let goodput_rps = target.filter(|_| seconds > 0.0).map(|t| {
                let within = latency.count_between(0, (t.p99_ms * 1000.0) as u64);
                within.min(requests.saturating_sub(failed)) as f64 / seconds
            });
            Some(CapacityStage {
                platform,
                mode,
                offered,
                batches: batches.len(),
                requests,
                failed,
                achieved_rps: if seconds > 0.0 { requests as f64 / seconds } else { f64::NAN },
                p50_ms: ms(&latency, 0.5),
                p99_ms: result.p99_ms,
                server_p50_ms: server.as_ref().map(|h| ms(h, 0.5)),
                server_p99_ms: server.as_ref().map(|h| ms(h, 0.99)),
                outside_p50_ms: outside.as_ref().map(|h| ms(h, 0.5)),
                outside_p99_ms: outside.as_ref().map(|h| ms(h, 0.99)),
                goodput_rps,
                met: target.map(|t| t.met(&result)),
                first_success_ms: first.filter(|p| p.first_success_ns > 0).map(|p| p.first_success_ns as f64 / 1e6),
            })
        })
        .collect();
    stages.sort_by(|a, b| (&a.platform, a.mode, a.offered).partial_cmp(&(&b.platform, b.mode, b.offered)).expect("offered loads are finite"));

    let mut platforms = Vec::new();
    let mut names: Vec<(&str, &'static str)> = stages.iter().map(|s| (s.platform.as_str(), s.mode)).collect();
    names.dedup();
    for (platform, mode) in names {
        let mine: Vec<&CapacityStage> = stages.iter().filter(|s| s.platform == platform && s.mode == mode).collect();
        let judged: Vec<(f64, bool)> = mine.iter().filter_map(|s| Some((s.offered, s.met?))).collect();
        let bracket = control::sweep::bracket(&judged);
        let best = bracket.met.and_then(|load| mine.iter().find(|s| s.offered == load));
        let sustainable_rps = best.map(|s| s.achieved_rps).filter(|r| r.is_finite() && *r > 0.0);
        let usd_per_hour = catalog.platform.get(platform).map(|e| e.usd_per_hour());
        let per_1000 = |usd_h: f64, rps: f64| usd_h / (rps * 3600.0) * 1000.0;
        platforms.push(CapacityRow {
            platform: platform.to_owned(),
            mode,
            met_load: bracket.met,
            missed_load: bracket.missed,
            sustainable_rps,
            goodput_rps: best.and_then(|s| s.goodput_rps),
            usd_per_hour,
            usd_per_1000_images: usd_per_hour.zip(sustainable_rps).map(|((lo, hi), rps)| (per_1000(lo, rps), per_1000(hi, rps))),
            rps_per_usd_hour: usd_per_hour.zip(sustainable_rps).map(|((lo, hi), rps)| rps / ((lo + hi) / 2.0)).filter(|v| v.is_finite()),
            instances_for_target_load: target_load.zip(sustainable_rps).map(|(load, rps)| (load / rps).ceil() as u64),
        });
    }
    let (most_per_dollar, basis) = most_per_dollar(&platforms, &stages);
    Capacity {
        target_p99_ms: target.map(|t| t.p99_ms),
        max_error_share: target.map(|t| t.max_error_share),
        target_load,
        stages,
        platforms,
        steps,
        most_per_dollar,
        basis,
    }
}

/// The windows of a step stage's batch and the time it took to be back under the target.
fn step_row(m: &Batch, target: Option<Target>) -> Option<StepRow> {
    let setup = m.load.as_ref()?;
    let inference = m.inference.as_ref()?;
    let windows: Vec<WindowRow> = inference
        .windows
        .iter()
        .map(|w| {
            let h = (!w.latency.is_empty()).then(|| w.latency.histogram());
            let p99_ms = h.as_ref().map_or(f64::NAN, |h| ms(h, 0.99));
            let result = StageResult { offered: 0.0, requests: w.requests, failed: w.failed, p99_ms, finished_unix_ms: 0 };
            WindowRow { start_seconds: w.start_ns as f64 / 1e9, width_seconds: w.width_ns as f64 / 1e9, requests: w.requests, failed: w.failed, p99_ms, met: target.map(|t| t.met(&result)) }
        })
        .collect();
    let at = setup.step_at_seconds;
    let after: Vec<&WindowRow> = windows.iter().filter(|w| w.start_seconds + w.width_seconds > at).collect();
    let recovery_seconds = match (target, after.iter().rposition(|w| w.met == Some(false))) {
        (None, _) => None,
        (Some(_), None) => Some(0.0),
        (Some(_), Some(last)) if last + 1 == after.len() => None,
        (Some(_), Some(last)) => Some((after[last].start_seconds + after[last].width_seconds - at).max(0.0)),
    };
    Some(StepRow {
        platform: m.platform.clone(),
        round: m.round,
        from_rps: setup.rate_per_second,
        to_rps: setup.step_rate_per_second,
        at_seconds: at,
        windows,
        recovery_seconds,
        first_success_ms: (inference.first_success_ns > 0).then(|| inference.first_success_ns as f64 / 1e6),
    })
}

/// The platform with the most sustainable rate per dollar, named only when its lower bound beats
/// every other platform's upper bound: its met rate per dollar above the others' missed rate per
/// dollar (the stages themselves then order them; overlapping brackets do not).
fn most_per_dollar(rows: &[CapacityRow], stages: &[CapacityStage]) -> (Option<String>, String) {
    let priced: Vec<&CapacityRow> = rows.iter().filter(|r| r.rps_per_usd_hour.is_some()).collect();
    if priced.len() < 2 {
        return (None, "fewer than two platforms with a sustainable rate and a price".into());
    }
    let best = priced.iter().copied().max_by(|a, b| a.rps_per_usd_hour.partial_cmp(&b.rps_per_usd_hour).expect("finite")).expect("two or more");
    let per_dollar = |r: &CapacityRow, rps: f64| r.usd_per_hour.map(|(lo, hi)| rps / ((lo + hi) / 2.0));
    // An upper bound of each other platform: the achieved rate at its lowest missed load (or above
    // every stage, unbounded, when none missed).
    let apart = priced.iter().filter(|r| r.platform != best.platform).all(|r| {
        let Some(missed) = r.missed_load else { return false };
        let upper = stages.iter().find(|s| s.platform == r.platform && s.mode == r.mode && s.offered == missed).map(|s| s.achieved_rps);
        upper.and_then(|u| per_dollar(r, u)).is_some_and(|u| best.rps_per_usd_hour.unwrap_or(0.0) > u)
    });
    if apart {
        (Some(best.platform.clone()), format!("{}'s sustainable rate per dollar is above every other platform's rate per dollar at the load it missed", best.platform))
    } else {
        (None, "the brackets overlap: no platform's sustainable rate per dollar is above another's at the load it missed".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::v1::{BatchMetrics, InferenceSetup, LoadMode, PhaseTiming};

    fn stage(platform: &str, rate: f64, latencies_ms: &[u64], failed: u64, seconds: f64) -> BatchMetrics {
        let mut h = proto::latency::new_histogram();
        for ms in latencies_ms {
            proto::latency::record(&mut h, ms * 1000);
        }
        let mut server = proto::latency::new_histogram();
        proto::latency::record(&mut server, 10_000);
        BatchMetrics {
            platform: platform.into(),
            inference: Some(PhaseTiming {
                duration_ns: (seconds * 1e9) as u64,
                requests: latencies_ms.len() as u64,
                failed,
                latency_histogram: proto::latency::encode(&h),
                server_histogram: proto::latency::encode(&server),
                ..Default::default()
            }),
            inference_setup: Some(InferenceSetup { mode: LoadMode::OpenLoop as i32, rate_per_second: rate, ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn the_capacity_is_the_highest_load_meeting_the_target_and_costs_follow_from_it() {
        // aws: 10 and 20 req/s keep 100 ms, 40 does not; 100 requests per stage.
        let runs = [
            stage("aws", 10.0, &[50; 100], 0, 10.0),
            stage("aws", 20.0, &[80; 100], 0, 5.0),
            stage("aws", 40.0, &[[90; 50], [900; 50]].concat(), 0, 2.5),
            stage("azure", 10.0, &[60; 100], 2, 10.0),
            stage("azure", 20.0, &[70; 100], 0, 5.0),
        ];
        let batches: Vec<Batch> = runs.iter().map(Batch::from).collect();
        let refs: Vec<&Batch> = batches.iter().collect();
        assert!(swept(&refs));
        let catalog = Catalog::parse(
            "[platform.aws]\nprovider='aws'\ncomponents=[{service='s',instance='i',usd_per_hour=2.0}]\n\
             [platform.azure]\nprovider='azure'\ncomponents=[{service='s',instance='i',usd_per_hour=1.0}]\n",
        )
        .unwrap();
        let target = Target { p99_ms: 100.0, max_error_share: 0.01 };
        let c = capacity(&refs, &catalog, Some(target), Some(100.0));
        let aws = &c.platforms[0];
        assert_eq!((aws.met_load, aws.missed_load, aws.sustainable_rps), (Some(20.0), Some(40.0), Some(20.0)));
        // 2 USD/h at 20 images/s: 2 / 72,000 × 1,000 USD per 1,000 images; 100 req/s needs 5.
        assert!((aws.usd_per_1000_images.unwrap().0 - 2.0 / 72.0).abs() < 1e-12);
        assert_eq!(aws.instances_for_target_load, Some(5));
        assert_eq!(aws.goodput_rps, Some(20.0));
        let at_40 = c.stages.iter().find(|s| s.platform == "aws" && s.offered == 40.0).unwrap();
        assert_eq!((at_40.met, at_40.goodput_rps), (Some(false), Some(20.0)), "half the requests within 100 ms over 2.5 s");
        assert!((at_40.server_p50_ms.unwrap() - 10.0).abs() < 0.01, "the histogram keeps 3 digits");
        // azure: 2% errors at 10 req/s miss the 1% budget, so nothing below it met the target.
        let azure = &c.platforms[1];
        assert_eq!((azure.met_load, azure.missed_load), (None, Some(10.0)));
        // aws: 10 req/s per USD/h; azure has no sustainable rate: no comparison.
        assert_eq!(c.most_per_dollar, None);
        assert!(c.basis.contains("fewer than two"));
    }

    #[test]
    fn a_step_recovers_at_the_end_of_the_last_window_that_missed() {
        // 1 s windows; the step at 3 s; the windows from 3 s to 7 s miss the 100 ms target, the rest meet it.
        let window = |i: u64, ms: u64| {
            let mut h = proto::latency::new_histogram();
            proto::latency::record(&mut h, ms * 1000);
            proto::v1::LatencyWindow { start_ns: i * 1_000_000_000, width_ns: 1_000_000_000, requests: 1, failed: 0, latency_histogram: proto::latency::encode(&h) }
        };
        let latencies = [40, 40, 40, 400, 900, 600, 300, 60, 50, 40];
        let m = BatchMetrics {
            platform: "aws".into(),
            inference: Some(PhaseTiming { windows: latencies.iter().enumerate().map(|(i, ms)| window(i as u64, *ms)).collect(), first_success_ns: 45_000_000, ..Default::default() }),
            inference_setup: Some(InferenceSetup { mode: LoadMode::OpenLoop as i32, rate_per_second: 5.0, step_rate_per_second: 50.0, step_at_seconds: 3.0, ..Default::default() }),
            ..Default::default()
        };
        let target = Target { p99_ms: 100.0, max_error_share: 0.01 };
        let row = step_row(&Batch::from(&m), Some(target)).unwrap();
        assert_eq!((row.recovery_seconds, row.first_success_ms, row.to_rps), (Some(4.0), Some(45.0), 50.0), "window 6–7 missed last: 7 − 3");
        let calm = [40; 10];
        let m2 = BatchMetrics { inference: Some(PhaseTiming { windows: calm.iter().enumerate().map(|(i, ms)| window(i as u64, *ms)).collect(), ..Default::default() }), ..m.clone() };
        assert_eq!(step_row(&Batch::from(&m2), Some(target)).unwrap().recovery_seconds, Some(0.0));
        let never = [40, 40, 40, 400, 400, 400, 400, 400, 400, 400];
        let m3 = BatchMetrics { inference: Some(PhaseTiming { windows: never.iter().enumerate().map(|(i, ms)| window(i as u64, *ms)).collect(), ..Default::default() }), ..m };
        assert_eq!(step_row(&Batch::from(&m3), Some(target)).unwrap().recovery_seconds, None);
        let b2 = Batch::from(&m2);
        let refs = [&b2];
        assert!(capacity(&refs, &Catalog::parse("").unwrap(), Some(target), None).stages.is_empty(), "a step is not a steady stage");
    }
}
