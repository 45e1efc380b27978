//! The Burn model against ONNX Runtime on the same weights: the committed fixture (a random-weight
//! YOLOv8n exported by ultralytics, `scripts/make_detector_fixture.py`) and its reference outputs for
//! inputs any test can regenerate, at three input shapes and two batch sizes.

use std::path::PathBuf;

use detector::{Device, Tensor, TensorData, Weights, YoloV8};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// `x[i] = ((i * 7919) % 10007) / 10007`, i the flat NCHW index: the fixture's input formula.
fn input(b: usize, h: usize, w: usize) -> Vec<f32> {
    (0..(b * 3 * h * w) as u64).map(|i| ((i * 7919) % 10007) as f32 / 10007.0).collect()
}

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn burn_matches_onnx_runtime_on_every_fixture_case() {
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(fixtures().join("fixture.json")).unwrap()).unwrap();
    let weights = Weights::load(&fixtures().join("yolov8n-random.onnx")).unwrap();
    let device = Device::flex();
    let model = YoloV8::from_weights(&weights, &device).unwrap();
    assert_eq!((model.variant(), model.classes()), ('n', 80));
    assert_eq!(weights.class_names().unwrap().len(), 80);
    for case in meta["cases"].as_array().unwrap() {
        let (b, h, w) = (case["batch"].as_u64().unwrap() as usize, case["height"].as_u64().unwrap() as usize, case["width"].as_u64().unwrap() as usize);
        let step = case["anchor_stride"].as_u64().unwrap() as usize;
        let expected = read_f32(&fixtures().join(case["file"].as_str().unwrap()));
        let x = Tensor::<4>::from_data(TensorData::new(input(b, h, w), [b, 3, h, w]), &device);
        let out = model.forward(x);
        let [ob, rows, anchors] = out.dims();
        assert_eq!([ob, rows], [b, 84]);
        let got: Vec<f32> = out.into_data().try_into_vec::<f32>().unwrap();
        let kept = anchors.div_ceil(step);
        assert_eq!(expected.len(), b * rows * kept, "{case}");
        let (mut worst_box, mut worst_score) = (0f32, 0f32);
        for i in 0..b {
            for r in 0..rows {
                for (k, j) in (0..anchors).step_by(step).enumerate() {
                    let g = got[(i * rows + r) * anchors + j];
                    let e = expected[(i * rows + r) * kept + k];
                    let d = (g - e).abs();
                    if r < 4 {
                        // Box rows are pixels up to ~640: compare relative to the value.
                        worst_box = worst_box.max(d / e.abs().max(1.0));
                    } else {
                        worst_score = worst_score.max(d);
                    }
                }
            }
        }
        eprintln!("batch {b} {h}x{w}: box rows max relative difference {worst_box:e}, score rows max absolute difference {worst_score:e}");
        assert!(worst_box < 1e-5, "batch {b} {h}x{w}: boxes differ by {worst_box:e} (relative)");
        assert!(worst_score < 1e-6, "batch {b} {h}x{w}: scores differ by {worst_score:e}");
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
    let device = Device::flex();
    let model = YoloV8::from_weights(&weights, &device).unwrap();
    let (h, w) = (64, 96);
    let pair = input(2, h, w);
    let run = |data: Vec<f32>, b: usize| -> Vec<f32> {
        model.forward(Tensor::<4>::from_data(TensorData::new(data, [b, 3, h, w]), &device)).into_data().try_into_vec::<f32>().unwrap()
    };
    let together = run(pair.clone(), 2);
    let half = pair.len() / 2;
    let alone: Vec<f32> = [run(pair[..half].to_vec(), 1), run(pair[half..].to_vec(), 1)].concat();
    assert_eq!(together.len(), alone.len());
    let worst = together.iter().zip(&alone).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0f32, f32::max);
    assert!(worst < 1e-5, "batched and single results differ by {worst:e}");
}
