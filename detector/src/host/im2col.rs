//! im2col: the input pixels each output pixel of a tile sees, as the columns of the GEMM's
//! right-hand matrix (`[in·k·k, cols]`), zero where the kernel reaches over the padding. Rows are
//! copied a run of output pixels at a time: a slice copy at stride 1, a gather the compiler
//! vectorises at stride 2.

use super::conv::Geometry;

/// Fills `columns` (`[inp·k·k, cols]`) with the input pixels that output pixels
/// `start..start + cols` of a `k × k` convolution of `stride` and `pad` over `inp` planes see.
#[allow(clippy::too_many_arguments)]
pub(super) fn im2col(input: &[f32], columns: &mut [f32], g: Geometry, inp: usize, k: usize, s: usize, pad: usize, start: usize, cols: usize) {
    for c in 0..inp {
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

/// `dst[i] = src[i·S]`, with the stride known to the compiler so that the loop vectorises.
#[inline(always)]
fn gather<const S: usize>(dst: &mut [f32], src: &[f32]) {
    let Some((last, head)) = dst.split_last_mut() else { return };
    for (v, group) in head.iter_mut().zip(src.chunks_exact(S)) {
        *v = group[0];
    }
    *last = src[head.len() * S];
}
