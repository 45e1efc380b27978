//! The known-truth tier: every figure these tests check comes from outside the code under test. A
//! reference endpoint in a process of its own (`tests/truth/refendpoint.py`) serves each request in a
//! programmed, seeded time and logs its arrival and departure; the worker binaries call it; what the
//! export and the report say is compared with that log, with what the schedule implies analytically,
//! and with a recomputation by a script that is not the analyzer (`tests/truth/recompute.py`).
//!
//! They run one at a time (a lock here, `threads-required` in nextest's profile), so that a test's
//! latencies are not those of a machine busy with other tests.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::truth::*;

/// One truth run at a time in this binary.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const P: [(f64, &str); 3] = [(0.5, "p50_ms"), (0.9, "p90_ms"), (0.99, "p99_ms")];

/// A batch's p99 open-loop start lag in ms, up to which a latency may exceed the server's view.
fn lag(row: &serde_json::Value) -> f64 {
    row["inference_start_lag_p99_ms"].as_f64().map_or(0.0, |lag| lag.max(0.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latencies_match_the_servers_log_in_closed_and_open_loop() {
    let _alone = ALONE.lock().await;
    // Service times of a model endpoint (300 ms median, log-normal): the client's own share of a
    // request (1–2 ms on loopback here, up to ~10 ms when this VM wakes idle processors for each
    // step of an open-loop request) then sits inside the bound.
    let platforms = [
        PlatformSetup { name: "closed", endpoint: vec!["--service", "lognormal:300,0.3", "--seed", "11"], load: vec!["--inference-concurrency", "4"] },
        PlatformSetup { name: "open", endpoint: vec!["--service", "lognormal:300,0.3", "--seed", "12"], load: vec!["--open-loop-rate", "20"] },
    ];
    let run = TruthRun::run("truth-latency", 64, 16 * 1024, 16, &platforms, Duration::from_secs(120)).await;
    let batch_of = run.batch_of_body();
    for platform in ["closed", "open"] {
        let served = run.endpoints[platform].served();
        assert!(served.iter().all(|s| s.status == 200), "{platform}: every request answered");
        // Counts: exactly the requests the server saw, in the report and in the export.
        let row = run.latency_row(platform, "inference");
        assert_eq!(row["requests"].as_u64(), Some(served.len() as u64), "{platform}: requests in the report");
        let exported: u64 = run.rows_of(platform).iter().map(|r| r["inference_requests"].as_u64().unwrap()).sum();
        assert_eq!(exported, served.len() as u64, "{platform}: requests in the export");
        assert_eq!(served.len(), 64);
        // The report's merged quantiles against the server's own log. An open-loop latency counts
        // from the request's intended start, which the server cannot see: how late the client sent
        // (its start lag, at most ~3 ms here, itself a validity check) is allowed on top.
        let most_lag = run.rows_of(platform).iter().map(|r| lag(r)).fold(0.0, f64::max);
        let all: Vec<f64> = served.iter().map(Served::ms).collect();
        for (q, field) in P {
            assert_latency_late(row[field].as_f64().unwrap(), nearest_rank(&all, q), most_lag, &format!("{platform} report {field}"));
        }
        // Each batch's exported quantiles against the requests of that batch in the log.
        let mut by_batch: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for s in &served {
            by_batch.entry(batch_of[&s.sha256]).or_default().push(s.ms());
        }
        let rows = run.rows_of(platform);
        assert_eq!(rows.len(), by_batch.len());
        for row in rows {
            let batch = row["batch_index"].as_u64().unwrap();
            let truth = &by_batch[&batch];
            assert_eq!(row["inference_requests"].as_u64(), Some(truth.len() as u64));
            for (q, field) in P {
                let column = format!("inference_{field}");
                assert_latency_late(row[&column].as_f64().unwrap(), nearest_rank(truth, q), lag(row), &format!("{platform} batch {batch} {column}"));
            }
        }
    }
    // Throughput and s/MiB, recomputed from the export's raw columns by a script of its own.
    let out = Command::new("python3")
        .arg(script("recompute.py"))
        .arg(run.path("export.csv"))
        .arg("--report")
        .arg(run.path("report/report.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "the report disagrees with the recomputation: {}", String::from_utf8_lossy(&out.stderr));
}

/// The stall: request 20 arrives at ~1.0 s and the server serves nothing for 1,025 ms, so requests
/// arriving in [1.0, 2.025) s wait for its end; every request then takes 100 ms.
const STALL: [&str; 6] = ["--service", "const:100", "--stall-at", "20", "--stall-ms", "1025"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_open_loop_latencies_and_only_in_the_phase_time_in_closed_loop() {
    let _alone = ALONE.lock().await;
    let platforms = [
        PlatformSetup { name: "open", endpoint: STALL.to_vec(), load: vec!["--open-loop-rate", "20"] },
        PlatformSetup { name: "closed", endpoint: STALL.to_vec(), load: vec!["--inference-concurrency", "4"] },
    ];
    let run = TruthRun::run("truth-stall", 60, 4096, 60, &platforms, Duration::from_secs(120)).await;

    // Open loop at R = 20/s: request j is due at j/20 s. Requests 20..=40 (due 1.0..2.0 s) are held
    // until 2.025 s, so their latencies from the intended start fall from 1.125 s to 0.125 s in steps
    // of 50 ms; the other 39 take the service time. About R requests carry the stall.
    let expected: Vec<f64> = (0..60).map(|j| if (20..=40).contains(&j) { 2125.0 - 50.0 * j as f64 } else { 100.0 }).collect();
    let open = &run.rows_of("open")[0];
    let report = run.latency_row("open", "inference");
    for (q, field) in P {
        let want = nearest_rank(&expected, q);
        let got = report[field].as_f64().unwrap();
        // The model leaves out the machine's own jitter (when request 20 really arrived, the burst of
        // 21 answers at the stall's end): a few ms, far under what omitting the stall would cost.
        assert!((got - want).abs() <= 0.03 * want + 15.0, "open loop {field}: reported {got} ms, the schedule implies {want} ms");
        assert_latency(open[&format!("inference_{field}")].as_f64().unwrap(), got, &format!("open loop export {field}"));
    }
    let held = run.endpoints["open"].served().iter().filter(|s| s.stalled_ms > 0.0).count();
    assert_eq!(held, 21, "the server held requests 20 to 40");

    // Closed loop with 4 in flight: the client stops sending while the server stalls, so at most 4
    // requests see the stall and p90 stays at the service time (coordinated omission); the stall shows
    // instead in the phase time: 60 × 100 ms / 4 = 1.5 s of work plus ~1 s of waiting.
    let closed = &run.rows_of("closed")[0];
    let held = run.endpoints["closed"].served().iter().filter(|s| s.stalled_ms > 0.0).count();
    assert!((1..=4).contains(&held), "closed loop: {held} requests held, at most the 4 in flight");
    let p90 = closed["inference_p90_ms"].as_f64().unwrap();
    assert!(p90 < 150.0, "closed loop p90 {p90} ms: the stall is hidden at the service time, not spread as in open loop");
    let phase = closed["inference_s"].as_f64().unwrap();
    assert!((2.4..3.5).contains(&phase), "closed loop: the phase took {phase} s, expected 1.5 s + ~1 s of stall");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_is_dated_and_a_ten_percent_difference_is_told_apart_from_none() {
    let _alone = ALONE.lock().await;
    // 45 batches of 8 requests of ~100 ms, 4 in flight (the machine's own jitter, a few ms, is then
    // small against 10%). `same` is programmed exactly as `base` (same seed: the
    // same service times in the same order); `slower` takes 10% longer; `step` doubles its service
    // time from request 240 on, the first of batch 30 (the paper's Azure pattern).
    let platforms = [
        PlatformSetup { name: "base", endpoint: vec!["--service", "lognormal:100,0.1", "--seed", "1"], load: vec!["--inference-concurrency", "4"] },
        PlatformSetup { name: "same", endpoint: vec!["--service", "lognormal:100,0.1", "--seed", "1"], load: vec!["--inference-concurrency", "4"] },
        PlatformSetup { name: "slower", endpoint: vec!["--service", "lognormal:110,0.1", "--seed", "2"], load: vec!["--inference-concurrency", "4"] },
        PlatformSetup {
            name: "step",
            endpoint: vec!["--service", "lognormal:100,0.1", "--seed", "3", "--slow-after", "240", "--slow-factor", "2"],
            load: vec!["--inference-concurrency", "4"],
        },
    ];
    let run = TruthRun::run("truth-step", 360, 4096, 8, &platforms, Duration::from_secs(240)).await;
    let inference = run.section("inference");
    let step = inference["platforms"].as_array().unwrap().iter().find(|p| p["platform"] == "step").unwrap();
    let points: Vec<u64> = step["change_points"].as_array().unwrap().iter().map(|c| c["index"].as_u64().unwrap()).collect();
    assert!(points.iter().any(|i| (29..=31).contains(i)), "the step at batch 30 is found: change points at {points:?}");

    let series = |platform: &str| -> Vec<f64> { run.rows_of(platform).iter().map(|r| r["inference_s"].as_f64().unwrap()).collect() };
    let (base, same, slower) = (series("base"), series("same"), series("slower"));
    let apart = analyzer::stats::kruskal(&[&base, &slower]).unwrap();
    assert!(apart.p < 0.05, "10% slower is told apart: Kruskal–Wallis p = {}", apart.p);
    let alike = analyzer::stats::kruskal(&[&base, &same]).unwrap();
    assert!(alike.p >= 0.05, "identical platforms are not told apart: Kruskal–Wallis p = {}", alike.p);
    // The report's pairwise tests agree (Dunn with Holm's adjustment across the four platforms).
    let pair = |a: &str, b: &str| {
        inference["pairs"].as_array().unwrap().iter().find(|p| (p["a"] == a && p["b"] == b) || (p["a"] == b && p["b"] == a)).unwrap()["dunn_p_holm"]
            .as_f64()
            .unwrap()
    };
    assert!(pair("base", "slower") < 0.05 && pair("base", "same") >= 0.05, "Dunn–Holm: base/slower {} base/same {}", pair("base", "slower"), pair("base", "same"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_and_error_counts_equal_the_servers_log() {
    let _alone = ALONE.lock().await;
    // Per image: 10% are answered 503 once and then served, 5% always 422, 5% always an HTML page.
    let endpoint = vec!["--service", "const:10", "--seed", "5", "--fail-503", "0.1", "--fail-4xx", "0.05", "--garbage", "0.05"];
    let platforms = [PlatformSetup { name: "flaky", endpoint, load: vec!["--inference-concurrency", "4"] }];
    let images = 100;
    let run = TruthRun::run("truth-errors", images, 4096, 25, &platforms, Duration::from_secs(120)).await;
    let served = run.endpoints["flaky"].served();
    let bodies = |outcome: &str| served.iter().filter(|s| s.outcome == outcome).map(|s| s.sha256.clone()).collect::<std::collections::BTreeSet<_>>().len() as u64;
    let (busy, rejected, garbage) = (served.iter().filter(|s| s.status == 503).count() as u64, bodies("rejected_4xx"), bodies("garbage"));
    assert!(busy > 0 && rejected > 0 && garbage > 0, "the seed gives every kind: {busy} 503s, {rejected} 4xx, {garbage} garbage");
    let distinct = served.iter().map(|s| s.sha256.clone()).collect::<std::collections::BTreeSet<_>>().len() as u64;
    assert_eq!(distinct, images as u64, "every image reached the server");

    let rows = run.rows_of("flaky");
    let sum = |column: &str| rows.iter().map(|r| r[column].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("inference_requests"), images as u64, "a retried image is one request");
    assert_eq!(sum("inference_failed"), rejected + garbage, "failed requests: the 4xx and the garbage");
    assert_eq!(sum("errors"), rejected + garbage, "errors of the batches (storage had none)");
    assert_eq!(sum("retries"), busy, "every 503 was retried once");
    // The report counts every timed request (upload, download, inference) of the platform.
    let availability = run.report["availability"].as_array().unwrap().iter().find(|a| a["platform"] == "flaky").unwrap();
    let requests = 3 * images as u64;
    assert_eq!(availability["requests"].as_u64(), Some(requests));
    assert_eq!(availability["failed"].as_u64(), Some(rejected + garbage));
    let percent = 100.0 * (requests - rejected - garbage) as f64 / requests as f64;
    assert!((availability["availability_percent"].as_f64().unwrap() - percent).abs() < 1e-9);
}
