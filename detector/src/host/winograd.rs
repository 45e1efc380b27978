//! 3×3 convolutions of stride 1 by Winograd's minimal filtering F(2×2, 3×3): 16 multiplications per
//! 2×2 output tile and input channel instead of 36.
//!
//! The weights are transformed once, `U = G·g·Gᵀ` (in f64, rounded once), into sixteen `[out, in]`
//! matrices. A task takes a band of tile rows of one image: it transforms the input, `V = Bᵀ·d·B`
//! for every 4×4 input patch (overlapping by two), into sixteen `[in, tiles]` matrices, multiplies
//! each with its `U` (sixteen GEMMs, the `gemm` crate's), and turns the products back into the
//! band's output pixels, `Y = Aᵀ·M·A`, adding the bias, SiLU and a shortcut as it writes. The
//! transforms only add and subtract, rows at a time so that they vectorise; the band's transformed
//! input and products stay within a budget that fits the processor's L2 and L3 caches. The
//! matrices are Lavin and Gray's ("Fast Algorithms for Convolutional Neural Networks", 2016).

use std::cell::RefCell;

use rayon::prelude::*;

use super::conv::{Geometry, Planes};
use super::math::finish;

/// Floats of transformed input and products one band may hold.
const BAND_BUDGET: usize = 384 * 1024;

/// A 3×3, stride-1, padding-1 convolution's weights in the Winograd domain.
#[derive(Debug)]
pub(super) struct Winograd {
    /// Sixteen `[out, in]` matrices, `u[ξ][o][c]`, ξ = 4·row + column of the 4×4 transform.
    u: Vec<f32>,
    out: usize,
    inp: usize,
}

/// The buffers of one band: transformed input, products, and four padded input rows.
#[derive(Default)]
struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
    rows: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Channels in and out below which the GEMMs' depth and height are too short for the fewer
/// multiplications to outweigh the transforms: at 16→16 over 160×160 Winograd's was 11% slower
/// than im2col and GEMM, at 32→32 over 80×80 17% faster, at 64→64 over 40×40 50% (2 threads,
/// AVX2, 2026-12-03).
const MIN_CHANNELS: usize = 32;

impl Winograd {
    /// Whether Winograd's algorithm is the faster for a convolution of these channels.
    pub fn pays(inp: usize, out: usize) -> bool {
        inp.min(out) >= MIN_CHANNELS
    }

    /// Transforms `weight` (`[out, in, 3, 3]`, row-major): `U = G·g·Gᵀ` with
    /// `G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`.
    pub fn new(weight: &[f32], out: usize, inp: usize) -> Self {
        assert_eq!(weight.len(), out * inp * 9, "3×3 weights of {out}×{inp}");
        const G: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
        let mut u = vec![0.0f32; 16 * out * inp];
        for o in 0..out {
            for c in 0..inp {
                let g = &weight[(o * inp + c) * 9..][..9];
                for (i, gi) in G.iter().enumerate() {
                    for (j, gj) in G.iter().enumerate() {
                        let mut sum = 0.0f64;
                        for a in 0..3 {
                            for b in 0..3 {
                                sum += gi[a] * g[3 * a + b] as f64 * gj[b];
                            }
                        }
                        u[((4 * i + j) * out + o) * inp + c] = sum as f32;
                    }
                }
            }
        }
        Self { u, out, inp }
    }

    /// Runs the convolution over `batch` images of `input`, writing `out` with the bias, then SiLU
    /// when `silu`, then `residual` added: [`super::HostConv::run_into`]'s contract, with `g` of
    /// the same size in and out.
    ///
    /// # Safety
    /// As [`super::HostConv::run_into`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn run_into(&self, bias: &[f32], silu: bool, input: Planes, out: Planes, residual: Option<Planes>, batch: usize, g: Geometry) {
        debug_assert!(g.oh == g.h && g.ow == g.w);
        let (th, tw) = (g.h.div_ceil(2), g.w.div_ceil(2));
        // Bands of whole tile rows, as tall as the budget allows but enough of them for every
        // thread to have several.
        let per_row = 16 * (self.inp + self.out) * tw;
        let bands_per_image = (2 * rayon::current_num_threads()).div_ceil(batch).min(th);
        let rows = (BAND_BUDGET / per_row).clamp(1, th.div_ceil(bands_per_image));
        let bands = th.div_ceil(rows);
        (0..batch * bands).into_par_iter().for_each(|task| {
            let (image, band) = (task / bands, task % bands);
            let first = band * rows;
            let count = rows.min(th - first);
            SCRATCH.with_borrow_mut(|scratch| {
                // SAFETY: per the contract; this task alone writes the band's output rows.
                unsafe { self.band(scratch, bias, silu, input.image(image), out.image(image), residual.map(|r| r.image(image)), g, first, count) }
            });
        });
    }

    /// Computes tile rows `first..first + count` of one image: output rows `2·first` up to
    /// `2·(first + count)` (or the last row).
    ///
    /// # Safety
    /// `input`, `out` and `residual` point to the image's planes; nothing else writes those rows.
    #[allow(clippy::too_many_arguments)]
    unsafe fn band(
        &self,
        scratch: &mut Scratch,
        bias: &[f32],
        silu: bool,
        input: *const f32,
        out: *mut f32,
        residual: Option<*mut f32>,
        g: Geometry,
        first: usize,
        count: usize,
    ) {
        let tw = g.w.div_ceil(2);
        let n = count * tw;
        let plane = g.h * g.w;
        let Scratch { v, m, rows } = scratch;
        v.resize(16 * self.inp * n, 0.0);
        m.resize(16 * self.out * n, 0.0);
        // SAFETY: the contract: the image's input planes, which no task writes.
        let input = unsafe { std::slice::from_raw_parts(input, self.inp * plane) };
        for c in 0..self.inp {
            for r in 0..count {
                self.transform_input(&input[c * plane..][..plane], rows, v, g, first + r, c * n + r * tw, n);
            }
        }
        for xi in 0..16 {
            // SAFETY: u[ξ] is out × in row-major, v[ξ] in × n and m[ξ] out × n, both rows n apart.
            unsafe {
                gemm::gemm(
                    self.out,
                    n,
                    self.inp,
                    m.as_mut_ptr().add(xi * self.out * n),
                    1,
                    n as isize,
                    false,
                    self.u.as_ptr().add(xi * self.out * self.inp),
                    1,
                    self.inp as isize,
                    v.as_ptr().add(xi * self.inp * n),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        }
        let (top, bottom) = (2 * first, (2 * (first + count)).min(g.h));
        let span = (bottom - top) * g.w;
        for (o, &bias) in bias.iter().enumerate() {
            // SAFETY: output rows top..bottom of plane o, which only this task writes.
            let dst = unsafe { std::slice::from_raw_parts_mut(out.add(o * plane + top * g.w), span) };
            for r in 0..count {
                let y = 2 * r;
                let (upper, lower) = dst[y * g.w..].split_at_mut(g.w);
                let lower = (top + y + 1 < g.h).then(|| &mut lower[..g.w]);
                transform_output(m, o * n + r * tw, self.out * n, &mut upper[..g.w], lower);
            }
            // SAFETY: the same rows of the shortcut's plane o, which no task writes.
            let add = residual.map(|residual| unsafe { std::slice::from_raw_parts(residual.add(o * plane + top * g.w), span) });
            finish(dst, bias, silu, add);
        }
    }

    /// Writes `V = Bᵀ·d·B` of every 4×4 patch of tile row `ty` of one plane into
    /// `v[ξ][at + tx]` (ξ's matrices `stride·in` apart), with
    /// `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`.
    ///
    /// Each input row is split into its even and odd padded columns first, so that both halves of
    /// the transform are element by element over contiguous rows.
    #[allow(clippy::too_many_arguments)]
    fn transform_input(&self, plane: &[f32], rows: &mut Vec<f32>, v: &mut [f32], g: Geometry, ty: usize, at: usize, stride: usize) {
        let tw = g.w.div_ceil(2);
        // Input rows 2·ty − 1 .. 2·ty + 2, padded by a column of zeros on the left (and on the
        // right where needed): padded column 2k (input column 2k − 1) in the first half of a row,
        // 2k + 1 (input column 2k) in the second.
        let half = tw + 1;
        let width = 2 * half;
        rows.clear();
        rows.resize(4 * width, 0.0);
        for (i, row) in rows.chunks_exact_mut(width).enumerate() {
            let y = (2 * ty + i).wrapping_sub(1);
            if y < g.h {
                let (even, odd) = row.split_at_mut(half);
                let line = &plane[y * g.w..][..g.w];
                for (k, pair) in line.chunks(2).enumerate() {
                    odd[k] = pair[0];
                    if let Some(&next) = pair.get(1) {
                        even[k + 1] = next;
                    }
                }
            }
        }
        let (d0, rest) = rows.split_at_mut(width);
        let (d1, rest) = rest.split_at_mut(width);
        let (d2, d3) = rest.split_at_mut(width);
        // Bᵀ·d, down the columns, in place: rows d0 − d2, d1 + d2, d2 − d1, d1 − d3.
        for (((a, b), c), d) in d0.iter_mut().zip(d1.iter_mut()).zip(d2.iter_mut()).zip(d3.iter_mut()) {
            (*a, *b, *c, *d) = (*a - *c, *b + *c, *c - *b, *b - *d);
        }
        let plane_stride = self.inp * stride;
        for (i, s) in [&*d0, &*d1, &*d2, &*d3].into_iter().enumerate() {
            // (Bᵀ·d)·B, along the rows: of each patch's columns p0..p3, p0 − p2, p1 + p2, p2 − p1,
            // p1 − p3; p0 and p2 are even columns k and k + 1, p1 and p3 odd ones.
            let (even, odd) = s.split_at(half);
            let (head, tail) = v.split_at_mut((4 * i + 2) * plane_stride);
            let (v0, v1) = head[4 * i * plane_stride..].split_at_mut(plane_stride);
            let (v2, v3) = tail.split_at_mut(plane_stride);
            let (v0, v1, v2, v3) = (&mut v0[at..at + tw], &mut v1[at..at + tw], &mut v2[at..at + tw], &mut v3[at..at + tw]);
            let (e0, e1, o0, o1) = (&even[..tw], &even[1..=tw], &odd[..tw], &odd[1..=tw]);
            for tx in 0..tw {
                v0[tx] = e0[tx] - e1[tx];
                v1[tx] = o0[tx] + e1[tx];
                v2[tx] = e1[tx] - o0[tx];
                v3[tx] = o0[tx] - o1[tx];
            }
        }
    }
}

/// Writes `Y = Aᵀ·M·A` of one tile row, `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`, from the products
/// `m[ξ·stride + at + tx]`, into the two output rows (the second absent below an odd height).
/// Eight tiles at a time, element by element over the products' rows, then interleaved.
fn transform_output(m: &[f32], at: usize, stride: usize, upper: &mut [f32], mut lower: Option<&mut [f32]>) {
    const L: usize = 8;
    let w = upper.len();
    let tw = w.div_ceil(2);
    let p: [&[f32]; 16] = std::array::from_fn(|xi| &m[xi * stride + at..][..tw]);
    // Tiles t..t + L: the 2×2 outputs [y00, y01, y10, y11], each L wide.
    let tiles = |t: usize| {
        let q: [&[f32; L]; 16] = std::array::from_fn(|xi| p[xi][t..t + L].try_into().expect("L tiles"));
        let mut y = [[0.0f32; L]; 4];
        for l in 0..L {
            // Aᵀ·M down the columns (r0 = m0 + m1 + m2, r1 = m1 − m2 − m3 of the 4×4's rows), then
            // ·A along the rows.
            let r0: [f32; 4] = std::array::from_fn(|j| q[j][l] + q[4 + j][l] + q[8 + j][l]);
            let r1: [f32; 4] = std::array::from_fn(|j| q[4 + j][l] - q[8 + j][l] - q[12 + j][l]);
            y[0][l] = r0[0] + r0[1] + r0[2];
            y[1][l] = r0[1] - r0[2] - r0[3];
            y[2][l] = r1[0] + r1[1] + r1[2];
            y[3][l] = r1[1] - r1[2] - r1[3];
        }
        y
    };
    let interleave = |row: &mut [f32], left: &[f32], right: &[f32]| {
        for ((pair, a), b) in row.chunks_exact_mut(2).zip(left).zip(right) {
            pair[0] = *a;
            pair[1] = *b;
        }
    };
    let full = w / 2 / L * L;
    for t in (0..full).step_by(L) {
        let y = tiles(t);
        interleave(&mut upper[2 * t..2 * t + 2 * L], &y[0], &y[1]);
        if let Some(lower) = lower.as_deref_mut() {
            interleave(&mut lower[2 * t..2 * t + 2 * L], &y[2], &y[3]);
        }
    }
    // The last tiles (and a half tile at an odd width), one at a time.
    #[allow(clippy::needless_range_loop)] // tx indexes sixteen rows and two outputs
    for tx in full..tw {
        let at = |xi: usize| p[xi][tx];
        let r0: [f32; 4] = std::array::from_fn(|j| at(j) + at(4 + j) + at(8 + j));
        let r1: [f32; 4] = std::array::from_fn(|j| at(4 + j) - at(8 + j) - at(12 + j));
        let x = 2 * tx;
        upper[x] = r0[0] + r0[1] + r0[2];
        if let Some(lower) = lower.as_deref_mut() {
            lower[x] = r1[0] + r1[1] + r1[2];
        }
        if x + 1 < w {
            upper[x + 1] = r0[1] - r0[2] - r0[3];
            if let Some(lower) = lower.as_deref_mut() {
                lower[x + 1] = r1[1] - r1[2] - r1[3];
            }
        }
    }
}
