//! The Burn model against ONNX Runtime on the same weights: the committed fixture (a random-weight
//! YOLOv8n exported by ultralytics, `scripts/make_detector_fixture.py`) and its reference outputs for
//! inputs any test can regenerate, at three input shapes and two batch sizes.

use std::path::PathBuf;

use detector::{Device, Tensor, TensorData, Weights, YoloV8};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

use detector::reference::{BOX_TOLERANCE, SCORE_TOLERANCE, input};

/// The device under test: `DETECTOR_DEVICE` (`flex` unless set; `lavapipe` or `wgpu` in a build with
/// the `wgpu` feature), so the same reference checks run on every backend.
fn device() -> Device {
    let name = std::env::var("DETECTOR_DEVICE").unwrap_or_else(|_| "flex".into());
    detector::device(&name).unwrap_or_else(|e| panic!("{e}"))
}


#[test]
fn burn_matches_onnx_runtime_on_every_fixture_case() {
    let weights = Weights::load(&fixtures().join("yolov8n-random.onnx")).unwrap();
    let device = device();
    matches_onnx_runtime(&YoloV8::from_weights(&weights, &device).unwrap(), &device);
}

/// The CPU backend runs its convolutions as host kernels; the GPU backends run Burn's tensor ops.
/// This checks the latter on the CPU, so that CI covers the graph the GPUs run.
#[test]
fn burn_tensor_ops_match_onnx_runtime_too() {
    let weights = Weights::load(&fixtures().join("yolov8n-random.onnx")).unwrap();
    let device = device();
    matches_onnx_runtime(&YoloV8::from_weights_on_burn_ops(&weights, &device).unwrap(), &device);
}

fn matches_onnx_runtime(model: &YoloV8, device: &Device) {
    let weights = Weights::load(&fixtures().join("yolov8n-random.onnx")).unwrap();
    assert_eq!((model.variant(), model.classes()), ('n', 80));
    assert_eq!(weights.class_names().unwrap().len(), 80);
    let cases = detector::reference::compare(model, device, &fixtures()).unwrap();
    assert_eq!(cases.len(), 3, "{cases:?}");
    for case in cases {
        let (b, h, w) = (case.batch, case.height, case.width);
        eprintln!("batch {b} {h}x{w}: box rows max relative difference {:e}, score rows max absolute difference {:e}", case.worst_box_relative, case.worst_score_absolute);
        assert!(case.worst_box_relative < BOX_TOLERANCE, "batch {b} {h}x{w}: boxes differ by {:e} (relative)", case.worst_box_relative);
        assert!(case.worst_score_absolute < SCORE_TOLERANCE, "batch {b} {h}x{w}: scores differ by {:e}", case.worst_score_absolute);
    }
}

#[test]
fn a_model_without_a_detection_head_is_refused_by_name() {
    let mut weights = Weights::load(&fixtures().join("yolov8n-random.onnx")).unwrap();
    weights.tensors.retain(|name, _| !name.starts_with("model.22.cv3"));
    let err = YoloV8::from_weights(&weights, &Device::flex()).unwrap_err().to_string();
    assert!(err.contains("not a YOLOv8 detection model") && err.contains("model.22.cv3"), "{err}");
}

#[test]
fn a_batch_gives_each_image_what_it_gets_alone() {
    let weights = Weights::load(&fixtures().join("yolov8n-random.onnx")).unwrap();
    let device = device();
    let model = YoloV8::from_weights(&weights, &device).unwrap();
    let (h, w) = (64, 96);
    let pair = input(2, h, w);
    let run = |data: Vec<f32>, b: usize| -> Vec<f32> {
        model.forward(Tensor::<4>::from_data(TensorData::new(data, [b, 3, h, w]), &device)).into_data().try_into_vec::<f32>().unwrap()
    };
    let together = run(pair.clone(), 2);
    let half = pair.len() / 2;
    let (first, second) = (run(pair[..half].to_vec(), 1), run(pair[half..].to_vec(), 1));
    assert_eq!(together.len(), first.len() + second.len());
    // Per element: the same image through the same kernels may differ only by reassociation.
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * b.abs() + 1e-6;
    let alone = [first.as_slice(), second.as_slice()].concat();
    let worst = together.iter().zip(&alone).position(|(&a, &b)| !close(a, b));
    assert!(worst.is_none(), "element {worst:?}: batched {} against alone {}", together[worst.unwrap()], alone[worst.unwrap()]);
    // The check can see a mix-up: the two images' own outputs are far apart (the fixture's outputs
    // depend on its input), so a batch that swapped or shared images would fail above.
    let apart = first.iter().zip(&second).filter(|&(&a, &b)| !close(a, b)).count();
    assert!(apart > first.len() / 2, "only {apart} of {} outputs differ between two different images", first.len());
}

/// Writes `tensors` as a safetensors file (F32, little-endian).
fn write_safetensors(path: &std::path::Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, dims, values) in tensors {
        let begin = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(name.clone(), serde_json::json!({"dtype": "F32", "shape": dims, "data_offsets": [begin, data.len()]}));
    }
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut file = (text.len() as u64).to_le_bytes().to_vec();
    file.extend(text);
    file.extend(data);
    std::fs::write(path, file).unwrap();
}

#[test]
fn a_safetensors_state_dict_with_batch_norm_gives_the_same_model() {
    // Unfold the ONNX export's convolutions into conv + BatchNorm tensors, as a PyTorch state dict
    // holds them: scale 2 (gamma 2, variance 1 - eps), mean 0.5, so folding must give back W and b.
    let onnx = Weights::load(&fixtures().join("yolov8n-random.onnx")).unwrap();
    let mut tensors = Vec::new();
    for (name, t) in &onnx.tensors {
        if let Some(stem) = name.strip_suffix(".conv.weight").filter(|s| !s.ends_with(".dfl")) {
            let out = t.dims[0];
            let bias = &onnx.tensors[&format!("{stem}.conv.bias")].data;
            tensors.push((name.clone(), t.dims.clone(), t.data.iter().map(|v| v / 2.0).collect()));
            tensors.push((format!("{stem}.bn.weight"), vec![out], vec![2.0; out]));
            tensors.push((format!("{stem}.bn.bias"), vec![out], bias.iter().map(|b| b + 1.0).collect()));
            tensors.push((format!("{stem}.bn.running_mean"), vec![out], vec![0.5; out]));
            tensors.push((format!("{stem}.bn.running_var"), vec![out], vec![1.0 - 1e-3; out]));
        } else if !name.ends_with(".conv.bias") && name.starts_with("model.") {
            tensors.push((name.clone(), t.dims.clone(), t.data.clone()));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("yolov8n.safetensors");
    write_safetensors(&path, &tensors);
    let device = device();
    let from_onnx = YoloV8::from_weights(&onnx, &device).unwrap();
    let from_state_dict = YoloV8::from_weights(&Weights::load(&path).unwrap(), &device).unwrap();
    let (h, w) = (64, 64);
    let run = |model: &YoloV8| -> Vec<f32> {
        model
            .forward(Tensor::<4>::from_data(TensorData::new(input(1, h, w), [1, 3, h, w]), &device))
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    };
    let (a, b) = (run(&from_onnx), run(&from_state_dict));
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0f32, f32::max);
    assert!(worst < 1e-4, "state dict and ONNX models differ by {worst:e}");

    std::fs::write(&path, &std::fs::read(&path).unwrap()[..1000]).unwrap();
    let err = Weights::load(&path).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
}
