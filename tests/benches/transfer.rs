//! Transfer benchmark (run by `scripts/bench-transfer.sh`): the worker's upload and download phases
//! against the Python SDKs the paper used, on the same local servers, same objects, same concurrency.
//!
//! 1,024 COCO-sized synthetic JPEGs (about 160 MiB) are uploaded and downloaded, each download verified
//! against its SHA-256, by (a) the worker's own phase code with its S3, Azure Blob and Cloud Storage
//! backends and (b) boto3, azure-storage-blob and google-cloud-storage (`scripts/transfer_peer.py`). Each client runs in its own process, so
//! its CPU time (user + system, every thread) is its own; files are read before timing starts. Each
//! point is the median of `CLOUDBENCH_BENCH_TRIALS` runs (default 3), clients alternating.
//!
//! Prints per platform, direction and concurrency: wall seconds, CPU seconds per GiB, and the ratios
//! (Python wall / ours: above 1 means we are faster; our CPU / Python's: below 1/3 is the goal).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use proto::v1::ObjectRef;
use serde_json::{Value, json};
use common::{azure_test_config, env_or, gcs_test_config, s3_test_config};
use storage::{LocalDirStore, RetryPolicy, StorageConfig};
use worker::phases::Transfer;

const IMAGES: u64 = 1024;

fn main() {
    match std::env::var("CLOUDBENCH_TRANSFER_CHILD") {
        Ok(platform) => child(&platform),
        Err(_) => parent(),
    }
}

/// The dataset, generated once and kept under `target/`: `images/` and `manifest.json` beside it.
fn dataset() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data/transfer-1024");
    if !root.join("manifest.json").exists() {
        let images = root.join("images");
        std::fs::create_dir_all(&images).unwrap();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let entries = coordinator::synth::generate(1, IMAGES, threads, |key, data| std::fs::write(images.join(key), data)).unwrap();
        coordinator::manifest::Manifest::new("synth seed 1".into(), entries).unwrap().save(&root.join("manifest.json")).unwrap();
    }
    root
}

fn parent() {
    let root = dataset();
    let trials: usize = env_or("CLOUDBENCH_BENCH_TRIALS", "3").parse().unwrap();
    let levels: Vec<usize> = env_or("CLOUDBENCH_BENCH_CONCURRENCY", "8,32").split(',').map(|c| c.trim().parse().unwrap()).collect();
    let python = env_or("CLOUDBENCH_PYTHON", "python3");
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/transfer_peer.py");
    println!("transfer benchmark: {IMAGES} images from {}, median of {trials} trials per point\n", root.display());
    println!("| platform | direction | requests in flight | client | wall s | CPU s/GiB | wall ratio (peer/ours) | CPU ratio (ours/peer) |");
    println!("|---|---|---:|---|---:|---:|---:|---:|");
    let platforms = env_or("CLOUDBENCH_BENCH_PLATFORMS", "s3,azure,gcs");
    for platform in platforms.split(',').map(str::trim) {
        for &concurrency in &levels {
            let mut ours = Vec::new();
            let mut theirs = Vec::new();
            for trial in 0..trials {
                let bucket = format!("bench-{platform}-{concurrency}-{trial}-{}", std::process::id());
                let mut rust = Command::new(std::env::current_exe().unwrap());
                rust.env("CLOUDBENCH_TRANSFER_CHILD", platform)
                    .env("CLOUDBENCH_BENCH_DIR", &root)
                    .env("CLOUDBENCH_BENCH_BUCKET", format!("{bucket}-rs"))
                    .env("CLOUDBENCH_BENCH_CONC", concurrency.to_string());
                let mut py = Command::new(&python);
                py.arg(&peer)
                    .args(["--platform", platform, "--concurrency", &concurrency.to_string(), "--bucket", &format!("{bucket}-py"), "--dir"])
                    .arg(root.join("images"));
                // Alternate which client goes first, so neither always meets a warmer server.
                if trial % 2 == 0 {
                    ours.push(measure(&mut rust));
                    theirs.push(measure(&mut py));
                } else {
                    theirs.push(measure(&mut py));
                    ours.push(measure(&mut rust));
                }
            }
            for direction in ["upload", "download"] {
                let (a, b) = (median(&ours, direction), median(&theirs, direction));
                let gib = a.bytes / (1u64 << 30) as f64;
                let (a_cpu, b_cpu) = (a.cpu_s / gib, b.cpu_s / gib);
                println!("| {platform} | {direction} | {concurrency} | {} | {:.3} | {a_cpu:.2} | {:.2}× | {:.2} |", a.client, a.wall_s, b.wall_s / a.wall_s, a_cpu / b_cpu);
                println!("| {platform} | {direction} | {concurrency} | {} | {:.3} | {b_cpu:.2} | | |", b.client, b.wall_s);
            }
        }
    }
}

#[derive(Clone)]
struct Point {
    client: String,
    bytes: f64,
    wall_s: f64,
    cpu_s: f64,
}

fn measure(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8_lossy(&out.stdout);
    let value: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{cmd:?} printed {line:?}: {e}"));
    assert_eq!(value["errors"], 0, "{cmd:?}: {value}");
    value
}

fn median(runs: &[Value], direction: &str) -> Point {
    let mut points: Vec<Point> = runs
        .iter()
        .map(|v| Point {
            client: v["client"].as_str().unwrap().to_owned(),
            bytes: v["bytes"].as_f64().unwrap(),
            wall_s: v[direction]["wall_s"].as_f64().unwrap(),
            cpu_s: v[direction]["cpu_s"].as_f64().unwrap(),
        })
        .collect();
    points.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
    points[points.len() / 2].clone()
}

/// CPU seconds (user + system, every thread) this process has used.
fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// One client run of the worker's phases, printed as the peer prints its own.
fn child(platform: &str) {
    let root = PathBuf::from(std::env::var("CLOUDBENCH_BENCH_DIR").unwrap());
    let bucket = std::env::var("CLOUDBENCH_BENCH_BUCKET").unwrap();
    let concurrency: usize = std::env::var("CLOUDBENCH_BENCH_CONC").unwrap().parse().unwrap();
    let manifest = coordinator::manifest::Manifest::load(&root.join("manifest.json")).unwrap();
    let objects: Vec<ObjectRef> =
        manifest.objects.iter().map(|e| ObjectRef { key: e.key.clone(), size: e.size, sha256: e.sha256.clone() }).collect();
    let (config, client) = match platform {
        "s3" => (StorageConfig::S3(s3_test_config(&bucket)), "cloudbench worker (aws-sdk-s3)"),
        "gcs" => (StorageConfig::Gcs(gcs_test_config(&bucket)), "cloudbench worker (google-cloud-storage)"),
        _ => (StorageConfig::Azure(azure_test_config(&bucket)), "cloudbench worker (azure_storage_blob)"),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = runtime.block_on(async {
        config.create().await.unwrap();
        let target = config.open().await.unwrap();
        let source = LocalDirStore::open(root.join("images"), false).unwrap();
        let transfer = Transfer {
            source: &source,
            target: target.as_ref(),
            concurrency,
            prefix: "bench".into(),
            keep_uploads: false,
            retry: RetryPolicy::default(),
        };
        let (_, ready) = transfer.read_source(&objects).await.unwrap();
        let bytes: usize = ready.iter().map(|(_, d)| d.len()).sum();
        let (cpu, wall) = (cpu_seconds(), Instant::now());
        let (upload, uploaded) = transfer.upload(&objects, &ready).await.unwrap();
        let (upload_cpu, upload_wall) = (cpu_seconds() - cpu, wall.elapsed().as_secs_f64());
        let (cpu, wall) = (cpu_seconds(), Instant::now());
        let download = transfer.download(&objects, &uploaded).await.unwrap();
        let (download_cpu, download_wall) = (cpu_seconds() - cpu, wall.elapsed().as_secs_f64());
        transfer.clean_up(&objects, &uploaded).await;
        json!({
            "client": client,
            "platform": platform,
            "objects": ready.len(),
            "bytes": bytes,
            "concurrency": concurrency,
            "upload": {"wall_s": upload_wall, "cpu_s": upload_cpu},
            "download": {"wall_s": download_wall, "cpu_s": download_cpu},
            "errors": upload.failed + download.failed,
            "retries": upload.retries.values().sum::<u64>() + download.retries.values().sum::<u64>(),
        })
    });
    println!("{result}");
}
