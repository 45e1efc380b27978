//! YOLOv8 object detection in Burn, the local inference path of the worker and the model inside the
//! endpoint server.
//!
//! - [`weights`] reads the ONNX file `yolo export format=onnx` writes, or safetensors, at run time.
//! - [`model`] builds YOLOv8 of any size and class count from those weights and runs it.
//! - [`post`] turns its output into detections: threshold, per-class NMS, boxes in image pixels.

pub mod model;
pub mod post;
pub mod weights;

pub use burn::tensor::{Device, Tensor, TensorData};
pub use model::YoloV8;
pub use post::{Detection, Letterbox, PostOptions};
pub use weights::{Weights, WeightsError};
