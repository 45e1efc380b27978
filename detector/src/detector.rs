//! The whole detector: weights, device, input size and thresholds; images in, detections out, with
//! several images per forward pass.

use std::path::Path;
use std::time::{Duration, Instant};

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;

use crate::model::YoloV8;
use crate::post::{Detection, PostOptions, detections};
use crate::weights::{Weights, WeightsError};

/// Default side of the square network input, ultralytics' `imgsz`.
pub const INPUT_SIZE: u32 = 640;

/// Picks a device by name: `flex` (the pure-Rust CPU backend, always built), `wgpu` (Vulkan on a GPU;
/// with the `wgpu` feature), `lavapipe` (Mesa's software Vulkan; with `wgpu`), `cuda` (with `cuda`).
pub fn device(name: &str) -> Result<Device, String> {
    match name {
        "flex" | "cpu" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" | "vulkan" | "lavapipe" => {
            use burn::tensor::DeviceKind;
            let kind = if name == "lavapipe" { DeviceKind::Cpu } else { DeviceKind::DefaultDevice };
            Device::wgpu_options()
                .graphics_api(burn::tensor::wgpu::WgpuBackend::Vulkan)
                .device_kind(kind)
                .init()
                .map_err(|e| format!("no Vulkan device for {name}: {e}"))
        }
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0)),
        other => Err(format!("unknown device {other:?}: this build has {}", DEVICES.join(", "))),
    }
}

/// Device names this build can use.
pub const DEVICES: &[&str] = &[
    "flex",
    #[cfg(feature = "wgpu")]
    "wgpu",
    #[cfg(feature = "wgpu")]
    "lavapipe",
    #[cfg(feature = "cuda")]
    "cuda",
];

/// Detections of one image and the time its batch spent in the network.
#[derive(Debug, Clone)]
pub struct ImageDetections {
    pub detections: Vec<Detection>,
    pub width: u32,
    pub height: u32,
}

/// A loaded model ready to detect.
#[derive(Debug, Clone)]
pub struct Detector {
    model: YoloV8,
    names: Vec<String>,
    pub input_size: u32,
    pub options: PostOptions,
    /// SHA-256 of the weights file, recorded with every metric.
    pub weights_sha256: String,
}

impl Detector {
    /// Loads weights (ONNX or safetensors) onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, WeightsError> {
        let weights = Weights::load(path)?;
        let model = YoloV8::from_weights(&weights, device)?;
        let names = match weights.class_names() {
            Some(names) if names.len() == model.classes() => names,
            _ => (0..model.classes()).map(|i| i.to_string()).collect(),
        };
        Ok(Self { model, names, input_size: INPUT_SIZE, options: PostOptions::default(), weights_sha256: weights.sha256.clone() })
    }

    pub fn model(&self) -> &YoloV8 {
        &self.model
    }

    /// Name of class `id`.
    pub fn class_name(&self, id: usize) -> &str {
        self.names.get(id).map_or("?", String::as_str)
    }

    /// Detects objects in `images`, all in one forward pass; returns them per image and the time spent
    /// in the network (preprocessing and decoding excluded).
    pub fn detect(&self, images: &[RgbImage]) -> (Vec<ImageDetections>, Duration) {
        self.detect_with(images, &vec![self.options; images.len()])
    }

    /// As [`Detector::detect`], with thresholds per image (a server batches requests that asked for
    /// different ones). `options` has one entry per image.
    pub fn detect_with(&self, images: &[RgbImage], options: &[PostOptions]) -> (Vec<ImageDetections>, Duration) {
        assert_eq!(images.len(), options.len(), "one set of options per image");
        if images.is_empty() {
            return (Vec::new(), Duration::ZERO);
        }
        let size = self.input_size;
        let mut input = Vec::with_capacity(images.len() * 3 * (size * size) as usize);
        let mut boxes = Vec::with_capacity(images.len());
        for image in images {
            let (chw, letterbox) = crate::pre::letterbox(image, size);
            input.extend(chw);
            boxes.push(letterbox);
        }
        let device = self.model.device();
        let x = Tensor::<4>::from_data(TensorData::new(input, [images.len(), 3, size as usize, size as usize]), device);
        let started = Instant::now();
        let output = self.model.forward(x);
        let [_, rows, anchors] = output.dims();
        let values: Vec<f32> = output.into_data().try_into_vec::<f32>().expect("the model's output is f32");
        let took = started.elapsed();
        let per_image = rows * anchors;
        let found = boxes
            .iter()
            .zip(options)
            .enumerate()
            .map(|(i, (letterbox, options))| ImageDetections {
                detections: detections(&values[i * per_image..(i + 1) * per_image], self.model.classes(), anchors, letterbox, options),
                width: letterbox.width,
                height: letterbox.height,
            })
            .collect();
        (found, took)
    }
}
