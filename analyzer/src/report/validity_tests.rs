//! Each check on batches built by hand, with values whose expected status follows by arithmetic.

use proto::v1::{BatchMetrics, InferenceSetup, LoadMode, PhaseTiming, Versions, WorkerIdentity};

use super::*;
use crate::report::model::{Check, PlatformMetric, Status};
use crate::stats::ChangePoint;

const S: u64 = 1_000_000_000;

/// A phase of `seconds` whose histogram holds `latencies_us`, one request each.
fn phase(seconds: f64, latencies_us: &[u64]) -> PhaseTiming {
    let mut h = proto::latency::new_histogram();
    for v in latencies_us {
        proto::latency::record(&mut h, *v);
    }
    PhaseTiming { duration_ns: (seconds * 1e9) as u64, requests: latencies_us.len() as u64, latency_histogram: proto::latency::encode(&h), ..Default::default() }
}

/// Batch `index` of `platform`, started at `index` × 10 s and lasting `wall` seconds, no phases.
fn batch(platform: &str, index: u32, wall: f64) -> BatchMetrics {
    let start = i64::from(index) * 10 * S as i64;
    BatchMetrics {
        job_key: format!("r/0/{platform}/{index}"),
        platform: platform.into(),
        batch_index: index,
        started_unix_ns: start,
        finished_unix_ns: start + (wall * 1e9) as i64,
        ..Default::default()
    }
}

fn closed(concurrency: u32) -> Option<InferenceSetup> {
    Some(InferenceSetup { mode: LoadMode::ClosedLoop as i32, concurrency, ..Default::default() })
}

fn open(rate: f64) -> Option<InferenceSetup> {
    Some(InferenceSetup { mode: LoadMode::OpenLoop as i32, rate_per_second: rate, ..Default::default() })
}

fn evaluate_with(metrics: &[BatchMetrics], sections: &[MetricSection], scaling: &[ScalingRow]) -> Vec<PlatformValidity> {
    let converted: Vec<Batch> = metrics.iter().map(Batch::from).collect();
    let rows: Vec<BatchRow> = converted.iter().map(BatchRow::from_batch).collect();
    let batches: Vec<Checked<'_>> = converted.iter().zip(&rows).collect();
    let platforms: Vec<String> = metrics.iter().map(|m| m.platform.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    evaluate(&batches, &platforms, sections, scaling)
}

/// The check `id` of `platform`.
fn get(validity: &[PlatformValidity], platform: &str, id: &str) -> Check {
    let p = validity.iter().find(|p| p.platform == platform).expect("platform");
    p.checks.iter().find(|c| c.id == id).expect("check").clone()
}

fn only(metrics: &[BatchMetrics], id: &str) -> Check {
    get(&evaluate_with(metrics, &[], &[]), &metrics[0].platform, id)
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

/// One closed-loop batch at concurrency 4 whose inference phase took 3.3 s.
fn closed_batch(latencies_us: &[u64]) -> BatchMetrics {
    BatchMetrics { inference: Some(phase(3.3, latencies_us)), inference_setup: closed(4), ..batch("aws", 0, 3.3) }
}

#[test]
fn latencies_that_cannot_fill_the_phase_fail_littles_law() {
    // 64 × 2 ms = 0.128 s of latency over 3.3 s: L = 0.0388 in flight, far below 0.5 × min(4, 64) = 2.
    let c = only(&[closed_batch(&[2_000; 64])], "latency_consistency");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(close(c.figure.unwrap(), 0.128 / 3.3, 1e-4), "{c:?}");
    assert_eq!(c.threshold.unwrap().value, 2.0);
    assert!(c.detail.contains("r/0/aws/0 inference"), "{}", c.detail);
    // 64 × 200 ms = 12.8 s over 3.3 s: L = 3.88, between 2 and 1.05 × 4 + 0.05 = 4.25.
    let c = only(&[closed_batch(&[200_000; 64])], "latency_consistency");
    assert_eq!(c.status, Status::Pass, "{c:?}");
    // 64 × 300 ms = 19.2 s over 3.3 s: L = 5.82 > 4.25, more than 4 in flight.
    let c = only(&[closed_batch(&[300_000; 64])], "latency_consistency");
    assert_eq!((c.status, c.threshold.unwrap().value), (Status::Fail, 4.25), "{c:?}");
}

#[test]
fn a_request_longer_than_its_phase_fails() {
    // 63 × 200 ms and one 5 s request: L = (12.6 + 5) / 3.3 = 5.3 also breaks 4.25, but 5 s against
    // the 3.3 × 1.01 + 0.001 = 3.334 s limit is the worse breach (1.5× against 1.25×).
    let mut latencies = vec![200_000; 63];
    latencies.push(5_000_000);
    let c = only(&[closed_batch(&latencies)], "latency_consistency");
    assert_eq!((c.status, c.unit), (Status::Fail, "s"), "{c:?}");
    assert!(close(c.threshold.unwrap().value, 3.334, 1e-9) && close(c.figure.unwrap(), 5.0, 0.01), "{c:?}");
    // An open loop has no concurrency bound, only the phase's length: 10 × 5 s in 3.3 s fails.
    let m = BatchMetrics { inference: Some(phase(3.3, &[5_000_000; 10])), inference_setup: open(20.0), ..batch("aws", 0, 3.3) };
    assert_eq!(only(&[m], "latency_consistency").status, Status::Fail);
    // ... and 10 × 10 ms in 3.3 s (L = 0.03) passes: few requests in flight is an open loop's right.
    let m = BatchMetrics { inference: Some(phase(3.3, &[10_000; 10])), inference_setup: open(20.0), ..batch("aws", 0, 3.3) };
    assert_eq!(only(&[m], "latency_consistency").status, Status::Pass);
}

#[test]
fn an_upload_with_too_little_latency_for_its_time_fails() {
    // 16 uploads × 10 ms = 0.16 s in a 2 s phase: L = 0.08 < 0.5.
    let m = BatchMetrics { upload: Some(phase(2.0, &[10_000; 16])), ..batch("aws", 0, 2.0) };
    let c = only(&[m], "latency_consistency");
    assert_eq!(c.status, Status::Fail);
    assert!(close(c.figure.unwrap(), 0.08, 1e-3) && c.detail.contains("upload"), "{c:?}");
    // 16 × 125 ms = 2 s in 2 s: L = 1.
    let m = BatchMetrics { upload: Some(phase(2.0, &[125_000; 16])), ..batch("aws", 0, 2.0) };
    assert_eq!(only(&[m], "latency_consistency").status, Status::Pass);
}

/// An open-loop batch at `rate` whose `requests` started `lag_us` late, in a phase of `seconds`.
fn open_batch(rate: f64, requests: usize, lag_us: u64, seconds: f64) -> BatchMetrics {
    let mut inference = phase(seconds, &vec![10_000; requests]);
    inference.start_lag_histogram = phase(seconds, &vec![lag_us; requests]).latency_histogram;
    BatchMetrics { inference: Some(inference), inference_setup: open(rate), ..batch("aws", 0, seconds) }
}

#[test]
fn an_open_loop_client_behind_its_schedule_fails() {
    // 20 req/s: 50 ms between requests, 10% is 5 ms, so the bound is 10 ms; 50 ms of lag breaks it.
    let c = only(&[open_batch(20.0, 40, 50_000, 2.05)], "open_loop_schedule");
    assert_eq!((c.status, c.threshold.unwrap().value), (Status::Fail, 10.0), "{c:?}");
    assert!(close(c.figure.unwrap(), 50.0, 0.05));
    assert_eq!(only(&[open_batch(20.0, 40, 2_000, 2.05)], "open_loop_schedule").status, Status::Pass);
    // 1 req/s: 1,000 ms between requests, so the bound is 100 ms and 50 ms of lag passes.
    let c = only(&[open_batch(1.0, 4, 50_000, 4.05)], "open_loop_schedule");
    assert_eq!((c.status, c.threshold.unwrap().value), (Status::Pass, 100.0), "{c:?}");
    // A closed loop has no schedule.
    assert_eq!(only(&[closed_batch(&[200_000; 64])], "open_loop_schedule").status, Status::NotApplicable);
}

#[test]
fn an_open_loop_below_nine_tenths_of_its_rate_warns() {
    // 40 requests in 2.5 s = 16 req/s, 80% of 20: below the 18 req/s bound.
    let c = only(&[open_batch(20.0, 40, 1_000, 2.5)], "open_loop_rate");
    assert_eq!((c.status, c.figure), (Status::Warn, Some(16.0)), "{c:?}");
    assert!(close(c.threshold.unwrap().value, 18.0, 1e-9));
    // 40 requests in 2.05 s = 19.5 req/s, 97.6%.
    assert_eq!(only(&[open_batch(20.0, 40, 1_000, 2.05)], "open_loop_rate").status, Status::Pass);
    // Two stages: 40 in 2 s at 20/s and 20 in 2 s at 10/s; 60 requests of the 60 planned pass.
    let stages = [open_batch(20.0, 40, 1_000, 2.0), open_batch(10.0, 20, 1_000, 2.0)];
    let c = only(&stages, "open_loop_rate");
    assert_eq!((c.status, c.figure), (Status::Pass, Some(15.0)), "{c:?}");
}

fn cpu_batch(share: f64) -> BatchMetrics {
    let mut upload = phase(2.0, &[125_000; 16]);
    upload.cpu_ns = (share * 2e9 * 4.0) as u64;
    BatchMetrics { upload: Some(upload), worker: Some(WorkerIdentity { cpus: 4, ..Default::default() }), ..batch("aws", 0, 2.0) }
}

#[test]
fn a_client_near_its_cpu_limit_warns() {
    // cpu_ns = 0.9 × 2 s × 4 CPUs: 90% busy ≥ 85%.
    let c = only(&[cpu_batch(0.9)], "client_cpu");
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(close(c.figure.unwrap(), 90.0, 1e-6));
    assert_eq!(only(&[cpu_batch(0.5), cpu_batch(0.84)], "client_cpu").status, Status::Pass);
    assert_eq!(only(&[batch("aws", 0, 2.0)], "client_cpu").status, Status::NotApplicable);
}

fn offset_batch(platform: &str, index: u32, wall: f64, offset_us: i64) -> BatchMetrics {
    BatchMetrics { clock_offset_us: Some(offset_us), ..batch(platform, index, wall) }
}

#[test]
fn clocks_apart_by_more_than_a_hundredth_of_a_batch_warn() {
    // 2 s batches: 1% is 20 ms, above the 5 ms floor; offsets 0 and 40 ms spread 40 ms > 20 ms, on
    // both platforms.
    let metrics = [offset_batch("aws", 0, 2.0, 0), offset_batch("azure", 1, 2.0, 40_000)];
    let v = evaluate_with(&metrics, &[], &[]);
    for platform in ["aws", "azure"] {
        let c = get(&v, platform, "clock_skew");
        assert_eq!((c.status, c.figure, c.threshold.unwrap().value), (Status::Warn, Some(40.0), 20.0), "{c:?}");
    }
    // 4 ms apart passes; so do 40 ms against a 100 s scaling stage (bound 1 s).
    let near = [offset_batch("aws", 0, 2.0, 0), offset_batch("azure", 1, 2.0, 4_000)];
    assert_eq!(get(&evaluate_with(&near, &[], &[]), "aws", "clock_skew").status, Status::Pass);
    let stage = ScalingRow { platform: "aws".into(), round: 0, workers: 2, images: 10, wall_seconds: 100.0, images_per_second: 0.1, efficiency: 1.0 };
    let c = get(&evaluate_with(&metrics, &[], &[stage]), "aws", "clock_skew");
    assert_eq!((c.status, c.threshold.unwrap().value), (Status::Pass, 1000.0));
    // 0.2 s batches: 1% is 2 ms, so the 5 ms floor holds and 7 ms apart warns.
    let short_batches = [offset_batch("aws", 0, 0.2, 0), offset_batch("aws", 1, 0.2, 7_000)];
    let c = only(&short_batches, "clock_skew");
    assert_eq!((c.status, c.threshold.unwrap().value), (Status::Warn, 5.0));
    assert_eq!(only(&[batch("aws", 0, 2.0)], "clock_skew").status, Status::NotApplicable);
}

/// `n` batches of 2 s (1.9, 2.0, 2.1 in turn, MAD 0.1 s) with the first one lasting `first` s.
fn run_with_first(n: u32, first: f64) -> Vec<BatchMetrics> {
    (0..n).map(|i| batch("aws", i, if i == 0 { first } else { [1.9, 2.0, 2.1][i as usize % 3] })).collect()
}

#[test]
fn a_slow_first_batch_is_warm_up() {
    // Median of the rest 2 s, MAD 0.1 s: the bound is 2 ± 3 × 1.4826 × 0.1 = [1.555, 2.445] s.
    // A first batch of 20 s (10×) lies far outside: z = 18 / 0.14826 = 121.
    let c = only(&run_with_first(12, 20.0), "warm_up");
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(close(c.figure.unwrap(), 18.0 / 0.14826, 0.01), "{c:?}");
    assert!(c.detail.contains("--exclude-warmup 1"), "{}", c.detail);
    // 2.4 s is inside (z = 2.7).
    assert_eq!(only(&run_with_first(12, 2.4), "warm_up").status, Status::Pass);
    // Five batches: too few to tell.
    assert_eq!(only(&run_with_first(5, 20.0), "warm_up").status, Status::NotApplicable);
    // A change point at batch 2 of any metric warns even when the wall times look steady.
    let series = [1.0, 2.0];
    let metric = PlatformMetric {
        platform: "aws".into(),
        describe: stats::describe(&series).unwrap(),
        median_ci: None,
        change_points: vec![ChangePoint { index: 2, before_median: 1.0, after_median: 2.0 }],
        series: series.to_vec(),
    };
    let section = MetricSection {
        key: "upload",
        title: "Upload time",
        unit: "s/MiB",
        lower_is_better: true,
        platforms: vec![metric],
        kruskal: None,
        epsilon_squared: None,
        pairs: Vec::new(),
        note: None,
        winner: None,
    };
    let c = get(&evaluate_with(&run_with_first(12, 2.0), &[section], &[]), "aws", "warm_up");
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.detail.contains("--exclude-warmup 2"), "{}", c.detail);
}

#[test]
fn fewer_than_ten_batches_warn_and_fewer_than_three_fail() {
    let n = |k: u32| only(&(0..k).map(|i| batch("aws", i, 2.0)).collect::<Vec<_>>(), "sample_size").status;
    assert_eq!([n(2), n(3), n(9), n(10)], [Status::Fail, Status::Warn, Status::Warn, Status::Pass]);
}

fn served(platform: &str, index: u32, hash: &str) -> BatchMetrics {
    let versions = Some(Versions { model_hash: hash.into(), ..Default::default() });
    BatchMetrics { inference: Some(phase(1.0, &[100_000; 4])), versions, ..batch(platform, index, 1.0) }
}

#[test]
fn mixed_models_fail_a_platform_and_different_models_warn_all() {
    let mixed = [served("aws", 0, "a1"), served("aws", 1, "b2")];
    let c = only(&mixed, "model_hash");
    assert_eq!((c.status, c.figure), (Status::Fail, Some(2.0)), "{c:?}");
    let apart = [served("aws", 0, "a1"), served("azure", 1, "b2")];
    let v = evaluate_with(&apart, &[], &[]);
    assert_eq!([get(&v, "aws", "model_hash").status, get(&v, "azure", "model_hash").status], [Status::Warn, Status::Warn]);
    let same = [served("aws", 0, "a1"), served("azure", 1, "a1")];
    assert_eq!(get(&evaluate_with(&same, &[], &[]), "azure", "model_hash").status, Status::Pass);
    assert_eq!(only(&[batch("aws", 0, 1.0)], "model_hash").status, Status::NotApplicable);
}

#[test]
fn failed_requests_warn_above_one_percent_and_fail_above_ten() {
    let share = |failed: u64| {
        let mut download = phase(10.0, &[10_000; 1000]);
        download.failed = failed;
        only(&[BatchMetrics { download: Some(download), ..batch("aws", 0, 10.0) }], "error_share")
    };
    // 5, 50 and 200 of 1,000: 0.5%, 5%, 20%.
    assert_eq!([share(5).status, share(50).status, share(200).status], [Status::Pass, Status::Warn, Status::Fail]);
    assert_eq!(share(50).figure, Some(5.0));
}

#[test]
fn one_clamped_latency_invalidates_the_platform() {
    let mut upload = phase(2.0, &[125_000; 16]);
    upload.clamped = 1;
    let metrics = [BatchMetrics { upload: Some(upload), ..batch("aws", 0, 2.0) }];
    let v = evaluate_with(&metrics, &[], &[]);
    assert_eq!(get(&v, "aws", "clamped").status, Status::Fail);
    assert_eq!(v[0].verdict, Verdict::Invalid);
    // It fails two checks: clamped, and sample_size (one batch).
    assert_eq!(invalid_line("r1", &v).as_deref(), Some("report: run r1 is INVALID: aws sample_size, aws clamped"));
}

#[test]
fn warnings_leave_a_platform_valid() {
    // Ten 2 s batches, 90% CPU (warn), nothing failing.
    let metrics: Vec<BatchMetrics> = (0..10).map(|i| BatchMetrics { batch_index: i, job_key: format!("k{i}"), ..cpu_batch(0.9) }).collect();
    let v = evaluate_with(&metrics, &[], &[]);
    assert_eq!(get(&v, "aws", "client_cpu").status, Status::Warn);
    assert_eq!(v[0].verdict, Verdict::Valid, "{:?}", v[0].checks);
    assert_eq!(invalid_line("r1", &v), None);
}
