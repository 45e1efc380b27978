//! Direct 3×3 convolutions over thin inputs (at most [`MAX_INPUT`] channels), of stride 1 or 2:
//! YOLOv8's stem and the layers right after it, where a GEMM's depth (27 to 144) is too shallow to
//! pay for packing its operands, and im2col's columns cost as much as the multiply.
//!
//! A task computes whole output rows of one image. For each [`ROWS`] of them it first lays the input
//! rows they see out once, as lines, one per input row and channel, zero-padded: at stride 2 a row is
//! split into its even and its odd pixels, so that every tap of every output pixel is a plain
//! contiguous load (`x[2·ox + kx − 1]` is the odd line's `ox`, the even line's `ox`, or the odd
//! line's `ox + 1`). Then blocks of [`OC`] output channels × [`PX`] output pixels accumulate in
//! registers over every input channel and tap: one load of [`PX`] input pixels, times each channel's
//! weight. The bias, SiLU and shortcut follow on the finished row while it is in cache. MLAS's
//! direct NCHWc convolutions keep the output block in registers the same way; this keeps NCHW.

use std::cell::RefCell;

use rayon::prelude::*;

use super::conv::{Geometry, Planes};
use super::math::finish;

/// Output pixels per block: two AVX2 vectors, one AVX-512 vector.
const PX: usize = 16;
/// Output channels per block: with [`PX`], eight AVX2 accumulators, half the registers.
const OC: usize = 4;
/// The widest input the direct kernel takes: beyond it the GEMM's depth pays for its packing
/// (16→32 over 320×320 and 16→16 over 160×160 are YOLOv8n's widest that run here).
pub const MAX_INPUT: usize = 16;

thread_local! {
    static LINES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A thin 3×3 convolution's weights laid out for the kernel: for each block of [`OC`] output
/// channels, for each tap `(c, ky, kx)`, the block's [`OC`] weights side by side.
#[derive(Debug)]
pub struct Direct {
    weight: Vec<f32>,
    inp: usize,
    stride: usize,
}

impl Direct {
    /// Lays out `weight` (`[out, in, 3, 3]`, row-major) of a convolution that [`applies`].
    pub fn new(weight: &[f32], out: usize, inp: usize, stride: usize) -> Self {
        assert!(applies(inp, out, 3, stride, 1) && weight.len() == out * inp * 9, "a direct 3×3 convolution of {inp}→{out}/{stride}");
        let depth = inp * 9;
        let mut blocked = Vec::with_capacity(weight.len());
        for ob in (0..out).step_by(OC) {
            for t in 0..depth {
                blocked.extend((ob..ob + OC).map(|o| weight[o * depth + t]));
            }
        }
        Self { weight: blocked, inp, stride }
    }
}

/// Whether a convolution of this shape runs directly.
pub fn applies(inp: usize, out: usize, k: usize, stride: usize, pad: usize) -> bool {
    k == 3 && pad == 1 && (stride == 1 || stride == 2) && inp <= MAX_INPUT && out.is_multiple_of(OC)
}

/// Output rows computed from one fill of lines: the input rows they share are laid out once
/// (10 input rows for 8 output rows at stride 1, 17 at stride 2, instead of 24).
const ROWS: usize = 8;

/// What the blocks of [`ROWS`] output rows read: lines for every input row they see, each input
/// row's lines for every channel side by side, and, for each tap `(c, ky, kx)` in the weights'
/// order, where its run of input pixels starts for the first of those output rows (the next output
/// row's start `stride` input rows further).
struct Layout {
    /// Floats of one line: the output row rounded up to whole blocks, and the taps' reach.
    line: usize,
    /// Lines per input row and channel: 1 at stride 1, 2 (even and odd pixels) at stride 2.
    per_row: usize,
    taps: Vec<usize>,
}

impl Layout {
    fn new(inp: usize, stride: usize, ow: usize) -> Self {
        let line = ow.next_multiple_of(PX) + 2;
        let per_row = stride;
        let mut taps = Vec::with_capacity(inp * 9);
        for c in 0..inp {
            for ky in 0..3 {
                let first = (ky * inp + c) * per_row * line;
                for kx in 0..3 {
                    taps.push(match (stride, kx) {
                        // line[j] = x[j − 1]: output ox's tap kx is x[ox + kx − 1].
                        (1, _) => first + kx,
                        // even[j] = x[2j], odd[j] = x[2j − 1].
                        (_, 0) => first + line,
                        (_, 1) => first,
                        _ => first + line + 1,
                    });
                }
            }
        }
        Self { line, per_row, taps }
    }

    /// Floats of one input row's lines, all channels.
    fn row_floats(&self, inp: usize) -> usize {
        inp * self.per_row * self.line
    }

    /// Lays out `count` input rows from row `first` (−1 for the padding above; `input` holds the
    /// image's planes).
    fn fill(&self, lines: &mut [f32], input: &[f32], inp: usize, g: Geometry, first: isize, count: usize) {
        for r in 0..count {
            for c in 0..inp {
                let at = (r * inp + c) * self.per_row * self.line;
                let dst = &mut lines[at..at + self.per_row * self.line];
                let iy = first + r as isize;
                if iy < 0 || iy as usize >= g.h {
                    dst.fill(0.0);
                    continue;
                }
                let row = &input[(c * g.h + iy as usize) * g.w..][..g.w];
                if self.per_row == 1 {
                    dst[0] = 0.0;
                    dst[1..=g.w].copy_from_slice(row);
                    dst[g.w + 1..].fill(0.0);
                } else {
                    let (even, odd) = dst.split_at_mut(self.line);
                    let pairs = row.chunks_exact(2);
                    let last = pairs.remainder().first().copied();
                    let n = pairs.len();
                    odd[0] = 0.0;
                    for (j, pair) in pairs.enumerate() {
                        even[j] = pair[0];
                        odd[j + 1] = pair[1];
                    }
                    // An odd width leaves one even pixel.
                    let evens = n + usize::from(last.is_some());
                    if let Some(v) = last {
                        even[n] = v;
                    }
                    even[evens..].fill(0.0);
                    odd[n + 1..].fill(0.0);
                }
            }
        }
    }
}

/// One output row: every block of [`OC`] channels × [`PX`] pixels over every tap, written to the
/// row's place in each output plane (`out` is the image's first plane). `FMA` fuses the
/// multiply-adds (only where the code is compiled for a processor with the instruction).
///
/// # Safety
/// `out` must hold the image's output planes, row `oy` of which no one else touches meanwhile.
#[inline(always)]
unsafe fn row<const FMA: bool>(lines: &[f32], layout: &Layout, weight: &[f32], out: *mut f32, g: Geometry, oy: usize) {
    let depth = layout.taps.len();
    // Every block's every tap reads inside the lines: checked once here, not in the loop.
    let reach = layout.taps.iter().max().map_or(0, |&t| t + g.ow.next_multiple_of(PX));
    assert!(reach <= lines.len(), "lines of {} floats for a reach of {reach}", lines.len());
    for (b, block) in weight.chunks_exact(depth * OC).enumerate() {
        for x0 in (0..g.ow).step_by(PX) {
            let mut acc = [[0.0f32; PX]; OC];
            for (&at, w) in layout.taps.iter().zip(block.chunks_exact(OC)) {
                // SAFETY: at + x0 + PX is within the reach checked above.
                let v = unsafe { &*lines.as_ptr().add(at + x0).cast::<[f32; PX]>() };
                for (acc, &w) in acc.iter_mut().zip(w) {
                    for (a, &x) in acc.iter_mut().zip(v) {
                        *a = if FMA { w.mul_add(x, *a) } else { *a + w * x };
                    }
                }
            }
            let valid = PX.min(g.ow - x0);
            for (j, acc) in acc.iter().enumerate() {
                // SAFETY: pixels x0..x0 + valid of row oy of plane b·OC + j, per the contract.
                let dst = unsafe { std::slice::from_raw_parts_mut(out.add((b * OC + j) * g.oh * g.ow + oy * g.ow + x0), valid) };
                if valid == PX {
                    dst.copy_from_slice(acc);
                } else {
                    dst.copy_from_slice(&acc[..valid]);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn row_avx512(lines: &[f32], layout: &Layout, weight: &[f32], out: *mut f32, g: Geometry, oy: usize) {
    // SAFETY: the caller's contract.
    unsafe { row::<true>(lines, layout, weight, out, g, oy) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2(lines: &[f32], layout: &Layout, weight: &[f32], out: *mut f32, g: Geometry, oy: usize) {
    // SAFETY: the caller's contract.
    unsafe { row::<true>(lines, layout, weight, out, g, oy) }
}

impl Direct {
    /// The convolution over `batch` images, with its bias, SiLU and shortcut as
    /// [`super::HostConv`] applies them.
    ///
    /// # Safety
    /// As [`super::HostConv::run_into`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn run_into(&self, bias: &[f32], silu: bool, input: Planes, out: Planes, residual: Option<Planes>, batch: usize, g: Geometry) {
        let (inp, stride, weight) = (self.inp, self.stride, &self.weight[..]);
        assert_eq!(weight.len(), bias.len() * inp * 9, "weights for every output");
        let layout = Layout::new(inp, stride, g.ow);
        let isa = super::Isa::detect();
        // Bands of rows, several per thread (the work per row is even, so four per thread keeps the
        // last ones short).
        let per_image = (4 * rayon::current_num_threads()).div_ceil(batch);
        let rows = g.oh.div_ceil(per_image).max(1);
        let bands = g.oh.div_ceil(rows);
        (0..batch * bands).into_par_iter().for_each(|task| {
            let (image, band) = (task / bands, task % bands);
            // SAFETY: per the contract, the image's input planes, which no task writes.
            let source = unsafe { std::slice::from_raw_parts(input.image(image), inp * g.h * g.w) };
            let (dst, shortcut) = (out.image(image), residual.map(|r| r.image(image)));
            let row_floats = layout.row_floats(inp);
            LINES.with_borrow_mut(|lines| {
                lines.resize(((ROWS - 1) * stride + 3) * row_floats, 0.0);
                let (first, end) = (band * rows, ((band + 1) * rows).min(g.oh));
                for oy in first..end {
                    let k = (oy - first) % ROWS;
                    if k == 0 {
                        let count = (ROWS.min(end - oy) - 1) * stride + 3;
                        layout.fill(lines, source, inp, g, (oy * stride) as isize - 1, count);
                    }
                    let lines = &lines[k * stride * row_floats..];
                    // SAFETY: this task alone computes row oy of this image; the processor has the
                    // features each variant was compiled for, checked by `Isa::detect`.
                    unsafe {
                        match isa {
                            #[cfg(target_arch = "x86_64")]
                            super::Isa::Avx512 => row_avx512(lines, &layout, weight, dst, g, oy),
                            #[cfg(target_arch = "x86_64")]
                            super::Isa::Avx2 => row_avx2(lines, &layout, weight, dst, g, oy),
                            _ => row::<false>(lines, &layout, weight, dst, g, oy),
                        }
                    }
                    for (o, &b) in bias.iter().enumerate() {
                        let at = o * g.oh * g.ow + oy * g.ow;
                        // SAFETY: row oy of plane o, written just above by this task only.
                        let values = unsafe { std::slice::from_raw_parts_mut(dst.add(at), g.ow) };
                        // SAFETY: the same row of the shortcut's plane o, which no task writes.
                        let add = shortcut.map(|shortcut| unsafe { std::slice::from_raw_parts(shortcut.add(at), g.ow) });
                        finish(values, b, silu, add);
                    }
                }
            });
        });
    }
}
