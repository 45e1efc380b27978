//! The known-truth tier's helpers: a reference endpoint in a process of its own
//! (`tests/truth/refendpoint.py`) whose service times are programmed and whose log says when each
//! request arrived and departed, and a run of workers against such endpoints, one per platform.
//! The figures the system reports are compared with the log, never with the system's own output.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;
use control::Broker;

/// Path of a script of the truth tier.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("truth").join(name)
}

/// Starts `python3 SCRIPT ARGS` and waits (10 s at most) for its `listening on ADDRESS` line.
pub fn start_listening(script_name: &str, args: &[String]) -> (Child, String) {
    let mut child = Child(
        Command::new("python3")
            .arg(script(script_name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be installed"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if let Some(address) = line.strip_prefix("listening on ") {
                let _ = tx.send(address.to_owned());
            }
        }
    });
    let address = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("{script_name} did not start listening within 10 s"));
    (child, address)
}

/// A reference endpoint: its process, its URL and its log.
pub struct Reference {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Reference {
    /// Starts one with these arguments (`--service`, `--seed`, `--stall-at`, ...), logging to `log`.
    pub fn start(log: &Path, args: &[&str]) -> Self {
        let mut all: Vec<String> = vec!["--port".into(), "0".into(), "--log".into(), log.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        let (child, url) = start_listening("refendpoint.py", &all);
        Self { child, url, log: log.to_owned() }
    }

    /// Every request it answered, in order of arrival.
    pub fn served(&self) -> Vec<Served> {
        let text = std::fs::read_to_string(&self.log).unwrap();
        let mut served: Vec<Served> = text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l}: {e}"))).collect();
        served.sort_by_key(|s| s.seq);
        served
    }
}

/// One line of the reference endpoint's log.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Served {
    pub seq: u64,
    pub arrival_ns: i64,
    pub departure_ns: i64,
    pub status: u16,
    pub outcome: String,
    pub sha256: String,
    /// How long the server's one stall held this request.
    pub stalled_ms: f64,
    /// How long it waited for a slot (`--capacity`), and its service time.
    #[serde(default)]
    pub queued_ms: f64,
    #[serde(default)]
    pub service_ms: f64,
}

impl Served {
    /// How long the server held the request, in milliseconds.
    pub fn ms(&self) -> f64 {
        (self.departure_ns - self.arrival_ns) as f64 / 1e6
    }
}

/// The nearest-rank `q` quantile of `values` (the convention HdrHistogram reports): the smallest
/// value with at least `q` of all values at or below it.
pub fn nearest_rank(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Asserts a reported latency is the truth within 2% + 1 ms, the bound: the client's own
/// share of a request on loopback is a millisecond or two, the histogram's error under 0.1%.
pub fn assert_latency(reported_ms: f64, truth_ms: f64, what: &str) {
    assert_latency_late(reported_ms, truth_ms, 0.0, what);
}

/// As [`assert_latency`], allowing the report up to `late_ms` more: an open-loop latency counts from
/// the request's intended start, and the server cannot see how late the client sent it.
pub fn assert_latency_late(reported_ms: f64, truth_ms: f64, late_ms: f64, what: &str) {
    let bound = 0.02 * truth_ms + 1.0;
    assert!(
        reported_ms >= truth_ms - bound && reported_ms <= truth_ms + late_ms + bound,
        "{what}: reported {reported_ms:.3} ms, the server's log says {truth_ms:.3} ms (bound -{bound:.3}/+{:.3} ms)",
        bound + late_ms
    );
}

/// One platform of a [`TruthRun`]: its name, reference-endpoint arguments and the worker's load.
pub struct PlatformSetup<'a> {
    pub name: &'a str,
    pub endpoint: Vec<&'a str>,
    pub load: Vec<&'a str>,
}

/// A finished run of one worker process per platform, each calling its own reference endpoint, the
/// platforms one after another.
pub struct TruthRun {
    pub dir: tempfile::TempDir,
    pub run_id: String,
    pub manifest: coordinator::manifest::Manifest,
    pub batch_size: u32,
    pub endpoints: HashMap<String, Reference>,
    pub rows: Vec<serde_json::Value>,
    pub report: serde_json::Value,
}

impl TruthRun {
    /// Runs `images` random images of `size` bytes in batches of `batch_size` through every
    /// platform, collects the run, exports it and writes its report; fails after `timeout`.
    pub async fn run(tag: &str, images: usize, size: usize, batch_size: u32, platforms: &[PlatformSetup<'_>], timeout: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = |p: &str| dir.path().join(p);
        let ns = namespace(tag);
        let run_id = unique(tag);
        let manifest = dataset(&path("data"), images, size);
        let mut spec = format!("run_id = \"{run_id}\"\nmanifest = \"{}\"\nbatch_size = {batch_size}\n", path("data/manifest.json").display());
        for p in platforms {
            spec.push_str(&format!("[[platform]]\nname = \"{}\"\n", p.name));
        }
        std::fs::write(path("run.toml"), spec).unwrap();

        let mut collector = start_collector(&ns, &run_id, &path("store"));
        run(Command::new(bin("coordinator")).args(["--namespace", ns.as_str(), "run"]).arg(path("run.toml")));
        // One platform at a time: each worker starts when the previous platform's endpoint has
        // answered every image, so that no platform's figures carry another's load on the machine.
        let deadline = std::time::Instant::now() + timeout;
        let mut endpoints = HashMap::new();
        let mut workers = Vec::new();
        for p in platforms {
            let reference = Reference::start(&path(&format!("{}.log", p.name)), &p.endpoint);
            let bucket = path(&format!("bucket-{}", p.name));
            std::fs::create_dir_all(&bucket).unwrap();
            let mut worker = Command::new(bin("worker"));
            worker
                .args(["--namespace", ns.as_str(), "--platform", p.name, "--heartbeat-secs", "1", "--dataset-dir"])
                .arg(path("data"))
                .arg("--storage-dir")
                .arg(&bucket)
                .args(["--inference", &format!("{}/score", reference.url)])
                .args(&p.load)
                .env("RUST_LOG", "warn")
                .stderr(Stdio::null());
            workers.push(Child(with_cloud_env(&mut worker).spawn().unwrap()));
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            wait_for(&format!("{}'s endpoint to answer every image", p.name), left, || {
                let answered = std::fs::read_to_string(&reference.log)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Served>(l).ok())
                    .map(|s| s.sha256)
                    .collect::<std::collections::HashSet<_>>()
                    .len();
                async move { (answered >= images).then_some(()) }
            })
            .await;
            endpoints.insert(p.name.to_owned(), reference);
        }
        wait_collected(&mut collector, deadline.saturating_duration_since(std::time::Instant::now())).await;
        drop(workers);

        let rows = export_rows(&run_id, &path("store"));
        let csv = run_ok(Command::new(bin("analyzer")).args(["export", "--format", "csv", "--run", &run_id, "--store"]).arg(path("store")));
        std::fs::write(path("export.csv"), csv).unwrap();
        run_ok(Command::new(bin("analyzer")).args(["report", "--run", &run_id, "--store"]).arg(path("store")).arg("--out").arg(path("report")));
        let report = serde_json::from_str(&std::fs::read_to_string(path("report/report.json")).unwrap()).unwrap();
        let broker = broker().await;
        let names: Vec<String> = platforms.iter().map(|p| p.name.to_owned()).collect();
        broker.delete(&ns, &names).await.unwrap();
        broker.close().await;
        Self { dir, run_id, manifest, batch_size, endpoints, rows, report }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The exported rows of `platform`, by batch index.
    pub fn rows_of(&self, platform: &str) -> Vec<&serde_json::Value> {
        let mut rows: Vec<&serde_json::Value> = self.rows.iter().filter(|r| r["platform"] == platform).collect();
        rows.sort_by_key(|r| r["batch_index"].as_u64());
        rows
    }

    /// The batch each image belongs to, by the SHA-256 the endpoint logs for its body.
    pub fn batch_of_body(&self) -> HashMap<String, u64> {
        let batches = coordinator::plan::batch_count(self.manifest.objects.len(), self.batch_size);
        (0..batches)
            .flat_map(|b| coordinator::plan::batch(&self.manifest, self.batch_size, b).iter().map(move |e| (e.sha256.clone(), u64::from(b))))
            .collect()
    }

    /// The report's merged latency row of `platform` and `phase`.
    pub fn latency_row(&self, platform: &str, phase: &str) -> &serde_json::Value {
        self.report["latency"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["platform"] == platform && l["phase"] == phase)
            .unwrap_or_else(|| panic!("no {phase} latency row for {platform}: {}", self.report["latency"]))
    }

    /// The report's section of `metric` ("upload", "download", "inference", "throughput").
    pub fn section(&self, metric: &str) -> &serde_json::Value {
        self.report["metrics"].as_array().unwrap().iter().find(|s| s["key"] == metric).unwrap_or_else(|| panic!("no {metric} section"))
    }
}
