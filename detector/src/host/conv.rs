//! The convolution: GEMMs on NCHW activations with the bias and SiLU applied to each output tile
//! while it is still in cache.
//!
//! The weights stay in their ONNX/PyTorch order, which is already the `[out, in·k·k]` left-hand
//! matrix; a 1×1 convolution of stride 1 multiplies it with the input planes where they lie; any
//! other builds the im2col columns of one tile of output pixels at a time in a per-thread buffer.
//! Tiles of every image run in parallel on the rayon pool, each writing its own columns of the
//! output, and each ends with one pass of bias plus SiLU over what it wrote. The GEMMs are the
//! `gemm` crate's (the one Burn Flex uses, its AVX-512 kernels built too): an implicit GEMM of our
//! own, the input read through the convolution's geometry instead of im2col, with the epilogue in
//! the microkernel, was measured 10% slower over YOLOv8n's layers (see the README).

use std::cell::RefCell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::direct::{self, Direct};
use super::im2col::im2col;
use super::math::finish;
use super::winograd::Winograd;

/// One convolution's call, as [`profile`] records it.
#[derive(Debug, Clone)]
pub struct LayerTime {
    /// `in→out k×k/stride at h×w` (`, Winograd` after the stride where that algorithm ran), the
    /// same for every call of one layer shape.
    pub shape: String,
    pub flops: u64,
    pub seconds: f64,
}

static PROFILING: AtomicBool = AtomicBool::new(false);
static PROFILE: Mutex<Vec<LayerTime>> = Mutex::new(Vec::new());

/// Runs `f`, timing every convolution it calls (on any thread) from its start to the end of its
/// parallel loop: the profile of a pass, layer by layer. One profile at a time.
pub fn profile<R>(f: impl FnOnce() -> R) -> (R, Vec<LayerTime>) {
    PROFILE.lock().expect("profile").clear();
    PROFILING.store(true, Ordering::SeqCst);
    let result = f();
    PROFILING.store(false, Ordering::SeqCst);
    (result, std::mem::take(&mut *PROFILE.lock().expect("profile")))
}

/// Output size of a square-kernel convolution over `h × w`.
fn output_size(h: usize, w: usize, k: usize, stride: usize, pad: usize) -> (usize, usize) {
    ((h + 2 * pad - k) / stride + 1, (w + 2 * pad - k) / stride + 1)
}

/// Multiply-adds times two of a convolution `[out, in, k]` over one image of `h × w`, with the
/// output's size: the one count for the host kernels and the tensor-op graph.
pub fn flops([out, inp, k]: [usize; 3], stride: usize, pad: usize, h: usize, w: usize) -> (u64, usize, usize) {
    let (oh, ow) = output_size(h, w, k, stride, pad);
    (2 * (out * inp * k * k * oh * ow) as u64, oh, ow)
}

/// Output pixels per tile are kept to a multiple of this (the GEMM's vector width, twice).
const LANES: usize = 16;
/// Floats of im2col columns one tile may build.
const COLUMN_BUDGET: usize = 128 * 1024;
/// Floats of output one tile may write, so that its bias and SiLU pass finds them in cache.
const OUTPUT_BUDGET: usize = 64 * 1024;

/// A 2-D convolution with bias, optionally followed by SiLU, over `f32` NCHW activations.
#[derive(Debug)]
pub struct HostConv {
    /// `[out, in, k, k]` flattened: row `o` is output channel `o`'s weights over `(c, ky, kx)`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    pub(crate) out: usize,
    pub(crate) inp: usize,
    pub(crate) k: usize,
    pub(crate) stride: usize,
    pub(crate) pad: usize,
    silu: bool,
    /// The weights in the Winograd domain, for a 3×3 convolution of stride 1 that keeps the size.
    winograd: Option<Winograd>,
    /// The weights laid out for the direct kernel, for a thin 3×3 (see [`super::direct`]).
    direct: Option<Direct>,
}

/// Where one image's convolution reads and writes, in elements.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

/// The activations of a batch in a buffer: each image's planes contiguous from `ptr + i·stride`.
/// Shared by the tasks of a parallel loop, each of which reads or writes its own part.
#[derive(Clone, Copy)]
pub(super) struct Planes {
    pub ptr: *mut f32,
    pub stride: usize,
}
// SAFETY: tasks write disjoint elements (their own image and columns), read only what no task
// writes, and the buffers outlive the parallel loop that uses them.
unsafe impl Send for Planes {}
unsafe impl Sync for Planes {}

impl Planes {
    /// Image `i`'s first element (a method, so that closures capture the whole `Planes`).
    pub(super) fn image(self, i: usize) -> *mut f32 {
        self.ptr.wrapping_add(i * self.stride)
    }
}

thread_local! {
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// How a convolution is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Winograd's where it applies and its channels make it the faster, GEMMs elsewhere.
    Fastest,
    /// GEMMs over the input planes or their im2col columns, always.
    Gemm,
    /// Winograd's F(2×2, 3×3), whatever the channels (3×3 of stride 1 and padding 1 only).
    Winograd,
    /// The direct kernel (3×3 of stride 1 or 2, padding 1, thin inputs only).
    Direct,
}

impl HostConv {
    /// A convolution of `weight` (`[out, in, k, k]`, square kernel) and `bias` (`[out]`), by the
    /// fastest algorithm for it.
    pub fn new(weight: Vec<f32>, dims: [usize; 4], bias: Vec<f32>, stride: usize, pad: usize, silu: bool) -> Self {
        Self::with_algorithm(weight, dims, bias, stride, pad, silu, Algorithm::Fastest)
    }

    /// [`Self::new`] by the given algorithm.
    pub fn with_algorithm(weight: Vec<f32>, dims: [usize; 4], bias: Vec<f32>, stride: usize, pad: usize, silu: bool, algorithm: Algorithm) -> Self {
        let [out, inp, k, kw] = dims;
        assert!(k == kw && weight.len() == out * inp * k * k && bias.len() == out, "convolution weights of {dims:?}");
        let applies = k == 3 && stride == 1 && pad == 1;
        let winograd = match algorithm {
            Algorithm::Fastest => applies && Winograd::pays(inp, out),
            Algorithm::Gemm | Algorithm::Direct => false,
            Algorithm::Winograd => {
                assert!(applies, "Winograd's F(2×2, 3×3) is for 3×3 convolutions of stride 1 and padding 1, not {dims:?}/{stride}");
                true
            }
        };
        let thin = direct::applies(inp, out, k, stride, pad);
        let direct = match algorithm {
            Algorithm::Fastest => thin && !winograd,
            Algorithm::Gemm | Algorithm::Winograd => false,
            Algorithm::Direct => {
                assert!(thin, "the direct kernel is for 3×3 convolutions of stride 1 or 2 over at most {} channels, not {dims:?}/{stride}", direct::MAX_INPUT);
                true
            }
        };
        let winograd = winograd.then(|| Winograd::new(&weight, out, inp));
        let direct = direct.then(|| Direct::new(&weight, out, inp, stride));
        // The weights as they come are kept only where the GEMMs run.
        let weight = if winograd.is_some() || direct.is_some() { Vec::new() } else { weight };
        Self { weight, bias, out, inp, k, stride, pad, silu, winograd, direct }
    }

    pub(super) fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        output_size(h, w, self.k, self.stride, self.pad)
    }

    /// Multiply-adds of one image of `h × w`, times two: the FLOPs the benchmark counts.
    pub fn flops(&self, h: usize, w: usize) -> u64 {
        flops([self.out, self.inp, self.k], self.stride, self.pad, h, w).0
    }

    /// Whether the input planes are the GEMM's right-hand matrix as they lie.
    fn direct(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let device = x.device();
        let [b, c, h, w] = x.dims();
        assert_eq!(c, self.inp, "input channels");
        let input = super::host_values(x);
        let (oh, ow) = self.output_size(h, w);
        let out = self.run(&input, b, Geometry { h, w, oh, ow });
        Tensor::from_data(TensorData::new(out, [b, self.out, oh, ow]), &device)
    }

    /// Runs the convolution over `batch` images of `input` (NCHW) and returns the NCHW output.
    pub(super) fn run(&self, input: &[f32], batch: usize, g: Geometry) -> Vec<f32> {
        let image = self.inp * g.h * g.w;
        assert!(input.len() >= batch * image, "{} floats for {batch} images of {image}", input.len());
        let len = batch * self.out * g.oh * g.ow;
        // Left uninitialised: the tiles write every element (the GEMM does not read it).
        let mut out = Vec::<f32>::with_capacity(len);
        let input = Planes { ptr: input.as_ptr().cast_mut(), stride: image };
        // SAFETY: input holds the images, out has room for their outputs and overlaps nothing.
        unsafe {
            self.run_into(input, Planes { ptr: out.as_mut_ptr(), stride: self.out * g.oh * g.ow }, None, batch, g);
            out.set_len(len);
        }
        out
    }

    /// Runs the convolution over `batch` images of `input`, writing `out`; with a `residual`, adds
    /// it (as many planes as the output) after the activation, as a bottleneck's shortcut does.
    ///
    /// # Safety
    /// Every image of `input` must hold `in` planes of `h × w`, of `out` and `residual` `out` planes
    /// of `oh × ow`; the output planes must not overlap the input or residual planes, and nothing
    /// else may touch any of them meanwhile.
    pub(super) unsafe fn run_into(&self, input: Planes, out: Planes, residual: Option<Planes>, batch: usize, g: Geometry) {
        let started = PROFILING.load(Ordering::Relaxed).then(Instant::now);
        if let Some(winograd) = &self.winograd {
            // SAFETY: the same contract.
            unsafe { winograd.run_into(&self.bias, self.silu, input, out, residual, batch, g) };
        } else if let Some(direct) = &self.direct {
            // SAFETY: the same contract.
            unsafe { direct.run_into(&self.bias, self.silu, input, out, residual, batch, g) };
        } else {
            // SAFETY: the same contract.
            unsafe { self.run_gemm(input, out, residual, batch, g) };
        }
        if let Some(started) = started {
            let algorithm = match (self.winograd.is_some(), self.direct.is_some()) {
                (true, _) => ", Winograd",
                (_, true) => ", direct",
                _ => "",
            };
            let shape = format!("{}→{} {}×{}/{}{algorithm} at {}×{}", self.inp, self.out, self.k, self.k, self.stride, g.h, g.w);
            let flops = batch as u64 * self.flops(g.h, g.w);
            PROFILE.lock().expect("profile").push(LayerTime { shape, flops, seconds: started.elapsed().as_secs_f64() });
        }
    }

    /// [`Self::run_into`] as GEMMs over the input planes or their im2col columns.
    ///
    /// # Safety
    /// As [`Self::run_into`].
    unsafe fn run_gemm(&self, input: Planes, out: Planes, residual: Option<Planes>, batch: usize, g: Geometry) {
        let n = g.oh * g.ow;
        // Enough tiles for every thread to have several (the work per tile is even, so four per
        // thread keeps the last ones short), as wide as the column budget allows.
        let per_image = (4 * rayon::current_num_threads()).div_ceil(batch);
        let depth = self.inp * self.k * self.k;
        let columns = if self.direct() { usize::MAX } else { COLUMN_BUDGET / depth };
        let cap = columns.min(OUTPUT_BUDGET / self.out).max(LANES);
        let width = n.div_ceil(per_image).min(cap).next_multiple_of(LANES).min(n);
        let tiles = n.div_ceil(width);
        (0..batch * tiles).into_par_iter().for_each(|task| {
            let (image, tile) = (task / tiles, task % tiles);
            let start = tile * width;
            let cols = width.min(n - start);
            // SAFETY: per the contract, the image's input planes, which no task writes.
            let source = unsafe { std::slice::from_raw_parts(input.image(image), self.inp * g.h * g.w) };
            // SAFETY: this task alone writes columns start..start + cols of this image's rows; the
            // residual's, if any, no task writes.
            unsafe { self.tile(source, out.image(image), residual.map(|r| r.image(image)), g, start, cols) };
        });
    }

    /// Computes output columns `start..start + cols` of one image into `out` (that image's
    /// `[out, oh·ow]` block), adding the same columns of `residual` after the activation.
    ///
    /// # Safety
    /// `out` (and `residual`) must point to the image's output block (and its shortcut's), and
    /// nothing else may touch those columns.
    unsafe fn tile(&self, input: &[f32], out: *mut f32, residual: Option<*mut f32>, g: Geometry, start: usize, cols: usize) {
        let n = g.oh * g.ow;
        let depth = self.inp * self.k * self.k;
        let multiply = |rhs: *const f32, rhs_rs: usize| {
            // SAFETY: the left matrix is out × depth row-major, the right depth × cols with rows
            // rhs_rs apart, the destination out × cols with rows n apart, inside this tile.
            unsafe {
                gemm::gemm(
                    self.out,
                    cols,
                    depth,
                    out.add(start),
                    1,
                    n as isize,
                    false,
                    self.weight.as_ptr(),
                    1,
                    depth as isize,
                    rhs,
                    1,
                    rhs_rs as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        };
        if self.direct() {
            multiply(input[start..].as_ptr(), n);
        } else {
            COLUMNS.with_borrow_mut(|columns| {
                columns.resize(depth * cols, 0.0);
                im2col(input, columns, g, self.inp, self.k, self.stride, self.pad, start, cols);
                multiply(columns.as_ptr(), cols);
            });
        }
        for (o, &bias) in self.bias.iter().enumerate() {
            // SAFETY: row o's columns of this tile, written above by this task only.
            let row = unsafe { std::slice::from_raw_parts_mut(out.add(o * n + start), cols) };
            // SAFETY: the same columns of the shortcut's row o, which no task writes.
            let add = residual.map(|residual| unsafe { std::slice::from_raw_parts(residual.add(o * n + start), cols) });
            finish(row, bias, self.silu, add);
        }
    }
}


#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The convolution by its definition, one output at a time, in f64, with each output's
    /// tolerance: f32 arithmetic's rounding of a sum grows with the magnitudes of its terms, so the
    /// tolerance is 2e-5 of the value (at least 1) plus 1e-7 (about one ulp) of `Σ|x·w|`.
    fn reference(conv: &HostConv, input: &[f32], batch: usize, h: usize, w: usize) -> Vec<(f32, f32)> {
        let (oh, ow) = conv.output_size(h, w);
        let mut out = Vec::new();
        for b in 0..batch {
            for o in 0..conv.out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut sum = conv.bias[o] as f64;
                        let mut magnitude = sum.abs();
                        for c in 0..conv.inp {
                            for ky in 0..conv.k {
                                for kx in 0..conv.k {
                                    let (iy, ix) = (
                                        (oy * conv.stride + ky) as isize - conv.pad as isize,
                                        (ox * conv.stride + kx) as isize - conv.pad as isize,
                                    );
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                        let x = input[((b * conv.inp + c) * h + iy as usize) * w + ix as usize] as f64;
                                        let term = x * conv.weight[((o * conv.inp + c) * conv.k + ky) * conv.k + kx] as f64;
                                        sum += term;
                                        magnitude += term.abs();
                                    }
                                }
                            }
                        }
                        let value = if conv.silu { sum / (1.0 + (-sum).exp()) } else { sum };
                        out.push((value as f32, (2e-5 * value.abs().max(1.0) + 1e-7 * magnitude) as f32));
                    }
                }
            }
        }
        out
    }

    pub(in crate::host) fn values(len: usize, seed: u64) -> Vec<f32> {
        (0..len as u64).map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5 - 1.0).collect()
    }

    #[test]
    fn every_geometry_matches_the_definition() {
        // (in, out, k, stride, pad, h, w, batch, silu): YOLOv8's 1×1, 3×3 and strided 3×3 shapes,
        // odd sizes whose tiles end mid-row, more tiles than pixels in a row, one pixel.
        let cases = [
            (3, 8, 3, 2, 1, 17, 23, 2, true),
            (16, 24, 1, 1, 0, 9, 40, 3, true),
            (8, 5, 3, 1, 1, 31, 7, 1, false),
            (4, 4, 3, 2, 1, 8, 8, 5, true),
            (6, 3, 1, 1, 0, 1, 1, 2, false),
            (5, 7, 3, 1, 1, 2, 3, 1, true),
            (7, 9, 3, 2, 1, 65, 66, 1, true),
            // 3×3 of stride 1 (Winograd's): odd and even sizes, one pixel, one row, tall and thin,
            // more channels than a band's budget holds in one tile row.
            (16, 24, 3, 1, 1, 9, 40, 3, true),
            (32, 16, 3, 1, 1, 33, 17, 2, true),
            (3, 5, 3, 1, 1, 1, 1, 1, false),
            (4, 6, 3, 1, 1, 1, 9, 2, true),
            (6, 4, 3, 1, 1, 50, 3, 1, false),
            (256, 200, 3, 1, 1, 6, 10, 1, true),
            // The direct kernel's (3×3 of stride 1 or 2, at most 16 channels in): odd and even
            // widths, rows of several blocks and a partial one, one pixel, one row.
            (3, 16, 3, 2, 1, 40, 37, 1, true),
            (16, 32, 3, 2, 1, 34, 34, 2, false),
            (16, 16, 3, 1, 1, 21, 35, 2, true),
            (12, 16, 3, 1, 1, 1, 1, 1, true),
            (2, 4, 3, 2, 1, 1, 1, 1, true),
            (2, 4, 3, 2, 1, 2, 3, 3, false),
            // Bands longer than one fill of lines, on up to 64 threads.
            (4, 4, 3, 1, 1, 600, 5, 1, true),
            (3, 8, 3, 2, 1, 1201, 6, 1, false),
        ];
        for (i, &(inp, out, k, stride, pad, h, w, batch, silu)) in cases.iter().enumerate() {
            let conv = |algorithm| HostConv::with_algorithm(values(out * inp * k * k, i as u64), [out, inp, k, k], values(out, 99), stride, pad, silu, algorithm);
            let input = values(batch * inp * h * w, 7);
            let (oh, ow) = conv(Algorithm::Gemm).output_size(h, w);
            let want = reference(&conv(Algorithm::Gemm), &input, batch, h, w);
            // The fastest, GEMMs, and Winograd's algorithm wherever it applies.
            let mut variants = vec![("fastest", conv(Algorithm::Fastest)), ("GEMM", conv(Algorithm::Gemm))];
            if k == 3 && stride == 1 && pad == 1 {
                variants.push(("Winograd", conv(Algorithm::Winograd)));
            }
            if direct::applies(inp, out, k, stride, pad) {
                variants.push(("direct", conv(Algorithm::Direct)));
            }
            for (name, conv) in variants {
                let got = conv.run(&input, batch, Geometry { h, w, oh, ow });
                assert_eq!(got.len(), want.len());
                for (j, (a, (b, tolerance))) in got.iter().zip(&want).enumerate() {
                    assert!((a - b).abs() <= *tolerance, "case {i} ({name}), element {j}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn a_shortcut_is_added_after_the_activation() {
        // A bottleneck's second convolution (3×3, Winograd's) and a 1×1, each writing into planes
        // of a wider buffer, as C2f's do.
        for (i, &(inp, out, k, pad)) in [(32, 32, 3, 1), (8, 8, 3, 1), (8, 8, 1, 0)].iter().enumerate() {
            let (batch, h, w, wide) = (2, 11, 14, out + 3);
            let conv = HostConv::new(values(out * inp * k * k, 5 + i as u64), [out, inp, k, k], values(out, 4), 1, pad, true);
            assert_eq!(conv.winograd.is_some(), i == 0, "case {i}: Winograd's where the channels pay");
            let reference_conv = HostConv::with_algorithm(values(out * inp * k * k, 5 + i as u64), [out, inp, k, k], values(out, 4), 1, pad, true, Algorithm::Gemm);
            let input = values(batch * inp * h * w, 8);
            let shortcut = values(batch * out * h * w, 9);
            let mut buffer = vec![f32::NAN; batch * wide * h * w];
            let g = Geometry { h, w, oh: h, ow: w };
            // SAFETY: every buffer holds all its images; the output planes overlap neither input.
            unsafe {
                conv.run_into(
                    Planes { ptr: input.as_ptr().cast_mut(), stride: inp * h * w },
                    Planes { ptr: buffer.as_mut_ptr().add(h * w), stride: wide * h * w },
                    Some(Planes { ptr: shortcut.as_ptr().cast_mut(), stride: out * h * w }),
                    batch,
                    g,
                )
            };
            let want = reference(&reference_conv, &input, batch, h, w);
            for b in 0..batch {
                let image = &buffer[b * wide * h * w..][..wide * h * w];
                assert!(image[..h * w].iter().chain(&image[(out + 1) * h * w..]).all(|v| v.is_nan()), "case {i}: wrote outside its planes");
                for (j, got) in image[h * w..(out + 1) * h * w].iter().enumerate() {
                    let at = b * out * h * w + j;
                    let (expected, tolerance) = (want[at].0 + shortcut[at], want[at].1 + 2e-5);
                    assert!((got - expected).abs() <= tolerance, "case {i}, image {b}, element {j}: {got} vs {expected}");
                }
            }
        }
    }
}

