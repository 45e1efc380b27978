//! YOLOv8 object detection in Burn, the local inference path of the worker and the model inside the
//! endpoint server.
//!
//! - [`weights`] reads the ONNX file `yolo export format=onnx` writes, or safetensors, at run time.
//! - [`model`] builds YOLOv8 of any size and class count from those weights and runs it.
//! - [`pre`] decodes JPEG and PNG and letterboxes them to the input size.
//! - [`Detector`] puts it together: images in, detections out, several images per forward pass.
//! - [`post`] turns its output into detections: threshold, per-class NMS, boxes in image pixels.
//! - [`host`] holds the CPU backend's kernels (convolutions, blocks, math) and the peak measurement.
//! - [`reference`] measures the model against ONNX Runtime's outputs for the committed fixture;
//!   [`selfcheck`] runs that and a speed check on any device (`detector selfcheck`).

mod detector;
pub mod host;
pub mod model;
pub mod post;
pub mod pre;
pub mod reference;
pub mod selfcheck;
pub mod weights;

pub use burn::tensor::{Device, Tensor, TensorData};
pub use detector::{DEVICES, Detector, INPUT_SIZE, ImageDetections, device};
pub use model::YoloV8;
pub use post::{Detection, Letterbox, PostOptions};
pub use weights::{Weights, WeightsError};
