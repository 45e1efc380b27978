//! `detector selfcheck`: on whatever device this machine has, the model against ONNX Runtime's
//! reference outputs (carried in the fixture folder, since ONNX Runtime may not install where the
//! GPU is) and its speed at several batch sizes, against the CPU on the same weights file; one JSON
//! object of figures. `scripts/gpu-check.sh run` calls it on a GPU machine with no network.

use std::path::Path;
use std::time::{Duration, Instant};

use burn::tensor::{Tensor, TensorData};
use serde_json::{Value, json};

use crate::model::YoloV8;
use crate::reference::{self, BOX_TOLERANCE, SCORE_TOLERANCE};
use crate::weights::Weights;

/// Side of the benchmark's input.
const SIZE: usize = 640;

/// What to check and for how long.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Devices to check, by name (`detector::device`); the first is the one under test.
    pub devices: Vec<String>,
    pub batches: Vec<usize>,
    /// Timed seconds per (device, batch), after one untimed pass (which compiles and tunes a GPU's
    /// kernels).
    pub seconds: f64,
}

/// How fast a model ran at one batch size.
#[derive(Debug, Clone, Copy)]
pub struct Speed {
    pub batch: usize,
    /// Timed passes, and the seconds they took together.
    pub passes: usize,
    pub seconds: f64,
    /// The untimed first pass (where a GPU compiles and tunes its kernels).
    pub first_pass_s: f64,
}

impl Speed {
    pub fn images_per_s(&self) -> f64 {
        (self.passes * self.batch) as f64 / self.seconds
    }
}

/// Runs `model` at `batch` on the fixture's input at 640×640: one untimed pass, then passes until
/// `budget` has gone by (at least one). The detector benchmark times its engines with it too.
pub fn speed(model: &YoloV8, device: &burn::tensor::Device, batch: usize, budget: Duration) -> Speed {
    // One input for every pass, as a server holds the batch it runs: cloning a tensor shares its
    // data, where cloning the values would copy the whole batch (39 MiB at batch 8) each pass.
    let input = Tensor::<4>::from_data(TensorData::new(reference::input(batch, SIZE, SIZE), [batch, 3, SIZE, SIZE]), device);
    let pass = || {
        // Reading the output back waits for the device to finish.
        std::hint::black_box(model.forward(input.clone()).into_data());
    };
    let first = Instant::now();
    pass();
    let first = first.elapsed();
    let started = Instant::now();
    let mut passes = 0;
    while passes == 0 || started.elapsed() < budget {
        pass();
        passes += 1;
    }
    Speed { batch, passes, seconds: started.elapsed().as_secs_f64(), first_pass_s: first.as_secs_f64() }
}

/// Runs the check; an error only where nothing could be measured (no fixture, no weights).
pub fn run(fixtures: &Path, settings: &Settings) -> Result<Value, String> {
    let started = Instant::now();
    let weights = Weights::load(&fixtures.join("yolov8n-random.onnx")).map_err(|e| e.to_string())?;
    let (mut devices, mut variant) = (Vec::new(), '?');
    for name in &settings.devices {
        let device = match crate::device(name) {
            Ok(device) => device,
            Err(e) => {
                devices.push(json!({"device": name, "error": e}));
                continue;
            }
        };
        let model = YoloV8::from_weights(&weights, &device).map_err(|e| e.to_string())?;
        variant = model.variant();
        let cases = reference::compare(&model, &device, fixtures)?;
        let matches = cases.iter().all(reference::CaseDifference::within_tolerance);
        let speeds: Vec<Value> = settings
            .batches
            .iter()
            .map(|&b| speed(&model, &device, b, Duration::from_secs_f64(settings.seconds)))
            .map(|s| json!({"batch": s.batch, "passes": s.passes, "images_per_s": s.images_per_s(), "first_pass_s": s.first_pass_s}))
            .collect();
        devices.push(json!({
            "device": name,
            "host_kernels": *name == "flex" || *name == "cpu",
            "threads": rayon::current_num_threads(),
            "matches_onnx_runtime": matches,
            "cases": cases,
            "speed": speeds,
        }));
    }
    // Each device's images/s against the last measured one's (the CPU, when it is listed last).
    if let Some(baseline) = devices.iter().rev().find_map(|d| d["speed"].as_array()).cloned() {
        for device in &mut devices {
            let Some(speeds) = device["speed"].as_array_mut() else { continue };
            for (s, base) in speeds.iter_mut().zip(&baseline) {
                s["ratio_to_baseline"] = json!(s["images_per_s"].as_f64().unwrap_or(0.0) / base["images_per_s"].as_f64().unwrap_or(f64::NAN));
            }
        }
    }
    Ok(json!({
        "model": format!("yolov8{variant}"),
        "weights_sha256": weights.sha256,
        "input": [SIZE, SIZE],
        "tolerance": {"box_relative": BOX_TOLERANCE, "score_absolute": SCORE_TOLERANCE},
        "processor_kernels": crate::host::Isa::detect().name(),
        "devices": devices,
        "elapsed_s": started.elapsed().as_secs_f64(),
    }))
}
