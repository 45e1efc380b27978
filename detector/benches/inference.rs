//! Inference benchmark (`scripts/bench-detector.sh`): YOLOv8n at 640×640, batch 1 and batch 8, two
//! threads, this crate on the CPU (Flex with its host kernels) against ONNX Runtime on the same ONNX
//! file in the same run, and the same model on Burn's tensor ops alone (what stock Burn Flex does).
//!
//! Each side runs in its own process (so its peak memory is its own) on the same inputs: one warm-up
//! pass, then passes until `CLOUDBENCH_BENCH_SECONDS` (default 20) have gone by. Prints images per
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
    println!("| batch | engine | images/s | ratio to ONNX Runtime | GFLOP/s | share of peak | peak RSS MiB |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let mut layers = Vec::new();
    for batch in [1usize, 8] {
        let child = |ops: &str| {
            run(Command::new(std::env::current_exe().unwrap())
                .env("CLOUDBENCH_DETECTOR_CHILD", batch.to_string())
                .env("CLOUDBENCH_DETECTOR_OPS", ops))
        };
        let ours = child("host");
        if let Some(list) = ours["layers"].as_array() {
            layers = list.clone();
        }
        // On a GPU the model runs on tensor ops anyway; the stock-Burn row is the CPU's.
        let stock = (device_name() == "flex").then(|| child("burn"));
        let theirs = run(Command::new(&python).arg(&peer).arg(weights()).args([
            batch.to_string(),
            THREADS.to_string(),
            budget().as_secs_f64().to_string(),
        ]));
        let reference = theirs["images_per_s"].as_f64().unwrap();
        for result in [Some(&ours), stock.as_ref(), Some(&theirs)].into_iter().flatten() {
            let rate = result["images_per_s"].as_f64().unwrap();
            let (engine, rss) = (result["engine"].as_str().unwrap(), result["peak_rss_mib"].as_f64().unwrap());
            let achieved = rate * flops / 1e9;
            println!("| {batch} | {engine} | {rate:.2} | {:.2} | {achieved:.1} | {:.0}% | {rss:.0} |", rate / reference, 100.0 * achieved / peak);
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
    let burn_ops = std::env::var("CLOUDBENCH_DETECTOR_OPS").is_ok_and(|ops| ops == "burn");
    let weights = Weights::load(&weights()).unwrap();
    let model = match burn_ops {
        true => YoloV8::from_weights_on_burn_ops(&weights, &device),
        false => YoloV8::from_weights(&weights, &device),
    }
    .unwrap();
    let speed = pool.install(|| detector::selfcheck::speed(&model, &device, batch, budget()));
    // The layers, worst first: one more pass, each convolution timed.
    let layers = (batch == 1 && !burn_ops && device_name() == "flex").then(|| {
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
        "engine": match (device_name().as_str(), burn_ops) {
            ("flex", true) => "Burn 0.22 Flex, tensor ops only".to_string(),
            ("flex", false) => "detector (Burn 0.22 Flex + host kernels)".to_string(),
            (other, _) => format!("detector (Burn 0.22 {other})"),
        },
        "images_per_s": speed.images_per_s(),
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{result}");
}
