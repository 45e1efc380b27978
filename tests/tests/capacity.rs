//! Capacity against known truth: two reference endpoints (`tests/truth/refendpoint.py`) of known
//! capacity, K requests served at once in a constant service time S, so exactly K / S requests per
//! second; a load-sweep search on both platforms at once; the capacity the report gives, the
//! latencies of the stage it rests on, and the queue the server logs above capacity are compared
//! with those analytic values and with the server's own log. `analyzer check` gates on the result.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::truth::*;
use common::*;
use control::Broker;

/// Service time of every request, ms.
const SERVICE_MS: f64 = 40.0;
/// The latency target of the search: well above the service time, well under an overloaded stage's.
const TARGET_MS: f64 = 150.0;

/// Waits for `child` to exit successfully within `timeout`; fails the test otherwise.
fn wait_ok(child: &mut std::process::Child, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{what} failed: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not finish within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `analyzer check` with `args`; returns its exit code and standard output.
fn check(store: &std::path::Path, run_id: &str, spec: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin("analyzer"))
        .args(["check", "--run", run_id, "--store"])
        .arg(store)
        .arg("--spec")
        .arg(spec)
        .args(args)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_finds_each_platforms_known_capacity_and_gates_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);
    let ns = namespace("capacity");
    let run_id = unique("capacity");
    dataset(&path("data"), 16, 16 * 1024);
    // (platform, requests served at once): capacities 50 and 25 requests/s.
    let platforms = [("big", 2u32), ("small", 1u32)];
    let mut spec = format!("run_id = \"{run_id}\"\nmanifest = \"data/manifest.json\"\nbatch_size = 8\n");
    for (name, _) in platforms {
        spec.push_str(&format!("[[platform]]\nname = \"{name}\"\n"));
    }
    spec.push_str(&format!(
        "[load_sweep]\nmin_requests = 20\nmin_seconds = 4\nsearch = {{ slo_p99_ms = {TARGET_MS}, max_error_share = 0.01, min_rate = 5, max_rate = 160, precision = 0.05 }}\n"
    ));
    std::fs::write(path("run.toml"), &spec).unwrap();

    let mut collector = start_collector(&ns, &run_id, &path("store"));
    let mut endpoints = Vec::new();
    let mut workers = Vec::new();
    for (name, k) in platforms {
        let reference = Reference::start(&path(&format!("{name}.log")), &["--service", &format!("const:{SERVICE_MS}"), "--capacity", &k.to_string()]);
        let bucket = path(&format!("bucket-{name}"));
        std::fs::create_dir_all(&bucket).unwrap();
        let mut worker = Command::new(bin("worker"));
        worker
            .args(["--namespace", ns.as_str(), "--platform", name, "--heartbeat-secs", "1", "--dataset-dir"])
            .arg(path("data"))
            .arg("--storage-dir")
            .arg(&bucket)
            .args(["--inference", &format!("{}/score", reference.url)])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null());
        workers.push(Child(with_cloud_env(&mut worker).spawn().unwrap()));
        endpoints.push(reference);
    }
    let mut coordinator = Command::new(bin("coordinator"));
    coordinator.args(["--namespace", ns.as_str(), "run"]).arg(path("run.toml")).stdout(Stdio::null());
    let mut coordinator = Child(with_cloud_env(&mut coordinator).env("AMQP_URL", amqp_url()).env("REDIS_URL", redis_url()).spawn().unwrap());
    wait_ok(&mut coordinator.0, Duration::from_secs(240), "the sweep");
    wait_collected(&mut collector, Duration::from_secs(60)).await;
    drop(workers);

    let rows = export_rows(&run_id, &path("store"));
    run_ok(Command::new(bin("analyzer")).args(["report", "--run", &run_id, "--target-load", "200", "--store"]).arg(path("store")).arg("--spec").arg(path("run.toml")).arg("--out").arg(path("report")));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path("report/report.json")).unwrap()).unwrap();
    let capacity = &report["capacity"];
    assert_eq!(capacity["target_p99_ms"].as_f64(), Some(TARGET_MS), "{capacity}");

    let mut sustainable = Vec::new();
    for ((name, k), reference) in platforms.iter().zip(&endpoints) {
        let truth = f64::from(*k) * 1000.0 / SERVICE_MS;
        let row = capacity["platforms"].as_array().unwrap().iter().find(|p| p["platform"] == *name).unwrap_or_else(|| panic!("no capacity row for {name}"));
        let met = row["met_load"].as_f64().unwrap_or_else(|| panic!("{name}: no load met the target: {row}"));
        let missed = row["missed_load"].as_f64().unwrap_or_else(|| panic!("{name}: no load missed the target: {row}"));
        eprintln!("{name}: capacity {truth} requests/s; the search: met {met}, missed {missed}; sustainable {}", row["sustainable_rps"]);
        assert!((met - truth).abs() <= 0.1 * truth, "{name}: highest rate meeting the target {met}, capacity {truth}");
        assert!(missed > met && missed <= truth * 1.1 + 0.05 * met, "{name}: lowest missing rate {missed}, capacity {truth}");
        sustainable.push(row["sustainable_rps"].as_f64().unwrap());
        // The instances for 200 requests/s at that rate.
        assert_eq!(row["instances_for_target_load"].as_u64(), Some((200.0 / sustainable.last().unwrap()).ceil() as u64));

        // The stage it rests on, in the export and in the server's log: every request of that
        // stage left the server within the target.
        let served = reference.served();
        let stage_rows: Vec<&serde_json::Value> = rows.iter().filter(|r| r["platform"] == *name).collect();
        let window = |load: f64| {
            let r = stage_rows.iter().find(|r| r["inference_load"].as_f64() == Some(load)).unwrap_or_else(|| panic!("{name}: no stage at {load}"));
            let (start, end) = (r["started_unix_ns"].as_i64().unwrap(), r["finished_unix_ns"].as_i64().unwrap());
            // By arrival: the server stamps its departure after the answer is out, which may be after the
            // client has finished the batch.
            let mine: Vec<&Served> = served.iter().filter(|s| (start..=end).contains(&s.arrival_ns)).collect();
            (*r, mine)
        };
        let (at_met, logged) = window(met);
        let server_p99 = nearest_rank(&logged.iter().map(|s| s.ms()).collect::<Vec<_>>(), 0.99);
        assert!(server_p99 <= TARGET_MS, "{name} at {met}/s: the server held requests {server_p99:.1} ms (p99)");
        assert!(at_met["inference_p99_ms"].as_f64().unwrap() <= TARGET_MS, "{name} at {met}/s: {at_met}");
        assert_eq!(at_met["inference_requests"].as_u64(), Some(logged.len() as u64), "{name} at {met}/s: requests against the server's log");

        // Above capacity the queue grows for the whole stage: the server's own record of each
        // request's wait for a slot rises from the first quarter to the last, towards the analytic
        // backlog of (rate - capacity) × time, and the reported p99 carries it.
        let (over, logged) = window(missed);
        let queued: Vec<f64> = logged.iter().map(|s| s.queued_ms).collect();
        let quarter = queued.len() / 4;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (first, last) = (mean(&queued[..quarter]), mean(&queued[queued.len() - quarter..]));
        let seconds = queued.len() as f64 / missed;
        let backlog_ms = (missed - truth) * seconds / truth * 1000.0;
        eprintln!("{name} at {missed}/s: queue {first:.1} ms in the first quarter, {last:.1} ms in the last; analytic backlog at the end {backlog_ms:.1} ms");
        assert!(last > first + 0.25 * backlog_ms, "{name} at {missed}/s: the wait did not grow ({first:.1} → {last:.1} ms)");
        assert!(over["inference_p99_ms"].as_f64().unwrap() >= 0.5 * backlog_ms, "{name} at {missed}/s: {over}");

        // The server's time split from the rest at the lowest rate: the service time as logged.
        let (low, logged) = window(5.0);
        let server_ms: Vec<f64> = logged.iter().map(|s| s.service_ms + s.queued_ms).collect();
        let stage = capacity["stages"].as_array().unwrap().iter().find(|s| s["platform"] == *name && s["offered"].as_f64() == Some(5.0)).unwrap();
        assert_latency(stage["server_p50_ms"].as_f64().unwrap(), nearest_rank(&server_ms, 0.5), &format!("{name} server p50 at 5/s ({low})"));
    }
    assert!(sustainable[0] > sustainable[1], "big ({}) has more capacity than small ({})", sustainable[0], sustainable[1]);
    let markdown = std::fs::read_to_string(path("report/report.md")).unwrap();
    assert!(markdown.contains("## Capacity under the latency target"), "{markdown}");

    // The gate: 40 requests/s is within big's capacity and beyond small's.
    let (code, out) = check(&path("store"), &run_id, &path("run.toml"), &["--slo", "capacity_rps>=40", "--slo", "availability>=99"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("PASS big capacity_rps>=40") && out.contains("FAIL small capacity_rps>=40"), "{out}");
    let (code, out) = check(&path("store"), &run_id, &path("run.toml"), &["--slo", "capacity_rps>=40", "--platform", "big"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = check(&path("store"), &run_id, &path("run.toml"), &["--slo", "capacity_rps>>40"]);
    assert_ne!(code, 0, "a bad criterion is an error: {out}");

    let broker = broker().await;
    broker.delete(&ns, &["big".into(), "small".into()]).await.unwrap();
    broker.close().await;
}
