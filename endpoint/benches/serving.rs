//! Serving benchmark: what the endpoint server costs over calling the detector in process, and how it
//! compares with the paper's Azure approach, a Python Flask server around ONNX Runtime.
//!
//!     scripts/bench-endpoint.sh        (or `cargo bench -p endpoint --bench serving`)
//!
//! In one run, on the same weights and the same JPEGs (640×480, COCO's median size):
//! 1. in process: decode, letterbox and detect, one image per pass and `max_batch` per pass, one caller
//!    (the model uses every core); the better of the two is the ceiling a server can approach;
//! 2. the endpoint (this crate's server on a loopback port, dynamic batching up to `max_batch`),
//!    loaded by the worker's HTTP invoker at each concurrency;
//! 3. `scripts/flask_peer.py` (Flask + ONNX Runtime, 2 intra-op threads) at the same concurrencies,
//!    when Python has flask and onnxruntime (`CLOUDBENCH_BENCH_PYTHON` names the interpreter).
//!
//! Settings: `CLOUDBENCH_WEIGHTS` (default: the random-weight YOLOv8n fixture), `CLOUDBENCH_BENCH_IMGSZ`
//! (640), `CLOUDBENCH_BENCH_IMAGES` (requests per point, 48), `CLOUDBENCH_BENCH_CONCURRENCY`
//! (`1,2,4,8,16`), `CLOUDBENCH_BENCH_MAX_BATCH` (8).

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

struct Point {
    images_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
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

    // The ceiling is the better of one image per pass and full passes: on a CPU, larger passes are not
    // always faster per image.
    let detector = load_detector();
    let single = in_process(&detector, &images, count, 1);
    let batched = in_process(&detector, &images, count, max_batch);
    drop(detector);
    let ceiling = single.max(batched);
    println!("in process (decode + detect): {single:.2} images/s one per pass, {batched:.2} in passes of {max_batch}");

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (ours, peer) = runtime.block_on(async {
        let batch = BatchConfig { max_batch, max_wait: Duration::from_millis(5), queue: 1024, adaptive: true };
        let app = endpoint::app(load_detector(), batch, ServerConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/score", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let invoker = HttpInvoker::new(&HttpConfig { url, auth: None, server_time: None }).unwrap();
        let mut ours = Vec::new();
        for &c in &levels {
            ours.push(load(&invoker, &images, count, c).await);
        }
        server.abort();
        let mut peer = Vec::new();
        if let Some((_child, url)) = start_flask(&weights, imgsz) {
            let invoker = HttpInvoker::new(&HttpConfig { url, auth: None, server_time: None }).unwrap();
            for &c in &levels {
                peer.push(load(&invoker, &images, count, c).await);
            }
        }
        (ours, peer)
    });

    println!();
    println!("| in flight | endpoint img/s | p50 ms | p99 ms | Flask+ORT img/s | p50 ms | p99 ms | endpoint / Flask |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, c) in levels.iter().enumerate() {
        let o = &ours[i];
        match peer.get(i) {
            Some(p) => println!(
                "| {c} | {:.2} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2}× |",
                o.images_per_s, o.p50_ms, o.p99_ms, p.images_per_s, p.p50_ms, p.p99_ms, o.images_per_s / p.images_per_s
            ),
            None => println!("| {c} | {:.2} | {:.0} | {:.0} | | | | |", o.images_per_s, o.p50_ms, o.p99_ms),
        }
    }
    let best = ours.iter().map(|p| p.images_per_s).fold(0.0, f64::max);
    println!();
    println!(
        "endpoint at saturation: {best:.2} images/s = {:.3} of in-process {ceiling:.2} (server overhead {:.1}%; goal under 10%)",
        best / ceiling,
        (1.0 - best / ceiling) * 100.0
    );
    if !peer.is_empty() {
        let peer_best = peer.iter().map(|p| p.images_per_s).fold(0.0, f64::max);
        println!("Flask + ONNX Runtime at saturation: {peer_best:.2} images/s; endpoint / Flask = {:.2}×", best / peer_best);
    }
}
