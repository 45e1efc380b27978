//! The convolution of the CPU backend, computed on the host: GEMMs on NCHW activations with the bias
//! and SiLU applied to each output tile while it is still in cache.
//!
//! Burn Flex runs a convolution as a transpose of the whole input to NHWC (on one thread), a
//! re-flattening of the weights (on every call), im2col and a GEMM per tile of 512 output pixels, a
//! scatter of each tile back to NCHW, then a pass for the bias; SiLU as Burn tensor ops is two more
//! passes with a scalar `expf`. Here the weights stay in their ONNX/PyTorch order, which is already
//! the `[out, in·k·k]` left-hand matrix; a 1×1 convolution of stride 1 multiplies it with the input
//! planes where they lie; any other builds the im2col columns of one tile of output pixels at a time
//! in a per-thread buffer. Tiles of every image run in parallel on the rayon pool, each writing its
//! own columns of the output, and each ends with one pass of bias plus SiLU over what it wrote.
//!
//! SiLU is `x / (1 + e^-x)` with a branch-free exponential the compiler vectorises (Cephes' range
//! reduction and polynomial, within 2 ulp of `expf` over the range that matters), compiled for AVX2
//! and FMA when the processor has them.

use std::cell::RefCell;

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// e^x for x in [-87, 88], branch-free so that loops over it vectorise.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // n = round(x / ln 2), by the 1.5·2^23 trick (no rounding instruction needed).
    const ROUND: f32 = 12_582_912.0;
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // r = x - n·ln 2, with ln 2 in two parts for precision.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n from t's low mantissa bits, which hold n: integer operations only (an `as i32`
    // conversion saturates, which compilers do one lane at a time).
    y * f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23)
}

/// A tensor's values on the host (no copy when the tensor holds them alone).
fn host_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("activations are f32")
}

#[inline(always)]
fn map_portable(values: &mut [f32], f: impl Fn(f32) -> f32) {
    values.iter_mut().for_each(|v| *v = f(*v));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn map_avx2(values: &mut [f32], f: impl Fn(f32) -> f32) {
    map_portable(values, f)
}

/// `v ← f(v)` for every element, compiled for AVX2 and FMA when the processor has them.
#[inline(always)]
fn map(values: &mut [f32], f: impl Fn(f32) -> f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the processor has both features, checked just above.
        return unsafe { map_avx2(values, f) };
    }
    map_portable(values, f)
}

/// `v ← silu(v + bias)` for every element.
pub fn bias_silu(values: &mut [f32], bias: f32) {
    map(values, |v| {
        let x = v + bias;
        x / (1.0 + exp(-x))
    })
}

/// The logistic sigmoid of a tensor, computed on the host.
pub fn sigmoid<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    let (device, dims) = (t.device(), t.dims());
    let mut values = host_values(t);
    values.par_chunks_mut(16 * 1024).for_each(|chunk| map(chunk, |x| 1.0 / (1.0 + exp(-x))));
    Tensor::from_data(TensorData::new(values, dims), &device)
}

/// `cat([upsample2(a), b], 1)` on the host: `a` enlarged ×2 by nearest neighbour and `b` side by
/// side in one buffer, each written once.
pub fn upsample_cat(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let device = a.device();
    let ([batch, ca, h, w], [bb, cb, h2, w2]) = (a.dims(), b.dims());
    assert!(bb == batch && h2 == 2 * h && w2 == 2 * w, "upsample_cat of {:?} and {:?}", a.dims(), b.dims());
    let a = host_values(a);
    let b = host_values(b);
    let mut out = Vec::with_capacity(batch * (ca + cb) * h2 * w2);
    for image in 0..batch {
        for row in a[image * ca * h * w..][..ca * h * w].chunks_exact(w) {
            // Each pixel twice across, then that row twice down.
            out.extend(row.iter().flat_map(|&v| [v, v]));
            out.extend_from_within(out.len() - 2 * w..);
        }
        out.extend_from_slice(&b[image * cb * h2 * w2..][..cb * h2 * w2]);
    }
    Tensor::from_data(TensorData::new(out, [batch, ca + cb, h2, w2]), &device)
}

fn add_bias(values: &mut [f32], bias: f32) {
    values.iter_mut().for_each(|v| *v += bias);
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
    out: usize,
    inp: usize,
    k: usize,
    stride: usize,
    pad: usize,
    silu: bool,
}

/// Where one image's convolution reads and writes, in elements.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

/// The activations of a batch in a buffer: each image's planes contiguous from `ptr + i·stride`.
/// Shared by the tasks of a parallel loop, each of which reads or writes its own part.
#[derive(Clone, Copy)]
struct Planes {
    ptr: *mut f32,
    stride: usize,
}
// SAFETY: tasks write disjoint elements (their own image and columns), read only what no task
// writes, and the buffers outlive the parallel loop that uses them.
unsafe impl Send for Planes {}
unsafe impl Sync for Planes {}

impl Planes {
    /// Image `i`'s first element (a method, so that closures capture the whole `Planes`).
    fn image(self, i: usize) -> *mut f32 {
        self.ptr.wrapping_add(i * self.stride)
    }
}

thread_local! {
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl HostConv {
    /// A convolution of `weight` (`[out, in, k, k]`, square kernel) and `bias` (`[out]`).
    pub fn new(weight: Vec<f32>, dims: [usize; 4], bias: Vec<f32>, stride: usize, pad: usize, silu: bool) -> Self {
        let [out, inp, k, kw] = dims;
        assert!(k == kw && weight.len() == out * inp * k * k && bias.len() == out, "convolution weights of {dims:?}");
        Self { weight, bias, out, inp, k, stride, pad, silu }
    }

    fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        ((h + 2 * self.pad - self.k) / self.stride + 1, (w + 2 * self.pad - self.k) / self.stride + 1)
    }

    /// Whether the input planes are the GEMM's right-hand matrix as they lie.
    fn direct(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let device = x.device();
        let [b, c, h, w] = x.dims();
        assert_eq!(c, self.inp, "input channels");
        let input = host_values(x);
        let (oh, ow) = self.output_size(h, w);
        let out = self.run(&input, b, Geometry { h, w, oh, ow });
        Tensor::from_data(TensorData::new(out, [b, self.out, oh, ow]), &device)
    }

    /// Runs the convolution over `batch` images of `input` (NCHW) and returns the NCHW output.
    fn run(&self, input: &[f32], batch: usize, g: Geometry) -> Vec<f32> {
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
    unsafe fn run_into(&self, input: Planes, out: Planes, residual: Option<Planes>, batch: usize, g: Geometry) {
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
            // SAFETY: this task alone writes columns start..start + cols of this image's rows.
            unsafe { self.tile(source, out.image(image), g, start, cols) };
            if let Some(residual) = residual {
                for o in 0..self.out {
                    // SAFETY: the same columns, and the residual's, which no task writes.
                    let (row, add) = unsafe {
                        let at = o * n + start;
                        (
                            std::slice::from_raw_parts_mut(out.image(image).add(at), cols),
                            std::slice::from_raw_parts(residual.image(image).add(at), cols),
                        )
                    };
                    row.iter_mut().zip(add).for_each(|(v, r)| *v += r);
                }
            }
        });
    }

    /// Computes output columns `start..start + cols` of one image into `out` (that image's
    /// `[out, oh·ow]` block).
    ///
    /// # Safety
    /// `out` must point to the image's output block, and nothing else may touch those columns.
    unsafe fn tile(&self, input: &[f32], out: *mut f32, g: Geometry, start: usize, cols: usize) {
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
                self.im2col(input, columns, g, start, cols);
                multiply(columns.as_ptr(), cols);
            });
        }
        for (o, &bias) in self.bias.iter().enumerate() {
            // SAFETY: row o's columns of this tile, written above by this task only.
            let row = unsafe { std::slice::from_raw_parts_mut(out.add(o * n + start), cols) };
            if self.silu { bias_silu(row, bias) } else { add_bias(row, bias) }
        }
    }

    /// Fills `columns` (`[in·k·k, cols]`) with the input pixels each output pixel of the tile sees.
    fn im2col(&self, input: &[f32], columns: &mut [f32], g: Geometry, start: usize, cols: usize) {
        let (k, s, pad) = (self.k, self.stride, self.pad);
        for c in 0..self.inp {
            let plane = &input[c * g.h * g.w..][..g.h * g.w];
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut columns[((c * k + ky) * k + kx) * cols..][..cols];
                    // Output columns whose input column ox·s + kx − pad lies inside the plane.
                    let first = pad.saturating_sub(kx).div_ceil(s);
                    let end = ((g.w + pad).saturating_sub(kx)).div_ceil(s).min(g.ow);
                    let mut done = 0;
                    while done < cols {
                        let (oy, ox) = ((start + done) / g.ow, (start + done) % g.ow);
                        let run = (g.ow - ox).min(cols - done);
                        let dst = &mut row[done..done + run];
                        done += run;
                        let iy = (oy * s + ky).wrapping_sub(pad);
                        if iy >= g.h {
                            dst.fill(0.0);
                            continue;
                        }
                        let line = &plane[iy * g.w..][..g.w];
                        let lo = first.clamp(ox, ox + run);
                        let hi = end.clamp(lo, ox + run);
                        dst[..lo - ox].fill(0.0);
                        dst[hi - ox..].fill(0.0);
                        if hi == lo {
                            continue;
                        }
                        let inside = &mut dst[lo - ox..hi - ox];
                        let from = lo * s + kx - pad;
                        match s {
                            1 => inside.copy_from_slice(&line[from..from + inside.len()]),
                            2 => gather::<2>(inside, &line[from..]),
                            _ => inside.iter_mut().enumerate().for_each(|(i, v)| *v = line[from + i * s]),
                        }
                    }
                }
            }
        }
    }
}

/// A C2f block on the host. `cv1`'s output and every bottleneck's are written side by side into one
/// buffer, which is the concatenation `cv2` reads, so nothing is split, copied or concatenated; a
/// bottleneck's shortcut is added as its second convolution writes. Every convolution of a C2f has
/// stride 1 and keeps the size.
pub fn c2f(cv1: &HostConv, bottlenecks: &[(&HostConv, &HostConv)], shortcut: bool, cv2: &HostConv, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let [batch, c, h, w] = x.dims();
    let half = cv1.out / 2;
    let channels = cv1.out + bottlenecks.len() * half;
    let chained = bottlenecks.iter().all(|(a, b)| a.inp == half && b.inp == a.out && b.out == half);
    assert!(c == cv1.inp && chained && cv2.inp == channels, "C2f channels do not chain");
    let same = |conv: &HostConv| conv.stride == 1 && conv.k == 2 * conv.pad + 1;
    assert!(same(cv1) && same(cv2) && bottlenecks.iter().all(|(a, b)| same(a) && same(b)), "C2f convolutions keep the size");
    let input = host_values(x);
    let (g, plane) = (Geometry { h, w, oh: h, ow: w }, h * w);
    let mut cat = vec![0.0f32; batch * channels * plane];
    let base = cat.as_mut_ptr();
    let at = |channel: usize| Planes { ptr: base.wrapping_add(channel * plane), stride: channels * plane };
    // SAFETY: each convolution reads planes written before it and writes planes nothing reads
    // meanwhile: cv1 channels 0..2·half, bottleneck i reads the half before its own and writes
    // channels (2 + i)·half..(3 + i)·half; every buffer holds all its images.
    unsafe {
        cv1.run_into(Planes { ptr: input.as_ptr().cast_mut(), stride: c * plane }, at(0), None, batch, g);
        for (i, (a, b)) in bottlenecks.iter().enumerate() {
            let last = at((1 + i) * half);
            let mut mid = Vec::<f32>::with_capacity(batch * a.out * plane);
            let mid_planes = Planes { ptr: mid.as_mut_ptr(), stride: a.out * plane };
            a.run_into(last, mid_planes, None, batch, g);
            mid.set_len(batch * a.out * plane);
            b.run_into(mid_planes, at((2 + i) * half), shortcut.then_some(last), batch, g);
        }
    }
    let out = cv2.run(&cat, batch, g);
    Tensor::from_data(TensorData::new(out, [batch, cv2.out, h, w]), &device)
}

/// Max pooling of every plane over a `(2r+1)²` window, stride 1, padded so the size is kept (padding
/// never wins): SPPF's pooling. Separable: the maximum along rows, then along columns.
pub fn max_pool_same(x: Tensor<4>, r: usize) -> Tensor<4> {
    let device = x.device();
    let [b, c, h, w] = x.dims();
    let mut values = host_values(x);
    values.par_chunks_mut(h * w).for_each(|plane| {
        let mut line = vec![0.0f32; w];
        for row in plane.chunks_exact_mut(w) {
            line.copy_from_slice(row);
            for (x, v) in row.iter_mut().enumerate() {
                *v = line[x.saturating_sub(r)..(x + r + 1).min(w)].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            }
        }
        let rows: Vec<f32> = plane.to_vec();
        for y in 0..h {
            let (top, bottom) = (y.saturating_sub(r), (y + r + 1).min(h));
            let out = &mut plane[y * w..][..w];
            out.copy_from_slice(&rows[top * w..][..w]);
            for other in top + 1..bottom {
                out.iter_mut().zip(&rows[other * w..][..w]).for_each(|(o, v)| *o = o.max(*v));
            }
        }
    });
    Tensor::from_data(TensorData::new(values, [b, c, h, w]), &device)
}

/// `dst[i] = src[i·S]`, with the stride known to the compiler so that the loop vectorises.
#[inline(always)]
fn gather<const S: usize>(dst: &mut [f32], src: &[f32]) {
    let Some((last, head)) = dst.split_last_mut() else { return };
    for (v, group) in head.iter_mut().zip(src.chunks_exact(S)) {
        *v = group[0];
    }
    *last = src[head.len() * S];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_the_library() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp(x), x.exp());
            assert!(((a - b) / b).abs() < 2.5e-7, "exp({x}) = {a}, library {b}");
            x += 0.0137;
        }
    }

    #[test]
    fn silu_matches_its_definition() {
        let mut v: Vec<f32> = (-2000..2000).map(|i| i as f32 / 50.0).collect();
        let expected: Vec<f32> = v.iter().map(|x| (x + 0.5) / (1.0 + (-(x + 0.5)).exp())).collect();
        bias_silu(&mut v, 0.5);
        for (a, b) in v.iter().zip(&expected) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
        let device = burn::tensor::Device::flex();
        let logits = Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &device);
        let probabilities = sigmoid(logits).into_data().try_into_vec::<f32>().unwrap();
        for (p, x) in probabilities.iter().zip(&v) {
            assert!((p - 1.0 / (1.0 + (-x).exp())).abs() <= 1e-7, "sigmoid({x}) = {p}");
        }
        let mut extreme = vec![-1e30f32, 1e30, -100.0, 100.0];
        bias_silu(&mut extreme, 0.0);
        assert!(extreme[0].abs() < 1e-8 && extreme[1] == 1e30, "{extreme:?}");
        assert!(extreme[2].abs() < 1e-30 && extreme[3] == 100.0);
    }

    #[test]
    fn max_pooling_matches_its_definition() {
        let device = burn::tensor::Device::flex();
        let (b, c, h, w, r) = (2, 3, 7, 9, 2);
        let input = values(b * c * h * w, 3);
        let x = Tensor::<4>::from_data(TensorData::new(input.clone(), [b, c, h, w]), &device);
        let got = max_pool_same(x, r).into_data().try_into_vec::<f32>().unwrap();
        for p in 0..b * c {
            for y in 0..h {
                for x in 0..w {
                    let mut best = f32::NEG_INFINITY;
                    for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                        for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
                            best = best.max(input[(p * h + yy) * w + xx]);
                        }
                    }
                    assert_eq!(got[(p * h + y) * w + x], best, "plane {p} at {y},{x}");
                }
            }
        }
    }

    /// The convolution by its definition, one output at a time, in f64.
    fn reference(conv: &HostConv, input: &[f32], batch: usize, h: usize, w: usize) -> Vec<f32> {
        let (oh, ow) = conv.output_size(h, w);
        let mut out = Vec::new();
        for b in 0..batch {
            for o in 0..conv.out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut sum = conv.bias[o] as f64;
                        for c in 0..conv.inp {
                            for ky in 0..conv.k {
                                for kx in 0..conv.k {
                                    let (iy, ix) = (
                                        (oy * conv.stride + ky) as isize - conv.pad as isize,
                                        (ox * conv.stride + kx) as isize - conv.pad as isize,
                                    );
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                        let x = input[((b * conv.inp + c) * h + iy as usize) * w + ix as usize] as f64;
                                        sum += x * conv.weight[((o * conv.inp + c) * conv.k + ky) * conv.k + kx] as f64;
                                    }
                                }
                            }
                        }
                        out.push(if conv.silu { sum / (1.0 + (-sum).exp()) } else { sum } as f32);
                    }
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u64) -> Vec<f32> {
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
        ];
        for (i, &(inp, out, k, stride, pad, h, w, batch, silu)) in cases.iter().enumerate() {
            let conv = HostConv::new(values(out * inp * k * k, i as u64), [out, inp, k, k], values(out, 99), stride, pad, silu);
            let input = values(batch * inp * h * w, 7);
            let (oh, ow) = conv.output_size(h, w);
            let got = conv.run(&input, batch, Geometry { h, w, oh, ow });
            let want = reference(&conv, &input, batch, h, w);
            assert_eq!(got.len(), want.len());
            for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= 2e-5 * b.abs().max(1.0), "case {i}, element {j}: {a} vs {b}");
            }
        }
    }
}
