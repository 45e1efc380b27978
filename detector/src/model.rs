//! YOLOv8 detection (ultralytics' `yolov8.yaml`, any of n/s/m/l/x) in Burn, built from loaded weights.
//!
//! The variant comes from the weights: every convolution's shape is read from its tensor, the number
//! of bottlenecks in each C2f from the tensors present, the class count from the last class conv.
//! Each Conv block is a convolution with bias followed by SiLU (on the CPU backend one fused host
//! kernel, [`crate::host`]); a state dict's BatchNorm is folded
//! into the convolution at load time (eps 1e-3, as ultralytics trains), so ONNX exports (already
//! folded) and state dicts share one path. Output: `[B, 4 + classes, A]`, rows cx, cy, w, h in input
//! pixels then class scores after sigmoid, anchors of stride 8, 16, 32 in row-major order.

use std::sync::Arc;

use burn::tensor::activation::{sigmoid, silu, softmax};
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

use crate::host::{Algorithm, HostConv};
use crate::weights::{RawTensor, Weights, WeightsError};

const BN_EPS: f32 = 1e-3;
/// Strides of the three detection levels.
pub const STRIDES: [usize; 3] = [8, 16, 32];

/// A convolution with bias, optionally followed by SiLU.
// A model holds about a hundred of these, one variant or the other throughout: their sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Conv {
    /// Burn's `conv2d`, then SiLU as a tensor op (the GPU backends).
    Tensor { weight: Tensor<4>, bias: Tensor<1>, stride: usize, padding: usize, act: bool },
    /// The CPU backend: GEMMs on the host with bias and SiLU fused (see [`crate::host`]).
    Host(Arc<HostConv>),
}

impl Conv {
    fn host(&self) -> Option<&HostConv> {
        match self {
            Conv::Host(conv) => Some(conv),
            Conv::Tensor { .. } => None,
        }
    }

    /// Multiply-adds times two on an input of `h × w`, and the output's size.
    fn flops(&self, h: usize, w: usize) -> (u64, usize, usize) {
        let (dims, stride, pad) = match self {
            Conv::Host(conv) => ([conv.out, conv.inp, conv.k], conv.stride, conv.pad),
            Conv::Tensor { weight, stride, padding, .. } => {
                let [out, inp, k, _] = weight.dims();
                ([out, inp, k], *stride, *padding)
            }
        };
        crate::host::flops(dims, stride, pad, h, w)
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Conv::Host(conv) => conv.forward(x),
            Conv::Tensor { weight, bias, stride, padding, act } => {
                let options = ConvOptions::new([*stride; 2], [*padding; 2], [1, 1], 1);
                let y = conv2d(x, weight.clone(), Some(bias.clone()), options);
                if *act { silu(y) } else { y }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct C2f {
    cv1: Conv,
    bottlenecks: Vec<(Conv, Conv)>,
    shortcut: bool,
    cv2: Conv,
}

impl C2f {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if let (Some(cv1), Some(cv2)) = (self.cv1.host(), self.cv2.host()) {
            let bottlenecks: Option<Vec<_>> = self.bottlenecks.iter().map(|(a, b)| Some((a.host()?, b.host()?))).collect();
            if let Some(bottlenecks) = bottlenecks {
                return crate::host::c2f(cv1, &bottlenecks, self.shortcut, cv2, x);
            }
        }
        let mut ys = self.cv1.forward(x).chunk(2, 1);
        for (a, b) in &self.bottlenecks {
            let last = ys.last().expect("two halves").clone();
            let y = b.forward(a.forward(last.clone()));
            ys.push(if self.shortcut { y + last } else { y });
        }
        self.cv2.forward(Tensor::cat(ys, 1))
    }
}

#[derive(Debug, Clone)]
struct Sppf {
    cv1: Conv,
    cv2: Conv,
}

impl Sppf {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let pool = |t: Tensor<4>| match self.cv1.host().is_some() {
            true => crate::host::max_pool_same(t, 2),
            false => max_pool2d(t, MaxPoolOptions::new([5, 5]).with_stride([1, 1]).with_padding([2, 2])),
        };
        let x = self.cv1.forward(x);
        let y1 = pool(x.clone());
        let y2 = pool(y1.clone());
        let y3 = pool(y2.clone());
        self.cv2.forward(Tensor::cat(vec![x, y1, y2, y3], 1))
    }
}

/// Nearest-neighbour ×2 upsampling, exact on every backend.
fn upsample2(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1]).expand([b, c, h, 2, w, 2]).reshape([b, c, 2 * h, 2 * w])
}

#[derive(Debug, Clone)]
struct Head {
    /// Per level: two Conv blocks then a plain 1×1 conv to 4·reg_max box logits.
    boxes: Vec<[Conv; 3]>,
    /// Per level: two Conv blocks then a plain 1×1 conv to class logits.
    classes: Vec<[Conv; 3]>,
    reg_max: usize,
}

/// A YOLOv8 detection model on one device.
#[derive(Debug, Clone)]
pub struct YoloV8 {
    convs: Vec<(usize, Conv)>,
    c2fs: Vec<(usize, C2f)>,
    sppf: Sppf,
    head: Head,
    classes: usize,
    variant: char,
    device: Device,
}

/// Builds tensors of the model from named raw weights.
struct Builder<'a> {
    weights: &'a Weights,
    device: &'a Device,
    /// Convolutions as host kernels (the CPU backend) rather than Burn tensor ops.
    host: bool,
    /// 3×3 convolutions of stride 1 by Winograd's F(2×2, 3×3) rather than as GEMMs (host only).
    winograd: bool,
}

impl Builder<'_> {
    fn error(&self, reason: String) -> WeightsError {
        WeightsError::NotYolo { path: self.weights.source.clone(), reason }
    }

    fn raw(&self, name: &str) -> Result<&RawTensor, WeightsError> {
        self.weights.tensors.get(name).ok_or_else(|| self.error(format!("tensor {name} is missing")))
    }

    /// A convolution of `weight` (`dims`, OIHW) and `bias`, padded to keep the size at stride 1.
    fn conv(&self, dims: &[usize], weight: Vec<f32>, bias: Vec<f32>, stride: usize, act: bool) -> Conv {
        let dims = [dims[0], dims[1], dims[2], dims[3]];
        let padding = dims[2] / 2;
        if self.host {
            let algorithm = if self.winograd { Algorithm::Fastest } else { Algorithm::Gemm };
            return Conv::Host(Arc::new(HostConv::with_algorithm(weight, dims, bias, stride, padding, act, algorithm)));
        }
        let n = bias.len();
        Conv::Tensor {
            weight: Tensor::from_data(TensorData::new(weight, dims), self.device),
            bias: Tensor::from_data(TensorData::new(bias, [n]), self.device),
            stride,
            padding,
            act,
        }
    }

    /// A plain convolution `{prefix}.weight` + `{prefix}.bias`.
    fn plain(&self, prefix: &str, stride: usize) -> Result<Conv, WeightsError> {
        let w = self.raw(&format!("{prefix}.weight"))?;
        if w.dims.len() != 4 || w.dims[2] != w.dims[3] || w.dims[2] % 2 == 0 {
            return Err(self.error(format!("{prefix}.weight has dims {:?}, not a 2-D convolution with an odd square kernel", w.dims)));
        }
        let b = self.raw(&format!("{prefix}.bias"))?;
        if b.dims != [w.dims[0]] {
            return Err(self.error(format!("{prefix}.bias has dims {:?} for {} output channels", b.dims, w.dims[0])));
        }
        Ok(self.conv(&w.dims, w.data.clone(), b.data.clone(), stride, false))
    }

    /// A Conv block `{prefix}.conv` (+ `{prefix}.bn`, folded), with SiLU.
    fn block(&self, prefix: &str, stride: usize) -> Result<Conv, WeightsError> {
        let w = self.raw(&format!("{prefix}.conv.weight"))?;
        if w.dims.len() != 4 || w.dims[2] != w.dims[3] || w.dims[2] % 2 == 0 {
            return Err(self.error(format!("{prefix}.conv.weight has dims {:?}, not a 2-D convolution with an odd square kernel", w.dims)));
        }
        let out = w.dims[0];
        let (weight, bias) = if let Some(b) = self.weights.tensors.get(&format!("{prefix}.conv.bias")) {
            (w.data.clone(), b.data.clone())
        } else {
            let get = |n: &str| self.raw(&format!("{prefix}.bn.{n}"));
            let (gamma, beta, mean, var) = (get("weight")?, get("bias")?, get("running_mean")?, get("running_var")?);
            if [gamma, beta, mean, var].iter().any(|t| t.data.len() != out) {
                return Err(self.error(format!("{prefix}.bn tensors do not match {out} output channels")));
            }
            let per_out = w.data.len() / out;
            let mut weight = w.data.clone();
            let mut bias = vec![0.0; out];
            for o in 0..out {
                let scale = gamma.data[o] / (var.data[o] + BN_EPS).sqrt();
                weight[o * per_out..(o + 1) * per_out].iter_mut().for_each(|v| *v *= scale);
                bias[o] = beta.data[o] - mean.data[o] * scale;
            }
            (weight, bias)
        };
        if bias.len() != out {
            return Err(self.error(format!("{prefix}.conv.bias does not match {out} output channels")));
        }
        Ok(self.conv(&w.dims, weight, bias, stride, true))
    }

    fn c2f(&self, layer: usize, shortcut: bool) -> Result<C2f, WeightsError> {
        let p = format!("model.{layer}");
        let mut bottlenecks = Vec::new();
        while self.weights.tensors.contains_key(&format!("{p}.m.{}.cv1.conv.weight", bottlenecks.len())) {
            let k = bottlenecks.len();
            bottlenecks.push((self.block(&format!("{p}.m.{k}.cv1"), 1)?, self.block(&format!("{p}.m.{k}.cv2"), 1)?));
        }
        if bottlenecks.is_empty() {
            return Err(self.error(format!("layer {layer} has no bottleneck (expected a C2f block, tensor {p}.m.0.cv1.conv.weight)")));
        }
        Ok(C2f { cv1: self.block(&format!("{p}.cv1"), 1)?, bottlenecks, shortcut, cv2: self.block(&format!("{p}.cv2"), 1)? })
    }

    fn branch(&self, name: &str, level: usize) -> Result<[Conv; 3], WeightsError> {
        let p = format!("model.22.{name}.{level}");
        Ok([self.block(&format!("{p}.0"), 1)?, self.block(&format!("{p}.1"), 1)?, self.plain(&format!("{p}.2"), 1)?])
    }
}

/// Layers that are plain Conv blocks, all of stride 2.
const DOWNSAMPLES: [usize; 7] = [0, 1, 3, 5, 7, 16, 19];
/// C2f layers and whether their bottlenecks add a shortcut (the backbone's do, the neck's do not).
const C2FS: [(usize, bool); 8] = [(2, true), (4, true), (6, true), (8, true), (12, false), (15, false), (18, false), (21, false)];

impl YoloV8 {
    /// Builds the model from `weights` on `device`, checking that the tensors form a YOLOv8 detector.
    pub fn from_weights(weights: &Weights, device: &Device) -> Result<Self, WeightsError> {
        Self::build(weights, device, *device == Device::flex(), true)
    }

    /// Builds the model with the CPU's host kernels but every convolution as GEMMs, none by
    /// Winograd's algorithm: the benchmark's measure of what that algorithm buys.
    pub fn from_weights_without_winograd(weights: &Weights) -> Result<Self, WeightsError> {
        Self::build(weights, &Device::flex(), true, false)
    }

    /// Builds the model on Burn's tensor ops alone, as it runs on the GPU backends, even on the CPU:
    /// the reference tests check that path on the CPU, the benchmark compares against it.
    pub fn from_weights_on_burn_ops(weights: &Weights, device: &Device) -> Result<Self, WeightsError> {
        Self::build(weights, device, false, false)
    }

    fn build(weights: &Weights, device: &Device, host: bool, winograd: bool) -> Result<Self, WeightsError> {
        let b = Builder { weights, device, host, winograd };
        let convs = DOWNSAMPLES.iter().map(|&i| Ok((i, b.block(&format!("model.{i}"), 2)?))).collect::<Result<Vec<_>, WeightsError>>()?;
        let c2fs = C2FS.iter().map(|&(i, shortcut)| Ok((i, b.c2f(i, shortcut)?))).collect::<Result<Vec<_>, WeightsError>>()?;
        let sppf = Sppf { cv1: b.block("model.9.cv1", 1)?, cv2: b.block("model.9.cv2", 1)? };
        let boxes = (0..3).map(|l| b.branch("cv2", l)).collect::<Result<Vec<_>, _>>()?;
        let classes = (0..3).map(|l| b.branch("cv3", l)).collect::<Result<Vec<_>, _>>()?;
        let box_out = b.raw("model.22.cv2.0.2.weight")?.dims[0];
        let class_count = b.raw("model.22.cv3.0.2.weight")?.dims[0];
        if box_out % 4 != 0 || box_out == 0 || class_count == 0 {
            return Err(b.error(format!("detection head has {box_out} box and {class_count} class outputs")));
        }
        let width = b.raw("model.0.conv.weight")?.dims[0];
        let variant = match width {
            16 => 'n',
            32 => 's',
            48 => 'm',
            64 => 'l',
            80 => 'x',
            _ => '?',
        };
        Ok(Self {
            convs,
            c2fs,
            sppf,
            head: Head { boxes, classes, reg_max: box_out / 4 },
            classes: class_count,
            variant,
            device: device.clone(),
        })
    }

    /// Number of classes the model scores.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The size letter (n, s, m, l, x) read from the first layer's width, or `?`.
    pub fn variant(&self) -> char {
        self.variant
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether the convolutions run as host kernels (the CPU backend), and so the rest of the CPU
    /// path with them.
    fn host(&self) -> bool {
        self.sppf.cv1.host().is_some()
    }

    fn conv(&self, layer: usize) -> &Conv {
        &self.convs.iter().find(|(i, _)| *i == layer).expect("built").1
    }

    fn c2f(&self, layer: usize) -> &C2f {
        &self.c2fs.iter().find(|(i, _)| *i == layer).expect("built").1
    }

    /// FLOPs of the convolutions (multiply-adds times two) of one pass over one image of `h × w`,
    /// which are nearly all of them: what GFLOP/s figures divide.
    pub fn flops(&self, h: usize, w: usize) -> u64 {
        let conv = |c: &Conv, (h, w): (usize, usize)| c.flops(h, w).0;
        let c2f = |c: &C2f, at: (usize, usize)| {
            conv(&c.cv1, at) + c.bottlenecks.iter().map(|(a, b)| conv(a, at) + conv(b, at)).sum::<u64>() + conv(&c.cv2, at)
        };
        // A downsampling convolution: its FLOPs, and `at` moved to its output's size.
        let step = |layer: usize, at: &mut (usize, usize)| {
            let (f, oh, ow) = self.conv(layer).flops(at.0, at.1);
            *at = (oh, ow);
            f
        };
        let mut total = 0;
        let mut at = (h, w);
        total += step(0, &mut at) + step(1, &mut at);
        total += c2f(self.c2f(2), at) + step(3, &mut at);
        let p3 = at;
        total += c2f(self.c2f(4), at) + step(5, &mut at);
        let p4 = at;
        total += c2f(self.c2f(6), at) + step(7, &mut at);
        let p5 = at;
        total += c2f(self.c2f(8), at) + conv(&self.sppf.cv1, at) + conv(&self.sppf.cv2, at);
        total += c2f(self.c2f(12), p4) + c2f(self.c2f(15), p3);
        total += conv(self.conv(16), p3) + c2f(self.c2f(18), p4) + conv(self.conv(19), p4) + c2f(self.c2f(21), p5);
        for (l, at) in [p3, p4, p5].into_iter().enumerate() {
            for branch in [&self.head.boxes[l], &self.head.classes[l]] {
                total += branch.iter().map(|c| conv(c, at)).sum::<u64>();
            }
        }
        total
    }

    /// Runs the network on `[B, 3, H, W]` (RGB in [0, 1], H and W multiples of 32) and returns
    /// `[B, 4 + classes, A]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        let batch = x.dims()[0];
        if batch > 1 && self.host() {
            // On the CPU an image per thread at a time: an image's activations stay in its core's
            // caches where a batch's would not, and no thread waits for the others at the end of
            // every layer (each convolution still spreads its image over any thread that is idle).
            // Each image's output is copied into the batch's as soon as it is done and then freed.
            use rayon::prelude::*;
            let device = x.device();
            let (mut values, mut dims) = (Vec::new(), [batch, 0, 0]);
            let images = x.chunk(batch, 0);
            // As many images at once as there are threads, so that no more outputs than that wait.
            for group in images.chunks(rayon::current_num_threads()) {
                let outputs: Vec<(Vec<f32>, [usize; 3])> = group
                    .par_iter()
                    .map(|image| {
                        let y = self.forward_batch(image.clone());
                        let dims = y.dims();
                        (y.into_data().try_into_vec::<f32>().expect("outputs are f32"), dims)
                    })
                    .collect();
                for (y, [_, rows, anchors]) in outputs {
                    dims = [batch, rows, anchors];
                    // Once, for the whole batch: `reserve_exact` counts beyond the current length.
                    values.reserve_exact(batch * y.len() - values.len());
                    values.extend_from_slice(&y);
                }
            }
            return Tensor::from_data(TensorData::new(values, dims), &device);
        }
        self.forward_batch(x)
    }

    fn forward_batch(&self, x: Tensor<4>) -> Tensor<3> {
        let x = self.c2f(2).forward(self.conv(1).forward(self.conv(0).forward(x)));
        let p3 = self.c2f(4).forward(self.conv(3).forward(x));
        let p4 = self.c2f(6).forward(self.conv(5).forward(p3.clone()));
        let p5 = self.sppf.forward(self.c2f(8).forward(self.conv(7).forward(p4.clone())));
        let upsample_cat = |a: Tensor<4>, b: Tensor<4>| match self.host() {
            true => crate::host::upsample_cat(a, b),
            false => Tensor::cat(vec![upsample2(a), b], 1),
        };
        let n4 = self.c2f(12).forward(upsample_cat(p5.clone(), p4));
        let out3 = self.c2f(15).forward(upsample_cat(n4.clone(), p3));
        let out4 = self.c2f(18).forward(Tensor::cat(vec![self.conv(16).forward(out3.clone()), n4], 1));
        let out5 = self.c2f(21).forward(Tensor::cat(vec![self.conv(19).forward(out4.clone()), p5], 1));
        self.detect([out3, out4, out5])
    }

    fn detect(&self, levels: [Tensor<4>; 3]) -> Tensor<3> {
        let [b, _, _, _] = levels[0].dims();
        let run = |branch: &[Conv; 3], x: Tensor<4>| branch[2].forward(branch[1].forward(branch[0].forward(x)));
        let mut boxes = Vec::with_capacity(3);
        let mut scores = Vec::with_capacity(3);
        let (mut anchor_x, mut anchor_y, mut stride) = (Vec::new(), Vec::new(), Vec::new());
        for (l, x) in levels.into_iter().enumerate() {
            let [_, _, h, w] = x.dims();
            let bx = run(&self.head.boxes[l], x.clone());
            let cl = run(&self.head.classes[l], x);
            let c = bx.dims()[1];
            boxes.push(bx.reshape([b, c, h * w]));
            scores.push(cl.reshape([b, self.classes, h * w]));
            for y in 0..h {
                for xx in 0..w {
                    anchor_x.push(xx as f32 + 0.5);
                    anchor_y.push(y as f32 + 0.5);
                    stride.push(STRIDES[l] as f32);
                }
            }
        }
        let a = anchor_x.len();
        let r = self.head.reg_max;
        // Distribution focal loss decoding: the expected bin of a softmax over reg_max bins.
        let logits = Tensor::cat(boxes, 2).reshape([b, 4, r, a]);
        let bins: Vec<f32> = (0..r).map(|i| i as f32).collect();
        let bins = Tensor::<1>::from_data(TensorData::new(bins, [r]), &self.device).reshape([1, 1, r, 1]);
        let dist: Tensor<3> = (softmax(logits, 2) * bins).sum_dim(2).reshape([b, 4, a]);
        let mut centres = anchor_x;
        centres.extend(anchor_y);
        let centres = Tensor::<1>::from_data(TensorData::new(centres, [2 * a]), &self.device).reshape([1, 2, a]);
        let stride = Tensor::<1>::from_data(TensorData::new(stride, [a]), &self.device).reshape([1, 1, a]);
        let top_left = centres.clone() - dist.clone().narrow(1, 0, 2);
        let bottom_right = centres + dist.narrow(1, 2, 2);
        let centre = (top_left.clone() + bottom_right.clone()).div_scalar(2.0);
        let size = bottom_right - top_left;
        let xywh = Tensor::cat(vec![centre, size], 1) * stride;
        let scores = Tensor::cat(scores, 2);
        let scores = if self.host() { crate::host::sigmoid(scores) } else { sigmoid(scores) };
        Tensor::cat(vec![xywh, scores], 1)
    }
}
