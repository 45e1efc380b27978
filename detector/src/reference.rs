//! The model against ONNX Runtime's outputs for the committed fixture (`detector/fixtures/`: a
//! random-weight YOLOv8n exported by ultralytics, rescaled so that its outputs depend on the input,
//! and ONNX Runtime's outputs for inputs anyone can regenerate, `scripts/make_detector_fixture.py`): the check the tests run on the CPU, and that
//! `detector selfcheck` runs on any device, including machines where ONNX Runtime cannot be installed.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::model::YoloV8;

/// Largest difference of a box row (cx, cy, w, h in pixels up to ~640), relative to the value
/// (to 1 below 1). ONNX Runtime against itself with its graph optimisations off differs by up to
/// 1.85e-5 on the fixture's cases, so two correct implementations can be this far apart.
pub const BOX_TOLERANCE: f32 = 3e-5;
/// Largest difference of a class score row, absolute. ONNX Runtime against itself: 3.6e-7; one
/// input pixel changed by 0.01 moves the scores by up to 1.3e-5, so this sees a one-pixel error.
pub const SCORE_TOLERANCE: f32 = 1e-6;

/// How far one fixture case is from ONNX Runtime.
#[derive(Debug, Clone, Serialize)]
pub struct CaseDifference {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub worst_box_relative: f32,
    pub worst_score_absolute: f32,
}

impl CaseDifference {
    pub fn within_tolerance(&self) -> bool {
        self.worst_box_relative < BOX_TOLERANCE && self.worst_score_absolute < SCORE_TOLERANCE
    }
}

/// `x[i] = ((i * 7919) % 10007) / 10007`, i the flat NCHW index: the fixture's input formula.
pub fn input(batch: usize, height: usize, width: usize) -> Vec<f32> {
    (0..(batch * 3 * height * width) as u64).map(|i| ((i * 7919) % 10007) as f32 / 10007.0).collect()
}

fn read_f32(path: &Path) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// Runs `model` on every case of `fixtures/fixture.json` and measures how far its output is from
/// ONNX Runtime's (the saved anchor columns of each case).
pub fn compare(model: &YoloV8, device: &Device, fixtures: &Path) -> Result<Vec<CaseDifference>, String> {
    let meta = fixtures.join("fixture.json");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).map_err(|e| format!("{}: {e}", meta.display()))?)
        .map_err(|e| format!("{}: {e}", meta.display()))?;
    let cases = meta["cases"].as_array().ok_or("fixture.json has no cases")?;
    let mut differences = Vec::new();
    for case in cases {
        let field = |name: &str| case[name].as_u64().map(|v| v as usize).ok_or_else(|| format!("a fixture case has no {name}"));
        let (b, h, w, step) = (field("batch")?, field("height")?, field("width")?, field("anchor_stride")?);
        let expected = read_f32(&fixtures.join(case["file"].as_str().ok_or("a fixture case has no file")?))?;
        let out = model.forward(Tensor::<4>::from_data(TensorData::new(input(b, h, w), [b, 3, h, w]), device));
        let [ob, rows, anchors] = out.dims();
        let got: Vec<f32> = out.into_data().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        let kept = anchors.div_ceil(step);
        if ob != b || expected.len() != b * rows * kept {
            return Err(format!("batch {b} {h}x{w}: output [{ob}, {rows}, {anchors}] does not match the {} saved values", expected.len()));
        }
        let (mut worst_box, mut worst_score) = (0f32, 0f32);
        for i in 0..b {
            for r in 0..rows {
                for (k, j) in (0..anchors).step_by(step).enumerate() {
                    let (g, e) = (got[(i * rows + r) * anchors + j], expected[(i * rows + r) * kept + k]);
                    let d = (g - e).abs();
                    // NaN counts as the worst difference there is.
                    let d = if d.is_nan() { f32::INFINITY } else { d };
                    if r < 4 {
                        worst_box = worst_box.max(d / e.abs().max(1.0));
                    } else {
                        worst_score = worst_score.max(d);
                    }
                }
            }
        }
        differences.push(CaseDifference { batch: b, height: h, width: w, worst_box_relative: worst_box, worst_score_absolute: worst_score });
    }
    Ok(differences)
}
