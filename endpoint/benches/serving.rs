//! Serving benchmark: what the endpoint server costs over calling the detector in process, and how it
//! compares with the paper's Azure approach, a Python Flask server around ONNX Runtime.
//!
//!     scripts/bench-endpoint.sh        (or `cargo bench -p endpoint --bench serving`)
//!
//! In one run, on the same weights and the same JPEGs (640×480, COCO's median size):
//! 1. in process: decode, letterbox and detect, one image per pass and `max_batch` per pass, one caller
//!    (the model uses every core), measured at the start of every round: a reference, not a
//!    ceiling, since one caller decodes and detects in turn while a server decodes the next
//!    requests during a pass (the server beat it by 29–47% on 2 cores, 2026-12-07);
//! 2. the endpoint (this crate's server on a loopback port, dynamic batching up to `max_batch`),
//!    loaded by the worker's HTTP invoker at each concurrency;
//! 3. `scripts/flask_peer.py` (Flask + ONNX Runtime, 2 intra-op threads) at the same concurrencies,
//!    when Python has flask and onnxruntime (`CLOUDBENCH_BENCH_PYTHON` names the interpreter).
//!
//! The two servers run side by side for the whole benchmark and take turns, level by level, in
//! `CLOUDBENCH_BENCH_ROUNDS` rounds: each figure is the median over rounds with its range, and a
//! ratio is the median of each round's ratio, so a drift of the shared machine's speed moves both
//! sides of it.
//!
//! Settings: `CLOUDBENCH_WEIGHTS` (default: the random-weight YOLOv8n fixture), `CLOUDBENCH_BENCH_IMGSZ`
//! (640), `CLOUDBENCH_BENCH_IMAGES` (requests per point, 48), `CLOUDBENCH_BENCH_CONCURRENCY`
//! (`1,2,4,8,16`), `CLOUDBENCH_BENCH_MAX_BATCH` (8), `CLOUDBENCH_BENCH_ROUNDS` (3).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use detector::{Detector, PostOptions};
use endpoint::{BatchConfig, ServerConfig};
use futures::StreamExt;
use invoke::client::{HttpConfig, HttpInvoker, Invoker};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Eight different 640×480 JPEGs: smooth gradients with blocks, about the size of COCO's photos.
fn jpegs() -> Vec<Bytes> {
    (0..8u32)
        .map(|seed| {
            let image = image::RgbImage::from_fn(640, 480, |x, y| {
                let block = ((x / 40 + y / 30 + seed) % 7) as u8;
                image::Rgb([(x / 3) as u8 ^ (block * 30), (y / 2) as u8, ((x + y + seed * 50) / 5) as u8])
            });
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode_image(&image).unwrap();
            Bytes::from(out)
        })
        .collect()
}

#[derive(Clone, Copy)]
struct Point {
    images_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The median of `values` (the mean of the middle two when even) and their range.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
    (median, values[0], values[n - 1])
}

/// `median (min–max)` of one figure of a level over the rounds.
fn cell(rounds: &[Vec<Point>], level: usize, figure: fn(&Point) -> f64, digits: usize) -> String {
    let (median, lo, hi) = spread(rounds.iter().map(|r| figure(&r[level])).collect());
    format!("{median:.digits$} ({lo:.digits$}–{hi:.digits$})")
}

/// The round's best throughput over the levels, with that level's p99.
fn saturation(round: &[Point]) -> Point {
    *round.iter().max_by(|a, b| a.images_per_s.total_cmp(&b.images_per_s)).expect("at least one level")
}

/// Sends `count` images through `invoker` with `concurrency` in flight.
async fn load(invoker: &dyn Invoker, images: &[Bytes], count: usize, concurrency: usize) -> Point {
    // One request per in-flight slot first, so connections and the model are warm.
    futures::stream::iter(0..concurrency)
        .map(|i| invoker.invoke(images[i % images.len()].clone(), "image/jpeg"))
        .buffer_unordered(concurrency)
        .for_each(|r| async move {
            r.unwrap_or_else(|e| panic!("warm-up request to {}: {e}", invoker.describe()));
        })
        .await;
    let started = Instant::now();
    let mut latencies: Vec<f64> = futures::stream::iter(0..count)
        .map(|i| async move {
            let t = Instant::now();
            invoker.invoke(images[i % images.len()].clone(), "image/jpeg").await.unwrap_or_else(|e| panic!("request to {}: {e}", invoker.describe()));
            t.elapsed().as_secs_f64() * 1e3
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let took = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Point { images_per_s: count as f64 / took, p50_ms: quantile(&latencies, 0.5), p99_ms: quantile(&latencies, 0.99) }
}

/// Decode and detect in passes of `batch`, as a worker with the model in process would.
fn in_process(detector: &Detector, images: &[Bytes], count: usize, batch: usize) -> f64 {
    let pass = |from: usize, n: usize| {
        let decoded: Vec<_> = (from..from + n).map(|i| detector::pre::decode(&images[i % images.len()], u64::MAX).unwrap()).collect();
        detector.detect_with(&decoded, &vec![PostOptions::default(); n]);
    };
    pass(0, batch);
    let started = Instant::now();
    let mut done = 0;
    while done < count {
        let n = batch.min(count - done);
        pass(done, n);
        done += n;
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// A child process killed when dropped, also when the benchmark panics.
struct Peer(std::process::Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the Flask peer when its interpreter has what it needs; returns the process and its URL.
fn start_flask(weights: &std::path::Path, imgsz: u32) -> Option<(Peer, String)> {
    let python = std::env::var("CLOUDBENCH_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let ready = Command::new(&python).args(["-c", "import flask, onnxruntime, PIL, numpy"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ready {
        eprintln!("Flask peer skipped: {python} lacks flask, onnxruntime, pillow or numpy (pip install -r scripts/requirements-bench.txt)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/flask_peer.py");
    let mut child = Command::new(&python)
        .arg(script)
        .arg(weights)
        .arg(port.to_string())
        .args(["--threads", "2", "--imgsz", &imgsz.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut lines = BufReader::new(child.stderr.take()?).lines();
    let child = Peer(child);
    for line in lines.by_ref() {
        if line.ok()?.contains("listening on") {
            std::thread::spawn(move || lines.for_each(drop));
            return Some((child, format!("http://127.0.0.1:{port}/score")));
        }
    }
    None
}

fn main() {
    storage::tls::install_ring();
    let weights: PathBuf = std::env::var("CLOUDBENCH_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../detector/fixtures/yolov8n-random.onnx"));
    let imgsz: u32 = env_or("CLOUDBENCH_BENCH_IMGSZ", 640);
    let count: usize = env_or("CLOUDBENCH_BENCH_IMAGES", 48);
    let max_batch: usize = env_or("CLOUDBENCH_BENCH_MAX_BATCH", 8);
    let levels: Vec<usize> = std::env::var("CLOUDBENCH_BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "1,2,4,8,16".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let images = jpegs();
    let load_detector = || {
        let mut d = Detector::load(&weights, &detector::Device::flex()).expect("weights");
        d.input_size = imgsz;
        d
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("serving benchmark: {} at {imgsz}×{imgsz}, {count} requests per point, max batch {max_batch}, {threads} cores", weights.display());

    // The in-process reference is the better of one image per pass and full passes: on a CPU,
    // larger passes are not always faster per image.
    // Measured in every round, beside the servers, so that the reference drifts with the machine too.
    let detector = load_detector();

    let rounds: usize = env_or("CLOUDBENCH_BENCH_ROUNDS", 3usize).max(1);
    let isa = detector::host::Isa::detect();
    println!("host kernels: {} (this processor has {})", isa.name(), detector::host::Isa::available().iter().map(|i| i.name()).collect::<Vec<_>>().join(", "));
    let flask = start_flask(&weights, imgsz);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (ours, peer, references) = runtime.block_on(async {
        let batch = BatchConfig { max_batch, max_wait: Duration::from_millis(5), queue: 1024, adaptive: true };
        let app = endpoint::app(load_detector(), batch, ServerConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/score", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let invoker = HttpInvoker::new(&HttpConfig { url, auth: None, server_time: None }).unwrap();
        let peer_invoker = flask.as_ref().map(|(_, url)| HttpInvoker::new(&HttpConfig { url: url.clone(), auth: None, server_time: None }).unwrap());
        let (mut ours, mut peer, mut references) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            // The server's model is idle meanwhile; the in-process passes hold this runtime thread.
            let (single, batched) = tokio::task::block_in_place(|| (in_process(&detector, &images, count, 1), in_process(&detector, &images, count, max_batch)));
            println!("in process (decode + detect): {single:.2} images/s one per pass, {batched:.2} in passes of {max_batch}");
            references.push(single.max(batched));
            let (mut o, mut p) = (Vec::new(), Vec::new());
            for &c in &levels {
                o.push(load(&invoker, &images, count, c).await);
                if let Some(peer_invoker) = &peer_invoker {
                    p.push(load(peer_invoker, &images, count, c).await);
                }
            }
            ours.push(o);
            if !p.is_empty() {
                peer.push(p);
            }
        }
        server.abort();
        (ours, peer, references)
    });
    drop(flask);

    println!();
    println!("{rounds} rounds, the two servers taking turns at each level; median over rounds (min–max)");
    println!();
    println!("| in flight | endpoint img/s | p50 ms | p99 ms | Flask+ORT img/s | p50 ms | p99 ms | endpoint / Flask |");
    println!("|---:|---|---|---|---|---|---|---:|");
    for (i, c) in levels.iter().enumerate() {
        let ours_cells = format!("{} | {} | {}", cell(&ours, i, |p| p.images_per_s, 2), cell(&ours, i, |p| p.p50_ms, 0), cell(&ours, i, |p| p.p99_ms, 0));
        if peer.is_empty() {
            println!("| {c} | {ours_cells} | | | | |");
            continue;
        }
        let ratio = spread(ours.iter().zip(&peer).map(|(o, p)| o[i].images_per_s / p[i].images_per_s).collect()).0;
        println!(
            "| {c} | {ours_cells} | {} | {} | {} | {ratio:.2}× |",
            cell(&peer, i, |p| p.images_per_s, 2),
            cell(&peer, i, |p| p.p50_ms, 0),
            cell(&peer, i, |p| p.p99_ms, 0)
        );
    }
    let best = spread(ours.iter().map(|r| saturation(r).images_per_s).collect());
    let reference = spread(references.clone());
    let share = spread(ours.iter().zip(&references).map(|(r, c)| saturation(r).images_per_s / c).collect());
    println!();
    println!(
        "endpoint at saturation: {:.2} images/s ({:.2}–{:.2}) = {:.3} ({:.3}–{:.3}) of in-process {:.2} in the same rounds (one caller decoding and detecting in turn: {:+.1}% for the server)",
        best.0,
        best.1,
        best.2,
        share.0,
        share.1,
        share.2,
        reference.0,
        (share.0 - 1.0) * 100.0
    );
    if !peer.is_empty() {
        let peer_best = spread(peer.iter().map(|r| saturation(r).images_per_s).collect());
        let ratio = spread(ours.iter().zip(&peer).map(|(o, p)| saturation(o).images_per_s / saturation(p).images_per_s).collect());
        let p99 = (spread(ours.iter().map(|r| saturation(r).p99_ms).collect()).0, spread(peer.iter().map(|r| saturation(r).p99_ms).collect()).0);
        println!(
            "Flask + ONNX Runtime at saturation: {:.2} images/s ({:.2}–{:.2}); endpoint / Flask = {:.2}× ({:.2}–{:.2}); p99 at saturation {:.0} against {:.0} ms",
            peer_best.0, peer_best.1, peer_best.2, ratio.0, ratio.1, ratio.2, p99.0, p99.1
        );
    }
}
