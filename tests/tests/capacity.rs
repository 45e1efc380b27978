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

/// A finished load sweep of one worker per platform, each against its own reference endpoint.
struct SweepRun {
    dir: tempfile::TempDir,
    run_id: String,
    rows: Vec<serde_json::Value>,
    report: serde_json::Value,
    endpoints: Vec<Reference>,
}

impl SweepRun {
    /// Runs the sweep `[load_sweep]` (the table's body) over 16 images in batches of 8 on each
    /// (platform, reference-endpoint arguments); reports with `report_args`.
    async fn run(tag: &str, sweep: &str, platforms: &[(&str, Vec<String>)], report_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = |p: &str| dir.path().join(p);
        let ns = namespace(tag);
        let run_id = unique(tag);
        dataset(&path("data"), 16, 16 * 1024);
        let mut spec = format!("run_id = \"{run_id}\"\nmanifest = \"data/manifest.json\"\nbatch_size = 8\n");
        for (name, _) in platforms {
            spec.push_str(&format!("[[platform]]\nname = \"{name}\"\n"));
        }
        spec.push_str(&format!("[load_sweep]\n{sweep}\n"));
        std::fs::write(path("run.toml"), &spec).unwrap();

        let mut collector = start_collector(&ns, &run_id, &path("store"));
        let mut endpoints = Vec::new();
        let mut workers = Vec::new();
        for (name, args) in platforms {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let reference = Reference::start(&path(&format!("{name}.log")), &args);
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
        run_ok(Command::new(bin("analyzer")).args(["report", "--run", &run_id, "--store"]).arg(path("store")).arg("--spec").arg(path("run.toml")).arg("--out").arg(path("report")).args(report_args));
        let report = serde_json::from_str(&std::fs::read_to_string(path("report/report.json")).unwrap()).unwrap();
        let broker = broker().await;
        let names: Vec<String> = platforms.iter().map(|(p, _)| p.to_string()).collect();
        broker.delete(&ns, &names).await.unwrap();
        broker.close().await;
        Self { dir, run_id, rows, report, endpoints }
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p)
    }
}

fn dir_of(run: &SweepRun) -> &std::path::Path {
    run.dir.path()
}

/// The report's knee chart (p99 against offered load), opened alone in a real headless Chromium,
/// shows both platforms' lines (blue and orange, charts.rs) and the target's grey dashes. With
/// `KEEP_KNEE=FILE` the chart's SVG is kept (the README's figure comes from this run).
fn knee_chart_renders(html: &str, dir: &std::path::Path) {
    let caption = html.find("p99 latency against offered load").expect("the knee chart is in the HTML report");
    let start = html[..caption].rfind("<svg").unwrap();
    let end = caption + html[caption..].find("</svg>").unwrap() + "</svg>".len();
    let svg = &html[start..end];
    if let Some(keep) = std::env::var_os("KEEP_KNEE") {
        std::fs::write(keep, svg).unwrap();
    }
    let page = dir.join("knee.html");
    std::fs::write(&page, format!("<!doctype html><html><body style=\"margin:0\">{svg}</body></html>")).unwrap();
    let shot = dir.join("knee.png");
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists()).expect("Chromium (scripts/test.sh installs it)");
    let mut browser = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--hide-scrollbars", "--window-size=760,340"])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ok(&mut browser, Duration::from_secs(60), "chromium");
    let image = image::open(&shot).expect("a PNG screenshot").to_rgb8();
    let count = |rgb: [u8; 3]| image.pixels().filter(|p| p.0.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) < 24)).count();
    let (blue, orange, grey) = (count([31, 119, 180]), count([255, 127, 14]), count([102, 102, 102]));
    assert!(blue > 300 && orange > 300 && grey > 100, "knee chart drawn: {blue} blue, {orange} orange, {grey} grey pixels");
}

/// A reference endpoint's arguments: constant service time, `k` served at once, and `more`.
fn endpoint_args(k: u32, more: &[&str]) -> Vec<String> {
    let mut args = vec!["--service".to_owned(), format!("const:{SERVICE_MS}"), "--capacity".to_owned(), k.to_string()];
    args.extend(more.iter().map(|a| a.to_string()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_finds_each_platforms_known_capacity_and_gates_on_it() {
    // (platform, requests served at once): capacities 50 and 25 requests/s.
    let platforms = [("big", 2u32), ("small", 1u32)];
    let sweep = format!("min_requests = 20\nmin_seconds = 4\nsearch = {{ slo_p99_ms = {TARGET_MS}, max_error_share = 0.01, min_rate = 5, max_rate = 160, precision = 0.05 }}");
    let setups: Vec<(&str, Vec<String>)> = platforms.iter().map(|(name, k)| (*name, endpoint_args(*k, &[]))).collect();
    let run = SweepRun::run("capacity", &sweep, &setups, &["--target-load", "200"]).await;
    let (rows, endpoints, run_id) = (&run.rows, &run.endpoints, &run.run_id);
    let path = |p: &str| run.path(p);
    let capacity = &run.report["capacity"];
    assert_eq!(capacity["target_p99_ms"].as_f64(), Some(TARGET_MS), "{capacity}");

    let mut sustainable = Vec::new();
    for ((name, k), reference) in platforms.iter().zip(endpoints) {
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
    knee_chart_renders(&std::fs::read_to_string(path("report/report.html")).unwrap(), dir_of(&run));

    // The gate: 40 requests/s is within big's capacity and beyond small's.
    let (code, out) = check(&path("store"), run_id, &path("run.toml"), &["--slo", "capacity_rps>=40", "--slo", "availability>=99"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("PASS big capacity_rps>=40") && out.contains("FAIL small capacity_rps>=40"), "{out}");
    let (code, out) = check(&path("store"), run_id, &path("run.toml"), &["--slo", "capacity_rps>=40", "--platform", "big"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = check(&path("store"), run_id, &path("run.toml"), &["--slo", "capacity_rps>>40"]);
    assert_ne!(code, 0, "a bad criterion is an error: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_recovers_when_capacity_comes_and_a_cold_start_shows_in_the_first_answer() {
    // One slot (25/s) until 7 s after the first request, then 4 (100/s); the first request is cold.
    const COLD_MS: f64 = 500.0;
    let args = endpoint_args(1, &["--capacity-at", "7", "--capacity-then", "4", "--cold-ms", "500", "--idle-ms", "2000"]);
    let sweep = format!("min_seconds = 8\nwindow_seconds = 1\nslo_p99_ms = {TARGET_MS}\nsteps = [{{ from = 5, to = 50, at_seconds = 3 }}]");
    let run = SweepRun::run("step", &sweep, &[("auto", args)], &[]).await;
    let step = &run.report["capacity"]["steps"][0];
    // Analytically: from the step at 3 s to the new capacity at 7 s the queue grows by 50 − 25
    // requests a second, to 100; then it drains at 100 − 50 a second, for 2 s: back under the
    // target at 9 s, 6 s after the step. The windows are 1 s wide, so within one window of that.
    let truth = (7.0 - 3.0) + (50.0 - 25.0) * (7.0 - 3.0) / (100.0 - 50.0);
    let recovery = step["recovery_seconds"].as_f64().unwrap_or_else(|| panic!("no recovery: {step}"));
    eprintln!("recovery {recovery} s after the step, analytically {truth} s");
    assert!((recovery - truth).abs() <= 1.0, "recovery {recovery} s, analytically {truth} s: {step}");
    // The windows count every request the server saw.
    let served = run.endpoints[0].served();
    let counted: u64 = step["windows"].as_array().unwrap().iter().map(|w| w["requests"].as_u64().unwrap()).sum();
    assert_eq!(counted, served.len() as u64);
    // The cold start: the first answer took what the server's log says the first request took.
    let first = served.iter().find(|s| s.seq == 0).unwrap();
    assert!(first.service_ms >= COLD_MS, "{first:?}");
    assert_latency_late(step["first_success_ms"].as_f64().unwrap(), first.ms(), 5.0, "first success");
    let markdown = std::fs::read_to_string(run.path("report/report.md")).unwrap();
    assert!(markdown.contains("### Steps: recovery and cold start"), "{markdown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stability_wait_ends_a_steady_stage_early_and_runs_a_drifting_one_to_its_limit() {
    // Capacity 25/s: at 10/s every 1 s window's p99 is the 40 ms service time, so the stage ends
    // once its 2 s span is over and two windows are complete; at 50/s the queue grows by 25
    // requests, a second of waiting, every window, each window's p99 a sixth or more above the
    // last over 6 s, so it runs to its 6 s limit.
    let sweep = "rates = [10, 50]\nmin_requests = 1\nmin_seconds = 2\nwindow_seconds = 1\nstability = { tolerance = 0.1, max_seconds = 6 }";
    let run = SweepRun::run("stable", sweep, &[("one", endpoint_args(1, &[]))], &[]).await;
    let served = run.endpoints[0].served();
    let in_stage = |rate: f64| {
        let row = run.rows.iter().find(|r| r["inference_load"].as_f64() == Some(rate)).unwrap();
        let (start, end) = (row["started_unix_ns"].as_i64().unwrap(), row["finished_unix_ns"].as_i64().unwrap());
        let arrivals: Vec<i64> = served.iter().map(|s| s.arrival_ns).filter(|t| (start..=end).contains(t)).collect();
        assert_eq!(row["inference_requests"].as_u64(), Some(arrivals.len() as u64), "{row}");
        arrivals.len() as f64
    };
    let (steady, drifting) = (in_stage(10.0), in_stage(50.0));
    eprintln!("{steady} requests at 10/s, {drifting} at 50/s");
    // 2 s of 10/s, plus the window after the span it takes for two windows to be complete (and one
    // more should the first two differ by chance).
    assert!((20.0..=41.0).contains(&steady), "{steady} requests at 10/s: the steady stage ran on");
    // 6 s of 50/s: 300 requests, less the last few a late pacer may not have released.
    assert!((285.0..=301.0).contains(&drifting), "{drifting} requests at 50/s: the drifting stage stopped early");
}
