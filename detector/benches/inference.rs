//! Inference benchmark (`scripts/bench-detector.sh`): YOLOv8n at 640×640, batch 1 and batch 8, two
//! threads, this crate on the CPU (Flex with its host kernels) against ONNX Runtime on the same ONNX
//! file in the same run, and the same model on Burn's tensor ops alone (what stock Burn Flex does).
//!
//! Each side runs in its own process (so its peak memory is its own) on the same inputs: one warm-up
//! pass, then passes until its share of `CLOUDBENCH_BENCH_SECONDS` (default 20) have gone by, in
//! `CLOUDBENCH_BENCH_ROUNDS` rounds (default 3) of every engine in turn. Prints images per
//! second, the ratio to ONNX Runtime, the GFLOP/s that is (the convolutions' FLOPs, the same model
//! for every engine) against the peak of the host kernels' GEMM microkernel measured in the same
//! run, and peak resident memory.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use detector::{Tensor, TensorData, Weights, YoloV8};
use serde_json::{Value, json};

const SIZE: usize = 640;
const THREADS: usize = 2;

fn weights() -> PathBuf {
    std::env::var_os("CLOUDBENCH_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/yolov8n-random.onnx"))
}

/// Rounds of the engines in turn (`CLOUDBENCH_BENCH_ROUNDS`, default 3): on a shared machine
/// whose speed drifts, engines measured in the same round are compared, and the spread shows.
fn rounds() -> usize {
    std::env::var("CLOUDBENCH_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).filter(|&n| n > 0).unwrap_or(3)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 }
}

fn budget() -> Duration {
    Duration::from_secs_f64(std::env::var("CLOUDBENCH_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20.0))
}

/// The device this crate runs on: `CLOUDBENCH_DETECTOR_DEVICE` (`flex` unless set; `wgpu` in a build
/// with the `wgpu` feature). ONNX Runtime stays on the CPU as the reference.
fn device_name() -> String {
    std::env::var("CLOUDBENCH_DETECTOR_DEVICE").unwrap_or_else(|_| "flex".into())
}

fn main() {
    if let Ok(batch) = std::env::var("CLOUDBENCH_DETECTOR_CHILD") {
        child(batch.parse().unwrap());
        return;
    }
    let python = std::env::var("CLOUDBENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let peer = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/ort_bench.py");
    let model = YoloV8::from_weights(&Weights::load(&weights()).unwrap(), &detector::Device::flex()).unwrap();
    let flops = model.flops(SIZE, SIZE) as f64;
    let isa = detector::host::Isa::detect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(THREADS).build().unwrap();
    // The machine's peak: the convolutions' own microkernel on data in L1, on every thread at once.
    let peak = pool.install(|| detector::host::peak_gflops(isa, 2.0));
    println!("YOLOv8{} {SIZE}×{SIZE}, {:.2} GFLOP per image, {THREADS} threads, device {}, weights {}", model.variant(), flops / 1e9, device_name(), weights().display());
    println!(
        "host kernels: the gemm crate's {} GEMMs (this processor has {}); peak {peak:.1} GFLOP/s on {THREADS} threads (a 6×{} microkernel on data in L1)\n",
        isa.name(),
        detector::host::Isa::available().iter().map(|i| i.name()).collect::<Vec<_>>().join(", "),
        isa.nr()
    );
    let rounds = rounds();
    println!("{rounds} rounds, the engines one after another in each; images/s is the median over rounds (min–max), the ratio the median of each round's ratio to ONNX Runtime; GFLOP/s counts a direct convolution's multiply-adds (Winograd's algorithm does fewer, so a layer of it can pass the peak)\n");
    println!("| batch | engine | images/s | min–max | ratio to ONNX Runtime | GFLOP/s | share of peak | peak RSS MiB |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let mut layers = Vec::new();
    let per_round = budget().as_secs_f64() / rounds as f64;
    for batch in [1usize, 8] {
        let child = |ops: &str| {
            run(Command::new(std::env::current_exe().unwrap())
                .env("CLOUDBENCH_DETECTOR_CHILD", batch.to_string())
                .env("CLOUDBENCH_DETECTOR_OPS", ops)
                .env("CLOUDBENCH_BENCH_SECONDS", per_round.to_string()))
        };
        // Ours, ours without Winograd, stock Burn (the CPU's rows only: on a GPU the model runs on
        // tensor ops anyway) and ONNX Runtime, in turn, every round.
        let flex = device_name() == "flex";
        let mut engines: Vec<Vec<Value>> = vec![Vec::new(); 4];
        for _ in 0..rounds {
            engines[0].push(child("host"));
            if flex {
                engines[1].push(child("gemm"));
                engines[2].push(child("burn"));
            }
            engines[3].push(run(Command::new(&python).arg(&peer).arg(weights()).args([batch.to_string(), THREADS.to_string(), per_round.to_string()])));
        }
        if let Some(list) = engines[0][0]["layers"].as_array() {
            layers = list.clone();
        }
        let rate = |r: &Value| r["images_per_s"].as_f64().unwrap();
        for results in engines.iter().filter(|r| !r.is_empty()) {
            let rates: Vec<f64> = results.iter().map(rate).collect();
            let ratios: Vec<f64> = results.iter().zip(&engines[3]).map(|(r, reference)| rate(r) / rate(reference)).collect();
            let median_rate = median(&rates);
            let (low, high) = (rates.iter().copied().fold(f64::INFINITY, f64::min), rates.iter().copied().fold(0.0, f64::max));
            let rss = results.iter().map(|r| r["peak_rss_mib"].as_f64().unwrap()).fold(0.0, f64::max);
            let achieved = median_rate * flops / 1e9;
            println!(
                "| {batch} | {} | {median_rate:.2} | {low:.2}–{high:.2} | {:.2} | {achieved:.1} | {:.0}% | {rss:.0} |",
                results[0]["engine"].as_str().unwrap(),
                median(&ratios),
                100.0 * achieved / peak
            );
        }
    }
    print_layers(&layers, peak);
}

/// The convolutions of one batch-1 pass by shape, slowest first, against the peak.
fn print_layers(layers: &[Value], peak: f64) {
    if layers.is_empty() {
        return;
    }
    let total: f64 = layers.iter().map(|l| l["ms"].as_f64().unwrap()).sum();
    println!("\nConvolutions of one batch-1 pass, {total:.1} ms in all, slowest shapes first:\n");
    println!("| layer (in→out k×k/stride at input) | calls | ms | GFLOP/s | share of peak |");
    println!("|---|---:|---:|---:|---:|");
    for l in layers.iter().take(10) {
        let gflops = l["gflops"].as_f64().unwrap();
        println!("| {} | {} | {:.2} | {gflops:.1} | {:.0}% |", l["shape"].as_str().unwrap(), l["calls"], l["ms"].as_f64().unwrap(), 100.0 * gflops / peak);
    }
}

fn run(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{cmd:?} printed {:?}: {e}", String::from_utf8_lossy(&out.stdout)))
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0.0);
    kib / 1024.0
}

fn child(batch: usize) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(THREADS).build().unwrap();
    let device = detector::device(&device_name()).unwrap_or_else(|e| panic!("{e}"));
    let ops = std::env::var("CLOUDBENCH_DETECTOR_OPS").unwrap_or_default();
    let weights = Weights::load(&weights()).unwrap();
    let model = match ops.as_str() {
        "burn" => YoloV8::from_weights_on_burn_ops(&weights, &device),
        "gemm" => YoloV8::from_weights_without_winograd(&weights),
        _ => YoloV8::from_weights(&weights, &device),
    }
    .unwrap();
    let speed = pool.install(|| detector::selfcheck::speed(&model, &device, batch, budget()));
    // The layers, worst first: one more pass, each convolution timed.
    let layers = (batch == 1 && ops == "host" && device_name() == "flex").then(|| {
        let x = Tensor::<4>::from_data(TensorData::new(detector::reference::input(batch, SIZE, SIZE), [batch, 3, SIZE, SIZE]), &device);
        let (_, calls) = pool.install(|| detector::host::profile(|| model.forward(x).into_data()));
        let mut by_shape: Vec<(String, u64, f64, usize)> = Vec::new();
        for call in calls {
            match by_shape.iter_mut().find(|(s, ..)| *s == call.shape) {
                Some(entry) => {
                    entry.1 += call.flops;
                    entry.2 += call.seconds;
                    entry.3 += 1;
                }
                None => by_shape.push((call.shape, call.flops, call.seconds, 1)),
            }
        }
        by_shape.sort_by(|a, b| b.2.total_cmp(&a.2));
        by_shape.iter().map(|(shape, flops, seconds, calls)| json!({"shape": shape, "calls": calls, "ms": seconds * 1e3, "gflops": *flops as f64 / seconds / 1e9})).collect::<Vec<_>>()
    });
    let result = json!({
        "layers": layers,
        "engine": match (device_name().as_str(), ops.as_str()) {
            ("flex", "burn") => "Burn 0.22 Flex, tensor ops only".to_string(),
            ("flex", "gemm") => "detector, GEMMs only (no Winograd)".to_string(),
            ("flex", _) => "detector (Burn 0.22 Flex + host kernels)".to_string(),
            (other, _) => format!("detector (Burn 0.22 {other})"),
        },
        "images_per_s": speed.images_per_s(),
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{result}");
}
